package impl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lxzan/gws"
	"github.com/wsactor/wsactor"
)

// The implementations, by name (the -impl flag of ./bench).
const (
	Raw     = "raw"
	Naive   = "naive"
	WSActor = "wsactor"
	// WSActorInline is wsactor with WithInlineHandlers on the server: the
	// echo handler runs on the connection's actor loop, not on the pool.
	WSActorInline = "wsactor-inline"
	// WSActorDeflate is wsactor with WithCompression on both sides
	// (permessage-deflate, level 1, threshold 512 B: the defaults).
	WSActorDeflate = "wsactor-deflate"
	Discard        = "discard" // server only: reads and drops every frame
)

// Impls lists the implementations compared, in table order.
var Impls = []string{Raw, Naive, WSActor, WSActorInline, WSActorDeflate}

// RequestTimeout bounds every request of the naive and wsactor clients.
const RequestTimeout = 30 * time.Second

var (
	// ErrUnknown: no implementation has that name.
	ErrUnknown = errors.New("impl: unknown implementation")
	// ErrClosed: the client's connection closed while a request waited.
	ErrClosed = errors.New("impl: connection closed")
)

// Server is one implementation's server side. It upgrades every request
// that reaches ServeHTTP, whatever its path.
type Server interface {
	http.Handler
	// Conns reports the open connections.
	Conns() int
	// Close closes every connection and waits for the goroutines the
	// server started.
	Close() error
}

// Client is one connection of an implementation's client side.
type Client interface {
	// RoundTrip sends payload (a JSON value), waits for the echo and
	// appends the echoed bytes to dst. It may be called concurrently: the
	// calls are the requests in flight on the connection.
	RoundTrip(ctx context.Context, payload, dst []byte) ([]byte, error)
	// Close closes the connection and waits for its goroutines.
	Close() error
}

// Known reports whether name is one of [Impls].
func Known(name string) bool {
	for _, n := range Impls {
		if n == name {
			return true
		}
	}
	return false
}

// NewServer returns the server of the named implementation (Raw, Naive,
// WSActor or Discard).
func NewServer(name string) (Server, error) {
	switch name {
	case Raw:
		return newGWSServer(rawEcho{}), nil
	case Naive:
		return newGWSServer(naiveServer{}), nil
	case Discard:
		return newGWSServer(discard{}), nil
	case WSActor:
		return newWSActorServer()
	case WSActorInline:
		return newWSActorServer(wsactor.WithInlineHandlers())
	case WSActorDeflate:
		return newWSActorServer(wsactor.WithCompression(wsactor.Compression{}))
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknown, name)
}

// Dial connects a client of the named implementation to url
// (ws://host:port/primus).
func Dial(ctx context.Context, name, url string) (Client, error) {
	switch name {
	case Raw:
		c := &rawClient{}
		if err := c.dial(ctx, url, c); err != nil {
			return nil, err
		}
		return c, nil
	case Naive:
		c := &naiveClient{pending: make(map[string]chan []byte)}
		if err := c.dial(ctx, url, c); err != nil {
			return nil, err
		}
		return c, nil
	case WSActor, WSActorInline:
		return dialWSActor(ctx, url)
	case WSActorDeflate:
		return dialWSActor(ctx, url, wsactor.WithCompression(wsactor.Compression{}))
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknown, name)
}

// Running is a server listening on loopback.
type Running struct {
	Server Server
	Addr   string // host:port
	URL    string // ws://host:port/primus

	hs   *http.Server
	done chan struct{}
}

// Start listens on addr (e.g. "127.0.0.1:0") and serves the named
// implementation at /primus. mount, if not nil, may add handlers to the mux
// (the benchmark's control endpoints).
func Start(name, addr string, mount func(*http.ServeMux)) (*Running, error) {
	srv, err := NewServer(name)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		_ = srv.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/primus", srv)
	mux.Handle("/primus/", srv)
	if mount != nil {
		mount(mux)
	}
	r := &Running{
		Server: srv,
		Addr:   ln.Addr().String(),
		URL:    "ws://" + ln.Addr().String() + "/primus",
		hs:     &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		done:   make(chan struct{}),
	}
	go func() {
		defer close(r.done)
		_ = r.hs.Serve(ln)
	}()
	return r, nil
}

// Close stops listening, closes every connection and waits for every
// goroutine of the server.
func (r *Running) Close() error {
	err := r.hs.Close()
	<-r.done
	return errors.Join(err, r.Server.Close())
}

