package actor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/wsactor/wsactor/actor"
	"github.com/wsactor/wsactor/envelope"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// double answers {"n":k} with 2k.
func double(ctx context.Context, a *actor.Actor, req actor.Incoming) ([]byte, error) {
	var v struct{ N int }
	if err := json.Unmarshal(req.Data, &v); err != nil {
		return nil, &actor.RemoteError{Code: actor.CodeBadRequest, Message: err.Error()}
	}
	return strconv.AppendInt(nil, int64(2*v.N), 10), nil
}

func num(n int) []byte { return fmt.Appendf(nil, `{"n":%d}`, n) }

// checkBalance asserts the exactly-once ledger of s.
func checkBalance(t *testing.T, s *actor.Stats) {
	t.Helper()
	ended := s.Replied.Load() + s.RemoteErrors.Load() + s.TimedOut.Load() + s.Canceled.Load() + s.Failed.Load()
	if req, pend := s.Requests.Load(), s.Pending.Load(); req != ended+pend {
		t.Errorf("ledger: %d requests != %d ended + %d pending", req, ended, pend)
	}
}

func TestConfigValidation(t *testing.T) {
	pool := newPool(t, 1, 0)
	for _, tc := range []struct {
		name string
		opts []actor.Option
	}{
		{"handler without pool", []actor.Option{actor.WithHandler(double, nil)}},
		{"zero timeout", []actor.Option{actor.WithRequestTimeout(0)}},
		{"zero max pending", []actor.Option{actor.WithMaxPending(0)}},
		{"zero max inbound", []actor.Option{actor.WithMaxInbound(0), actor.WithHandler(double, pool)}},
		{"zero mailbox", []actor.Option{actor.WithMailboxCapacity(0)}},
	} {
		if _, err := actor.NewConfig(tc.opts...); err == nil {
			t.Errorf("%s: NewConfig succeeded", tc.name)
		}
	}
	if _, err := actor.NewPool(0, 1); err == nil {
		t.Error("NewPool(0, 1) succeeded")
	}
	if _, err := actor.New(nil, newConfig(t), nil); err == nil {
		t.Error("New(nil transport) succeeded")
	}
}

// Both sides ask each other many requests at once; every answer must match
// its own request.
func TestConcurrentBothDirections(t *testing.T) {
	pool := newPool(t, 64, 4096)
	// 2000 requests in flight each way: over the default inbound cap of
	// 1024, which TestBounds covers.
	cfgA := newConfig(t, actor.WithHandler(double, pool), actor.WithMaxInbound(4096))
	cfgB := newConfig(t, actor.WithHandler(double, pool), actor.WithMaxInbound(4096))
	p := newPair(t, cfgA, cfgB)
	const n = 2000
	var wg sync.WaitGroup
	var wrong atomic.Int32
	for i := range n {
		for _, from := range []*actor.Actor{p.a, p.b} {
			wg.Go(func() {
				r, err := from.Request(context.Background(), num(i))
				if err != nil || string(r.Data) != strconv.Itoa(2*i) {
					wrong.Add(1)
					t.Errorf("request %d: %s, %v", i, r.Data, err)
				}
			})
		}
	}
	wg.Wait()
	if wrong.Load() != 0 {
		t.Fatalf("%d wrong answers", wrong.Load())
	}
	for _, cfg := range []*actor.Config{cfgA, cfgB} {
		s := cfg.Stats()
		if s.Requests.Load() != n || s.Replied.Load() != n || s.Received.Load() != n || s.Answered.Load() != n {
			t.Errorf("stats: requests %d replied %d received %d answered %d, want %d each",
				s.Requests.Load(), s.Replied.Load(), s.Received.Load(), s.Answered.Load(), n)
		}
		checkBalance(t, s)
	}
	if p.a.Pending() != 0 || p.b.Pending() != 0 {
		t.Errorf("pending left: %d, %d", p.a.Pending(), p.b.Pending())
	}
}

