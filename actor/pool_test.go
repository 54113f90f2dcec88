package actor_test

// Tests of Pool. TestMain (goleak) is in actor_test.go, in the same test
// binary.

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/wsactor/wsactor/actor"
)

// gauge tracks how many tasks run at once and the most seen.
type gauge struct{ now, peak atomic.Int64 }

func (g *gauge) enter() {
	n := g.now.Add(1)
	for p := g.peak.Load(); n > p && !g.peak.CompareAndSwap(p, n); p = g.peak.Load() {
	}
}

func (g *gauge) leave() { g.now.Add(-1) }

// blocker is a task that reports it started, then waits for release.
type blocker struct {
	g       *gauge
	started chan<- int
	release <-chan struct{}
	id      int
	ran     atomic.Int32
}

func (b *blocker) Run() {
	b.g.enter()
	defer b.g.leave()
	b.ran.Add(1)
	b.started <- b.id
	<-b.release
}

// At most maxWorkers tasks run at once, at most queueSize more wait, and
// the rest are refused; queued tasks run in order once workers are free.
func TestPoolBounds(t *testing.T) {
	for _, c := range []struct{ workers, queue int }{{1, 0}, {1, 3}, {4, 0}, {4, 8}} {
		synctest.Test(t, func(t *testing.T) {
			p, err := actor.NewPool(c.workers, c.queue)
			if err != nil {
				t.Fatal(err)
			}
			var g gauge
			started := make(chan int, c.workers+c.queue)
			release := make(chan struct{})
			var tasks []*blocker
			for i := range c.workers + c.queue {
				b := &blocker{g: &g, started: started, release: release, id: i}
				tasks = append(tasks, b)
				if !p.TrySubmit(b) {
					t.Fatalf("%d workers, queue %d: task %d refused", c.workers, c.queue, i)
				}
			}
			synctest.Wait()
			if n := len(started); n != c.workers {
				t.Errorf("%d workers, queue %d: %d tasks started, want %d", c.workers, c.queue, n, c.workers)
			}
			if n := p.Running(); n != c.workers {
				t.Errorf("Running() = %d, want %d", n, c.workers)
			}
			extra := &blocker{g: &g, started: started, release: release, id: -1}
			if p.TrySubmit(extra) {
				t.Errorf("%d workers, queue %d: a task beyond the bounds was accepted", c.workers, c.queue)
			}
			close(release)
			var order []int
			for range tasks {
				order = append(order, <-started)
			}
			p.Close()
			if n := g.peak.Load(); n != int64(c.workers) {
				t.Errorf("peak concurrency %d, want %d", n, c.workers)
			}
			for _, b := range tasks {
				if n := b.ran.Load(); n != 1 {
					t.Errorf("task %d ran %d times", b.id, n)
				}
			}
			if extra.ran.Load() != 0 {
				t.Error("the refused task ran")
			}
			// The first c.workers started in any order; the queued ones
			// start in order as workers free up, one at a time when
			// there is one worker.
			if c.workers == 1 && !slices.IsSorted(order) {
				t.Errorf("tasks ran in order %v", order)
			}
		})
	}
}

// Close refuses new tasks at once, then waits for the running task and the
// queued ones.
func TestPoolCloseWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, err := actor.NewPool(1, 2)
		if err != nil {
			t.Fatal(err)
		}
		var g gauge
		started := make(chan int, 3)
		release := make(chan struct{})
		var tasks []*blocker
		for i := range 3 {
			b := &blocker{g: &g, started: started, release: release, id: i}
			tasks = append(tasks, b)
			if !p.TrySubmit(b) {
				t.Fatalf("task %d refused", i)
			}
		}
		closed := make(chan struct{})
		go func() {
			p.Close()
			close(closed)
		}()
		synctest.Wait()
		select {
		case <-closed:
			t.Fatal("Close returned while a task was running")
		default:
		}
		if p.TrySubmit(actor.RunFunc(func() { t.Error("task submitted after Close ran") })) {
			t.Error("TrySubmit after Close returned true")
		}
		close(release)
		<-closed
		for _, b := range tasks {
			if n := b.ran.Load(); n != 1 {
				t.Errorf("task %d ran %d times", b.id, n)
			}
		}
		if n := p.Running(); n != 0 {
			t.Errorf("Running() = %d after Close", n)
		}
		p.Close() // idempotent
		if p.TrySubmit(actor.RunFunc(func() {})) {
			t.Error("TrySubmit after the second Close returned true")
		}
	})
}

