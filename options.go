package wsactor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"path"
	"runtime"
	"strings"
	"time"

	"github.com/wsactor/wsactor/actor"
	"github.com/wsactor/wsactor/conn"
	"github.com/wsactor/wsactor/supervisor"
)

// RequestHandler answers a request from the peer. It runs on a worker of a
// bounded pool, not on a connection's read or actor goroutine, so it may
// block and may call [Conn.Request] on c (unless [WithInlineHandlers] says
// otherwise). The result is JSON-encoded into
// the reply's "data" ([json.RawMessage] is sent as it is, [NoData] leaves
// "data" out, nil sends null). A returned error becomes an error reply: a
// [*RemoteError] as it is, any other error with code [CodeError] and
// err.Error() as its message. ctx ends when the peer cancels or its timeout
// passes, or the connection restarts, closes or shuts down: handlers must
// return when it does.
//
// ctx also ends when the handler returns. Work the handler starts that must
// outlive it (a follow-up request to the peer, sent once the reply is out)
// needs a ctx of its own, e.g. without the cancel but with the values:
//
//	func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
//		go func() {
//			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
//			defer cancel()
//			_, _ = c.Request(fctx, "follow-up") // not cut off when the handler returns
//		}()
//		return "accepted", nil
//	}
//
// With ctx itself that Request would fail with [ErrCanceled] as soon as
// the handler returned.
type RequestHandler func(ctx context.Context, c *Conn, req Request) (any, error)

// MessageHandler receives a plain message (any JSON value that is not a
// request or reply envelope). It runs on the connection's read goroutine, in
// arrival order; while it runs no more frames are read from that
// connection, so hand long work off, and never wait there for a reply on the
// same connection (a Request made in it must run on another goroutine).
// msg is a copy the handler may keep.
type MessageHandler func(c *Conn, msg json.RawMessage)

// Request is a request from the peer.
type Request struct {
	ID      json.RawMessage // the peer's id, echoed verbatim in the reply
	Data    json.RawMessage // nil when the peer left "data" out; returning it unchanged echoes it without a second validation
	Timeout time.Duration   // how long the peer says it waits (wsactor peers); 0 when unknown
}

// Decode unmarshals the request's data into v; it fails with [ErrDecode].
func (r Request) Decode(v any) error { return decodeData(r.Data, v) }

// Response is a reply to this side's request.
type Response struct {
	Data json.RawMessage // nil when the peer left "data" out
}

// Decode unmarshals the reply's data into v; it fails with [ErrDecode].
func (r Response) Decode(v any) error { return decodeData(r.Data, v) }

func decodeData(data json.RawMessage, v any) error {
	if data == nil {
		return fmt.Errorf("%w: the peer left \"data\" out", ErrDecode)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: %w", ErrDecode, err)
	}
	return nil
}

type noData struct{}

// NoData, returned by a handler or passed to Request, leaves "data" out of
// the envelope (JavaScript's undefined).
var NoData any = noData{}

// Backoff is the client's reconnect delay: exponential with jitter. The
// zero value means 100ms doubling to 10s with jitter 0.5.
type Backoff = supervisor.Backoff

// Option configures a [Server] (NewServer) or a [Client] (Dial). Options
// that only make sense for one of them are refused by the other.
type Option struct {
	name  string
	scope scope
	apply func(*options)
}

type scope uint8

const (
	both scope = iota
	serverOnly
	clientOnly
)

type options struct {
	onRequest      RequestHandler
	inlineHandlers bool
	onMessage      MessageHandler
	onConnect      func(*Conn)
	onDisconnect   func(*Conn, error)
	onError        func(*Conn, error)
	requestTimeout time.Duration
	maxPending     int
	maxInbound     int
	maxInboundB    int
	busyRefusal    bool
	mailbox        int
	maxMessage     int
	maxOutbound    int
	writeTimeout   time.Duration
	frameTimeout   time.Duration
	workers        int
	queue          int
	restartMax     int
	restartWithin  time.Duration
	// WithTracePropagation (trace.go)
	traceInject  func(context.Context) string
	traceExtract func(context.Context, string) context.Context
	traceSet     bool
	observer     Observer // observe.go
	// WithCompression (compress.go); nil: off
	compression *conn.Compression

	// server
	pingInterval    time.Duration
	origins         []string
	authenticate    func(*http.Request) (any, error)
	maxConns        int
	presenceBacklog int

	// client
	header          http.Header
	dialTimeout     time.Duration
	pingTimeout     time.Duration
	backoff         supervisor.Backoff
	reconnectMax    int
	reconnectWithin time.Duration
	resetAfter      time.Duration
}