func TestRemoteErrors(t *testing.T) {
	pool := newPool(t, 4, 16)
	h := func(ctx context.Context, a *actor.Actor, req actor.Incoming) ([]byte, error) {
		switch string(req.Data) {
		case `"typed"`:
			return nil, &actor.RemoteError{Code: "not_found", Message: "no such thing"}
		default:
			return nil, errors.New("plain failure")
		}
	}
	p := newPair(t, newConfig(t), newConfig(t, actor.WithHandler(h, pool)))
	_, err := p.a.Request(context.Background(), []byte(`"typed"`))
	var re *actor.RemoteError
	if !errors.As(err, &re) || re.Code != "not_found" || re.Message != "no such thing" {
		t.Fatalf("typed error: %v", err)
	}
	_, err = p.a.Request(context.Background(), []byte(`"plain"`))
	if !errors.As(err, &re) || re.Code != actor.CodeError || re.Message != "plain failure" {
		t.Fatalf("plain error: %v", err)
	}
	// No handler on a's side: b's request gets no_handler.
	_, err = p.b.Request(context.Background(), nil)
	if !errors.As(err, &re) || re.Code != actor.CodeNoHandler {
		t.Fatalf("no handler: %v", err)
	}
}

// A request that gets no answer times out exactly once; the peer is told
// (cancel envelope) and its late reply is dropped and counted.
func TestTimeoutThenLateReply(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var bad []error
		cfg := newConfig(t, actor.WithRequestTimeout(2*time.Second),
			actor.WithBadInputHook(func(a *actor.Actor, err error) { bad = append(bad, err) }))
		p := newPair(t, cfg, nil)
		start := time.Now()
		done := make(chan error, 1)
		go func() {
			_, err := p.a.Request(context.Background(), []byte(`1`))
			done <- err
		}()
		req := p.nextFrame(t)
		if req.Kind != envelope.KindRequest || req.Timeout != 2000 {
			t.Fatalf("request frame %+v, want a request announcing timeout 2000", req)
		}
		err := <-done
		if !errors.Is(err, actor.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want ErrTimeout matching DeadlineExceeded", err)
		}
		if took := time.Since(start); took != 2*time.Second {
			t.Fatalf("timed out after %v, want 2s", took)
		}
		cancel := p.nextFrame(t)
		if cancel.Kind != envelope.KindCancel || string(cancel.ID) != string(req.ID) {
			t.Fatalf("after a timeout the actor wrote %+v, want a cancel of %s", cancel, req.ID)
		}
		p.inject(t, `{"plugin":"primus-responder","responseId":`+string(req.ID)+`,"data":5}`)
		p.inject(t, `{"plugin":"primus-responder","responseId":"not-one-of-ours","data":5}`)
		synctest.Wait()
		s := cfg.Stats()
		if s.TimedOut.Load() != 1 || s.LateReplies.Load() != 1 || s.UnknownReplies.Load() != 1 || s.Replied.Load() != 0 {
			t.Fatalf("timedOut %d late %d unknown %d replied %d", s.TimedOut.Load(), s.LateReplies.Load(), s.UnknownReplies.Load(), s.Replied.Load())
		}
		if len(bad) != 2 || !errors.Is(bad[0], actor.ErrLateReply) || !errors.Is(bad[1], actor.ErrUnknownReply) {
			t.Fatalf("bad-input hook got %v", bad)
		}
		checkBalance(t, s)
	})
}

func TestCtxDeadlineAndCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := newConfig(t, actor.WithRequestTimeout(time.Minute))
		p := newPair(t, cfg, nil)

		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := p.a.Request(ctx, nil)
		if !errors.Is(err, actor.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("deadline: %v", err)
		}
		if req := p.nextFrame(t); req.Timeout != 300 {
			t.Fatalf("announced timeout %d, want the ctx deadline 300", req.Timeout)
		}

		ctx2, cancel2 := context.WithCancel(context.Background())
		res := make(chan error, 1)
		go func() { _, err := p.a.Request(ctx2, nil); res <- err }()
		p.nextFrame(t) // the cancel of the first request
		p.nextFrame(t) // the second request
		cancel2()
		err = <-res
		if !errors.Is(err, actor.ErrCanceled) || !errors.Is(err, context.Canceled) {
			t.Fatalf("cancel: %v", err)
		}
		// Already-cancelled ctx: refused before anything is sent.
		if _, err := p.a.Request(ctx2, nil); !errors.Is(err, context.Canceled) {
			t.Fatalf("dead ctx: %v", err)
		}
		synctest.Wait()
		s := cfg.Stats()
		if s.TimedOut.Load() != 1 || s.Canceled.Load() != 1 {
			t.Fatalf("timedOut %d canceled %d", s.TimedOut.Load(), s.Canceled.Load())
		}
		checkBalance(t, s)
	})
}

// The requester's cancel reaches the handler's ctx on the other side.
func TestCancelReachesPeerHandler(t *testing.T) {
	pool := newPool(t, 4, 4)
	started := make(chan struct{})
	stopped := make(chan error, 1)
	h := func(ctx context.Context, a *actor.Actor, req actor.Incoming) ([]byte, error) {
		close(started)
		<-ctx.Done()
		stopped <- ctx.Err()
		return nil, ctx.Err()
	}
	cfgB := newConfig(t, actor.WithHandler(h, pool))
	p := newPair(t, newConfig(t), cfgB)
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() { _, err := p.a.Request(ctx, nil); res <- err }()
	<-started
	cancel()
	if err := <-res; !errors.Is(err, actor.ErrCanceled) {
		t.Fatalf("requester: %v", err)
	}
	select {
	case err := <-stopped:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("handler ctx: %v", err)
		}
	case <-time.After(testWait):
		t.Fatal("the handler's ctx was not cancelled")
	}
	if n := cfgB.Stats().CancelsReceived.Load(); n != 1 {
		t.Fatalf("CancelsReceived = %d", n)
	}
}

// Dropping the connection fails every pending request with ErrConnLost and
// cancels the handlers in progress on both sides.
func TestConnectionLostMidRequest(t *testing.T) {
	pool := newPool(t, 64, 64)
	var inHandler sync.WaitGroup
	inHandler.Add(20)
	h := func(ctx context.Context, a *actor.Actor, req actor.Incoming) ([]byte, error) {
		inHandler.Done()
		<-ctx.Done()
		return nil, ctx.Err()
	}
	cfgA := newConfig(t)
	p := newPair(t, cfgA, newConfig(t, actor.WithHandler(h, pool)))
	errs := make(chan error, 20)
	for range 20 {
		go func() { _, err := p.a.Request(context.Background(), nil); errs <- err }()
	}
	inHandler.Wait()
	p.l.close(1006, "dropped")
	for range 20 {
		if err := <-errs; !errors.Is(err, actor.ErrConnLost) {
			t.Fatalf("err = %v, want ErrConnLost", err)
		}
	}
	waitDone(t, p.a.Done(), "a stopped")
	if _, err := p.a.Request(context.Background(), nil); !errors.Is(err, actor.ErrConnLost) {
		t.Fatalf("request after the loss: %v", err)
	}
	if err := p.a.Go(context.Background(), nil, func(actor.Reply, error) {}); !errors.Is(err, actor.ErrConnLost) {
		t.Fatalf("Go after the loss: %v", err)
	}
	checkBalance(t, cfgA.Stats())
	if n := cfgA.Stats().Pending.Load(); n != 0 {
		t.Fatalf("pending gauge %d", n)
	}
}

