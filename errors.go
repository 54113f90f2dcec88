package wsactor

import (
	"errors"
	"strings"

	"github.com/wsactor/wsactor/actor"
	"github.com/wsactor/wsactor/conn"
	"github.com/wsactor/wsactor/envelope"
	"github.com/wsactor/wsactor/supervisor"
)

// Errors
//
// Every error this package returns or reports reads "wsactor: …" and
// matches one of the sentinels below with errors.Is (a [*RemoteError] is
// matched with errors.As; the failure it wraps, a [*CloseError] or a
// [*PanicError], too). The sentinels that stand for an error of a lower
// package (actor, conn, envelope, supervisor) also match it:
// errors.Is(wsactor.ErrTimeout, actor.ErrTimeout) holds, so code written
// against those packages keeps working.

// How a request can end, besides a reply. Test with errors.Is (and
// errors.As for [*RemoteError]). Every request ends in exactly one of them.
var (
	// ErrTimeout: no reply within the request timeout or before ctx's
	// deadline. errors.Is(err, context.DeadlineExceeded) is true too.
	ErrTimeout = lower("wsactor: request timed out", actor.ErrTimeout)
	// ErrCanceled: ctx was cancelled; the error also wraps context.Canceled
	// (or the ctx's cause).
	ErrCanceled = lower("wsactor: request canceled", actor.ErrCanceled)
	// ErrConnLost: the connection ended while the request was pending. It
	// wraps why: a [*CloseError] with the peer's close code, [ErrHeartbeat],
	// [ErrWriteTimeout], [ErrServerEnded], a network error, …
	ErrConnLost = lower("wsactor: connection lost", actor.ErrConnLost)
	// ErrRestarted: the connection's actor restarted after a failure (a panic
	// in user code); it wraps that failure.
	ErrRestarted = lower("wsactor: restarted", actor.ErrRestarted)
	// ErrShutdown: the server or client is shutting down.
	//
	// On the side that shuts down ([Server.Shutdown], [Client.Shutdown]),
	// its own requests that are refused or cut off fail with ErrShutdown,
	// and its handlers' ctx ends. The peer's requests that were refused or
	// cut off are answered with an error reply of code [CodeShutdown]: the
	// peer gets a [*RemoteError] with that code, which matches ErrShutdown
	// too. Requests of the peer still pending when the connection closes
	// (1001, "going away") fail there with [ErrConnLost].
	ErrShutdown = lower("wsactor: shutting down", actor.ErrShutdown)
	// ErrClosed: the connection or client was already closed ([Conn.Send],
	// [Conn.Request] after the end, [Client] calls after [Client.Close]),
	// or closed on purpose by this side while the request was pending.
	ErrClosed = lower("wsactor: closed", actor.ErrClosed)
	// ErrTooManyPending: the cap on requests in flight on the connection
	// ([WithMaxPending]) was reached; nothing was sent.
	ErrTooManyPending = lower("wsactor: too many pending requests", actor.ErrTooManyPending)
	// ErrSelfRequest: an inline handler ([WithInlineHandlers]) called
	// [Conn.Request] on its own connection with its ctx (or one derived from
	// it); the call would have waited for itself. Nothing was sent.
	ErrSelfRequest = lower("wsactor: Request from an inline handler on its own connection would wait for itself", actor.ErrSelfRequest)
	// ErrMailboxFull: [Conn.Go] found the actor's mailbox full; nothing was
	// sent.
	ErrMailboxFull = lower("wsactor: mailbox full", actor.ErrMailboxFull)
	// ErrWriteQueueFull: the connection's outbound queue is over
	// [WithMaxOutboundBytes] (a slow reader); nothing was sent.
	ErrWriteQueueFull = lower("wsactor: write queue full", conn.ErrWriteQueueFull)
	// ErrWriteTimeout: a socket write blocked longer than [WithWriteTimeout]
	// (a stalled reader); the connection was closed.
	ErrWriteTimeout = lower("wsactor: write timed out", conn.ErrWriteTimeout)
	// ErrHeartbeat: no heartbeat from the peer in time; the connection was
	// closed.
	ErrHeartbeat = lower("wsactor: heartbeat missed", conn.ErrHeartbeat)
	// ErrTooLarge: the message is over [WithMaxMessageSize]. As bad input
	// (an incoming frame over it) the connection is closed with 1009.
	ErrTooLarge = lower("wsactor: message too large", conn.ErrTooLarge)
	// ErrFrameTimeout: the peer began a message and did not complete it
	// within [WithFrameTimeout]; the connection was dropped.
	ErrFrameTimeout = lower("wsactor: message not completed in time", conn.ErrFrameTimeout)
	// ErrTooManyRestarts: a connection's actor failed more often than
	// [WithRestartIntensity] allows, or a client could not reconnect within
	// its restart window. It wraps the last failure.
	ErrTooManyRestarts = lower("wsactor: too many restarts", supervisor.ErrTooManyRestarts)
	// ErrNotConnected: a [Client] is between connections and the call could
	// not wait ([Client.Go], [Client.Send]).
	ErrNotConnected = errors.New("wsactor: not connected")
	// ErrNullMessage: a top-level JSON null cannot be sent as a message (it
	// crashes Node Primus peers).
	ErrNullMessage = errors.New("wsactor: a null message cannot be sent")
	// ErrServerEnded: the server closed the connection on purpose
	// ("primus::server::close"); a client does not reconnect after it.
	ErrServerEnded = lower("wsactor: server ended the connection", conn.ErrServerEnded)
	// ErrDial: a connection attempt of [Dial] or of a reconnecting [Client]
	// failed: a bad URL, the TCP connect, TLS, or the WebSocket handshake
	// (refused, or not done within [WithDialTimeout]: then the error also
	// matches context.DeadlineExceeded). It wraps the cause.
	ErrDial = errors.New("wsactor: cannot connect")
	// ErrInvalidOption: an option given to [NewServer] or [Dial] is out of
	// range or belongs to the other one. Nothing was started and no network
	// I/O was done.
	ErrInvalidOption = errors.New("wsactor: invalid option")
	// ErrInvalidArgument: a call was given an argument it cannot use (a nil
	// callback for [Conn.Go]). Nothing was sent.
	ErrInvalidArgument = errors.New("wsactor: invalid argument")
	// ErrEncode: a value to send could not be encoded as JSON (it wraps
	// encoding/json's error). Nothing was sent.
	ErrEncode = errors.New("wsactor: cannot encode")
	// ErrDecode: [Request.Decode] or [Response.Decode] could not decode
	// "data" into the value given (it wraps encoding/json's error), or the
	// peer left "data" out.
	ErrDecode = errors.New("wsactor: cannot decode")
)

