package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsactor/wsactor"
)

// fairResult is the measurement of -fairness.
type fairResult struct {
	Flood     int       `json:"flood"`      // connection A's requests, sent at once
	HandlerMS float64   `json:"handler_ms"` // each handler's run time
	Workers   int       `json:"workers"`    // the server's handler pool
	BMS       []float64 `json:"b_ms"`       // connection B's single request, one per round
	BMedianMS float64   `json:"b_median_ms"`
	BMaxMS    float64   `json:"b_max_ms"`
	AMedianMS float64   `json:"a_median_ms"` // A's whole flood, median over rounds
	Failed    int64     `json:"failed"`      // requests that did not get their answer
}

// fairnessMode measures how long one connection's single request waits
// while another connection floods the server's shared handler pool: A sends
// -fairness requests at once to a handler that takes -fair-handler; once
// the server has read them all, B sends one. A fair pool runs B's after
// about one handler time; a FIFO pool runs it after A's whole flood.
//
// Server and clients run in this process (the handlers sleep: the CPU is
// not what is measured).
func fairnessMode(f flags) error {
	n, d := f.fairness, f.fairHandler
	opts := []wsactor.Option{
		wsactor.WithRequestHandler(func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return req.Data, nil
		}),
		wsactor.WithMaxInbound(max(n, 1024)),
	}
	workers := max(256, 64*runtime.GOMAXPROCS(0)) // the default pool
	if f.fairWorkers > 0 {
		workers = f.fairWorkers
		opts = append(opts, wsactor.WithHandlerPool(workers, 65536))
	}
	srv, err := wsactor.NewServer(opts...)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv}
	go func() { _ = hs.Serve(ln) }()
	defer func() {
		_ = srv.Close()
		_ = hs.Close()
	}()
	url := "ws://" + ln.Addr().String() + "/primus"
	ctx := context.Background()
	dial := func() (*wsactor.Client, error) {
		return wsactor.Dial(ctx, url, wsactor.WithMaxPending(n+1), wsactor.WithRequestTimeout(time.Hour))
	}
	a, err := dial()
	if err != nil {
		return err
	}
	defer func() { _ = a.Close() }()
	b, err := dial()
	if err != nil {
		return err
	}
	defer func() { _ = b.Close() }()

	fmt.Printf("%s\nfairness: A floods %d requests, handler %v, %d workers; B sends 1 once the server has read A's\n",
		environment().String(), n, d, workers)
	res := fairResult{Flood: n, HandlerMS: ms(d), Workers: workers}
	var failed atomic.Int64
	var aTimes []float64
	for round := range f.fairRounds {
		before := srv.Stats().Received
		start := time.Now()
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				if r, err := a.Request(ctx, i); err != nil || string(r.Data) != fmt.Sprint(i) {
					failed.Add(1)
				}
			})
		}
		// Wait until the server has read A's flood (polled: this is a
		// measurement, not a test).
		for srv.Stats().Received-before < int64(n) {
			if time.Since(start) > time.Minute {
				return errors.New("fairness: the server did not read A's requests within a minute")
			}
			time.Sleep(time.Millisecond)
		}
		bStart := time.Now()
		if r, err := b.Request(ctx, "b"); err != nil || string(r.Data) != `"b"` {
			failed.Add(1)
		}
		bTook := time.Since(bStart)
		wg.Wait()
		aTook := time.Since(start)
		res.BMS = append(res.BMS, ms(bTook))
		aTimes = append(aTimes, ms(aTook))
		fmt.Printf("round %d: B %7.1f ms   A's flood %7.1f ms\n", round+1, ms(bTook), ms(aTook))
	}
	res.Failed = failed.Load()
	res.BMedianMS, res.BMaxMS = median(res.BMS), slices.Max(res.BMS)
	res.AMedianMS = median(aTimes)
	fmt.Printf("B's request: median %.1f ms, max %.1f ms (handler %v); A's flood: median %.1f ms; failed %d\n",
		res.BMedianMS, res.BMaxMS, d, res.AMedianMS, res.Failed)
	out := outPath(f, "fairness.json")
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, append(js, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Println("wrote", out)
	if res.Failed != 0 {
		return fmt.Errorf("fairness: %d requests failed", res.Failed)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}
