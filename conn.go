package wsactor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/sourcegraph/conc/panics"
	"github.com/wsactor/wsactor/actor"
	"github.com/wsactor/wsactor/conn"
	"github.com/wsactor/wsactor/envelope"
	"github.com/wsactor/wsactor/supervisor"
)

// Conn is one WebSocket connection and its actor, on the server or the
// client side. All methods may be called concurrently from any goroutine.
// A Conn is made by a [Server] or a [Client]; the zero value is not usable.
type Conn struct {
	a        *actor.Actor
	wc       *conn.Conn
	sh       *shared
	identity any
	query    url.Values
	closeErr atomic.Pointer[error]

	intensity *supervisor.Intensity // owned by the actor's loop; made at the first failure
}

// shared is what every Conn of one Server or Client uses.
type shared struct {
	o     options
	cfg   *actor.Config
	pool  *actor.Pool
	stats *counters
	gone  func(*Conn) // the server forgets the Conn: called before its Done closes
	rooms *registry   // a server's rooms and keys (rooms.go); nil on a client
}

// counters are the root package's own counters; see [Stats].
type counters struct {
	accepted, refused, closed atomic.Int64
	messagesIn, messagesOut   atomic.Int64
	badInput                  atomic.Int64
	reconnects                atomic.Int64

	// For metrics (observe.go): by reason and kind; heartbeat drops;
	// restart windows exhausted; broadcast writes.
	refusedBy                                      [NumRefuseReasons]atomic.Int64
	badInputBy                                     [NumBadInputKinds]atomic.Int64
	heartbeats, giveUps                            atomic.Int64
	broadcastSent, broadcastSkipped, broadcastGone atomic.Int64
}

func newShared(o options, st *counters) (*shared, error) {
	sh := &shared{o: o, stats: st}
	pool, err := actor.NewPool(o.workers, o.queue)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidOption, err)
	}
	if o.onRequest != nil {
		// Without a request handler no task is ever submitted: the pool
		// (validated above) is not kept, and a Client without a handler
		// holds none.
		sh.pool = pool
	}
	actorOpts := []actor.Option{
		actor.WithRequestTimeout(o.requestTimeout),
		actor.WithMaxPending(o.maxPending),
		actor.WithMaxInbound(o.maxInbound),
		actor.WithMaxInboundBytes(o.maxInboundB),
		actor.WithMailboxCapacity(o.mailbox),
		actor.WithRestartDecider(sh.decide),
		actor.WithBadInputHook(func(a *actor.Actor, err error) { sh.badInput(a.Tag().(*Conn), err) }),
	}
	if o.observer != nil {
		actorOpts = append(actorOpts, actor.WithObserver(o.observer))
	}
	if o.busyRefusal {
		actorOpts = append(actorOpts, actor.WithBusyRefusal())
	}
	if o.onRequest != nil {
		actorOpts = append(actorOpts, actor.WithHandler(sh.handle, pool))
		if o.inlineHandlers {
			actorOpts = append(actorOpts, actor.WithInlineHandlers())
		}
	}
	if sh.cfg, err = actor.NewConfig(actorOpts...); err != nil {
		pool.Close()
		return nil, fmt.Errorf("%w: %w", ErrInvalidOption, err)
	}
	return sh, nil
}

// closePool closes the handler pool, if there is one.
func (sh *shared) closePool() {
	if sh.pool != nil {
		sh.pool.Close()
	}
}

func (sh *shared) connOptions(role conn.Role) conn.Options {
	o := conn.Options{
		MaxMessageSize:   sh.o.maxMessage,
		MaxOutboundBytes: sh.o.maxOutbound,
		WriteTimeout:     sh.o.writeTimeout,
		FrameTimeout:     sh.o.frameTimeout,
		Compression:      sh.o.compression, // WithCompression (compress.go)
	}
	if role == conn.Client {
		o.PingTimeout = sh.o.pingTimeout
	}
	return o
}

// decide is the actor's restart decider: the connection's restart window.
// It runs on the actor's loop, which owns c.intensity.
func (sh *shared) decide(a *actor.Actor, cause error) error {
	c := a.Tag().(*Conn)
	sh.badInput(c, cause)
	if c.intensity == nil {
		c.intensity = supervisor.NewIntensity(sh.o.restartMax, sh.o.restartWithin)
	}
	if !c.intensity.Allow(time.Now()) {
		sh.stats.giveUps.Add(1)
		return fmt.Errorf("%w (more than %d within %v): %w", ErrTooManyRestarts, sh.o.restartMax, sh.o.restartWithin, cause)
	}
	return nil
}

// handle adapts the user's RequestHandler to the actor's.
func (sh *shared) handle(ctx context.Context, a *actor.Actor, in actor.Incoming) ([]byte, error) {
	c := a.Tag().(*Conn)
	ctx = sh.handlerCtx(ctx)
	v, err := sh.o.onRequest(ctx, c, Request{ID: in.ID, Data: in.Data, Timeout: in.Timeout})
	if err != nil {
		return nil, err
	}
	if raw, ok := v.(json.RawMessage); ok && within(raw, in.Data) {
		// An echo, or a part of the request passed on: the decoder
		// validated these bytes already; a second scan would double the
		// cost of a large payload.
		return raw, nil
	}
	data, err := encodeData(v)
	if err != nil {
		return nil, &RemoteError{Code: CodeEncode, Message: err.Error()}
	}
	return data, nil
}

