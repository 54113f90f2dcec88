package mailbox

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
)

var (
	// ErrFull is returned by [Mailbox.Post] when the user lane holds its capacity.
	ErrFull = errors.New("mailbox: full")
	// ErrClosed is returned by every Post after [Mailbox.Close].
	ErrClosed = errors.New("mailbox: closed")
)

// keepCap is the largest backing array the drainer goroutine keeps for its
// next batch while it runs. An idle mailbox keeps none: its lanes are
// dropped when it goes idle, so that it costs only its struct.
const keepCap = 8

// closedChan is what Stopped returns once the mailbox has stopped, when no
// channel was asked for before: an idle mailbox makes no channel until
// someone waits for it.
var closedChan = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

// Mailbox is a single-consumer queue with two lanes: a bounded user lane and an
// unbounded system lane that is always drained first. Messages are handed to
// the handler one at a time, in FIFO order within a lane, by at most one
// goroutine at a time; that goroutine is started when a message arrives at an
// idle mailbox and exits when both lanes are empty, so an idle mailbox holds
// no goroutine, and no lane array either.
//
// All methods may be called concurrently. The zero value is not usable: use
// [New].
type Mailbox[T any] struct {
	handler func(T)
	onPanic func(any)
	safe    func(T) bool
	cap     int32
	inline  int32

	sysN atomic.Int32 // len(sys), readable without the lock by the drainer

	mu       sync.Mutex
	running  bool
	closed   bool
	finished bool          // closed and fully drained: stopped is (or will be made) closed
	sys      []T           // nil while the mailbox is idle
	user     []T           // nil while the mailbox is idle
	spare    []T           // the drainer goroutine's previous batch, reused; nil while idle
	space    chan struct{} // closed when the user lane loses messages; nil unless someone waits
	stopped  chan struct{} // made by the first Stopped call; closed once finished
}

// Option configures a Mailbox.
type Option func(*options)

type options struct {
	capacity int
	inline   int
	onPanic  func(any)
	safe     any // func(T) bool
}

// WithCapacity bounds the user lane (messages posted and not yet taken by the
// drainer). The default is 1024. It must be at least 1.
func WithCapacity(n int) Option { return func(o *options) { o.capacity = n } }

// WithInlineDrain lets a goroutine that posts to an idle mailbox drain it
// itself, for up to budget messages, instead of starting a drainer
// goroutine; if messages remain after that, a drainer goroutine takes over.
// This saves a goroutine hand-off per message when traffic is light, at the
// price of running the handler on the posting goroutine: every poster in
// mode [Drain] must be able to afford that for any message (the handler
// must not block), and a handler must never wait for its own mailbox.
// A poster that cannot afford it posts in mode [Own] or [Handoff] (see
// [Mailbox.With]).
// Default 0: always hand off, whatever the mode.
func WithInlineDrain(budget int) Option { return func(o *options) { o.inline = budget } }

// WithOwnAlso lets a post in mode [Own] go on, after its own message, with
// the queued messages for which safe reports true, in order and within the
// inline budget, and hand the rest to a drainer goroutine from the first
// for which it reports false. It is for messages the poster may run as
// well as its own: say, those whose handling runs no code of the poster's
// callers. safe is called on the goroutine that holds the drainer role,
// with the mailbox's lock held: it may read state owned by the handler, and
// must be quick and must not post. T must be the mailbox's message type.
func WithOwnAlso[T any](safe func(v T) bool) Option { return func(o *options) { o.safe = safe } }

// WithPanicHandler receives the value of a panic raised by the handler. The
// panic is recovered, the message that caused it is dropped and draining goes
// on. Without a panic handler the panic is recovered and ignored. fn runs on
// the drainer goroutine.
func WithPanicHandler(fn func(recovered any)) Option { return func(o *options) { o.onPanic = fn } }

// New returns a mailbox that passes each message to handler. handler runs on
// the drainer goroutine and must not block for long: a blocked handler holds
// up every later message.
func New[T any](handler func(T), opts ...Option) (*Mailbox[T], error) {
	if handler == nil {
		return nil, errors.New("mailbox: nil handler")
	}
	o := options{capacity: 1024}
	for _, opt := range opts {
		opt(&o)
	}
	if o.capacity < 1 {
		return nil, fmt.Errorf("mailbox: capacity %d, want >= 1", o.capacity)
	}
	if o.inline < 0 {
		return nil, fmt.Errorf("mailbox: inline budget %d, want >= 0", o.inline)
	}
	safe, ok := o.safe.(func(T) bool)
	if o.safe != nil && (!ok || safe == nil) {
		return nil, fmt.Errorf("mailbox: WithOwnAlso takes a non-nil func(%T) bool", *new(T))
	}
	// Larger values mean "no bound" in practice; int32 keeps the struct small.
	return &Mailbox[T]{handler: handler, onPanic: o.onPanic, safe: safe,
		cap: int32(min(o.capacity, math.MaxInt32)), inline: int32(min(o.inline, math.MaxInt32))}, nil
}

