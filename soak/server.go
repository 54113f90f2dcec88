package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/wsactor/wsactor"
	"github.com/wsactor/wsactor/prom"
)

// serverSide is the soak's wsactor server: its listeners, its request and
// message handlers (which obey the ops clients ask for), the load it puts on
// its clients (server → client requests and messages), and its chaos.
//
// The handlers run on wsactor's goroutines; the driver and the request
// goroutines are counted in load; the http.Server goroutines in serve.
type serverSide struct {
	cfg *Config
	chk *checker
	pay *payloads
	led *ledger  // requests this server issues
	lat *latency // server → client echo round trips

	srv     *wsactor.Server
	opts    []wsactor.Option        // srv's, for the other nodes' servers
	metrics *prom.Metrics           // srv's (node 1's), served at /metrics
	ns      atomic.Pointer[nodeSet] // -nodes N: the cluster (nodes.go)
	hs      []*http.Server
	urls    []string

	serve sync.WaitGroup // http.Server.Serve
	load  sync.WaitGroup // driver and request goroutines
	sem   chan struct{}  // bounds the request goroutines

	// raw maps a remote address to its TCP socket (from ConnContext), so
	// that a connection can be reset under the library, as a network failure
	// or a load balancer would.
	raw sync.Map

	connects, disconnects              atomic.Int64
	heartbeatDrops                     atomic.Int64 // connections the heartbeat dropped (ErrHeartbeat)
	msgsIn, msgsOut, msgsRefused       atomic.Int64
	floods, floodSent, floodQueueFull  atomic.Int64
	rsts, ends, panicsAsked, msgPanics atomic.Int64

	badMu    sync.Mutex
	badKinds map[string]int64
}

func newServerSide(cfg *Config, chk *checker, pay *payloads, addrs []string) (*serverSide, error) {
	s := &serverSide{
		cfg:      cfg,
		chk:      chk,
		pay:      pay,
		led:      newLedger("server", chk),
		lat:      newLatency(),
		sem:      make(chan struct{}, 4096),
		badKinds: make(map[string]int64),
	}
	opts := []wsactor.Option{
		wsactor.WithRequestHandler(s.handle),
		wsactor.WithMessageHandler(s.onMessage),
		wsactor.WithErrorHook(func(_ *wsactor.Conn, err error) { s.bad(err) }),
		wsactor.WithConnectHook(s.onConnect),
		wsactor.WithDisconnectHook(s.onDisconnect),
		wsactor.WithRequestTimeout(cfg.Timeout),
		wsactor.WithPingInterval(cfg.Ping),
		wsactor.WithMaxMessageSize(cfg.maxMessage()),
		wsactor.WithMaxOutboundBytes(serverOutbound),
		wsactor.WithWriteTimeout(serverWriteTimeout),
		wsactor.WithMaxConnections(0), // the soak runs up to 100,000 connections
	}
	if cfg.Workers > 0 {
		opts = append(opts, wsactor.WithHandlerPool(cfg.Workers, 65536))
	}
	// The observer is node 1's alone: the other nodes' servers (opts) do
	// not count into the metrics of this one.
	s.metrics = prom.New()
	srv, err := wsactor.NewServer(append(slices.Clip(opts), wsactor.WithObserver(s.metrics))...)
	if err != nil {
		return nil, err
	}
	s.srv, s.opts = srv, opts
	s.metrics.Watch(srv)
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.metrics)
	mux := http.NewServeMux()
	mux.Handle("/primus", srv)
	mux.Handle("/primus/", srv)
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	for _, addr := range addrs {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			s.closeListeners()
			return nil, fmt.Errorf("soak: listen %s: %w", addr, err)
		}
		hs := s.httpServer(mux)
		s.hs = append(s.hs, hs)
		s.urls = append(s.urls, "ws://"+ln.Addr().String()+"/primus")
		s.serve.Add(1)
		go func() {
			defer s.serve.Done()
			_ = hs.Serve(ln)
		}()
	}
	if cfg.Nodes > 1 {
		ns, err := startNodes(s)
		if err != nil {
			_ = srv.Close()
			s.closeListeners()
			return nil, err
		}
		s.ns.Store(ns)
	}
	return s, nil
}

