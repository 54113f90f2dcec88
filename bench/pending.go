package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsactor/wsactor"
	"github.com/wsactor/wsactor/bench/internal/impl"
	"github.com/wsactor/wsactor/bench/internal/load"
)

// pendingResult is the measurement of -pending.
type pendingResult struct {
	Requests        int     `json:"requests"`
	WriteTimeoutS   float64 `json:"write_timeout_s,omitempty"` // the client's WithWriteTimeout, if set
	SharedDeadline  bool    `json:"shared_deadline"`           // one ctx deadline for all, not the request timeout
	TimeoutS        float64 `json:"timeout_s"`
	IssueS          float64 `json:"issue_s"`    // time to make all the Conn.Go calls
	RegisterS       float64 `json:"register_s"` // until the actor had them all pending
	HeapPerPending  float64 `json:"heap_bytes_per_pending"`
	RSSPerPending   float64 `json:"rss_bytes_per_pending"`
	GoroutinesDelta int     `json:"goroutines_delta"`
	FirstExpiryS    float64 `json:"first_expiry_after_its_deadline_s"` // first callback − (first issue + timeout)
	LastExpiryS     float64 `json:"last_expiry_after_last_deadline_s"` // last callback − (last issue + timeout)
	ExpirySpanS     float64 `json:"expiry_span_s"`                     // last callback − first callback
	ExpiryCPUS      float64 `json:"expiry_cpu_s"`                      // process CPU from the first deadline to the last callback
	TimedOut        int64   `json:"timed_out"`
	Other           int64   `json:"other_outcomes"`
	MailboxFull     int64   `json:"mailbox_full_retries"`
	// Errors counts the outcomes by error text (the first 8 kinds).
	Errors map[string]int64 `json:"errors"`
}