func defaultOptions() options {
	return options{
		requestTimeout:  30 * time.Second,
		maxPending:      4096,
		maxInbound:      1024,
		maxInboundB:     DefaultMaxInboundBytes,
		mailbox:         1024,
		maxMessage:      conn.DefaultMaxMessageSize,
		maxOutbound:     DefaultMaxOutboundBytes,
		writeTimeout:    10 * time.Second,
		frameTimeout:    conn.DefaultFrameTimeout,
		maxConns:        DefaultMaxConnections,
		presenceBacklog: DefaultPresenceBacklog,
		workers:         max(256, 64*runtime.GOMAXPROCS(0)),
		queue:           65536,
		restartMax:      5,
		restartWithin:   10 * time.Second,
		pingInterval:    30 * time.Second,
		dialTimeout:     10 * time.Second,
		pingTimeout:     45 * time.Second,
		backoff:         supervisor.Backoff{Min: 500 * time.Millisecond, Max: 30 * time.Second, Factor: 2, Jitter: 0.5},
		reconnectMax:    20,
		reconnectWithin: time.Minute,
		resetAfter:      10 * time.Second,
	}
}

func buildOptions(want scope, opts []Option) (options, error) {
	o := defaultOptions()
	var errs []error
	for _, opt := range opts {
		if opt.apply == nil {
			errs = append(errs, fmt.Errorf("%w: the zero Option", ErrInvalidOption))
			continue
		}
		if opt.scope != both && opt.scope != want {
			where := "NewServer"
			if opt.scope == clientOnly {
				where = "Dial"
			}
			errs = append(errs, fmt.Errorf("%w: %s is an option of %s only", ErrInvalidOption, opt.name, where))
			continue
		}
		opt.apply(&o)
	}
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOption}, args...)...))
		}
	}
	check(o.requestTimeout > 0, "request timeout %v, want > 0", o.requestTimeout)
	check(o.maxPending >= 1, "max pending %d, want >= 1", o.maxPending)
	check(o.maxInbound >= 1, "max inbound %d, want >= 1", o.maxInbound)
	check(o.maxInboundB >= 1, "max inbound bytes %d, want >= 1", o.maxInboundB)
	check(o.mailbox >= 1, "mailbox capacity %d, want >= 1", o.mailbox)
	check(o.maxMessage >= 64, "max message size %d, want >= 64", o.maxMessage)
	check(o.maxOutbound >= 1, "max outbound bytes %d, want >= 1", o.maxOutbound)
	check(o.writeTimeout > 0, "write timeout %v, want > 0", o.writeTimeout)
	check(o.frameTimeout > 0, "frame timeout %v, want > 0", o.frameTimeout)
	check(o.maxConns >= 0, "max connections %d, want >= 0 (0: no limit)", o.maxConns)
	check(o.presenceBacklog >= 0, "presence backlog %d, want >= 0 (0: no limit)", o.presenceBacklog)
	check(o.workers >= 1 && o.queue >= 0, "handler pool of %d workers and queue %d", o.workers, o.queue)
	check(o.restartMax >= 0 && o.restartWithin > 0, "restart intensity %d within %v", o.restartMax, o.restartWithin)
	check(o.pingInterval >= 0, "ping interval %v, want >= 0", o.pingInterval)
	check(o.pingTimeout >= 0, "ping timeout %v, want >= 0", o.pingTimeout)
	check(o.reconnectMax >= 0 && o.reconnectMax <= 1<<16 && o.reconnectWithin > 0, "reconnect intensity %d within %v, want 0 to 65536 within > 0", o.reconnectMax, o.reconnectWithin)
	check(o.dialTimeout > 0, "dial timeout %v, want > 0", o.dialTimeout)
	b := o.backoff
	check(b.Min >= 0 && b.Max >= 0, "reconnect backoff Min %v and Max %v, want >= 0", b.Min, b.Max)
	check(b.Factor == 0 || (b.Factor >= 1 && !math.IsInf(b.Factor, 0)), "reconnect backoff Factor %v, want 0 (the default) or a finite value >= 1", b.Factor)
	check(!math.IsNaN(b.Jitter) && b.Jitter <= 1, "reconnect backoff Jitter %v, want <= 1 (negative: none)", b.Jitter)
	check(o.resetAfter >= 0, "reconnect reset-after %v, want >= 0", o.resetAfter)
	if err := checkCompression(o.compression); err != nil { // compress.go
		errs = append(errs, err)
	}
	if err := checkTrace(&o); err != nil {
		errs = append(errs, err)
	}
	for _, p := range o.origins {
		_, err := path.Match(p, "x")
		check(err == nil && p != "", "origin pattern %q", p)
	}
	return o, errors.Join(errs...) // each line reads "wsactor: invalid option: …"
}

