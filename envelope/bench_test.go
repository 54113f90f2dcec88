package envelope_test

import (
	"crypto/rand"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/wsactor/wsactor/envelope"
)

// payload returns a JSON object of about n bytes, shaped like application
// data (nested objects, arrays, numbers, strings with escapes and non-ASCII).
func payload(n int) []byte {
	if n <= 64 {
		return []byte(`{"op":"echo","i":12,"s":"hello, world","list":[1,2.5,true,null]}`)
	}
	var sb strings.Builder
	sb.WriteString(`{"op":"echo","items":[`)
	for i := 0; sb.Len() < n-64; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(`{"id":` + strconv.Itoa(i) + `,"name":"item-` + strconv.Itoa(i) +
			`","tags":["alpha","beta"],"price":12.5e-1,"ok":true,"note":"caf\u00e9 \"quoted\" é"}`)
	}
	sb.WriteString(`]}`)
	return []byte(sb.String())
}

var sizes = []struct {
	name string
	n    int
}{{"small", 60}, {"1KiB", 1 << 10}, {"64KiB", 64 << 10}}

// jsonEnvelope is the encoding/json baseline: what a naive implementation
// would unmarshal into.
type jsonEnv struct {
	Plugin     string          `json:"plugin"`
	RequestID  json.RawMessage `json:"requestId,omitempty"`
	ResponseID json.RawMessage `json:"responseId,omitempty"`
	Data       json.RawMessage `json:"data,omitempty"`
}

type jsonReq struct {
	Plugin    string          `json:"plugin"`
	RequestID string          `json:"requestId"`
	Data      json.RawMessage `json:"data,omitempty"`
}

