package envelope_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/wsactor/wsactor/envelope"
)

func FuzzDecode(f *testing.F) {
	for _, s := range wireFrames {
		f.Add([]byte(s))
	}
	for _, s := range []string{
		`{"plugin":"primus-responder","requestId":7,"data":1}`,
		`{"plugin":"primus-responder","responseId":"b","requestId":"a"}`,
		`{"plugin":"primus-responder","requestId":0}`,
		`{"plugin":"primus-responder","requestId":"a","timeout":1500,"data":[{"x":null}]}`,
		`{"plugin":"primus-responder","responseId":"a","error":{"code":"E","message":"m\u2028"}}`,
		`{"plugin":"primus-responder","cancelId":"c"}`,
		`{"plugin":"primus-responder","requestId":"a","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","data":1}`,
		`{"plugin":"primus-responder","requestId":"a","traceparent":"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x"}`,
		`{"plugin":"primus-responder","requestId":"a","traceparent":"00-00000000000000000000000000000000-00f067aa0ba902b7-01"}`,
		`{"plugin":"primus-responder","requestId":"a","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}`,
		`{"plugin":"primus-responder","responseId":"a","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}`,
		`{"pl\u0075gin":"primus\u002dresponder","re\u0071uestId":"\ud83c\udf89"}`,
		`"{\"plugin\":\"primus-responder\",\"requestId\":\"a\"}"`,
		`"prim\u0075s::ping::1"`,
		"\"a\xffb\"", strings.Repeat("[", 513) + strings.Repeat("]", 513),
		"1" + strings.Repeat("0", 400), `-0.0e-999`, ` `, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		env, err := envelope.Decode(in)
		if err != nil {
			checkDecodeError(t, in, err)
			return
		}
		if !utf8.Valid(in) || !json.Valid(in) {
			t.Fatalf("Decode(%q) succeeded (%v) but utf8.Valid=%v json.Valid=%v", in, env.Kind, utf8.Valid(in), json.Valid(in))
		}
		crossCheck(t, in)
		roundTrip(t, env)
	})
}

// checkDecodeError checks that err is the right sentinel for in.
func checkDecodeError(t *testing.T, in []byte, err error) {
	t.Helper()
	sentinels := []error{envelope.ErrEmpty, envelope.ErrMalformed, envelope.ErrInvalidUTF8, envelope.ErrNull,
		envelope.ErrMissingID, envelope.ErrBadID, envelope.ErrBadField}
	n := 0
	for _, s := range sentinels {
		if errors.Is(err, s) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("Decode(%q) error %v matches %d sentinels, want 1", in, err, n)
	}
	switch {
	case !utf8.Valid(in):
		if !errors.Is(err, envelope.ErrInvalidUTF8) {
			t.Fatalf("Decode(%q) = %v, want ErrInvalidUTF8", in, err)
		}
	case len(bytes.Trim(in, " \t\r\n")) == 0:
		if !errors.Is(err, envelope.ErrEmpty) {
			t.Fatalf("Decode(%q) = %v, want ErrEmpty", in, err)
		}
	case !json.Valid(in):
		if !errors.Is(err, envelope.ErrMalformed) {
			t.Fatalf("Decode(%q) = %v, but json.Valid is false", in, err)
		}
	case errors.Is(err, envelope.ErrMalformed):
		if d := nesting(in); d <= 512 {
			t.Fatalf("Decode(%q) = %v, but json.Valid is true and nesting is only %d", in, err, d)
		}
	case errors.Is(err, envelope.ErrNull):
		if !envelope.IsNull(in) {
			t.Fatalf("Decode(%q) = ErrNull for a non-null value", in)
		}
	case errors.Is(err, envelope.ErrEmpty), errors.Is(err, envelope.ErrInvalidUTF8):
		t.Fatalf("Decode(%q) = %v for a valid frame", in, err)
	default: // ErrMissingID, ErrBadID, ErrBadField: only for plugin envelopes
		m, ok := jsonEnvelope(t, in)
		if !ok {
			t.Fatalf("Decode(%q) = %v, but encoding/json sees no plugin envelope", in, err)
		}
		if errors.Is(err, envelope.ErrMissingID) {
			if k, _ := oracleKind(t, m); k != 0 {
				t.Fatalf("Decode(%q) = %v, but the oracle says %v", in, err, k)
			}
		}
	}
}

