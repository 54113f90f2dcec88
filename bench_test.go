package wsactor_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"

	"github.com/lxzan/gws"
	"github.com/wsactor/wsactor"
)

// The round-trip benchmarks come in pairs measured in the same run: raw gws
// echo (the ceiling: no envelope, no ids, no actor) and wsactor, one
// connection, sequential and with 64 requests in flight. Compare them with
//
//	go test -run '^$' -bench 'Loopback' -count 6 . | benchstat -col /impl -
//
// (benchstat: go run golang.org/x/perf/cmd/benchstat@latest).

const benchPayload = `{"op":"echo","user":"alice","seq":12345,"text":"hello over the wire, how are you doing today?"}`

// rawEcho is a gws server that writes every text frame back.
type rawEcho struct{ gws.BuiltinEventHandler }

func (rawEcho) OnMessage(c *gws.Conn, m *gws.Message) {
	_ = c.WriteMessage(m.Opcode, m.Bytes())
	m.Close()
}

// rawClient sends a frame and waits for the echo; waiters are served in
// order (the echo server keeps order).
type rawClient struct {
	gws.BuiltinEventHandler
	mu      sync.Mutex
	waiters []chan struct{}
}

func (r *rawClient) OnMessage(c *gws.Conn, m *gws.Message) {
	m.Close()
	r.mu.Lock()
	ch := r.waiters[0]
	r.waiters = r.waiters[1:]
	r.mu.Unlock()
	ch <- struct{}{}
}

func (r *rawClient) roundTrip(ws *gws.Conn, payload []byte, ch chan struct{}) error {
	r.mu.Lock()
	r.waiters = append(r.waiters, ch)
	err := ws.WriteMessage(gws.OpcodeText, payload) // under the lock: keeps waiter order = send order
	r.mu.Unlock()
	if err != nil {
		return err
	}
	<-ch
	return nil
}

func startRawEcho(b *testing.B) (*gws.Conn, *rawClient) {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	up := gws.NewUpgrader(rawEcho{}, &gws.ServerOption{})
	var wg sync.WaitGroup
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r)
		if err != nil {
			return
		}
		wg.Go(c.ReadLoop)
	})}
	wg.Go(func() { _ = hs.Serve(ln) })
	rc := &rawClient{}
	ws, _, err := gws.NewClient(rc, &gws.ClientOption{Addr: "ws://" + ln.Addr().String() + "/"})
	if err != nil {
		b.Fatal(err)
	}
	wg.Go(ws.ReadLoop)
	b.Cleanup(func() {
		_ = ws.NetConn().Close()
		_ = hs.Close()
		wg.Wait()
	})
	return ws, rc
}

func echoHandler(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
	return req.Data, nil
}

func BenchmarkLoopback(b *testing.B) {
	for _, p := range []struct{ name, data string }{{"small", benchPayload}, {"4KiB", benchPayload4K}} {
		b.Run("payload="+p.name, func(b *testing.B) { benchLoopback(b, p.data) })
	}
}

// benchPayload4K is a JSON object of about 4 KiB shaped like an API reply (a
// list of small records), as the bench program's "large" payload.
var benchPayload4K = func() string {
	s := `{"op":"echo","user":"alice","seq":12345,"items":[`
	for i := 0; ; i++ {
		item := `{"id":` + strconv.Itoa(i) + `,"name":"item-` + strconv.Itoa(i) + `","tags":["red","blue"],"price":` + strconv.Itoa(i%97) + `.25,"stock":true}`
		if i > 0 {
			item = "," + item
		}
		if len(s)+len(item)+2 > 4096 {
			return s + "]}"
		}
		s += item
	}
}()

func benchLoopback(b *testing.B, data string) {
	payload := []byte(data)
	raw := json.RawMessage(data)
	b.Run("impl=rawgws/inflight=1", func(b *testing.B) {
		ws, rc := startRawEcho(b)
		ch := make(chan struct{}, 1)
		b.ReportAllocs()
		for b.Loop() {
			if err := rc.roundTrip(ws, payload, ch); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=wsactor/inflight=1", func(b *testing.B) {
		_, url := startServer(b, wsactor.WithRequestHandler(echoHandler))
		cl := dial(b, url)
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cl.Request(ctx, raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=wsactor-traceparent/inflight=1", func(b *testing.B) {
		// The cost of a W3C traceparent on every request (and in the
		// handler's ctx): sent, decoded, copied, validated.
		_, url := startServer(b, wsactor.WithRequestHandler(echoHandler))
		cl := dial(b, url)
		ctx := wsactor.WithTraceparent(context.Background(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cl.Request(ctx, raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=rawgws/inflight=64", func(b *testing.B) {
		ws, rc := startRawEcho(b)
		b.ReportAllocs()
		b.SetParallelism(32) // 64 goroutines on 2 Ps
		b.RunParallel(func(pb *testing.PB) {
			ch := make(chan struct{}, 1)
			for pb.Next() {
				if err := rc.roundTrip(ws, payload, ch); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("impl=wsactor/inflight=64", func(b *testing.B) {
		_, url := startServer(b, wsactor.WithRequestHandler(echoHandler))
		cl := dial(b, url)
		ctx := context.Background()
		b.ReportAllocs()
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := cl.Request(ctx, raw); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
