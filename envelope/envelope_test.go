package envelope_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/wsactor/wsactor/envelope"
)

// Literal frames from PRIMUS-WIRE.md §6.1, §6.2 and §6.3.
const (
	wireReqHello   = `{"plugin":"primus-responder","requestId":"08485eab-45bd-4758-bad1-7a0cfc047d0d","data":{"op":"hello"}}`
	wireReqAdd     = `{"plugin":"primus-responder","requestId":"126192ed-03b8-47aa-8f21-6e9ee84e0144","data":{"op":"add","a":1,"b":2}}`
	wireReqEcho    = `{"plugin":"primus-responder","requestId":"24841859-9a77-44a6-9aca-ead112236152","data":"echo me"}`
	wireReqNodata  = `{"plugin":"primus-responder","requestId":"c792bd88-9e76-41bd-9172-d53dab1bf059","data":{"op":"nodata"}}`
	wireIDAsk      = `"primus::id::"`
	wireRespAdd    = `{"plugin":"primus-responder","responseId":"126192ed-03b8-47aa-8f21-6e9ee84e0144","data":3}`
	wireRespEcho   = `{"plugin":"primus-responder","responseId":"24841859-9a77-44a6-9aca-ead112236152","data":"echo me"}`
	wireRespNodata = `{"plugin":"primus-responder","responseId":"c792bd88-9e76-41bd-9172-d53dab1bf059"}`
	wireIDReply    = `"primus::id::PnFvM6p-aj87kUD6uAZrM"`
	wireRespHello  = `{"plugin":"primus-responder","responseId":"08485eab-45bd-4758-bad1-7a0cfc047d0d","data":{"op":"hello"}}`
	wirePing       = `"primus::ping::1795618445153"`
	wirePong       = `"primus::pong::1795618445153"`
	wireRespZero   = `{"plugin":"primus-responder","responseId":"4fa44c58-3c21-469b-a7e6-5c2ae201228c","data":0}`
	wireReqEcho2   = `{"plugin":"primus-responder","requestId":"82ea22f9-eb03-4338-a250-8c61169a0ed9","data":{"op":"echo","i":1,"s":"req-1-é\u2028\"quoted\"","nested":{"list":[1,null,true,1.5],"obj":{"k":"v1"}}}}`
	wireRawAdd     = `{"plugin":"primus-responder","requestId":"r-add","data":{"op":"add","a":2,"b":40}}`
	wireRawAddResp = `{"plugin":"primus-responder","responseId":"r-add","data":42}`
	wireRawNodata  = `{"plugin":"primus-responder","requestId":"r-nodata-req"}`
	wireRawNull    = `{"plugin":"primus-responder","responseId":"r-null","data":null}`
	wireServerBye  = `"primus::server::close"`
)

// wireFrames are all the literal frames above plus the §6.3 probes.
var wireFrames = []string{
	wireReqHello, wireReqAdd, wireReqEcho, wireReqNodata, wireIDAsk, wireRespAdd, wireRespEcho,
	wireRespNodata, wireIDReply, wireRespHello, wirePing, wirePong, wireRespZero, wireReqEcho2,
	wireRawAdd, wireRawAddResp, wireRawNodata, wireRawNull, wireServerBye,
	`{"plugin":"primus-responder","requestId":"","data":1}`,
	`{"plugin":"primus-responder","responseId":"nobody-waits","data":1}`,
	`"plain string message"`, `42`, `[1,2]`, `primus::id::`, `"primus::pong::123"`,
	`"primus::whatever::x"`, `{not json`, "\x01\x02\xff", `null`,
	`{"last":true}`,
}

type want struct {
	kind    envelope.Kind
	id      string // raw
	data    *string
	err     *envelope.Error
	timeout int64
	control string
	fail    error
}

func s(v string) *string { return &v }

