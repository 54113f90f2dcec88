package supervisor_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/wsactor/wsactor/supervisor"
)

func BenchmarkIntensityAllow(b *testing.B) {
	in := supervisor.NewIntensity(5, 10*time.Second)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Second) // alternates between allowed and denied near the limit
		in.Allow(now)
	}
}

// BenchmarkNewIntensity is the memory one connection actor pays for its
// restart window (only once it has failed, if it creates it lazily).
var sink *supervisor.Intensity

func BenchmarkNewIntensity(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sink = supervisor.NewIntensity(5, 10*time.Second)
	}
}

func BenchmarkBackoffDelay(b *testing.B) {
	b.Run("seeded", func(b *testing.B) {
		r := rand.New(rand.NewPCG(1, 2))
		bo := supervisor.Backoff{}
		n := 0
		b.ReportAllocs()
		for b.Loop() {
			n++
			_ = bo.Delay(n%20+1, r)
		}
	})
	b.Run("global", func(b *testing.B) {
		bo := supervisor.Backoff{}
		n := 0
		b.ReportAllocs()
		for b.Loop() {
			n++
			_ = bo.Delay(n%20+1, nil)
		}
	})
}