// WithRequestHandler answers the peer's requests. Without one, every request
// from the peer gets an error reply of code [CodeNoHandler].
func WithRequestHandler(h RequestHandler) Option {
	return Option{"WithRequestHandler", both, func(o *options) { o.onRequest = h }}
}

// WithInlineHandlers runs the request handler on the connection's actor
// loop, as soon as the request is read, instead of on the handler pool: no
// goroutine hand-off per request, and a burst of requests read together is
// answered with replies written together. With 64 requests in flight on one
// connection this about halved the server's CPU per request and beat raw
// gws echo (BENCHMARKS.md); with one request in flight the gain is small.
//
// The contract, for the handler given to [WithRequestHandler]:
//   - it must not block (no I/O, no locks held by others, no waiting):
//     nothing else happens on that connection while it runs, neither reads
//     nor replies, timeouts or cancels;
//   - it must never call [Conn.Request] (or [Client.Request]) on its own
//     connection: the loop would wait for itself. With the handler's ctx
//     (or one derived from it) the call fails at once with
//     [ErrSelfRequest]; with an unrelated ctx it cannot be detected and
//     the connection hangs. [Conn.Go] and [Conn.Send] are fine.
//
// ctx still carries the peer's timeout (Err and Done see it while the
// handler runs), a panic is caught and restarts the connection's actor as on
// the pool, errors become error replies as usual, and the requests of one
// connection are answered in the order they arrived. Handlers that block
// must stay on the pool (the default). [WithHandlerPool] has no effect on
// inline handlers.
func WithInlineHandlers() Option {
	return Option{"WithInlineHandlers", both, func(o *options) { o.inlineHandlers = true }}
}

// WithMessageHandler receives plain messages. Without one they are counted
// and dropped.
func WithMessageHandler(h MessageHandler) Option {
	return Option{"WithMessageHandler", both, func(o *options) { o.onMessage = h }}
}

// WithConnectHook is called on the connection's read goroutine when a
// connection opens (for a client: each time it connects), before any frame
// is read. A panic in it is a failure of the connection's actor. Nothing is
// read while it runs, so a [Conn.Request] made in it can never get its
// reply: ask from a goroutine of its own (go c.Request(…)).
func WithConnectHook(fn func(c *Conn)) Option {
	return Option{"WithConnectHook", both, func(o *options) { o.onConnect = fn }}
}

// WithDisconnectHook is called once per connection after it closed and all
// its requests have ended; err says why.
func WithDisconnectHook(fn func(c *Conn, err error)) Option {
	return Option{"WithDisconnectHook", both, func(o *options) { o.onDisconnect = fn }}
}

// WithErrorHook is told about bad input: malformed JSON, null, binary frames,
// invalid UTF-8, missing or bad ids, late, duplicate and unknown replies,
// oversized frames, panics in user code. It runs on the connection's read
// goroutine or actor loop (a panicking presence watcher: on the presence
// goroutine) and must be quick. For a panic in the authentication hook c is
// nil: there is no connection yet.
func WithErrorHook(fn func(c *Conn, err error)) Option {
	return Option{"WithErrorHook", both, func(o *options) { o.onError = fn }}
}

