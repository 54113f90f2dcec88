package mailbox

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

var (
	// ErrFull is returned by [Mailbox.Post] when the user lane holds its capacity.
	ErrFull = errors.New("mailbox: full")
	// ErrClosed is returned by every Post after [Mailbox.Close].
	ErrClosed = errors.New("mailbox: closed")
)

// keepCap is the largest backing array a drained lane keeps while idle. Larger
// ones are dropped so that an idle mailbox costs only its struct.
const keepCap = 8

// Mailbox is a single-consumer queue with two lanes: a bounded user lane and an
// unbounded system lane that is always drained first. Messages are handed to
// the handler one at a time, in FIFO order within a lane, by at most one
// goroutine at a time; that goroutine is started when a message arrives at an
// idle mailbox and exits when both lanes are empty, so an idle mailbox holds
// no goroutine.
//
// All methods may be called concurrently. The zero value is not usable: use
// [New].
type Mailbox[T any] struct {
	handler func(T)
	onPanic func(any)
	cap     int
	inline  int

	sysN atomic.Int32 // len(sys), readable without the lock by the drainer

	mu       sync.Mutex
	sys      []T
	user     []T
	spare    []T           // the drainer's previous batch, reused
	space    chan struct{} // closed when the user lane loses messages; nil unless someone waits
	running  bool
	closed   bool
	stopped  chan struct{} // closed once closed and fully drained
	isClosed bool          // stopped has been closed
}

// Option configures a Mailbox.
type Option func(*options)

type options struct {
	capacity int
	inline   int
	onPanic  func(any)
}

// WithCapacity bounds the user lane (messages posted and not yet taken by the
// drainer). The default is 1024. It must be at least 1.
func WithCapacity(n int) Option { return func(o *options) { o.capacity = n } }

// WithInlineDrain lets a goroutine that posts to an idle mailbox drain it
// itself, for up to budget messages, instead of starting a drainer
// goroutine; if messages remain after that, a drainer goroutine takes over.
// This saves a goroutine hand-off per message when traffic is light, at the
// price of running the handler on the posting goroutine: every poster must
// be able to afford that (the handler must not block), and a handler must
// never wait for its own mailbox. Default 0: always hand off.
func WithInlineDrain(budget int) Option { return func(o *options) { o.inline = budget } }

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
	return &Mailbox[T]{handler: handler, onPanic: o.onPanic, cap: o.capacity, inline: o.inline, stopped: make(chan struct{})}, nil
}

// Post queues v on the user lane. It never blocks: it returns [ErrFull] when
// the lane holds its capacity and [ErrClosed] after Close.
func (m *Mailbox[T]) Post(v T) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	if len(m.user) >= m.cap {
		m.mu.Unlock()
		return ErrFull
	}
	m.user = append(m.user, v)
	m.kickLocked()
	return nil
}

// PostWait queues v on the user lane, waiting for room while the lane is
// full. It returns ctx's error if ctx ends first and [ErrClosed] after Close.
func (m *Mailbox[T]) PostWait(ctx context.Context, v T) error {
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return ErrClosed
		}
		if len(m.user) < m.cap {
			m.user = append(m.user, v)
			m.kickLocked()
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

// PostSystem queues v on the system lane, which has no bound and is drained
// before the user lane. Use it for messages that must never be refused for
// lack of room (timeouts, cancels, stop), whose number is bounded by other
// means. It returns [ErrClosed] after Close.
func (m *Mailbox[T]) PostSystem(v T) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	m.sys = append(m.sys, v)
	m.sysN.Add(1)
	m.kickLocked()
	return nil
}

// kickLocked starts the drainer if none runs, and unlocks m.mu.
func (m *Mailbox[T]) kickLocked() {
	if m.running {
		m.mu.Unlock()
		return
	}
	m.running = true
	m.mu.Unlock()
	if m.inline > 0 && m.drainInline(m.inline) {
		return
	}
	go m.drain()
}

// drainInline hands up to budget messages to the handler on the calling
// goroutine, which holds the drainer role. It reports true when it emptied
// the mailbox and gave the role up, false when the role is still held and
// messages remain.
func (m *Mailbox[T]) drainInline(budget int) bool {
	for range budget {
		m.mu.Lock()
		var v T
		switch {
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
			m.running = false
			if m.closed {
				m.finishLocked()
			}
			m.mu.Unlock()
			return true
		}
		m.mu.Unlock()
		m.call(v)
	}
	return false
}

// popFront drops q[0]. A lane of one message keeps its array, so that
// light ping-pong traffic does not allocate.
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
// handled and the drainer goroutine has finished its work.
func (m *Mailbox[T]) Stopped() <-chan struct{} { return m.stopped }

// Len reports the number of queued messages in both lanes.
func (m *Mailbox[T]) Len() int {
	m.mu.Lock()
	n := len(m.sys) + len(m.user)
	m.mu.Unlock()
	return n
}

func (m *Mailbox[T]) finishLocked() {
	if !m.isClosed {
		m.isClosed = true
		close(m.stopped)
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
			m.running = false
			if cap(m.spare) > keepCap {
				m.spare = nil
			}
			if m.closed {
				m.finishLocked()
			}
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
		if cap(batch) <= 4*m.cap || cap(batch) <= keepCap {
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
