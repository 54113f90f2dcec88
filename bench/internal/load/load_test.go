package load_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wsactor/wsactor/bench/internal/impl"
	"github.com/wsactor/wsactor/bench/internal/load"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestPercentile(t *testing.T) {
	sorted := []int64{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50}, {0.9, 90}, {0.99, 100}, {0.1, 10}, {0.01, 10}, {1, 100}} {
		if got := load.Percentile(sorted, tc.q); got != tc.want {
			t.Errorf("Percentile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := load.Percentile(nil, 0.5); got != 0 {
		t.Errorf("Percentile(nil) = %v, want 0", got)
	}
}

func TestMedian(t *testing.T) {
	xs := []float64{3, 1, 2}
	if got := load.Median(xs); got != 2 {
		t.Errorf("Median(3,1,2) = %v, want 2", got)
	}
	if xs[0] != 3 {
		t.Errorf("Median modified its input: %v", xs)
	}
	if got := load.Median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("Median(4,1,3,2) = %v, want 2.5", got)
	}
	if got := load.Median(nil); !math.IsNaN(got) {
		t.Errorf("Median(nil) = %v, want NaN", got)
	}
}

func TestProcessCounters(t *testing.T) {
	if load.RSS() <= 0 {
		t.Error("RSS() <= 0")
	}
	c0 := load.CPUTime()
	x := 0
	for i := range 10_000_000 {
		x += i * i
	}
	if c1 := load.CPUTime(); c1 <= c0 || x == 42 {
		t.Errorf("CPUTime did not advance: %v then %v", c0, c1)
	}
}

// TestRunDetectsMismatch: a server that answers something else than the
// payload fails the run with ErrMismatch. Raw echo over a naive client
// would hang, so the mismatch comes from a naive client whose payload the
// naive server re-encodes: encoding/json compacts the data.
func TestRunDetectsMismatch(t *testing.T) {
	r, err := impl.Start(impl.Naive, "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := impl.Dial(ctx, impl.Naive, r.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	_, err = load.Run(ctx, load.Config{
		Clients: []impl.Client{c}, InFlight: 1, Payload: []byte(`{ "spaced" : true }`),
		Duration: time.Second,
	})
	if err == nil || !errors.Is(err, load.ErrMismatch) {
		t.Fatalf("Run = %v, want ErrMismatch", err)
	}
}

func TestRunValidatesConfig(t *testing.T) {
	if _, err := load.Run(context.Background(), load.Config{InFlight: 1, Duration: time.Second}); err == nil {
		t.Error("Run without clients did not fail")
	}
}
