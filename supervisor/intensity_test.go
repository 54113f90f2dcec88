package supervisor_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/wsactor/wsactor/supervisor"
)

type step struct {
	at   time.Duration // offset from t0
	want bool
}

func TestIntensityAllow(t *testing.T) {
	const s = time.Second
	ms := time.Millisecond
	tests := []struct {
		name   string
		max    int
		within time.Duration
		steps  []step
	}{
		{"window edges and ring wrap", 3, 10 * s, []step{
			{0, true}, {1 * s, true}, {2 * s, true}, // full
			{3 * s, false}, {10*s - ms, false}, // 0s still inside the window
			{10 * s, true},                 // exactly Within after 0s: 0s has left the window
			{10 * s, false},                // 1s is inside (10s-1s < 10s)
			{11 * s, true}, {12 * s, true}, // wrap: ring is now 10,11,12
			{19 * s, false}, {20 * s, true}, {21 * s, true}, {22 * s, true}, // second wrap
			{22 * s, false}, {30*s - ms, false}, {30 * s, true}, {30 * s, false},
		}},
		{"max 1", 1, s, []step{
			{0, true}, {500 * ms, false}, {s, true}, {2*s - 1, false}, {2 * s, true},
		}},
		{"denied restarts are not recorded", 2, 10 * s, []step{
			{0, true}, {5 * s, true}, {6 * s, false}, {7 * s, false},
			{10 * s, true}, // only 0s left the window; 6s and 7s were never counted
			{14 * s, false}, {15 * s, true}, {16 * s, false},
		}},
		{"max 0 allows nothing", 0, s, []step{{0, false}, {time.Hour, false}}},
		{"negative max is 0", -3, s, []step{{0, false}, {time.Hour, false}}},
		{"within 0 is an empty window", 1, 0, []step{{0, true}, {0, true}, {1, true}}},
		{"burst at one instant", 4, s, []step{
			{0, true}, {0, true}, {0, true}, {0, true}, {0, false}, {s - 1, false}, {s, true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t0 := time.Now()
			in := supervisor.NewIntensity(tt.max, tt.within)
			for i, st := range tt.steps {
				if got := in.Allow(t0.Add(st.at)); got != st.want {
					t.Fatalf("step %d: Allow(t0+%v) = %v, want %v", i, st.at, got, st.want)
				}
			}
		})
	}
}

func TestIntensityReset(t *testing.T) {
	t0 := time.Now()
	in := supervisor.NewIntensity(2, time.Minute)
	if !in.Allow(t0) || !in.Allow(t0) || in.Allow(t0) {
		t.Fatal("want two allowed then denied")
	}
	in.Reset()
	if !in.Allow(t0) || !in.Allow(t0) || in.Allow(t0) {
		t.Fatal("after Reset: want two allowed then denied")
	}
}

func TestIntensityBadValuesDoNotPanic(t *testing.T) {
	var zero supervisor.Intensity
	if zero.Allow(time.Now()) {
		t.Error("zero Intensity allowed a restart")
	}
	zero.Reset()
	var nilIn *supervisor.Intensity
	if nilIn.Allow(time.Now()) {
		t.Error("nil Intensity allowed a restart")
	}
	nilIn.Reset()

	// A huge max is clamped to 65536 rather than allocating without bound.
	in := supervisor.NewIntensity(1<<40, time.Hour)
	t0 := time.Now()
	for i := range 1 << 16 {
		if !in.Allow(t0) {
			t.Fatalf("restart %d denied, want 65536 allowed", i+1)
		}
	}
	if in.Allow(t0) {
		t.Fatal("restart 65537 allowed; want the clamp at 65536")
	}
}

// TestIntensityMatchesReference compares the ring with a naive list of
// allowed restart times over random sequences.
func TestIntensityMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for trial := range 200 {
		maxN := r.IntN(6)
		within := time.Duration(1+r.IntN(20)) * time.Second
		in := supervisor.NewIntensity(maxN, within)
		var allowed []time.Duration
		now := time.Duration(0)
		t0 := time.Unix(1_700_000_000, 0) // no monotonic reading: wall-clock arithmetic
		for i := range 300 {
			now += time.Duration(r.IntN(4000)) * time.Millisecond
			inWindow := 0
			for _, a := range allowed {
				if now-a < within {
					inWindow++
				}
			}
			want := inWindow < maxN
			if got := in.Allow(t0.Add(now)); got != want {
				t.Fatalf("trial %d step %d (max %d within %v, now %v): Allow = %v, want %v", trial, i, maxN, within, now, got, want)
			}
			if want {
				allowed = append(allowed, now)
			}
		}
	}
}

func TestIntensityAllowDoesNotAllocate(t *testing.T) {
	in := supervisor.NewIntensity(5, time.Second)
	now := time.Now()
	if a := testing.AllocsPerRun(1000, func() { now = now.Add(100 * time.Millisecond); in.Allow(now) }); a != 0 {
		t.Fatalf("Allow allocates %v times per call", a)
	}
}
