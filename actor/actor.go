package actor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/sourcegraph/conc/panics"
	"github.com/wsactor/wsactor/envelope"
	"github.com/wsactor/wsactor/mailbox"
)

// Actor is the request-response state of one connection. Its loop (the
// mailbox's drainer) alone owns the map of this side's pending requests and
// the map of the peer's requests being handled; everything that touches them
// is a message: a request to send, an envelope from the peer, a timeout, a
// cancel, a handler's result, a failure, a drain or a stop.
//
// All methods may be called concurrently. The zero value is not usable: use
// [New].
type Actor struct {
	cfg *Config
	t   Transport
	tag any
	mb  *mailbox.Mailbox[msg]

	pendingN atomic.Int32
	handlers int32 // owned by the loop: accepted peer requests whose handler has not returned (what WithMaxInbound caps)
	stopErr  atomic.Pointer[error]
	flow     atomic.Pointer[inflow] // made by the first request from the peer (or TransportClosed)

	// Owned by the loop.
	pending   slots[envelope.ID, *call]
	inbound   slots[string, *task] // by task.key
	stopped   bool
	draining  bool
	drained   []chan struct{} // Drain callers waiting for nothing in flight
	deadlines deadlines       // pending calls by deadline
	timer     *time.Timer     // fires a tick at timerAt
	timerAt   int64           // the deadline the timer is armed for; 0: not armed
	failure   error           // a failure raised while handling a message, handled after it
	gaveUp    bool            // the restart decider stopped the actor (for the Observer)
}

// inflow is what Deliver and the loop share about the peer's envelopes
// held (see admit). It is made at the first envelope from the peer, so that
// a connection that never gets one does not pay for it.
type inflow struct {
	// admitted counts requests Deliver let in that have not ended: not yet
	// read by the loop, refused, or accepted and their handler has not
	// returned.
	admitted atomic.Int32
	// bytes counts what Deliver copied and the actor still holds (what
	// WithMaxInboundBytes caps): envelopes in the mailbox, and each
	// accepted request's buffer until its handler has returned.
	bytes atomic.Int64
	// selfWaits counts this side's pending requests made by the actor's own
	// handlers: while one waits for its reply, the reader must read on.
	selfWaits atomic.Int32
	// gone: the transport has closed (TransportClosed); nothing waits then.
	gone atomic.Bool
	// room is the channel a Deliver waiting for room waits on; whoever
	// makes room swaps it out and closes it.
	room atomic.Pointer[chan struct{}]
}

// inflow returns a's inflow, making it if needed. Any goroutine.
func (a *Actor) inflow() *inflow {
	if f := a.flow.Load(); f != nil {
		return f
	}
	a.flow.CompareAndSwap(nil, new(inflow))
	return a.flow.Load()
}

type op uint8

const (
	opRegister op = iota + 1
	opInbound
	opCancel
	opResult
	opFail
	opDrain
	opStop
	opTick
)

type msg struct {
	op    op
	kind  envelope.Kind // opInbound: the envelope's kind
	code  uint16        // opStop: close code; opResult: quietResult; opInbound: inHasData or inBusy
	idLen uint32        // opInbound: data[:idLen] is the id
	call  *call
	task  *task
	data  []byte
	err   error // opInbound: a *RemoteError for an error reply
	ch    chan struct{}
	// opInbound: the request's timeout in ms. The envelope's fields travel
	// in msg by value so that Deliver makes one allocation, the buffer.
	timeout int64
}

// Flags in an opInbound msg's code: inHasData, the envelope has "data";
// inHasTrace, a request has a traceparent (its TraceparentLen bytes lie
// between data and key); inBusy, a request over WithMaxInboundBytes that
// Deliver did not wait for: only its id was kept, and it is answered with
// busy.
const (
	inHasData  = 1
	inHasTrace = 2
	inBusy     = 4
)

// held is what m counts against WithMaxInboundBytes: the buffer Deliver
// copied the envelope into, and an error reply's text.
func (m *msg) held() int64 {
	n := int64(len(m.data))
	if re, ok := m.err.(*RemoteError); ok {
		n += int64(len(re.Code) + len(re.Message))
	}
	return n
}

// delivery is an envelope from the peer as the loop reads it out of an
// opInbound msg. Its slices alias the buffer Deliver copied the envelope
// into: id, then data, then (requests only) the id again for key, which no
// slice given to user code reaches.
type delivery struct {
	kind    envelope.Kind
	id      []byte
	data    []byte // nil when the peer left "data" out
	key     string // requests: the id as the inbound map key; nothing writes it
	hasTP   bool   // requests: the peer's traceparent lies just before key (task.traceparent)
	rerr    error  // a *RemoteError when the peer answered with an error
	timeout int64
	held    int64 // what the envelope counts against WithMaxInboundBytes
	busy    bool  // a request to refuse with busy (inBusy)
}

func (m *msg) delivery() delivery {
	nid := int(m.idLen)
	d := delivery{kind: m.kind, id: m.data[:nid:nid], rerr: m.err, timeout: m.timeout, held: m.held(), busy: m.code&inBusy != 0}
	end := len(m.data)
	if m.kind == envelope.KindRequest {
		end -= nid
		k := m.data[end:]
		d.key = unsafe.String(unsafe.SliceData(k), len(k))
		if m.code&inHasTrace != 0 {
			end -= envelope.TraceparentLen
			d.hasTP = true
		}
	}
	if m.code&inHasData != 0 {
		d.data = m.data[nid:end:end]
	}
	return d
}

