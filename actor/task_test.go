package actor

// Tests of the handler's lazy context (task). TestMain (goleak) is in
// actor_test.go, in the same test binary.

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func newTestTask(timeout time.Duration) *task {
	t := &task{key: `"id"`}
	if timeout > 0 {
		t.dl, t.hasDL = now()+int64(timeout), true
	}
	return t
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

var _ context.Context = (*task)(nil)

func TestTaskCtxCancel(t *testing.T) {
	for _, doneFirst := range []bool{false, true} {
		tk := newTestTask(0)
		if _, ok := tk.Deadline(); ok {
			t.Fatal("a task without timeout has a deadline")
		}
		if tk.Value("k") != nil {
			t.Fatal("Value is not nil")
		}
		var d <-chan struct{}
		if doneFirst {
			d = tk.Done()
			if isClosed(d) {
				t.Fatal("Done closed before cancel")
			}
		}
		if err := tk.Err(); err != nil {
			t.Fatalf("Err before cancel: %v", err)
		}
		tk.cancel()
		tk.cancel() // idempotent
		if !doneFirst {
			d = tk.Done()
		}
		if !isClosed(d) || !isClosed(tk.Done()) {
			t.Fatal("Done not closed after cancel")
		}
		if err := tk.Err(); err != context.Canceled {
			t.Fatalf("Err after cancel: %v", err)
		}
		if tk.timer != nil {
			t.Fatal("a timer without a deadline")
		}
	}
}

// Done, asked before the deadline, closes at the deadline.
func TestTaskCtxDoneAtDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		tk := newTestTask(time.Second)
		dl, ok := tk.Deadline()
		if !ok || dl.Sub(start) != time.Second {
			t.Fatalf("Deadline %v %v, want start+1s", dl, ok)
		}
		d := tk.Done()
		time.Sleep(time.Second - time.Nanosecond)
		synctest.Wait()
		if isClosed(d) || tk.Err() != nil {
			t.Fatalf("ended before the deadline: %v", tk.Err())
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if !isClosed(d) {
			t.Fatal("Done not closed at the deadline")
		}
		if err := tk.Err(); err != context.DeadlineExceeded {
			t.Fatalf("Err %v", err)
		}
		tk.cancel() // the first end wins
		if err := tk.Err(); err != context.DeadlineExceeded {
			t.Fatalf("Err after a late cancel %v", err)
		}
	})
}

// Err sees the deadline without Done: no timer is ever made.
func TestTaskCtxErrWithoutDone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tk := newTestTask(time.Second)
		if tk.Err() != nil {
			t.Fatal("Err before the deadline")
		}
		time.Sleep(time.Second)
		if err := tk.Err(); err != context.DeadlineExceeded {
			t.Fatalf("Err %v", err)
		}
		if !isClosed(tk.Done()) {
			t.Fatal("Done not closed once Err reported the deadline")
		}
		if tk.timer != nil {
			t.Fatal("a timer was armed")
		}
		// Done asked first after the deadline passed: closed at once.
		tk2 := newTestTask(time.Second)
		time.Sleep(2 * time.Second)
		if !isClosed(tk2.Done()) || tk2.Err() != context.DeadlineExceeded {
			t.Fatalf("late Done: %v", tk2.Err())
		}
	})
}

// A cancel stops the deadline's timer.
func TestTaskCtxCancelStopsTimer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tk := newTestTask(time.Hour)
		d := tk.Done()
		tk.cancel()
		if !isClosed(d) || tk.Err() != context.Canceled {
			t.Fatal("not cancelled")
		}
		if tk.timer.Stop() {
			t.Fatal("the timer was still armed after cancel")
		}
	})
}

// context.WithCancel on a task registers with its AfterFunc method: no
// goroutine per child; the children end with the task.
func TestTaskCtxChildren(t *testing.T) {
	tk := newTestTask(time.Hour)
	before := runtime.NumGoroutine()
	const n = 1000
	children := make([]context.Context, n)
	cancels := make([]context.CancelFunc, n)
	for i := range children {
		children[i], cancels[i] = context.WithCancel(tk)
	}
	if grown := runtime.NumGoroutine() - before; grown >= 10 {
		t.Fatalf("%d children started %d goroutines", n, grown)
	}
	tk.mu.Lock()
	registered := len(tk.afters)
	tk.mu.Unlock()
	if registered != n {
		t.Fatalf("%d AfterFunc registrations, want %d", registered, n)
	}
	// A child cancelled by itself unregisters.
	cancels[n-1]()
	if len(tk.afters) != n-1 || !isClosed(children[n-1].Done()) {
		t.Fatalf("child cancel: %d registrations left", len(tk.afters))
	}
	if children[0].Err() != nil {
		t.Fatal("a sibling was cancelled")
	}
	// A grandchild with a timer of its own.
	gc, gcCancel := context.WithTimeout(children[0], time.Hour)
	defer gcCancel()
	tk.cancel()
	for i, c := range append(children[:n-1], gc) {
		select {
		case <-c.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("child %d not cancelled", i)
		}
		if !errors.Is(c.Err(), context.Canceled) || !errors.Is(context.Cause(c), context.Canceled) {
			t.Fatalf("child %d: Err %v Cause %v", i, c.Err(), context.Cause(c))
		}
	}
	for _, cancel := range cancels {
		cancel()
	}
	if tk.afters != nil {
		t.Fatal("registrations kept after the end")
	}
}

