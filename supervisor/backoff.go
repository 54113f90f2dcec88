package supervisor

import (
	"math"
	"math/rand/v2"
	"time"
)

// Backoff defaults, used for a zero (or otherwise unusable) field.
const (
	defaultBackoffMin    = 100 * time.Millisecond
	defaultBackoffMax    = 10 * time.Second
	defaultBackoffFactor = 2.0
	defaultBackoffJitter = 0.5
)

// Backoff computes exponential restart delays with real jitter.
//
// The delay before restart attempt n (n starting at 1) is
// d = min(Max, Min*Factor^(n-1)), then drawn uniformly from
// [d*(1-Jitter), d]. With Jitter 1 that is "full jitter" in [0, d].
//
// The zero value is valid and means the defaults: every zero field takes its
// default (Min 100ms, Max 10s, Factor 2, Jitter 0.5). Because a zero Jitter
// means the default, a negative Jitter disables jitter (exact delays).
//
// Backoff is a plain value: copy it freely and call [Backoff.Delay] from any
// goroutine (the *rand.Rand passed in must not be shared unsynchronised).
type Backoff struct {
	// Min is the delay before the first attempt. Zero or negative: 100ms.
	// A Min above Max is clamped to Max.
	Min time.Duration
	// Max caps every delay. Zero or negative: 10s.
	Max time.Duration
	// Factor multiplies the delay per attempt. Zero, negative or NaN: 2.
	// A Factor between 0 and 1 is taken as 1 (constant delay); [New]
	// rejects it.
	Factor float64
	// Jitter is the fraction of the delay that is random, in [0,1]: the
	// delay d is drawn uniformly from [d*(1-Jitter), d]. Zero or NaN: 0.5.
	// Negative: no jitter. Above 1: 1.
	Jitter float64
}

// normalized returns b with every field replaced by the value Delay uses.
// A negative Jitter becomes 0.
func (b Backoff) normalized() Backoff {
	if b.Min <= 0 {
		b.Min = defaultBackoffMin
	}
	if b.Max <= 0 {
		b.Max = defaultBackoffMax
	}
	if b.Min > b.Max {
		b.Min = b.Max
	}
	switch {
	case !(b.Factor > 0): // zero, negative, NaN
		b.Factor = defaultBackoffFactor
	case b.Factor < 1:
		b.Factor = 1
	}
	switch {
	case b.Jitter == 0 || math.IsNaN(b.Jitter):
		b.Jitter = defaultBackoffJitter
	case b.Jitter < 0:
		b.Jitter = 0
	case b.Jitter > 1:
		b.Jitter = 1
	}
	return b
}

// Delay returns the delay before restart attempt attempt (1 for the first
// restart after a success; an attempt below 1 counts as 1). The result is
// in [0, Max] and never overflows, however large attempt is. Randomness
// comes from r, or from the package-level math/rand/v2 source when r is
// nil. Delay does not allocate.
func (b Backoff) Delay(attempt int, r *rand.Rand) time.Duration {
	b = b.normalized()
	if attempt < 1 {
		attempt = 1
	}
	d := b.Max
	if f := float64(b.Min) * math.Pow(b.Factor, float64(attempt-1)); f < float64(b.Max) {
		d = time.Duration(f) // f is finite and below Max, so this cannot overflow
	}
	if b.Jitter == 0 || d <= 0 {
		return d
	}
	span := d // the random part, in [0, d]
	if fs := float64(d) * b.Jitter; fs < float64(d) {
		span = time.Duration(fs) // fs < float64(d) <= 2^63: no overflow
	}
	if span <= 0 {
		return d
	}
	var x uint64
	if r != nil {
		x = r.Uint64N(uint64(span) + 1)
	} else {
		x = rand.Uint64N(uint64(span) + 1)
	}
	return d - span + time.Duration(x)
}
