package actor_test

// Tests of the cap on the bytes of the peer's envelopes an actor holds
// (WithMaxInboundBytes): what it counts, the backpressure when it is
// reached, and the exceptions that keep it from deadlocking.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/wsactor/wsactor/actor"
	"github.com/wsactor/wsactor/envelope"
)

// bigReqFrame is request id with a JSON string of pad bytes as data; the
// actor holds 2×len(id) + pad + 2 bytes for it.
func bigReqFrame(id, pad int) string {
	return fmt.Sprintf(`{"plugin":"primus-responder","requestId":%d,"data":"%s"}`, id, strings.Repeat("x", pad))
}

// A flood of large requests to slow handlers: the actor never holds more
// than the byte budget, so far fewer handlers run than WithMaxInbound
// allows; the reader waits (no busy reply) and every request is answered
// exactly once. Without the budget all n would be held at once.
func TestInboundBytesBackpressure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n, pad, budget = 40, 300, 1000
		const per = 2*2 + pad + 2 // ids 10..49: two digits
		pool := newPool(t, 64, 1024)
		var g gauge
		release := make(chan struct{})
		over := make(chan struct{}) // a failed test leaves no handler waiting
		t.Cleanup(func() { close(over) })
		h := func(ctx context.Context, a *actor.Actor, req actor.Incoming) ([]byte, error) {
			g.enter()
			defer g.leave()
			select {
			case <-release:
			case <-over:
			}
			return req.ID, nil
		}
		cfg := newConfig(t, actor.WithHandler(h, pool), actor.WithMaxInboundBytes(budget))
		p := newPair(t, cfg, nil)
		injected := make(chan error, 1)
		go func() {
			for i := range n {
				if err := deliver(p.a, bigReqFrame(10+i, pad)); err != nil {
					injected <- err
					return
				}
			}
			injected <- nil
		}()
		sent := false
		for released := range n {
			synctest.Wait() // the peer has sent all it can
			if b := p.a.InboundBytes(); b > budget || b < 0 {
				t.Fatalf("after %d handlers returned: the actor holds %d bytes, budget %d", released, b, budget)
			}
			if now := g.now.Load(); now > budget/per {
				t.Fatalf("after %d handlers returned: %d handlers hold %d-byte requests, budget %d", released, now, per, budget)
			}
			select {
			case release <- struct{}{}:
			case err := <-injected:
				if err != nil {
					t.Fatal(err)
				}
				sent = true
				release <- struct{}{}
			}
		}
		if !sent {
			if err := <-injected; err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		replies := map[string]int{}
		for len(p.rawA) > 0 {
			env := p.nextFrame(t)
			if env.Err != nil || string(env.Data) != string(env.ID) {
				t.Fatalf("reply %+v (err %+v)", env, env.Err)
			}
			replies[string(env.ID)]++
		}
		for i := range n {
			if c := replies[fmt.Sprint(10+i)]; c != 1 {
				t.Fatalf("request %d answered %d times", 10+i, c)
			}
		}
		s := cfg.Stats()
		if s.Busy.Load() != 0 || s.Answered.Load() != n {
			t.Fatalf("busy %d, answered %d of %d", s.Busy.Load(), s.Answered.Load(), n)
		}
		if peak := g.peak.Load(); peak > budget/per || peak < 1 {
			t.Fatalf("peak %d handlers, want 1 to %d", peak, budget/per)
		}
		if b := p.a.InboundBytes(); b != 0 {
			t.Fatalf("%d bytes still held with nothing in progress", b)
		}
	})
}

// An envelope larger than the whole budget goes in once nothing else is
// held (progress is always possible), and alone: the next waits until its
// handler has returned.
func TestInboundBytesLargerThanBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const budget = 100
		pool := newPool(t, 4, 4)
		var g gauge
		release := make(chan struct{})
		over := make(chan struct{}) // a failed test leaves no handler waiting
		t.Cleanup(func() { close(over) })
		h := func(ctx context.Context, a *actor.Actor, req actor.Incoming) ([]byte, error) {
			g.enter()
			defer g.leave()
			select {
			case <-release:
			case <-over:
			}
			return nil, nil
		}
		cfg := newConfig(t, actor.WithHandler(h, pool), actor.WithMaxInboundBytes(budget))
		p := newPair(t, cfg, nil)
		injected := make(chan error, 1)
		go func() {
			for i := range 3 {
				if err := deliver(p.a, bigReqFrame(i+1, 5*budget)); err != nil {
					injected <- err
					return
				}
			}
			injected <- nil
		}()
		for i := range 3 {
			synctest.Wait()
			if now := g.now.Load(); now != 1 {
				t.Fatalf("step %d: %d handlers running, want the one oversized request alone", i, now)
			}
			if b := p.a.InboundBytes(); b != 2+5*budget+2 {
				t.Fatalf("step %d: %d bytes held, want one request's %d", i, b, 2+5*budget+2)
			}
			release <- struct{}{}
		}
		if err := <-injected; err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if s := cfg.Stats(); s.Answered.Load() != 3 || s.Busy.Load() != 0 {
			t.Fatalf("answered %d, busy %d", s.Answered.Load(), s.Busy.Load())
		}
	})
}

