package supervisor_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sourcegraph/conc/panics"
	"github.com/wsactor/wsactor/supervisor"
)

var errBoom = errors.New("boom")

// exact is a backoff without jitter: 1s, 2s, 4s, … up to 1m.
var exact = supervisor.Backoff{Min: time.Second, Max: time.Minute, Jitter: -1}

// script runs the i-th behaviour (0-based) on the i-th run and records when
// each run started. The first run past the script closes reached, and runs
// past the script block until ctx is done.
type script struct {
	starts  []time.Time
	steps   []func(ctx context.Context) error
	reached chan struct{}
}

func newScript(steps ...func(context.Context) error) *script {
	return &script{steps: steps, reached: make(chan struct{})}
}

func (s *script) child(ctx context.Context) error {
	i := len(s.starts)
	s.starts = append(s.starts, time.Now())
	if i < len(s.steps) {
		return s.steps[i](ctx)
	}
	if i == len(s.steps) {
		close(s.reached)
	}
	<-ctx.Done()
	return ctx.Err()
}

// gaps returns the time between consecutive run starts.
func (s *script) gaps() []time.Duration {
	var g []time.Duration
	for i := 1; i < len(s.starts); i++ {
		g = append(g, s.starts[i].Sub(s.starts[i-1]))
	}
	return g
}

func ret(err error) func(context.Context) error { return func(context.Context) error { return err } }

func mustNew(t *testing.T, child supervisor.Child, opts ...supervisor.Option) *supervisor.Supervisor {
	t.Helper()
	s, err := supervisor.New(child, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// start runs s.Run(ctx) in a goroutine of the bubble.
func start(ctx context.Context, s *supervisor.Supervisor) <-chan error {
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	return done
}

func TestPermanentRestartsAfterNilAndError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := newScript(ret(nil), ret(errBoom), ret(nil))
		s := mustNew(t, sc.child, supervisor.WithBackoff(exact), supervisor.WithIntensity(10, time.Hour))
		ctx, cancel := context.WithCancel(t.Context())
		done := start(ctx, s)
		<-sc.reached // the fourth run blocks on its ctx
		if want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}; !slices.Equal(sc.gaps(), want) {
			t.Fatalf("gaps between runs = %v, want %v", sc.gaps(), want)
		}
		if got := s.Restarts(); got != 3 {
			t.Fatalf("Restarts = %d, want 3", got)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run after cancel = %v, want nil", err)
		}
	})
}

func TestTransient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := newScript(ret(errBoom), ret(errBoom), ret(nil))
		s := mustNew(t, sc.child, supervisor.WithRestart(supervisor.Transient), supervisor.WithBackoff(exact))
		if err := s.Run(t.Context()); err != nil {
			t.Fatalf("Run = %v, want nil once the child returns nil", err)
		}
		if want := []time.Duration{time.Second, 2 * time.Second}; !slices.Equal(sc.gaps(), want) {
			t.Fatalf("gaps = %v, want %v", sc.gaps(), want)
		}
		if s.Restarts() != 2 {
			t.Fatalf("Restarts = %d, want 2", s.Restarts())
		}
	})
}

func TestTemporaryNeverRestarts(t *testing.T) {
	tests := []struct {
		name  string
		step  func(context.Context) error
		check func(error) bool
	}{
		{"returns nil", ret(nil), func(err error) bool { return err == nil }},
		{"fails", ret(errBoom), func(err error) bool { return errors.Is(err, errBoom) }},
		{"panics", func(context.Context) error { panic("oops") }, func(err error) bool {
			var rec *panics.ErrRecovered
			return errors.As(err, &rec) && rec.Value == "oops"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sc := newScript(tt.step)
				s := mustNew(t, sc.child, supervisor.WithRestart(supervisor.Temporary))
				if err := s.Run(t.Context()); !tt.check(err) {
					t.Fatalf("Run = %v", err)
				}
				if len(sc.starts) != 1 || s.Restarts() != 0 {
					t.Fatalf("runs = %d, restarts = %d; want 1 and 0", len(sc.starts), s.Restarts())
				}
			})
		})
	}
}

