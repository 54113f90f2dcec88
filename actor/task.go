package actor

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/wsactor/wsactor/envelope"
)

// task is a peer request being handled. It is at once the handler's
// context.Context and the job given to the pool (its Run method), so
// accepting a request allocates this one object.
//
// The context is lazy: Deadline is a plain field, and the done channel
// (and a timer for the deadline) are made only when someone asks for Done.
// Most handlers never do, and a per-request context.WithTimeout (a
// timerCtx, a runtime timer started and stopped, closures) cost 0.6–0.9 µs
// of server CPU per request. Err compares the clock, so a handler that only
// polls Err sees the deadline without a timer.
//
// It implements AfterFunc(func()) func() bool, which the context package
// looks for: context.WithCancel(ctx), context.WithTimeout(ctx, …) and
// context.AfterFunc(ctx, …) on a task register a callback with it instead
// of starting a goroutine that waits for Done.
//
// a, req, key, dl, hasDL and hasTP are set before the task is submitted and never
// change; the rest is safe for concurrent use.
type task struct {
	a   *Actor
	req Incoming // given to the handler; its slices belong to the handler
	// key is the request's id as the actor's inbound map key and the id of
	// the reply. The handler cannot change it (req.ID is its own copy).
	key string
	// dl is the deadline in now() nanoseconds, if hasDL. Without one, and
	// with an [Observer], it is when the request was accepted (see start):
	// a field of its own would move a task up a size class.
	dl int64

	hasDL  bool          // the peer gave a timeout
	hasTP  bool          // the peer gave a traceparent: see traceparent
	inline atomic.Bool   // the handler is running on the actor's loop (WithInlineHandlers)
	state  atomic.Uint32 // taskLive, taskCanceled or taskExpired; set once, under mu
	done   atomic.Value  // chan struct{}: made by the first Done, closed (or closedchan) when the task ends

	mu     sync.Mutex
	timer  *time.Timer   // fires at dl; made by the first Done
	afters []*afterEntry // callbacks to start when the task ends
}

const (
	taskLive uint32 = iota
	taskCanceled
	taskExpired
)

type afterEntry struct{ f func() }

// closedchan is the done channel of a task that ended before anyone asked
// for Done.
var closedchan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// start is when the request was accepted, in now() nanoseconds (with an
// [Observer]; else 0 unless the peer gave a timeout).
func (t *task) start() int64 {
	if t.hasDL {
		return t.dl - int64(t.req.Timeout)
	}
	return t.dl
}

// held is what t's request counts against WithMaxInboundBytes until its
// handler returns: the buffer Deliver copied it into (its id, its data, its
// traceparent and the id again for key). a, key, req and hasTP never change.
func (t *task) held() int64 {
	n := int64(2*len(t.key) + len(t.req.Data))
	if t.hasTP {
		n += envelope.TraceparentLen
	}
	return n
}

// Run runs the handler; the pool calls it on a worker.
func (t *task) Run() { t.a.runTask(t) }

// id returns key as bytes, for the reply. Read only: it aliases key.
func (t *task) id() []byte { return unsafe.Slice(unsafe.StringData(t.key), len(t.key)) }

// Deadline returns the peer's timeout as a deadline.
func (t *task) Deadline() (time.Time, bool) {
	if !t.hasDL {
		return time.Time{}, false
	}
	return epoch.Add(time.Duration(t.dl)), true // epoch carries a monotonic reading
}

// Done returns a channel closed when the task is cancelled or its deadline
// passes. The first call makes it and, if there is a deadline, a timer.
func (t *task) Done() <-chan struct{} {
	if d, ok := t.done.Load().(chan struct{}); ok {
		return d
	}
	t.mu.Lock()
	if d, ok := t.done.Load().(chan struct{}); ok {
		t.mu.Unlock()
		return d
	}
	// Not ended (end stores a channel), so no timer yet.
	if t.hasDL {
		left := time.Duration(t.dl - now())
		if left <= 0 {
			t.mu.Unlock()
			t.end(taskExpired)
			return t.done.Load().(chan struct{})
		}
		// expire takes mu, so it cannot run before d is stored.
		t.timer = time.AfterFunc(left, t.expire)
	}
	d := make(chan struct{})
	t.done.Store(d)
	t.mu.Unlock()
	return d
}

// Err returns nil while the task runs, context.Canceled once it was
// cancelled and context.DeadlineExceeded once its deadline passed, whether
// or not anyone asked for Done (Err then ends the task, so Done is closed
// whenever Err is not nil).
func (t *task) Err() error {
	s := t.state.Load()
	if s == taskLive {
		if !t.hasDL || now() < t.dl {
			return nil
		}
		t.end(taskExpired)
		s = t.state.Load() // a cancel may have won
	}
	if s == taskCanceled {
		return context.Canceled
	}
	return context.DeadlineExceeded
}

// taskKey finds the task behind a handler's ctx or a ctx derived from it.
type taskKey struct{}

// Value returns the task itself for taskKey, the peer's traceparent for
// traceKey (when it sent one) and nil for anything else: a handler's
// context carries no values of the user's.
func (t *task) Value(k any) any {
	switch k.(type) {
	case taskKey:
		return t
	case traceKey:
		if t.hasTP {
			return t.traceparent()
		}
	}
	return nil
}

// traceparent is the peer's traceparent (hasTP). Deliver copied it into
// the request's buffer just before the key (see delivery), so it needs no
// field of its own: a task stays in its 160-byte size class.
func (t *task) traceparent() string {
	p := unsafe.Add(unsafe.Pointer(unsafe.StringData(t.key)), -envelope.TraceparentLen)
	return unsafe.String((*byte)(p), envelope.TraceparentLen)
}

// String names the context, for fmt and the context package's messages.
func (t *task) String() string { return "actor.handlerContext" }

// AfterFunc arranges to call f in its own goroutine once the task ends (at
// once if it has ended), like context.AfterFunc. stop unregisters f; it
// reports whether it stopped f from being started.
func (t *task) AfterFunc(f func()) (stop func() bool) {
	t.Done() // arms the deadline's timer
	t.mu.Lock()
	if t.state.Load() != taskLive {
		t.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	e := &afterEntry{f: f}
	t.afters = append(t.afters, e)
	t.mu.Unlock()
	return func() bool {
		t.mu.Lock()
		defer t.mu.Unlock()
		// From the end: a child is usually stopped before its younger
		// siblings' parents are (defer cancel()).
		for i := len(t.afters) - 1; i >= 0; i-- {
			if t.afters[i] == e {
				t.afters = slices.Delete(t.afters, i, i+1) // clears the freed slot
				return true
			}
		}
		return false
	}
}

// cancel ends the task with context.Canceled. Any goroutine may call it,
// any number of times; the first end wins.
func (t *task) cancel() { t.end(taskCanceled) }

// expire runs on the deadline timer's goroutine.
func (t *task) expire() { t.end(taskExpired) }

func (t *task) end(s uint32) {
	t.mu.Lock()
	if t.state.Load() != taskLive {
		t.mu.Unlock()
		return
	}
	t.state.Store(s)
	if t.timer != nil {
		t.timer.Stop()
	}
	if d, ok := t.done.Load().(chan struct{}); ok {
		close(d)
	} else {
		t.done.Store(closedchan)
	}
	afters := t.afters
	t.afters = nil
	t.mu.Unlock()
	for _, e := range afters {
		go e.f()
	}
}