type callState uint8

const (
	stNew callState = iota
	stPending
	stDone
)

type call struct {
	id      envelope.ID
	frame   *[]byte
	timeout time.Duration
	ch      chan result
	cb      func(Reply, error)
	stopCtx func() bool
	// Made by a handler of this actor (its ctx leads to the handler's
	// task): while it is pending the reader does not wait for room.
	fromHandler bool
	// Owned by the loop once posted: state and the fields after claim.
	state callState
	// claim (Request only) is shared: who settles the outcome, the loop
	// (claimLoop; it then sends on ch) or the caller whose ctx ended first
	// (claimTimeout, claimCanceled: what the caller returned). It sits in
	// state's padding: a call stays 96 bytes.
	claim    atomic.Uint32
	preErr   error
	deadline int64 // now() + timeout, set at registration
	hidx     int   // index in the actor's deadlines, -1 when not in them
}

const (
	claimOpen uint32 = iota
	claimLoop
	claimTimeout
	claimCanceled
)

type result struct {
	reply Reply
	err   error
}

var framePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func getFrame() *[]byte { return framePool.Get().(*[]byte) }

func putFrame(b *[]byte) {
	if cap(*b) > 64<<10 {
		return
	}
	*b = (*b)[:0]
	framePool.Put(b)
}

// inlineBudget is how many messages a goroutine of the library's that
// posts to an idle actor in mode mailbox.Drain (the reader in Deliver, a
// pool worker with a result, a timer) handles itself before handing the
// loop to a goroutine of its own (see mailbox.WithInlineDrain). The loop
// never blocks, so these goroutines can afford it; it saves a goroutine
// hand-off on each reply and each request. Calls made by user code post in
// mode Own or Handoff: they never run another message, which could be
// anyone's callback or handler.
const inlineBudget = 64

// New returns an actor writing to t with the shared cfg. tag is any value
// the owner wants back from [Actor.Tag] (the root package keeps its Conn
// there). No goroutine runs until a message arrives.
func New(t Transport, cfg *Config, tag any) (*Actor, error) {
	if t == nil || cfg == nil {
		return nil, errors.New("actor: New needs a transport and a config")
	}
	a := &Actor{cfg: cfg, t: t, tag: tag}
	mb, err := mailbox.New(a.handle, mailbox.WithCapacity(cfg.mailboxCapacity),
		mailbox.WithInlineDrain(inlineBudget), mailbox.WithOwnAlso(a.runsNoUserCode),
		mailbox.WithPanicHandler(a.loopPanic))
	if err != nil {
		return nil, err
	}
	a.mb = mb
	return a, nil
}

// Tag returns the value given to [New].
func (a *Actor) Tag() any { return a.tag }

// Pending reports how many of this side's requests are in flight.
func (a *Actor) Pending() int { return int(a.pendingN.Load()) }

// Done is closed when the actor has stopped and its loop has handled every
// message: every request it ever accepted has ended by then.
func (a *Actor) Done() <-chan struct{} { return a.mb.Stopped() }

// Err returns why the actor stopped, or nil while it runs.
func (a *Actor) Err() error {
	if p := a.stopErr.Load(); p != nil {
		return *p
	}
	return nil
}

func (a *Actor) closedErr() error {
	if err := a.Err(); err != nil {
		return err
	}
	return ErrClosed
}

// Request sends data (raw JSON; nil leaves "data" out) to the peer and waits
// for the answer. It returns exactly one of: the reply, a [*RemoteError],
// [ErrTimeout] (the request timeout or ctx's deadline), [ErrCanceled],
// [ErrConnLost], [ErrRestarted], [ErrShutdown], [ErrClosed],
// [ErrTooManyPending] or a write error. It returns once ctx ends at the
// latest, even while the mailbox is full or the loop is busy. It may be
// called from a handler of the same actor. It never runs a callback,
// handler or hook on the calling goroutine.
func (a *Actor) Request(ctx context.Context, data []byte) (Reply, error) {
	if ctx.Err() != nil {
		return Reply{}, CtxError(ctx)
	}
	if a.cfg.inline {
		if t, _ := ctx.Value(taskKey{}).(*task); t != nil && t.a == a && t.inline.Load() {
			return Reply{}, ErrSelfRequest
		}
	}
	c := a.newCall(ctx, data)
	c.ch = make(chan result, 1)
	// Mode Own: if the mailbox is idle this goroutine registers the call
	// itself (a write that only queues; no user code runs for a Request's
	// registration), saving a hand-off on every request, and goes on only
	// with messages that run no user code either (runsNoUserCode): never
	// anyone's callback, handler or hook.
	if err := a.mb.With(a.requestMode()).PostWait(ctx, msg{op: opRegister, call: c}); err != nil {
		putFrame(c.frame)
		if errors.Is(err, mailbox.ErrClosed) {
			return Reply{}, a.closedErr()
		}
		return Reply{}, CtxError(ctx)
	}
	select {
	case r := <-c.ch:
		return r.reply, r.err
	case <-ctx.Done():
	}
	// Whoever claims the call first decides its outcome: the loop (it has
	// the answer, and sends it at once) or this caller, which returns ctx's
	// error without waiting for a loop that may be busy; the loop then
	// ends the call with that same error (and counts it so).
	err := CtxError(ctx)
	gave := claimCanceled
	if errors.Is(err, ErrTimeout) {
		gave = claimTimeout
	}
	if !c.claim.CompareAndSwap(claimOpen, gave) {
		r := <-c.ch
		return r.reply, r.err
	}
	// Take the call out of the pending set and tell the peer. A cancel's
	// handling runs no user code for a Request, so mode Own is safe here.
	_ = a.mb.With(a.requestMode()).PostSystem(msg{op: opCancel, call: c, err: err})
	return Reply{}, err
}

