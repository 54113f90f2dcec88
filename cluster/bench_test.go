package cluster_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"

	"github.com/wsactor/wsactor"
)

// The cost of the NATS hop: a request by key answered on the same node
// (the local path: no NATS) against one answered on another node (two NATS
// messages, through an embedded NATS server on 127.0.0.1), one at a time
// (latency) and 64 in flight (throughput), in one run:
//
//	go test -run '^$' -bench 'KeyRequest' -count 6 ./cluster | benchstat -col /path -
//
// Both go through Node.RequestKey to a Go client that echoes.
func BenchmarkKeyRequest(b *testing.B) {
	echo := func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) { return req.Data, nil }
	payload := json.RawMessage(`{"op":"echo","user":"alice","seq":12345,"text":"hello over the wire, how are you doing today?"}`)
	for _, path := range []string{"local", "remote"} {
		for _, inflight := range []int{1, 64} {
			b.Run("path="+path+"/inflight="+strconv.Itoa(inflight), func(b *testing.B) {
				_, nodes := clusterOf(b, "a", "b")
				for _, nd := range nodes {
					if err := nd.dial(b, echo).sc.Bind("user:" + nd.name); err != nil {
						b.Fatal(err)
					}
				}
				flushAll(b, nodes...)
				a, key := nodes[0], "user:a"
				if path == "remote" {
					key = "user:b"
				}
				ctx := context.Background()
				b.ReportAllocs()
				if inflight == 1 {
					for b.Loop() {
						if _, err := a.n.RequestKey(ctx, key, payload); err != nil {
							b.Fatal(err)
						}
					}
					return
				}
				b.SetParallelism(32) // 64 goroutines on 2 Ps
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := a.n.RequestKey(ctx, key, payload); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}
