package actor

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/sourcegraph/conc/panics"
)

// Outcomes of a request other than a reply. Every request ends in exactly one
// of: a reply, a [*RemoteError], [ErrTimeout], [ErrCanceled], [ErrConnLost],
// [ErrRestarted], [ErrShutdown] or [ErrClosed] (plus the refusals
// [ErrTooManyPending] and [ErrMailboxFull], which happen before anything is
// sent).
var (
	// ErrTimeout: no reply within the request timeout or before ctx's
	// deadline. It also matches [context.DeadlineExceeded].
	ErrTimeout error = timeoutError{}
	// ErrCanceled: the caller's ctx was cancelled; the error also wraps the
	// context's cause.
	ErrCanceled = errors.New("actor: request canceled")
	// ErrConnLost: the connection ended while the request was pending. It
	// wraps the transport's reason.
	ErrConnLost = errors.New("actor: connection lost")
	// ErrRestarted: the actor restarted after a failure while the request was
	// pending. It wraps the failure.
	ErrRestarted = errors.New("actor: restarted")
	// ErrShutdown: the actor was shut down (drained) before a reply came, or
	// refused a new request because it is draining.
	ErrShutdown = errors.New("actor: shutting down")
	// ErrClosed: the actor had already stopped.
	ErrClosed = errors.New("actor: closed")
	// ErrTooManyPending: the cap on requests in flight on this connection was
	// reached; the request was not sent.
	ErrTooManyPending = errors.New("actor: too many pending requests")
	// ErrSelfRequest: [Actor.Request] was called from an inline handler
	// ([WithInlineHandlers]) of the same actor, with the handler's ctx (or
	// one derived from it). The reply could only be handled by the loop
	// that runs the handler, so the call would wait for itself; nothing was
	// sent. Use [Actor.Go], or run such handlers on the pool.
	ErrSelfRequest = errors.New("actor: Request from an inline handler on its own actor would wait for itself")
	// ErrMailboxFull: the actor's mailbox was full (only from [Actor.Go],
	// which never waits); the request was not sent.
	ErrMailboxFull = errors.New("actor: mailbox full")
	// ErrLateReply is reported (to the bad-input hook, not to a caller) for a
	// reply whose id has the form of ours but is not pending: late (after a
	// timeout or cancel) or a duplicate.
	ErrLateReply = errors.New("actor: late or duplicate reply")
	// ErrUnknownReply is reported for a reply whose id we never issue.
	ErrUnknownReply = errors.New("actor: reply to an unknown request id")
	// ErrDuplicateRequest is reported when the peer reuses the id of one of
	// its requests still being handled; the copy is answered with
	// [CodeDuplicateID].
	ErrDuplicateRequest = errors.New("actor: duplicate request id from peer")
	// ErrReplyNotSent is reported (to the bad-input hook) when the transport
	// refused a handler's reply (too large, or the peer reads too slowly);
	// the peer gets an error reply of code [CodeReplyFailed] instead, if
	// that fits.
	ErrReplyNotSent = errors.New("actor: reply not sent")
	// ErrHandlerPanic wraps a panic raised by a request handler or callback,
	// as a [*PanicError] (errors.As) that holds the value and the stack.
	ErrHandlerPanic = errors.New("actor: panic in user code")
)

// Error codes this library puts in error replies (the wsactor "error"
// extension of the envelope). Handlers may use their own codes through
// [RemoteError].
const (
	CodeError       = "error"          // the handler returned a plain error
	CodePanic       = "panic"          // the handler panicked
	CodeBusy        = "busy"           // no room in the handler pool or over the in-flight cap
	CodeNoHandler   = "no_handler"     // no request handler is registered
	CodeShutdown    = "shutting_down"  // the peer is draining
	CodeRestarted   = "restarted"      // the actor restarted while handling it
	CodeDuplicateID = "duplicate_id"   // the same id is already being handled
	CodeBadRequest  = "bad_request"    // the handler could not use the request data
	CodeEncode      = "encode_failure" // the handler's result could not be encoded
	CodeReplyFailed = "reply_failed"   // the reply could not be sent (too large, or the peer reads too slowly)
)

type timeoutError struct{}

func (timeoutError) Error() string   { return "actor: request timed out" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }
func (timeoutError) Is(target error) bool {
	return target == context.DeadlineExceeded
}

// RemoteError is a failure reported by the peer in an error reply. A handler
// returns one to choose the code sent on the wire. Code is one of the Code
// constants (or the peer's own code); Message is the peer's text.
//
// Its Error reads "wsactor: remote error: <message>" for [CodeError] (a
// plain error returned by the peer's handler) and "wsactor: remote error
// (<code>): <message>" otherwise. The prefix is the library's, not this
// package's: the error reply is the wsactor wire extension, and the root
// package returns a RemoteError as it is. A RemoteError of code
// [CodeShutdown] matches [ErrShutdown] with errors.Is.
type RemoteError struct {
	Code    string
	Message string
}

func (e *RemoteError) Error() string {
	s := "wsactor: remote error"
	if e.Code != "" && e.Code != CodeError {
		s += " (" + e.Code + ")"
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Is maps the codes that have a sentinel to it: [CodeShutdown] matches
// [ErrShutdown], and an error that stands for it (one whose Unwrap returns
// ErrShutdown itself, as the root package's re-export does).
func (e *RemoteError) Is(target error) bool {
	if e.Code != CodeShutdown {
		return false
	}
	return target == ErrShutdown || standsFor(target, ErrShutdown)
}

func standsFor(target, sentinel error) bool {
	switch t := target.(type) {
	case interface{ Unwrap() error }:
		return t.Unwrap() == sentinel
	case interface{ Unwrap() []error }:
		for _, e := range t.Unwrap() {
			if e == sentinel {
				return true
			}
		}
	}
	return false
}

// PanicError is a panic recovered from user code (a handler, a callback, a
// hook), wrapped by [ErrHandlerPanic]: find it with errors.As. Error is one
// line, "panic: <value>"; the stack trace is in Stack, not in the text, so
// that logging the error stays readable.
type PanicError struct {
	// Value is what was passed to panic. When it is an error, PanicError
	// unwraps to it.
	Value any
	// Stack is the panicking goroutine's stack trace, as runtime/debug.Stack
	// formats it.
	Stack []byte
}

// NewPanicError makes a PanicError of a panic recovered by conc's panics
// package.
func NewPanicError(r *panics.Recovered) *PanicError {
	return &PanicError{Value: r.Value, Stack: r.Stack}
}

func (e *PanicError) Error() string {
	v := fmt.Sprint(e.Value)
	if i := strings.IndexByte(v, '\n'); i >= 0 {
		v = v[:i] + " …" // one line: the rest of a multi-line value is in Value
	}
	return "panic: " + v
}

// Unwrap returns Value when it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// CtxError maps the end of a caller's context to a request's outcome:
// [ErrTimeout] for a passed deadline, else [ErrCanceled] wrapping the
// context's cause.
func CtxError(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ErrTimeout
	}
	return fmt.Errorf("%w: %w", ErrCanceled, context.Cause(ctx))
}