// Mode says how much of the handler a post may run on the posting goroutine
// when it finds the mailbox idle. It matters only with [WithInlineDrain]:
// without an inline budget every post hands off.
type Mode uint8

const (
	// Drain lets the poster take the drainer role for up to the inline
	// budget: its own message, then whatever was posted meanwhile. Use it
	// only from goroutines that may run the handler for any message.
	Drain Mode = iota
	// Own lets the poster hand its own message to the handler and nothing
	// else (but the messages [WithOwnAlso] allows): messages posted while
	// that runs go to a drainer goroutine. Use it where the poster may run
	// the handler for its own message only.
	Own
	// Handoff never runs the handler on the poster: a drainer goroutine
	// does.
	Handoff
)

// Poster posts to a mailbox in one [Mode]. Get one with [Mailbox.With]; it
// is a small value, cheap to make for every post.
type Poster[T any] struct {
	m    *Mailbox[T]
	mode Mode
}

// With returns a poster whose posts run at most what mode allows of the
// handler on the posting goroutine.
func (m *Mailbox[T]) With(mode Mode) Poster[T] { return Poster[T]{m, mode} }

// Post queues v on the user lane. It never blocks: it returns [ErrFull] when
// the lane holds its capacity and [ErrClosed] after Close. With
// [WithInlineDrain] it may run the handler on the calling goroutine (mode
// [Drain]; see [Mailbox.With] for the others).
func (m *Mailbox[T]) Post(v T) error { return m.post(v, false, Drain) }

// PostWait queues v on the user lane, waiting for room while the lane is
// full. It returns ctx's error if ctx ends first and [ErrClosed] after Close.
// With [WithInlineDrain] it may run the handler on the calling goroutine
// (mode [Drain]).
func (m *Mailbox[T]) PostWait(ctx context.Context, v T) error { return m.postWait(ctx, v, Drain) }

// PostSystem queues v on the system lane, which has no bound and is drained
// before the user lane. Use it for messages that must never be refused for
// lack of room (timeouts, cancels, stop), whose number is bounded by other
// means. It returns [ErrClosed] after Close. With [WithInlineDrain] it may
// run the handler on the calling goroutine (mode [Drain]).
func (m *Mailbox[T]) PostSystem(v T) error { return m.post(v, true, Drain) }

// Post is [Mailbox.Post] in p's mode.
func (p Poster[T]) Post(v T) error { return p.m.post(v, false, p.mode) }

// PostWait is [Mailbox.PostWait] in p's mode.
func (p Poster[T]) PostWait(ctx context.Context, v T) error { return p.m.postWait(ctx, v, p.mode) }

// PostSystem is [Mailbox.PostSystem] in p's mode.
func (p Poster[T]) PostSystem(v T) error { return p.m.post(v, true, p.mode) }

func (m *Mailbox[T]) post(v T, sys bool, mode Mode) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	if !sys && len(m.user) >= int(m.cap) {
		m.mu.Unlock()
		return ErrFull
	}
	m.postLocked(v, sys, mode)
	return nil
}

func (m *Mailbox[T]) postWait(ctx context.Context, v T, mode Mode) error {
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return ErrClosed
		}
		if len(m.user) < int(m.cap) {
			m.postLocked(v, false, mode)
			return nil
		}
		if m.space == nil {
			m.space = make(chan struct{})
		}
		space := m.space
		m.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// postLocked queues v on the system lane (sys) or the user lane, makes sure
// a drainer runs, and unlocks m.mu. With an inline budget and a mode other
// than Handoff, a message for an idle mailbox is handed to the handler at
// once, without being queued: the lanes stay unallocated under light
// traffic. Mode Own then gives the drainer role up (to a goroutine of its
// own if messages came meanwhile); mode Drain keeps it for the budget.
func (m *Mailbox[T]) postLocked(v T, sys bool, mode Mode) {
	if m.running {
		m.queueLocked(v, sys)
		m.mu.Unlock()
		return
	}
	m.running = true
	if m.inline == 0 || mode == Handoff {
		m.queueLocked(v, sys)
		m.mu.Unlock()
		go m.drain()
		return
	}
	// Idle, so both lanes are empty: v is next in line either way.
	m.mu.Unlock()
	m.call(v)
	budget := int(m.inline) - 1
	if mode == Own && m.safe == nil {
		budget = 0
	}
	if m.drainInline(budget, mode == Own) {
		return
	}
	go m.drain()
}

