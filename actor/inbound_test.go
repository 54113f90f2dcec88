package actor_test

// Tests of the cap on the peer's requests in progress (WithMaxInbound): what
// it counts, and the backpressure when it is reached.

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/wsactor/wsactor/actor"
	"github.com/wsactor/wsactor/envelope"
)

// deliver plays the peer from any goroutine: it delivers a raw frame to a.
func deliver(a *actor.Actor, frame string) error {
	env, err := envelope.Decode([]byte(frame))
	if err != nil {
		return fmt.Errorf("bad test frame %q: %w", frame, err)
	}
	return a.Deliver(env)
}

// reqFrame is request id (ids must be truthy: from 1) with data id.
func reqFrame(id int) string {
	return fmt.Sprintf(`{"plugin":"primus-responder","requestId":%d,"data":%d}`, id, id)
}

func cancelFrame(id int) string {
	return fmt.Sprintf(`{"plugin":"primus-responder","cancelId":%d}`, id)
}

// A request counts against WithMaxInbound until its handler has returned:
// neither the peer's cancel nor a restart lets more handlers of one actor
// run than the cap, however the peer floods (here with handlers that ignore
// their ctx, the worst case). Every handler runs exactly once.
func TestInboundCapCountsHandlersUntilTheyReturn(t *testing.T) {
	for _, mode := range []string{"cancel", "restart"} {
		t.Run(mode, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const n, limit = 40, 2
				pool := newPool(t, 16, 1024)
				var g gauge
				var calls atomic.Int64
				release := make(chan struct{})
				h := func(ctx context.Context, a *actor.Actor, req actor.Incoming) ([]byte, error) {
					calls.Add(1)
					g.enter()
					defer g.leave()
					<-release // not ctx.Done: a handler may take its time to notice
					return req.Data, nil
				}
				cfg := newConfig(t, actor.WithHandler(h, pool), actor.WithMaxInbound(limit))
				p := newPair(t, cfg, nil)
				injected := make(chan error, 1)
				go func() {
					for i := range n {
						if err := deliver(p.a, reqFrame(i+1)); err != nil {
							injected <- err
							return
						}
						switch {
						case mode == "cancel":
							if err := deliver(p.a, cancelFrame(i+1)); err != nil {
								injected <- err
								return
							}
						case i%limit == limit-1:
							p.a.Fail(errors.New("test failure"))
						}
					}
					injected <- nil
				}()
				sent := false
				for released := range n {
					synctest.Wait() // the peer has sent all it can
					if now := g.now.Load(); now > limit {
						t.Fatalf("after %d handlers returned: %d running for one actor, cap %d", released, now, limit)
					}
					select {
					case release <- struct{}{}: // one handler returns
					case err := <-injected:
						if err != nil {
							t.Fatalf("the peer stopped after %d handlers returned: %v", released, err)
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
				if c := calls.Load(); c != n {
					t.Fatalf("%d handler calls for %d requests", c, n)
				}
				if peak := g.peak.Load(); peak > limit {
					t.Fatalf("peak %d handlers running, cap %d", peak, limit)
				}
				s := cfg.Stats()
				if s.Received.Load() != n || s.Busy.Load() != 0 || s.Inbound.Load() != 0 {
					t.Fatalf("received %d, busy %d, inbound %d", s.Received.Load(), s.Busy.Load(), s.Inbound.Load())
				}
				replies := map[string]int{}
				for len(p.rawA) > 0 {
					env := p.nextFrame(t)
					replies[string(env.ID)]++
				}
				switch mode {
				case "cancel":
					// A cancelled request gets no reply.
					if len(replies) != 0 || s.CancelsReceived.Load() != n {
						t.Fatalf("replies %v, cancels %d", replies, s.CancelsReceived.Load())
					}
				case "restart":
					// Each request has exactly one reply: its data, or the
					// restart's error reply.
					for i := range n {
						if c := replies[fmt.Sprint(i+1)]; c != 1 {
							t.Fatalf("request %d: %d replies (%v)", i, c, replies)
						}
					}
				}
			})
		})
	}
}