// WithRequestTimeout bounds every request whose ctx has no sooner deadline.
// The timeout is sent to wsactor peers, whose handlers see it as a ctx
// deadline. Default 30s.
func WithRequestTimeout(d time.Duration) Option {
	return Option{"WithRequestTimeout", both, func(o *options) { o.requestTimeout = d }}
}

// WithMaxPending caps this side's requests in flight per connection; one more
// fails at once with [ErrTooManyPending]. Default 4096.
func WithMaxPending(n int) Option {
	return Option{"WithMaxPending", both, func(o *options) { o.maxPending = n }}
}

// WithMaxInbound caps the peer's requests in progress per connection. A
// request counts from the moment it is read until its handler has returned,
// even if the peer cancelled it or the connection's actor restarted
// meanwhile, so at most n handlers of one connection are running or
// waiting for a worker at any time. Default 1024.
//
// With n in progress, the connection stops reading until one ends: TCP
// backpressure makes the peer's sends wait, and every request is answered,
// later (as a stock Primus server does, which has no cap). Memory stays
// bounded: n requests and [WithMaxInboundBytes] of their data, and the
// socket buffers. Replies keep going out while reading waits, and a peer
// that sends without reading them meets [WithMaxOutboundBytes] and
// [WithWriteTimeout].
//
// One exception, so that a handler never waits for itself: while a
// handler of the connection waits for a reply from the peer ([Conn.Request]
// with the handler's ctx, or a ctx derived from it), the connection goes on
// reading, since that reply can only come through the reader, and a
// request over the cap is answered with an error reply of code [CodeBusy].
// A handler that waits for a reply through a ctx not derived from its own
// (or for another goroutine that does) is not seen: while the connection is
// at its cap, that reply waits behind the unread requests until a handler
// returns or the request times out. The peer's cancels and heartbeat
// answers wait there too: reads that wait longer than [WithPingInterval]
// allows get the connection dropped as dead (its handlers' ctx then ends),
// and a peer that closes meanwhile is seen once reading resumes or the
// heartbeat drops it.
//
// [WithBusyRefusal] answers every request over the cap with [CodeBusy] at
// once instead of waiting.
func WithMaxInbound(n int) Option {
	return Option{"WithMaxInbound", both, func(o *options) { o.maxInbound = n }}
}

// WithBusyRefusal answers a request over [WithMaxInbound] or
// [WithMaxInboundBytes] at once with an error reply of code [CodeBusy]
// (the reply's error; a stock Primus client sees it as an undefined
// answer), instead of pausing the connection's reads until a request ends. For peers that retry busy replies and want to
// know at once; memory stays bounded either way.
func WithBusyRefusal() Option {
	return Option{"WithBusyRefusal", both, func(o *options) { o.busyRefusal = true }}
}

// WithMaxInboundBytes caps the bytes of the peer's messages a connection
// holds: each request read (its id and data) from the moment it is read
// until its handler has returned, as [WithMaxInbound] counts it, and the
// replies and cancels read but not yet handled by the connection's actor.
// Default 1 MiB ([DefaultMaxInboundBytes]).
//
// Over it, the connection stops reading until a handler returns (TCP
// backpressure), exactly as over [WithMaxInbound], with the same
// exception: while a handler of the connection waits for a reply from the
// peer, reading goes on, replies get through, and a request over the
// budget is answered with an error reply of code [CodeBusy] (of which only
// the id was kept); [WithBusyRefusal] always answers busy. A message larger
// than n is read once nothing else is held, and alone: when you raise
// [WithMaxMessageSize] past n, raise n too, or messages that large are
// handled one at a time.
//
// Why 1 MiB: it is 16 messages of the default 64 KiB in progress at once
// per connection, and it bounds what a connection's requests can hold to
// the same order as [WithMaxOutboundBytes]: without it a peer could make
// the server hold [WithMaxInbound] × [WithMaxMessageSize] (1024 × 64 KiB
// = 64 MiB) per connection with slow handlers, plus as much again in the
// mailbox. With [WithMaxConnections]' 10,000 peers the budget adds up to
// 10 GiB at worst: lower it (or the connection cap) on a smaller machine.
func WithMaxInboundBytes(n int) Option {
	return Option{"WithMaxInboundBytes", both, func(o *options) { o.maxInboundB = n }}
}

