package actor

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// workerIdle is how long a worker with nothing to do waits for a task
// before it exits. Reusing a worker saves starting a goroutine (and growing
// its stack) for every request under load; exiting keeps an idle pool free
// of goroutines.
const workerIdle = time.Second

// Runner is a task for a [Pool]. A type with a Run method can be submitted
// without allocating a closure; [RunFunc] adapts a plain function.
type Runner interface{ Run() }

// RunFunc adapts a function to [Runner].
type RunFunc func()

// Run calls f.
func (f RunFunc) Run() { f() }

// closedBit marks a closed pool in Pool.state; the bits below it count the
// workers.
const closedBit = uint64(1) << 63

// Pool runs request handlers for many actors with bounded concurrency: at
// most maxWorkers tasks run at once and at most queueSize more wait. A task
// that finds both full is refused ([Pool.TrySubmit] returns false) and the
// actor answers that request with an error of code [CodeBusy]; nothing blocks.
//
// Workers are started on demand and exit after a second without work, so an
// idle pool owns no goroutine. All methods may be called concurrently. The
// zero value is not usable: use [NewPool].
//
// Waiting tasks are queued per source ([Pool.TrySubmitFrom]; an actor is
// the source of its handlers): each source's tasks run in the order they
// came, and a free worker takes the oldest task of the next source in turn
// (round-robin between the sources with waiting tasks). A source that
// queues a thousand tasks delays another's single task by at most about one
// task's run time, not by the thousand. A source with nothing queued costs
// the pool nothing.
type Pool struct {
	max uint64

	// state counts the workers (goroutines started or about to be, busy or
	// idle; at most max) in its low bits, plus closedBit. A submitter takes a
	// slot with a compare-and-swap that also checks closedBit, so no worker
	// starts once Close has set it. A worker gives its slot back only under
	// mu, after finding the queue empty.
	state atomic.Uint64

	// handoff is unbuffered: a non-blocking send succeeds only if an idle
	// worker waits on it, and fails without locking when none does.
	handoff chan Runner

	// The queue holds accepted tasks when every worker is busy: a lane (a
	// FIFO) per source that has tasks waiting, found by source in lanes,
	// and the ring of those lanes in round-robin order (ring[rhead] is the
	// next to give a task). Lanes and their arrays grow on demand (a
	// channel of queueSize would cost 16 B × queueSize for every pool, and
	// every Client has one) and are dropped when empty. The queue is changed
	// only under mu, and tasks are queued only while state counts a
	// worker: a worker takes mu and finds the queue empty before it gives
	// its slot back, so a queued task always has a worker that will run it.
	// queued counts the tasks queued, for lock-free checks; wake (buffered,
	// one token) wakes an idle worker after a task was queued, and a worker
	// that takes a task and leaves more behind passes the token on.
	lanes  map[any]*lane
	ring   []*lane
	rhead  int
	spare  []*lane // emptied lanes kept for reuse (at most maxSpareLanes)
	qcap   int
	queued atomic.Int64
	wake   chan struct{}
	quit   chan struct{} // closed by Close: idle workers run what is queued and exit
	mu     sync.Mutex

	done chan struct{} // closed once the pool is closed and has no worker
	wg   sync.WaitGroup

	testExit func() // tests: called when a worker is about to exit
}

// NewPool returns a pool running at most maxWorkers tasks at once with room
// for queueSize waiting tasks.
func NewPool(maxWorkers, queueSize int) (*Pool, error) {
	if maxWorkers < 1 || maxWorkers > math.MaxInt32 || queueSize < 0 {
		return nil, fmt.Errorf("actor: pool of %d workers and a queue of %d: want workers >= 1, queue >= 0", maxWorkers, queueSize)
	}
	return &Pool{
		max:     uint64(maxWorkers),
		handoff: make(chan Runner),
		qcap:    queueSize,
		wake:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
	}, nil
}

// lane is the queue of one source's waiting tasks.
type lane struct {
	src   any
	tasks []Runner
	head  int
}

// maxSpareLanes bounds the emptied lanes a pool keeps for reuse, and
// maxSpareTasks the array each keeps: at most 16 KiB kept after a burst.
const (
	maxSpareLanes = 16
	maxSpareTasks = 64
)