func TestDecode(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	deepObj := func(n int) string { return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) }
	huge := "1" + strings.Repeat("0", 400) + ".5e+99999999999999999999"
	tests := []struct {
		name string
		in   string
		want want
	}{
		// §6.1 / §6.2 captured frames.
		{"6.1 request hello", wireReqHello, want{kind: envelope.KindRequest, id: `"08485eab-45bd-4758-bad1-7a0cfc047d0d"`, data: s(`{"op":"hello"}`)}},
		{"6.1 request add", wireReqAdd, want{kind: envelope.KindRequest, id: `"126192ed-03b8-47aa-8f21-6e9ee84e0144"`, data: s(`{"op":"add","a":1,"b":2}`)}},
		{"6.1 request echo", wireReqEcho, want{kind: envelope.KindRequest, id: `"24841859-9a77-44a6-9aca-ead112236152"`, data: s(`"echo me"`)}},
		{"6.1 id ask", wireIDAsk, want{kind: envelope.KindControl, control: "primus::id::"}},
		{"6.1 response add", wireRespAdd, want{kind: envelope.KindResponse, id: `"126192ed-03b8-47aa-8f21-6e9ee84e0144"`, data: s(`3`)}},
		{"6.1 response no data", wireRespNodata, want{kind: envelope.KindResponse, id: `"c792bd88-9e76-41bd-9172-d53dab1bf059"`}},
		{"6.1 id reply", wireIDReply, want{kind: envelope.KindControl, control: "primus::id::PnFvM6p-aj87kUD6uAZrM"}},
		{"6.1 ping", wirePing, want{kind: envelope.KindControl, control: "primus::ping::1795618445153"}},
		{"6.1 pong", wirePong, want{kind: envelope.KindControl, control: "primus::pong::1795618445153"}},
		{"6.2 response zero", wireRespZero, want{kind: envelope.KindResponse, id: `"4fa44c58-3c21-469b-a7e6-5c2ae201228c"`, data: s(`0`)}},
		{"6.2 echo with escapes", wireReqEcho2, want{kind: envelope.KindRequest, id: `"82ea22f9-eb03-4338-a250-8c61169a0ed9"`,
			data: s(`{"op":"echo","i":1,"s":"req-1-é\u2028\"quoted\"","nested":{"list":[1,null,true,1.5],"obj":{"k":"v1"}}}`)}},
		{"4.3 server close", wireServerBye, want{kind: envelope.KindControl, control: "primus::server::close"}},
		{"4.3 last", `{"last":true}`, want{kind: envelope.KindData, data: s(`{"last":true}`)}},
		// §6.3 probes.
		{"6.3 add", wireRawAdd, want{kind: envelope.KindRequest, id: `"r-add"`, data: s(`{"op":"add","a":2,"b":40}`)}},
		{"6.3 add reply", wireRawAddResp, want{kind: envelope.KindResponse, id: `"r-add"`, data: s(`42`)}},
		{"6.3 request without data", wireRawNodata, want{kind: envelope.KindRequest, id: `"r-nodata-req"`}},
		{"6.3 data null", wireRawNull, want{kind: envelope.KindResponse, id: `"r-null"`, data: s(`null`)}},
		{"6.3 empty requestId", `{"plugin":"primus-responder","requestId":"","data":{"op":"add"}}`, want{fail: envelope.ErrMissingID}},
		{"6.3 response nobody waits", `{"plugin":"primus-responder","responseId":"nobody-waits","data":1}`, want{kind: envelope.KindResponse, id: `"nobody-waits"`, data: s(`1`)}},
		{"6.3 plain string", `"plain string message"`, want{kind: envelope.KindData, data: s(`"plain string message"`)}},
		{"6.3 number", `42`, want{kind: envelope.KindData, data: s(`42`)}},
		{"6.3 array", `[1,2]`, want{kind: envelope.KindData, data: s(`[1,2]`)}},
		{"6.3 unquoted control", `primus::id::`, want{fail: envelope.ErrMalformed}},
		{"6.3 pong 123", `"primus::pong::123"`, want{kind: envelope.KindControl, control: "primus::pong::123"}},
		{"6.3 unknown control", `"primus::whatever::x"`, want{kind: envelope.KindControl, control: "primus::whatever::x"}},
		{"6.3 not json", `{not json`, want{fail: envelope.ErrMalformed}},
		{"6.3 binary junk", "\x01\x02\xff", want{fail: envelope.ErrInvalidUTF8}},
		{"6.3 null", `null`, want{fail: envelope.ErrNull}},
		{"null with spaces", " \t\r\nnull\n", want{fail: envelope.ErrNull}},
		// §5.2 dispatch rules.
		{"number id", `{"plugin":"primus-responder","requestId":7,"data":1}`, want{kind: envelope.KindRequest, id: `7`, data: s(`1`)}},
		{"number response id", `{"plugin":"primus-responder","responseId":-1.5e3}`, want{kind: envelope.KindResponse, id: `-1.5e3`}},
		{"both ids = request", `{"plugin":"primus-responder","responseId":"b","requestId":"a"}`, want{kind: envelope.KindRequest, id: `"a"`}},
		{"falsy requestId, truthy responseId", `{"plugin":"primus-responder","requestId":0,"responseId":"b","data":2}`, want{kind: envelope.KindResponse, id: `"b"`, data: s(`2`)}},
		{"zero id", `{"plugin":"primus-responder","requestId":0}`, want{fail: envelope.ErrMissingID}},
		{"minus zero id", `{"plugin":"primus-responder","requestId":-0}`, want{fail: envelope.ErrMissingID}},
		{"0.0 id", `{"plugin":"primus-responder","requestId":0.0}`, want{fail: envelope.ErrMissingID}},
		{"0e5 id", `{"plugin":"primus-responder","requestId":0e5}`, want{fail: envelope.ErrMissingID}},
		{"-0.000E-7 id", `{"plugin":"primus-responder","requestId":-0.000E-7}`, want{fail: envelope.ErrMissingID}},
		{"underflow id is 0 in JS", `{"plugin":"primus-responder","requestId":1e-400}`, want{fail: envelope.ErrMissingID}},
		{"smallest denormal id", `{"plugin":"primus-responder","requestId":5e-324}`, want{kind: envelope.KindRequest, id: `5e-324`}},
		{"just under half denormal", `{"plugin":"primus-responder","requestId":2e-324}`, want{fail: envelope.ErrMissingID}},
		{"tiny but nonzero id", `{"plugin":"primus-responder","requestId":0.00001e-300}`, want{kind: envelope.KindRequest, id: `0.00001e-300`}},
		{"overflow id is Infinity", `{"plugin":"primus-responder","requestId":1e400}`, want{kind: envelope.KindRequest, id: `1e400`}},
		{"false id", `{"plugin":"primus-responder","requestId":false}`, want{fail: envelope.ErrMissingID}},
		{"null id", `{"plugin":"primus-responder","requestId":null}`, want{fail: envelope.ErrMissingID}},
		{"plugin only", `{"plugin":"primus-responder"}`, want{fail: envelope.ErrMissingID}},
		{"true id", `{"plugin":"primus-responder","requestId":true}`, want{fail: envelope.ErrBadID}},
		{"object id", `{"plugin":"primus-responder","responseId":{}}`, want{fail: envelope.ErrBadID}},
		{"array id", `{"plugin":"primus-responder","cancelId":[1]}`, want{fail: envelope.ErrBadID}},
		{"bad id after selected one is ignored", `{"plugin":"primus-responder","requestId":"a","responseId":true}`, want{kind: envelope.KindRequest, id: `"a"`}},
		{"long id", `{"plugin":"primus-responder","requestId":"` + strings.Repeat("x", envelope.MaxIDLen-1) + `"}`, want{fail: envelope.ErrBadID}},
		{"longest id", `{"plugin":"primus-responder","requestId":"` + strings.Repeat("x", envelope.MaxIDLen-2) + `"}`,
			want{kind: envelope.KindRequest, id: `"` + strings.Repeat("x", envelope.MaxIDLen-2) + `"`}},
		{"unknown plugin", `{"plugin":"other","requestId":"a"}`, want{kind: envelope.KindData, data: s(`{"plugin":"other","requestId":"a"}`)}},
		{"plugin not a string", `{"plugin":true,"requestId":"a"}`, want{kind: envelope.KindData, data: s(`{"plugin":true,"requestId":"a"}`)}},
		{"plugin case differs", `{"plugin":"Primus-Responder","requestId":"a"}`, want{kind: envelope.KindData, data: s(`{"plugin":"Primus-Responder","requestId":"a"}`)}},
		{"key case differs", `{"Plugin":"primus-responder","requestId":"a"}`, want{kind: envelope.KindData, data: s(`{"Plugin":"primus-responder","requestId":"a"}`)}},
		{"escaped plugin value", `{"plugin":"primus\u002dresponder","requestId":"a"}`, want{kind: envelope.KindRequest, id: `"a"`}},
		{"escaped keys", `{"pl\u0075gin":"primus-responder","re\u0071uestId":"a","\u0064ata":[]}`, want{kind: envelope.KindRequest, id: `"a"`, data: s(`[]`)}},
		{"escaped key that is not ours", `{"plugin":"primus-responder","requestId":"a","data\u0000":1}`, want{kind: envelope.KindRequest, id: `"a"`}},
		{"escaped id kept verbatim", `{"plugin":"primus-responder","responseId":"\u0061\/b"}`, want{kind: envelope.KindResponse, id: `"\u0061\/b"`}},
		{"duplicate keys: last wins", `{"plugin":"primus-responder","requestId":"a","data":1,"data":2,"requestId":"b"}`, want{kind: envelope.KindRequest, id: `"b"`, data: s(`2`)}},
		{"duplicate plugin: last wins", `{"plugin":"primus-responder","plugin":"x","requestId":"a"}`, want{kind: envelope.KindData, data: s(`{"plugin":"primus-responder","plugin":"x","requestId":"a"}`)}},
		{"duplicate id: last falsy wins", `{"plugin":"primus-responder","requestId":"a","requestId":""}`, want{fail: envelope.ErrMissingID}},
		{"double-encoded envelope is data", `"{\"plugin\":\"primus-responder\",\"requestId\":\"a\"}"`,
			want{kind: envelope.KindData, data: s(`"{\"plugin\":\"primus-responder\",\"requestId\":\"a\"}"`)}},
		{"envelope in array is data", `[{"plugin":"primus-responder","requestId":"a"}]`, want{kind: envelope.KindData, data: s(`[{"plugin":"primus-responder","requestId":"a"}]`)}},
		{"whitespace everywhere", " {\n\t\"plugin\" : \"primus-responder\" ,\r\n \"requestId\" : \"a\" , \"data\" : [ 1 , 2 ] } \n",
			want{kind: envelope.KindRequest, id: `"a"`, data: s(`[ 1 , 2 ]`)}},
		{"data with surrounding spaces", "  {\"a\" : 1}  ", want{kind: envelope.KindData, data: s(`{"a" : 1}`)}},
		{"empty object", `{}`, want{kind: envelope.KindData, data: s(`{}`)}},
		{"empty string", `""`, want{kind: envelope.KindData, data: s(`""`)}},
		{"true", `true`, want{kind: envelope.KindData, data: s(`true`)}},
		{"false", `false`, want{kind: envelope.KindData, data: s(`false`)}},
		{"huge number", huge, want{kind: envelope.KindData, data: s(huge)}},
		{"huge number id", `{"plugin":"primus-responder","requestId":` + huge + `}`, want{fail: envelope.ErrBadID}},
		// Control strings.
		{"escaped control", `"prim\u0075s::ping::1"`, want{kind: envelope.KindControl, control: "primus::ping::1"}},
		{"control with escapes later", `"primus::x::a\"b\n"`, want{kind: envelope.KindControl, control: "primus::x::a\"b\n"}},
		{"control with spaces", " \"primus::pong::1\"\n", want{kind: envelope.KindControl, control: "primus::pong::1"}},
		{"short primus", `"primus:"`, want{kind: envelope.KindData, data: s(`"primus:"`)}},
		{"primus without colons", `"primus"`, want{kind: envelope.KindData, data: s(`"primus"`)}},
		{"control prefix exact", `"primus::"`, want{kind: envelope.KindControl, control: "primus::"}},
		// Extensions.
		{"timeout", `{"plugin":"primus-responder","requestId":"a","timeout":1500,"data":1}`, want{kind: envelope.KindRequest, id: `"a"`, data: s(`1`), timeout: 1500}},
		{"timeout zero", `{"plugin":"primus-responder","requestId":"a","timeout":0}`, want{kind: envelope.KindRequest, id: `"a"`}},
		{"timeout null", `{"plugin":"primus-responder","requestId":"a","timeout":null}`, want{kind: envelope.KindRequest, id: `"a"`}},
		{"timeout minus zero", `{"plugin":"primus-responder","requestId":"a","timeout":-0.0}`, want{kind: envelope.KindRequest, id: `"a"`}},
		{"timeout fraction rounds up", `{"plugin":"primus-responder","requestId":"a","timeout":0.25}`, want{kind: envelope.KindRequest, id: `"a"`, timeout: 1}},
		{"timeout exponent", `{"plugin":"primus-responder","requestId":"a","timeout":1.5e3}`, want{kind: envelope.KindRequest, id: `"a"`, timeout: 1500}},
		{"timeout huge clamps", `{"plugin":"primus-responder","requestId":"a","timeout":1e300}`, want{kind: envelope.KindRequest, id: `"a"`, timeout: 1<<63 - 1}},
		{"timeout long integer", `{"plugin":"primus-responder","requestId":"a","timeout":12345678901234567890}`, want{kind: envelope.KindRequest, id: `"a"`, timeout: 1<<63 - 1}},
		{"timeout underflows to 0", `{"plugin":"primus-responder","requestId":"a","timeout":1e-400}`, want{kind: envelope.KindRequest, id: `"a"`}},
		{"timeout negative underflows to 0", `{"plugin":"primus-responder","requestId":"a","timeout":-1e-400}`, want{kind: envelope.KindRequest, id: `"a"`}},
		{"timeout negative", `{"plugin":"primus-responder","requestId":"a","timeout":-1}`, want{fail: envelope.ErrBadField}},
		{"timeout string", `{"plugin":"primus-responder","requestId":"a","timeout":"5"}`, want{fail: envelope.ErrBadField}},
		{"timeout ignored on response", `{"plugin":"primus-responder","responseId":"a","timeout":"x"}`, want{kind: envelope.KindResponse, id: `"a"`}},
		{"error response", `{"plugin":"primus-responder","responseId":"a","error":{"code":"E_X","message":"boom \"q\""}}`,
			want{kind: envelope.KindResponse, id: `"a"`, err: &envelope.Error{Code: "E_X", Message: `boom "q"`}}},
		{"error response with data", `{"plugin":"primus-responder","responseId":"a","error":{"message":"m","extra":[1,{}],"code":null},"data":5}`,
			want{kind: envelope.KindResponse, id: `"a"`, data: s(`5`), err: &envelope.Error{Message: "m"}}},
		{"error empty object", `{"plugin":"primus-responder","responseId":"a","error":{ }}`, want{kind: envelope.KindResponse, id: `"a"`, err: &envelope.Error{}}},
		{"error escaped keys", `{"plugin":"primus-responder","responseId":"a","error":{"\u0063ode":"c","mess\u0061ge":"\u00e9"}}`,
			want{kind: envelope.KindResponse, id: `"a"`, err: &envelope.Error{Code: "c", Message: "é"}}},
		{"error null", `{"plugin":"primus-responder","responseId":"a","error":null}`, want{kind: envelope.KindResponse, id: `"a"`}},
		{"error string", `{"plugin":"primus-responder","responseId":"a","error":"boom"}`, want{fail: envelope.ErrBadField}},
		{"error code number", `{"plugin":"primus-responder","responseId":"a","error":{"code":5}}`, want{fail: envelope.ErrBadField}},
		{"error message object", `{"plugin":"primus-responder","responseId":"a","error":{"message":{}}}`, want{fail: envelope.ErrBadField}},
		{"error ignored on request", `{"plugin":"primus-responder","requestId":"a","error":1}`, want{kind: envelope.KindRequest, id: `"a"`}},
		{"cancel", `{"plugin":"primus-responder","cancelId":"c","data":1}`, want{kind: envelope.KindCancel, id: `"c"`}},
		{"cancel number", `{"plugin":"primus-responder","cancelId":12}`, want{kind: envelope.KindCancel, id: `12`}},
		{"responseId beats cancelId", `{"plugin":"primus-responder","cancelId":"c","responseId":"r"}`, want{kind: envelope.KindResponse, id: `"r"`}},
		{"empty cancelId", `{"plugin":"primus-responder","cancelId":""}`, want{fail: envelope.ErrMissingID}},
		// Errors.
		{"empty", ``, want{fail: envelope.ErrEmpty}},
		{"whitespace only", " \t\r\n ", want{fail: envelope.ErrEmpty}},
		{"trailing garbage", `{"a":1}x`, want{fail: envelope.ErrMalformed}},
		{"two values", `1 2`, want{fail: envelope.ErrMalformed}},
		{"trailing garbage after envelope", wireReqHello + `}`, want{fail: envelope.ErrMalformed}},
		{"truncated envelope", wireReqHello[:len(wireReqHello)-1], want{fail: envelope.ErrMalformed}},
		{"trailing comma", `{"a":1,}`, want{fail: envelope.ErrMalformed}},
		{"trailing comma array", `[1,]`, want{fail: envelope.ErrMalformed}},
		{"single quotes", `{'a':1}`, want{fail: envelope.ErrMalformed}},
		{"bad escape", `"\x"`, want{fail: envelope.ErrMalformed}},
		{"bad unicode escape", `"\u12g4"`, want{fail: envelope.ErrMalformed}},
		{"short unicode escape", `"\u12"`, want{fail: envelope.ErrMalformed}},
		{"control char in string", "\"a\x01b\"", want{fail: envelope.ErrMalformed}},
		{"newline in string", "\"a\nb\"", want{fail: envelope.ErrMalformed}},
		{"unterminated string", `"abc`, want{fail: envelope.ErrMalformed}},
		{"leading zero", `01`, want{fail: envelope.ErrMalformed}},
		{"bare minus", `-`, want{fail: envelope.ErrMalformed}},
		{"dot without digits", `1.`, want{fail: envelope.ErrMalformed}},
		{"exponent without digits", `1e+`, want{fail: envelope.ErrMalformed}},
		{"plus sign", `+1`, want{fail: envelope.ErrMalformed}},
		{"NaN", `NaN`, want{fail: envelope.ErrMalformed}},
		{"truncated literal", `tru`, want{fail: envelope.ErrMalformed}},
		{"literal with suffix", `nullx`, want{fail: envelope.ErrMalformed}},
		{"mismatched brackets", `[1}`, want{fail: envelope.ErrMalformed}},
		{"missing colon", `{"a" 1}`, want{fail: envelope.ErrMalformed}},
		{"non-string key", `{1:1}`, want{fail: envelope.ErrMalformed}},
		{"malformed data inside envelope", `{"plugin":"primus-responder","requestId":"a","data":[1,}`, want{fail: envelope.ErrMalformed}},
		{"NUL byte", "\x00", want{fail: envelope.ErrMalformed}},
		{"BOM", "\ufeff{}", want{fail: envelope.ErrMalformed}},
		{"depth 512 ok", deep(512), want{kind: envelope.KindData, data: s(deep(512))}},
		{"depth 513", deep(513), want{fail: envelope.ErrMalformed}},
		{"object depth 512 ok", deepObj(512), want{kind: envelope.KindData, data: s(deepObj(512))}},
		{"object depth 513", deepObj(513), want{fail: envelope.ErrMalformed}},
		{"deep data inside envelope", `{"plugin":"primus-responder","requestId":"a","data":` + deep(511) + `}`,
			want{kind: envelope.KindRequest, id: `"a"`, data: s(deep(511))}},
		{"too deep data inside envelope", `{"plugin":"primus-responder","requestId":"a","data":` + deep(512) + `}`, want{fail: envelope.ErrMalformed}},
		{"very deep", deep(100000), want{fail: envelope.ErrMalformed}},
		{"invalid UTF-8 in string", "\"a\xffb\"", want{fail: envelope.ErrInvalidUTF8}},
		{"invalid UTF-8 in data", `{"plugin":"primus-responder","requestId":"a","data":"` + "\xc3\x28" + `"}`, want{fail: envelope.ErrInvalidUTF8}},
		{"invalid UTF-8 in key", "{\"\xed\xa0\x80\":1}", want{fail: envelope.ErrInvalidUTF8}},
		{"invalid UTF-8 after syntax error", "{x \xff", want{fail: envelope.ErrInvalidUTF8}},
		{"truncated UTF-8 at end", "\"\xe2\x82", want{fail: envelope.ErrInvalidUTF8}},
		{"non-ASCII outside string", "é", want{fail: envelope.ErrMalformed}},
		{"valid UTF-8 in strings", `{"é":"日本語 🎉"}`, want{kind: envelope.KindData, data: s(`{"é":"日本語 🎉"}`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := envelope.Decode([]byte(tt.in))
			if tt.want.fail != nil {
				if !errors.Is(err, tt.want.fail) {
					t.Fatalf("Decode(%.80q) error = %v, want %v (env %+v)", tt.in, err, tt.want.fail, got)
				}
				if got.Kind != 0 {
					t.Errorf("Decode(%.80q) failed but returned Kind %v", tt.in, got.Kind)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode(%.80q) unexpected error %v", tt.in, err)
			}
			checkEnv(t, got, tt.want)
		})
	}
}

func checkEnv(t *testing.T, got envelope.Envelope, w want) {
	t.Helper()
	if got.Kind != w.kind {
		t.Errorf("Kind = %v, want %v", got.Kind, w.kind)
	}
	if string(got.ID) != w.id {
		t.Errorf("ID = %q, want %q", got.ID, w.id)
	}
	switch {
	case w.data == nil && got.Data != nil:
		t.Errorf("Data = %q, want nil", got.Data)
	case w.data != nil && (got.Data == nil || string(got.Data) != *w.data):
		t.Errorf("Data = %.80q, want %.80q", got.Data, *w.data)
	}
	switch {
	case w.err == nil && got.Err != nil:
		t.Errorf("Err = %+v, want nil", *got.Err)
	case w.err != nil && (got.Err == nil || *got.Err != *w.err):
		t.Errorf("Err = %+v, want %+v", got.Err, *w.err)
	}
	if got.Timeout != w.timeout {
		t.Errorf("Timeout = %d, want %d", got.Timeout, w.timeout)
	}
	if got.Control != w.control {
		t.Errorf("Control = %q, want %q", got.Control, w.control)
	}
}

func TestDecodeErrorsHaveDetail(t *testing.T) {
	for _, in := range []string{`{"a":1}x`, "\"\xff\"", `{"plugin":"primus-responder","requestId":true}`,
		`{"plugin":"primus-responder"}`, `{"plugin":"primus-responder","requestId":"a","timeout":-5}`} {
		_, err := envelope.Decode([]byte(in))
		if err == nil || !strings.HasPrefix(err.Error(), "envelope: ") || !strings.Contains(err.Error(), ": ") {
			t.Errorf("Decode(%q) error %q: want an \"envelope: …\" error", in, err)
		}
	}
}

func TestDecodeAliasesInput(t *testing.T) {
	b := []byte(wireReqHello)
	env, err := envelope.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if &env.Data[0] != &b[bytes.Index(b, []byte(`{"op"`))] {
		t.Error("Data does not alias the input")
	}
	if &env.ID[0] != &b[bytes.Index(b, []byte(`"08485eab`))] {
		t.Error("ID does not alias the input")
	}
}

// TestDecodeAllocs checks that typical request/response frames decode
// without allocating.
func TestDecodeAllocs(t *testing.T) {
	for _, in := range []string{wireReqHello, wireReqEcho2, wireRespAdd, wireRespNodata, wireRawNull, wireRawAdd,
		`{"plugin":"primus-responder","requestId":7,"timeout":5000,"data":[1,2,3]}`,
		`{"plugin":"primus-responder","cancelId":"08485eab-45bd-4758-bad1-7a0cfc047d0d"}`,
		`{"plugin":"other","x":1}`, `[1,2,3]`, `"plain"`, `"prim\u0075s"`,
		`{"pl\u0075gin":"primus\u002dresponder","re\u0071uestId":"a","\u0064ata":1,"\u00e9\u00e9\u00e9\u00e9\u00e9":2}`} {
		b := []byte(in)
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := envelope.Decode(b); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("Decode(%.60q) allocates %.1f times per run, want 0", in, allocs)
		}
	}
}

