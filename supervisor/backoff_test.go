package supervisor_test

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/wsactor/wsactor/supervisor"
)

// ceiling is the reference for the un-jittered delay of attempt n.
func ceiling(minD, maxD time.Duration, factor float64, n int) time.Duration {
	f := float64(minD) * math.Pow(factor, float64(n-1))
	if f >= float64(maxD) {
		return maxD
	}
	return time.Duration(f)
}

func TestBackoffBounds(t *testing.T) {
	attempts := []int{-5, 0, 1 << 30, math.MaxInt}
	for n := 1; n <= 100; n++ {
		attempts = append(attempts, n)
	}
	tests := []struct {
		name       string
		b          supervisor.Backoff
		min, max   time.Duration
		factor     float64
		jitterFrac float64
	}{
		{"zero value is the defaults", supervisor.Backoff{}, 100 * time.Millisecond, 10 * time.Second, 2, 0.5},
		{"custom", supervisor.Backoff{Min: time.Millisecond, Max: time.Minute, Factor: 3, Jitter: 0.2}, time.Millisecond, time.Minute, 3, 0.2},
		{"full jitter", supervisor.Backoff{Min: time.Second, Max: time.Hour, Jitter: 1}, time.Second, time.Hour, 2, 1},
		{"jitter above 1 clamps to 1", supervisor.Backoff{Jitter: 7}, 100 * time.Millisecond, 10 * time.Second, 2, 1},
		{"no jitter", supervisor.Backoff{Jitter: -1}, 100 * time.Millisecond, 10 * time.Second, 2, 0},
		{"factor 1 is constant", supervisor.Backoff{Min: time.Second, Factor: 1}, time.Second, 10 * time.Second, 1, 0.5},
		{"factor below 1 is taken as 1", supervisor.Backoff{Min: time.Second, Factor: 0.25}, time.Second, 10 * time.Second, 1, 0.5},
		{"NaN factor and jitter are defaults", supervisor.Backoff{Factor: math.NaN(), Jitter: math.NaN()}, 100 * time.Millisecond, 10 * time.Second, 2, 0.5},
		{"infinite factor jumps to max", supervisor.Backoff{Factor: math.Inf(1)}, 100 * time.Millisecond, 10 * time.Second, math.Inf(1), 0.5},
		{"max is MaxInt64", supervisor.Backoff{Min: time.Second, Max: math.MaxInt64, Jitter: 1}, time.Second, math.MaxInt64, 2, 1},
		{"min above max clamps", supervisor.Backoff{Min: time.Minute, Max: time.Second}, time.Second, time.Second, 2, 0.5},
		{"negative min and max are defaults", supervisor.Backoff{Min: -1, Max: -1}, 100 * time.Millisecond, 10 * time.Second, 2, 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			for _, n := range attempts {
				eff := max(n, 1)
				hi := ceiling(tt.min, tt.max, tt.factor, eff)
				lo := hi - time.Duration(float64(hi)*tt.jitterFrac)
				for range 20 {
					got := tt.b.Delay(n, r)
					if got < lo || got > hi || got < 0 || got > tt.max {
						t.Fatalf("Delay(%d) = %v, want in [%v, %v]", n, got, lo, hi)
					}
				}
			}
		})
	}
}

func TestBackoffNoJitterIsExactDoublingCappedAtMax(t *testing.T) {
	b := supervisor.Backoff{Min: 100 * time.Millisecond, Max: 10 * time.Second, Jitter: -1}
	want := []time.Duration{
		100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		1600 * time.Millisecond, 3200 * time.Millisecond, 6400 * time.Millisecond,
		10 * time.Second, 10 * time.Second, 10 * time.Second,
	}
	for i, w := range want {
		if got := b.Delay(i+1, nil); got != w {
			t.Errorf("Delay(%d) = %v, want %v", i+1, got, w)
		}
	}
	for _, n := range []int{64, 1000, 1 << 30, math.MaxInt} {
		if got := b.Delay(n, nil); got != 10*time.Second {
			t.Errorf("Delay(%d) = %v, want the cap 10s", n, got)
		}
	}
}

func TestBackoffMinAboveMaxClamps(t *testing.T) {
	b := supervisor.Backoff{Min: 5 * time.Second, Max: time.Second, Jitter: -1}
	for _, n := range []int{1, 2, 50} {
		if got := b.Delay(n, nil); got != time.Second {
			t.Errorf("Delay(%d) = %v, want 1s", n, got)
		}
	}
}

// TestBackoffJitterIsReal checks that the jitter uses its whole range and is
// reproducible from a seed.
func TestBackoffJitterIsReal(t *testing.T) {
	b := supervisor.Backoff{Min: time.Second, Max: time.Second, Jitter: 0.5}
	r1 := rand.New(rand.NewPCG(7, 7))
	r2 := rand.New(rand.NewPCG(7, 7))
	lo, hi := time.Duration(math.MaxInt64), time.Duration(0)
	distinct := map[time.Duration]bool{}
	for range 1000 {
		d := b.Delay(1, r1)
		if d2 := b.Delay(1, r2); d != d2 {
			t.Fatalf("same seed gave %v and %v", d, d2)
		}
		lo, hi = min(lo, d), max(hi, d)
		distinct[d] = true
	}
	if lo > 550*time.Millisecond || hi < 950*time.Millisecond || len(distinct) < 900 {
		t.Fatalf("1000 draws in [%v, %v] with %d distinct values; want spread over [500ms, 1s]", lo, hi, len(distinct))
	}
	// nil rand uses the package-level source and stays in bounds.
	for range 100 {
		if d := b.Delay(1, nil); d < 500*time.Millisecond || d > time.Second {
			t.Fatalf("Delay with nil rand = %v, want in [500ms, 1s]", d)
		}
	}
}

func TestBackoffDelayDoesNotAllocate(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	b := supervisor.Backoff{}
	n := 0
	if a := testing.AllocsPerRun(1000, func() { n++; _ = b.Delay(n%40+1, r) }); a != 0 {
		t.Fatalf("Delay allocates %v times per call", a)
	}
}