// A handler panic restarts the actor: the panicking request gets a panic
// error reply, this actor's own pending requests fail with ErrRestarted,
// the peer's other requests in progress get restarted replies, and the
// actor keeps serving. Another pair is untouched.
func TestHandlerPanicRestartsActor(t *testing.T) {
	pool := newPool(t, 16, 16)
	release := make(chan struct{})
	slowStarted := make(chan struct{}, 1)
	h := func(ctx context.Context, a *actor.Actor, req actor.Incoming) ([]byte, error) {
		switch string(req.Data) {
		case `"panic"`:
			panic("handler bug")
		case `"slow"`:
			slowStarted <- struct{}{}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-release:
				return []byte(`"slow done"`), nil
			}
		}
		return req.Data, nil
	}
	restarts := make(chan error, 10)
	cfgB := newConfig(t, actor.WithHandler(h, pool),
		actor.WithRestartHook(func(a *actor.Actor, cause error) { restarts <- cause }))
	p := newPair(t, newConfig(t, actor.WithHandler(double, pool)), cfgB)
	other := newPair(t, newConfig(t), newConfig(t, actor.WithHandler(h, pool)))

	slow := make(chan error, 1)
	otherSlow := make(chan error, 1)
	go func() { _, err := p.a.Request(context.Background(), []byte(`"slow"`)); slow <- err }()
	<-slowStarted
	go func() { _, err := other.a.Request(context.Background(), []byte(`"slow"`)); otherSlow <- err }()
	<-slowStarted

	_, err := p.a.Request(context.Background(), []byte(`"panic"`))
	var re *actor.RemoteError
	if !errors.As(err, &re) || re.Code != actor.CodePanic {
		t.Fatalf("panicking request: %v, want a %q remote error", err, actor.CodePanic)
	}
	if err := <-slow; !errors.As(err, &re) || re.Code != actor.CodeRestarted {
		t.Fatalf("request in progress during the restart: %v, want %q", err, actor.CodeRestarted)
	}
	if cause := <-restarts; !errors.Is(cause, actor.ErrHandlerPanic) {
		t.Fatalf("restart hook saw %v", cause)
	}
	// b keeps serving after the restart.
	r, err := p.a.Request(context.Background(), []byte(`"again"`))
	if err != nil || string(r.Data) != `"again"` {
		t.Fatalf("after restart: %s %v", r.Data, err)
	}
	// The other pair was not touched.
	close(release)
	if err := <-otherSlow; err != nil {
		t.Fatalf("other pair: %v", err)
	}
	if n := cfgB.Stats().Restarts.Load(); n != 1 || len(restarts) != 0 {
		t.Fatalf("restarts %d", n)
	}
}

// b's own pending requests fail with ErrRestarted wrapping the cause when a
// failure restarts b.
func TestRestartFailsOwnPendingRequests(t *testing.T) {
	cfgA := newConfig(t)
	p := newPair(t, cfgA, nil)
	errs := make(chan error, 3)
	for range 3 {
		go func() { _, err := p.a.Request(context.Background(), nil); errs <- err }()
	}
	for range 3 {
		p.nextFrame(t)
	}
	cause := errors.New("hook exploded")
	p.a.Fail(cause)
	for range 3 {
		err := <-errs
		if !errors.Is(err, actor.ErrRestarted) || !errors.Is(err, cause) {
			t.Fatalf("err = %v, want ErrRestarted wrapping the cause", err)
		}
	}
	checkBalance(t, cfgA.Stats())
}

// When the decider gives up, the actor stops with its verdict and closes
// the transport with 1011.
func TestRestartDeciderGivesUp(t *testing.T) {
	verdict := errors.New("too many restarts")
	n := 0
	cfg := newConfig(t, actor.WithRestartDecider(func(a *actor.Actor, cause error) error {
		n++
		if n > 2 {
			return fmt.Errorf("%w: %w", verdict, cause)
		}
		return nil
	}))
	p := newPair(t, cfg, nil)
	errs := make(chan error, 1)
	go func() { _, err := p.a.Request(context.Background(), nil); errs <- err }()
	p.nextFrame(t)
	for i := range 3 {
		p.a.Fail(fmt.Errorf("failure %d", i))
	}
	if err := <-errs; !errors.Is(err, actor.ErrRestarted) {
		t.Fatalf("first failure: %v", err)
	}
	waitDone(t, p.a.Done(), "actor stopped")
	if !errors.Is(p.a.Err(), verdict) {
		t.Fatalf("Err() = %v", p.a.Err())
	}
	select {
	case ci := <-p.l.closed:
		if ci.code != 1011 || ci.reason == "" {
			t.Fatalf("closed with %d %q, want 1011 and a reason", ci.code, ci.reason)
		}
	default:
		t.Fatal("transport not closed")
	}
	if _, err := p.a.Request(context.Background(), nil); !errors.Is(err, verdict) {
		t.Fatalf("request after give-up: %v", err)
	}
}