func TestPoolRefusals(t *testing.T) {
	p, err := actor.NewPool(1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if p.TrySubmit(nil) {
		t.Error("TrySubmit(nil) returned true")
	}
	p.Close()
	if p.TrySubmit(actor.RunFunc(func() {})) {
		t.Error("TrySubmit after Close returned true")
	}
	for _, c := range []struct{ workers, queue int }{{0, 0}, {-1, 1}, {1, -1}} {
		if _, err := actor.NewPool(c.workers, c.queue); err == nil {
			t.Errorf("NewPool(%d, %d) succeeded", c.workers, c.queue)
		}
	}
}

// An idle worker lingers WorkerIdle, takes the next task while it does, and
// then exits: an idle pool has no goroutine.
func TestPoolIdleWorkerLingers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, err := actor.NewPool(4, 4)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		done := make(chan struct{}, 1)
		task := actor.RunFunc(func() { done <- struct{}{} })
		if n := p.Running(); n != 0 {
			t.Fatalf("new pool: Running() = %d", n)
		}
		for range 3 {
			if !p.TrySubmit(task) {
				t.Fatal("refused")
			}
			<-done
			time.Sleep(actor.WorkerIdle - time.Nanosecond)
			synctest.Wait()
			// The same worker, idle all this time, takes each task.
			if n := p.Running(); n != 1 {
				t.Fatalf("Running() = %d, want 1 lingering worker", n)
			}
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if n := p.Running(); n != 0 {
			t.Fatalf("Running() = %d after WorkerIdle without work", n)
		}
		// And the pool starts a worker again.
		if !p.TrySubmit(task) {
			t.Fatal("refused")
		}
		<-done
	})
}

// The race of a submitter with the last worker exiting: the worker's idle
// time is up, so it no longer waits for a handoff, but it still counts as
// running, so the submitter finds the pool saturated and queues its task.
// The worker must find that task before it gives its slot back.
func TestPoolQueueWhileLastWorkerExits(t *testing.T) {
	for _, queue := range []int{1, 4} {
		synctest.Test(t, func(t *testing.T) {
			p, err := actor.NewPool(1, queue)
			if err != nil {
				t.Fatal(err)
			}
			exiting := make(chan struct{})
			resume := make(chan struct{})
			actor.SetExitHook(p, func() {
				exiting <- struct{}{}
				<-resume
			})
			var runs atomic.Int32
			task := actor.RunFunc(func() { runs.Add(1) })
			if !p.TrySubmit(task) {
				t.Fatal("refused")
			}
			<-exiting // WorkerIdle later, the worker is on its way out
			if !p.TrySubmit(task) {
				t.Fatal("refused while the queue has room")
			}
			if n := p.Running(); n != 1 {
				t.Fatalf("Running() = %d, want 1 (the exiting worker)", n)
			}
			resume <- struct{}{}
			synctest.Wait()
			if n := runs.Load(); n != 2 {
				t.Fatalf("the task queued while the worker exited did not run (%d runs)", n)
			}
			// The worker ran it and lingers again; then it exits for good.
			if n := p.Running(); n != 1 {
				t.Fatalf("Running() = %d, want 1", n)
			}
			go func() {
				for range exiting {
					resume <- struct{}{}
				}
			}()
			time.Sleep(actor.WorkerIdle)
			synctest.Wait()
			if n := p.Running(); n != 0 {
				t.Fatalf("Running() = %d, want 0", n)
			}
			p.Close()
			close(exiting)
		})
	}
}

// stressTask counts its runs and the tasks running at once; it may sleep
// (in the bubble's clock) so that tasks overlap and the queue fills.
type stressTask struct {
	g    *gauge
	d    time.Duration
	src  any // the source it is submitted from
	runs atomic.Int32
}

func (s *stressTask) Run() {
	s.g.enter()
	s.runs.Add(1)
	if s.d > 0 {
		time.Sleep(s.d)
	}
	s.g.leave()
}

