package main_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wsactor/wsactor/bench/internal/impl"
	"github.com/wsactor/wsactor/bench/internal/load"
)

// The Go benchmarks: the three implementations side by side, in one
// process, one connection, sequential and with 64 requests in flight, small
// (~100 B) and large (~4 KiB) payloads. -count repeats the whole function,
// so the implementations interleave. Compare with benchstat:
//
//	go test -run '^$' -bench . -count 8 ./bench | tee /tmp/rt.txt
//	benchstat -col /impl /tmp/rt.txt
//
// go run ./bench measures the same with server and client in separate
// processes, plus 1,000 connections, latency percentiles and CPU time.

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func start(tb testing.TB, name string) *impl.Running {
	tb.Helper()
	r, err := impl.Start(name, "127.0.0.1:0", nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := r.Close(); err != nil {
			tb.Errorf("close %s server: %v", name, err)
		}
	})
	return r
}

func dial(tb testing.TB, name, url string) impl.Client {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := impl.Dial(ctx, name, url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// TestEcho runs each implementation briefly in a closed loop on two
// connections with four requests in flight each: every reply must be the
// request's payload (load.Run checks it) and the server must see both
// connections.
func TestEcho(t *testing.T) {
	for _, name := range impl.Impls {
		for _, pl := range []string{"small", "large"} {
			t.Run(name+"/"+pl, func(t *testing.T) {
				payload, err := impl.ParsePayload(pl)
				if err != nil {
					t.Fatal(err)
				}
				r := start(t, name)
				clients := []impl.Client{dial(t, name, r.URL), dial(t, name, r.URL)}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				res, err := load.Run(ctx, load.Config{
					Clients: clients, InFlight: 4, Payload: payload,
					Warmup: 20 * time.Millisecond, Duration: 80 * time.Millisecond,
				})
				if err != nil {
					t.Fatal(err)
				}
				if res.RoundTrips == 0 || len(res.Latencies) != int(res.RoundTrips) {
					t.Fatalf("%d round trips, %d latencies", res.RoundTrips, len(res.Latencies))
				}
				// A server registers a connection before it reads from it.
				if got := r.Server.Conns(); got != 2 {
					t.Errorf("server has %d connections, want 2", got)
				}
			})
		}
	}
}

func BenchmarkRoundTrip(b *testing.B) {
	for _, pl := range []string{"small", "large"} {
		payload, err := impl.ParsePayload(pl)
		if err != nil {
			b.Fatal(err)
		}
		for _, name := range impl.Impls {
			b.Run(fmt.Sprintf("impl=%s/inflight=1/payload=%s", name, pl), func(b *testing.B) {
				c := dial(b, name, start(b, name).URL)
				ctx := context.Background()
				buf := make([]byte, 0, len(payload))
				b.SetBytes(int64(len(payload)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := c.RoundTrip(ctx, payload, buf[:0]); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		for _, name := range impl.Impls {
			b.Run(fmt.Sprintf("impl=%s/inflight=64/payload=%s", name, pl), func(b *testing.B) {
				c := dial(b, name, start(b, name).URL)
				ctx := context.Background()
				b.SetBytes(int64(len(payload)))
				b.ReportAllocs()
				// RunParallel starts parallelism × GOMAXPROCS goroutines:
				// 64 requests in flight when GOMAXPROCS divides 64.
				b.SetParallelism((64 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
				b.RunParallel(func(pb *testing.PB) {
					buf := make([]byte, 0, len(payload))
					for pb.Next() {
						if _, err := c.RoundTrip(ctx, payload, buf[:0]); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}