// Go sends data to the peer and calls cb exactly once with the outcome
// (the same outcomes as [Actor.Request]), without a goroutine per call. cb
// runs on the actor's loop, never on the goroutine that called Go (nor
// inside any other call of this package made by user code): it must be
// quick and must not block or wait for this actor; a panic in it counts as
// a failure of the actor. If Go returns an error the request was not
// accepted and cb is never called.
func (a *Actor) Go(ctx context.Context, data []byte, cb func(Reply, error)) error {
	if cb == nil {
		return errors.New("actor: Go needs a callback")
	}
	if ctx.Err() != nil {
		return CtxError(ctx)
	}
	c := a.newCall(ctx, data)
	c.cb = cb
	if ctx.Done() != nil {
		c.stopCtx = context.AfterFunc(ctx, func() {
			_ = a.mb.PostSystem(msg{op: opCancel, call: c, err: CtxError(ctx)})
		})
	}
	// Mode Handoff: the registration of a Go call runs cb when it fails, so
	// not even Go's own message may run on this goroutine.
	if err := a.mb.With(mailbox.Handoff).Post(msg{op: opRegister, call: c}); err != nil {
		if c.stopCtx != nil {
			c.stopCtx()
		}
		putFrame(c.frame)
		if errors.Is(err, mailbox.ErrFull) {
			return ErrMailboxFull
		}
		return a.closedErr()
	}
	return nil
}

func (a *Actor) newCall(ctx context.Context, data []byte) *call {
	c := &call{id: envelope.NewID(), timeout: min(a.cfg.requestTimeout, maxTimeout), hidx: -1}
	if t, _ := ctx.Value(taskKey{}).(*task); t != nil && t.a == a {
		c.fromHandler = true
	}
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl); d < c.timeout {
			c.timeout = max(d, time.Millisecond)
		}
	}
	var idb [40]byte
	c.frame = getFrame()
	if tp, ok := Traceparent(ctx); ok {
		*c.frame = envelope.AppendTracedRequest(*c.frame, envelope.AppendID(idb[:0], c.id), data, c.timeout.Milliseconds(), unsafe.Slice(unsafe.StringData(tp), len(tp)))
	} else {
		*c.frame = envelope.AppendRequest(*c.frame, envelope.AppendID(idb[:0], c.id), data, c.timeout.Milliseconds())
	}
	return c
}

// Deliver hands the actor an envelope read from the peer (a request, a
// response or a cancel). It copies what it keeps. It waits while the mailbox
// is full, while the actor holds [WithMaxInboundBytes] of the peer's
// envelopes, and (unless the Config has [WithBusyRefusal]) a request waits
// while the peer has [WithMaxInbound] requests in progress: each stops the
// connection's reader, which is backpressure to the peer. The wait for room
// is skipped while a handler of this actor waits for a reply from the peer,
// which only the reader can deliver (see [WithMaxInbound]); a request over
// a limit is then answered with busy. After the actor stopped it returns
// [ErrClosed] and drops env.
//
// Deliver is for the connection's reader, a goroutine of the owner's: when
// the mailbox is idle it runs the loop itself for a bounded number of
// messages (see [mailbox.WithInlineDrain]), which may include handlers,
// callbacks of [Actor.Go] and hooks. It is the only method that does.
func (a *Actor) Deliver(env envelope.Envelope) error {
	req := false
	switch env.Kind {
	case envelope.KindRequest:
		req = true
	case envelope.KindResponse, envelope.KindCancel:
	default:
		return fmt.Errorf("actor: Deliver of a %v envelope", env.Kind)
	}
	nid, nd := len(env.ID), len(env.Data)
	if uint64(nid) > math.MaxUint32 {
		return fmt.Errorf("actor: Deliver of an id of %d bytes", nid)
	}
	m := msg{op: opInbound, kind: env.Kind, idLen: uint32(nid), timeout: env.Timeout}
	if env.Err != nil && !req { // an error reply; a request's "error" means nothing
		m.err = &RemoteError{Code: env.Err.Code, Message: env.Err.Message}
	}
	var ntp int // the traceparent's copy, between data and key
	if req && env.Traceparent != nil {
		if _, ok := envelope.Traceparent(env.Traceparent); ok { // Decode's are; an Envelope made by hand may not be
			ntp = envelope.TraceparentLen
		}
	}
	size := nid + nd + ntp
	if req {
		size += nid // the key's own copy
	}
	held := int64(size)
	if m.err != nil {
		held += int64(len(env.Err.Code) + len(env.Err.Message))
	}
	refuse, err := a.admit(req, held)
	if err != nil {
		return err
	}
	if refuse {
		// Over the byte budget and not waiting for room: keep the id
		// (at most envelope.MaxIDLen bytes) to answer busy, not the data.
		m.code, nd, ntp, size = inBusy, 0, 0, 2*nid
	} else {
		if env.Data != nil {
			m.code = inHasData
		}
		if ntp != 0 {
			m.code |= inHasTrace
		}
	}
	buf := make([]byte, size)
	copy(buf, env.ID)
	copy(buf[nid:], env.Data[:nd])
	if req {
		copy(buf[nid+nd:], env.Traceparent[:ntp])
		copy(buf[nid+nd+ntp:], env.ID)
	}
	m.data = buf
	held = m.held()
	f := a.flow.Load() // made by admit
	f.bytes.Add(held)
	a.stats().InboundBytes.Add(held)
	if err := a.mb.PostWait(context.Background(), m); err != nil {
		if req {
			a.release(held)
		} else {
			a.releaseBytes(held)
		}
		return ErrClosed
	}
	return nil
}