// A handler that asks its own connection back does not deadlock.
func TestHandlerAsksBack(t *testing.T) {
	pool := newPool(t, 8, 8)
	hb := func(ctx context.Context, b *actor.Actor, req actor.Incoming) ([]byte, error) {
		r, err := b.Request(ctx, []byte(`{"n":21}`))
		if err != nil {
			return nil, err
		}
		return append([]byte(`"a said `), append(r.Data, '"')...), nil
	}
	p := newPair(t, newConfig(t, actor.WithHandler(double, pool)), newConfig(t, actor.WithHandler(hb, pool)))
	r, err := p.a.Request(context.Background(), []byte(`"hi"`))
	if err != nil || string(r.Data) != `"a said 42"` {
		t.Fatalf("%s %v", r.Data, err)
	}
}

func TestBounds(t *testing.T) {
	t.Run("max pending", func(t *testing.T) {
		cfg := newConfig(t, actor.WithMaxPending(2))
		p := newPair(t, cfg, nil)
		errs := make(chan error, 2)
		for range 2 {
			go func() { _, err := p.a.Request(context.Background(), nil); errs <- err }()
		}
		p.nextFrame(t)
		p.nextFrame(t)
		if _, err := p.a.Request(context.Background(), nil); !errors.Is(err, actor.ErrTooManyPending) {
			t.Fatalf("third request: %v", err)
		}
		p.l.close(1000, "")
		<-errs
		<-errs
		checkBalance(t, cfg.Stats())
	})
	t.Run("max inbound and pool full", func(t *testing.T) {
		pool := newPool(t, 1, 1)
		release := make(chan struct{})
		h := func(ctx context.Context, a *actor.Actor, req actor.Incoming) ([]byte, error) {
			<-release
			return []byte(`1`), nil
		}
		cfg := newConfig(t, actor.WithHandler(h, pool), actor.WithMaxInbound(3), actor.WithBusyRefusal())
		p := newPair(t, cfg, nil)
		for i := range 4 {
			p.inject(t, fmt.Sprintf(`{"plugin":"primus-responder","requestId":"r%d","data":1}`, i))
		}
		// r0 runs on the only worker, r1 waits in the pool's queue of one,
		// r2 and r3 find the pool full.
		var busy []string
		for range 2 {
			env := p.nextFrame(t)
			if env.Kind != envelope.KindResponse || env.Err == nil || env.Err.Code != actor.CodeBusy {
				t.Fatalf("got %+v, want a busy error reply", env)
			}
			busy = append(busy, string(env.ID))
		}
		if fmt.Sprint(busy) != `["r2" "r3"]` {
			t.Fatalf("busy replies for %v", busy)
		}
		close(release)
		for range 2 {
			if env := p.nextFrame(t); env.Err != nil || string(env.Data) != "1" {
				t.Fatalf("got %+v", env)
			}
		}
		if n := cfg.Stats().Busy.Load(); n != 2 {
			t.Fatalf("Busy = %d", n)
		}
	})
	t.Run("inbound cap", func(t *testing.T) {
		pool := newPool(t, 8, 8)
		release := make(chan struct{})
		h := func(ctx context.Context, a *actor.Actor, req actor.Incoming) ([]byte, error) {
			<-release
			return nil, nil
		}
		cfg := newConfig(t, actor.WithHandler(h, pool), actor.WithMaxInbound(2), actor.WithBusyRefusal())
		p := newPair(t, cfg, nil)
		for i := range 3 {
			p.inject(t, fmt.Sprintf(`{"plugin":"primus-responder","requestId":%d}`, i+1))
		}
		env := p.nextFrame(t)
		if string(env.ID) != "3" || env.Err == nil || env.Err.Code != actor.CodeBusy {
			t.Fatalf("got %+v, want busy for id 3", env)
		}
		close(release)
		for range 2 {
			if env := p.nextFrame(t); env.Err != nil || env.Data != nil {
				t.Fatalf("got %+v, want a reply without data", env)
			}
		}
	})
	t.Run("mailbox full for Go", func(t *testing.T) {
		cfg := newConfig(t, actor.WithMailboxCapacity(1))
		block := make(chan struct{})
		p := newPair(t, cfg, nil)
		// Hold the loop in a callback: complete a request whose callback blocks.
		entered := make(chan struct{})
		if err := p.a.Go(context.Background(), nil, func(actor.Reply, error) { close(entered); <-block }); err != nil {
			t.Fatal(err)
		}
		req := p.nextFrame(t)
		// The reply's delivery runs the loop (inline), which then blocks in
		// the callback: deliver it from a goroutine of its own.
		env, _ := envelope.Decode([]byte(`{"plugin":"primus-responder","responseId":` + string(req.ID) + `}`))
		delivered := make(chan error, 1)
		go func() { delivered <- p.a.Deliver(env) }()
		<-entered
		var full bool
		var accepted int
		for range 3 {
			err := p.a.Go(context.Background(), nil, func(actor.Reply, error) {})
			if errors.Is(err, actor.ErrMailboxFull) {
				full = true
				break
			} else if err != nil {
				t.Fatal(err)
			}
			accepted++
		}
		if !full || accepted != 1 {
			t.Fatalf("full=%v after %d accepted, want full after 1", full, accepted)
		}
		close(block)
		if err := <-delivered; err != nil {
			t.Fatal(err)
		}
		checkBalance(t, cfg.Stats())
	})
}