func TestKindString(t *testing.T) {
	for k, w := range map[envelope.Kind]string{
		0: "Kind(0)", envelope.KindData: "data", envelope.KindRequest: "request", envelope.KindResponse: "response",
		envelope.KindCancel: "cancel", envelope.KindControl: "control", 200: "Kind(200)",
	} {
		if got := k.String(); got != w {
			t.Errorf("Kind(%d).String() = %q, want %q", uint8(k), got, w)
		}
	}
}

func TestIsNull(t *testing.T) {
	for in, w := range map[string]bool{
		"null": true, " null ": true, "\n\tnull\r": true, "": false, "nul": false, "nulll": false,
		"null x": false, `"null"`: false, "0": false, "Null": false, "xnull": false,
	} {
		if got := envelope.IsNull([]byte(in)); got != w {
			t.Errorf("IsNull(%q) = %v, want %v", in, got, w)
		}
	}
}

func TestAppend(t *testing.T) {
	id := []byte(`"08485eab-45bd-4758-bad1-7a0cfc047d0d"`)
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"request", envelope.AppendRequest(nil, id, []byte(`{"op":"hello"}`), 0), wireReqHello},
		{"request no data", envelope.AppendRequest(nil, []byte(`"r-nodata-req"`), nil, 0), wireRawNodata},
		{"request empty data", envelope.AppendRequest(nil, []byte(`"r-nodata-req"`), []byte{}, -1), wireRawNodata},
		{"request timeout", envelope.AppendRequest(nil, []byte(`7`), []byte(`null`), 5000),
			`{"plugin":"primus-responder","requestId":7,"timeout":5000,"data":null}`},
		{"request timeout no data", envelope.AppendRequest(nil, []byte(`"a"`), nil, 1),
			`{"plugin":"primus-responder","requestId":"a","timeout":1}`},
		{"response", envelope.AppendResponse(nil, id, []byte(`{"op":"hello"}`)), wireRespHello},
		{"response no data", envelope.AppendResponse(nil, []byte(`"c792bd88-9e76-41bd-9172-d53dab1bf059"`), nil), wireRespNodata},
		{"response null", envelope.AppendResponse(nil, []byte(`"r-null"`), []byte(`null`)), wireRawNull},
		{"error response", envelope.AppendErrorResponse(nil, []byte(`"a"`), envelope.Error{Code: "E_TIMEOUT", Message: "took \"too\" long\n"}),
			`{"plugin":"primus-responder","responseId":"a","error":{"code":"E_TIMEOUT","message":"took \"too\" long\n"}}`},
		{"error response empty", envelope.AppendErrorResponse(nil, []byte(`1`), envelope.Error{}),
			`{"plugin":"primus-responder","responseId":1,"error":{"code":"","message":""}}`},
		{"cancel", envelope.AppendCancel(nil, []byte(`"c"`)), `{"plugin":"primus-responder","cancelId":"c"}`},
		{"control", envelope.AppendControl(nil, "primus::pong::123"), `"primus::pong::123"`},
		{"appends", envelope.AppendCancel([]byte("xy"), []byte(`1`)), `xy{"plugin":"primus-responder","cancelId":1}`},
	}
	for _, tt := range tests {
		if string(tt.got) != tt.want {
			t.Errorf("%s: got\n%s\nwant\n%s", tt.name, tt.got, tt.want)
		}
		if tt.name != "appends" && !json.Valid(tt.got) {
			t.Errorf("%s: not valid JSON: %s", tt.name, tt.got)
		}
	}
}