// Many goroutines submit at once while workers go idle, linger and exit:
// the test advances the bubble's clock in rounds, so that the submitters
// wake up at the very instant the idle workers' timers fire (the race
// between a submitter queueing and the last worker exiting). After each
// round every accepted task has run exactly once (none is stranded in the
// queue), no refused task has run, and the bound holds. Tasks come from 12
// sources and the nil one (TrySubmit), so that lanes are made, emptied,
// reused and found both by a scan and through the map.
func TestPoolStress(t *testing.T) {
	const submitters, rounds = 8, 300
	srcs := []any{nil}
	for range 12 {
		srcs = append(srcs, new(int))
	}
	for _, c := range []struct{ workers, queue int }{{1, 0}, {1, 4}, {3, 2}, {4, 32}, {2, 64}} {
		synctest.Test(t, func(t *testing.T) {
			p, err := actor.NewPool(c.workers, c.queue)
			if err != nil {
				t.Fatal(err)
			}
			var g gauge
			var accepted, refused int
			rng := rand.New(rand.NewPCG(uint64(c.workers), uint64(c.queue)))
			// Tasks take 0 or 1 ms, so a round's accepted tasks are done
			// within drain, and workers went idle at one of its
			// milliseconds: the next round starts either at once or just
			// when some of their idle timers fire.
			drain := time.Duration(c.workers+c.queue+1) * time.Millisecond
			for round := range rounds {
				tasks := make([][]*stressTask, submitters)
				oks := make([][]bool, submitters)
				for i := range submitters {
					for range 1 + rng.IntN(3) {
						tasks[i] = append(tasks[i], &stressTask{g: &g, d: time.Duration(rng.IntN(3)/2) * time.Millisecond, src: srcs[rng.IntN(len(srcs))]})
					}
					oks[i] = make([]bool, len(tasks[i]))
				}
				var wg sync.WaitGroup
				for i := range submitters {
					wg.Go(func() {
						for j, s := range tasks[i] {
							oks[i][j] = p.TrySubmitFrom(s.src, s)
						}
					})
				}
				wg.Wait()
				time.Sleep(drain)
				synctest.Wait()
				for i := range tasks {
					for j, s := range tasks[i] {
						want := int32(0)
						if oks[i][j] {
							want = 1
							accepted++
						} else {
							refused++
						}
						if n := s.runs.Load(); n != want {
							t.Fatalf("%d workers, queue %d, round %d: task %d/%d (accepted %v) ran %d times", c.workers, c.queue, round, i, j, oks[i][j], n)
						}
					}
				}
				if n := p.Running(); n > c.workers {
					t.Fatalf("Running() = %d > %d", n, c.workers)
				}
				if rng.IntN(4) > 0 {
					time.Sleep(actor.WorkerIdle - drain + time.Duration(rng.IntN(int(drain/time.Millisecond)+1))*time.Millisecond)
				}
			}
			time.Sleep(actor.WorkerIdle)
			synctest.Wait()
			if n := p.Running(); n != 0 {
				t.Errorf("Running() = %d after the pool went idle", n)
			}
			p.Close()
			if n := g.peak.Load(); n > int64(c.workers) {
				t.Errorf("%d tasks ran at once, limit %d", n, c.workers)
			}
			t.Logf("%d workers, queue %d: %d accepted, %d refused, peak %d", c.workers, c.queue, accepted, refused, g.peak.Load())
		})
	}
}

// Close racing with many submitters: each submit is either refused or run
// before Close returns, and the pool is left without a goroutine.
func TestPoolCloseRacesSubmit(t *testing.T) {
	for range 200 {
		p, err := actor.NewPool(2, 2)
		if err != nil {
			t.Fatal(err)
		}
		var closed atomic.Bool
		var late, runs, acc atomic.Int64
		task := actor.RunFunc(func() {
			if closed.Load() {
				late.Add(1)
			}
			runs.Add(1)
		})
		start := make(chan struct{})
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				<-start
				for range 20 {
					if p.TrySubmit(task) {
						acc.Add(1)
					}
				}
			})
		}
		wg.Go(func() {
			<-start
			p.Close()
			closed.Store(true)
		})
		close(start)
		wg.Wait()
		if late.Load() != 0 {
			t.Fatalf("%d accepted tasks ran after Close returned", late.Load())
		}
		if runs.Load() != acc.Load() {
			t.Fatalf("%d tasks accepted, %d ran", acc.Load(), runs.Load())
		}
		if n := p.Running(); n != 0 {
			t.Fatalf("Running() = %d after Close", n)
		}
	}
}