func TestDuplicateAndBadPeerInput(t *testing.T) {
	pool := newPool(t, 4, 4)
	release := make(chan struct{})
	h := func(ctx context.Context, a *actor.Actor, req actor.Incoming) ([]byte, error) {
		<-release
		return []byte(`"ok"`), nil
	}
	bad := make(chan error, 10)
	cfg := newConfig(t, actor.WithHandler(h, pool), actor.WithBadInputHook(func(a *actor.Actor, err error) { bad <- err }))
	p := newPair(t, cfg, nil)
	p.inject(t, `{"plugin":"primus-responder","requestId":"same","data":1}`)
	p.inject(t, `{"plugin":"primus-responder","requestId":"same","data":2}`)
	env := p.nextFrame(t)
	if string(env.ID) != `"same"` || env.Err == nil || env.Err.Code != actor.CodeDuplicateID {
		t.Fatalf("got %+v, want a duplicate_id error", env)
	}
	close(release)
	if env := p.nextFrame(t); string(env.Data) != `"ok"` {
		t.Fatalf("got %+v", env)
	}
	// A reply to our request, twice: delivered once, the copy counted.
	got := make(chan actor.Reply, 2)
	if err := p.a.Go(context.Background(), nil, func(r actor.Reply, err error) { got <- r }); err != nil {
		t.Fatal(err)
	}
	req := p.nextFrame(t)
	p.inject(t, `{"plugin":"primus-responder","responseId":`+string(req.ID)+`,"data":"first"}`)
	p.inject(t, `{"plugin":"primus-responder","responseId":`+string(req.ID)+`,"data":"second"}`)
	if r := <-got; string(r.Data) != `"first"` {
		t.Fatalf("delivered %s", r.Data)
	}
	// A cancel for something unknown is harmless.
	p.inject(t, `{"plugin":"primus-responder","cancelId":"nobody"}`)
	if err := <-bad; !errors.Is(err, actor.ErrDuplicateRequest) {
		t.Fatalf("hook got %v first", err)
	}
	if err := <-bad; !errors.Is(err, actor.ErrLateReply) {
		t.Fatalf("hook got %v second", err)
	}
	s := cfg.Stats()
	if s.DuplicateRequests.Load() != 1 || s.LateReplies.Load() != 1 || s.Replied.Load() != 1 {
		t.Fatalf("dup %d late %d replied %d", s.DuplicateRequests.Load(), s.LateReplies.Load(), s.Replied.Load())
	}
	if len(got) != 0 {
		t.Fatal("a reply was delivered twice")
	}
}

