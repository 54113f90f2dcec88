package actor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"
)

// Transport is what an actor writes frames to. *conn.Conn satisfies it.
type Transport interface {
	// Write queues one text frame. It must not block, must copy frame (the
	// caller reuses it) and must keep the order of Writes.
	Write(frame []byte) error
	// Close sends a close frame with code and reason and closes the
	// connection. It may be called more than once.
	Close(code uint16, reason string) error
}

// AloneWriter is an optional interface of a [Transport]: WriteAlone is
// Write for a frame the actor knows no other frame of its will soon follow
// (a request while no other is pending, a reply while no other request is
// in progress), so the transport may write it at once instead of waiting to
// batch it with others. Same contract as Write.
type AloneWriter interface {
	WriteAlone(frame []byte) error
}

// Incoming is a request from the peer, as the handler sees it. Its slices
// belong to the handler.
type Incoming struct {
	ID      []byte        // the peer's request id, raw JSON, echoed verbatim in the reply
	Data    []byte        // raw JSON of "data"; nil when the peer left it out
	Timeout time.Duration // how long the peer says it will wait (wsactor extension); 0 when unknown
}

// Handler answers a request from the peer. It runs on a [Pool] worker, not
// on the actor's loop, so it may block and may itself call [Actor.Request] on
// the same actor (unless the Config has [WithInlineHandlers]). data is the raw JSON put in the reply's "data" (nil leaves
// it out). A non-nil err becomes an error reply: a [*RemoteError] is sent as
// it is, any other error with code [CodeError] and err.Error() as the message.
// ctx ends when the peer cancels, the actor restarts or stops, or the peer's
// timeout passes.
type Handler func(ctx context.Context, a *Actor, req Incoming) (data []byte, err error)

// Reply is the answer to a request.
type Reply struct {
	Data []byte // raw JSON of "data"; nil when the peer left it out
}

// Stats counts what actors did. One Stats may be shared by many actors (a
// server shares one across its connections); all fields are atomic.
//
// Every request that reaches an actor ends in exactly one outcome, so
// Requests == Replied + RemoteErrors + TimedOut + Canceled + Failed +
// Pending whenever no request is being registered or ended (the fields are
// read one by one).
type Stats struct {
	Requests     atomic.Int64 // requests this side asked (reached the actor)
	Replied      atomic.Int64 // answered with data
	RemoteErrors atomic.Int64 // answered with an error reply
	TimedOut     atomic.Int64
	Canceled     atomic.Int64
	Failed       atomic.Int64 // connection lost, restart, shutdown, refused, not sent
	Pending      atomic.Int64 // gauge: asked and not yet ended

	LateReplies    atomic.Int64 // replies to ids no longer pending (late or duplicate): dropped
	UnknownReplies atomic.Int64 // replies to ids we never issue: dropped

	Received          atomic.Int64 // requests from the peer
	Answered          atomic.Int64 // replies sent with data
	AnsweredError     atomic.Int64 // error replies sent (handler errors, busy, shutdown, …)
	RepliesNotSent    atomic.Int64 // replies the transport refused (the peer was gone or not reading)
	HandlerPanics     atomic.Int64
	Busy              atomic.Int64 // peer requests refused for lack of room
	CancelsReceived   atomic.Int64
	DuplicateRequests atomic.Int64
	Inbound           atomic.Int64 // gauge: peer requests being handled
	InboundBytes      atomic.Int64 // gauge: bytes of the peer's envelopes held (Actor.InboundBytes, summed)

	Restarts atomic.Int64
	Stopped  atomic.Int64 // actors that stopped
}

// Config holds what every actor of one kind shares: limits, the handler and
// the hooks. Build it once with [NewConfig]; it is read-only afterwards and
// safe for concurrent use.
type Config struct {
	handler         Handler
	pool            *Pool
	inline          bool
	requestTimeout  time.Duration
	maxPending      int
	maxInbound      int
	maxInboundBytes int64
	refuseBusy      bool
	mailboxCapacity int
	decide          func(a *Actor, cause error) error
	onBadInput      func(a *Actor, err error)
	onRestart       func(a *Actor, cause error)
	observer        Observer
	stats           *Stats
}