func (m *Mailbox[T]) queueLocked(v T, sys bool) {
	if sys {
		m.sys = append(m.sys, v)
		m.sysN.Add(1)
	} else {
		m.user = append(m.user, v)
	}
}

// idleLocked gives the drainer role up once both lanes are empty, and drops
// the lane arrays: an idle mailbox holds none.
func (m *Mailbox[T]) idleLocked() {
	m.running = false
	m.sys, m.user, m.spare = nil, nil, nil
	if m.closed {
		m.finishLocked()
	}
}

// drainInline hands up to budget more messages to the handler on the
// calling goroutine, which holds the drainer role; with own, only as long
// as m.safe allows the next one. It reports true when it emptied the
// mailbox and gave the role up, false when the role is still held and
// messages remain.
func (m *Mailbox[T]) drainInline(budget int, own bool) bool {
	for i := 0; ; i++ {
		m.mu.Lock()
		if i == budget && len(m.sys)+len(m.user) > 0 {
			m.mu.Unlock()
			return false
		}
		var v T
		switch {
		case own && len(m.sys) > 0 && !m.safe(m.sys[0]),
			own && len(m.sys) == 0 && len(m.user) > 0 && !m.safe(m.user[0]):
			m.mu.Unlock()
			return false
		case len(m.sys) > 0:
			v = m.sys[0]
			m.sys = popFront(m.sys)
			m.sysN.Add(-1)
		case len(m.user) > 0:
			v = m.user[0]
			m.user = popFront(m.user)
			if m.space != nil {
				close(m.space)
				m.space = nil
			}
		default:
			m.idleLocked()
			m.mu.Unlock()
			return true
		}
		m.mu.Unlock()
		m.call(v)
	}
}

// popFront drops q[0]. A lane of one message keeps its array while the
// drainer runs.
func popFront[T any](q []T) []T {
	var zero T
	q[0] = zero
	if len(q) == 1 {
		return q[:0]
	}
	return q[1:]
}

// Close stops accepting messages. Messages already queued are still handed to
// the handler; [Mailbox.Stopped] tells when that is over. Close is idempotent.
func (m *Mailbox[T]) Close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	if m.space != nil {
		close(m.space)
		m.space = nil
	}
	if !m.running {
		m.finishLocked()
	}
	m.mu.Unlock()
}

// Stopped is closed once the mailbox is closed, every queued message has been
// handled and the drainer goroutine has finished its work. Every call returns
// a channel that is closed then (the channel is made by the first call, so
// that an idle mailbox nobody waits for holds none).
func (m *Mailbox[T]) Stopped() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped == nil {
		if m.finished {
			return closedChan
		}
		m.stopped = make(chan struct{})
	}
	return m.stopped
}

// Len reports the number of queued messages in both lanes.
func (m *Mailbox[T]) Len() int {
	m.mu.Lock()
	n := len(m.sys) + len(m.user)
	m.mu.Unlock()
	return n
}

func (m *Mailbox[T]) finishLocked() {
	if !m.finished {
		m.finished = true
		if m.stopped != nil {
			close(m.stopped)
		}
	}
}

// drain runs on the single drainer goroutine until both lanes are empty.
func (m *Mailbox[T]) drain() {
	var zero T
	for {
		m.mu.Lock()
		var batch []T
		user := false
		switch {
		case len(m.sys) > 0:
			batch, m.sys = m.sys, m.spare[:0]
			m.sysN.Store(0)
		case len(m.user) > 0:
			user = true
			batch, m.user = m.user, m.spare[:0]
			if m.space != nil {
				close(m.space)
				m.space = nil
			}
		default:
			m.idleLocked()
			m.mu.Unlock()
			return
		}
		m.spare = nil
		m.mu.Unlock()

		for i := range batch {
			// System messages posted while a user batch runs go first (not
			// while a system batch runs: the lane stays FIFO).
			if user && m.sysN.Load() > 0 {
				m.drainSystem()
			}
			m.call(batch[i])
			batch[i] = zero // let the message be collected
		}

		m.mu.Lock()
		if cap(batch) <= 4*int(m.cap) || cap(batch) <= keepCap {
			m.spare = batch[:0]
		}
		m.mu.Unlock()
	}
}

// drainSystem hands every queued system message to the handler.
func (m *Mailbox[T]) drainSystem() {
	var zero T
	for {
		m.mu.Lock()
		if len(m.sys) == 0 {
			m.mu.Unlock()
			return
		}
		batch := m.sys
		m.sys = nil
		m.sysN.Store(0)
		m.mu.Unlock()
		for i := range batch {
			m.call(batch[i])
			batch[i] = zero
		}
	}
}

func (m *Mailbox[T]) call(v T) {
	defer func() {
		if r := recover(); r != nil && m.onPanic != nil {
			m.onPanic(r)
		}
	}()
	m.handler(v)
}
