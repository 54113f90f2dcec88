package envelope_test

import (
	"bufio"
	"crypto/rand"
	"encoding/json"
	"io"
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
	id := envelope.NewID().AppendJSON(nil)
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
				buf = envelope.AppendRequest(buf[:0], id.AppendJSON(idb[:0]), data, 5000)
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
	id := envelope.NewID().AppendJSON(nil)
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

// randPool holds buffered crypto/rand readers, one per P at a time.
var randPool = sync.Pool{New: func() any { return bufio.NewReaderSize(rand.Reader, 16*64) }}

func BenchmarkNewID(b *testing.B) {
	b.Run("envelope.NewID", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = envelope.NewID()
		}
	})
	b.Run("uuid.New", func(b *testing.B) { // crypto/rand on each call
		b.ReportAllocs()
		for b.Loop() {
			_ = uuid.New()
		}
	})
	b.Run("uuid.NewRandomFromReader/per-call-buffer", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var buf [16]byte
			_, _ = rand.Read(buf[:])
			if _, err := uuid.NewRandomFromReader(&byteReader{b: buf[:]}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("uuid.NewRandomFromReader/pooled-bufio", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r := randPool.Get().(*bufio.Reader)
			_, err := uuid.NewRandomFromReader(r)
			randPool.Put(r)
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("rand.Read/pooled-bufio", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var id envelope.ID
			r := randPool.Get().(*bufio.Reader)
			_, err := io.ReadFull(r, id[:])
			randPool.Put(r)
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("rand.Read/per-call", func(b *testing.B) { // 16 bytes of crypto/rand per id
		b.ReportAllocs()
		for b.Loop() {
			_ = perCallID()
		}
	})
	b.Run("rand.Read/per-call/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = perCallID()
			}
		})
	})
	b.Run("envelope.NewID/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = envelope.NewID()
			}
		})
	})
	b.Run("uuid.NewRandomFromReader/pooled-bufio/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				r := randPool.Get().(*bufio.Reader)
				_, _ = uuid.NewRandomFromReader(r)
				randPool.Put(r)
			}
		})
	})
}

func perCallID() (id envelope.ID) {
	_, _ = rand.Read(id[:])
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	return id
}

type byteReader struct{ b []byte }

func (r *byteReader) Read(p []byte) (int, error) {
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

func BenchmarkID(b *testing.B) {
	id := envelope.NewID()
	raw := id.AppendJSON(nil)
	b.Run("AppendJSON", func(b *testing.B) {
		b.ReportAllocs()
		var buf [38]byte
		for b.Loop() {
			_ = id.AppendJSON(buf[:0])
		}
	})
	b.Run("ParseID", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := envelope.ParseID(raw); !ok {
				b.Fatal("ParseID failed")
			}
		}
	})
	b.Run("uuid.ParseBytes", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := uuid.ParseBytes(raw[1:37]); err != nil {
				b.Fatal(err)
			}
		}
	})
}