// WithMailboxCapacity bounds each connection actor's mailbox. When it is
// full the connection's reader waits (TCP backpressure), [Conn.Request]
// waits and [Conn.Go] fails with [ErrMailboxFull]. Default 1024.
func WithMailboxCapacity(n int) Option {
	return Option{"WithMailboxCapacity", both, func(o *options) { o.mailbox = n }}
}

// WithMaxMessageSize is the largest message read or written. A larger
// incoming frame closes the connection with 1009 (as Primus does); a larger
// outgoing message fails with [ErrTooLarge]. Default 64 KiB.
//
// Why 64 KiB and not Primus's 10 MiB (or ws's 100 MiB): the limit is also
// what one peer can make the server hold, since the WebSocket layer
// allocates a frame's declared size when its 14-byte header arrives, before
// the payload; with 10 MiB, 16 connections sending only a header held
// 160 MiB. Chat messages and game updates are a few KiB (a 4,000-character
// chat message is at most 16 KiB of UTF-8), so 64 KiB is ample; Socket.IO
// stops at 1 MB. Raise it when your payloads are larger, on both sides: it
// bounds a [Client]'s reads and writes too, and the browser Primus client
// has no limit of its own. See [WithFrameTimeout] for the worst case.
func WithMaxMessageSize(n int) Option {
	return Option{"WithMaxMessageSize", both, func(o *options) { o.maxMessage = n }}
}

// WithMaxOutboundBytes bounds the bytes queued for writing per connection.
// A message that would go over fails with [ErrWriteQueueFull] and the
// connection stays; the peer is a slow reader. One message larger than n
// is queued when nothing else is. Default 1 MiB
// ([DefaultMaxOutboundBytes]).
//
// Why 1 MiB: a peer that sends requests and never reads the replies makes
// the server hold them here until the socket takes them, or until
// [WithWriteTimeout] (10 s) drops the connection once the socket stops
// taking bytes; the kernel's socket buffer comes on top. 1 MiB is 16
// replies of the default 64 KiB, or thousands of small ones, enough to
// ride out a reader's pause of a few seconds at chat or game rates; with
// [WithMaxConnections]' 10,000 peers it adds up to 10 GiB at worst, where
// 4 MiB (the default before) made 40 GiB. A busy broadcaster whose members
// may fall behind for longer can raise it; those over it are skipped
// ([BroadcastResult].Skipped) rather than buffered.
func WithMaxOutboundBytes(n int) Option {
	return Option{"WithMaxOutboundBytes", both, func(o *options) { o.maxOutbound = n }}
}

// WithWriteTimeout closes a connection whose socket write blocks longer (a
// stalled reader). Default 10s.
func WithWriteTimeout(d time.Duration) Option {
	return Option{"WithWriteTimeout", both, func(o *options) { o.writeTimeout = d }}
}

// WithFrameTimeout bounds how long a message may take to arrive once it has
// begun: from its first bytes (a frame header) the message, all its frames
// if it is fragmented, must be complete within d of waiting for the peer,
// or the connection is dropped with [ErrFrameTimeout] and its buffer
// released. Time the server spends between reads (a message handler
// running, a full mailbox) is not counted against the peer. Small messages
// arriving whole never set a deadline. Default 10s: the time
// [WithWriteTimeout] gives a peer to take our frames; a 64 KiB message
// arrives in it at 52 kbit/s.
//
// The worst case, with the defaults: N peers can make the server hold at
// most N × 256 KiB of message buffers for at most 10 s (of waiting for
// them; time the server itself holds a connection's reader, running its
// message handler or waiting for room in its mailbox, comes on top), after
// which each is dropped and its buffers released. A header-only frame of 64 KiB costs
// 128 KiB (the WebSocket layer's buffer pool rounds up to a power of two);
// a fragmented message adds its fragments' buffer, whose capacity can grow
// to twice [WithMaxMessageSize]. Measured over loopback: 16 peers that sent
// only a 14-byte header held 2.0 MiB (128 KiB each), 3.0 MiB (192 KiB each)
// after a full first fragment, and all were dropped 10.0 s after their
// header. With [WithMaxConnections]' 10,000 peers: at most 2.5 GiB for 10 s
// (1.25 GiB with unfragmented frames). A peer that reconnects starts over,
// within the same connection cap.
func WithFrameTimeout(d time.Duration) Option {
	return Option{"WithFrameTimeout", both, func(o *options) { o.frameTimeout = d }}
}