func TestPanicBecomesErrorAndIsRestarted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := newScript(
			func(context.Context) error { panic(errBoom) },
			func(context.Context) error { panic("oops") },
			ret(nil),
		)
		var causes []error
		s := mustNew(t, sc.child,
			supervisor.WithRestart(supervisor.Transient),
			supervisor.WithBackoff(exact),
			supervisor.WithOnRestart(func(ev supervisor.RestartEvent) { causes = append(causes, ev.Cause) }))
		if err := s.Run(t.Context()); err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
		if len(causes) != 2 {
			t.Fatalf("got %d restart events, want 2", len(causes))
		}
		var rec *panics.ErrRecovered
		if !errors.As(causes[0], &rec) || !errors.Is(causes[0], errBoom) {
			t.Errorf("first cause %v: want a *panics.ErrRecovered wrapping errBoom", causes[0])
		}
		if !errors.As(causes[1], &rec) || rec.Value != "oops" || len(rec.Stack) == 0 {
			t.Errorf("second cause %v: want a *panics.ErrRecovered with value oops and a stack", causes[1])
		}
	})
}

func TestIntensityExceeded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var last error
		runs := 0
		child := func(context.Context) error {
			runs++
			last = fmt.Errorf("failure %d", runs)
			return last
		}
		// Defaults: 5 restarts within 10s; 100ms doubling stays well inside.
		s := mustNew(t, child)
		t0 := time.Now()
		err := s.Run(t.Context())
		if !errors.Is(err, supervisor.ErrTooManyRestarts) || !errors.Is(err, last) {
			t.Fatalf("Run = %v, want both ErrTooManyRestarts and %v", err, last)
		}
		if runs != 6 || s.Restarts() != 5 {
			t.Fatalf("runs = %d, restarts = %d; want 6 and 5", runs, s.Restarts())
		}
		// Jittered delays of 100,200,400,800,1600ms sum to at most 3.1s.
		if el := time.Since(t0); el < 1550*time.Millisecond || el > 3100*time.Millisecond {
			t.Fatalf("gave up after %v, want the jittered sum in [1.55s, 3.1s]", el)
		}
	})
}

func TestIntensityExceededByPermanentNil(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := mustNew(t, ret(nil), supervisor.WithIntensity(0, time.Second))
		err := s.Run(t.Context())
		if !errors.Is(err, supervisor.ErrTooManyRestarts) {
			t.Fatalf("Run = %v, want ErrTooManyRestarts", err)
		}
		if s.Restarts() != 0 {
			t.Fatalf("Restarts = %d, want 0", s.Restarts())
		}
	})
}

// TestIntensityWindowSlides: a failure every 5s (4s of work, 1s of backoff)
// is never 2 within 5s, as a restart exactly Within after the previous one
// is outside the window, so supervision goes on until the child succeeds.
func TestIntensityWindowSlides(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		runs := 0
		child := func(ctx context.Context) error {
			runs++
			if runs == 10 {
				return nil
			}
			select {
			case <-time.After(4 * time.Second):
				return errBoom
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		s := mustNew(t, child, supervisor.WithRestart(supervisor.Transient),
			supervisor.WithIntensity(1, 5*time.Second),
			supervisor.WithBackoff(supervisor.Backoff{Min: time.Second, Max: time.Second, Jitter: -1}))
		if err := s.Run(t.Context()); err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
		if runs != 10 {
			t.Fatalf("runs = %d, want 10", runs)
		}
	})
}

func TestCancelDuringBackoffReturnsPromptly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := newScript(ret(errBoom))
		s := mustNew(t, sc.child, supervisor.WithBackoff(supervisor.Backoff{Min: time.Hour, Max: time.Hour}))
		ctx, cancel := context.WithCancel(t.Context())
		t0 := time.Now()
		done := start(ctx, s)
		synctest.Wait() // Run is waiting out the 1h backoff
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
		if el := time.Since(t0); el != 0 {
			t.Fatalf("Run returned after %v of fake time, want at once", el)
		}
		if len(sc.starts) != 1 || s.Restarts() != 0 {
			t.Fatalf("runs = %d, restarts = %d; want 1 and 0", len(sc.starts), s.Restarts())
		}
	})
}

func TestCancelStopsChildAndIsACleanStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		child := func(ctx context.Context) error {
			<-ctx.Done()
			return fmt.Errorf("connection lost: %w", ctx.Err())
		}
		for _, rt := range []supervisor.RestartType{supervisor.Permanent, supervisor.Transient, supervisor.Temporary} {
			s := mustNew(t, child, supervisor.WithRestart(rt))
			ctx, cancel := context.WithCancel(t.Context())
			done := start(ctx, s)
			synctest.Wait()
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("%v: Run = %v, want nil", rt, err)
			}
			if s.Restarts() != 0 {
				t.Fatalf("%v: Restarts = %d, want 0", rt, s.Restarts())
			}
		}
	})
}

