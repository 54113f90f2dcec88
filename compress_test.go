package wsactor_test

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/wsactor/wsactor"
)

// bigJSON is a JSON string of about n bytes that compresses as chat or game
// JSON does; i makes each one different.
func bigJSON(n, i int) string {
	var b strings.Builder
	for j := 0; b.Len() < n; j++ {
		fmt.Fprintf(&b, "msg %d: player %d at x=%d y=%d; ", i, j%17, j%101, j%37)
	}
	s, _ := json.Marshal(b.String()[:n])
	return string(s)
}

// countListener counts the bytes its connections read and write, in
// total and per connection (by the peer's address). A counted connection
// is not a syscall.Conn, so a Conn writes it through Write: every byte is
// seen.
type countListener struct {
	net.Listener
	in, out atomic.Int64
	conns   sync.Map // remote address → *countConn
}

func (l *countListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	cc := &countConn{Conn: c, l: l}
	l.conns.Store(c.RemoteAddr().String(), cc)
	return cc, nil
}

// conn returns the counters of the connection from addr.
func (l *countListener) conn(t testing.TB, addr net.Addr) *countConn {
	t.Helper()
	v, ok := l.conns.Load(addr.String())
	if !ok {
		t.Fatalf("no counted connection from %v", addr)
	}
	return v.(*countConn)
}

type countConn struct {
	net.Conn
	l       *countListener
	in, out atomic.Int64
}

func (c *countConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.in.Add(int64(n))
	c.l.in.Add(int64(n))
	return n, err
}

func (c *countConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.out.Add(int64(n))
	c.l.out.Add(int64(n))
	return n, err
}

// A Go client and server with WithCompression: 200 concurrent requests of
// 4 KiB, echoed, each complete exactly once with their own reply, the
// bytes are compressed on the wire both ways (counted on the server's
// socket), and both sides report Compressed.
func TestCompressionRequestsExactlyOnce(t *testing.T) {
	conns := make(chan *wsactor.Conn, 1)
	srv, err := wsactor.NewServer(wsactor.WithCompression(wsactor.Compression{}),
		wsactor.WithConnectHook(func(c *wsactor.Conn) { conns <- c }),
		wsactor.WithRequestHandler(func(_ context.Context, _ *wsactor.Conn, req wsactor.Request) (any, error) {
			return req.Data, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(srv)
	cl := &countListener{Listener: hs.Listener}
	hs.Listener = cl
	hs.Start()
	t.Cleanup(func() {
		_ = srv.Close()
		hs.Close()
	})
	c := dial(t, "ws"+strings.TrimPrefix(hs.URL, "http")+"/primus", wsactor.WithCompression(wsactor.Compression{Level: 6}))
	sc := recv(t, conns, "server conn")
	cc, err := c.Conn(ctxWait(t))
	if err != nil {
		t.Fatal(err)
	}
	if !sc.Compressed() || !cc.Compressed() {
		t.Fatalf("Compressed: server %v, client %v", sc.Compressed(), cc.Compressed())
	}
	const n, size = 200, 4096
	base, baseOut := cl.in.Load(), cl.out.Load()
	var wg sync.WaitGroup
	var outcomes atomic.Int32
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			msg := bigJSON(size, i)
			resp, err := c.Request(ctxWait(t), json.RawMessage(msg))
			outcomes.Add(1)
			switch {
			case err != nil:
				errs <- err
			case !bytes.Equal(resp.Data, []byte(msg)):
				errs <- fmt.Errorf("request %d: wrong reply %.40s…", i, resp.Data)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if outcomes.Load() != n {
		t.Fatalf("%d outcomes for %d requests", outcomes.Load(), n)
	}
	read, written := cl.in.Load()-base, cl.out.Load()-baseOut
	if read > n*size/3 || written > n*size/3 {
		t.Fatalf("the server read %d and wrote %d bytes for %d requests and replies of %d bytes: not compressed", read, written, n, size)
	}
	t.Logf("on the wire: %d bytes of requests, %d bytes of replies, for %d bytes each way", read, written, n*size)
}

// A broadcast to members with and without compression reaches them all,
// encoded once.
func TestCompressionBroadcast(t *testing.T) {
	srv, url, conns := roomServer(t, wsactor.WithCompression(wsactor.Compression{}))
	var ms []*member
	for i := range 4 {
		var opts []wsactor.Option
		if i%2 == 0 {
			opts = append(opts, wsactor.WithCompression(wsactor.Compression{}))
		}
		m := join(t, url, conns, nil, opts...)
		if m.sc.Compressed() != (i%2 == 0) {
			t.Fatalf("member %d: Compressed %v", i, m.sc.Compressed())
		}
		if err := m.sc.Join("room"); err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	msg := bigJSON(8000, 1)
	if res, err := srv.Broadcast("room", json.RawMessage(msg), nil); err != nil || res.Sent != 4 {
		t.Fatalf("%+v %v", res, err)
	}
	for i, m := range ms {
		if got := recv(t, m.got, "broadcast"); got != msg {
			t.Fatalf("member %d got %.40s…", i, got)
		}
	}
}

func TestCompressionOptionChecked(t *testing.T) {
	for _, z := range []wsactor.Compression{{Level: 10}, {Level: -1}, {Threshold: -1}} {
		if _, err := wsactor.NewServer(wsactor.WithCompression(z)); !errors.Is(err, wsactor.ErrInvalidOption) {
			t.Errorf("%+v: %v, want ErrInvalidOption", z, err)
		}
	}
}

// attackZipBomb (a TestHostile row, with WithCompression): a peer that
// negotiated compression sends a compressed frame of a few KiB that
// inflates to 1 MiB, twice the servers' WithMaxMessageSize: the server stops
// inflating at the limit and closes with 1009 and ErrTooLarge.
func attackZipBomb(e *hostileEnv) verdict {
	p, resp := e.upgrade("", http.Header{"Sec-WebSocket-Extensions": {"permessage-deflate; client_max_window_bits"}})
	if resp.StatusCode != http.StatusSwitchingProtocols {
		e.t.Fatalf("upgrade: %s", resp.Status)
	}
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.HasPrefix(ext, "permessage-deflate") {
		e.t.Fatalf("compression not negotiated: %q", ext)
	}
	sc := e.nextConn()
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestSpeed) // (BestCompression takes seconds under -race)
	_, _ = w.Write(make([]byte, 2*hostileMaxMessage))
	_ = w.Flush()
	f := wsFrame(true, opText, bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff}))
	f[0] |= 0x40 // RSV1: compressed
	return e.expect1009(p, sc, f)
}
