package actor_test

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/wsactor/wsactor/actor"
	"github.com/wsactor/wsactor/envelope"
)

// goid returns the calling goroutine's id, read from its stack header
// ("goroutine 42 [running]:"). Tests only.
func goid() uint64 {
	var buf [64]byte
	b := bytes.TrimPrefix(buf[:runtime.Stack(buf[:], false)], []byte("goroutine "))
	n, err := strconv.ParseUint(string(b[:bytes.IndexByte(b, ' ')]), 10, 64)
	if err != nil {
		panic("goid: " + err.Error())
	}
	return n
}

// ran is user code that ran: what it was, on which goroutine.
type ran struct {
	what string
	g    uint64
}

// userCodeActor is an actor with every kind of user code the loop runs
// recording its goroutine on log: inline handlers, the bad-input hook, the
// restart hook (and the callbacks of Go calls made with record).
func userCodeActor(t *testing.T, log chan ran) *pair {
	h := func(ctx context.Context, a *actor.Actor, req actor.Incoming) ([]byte, error) {
		log <- ran{"inline handler", goid()}
		return req.Data, nil
	}
	return newPair(t, inlineConfig(t, h,
		actor.WithBadInputHook(func(*actor.Actor, error) { log <- ran{"bad-input hook", goid()} }),
		actor.WithRestartHook(func(*actor.Actor, error) { log <- ran{"restart hook", goid()} }),
	), nil)
}

func record(log chan ran, what string) func(actor.Reply, error) {
	return func(actor.Reply, error) { log <- ran{what, goid()} }
}

// frameWith reads a's frames until a request whose data is data, and
// returns its id.
func (p *pair) frameWith(t *testing.T, data string) []byte {
	t.Helper()
	for {
		if f := p.nextFrame(t); f.Kind == envelope.KindRequest && string(f.Data) == data {
			return f.ID
		}
	}
}

func (p *pair) reply(t *testing.T, id []byte, data string) {
	t.Helper()
	p.inject(t, `{"plugin":"primus-responder","responseId":`+string(id)+`,"data":`+data+`}`)
}

// expectOffCaller reads n entries of log and fails for any that ran on the
// goroutine caller.
func expectOffCaller(t *testing.T, log chan ran, n int, caller uint64, call string) {
	t.Helper()
	for range n {
		r := recv(t, log, "user code")
		if r.g == caller {
			t.Errorf("the %s ran on the goroutine that called %s, inside that call", r.what, call)
		}
	}
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testWait):
		t.Fatalf("timed out waiting for %s", what)
	}
	panic("unreachable")
}

// No user code runs inside Request or Go, even when other messages arrive
// while the call is handing its own message to the actor: the write of the
// call's request is held open (the transport's gate) while the peer's
// reply to another Request, then to an earlier Go call, a request for an
// inline handler and a late reply (the bad-input hook) are delivered.
// Before the fix the caller, having found the mailbox idle, went on to
// drain them itself.
func TestUserCallRunsNoUserCodeWhileItPosts(t *testing.T) {
	for _, call := range []string{"Request", "Go"} {
		t.Run(call, func(t *testing.T) {
			log := make(chan ran, 16)
			p := userCodeActor(t, log)
			entered, release := make(chan struct{}), make(chan struct{})
			p.gateA(func(f []byte) {
				if bytes.Contains(f, []byte(`"data":"x"`)) {
					close(entered)
					<-release
				}
			})
			if err := p.a.Go(context.Background(), []byte(`"g1"`), record(log, "callback of an earlier Go")); err != nil {
				t.Fatal(err)
			}
			g1 := p.frameWith(t, `"g1"`)
			// Another Request in flight: its reply runs no user code, so a
			// caller may handle it (mailbox.WithOwnAlso), but must stop at
			// the next message, which is not so.
			r2 := make(chan error, 1)
			go func() {
				r, err := p.a.Request(context.Background(), []byte(`"r2"`))
				if err == nil && string(r.Data) != `"rr2"` {
					err = errors.New("reply " + string(r.Data))
				}
				r2 <- err
			}()
			r2id := p.frameWith(t, `"r2"`)

			caller := make(chan uint64, 1)
			done := make(chan error, 1)
			go func() {
				caller <- goid()
				var err error
				if call == "Request" {
					_, err = p.a.Request(context.Background(), []byte(`"x"`))
				} else {
					err = p.a.Go(context.Background(), []byte(`"x"`), func(actor.Reply, error) { log <- ran{"callback of this Go", goid()} })
				}
				done <- err
			}()
			recv(t, entered, "the request's write")
			// The loop is held inside the write: these queue behind it.
			p.reply(t, r2id, `"rr2"`)
			p.reply(t, g1, `"r1"`)
			p.inject(t, `{"plugin":"primus-responder","requestId":"p1","data":"peer"}`)
			p.inject(t, `{"plugin":"primus-responder","responseId":"00000000-0000-4000-8000-000000000000","data":1}`)
			close(release)

			x := p.frameWith(t, `"x"`)
			p.reply(t, x, `"rx"`)
			if err := recv(t, done, call); err != nil {
				t.Fatalf("%s: %v", call, err)
			}
			if err := recv(t, r2, "the other Request"); err != nil {
				t.Fatalf("the other Request: %v", err)
			}
			n := 3 // the earlier callback, the inline handler, the hook
			if call == "Go" {
				n++
			}
			expectOffCaller(t, log, n, <-caller, call)
		})
	}
}

