package supervisor_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/wsactor/wsactor/supervisor"
)

// Next makes Run's decisions for a caller that runs the child itself: the
// backoff delays (attempt 1 again after a run longer than WithResetAfter),
// the restart callback and count, the intensity, and the stop of a
// Transient child that returned nil.
func TestNextDecidesAsRun(t *testing.T) {
	var events []supervisor.RestartEvent
	s, err := supervisor.New(func(context.Context) error { t.Error("Next called the child"); return nil },
		supervisor.WithRestart(supervisor.Transient),
		supervisor.WithIntensity(3, time.Hour),
		supervisor.WithBackoff(exact),
		supervisor.WithResetAfter(time.Minute),
		supervisor.WithOnRestart(func(ev supervisor.RestartEvent) { events = append(events, ev) }),
	)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	var delays []time.Duration
	for i, run := range []time.Duration{time.Second, time.Second, 2 * time.Minute} {
		start := t0.Add(time.Duration(i) * time.Hour / 100)
		delay, stop, err := s.Next(start, start.Add(run), errBoom)
		if stop || err != nil {
			t.Fatalf("run %d: stop %v, err %v; want a restart", i+1, stop, err)
		}
		delays = append(delays, delay)
	}
	// 1s, 2s, then 1s again: the third run lasted past WithResetAfter.
	if want := []time.Duration{time.Second, 2 * time.Second, time.Second}; !slices.Equal(delays, want) {
		t.Errorf("delays %v, want %v", delays, want)
	}
	if len(events) != 3 || events[2].Attempt != 1 || !errors.Is(events[0].Cause, errBoom) {
		t.Errorf("restart events %+v", events)
	}
	if got := s.Restarts(); got != 3 {
		t.Errorf("Restarts() = %d, want 3", got)
	}
	// A fourth failure within the hour exceeds the intensity (3).
	_, stop, err := s.Next(t0.Add(time.Minute), t0.Add(time.Minute+time.Second), errBoom)
	if !stop || !errors.Is(err, supervisor.ErrTooManyRestarts) || !errors.Is(err, errBoom) {
		t.Errorf("fourth failure: stop %v, err %v; want ErrTooManyRestarts wrapping the failure", stop, err)
	}
	// A Transient child that returned nil is not restarted.
	if _, stop, err := s.Next(t0, t0, nil); !stop || err != nil {
		t.Errorf("nil cause: stop %v, err %v; want stop, nil", stop, err)
	}
	if err := s.Run(context.Background()); err == nil {
		t.Error("Run after Next: nil error, want a refusal")
	}
}
