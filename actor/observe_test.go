package actor_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsactor/wsactor/actor"
)

// counting is an Observer that counts by direction and outcome.
type counting struct {
	n   [actor.NumDirections][actor.NumOutcomes]atomic.Int64
	neg atomic.Int64 // negative durations seen
}

func (c *counting) ObserveRequest(dir actor.Direction, o actor.Outcome, d time.Duration) {
	c.n[dir][o].Add(1)
	if d < 0 {
		c.neg.Add(1)
	}
}

// Each request is observed once, on each side, with its outcome: replies,
// errors, a timeout and a cancel (the peer sees both as a cancel).
func TestObserverOutcomes(t *testing.T) {
	var oa, ob counting
	release := make(chan struct{})
	started := make(chan struct{}, 4)
	h := func(ctx context.Context, a *actor.Actor, req actor.Incoming) ([]byte, error) {
		switch string(req.Data) {
		case `"fail"`:
			return nil, errors.New("no")
		case `"slow"`:
			started <- struct{}{}
			<-release // returns after its cancel: nothing more is observed
			return nil, ctx.Err()
		}
		return []byte(`1`), nil
	}
	p := newPair(t, newConfig(t, actor.WithObserver(&oa)),
		newConfig(t, actor.WithObserver(&ob), actor.WithHandler(h, newPool(t, 8, 8))))
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for range 3 {
		if _, err := p.a.Request(ctx, []byte(`"ok"`)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.a.Request(ctx, []byte(`"fail"`)); !errors.As(err, new(*actor.RemoteError)) {
		t.Fatal(err)
	}
	tctx, tcancel := context.WithTimeout(ctx, 100*time.Millisecond)
	if _, err := p.a.Request(tctx, []byte(`"slow"`)); !errors.Is(err, actor.ErrTimeout) {
		t.Fatal(err)
	}
	tcancel()
	waitDone(t, started, "slow handler")
	cctx, ccancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { _, err := p.a.Request(cctx, []byte(`"slow"`)); errc <- err }()
	waitDone(t, started, "slow handler")
	ccancel()
	if err := <-errc; !errors.Is(err, actor.ErrCanceled) {
		t.Fatal(err)
	}
	if _, err := p.a.Request(ctx, []byte(`"ok"`)); err != nil {
		t.Fatal(err)
	}
	// A barrier: b observes an inbound reply just after writing it, and
	// its own request's outcome before its caller returns, one after the
	// other on its loop. (a has no handler: an error reply.)
	if _, err := p.b.Request(ctx, []byte(`"barrier"`)); !errors.As(err, new(*actor.RemoteError)) {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what string
		got  int64
		want int64
	}{
		{"a outbound reply", oa.n[actor.Outbound][actor.OutcomeReply].Load(), 4},
		{"a outbound error", oa.n[actor.Outbound][actor.OutcomeError].Load(), 1},
		{"a outbound timeout", oa.n[actor.Outbound][actor.OutcomeTimeout].Load(), 1},
		{"a outbound canceled", oa.n[actor.Outbound][actor.OutcomeCanceled].Load(), 1},
		{"a inbound refused (no handler)", oa.n[actor.Inbound][actor.OutcomeRefused].Load(), 1},
		{"a inbound", sum(&oa, actor.Inbound), 1},
		{"b inbound reply", ob.n[actor.Inbound][actor.OutcomeReply].Load(), 4},
		{"b inbound error", ob.n[actor.Inbound][actor.OutcomeError].Load(), 1},
		{"b inbound canceled", ob.n[actor.Inbound][actor.OutcomeCanceled].Load(), 2},
		{"b outbound error", ob.n[actor.Outbound][actor.OutcomeError].Load(), 1},
		{"b outbound", sum(&ob, actor.Outbound), 1},
		{"negative durations", oa.neg.Load() + ob.neg.Load(), 0},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d, want %d", c.what, c.got, c.want)
		}
	}
}

func sum(c *counting, dir actor.Direction) int64 {
	var n int64
	for o := range actor.NumOutcomes {
		n += c.n[dir][o].Load()
	}
	return n
}

// Refusals, restarts and stops are classified by the error they end with.
func TestOutcomeOf(t *testing.T) {
	for _, c := range []struct {
		err  error
		want actor.Outcome
	}{
		{nil, actor.OutcomeReply},
		{&actor.RemoteError{Code: actor.CodeError, Message: "x"}, actor.OutcomeError},
		{&actor.RemoteError{Code: actor.CodeShutdown, Message: "x"}, actor.OutcomeShutdown},
		{actor.ErrTimeout, actor.OutcomeTimeout},
		{context.DeadlineExceeded, actor.OutcomeLost}, // not ours: the actor returns ErrTimeout
		{actor.ErrCanceled, actor.OutcomeCanceled},
		{actor.ErrConnLost, actor.OutcomeLost},
		{actor.ErrRestarted, actor.OutcomeRestarted},
		{actor.ErrShutdown, actor.OutcomeShutdown},
		{actor.ErrTooManyPending, actor.OutcomeRefused},
		{actor.ErrMailboxFull, actor.OutcomeRefused},
		{actor.ErrClosed, actor.OutcomeClosed},
	} {
		if got := actor.OutcomeOf(c.err); got != c.want {
			t.Errorf("OutcomeOf(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// BenchmarkRoundTripInMemoryInlineObserved is BenchmarkRoundTripInMemoryInline
// with an Observer on both sides: the cost of observing, next to the
// default (no Observer).
func BenchmarkRoundTripInMemoryInlineObserved(b *testing.B) {
	var oa, ob counting
	p := newPair(b, newConfig(b, actor.WithObserver(&oa)), inlineConfig(b, double, actor.WithObserver(&ob)))
	data := []byte(`{"n":1}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.a.Request(context.Background(), data); err != nil {
			b.Fatal(err)
		}
	}
}

// panicking is an Observer that panics every time.
type panicking struct{ n atomic.Int64 }

func (p *panicking) ObserveRequest(actor.Direction, actor.Outcome, time.Duration) {
	p.n.Add(1)
	panic("observer bug")
}

// A panicking Observer is a failure of user code like any other: the
// request it observed still ends exactly once (the caller is not left
// waiting), and the peer's requests still release their room.
func TestObserverPanicLosesNothing(t *testing.T) {
	var oa, ob panicking
	h := func(context.Context, *actor.Actor, actor.Incoming) ([]byte, error) { return []byte(`1`), nil }
	p := newPair(t,
		newConfig(t, actor.WithObserver(&oa), actor.WithRestartDecider(func(*actor.Actor, error) error { return nil })),
		newConfig(t, actor.WithObserver(&ob), actor.WithMaxInbound(1), actor.WithHandler(h, newPool(t, 2, 2)),
			actor.WithRestartDecider(func(*actor.Actor, error) error { return nil })))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// More requests than the peer's cap of 1: each must release its room
	// although observing its end panicked on both sides.
	for i := range 5 {
		r, err := p.a.Request(ctx, []byte(`"x"`))
		if err != nil && !errors.Is(err, actor.ErrRestarted) {
			t.Fatalf("request %d: %v", i, err)
		}
		if err == nil && string(r.Data) != `1` {
			t.Fatalf("request %d: %s", i, r.Data)
		}
	}
	if oa.n.Load() == 0 || ob.n.Load() == 0 {
		t.Fatalf("observed %d and %d times: the observers never ran", oa.n.Load(), ob.n.Load())
	}
}