// admit waits, before Deliver copies an envelope of n bytes, while the
// actor holds WithMaxInboundBytes of the peer's envelopes (unless nothing
// is held: one envelope larger than the budget goes in alone, so progress
// is always possible) and, for a request, while the peer has maxInbound
// requests in progress. It then counts a request in admitted; Deliver
// counts the bytes. Neither wait happens while one of this actor's
// handlers waits for a reply from the peer (the reader must read on), and
// a request waits for neither with WithBusyRefusal: refuse then tells
// Deliver to keep only the request's id, to be answered with busy, if the
// bytes are over; over the count, the loop's own check (handlers) answers
// busy. The limits are checked, then added to: concurrent callers may
// overshoot them a little. Deliver's callers are the connection's reader,
// one at a time.
//
// It holds no lock while it waits, and it returns [ErrClosed] once the
// actor has stopped or (for a request) its owner said the transport closed
// ([Actor.TransportClosed]), so a reader never stays stuck on a closed
// connection: it goes on, sees the close and stops the actor, which cancels
// the handlers. Responses and cancels do not wait once the transport has
// closed, and still go in, as before the budget.
func (a *Actor) admit(req bool, n int64) (refuse bool, err error) {
	f := a.inflow()
	limit := int32(a.cfg.maxInbound)
	budget := a.cfg.maxInboundBytes
	overBytes := func() bool {
		b := f.bytes.Load()
		return b > 0 && b+n > budget
	}
	full := func() bool {
		if f.gone.Load() || f.selfWaits.Load() != 0 || (req && a.cfg.refuseBusy) {
			return false
		}
		return overBytes() || (req && f.admitted.Load() >= limit)
	}
	for full() {
		ch := make(chan struct{})
		if !f.room.CompareAndSwap(nil, &ch) {
			if p := f.room.Load(); p != nil {
				ch = *p
			} else {
				continue // swapped out meanwhile: look again
			}
		}
		// Checked again once the channel is in place: whoever made room
		// before did not find it, so what they did is seen here.
		if !full() {
			break
		}
		select {
		case <-ch:
		case <-a.mb.Stopped():
			return false, a.closedErr()
		}
	}
	if !req {
		// Even once the transport closed: a reply read before the close
		// is still matched to its request.
		return false, nil
	}
	if f.gone.Load() {
		return false, ErrClosed
	}
	f.admitted.Add(1)
	return overBytes(), nil
}

// release ends a request counted by admit, and the n bytes Deliver counted
// for it: the loop refused it, or its handler returned. It wakes a Deliver
// waiting for room.
func (a *Actor) release(n int64) {
	f := a.flow.Load() // made by the Deliver of the request released
	f.admitted.Add(-1)
	f.bytes.Add(-n)
	a.stats().InboundBytes.Add(-n)
	f.wakeRoom()
}

// releaseBytes ends n bytes of a response or a cancel that Deliver
// counted: the loop has handled it. It wakes a Deliver waiting for room.
func (a *Actor) releaseBytes(n int64) {
	f := a.flow.Load() // made by the Deliver of the envelope released
	f.bytes.Add(-n)
	a.stats().InboundBytes.Add(-n)
	f.wakeRoom()
}

// InboundBytes reports the bytes of the peer's envelopes the actor holds
// now: those in its mailbox, and the requests whose handler has not
// returned (what [WithMaxInboundBytes] caps). Any goroutine.
func (a *Actor) InboundBytes() int64 {
	if f := a.flow.Load(); f != nil {
		return f.bytes.Load()
	}
	return 0
}

// wakeRoom wakes a Deliver waiting in admit, if any. Any goroutine.
func (f *inflow) wakeRoom() {
	if f.room.Load() == nil {
		return
	}
	if p := f.room.Swap(nil); p != nil {
		close(*p)
	}
}

// TransportClosed tells the actor that its transport has closed the
// connection (this side dropped it: a heartbeat failure, a stalled write).
// A Deliver waiting for room returns [ErrClosed] at once, and later ones do
// not wait: the reader that called it could not see the close while it
// waits. The owner still reports the end with [Actor.Closed] once the
// reader has seen it. Any goroutine; it does not block.
func (a *Actor) TransportClosed() {
	f := a.inflow()
	f.gone.Store(true)
	f.wakeRoom()
}

// Fail reports a failure of user code that ran outside the actor (a hook,
// a message handler). The actor restarts or stops as its Config decides,
// on its loop: Fail returns at once.
func (a *Actor) Fail(cause error) {
	_ = a.mb.With(mailbox.Handoff).PostSystem(msg{op: opFail, err: cause})
}