func BenchmarkDecode(b *testing.B) {
	id := envelope.AppendID(nil, envelope.NewID())
	for _, sz := range sizes {
		frame := envelope.AppendRequest(nil, id, payload(sz.n), 0)
		b.Run(sz.name+"/envelope", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			for b.Loop() {
				env, err := envelope.Decode(frame)
				if err != nil || env.Kind != envelope.KindRequest {
					b.Fatal(env.Kind, err)
				}
			}
		})
		b.Run(sz.name+"/encoding_json", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			for b.Loop() {
				var env jsonEnv
				if err := json.Unmarshal(frame, &env); err != nil || env.Plugin != envelope.Plugin {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("small-traceparent/envelope", func(b *testing.B) {
		frame := envelope.AppendTracedRequest(nil, id, payload(60), 0, []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
		b.ReportAllocs()
		b.SetBytes(int64(len(frame)))
		for b.Loop() {
			env, err := envelope.Decode(frame)
			if err != nil || env.Traceparent == nil {
				b.Fatal(env.Kind, err)
			}
		}
	})
	b.Run("control/envelope", func(b *testing.B) {
		frame := []byte(`"primus::ping::1795618445153"`)
		b.ReportAllocs()
		for b.Loop() {
			if env, err := envelope.Decode(frame); err != nil || env.Kind != envelope.KindControl {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkAppendRequest(b *testing.B) {
	id := envelope.NewID()
	for _, sz := range sizes {
		data := payload(sz.n)
		b.Run(sz.name+"/envelope", func(b *testing.B) {
			b.ReportAllocs()
			var buf []byte
			var idb [38]byte
			for b.Loop() {
				buf = envelope.AppendRequest(buf[:0], envelope.AppendID(idb[:0], id), data, 5000)
			}
			b.SetBytes(int64(len(buf)))
		})
		b.Run(sz.name+"/encoding_json", func(b *testing.B) {
			b.ReportAllocs()
			var n int
			for b.Loop() {
				out, err := json.Marshal(jsonReq{Plugin: envelope.Plugin, RequestID: id.String(), Data: data})
				if err != nil {
					b.Fatal(err)
				}
				n = len(out)
			}
			b.SetBytes(int64(n))
		})
	}
}

func BenchmarkAppendResponse(b *testing.B) {
	id := envelope.AppendID(nil, envelope.NewID())
	for _, sz := range sizes {
		data := payload(sz.n)
		b.Run(sz.name, func(b *testing.B) {
			b.ReportAllocs()
			var buf []byte
			for b.Loop() {
				buf = envelope.AppendResponse(buf[:0], id, data)
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}

func BenchmarkAppendString(b *testing.B) {
	for _, s := range []struct{ name, s string }{
		{"control", "primus::pong::1795618445153"},
		{"escapes", "line 1\nline \"2\"\t\u2028 é日本"},
		{"ascii1KiB", strings.Repeat("abcdefgh", 128)},
	} {
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(s.s)))
			var buf []byte
			for b.Loop() {
				buf = envelope.AppendString(buf[:0], s.s)
			}
		})
	}
}

// BenchmarkNewID compares ways of making a random v4 id, all from
// crypto/rand. "hand" is the hand-written generator envelope.NewID used
// before it went through google/uuid (a pooled 1 KiB block of crypto/rand,
// copied out 16 bytes at a time), kept here as the baseline.
// "uuid.EnableRandPool" switches uuid's process-global pool on for its
// sub-benchmarks only (it must not be toggled while other goroutines call
// uuid.New; benchmarks run one at a time, after the tests).
func BenchmarkNewID(b *testing.B) {
	gens := []struct {
		name string
		f    func() envelope.ID
	}{
		{"envelope.NewID", envelope.NewID},
		{"hand", handNewID},
		{"uuid.New", uuid.New},
		{"uuid.EnableRandPool", uuid.New},
		{"rand.Read", perCallID},
	}
	for _, g := range gens {
		for _, par := range []bool{false, true} {
			name := g.name
			if par {
				name += "/parallel"
			}
			b.Run(name, func(b *testing.B) {
				if g.name == "uuid.EnableRandPool" {
					uuid.EnableRandPool()
					defer uuid.DisableRandPool()
				}
				b.ReportAllocs()
				if !par {
					for b.Loop() {
						_ = g.f()
					}
					return
				}
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						_ = g.f()
					}
				})
			})
		}
	}
}

// textSink and bytesSink keep the compiler from dropping (or stack
// allocating) the results of String and MarshalText.
var (
	textSink  string
	bytesSink []byte
)

// handNewID is the hand-written envelope.NewID that google/uuid replaced.
func handNewID() envelope.ID {
	var id envelope.ID
	r := handBlocks.Get().(*handBlock)
	if r.n+len(id) > len(r.b) {
		_, _ = rand.Read(r.b[:])
		r.n = 0
	}
	copy(id[:], r.b[r.n:])
	clear(r.b[r.n : r.n+len(id)])
	r.n += len(id)
	handBlocks.Put(r)
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	return id
}

type handBlock struct {
	b [1024]byte
	n int
}

var handBlocks = sync.Pool{New: func() any { return &handBlock{n: len(handBlock{}.b)} }}

// perCallID reads 16 bytes of crypto/rand per id, with no pool.
func perCallID() (id envelope.ID) {
	_, _ = rand.Read(id[:])
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	return id
}

// handParseID is the hand-written envelope.ParseID that uuid.ParseBytes
// replaced.
func handParseID(raw []byte) (envelope.ID, bool) {
	var id envelope.ID
	if len(raw) != 38 || raw[0] != '"' || raw[37] != '"' ||
		raw[9] != '-' || raw[14] != '-' || raw[19] != '-' || raw[24] != '-' {
		return id, false
	}
	var bad byte
	for i, j := range [16]uint8{1, 3, 5, 7, 10, 12, 15, 17, 20, 22, 25, 27, 29, 31, 33, 35} {
		hi, lo := handHex[raw[j]], handHex[raw[j+1]]
		bad |= hi | lo
		id[i] = hi<<4 | lo
	}
	if bad&0x80 != 0 {
		return envelope.ID{}, false
	}
	return id, true
}

var handHex = func() (t [256]byte) {
	for c := range t {
		t[c] = 0xff
		switch {
		case '0' <= c && c <= '9':
			t[c] = byte(c - '0')
		case 'a' <= c && c <= 'f':
			t[c] = byte(c - 'a' + 10)
		case 'A' <= c && c <= 'F':
			t[c] = byte(c - 'A' + 10)
		}
	}
	return t
}()

// BenchmarkID compares encoding and parsing ids: envelope.AppendID against
// uuid.UUID's String and MarshalText (which allocate), envelope.ParseID
// (uuid.ParseBytes behind a quote check) against the hand-written parser it
// replaced and uuid.ParseBytes alone.
func BenchmarkID(b *testing.B) {
	defer func() { textSink, bytesSink = "", nil }()
	id := envelope.NewID()
	raw := envelope.AppendID(nil, id)
	b.Run("AppendID", func(b *testing.B) {
		b.ReportAllocs()
		var buf [38]byte
		for b.Loop() {
			_ = envelope.AppendID(buf[:0], id)
		}
	})
	b.Run("uuid.String", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			textSink = id.String()
		}
	})
	b.Run("uuid.MarshalText", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			bytesSink, _ = id.MarshalText()
		}
	})
	parsers := []struct {
		name string
		f    func([]byte) (envelope.ID, bool)
	}{
		{"ParseID", envelope.ParseID},
		{"hand", handParseID},
		{"uuid.ParseBytes", func(raw []byte) (envelope.ID, bool) {
			id, err := uuid.ParseBytes(raw[1:37])
			return id, err == nil
		}},
	}
	bad := append([]byte(nil), raw...)
	bad[30] = 'g'
	for _, p := range parsers {
		b.Run("parse/"+p.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if got, ok := p.f(raw); !ok || got != id {
					b.Fatal("parse failed")
				}
			}
		})
		b.Run("parse-bad/"+p.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := p.f(bad); ok {
					b.Fatal("bad id parsed")
				}
			}
		})
	}
}
