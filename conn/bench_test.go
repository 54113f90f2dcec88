package conn_test

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/lxzan/gws"

	"github.com/wsactor/wsactor/conn"
	"github.com/wsactor/wsactor/envelope"
)

var benchRequest = []byte(`{"plugin":"primus-responder","requestId":"f7dbef3f-c74e-4c08-9bd6-4dc13a595767","data":{"op":"echo","i":12345,"s":"hello"}}`)

// gwsEcho is a raw gws server handler: it writes every message back with
// WriteMessage from OnMessage (one write(2) per message).
type gwsEcho struct{ gws.BuiltinEventHandler }

func (gwsEcho) OnMessage(s *gws.Conn, m *gws.Message) {
	_ = s.WriteMessage(m.Opcode, m.Bytes())
	_ = m.Close()
}

func startGwsEcho(b *testing.B) string {
	up := gws.NewUpgrader(gwsEcho{}, &gws.ServerOption{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var socks []*gws.Conn
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sock, err := up.Upgrade(w, r)
		if err != nil {
			return
		}
		mu.Lock()
		socks = append(socks, sock)
		wg.Add(1)
		mu.Unlock()
		defer wg.Done()
		sock.ReadLoop()
	}))
	b.Cleanup(func() {
		mu.Lock()
		for _, s := range socks {
			_ = s.NetConn().Close()
		}
		mu.Unlock()
		wg.Wait()
		ts.Close()
	})
	return "ws" + strings.TrimPrefix(ts.URL, "http")
}

// connEcho answers every request with a response carrying the same data,
// encoded into a buffer it reuses (Handler calls are serial).
type connEcho struct {
	*recorder
	buf []byte
}

func (e *connEcho) OnEnvelope(c *conn.Conn, env envelope.Envelope) {
	if env.Kind == envelope.KindRequest {
		e.buf = envelope.AppendResponse(e.buf[:0], env.ID, env.Data)
		_ = c.Write(e.buf)
	}
}

// benchClient is a raw gws client that signals every message it receives.
type benchClient struct {
	gws.BuiltinEventHandler
	got    chan struct{}
	closed chan struct{}
}

func (c *benchClient) OnMessage(_ *gws.Conn, m *gws.Message) {
	_ = m.Close()
	c.got <- struct{}{}
}

func (c *benchClient) OnClose(*gws.Conn, error) { close(c.closed) }

func dialBench(b *testing.B, url string, buffer int) (*gws.Conn, *benchClient) {
	bc := &benchClient{got: make(chan struct{}, buffer), closed: make(chan struct{})}
	sock, _, err := gws.NewClient(bc, &gws.ClientOption{Addr: url})
	if err != nil {
		b.Fatal(err)
	}
	go sock.ReadLoop()
	b.Cleanup(func() {
		_ = sock.NetConn().Close()
		<-bc.closed
	})
	return sock, bc
}

// BenchmarkEcho is one request/response round trip over loopback, one in
// flight: raw gws echoing from OnMessage vs conn (decode, encode a response,
// Write through the flusher). The client is the same raw gws client.
func BenchmarkEcho(b *testing.B) {
	b.Run("gws", func(b *testing.B) { benchEcho(b, startGwsEcho(b), 1) })
	b.Run("conn", func(b *testing.B) { benchEcho(b, startConnEcho(b), 1) })
}

// BenchmarkEchoPipelined keeps 64 requests in flight: the client writes 64,
// then waits for 64 answers. ns/op is per request.
func BenchmarkEchoPipelined(b *testing.B) {
	b.Run("gws", func(b *testing.B) { benchEcho(b, startGwsEcho(b), 64) })
	b.Run("conn", func(b *testing.B) { benchEcho(b, startConnEcho(b), 64) })
}

func startConnEcho(b *testing.B) string {
	return startServer(b, conn.Options{}, &connEcho{recorder: newRecorder()}).url
}

func benchEcho(b *testing.B, url string, burst int) {
	sock, bc := dialBench(b, url, burst)
	b.ReportAllocs()
	b.SetBytes(int64(len(benchRequest)))
	n := 0
	for b.Loop() {
		if err := sock.WriteMessage(gws.OpcodeText, benchRequest); err != nil {
			b.Fatal(err)
		}
		if n++; n == burst {
			for range n {
				<-bc.got
			}
			n = 0
		}
	}
	for range n {
		<-bc.got
	}
}