// No user code runs inside Stop, Closed, Fail or Shutdown: the callbacks of
// pending Go calls they end, and the restart hook, run on the loop. Before
// the fix, the caller found the mailbox idle and ran them itself.
func TestUserCallRunsNoUserCodeWhenItEndsCalls(t *testing.T) {
	for _, tc := range []struct {
		call string
		fn   func(*actor.Actor)
		n    int // user code that runs: the callback, and the restart hook for Fail
	}{
		{"Stop", func(a *actor.Actor) { a.Stop(actor.ErrClosed, 0, "") }, 1},
		{"Closed", func(a *actor.Actor) { a.Closed(actor.ErrConnLost) }, 1},
		{"Fail", func(a *actor.Actor) { a.Fail(errors.New("a message handler failed")) }, 2},
		{"Shutdown", func(a *actor.Actor) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // no grace: the pending call is cut off
			_ = a.Shutdown(ctx)
		}, 1},
	} {
		t.Run(tc.call, func(t *testing.T) {
			log := make(chan ran, 16)
			p := userCodeActor(t, log)
			if err := p.a.Go(context.Background(), []byte(`"g1"`), record(log, "callback of a pending Go")); err != nil {
				t.Fatal(err)
			}
			p.frameWith(t, `"g1"`) // registered: the loop has written it
			caller := goid()
			tc.fn(p.a)
			expectOffCaller(t, log, tc.n, caller, tc.call)
		})
	}
}