// pendingMode makes -pending requests with Conn.Go on one wsactor
// connection to a server that reads and never answers, measures the memory
// they hold while pending, and the time until all have timed out.
func pendingMode(f flags) error {
	srv, err := spawnServer(impl.Discard)
	if err != nil {
		return err
	}
	defer srv.stop()
	n := f.pending
	ctx := context.Background()
	reqTimeout := f.pendingTimeout
	if f.pendingShared {
		reqTimeout = 10 * f.pendingTimeout // the ctx deadline comes first
	}
	opts := []wsactor.Option{
		wsactor.WithRequestTimeout(reqTimeout),
		wsactor.WithMaxPending(n),
		wsactor.WithMailboxCapacity(1 << 16),
		wsactor.WithMaxOutboundBytes(1 << 30),
		wsactor.WithPingTimeout(0), // the discard server sends no heartbeat
	}
	if f.pendingWriteTO > 0 {
		opts = append(opts, wsactor.WithWriteTimeout(f.pendingWriteTO))
	}
	cl, err := wsactor.Dial(ctx, srv.url(), opts...)
	if err != nil {
		return err
	}
	defer func() { _ = cl.Close() }()
	c, err := cl.Conn(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("%s\n%d pending requests, timeout %v\n", environment().String(), n, f.pendingTimeout)

	var (
		errMu                  sync.Mutex
		errs                   = map[string]int64{}
		count, timedOut, other atomic.Int64
		firstCB, lastCB        atomic.Int64
		done                   = make(chan struct{})
	)
	cb := func(_ wsactor.Response, err error) {
		now := time.Now().UnixNano()
		firstCB.CompareAndSwap(0, now)
		if errors.Is(err, wsactor.ErrTimeout) {
			timedOut.Add(1)
		} else {
			other.Add(1)
		}
		msg := "<nil>"
		if err != nil {
			msg = err.Error()
		}
		errMu.Lock()
		if _, ok := errs[msg]; ok || len(errs) < 8 {
			errs[msg]++
		}
		errMu.Unlock()
		if count.Add(1) == int64(n) {
			lastCB.Store(now)
			close(done)
		}
	}
	payload := json.RawMessage(impl.Small)

	runtime.GC()
	debug.FreeOSMemory()
	var ms0 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	rss0, g0 := load.RSS(), runtime.NumGoroutine()

	var full int64
	if f.pendingProfile != "" { // the issue loop only
		pf, err := os.Create(f.pendingProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			_ = pf.Close()
			return err
		}
		defer func() { _ = pf.Close() }()
	}
	t0 := time.Now()
	reqCtx := ctx
	if f.pendingShared {
		var cancel context.CancelFunc
		reqCtx, cancel = context.WithDeadline(ctx, t0.Add(f.pendingTimeout))
		defer cancel()
	}
	for range n {
		for {
			err := c.Go(reqCtx, payload, cb)
			if errors.Is(err, wsactor.ErrMailboxFull) {
				full++
				runtime.Gosched()
				continue
			}
			if err != nil {
				return fmt.Errorf("Conn.Go: %w", err)
			}
			break
		}
	}
	t1 := time.Now()
	if f.pendingProfile != "" {
		pprof.StopCPUProfile()
	}
	for c.Pending()+int(count.Load()) < n {
		time.Sleep(time.Millisecond)
	}
	t2 := time.Now()
	if count.Load() > 0 {
		return fmt.Errorf("requests ended before all were pending (issue took %v, timeout %v): raise -pending-timeout", t2.Sub(t0), f.pendingTimeout)
	}
	runtime.GC()
	var ms1 runtime.MemStats
	runtime.ReadMemStats(&ms1)
	rss1, g1 := load.RSS(), runtime.NumGoroutine()
	res := pendingResult{
		Requests: n, TimeoutS: f.pendingTimeout.Seconds(), SharedDeadline: f.pendingShared,
		WriteTimeoutS: f.pendingWriteTO.Seconds(),
		IssueS:        t1.Sub(t0).Seconds(), RegisterS: t2.Sub(t0).Seconds(),
		HeapPerPending:  float64(int64(ms1.HeapAlloc)-int64(ms0.HeapAlloc)) / float64(n),
		RSSPerPending:   float64(rss1-rss0) / float64(n),
		GoroutinesDelta: g1 - g0,
		MailboxFull:     full,
	}
	fmt.Fprintf(os.Stderr, "issued in %.2fs, all pending after %.2fs: heap %.0f B/pending, RSS %.0f B/pending\n",
		res.IssueS, res.RegisterS, res.HeapPerPending, res.RSSPerPending)

	firstDeadline := t0.Add(f.pendingTimeout)
	time.Sleep(time.Until(firstDeadline))
	cpu0 := load.CPUTime()
	select {
	case <-done:
	case <-time.After(f.pendingTimeout + 5*time.Minute):
		return fmt.Errorf("only %d of %d requests ended", count.Load(), n)
	}
	res.ExpiryCPUS = (load.CPUTime() - cpu0).Seconds()
	first, last := time.Unix(0, firstCB.Load()), time.Unix(0, lastCB.Load())
	res.FirstExpiryS = first.Sub(firstDeadline).Seconds()
	res.LastExpiryS = last.Sub(t1.Add(f.pendingTimeout)).Seconds()
	if f.pendingShared {
		res.LastExpiryS = last.Sub(firstDeadline).Seconds() // one deadline for all
	}
	res.ExpirySpanS = last.Sub(first).Seconds()
	res.TimedOut, res.Other = timedOut.Load(), other.Load()
	errMu.Lock()
	res.Errors = errs
	errMu.Unlock()

	rows := [][]string{
		{"measure", "value"},
		{"pending requests", fmt.Sprint(n)},
		{"issue (Conn.Go ×N)", fmt.Sprintf("%.2f s (%.0f /s)", res.IssueS, float64(n)/res.IssueS)},
		{"heap per pending request", fmt.Sprintf("%.0f B", res.HeapPerPending)},
		{"RSS per pending request", fmt.Sprintf("%.0f B", res.RSSPerPending)},
		{"goroutines while pending", fmt.Sprintf("%+d", res.GoroutinesDelta)},
		{"first expiry after its deadline", fmt.Sprintf("%.3f s", res.FirstExpiryS)},
		{"last expiry after the last deadline", fmt.Sprintf("%.3f s", res.LastExpiryS)},
		{"expiry span (first to last callback)", fmt.Sprintf("%.2f s", res.ExpirySpanS)},
		{"CPU from first deadline to last callback", fmt.Sprintf("%.2f s", res.ExpiryCPUS)},
		{"outcomes", fmt.Sprintf("%d ErrTimeout, %d other", res.TimedOut, res.Other)},
	}
	for msg, k := range res.Errors {
		rows = append(rows, []string{"  " + clip(msg, 70), fmt.Sprint(k)})
	}
	title := fmt.Sprintf("%d pending requests with a %v timeout, one connection", n, f.pendingTimeout)
	if f.pendingShared {
		title = fmt.Sprintf("%d pending requests sharing one ctx deadline %v ahead, one connection", n, f.pendingTimeout)
	}
	writeTable(os.Stdout, title, rows, false)
	if f.md {
		writeTable(os.Stdout, title, rows, true)
	}
	name := "pending.json"
	if f.pendingShared {
		name = "pending-shared.json"
	}
	out := outPath(f, name)
	b, err := json.MarshalIndent(map[string]any{"env": environment(), "result": res}, "", "  ")
	if err != nil {
		return err
	}
	fmt.Printf("\nwrote %s\n", out)
	return os.WriteFile(out, b, 0o644)
}

func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
