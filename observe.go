package wsactor

import (
	"errors"

	"github.com/wsactor/wsactor/actor"
	"github.com/wsactor/wsactor/conn"
	"github.com/wsactor/wsactor/envelope"
)

// Observer is told how each request ended and how long it took, once per
// request, in both directions: this side's requests ([Outbound]) and the
// peer's ([Inbound]). Give it with [WithObserver]; the prom package
// implements it with Prometheus histograms.
//
// ObserveRequest runs on the connection's actor loop, for every request:
// it must be fast (a few atomic adds) and must not block, allocate much or
// call into this package. A panic in it is not caught. d is how long the
// request was in flight: outbound, from its registration on the actor
// loop to its end; inbound, from its acceptance to the reply (or other
// end); 0 for a request refused before either.
//
// An outbound outcome is observed before the caller of [Conn.Request] (or
// the callback of [Conn.Go]) gets it. An inbound reply is observed just
// after it was written, so the peer may have it a moment before.
type Observer = actor.Observer

// Direction says whose request an [Observer] hears about.
type Direction = actor.Direction

// The directions.
const (
	Outbound = actor.Outbound // this side's request ([Conn.Request], [Conn.Go])
	Inbound  = actor.Inbound  // the peer's request, handled by this side
)

// NumDirections is the number of [Direction] values.
const NumDirections = actor.NumDirections

// Outcome is how a request ended; each request gets exactly one. Its
// String is the name used in metrics ("reply", "error", …).
type Outcome = actor.Outcome

// The outcomes. Outbound they match the error the caller got: a reply, a
// [*RemoteError] (OutcomeError; one of code [CodeShutdown] is
// OutcomeShutdown), [ErrTimeout], [ErrCanceled], [ErrConnLost],
// [ErrRestarted] (or [ErrTooManyRestarts]), [ErrShutdown],
// [ErrTooManyPending] (OutcomeRefused) and [ErrClosed]. Inbound: the
// handler's data sent (OutcomeReply) or its error (OutcomeError, a panic
// too), the peer's timeout passed and the handler gave up
// (OutcomeTimeout), the peer cancelled (OutcomeCanceled), the connection
// was lost or the reply could not be written (OutcomeLost), the actor
// restarted, a shutdown, a refusal ([CodeBusy], no handler, a duplicate id)
// or this side closed the connection.
const (
	OutcomeReply     = actor.OutcomeReply
	OutcomeError     = actor.OutcomeError
	OutcomeTimeout   = actor.OutcomeTimeout
	OutcomeCanceled  = actor.OutcomeCanceled
	OutcomeLost      = actor.OutcomeLost
	OutcomeRestarted = actor.OutcomeRestarted
	OutcomeShutdown  = actor.OutcomeShutdown
	OutcomeRefused   = actor.OutcomeRefused
	OutcomeClosed    = actor.OutcomeClosed
)

// NumOutcomes is the number of [Outcome] values.
const NumOutcomes = actor.NumOutcomes

// WithObserver reports every request's outcome and duration to o (see
// [Observer]). Without it (the default) nothing is timed: the actor reads
// no clock for it and makes one nil check per request.
func WithObserver(o Observer) Option {
	return Option{"WithObserver", both, func(op *options) { op.observer = o }}
}

// RefuseReason is why a [Server] refused an upgrade; [Stats.RefusedBy]
// counts them. Its String is the name used in metrics.
type RefuseReason uint8

// The reasons an upgrade is refused.
const (
	RefusedOrigin    RefuseReason = iota // the Origin is not allowed (403; [WithAllowedOrigins])
	RefusedCapacity                      // [WithMaxConnections] reached (503)
	RefusedAuth                          // [WithAuthenticate] refused it
	RefusedShutdown                      // the server is shutting down (503)
	RefusedHandshake                     // the WebSocket handshake failed (a bad upgrade request)
	NumRefuseReasons
)

var refuseNames = [NumRefuseReasons]string{"origin", "capacity", "auth", "shutdown", "handshake"}

func (r RefuseReason) String() string {
	if r < NumRefuseReasons {
		return refuseNames[r]
	}
	return "unknown"
}

// BadInputKind is a kind of bad input, as [Stats.BadInputBy] counts it
// (classified by the sentinel the error matches). Its String is the name
// used in metrics.
type BadInputKind uint8

// The kinds of bad input.
const (
	BadMalformed    BadInputKind = iota // [ErrMalformed] (and [ErrTooDeep])
	BadEmpty                            // [ErrEmpty]
	BadUTF8                             // [ErrInvalidUTF8]
	BadNull                             // [ErrNull]
	BadID                               // [ErrMissingID], [ErrBadID]
	BadField                            // [ErrBadField]
	BadBinary                           // [ErrBinaryFrame]
	BadTooLarge                         // [ErrTooLarge]
	BadLateReply                        // [ErrLateReply]: late or duplicate replies
	BadUnknownReply                     // [ErrUnknownReply]
	BadDuplicateID                      // [ErrDuplicateID]
	BadPanic                            // [ErrHandlerPanic]
	BadReplyNotSent                     // [ErrReplyNotSent]
	BadOther                            // anything else reported to the error hook
	NumBadInputKinds
)

var badNames = [NumBadInputKinds]string{
	"malformed", "empty", "invalid_utf8", "null", "bad_id", "bad_field", "binary",
	"too_large", "late_reply", "unknown_reply", "duplicate_id", "panic", "reply_not_sent", "other",
}

func (k BadInputKind) String() string {
	if k < NumBadInputKinds {
		return badNames[k]
	}
	return "unknown"
}

// badKinds maps the lower packages' sentinels to kinds, in the order they
// are tried (a panic first: it may wrap anything).
var badKinds = []struct {
	err  error
	kind BadInputKind
}{
	{actor.ErrHandlerPanic, BadPanic},
	{conn.ErrHandlerPanic, BadPanic},
	{envelope.ErrEmpty, BadEmpty},
	{envelope.ErrInvalidUTF8, BadUTF8},
	{envelope.ErrNull, BadNull},
	{envelope.ErrMissingID, BadID},
	{envelope.ErrBadID, BadID},
	{envelope.ErrBadField, BadField},
	{envelope.ErrMalformed, BadMalformed},
	{conn.ErrBinaryFrame, BadBinary},
	{conn.ErrTooLarge, BadTooLarge},
	{actor.ErrLateReply, BadLateReply},
	{actor.ErrUnknownReply, BadUnknownReply},
	{actor.ErrDuplicateRequest, BadDuplicateID},
	{actor.ErrReplyNotSent, BadReplyNotSent},
}

// badKind classifies bad input (off the hot path: bad input only).
func badKind(err error) BadInputKind {
	for _, k := range badKinds {
		if errors.Is(err, k.err) {
			return k.kind
		}
	}
	return BadOther
}

// refuse counts a refused upgrade.
func (st *counters) refuse(r RefuseReason) {
	st.refused.Add(1)
	st.refusedBy[r].Add(1)
}

// QueuedBytes returns the bytes queued for writing on all the server's
// connections, frame headers included. It visits every connection: meant
// for a metrics scrape, not a hot path.
func (s *Server) QueuedBytes() int64 {
	var n int64
	for _, c := range s.Conns() {
		n += int64(c.wc.QueuedBytes())
	}
	return n
}

// QueuedBytes returns the bytes queued for writing on the client's
// connection (0 between connections).
func (cl *Client) QueuedBytes() int64 {
	c, err := cl.current()
	if err != nil {
		return 0
	}
	return int64(c.wc.QueuedBytes())
}
