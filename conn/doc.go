// Package conn adapts github.com/lxzan/gws to the Primus wire (Primus 8 with
// primus-responder): it reads text frames, decodes them with the envelope
// package, handles the Primus control messages itself, and gives a bounded,
// non-blocking, ordered write path. It knows nothing about requests, pending
// calls or reconnects.
//
// A server accepts with [NewUpgrader] and [Upgrader.Upgrade]; a client
// connects with [Dial]. Either way the caller then runs [Conn.Serve] (in a
// goroutine of its choice) and writes with [Conn.Write].
//
// Control messages (PRIMUS-WIRE §3–4): the client role answers
// "primus::ping::<v>" with "primus::pong::<v>", restarts its PingTimeout, and
// remembers "primus::server::close" (OnClose then reports [ErrServerEnded]).
// The server role counts anything read from the peer ("primus::pong::…",
// a WebSocket PING, any frame) as liveness ([Conn.Beat]) and answers
// "primus::id::" with its id. A PING
// frame is answered with a PONG in both roles. Any other "primus::" string
// reaches the Handler as data, as in Primus.
//
// Bounds: an incoming frame over MaxMessageSize closes with 1009
// ([ErrTooLarge]); a Write over MaxMessageSize fails with ErrTooLarge; a Write
// that would queue more than MaxOutboundBytes fails with [ErrWriteQueueFull]
// and the connection stays; a socket write blocked longer than WriteTimeout
// closes the connection ([ErrWriteTimeout]); a message that began arriving
// and is not complete within FrameTimeout drops the connection
// ([ErrFrameTimeout]): gws allocates a frame's declared payload when it reads
// the header, so a header-only peer would otherwise pin MaxMessageSize bytes.
//
// Compression: with Options.Compression a client offers and a server
// accepts permessage-deflate (RFC 7692) without context takeover, per
// connection ([Conn.Compressed]); see [Compression]. Write compresses
// messages from Compression.Threshold bytes and sets RSV1 itself; an
// incoming compressed message is inflated after the read, bounded by
// MaxMessageSize (over it: 1009, [ErrTooLarge]). A compressed frame
// without the extension closes with 1002 ([ErrProtocol]).
//
// # Concurrency
//
// The read goroutine (the caller of Serve, running gws's ReadLoop) owns
// reading, decoding, the control messages and every Handler call, which are
// therefore serial. The write goroutine, a flusher started on demand by
// Write when none runs and gone as soon as the queue is empty (so an idle
// connection has none), owns the socket writes: it writes everything queued
// since its last write as one batch with one write call, and writes the close
// frame of Close and End. gws's own writes (only its close frames) share the
// flusher's lock, so frames never interleave. A Write never waits for that
// lock: gws answers the peer's close frame on the read goroutine under it,
// with a write bounded only by WriteTimeout when the peer does not read, so a
// quiet connection's direct write finding it taken hands its frame to the
// flusher instead. Write, Close, End, Drop, Ping
// and the getters are safe from any goroutine (Beat from one goroutine at a
// time, any one); Write never blocks
// on the socket. When the read loop ends, the socket is closed, the flusher
// is waited for, and only then OnClose is called and Done closed: no
// goroutine of a Conn outlives Done.
//
// On a socket of the net package, the read goroutine waits for the socket
// holding no buffer and reads into a pooled 16 KiB buffer, given back as soon
// as gws has taken its bytes (readbuf.go): an idle connection holds no read
// buffer.
package conn