// Stop stops the actor: every pending request fails with cause, the
// handlers in progress are cancelled, and if code is not 0 the transport is
// closed with code and reason. Use it when the connection is gone (cause
// wrapping [ErrConnLost], code 0). It does not wait: see [Actor.Done]. The
// callbacks of the pending [Actor.Go] calls run on the loop, not on the
// goroutine that called Stop.
func (a *Actor) Stop(cause error, code uint16, reason string) {
	_ = a.mb.With(mailbox.Handoff).PostSystem(msg{op: opStop, err: cause, code: code, data: []byte(reason)})
}

// Closed tells the actor that its transport is gone: like Stop with code 0,
// but queued behind the envelopes already delivered, so a reply that
// arrived just before the close is still matched to its request. Like
// Stop it does not wait, and runs nothing on the calling goroutine.
func (a *Actor) Closed(cause error) {
	_ = a.mb.With(mailbox.Handoff).PostWait(context.Background(), msg{op: opStop, err: cause})
}

// Drain starts draining the actor: from now on new requests in both
// directions are refused ([ErrShutdown], error replies of code
// [CodeShutdown]) while those in flight may finish. The returned channel is
// closed when none is left in flight, or when the actor stops.
func (a *Actor) Drain() <-chan struct{} {
	ch := make(chan struct{})
	// Mode Own: handling a drain runs no user code.
	if a.mb.With(mailbox.Own).PostSystem(msg{op: opDrain, ch: ch}) != nil {
		close(ch)
	}
	return ch
}

// Shutdown drains the actor (see [Actor.Drain]) until nothing is in flight
// or ctx ends; then the rest fail with [ErrShutdown], the transport is
// closed with 1001 and Shutdown waits for the loop to finish. It returns
// ctx's error if it had to cut requests off.
func (a *Actor) Shutdown(ctx context.Context) error {
	drained := a.Drain()
	var err error
	select {
	case <-drained:
	case <-ctx.Done():
		err = ctx.Err()
	}
	a.Stop(ErrShutdown, 1001, "server shutting down")
	<-a.Done()
	return err
}

// handle runs on the loop for each message.
func (a *Actor) handle(m msg) {
	switch m.op {
	case opRegister:
		a.register(m.call)
	case opInbound:
		d := m.delivery()
		a.inboundEnvelope(&d)
		if d.kind != envelope.KindRequest {
			a.releaseBytes(d.held) // a request's are released by request or result
		}
	case opTick:
		a.expire()
	case opCancel:
		switch c := m.call; c.state {
		case stNew:
			c.preErr = m.err // the cancel overtook the registration
		case stPending:
			a.giveUp(c, m.err)
		}
	case opResult:
		a.result(m.task, m.data, m.err, m.code == quietResult)
	case opFail:
		a.failure = m.err
	case opDrain:
		a.draining = true
		a.drained = append(a.drained, m.ch)
		if a.stopped {
			a.releaseDrained()
		}
		a.checkDrained()
	case opStop:
		a.stop(m.err, m.code, string(m.data))
	}
	// Failures raised by user code while handling m are handled after it,
	// so that no map is changed while it is being walked.
	for a.failure != nil {
		cause := a.failure
		a.failure = nil
		a.restart(cause)
	}
}

// runsNoUserCode reports whether handling m can run no user code: no
// callback, handler or hook. A caller of Request that registered its own
// request (mailbox mode Own) goes on with such messages, within the inline
// budget: the other Requests' registrations, cancels and replies, and
// drains. It runs on the loop (the drainer role is held), under the
// mailbox's lock.
func (a *Actor) runsNoUserCode(m msg) bool {
	if a.cfg.observer != nil && m.op != opDrain {
		return false // a call's end is observed: user code
	}
	switch m.op {
	case opRegister, opCancel:
		return m.call.ch != nil // a Request's; a Go call's may end with its callback
	case opDrain:
		return true
	case opInbound:
		if m.kind != envelope.KindResponse {
			return false
		}
		// A reply to a pending Request; anything else goes to the bad-input
		// hook or a Go call's callback.
		id, ok := envelope.ParseID(m.data[:m.idLen])
		if !ok {
			return false
		}
		c, _ := a.pending.get(id)
		return c != nil && c.ch != nil
	}
	return false
}

// loopPanic catches a panic that escaped handle: a bug, not user code (user
// code is caught where it runs). It is treated as a failure.
func (a *Actor) loopPanic(r any) {
	_ = a.mb.PostSystem(msg{op: opFail, err: fmt.Errorf("actor: internal panic: %v", r)})
}

func (a *Actor) stats() *Stats { return a.cfg.stats }

func (a *Actor) register(c *call) {
	s := a.stats()
	s.Requests.Add(1)
	var err error
	switch {
	case c.preErr != nil:
		err = c.preErr
	case a.stopped:
		err = a.closedErr()
	case a.draining:
		err = ErrShutdown
	case a.pending.len() >= a.cfg.maxPending:
		err = ErrTooManyPending
	}
	if err == nil {
		// Alone: no other request pending, the one-at-a-time pattern.
		if werr := a.write(*c.frame, a.pending.len() == 0); werr != nil {
			err = fmt.Errorf("actor: request not sent: %w", werr)
		}
	}
	putFrame(c.frame)
	c.frame = nil
	s.Pending.Add(1)
	if err != nil {
		a.complete(c, Reply{}, err)
		return
	}
	a.pending.put(c.id, c)
	c.state = stPending
	a.pendingN.Add(1)
	if c.fromHandler {
		// A handler waits for the peer: the reader must not wait for room.
		f := a.flow.Load() // made by the Deliver of the handler's request
		f.selfWaits.Add(1)
		f.wakeRoom()
	}
	c.deadline = now() + int64(c.timeout)
	a.deadlines.push(c)
	a.armTimer()
}

