package actor_test

// Regression tests from a review of the actor.

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsactor/wsactor/actor"
	"github.com/wsactor/wsactor/envelope"
)

// Pool.Close "refuses new tasks and waits until every accepted task has run":
// a TrySubmit racing with Close that is accepted runs before Close returns.
func TestPoolSubmitCloseRace(t *testing.T) {
	var late atomic.Int32
	for range 2000 {
		p, err := actor.NewPool(4, 0)
		if err != nil {
			t.Fatal(err)
		}
		var closed atomic.Bool
		var wg sync.WaitGroup
		start := make(chan struct{})
		ran := make(chan struct{})
		accepted := make(chan bool, 1)
		wg.Go(func() {
			<-start
			accepted <- p.TrySubmit(actor.RunFunc(func() {
				if closed.Load() {
					late.Add(1)
				}
				close(ran)
			}))
		})
		wg.Go(func() {
			<-start
			p.Close()
			closed.Store(true)
		})
		close(start)
		wg.Wait()
		if <-accepted {
			<-ran
		}
	}
	if n := late.Load(); n > 0 {
		t.Fatalf("%d accepted tasks ran after Pool.Close returned", n)
	}
}

// A peer's absurd "timeout" (ms) must not overflow into a short or negative
// deadline for the handler.
func TestPeerTimeoutOverflow(t *testing.T) {
	got := make(chan time.Duration, 2)
	pool := newPool(t, 2, 2)
	cfg := newConfig(t, actor.WithHandler(func(ctx context.Context, a *actor.Actor, req actor.Incoming) ([]byte, error) {
		got <- req.Timeout
		return nil, nil
	}, pool))
	p := newPair(t, cfg, nil)
	p.inject(t, `{"plugin":"primus-responder","requestId":1,"data":0,"timeout":18446744073710}`)
	if d := <-got; d < time.Hour {
		t.Errorf("timeout 18446744073710 ms became %v", d)
	}
	p.inject(t, `{"plugin":"primus-responder","requestId":2,"data":0,"timeout":9300000000000000000}`)
	if d := <-got; d < 0 {
		t.Errorf("timeout 9.3e18 ms became %v (negative)", d)
	}
}

