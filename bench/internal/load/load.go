package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wsactor/wsactor/bench/internal/impl"
)

// ErrMismatch: a reply was not the request's payload.
var ErrMismatch = errors.New("load: the echo differs from the payload")

// Config is one closed-loop run.
type Config struct {
	Clients  []impl.Client // the connections
	InFlight int           // requests kept in flight on each connection (>= 1)
	Payload  []byte
	Warmup   time.Duration // run, unmeasured, before the window
	Duration time.Duration // the measured window
	// OnStart and OnStop, when not nil, run just before the window opens
	// and just after it closes (to sample CPU time on both sides).
	OnStart, OnStop func()
}

// Result is what a run measured in its window.
type Result struct {
	RoundTrips int64
	Elapsed    time.Duration
	Latencies  []int64 // nanoseconds, sorted
}

// PerSecond is the throughput in round trips per second.
func (r Result) PerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.RoundTrips) / r.Elapsed.Seconds()
}

// Percentile returns the q-quantile (0 < q <= 1) of the latencies.
func (r Result) Percentile(q float64) time.Duration { return Percentile(r.Latencies, q) }

const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseStop
)

// Run drives cfg.Clients in a closed loop: each of cfg.InFlight goroutines
// per client sends the payload, waits for the echo, checks it and sends
// again. It returns the first error any round trip had (the run stops at
// it) or ctx's error.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if len(cfg.Clients) == 0 || cfg.InFlight < 1 || cfg.Duration <= 0 {
		return Result{}, fmt.Errorf("load: need clients, InFlight >= 1 and a duration (got %d, %d, %v)",
			len(cfg.Clients), cfg.InFlight, cfg.Duration)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		phase    atomic.Int32
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err })
		cancel()
	}
	n := len(cfg.Clients) * cfg.InFlight
	lats := make([][]int64, n)
	for i := range n {
		c := cfg.Clients[i%len(cfg.Clients)]
		wg.Go(func() {
			buf := make([]byte, 0, len(cfg.Payload))
			var lat []int64
			defer func() { lats[i] = lat }()
			for {
				p := phase.Load()
				if p == phaseStop || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				out, err := c.RoundTrip(ctx, cfg.Payload, buf[:0])
				d := time.Since(t0)
				if err != nil {
					if phase.Load() != phaseStop {
						fail(err)
					}
					return
				}
				if !bytes.Equal(out, cfg.Payload) {
					fail(fmt.Errorf("%w: got %d bytes, want %d", ErrMismatch, len(out), len(cfg.Payload)))
					return
				}
				buf = out
				if phase.Load() == phaseMeasure {
					lat = append(lat, int64(d))
				}
			}
		})
	}
	var res Result
	if wait(ctx, cfg.Warmup) {
		if cfg.OnStart != nil {
			cfg.OnStart()
		}
		t0 := time.Now()
		phase.Store(phaseMeasure)
		wait(ctx, cfg.Duration)
		phase.Store(phaseStop)
		res.Elapsed = time.Since(t0)
		if cfg.OnStop != nil {
			cfg.OnStop()
		}
	}
	phase.Store(phaseStop)
	wg.Wait()
	if firstErr != nil {
		return Result{}, firstErr
	}
	if err := ctx.Err(); err != nil && res.Elapsed == 0 {
		return Result{}, err
	}
	total := 0
	for _, l := range lats {
		total += len(l)
	}
	res.Latencies = make([]int64, 0, total)
	for _, l := range lats {
		res.Latencies = append(res.Latencies, l...)
	}
	slices.Sort(res.Latencies)
	res.RoundTrips = int64(total)
	return res, nil
}

// wait waits for d or until ctx ends; it reports whether d passed.
func wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Percentile returns the q-quantile (nearest rank) of sorted, in
// nanoseconds; 0 when sorted is empty.
func Percentile(sorted []int64, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	i = min(max(i, 0), len(sorted)-1)
	return time.Duration(sorted[i])
}

// Median returns the median of xs (the mean of the middle two for an even
// count); NaN when xs is empty. xs is not modified.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

// CPUTime returns the CPU time (user + system) this process has used.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// RSS returns this process's resident set size in bytes (0 if unknown).
func RSS() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}

// Counters are the process's OS-level counters: context switches of all
// its threads (a thread sleeping in futex or epoll and waking again counts
// one voluntary switch) and read and write system calls (read, readv,
// write, writev, … as /proc/self/io counts them).
type Counters struct {
	CtxSwitches int64 `json:"ctx_switches"`
	ReadCalls   int64 `json:"read_syscalls"`
	WriteCalls  int64 `json:"write_syscalls"`
}

// OSCounters reads [Counters] from /proc (zeros where unknown).
func OSCounters() Counters {
	var c Counters
	if b, err := os.ReadFile("/proc/self/io"); err == nil {
		c.ReadCalls = procField(string(b), "syscr:")
		c.WriteCalls = procField(string(b), "syscw:")
	}
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, t := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + t.Name() + "/status")
		if err != nil {
			continue // the thread exited
		}
		c.CtxSwitches += procField(string(b), "voluntary_ctxt_switches:") + procField(string(b), "nonvoluntary_ctxt_switches:")
	}
	return c
}

// procField returns the integer after key at the start of a line of s.
func procField(s, key string) int64 {
	for _, line := range strings.Split(s, "\n") {
		if rest, ok := strings.CutPrefix(line, key); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
			return n
		}
	}
	return 0
}
