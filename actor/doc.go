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
// # Concurrency
//
// Everything that touches the pending map or the map of peer requests in
// progress is a message to the actor's mailbox: a request to send, an
// envelope from the peer, a timeout (posted by a time.AfterFunc timer), a
// cancel (posted by the caller whose ctx ended, or by context.AfterFunc for
// [Actor.Go]), a handler's result, a failure, a drain and a stop. One
// goroutine at a time runs the loop (the mailbox's drainer role), so the
// maps have no lock. The role is taken by the goroutine whose message found
// the mailbox idle (a caller, the connection's reader, a handler worker, a
// timer) for up to 64 messages, then by a goroutine of the mailbox's own;
// this saves a goroutine hand-off per message. The loop never blocks (its
// writes go to a Transport whose Write only queues), so any poster can
// afford it. Nothing runs while no message is queued, so an idle actor owns
// no goroutine.
//
// Handlers run on [Pool] workers, not on the loop, so a handler may call
// [Actor.Request] on its own actor. With [WithInlineHandlers] they run on
// the loop instead (no hand-off; for handlers that never block and never
// call Request on their own actor, which would wait for itself). Callbacks given to [Actor.Go] and the
// hooks run on the loop and must be quick. A panic in any user code is
// caught: it is a failure, after which the actor restarts (pending requests
// fail with [ErrRestarted] wrapping the cause, the peer's requests in
// progress get error replies) or stops, as the Config's restart decider says.
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
//   - The pool's workers and queue ([NewPool]): one more is answered with an
//     error reply of code [CodeBusy]. Its queue is per actor, taken
//     round-robin, so one actor's flood does not starve the others.
//   - The mailbox ([WithMailboxCapacity]): Request and Deliver wait for room,
//     Go fails with [ErrMailboxFull].
package actor
