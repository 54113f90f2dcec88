// Package wsactor is request-response over WebSockets, built the way Erlang
// would build it, and wire-compatible with Primus + primus-responder.
//
// Either side asks the other and waits for the answer ([Conn.Request], or
// [Conn.Go] with a callback), answers the other's requests
// ([WithRequestHandler]) and sends plain messages ([Conn.Send]). A [Server]
// is an [net/http.Handler]; [Dial] returns a supervised [Client] that
// reconnects with backoff.
//
// Each connection is an actor: one mailbox, drained by one goroutine at a
// time, alone owns the connection's pending requests; replies, timeouts and
// cancels reach it as messages, so there is no lock around them. Every
// request ends exactly once: a reply, a [*RemoteError], [ErrTimeout],
// [ErrCanceled], [ErrConnLost], [ErrRestarted], [ErrShutdown] or
// [ErrClosed]. A panic in user code restarts the connection's actor (its
// pending requests fail with [ErrRestarted]) without touching other
// connections; too many restarts within a window close that connection with
// 1011.
//
// # Errors
//
// Every error this package returns, or reports to a hook, reads
// "wsactor: …" on one line and matches one of its sentinels with
// errors.Is ([ErrTimeout] and its siblings above; [ErrDial],
// [ErrInvalidOption] from [Dial] and [NewServer], which check options
// before any network I/O; [ErrEncode], [ErrDecode], …). The types to name
// with errors.As are [*RemoteError] (the peer's error reply: a handler's
// plain error reads "wsactor: remote error: <its text>"), [*CloseError]
// (the peer's close frame, inside [ErrConnLost]) and [*PanicError] (a
// panic in user code, inside [ErrHandlerPanic]: its stack trace is a
// field, not in the text). When a side shuts down, its own requests that
// are cut off fail with [ErrShutdown]; the peer's get a [*RemoteError] of
// code [CodeShutdown], which matches [ErrShutdown] too. Calls that take a
// ctx return by its end: [Dial] (and each reconnect, also bounded by
// [WithDialTimeout]), [Conn.Request], [Client.Conn], [Server.Shutdown] and
// [Client.Shutdown].
//
// # Rooms and keys
//
// A server's connection joins and leaves named rooms ([Conn.Join],
// [Conn.Leave]) and may be bound to keys such as a user id ([Conn.Bind]); it
// leaves them all when it closes. [Server.Broadcast] encodes a message once
// and queues it to every member (a slow member is skipped and counted, never
// waited for); [Server.RequestRoom] asks every member and reports exactly
// one outcome per member; [Server.RequestKey] and [Server.SendKey] reach a
// connection by key; [Server.WatchPresence] observes joins and leaves (in
// order, delivered after the call that made them; [Server.FlushPresence]
// waits for them). Names are at most [MaxNameLen] bytes. The cluster
// package carries the same operations across nodes over NATS.
//
// # Tracing
//
// A request may carry a W3C Trace Context traceparent, set on its ctx with
// [WithTraceparent] (or by a tracer plugged in with [WithTracePropagation]);
// the peer's handler finds it in its ctx ([Traceparent]) and its own
// requests pass it on, across connections and, with the cluster package,
// nodes. The library depends on no tracing package.
//
// # Metrics
//
// [Server.Stats] and [Client.Stats] are counters read at any time
// (refusals by [RefuseReason], bad input by [BadInputKind], restarts,
// give-ups, heartbeat timeouts, broadcast deliveries and skips, …).
// [WithObserver] adds one call per request outcome, with its
// [Direction], [Outcome] and duration, for latency histograms; without it
// nothing is timed. The prom package turns both into Prometheus metrics;
// this package does not import Prometheus.
//
// # Wire
//
// Every message is one JSON text frame. A request is
// {"plugin":"primus-responder","requestId":"<uuid v4>","data":…} and its
// reply {"plugin":"primus-responder","responseId":"<same id>","data":…},
// exactly as primus-responder sends them. wsactor adds fields that stock
// primus-responder peers ignore harmlessly: "timeout" (ms) on a request, an
// "error":{"code","message"} reply instead of "data", "traceparent" on a
// request, and a cancel envelope
// {"plugin":"primus-responder","cancelId":"<id>"}. The server sends
// "primus::ping::<ms>" heartbeats and expects "primus::pong::<ms>"; clients
// answer pings. A top-level null is never sent.
//
// # Concurrency
//
// Per connection: the read goroutine (gws's read loop) decodes frames, runs
// the message handler and hooks, and posts envelopes to the actor; the
// actor's loop (started on demand) owns the pending requests; request
// handlers run on a bounded pool shared by the server or client (or, with
// [WithInlineHandlers], on the actor's loop: they must not block); socket
// writes happen on an on-demand flusher. While a connection has
// [WithMaxInbound] requests in progress (counted until their handlers
// return), or holds [WithMaxInboundBytes] of the peer's messages, its read
// goroutine waits before the next one, which is backpressure to the peer; the pool takes waiting handlers from the
// connections in turn. Per server: one heartbeat
// goroutine. Per client: the read goroutine of its connections, which also
// reconnects between them (backoff, dial) as its supervisor decides.
// Shutdown and Close wait for all of them.
//
// No callback, handler or hook ever runs inside a call that user code makes
// into this package ([Conn.Request], [Conn.Go], [Conn.Send], [Conn.Close],
// [Conn.Join], [Client.Request], [Server.Shutdown], ...): they run on the
// goroutines above, so these calls may be made while holding a lock that a
// callback takes. Three exceptions, all visible at the call site: the
// authentication hook runs inside [Server.ServeHTTP], called by net/http
// for the upgrade; the each function passed to [Server.RequestRoom] or
// [Server.RequestEach] is that call's own argument, run by it on the
// caller's goroutine, one outcome at a time, like the body of a loop; and
// the inject function of [WithTracePropagation] reads the caller's own ctx
// on the caller's goroutine, inside the Request or Go it serves, before
// anything is sent and with no lock of the library held.
//
// Rooms and keys keep no goroutine of their own while nothing happens: a
// server keeps them behind one mutex; Broadcast writes on the caller's
// goroutine (never blocking on a socket); RequestRoom waits on the caller's
// goroutine for outcomes posted by the members' actors; presence watchers
// run one at a time on a delivery goroutine that exists only while events
// are queued, and that Shutdown waits for.
package wsactor
