package envelope

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Plugin is the value of the "plugin" key that marks a primus-responder envelope.
const Plugin = "primus-responder"

// MaxIDLen is the longest raw JSON id (in bytes, quotes included) that [Decode]
// accepts in an envelope; a longer one is reported as [ErrBadID].
const MaxIDLen = 256

// maxDepth is the deepest nesting of arrays and objects [Decode] accepts.
const maxDepth = 512

// Kind says what a decoded text frame is. The zero Kind is not a valid kind.
type Kind uint8

// The kinds of frame [Decode] reports.
const (
	// KindData is any valid JSON value that is not an envelope or a control
	// string (never a top-level null). It goes to the application.
	KindData Kind = iota + 1
	// KindRequest is {"plugin":"primus-responder", truthy "requestId", ...}.
	KindRequest
	// KindResponse is a plugin envelope with a truthy "responseId" and no
	// truthy "requestId".
	KindResponse
	// KindCancel (extension) is a plugin envelope with a truthy "cancelId" and
	// no truthy "requestId" or "responseId".
	KindCancel
	// KindControl is a JSON string whose unescaped value starts with "primus::".
	KindControl
)

// String returns the lower-case name of k ("data", "request", …), or
// "Kind(n)" for a value that is not one of the constants.
func (k Kind) String() string {
	switch k {
	case KindData:
		return "data"
	case KindRequest:
		return "request"
	case KindResponse:
		return "response"
	case KindCancel:
		return "cancel"
	case KindControl:
		return "control"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Error is the extension "error" object of an error response:
// "error":{"code":"…","message":"…"}. Either field may be absent on the wire,
// in which case it decodes as "". The zero value is a valid (empty) error.
type Error struct {
	Code    string
	Message string
}

// Envelope is one decoded text frame. Which fields are set depends on Kind;
// the others are zero. The zero value is not a decoded frame (Kind is 0).
//
// ID and Data alias the buffer passed to [Decode]: copy them before that
// buffer is reused.
type Envelope struct {
	// Kind says what the frame is.
	Kind Kind
	// ID is the raw JSON of the id, verbatim from the input, e.g.
	// `"f7dbef3f-c74e-4c08-9bd6-4dc13a595767"` (with its quotes) or `7`.
	// Set for KindRequest, KindResponse and KindCancel.
	ID []byte
	// Data is the raw JSON of "data" for KindRequest and KindResponse: nil
	// when the key is absent, `null` when it is null. For KindData it is the
	// whole value without surrounding whitespace.
	Data []byte
	// Err is the extension "error" object of a KindResponse; nil when absent
	// (or null).
	Err *Error
	// Timeout is the extension "timeout" of a KindRequest: how many
	// milliseconds the sender will wait (>0); 0 when absent or null.
	// Fractions are rounded up; values beyond int64 are clamped.
	Timeout int64
	// Control is the unescaped string of a KindControl frame, e.g.
	// "primus::ping::1795618408068".
	Control string
	// Traceparent is the extension "traceparent" of a KindRequest: a W3C
	// Trace Context traceparent (see [Traceparent]), the [TraceparentLen]
	// bytes "00-<trace-id>-<parent-id>-<flags>" without the quotes. nil
	// when absent or not valid: an invalid one is ignored, it is not an
	// error, so that the request is still delivered.
	Traceparent []byte
}

// Sentinel errors. [Decode] wraps them with detail (fmt.Errorf("%w: …")), so
// test with errors.Is.
var (
	// ErrEmpty: the frame is empty or only whitespace.
	ErrEmpty = errors.New("envelope: empty frame")
	// ErrMalformed: the frame is not exactly one valid JSON value (trailing
	// garbage, bad escapes, nesting deeper than 512, …).
	ErrMalformed = errors.New("envelope: malformed JSON")
	// ErrInvalidUTF8: the frame contains invalid UTF-8 (anywhere).
	ErrInvalidUTF8 = errors.New("envelope: invalid UTF-8")
	// ErrNull: the frame is a top-level null, which crashes Node Primus peers.
	ErrNull = errors.New("envelope: top-level null")
	// ErrMissingID: a plugin envelope without a truthy requestId, responseId
	// or cancelId (Primus silently swallows these).
	ErrMissingID = errors.New("envelope: envelope without a truthy id")
	// ErrBadID: the id that decides the kind is true, an object or an array,
	// or its raw JSON is longer than MaxIDLen.
	ErrBadID = errors.New("envelope: bad id")
	// ErrBadField: an extension field has the wrong type ("error" is not an
	// object with string code/message, "timeout" is not a non-negative number).
	ErrBadField = errors.New("envelope: bad extension field")
	// ErrTooDeep: the frame nests arrays and objects deeper than 512. Such
	// an error matches ErrMalformed too.
	ErrTooDeep = errors.New("envelope: nesting deeper than 512")
)

// RequestError is the error [Decode] returns for a request envelope it
// cannot deliver although it could read its id: its data (or another of its
// values) nests deeper than 512. The request can be answered with an error
// reply. It matches [ErrTooDeep] and [ErrMalformed] (errors.Is).
type RequestError struct {
	ID  []byte // the raw JSON id, as in [Envelope].ID (a copy: it does not alias the frame)
	Err error  // why the request cannot be used
}

func (e *RequestError) Error() string {
	return e.Err.Error() + " in request " + string(e.ID)
}

// Unwrap returns Err.
func (e *RequestError) Unwrap() error { return e.Err }

// Field indexes into the table of top-level keys Decode looks for.
const (
	fPlugin = iota
	fRequestID
	fResponseID
	fCancelID
	fData
	fError
	fTimeout
	fTraceparent
	nFields
	fNone = -1
)

type span struct{ s, e int } // b[s:e]; e == 0 means absent

// Decode parses one text frame. It never panics.
//
// The ID and Data slices of the result alias b (nothing is copied); only the
// Control string and the strings of Err are allocated. A typical request or
// response frame decodes without allocating.
//
// Errors wrap one of the sentinel errors: [ErrEmpty], [ErrMalformed],
// [ErrInvalidUTF8], [ErrNull], [ErrMissingID], [ErrBadID], [ErrBadField].
// A request whose id is readable but whose data nests too deep is a
// [*RequestError] carrying the id, so that it can be answered.
func Decode(b []byte) (Envelope, error) {
	i := skipWS(b, 0)
	if i == len(b) {
		return Envelope{}, ErrEmpty
	}
	switch b[i] {
	case '{':
		return decodeObject(b, i)
	case '"':
		e, st := scanString(b, i)
		if st != stOK {
			return Envelope{}, syntaxError(b, e, st)
		}
		if j := skipWS(b, e); j != len(b) {
			return Envelope{}, syntaxError(b, j, stSyntax)
		}
		raw := b[i:e]
		if hasControlPrefix(raw) {
			return Envelope{Kind: KindControl, Control: unquote(raw)}, nil
		}
		return Envelope{Kind: KindData, Data: raw}, nil
	}
	e, st := skipValue(b, i, 0)
	if st == stOK {
		if j := skipWS(b, e); j != len(b) {
			e, st = j, stSyntax
		}
	}
	if st != stOK {
		return Envelope{}, syntaxError(b, e, st)
	}
	if e-i == 4 && b[i] == 'n' {
		return Envelope{}, ErrNull
	}
	return Envelope{Kind: KindData, Data: b[i:e]}, nil
}

// decodeObject decodes the top-level object that starts at b[start] == '{'.
func decodeObject(b []byte, start int) (Envelope, error) {
	var f [nFields]span
	deep := -1 // offset of the first value nested too deep
	i := skipWS(b, start+1)
	if i < len(b) && b[i] == '}' {
		i++
	} else {
		for {
			if i >= len(b) || b[i] != '"' {
				return Envelope{}, syntaxError(b, i, stSyntax)
			}
			ke, st := scanString(b, i)
			if st != stOK {
				return Envelope{}, syntaxError(b, ke, st)
			}
			key := b[i+1 : ke-1]
			i = skipWS(b, ke)
			if i >= len(b) || b[i] != ':' {
				return Envelope{}, syntaxError(b, i, stSyntax)
			}
			vs := skipWS(b, i+1)
			ve, st := skipValue(b, vs, 1)
			if st == stDepth {
				// Perhaps valid, only too deep for us: step over it
				// without validating its structure, so that the
				// other keys are still read and a request with a
				// readable id can be answered.
				if deep < 0 {
					deep = ve
				}
				ve, st = skipDeep(b, vs)
			}
			if st != stOK {
				return Envelope{}, syntaxError(b, ve, st)
			}
			if k := matchKey(key); k != fNone {
				f[k] = span{vs, ve}
			}
			i = skipWS(b, ve)
			if i < len(b) && b[i] == ',' {
				i = skipWS(b, i+1)
				continue
			}
			if i < len(b) && b[i] == '}' {
				i++
				break
			}
			return Envelope{}, syntaxError(b, i, stSyntax)
		}
	}
	end := i
	if j := skipWS(b, end); j != len(b) {
		return Envelope{}, syntaxError(b, j, stSyntax)
	}
	if deep >= 0 {
		return Envelope{}, tooDeep(b, &f, deep)
	}
	p := f[fPlugin]
	if p.e == 0 || !stringEquals(b[p.s:p.e], Plugin) {
		return Envelope{Kind: KindData, Data: b[start:end]}, nil
	}

	var env Envelope
	for k := fRequestID; k <= fCancelID; k++ {
		sp := f[k]
		if sp.e == 0 {
			continue
		}
		raw := b[sp.s:sp.e]
		truthy, usable := idTruth(raw)
		if !truthy {
			continue
		}
		if !usable {
			return Envelope{}, fmt.Errorf("%w: %s is %s", ErrBadID, idKeyName(k), typeName(raw))
		}
		if len(raw) > MaxIDLen {
			return Envelope{}, fmt.Errorf("%w: %s is %d bytes long (max %d)", ErrBadID, idKeyName(k), len(raw), MaxIDLen)
		}
		env.ID = raw
		env.Kind = Kind(k-fRequestID) + KindRequest
		break
	}
	switch env.Kind {
	case KindRequest:
		if sp := f[fData]; sp.e != 0 {
			env.Data = b[sp.s:sp.e]
		}
		if sp := f[fTimeout]; sp.e != 0 {
			t, ok := parseTimeout(b[sp.s:sp.e])
			if !ok {
				return Envelope{}, fmt.Errorf("%w: timeout is %s, want a non-negative number", ErrBadField, typeName(b[sp.s:sp.e]))
			}
			env.Timeout = t
		}
		if sp := f[fTraceparent]; sp.e != 0 {
			// The raw string with its quotes: a valid one needs no escape.
			if raw := b[sp.s:sp.e]; raw[0] == '"' {
				if tp, ok := Traceparent(raw[1 : len(raw)-1]); ok {
					env.Traceparent = tp
				}
			}
		}
	case KindResponse:
		if sp := f[fData]; sp.e != 0 {
			env.Data = b[sp.s:sp.e]
		}
		if sp := f[fError]; sp.e != 0 {
			e, err := parseError(b[sp.s:sp.e])
			if err != nil {
				return Envelope{}, err
			}
			env.Err = e
		}
	case KindCancel:
	default:
		return Envelope{}, fmt.Errorf("%w: no truthy requestId, responseId or cancelId", ErrMissingID)
	}
	return env, nil
}

// tooDeep is the error for an object one of whose values nests too deep:
// a *RequestError when it is a request with a usable id, else what a
// syntax error at deep reports.
func tooDeep(b []byte, f *[nFields]span, deep int) error {
	err := syntaxError(b, deep, stDepth)
	p, r := f[fPlugin], f[fRequestID]
	if p.e == 0 || !stringEquals(b[p.s:p.e], Plugin) || r.e == 0 || !errors.Is(err, ErrTooDeep) {
		return err
	}
	raw := b[r.s:r.e]
	if truthy, usable := idTruth(raw); !truthy || !usable || len(raw) > MaxIDLen {
		return err
	}
	return &RequestError{ID: append([]byte(nil), raw...), Err: err}
}

func idKeyName(k int) string {
	switch k {
	case fRequestID:
		return "requestId"
	case fResponseID:
		return "responseId"
	}
	return "cancelId"
}

// typeName names the JSON type of a valid raw value, for error messages.
func typeName(raw []byte) string {
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// matchKey maps an (escaped) key name to its field index, or fNone.
func matchKey(key []byte) int {
	switch len(key) {
	case 4:
		if string(key) == "data" {
			return fData
		}
	case 5:
		if string(key) == "error" {
			return fError
		}
	case 6:
		if string(key) == "plugin" {
			return fPlugin
		}
	case 7:
		if string(key) == "timeout" {
			return fTimeout
		}
	case 8:
		if string(key) == "cancelId" {
			return fCancelID
		}
	case 9:
		if string(key) == "requestId" {
			return fRequestID
		}
	case 10:
		if string(key) == "responseId" {
			return fResponseID
		}
	case 11:
		if string(key) == "traceparent" {
			return fTraceparent
		}
	}
	// A key with escapes may still unescape to one we want.
	if len(key) < 6 || len(key) > 60 || !hasBackslash(key) {
		return fNone
	}
	var tmp [16]byte
	u := appendUnescaped(tmp[:0], key, len(tmp)-4)
	switch string(u) {
	case "data":
		return fData
	case "error":
		return fError
	case "plugin":
		return fPlugin
	case "timeout":
		return fTimeout
	case "cancelId":
		return fCancelID
	case "requestId":
		return fRequestID
	case "responseId":
		return fResponseID
	case "traceparent":
		return fTraceparent
	}
	return fNone
}

func hasBackslash(s []byte) bool {
	for _, c := range s {
		if c == '\\' {
			return true
		}
	}
	return false
}

// stringEquals reports whether raw is a JSON string whose unescaped value is want.
func stringEquals(raw []byte, want string) bool {
	if len(raw) < 2 || raw[0] != '"' {
		return false
	}
	in := raw[1 : len(raw)-1]
	return stringEqualsBody(in, want)
}

const controlPrefix = "primus::"

// hasControlPrefix reports whether the JSON string raw unescapes to a value
// that starts with "primus::".
func hasControlPrefix(raw []byte) bool {
	in := raw[1 : len(raw)-1]
	if len(in) >= len(controlPrefix) && string(in[:len(controlPrefix)]) == controlPrefix {
		return true
	}
	// The prefix can only come from escapes within its first 6*8 bytes.
	if !hasBackslash(in[:min(len(in), 6*len(controlPrefix))]) {
		return false
	}
	var tmp [32]byte
	u := appendUnescaped(tmp[:0], in, len(controlPrefix))
	return len(u) >= len(controlPrefix) && string(u[:len(controlPrefix)]) == controlPrefix
}

// unquote returns the unescaped value of the valid JSON string raw.
func unquote(raw []byte) string {
	in := raw[1 : len(raw)-1]
	if !hasBackslash(in) {
		return string(in)
	}
	return string(appendUnescaped(make([]byte, 0, len(in)), in, -1))
}

// idTruth reports whether the raw id is truthy in JavaScript, and if so
// whether it is usable as an id (a string or a number).
func idTruth(raw []byte) (truthy, usable bool) {
	switch raw[0] {
	case '"':
		return len(raw) > 2, true
	case 'f', 'n':
		return false, false
	case 't', '{', '[':
		return true, false
	}
	return numberNonZero(raw), true
}

// numberNonZero reports whether the valid JSON number raw is not zero when
// read as a float64 (as JavaScript does: 1e-400 is 0, 1e400 is Infinity).
func numberNonZero(raw []byte) bool {
	i := 0
	if raw[0] == '-' {
		i++
	}
	// exp10 is the decimal exponent of the first non-zero digit (before the
	// e-part): the value is d.ddd × 10^exp10.
	exp10, found := 0, false
	intStart := i
	for i < len(raw) && isDigit(raw[i]) {
		if !found && raw[i] != '0' {
			found = true
			exp10 = -(i - intStart) // made relative to the integer part's length below
		}
		i++
	}
	if found {
		exp10 += i - intStart - 1
	}
	if i < len(raw) && raw[i] == '.' {
		i++
		k := 0
		for i < len(raw) && isDigit(raw[i]) {
			if !found && raw[i] != '0' {
				found = true
				exp10 = -(k + 1)
			}
			k++
			i++
		}
	}
	if !found {
		return false
	}
	if i < len(raw) && (raw[i] == 'e' || raw[i] == 'E') {
		i++
		neg := false
		if i < len(raw) && (raw[i] == '+' || raw[i] == '-') {
			neg = raw[i] == '-'
			i++
		}
		e := 0
		for ; i < len(raw) && isDigit(raw[i]); i++ {
			if e < 1_000_000_000 {
				e = e*10 + int(raw[i]-'0')
			}
		}
		if neg {
			e = -e
		}
		exp10 += e
	}
	switch {
	case exp10 >= -320: // >= 1e-320 > smallest denormal (4.9e-324)
		return true
	case exp10 < -330:
		return false
	}
	f, _ := strconv.ParseFloat(string(raw), 64)
	return f != 0
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// parseTimeout reads the extension "timeout" field: null (absent) or a
// non-negative number of milliseconds, rounded up, clamped to int64.
func parseTimeout(raw []byte) (int64, bool) {
	switch c := raw[0]; {
	case c == 'n':
		return 0, true
	case c == '-':
		if numberNonZero(raw) {
			return 0, false
		}
		return 0, true
	case !isDigit(c):
		return 0, false
	}
	if len(raw) <= 18 {
		var n int64
		i := 0
		for ; i < len(raw) && isDigit(raw[i]); i++ {
			n = n*10 + int64(raw[i]-'0')
		}
		if i == len(raw) {
			return n, true
		}
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil && f == 0 {
		return 0, false
	}
	if f >= 9.2e18 {
		return 1<<63 - 1, true
	}
	n := int64(f)
	if float64(n) < f {
		n++
	}
	return n, true
}

// parseError reads the extension "error" field: null (absent) or an object
// whose "code" and "message", when present and not null, are strings.
func parseError(raw []byte) (*Error, error) {
	if raw[0] == 'n' {
		return nil, nil
	}
	if raw[0] != '{' {
		return nil, fmt.Errorf("%w: error is %s, want an object", ErrBadField, typeName(raw))
	}
	var code, msg span
	// raw is a valid object: walk its members without re-validating.
	i := skipWS(raw, 1)
	if raw[i] != '}' {
		for {
			ke, _ := scanString(raw, i)
			key := raw[i+1 : ke-1]
			i = skipWS(raw, ke)
			vs := skipWS(raw, i+1)
			ve, _ := skipValue(raw, vs, 0)
			switch {
			case stringEqualsBody(key, "code"):
				code = span{vs, ve}
			case stringEqualsBody(key, "message"):
				msg = span{vs, ve}
			}
			i = skipWS(raw, ve)
			if raw[i] == '}' {
				break
			}
			i = skipWS(raw, i+1)
		}
	}
	e := &Error{}
	for _, m := range [...]struct {
		sp   span
		name string
		dst  *string
	}{{code, "code", &e.Code}, {msg, "message", &e.Message}} {
		if m.sp.e == 0 {
			continue
		}
		v := raw[m.sp.s:m.sp.e]
		switch v[0] {
		case 'n':
		case '"':
			*m.dst = unquote(v)
		default:
			return nil, fmt.Errorf("%w: error.%s is %s, want a string", ErrBadField, m.name, typeName(v))
		}
	}
	return e, nil
}

// stringEqualsBody is stringEquals for the inside of a string (no quotes).
func stringEqualsBody(in []byte, want string) bool {
	if string(in) == want {
		return true
	}
	if len(in) <= len(want) || !hasBackslash(in) {
		return false
	}
	// An escaped form is always longer than what it stands for, so
	// unescaping one byte past len(want) is enough to decide.
	var tmp [32]byte
	return string(appendUnescaped(tmp[:0], in, len(want)+1)) == want
}

// IsNull reports whether raw (raw JSON, perhaps with surrounding whitespace)
// is the literal null.
func IsNull(raw []byte) bool {
	i := skipWS(raw, 0)
	if len(raw)-i < 4 || string(raw[i:i+4]) != "null" {
		return false
	}
	return skipWS(raw, i+4) == len(raw)
}

// syntaxError builds the error for a scan failure at offset i. Any invalid
// UTF-8 in the frame takes precedence over a syntax error.
func syntaxError(b []byte, i int, st status) error {
	if st == stUTF8 || !utf8.Valid(b) {
		return fmt.Errorf("%w: at offset %d", ErrInvalidUTF8, i)
	}
	if st == stDepth {
		return fmt.Errorf("%w (%w) at offset %d", ErrMalformed, ErrTooDeep, i)
	}
	if i >= len(b) {
		return fmt.Errorf("%w: unexpected end of input", ErrMalformed)
	}
	return fmt.Errorf("%w: unexpected %q at offset %d", ErrMalformed, b[i], i)
}

// Valid reports whether b is exactly one JSON value (surrounding whitespace
// allowed) with valid UTF-8, nested at most 512 deep. It is the decoder's
// scanner (about 1 GB/s, no allocation), several times faster than
// encoding/json.Valid.
func Valid(b []byte) bool {
	i := skipWS(b, 0)
	if i == len(b) {
		return false
	}
	e, st := skipValue(b, i, 0)
	return st == stOK && skipWS(b, e) == len(b)
}