// within reports whether b is a non-empty slice lying entirely inside
// outer. Only the exact value of outer, a JSON value the decoder validated,
// is treated as valid by the caller: a sub-slice of it need not be valid
// JSON on its own, so within accepts only b == outer (same start, same
// length).
func within(b, outer []byte) bool {
	return len(b) > 0 && len(b) == len(outer) && unsafe.SliceData(b) == unsafe.SliceData(outer)
}

func (sh *shared) badInput(c *Conn, err error) {
	sh.stats.badInput.Add(1)
	sh.stats.badInputBy[badKind(err)].Add(1)
	if sh.o.onError == nil {
		return
	}
	err = public(err)
	var pc panics.Catcher
	pc.Try(func() { sh.o.onError(c, err) })
	// A panicking error hook is not escalated: that would loop.
}

// encodeData turns a value into the raw JSON of an envelope's "data"; nil
// raw means "leave it out".
func encodeData(v any) ([]byte, error) {
	switch v := v.(type) {
	case noData:
		return nil, nil
	case json.RawMessage:
		if v == nil {
			return []byte("null"), nil
		}
		if !envelope.Valid(v) {
			return nil, fmt.Errorf("%w: json.RawMessage is not valid JSON", ErrEncode)
		}
		return v, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEncode, err)
	}
	return b, nil
}

func newConn(sh *shared) *Conn {
	return &Conn{sh: sh}
}

// transport is what the actor writes to: the conn, with "closed" reported
// as a lost connection.
type transport struct{ *conn.Conn }

func (t transport) Write(frame []byte) error { return lost(t.Conn.Write(frame)) }

func (t transport) WriteAlone(frame []byte) error { return lost(t.Conn.WriteAlone(frame)) }

func lost(err error) error {
	if errors.Is(err, conn.ErrClosed) {
		return fmt.Errorf("%w: %w", ErrConnLost, err)
	}
	return err
}

// start makes the actor once the transport exists.
func (c *Conn) start(wc *conn.Conn) error {
	a, err := actor.New(transport{wc}, c.sh.cfg, c)
	if err != nil {
		return err
	}
	c.a, c.wc = a, wc
	return nil
}

// Request sends v (JSON-encoded; [json.RawMessage] as it is; [NoData] leaves
// "data" out) to the peer and waits for the reply. The error is one of the
// outcomes listed for [ErrTimeout] and its siblings, or a [*RemoteError].
// It may be called from a [RequestHandler] on its own connection.
func (c *Conn) Request(ctx context.Context, v any) (Response, error) {
	data, err := encodeData(v)
	if err != nil {
		return Response{}, err
	}
	r, err := c.a.Request(c.sh.traceCtx(c, ctx), data)
	return Response{Data: r.Data}, public(err)
}

// Go sends v like [Conn.Request] and calls cb exactly once with the outcome,
// without a goroutine per call. cb runs on the connection's actor loop: it
// must be quick and must not wait for this connection; a panic in it
// restarts the actor. If Go returns an error, nothing was sent and cb is
// never called.
func (c *Conn) Go(ctx context.Context, v any, cb func(Response, error)) error {
	data, err := encodeData(v)
	if err != nil {
		return err
	}
	if cb == nil {
		return fmt.Errorf("%w: Go needs a callback", ErrInvalidArgument)
	}
	return public(c.a.Go(c.sh.traceCtx(c, ctx), data, func(r actor.Reply, err error) { cb(Response{Data: r.Data}, public(err)) }))
}

// Send sends v as a plain message: one JSON text frame, no reply. It never
// blocks; [ErrWriteQueueFull] says the peer is not reading fast enough,
// [ErrTooLarge] that v is over [WithMaxMessageSize], and [ErrClosed] that
// the connection is closed or closing. A nil v (JSON null) is refused with
// [ErrNullMessage].
func (c *Conn) Send(v any) error {
	data, err := encodeData(v)
	if err != nil {
		return err
	}
	if data == nil || envelope.IsNull(data) {
		return ErrNullMessage
	}
	if err := c.wc.Write(data); err != nil {
		if errors.Is(err, conn.ErrClosed) {
			return ErrClosed
		}
		return public(err)
	}
	c.sh.stats.messagesOut.Add(1)
	return nil
}

// Close ends the connection on purpose: pending requests fail with
// [ErrClosed]. On a server the peer is told not to reconnect
// ("primus::server::close"). On a [Client]'s connection it ends this
// session only: the client reconnects (use [Client.Close] to stop it). It
// does not wait; see [Conn.Done]. A second call returns [ErrClosed].
func (c *Conn) Close() error {
	c.a.Stop(ErrClosed, 0, "")
	var err error
	if c.wc.Role() == conn.Server {
		err = c.wc.End()
	} else {
		err = c.wc.Close(1000, "")
	}
	if errors.Is(err, conn.ErrClosed) {
		return ErrClosed
	}
	return public(err)
}