// Go's callback is called exactly once, on every path.
func TestGoCallbackExactlyOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := newConfig(t, actor.WithRequestTimeout(time.Second))
		p := newPair(t, cfg, nil)
		const n = 40
		var calls [n]atomic.Int32
		var outcomes sync.Map
		ctxs := make([]context.CancelFunc, n)
		for i := range n {
			ctx, cancel := context.WithCancel(context.Background())
			ctxs[i] = cancel
			err := p.a.Go(ctx, num(i), func(r actor.Reply, err error) {
				calls[i].Add(1)
				outcomes.Store(i, err)
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		ids := make([][]byte, n)
		for range n {
			env := p.nextFrame(t)
			var v struct{ N int }
			_ = json.Unmarshal(env.Data, &v)
			ids[v.N] = env.ID
		}
		for i := range n {
			switch i % 4 {
			case 0: // reply
				p.inject(t, `{"plugin":"primus-responder","responseId":`+string(ids[i])+`,"data":1}`)
			case 1: // error reply, then a duplicate
				p.inject(t, `{"plugin":"primus-responder","responseId":`+string(ids[i])+`,"error":{"code":"x","message":"y"}}`)
				p.inject(t, `{"plugin":"primus-responder","responseId":`+string(ids[i])+`,"data":1}`)
			case 2: // cancel, then a late reply
				ctxs[i]()
				synctest.Wait()
				p.inject(t, `{"plugin":"primus-responder","responseId":`+string(ids[i])+`,"data":1}`)
			case 3: // left to time out
			}
		}
		time.Sleep(2 * time.Second) // virtual time: lets the timeouts fire
		synctest.Wait()
		for i := range n {
			if c := calls[i].Load(); c != 1 {
				t.Errorf("request %d: callback called %d times", i, c)
			}
			v, _ := outcomes.Load(i)
			err, _ := v.(error)
			var re *actor.RemoteError
			ok := map[int]bool{0: err == nil, 1: errors.As(err, &re), 2: errors.Is(err, actor.ErrCanceled), 3: errors.Is(err, actor.ErrTimeout)}[i%4]
			if !ok {
				t.Errorf("request %d (kind %d): outcome %v", i, i%4, err)
			}
		}
		for _, c := range ctxs {
			c()
		}
		checkBalance(t, cfg.Stats())
	})
}

// A panic in a Go callback is a failure of the actor: it restarts.
func TestCallbackPanicRestarts(t *testing.T) {
	cfg := newConfig(t)
	p := newPair(t, cfg, nil)
	if err := p.a.Go(context.Background(), nil, func(actor.Reply, error) { panic("callback bug") }); err != nil {
		t.Fatal(err)
	}
	first := p.nextFrame(t)
	errs := make(chan error, 1)
	go func() { _, err := p.a.Request(context.Background(), nil); errs <- err }()
	p.nextFrame(t)
	p.inject(t, `{"plugin":"primus-responder","responseId":`+string(first.ID)+`}`)
	if err := <-errs; !errors.Is(err, actor.ErrRestarted) || !errors.Is(err, actor.ErrHandlerPanic) {
		t.Fatalf("err = %v, want ErrRestarted wrapping ErrHandlerPanic", err)
	}
	if cfg.Stats().Restarts.Load() != 1 {
		t.Fatal("no restart counted")
	}
}

