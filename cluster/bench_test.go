package cluster_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lxzan/gws"
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

// counter counts frames read by raw gws clients and signals each time all
// n of them have one more.
type counter struct {
	gws.BuiltinEventHandler
	n   int64
	got atomic.Int64
	all chan struct{}
}

func (c *counter) OnMessage(_ *gws.Conn, m *gws.Message) {
	m.Close()
	if c.got.Add(1)%c.n == 0 {
		c.all <- struct{}{}
	}
}

// The cost of the NATS hop for a broadcast: a 100-byte message to a room
// of 1,000 members on node b, sent from node b (the local path) or from
// node a (one NATS message to b, which queues it to its members); ns/op is
// the time until the last member has read it.
//
//	go test -run '^$' -bench 'RoomBroadcast' -benchtime 200x -count 3 ./cluster
func BenchmarkRoomBroadcast(b *testing.B) {
	const members = 1000
	msg := json.RawMessage(`{"room":"lobby","from":"alice","text":"` + strings.Repeat("x", 59) + `"}`)
	for _, from := range []string{"local", "remote"} {
		b.Run("from="+from, func(b *testing.B) {
			_, nodes := clusterOf(b, "a", "b")
			joined := make(chan struct{}, members)
			stop := nodes[1].srv.WatchPresence(func(p wsactor.Presence) {
				if p.Kind == wsactor.Joined {
					joined <- struct{}{}
				}
			})
			defer stop()
			cnt := &counter{n: members, all: make(chan struct{}, 1)}
			var wg sync.WaitGroup
			var ws []*gws.Conn
			defer func() {
				for _, c := range ws {
					_ = c.NetConn().Close()
				}
				wg.Wait()
			}()
			done := make(chan struct{})
			defer close(done)
			go func() { // the server side joins each connection as it comes
				for {
					select {
					case c := <-nodes[1].conns:
						_ = c.Join("room")
					case <-done:
						return
					}
				}
			}()
			for range members {
				c, _, err := gws.NewClient(cnt, &gws.ClientOption{Addr: nodes[1].url, ReadBufferSize: 512})
				if err != nil {
					b.Fatal(err)
				}
				ws = append(ws, c)
				wg.Go(c.ReadLoop)
			}
			for range members {
				<-joined
			}
			flushAll(b, nodes...)
			sender := nodes[1].n
			if from == "remote" {
				sender = nodes[0].n
			}
			send := func() {
				if _, err := sender.Broadcast("room", msg, nil); err != nil {
					b.Fatal(err)
				}
				select {
				case <-cnt.all:
				case <-time.After(time.Minute):
					b.Fatalf("%d of %d delivered", cnt.got.Load()%members, members)
				}
			}
			send() // warm up
			for b.Loop() {
				send()
			}
		})
	}
}
