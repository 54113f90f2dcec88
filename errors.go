package wsactor

import (
	"errors"

	"github.com/wsactor/wsactor/actor"
	"github.com/wsactor/wsactor/conn"
	"github.com/wsactor/wsactor/envelope"
	"github.com/wsactor/wsactor/supervisor"
)

// How a request can end, besides a reply. Test with errors.Is (and
// errors.As for [*RemoteError]). Every request ends in exactly one of them.
var (
	// ErrTimeout: no reply within the request timeout or before ctx's
	// deadline. errors.Is(err, context.DeadlineExceeded) is true too.
	ErrTimeout = actor.ErrTimeout
	// ErrCanceled: ctx was cancelled; the error also wraps context.Canceled
	// (or the ctx's cause).
	ErrCanceled = actor.ErrCanceled
	// ErrConnLost: the connection ended while the request was pending.
	ErrConnLost = actor.ErrConnLost
	// ErrRestarted: the connection's actor restarted after a failure (a panic
	// in user code); it wraps that failure.
	ErrRestarted = actor.ErrRestarted
	// ErrShutdown: the server or client is shutting down.
	ErrShutdown = actor.ErrShutdown
	// ErrClosed: the connection or client was already closed.
	ErrClosed = actor.ErrClosed
	// ErrTooManyPending: the cap on requests in flight on the connection
	// ([WithMaxPending]) was reached; nothing was sent.
	ErrTooManyPending = actor.ErrTooManyPending
	// ErrSelfRequest: an inline handler ([WithInlineHandlers]) called
	// [Conn.Request] on its own connection with its ctx (or one derived from
	// it); the call would have waited for itself. Nothing was sent.
	ErrSelfRequest = actor.ErrSelfRequest
	// ErrMailboxFull: [Conn.Go] found the actor's mailbox full; nothing was
	// sent.
	ErrMailboxFull = actor.ErrMailboxFull
	// ErrWriteQueueFull: the connection's outbound queue is over
	// [WithMaxOutboundBytes] (a slow reader); nothing was sent.
	ErrWriteQueueFull = conn.ErrWriteQueueFull
	// ErrWriteTimeout: a socket write blocked longer than [WithWriteTimeout]
	// (a stalled reader); the connection was closed.
	ErrWriteTimeout = conn.ErrWriteTimeout
	// ErrHeartbeat: no heartbeat from the peer in time; the connection was
	// closed.
	ErrHeartbeat = conn.ErrHeartbeat
	// ErrTooLarge: the message is over [WithMaxMessageSize]. As bad input
	// (an incoming frame over it) the connection is closed with 1009.
	ErrTooLarge = conn.ErrTooLarge
	// ErrFrameTimeout: the peer began a message and did not complete it
	// within [WithFrameTimeout]; the connection was dropped.
	ErrFrameTimeout = conn.ErrFrameTimeout
	// ErrTooManyRestarts: a connection's actor failed more often than
	// [WithRestartIntensity] allows, or a client could not reconnect within
	// its restart window. It wraps the last failure.
	ErrTooManyRestarts = supervisor.ErrTooManyRestarts
	// ErrNotConnected: a [Client] is between connections and the call could
	// not wait ([Client.Go], [Client.Send]).
	ErrNotConnected = errors.New("wsactor: not connected")
	// ErrNullMessage: a top-level JSON null cannot be sent as a message (it
	// crashes Node Primus peers).
	ErrNullMessage = errors.New("wsactor: a null message cannot be sent")
	// ErrServerEnded: the server closed the connection on purpose
	// ("primus::server::close"); a client does not reconnect after it.
	ErrServerEnded = conn.ErrServerEnded
)

// RemoteError is a failure reported by the peer in an error reply. Return
// one from a [RequestHandler] to choose the code and message sent.
type RemoteError = actor.RemoteError

// Bad input reported to the error hook ([WithErrorHook]) and counted in
// [Stats.BadInput]. Except where noted the connection keeps serving.
var (
	ErrMalformed    = envelope.ErrMalformed     // not valid JSON
	ErrInvalidUTF8  = envelope.ErrInvalidUTF8   // a text frame with invalid UTF-8
	ErrNull         = envelope.ErrNull          // a top-level null
	ErrMissingID    = envelope.ErrMissingID     // an envelope with no usable id
	ErrBadID        = envelope.ErrBadID         // an id that is neither a string nor a number
	ErrBinaryFrame  = conn.ErrBinaryFrame       // the wire is JSON text only
	ErrLateReply    = actor.ErrLateReply        // a reply to a request that already ended (late or duplicate)
	ErrUnknownReply = actor.ErrUnknownReply     // a reply to an id this side never issued
	ErrDuplicateID  = actor.ErrDuplicateRequest // the peer reused the id of a request still in progress
	ErrHandlerPanic = actor.ErrHandlerPanic     // user code panicked: the actor restarts
	ErrReplyNotSent = actor.ErrReplyNotSent     // a handler's reply was refused (too large, slow reader); the peer got a reply_failed error
	errBadOption    = errors.New("wsactor: bad option")
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
