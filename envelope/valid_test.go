package envelope_test

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/wsactor/wsactor/envelope"
)

func TestValid(t *testing.T) {
	for _, s := range []string{
		`1`, ` "x" `, `null`, `true`, `[1,{"a":[null,"é"]}]`, `{"plugin":"primus-responder","requestId":"a"}`,
		``, ` `, `{`, `[1,]`, `01`, `"a` + "\xff" + `"`, `1 2`, `{"a":1}}`, `nul`, `"\u12"`,
		strings.Repeat("[", 600) + strings.Repeat("]", 600),
	} {
		want := json.Valid([]byte(s)) && utf8.ValidString(s) && !strings.HasPrefix(s, strings.Repeat("[", 600))
		if got := envelope.Valid([]byte(s)); got != want {
			t.Errorf("Valid(%.40q) = %v, want %v", s, got, want)
		}
	}
}

func BenchmarkValid(b *testing.B) {
	payload := []byte(`{"records":[` + strings.Repeat(`{"id":12345,"name":"alice","tags":["a","b"],"score":1.5},`, 70) + `{}]}`)
	b.Run("envelope", func(b *testing.B) {
		b.SetBytes(int64(len(payload)))
		for b.Loop() {
			envelope.Valid(payload)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(payload)))
		for b.Loop() {
			json.Valid(payload)
		}
	})
}
