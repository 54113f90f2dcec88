package actor_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/wsactor/wsactor/actor"
	"github.com/wsactor/wsactor/envelope"
)

func inlineConfig(t testing.TB, h actor.Handler, opts ...actor.Option) *actor.Config {
	t.Helper()
	return newConfig(t, append([]actor.Option{actor.WithHandler(h, nil), actor.WithInlineHandlers()}, opts...)...)
}

func TestInlineConfig(t *testing.T) {
	if _, err := actor.NewConfig(actor.WithHandler(double, nil)); err == nil {
		t.Fatal("a handler without pool and without WithInlineHandlers was accepted")
	}
	if _, err := actor.NewConfig(actor.WithHandler(double, nil), actor.WithInlineHandlers()); err != nil {
		t.Fatalf("inline handler without pool: %v", err)
	}
}

// An inline handler (there is no pool at all) answers, and may use Go on its
// own actor.
func TestInlineHandlerAnswers(t *testing.T) {
	pool := newPool(t, 4, 16)
	fromGo := make(chan string, 1)
	h := func(ctx context.Context, b *actor.Actor, req actor.Incoming) ([]byte, error) {
		if string(req.Data) == `"ask back"` {
			err := b.Go(context.Background(), num(21), func(r actor.Reply, err error) {
				fromGo <- fmt.Sprintf("%s %v", r.Data, err)
			})
			return []byte(`"asked"`), err
		}
		return double(ctx, b, req)
	}
	cfgB := inlineConfig(t, h)
	p := newPair(t, newConfig(t, actor.WithHandler(double, pool)), cfgB)
	for i := range 100 {
		r, err := p.a.Request(context.Background(), num(i))
		if err != nil || string(r.Data) != strconv.Itoa(2*i) {
			t.Fatalf("request %d: %s %v", i, r.Data, err)
		}
	}
	r, err := p.a.Request(context.Background(), []byte(`"ask back"`))
	if err != nil || string(r.Data) != `"asked"` {
		t.Fatalf("ask back: %s %v", r.Data, err)
	}
	if got := <-fromGo; got != "42 <nil>" {
		t.Fatalf("Go from an inline handler: %s", got)
	}
	s := cfgB.Stats()
	if s.Received.Load() != 101 || s.Answered.Load() != 101 || s.Inbound.Load() != 0 {
		t.Fatalf("received %d answered %d inbound %d", s.Received.Load(), s.Answered.Load(), s.Inbound.Load())
	}
}

// A panic in an inline handler restarts the actor as one on the pool does:
// a panic error reply, the actor's own pending requests fail with
// ErrRestarted wrapping ErrHandlerPanic, and it keeps serving.
func TestInlineHandlerPanic(t *testing.T) {
	h := func(ctx context.Context, a *actor.Actor, req actor.Incoming) ([]byte, error) {
		if string(req.Data) == `"panic"` {
			panic("handler bug")
		}
		return req.Data, nil
	}
	restarts := make(chan error, 10)
	cfg := inlineConfig(t, h, actor.WithRestartHook(func(a *actor.Actor, cause error) { restarts <- cause }))
	p := newPair(t, cfg, nil)
	own := make(chan error, 1)
	go func() { _, err := p.a.Request(context.Background(), nil); own <- err }()
	p.nextFrame(t) // a's own request, pending

	p.inject(t, `{"plugin":"primus-responder","requestId":1,"data":"panic"}`)
	reply := p.nextFrame(t)
	if reply.Kind != envelope.KindResponse || string(reply.ID) != "1" || reply.Err == nil || reply.Err.Code != actor.CodePanic {
		t.Fatalf("reply to the panicking request: %+v", reply)
	}
	if err := <-own; !errors.Is(err, actor.ErrRestarted) || !errors.Is(err, actor.ErrHandlerPanic) {
		t.Fatalf("own pending request: %v, want ErrRestarted wrapping ErrHandlerPanic", err)
	}
	if cause := <-restarts; !errors.Is(cause, actor.ErrHandlerPanic) {
		t.Fatalf("restart hook saw %v", cause)
	}
	p.inject(t, `{"plugin":"primus-responder","requestId":2,"data":"again"}`)
	if r := p.nextFrame(t); string(r.ID) != "2" || string(r.Data) != `"again"` {
		t.Fatalf("after the restart: %+v", r)
	}
	s := cfg.Stats()
	if s.Restarts.Load() != 1 || s.HandlerPanics.Load() != 1 {
		t.Fatalf("restarts %d panics %d", s.Restarts.Load(), s.HandlerPanics.Load())
	}
	checkBalance(t, s)
}

func TestInlineHandlerErrors(t *testing.T) {
	h := func(ctx context.Context, a *actor.Actor, req actor.Incoming) ([]byte, error) {
		if string(req.Data) == `"typed"` {
			return nil, &actor.RemoteError{Code: "not_found", Message: "no such thing"}
		}
		return nil, errors.New("plain failure")
	}
	p := newPair(t, newConfig(t), inlineConfig(t, h))
	var re *actor.RemoteError
	if _, err := p.a.Request(context.Background(), []byte(`"typed"`)); !errors.As(err, &re) || re.Code != "not_found" || re.Message != "no such thing" {
		t.Fatalf("typed error: %v", err)
	}
	if _, err := p.a.Request(context.Background(), []byte(`"plain"`)); !errors.As(err, &re) || re.Code != actor.CodeError || re.Message != "plain failure" {
		t.Fatalf("plain error: %v", err)
	}
}

