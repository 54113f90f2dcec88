package actor

import (
	"context"
	"errors"
	"fmt"
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
	// ErrHandlerPanic wraps a panic raised by a request handler or callback.
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
// returns one to choose the code sent on the wire.
type RemoteError struct {
	Code    string
	Message string
}

func (e *RemoteError) Error() string {
	if e.Code == "" {
		return "remote error: " + e.Message
	}
	return fmt.Sprintf("remote error %s: %s", e.Code, e.Message)
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