func TestDoneCtxRunsNothing(t *testing.T) {
	ran := false
	s := mustNew(t, func(context.Context) error { ran = true; return nil })
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Run(ctx); err != nil || ran {
		t.Fatalf("Run = %v, ran = %v; want nil and false", err, ran)
	}
}

func TestEachRunGetsItsOwnCtx(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ctxs []context.Context
		child := func(ctx context.Context) error {
			ctxs = append(ctxs, ctx)
			if len(ctxs) == 1 {
				return errBoom
			}
			if ctxs[0].Err() == nil {
				return errors.New("previous run's ctx still live")
			}
			if ctx.Err() != nil {
				return errors.New("current run's ctx already done")
			}
			return nil
		}
		s := mustNew(t, child, supervisor.WithRestart(supervisor.Transient), supervisor.WithIntensity(1, time.Hour))
		if err := s.Run(t.Context()); err != nil {
			t.Fatalf("Run = %v", err)
		}
		if len(ctxs) != 2 {
			t.Fatalf("runs = %d, want 2", len(ctxs))
		}
	})
}

func TestResetAfter(t *testing.T) {
	work := func(d time.Duration) func(context.Context) error {
		return func(ctx context.Context) error {
			select {
			case <-time.After(d):
				return errBoom
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	tests := []struct {
		name       string
		resetAfter time.Duration
		fourthRun  time.Duration // how long run 4 lasts before failing
		want       []int
	}{
		{"long run resets", 5 * time.Second, 5 * time.Second, []int{1, 2, 3, 1, 2}},
		{"just too short", 5 * time.Second, 5*time.Second - 1, []int{1, 2, 3, 4, 5}},
		{"disabled", 0, time.Hour, []int{1, 2, 3, 4, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sc := newScript(
					ret(errBoom), ret(errBoom), ret(errBoom), work(tt.fourthRun), ret(errBoom), ret(nil),
				)
				var attempts []int
				var delays []time.Duration
				s := mustNew(t, sc.child,
					supervisor.WithRestart(supervisor.Transient),
					supervisor.WithBackoff(exact),
					supervisor.WithIntensity(100, time.Hour),
					supervisor.WithResetAfter(tt.resetAfter),
					supervisor.WithOnRestart(func(ev supervisor.RestartEvent) {
						attempts = append(attempts, ev.Attempt)
						delays = append(delays, ev.Delay)
					}))
				if err := s.Run(t.Context()); err != nil {
					t.Fatalf("Run = %v", err)
				}
				if !slices.Equal(attempts, tt.want) {
					t.Fatalf("attempts = %v, want %v", attempts, tt.want)
				}
				for i, a := range attempts {
					if want := exact.Delay(a, nil); delays[i] != want {
						t.Errorf("delay of attempt %d = %v, want %v", a, delays[i], want)
					}
				}
			})
		})
	}
}

func TestOnRestartSeesAttemptsAndJitteredDelays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := newScript(ret(errBoom), ret(errBoom), ret(errBoom))
		var evs []supervisor.RestartEvent
		s := mustNew(t, sc.child,
			supervisor.WithRand(rand.New(rand.NewPCG(42, 42))),
			supervisor.WithOnRestart(func(ev supervisor.RestartEvent) { evs = append(evs, ev) }))
		ctx, cancel := context.WithCancel(t.Context())
		done := start(ctx, s)
		<-sc.reached
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v", err)
		}
		if len(evs) != 3 {
			t.Fatalf("got %d events, want 3", len(evs))
		}
		ref := rand.New(rand.NewPCG(42, 42)) // same seed, same draws
		gaps := sc.gaps()
		for i, ev := range evs {
			ceil := 100 * time.Millisecond << i // default Backoff: 100ms, 200ms, 400ms
			if ev.Attempt != i+1 || !errors.Is(ev.Cause, errBoom) {
				t.Errorf("event %d = %+v, want attempt %d caused by errBoom", i, ev, i+1)
			}
			if ev.Delay < ceil/2 || ev.Delay > ceil {
				t.Errorf("event %d delay %v outside the jitter bounds [%v, %v]", i, ev.Delay, ceil/2, ceil)
			}
			if want := (supervisor.Backoff{}).Delay(i+1, ref); ev.Delay != want {
				t.Errorf("event %d delay %v, want %v from the seeded source", i, ev.Delay, want)
			}
			if gaps[i] != ev.Delay {
				t.Errorf("run %d started %v after the previous one, want exactly the delay %v", i+1, gaps[i], ev.Delay)
			}
		}
	})
}

func TestPanickingOnRestartDoesNotBreakRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := newScript(ret(errBoom), ret(errBoom), ret(nil))
		calls := 0
		s := mustNew(t, sc.child,
			supervisor.WithRestart(supervisor.Transient),
			supervisor.WithOnRestart(func(supervisor.RestartEvent) { calls++; panic("observer bug") }))
		if err := s.Run(t.Context()); err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
		if calls != 2 || len(sc.starts) != 3 {
			t.Fatalf("OnRestart calls = %d, runs = %d; want 2 and 3", calls, len(sc.starts))
		}
	})
}

// goroutineHeader is the first line of the current goroutine's stack,
// "goroutine N [running]:".
func goroutineHeader() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	line, _, _ := bytes.Cut(buf, []byte("\n"))
	return string(line)
}

// TestRestartsLoopInTheCallingGoroutine: every run happens in the goroutine
// that called Run, at the same stack depth (no recursion, no timer callback).
func TestRestartsLoopInTheCallingGoroutine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		me := goroutineHeader()
		var depths []int
		child := func(context.Context) error {
			if g := goroutineHeader(); g != me {
				return fmt.Errorf("child ran in %q, Run was called in %q", g, me)
			}
			pcs := make([]uintptr, 256)
			depths = append(depths, runtime.Callers(0, pcs))
			if len(depths) == 50 {
				return nil
			}
			return errBoom
		}
		s := mustNew(t, child, supervisor.WithRestart(supervisor.Transient), supervisor.WithIntensity(100, time.Nanosecond))
		if err := s.Run(t.Context()); err != nil {
			t.Fatalf("Run = %v", err)
		}
		if len(depths) != 50 {
			t.Fatalf("runs = %d, want 50", len(depths))
		}
		for i, d := range depths {
			if d != depths[0] {
				t.Fatalf("run %d at stack depth %d, run 1 at %d: restarts must not recurse", i+1, d, depths[0])
			}
		}
	})
}

func TestRunMisuseReturnsErrors(t *testing.T) {
	s := mustNew(t, ret(nil), supervisor.WithRestart(supervisor.Transient))
	if err := s.Run(t.Context()); err != nil {
		t.Fatalf("first Run = %v", err)
	}
	if err := s.Run(t.Context()); err == nil {
		t.Fatal("second Run returned nil, want an error")
	}
	var nilCtx context.Context
	if err := mustNew(t, ret(nil)).Run(nilCtx); err == nil {
		t.Fatal("Run(nil ctx) returned nil, want an error")
	}
	var zero supervisor.Supervisor
	if err := zero.Run(t.Context()); err == nil {
		t.Fatal("zero Supervisor Run returned nil, want an error")
	}
	var nilS *supervisor.Supervisor
	if err := nilS.Run(t.Context()); err == nil || nilS.Restarts() != 0 {
		t.Fatal("nil Supervisor: want an error from Run and 0 restarts")
	}
}

func TestRestartsIsSafeConcurrently(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := mustNew(t, ret(errBoom), supervisor.WithIntensity(20, time.Hour))
		done := start(t.Context(), s)
		seen := 0
		var err error
	poll:
		for {
			select {
			case err = <-done:
				break poll
			case <-time.After(time.Second): // fake time: a reader polling while Run restarts
				seen = max(seen, s.Restarts()) // a data race under -race if not atomic
			}
		}
		if !errors.Is(err, supervisor.ErrTooManyRestarts) {
			t.Fatalf("Run = %v", err)
		}
		if s.Restarts() != 20 || seen == 0 {
			t.Fatalf("Restarts = %d, seen %d; want 20 and > 0", s.Restarts(), seen)
		}
	})
}

func TestRestartTypeString(t *testing.T) {
	tests := []struct {
		t    supervisor.RestartType
		want string
	}{
		{supervisor.Permanent, "Permanent"},
		{supervisor.Transient, "Transient"},
		{supervisor.Temporary, "Temporary"},
		{supervisor.RestartType(7), "RestartType(7)"},
		{supervisor.RestartType(-1), "RestartType(-1)"},
	}
	for _, tt := range tests {
		if got := tt.t.String(); got != tt.want {
			t.Errorf("%d.String() = %q, want %q", int(tt.t), got, tt.want)
		}
	}
}
