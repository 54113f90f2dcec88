// Package envelope is the wire codec of wsactor: it decodes and encodes the
// text frames of Primus 8 with the primus-responder 1.0.4 plugin, plus four
// wsactor extensions (timeout, error responses, cancel, traceparent) that JS
// peers ignore.
//
// Every frame is one JSON value in one WebSocket text frame:
//
//	kind            wire form (compact JSON, keys in this order)
//	--------------  -----------------------------------------------------------------------------
//	request         {"plugin":"primus-responder","requestId":<id>,"timeout":<ms>,"traceparent":"00-…","data":<any>}
//	response        {"plugin":"primus-responder","responseId":<id>,"data":<any>}
//	error response  {"plugin":"primus-responder","responseId":<id>,"error":{"code":"…","message":"…"}}
//	cancel          {"plugin":"primus-responder","cancelId":<id>}
//	control         "primus::ping::1795618408068"  (a JSON string; also pong, server::close, id)
//	data            any other JSON value except null
//
// <id> is a JSON string or number, echoed verbatim from request to
// response; ids made here are lower-case UUID v4 strings ([NewID]).
// An [ID] is a github.com/google/uuid [uuid.UUID]: [NewID] makes it with
// uuid.NewRandomFromReader over pooled, buffered crypto/rand readers, and
// [ParseID] reads a quoted reply id with uuid.ParseBytes. Only the JSON
// encoding is done here: [AppendID] appends the quoted form without
// allocating, which uuid.UUID's String and MarshalText do not. NewID
// allocates the 16 bytes of each id (they escape inside
// uuid.NewRandomFromReader) and costs about 90 ns on the reference box,
// against about 135 ns for uuid.New and 65 ns for the hand-written generator
// it replaced (BenchmarkNewID); within a request round trip the difference
// is in the noise.
// "data" is left out when it is undefined in JS (nil here); "timeout"
// (milliseconds the requester will wait) is left out when there is none.
// "traceparent" is a W3C Trace Context traceparent ([Traceparent]), left
// out when there is none; on decoding an invalid one is ignored (the
// request is still delivered), never an error.
// "timeout", "traceparent", "error" and "cancelId" are extensions: a JS
// primus-responder peer ignores the first three and silently swallows a
// cancel.
//
// Decoding follows the JS receiver: an object is an envelope only when its
// "plugin" is the string "primus-responder"; the kind is decided by the
// first JS-truthy id among requestId, responseId, cancelId (so a frame with
// both requestId and responseId is a request), and an envelope with no
// truthy id is [ErrMissingID] (JS swallows it silently). A top-level null,
// which crashes Node peers, is [ErrNull]. Invalid UTF-8 anywhere in the frame
// is [ErrInvalidUTF8]; nesting deeper than 512 is [ErrMalformed] and
// [ErrTooDeep], and for a request whose id could be read (before or after
// the deep value, which is then stepped over by bracket count) a
// [*RequestError] carrying the id, so that the request can be answered.
//
// The decoder is a hand-written validating scanner: it does not use
// reflection, keeps "data" as raw bytes aliasing the frame, and does not
// allocate for a typical request or response. Encoders append to a
// caller-owned buffer.
//
// # Concurrency
//
// The package starts no goroutines and keeps no state that callers can see:
// every function may be called from any goroutine at any time. [NewID] draws
// from an internal sync.Pool of bufio.Readers over crypto/rand.Reader: a
// bufio.Reader is not safe for concurrent use, so each is used by the one
// goroutine that took it from the pool until it is put back, never shared,
// and each id consumes its own 16 bytes of the buffer. Append functions write
// only to the dst they are given, which the caller owns. An [Envelope]
// aliases the frame it was decoded from; whoever owns that buffer owns the
// Envelope, and must copy ID/Data before reusing the buffer.
package envelope