// httpServer serves h, keeping each connection's socket in s.raw.
func (s *serverSide) httpServer(h http.Handler) *http.Server {
	var errLog *log.Logger
	if s.cfg.Quiet {
		errLog = log.New(io.Discard, "", 0)
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          errLog,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			s.raw.Store(c.RemoteAddr().String(), c)
			return ctx
		},
		ConnState: func(c net.Conn, st http.ConnState) {
			if st == http.StateClosed {
				s.raw.Delete(c.RemoteAddr().String())
			}
		},
	}
}

// conns is the open connections of every node.
func (s *serverSide) conns() []*wsactor.Conn {
	if ns := s.ns.Load(); ns != nil {
		return ns.conns()
	}
	return s.srv.Conns()
}

// stats is the server's Stats, summed over the nodes.
func (s *serverSide) stats() wsactor.Stats {
	if ns := s.ns.Load(); ns != nil {
		return ns.stats()
	}
	return s.srv.Stats()
}

// The server's bounds for slow readers: a flood over serverOutbound fails
// with ErrWriteQueueFull, and a socket write blocked for serverWriteTimeout
// closes the connection.
const (
	serverOutbound     = 1 << 20
	serverWriteTimeout = 2 * time.Second
)

func (s *serverSide) closeListeners() {
	for _, hs := range s.hs {
		_ = hs.Close()
	}
	s.serve.Wait()
}

// shutdown stops the wsactor server within ctx, then the HTTP servers.
func (s *serverSide) shutdown(ctx context.Context) error {
	var nsErr error
	if ns := s.ns.Load(); ns != nil {
		nsErr = ns.close(ctx)
	}
	err := s.srv.Shutdown(ctx)
	s.closeListeners()
	return errors.Join(nsErr, err)
}

func (s *serverSide) onConnect(c *wsactor.Conn) {
	s.connects.Add(1)
	if s.cfg.Nodes > 1 {
		onConnectNode(c)
	}
}

func (s *serverSide) onDisconnect(c *wsactor.Conn, err error) {
	s.disconnects.Add(1)
	if errors.Is(err, wsactor.ErrHeartbeat) {
		s.heartbeatDrops.Add(1)
	}
	s.raw.Delete(c.RemoteAddr().String()) // hijacked: http.Server no longer tracks it
}

// bad counts bad input by kind (the error hook: must be quick).
func (s *serverSide) bad(err error) {
	k := badKind(err)
	s.badMu.Lock()
	s.badKinds[k]++
	s.badMu.Unlock()
}