// Done is closed when the connection has closed, every request on it has
// ended and the disconnect hook has returned.
func (c *Conn) Done() <-chan struct{} {
	// The transport's: it is closed once our OnClose (connEvents.OnClose)
	// has returned, and made only when someone asks.
	return c.wc.Done()
}

// Err returns why the connection closed, or nil while it is open:
// [ErrClosed] when this side closed it ([Conn.Close], a shutdown),
// [ErrServerEnded] when the server ended it on purpose, else
// [ErrConnLost] wrapping why: a [*CloseError] with the peer's close code,
// [ErrHeartbeat], [ErrWriteTimeout], [ErrTooLarge], a network error.
func (c *Conn) Err() error {
	if p := c.closeErr.Load(); p != nil {
		return *p
	}
	return nil
}

// ID is the connection's id (the Primus spark id on the server side).
func (c *Conn) ID() string { return c.wc.ID() }

// Identity is what the authentication hook returned for this connection.
func (c *Conn) Identity() any { return c.identity }

// Query is the query of the upgrade request (server side), without
// Primus's cache buster "_primuscb".
func (c *Conn) Query() url.Values { return c.query }

// RemoteAddr is the peer's network address.
func (c *Conn) RemoteAddr() net.Addr { return c.wc.RemoteAddr() }

// Pending reports this side's requests in flight on the connection.
func (c *Conn) Pending() int { return c.a.Pending() }

// The conn.Handler of a Conn, on the connection's read goroutine.
type connEvents Conn

func (e *connEvents) conn() *Conn { return (*Conn)(e) }

func (e *connEvents) OnOpen(*conn.Conn) {
	c := e.conn()
	if fn := c.sh.o.onConnect; fn != nil {
		c.userCode(func() { fn(c) })
	}
}

func (e *connEvents) OnEnvelope(_ *conn.Conn, env envelope.Envelope) {
	c := e.conn()
	if env.Kind != envelope.KindData {
		_ = c.a.Deliver(env)
		return
	}
	c.sh.stats.messagesIn.Add(1)
	if fn := c.sh.o.onMessage; fn != nil {
		msg := json.RawMessage(append([]byte(nil), env.Data...))
		c.userCode(func() { fn(c, msg) })
	}
}

// OnSocketClosed: this side closed the socket. A reader waiting for room
// in the actor (backpressure) could not see it: stop its wait.
func (e *connEvents) OnSocketClosed(*conn.Conn) {
	if a := e.conn().a; a != nil {
		a.TransportClosed()
	}
}

func (e *connEvents) OnBadInput(wc *conn.Conn, err error) {
	c := e.conn()
	var re *envelope.RequestError
	if errors.As(err, &re) {
		// A request that cannot be delivered (its data nests too deep)
		// but whose id was read: answer it, or its sender waits for its
		// timeout. It never reached the actor, which has nothing to end.
		frame := envelope.AppendErrorResponse(nil, re.ID, envelope.Error{Code: CodeBadRequest, Message: re.Err.Error()})
		_ = wc.Write(frame) // a refused write: the peer is gone or not reading
	}
	c.sh.badInput(c, err)
}

func (e *connEvents) OnClose(_ *conn.Conn, err error) {
	c := e.conn()
	if c.sh.gone != nil {
		// Deferred, so that a server's Conns and Stats no longer count c
		// once c.Done is closed, even if a hook below panicked.
		defer c.sh.gone(c)
	}
	if errors.Is(err, conn.ErrHeartbeat) {
		c.sh.stats.heartbeats.Add(1)
	}
	cause := fmt.Errorf("%w: %w", ErrConnLost, err)
	err = closeCause(err)
	c.closeErr.Store(&err)
	c.a.Closed(cause)
	<-c.a.Done() // quick: the loop never blocks
	if fn := c.sh.o.onDisconnect; fn != nil {
		var pc panics.Catcher
		pc.Try(func() { fn(c, err) })
		if r := pc.Recovered(); r != nil {
			c.sh.badInput(c, fmt.Errorf("%w: disconnect hook: %w", ErrHandlerPanic, actor.NewPanicError(r)))
		}
	}
	c.sh.stats.closed.Add(1)
	// Returning closes Done (the transport's channel).
}

// closeCause is why a connection closed, as [Conn.Err] and the disconnect
// hook tell it.
func closeCause(err error) error {
	switch {
	case errors.Is(err, conn.ErrClosedLocally):
		return ErrClosed
	case errors.Is(err, conn.ErrServerEnded):
		return public(err)
	}
	return public(fmt.Errorf("%w: %w", ErrConnLost, err))
}

// userCode runs a hook or message handler on the read goroutine; a panic in
// it is a failure of the connection's actor.
func (c *Conn) userCode(fn func()) {
	var pc panics.Catcher
	pc.Try(fn)
	if r := pc.Recovered(); r != nil {
		c.a.Fail(fmt.Errorf("%w: %w", ErrHandlerPanic, actor.NewPanicError(r)))
	}
}
