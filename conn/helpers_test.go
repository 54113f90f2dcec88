package conn_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lxzan/gws"
	"go.uber.org/goleak"

	"github.com/wsactor/wsactor/conn"
	"github.com/wsactor/wsactor/envelope"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const waitFor = 5 * time.Second

// recv returns the next value from ch or fails the test after waitFor.
func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitFor):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func waitDone(t testing.TB, c *conn.Conn) {
	t.Helper()
	recv(t, c.Done(), "Done")
}

// event is a copy of an envelope (the original aliases a reused buffer).
type event struct {
	kind envelope.Kind
	id   string
	data string
}

// recorder is a conn.Handler that records what it gets on channels.
type recorder struct {
	opened chan *conn.Conn
	envs   chan event
	bad    chan error
	closed chan error
	// onEnv, when set, runs first in OnEnvelope (it may panic).
	onEnv func(c *conn.Conn, env envelope.Envelope)
}

func newRecorder() *recorder {
	return &recorder{
		opened: make(chan *conn.Conn, 1),
		envs:   make(chan event, 20000),
		bad:    make(chan error, 100),
		closed: make(chan error, 1),
	}
}

func (r *recorder) OnOpen(c *conn.Conn) {
	select {
	case r.opened <- c:
	default: // a recorder shared by several conns reports the first
	}
}

func (r *recorder) OnEnvelope(c *conn.Conn, env envelope.Envelope) {
	if r.onEnv != nil {
		r.onEnv(c, env)
	}
	r.envs <- event{kind: env.Kind, id: string(env.ID), data: string(env.Data)}
}

func (r *recorder) OnBadInput(_ *conn.Conn, err error) { r.bad <- err }

func (r *recorder) OnClose(_ *conn.Conn, err error) {
	select {
	case r.closed <- err:
	default: // a recorder shared by several conns reports the first
	}
}

func (r *recorder) nextEnv(t testing.TB) event { t.Helper(); return recv(t, r.envs, "OnEnvelope") }
func (r *recorder) nextBad(t testing.TB) error { t.Helper(); return recv(t, r.bad, "OnBadInput") }
func (r *recorder) closeErr(t testing.TB) error {
	t.Helper()
	return recv(t, r.closed, "OnClose")
}

// server is an httptest server whose handler upgrades with conn and serves.
type server struct {
	url   string // ws://127.0.0.1:port/primus
	conns chan *conn.Conn
}

func startServer(t testing.TB, opts conn.Options, h conn.Handler) *server {
	t.Helper()
	return startServerOn(t, opts, h, nil)
}

// startServerOn is startServer whose listener is wrapped by wrap (nil: as
// it is).
func startServerOn(t testing.TB, opts conn.Options, h conn.Handler, wrap func(net.Listener) net.Listener) *server {
	t.Helper()
	up, err := conn.NewUpgrader(opts)
	if err != nil {
		t.Fatal(err)
	}
	s := &server{conns: make(chan *conn.Conn, 16)}
	var mu sync.Mutex
	var all []*conn.Conn
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, h)
		if err != nil {
			return
		}
		mu.Lock()
		all = append(all, c)
		mu.Unlock()
		s.conns <- c
		c.Serve()
	}))
	if wrap != nil {
		ts.Listener = wrap(ts.Listener)
	}
	ts.Start()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range all {
			_ = c.Drop()
			waitDone(t, c)
		}
		ts.Close()
	})
	s.url = "ws" + strings.TrimPrefix(ts.URL, "http") + "/primus"
	return s
}

func (s *server) accept(t testing.TB) *conn.Conn {
	t.Helper()
	return recv(t, s.conns, "server conn")
}

// dial connects a conn client and serves it in a goroutine.
func dial(t testing.TB, url string, opts conn.Options, h conn.Handler) *conn.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c, _, err := conn.Dial(ctx, url, nil, h, opts)
	if err != nil {
		t.Fatal(err)
	}
	go c.Serve()
	t.Cleanup(func() {
		_ = c.Drop()
		waitDone(t, c)
	})
	return c
}