// A child with its own shorter timeout, and one that outlives it, under a
// task whose deadline passes.
func TestTaskCtxChildAtDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tk := newTestTask(time.Second)
		short, cancelShort := context.WithTimeout(tk, 100*time.Millisecond)
		defer cancelShort()
		long, cancelLong := context.WithTimeout(tk, time.Hour)
		defer cancelLong()
		if dl, _ := long.Deadline(); !dl.Equal(mustDeadline(t, tk)) {
			t.Fatalf("child deadline %v, want the task's %v", dl, mustDeadline(t, tk))
		}
		<-short.Done()
		if tk.Err() != nil || long.Err() != nil {
			t.Fatal("the parent ended with its child")
		}
		<-long.Done()
		if !errors.Is(long.Err(), context.DeadlineExceeded) || tk.Err() != context.DeadlineExceeded {
			t.Fatalf("long %v, task %v", long.Err(), tk.Err())
		}
	})
}

func mustDeadline(t *testing.T, c context.Context) time.Time {
	t.Helper()
	dl, ok := c.Deadline()
	if !ok {
		t.Fatal("no deadline")
	}
	return dl
}

func TestTaskCtxAfterFunc(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tk := newTestTask(time.Second)
		var ran, stoppedRan atomic.Int32
		stop := context.AfterFunc(tk, func() { ran.Add(1) })
		stop2 := context.AfterFunc(tk, func() { stoppedRan.Add(1) })
		if !stop2() {
			t.Fatal("stop before the end returned false")
		}
		if stop2() {
			t.Fatal("a second stop returned true")
		}
		tk.cancel()
		tk.cancel()
		time.Sleep(2 * time.Second) // past the deadline too
		synctest.Wait()
		if ran.Load() != 1 || stoppedRan.Load() != 0 {
			t.Fatalf("ran %d times, the stopped one %d times", ran.Load(), stoppedRan.Load())
		}
		if stop() {
			t.Fatal("stop after the run returned true")
		}
		// On an ended task: runs at once, in a goroutine of its own.
		late := make(chan struct{})
		stop3 := tk.AfterFunc(func() { close(late) })
		<-late
		if stop3() {
			t.Fatal("stop of a started AfterFunc returned true")
		}
		// The method directly, with a deadline and no Done asked before.
		tk2 := newTestTask(time.Second)
		fired := make(chan struct{})
		tk2.AfterFunc(func() { close(fired) })
		<-fired
		if tk2.Err() != context.DeadlineExceeded {
			t.Fatalf("Err %v", tk2.Err())
		}
	})
}

// Every method from many goroutines at once (run with -race): one outcome,
// one channel, each AfterFunc exactly once.
func TestTaskCtxConcurrent(t *testing.T) {
	for range 200 {
		tk := newTestTask(time.Millisecond)
		var ran atomic.Int32
		var wg, afters sync.WaitGroup
		start := make(chan struct{})
		const g = 8
		afters.Add(g / 4)
		chans := make([]<-chan struct{}, g)
		for i := range g {
			wg.Go(func() {
				<-start
				switch i % 4 {
				case 0:
					tk.cancel()
				case 1:
					context.AfterFunc(tk, func() { ran.Add(1); afters.Done() })
				case 2:
					_ = tk.Err()
				}
				chans[i] = tk.Done()
				<-chans[i]
			})
		}
		close(start)
		wg.Wait()
		for _, ch := range chans {
			if ch != chans[0] {
				t.Fatal("Done returned different channels")
			}
		}
		if err := tk.Err(); err != context.Canceled && err != context.DeadlineExceeded {
			t.Fatalf("Err %v", err)
		}
		afters.Wait() // they run in goroutines of their own
		if ran.Load() != g/4 {
			t.Fatalf("%d AfterFunc runs, want %d", ran.Load(), g/4)
		}
	}
}