// Shutdown lets in-flight requests finish, refuses new ones, and closes
// with 1001.
func TestShutdownDrains(t *testing.T) {
	pool := newPool(t, 8, 8)
	release := make(chan struct{})
	started := make(chan struct{})
	h := func(ctx context.Context, a *actor.Actor, req actor.Incoming) ([]byte, error) {
		if string(req.Data) == `"slow"` {
			close(started)
			<-release
		}
		return []byte(`"done"`), nil
	}
	cfgA := newConfig(t)
	p := newPair(t, cfgA, newConfig(t, actor.WithHandler(h, pool)))
	res := make(chan error, 1)
	go func() { _, err := p.a.Request(context.Background(), []byte(`"slow"`)); res <- err }()
	<-started // a's request is in flight
	shut := make(chan error, 1)
	go func() { shut <- p.a.Shutdown(context.Background()) }()
	// New requests are refused once the drain has begun; until then they
	// are answered at once.
	for {
		_, err := p.a.Request(context.Background(), []byte(`"quick"`))
		if errors.Is(err, actor.ErrShutdown) {
			break
		}
		if err != nil {
			t.Fatalf("request before the drain: %v", err)
		}
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v while a request was in flight", err)
	default:
	}
	close(release)
	if err := <-res; err != nil {
		t.Fatalf("in-flight request during drain: %v", err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if ci := <-p.l.closed; ci.code != 1001 {
		t.Fatalf("closed with %d", ci.code)
	}
	checkBalance(t, cfgA.Stats())
}

func TestShutdownDeadlineFailsTheRest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := newConfig(t)
		p := newPair(t, cfg, nil)
		res := make(chan error, 1)
		go func() { _, err := p.a.Request(context.Background(), nil); res <- err }()
		p.nextFrame(t)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := p.a.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown = %v", err)
		}
		if err := <-res; !errors.Is(err, actor.ErrShutdown) {
			t.Fatalf("cut-off request: %v", err)
		}
		checkBalance(t, cfg.Stats())
	})
}

// echoPeer is a Transport whose far end answers every request with its own
// data, as a peer would.
type echoPeer struct {
	a  *actor.Actor
	wg sync.WaitGroup
}

func (p *echoPeer) Write(frame []byte) error {
	env, err := envelope.Decode(frame)
	if err != nil || env.Kind != envelope.KindRequest {
		return err
	}
	reply := envelope.AppendResponse(nil, env.ID, env.Data)
	p.wg.Go(func() {
		env, _ := envelope.Decode(reply)
		_ = p.a.Deliver(env)
	})
	return nil
}

func (p *echoPeer) Close(code uint16, reason string) error { return nil }

func ExampleActor_Request() {
	cfg, _ := actor.NewConfig(actor.WithRequestTimeout(5 * time.Second))
	peer := &echoPeer{}
	a, _ := actor.New(peer, cfg, nil)
	peer.a = a

	r, err := a.Request(context.Background(), []byte(`{"n":21}`))
	fmt.Println(string(r.Data), err)

	a.Stop(actor.ErrClosed, 0, "")
	<-a.Done()
	peer.wg.Wait()
	// Output: {"n":21} <nil>
}

func BenchmarkRoundTripInMemory(b *testing.B) {
	benchPair(b, newConfig(b, actor.WithHandler(double, newPool(b, 64, 1024))))
}

func BenchmarkRoundTripInMemoryParallel(b *testing.B) {
	benchPairParallel(b, newConfig(b, actor.WithHandler(double, newPool(b, 64, 1024))))
}

// benchPair measures sequential in-memory round trips to a peer
// configured by cfgB.
func benchPair(b *testing.B, cfgB *actor.Config) {
	p := newPair(b, newConfig(b), cfgB)
	data := []byte(`{"n":1}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.a.Request(context.Background(), data); err != nil {
			b.Fatal(err)
		}
	}
}

// benchPairParallel is benchPair with 32 × GOMAXPROCS requests
// in flight.
func benchPairParallel(b *testing.B, cfgB *actor.Config) {
	p := newPair(b, newConfig(b), cfgB)
	data := []byte(`{"n":1}`)
	b.ReportAllocs()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := p.a.Request(context.Background(), data); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
