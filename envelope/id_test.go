package envelope_test

import (
	"bytes"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/wsactor/wsactor/envelope"
)

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestNewID(t *testing.T) {
	const n = 10000
	seen := make(map[envelope.ID]bool, n)
	for range n {
		id := envelope.NewID()
		if id[6]>>4 != 4 || id[8]>>6 != 2 {
			t.Fatalf("%s: version %d, variant bits %b", id, id[6]>>4, id[8]>>6)
		}
		if seen[id] {
			t.Fatalf("duplicate id %s", id)
		}
		seen[id] = true
		s := id.String()
		if !uuidV4.MatchString(s) {
			t.Fatalf("String() = %q, not a lower-case v4 uuid", s)
		}
		u, err := uuid.Parse(s)
		if err != nil || u != id || u.Version() != 4 || u.Variant() != uuid.RFC4122 {
			t.Fatalf("uuid.Parse(%q) = %v, %v (version %v, variant %v)", s, u, err, u.Version(), u.Variant())
		}
		if j := envelope.AppendID(nil, id); string(j) != `"`+s+`"` {
			t.Fatalf("AppendID = %s, want %q", j, s)
		}
		if p, ok := envelope.ParseID(envelope.AppendID(nil, id)); !ok || p != id {
			t.Fatalf("ParseID(AppendID(%s)) = %s, %v", id, p, ok)
		}
	}
}

// TestNewIDConcurrent draws ids from several goroutines at once (run with
// -race) and checks that no two are equal.
func TestNewIDConcurrent(t *testing.T) {
	const workers, each = 8, 2000
	results := make(chan []envelope.ID, workers)
	for range workers {
		go func() {
			ids := make([]envelope.ID, each)
			for i := range ids {
				ids[i] = envelope.NewID()
			}
			results <- ids
		}()
	}
	seen := make(map[envelope.ID]bool, workers*each)
	for range workers {
		for _, id := range <-results {
			if seen[id] {
				t.Fatalf("duplicate id %s", id)
			}
			seen[id] = true
		}
	}
}

func TestParseID(t *testing.T) {
	const good = `"f7dbef3f-c74e-4c08-9bd6-4dc13a595767"`
	id, ok := envelope.ParseID([]byte(good))
	if !ok || id.String() != good[1:37] {
		t.Fatalf("ParseID(%s) = %s, %v", good, id, ok)
	}
	if up, ok := envelope.ParseID([]byte(strings.ToUpper(good))); !ok || up != id {
		t.Errorf("ParseID(upper case) = %s, %v; want %s", up, ok, id)
	}
	if nilID, ok := envelope.ParseID([]byte(`"00000000-0000-0000-0000-000000000000"`)); !ok || nilID != (envelope.ID{}) {
		t.Errorf("ParseID(nil uuid) = %s, %v", nilID, ok)
	}
	bad := []string{
		"", `""`, good[1:37], good[:37], good[1:], good + " ", " " + good, `'` + good[1:37] + `'`,
		`"f7dbef3f-c74e-4c08-9bd6-4dc13a59576"`, `"f7dbef3f-c74e-4c08-9bd6-4dc13a5957677"`,
		`"f7dbef3fc-74e-4c08-9bd6-4dc13a595767"`, `"f7dbef3f_c74e-4c08-9bd6-4dc13a595767"`,
		`"g7dbef3f-c74e-4c08-9bd6-4dc13a595767"`, `"f7dbef3f-c74e-4c08-9bd6-4dc13a59576 "`,
		`"f7dbef3f-c74e-4c08-9bd6-4dc13a59576-"`, `"{7dbef3f-c74e-4c08-9bd6-4dc13a595767"`,
		`"f7dbef3fc74e4c089bd64dc13a595767"`, `{f7dbef3f-c74e-4c08-9bd6-4dc13a595767}`,
		`7`, `"\u0066" + 7dbef3f-c74e-4c08-9bd6-4dc13a595767"`,
		// Forms uuid.ParseBytes takes that are not ids on the wire.
		`"urn:uuid:f7dbef3f-c74e-4c08-9bd6-4dc13a595767"`, `"{f7dbef3f-c74e-4c08-9bd6-4dc13a595767}"`,
		`{f7dbef3f-c74e-4c08-9bd6-4dc13a595767"`, `"f7dbef3f-c74e-4c08-9bd6-4dc13a595767}`,
	}
	for _, b := range bad {
		if id, ok := envelope.ParseID([]byte(b)); ok {
			t.Errorf("ParseID(%q) = %s, true; want false", b, id)
		}
	}
	// Every single-byte corruption of a hex digit to a non-hex byte is rejected.
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := []byte(good)
		i := 1 + r.IntN(36)
		if b[i] == '-' {
			continue
		}
		b[i] = byte(r.IntN(256))
		_, ok := envelope.ParseID(b)
		isHex := bytes.IndexByte([]byte("0123456789abcdefABCDEF"), b[i]) >= 0
		if ok != isHex {
			t.Fatalf("ParseID(%q) ok = %v, want %v", b, ok, isHex)
		}
	}
}

func TestIDAllocs(t *testing.T) {
	id := envelope.NewID()
	buf := make([]byte, 0, 64)
	raw := envelope.AppendID(nil, id)
	var sink envelope.ID
	allocs := testing.AllocsPerRun(100, func() {
		buf = envelope.AppendID(buf[:0], id)
		sink, _ = envelope.ParseID(raw)
	})
	if allocs != 0 || sink != id {
		t.Errorf("AppendID+ParseID allocate %.1f times (id %s), want 0", allocs, sink)
	}
	if raceEnabled {
		return
	}
	// uuid.NewRandomFromReader reads into its UUID through io.ReadFull on an
	// io.Reader, so the 16-byte array escapes: one allocation per id, and no
	// more (the pooled reader is reused).
	if allocs := testing.AllocsPerRun(100, func() { sink = envelope.NewID() }); allocs > 1 {
		t.Errorf("NewID allocates %.1f times, want at most 1", allocs)
	}
}

func TestAppendStringRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	pieces := []string{"a", "Z", " ", "\"", "\\", "/", "\x00", "\x1f", "\x7f", "\n", "é", "日", "🎉",
		"\u2028", "\u2029", "\ufffd", "\xff", "\xc3", "\xed\xa0\x80", "\xf4\x90\x80\x80", "primus::", "<", "&"}
	for range 5000 {
		var sb strings.Builder
		for n := r.IntN(20); n > 0; n-- {
			if r.IntN(4) == 0 {
				sb.WriteByte(byte(r.IntN(256)))
			} else {
				sb.WriteString(pieces[r.IntN(len(pieces))])
			}
		}
		checkAppendString(t, sb.String())
	}
}
