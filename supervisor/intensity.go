package supervisor

import "time"

// maxIntensity bounds the restart count of an [Intensity] (and of
// [WithIntensity]) so that a window never allocates more than 512 KiB.
const maxIntensity = 1 << 16

// Intensity is the Erlang restart window: at most Max restarts within a
// sliding window of length Within. It keeps the times of the last Max
// allowed restarts in a ring, so [Intensity.Allow] is O(1) and does not
// allocate after [NewIntensity].
//
// A restart recorded exactly Within before now has left the window: the
// window is the half-open interval (now-Within, now].
//
// Intensity is a building block for goroutine-free supervision: an actor
// that restarts itself in its own loop owns one Intensity and asks it before
// each restart.
//
// Not safe for concurrent use: one goroutine owns an Intensity. The zero
// value allows no restart at all; use [NewIntensity].
type Intensity struct {
	within  time.Duration
	base    time.Time       // time of the first recorded restart since Reset
	ring    []time.Duration // offsets from base of the allowed restarts; len == Max
	head    int             // index of the oldest recorded restart
	n       int             // number of recorded restarts, <= len(ring)
	hasBase bool
}

// NewIntensity returns a window allowing at most max restarts within
// within. It never panics: a negative max is taken as 0 (no restart is
// ever allowed), a max above 65536 is clamped to 65536, and a within <= 0
// means an empty window (every restart is allowed). [New] rejects these
// values with an error instead.
func NewIntensity(max int, within time.Duration) *Intensity {
	switch {
	case max < 0:
		max = 0
	case max > maxIntensity:
		max = maxIntensity
	}
	return &Intensity{within: within, ring: make([]time.Duration, max)}
}

// Allow records a restart at now and reports whether it is allowed. It
// returns false, and records nothing, when this restart would make more
// than Max restarts within the window ending at now. Callers pass
// time.Now() (whose monotonic reading makes the window immune to wall-clock
// jumps); successive calls should not go back in time. A nil or zero
// Intensity returns false.
func (in *Intensity) Allow(now time.Time) bool {
	if in == nil || len(in.ring) == 0 {
		return false
	}
	if !in.hasBase {
		in.base, in.hasBase = now, true
	}
	t := now.Sub(in.base)
	if in.n < len(in.ring) {
		i := in.head + in.n
		if i >= len(in.ring) {
			i -= len(in.ring)
		}
		in.ring[i] = t
		in.n++
		return true
	}
	if t-in.ring[in.head] < in.within {
		return false // the oldest of the last Max restarts is still in the window
	}
	in.ring[in.head] = t
	in.head++
	if in.head == len(in.ring) {
		in.head = 0
	}
	return true
}

// Reset forgets every recorded restart.
func (in *Intensity) Reset() {
	if in == nil {
		return
	}
	in.head, in.n, in.hasBase, in.base = 0, 0, false, time.Time{}
}