// TrySubmit is [Pool.TrySubmitFrom] with the nil source: tasks submitted
// this way share one queue.
func (p *Pool) TrySubmit(r Runner) bool { return p.TrySubmitFrom(nil, r) }

// TrySubmitFrom runs r on a worker, now or once the tasks queued before it
// by the same source have started and the other sources with tasks waiting
// have had their turn (see [Pool]). A task handed to a worker that is just
// going idle may overtake one queued task. source is any comparable value
// (a pointer, typically) naming who submits: the actor uses itself. It
// never blocks; it reports false when the pool is full or closed, or r is
// nil. r must not panic: callers wrap user code (the actor does).
//
// A submit takes no lock unless every worker is busy: it hands r to an idle
// worker if one waits, else starts a worker while there are fewer than
// maxWorkers, else queues r under the pool's mutex. A worker between two
// tasks is not yet waiting, so with maxWorkers workers all started and no
// queue room (queueSize 0) a submit in that moment is refused although a
// worker is about to be free: give the queue some room.
func (p *Pool) TrySubmitFrom(source any, r Runner) bool {
	s := p.state.Load()
	if s&closedBit != 0 || r == nil {
		return false
	}
	select {
	case p.handoff <- r:
		return true
	default:
	}
	for s&closedBit == 0 && s < p.max {
		if p.state.CompareAndSwap(s, s+1) {
			p.start(r)
			return true
		}
		s = p.state.Load()
	}
	if s&closedBit != 0 || p.queued.Load() >= int64(p.qcap) {
		return false // closed, or full: every worker busy and no room
	}
	return p.enqueue(source, r)
}

// start runs a worker for a slot the caller has taken in state. wg.Add
// cannot race with Close's Wait: Close waits for done first, and done is
// closed only after this worker gives its slot back.
func (p *Pool) start(r Runner) {
	p.wg.Add(1)
	go p.work(r)
}

// enqueue queues r in its source's lane, or starts a worker for it if one
// has exited since TrySubmitFrom looked.
func (p *Pool) enqueue(source any, r Runner) bool {
	p.mu.Lock()
	// Under mu no worker gives its slot back, so if state counts one now
	// that worker will find r in the queue before it exits.
	for {
		s := p.state.Load()
		if s&closedBit != 0 {
			p.mu.Unlock()
			return false
		}
		if s < p.max {
			if !p.state.CompareAndSwap(s, s+1) {
				continue
			}
			p.mu.Unlock()
			p.start(r)
			return true
		}
		break
	}
	if p.queued.Load() >= int64(p.qcap) {
		p.mu.Unlock()
		return false
	}
	l := p.lane(source)
	if l == nil {
		l = p.newLane(source)
	}
	l.tasks = append(l.tasks, r)
	p.queued.Add(1)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default: // a token is pending already
	}
	return true
}

// scanLanes is how many lanes the ring may hold before lanes (a map) is
// made to find them: a few are found by a scan, and a map made and dropped
// with every short burst would cost more than it saves.
const scanLanes = 8

// lane returns the lane of source, or nil. Called under mu.
func (p *Pool) lane(source any) *lane {
	if p.lanes != nil {
		return p.lanes[source]
	}
	for _, l := range p.ring[p.rhead:] {
		if l.src == source {
			return l
		}
	}
	return nil
}

// newLane makes (or reuses) the lane of source and puts it at the end of
// the ring. Called under mu.
func (p *Pool) newLane(source any) *lane {
	var l *lane
	if n := len(p.spare); n > 0 {
		l = p.spare[n-1]
		p.spare[n-1] = nil
		p.spare = p.spare[:n-1]
	} else {
		l = new(lane)
	}
	l.src = source
	p.ring = append(p.ring, l)
	switch {
	case p.lanes != nil:
		p.lanes[source] = l
	case len(p.ring)-p.rhead > scanLanes:
		p.lanes = make(map[any]*lane, 2*scanLanes)
		for _, l := range p.ring[p.rhead:] {
			p.lanes[l.src] = l
		}
	}
	return l
}