// nesting returns the deepest nesting of the valid JSON text in.
func nesting(in []byte) int {
	depth, deepest, inStr, esc := 0, 0, false, false
	for _, c := range in {
		switch {
		case esc:
			esc = false
		case inStr:
			esc = c == '\\'
			inStr = c != '"'
		case c == '"':
			inStr = true
		case c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}

// jsonEnvelope decodes in with encoding/json and reports whether it is a
// plugin envelope.
func jsonEnvelope(t *testing.T, in []byte) (map[string]json.RawMessage, bool) {
	t.Helper()
	var m map[string]json.RawMessage
	if json.Unmarshal(in, &m) != nil || m == nil {
		return nil, false
	}
	var plugin string
	if json.Unmarshal(m["plugin"], &plugin) != nil || plugin != envelope.Plugin {
		return m, false
	}
	return m, true
}

// oracleKind decides the kind of a plugin envelope from encoding/json's view,
// with JS truthiness, independently of Decode. It returns 0 when no id is
// truthy.
func oracleKind(t *testing.T, m map[string]json.RawMessage) (envelope.Kind, string) {
	t.Helper()
	for i, key := range []string{"requestId", "responseId", "cancelId"} {
		raw, ok := m[key]
		if !ok {
			continue
		}
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			t.Fatalf("oracle: %s=%s: %v", key, raw, err)
		}
		truthy := true
		switch v := v.(type) {
		case nil:
			truthy = false
		case bool:
			truthy = v
		case string:
			truthy = v != ""
		case json.Number:
			f, _ := strconv.ParseFloat(string(v), 64) // ±Inf on overflow: truthy
			truthy = f != 0
		}
		if truthy {
			return envelope.KindRequest + envelope.Kind(i), key
		}
	}
	return 0, ""
}

// crossCheck decodes the valid frame in with Decode and with encoding/json
// and compares what they see.
func crossCheck(t *testing.T, in []byte) {
	t.Helper()
	env, err := envelope.Decode(in)
	if err != nil {
		t.Fatalf("Decode(%q): %v", in, err)
	}
	m, isEnv := jsonEnvelope(t, in)
	switch env.Kind {
	case envelope.KindData, envelope.KindControl:
		if isEnv {
			t.Fatalf("Decode(%q) = %v, but encoding/json sees a plugin envelope", in, env.Kind)
		}
		var raw json.RawMessage
		if err := json.Unmarshal(in, &raw); err != nil {
			t.Fatalf("json.Unmarshal(%q): %v", in, err)
		}
		var s string
		isControl := json.Unmarshal(raw, &s) == nil && strings.HasPrefix(s, "primus::")
		if isControl != (env.Kind == envelope.KindControl) {
			t.Fatalf("Decode(%q) = %v, encoding/json unquotes %q", in, env.Kind, s)
		}
		if isControl {
			if env.Control != s || env.Data != nil {
				t.Errorf("Control = %q (Data %q), encoding/json says %q", env.Control, env.Data, s)
			}
		} else if !bytes.Equal(env.Data, raw) || env.Control != "" {
			t.Errorf("Data = %q (Control %q), encoding/json says %q", env.Data, env.Control, raw)
		}
		if env.ID != nil || env.Err != nil || env.Timeout != 0 || env.Traceparent != nil {
			t.Errorf("Decode(%q) = %+v: envelope fields set on %v", in, env, env.Kind)
		}
	default:
		if !isEnv {
			t.Fatalf("Decode(%q) = %v, but encoding/json sees no plugin envelope", in, env.Kind)
		}
		k, key := oracleKind(t, m)
		if k != env.Kind {
			t.Fatalf("Decode(%q) = %v, oracle says %v", in, env.Kind, k)
		}
		if !bytes.Equal(env.ID, m[key]) {
			t.Errorf("ID = %q, encoding/json %s = %q", env.ID, key, m[key])
		}
		wantData := []byte(m["data"])
		if env.Kind == envelope.KindCancel {
			wantData = nil
		}
		if !bytes.Equal(env.Data, wantData) || (env.Data == nil) != (wantData == nil) {
			t.Errorf("Data = %q, encoding/json data = %q", env.Data, m["data"])
		}
		if env.Kind == envelope.KindResponse {
			checkErrField(t, env.Err, m["error"])
		} else if env.Err != nil {
			t.Errorf("Err set on %v", env.Kind)
		}
		if env.Kind != envelope.KindRequest && env.Timeout != 0 {
			t.Errorf("Timeout set on %v", env.Kind)
		}
		var wantTP []byte
		if env.Kind == envelope.KindRequest {
			wantTP = oracleTraceparent(m["traceparent"])
		}
		if !bytes.Equal(env.Traceparent, wantTP) || (env.Traceparent == nil) != (wantTP == nil) {
			t.Errorf("Traceparent = %q, the oracle says %q (traceparent %s)", env.Traceparent, wantTP, m["traceparent"])
		}
	}
}

// traceparentRE is the W3C traceparent grammar: version, trace-id,
// parent-id, flags, and for versions after 00 perhaps "-" and more.
var traceparentRE = regexp.MustCompile(`^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$`)

// oracleTraceparent is what Decode should keep of a raw "traceparent"
// value: the first 55 bytes of a valid one whose first 55 characters are
// written without escapes (JSON never needs one there), else nil.
func oracleTraceparent(raw json.RawMessage) []byte {
	if len(raw) < 2+envelope.TraceparentLen || raw[0] != '"' || bytes.IndexByte(raw[:1+envelope.TraceparentLen], '\\') >= 0 {
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return nil
	}
	g := traceparentRE.FindStringSubmatch(s)
	switch {
	case g == nil, g[1] == "ff", g[1] == "00" && g[5] != "",
		g[2] == strings.Repeat("0", 32), g[3] == strings.Repeat("0", 16):
		return nil
	}
	return []byte(s[:envelope.TraceparentLen])
}

func checkErrField(t *testing.T, got *envelope.Error, raw json.RawMessage) {
	t.Helper()
	var m map[string]json.RawMessage
	if raw == nil || json.Unmarshal(raw, &m) != nil || m == nil {
		if got != nil {
			t.Errorf("Err = %+v, encoding/json error = %s", *got, raw)
		}
		return
	}
	if got == nil {
		t.Fatalf("Err = nil, encoding/json error = %s", raw)
	}
	var code, msg *string
	_ = json.Unmarshal(m["code"], &code)
	_ = json.Unmarshal(m["message"], &msg)
	if deref(code) != got.Code || deref(msg) != got.Message {
		t.Errorf("Err = %+v, encoding/json says %q/%q", *got, deref(code), deref(msg))
	}
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// roundTrip re-encodes a decoded frame and checks that it decodes the same.
func roundTrip(t *testing.T, env envelope.Envelope) {
	t.Helper()
	var out []byte
	switch env.Kind {
	case envelope.KindRequest:
		if env.Traceparent != nil {
			out = envelope.AppendTracedRequest(nil, env.ID, env.Data, env.Timeout, env.Traceparent)
		} else {
			out = envelope.AppendRequest(nil, env.ID, env.Data, env.Timeout)
		}
	case envelope.KindResponse:
		if env.Err != nil {
			out = envelope.AppendErrorResponse(nil, env.ID, *env.Err)
		} else {
			out = envelope.AppendResponse(nil, env.ID, env.Data)
		}
	case envelope.KindCancel:
		out = envelope.AppendCancel(nil, env.ID)
	case envelope.KindControl:
		out = envelope.AppendControl(nil, env.Control)
	default:
		return
	}
	got, err := envelope.Decode(out)
	if err != nil {
		t.Fatalf("re-encoded %v %q does not decode: %v", env.Kind, out, err)
	}
	if got.Kind != env.Kind || !bytes.Equal(got.ID, env.ID) || got.Timeout != env.Timeout || got.Control != env.Control ||
		!bytes.Equal(got.Traceparent, env.Traceparent) || (got.Traceparent == nil) != (env.Traceparent == nil) {
		t.Fatalf("round trip: %+v -> %s -> %+v", env, out, got)
	}
	if env.Err != nil {
		if got.Err == nil || *got.Err != *env.Err || got.Data != nil {
			t.Fatalf("round trip error: %+v -> %s -> %+v", *env.Err, out, got)
		}
	} else if got.Err != nil || !bytes.Equal(got.Data, env.Data) || (got.Data == nil) != (env.Data == nil) {
		t.Fatalf("round trip data: %q -> %s -> %q (err %v)", env.Data, out, got.Data, got.Err)
	}
}

func TestDecodeMatchesEncodingJSON(t *testing.T) {
	samples := []string{
		`{"plugin":"primus-responder","requestId":"a","data":{"x":[1,2,{"y":"\u00e9\ud83c\udf89"}]},"data":"second"}`,
		`{"plugin":"primus-responder","responseId":1,"data":-0.5e-7,"error":{"code":"c","Code":"d"}}`,
		`{"plugin":"primus-responder","requestId":"a","timeout":100,"data":[true,false,null]}`,
		`{"pl\u0075gin":"primus-responder","\u0064ata":"d","requestId":"\ud800"}`,
		`{"plugin":"primus-responder","Data":1,"responseId":"x"}`,
		`{"plugin":"primus-responder","cancelId":5,"data":1}`,
		`"primus::\u0000"`, `"\ud800primus::"`,
	}
	for _, f := range wireFrames {
		if _, err := envelope.Decode([]byte(f)); err == nil {
			samples = append(samples, f)
		}
	}
	for _, in := range samples {
		crossCheck(t, []byte(in))
		env, _ := envelope.Decode([]byte(in))
		roundTrip(t, env)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "a\"b\\c", "\x00\x1f\u2028\u2029", "\xff\xed\xa0\x80", "é日🎉", "primus::ping::1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkAppendString(t, s)
	})
}

// checkAppendString checks that AppendString(s) is valid JSON that
// encoding/json and Decode read back as s (invalid bytes as U+FFFD).
func checkAppendString(t *testing.T, s string) {
	t.Helper()
	out := envelope.AppendString([]byte("x"), s)[1:]
	want := string([]rune(s)) // each invalid byte becomes U+FFFD
	var got string
	if err := json.Unmarshal(out, &got); err != nil || got != want {
		t.Fatalf("AppendString(%q) = %s: encoding/json reads %q (%v), want %q", s, out, got, err, want)
	}
	if bytes.ContainsAny(out, "\u2028\u2029") || !utf8.Valid(out) {
		t.Fatalf("AppendString(%q) = %q: raw U+2028/U+2029 or invalid UTF-8", s, out)
	}
	env, err := envelope.Decode(out)
	if err != nil {
		t.Fatalf("Decode(AppendString(%q)): %v", s, err)
	}
	if strings.HasPrefix(want, "primus::") {
		if env.Kind != envelope.KindControl || env.Control != want {
			t.Fatalf("Decode(AppendString(%q)) = %+v", s, env)
		}
	} else if env.Kind != envelope.KindData || !bytes.Equal(env.Data, out) {
		t.Fatalf("Decode(AppendString(%q)) = %+v", s, env)
	}
}