// While a handler holds the budget and waits for a reply from the peer,
// the reader must read on: a request over the budget is answered with busy
// (only its id is kept), and the reply the handler waits for gets through
// however large it is.
func TestInboundBytesLetsHandlerRepliesThrough(t *testing.T) {
	const budget = 1000
	pool := newPool(t, 4, 4)
	asked := make(chan error, 2) // room for request 2's handler, should it run
	h := func(ctx context.Context, a *actor.Actor, req actor.Incoming) ([]byte, error) {
		r, err := a.Request(ctx, []byte(`"back"`))
		asked <- err
		return r.Data, err
	}
	cfg := newConfig(t, actor.WithHandler(h, pool), actor.WithMaxInboundBytes(budget))
	p := newPair(t, cfg, nil)
	p.inject(t, bigReqFrame(1, budget-10))
	back := p.nextFrame(t)
	if back.Kind != envelope.KindRequest {
		t.Fatalf("got %+v, want the handler's request", back)
	}
	p.inject(t, bigReqFrame(2, budget)) // over: must not stop the reader
	if env := p.nextFrame(t); string(env.ID) != "2" || env.Err == nil || env.Err.Code != actor.CodeBusy {
		t.Fatalf("got %+v, want busy for request 2", env)
	}
	answer := `"` + strings.Repeat("a", 2*budget) + `"`
	p.inject(t, `{"plugin":"primus-responder","responseId":`+string(back.ID)+`,"data":`+answer+`}`)
	if err := <-asked; err != nil {
		t.Fatalf("the handler's request: %v", err)
	}
	if env := p.nextFrame(t); string(env.ID) != "1" || env.Err != nil || string(env.Data) != answer {
		t.Fatalf("got %+v, want the reply to request 1", env)
	}
	waitDone(t, p.a.Drain(), "drained")
	if b := p.a.InboundBytes(); b != 0 {
		t.Fatalf("%d bytes still held", b)
	}
}

// With WithBusyRefusal a request over the budget is answered with busy at
// once and the reader never waits for it; the actor keeps only its id.
func TestInboundBytesBusyRefusal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n, pad, budget = 20, 300, 1000
		pool := newPool(t, 64, 1024)
		release := make(chan struct{})
		over := make(chan struct{}) // a failed test leaves no handler waiting
		t.Cleanup(func() { close(over) })
		h := func(ctx context.Context, a *actor.Actor, req actor.Incoming) ([]byte, error) {
			select {
			case <-release:
			case <-over:
			}
			return nil, nil
		}
		cfg := newConfig(t, actor.WithHandler(h, pool), actor.WithMaxInboundBytes(budget), actor.WithBusyRefusal())
		p := newPair(t, cfg, nil)
		for i := range n {
			p.inject(t, bigReqFrame(10+i, pad)) // never waits
		}
		synctest.Wait()
		held := p.a.InboundBytes()
		if held > budget {
			t.Fatalf("%d bytes held, budget %d", held, budget)
		}
		s := cfg.Stats()
		started := int64(n) - s.Busy.Load()
		if started != budget/(2*2+pad+2) {
			t.Fatalf("%d requests in progress, %d busy; want %d in progress", started, s.Busy.Load(), budget/(2*2+pad+2))
		}
		close(release)
		synctest.Wait()
		if s.Answered.Load() != started || s.AnsweredError.Load() != int64(n)-started {
			t.Fatalf("answered %d, error replies %d", s.Answered.Load(), s.AnsweredError.Load())
		}
		if b := p.a.InboundBytes(); b != 0 {
			t.Fatalf("%d bytes still held", b)
		}
	})
}

// Replies waiting in the mailbox count too: while the loop is busy (here a
// callback of Go that takes its time), the reader stops once the mailbox
// holds the budget, instead of filling the mailbox with large replies.
func TestInboundBytesCountsTheMailbox(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n, pad, budget = 30, 300, 1000
		cfg := newConfig(t, actor.WithMaxInboundBytes(budget))
		p := newPair(t, cfg, nil)
		hold := make(chan struct{})
		t.Cleanup(func() { // a failed test leaves no callback waiting
			select {
			case <-hold:
			default:
				close(hold)
			}
		})
		done := make(chan error, n)
		for i := range n {
			cb := func(r actor.Reply, err error) { done <- err }
			if i == 0 {
				cb = func(r actor.Reply, err error) { <-hold; done <- err }
			}
			if err := p.a.Go(context.Background(), []byte(`1`), cb); err != nil {
				t.Fatal(err)
			}
		}
		ids := make([]string, n)
		for i := range n {
			ids[i] = string(p.nextFrame(t).ID)
		}
		reply := func(id string) string {
			return `{"plugin":"primus-responder","responseId":` + id + `,"data":"` + strings.Repeat("r", pad) + `"}`
		}
		// The first reply runs the slow callback on the goroutine that
		// delivers it (the loop was idle).
		first := make(chan error, 1)
		go func() { first <- deliver(p.a, reply(ids[0])) }()
		synctest.Wait()
		rest := make(chan error, 1)
		go func() {
			for _, id := range ids[1:] {
				if err := deliver(p.a, reply(id)); err != nil {
					rest <- err
					return
				}
			}
			rest <- nil
		}()
		synctest.Wait()
		if b := p.a.InboundBytes(); b > budget {
			t.Fatalf("the mailbox holds %d bytes of replies, budget %d", b, budget)
		}
		select {
		case err := <-rest:
			t.Fatalf("all replies went into the mailbox while the loop was busy (%v)", err)
		default:
		}
		close(hold)
		for range n {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		if err := errors.Join(<-first, <-rest); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if b := p.a.InboundBytes(); b != 0 {
			t.Fatalf("%d bytes still held", b)
		}
	})
}