// With no restart decider ("always restarts") a restart hook that panics
// must not trigger another restart (restart -> hook panics -> failure ->
// restart would spin forever).
func TestPanickingRestartHookSpins(t *testing.T) {
	st := new(actor.Stats)
	hooked := make(chan struct{}, 1000)
	cfg := newConfig(t, actor.WithStats(st), actor.WithRestartHook(func(*actor.Actor, error) {
		hooked <- struct{}{}
		panic("hook bug")
	}))
	l := newLink()
	e := &end{l: l, out: make(chan []byte, 16)}
	a, err := actor.New(e, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.self = a
	a.Fail(errors.New("first failure"))
	<-hooked
	a.Fail(errors.New("second failure"))
	<-hooked
	// Both failures were handled (the second after the first); a spinning
	// loop would have restarted many times by now.
	if n := st.Restarts.Load(); n != 2 {
		t.Fatalf("two failures caused %d restarts: the panicking hook re-triggers restarts", n)
	}
	a.Stop(actor.ErrClosed, 0, "")
	waitDone(t, a.Done(), "actor stopped")
}

type echoT struct {
	ch   chan []byte
	quit chan struct{}
}

func (e *echoT) Write(f []byte) error {
	select {
	case e.ch <- append([]byte(nil), f...):
		return nil
	case <-e.quit:
		return errors.New("closed")
	default:
		return errors.New("full")
	}
}
func (e *echoT) Close(uint16, string) error { return nil }

// Stress (found in review): requests (blocking and callback) racing replies, duplicate replies,
// cancels, timeouts, restarts and a final stop. Every outcome must be
// delivered exactly once and the ledger must balance.
func TestExactlyOnceStress(t *testing.T) {
	for round := range 5 {
		st := new(actor.Stats)
		cfg := newConfig(t, actor.WithStats(st), actor.WithRequestTimeout(20*time.Millisecond), actor.WithMailboxCapacity(64))
		tr := &echoT{ch: make(chan []byte, 1<<14), quit: make(chan struct{})}
		a, err := actor.New(tr, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		pumpDone := make(chan struct{})
		go func() {
			defer close(pumpDone)
			i := 0
			for {
				select {
				case <-tr.quit:
					return
				case f := <-tr.ch:
					env, err := envelope.Decode(f)
					if err != nil || env.Kind != envelope.KindRequest {
						continue
					}
					i++
					reply := `{"plugin":"primus-responder","responseId":` + string(env.ID) + `,"data":1}`
					renv, _ := envelope.Decode([]byte(reply))
					for range i % 3 { // 0, 1 or 2 replies
						_ = a.Deliver(renv)
					}
				}
			}
		}()
		var calls sync.Map
		var wg sync.WaitGroup
		var dup atomic.Int32
		const G, N = 8, 300
		midway := make(chan struct{})
		for g := range G {
			wg.Go(func() {
				for i := range N {
					if g == 0 && i == N/2 {
						close(midway)
					}
					ctx, cancel := context.WithCancel(context.Background())
					if i%5 == 0 {
						go cancel()
					}
					if (g+i)%2 == 0 {
						_, _ = a.Request(ctx, []byte(`1`))
					} else {
						key := [2]int{g, i}
						var n atomic.Int32
						calls.Store(key, &n)
						if a.Go(ctx, []byte(`1`), func(actor.Reply, error) {
							if n.Add(1) > 1 {
								dup.Add(1)
							}
						}) != nil {
							calls.Delete(key)
						}
					}
					if i%97 == 0 {
						a.Fail(errors.New("boom"))
					}
					cancel()
				}
			})
		}
		if round%2 == 1 {
			<-midway // stop while requests are still being made
			a.Stop(actor.ErrShutdown, 0, "")
		}
		wg.Wait()
		a.Stop(actor.ErrShutdown, 0, "")
		waitDone(t, a.Done(), "done")
		close(tr.quit)
		<-pumpDone
		missing := 0
		calls.Range(func(k, v any) bool {
			if v.(*atomic.Int32).Load() != 1 {
				missing++
			}
			return true
		})
		if dup.Load() != 0 || missing != 0 {
			t.Fatalf("round %d: %d callbacks called twice, %d not exactly once", round, dup.Load(), missing)
		}
		ended := st.Replied.Load() + st.RemoteErrors.Load() + st.TimedOut.Load() + st.Canceled.Load() + st.Failed.Load()
		if st.Requests.Load() != ended || st.Pending.Load() != 0 {
			t.Fatalf("round %d: ledger requests %d ended %d pending %d", round, st.Requests.Load(), ended, st.Pending.Load())
		}
	}
}

// WithRequestTimeout(math.MaxInt64) ("effectively no timeout") must not
// overflow the deadline arithmetic: the ctx's deadline is what ends it.
func TestHugeRequestTimeout(t *testing.T) {
	cfg := newConfig(t, actor.WithRequestTimeout(time.Duration(1<<63-1)))
	p := newPair(t, cfg, nil)
	// start before the ctx: its deadline is 300 ms after it was made, and
	// Request returns when ctx is done (it may be the caller's select that
	// sees it first, not the actor's heap).
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := p.a.Request(ctx, []byte(`1`))
	// The overflow this guards against ended the request at once (or never).
	if took := time.Since(start); !errors.Is(err, actor.ErrTimeout) || took < 300*time.Millisecond {
		t.Fatalf("request with a MaxInt64 timeout ended after %v with %v, want the ctx's 300ms deadline", took, err)
	}
}

// dlCtx has a deadline but no Done channel: only the actor's heap times it out.
type dlCtx struct {
	context.Context
	dl time.Time
}

func (c dlCtx) Deadline() (time.Time, bool) { return c.dl, true }

func TestHeapTimeouts(t *testing.T) {
	st := new(actor.Stats)
	// Room for all of them: Go never waits for the mailbox.
	cfg := newConfig(t, actor.WithStats(st), actor.WithRequestTimeout(time.Second), actor.WithMailboxCapacity(4096))
	p := newPair(t, cfg, nil)
	const n = 3000
	var wg sync.WaitGroup
	var early, wrong atomic.Int32
	for i := range n {
		wg.Add(1)
		d := time.Duration(1+(i*7919)%80) * time.Millisecond
		start := time.Now()
		err := p.a.Go(dlCtx{context.Background(), start.Add(d)}, []byte(`1`), func(_ actor.Reply, err error) {
			if !errors.Is(err, actor.ErrTimeout) {
				wrong.Add(1)
			}
			if time.Since(start) < d {
				early.Add(1)
			}
			wg.Done()
		})
		if err != nil {
			wg.Done()
			t.Fatal(err)
		}
	}
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	waitDone(t, ch, "all timeouts")
	if early.Load() != 0 || wrong.Load() != 0 {
		t.Fatalf("early %d wrong %d", early.Load(), wrong.Load())
	}
}
