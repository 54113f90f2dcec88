// Package actor is the request-response core of wsactor: one [Actor] per
// connection, an Erlang-style process whose mailbox alone owns the
// connection's pending requests.
//
// An actor sends this side's requests and matches the peer's replies to them,
// runs the peer's requests through a [Handler] on a bounded [Pool], and
// guarantees that every request it accepted ends exactly once: a reply, a
// [*RemoteError], [ErrTimeout], [ErrCanceled], [ErrConnLost], [ErrRestarted],
// [ErrShutdown] or [ErrClosed]. Late and duplicate replies are dropped and
// counted in [Stats].
//
// The actor writes to a [Transport] (satisfied by *conn.Conn) and is fed by
// its owner through [Actor.Deliver]; it knows nothing about WebSockets.
//
// A request made with a ctx carrying a W3C traceparent ([WithTraceparent])
// sends it in the envelope; a handler's ctx carries the one the peer sent
// ([Traceparent]), so the handler's own requests pass it on.
//
// # Concurrency
//
// Everything that touches the pending map or the map of peer requests in
// progress is a message to the actor's mailbox: a request to send, an
// envelope from the peer, a timeout (posted by a time.AfterFunc timer), a
// cancel (posted by the caller whose ctx ended, or by context.AfterFunc for
// [Actor.Go]), a handler's result, a failure, a drain and a stop. One
// goroutine at a time runs the loop (the mailbox's drainer role), so the
// maps have no lock. The role is taken by a goroutine of the library's
// whose message found the mailbox idle (the connection's reader calling
// [Actor.Deliver], a pool worker with a handler's result, a timer, the
// context package's goroutine with a cancel for [Actor.Go]) for up to 64
// messages, then by a goroutine of the mailbox's own; this saves a goroutine
// hand-off per message. The loop never blocks (its writes go to a Transport
// whose Write only queues), so these goroutines can afford it. A caller of
// [Actor.Request] that finds the mailbox idle registers its own request
// itself (mailbox mode Own), and goes on only with messages whose handling
// runs no user code: other Requests' registrations, cancels and replies.
// Nothing runs while no message is queued, so an idle actor owns no
// goroutine.
//
// No user callback, handler or hook ever runs inside a call that user code
// makes into this package (Request, Go, Stop, Closed, Fail, Drain,
// Shutdown, ...): only Deliver, meant for the owner's reader, may run them
// on its caller.
//
// Handlers run on [Pool] workers, not on the loop, so a handler may call
// [Actor.Request] on its own actor. With [WithInlineHandlers] they run on
// the loop instead (no hand-off; for handlers that never block and never
// call Request on their own actor, which would wait for itself). Callbacks
// given to [Actor.Go] and the hooks run on the loop and must be quick. A
// panic in any user code is caught: it is a failure, after which the actor
// restarts (pending requests fail with [ErrRestarted] wrapping the cause,
// the peer's requests in progress get error replies) or stops, as the
// Config's restart decider says.
//
// # Bounds
//
//   - Pending requests per actor ([WithMaxPending]): one more fails at once
//     with [ErrTooManyPending].
//   - Peer requests in progress per actor ([WithMaxInbound]), counted until
//     their handler returns: [Actor.Deliver] of one more request waits for
//     room (the connection's reader stops: TCP backpressure), except while a
//     handler of the actor waits for a reply from the peer, when one more is
//     answered with an error reply of code [CodeBusy]; with
//     [WithBusyRefusal] it always is. The wait holds no lock and ends when
//     the actor stops.
//   - Bytes of the peer's envelopes held per actor
//     ([WithMaxInboundBytes]): those in the mailbox, and each request until
//     its handler returns. Deliver waits for room in the same wait as for
//     [WithMaxInbound], with the same exception, and the same busy reply
//     for a request (of which only the id is kept); one envelope larger than
//     the budget goes in alone once nothing else is held.
//   - The pool's workers and queue ([NewPool]): one more is answered with an
//     error reply of code [CodeBusy]. Its queue is per actor, taken
//     round-robin, so one actor's flood does not starve the others.
//   - The mailbox ([WithMailboxCapacity]): Request (until its ctx ends) and
//     Deliver wait for room,
//     Go fails with [ErrMailboxFull].
package actor