func TestAppendAllocs(t *testing.T) {
	buf := make([]byte, 0, 512)
	id := envelope.NewID()
	data := []byte(`{"op":"add","a":1,"b":2}`)
	allocs := testing.AllocsPerRun(100, func() {
		var idb [38]byte
		raw := envelope.AppendID(idb[:0], id)
		buf = envelope.AppendRequest(buf[:0], raw, data, 5000)
		buf = envelope.AppendResponse(buf[:0], raw, data)
		buf = envelope.AppendErrorResponse(buf[:0], raw, envelope.Error{Code: "x", Message: "y\n"})
		buf = envelope.AppendCancel(buf[:0], raw)
		buf = envelope.AppendControl(buf[:0], "primus::pong::1795618445153")
	})
	if allocs != 0 {
		t.Errorf("Append* with room allocate %.1f times, want 0", allocs)
	}
}

func TestAppendString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `""`},
		{"plain", `"plain"`},
		{`q"b\`, `"q\"b\\"`},
		{"\b\f\n\r\t\x00\x1f\x7f", `"\b\f\n\r\t\u0000\u001f` + "\x7f" + `"`},
		{"<>&/", `"<>&/"`},
		{"é日🎉", `"é日🎉"`},
		{"a\u2028b\u2029c", `"a\u2028b\u2029c"`},
		{"a\xffb", `"a\ufffdb"`},
		{"\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`}, // encoded surrogate: 3 invalid bytes
		{"\xe2\x82", `"\ufffd\ufffd"`},
		{"primus::ping::1795618445153", `"primus::ping::1795618445153"`},
	}
	for _, tt := range tests {
		if got := string(envelope.AppendString(nil, tt.in)); got != tt.want {
			t.Errorf("AppendString(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func ExampleDecode() {
	frame := []byte(`{"plugin":"primus-responder","requestId":"126192ed-03b8-47aa-8f21-6e9ee84e0144","data":{"op":"add","a":1,"b":2}}`)
	env, err := envelope.Decode(frame)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(env.Kind, string(env.ID), string(env.Data))

	env, _ = envelope.Decode([]byte(`"primus::ping::1795618445153"`))
	fmt.Println(env.Kind, env.Control)

	_, err = envelope.Decode([]byte(`null`))
	fmt.Println(errors.Is(err, envelope.ErrNull))
	// Output:
	// request "126192ed-03b8-47aa-8f21-6e9ee84e0144" {"op":"add","a":1,"b":2}
	// control primus::ping::1795618445153
	// true
}

func ExampleAppendRequest() {
	id, _ := envelope.ParseID([]byte(`"126192ed-03b8-47aa-8f21-6e9ee84e0144"`))
	var buf []byte
	buf = envelope.AppendRequest(buf[:0], envelope.AppendID(nil, id), []byte(`{"op":"add","a":1,"b":2}`), 5000)
	fmt.Println(string(buf))
	buf = envelope.AppendResponse(buf[:0], []byte(`7`), nil)
	fmt.Println(string(buf))
	// Output:
	// {"plugin":"primus-responder","requestId":"126192ed-03b8-47aa-8f21-6e9ee84e0144","timeout":5000,"data":{"op":"add","a":1,"b":2}}
	// {"plugin":"primus-responder","responseId":7}
}

func TestTraceparent(t *testing.T) {
	const tid, pid = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	for _, c := range []struct {
		in, want string // want "" = invalid
	}{
		{"00-" + tid + "-" + pid + "-01", "00-" + tid + "-" + pid + "-01"},
		{"00-" + tid + "-" + pid + "-00", "00-" + tid + "-" + pid + "-00"},
		{"00-" + tid + "-" + pid + "-01-", ""},                                       // 00 is exactly 55 long
		{"01-" + tid + "-" + pid + "-01-what-ever", "01-" + tid + "-" + pid + "-01"}, // later versions: the shared prefix
		{"01-" + tid + "-" + pid + "-01x", ""},
		{"ff-" + tid + "-" + pid + "-01", ""},
		{"00-" + strings.ToUpper(tid) + "-" + pid + "-01", ""},
		{"00-00000000000000000000000000000000-" + pid + "-01", ""},
		{"00-" + tid + "-0000000000000000-01", ""},
		{"00-" + tid + "-" + pid + "-0g", ""},
		{"00_" + tid + "-" + pid + "-01", ""},
		{"00-" + tid + pid + "--01", ""},
		{"00-" + tid + "-" + pid, ""},
		{"", ""},
	} {
		got, ok := envelope.Traceparent(c.in)
		if ok != (c.want != "") || got != c.want {
			t.Errorf("Traceparent(%q) = %q, %v; want %q", c.in, got, ok, c.want)
		}
		gotb, okb := envelope.Traceparent([]byte(c.in))
		if okb != ok || string(gotb) != got {
			t.Errorf("Traceparent([]byte(%q)) = %q, %v; the string form says %q, %v", c.in, gotb, okb, got, ok)
		}
		// On the wire: a valid one is kept, an invalid one ignored, and
		// the request delivered either way.
		frame := `{"plugin":"primus-responder","requestId":"r","traceparent":"` + c.in + `","data":1}`
		env, err := envelope.Decode([]byte(frame))
		if err != nil || env.Kind != envelope.KindRequest || string(env.Data) != "1" || string(env.Traceparent) != c.want {
			t.Errorf("Decode(%s) = %+v, %v; want a request with Traceparent %q", frame, env, err, c.want)
		}
		out := envelope.AppendTracedRequest(nil, []byte(`"r"`), []byte("1"), 0, []byte(c.in))
		if c.want == "" && strings.Contains(string(out), "traceparent") {
			t.Errorf("AppendTracedRequest wrote the invalid traceparent %q: %s", c.in, out)
		}
	}
	for _, frame := range []string{
		`{"plugin":"primus-responder","requestId":"r","traceparent":7}`,
		`{"plugin":"primus-responder","requestId":"r","traceparent":null}`,
		`{"plugin":"primus-responder","requestId":"r","traceparent":["00-` + tid + `-` + pid + `-01"]}`,
	} {
		if env, err := envelope.Decode([]byte(frame)); err != nil || env.Kind != envelope.KindRequest || env.Traceparent != nil {
			t.Errorf("Decode(%s) = %+v, %v; want a request without Traceparent", frame, env, err)
		}
	}
	// Not on responses and cancels.
	frame := `{"plugin":"primus-responder","responseId":"r","traceparent":"00-` + tid + `-` + pid + `-01"}`
	if env, err := envelope.Decode([]byte(frame)); err != nil || env.Traceparent != nil {
		t.Errorf("Decode(%s) = %+v, %v; want no Traceparent on a response", frame, env, err)
	}
	want := `{"plugin":"primus-responder","requestId":"r","timeout":5,"traceparent":"00-` + tid + `-` + pid + `-01","data":{}}`
	if got := envelope.AppendTracedRequest(nil, []byte(`"r"`), []byte("{}"), 5, []byte("00-"+tid+"-"+pid+"-01")); string(got) != want {
		t.Errorf("AppendTracedRequest = %s, want %s", got, want)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = envelope.Traceparent("00-" + tid + "-" + pid + "-01") }); n != 0 {
		t.Errorf("Traceparent allocates %v times", n)
	}
}
