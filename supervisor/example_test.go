package supervisor_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wsactor/wsactor/supervisor"
)

// A Transient child that fails twice, then succeeds.
func Example() {
	failures := 0
	child := func(ctx context.Context) error {
		if failures < 2 {
			failures++
			return fmt.Errorf("dial: connection refused (%d)", failures)
		}
		fmt.Println("connected, served, closed cleanly")
		return nil
	}
	s, err := supervisor.New(child,
		supervisor.WithRestart(supervisor.Transient),
		supervisor.WithBackoff(supervisor.Backoff{Min: time.Millisecond, Max: 5 * time.Millisecond}),
		supervisor.WithOnRestart(func(ev supervisor.RestartEvent) {
			fmt.Printf("restart attempt %d after: %v\n", ev.Attempt, ev.Cause)
		}),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	err = s.Run(context.Background())
	fmt.Println("Run:", err, "restarts:", s.Restarts())
	// Output:
	// restart attempt 1 after: dial: connection refused (1)
	// restart attempt 2 after: dial: connection refused (2)
	// connected, served, closed cleanly
	// Run: <nil> restarts: 2
}

// A connection actor deciding its own restarts, with no goroutine of the
// supervisor package: it owns an Intensity and a Backoff.
func ExampleIntensity() {
	in := supervisor.NewIntensity(2, 10*time.Second)
	b := supervisor.Backoff{Min: 100 * time.Millisecond, Jitter: -1} // no jitter, for the output
	cause := errors.New("conn: read failed")
	now := time.Now()
	for attempt := 1; ; attempt++ {
		if !in.Allow(now) {
			fmt.Println(fmt.Errorf("%w: %w", supervisor.ErrTooManyRestarts, cause))
			return
		}
		d := b.Delay(attempt, nil)
		fmt.Println("restart", attempt, "in", d)
		now = now.Add(d)
	}
	// Output:
	// restart 1 in 100ms
	// restart 2 in 200ms
	// supervisor: too many restarts: conn: read failed
}

func ExampleBackoff() {
	b := supervisor.Backoff{Min: time.Second, Max: 5 * time.Second, Jitter: -1}
	for attempt := 1; attempt <= 5; attempt++ {
		fmt.Print(b.Delay(attempt, nil), " ")
	}
	fmt.Println()
	// Output: 1s 2s 4s 5s 5s
}