func badKind(err error) string {
	for _, k := range []struct {
		err  error
		name string
	}{
		{wsactor.ErrMalformed, "malformed"},
		{wsactor.ErrInvalidUTF8, "invalid_utf8"},
		{wsactor.ErrNull, "null"},
		{wsactor.ErrMissingID, "missing_id"},
		{wsactor.ErrBadID, "bad_id"},
		{wsactor.ErrBinaryFrame, "binary"},
		{wsactor.ErrLateReply, "late_reply"},
		{wsactor.ErrUnknownReply, "unknown_reply"},
		{wsactor.ErrDuplicateID, "duplicate_id"},
		{wsactor.ErrHandlerPanic, "panic"},
		{wsactor.ErrTooLarge, "too_large"},
		{wsactor.ErrTooManyRestarts, "too_many_restarts"},
	} {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	return "other"
}

func (s *serverSide) badKindsSnapshot() map[string]int64 {
	s.badMu.Lock()
	defer s.badMu.Unlock()
	return maps.Clone(s.badKinds)
}

// handle answers a client's request as its op says.
func (s *serverSide) handle(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
	return answer(ctx, req, s.chk, "server", func(m reqMsg) bool {
		switch m.Op {
		case opAsk:
			s.issueOn(ctx, c, opEcho, 0, 0, 0, rand.New(rand.NewPCG(m.N, uint64(m.C))), false)
		case opClose:
			s.ends.Add(1)
			_ = c.Close()
		case opRst:
			s.rst(c)
		case opFlood:
			s.flood(c, m.MS)
		case opPrime:
			r := rand.New(rand.NewPCG(m.N, uint64(m.C)))
			if err := c.Send(plainMsg{M: 1, C: m.C, P: m.P}); err == nil {
				s.msgsOut.Add(1)
			}
			s.issueOn(ctx, c, opEcho, 0, 0, 0, r, false)
		default:
			return false
		}
		return true
	})
}

// onMessage receives a client's plain message.
func (s *serverSide) onMessage(_ *wsactor.Conn, msg json.RawMessage) {
	var m plainMsg
	if err := json.Unmarshal(msg, &m); err != nil || m.M == 0 {
		s.chk.fail("corrupt", "server received a plain message that is not a soak message: %.80s", msg)
		return
	}
	if m.Panic {
		panic("soak: chaos: message handler panic")
	}
	if checksum(m.P) != m.C {
		s.chk.fail("corrupt", "server received plain message %d with a payload that fails its checksum", m.M)
	}
	s.msgsIn.Add(1)
}

// rst resets c's TCP socket under the library (SO_LINGER 0, close).
func (s *serverSide) rst(c *wsactor.Conn) bool {
	v, ok := s.raw.Load(c.RemoteAddr().String())
	if !ok {
		return false
	}
	nc := v.(net.Conn)
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = nc.Close()
	s.rsts.Add(1)
	return true
}

// flood sends n plain messages of 64 KiB to c, for a client that stopped
// reading: the outbound queue fills (ErrWriteQueueFull) and a socket write
// may block long enough for the write timeout to close the connection.
func (s *serverSide) flood(c *wsactor.Conn, n int) {
	s.floods.Add(1)
	r := rand.New(rand.NewPCG(uint64(n), uint64(time.Now().UnixNano())))
	for range min(n, 256) {
		p := s.pay.get(r, 64<<10)
		err := c.Send(plainMsg{M: 1, C: checksum(p), Flood: true, P: p})
		switch {
		case err == nil:
			s.floodSent.Add(1)
		case errors.Is(err, wsactor.ErrWriteQueueFull):
			s.floodQueueFull.Add(1)
		default:
			return // the connection is closing
		}
	}
}

// drive puts the server → client load on every connection: ServerRate
// requests and MsgRate plain messages per connection per second.
func (s *serverSide) drive(ctx context.Context, seed int64) {
	defer s.load.Done()
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5e))
	const tick = 20 * time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	var conns []*wsactor.Conn
	var refreshed, asked time.Time
	var reqs, msgs float64
	last := time.Now()
	ns := s.ns.Load()
	for {
		var now time.Time
		select {
		case <-ctx.Done():
			return
		case now = <-t.C:
		}
		if now.Sub(refreshed) > 250*time.Millisecond {
			conns, refreshed = s.conns(), now
		}
		if ns != nil && now.Sub(asked) >= time.Second {
			asked = now
			s.load.Add(1)
			go func(seed uint64) {
				defer s.load.Done()
				ns.askRoom(ctx, rand.New(rand.NewPCG(seed, 0xa5)))
			}(rng.Uint64())
		}
		dt := now.Sub(last).Seconds()
		last = now
		n := len(conns)
		if n == 0 {
			continue
		}
		// At most a second's worth at once after a stall.
		reqs = min(reqs+s.cfg.ServerRate*float64(n)*dt, s.cfg.ServerRate*float64(n)+1)
		msgs = min(msgs+s.cfg.MsgRate*float64(n)*dt, s.cfg.MsgRate*float64(n)+1)
		for ; reqs >= 1; reqs-- {
			if ns != nil && rng.IntN(crossFraction) == 0 {
				ns.cross(rng)
				continue
			}
			op, ms, tmo, cancelAfter := pickOp(rng, s.cfg.Chaos, false)
			s.issueOn(ctx, conns[rng.IntN(n)], op, ms, tmo, cancelAfter, rng, true)
		}
		for ; msgs >= 1; msgs-- {
			s.send(conns[rng.IntN(n)], rng, false)
		}
	}
}

func (s *serverSide) send(c *wsactor.Conn, rng *rand.Rand, panicMsg bool) {
	p := s.pay.get(rng, s.pay.size(rng))
	if err := c.Send(plainMsg{M: 1, C: checksum(p), Panic: panicMsg, P: p}); err != nil {
		s.msgsRefused.Add(1)
		return
	}
	s.msgsOut.Add(1)
}