// giveUp ends a pending call that this side stopped waiting for, and tells
// the peer (the cancel extension) so that its handler can stop working.
func (a *Actor) giveUp(c *call, err error) {
	var idb [40]byte
	buf := getFrame()
	*buf = envelope.AppendCancel(*buf, envelope.AppendID(idb[:0], c.id))
	_ = a.t.Write(*buf)
	putFrame(buf)
	a.finish(c, Reply{}, err)
}

// finish ends a pending call.
func (a *Actor) finish(c *call, r Reply, err error) {
	a.unpend(c)
	a.complete(c, r, err)
	a.checkDrained()
}

// unpend takes c out of the pending set.
func (a *Actor) unpend(c *call) {
	a.pending.del(c.id)
	a.pendingN.Add(-1)
	if c.fromHandler {
		a.flow.Load().selfWaits.Add(-1)
	}
}

// complete delivers the outcome of c exactly once.
func (a *Actor) complete(c *call, r Reply, err error) {
	if c.state == stDone {
		return
	}
	c.state = stDone
	r, err = claimed(c, r, err)
	a.deadlines.remove(c)
	if c.stopCtx != nil {
		c.stopCtx()
	}
	s := a.stats()
	s.Pending.Add(-1)
	switch {
	case err == nil:
		s.Replied.Add(1)
	case isRemote(err):
		s.RemoteErrors.Add(1)
	case errors.Is(err, ErrTimeout):
		s.TimedOut.Add(1)
	case errors.Is(err, ErrCanceled):
		s.Canceled.Add(1)
	default:
		s.Failed.Add(1)
	}
	if a.cfg.observer != nil {
		a.observeCall(c, err)
	}
	if c.ch != nil {
		c.ch <- result{r, err}
		return
	}
	a.userCode(func() { c.cb(r, err) })
}

// claimed settles the outcome of a Request's call c that the loop is about
// to complete with r and err: the loop's, unless the caller gave up first;
// then nobody waits for it, and it is counted as what the caller returned.
func claimed(c *call, r Reply, err error) (Reply, error) {
	if c.ch == nil || c.claim.CompareAndSwap(claimOpen, claimLoop) {
		return r, err
	}
	if c.claim.Load() == claimTimeout {
		return Reply{}, ErrTimeout
	}
	return Reply{}, ErrCanceled
}

// isRemote reports whether err is a [*RemoteError]. (A function of its own:
// its target escapes, and only failures should pay for that.)
func isRemote(err error) bool {
	var re *RemoteError
	return errors.As(err, &re)
}

// userCode runs fn on the loop; a panic in it becomes a failure of the actor.
// (A deferred recover rather than a panics.Catcher, which escapes to the
// heap: this runs for every callback of [Actor.Go].)
func (a *Actor) userCode(fn func()) {
	defer a.recoverUserCode()
	fn()
}

// recoverUserCode, deferred around user code run on the loop, turns a
// panic into a failure handled after the current message (see handle), so
// that the code after the user's (a result sent, a budget released) runs.
func (a *Actor) recoverUserCode() {
	if r := recover(); r != nil {
		rp := panics.NewRecovered(2, r)
		a.stats().HandlerPanics.Add(1)
		if a.failure == nil {
			a.failure = fmt.Errorf("%w: %w", ErrHandlerPanic, NewPanicError(&rp))
		}
	}
}

// requestMode is how Request posts its registration and cancel: mode Own
// (the caller handles its own message, no hand-off) unless an [Observer]
// would then run on the caller's goroutine.
func (a *Actor) requestMode() mailbox.Mode {
	if a.cfg.observer != nil {
		return mailbox.Handoff
	}
	return mailbox.Own
}

func (a *Actor) badInput(err error) {
	if a.cfg.onBadInput != nil {
		a.userCode(func() { a.cfg.onBadInput(a, err) })
	}
}

func (a *Actor) inboundEnvelope(d *delivery) {
	switch d.kind {
	case envelope.KindResponse:
		id, ok := envelope.ParseID(d.id)
		if !ok {
			a.stats().UnknownReplies.Add(1)
			a.badInput(fmt.Errorf("%w: %s", ErrUnknownReply, clip(d.id)))
			return
		}
		c, _ := a.pending.get(id)
		if c == nil {
			a.stats().LateReplies.Add(1)
			a.badInput(fmt.Errorf("%w: %s", ErrLateReply, clip(d.id)))
			return
		}
		if d.rerr != nil {
			a.finish(c, Reply{}, d.rerr)
			return
		}
		a.finish(c, Reply{Data: d.data}, nil)
	case envelope.KindRequest:
		a.request(d)
	case envelope.KindCancel:
		if t, _ := a.inbound.get(bstr(d.id)); t != nil {
			a.stats().CancelsReceived.Add(1)
			a.endTask(t)
			a.observeTask(t, OutcomeCanceled)
			t.cancel()
		}
	}
}