// gwsServer is a plain gws server: the idiomatic setup from gws's README
// (NewUpgrader with default options, one ReadLoop goroutine per
// connection), keeping a set of connections only so that Close can end
// them.
type gwsServer struct {
	up *gws.Upgrader

	mu     sync.Mutex
	conns  map[*gws.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func newGWSServer(h gws.Event) *gwsServer {
	return &gwsServer{
		up:    gws.NewUpgrader(h, &gws.ServerOption{}),
		conns: make(map[*gws.Conn]struct{}),
	}
}

func (s *gwsServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := s.up.Upgrade(w, r)
	if err != nil {
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = c.NetConn().Close()
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		c.ReadLoop()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
}

func (s *gwsServer) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func (s *gwsServer) Close() error {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		_ = c.NetConn().Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// rawEcho writes every frame back from the read goroutine.
type rawEcho struct{ gws.BuiltinEventHandler }

func (rawEcho) OnMessage(c *gws.Conn, m *gws.Message) {
	_ = c.WriteMessage(m.Opcode, m.Bytes())
	_ = m.Close()
}

// discard reads and drops every frame: a peer that never answers.
type discard struct{ gws.BuiltinEventHandler }

func (discard) OnMessage(_ *gws.Conn, m *gws.Message) { _ = m.Close() }

// gwsClient is the connection shared by the raw and naive clients.
type gwsClient struct {
	gws.BuiltinEventHandler
	ws   *gws.Conn
	done chan struct{} // closed when the read loop has returned
}

func (c *gwsClient) dial(ctx context.Context, url string, h gws.Event) error {
	host, _, _ := strings.Cut(strings.TrimPrefix(url, "ws://"), "/")
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return err
	}
	ws, _, err := gws.NewClientFromConn(h, &gws.ClientOption{Addr: url}, nc)
	if err != nil {
		_ = nc.Close()
		return err
	}
	c.ws, c.done = ws, make(chan struct{})
	go func() {
		defer close(c.done)
		ws.ReadLoop()
	}()
	return nil
}

func (c *gwsClient) Close() error {
	if c.ws == nil {
		return nil
	}
	err := c.ws.NetConn().Close()
	<-c.done
	return err
}

// rawClient matches echoes to waiters in order: the echo server keeps the
// order of frames. wmu makes the order of the waiter queue the order of
// the writes; the read goroutine takes only qmu, never waiting for a write.
type rawClient struct {
	gwsClient
	wmu     sync.Mutex
	qmu     sync.Mutex
	waiters []*rawWaiter
	head    int
}

type rawWaiter struct {
	dst  []byte
	done chan struct{}
}

var rawWaiters = sync.Pool{New: func() any { return &rawWaiter{done: make(chan struct{}, 1)} }}

func (c *rawClient) RoundTrip(ctx context.Context, payload, dst []byte) ([]byte, error) {
	w := rawWaiters.Get().(*rawWaiter)
	w.dst = dst
	c.wmu.Lock()
	c.qmu.Lock()
	c.waiters = append(c.waiters, w)
	c.qmu.Unlock()
	err := c.ws.WriteMessage(gws.OpcodeText, payload)
	c.wmu.Unlock()
	if err != nil {
		return dst, err // w stays queued: the connection is dead
	}
	select {
	case <-w.done:
		out := w.dst
		w.dst = nil
		rawWaiters.Put(w)
		return out, nil
	case <-c.done:
		return dst, ErrClosed
	case <-ctx.Done():
		return dst, ctx.Err() // w stays queued: its echo may still come
	}
}

func (c *rawClient) OnMessage(_ *gws.Conn, m *gws.Message) {
	defer func() { _ = m.Close() }()
	c.qmu.Lock()
	if c.head == len(c.waiters) {
		c.qmu.Unlock()
		return // an echo nobody waits for
	}
	w := c.waiters[c.head]
	c.waiters[c.head] = nil
	c.head++
	if c.head == len(c.waiters) {
		c.waiters, c.head = c.waiters[:0], 0
	}
	c.qmu.Unlock()
	w.dst = append(w.dst, m.Bytes()...)
	w.done <- struct{}{}
}

// ParsePayload returns the named payload: "small" (~100 B) or "large"
// (~4 KiB), or a byte count for a JSON object of about that size.
func ParsePayload(name string) ([]byte, error) {
	switch name {
	case "small":
		return []byte(Small), nil
	case "large":
		return Large, nil
	}
	n, err := strconv.Atoi(name)
	if err != nil || n < len(Small) {
		return nil, fmt.Errorf("impl: payload %q: want small, large or a size >= %d", name, len(Small))
	}
	return jsonOfSize(n), nil
}

// Small is the small payload: a JSON object of about 100 bytes.
const Small = `{"op":"echo","user":"alice","seq":12345,"ok":true,"text":"hello over the wire, how are you today?"}`

// Large is the large payload: a JSON object of about 4 KiB.
var Large = jsonOfSize(4096)

// jsonOfSize builds a JSON object of at most n bytes (and close to it): a
// list of small records, the shape of a typical API reply.
func jsonOfSize(n int) []byte {
	b := []byte(`{"op":"echo","user":"alice","seq":12345,"items":[`)
	for i := 0; ; i++ {
		item := fmt.Sprintf(`{"id":%d,"name":"item-%d","tags":["red","blue"],"price":%d.25,"stock":true}`, i, i, i%97)
		if i > 0 {
			item = "," + item
		}
		if len(b)+len(item)+2 > n {
			break
		}
		b = append(b, item...)
	}
	return append(b, "]}"...)
}
