package envelope

import (
	"strconv"
	"unicode/utf8"
)

const (
	headRequest  = `{"plugin":"primus-responder","requestId":`
	headResponse = `{"plugin":"primus-responder","responseId":`
	headCancel   = `{"plugin":"primus-responder","cancelId":`
)

// AppendRequest appends a request envelope to dst and returns the extended
// slice:
//
//	{"plugin":"primus-responder","requestId":<id>,"timeout":<timeoutMs>,"data":<data>}
//
// id and data are raw JSON that the caller vouches for (they are copied as
// they are). "data" is left out when data is nil or empty (JS undefined);
// "timeout" is left out when timeoutMs <= 0.
func AppendRequest(dst, id, data []byte, timeoutMs int64) []byte {
	dst = appendRequestHead(dst, id, timeoutMs)
	return appendData(dst, data)
}

// AppendTracedRequest is [AppendRequest] with the extension "traceparent"
// (a W3C Trace Context traceparent, see [Traceparent]) before "data":
//
//	{"plugin":"primus-responder","requestId":<id>,"timeout":<ms>,"traceparent":"00-…-…-01","data":<data>}
//
// traceparent is checked: when it is empty or not valid the key is left
// out, so that an invalid one never reaches the wire. A JS
// primus-responder peer ignores the key.
func AppendTracedRequest(dst, id, data []byte, timeoutMs int64, traceparent []byte) []byte {
	dst = appendRequestHead(dst, id, timeoutMs)
	if tp, ok := Traceparent(traceparent); ok {
		dst = append(dst, `,"traceparent":"`...)
		dst = append(dst, tp...)
		dst = append(dst, '"')
	}
	return appendData(dst, data)
}

func appendRequestHead(dst, id []byte, timeoutMs int64) []byte {
	dst = append(dst, headRequest...)
	dst = append(dst, id...)
	if timeoutMs > 0 {
		dst = append(dst, `,"timeout":`...)
		dst = strconv.AppendInt(dst, timeoutMs, 10)
	}
	return dst
}

// AppendResponse appends a response envelope to dst and returns the
// extended slice:
//
//	{"plugin":"primus-responder","responseId":<id>,"data":<data>}
//
// id and data are raw JSON that the caller vouches for. "data" is left out
// when data is nil or empty.
func AppendResponse(dst, id, data []byte) []byte {
	dst = append(dst, headResponse...)
	dst = append(dst, id...)
	return appendData(dst, data)
}

func appendData(dst, data []byte) []byte {
	if len(data) != 0 {
		dst = append(dst, `,"data":`...)
		dst = append(dst, data...)
	}
	return append(dst, '}')
}

// AppendErrorResponse appends an error response (extension) to dst and
// returns the extended slice:
//
//	{"plugin":"primus-responder","responseId":<id>,"error":{"code":"…","message":"…"}}
//
// id is raw JSON that the caller vouches for; Code and Message are encoded
// as with [AppendString]. A JS primus-responder peer sees a response whose
// data is undefined.
func AppendErrorResponse(dst, id []byte, e Error) []byte {
	dst = append(dst, headResponse...)
	dst = append(dst, id...)
	dst = append(dst, `,"error":{"code":`...)
	dst = AppendString(dst, e.Code)
	dst = append(dst, `,"message":`...)
	dst = AppendString(dst, e.Message)
	return append(dst, "}}"...)
}

// AppendCancel appends a cancel envelope (extension) to dst and returns the
// extended slice:
//
//	{"plugin":"primus-responder","cancelId":<id>}
//
// id is raw JSON that the caller vouches for. JS primus-responder peers
// swallow it silently.
func AppendCancel(dst, id []byte) []byte {
	dst = append(dst, headCancel...)
	dst = append(dst, id...)
	return append(dst, '}')
}

// AppendControl appends the Primus control message s (e.g.
// "primus::pong::123") to dst as a JSON string; it is [AppendString].
func AppendControl(dst []byte, s string) []byte {
	return AppendString(dst, s)
}

const hexDigits = "0123456789abcdef"

// AppendString appends s to dst as a JSON string literal and returns the
// extended slice. It escapes '"', '\\' and control characters (\b \f \n \r
// \t, else \u00XX, like JSON.stringify), and U+2028/U+2029 as \u2028/\u2029
// (like Primus). Other characters, '<', '>' and '&' included, are copied as
// they are. Each byte of invalid UTF-8 becomes \ufffd.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if strPlain[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
