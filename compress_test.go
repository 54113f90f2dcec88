package wsactor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
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

type countListener struct {
	net.Listener
	in atomic.Int64
}

func (l *countListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countConn{c, l}, nil
}

type countConn struct {
	net.Conn
	l *countListener
}

func (c *countConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.l.in.Add(int64(n))
	return n, err
}

// A Go client and server with WithCompression: 200 concurrent requests of
// 4 KiB, echoed, each complete exactly once with their own reply, the
// client's bytes are compressed on the wire (counted on the server's
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
	base := cl.in.Load()
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
	if read := cl.in.Load() - base; read > n*size/3 {
		t.Fatalf("the server read %d bytes for %d requests of %d bytes: not compressed", read, n, size)
	} else {
		t.Logf("%d bytes on the wire for %d bytes of requests", read, n*size)
	}
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