// Option configures a [Config].
type Option func(*Config)

func defaultConfig() Config {
	return Config{
		requestTimeout:  30 * time.Second,
		maxPending:      4096,
		maxInbound:      1024,
		maxInboundBytes: DefaultMaxInboundBytes,
		mailboxCapacity: 1024,
	}
}

// WithHandler answers the peer's requests with h on pool's workers. Without a
// handler every peer request gets an error reply of code [CodeNoHandler].
func WithHandler(h Handler, pool *Pool) Option {
	return func(c *Config) { c.handler, c.pool = h, pool }
}

// WithInlineHandlers runs the handler on the actor's loop, as soon as the
// request is read, instead of on a [Pool] worker. A burst of requests read
// together is answered together (their replies are written in one batch
// when the transport batches), and no goroutine hand-off is paid per
// request: at 64 requests in flight on one connection this roughly halved
// the server's CPU per request in BENCHMARKS.md. The handler's ctx still
// carries the peer's timeout (a cancel from the peer cannot arrive while it
// runs), a panic in it is caught and restarts the actor as on the pool, and
// the requests of one actor are answered in the order they arrived.
//
// The contract: such a handler must not block, because nothing else happens
// on that connection while it runs (no reads, replies, timeouts or cancels),
// and it must never call [Actor.Request] on its own actor: the loop would
// wait for itself, forever. [Actor.Go] and writes that only queue are fine.
// The pool given to [WithHandler] is not used (it may be nil).
func WithInlineHandlers() Option { return func(c *Config) { c.inline = true } }

// WithRequestTimeout bounds every request that a ctx deadline does not bound
// sooner. Default 30s.
func WithRequestTimeout(d time.Duration) Option { return func(c *Config) { c.requestTimeout = d } }

// WithMaxPending caps this side's requests in flight per actor; one more
// fails at once with [ErrTooManyPending]. Default 4096.
func WithMaxPending(n int) Option { return func(c *Config) { c.maxPending = n } }

// WithMaxInbound caps the peer's requests in progress per actor. A request
// counts from its acceptance until its handler has returned, even when the
// peer cancelled it or the actor restarted meanwhile (its handler may still
// be running or waiting for a worker), so at most n handlers of one actor
// are running or queued in the pool at any time. Default 1024.
//
// When n are in progress, [Actor.Deliver] of one more request waits until
// one ends: the connection's reader stops reading and TCP backpressure
// reaches the peer, whose requests are then all answered, later. One
// exception keeps a handler from waiting for itself: while a handler of
// this actor waits for a reply from the peer (a request made with the
// handler's ctx, or a ctx derived from it, to the same actor), the reader
// keeps reading, and a request over the cap is answered with an error reply
// of code [CodeBusy]. With [WithBusyRefusal] every request over the cap is.
func WithMaxInbound(n int) Option { return func(c *Config) { c.maxInbound = n } }

// DefaultMaxInboundBytes is the default of [WithMaxInboundBytes]: 1 MiB,
// 16 messages of 64 KiB in progress at once.
const DefaultMaxInboundBytes = 1 << 20

// WithMaxInboundBytes caps the bytes of the peer's envelopes an actor
// holds: what [Actor.Deliver] copied (ids, data, error replies' text) and
// has not yet released, that is the envelopes waiting in the mailbox and
// each accepted request until its handler has returned (the same moment
// [WithMaxInbound] counts it until). Default [DefaultMaxInboundBytes].
//
// Over the cap, Deliver waits for room exactly as for [WithMaxInbound]
// (one wait, woken when either count drops), with the same exception: while
// a handler of this actor waits for a reply from the peer, the reader reads
// on, replies and cancels go in, and a request over the cap is answered
// with an error reply of code [CodeBusy] (only its id is kept). With
// [WithBusyRefusal] a request over the cap always is; responses and
// cancels still wait. An envelope larger than n is let in alone, once
// nothing else is held, so the actor always makes progress: the actor holds
// at most max(n, one envelope) while nobody waits for a reply, n plus the
// mailbox's replies while one does.
func WithMaxInboundBytes(n int) Option { return func(c *Config) { c.maxInboundBytes = int64(n) } }