// pop takes the oldest queued task of the lane whose turn it is, or returns
// nil; that lane goes to the end of the ring if it has more. Called under
// mu.
func (p *Pool) pop() Runner {
	if p.rhead == len(p.ring) {
		return nil
	}
	l := p.ring[p.rhead]
	r := l.tasks[l.head]
	l.tasks[l.head] = nil
	l.head++
	p.queued.Add(-1)
	if l.head < len(l.tasks) {
		if l.head > 64 && l.head*2 > len(l.tasks) {
			n := copy(l.tasks, l.tasks[l.head:])
			clear(l.tasks[n:])
			l.tasks, l.head = l.tasks[:n], 0
		}
		if p.rhead+1 == len(p.ring) {
			return r // the only lane: it keeps its turn
		}
		// Its next task waits for the other lanes' turn.
		p.ring[p.rhead] = nil
		p.rhead++
		p.ring = append(p.ring, l)
	} else {
		p.ring[p.rhead] = nil
		p.rhead++
		if p.lanes != nil {
			delete(p.lanes, l.src)
		}
		l.src, l.head = nil, 0
		l.tasks = l.tasks[:0]
		if cap(l.tasks) > maxSpareTasks {
			l.tasks = nil // a burst is over: do not keep its array
		}
		if len(p.spare) < maxSpareLanes {
			p.spare = append(p.spare, l)
		}
	}
	if p.rhead == len(p.ring) {
		p.ring, p.rhead = p.ring[:0], 0
		if cap(p.ring) > 1024 {
			p.ring = nil
		}
		p.lanes = nil // Go maps never shrink: drop it with the burst
	} else if p.rhead > 64 && p.rhead*2 > len(p.ring) {
		n := copy(p.ring, p.ring[p.rhead:])
		clear(p.ring[n:])
		p.ring, p.rhead = p.ring[:n], 0
	}
	return r
}

// take pops a queued task without waiting, passing the wake token on if
// more are left for other idle workers.
func (p *Pool) take() Runner {
	p.mu.Lock()
	r := p.pop()
	more := p.rhead < len(p.ring)
	p.mu.Unlock()
	if more {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
	return r
}

func (p *Pool) work(r Runner) {
	defer p.wg.Done()
	var idle *time.Timer
	for r != nil {
		r.Run()
		r = p.next(&idle)
	}
}

// next returns the worker's next task: a queued one, else one handed over
// or queued within workerIdle. It returns nil once the worker has given its
// slot back, after workerIdle without work or once Close was called and the
// queue is empty.
func (p *Pool) next(idle **time.Timer) Runner {
	if p.queued.Load() > 0 {
		if r := p.take(); r != nil {
			return r
		}
	}
	if *idle == nil {
		*idle = time.NewTimer(workerIdle)
	} else {
		(*idle).Reset(workerIdle)
	}
wait:
	for {
		select {
		case r := <-p.handoff:
			(*idle).Stop()
			return r
		case <-p.wake:
			if r := p.take(); r != nil {
				(*idle).Stop()
				return r
			}
			// A stale token: the task was taken by a busy worker.
		case <-(*idle).C:
			break wait
		case <-p.quit:
			(*idle).Stop()
			break wait
		}
	}
	if p.testExit != nil {
		p.testExit()
	}
	// Give the slot back, unless a task was queued meanwhile: enqueue
	// queues only under mu and only while this worker is counted.
	p.mu.Lock()
	defer p.mu.Unlock()
	if r := p.pop(); r != nil {
		return r
	}
	if p.state.Add(^uint64(0)) == closedBit {
		close(p.done) // the last worker of a closed pool
	}
	return nil
}

// Running reports the number of workers now running (busy or idle).
func (p *Pool) Running() int {
	return int(p.state.Load() &^ closedBit)
}

// Queued reports the number of tasks waiting for a worker.
func (p *Pool) Queued() int { return int(p.queued.Load()) }

// Close refuses new tasks and waits until every accepted task has run and
// every worker has exited. Tasks must end by themselves (actors cancel their
// handlers' contexts when they stop); a task that calls Close waits for
// itself forever. Close is idempotent.
func (p *Pool) Close() {
	p.mu.Lock()
	if s := p.state.Or(closedBit); s&closedBit == 0 {
		close(p.quit) // idle workers run what is queued and exit
		if s == 0 {
			close(p.done) // no worker, and none can start now
		}
	}
	p.mu.Unlock()
	<-p.done
	p.wg.Wait()
}