// RemoteError is a failure reported by the peer in an error reply
// (errors.As). Return one from a [RequestHandler] to choose the code and
// message sent.
//
//   - Code: one of the Code constants (the peer is a wsactor side) or a
//     code of the peer's own; "error" ([CodeError]) when the peer's handler
//     returned a plain error.
//   - Message: the peer's message; for a plain handler error, its Error().
//
// Error reads "wsactor: remote error: <message>" for [CodeError] and
// "wsactor: remote error (<code>): <message>" for the others. A
// RemoteError of code [CodeShutdown] matches [ErrShutdown] with errors.Is.
type RemoteError = actor.RemoteError

// CloseError is the close frame the peer sent (errors.As on [Conn.Err], on
// the error given to the disconnect hook, or on an [ErrConnLost] that
// wraps it).
//
//   - Code: the WebSocket close code: 1000 normal, 1001 going away (a
//     server shutting down), 1009 too large, 1011 internal error, 4000–4999
//     application codes; 1005 when the frame carried no code, which is
//     what every Primus-initiated close does.
//   - Reason: the close frame's reason text, possibly empty.
type CloseError = conn.CloseError

// PanicError is a panic recovered from user code (a request handler, a
// callback of [Conn.Go], a hook): errors.As on an error matching
// [ErrHandlerPanic] or [ErrRestarted]. Its Error is one line
// ("panic: <value>"); the stack trace is in the field.
//
//   - Value: what was passed to panic. When it is an error, PanicError
//     unwraps to it.
//   - Stack: the panicking goroutine's stack trace, as runtime/debug.Stack
//     formats it.
type PanicError = actor.PanicError