// Defaults of the limits a peer can push against (see SECURITY.md).
const (
	// DefaultMaxConnections is the default of [WithMaxConnections].
	DefaultMaxConnections = 10000
	// DefaultMaxMessageSize is the default of [WithMaxMessageSize].
	DefaultMaxMessageSize = conn.DefaultMaxMessageSize
	// DefaultFrameTimeout is the default of [WithFrameTimeout].
	DefaultFrameTimeout = conn.DefaultFrameTimeout
	// DefaultMaxOutboundBytes is the default of [WithMaxOutboundBytes].
	DefaultMaxOutboundBytes = conn.DefaultMaxOutboundBytes
	// DefaultMaxInboundBytes is the default of [WithMaxInboundBytes].
	DefaultMaxInboundBytes = actor.DefaultMaxInboundBytes
	// DefaultPresenceBacklog is the default of [WithPresenceBacklog].
	DefaultPresenceBacklog = 65536
)

// WithMaxConnections caps the server's open connections (upgrades in
// progress included): an upgrade beyond n is refused before the WebSocket
// handshake with HTTP 503 and "Retry-After: 5", and counted in
// [Stats].Refused. 0 means no limit. Default 10,000: a server on the public
// internet must not let connections grow until the process runs out of file
// descriptors (accept then fails for everyone, and every connection's
// buffers add up: see [WithFrameTimeout]); 10,000 fits under the common
// per-process limits of 16,384–20,000 descriptors with room for the
// listener, outgoing connections and files. Raise it (and the descriptor
// limit) for more.
func WithMaxConnections(n int) Option {
	return Option{"WithMaxConnections", serverOnly, func(o *options) { o.maxConns = n }}
}

// WithPresenceBacklog bounds the presence events ([Server.WatchPresence])
// waiting for slow watchers: while n are queued, [Conn.Join] and [Conn.Bind]
// fail with [ErrPresenceBacklog] and change nothing (leaves, unbinds and
// disconnects are still queued, so the queue holds at most n plus the
// memberships that exist). Each queued event holds its connection, so
// without a bound a watcher that falls behind a flood of joins (peers
// asking to switch rooms) would let memory grow without end. 0 means no
// bound. Default 65,536 ([DefaultPresenceBacklog]): a few MiB, and seconds
// of churn for a watcher that keeps up at all. No effect without watchers.
func WithPresenceBacklog(n int) Option {
	return Option{"WithPresenceBacklog", serverOnly, func(o *options) { o.presenceBacklog = n }}
}

// WithHandlerPool sets the pool that runs request handlers (shared by all
// connections of a server): at most workers at once and queue more waiting.
// A request finding both full is answered with [CodeBusy]. Waiting requests
// are queued per connection and the workers take them from the connections
// in turn (round-robin), each connection's in order: a connection's single
// request waits for about one handler's run time while another floods the
// pool, not for the flood. Default max(256, 64×GOMAXPROCS) workers and a
// queue of 65536.
func WithHandlerPool(workers, queue int) Option {
	return Option{"WithHandlerPool", both, func(o *options) { o.workers, o.queue = workers, queue }}
}

// WithRestartIntensity allows a connection's actor at most n restarts within
// d; at the next failure it gives up, fails what is pending with
// [ErrTooManyRestarts] and closes the connection with 1011. Default 5 within
// 10s, as in Erlang/OTP.
func WithRestartIntensity(n int, d time.Duration) Option {
	return Option{"WithRestartIntensity", both, func(o *options) { o.restartMax, o.restartWithin = n, d }}
}