// request handles a request from the peer. Deliver counted it in
// admitted and its bytes: unless a handler is started for it (then result
// does), they are released here.
func (a *Actor) request(d *delivery) {
	if !a.startRequest(d) {
		a.release(d.held)
	}
}

// startRequest answers d at once or starts its handler, and reports
// whether it started one.
func (a *Actor) startRequest(d *delivery) bool {
	s := a.stats()
	s.Received.Add(1)
	switch {
	case a.stopped:
		a.observeRefused(a.endOutcome(a.closedErr()))
		return false
	case a.cfg.handler == nil:
		a.observeRefused(OutcomeRefused)
		a.replyError(d.id, CodeNoHandler, "no request handler")
		return false
	case a.draining:
		a.observeRefused(OutcomeShutdown)
		a.replyError(d.id, CodeShutdown, "shutting down")
		return false
	}
	key := d.key
	if _, dup := a.inbound.get(key); dup {
		s.DuplicateRequests.Add(1)
		a.observeRefused(OutcomeRefused)
		a.replyError(d.id, CodeDuplicateID, "a request with this id is in progress")
		a.badInput(fmt.Errorf("%w: %s", ErrDuplicateRequest, clip(d.id)))
		return false
	}
	// The cap counts handlers that have not returned, not the inbound set:
	// a request the peer cancelled (or a restart ended) leaves the set at
	// once while its handler may still run or wait for a worker.
	if int(a.handlers) >= a.cfg.maxInbound {
		s.Busy.Add(1)
		a.observeRefused(OutcomeRefused)
		a.replyError(d.id, CodeBusy, "too many requests in progress")
		return false
	}
	if d.busy {
		s.Busy.Add(1)
		a.observeRefused(OutcomeRefused)
		a.replyError(d.id, CodeBusy, "too much request data in progress")
		return false
	}
	t := &task{a: a, req: Incoming{ID: d.id, Data: d.data}, key: key, hasTP: d.hasTP}
	if d.timeout > 0 {
		t.req.Timeout = time.Duration(min(d.timeout, maxTimeoutMs)) * time.Millisecond
		t.dl, t.hasDL = now()+int64(t.req.Timeout), true
	} else if a.cfg.observer != nil {
		t.dl = now() // the start, for the observer (see task.start)
	}
	if a.cfg.inline {
		// On the loop (WithInlineHandlers): in the inbound set while it
		// runs, as on the pool, so that result and the stats see one path.
		// Nothing else runs on this actor meanwhile: no cancel can arrive,
		// only the deadline ends t early.
		a.inbound.put(key, t)
		s.Inbound.Add(1)
		a.handlers++
		t.inline.Store(true)
		m := a.callHandler(t)
		t.inline.Store(false)
		a.result(t, m.data, m.err, m.code == quietResult)
		t.cancel()
		return true
	}
	// The actor is the pool's source: the pool takes its queued tasks in
	// turn with other actors', so a flood on one connection does not starve
	// the others.
	if !a.cfg.pool.TrySubmitFrom(a, t) {
		t.cancel()
		s.Busy.Add(1)
		a.observeRefused(OutcomeRefused)
		a.replyError(d.id, CodeBusy, "server busy")
		return false
	}
	a.inbound.put(key, t)
	s.Inbound.Add(1)
	a.handlers++
	return true
}

// runTask runs on a pool worker.
func (a *Actor) runTask(t *task) {
	// Results are bounded by maxInbound, so the system lane is fine: the
	// reply must not be refused for lack of room.
	if err := a.mb.PostSystem(a.callHandler(t)); err != nil {
		// The actor stopped while the handler ran: no loop will handle
		// the result, which releases what the request counted.
		a.release(t.held())
	}
	t.cancel()
}

// callHandler runs the handler for t and returns its result as a message. A
// panic in the handler becomes an error wrapping [ErrHandlerPanic].
func (a *Actor) callHandler(t *task) (m msg) {
	m.op, m.task = opResult, t
	defer func() {
		if r := recover(); r != nil {
			rp := panics.NewRecovered(1, r)
			m.data, m.err, m.code = nil, fmt.Errorf("%w: %w", ErrHandlerPanic, NewPanicError(&rp)), 0
		}
	}()
	m.data, m.err = a.cfg.handler(t, a, t.req)
	if m.err != nil {
		if cerr := t.Err(); cerr != nil && errors.Is(m.err, cerr) {
			// The handler gave up because its ctx ended: the peer
			// cancelled or its own timeout passed. It is not waiting for
			// this error.
			m.code = quietResult
		}
	}
	return m
}

func (a *Actor) endTask(t *task) {
	a.inbound.del(t.key)
	a.stats().Inbound.Add(-1)
	a.checkDrained()
}

// maxTimeout bounds every timeout: longer ones (even from a peer's
// "timeout") would overflow the deadline arithmetic.
const (
	maxTimeout   = 100 * 365 * 24 * time.Hour
	maxTimeoutMs = int64(maxTimeout / time.Millisecond)
)

// quietResult marks a handler result that needs no reply.
const quietResult = 1