// Bad input reported to the error hook ([WithErrorHook]) and counted in
// [Stats.BadInput]. Except where noted the connection keeps serving.
var (
	ErrMalformed    = lower("wsactor: malformed JSON", envelope.ErrMalformed)                           // not valid JSON
	ErrEmpty        = lower("wsactor: empty frame", envelope.ErrEmpty)                                  // a text frame that is empty or only whitespace
	ErrInvalidUTF8  = lower("wsactor: invalid UTF-8", envelope.ErrInvalidUTF8)                          // a text frame with invalid UTF-8
	ErrNull         = lower("wsactor: top-level null", envelope.ErrNull)                                // a top-level null
	ErrMissingID    = lower("wsactor: envelope without a truthy id", envelope.ErrMissingID)             // an envelope with no usable id
	ErrBadID        = lower("wsactor: bad id", envelope.ErrBadID)                                       // an id that is neither a string nor a number
	ErrBadField     = lower("wsactor: bad extension field", envelope.ErrBadField)                       // "error" or "timeout" of the wrong type
	ErrTooDeep      = lower("wsactor: nesting deeper than 512", envelope.ErrTooDeep)                    // also matches ErrMalformed; a request with a readable id gets a bad_request error reply
	ErrBinaryFrame  = lower("wsactor: binary frame", conn.ErrBinaryFrame)                               // the wire is JSON text only
	ErrLateReply    = lower("wsactor: late or duplicate reply", actor.ErrLateReply)                     // a reply to a request that already ended (late or duplicate)
	ErrUnknownReply = lower("wsactor: reply to an unknown request id", actor.ErrUnknownReply)           // a reply to an id this side never issued
	ErrDuplicateID  = lower("wsactor: duplicate request id from peer", actor.ErrDuplicateRequest)       // the peer reused the id of a request still in progress
	ErrHandlerPanic = lower("wsactor: panic in user code", actor.ErrHandlerPanic, conn.ErrHandlerPanic) // user code panicked: the actor restarts; errors.As gives the [*PanicError]
	ErrReplyNotSent = lower("wsactor: reply not sent", actor.ErrReplyNotSent)                           // a handler's reply was refused (too large, slow reader); the peer got a reply_failed error
)

// Error codes in error replies made by this library (see [RemoteError]).
const (
	CodeError       = actor.CodeError
	CodePanic       = actor.CodePanic
	CodeBusy        = actor.CodeBusy
	CodeNoHandler   = actor.CodeNoHandler
	CodeShutdown    = actor.CodeShutdown
	CodeRestarted   = actor.CodeRestarted
	CodeDuplicateID = actor.CodeDuplicateID
	CodeBadRequest  = actor.CodeBadRequest
	CodeEncode      = actor.CodeEncode
	CodeReplyFailed = actor.CodeReplyFailed
)

// sentinel is a sentinel of this package that stands for sentinels of a
// lower package: it unwraps to them, so errors.Is(s, low) holds (and so
// does everything low matches, e.g. context.DeadlineExceeded for
// actor.ErrTimeout); and a [publicError] wrapping an error that matches low
// matches s.
type sentinel struct {
	msg string
	low []error
}

func lower(msg string, low ...error) error { return &sentinel{msg: msg, low: low} }

func (s *sentinel) Error() string   { return s.msg }
func (s *sentinel) Unwrap() []error { return s.low }

// publicError is an error of a lower package as this package returns it:
// reworded with the one "wsactor: " prefix (see [reword]), unwrapping to
// the original, and matching the sentinel of this package that stands for
// each sentinel of the lower package in it.
type publicError struct {
	msg string
	err error
}

func (e *publicError) Error() string { return e.msg }
func (e *publicError) Unwrap() error { return e.err }
func (e *publicError) Is(target error) bool {
	s, ok := target.(*sentinel)
	if !ok {
		return false
	}
	for _, low := range s.low {
		if errors.Is(e.err, low) {
			return true
		}
	}
	return false
}

// public is the boundary: every error this package returns or reports to
// user code goes through it. A [*RemoteError] is returned as it is (its
// text has the prefix); an error that already reads right too.
func public(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := err.(*RemoteError); ok {
		return err
	}
	msg := err.Error()
	out := reword(msg)
	if out == msg {
		return err
	}
	return &publicError{msg: out, err: err}
}

// internalPrefixes are the prefixes of the lower packages' errors (and our
// own, when wrapped further in): reword drops them where a part of a
// message starts, longest first.
var internalPrefixes = []string{
	"conn: dial: ", // conn.Dial's wrapper: ErrDial says it already
	"supervisor: ", "envelope: ", "wsactor: ", "mailbox: ", "actor: ", "conn: ",
}

// reword makes one line of text out of an error's message with the one
// "wsactor: " prefix: the package prefixes of the lower packages are
// dropped where a part of the message starts (at the start and after each
// ": "), so "actor: connection lost: conn: closed by peer with code 1001"
// reads "wsactor: connection lost: closed by peer with code 1001". (Text
// from elsewhere, a peer's message or a panic value, could lose such a
// prefix too: it is only ever shortened, never changed otherwise.)
func reword(msg string) string {
	var b strings.Builder
	b.Grow(len(msg) + 9)
	b.WriteString("wsactor: ")
	for i := 0; i < len(msg); {
		if n := internalPrefix(msg[i:]); n > 0 {
			i += n
			continue
		}
		j := strings.Index(msg[i:], ": ")
		if j < 0 {
			b.WriteString(msg[i:])
			break
		}
		b.WriteString(msg[i : i+j+2])
		i += j + 2
	}
	return b.String()
}

func internalPrefix(s string) int {
	for _, p := range internalPrefixes {
		if strings.HasPrefix(s, p) {
			return len(p)
		}
	}
	return 0
}
