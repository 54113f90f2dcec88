package mailbox_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsactor/wsactor/mailbox"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const wait = 10 * time.Second

func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(wait):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func TestNewValidates(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler func(int)
		opts    []mailbox.Option
	}{
		{"nil handler", nil, nil},
		{"zero capacity", func(int) {}, []mailbox.Option{mailbox.WithCapacity(0)}},
		{"negative capacity", func(int) {}, []mailbox.Option{mailbox.WithCapacity(-3)}},
	} {
		if _, err := mailbox.New(tc.handler, tc.opts...); err == nil {
			t.Errorf("%s: New succeeded, want an error", tc.name)
		}
	}
}

func TestFIFOAndSingleConsumer(t *testing.T) {
	const producers, per = 8, 5000
	var inside atomic.Int32
	var overlap atomic.Bool
	last := make([]int, producers)
	for i := range last {
		last[i] = -1
	}
	var outOfOrder atomic.Int32
	var got atomic.Int32
	done := make(chan struct{})
	m, err := mailbox.New(func(v [2]int) {
		if inside.Add(1) != 1 {
			overlap.Store(true)
		}
		// last is touched only by the handler: the race detector checks the
		// single-consumer claim.
		if v[1] != last[v[0]]+1 {
			outOfOrder.Add(1)
		}
		last[v[0]] = v[1]
		inside.Add(-1)
		if got.Add(1) == producers*per {
			close(done)
		}
	}, mailbox.WithCapacity(64))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := range per {
				if err := m.PostWait(context.Background(), [2]int{p, i}); err != nil {
					t.Errorf("PostWait: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	waitClosed(t, done, "all messages")
	m.Close()
	waitClosed(t, m.Stopped(), "Stopped")
	if overlap.Load() {
		t.Error("two goroutines ran the handler at once")
	}
	if n := outOfOrder.Load(); n != 0 {
		t.Errorf("%d messages out of per-producer order", n)
	}
}

func TestPostFullAndPostWait(t *testing.T) {
	release := make(chan struct{})
	started := make(chan int, 16)
	m, err := mailbox.New(func(v int) {
		started <- v
		<-release
	}, mailbox.WithCapacity(2))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Post(1); err != nil {
		t.Fatal(err)
	}
	<-started // the drainer took 1 and is blocked in the handler
	if err := m.Post(2); err != nil {
		t.Fatal(err)
	}
	if err := m.Post(3); err != nil {
		t.Fatal(err)
	}
	if err := m.Post(4); !errors.Is(err, mailbox.ErrFull) {
		t.Fatalf("Post on a full lane = %v, want ErrFull", err)
	}
	if err := m.PostSystem(100); err != nil {
		t.Fatalf("PostSystem on a full user lane = %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := m.PostWait(ctx, 5); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("PostWait with expired ctx = %v, want DeadlineExceeded", err)
	}
	posted := make(chan error, 1)
	go func() { posted <- m.PostWait(context.Background(), 6) }()
	close(release) // the drainer goes on, takes 2 and 3, making room
	select {
	case err := <-posted:
		if err != nil {
			t.Fatalf("PostWait = %v", err)
		}
	case <-time.After(wait):
		t.Fatal("PostWait did not return after room was made")
	}
	m.Close()
	waitClosed(t, m.Stopped(), "Stopped")
	close(started)
	var order []int
	for v := range started {
		order = append(order, v)
	}
	want := []int{100, 2, 3, 6} // 1 was read above
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Fatalf("handled %v, want %v (system lane first)", order, want)
	}
}

func TestSystemLaneOvertakesUserBatch(t *testing.T) {
	var order []string
	gate := make(chan struct{})
	finished := make(chan struct{})
	var m *mailbox.Mailbox[string]
	m, err := mailbox.New(func(v string) {
		if v == "u0" {
			<-gate
			// Posted while the user batch is being handled.
			if err := m.PostSystem("s"); err != nil {
				t.Error(err)
			}
		}
		order = append(order, v)
		if len(order) == 4 {
			close(finished)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Post("u0"); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"u1", "u2"} {
		if err := m.Post(v); err != nil {
			t.Fatal(err)
		}
	}
	close(gate)
	waitClosed(t, finished, "four messages")
	m.Close()
	waitClosed(t, m.Stopped(), "Stopped")
	// u0 may have been a batch of its own; either way s runs before u2.
	idx := map[string]int{}
	for i, v := range order {
		idx[v] = i
	}
	if len(order) != 4 || idx["s"] > idx["u2"] {
		t.Fatalf("order %v: the system message must overtake queued user messages", order)
	}
}

// With inline draining, a poster that finds the mailbox idle runs the
// handler itself (no goroutine), up to its budget; the rest goes to a
// drainer goroutine; order and single consumption hold.
func TestInlineDrain(t *testing.T) {
	var posterGoroutine atomic.Bool
	inPost := atomic.Bool{}
	var order []int
	done := make(chan struct{})
	var m *mailbox.Mailbox[int]
	m, err := mailbox.New(func(v int) {
		if inPost.Load() {
			posterGoroutine.Store(true)
		}
		order = append(order, v)
		if v == 1 {
			// Reentrant posts while handling: queued, not run recursively.
			for i := 2; i <= 5; i++ {
				if err := m.Post(i); err != nil {
					t.Error(err)
				}
			}
		}
		if v == 5 {
			close(done)
		}
	}, mailbox.WithInlineDrain(2))
	if err != nil {
		t.Fatal(err)
	}
	inPost.Store(true)
	if err := m.Post(1); err != nil {
		t.Fatal(err)
	}
	inPost.Store(false)
	waitClosed(t, done, "all messages")
	m.Close()
	waitClosed(t, m.Stopped(), "Stopped")
	if !posterGoroutine.Load() {
		t.Error("the idle mailbox's first message was not handled by the poster")
	}
	if fmt.Sprint(order) != "[1 2 3 4 5]" {
		t.Fatalf("order %v", order)
	}
	if _, err := mailbox.New(func(int) {}, mailbox.WithInlineDrain(-1)); err == nil {
		t.Error("negative budget accepted")
	}
}

func TestPanicIsRecoveredAndDrainingGoesOn(t *testing.T) {
	var panics []any
	var handled []int
	m, err := mailbox.New(func(v int) {
		if v == 2 {
			panic("boom")
		}
		handled = append(handled, v)
	}, mailbox.WithPanicHandler(func(r any) { panics = append(panics, r) }))
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if err := m.Post(i); err != nil {
			t.Fatal(err)
		}
	}
	m.Close()
	waitClosed(t, m.Stopped(), "Stopped")
	if fmt.Sprint(handled) != "[1 3]" || fmt.Sprint(panics) != "[boom]" {
		t.Fatalf("handled %v panics %v", handled, panics)
	}
}

func TestCloseDrainsThenRefuses(t *testing.T) {
	var n atomic.Int32
	release := make(chan struct{})
	m, err := mailbox.New(func(int) { <-release; n.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := m.Post(i); err != nil {
			t.Fatal(err)
		}
	}
	m.Close()
	m.Close() // idempotent
	if err := m.Post(1); !errors.Is(err, mailbox.ErrClosed) {
		t.Errorf("Post after Close = %v", err)
	}
	if err := m.PostSystem(1); !errors.Is(err, mailbox.ErrClosed) {
		t.Errorf("PostSystem after Close = %v", err)
	}
	if err := m.PostWait(context.Background(), 1); !errors.Is(err, mailbox.ErrClosed) {
		t.Errorf("PostWait after Close = %v", err)
	}
	select {
	case <-m.Stopped():
		t.Fatal("Stopped before the queued messages were handled")
	default:
	}
	close(release)
	waitClosed(t, m.Stopped(), "Stopped")
	if n.Load() != 10 {
		t.Fatalf("handled %d of 10 queued messages", n.Load())
	}
}

func TestCloseIdleAndWakesWaiters(t *testing.T) {
	m, err := mailbox.New(func(int) {})
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	waitClosed(t, m.Stopped(), "Stopped on an idle mailbox")

	block := make(chan struct{})
	took := make(chan struct{}, 4)
	m2, err := mailbox.New(func(int) { took <- struct{}{}; <-block }, mailbox.WithCapacity(1))
	if err != nil {
		t.Fatal(err)
	}
	_ = m2.Post(1)
	<-took // the drainer holds message 1
	if err := m2.Post(2); err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	go func() { res <- m2.PostWait(context.Background(), 3) }()
	m2.Close()
	select {
	case err := <-res:
		if !errors.Is(err, mailbox.ErrClosed) {
			t.Fatalf("waiting PostWait after Close = %v, want ErrClosed", err)
		}
	case <-time.After(wait):
		t.Fatal("Close did not wake a waiting PostWait")
	}
	close(block)
	waitClosed(t, m2.Stopped(), "Stopped")
}

// The system lane is FIFO too: a system message posted while a system batch
// is being handled does not overtake the rest of that batch.
func TestSystemLaneFIFO(t *testing.T) {
	var got []string
	release := make(chan struct{})
	done := make(chan struct{})
	var m *mailbox.Mailbox[string]
	m, err := mailbox.New(func(v string) {
		switch v {
		case "block":
			<-release
		case "A":
			_ = m.PostSystem("C") // posted after A and B: must come after B
		case "C":
			close(done)
		}
		got = append(got, v)
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = m.Post("block")
	_ = m.PostSystem("A")
	_ = m.PostSystem("B")
	close(release)
	waitClosed(t, done, "C")
	m.Close()
	waitClosed(t, m.Stopped(), "stopped")
	want := []string{"block", "A", "B", "C"}
	if i, j := idx(got, "B"), idx(got, "C"); i < 0 || j < 0 || j < i {
		t.Fatalf("order %v, want %v", got, want)
	}
}

func idx(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func ExampleMailbox() {
	done := make(chan struct{})
	total := 0 // owned by the handler alone: no lock needed
	m, _ := mailbox.New(func(v int) {
		total += v
		if v == 3 {
			fmt.Println("total:", total)
			close(done)
		}
	})
	for _, v := range []int{1, 2, 3} {
		_ = m.Post(v)
	}
	<-done
	m.Close()
	<-m.Stopped()
	// Output: total: 6
}

func BenchmarkPostDrain(b *testing.B) {
	var n atomic.Int64
	m, _ := mailbox.New(func(int) { n.Add(1) }, mailbox.WithCapacity(1<<20))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			for m.PostWait(context.Background(), 1) != nil {
			}
		}
	})
	m.Close()
	<-m.Stopped()
}

// BenchmarkChannel is the baseline: a buffered channel and one consumer goroutine.
func BenchmarkChannel(b *testing.B) {
	ch := make(chan int, 1024)
	done := make(chan struct{})
	go func() {
		for range ch {
		}
		close(done)
	}()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ch <- 1
		}
	})
	close(ch)
	<-done
}

func BenchmarkPingPongInline(b *testing.B) {
	ack := make(chan struct{}, 1)
	m, _ := mailbox.New(func(int) { ack <- struct{}{} }, mailbox.WithInlineDrain(16))
	b.ReportAllocs()
	for b.Loop() {
		_ = m.Post(1)
		<-ack
	}
	m.Close()
	<-m.Stopped()
}

// BenchmarkPingPong measures one message into an idle mailbox and the handler's
// answer back: the cost of starting a drainer on demand.
func BenchmarkPingPong(b *testing.B) {
	ack := make(chan struct{}, 1)
	m, _ := mailbox.New(func(int) { ack <- struct{}{} })
	b.ReportAllocs()
	for b.Loop() {
		_ = m.Post(1)
		<-ack
	}
	m.Close()
	<-m.Stopped()
}