// WithPingInterval is how often the server sends "primus::ping::<ms>" to
// each connection. Default 30s (Primus's default; browser Primus clients
// give up after 1.5× this). 0 turns heartbeats off.
//
// Anything read from a peer counts as a sign of life (a pong, a WebSocket
// PING, any message), and a connection is dropped ([ErrHeartbeat], without
// a close frame, so that a Primus client reconnects) only when nothing has
// been read from it for two whole intervals: between 2 and 3 intervals after
// the last thing read, plus the heartbeat's own scheduling delay on a busy
// server. A client therefore has at least two intervals to answer a ping.
// The pings are spread over the interval (each connection has its own phase
// in it) rather than sent as one burst. One goroutine per server does this,
// with no timer per connection.
func WithPingInterval(d time.Duration) Option {
	return Option{"WithPingInterval", serverOnly, func(o *options) { o.pingInterval = d }}
}

// WithAllowedOrigins lets browsers from other origins connect. Patterns
// match the Origin's host (and port), as path.Match does:
// "example.com", "*.example.com", "127.0.0.1:*". By default only same-origin
// pages and clients that send no Origin (non-browsers) may connect; "*"
// allows every origin (not advised: any web page could use your users'
// cookies).
func WithAllowedOrigins(patterns ...string) Option {
	return Option{"WithAllowedOrigins", serverOnly, func(o *options) { o.origins = append(o.origins, patterns...) }}
}

// WithAuthenticate checks each upgrade request before it is accepted. A nil
// error accepts it and identity is kept ([Conn.Identity]). An error refuses
// it with HTTP 401, or with the status of an error that has a
// StatusCode() int method, and the body {"error":"<message>"} as Primus
// does.
func WithAuthenticate(fn func(r *http.Request) (identity any, err error)) Option {
	return Option{"WithAuthenticate", serverOnly, func(o *options) { o.authenticate = fn }}
}

// WithHeader adds headers to the client's upgrade request (Origin,
// Authorization, Cookie, …).
func WithHeader(h http.Header) Option {
	return Option{"WithHeader", clientOnly, func(o *options) { o.header = h.Clone() }}
}

// WithDialTimeout bounds each connection attempt of a client, [Dial]'s
// first one and every reconnect: TCP connect, TLS and the WebSocket
// handshake. An attempt that has not completed within d fails with an
// error matching [ErrDial] and [context.DeadlineExceeded], and the client
// tries again after its backoff ([WithReconnect]); a server that accepts
// TCP but never answers (a black-holed load balancer) cannot hold it.
// Dial's ctx bounds its first attempt too, whichever ends first. Default
// 10s.
func WithDialTimeout(d time.Duration) Option {
	return Option{"WithDialTimeout", clientOnly, func(o *options) { o.dialTimeout = d }}
}

// WithPingTimeout makes the client drop and reconnect when no
// "primus::ping" arrived for d, like the Primus browser client. Default 45s
// (1.5 × the default ping interval); 0 turns it off.
func WithPingTimeout(d time.Duration) Option {
	return Option{"WithPingTimeout", clientOnly, func(o *options) { o.pingTimeout = d }}
}

// WithReconnect sets how the client reconnects after a lost connection:
// backoff between attempts (exponential with jitter), at most n reconnects
// within d before it gives up with [ErrTooManyRestarts]. A connection that
// lasted resetAfter or more resets the backoff to its first step (0: never).
// Defaults: 500ms doubling to 30s with jitter 0.5, 20 within a minute,
// reset after 10s. [Dial] refuses, before any network I/O, a negative Min,
// Max or resetAfter, a Factor that is not 0 (the default) or a finite value
// >= 1, a Jitter above 1 or NaN, n < 0 or d <= 0. Each attempt is bounded
// by [WithDialTimeout].
func WithReconnect(b Backoff, n int, d, resetAfter time.Duration) Option {
	return Option{"WithReconnect", clientOnly, func(o *options) {
		o.backoff, o.reconnectMax, o.reconnectWithin, o.resetAfter = b, n, d, resetAfter
	}}
}

// originAllowed reports whether a browser at origin may open r.
func originAllowed(r *http.Request, patterns []string) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true // not a browser
	}
	host := origin
	if i := strings.Index(host, "://"); i >= 0 {
		host = host[i+3:]
	} else {
		return false // "null" and other opaque origins
	}
	host = strings.TrimSuffix(host, "/")
	if strings.EqualFold(host, r.Host) {
		return true
	}
	for _, p := range patterns {
		if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(host)); ok {
			return true
		}
	}
	return false
}
