package supervisor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/sourcegraph/conc/panics"
)

// ErrTooManyRestarts is returned by [Supervisor.Run] when a restart would
// exceed the restart intensity (see [WithIntensity]). The returned error
// also wraps the child's last failure, so both match with errors.Is.
var ErrTooManyRestarts = errors.New("supervisor: too many restarts")

// Child is the supervised function. It runs until it fails (returns an
// error or panics), finishes (returns nil) or its ctx is done. It should
// return promptly once ctx is done.
type Child func(ctx context.Context) error

// RestartEvent describes one restart about to happen; see [WithOnRestart].
type RestartEvent struct {
	// Attempt is the backoff attempt, 1 for the first restart after a
	// healthy run (see [WithResetAfter]).
	Attempt int
	// Cause is what the child returned: its error, an error wrapping a
	// *panics.ErrRecovered for a panic, or nil for a [Permanent] child that
	// returned nil.
	Cause error
	// Delay is the backoff wait before the child is run again.
	Delay time.Duration
}

// Option configures [New].
type Option func(*options)

type options struct {
	restart    RestartType
	max        int
	within     time.Duration
	backoff    Backoff
	resetAfter time.Duration
	onRestart  func(RestartEvent)
	rand       *rand.Rand
}

func defaultOptions() options {
	return options{
		restart:    Permanent,
		max:        5,
		within:     10 * time.Second,
		resetAfter: 10 * time.Second,
	}
}

// WithRestart sets the restart type (default [Permanent]). A value other
// than the three constants makes [New] fail.
func WithRestart(t RestartType) Option {
	return func(o *options) { o.restart = t }
}

// WithIntensity allows at most max restarts within any window of length
// within; the restart that would exceed it makes [Supervisor.Run] return
// [ErrTooManyRestarts]. Default: 5 within 10s. max 0 means the first
// failure ends Run. [New] fails when max < 0, max > 65536 or within <= 0.
func WithIntensity(max int, within time.Duration) Option {
	return func(o *options) { o.max, o.within = max, within }
}

// WithBackoff sets the delays between restarts (default: the zero
// [Backoff], i.e. 100ms doubling up to 10s with jitter 0.5). [New] fails
// when Min or Max is negative, Factor is NaN, infinite, negative or between
// 0 and 1, or Jitter is NaN or above 1.
func WithBackoff(b Backoff) Option {
	return func(o *options) { o.backoff = b }
}

// WithResetAfter makes a child that ran at least d before returning restart
// with backoff attempt 1 again, so a long-lived connection that drops
// reconnects quickly (default 10s). 0 disables the reset: attempts only
// grow. [New] fails when d < 0. The restart intensity is not reset; its
// window slides by itself.
func WithResetAfter(d time.Duration) Option {
	return func(o *options) { o.resetAfter = d }
}

// WithOnRestart registers fn, called in the goroutine running
// [Supervisor.Run] before each backoff wait. fn must not block for long: it
// delays the restart. A panic in fn is recovered and ignored. nil means no
// callback.
func WithOnRestart(fn func(ev RestartEvent)) Option {
	return func(o *options) { o.onRestart = fn }
}

// WithRand sets the random source of the backoff jitter, for deterministic
// tests. r is used only by the goroutine running [Supervisor.Run] and must
// not be used elsewhere meanwhile. nil (the default) means the
// package-level math/rand/v2 source.
func WithRand(r *rand.Rand) Option {
	return func(o *options) { o.rand = r }
}

func (o *options) validate() error {
	switch {
	case !o.restart.valid():
		return fmt.Errorf("supervisor: invalid restart type %v", o.restart)
	case o.max < 0 || o.max > maxIntensity:
		return fmt.Errorf("supervisor: intensity max %d outside [0, %d]", o.max, maxIntensity)
	case o.within <= 0:
		return fmt.Errorf("supervisor: intensity window %v is not positive", o.within)
	case o.resetAfter < 0:
		return fmt.Errorf("supervisor: reset-after %v is negative", o.resetAfter)
	}
	b := o.backoff
	switch {
	case b.Min < 0 || b.Max < 0:
		return fmt.Errorf("supervisor: backoff min %v or max %v is negative", b.Min, b.Max)
	case math.IsNaN(b.Factor) || math.IsInf(b.Factor, 0) || b.Factor < 0 || (b.Factor > 0 && b.Factor < 1):
		return fmt.Errorf("supervisor: backoff factor %v is not 0 (default) or a finite value >= 1", b.Factor)
	case math.IsNaN(b.Jitter) || b.Jitter > 1:
		return fmt.Errorf("supervisor: backoff jitter %v is above 1 or NaN", b.Jitter)
	}
	return nil
}

// Supervisor runs a [Child] and restarts it according to its
// [RestartType], [Backoff] and restart [Intensity].
//
// A Supervisor starts no goroutine: [Supervisor.Run] runs the child and
// every restart in the goroutine that calls it. Run may be called once;
// [Supervisor.Restarts] may be called from any goroutine. The zero value is
// not usable (use [New]); a Supervisor must not be copied.
type Supervisor struct {
	child     Child
	opts      options
	intensity *Intensity // made at the first restart decision
	started   atomic.Bool
	restarts  atomic.Int64
	attempt   int // the backoff attempt; owned by the goroutine in Run or Next
}

// New returns a Supervisor for child. It validates the options once and
// returns an error for a nil child or an invalid option; nil options are
// ignored, and later options override earlier ones.
func New(child Child, opts ...Option) (*Supervisor, error) {
	if child == nil {
		return nil, errors.New("supervisor: nil child")
	}
	o := defaultOptions()
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	return &Supervisor{child: child, opts: o}, nil
}

