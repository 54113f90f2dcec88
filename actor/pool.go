package actor

import (
	"fmt"
	"sync"
	"time"

	"github.com/sourcegraph/conc"
)

// workerIdle is how long a worker with nothing to do waits for a task
// before it exits. Reusing a worker saves starting a goroutine (and growing
// its stack) for every request under load; exiting keeps an idle pool free
// of goroutines.
const workerIdle = time.Second

// Pool runs request handlers for many actors with bounded concurrency: at
// most maxWorkers tasks run at once and at most queueSize more wait. A task
// that finds both full is refused ([Pool.TrySubmit] returns false) and the
// actor answers that request with an error of code [CodeBusy]; nothing blocks.
//
// Workers are started on demand and exit after a second without work, so an
// idle pool owns no goroutine. All methods may be called concurrently. The
// zero value is not usable: use [NewPool].
type Pool struct {
	max, qcap int
	handoff   chan func() // unbuffered: a send succeeds only if a worker is idle
	quit      chan struct{}

	mu      sync.Mutex
	running int
	idle    int // workers waiting on handoff that no submitter has claimed
	queue   []func()
	head    int
	closed  bool

	wg conc.WaitGroup
}

// NewPool returns a pool running at most maxWorkers tasks at once with room
// for queueSize waiting tasks.
func NewPool(maxWorkers, queueSize int) (*Pool, error) {
	if maxWorkers < 1 || queueSize < 0 {
		return nil, fmt.Errorf("actor: pool of %d workers and a queue of %d: want workers >= 1, queue >= 0", maxWorkers, queueSize)
	}
	return &Pool{max: maxWorkers, qcap: queueSize, handoff: make(chan func()), quit: make(chan struct{})}, nil
}

// TrySubmit runs f on a worker, now or after the tasks queued before it. It
// never blocks; it reports false when the pool is full or closed. f must not
// panic: callers wrap user code (the actor does).
func (p *Pool) TrySubmit(f func()) bool {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return false
	}
	if p.head == len(p.queue) {
		// Nothing waits ahead of f: hand it to an idle worker if there is
		// one. A claimed worker always receives (see work), so the send
		// cannot block for long.
		if p.idle > 0 {
			p.idle--
			p.mu.Unlock()
			p.handoff <- f
			return true
		}
		if p.running < p.max {
			p.running++
			p.wg.Go(func() { p.work(f) }) // under mu: Close's Wait cannot miss it
			p.mu.Unlock()
			return true
		}
	}
	if len(p.queue)-p.head >= p.qcap {
		p.mu.Unlock()
		return false
	}
	p.queue = append(p.queue, f)
	p.mu.Unlock()
	return true
}

func (p *Pool) work(f func()) {
	var idle *time.Timer
	for {
		f()
		if f = p.next(); f != nil {
			continue
		}
		if idle == nil {
			idle = time.NewTimer(workerIdle)
		} else {
			idle.Reset(workerIdle)
		}
		select {
		case f = <-p.handoff:
			idle.Stop()
			continue
		case <-idle.C:
		case <-p.quit:
		}
		p.mu.Lock()
		if p.idle == 0 {
			// Every idle worker, this one included, has been claimed by a
			// submitter whose send is on its way: take one.
			p.mu.Unlock()
			f = <-p.handoff
			continue
		}
		p.idle--
		p.running--
		p.mu.Unlock()
		return
	}
}

// next pops a queued task, or returns nil and counts the caller as idle.
func (p *Pool) next() func() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.head == len(p.queue) {
		p.idle++
		p.queue, p.head = p.queue[:0], 0
		if cap(p.queue) > 1024 {
			p.queue = nil
		}
		return nil
	}
	return p.pop()
}

func (p *Pool) pop() func() {
	f := p.queue[p.head]
	p.queue[p.head] = nil
	p.head++
	if p.head > 64 && p.head*2 > len(p.queue) {
		n := copy(p.queue, p.queue[p.head:])
		clear(p.queue[n:])
		p.queue, p.head = p.queue[:n], 0
	}
	return f
}

// Running reports the number of workers now running (busy or idle).
func (p *Pool) Running() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running
}

// Close refuses new tasks and waits until every accepted task has run and
// every worker has exited. Tasks must end by themselves (actors cancel their
// handlers' contexts when they stop); a task that calls Close waits for
// itself forever. Close is idempotent.
func (p *Pool) Close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.quit)
	}
	p.mu.Unlock()
	p.wg.Wait()
}