// Requests read from one connection are answered in the order they came.
func TestInlineHandlerOrder(t *testing.T) {
	var seen []int
	h := func(ctx context.Context, a *actor.Actor, req actor.Incoming) ([]byte, error) {
		n, _ := strconv.Atoi(string(req.ID))
		seen = append(seen, n) // no lock: handlers of one actor run one at a time, on its loop
		return req.ID, nil
	}
	p := newPair(t, inlineConfig(t, h), nil)
	const n = 500
	for i := 1; i <= n; i++ { // 0 is not a truthy id
		p.inject(t, fmt.Sprintf(`{"plugin":"primus-responder","requestId":%d,"data":%d}`, i, i))
	}
	for i := 1; i <= n; i++ {
		r := p.nextFrame(t)
		if string(r.ID) != strconv.Itoa(i) || string(r.Data) != strconv.Itoa(i) {
			t.Fatalf("reply %d: id %s data %s", i, r.ID, r.Data)
		}
	}
	if len(seen) != n {
		t.Fatalf("%d handler calls, want %d", len(seen), n)
	}
	for i, v := range seen {
		if v != i+1 {
			t.Fatalf("handler call %d saw request %d", i, v)
		}
	}
}

// The handler's ctx carries the peer's timeout while it runs on the loop; a
// handler that gives up with ctx.Err() sends no reply.
func TestInlineHandlerTimeoutCtx(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type seen struct {
			left        time.Duration
			hasDL       bool
			before      error
			after, done error
		}
		got := make(chan seen, 1)
		h := func(ctx context.Context, a *actor.Actor, req actor.Incoming) ([]byte, error) {
			if string(req.Data) != `"slow"` {
				return req.Data, nil
			}
			var s seen
			dl, ok := ctx.Deadline()
			s.left, s.hasDL, s.before = time.Until(dl), ok, ctx.Err()
			time.Sleep(1500 * time.Millisecond) // a blocking handler, in fake time
			s.after = ctx.Err()
			select {
			case <-ctx.Done():
				s.done = ctx.Err()
			default:
			}
			got <- s
			return nil, ctx.Err()
		}
		cfg := inlineConfig(t, h)
		p := newPair(t, cfg, nil)
		p.inject(t, `{"plugin":"primus-responder","requestId":"a","data":"slow","timeout":1000}`)
		s := <-got
		if !s.hasDL || s.left != time.Second || s.before != nil {
			t.Fatalf("before the deadline: deadline in %v (%v), Err %v", s.left, s.hasDL, s.before)
		}
		if s.after != context.DeadlineExceeded || s.done != context.DeadlineExceeded {
			t.Fatalf("after the deadline: Err %v, Done closed with %v", s.after, s.done)
		}
		// The next reply is the next request's: the first one got none.
		p.inject(t, `{"plugin":"primus-responder","requestId":"b","data":"fast"}`)
		if r := p.nextFrame(t); string(r.ID) != `"b"` {
			t.Fatalf("frame after a quiet timeout: %+v", r)
		}
		if s := cfg.Stats(); s.Answered.Load() != 1 || s.AnsweredError.Load() != 0 || s.Inbound.Load() != 0 {
			t.Fatalf("answered %d errors %d inbound %d", s.Answered.Load(), s.AnsweredError.Load(), s.Inbound.Load())
		}
	})
}

// The in-memory round trips of actor_test.go with the handler inline.
func BenchmarkRoundTripInMemoryInline(b *testing.B) { benchPair(b, inlineConfig(b, double)) }

func BenchmarkRoundTripInMemoryInlineParallel(b *testing.B) {
	benchPairParallel(b, inlineConfig(b, double))
}

// Request from an inline handler on its own actor, with the handler's ctx or
// one derived from it, is refused with ErrSelfRequest instead of waiting for
// itself forever; Request on another actor, and Go, still work.
func TestInlineSelfRequestRefused(t *testing.T) {
	pool := newPool(t, 4, 16)
	got := make(chan error, 2)
	h := func(ctx context.Context, b *actor.Actor, req actor.Incoming) ([]byte, error) {
		_, err := b.Request(ctx, num(1))
		got <- err
		child, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		_, err = b.Request(child, num(2))
		got <- err
		return []byte(`"done"`), nil
	}
	p := newPair(t, newConfig(t, actor.WithHandler(double, pool)), inlineConfig(t, h))
	r, err := p.a.Request(context.Background(), []byte(`"go"`))
	if err != nil || string(r.Data) != `"done"` {
		t.Fatalf("request: %s %v", r.Data, err)
	}
	for _, what := range []string{"handler ctx", "derived ctx"} {
		if err := <-got; !errors.Is(err, actor.ErrSelfRequest) {
			t.Fatalf("Request on its own actor with the %s: %v, want ErrSelfRequest", what, err)
		}
	}
	// After the handler returned, the same actor's Request works from
	// anywhere (its Stats ledger still balances: nothing was counted).
	if r, err := p.b.Request(context.Background(), num(4)); err != nil || string(r.Data) != "8" {
		t.Fatalf("b's own request afterwards: %s %v", r.Data, err)
	}
}
