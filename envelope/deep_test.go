package envelope_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/wsactor/wsactor/envelope"
)

func TestTooDeep(t *testing.T) {
	deep := strings.Repeat("[", 600) + `"]"` + strings.Repeat("]", 600) // a string holding a bracket
	deepObj := strings.Repeat(`{"a":`, 600) + "1" + strings.Repeat("}", 600)
	for _, tc := range []struct {
		name, frame string
		id          string // "" = not a *RequestError
	}{
		{"data after id", `{"plugin":"primus-responder","requestId":"x","data":` + deep + `}`, `"x"`},
		{"data before id", `{"data":` + deepObj + `,"requestId":7,"plugin":"primus-responder"}`, `7`},
		{"deep unknown key", `{"plugin":"primus-responder","zz":` + deep + `,"requestId":"y"}`, `"y"`},
		{"not a plugin envelope", `{"requestId":"x","data":` + deep + `}`, ""},
		{"a response", `{"plugin":"primus-responder","responseId":"x","data":` + deep + `}`, ""},
		{"falsy id", `{"plugin":"primus-responder","requestId":0,"data":` + deep + `}`, ""},
		{"deep id", `{"plugin":"primus-responder","requestId":` + deep + `}`, ""},
		{"top-level array", deep, ""},
		{"broken after", `{"plugin":"primus-responder","requestId":"x","data":` + deep + `,}`, ""},
		{"unbalanced", `{"plugin":"primus-responder","requestId":"x","data":` + strings.Repeat("[", 600) + `}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, err := envelope.Decode([]byte(tc.frame))
			if err == nil || env.Kind != 0 {
				t.Fatalf("Decode: %+v, %v; want an error", env, err)
			}
			if !errors.Is(err, envelope.ErrMalformed) {
				t.Fatalf("error %v does not match ErrMalformed", err)
			}
			var re *envelope.RequestError
			if tc.id == "" {
				if errors.As(err, &re) {
					t.Fatalf("error %v is a RequestError", err)
				}
				return
			}
			if !errors.As(err, &re) || string(re.ID) != tc.id || !errors.Is(err, envelope.ErrTooDeep) {
				t.Fatalf("error %v (%T), want a RequestError with id %s matching ErrTooDeep", err, err, tc.id)
			}
		})
	}
}
