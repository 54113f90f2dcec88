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
// # Rooms and keys
//
// A server's connection joins and leaves named rooms ([Conn.Join],
// [Conn.Leave]) and may be bound to keys such as a user id ([Conn.Bind]); it
// leaves them all when it closes. [Server.Broadcast] encodes a message once
// and queues it to every member (a slow member is skipped and counted, never
// waited for); [Server.RequestRoom] asks every member and reports exactly
// one outcome per member; [Server.RequestKey] and [Server.SendKey] reach a
// connection by key; [Server.WatchPresence] observes joins and leaves. The
// cluster package carries the same operations across nodes over NATS.
//
// # Wire
//
// Every message is one JSON text frame. A request is
// {"plugin":"primus-responder","requestId":"<uuid v4>","data":…} and its
// reply {"plugin":"primus-responder","responseId":"<same id>","data":…},
// exactly as primus-responder sends them. wsactor adds fields that stock
// primus-responder peers ignore harmlessly: "timeout" (ms) on a request, an
// "error":{"code","message"} reply instead of "data", and a cancel envelope
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
// writes happen on an on-demand flusher. Per server: one heartbeat
// goroutine. Per client: one supervisor goroutine. Shutdown and Close wait
// for all of them. Rooms and keys start no goroutine: a server keeps them
// behind one mutex; Broadcast writes on the caller's goroutine (never
// blocking on a socket); RequestRoom waits on the caller's goroutine for
// outcomes posted by the members' actors; presence watchers run one at a
// time on the goroutine of a caller that changed a membership.
package wsactor