// Request returns by ctx's deadline even while the loop is stuck in a
// callback (user code breaking its contract) and even while the mailbox is
// full; the call still ends exactly once, as the error Request returned.
// Before the fix Request waited for the loop to take its cancel.
func TestRequestReturnsByCtxDeadline(t *testing.T) {
	for _, full := range []bool{false, true} {
		name := "loop busy"
		if full {
			name = "mailbox full"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := newConfig(t, actor.WithMailboxCapacity(1))
				p := newPair(t, cfg, nil)
				inCb, unblock := make(chan struct{}), make(chan struct{})
				if err := p.a.Go(context.Background(), []byte(`"g1"`), func(actor.Reply, error) {
					close(inCb)
					<-unblock
				}); err != nil {
					t.Fatal(err)
				}
				g1 := p.frameWith(t, `"g1"`)
				go func() { _ = p.a.Deliver(envelope.Envelope{Kind: envelope.KindResponse, ID: g1, Data: []byte("1")}) }()
				<-inCb // the loop is stuck in the callback
				if full {
					if err := p.a.Go(context.Background(), nil, func(actor.Reply, error) {}); err != nil {
						t.Fatalf("filling the mailbox: %v", err)
					}
					if err := p.a.Go(context.Background(), nil, func(actor.Reply, error) {}); !errors.Is(err, actor.ErrMailboxFull) {
						t.Fatalf("the mailbox is not full: %v", err)
					}
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				start := time.Now()
				type out struct {
					err     error
					elapsed time.Duration
				}
				done := make(chan out, 1)
				go func() {
					_, err := p.a.Request(ctx, []byte(`"x"`))
					done <- out{err, time.Since(start)}
				}()
				var o out
				select {
				case o = <-done:
				case <-time.After(time.Minute):
					t.Error("Request did not return by its ctx's deadline")
					close(unblock)
					o = <-done
					unblock = nil
				}
				if unblock != nil {
					close(unblock)
				}
				if !errors.Is(o.err, actor.ErrTimeout) || !errors.Is(o.err, context.DeadlineExceeded) || o.elapsed != time.Second {
					t.Errorf("Request: %v after %v, want ErrTimeout after 1s", o.err, o.elapsed)
				}
				synctest.Wait() // the loop has caught up
				// A Request that could not even be queued was never
				// accepted; one that was is counted as timed out. With
				// the mailbox full, the call that filled it is pending.
				wantTimedOut, wantPending := int64(1), int64(0)
				if full {
					wantTimedOut, wantPending = 0, 1
				}
				s := cfg.Stats()
				if s.TimedOut.Load() != wantTimedOut || s.Pending.Load() != wantPending || int64(p.a.Pending()) != wantPending {
					t.Errorf("after the loop caught up: timed out %d, pending %d (%d), want %d and %d",
						s.TimedOut.Load(), s.Pending.Load(), p.a.Pending(), wantTimedOut, wantPending)
				}
				checkBalance(t, s)
			})
		})
	}
}

// When replies race with the callers' deadlines, each call still ends once,
// and the Stats count what each caller saw: a caller that gave up first
// made the loop end the call with the caller's error, even if the reply
// was there.
func TestRequestDeadlineRaceCountsWhatCallersSaw(t *testing.T) {
	cfgA := newConfig(t)
	p := newPair(t, cfgA, newConfig(t, actor.WithHandler(double, newPool(t, 4, 64))))
	const workers, each = 8, 200
	type tally struct{ replied, timedOut, remote int64 }
	out := make(chan tally, workers)
	for w := range workers {
		go func() {
			var n tally
			for i := range each {
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration((w*each+i)%300)*time.Microsecond)
				r, err := p.a.Request(ctx, num(i))
				cancel()
				switch {
				case err == nil:
					if string(r.Data) != strconv.Itoa(2*i) {
						t.Errorf("reply %s to %d", r.Data, i)
					}
					n.replied++
				case errors.Is(err, actor.ErrTimeout):
					n.timedOut++
				case errors.As(err, new(*actor.RemoteError)): // busy: the peer's pool is full
					n.remote++
				default:
					t.Errorf("Request: %v", err)
				}
			}
			out <- n
		}()
	}
	var sum tally
	for range workers {
		n := recv(t, out, "a worker")
		sum.replied += n.replied
		sum.timedOut += n.timedOut
		sum.remote += n.remote
	}
	recv(t, p.a.Drain(), "nothing in flight") // the loop has taken every cancel
	s := cfgA.Stats()
	// A Request whose ctx had ended on entry was never accepted, and is
	// not counted: it returned ErrTimeout.
	refused := workers*each - s.Requests.Load()
	if s.Replied.Load() != sum.replied || s.TimedOut.Load()+refused != sum.timedOut || s.RemoteErrors.Load() != sum.remote {
		t.Errorf("stats: replied %d, timed out %d (+%d never accepted), remote errors %d; callers saw %d, %d and %d",
			s.Replied.Load(), s.TimedOut.Load(), refused, s.RemoteErrors.Load(), sum.replied, sum.timedOut, sum.remote)
	}
	if n := sum.replied + sum.timedOut + sum.remote; n != workers*each {
		t.Errorf("%d outcomes for %d requests", n, workers*each)
	}
	checkBalance(t, s)
	t.Logf("replied %d, timed out %d (never accepted %d), remote errors %d", sum.replied, sum.timedOut, refused, sum.remote)
}