// pair is a connected conn server and conn client.
type pair struct {
	srv, cli       *conn.Conn
	srvRec, cliRec *recorder
}

func newPair(t testing.TB, sopts, copts conn.Options) *pair {
	t.Helper()
	return newPairWith(t, sopts, copts, newRecorder(), newRecorder())
}

func newPairWith(t testing.TB, sopts, copts conn.Options, srvRec, cliRec *recorder) *pair {
	t.Helper()
	p := &pair{srvRec: srvRec, cliRec: cliRec}
	s := startServer(t, sopts, p.srvRec)
	p.cli = dial(t, s.url, copts, p.cliRec)
	p.srv = s.accept(t)
	recv(t, p.srvRec.opened, "server OnOpen")
	recv(t, p.cliRec.opened, "client OnOpen")
	return p
}

// rawClient is a plain gws client, to send what conn never sends.
type rawClient struct {
	sock   *gws.Conn
	texts  chan string
	pongs  chan string
	closed chan error
}

func (r *rawClient) OnOpen(*gws.Conn)               {}
func (r *rawClient) OnClose(_ *gws.Conn, err error) { r.closed <- err }
func (r *rawClient) OnPing(s *gws.Conn, p []byte)   { _ = s.WritePong(p) }
func (r *rawClient) OnPong(_ *gws.Conn, p []byte)   { r.pongs <- string(p) }
func (r *rawClient) OnMessage(_ *gws.Conn, m *gws.Message) {
	r.texts <- m.Data.String()
	_ = m.Close()
}

func dialRaw(t testing.TB, url string) *rawClient {
	t.Helper()
	r := &rawClient{texts: make(chan string, 100), pongs: make(chan string, 10), closed: make(chan error, 1)}
	sock, _, err := gws.NewClient(r, &gws.ClientOption{Addr: url})
	if err != nil {
		t.Fatal(err)
	}
	r.sock = sock
	go sock.ReadLoop()
	t.Cleanup(func() {
		_ = sock.NetConn().Close()
		recv(t, r.closed, "raw client OnClose")
	})
	return r
}

func (r *rawClient) text(t testing.TB, s string) {
	t.Helper()
	if err := r.sock.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

// rawServer is a plain gws server, to see exactly what a conn client sends.
type rawServer struct {
	url    string
	socks  chan *gws.Conn
	texts  chan string
	closed chan error
}

func (r *rawServer) OnOpen(*gws.Conn)               {}
func (r *rawServer) OnClose(_ *gws.Conn, err error) { r.closed <- err }
func (r *rawServer) OnPing(*gws.Conn, []byte)       {}
func (r *rawServer) OnPong(*gws.Conn, []byte)       {}
func (r *rawServer) OnMessage(_ *gws.Conn, m *gws.Message) {
	r.texts <- m.Data.String()
	_ = m.Close()
}

func startRawServer(t testing.TB) *rawServer {
	t.Helper()
	r := &rawServer{socks: make(chan *gws.Conn, 4), texts: make(chan string, 100), closed: make(chan error, 4)}
	up := gws.NewUpgrader(r, nil)
	var mu sync.Mutex
	var all []*gws.Conn
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		sock, err := up.Upgrade(w, req)
		if err != nil {
			return
		}
		mu.Lock()
		all = append(all, sock)
		mu.Unlock()
		r.socks <- sock
		sock.ReadLoop()
	}))
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, sock := range all {
			_ = sock.NetConn().Close()
			recv(t, r.closed, "raw server OnClose")
		}
		ts.Close()
	})
	r.url = "ws" + strings.TrimPrefix(ts.URL, "http") + "/primus"
	return r
}

// rawHandshake opens a TCP connection, completes the WebSocket handshake by
// hand and returns the socket, which the caller may then leave unread.
func rawHandshake(t testing.TB, wsURL string) net.Conn {
	t.Helper()
	u, err := url.Parse(wsURL)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_, err = fmt.Fprintf(nc, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", u.Path, u.Host)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake status %d", resp.StatusCode)
	}
	return nc
}