type countTask struct{ n atomic.Int64 }

func (c *countTask) Run() { c.n.Add(1) }

type signalTask struct{ done chan struct{} }

func (s *signalTask) Run() { s.done <- struct{}{} }

type wgTask struct{ wg sync.WaitGroup }

func (w *wgTask) Run() { w.wg.Done() }

// Saturated: submitters outrun the workers; most submits are refused.
func benchSaturated(b *testing.B, par int) {
	pool := newPool(b, 64, 1024)
	var c countTask
	var refused atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(par)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !pool.TrySubmit(&c) {
				refused.Add(1)
			}
		}
	})
	b.ReportMetric(float64(refused.Load())/float64(b.N), "refused/op")
}

// RoundTrip: each submitter waits for its task, like an actor answering one
// request at a time: never full, workers go idle and are handed tasks.
func benchRoundTrip(b *testing.B, par int) {
	pool := newPool(b, 64, 1024)
	b.ReportAllocs()
	b.SetParallelism(par)
	b.RunParallel(func(pb *testing.PB) {
		s := &signalTask{done: make(chan struct{})}
		for pb.Next() {
			if !pool.TrySubmit(s) {
				b.Error("refused")
				return
			}
			<-s.done
		}
	})
}

// Burst: each submitter submits 8 tasks then waits for them: the queue is used.
func benchBurst(b *testing.B, par int) {
	pool := newPool(b, 8, 1024)
	b.ReportAllocs()
	b.SetParallelism(par)
	b.RunParallel(func(pb *testing.PB) {
		w := new(wgTask)
		for pb.Next() {
			w.wg.Add(8)
			for range 8 {
				if !pool.TrySubmit(w) {
					b.Error("refused")
					return
				}
			}
			w.wg.Wait()
		}
	})
}

func BenchmarkPoolSaturated(b *testing.B)   { benchSaturated(b, 1) }
func BenchmarkPoolSaturated16(b *testing.B) { benchSaturated(b, 16) }
func BenchmarkPoolRoundTrip(b *testing.B)   { benchRoundTrip(b, 1) }
func BenchmarkPoolRoundTrip16(b *testing.B) { benchRoundTrip(b, 16) }
func BenchmarkPoolBurst16(b *testing.B)     { benchBurst(b, 16) }

// seqTask records its name when it runs, then waits for release.
type seqTask struct {
	name    string
	started chan<- string
	release <-chan struct{}
}

func (s *seqTask) Run() {
	s.started <- s.name
	<-s.release
}

// Waiting tasks are taken in turn from each source (round-robin), each
// source's in the order they came: one source's flood delays another's
// single task by one task, not by the flood. With more sources than a scan
// covers, the pool finds their queues through a map: same order.
func TestPoolFairBetweenSources(t *testing.T) {
	for _, c := range []struct{ sources, each int }{{2, 50}, {20, 5}} {
		t.Run(fmt.Sprintf("%d sources", c.sources), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p, err := actor.NewPool(1, c.sources*c.each)
				if err != nil {
					t.Fatal(err)
				}
				started := make(chan string)
				release := make(chan struct{})
				srcs := make([]*int, c.sources) // distinct pointers
				for i := range srcs {
					srcs[i] = new(int)
				}
				// Source 0 floods first; the others come after it.
				for s := range c.sources {
					for k := range c.each {
						task := &seqTask{name: fmt.Sprintf("s%d.%d", s, k), started: started, release: release}
						if !p.TrySubmitFrom(srcs[s], task) {
							t.Fatalf("task %s refused", task.name)
						}
					}
				}
				var got []string
				for range c.sources * c.each {
					got = append(got, <-started)
					release <- struct{}{}
				}
				p.Close()
				// s0.0 ran at once; then one task of each source in turn.
				want := []string{"s0.0"}
				next := make([]int, c.sources)
				next[0] = 1
				for len(want) < c.sources*c.each {
					for s := range c.sources {
						if next[s] < c.each {
							want = append(want, fmt.Sprintf("s%d.%d", s, next[s]))
							next[s]++
						}
					}
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("order\n got %v\nwant %v", got, want)
				}
			})
		})
	}
}