// WithBusyRefusal answers a peer request over [WithMaxInbound] or
// [WithMaxInboundBytes] at once with an error reply of code [CodeBusy],
// instead of waiting for room (which stops reading that connection). Memory stays bounded either way; a peer
// that does not retry busy replies (a stock Primus client sees them as
// undefined) is better served by the default.
func WithBusyRefusal() Option { return func(c *Config) { c.refuseBusy = true } }

// WithMailboxCapacity bounds the actor's user lane. When it is full,
// [Actor.Request] and [Actor.Deliver] wait for room (the connection's reader
// stops reading: TCP backpressure) and [Actor.Go] fails with
// [ErrMailboxFull]. Default 1024.
func WithMailboxCapacity(n int) Option { return func(c *Config) { c.mailboxCapacity = n } }

// WithRestartDecider is asked, on the actor's loop, what to do after a
// failure (a panic in a handler or a callback, or [Actor.Fail]). nil means
// restart: pending requests fail with [ErrRestarted] wrapping the cause, the
// peer's requests in progress get error replies of code [CodeRestarted], and
// the actor goes on. A non-nil error stops the actor with that error and
// closes the transport with 1011. Without a decider the actor always
// restarts. decide must not block.
func WithRestartDecider(decide func(a *Actor, cause error) error) Option {
	return func(c *Config) { c.decide = decide }
}

// WithBadInputHook is told about input that was dropped: late, duplicate and
// unknown replies, duplicate request ids. It runs on the actor's loop and
// must not block; a panic in it counts as a failure of the actor.
func WithBadInputHook(fn func(a *Actor, err error)) Option {
	return func(c *Config) { c.onBadInput = fn }
}

// WithRestartHook is told, on the actor's loop, about each restart.
func WithRestartHook(fn func(a *Actor, cause error)) Option {
	return func(c *Config) { c.onRestart = fn }
}

// WithStats counts into s (shared by every actor of this Config). Without
// it the Config has a Stats of its own.
func WithStats(s *Stats) Option { return func(c *Config) { c.stats = s } }

// NewConfig validates the options once.
func NewConfig(opts ...Option) (*Config, error) {
	c := defaultConfig()
	for _, o := range opts {
		o(&c)
	}
	var errs []error
	if c.handler != nil && c.pool == nil && !c.inline {
		errs = append(errs, errors.New("actor: WithHandler needs a pool (or WithInlineHandlers)"))
	}
	if c.requestTimeout <= 0 {
		errs = append(errs, fmt.Errorf("actor: request timeout %v, want > 0", c.requestTimeout))
	}
	if c.maxPending < 1 {
		errs = append(errs, fmt.Errorf("actor: max pending %d, want >= 1", c.maxPending))
	}
	if c.maxInbound < 1 || c.maxInbound > math.MaxInt32 {
		errs = append(errs, fmt.Errorf("actor: max inbound %d, want 1 to %d", c.maxInbound, math.MaxInt32))
	}
	if c.maxInboundBytes < 1 {
		errs = append(errs, fmt.Errorf("actor: max inbound bytes %d, want >= 1", c.maxInboundBytes))
	}
	if c.mailboxCapacity < 1 {
		errs = append(errs, fmt.Errorf("actor: mailbox capacity %d, want >= 1", c.mailboxCapacity))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if c.stats == nil {
		c.stats = new(Stats)
	}
	return &c, nil
}

// Stats returns the counters this Config's actors update.
func (c *Config) Stats() *Stats { return c.stats }