// issueOn asks c (a client) to do op. With async it returns at once: the
// request runs as a Go callback or on a goroutine of its own; otherwise it
// waits (a handler asking back).
func (s *serverSide) issueOn(ctx context.Context, c *wsactor.Conn, op string, ms int, tmo, cancelAfter time.Duration, rng *rand.Rand, async bool) {
	p := s.pay.get(rng, s.pay.size(rng))
	crc := checksum(p)
	useGo := async && tmo == 0 && cancelAfter == 0 && rng.IntN(2) == 0
	if async && !useGo {
		select {
		case s.sem <- struct{}{}:
		default:
			if tmo != 0 || cancelAfter != 0 {
				return // too many request goroutines: skip this one
			}
			useGo = true
		}
	}
	timeout := s.cfg.Timeout
	if tmo > 0 {
		timeout = tmo
	}
	e := s.led.begin(op, crc, timeout)
	m := reqMsg{Op: op, N: e.nonce, C: crc, MS: ms, P: p}
	if useGo {
		if err := c.Go(context.Background(), m, func(r wsactor.Response, err error) { s.done(e, r, err) }); err != nil {
			s.led.refuse(e, err)
		}
		return
	}
	run := func(ctx context.Context) {
		ctx, cancel := requestCtx(ctx, s.cfg.Timeout, tmo, cancelAfter)
		defer cancel()
		resp, err := c.Request(ctx, m)
		s.done(e, resp, err)
	}
	if !async {
		run(ctx)
		return
	}
	s.load.Add(1)
	go func() {
		defer s.load.Done()
		defer func() { <-s.sem }()
		run(context.Background())
	}()
}

func (s *serverSide) done(e *entry, r wsactor.Response, err error) {
	if c, first := s.led.end(e, r, err); first && c == clOK && e.op == opEcho {
		s.lat.record(time.Since(e.start))
	}
}

// chaosKinds are the server's chaos events.
var serverChaos = []string{"srv-panic-ask", "srv-msg-panic", "srv-rst", "srv-end"}

// chaos makes one server-side chaos event of the given kind on a random
// connection, and reports whether there was one to hit.
func (s *serverSide) chaos(kind string, rng *rand.Rand) bool {
	if slices.Contains(nodeChaos, kind) {
		return s.ns.Load().chaos(kind, rng)
	}
	conns := s.conns()
	if len(conns) == 0 {
		return false
	}
	c := conns[rng.IntN(len(conns))]
	switch kind {
	case "srv-panic-ask":
		s.panicsAsked.Add(1)
		s.issueOn(context.Background(), c, opPanic, 0, 0, 0, rng, true)
	case "srv-msg-panic":
		s.msgPanics.Add(1)
		s.send(c, rng, true)
	case "srv-rst":
		return s.rst(c)
	case "srv-end":
		s.ends.Add(1)
		_ = c.Close()
	}
	return true
}

// requestCtx is the ctx of one request: the request timeout, a shorter
// chaos timeout, or a cancel after a while.
func requestCtx(parent context.Context, timeout, tmo, cancelAfter time.Duration) (context.Context, context.CancelFunc) {
	switch {
	case tmo > 0:
		return context.WithTimeout(parent, tmo)
	case cancelAfter > 0:
		ctx, cancel := context.WithTimeout(parent, timeout)
		t := time.AfterFunc(cancelAfter, cancel)
		return ctx, func() { t.Stop(); cancel() }
	}
	return context.WithTimeout(parent, timeout)
}

// pickOp draws the next request's op. Without chaos every request is an
// echo; with it a few are slow, time out (a stall under a short ctx), are
// cancelled, fail, or (client → server only) panic or ask back.
func pickOp(rng *rand.Rand, chaos, toServer bool) (op string, ms int, tmo, cancelAfter time.Duration) {
	if !chaos {
		return opEcho, 0, 0, 0
	}
	x := rng.IntN(1000)
	switch {
	case x < 20:
		return opSlow, 20 + rng.IntN(180), 0, 0
	case x < 50:
		return opStall, 0, time.Duration(50+rng.IntN(250)) * time.Millisecond, 0
	case x < 60:
		return opStall, 0, 0, time.Duration(20+rng.IntN(80)) * time.Millisecond
	case x < 70:
		return opError, 0, 0, 0
	case toServer && x < 73:
		return opPanic, 0, 0, 0
	case toServer && x < 83:
		return opAsk, 0, 0, 0
	}
	return opEcho, 0, 0, 0
}