// BenchmarkServerWrite is the cost per frame of a server pushing 128-byte
// frames to a reading client, until the client has them all: gws
// WriteMessage (blocking, one write(2) each) vs conn Write (copy into the
// queue; the flusher writes batches). For conn the loop retries on
// ErrWriteQueueFull, which is the backpressure a caller would see.
func BenchmarkServerWrite(b *testing.B) {
	frame := []byte(`"` + strings.Repeat("x", 126) + `"`)
	b.Run("gws", func(b *testing.B) {
		rs := startRawServer(b)
		_, bc := dialBench(b, rs.url, 1<<16)
		sock := recv(b, rs.socks, "server sock")
		benchPush(b, bc, frame, func(p []byte) error { return sock.WriteMessage(gws.OpcodeText, p) })
	})
	b.Run("conn", func(b *testing.B) {
		s := startServer(b, conn.Options{}, newRecorder())
		_, bc := dialBench(b, s.url, 1<<16)
		c := s.accept(b)
		benchPush(b, bc, frame, c.Write)
	})
}

func benchPush(b *testing.B, bc *benchClient, frame []byte, write func([]byte) error) {
	done := make(chan struct{})
	var n int
	var count sync.WaitGroup
	count.Add(1)
	go func() { // drain the client's signals
		defer count.Done()
		got := 0
		for {
			select {
			case <-bc.got:
				got++
			case <-done:
				for got < n {
					<-bc.got
					got++
				}
				return
			}
		}
	}()
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		for {
			err := write(frame)
			if err == nil {
				break
			}
			if !errors.Is(err, conn.ErrWriteQueueFull) {
				b.Fatal(err)
			}
			runtime.Gosched()
		}
		n++
	}
	close(done)
	count.Wait()
}

// BenchmarkWriteEnqueue is the cost of Write alone: the flusher is stalled
// (the peer does not read), so every Write only frames (and, as a client,
// masks) and copies into the queue. Every 262144 frames (32 MiB) the connection is
// replaced, off the clock.
func BenchmarkWriteEnqueue(b *testing.B) {
	frame := []byte(`{"plugin":"primus-responder","responseId":"f7dbef3f-c74e-4c08-9bd6-4dc13a595767","data":{"op":"echo","i":12345}}`)
	opts := conn.Options{MaxMessageSize: 16 << 20, MaxOutboundBytes: 64 << 20}
	for _, role := range []string{"server", "client"} {
		b.Run(role, func(b *testing.B) {
			var url string
			var srv *server
			if role == "server" {
				srv = startServer(b, opts, newRecorder())
				url = srv.url
			} else {
				url = startStalledServer(b)
			}
			var c *conn.Conn
			fresh := func() {
				if c != nil {
					_ = c.Drop()
					<-c.Done()
				}
				if role == "server" {
					_ = rawHandshake(b, url)
					c = srv.accept(b)
				} else {
					c = dial(b, url, opts, newRecorder())
				}
				if err := c.Write(make([]byte, 8<<20)); err != nil { // stall the flusher
					b.Fatal(err)
				}
			}
			fresh()
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			n := 0
			for b.Loop() {
				if n++; n == 1<<18 {
					b.StopTimer()
					fresh()
					n = 0
					b.StartTimer()
				}
				if err := c.Write(frame); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// startStalledServer accepts WebSocket handshakes by hand and then never
// reads, so a client's writes stall.
func startStalledServer(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	var socks []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			socks = append(socks, nc)
			mu.Unlock()
			req, err := http.ReadRequest(bufio.NewReader(nc))
			if err != nil {
				continue
			}
			sum := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
			_, _ = fmt.Fprintf(nc, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
				base64.StdEncoding.EncodeToString(sum[:]))
		}
	}()
	b.Cleanup(func() {
		_ = ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, nc := range socks {
			_ = nc.Close()
		}
	})
	return "ws://" + ln.Addr().String() + "/primus"
}