// A burst far over the cap is answered in full, with no busy reply: Deliver
// waits for room (the connection's reader stops reading), and never more
// than the cap are in progress.
func TestInboundBackpressureAnswersBurst(t *testing.T) {
	const n, limit = 2000, 4
	pool := newPool(t, 2, 8)
	var g gauge
	h := func(ctx context.Context, a *actor.Actor, req actor.Incoming) ([]byte, error) {
		g.enter()
		defer g.leave()
		return req.Data, nil
	}
	cfg := newConfig(t, actor.WithHandler(h, pool), actor.WithMaxInbound(limit))
	p := newPair(t, cfg, nil)
	injected := make(chan error, 1)
	go func() {
		for i := range n {
			if err := deliver(p.a, reqFrame(i+1)); err != nil {
				injected <- err
				return
			}
		}
		injected <- nil
	}()
	for i := range n {
		env := p.nextFrame(t)
		if env.Kind != envelope.KindResponse || env.Err != nil || string(env.Data) != string(env.ID) {
			t.Fatalf("reply %d: %+v (err %+v)", i, env, env.Err)
		}
	}
	if err := <-injected; err != nil {
		t.Fatal(err)
	}
	if b := cfg.Stats().Busy.Load(); b != 0 {
		t.Fatalf("%d busy replies", b)
	}
	if peak := g.peak.Load(); peak > limit {
		t.Fatalf("peak %d handlers running, cap %d", peak, limit)
	}
}

// While a handler waits for a reply from the peer, the reader must not wait
// for room: the reply it waits for comes through the reader. A request over
// the cap is then answered with busy, and the handler gets its reply.
func TestInboundBackpressureLetsHandlerRepliesThrough(t *testing.T) {
	pool := newPool(t, 4, 4)
	asked := make(chan error, 1)
	h := func(ctx context.Context, a *actor.Actor, req actor.Incoming) ([]byte, error) {
		r, err := a.Request(ctx, []byte(`"back"`))
		asked <- err
		return r.Data, err
	}
	cfg := newConfig(t, actor.WithHandler(h, pool), actor.WithMaxInbound(1))
	p := newPair(t, cfg, nil)
	p.inject(t, reqFrame(1))
	back := p.nextFrame(t) // the handler's own request to the peer
	if back.Kind != envelope.KindRequest {
		t.Fatalf("got %+v, want the handler's request", back)
	}
	// Over the cap: this must not stop the reader.
	p.inject(t, reqFrame(2))
	if env := p.nextFrame(t); string(env.ID) != "2" || env.Err == nil || env.Err.Code != actor.CodeBusy {
		t.Fatalf("got %+v, want busy for request 2", env)
	}
	p.inject(t, `{"plugin":"primus-responder","responseId":`+string(back.ID)+`,"data":"answer"}`)
	if err := <-asked; err != nil {
		t.Fatalf("the handler's request: %v", err)
	}
	if env := p.nextFrame(t); string(env.ID) != "1" || env.Err != nil || string(env.Data) != `"answer"` {
		t.Fatalf("got %+v, want the reply to request 1", env)
	}
}

// A Deliver waiting for room returns when the actor stops, or when its
// owner says the transport closed, so the connection's reader is never left
// stuck (it could not see the close while it waits).
func TestInboundBackpressureWaitEnds(t *testing.T) {
	for _, how := range []string{"stop", "transport closed"} {
		t.Run(how, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				pool := newPool(t, 4, 4)
				release := make(chan struct{})
				h := func(ctx context.Context, a *actor.Actor, req actor.Incoming) ([]byte, error) {
					<-release
					return nil, nil
				}
				cfg := newConfig(t, actor.WithHandler(h, pool), actor.WithMaxInbound(1))
				p := newPair(t, cfg, nil)
				p.inject(t, reqFrame(1))
				waited := make(chan error, 1)
				go func() { waited <- deliver(p.a, reqFrame(2)) }()
				synctest.Wait()
				select {
				case err := <-waited:
					t.Fatalf("Deliver over the cap returned %v, want it to wait", err)
				default:
				}
				want := actor.ErrConnLost
				if how == "stop" {
					p.a.Stop(actor.ErrConnLost, 0, "")
				} else {
					p.a.TransportClosed()
					want = actor.ErrClosed
				}
				if err := <-waited; !errors.Is(err, want) {
					t.Fatalf("Deliver: %v, want %v", err, want)
				}
				if how == "transport closed" {
					// Later requests do not wait either.
					if err := deliver(p.a, reqFrame(3)); !errors.Is(err, actor.ErrClosed) {
						t.Fatalf("Deliver after TransportClosed: %v", err)
					}
				}
				close(release)
			})
		})
	}
}