// Restarts returns the number of restarts so far: how many times the
// child was run again after returning. Safe for concurrent use.
func (s *Supervisor) Restarts() int {
	if s == nil {
		return 0
	}
	return int(s.restarts.Load())
}

// Run runs the child in the calling goroutine and restarts it until one of
// these, which decide what Run returns:
//
//   - ctx is done (before, during or after a run of the child, or during a
//     backoff wait): Run returns nil, whatever the child returned, because
//     a cancelled ctx is a normal stop;
//   - a [Transient] or [Temporary] child returns nil: Run returns nil;
//   - a [Temporary] child fails: Run returns its failure;
//   - a restart would exceed the intensity: Run returns an error wrapping
//     both [ErrTooManyRestarts] and the last failure (if the child returned
//     nil, only ErrTooManyRestarts).
//
// A panic in the child is recovered and becomes a failure wrapping the
// *panics.ErrRecovered of github.com/sourcegraph/conc/panics (use errors.As).
//
// Each run of the child gets its own ctx, derived from ctx and cancelled as
// soon as that run returns, so anything the run left behind on its ctx is
// told to stop before the next run starts.
//
// Between runs Run waits the [Backoff] delay on a timer in a select with
// ctx.Done(); restarts are a loop in this goroutine, never a timer callback
// or recursion. Run may be called only once; a second call returns an error
// at once.
func (s *Supervisor) Run(ctx context.Context) error {
	if s == nil || s.child == nil {
		return errors.New("supervisor: Run on a Supervisor not made by New")
	}
	if ctx == nil {
		return errors.New("supervisor: nil context")
	}
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("supervisor: Run called more than once")
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if ctx.Err() != nil {
			return nil
		}
		start := time.Now()
		cause := s.runChild(ctx)
		end := time.Now()
		if ctx.Err() != nil {
			return nil
		}
		delay, stop, err := s.decide(start, end, cause)
		if stop {
			return err
		}
		if delay > 0 {
			if timer == nil {
				timer = time.NewTimer(delay)
			} else {
				timer.Reset(delay) // Go >= 1.23: no stale value to drain
			}
			select {
			case <-ctx.Done():
				return nil
			case <-timer.C:
			}
		}
		s.restarts.Add(1)
	}
}

// Next is the decision [Supervisor.Run] makes after each run of the child,
// for a caller that runs the child itself: say, a connection's read loop on
// a goroutine that must not sit under Run's frames while it waits (the
// runtime shrinks a parked goroutine's stack only when its frames are few).
// start and end are when the run began and returned, cause what it
// returned. Next reports stop with the error Run would return (nil for a
// Transient or Temporary child that returned nil, the failure of a
// Temporary child, or one wrapping [ErrTooManyRestarts]), or else the
// backoff delay to wait before running the child again; it calls the
// [WithOnRestart] callback as Run does and counts the restart in
// [Supervisor.Restarts]. The caller waits the delay (and stops on its own
// ctx, which Next does not see), runs the child, and calls Next again.
//
// Use either Run or Next on a Supervisor: Next makes a later Run fail. Calls
// to Next must not overlap; it runs on the caller's goroutine and starts
// none. The child given to [New] is not called by Next.
func (s *Supervisor) Next(start, end time.Time, cause error) (delay time.Duration, stop bool, err error) {
	if s == nil || s.child == nil {
		return 0, true, errors.New("supervisor: Next on a Supervisor not made by New")
	}
	s.started.Store(true)
	delay, stop, err = s.decide(start, end, cause)
	if !stop {
		s.restarts.Add(1)
	}
	return delay, stop, err
}

// decide is Run's and Next's decision after a run of the child: stop (with
// what Run returns), or restart after delay. It runs on the goroutine that
// runs the child, which owns s.attempt and s.intensity.
func (s *Supervisor) decide(start, end time.Time, cause error) (delay time.Duration, stop bool, err error) {
	o := &s.opts
	if cause == nil && o.restart != Permanent {
		return 0, true, nil
	}
	if o.restart == Temporary {
		return 0, true, cause
	}
	if s.intensity == nil {
		// On first use: a child that never fails (a connection that
		// stays up) holds no restart history.
		s.intensity = NewIntensity(o.max, o.within)
	}
	if !s.intensity.Allow(end) {
		if cause == nil {
			return 0, true, fmt.Errorf("%w (more than %d within %v)", ErrTooManyRestarts, o.max, o.within)
		}
		return 0, true, fmt.Errorf("%w (more than %d within %v): %w", ErrTooManyRestarts, o.max, o.within, cause)
	}
	if o.resetAfter > 0 && end.Sub(start) >= o.resetAfter {
		s.attempt = 0
	}
	s.attempt++
	delay = o.backoff.Delay(s.attempt, o.rand)
	if o.onRestart != nil {
		ev := RestartEvent{Attempt: s.attempt, Cause: cause, Delay: delay}
		_ = panics.Try(func() { o.onRestart(ev) }) // a panicking observer must not stop supervision
	}
	return delay, false, nil
}

// runChild runs one incarnation of the child with its own ctx, turning a
// panic into an error.
func (s *Supervisor) runChild(ctx context.Context) (err error) {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if r := panics.Try(func() { err = s.child(cctx) }); r != nil {
		return fmt.Errorf("supervisor: child panicked: %w", r.AsError())
	}
	return err
}