// result handles the return of t's handler. t counts against the caps
// until now, even if it was cancelled or restarted meanwhile.
func (a *Actor) result(t *task, data []byte, err error, quiet bool) {
	a.handlers--
	a.release(t.held())
	if cur, _ := a.inbound.get(t.key); cur != t {
		return // cancelled, restarted or stopped meanwhile: its reply was sent already or is not wanted
	}
	a.endTask(t)
	if quiet {
		// The handler gave up on its ctx, which only its deadline ends
		// while it is in the inbound set.
		a.observeTask(t, OutcomeTimeout)
		return
	}
	if err == nil {
		buf := getFrame()
		*buf = envelope.AppendResponse(*buf, t.id(), data)
		// Counted before the write: the peer may read the reply (and the
		// caller look at Stats) before Write returns. Undone if it fails.
		a.stats().Answered.Add(1)
		werr := a.write(*buf, a.inbound.len() == 0) // alone: no other request of the peer in progress
		putFrame(buf)
		if werr == nil {
			a.observeTask(t, OutcomeReply)
			return
		}
		a.stats().Answered.Add(-1)
		a.observeTask(t, OutcomeLost)
		// Too large, or the peer reads too slowly: tell it with a (small)
		// error reply rather than let it wait for its timeout.
		a.badInput(fmt.Errorf("%w: %w", ErrReplyNotSent, werr))
		a.replyError(t.id(), CodeReplyFailed, werr.Error())
		return
	}
	a.observeTask(t, OutcomeError)
	if errors.Is(err, ErrHandlerPanic) {
		a.stats().HandlerPanics.Add(1)
		a.replyError(t.id(), CodePanic, "the handler panicked")
		if a.failure == nil {
			a.failure = err
		}
		return
	}
	var re *RemoteError
	if errors.As(err, &re) {
		a.replyError(t.id(), re.Code, re.Message)
		return
	}
	a.replyError(t.id(), CodeError, err.Error())
}

// write writes frame with the transport; alone says that no other frame
// of this actor's is expected soon ([AloneWriter]).
func (a *Actor) write(frame []byte, alone bool) error {
	if alone {
		if w, ok := a.t.(AloneWriter); ok {
			return w.WriteAlone(frame)
		}
	}
	return a.t.Write(frame)
}

func (a *Actor) replyError(id []byte, code, message string) {
	buf := getFrame()
	*buf = envelope.AppendErrorResponse(*buf, id, envelope.Error{Code: code, Message: message})
	a.stats().AnsweredError.Add(1) // before the write, as in result
	if err := a.t.Write(*buf); err != nil {
		a.stats().AnsweredError.Add(-1)
		a.stats().RepliesNotSent.Add(1)
	}
	putFrame(buf)
}

// restart handles a failure: restart (fail what is in flight and go on) or
// stop, as the Config decides.
func (a *Actor) restart(cause error) {
	if a.stopped {
		return
	}
	if a.cfg.decide != nil {
		var verdict error
		var pc panics.Catcher
		pc.Try(func() { verdict = a.cfg.decide(a, cause) })
		if r := pc.Recovered(); r != nil {
			verdict = fmt.Errorf("actor: restart decider panicked: %w (failure: %w)", r.AsError(), cause)
		}
		if verdict != nil {
			a.gaveUp = true
			a.stop(verdict, 1011, closeReason(verdict))
			return
		}
	}
	a.stats().Restarts.Add(1)
	err := fmt.Errorf("%w: %w", ErrRestarted, cause)
	a.failAll(err, true)
	if a.cfg.onRestart != nil {
		// A panic in the restart hook is not escalated: it would restart
		// the actor again, forever.
		var pc panics.Catcher
		pc.Try(func() { a.cfg.onRestart(a, cause) })
	}
}

// failAll ends every pending call with err and every peer request in
// progress (with an error reply when reply is set).
func (a *Actor) failAll(err error, reply bool) {
	for c := range a.pending.all() {
		a.unpend(c)
		a.complete(c, Reply{}, err)
	}
	for t := range a.inbound.all() {
		a.endTask(t)
		t.cancel()
		a.observeTask(t, a.endOutcome(err))
		if reply {
			a.replyError(t.id(), CodeRestarted, "the connection actor restarted")
		}
	}
	a.checkDrained()
}

func (a *Actor) stop(cause error, code uint16, reason string) {
	if a.stopped {
		return
	}
	if cause == nil {
		cause = ErrClosed
	}
	a.stopped = true
	a.stopErr.Store(&cause)
	if code != 0 {
		// We close the connection: tell the peer about its requests in
		// progress before the close frame.
		for t := range a.inbound.all() {
			a.replyError(t.id(), CodeShutdown, "connection closing")
		}
	}
	a.failAll(cause, false)
	a.releaseDrained()
	if a.timer != nil {
		a.timer.Stop()
	}
	a.deadlines = nil
	if code != 0 {
		_ = a.t.Close(code, reason)
	}
	a.stats().Stopped.Add(1)
	a.mb.Close()
}

func (a *Actor) checkDrained() {
	if a.draining && a.pending.len() == 0 && a.inbound.len() == 0 {
		a.releaseDrained()
	}
}

func (a *Actor) releaseDrained() {
	for _, ch := range a.drained {
		close(ch)
	}
	a.drained = nil
}

// closeReason fits err into a close frame's reason (at most 123 bytes),
// cutting at a rune boundary.
func closeReason(err error) string {
	r := err.Error()
	if len(r) <= 123 {
		return r
	}
	r = r[:123]
	for len(r) > 0 && !utf8.ValidString(r) {
		r = r[:len(r)-1]
	}
	return r
}

// bstr views b as a string, for a lookup that does not keep it.
func bstr(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func clip(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "…"
	}
	return string(b)
}
