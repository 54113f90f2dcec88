package wsactor_test

// Hostile input over real sockets. TestHostile opens real TCP connections to
// a Server on 127.0.0.1 and sends, row by row, what a hostile or broken peer
// might: bad JSON, bad frames, bad ids, forged replies, floods, stalls,
// refused upgrades, mass resets. For each row it checks the documented
// outcome (a close code, an error reply, an error hook call, an HTTP status),
// that nothing panicked, that goroutines and heap come back to their
// baseline, and that a control connection on the same server kept getting
// correct answers within a round-trip budget throughout.
//
// Run with -v for a table of the measurements.
//
// Environment:
//
//   - WSACTOR_HOSTILE_RTT: the control connection's round-trip budget
//     (default 100ms). It is a measurement that can fail. Under the race
//     detector, which slows everything 2–20× and shares the CPU with the
//     other packages' tests, the budget is 3× (the latency promise itself is
//     checked by ./test.sh's separate run of this test without -race, alone).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsactor/wsactor"
	"github.com/wsactor/wsactor/envelope"
)

// Budgets of the table. The bad inputs are bounded (counts, paced floods)
// so that the test itself does not saturate the server's CPU.
const (
	hostileMaxMessage   = 512 << 10              // the servers' WithMaxMessageSize, unless a row keeps the library default
	hostileReadHeader   = 300 * time.Millisecond // the http.Server's ReadHeaderTimeout (slowloris)
	hostilePing         = 150 * time.Millisecond // WithPingInterval of the heartbeat rows: a silent peer is dropped within 3 intervals
	hostileWriteTimeout = 300 * time.Millisecond // WithWriteTimeout of the flood row
	hostileFrameTimeout = 300 * time.Millisecond // item 2's deadline for a started frame, as the row configures it
	hostileDropSlack    = 3 * time.Second        // allowance over a configured deadline before a drop counts as late
	hostileHeapSlack    = 1 << 20                // heap after a row may exceed its baseline by this much
	controlEvery        = 10 * time.Millisecond  // the control connection asks this often
)

// hostileRTT is the control connection's round-trip budget.
func hostileRTT(t *testing.T) time.Duration {
	d := 100 * time.Millisecond
	if s := os.Getenv("WSACTOR_HOSTILE_RTT"); s != "" {
		var err error
		if d, err = time.ParseDuration(s); err != nil || d <= 0 {
			t.Fatalf("WSACTOR_HOSTILE_RTT=%q: want a positive duration such as 250ms", s)
		}
	}
	if raceDetector {
		d *= 3
	}
	return d
}

type hostileRow struct {
	name        string
	opts        []wsactor.Option // on top of the base options
	librarySize bool             // leave WithMaxMessageSize at the library default
	sendBuffer  int              // the server sockets' SO_SNDBUF when not 0
	panics      int              // user-code panics the row provokes on purpose (error hook)
	attack      func(e *hostileEnv) verdict
}

// verdict is what a row observed.
type verdict struct {
	outcome string        // the documented outcome seen: close code, error reply code, HTTP status, hook error
	dropped time.Duration // how long the server took to drop the bad peer; 0: kept, by design
}

func TestHostile(t *testing.T) {
	if testing.Short() {
		t.Skip("the hostile table takes about half a minute")
	}
	logs := captureLog(t)
	rtt := hostileRTT(t)
	var table []string
	for _, row := range hostileRows() {
		pre := runtime.NumGoroutine()
		ran := t.Run(row.name, func(t *testing.T) {
			m := runHostileRow(t, row, rtt, logs)
			table = append(table, m.String())
		})
		// The row's server and control client are closed: no goroutine
		// of theirs is left either.
		if !ran {
			continue
		}
		if n := settleGoroutines(pre); n > pre {
			t.Errorf("%s: %d goroutines after the server closed, %d before the row\n%s", row.name, n, pre, goroutineDump())
		}
	}
	t.Logf("hostile table (Δ against the row's baseline; heap peak: sampled live+unswept objects, held: live after GC at the attack's peak, after: live after GC once the peers are gone):\n%-34s %-40s %9s %8s %5s %15s %22s\n%s",
		"row", "outcome", "dropped", "ctl max", "ctl n", "goroutines b/pk/af", "heap Δ peak/held/after",
		strings.Join(table, "\n"))
}

// measurement is one line of the table.
type measurement struct {
	row                  string
	v                    verdict
	ctlMax               time.Duration
	ctlN                 int
	gBase, gPeak, gAfter int
	hBase                uint64
	hPeak, hHeld, hAfter uint64
}

func (m measurement) String() string {
	drop := "kept"
	if m.v.dropped > 0 {
		drop = m.v.dropped.Round(time.Millisecond).String()
	}
	delta := func(h uint64) string {
		if h <= m.hBase {
			return "0"
		}
		return fmt.Sprintf("%.0fK", float64(h-m.hBase)/1024)
	}
	outcome := m.v.outcome
	if len(outcome) > 40 {
		outcome = outcome[:39] + "…"
	}
	return fmt.Sprintf("%-34s %-40s %9s %8s %5d %15s %22s", m.row, outcome, drop,
		m.ctlMax.Round(100*time.Microsecond), m.ctlN,
		fmt.Sprintf("%d/%d/%d", m.gBase, m.gPeak, m.gAfter),
		delta(m.hPeak)+"/"+delta(m.hHeld)+"/"+delta(m.hAfter))
}

// runHostileRow builds a server for row, measures the baseline, runs the
// control connection and the attack, and checks that everything came back.
func runHostileRow(t *testing.T, row hostileRow, rtt time.Duration, logs *syncBuffer) measurement {
	e := newHostileEnv(t, row)
	m := measurement{row: row.name}
	logMark := logs.Len()

	// Baseline: the server with the control connection open, before any
	// traffic.
	m.gBase = runtime.NumGoroutine()
	m.hBase = liveHeap()

	ctl := e.startControl(rtt)
	smp := startSampler()
	e.sampler = smp
	// The control connection answers before the attack starts and again
	// after the server dropped the bad peers: it spans the whole row.
	e.eventually("the control connection's first answer", func() bool { return ctl.answered.Load() >= 1 || ctl.ended() })

	m.v = row.attack(e)
	if !e.snapped {
		e.snapshot()
	}
	m.hHeld = e.held
	e.closePeers()
	e.releaseHandlers()

	// The server forgets every bad peer; nothing is left in progress.
	e.eventually("the server to hold only the control connection", func() bool {
		st := e.srv.Stats()
		return st.Conns == 1 && st.InProgress == 0 && e.running.Load() == 0
	})
	after := ctl.answered.Load() + 1
	e.eventually("the control connection's answer after the row", func() bool { return ctl.answered.Load() >= after || ctl.ended() })
	m.ctlMax, m.ctlN = ctl.stop(t)
	m.gPeak, m.hPeak = smp.stop()

	// Goroutines back to the baseline (pool workers leave after a second
	// idle), then the heap.
	if m.gAfter = settleGoroutines(m.gBase); m.gAfter > m.gBase {
		t.Errorf("goroutines: %d after the row, baseline %d\n%s", m.gAfter, m.gBase, goroutineDump())
	}
	m.hAfter = liveHeap()
	if m.hAfter > m.hBase+hostileHeapSlack {
		t.Errorf("heap: %d bytes live after the row, baseline %d (+%d allowed)", m.hAfter, m.hBase, hostileHeapSlack)
	}

	// No panic anywhere: gws and net/http recover theirs and log them, the
	// actor turns its own into restarts, user code into hook errors.
	if s := logs.From(logMark); strings.Contains(s, "panic") {
		t.Errorf("a panic was logged:\n%s", s)
	}
	st := e.srv.Stats()
	if st.Restarts != 0 || st.HandlerPanics != 0 {
		t.Errorf("restarts %d, handler panics %d: want none", st.Restarts, st.HandlerPanics)
	}
	if n := e.hook.count(wsactor.ErrHandlerPanic); n != row.panics {
		t.Errorf("the error hook saw %d panics, want %d: %v", n, row.panics, e.hook.matching(wsactor.ErrHandlerPanic))
	}
	// Exactly once, for the server's own requests.
	if ended := st.Replied + st.RemoteErrors + st.TimedOut + st.Canceled + st.Failed; st.Requests != ended || st.Pending != 0 {
		t.Errorf("server ledger: %d requests, %d ended, %d pending", st.Requests, ended, st.Pending)
	}
	t.Logf("%s: %s", row.name, m.v.outcome)
	return m
}

// hostileEnv is one row's server, control connection and bad peers.
type hostileEnv struct {
	t       *testing.T
	srv     *wsactor.Server
	url     string // ws://127.0.0.1:port/primus
	addr    string // 127.0.0.1:port
	conns   chan *wsactor.Conn
	control *wsactor.Client
	ctlConn atomic.Pointer[wsactor.Conn] // the control's server side: its handlers are not counted in running
	hook    hookLog
	msgs    chan string

	running, maxRunning atomic.Int64 // request handlers running now, at most
	handled             atomic.Int64 // request handlers that returned
	release             chan struct{}
	releaseOnce         sync.Once

	mu    sync.Mutex
	peers []*wsPeer

	sampler *sampler
	snapped bool
	held    uint64
	aliveN  int
}

func newHostileEnv(t *testing.T, row hostileRow) *hostileEnv {
	e := &hostileEnv{
		t:       t,
		conns:   make(chan *wsactor.Conn, 1024),
		msgs:    make(chan string, 4096),
		release: make(chan struct{}),
	}
	opts := []wsactor.Option{
		wsactor.WithRequestHandler(e.handle),
		wsactor.WithMessageHandler(func(c *wsactor.Conn, msg json.RawMessage) {
			select {
			case e.msgs <- string(msg):
			default:
				t.Errorf("message channel full")
			}
		}),
		wsactor.WithErrorHook(func(c *wsactor.Conn, err error) { e.hook.add(err) }),
		wsactor.WithConnectHook(func(c *wsactor.Conn) {
			select {
			case e.conns <- c:
			default:
			}
		}),
	}
	if !row.librarySize {
		opts = append(opts, wsactor.WithMaxMessageSize(hostileMaxMessage))
	}
	opts = append(opts, row.opts...)
	srv, err := wsactor.NewServer(opts...)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	mux := http.NewServeMux()
	mux.Handle("/primus", srv)
	mux.Handle("/primus/", srv)
	hs := httptest.NewUnstartedServer(mux)
	if row.sendBuffer > 0 {
		hs.Listener = sndbufListener{hs.Listener, row.sendBuffer}
	}
	// As the README recommends: a slowloris peer cannot hold a connection
	// (and its goroutine) with a request it never finishes.
	hs.Config.ReadHeaderTimeout = hostileReadHeader
	hs.Start()
	t.Cleanup(func() {
		e.releaseHandlers()
		if err := srv.Close(); err != nil {
			t.Errorf("server Close: %v", err)
		}
		hs.Close()
	})
	e.addr = strings.TrimPrefix(hs.URL, "http://")
	e.url = "ws://" + e.addr + "/primus"

	// The control connection: a wsactor client, as a user would have. It
	// passes the authentication hook of the auth row.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	cl, err := wsactor.Dial(ctx, e.url+"?token=good")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	e.control = cl
	e.ctlConn.Store(e.nextConn()) // the control's server side
	return e
}

// handle is the server's request handler. Ops: add (a+b), echo, hold (until
// the row releases or ctx ends), block (until ctx ends).
func (e *hostileEnv) handle(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
	if c != e.ctlConn.Load() { // the peers' handlers, which the caps bound
		n := e.running.Add(1)
		for {
			m := e.maxRunning.Load()
			if n <= m || e.maxRunning.CompareAndSwap(m, n) {
				break
			}
		}
		defer e.running.Add(-1)
	}
	defer e.handled.Add(1)
	var o op
	if err := req.Decode(&o); err != nil {
		return nil, &wsactor.RemoteError{Code: wsactor.CodeBadRequest, Message: err.Error()}
	}
	switch o.Op {
	case "add":
		return o.A + o.B, nil
	case "echo":
		return req.Data, nil
	case "hold":
		select {
		case <-e.release:
			return "held", nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	case "block":
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return nil, &wsactor.RemoteError{Code: "unknown_op", Message: o.Op}
}

func (e *hostileEnv) releaseHandlers() { e.releaseOnce.Do(func() { close(e.release) }) }

// nextConn returns the server side of the next connection accepted.
func (e *hostileEnv) nextConn() *wsactor.Conn { return recv(e.t, e.conns, "server conn") }

// eventually polls cond until it holds, failing the row after the deadline.
func (e *hostileEnv) eventually(what string, cond func() bool) {
	e.t.Helper()
	if cond() {
		return
	}
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(wait)
	for {
		select {
		case <-tick.C:
			if cond() {
				return
			}
		case <-deadline:
			e.t.Fatalf("timed out waiting for %s (stats %+v)", what, e.srv.Stats())
		}
	}
}

// waitHook waits until the error hook has seen n errors matching target.
func (e *hostileEnv) waitHook(target error, n int) {
	e.t.Helper()
	e.eventually(fmt.Sprintf("%d × %v at the error hook", n, target), func() bool { return e.hook.count(target) >= n })
}

// snapshot records the heap held while the attack is at its peak (the bad
// peers still connected). A row calls it at that moment; otherwise it is
// taken when the attack returns.
func (e *hostileEnv) snapshot() {
	e.snapped = true
	e.held = liveHeap()
	e.sampler.note()
}

// sndbufListener sets the send buffer of the sockets it accepts.
type sndbufListener struct {
	net.Listener
	size int
}

func (l sndbufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(l.size)
	}
	return c, err
}

// ---------------------------------------------------------------------------
// The control connection

type control struct {
	stopc    chan struct{}
	done     chan struct{}
	answered atomic.Int64 // correct answers in time so far
	max      time.Duration
	n        int
	failure  error
}

// startControl asks the server {"op":"add"} every controlEvery on the
// control connection; every answer must be right and arrive within rtt.
func (e *hostileEnv) startControl(rtt time.Duration) *control {
	c := &control{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		tick := time.NewTicker(controlEvery)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-c.stopc:
				return
			case <-tick.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			start := time.Now()
			r, err := e.control.Request(ctx, op{Op: "add", A: i, B: 1})
			took := time.Since(start)
			cancel()
			c.n++
			c.max = max(c.max, took)
			switch {
			case err != nil:
				c.failure = fmt.Errorf("control request %d: %w", i, err)
			case checkInt(r, i+1) != nil:
				c.failure = fmt.Errorf("control request %d: %w", i, checkInt(r, i+1))
			case took > rtt:
				c.failure = fmt.Errorf("control request %d took %v, over the %v budget (WSACTOR_HOSTILE_RTT)", i, took, rtt)
			}
			if c.failure != nil {
				return
			}
			c.answered.Add(1)
		}
	}()
	return c
}

// ended reports whether the control connection gave up (a failure).
func (c *control) ended() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *control) stop(t *testing.T) (time.Duration, int) {
	close(c.stopc)
	<-c.done
	if c.failure != nil {
		t.Error(c.failure)
	}
	return c.max, c.n
}

// ---------------------------------------------------------------------------
// Measurements

// liveHeap returns the live heap after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC() // a second cycle empties sync.Pools' victim caches
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// sampler records the most goroutines and heap objects seen during a row.
type sampler struct {
	mu     sync.Mutex
	gPeak  int
	hPeak  uint64
	stopc  chan struct{}
	done   chan struct{}
	sample []metrics.Sample
}

func startSampler() *sampler {
	s := &sampler{stopc: make(chan struct{}), done: make(chan struct{}),
		sample: []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			s.note()
			select {
			case <-s.stopc:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *sampler) note() {
	g := runtime.NumGoroutine()
	s.mu.Lock()
	defer s.mu.Unlock()
	metrics.Read(s.sample)
	s.gPeak = max(s.gPeak, g)
	s.hPeak = max(s.hPeak, s.sample[0].Value.Uint64())
}

func (s *sampler) stop() (int, uint64) {
	close(s.stopc)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gPeak, s.hPeak
}

// settleGoroutines polls until at most n goroutines run, or the deadline
// passes, and returns the count.
func settleGoroutines(n int) int {
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	g := runtime.NumGoroutine()
	for g > n && time.Now().Before(deadline) {
		<-tick.C
		g = runtime.NumGoroutine()
	}
	return g
}

func goroutineDump() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// hookLog records what the error hook was told.
type hookLog struct {
	mu   sync.Mutex
	errs []error
}

func (h *hookLog) add(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.errs) < 100000 {
		h.errs = append(h.errs, err)
	}
}

func (h *hookLog) count(target error) int { return len(h.matching(target)) }

func (h *hookLog) matching(target error) []error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []error
	for _, err := range h.errs {
		if errors.Is(err, target) {
			out = append(out, err)
		}
	}
	return out
}

// syncBuffer collects the standard logger's output (gws and net/http log
// the panics they recover there).
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Len() int { b.mu.Lock(); defer b.mu.Unlock(); return b.buf.Len() }

func (b *syncBuffer) From(i int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()[i:]
}

func captureLog(t *testing.T) *syncBuffer {
	b := new(syncBuffer)
	prev := log.Writer()
	log.SetOutput(io.MultiWriter(b, prev))
	t.Cleanup(func() { log.SetOutput(prev) })
	return b
}

// ---------------------------------------------------------------------------
// A raw WebSocket peer: a TCP connection on which the test writes whatever
// bytes it likes. No goroutine of its own: the test reads when it expects
// something.

type wsPeer struct {
	nc net.Conn
	br *bufio.Reader
}

const (
	opCont   = 0x0
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
)

// tcp opens a TCP connection to the server and registers it for closing.
func (e *hostileEnv) tcp() *wsPeer {
	e.t.Helper()
	nc, err := net.DialTimeout("tcp", e.addr, wait)
	if err != nil {
		e.t.Fatal(err)
	}
	p := &wsPeer{nc: nc, br: bufio.NewReaderSize(nc, 64<<10)}
	e.mu.Lock()
	e.peers = append(e.peers, p)
	e.mu.Unlock()
	return p
}

func (e *hostileEnv) closePeers() {
	e.mu.Lock()
	peers := e.peers
	e.peers = nil
	e.mu.Unlock()
	for _, p := range peers {
		_ = p.nc.Close()
	}
}

// upgrade sends a WebSocket upgrade request with the extra headers and
// returns the response; on 101 the peer is ready for frames.
func (e *hostileEnv) upgrade(query string, h http.Header) (*wsPeer, *http.Response) {
	e.t.Helper()
	p := e.tcp()
	var key [16]byte
	binary.BigEndian.PutUint64(key[:], uint64(time.Now().UnixNano()))
	k := base64.StdEncoding.EncodeToString(key[:])
	var b strings.Builder
	fmt.Fprintf(&b, "GET /primus%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n", query, e.addr, k)
	for name, vs := range h {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", name, v)
		}
	}
	b.WriteString("\r\n")
	_ = p.nc.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(p.nc, b.String()); err != nil {
		e.t.Fatal(err)
	}
	resp, err := http.ReadResponse(p.br, &http.Request{Method: "GET"})
	if err != nil {
		e.t.Fatal(err)
	}
	_ = p.nc.SetDeadline(time.Time{})
	if resp.StatusCode == http.StatusSwitchingProtocols {
		sum := sha1.Sum([]byte(k + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		if got := resp.Header.Get("Sec-WebSocket-Accept"); got != base64.StdEncoding.EncodeToString(sum[:]) {
			e.t.Fatalf("Sec-WebSocket-Accept %q", got)
		}
	}
	return p, resp
}

// dial opens a WebSocket connection and returns it with its server side.
func (e *hostileEnv) dial() (*wsPeer, *wsactor.Conn) {
	e.t.Helper()
	p, resp := e.upgrade("", nil)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		e.t.Fatalf("upgrade: %s", resp.Status)
	}
	return p, e.nextConn()
}

var maskKey = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// wsHeader is a client frame header (masked) announcing n payload bytes.
func wsHeader(fin bool, opcode byte, n int) []byte {
	b0 := opcode
	if fin {
		b0 |= 0x80
	}
	h := []byte{b0, 0x80}
	switch {
	case n < 126:
		h[1] |= byte(n)
	case n < 1<<16:
		h[1] |= 126
		h = binary.BigEndian.AppendUint16(h, uint16(n))
	default:
		h[1] |= 127
		h = binary.BigEndian.AppendUint64(h, uint64(n))
	}
	return append(h, maskKey[:]...)
}

// wsFrame is a complete masked client frame.
func wsFrame(fin bool, opcode byte, payload []byte) []byte {
	f := wsHeader(fin, opcode, len(payload))
	start := len(f)
	f = append(f, payload...)
	for i := range payload {
		f[start+i] ^= maskKey[i%4]
	}
	return f
}

func (p *wsPeer) write(b []byte) error {
	_ = p.nc.SetWriteDeadline(time.Now().Add(wait))
	_, err := p.nc.Write(b)
	return err
}

func (p *wsPeer) send(t testing.TB, opcode byte, payload string) {
	t.Helper()
	if err := p.write(wsFrame(true, opcode, []byte(payload))); err != nil {
		t.Fatal(err)
	}
}

func (p *wsPeer) text(t testing.TB, payload string) { t.Helper(); p.send(t, opText, payload) }

// next reads the next frame from the server within d.
func (p *wsPeer) next(d time.Duration) (opcode byte, payload []byte, err error) {
	_ = p.nc.SetReadDeadline(time.Now().Add(d))
	var h [2]byte
	if _, err = io.ReadFull(p.br, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var x [2]byte
		if _, err = io.ReadFull(p.br, x[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(x[:]))
	case 127:
		var x [8]byte
		if _, err = io.ReadFull(p.br, x[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(x[:])
	}
	if h[1]&0x80 != 0 {
		return 0, nil, errors.New("the server masked a frame")
	}
	if n > 16<<20 {
		return 0, nil, fmt.Errorf("a %d-byte frame from the server", n)
	}
	payload = make([]byte, n)
	if _, err = io.ReadFull(p.br, payload); err != nil {
		return 0, nil, err
	}
	return h[0] & 0x0f, payload, nil
}

// read returns the next text frame.
func (p *wsPeer) read(t testing.TB) string {
	t.Helper()
	op, payload, err := p.next(wait)
	if err != nil {
		t.Fatalf("reading a frame: %v", err)
	}
	if op != opText {
		t.Fatalf("frame of opcode %d (%q), want text", op, payload)
	}
	return string(payload)
}

// closed reads until the server closes: the close frame's code, or 1006
// when the connection ended without one (EOF or reset). It skips data
// frames.
func (p *wsPeer) closed(t testing.TB) uint16 {
	t.Helper()
	for {
		op, payload, err := p.next(wait)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the server did not close the connection: %v", err)
			}
			return 1006
		}
		if op == opClose {
			if len(payload) < 2 {
				return 1005
			}
			return binary.BigEndian.Uint16(payload)
		}
	}
}

// reset aborts the connection with a TCP RST.
func (p *wsPeer) reset() {
	if tc, ok := p.nc.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = p.nc.Close()
}

func req(id, data string) string {
	return `{"plugin":"primus-responder","requestId":` + id + `,"data":` + data + `}`
}

func reply(id, data string) string {
	return `{"plugin":"primus-responder","responseId":` + id + `,"data":` + data + `}`
}

func cancelOf(id string) string { return `{"plugin":"primus-responder","cancelId":` + id + `}` }

const add12 = `{"op":"add","a":1,"b":2}`

// stillServes asks p's connection one request (id "alive-N") and expects
// its answer as the next frame: nothing was answered for the bad input
// sent before, and the connection still works.
func (e *hostileEnv) stillServes(p *wsPeer) {
	e.t.Helper()
	e.aliveN++
	id := `"alive-` + strconv.Itoa(e.aliveN) + `"`
	p.text(e.t, req(id, add12))
	if got, want := p.read(e.t), reply(id, "3"); got != want {
		e.t.Fatalf("after bad input: got %s, want %s", got, want)
	}
}

// decodeReply decodes a reply frame.
type wireReply struct {
	ID    json.RawMessage `json:"responseId"`
	Data  json.RawMessage `json:"data"`
	Error *struct {
		Code string `json:"code"`
	} `json:"error"`
}

func parseReply(t testing.TB, frame string) wireReply {
	t.Helper()
	var r wireReply
	if err := json.Unmarshal([]byte(frame), &r); err != nil || r.ID == nil {
		t.Fatalf("not a reply: %s (%v)", frame, err)
	}
	return r
}

// ---------------------------------------------------------------------------
// The rows

func hostileRows() []hostileRow {
	return []hostileRow{
		{name: "malformed JSON", attack: badFrames(opText, wsactor.ErrMalformed,
			`{not json`, `[1,2`, `{"a":}`, `{} {}`, `"unterminated`, `tru`, `{"plugin":"primus-responder","requestId":"x",}`, `01`, `"\x"`)},
		{name: "empty frame", attack: badFrames(opText, wsactor.ErrEmpty, ``, ` `, "\r\n\t")},
		{name: "top-level null", attack: badFrames(opText, wsactor.ErrNull, `null`, ` null`, "null\n")},
		{name: "binary frames", attack: badFrames(opBinary, wsactor.ErrBinaryFrame,
			"\x01\x02\xff", ``, req(`"in-binary"`, add12), `"primus::id::"`)},
		{name: "invalid UTF-8", attack: badFrames(opText, wsactor.ErrInvalidUTF8,
			"\"\xff\"", "{\"k\xfe\":1}", req("\"\xc0\xaf\"", add12), req(`"u"`, "\"\xed\xa0\x80\""), "\"\xe2\x82\"", "\"primus::id::\xff\"")},
		{name: "ids of every JSON type and length", attack: attackIDs},
		{name: "replies for ids never sent", attack: attackUnknownReplies},
		{name: "replies for another conn's ids", attack: attackForeignReplies},
		{name: "duplicate request ids", attack: attackDuplicates},
		{name: "frame over the size limit", attack: attackOversize(hostileMaxMessage + 1)},
		{name: "fragments over the size limit", attack: attackFragments},
		{name: "default size limit ≤ 1 MiB", librarySize: true, attack: attackOversize(1<<20 + 1)},
		{name: "frame over the default size limit", librarySize: true, attack: attackOversize(wsactor.DefaultMaxMessageSize + 1)},
		{name: "header-only frame (heartbeat)", opts: []wsactor.Option{wsactor.WithPingInterval(hostilePing)},
			attack: attackHeaderOnly(3*hostilePing+hostileDropSlack, 1006, wsactor.ErrHeartbeat)},
		{name: "header-only frame (frame deadline)", opts: []wsactor.Option{wsactor.WithFrameTimeout(hostileFrameTimeout)},
			// Heartbeats stay off: the frame deadline alone drops the
			// peer, without a close frame (1006), as ErrFrameTimeout.
			attack: attackHeaderOnly(hostileFrameTimeout+hostileDropSlack, 1006, wsactor.ErrFrameTimeout)},
		{name: "100,000-deep nesting", attack: badFramesPaced(3, 20*time.Millisecond, opText, wsactor.ErrMalformed,
			deep(100000), `{"plugin":"other","data":`+deep(100000)+`}`, `"primus::id::"`+deep(1))},
		{name: "100,000-deep request", attack: attackDeepRequest},
		{name: "request flood, replies unread", opts: []wsactor.Option{wsactor.WithWriteTimeout(hostileWriteTimeout), wsactor.WithMaxOutboundBytes(256 << 10)},
			// Small socket buffers make the stall come after hundreds
			// of KiB instead of megabytes: the flood stays small.
			sendBuffer: 16 << 10, attack: attackUnreadFlood},
		{name: "flood over the in-flight cap",
			opts: []wsactor.Option{wsactor.WithMaxInbound(32)}, attack: attackOverInflight(32)},
		{name: "request+cancel flood",
			opts: []wsactor.Option{wsactor.WithMaxInbound(16)}, attack: attackCancelFlood(16)},
		{name: "peer never answers pings", opts: []wsactor.Option{wsactor.WithPingInterval(hostilePing)}, attack: attackSilent},
		{name: "slowloris upgrade", attack: attackSlowloris},
		{name: "upgrade from a forbidden Origin", attack: attackOrigin},
		{name: "upgrades over WithMaxConnections", opts: []wsactor.Option{wsactor.WithMaxConnections(3)}, attack: attackMaxConns(3)},
		{name: "upgrade failing the auth hook", opts: []wsactor.Option{wsactor.WithAuthenticate(hostileAuth)}, panics: 1,
			attack: attackAuth},
		{name: "500 connections reset mid-request", attack: attackResets(500),
			// Enough workers for every held request and the control
			// connection's: with the default 256 the held handlers would
			// take every worker and the control's request would wait in
			// the pool's queue.
			opts: []wsactor.Option{wsactor.WithHandlerPool(600, 1024)}},
		{name: "odd primus:: strings", attack: attackPrimusStrings},
		{name: "WebSocket protocol violations", attack: attackProtocol},
		{name: "zip bomb (compression on)", opts: []wsactor.Option{wsactor.WithCompression(wsactor.Compression{})}, attack: attackZipBomb}, // compress_test.go
	}
}

// deep is n nested arrays.
func deep(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }

// badFrames sends each frame (bounded: 20 rounds) on one connection; each
// must reach the error hook as want, get no reply, and leave the
// connection serving.
func badFrames(opcode byte, want error, frames ...string) func(e *hostileEnv) verdict {
	return badFramesPaced(20, 0, opcode, want, frames...)
}

// badFramesPaced is badFrames with a number of rounds, and with pace > 0
// one frame per pace, each sent once the previous one was rejected (for
// frames that cost the server a lot of CPU).
func badFramesPaced(rounds int, pace time.Duration, opcode byte, want error, frames ...string) func(e *hostileEnv) verdict {
	return func(e *hostileEnv) verdict {
		p, sc := e.dial()
		var tick <-chan time.Time
		if pace > 0 {
			tk := time.NewTicker(pace)
			defer tk.Stop()
			tick = tk.C
		}
		sent := 0
		for range rounds {
			for _, f := range frames {
				p.send(e.t, opcode, f)
				if sent++; tick != nil {
					e.waitHook(want, sent)
					<-tick
				}
			}
		}
		e.waitHook(want, rounds*len(frames))
		e.stillServes(p) // no reply to any of them came first
		if n := e.hook.count(want); n != rounds*len(frames) {
			e.t.Fatalf("the error hook saw %d × %v, want %d", n, want, rounds*len(frames))
		}
		if sc.Err() != nil {
			e.t.Fatalf("the connection closed: %v", sc.Err())
		}
		if st := e.srv.Stats(); st.BadInput != int64(rounds*len(frames)) {
			e.t.Fatalf("BadInput %d, want %d", st.BadInput, rounds*len(frames))
		}
		return verdict{outcome: fmt.Sprintf("kept; %d × %v", rounds*len(frames), want)}
	}
}

// attackIDs sends requests with ids of every JSON type and length: usable
// ids are answered verbatim, the others reach the error hook unanswered.
func attackIDs(e *hostileEnv) verdict {
	p, _ := e.dial()
	cases := []struct {
		id   string
		want error // nil: answered with the id verbatim
	}{
		{`"x"`, nil},
		{`"6e8bc430-9c3a-11d9-9669-0800200c9a66"`, nil},
		{`"` + strings.Repeat("a", envelope.MaxIDLen-2) + `"`, nil},
		{`"é✓😀"`, nil},
		{`"a\"b\\c\u0000\ud800"`, nil},
		{`"primus::id::"`, nil},
		{`7`, nil}, {`-1`, nil}, {`1.5`, nil}, {`1e400`, nil}, {`-0.5e-3`, nil},
		{`123456789012345678901234567890`, nil},
		{`"` + strings.Repeat("a", envelope.MaxIDLen-1) + `"`, wsactor.ErrBadID},
		{`"` + strings.Repeat("b", 100<<10) + `"`, wsactor.ErrBadID},
		{strings.Repeat("9", 300), wsactor.ErrBadID},
		{`true`, wsactor.ErrBadID}, {`{}`, wsactor.ErrBadID}, {`[]`, wsactor.ErrBadID},
		{`{"requestId":1}`, wsactor.ErrBadID}, {`[1]`, wsactor.ErrBadID},
		{`""`, wsactor.ErrMissingID}, {`0`, wsactor.ErrMissingID}, {`-0.0`, wsactor.ErrMissingID},
		{`1e-400`, wsactor.ErrMissingID}, {`null`, wsactor.ErrMissingID}, {`false`, wsactor.ErrMissingID},
	}
	counts := map[error]int{}
	answered := 0
	for _, c := range cases {
		p.text(e.t, req(c.id, add12))
		if c.want == nil {
			if got, want := p.read(e.t), reply(c.id, "3"); got != want {
				e.t.Fatalf("id %.40s: got %.80s, want %.80s", c.id, got, want)
			}
			answered++
			continue
		}
		counts[c.want]++
		e.waitHook(c.want, counts[c.want])
		e.stillServes(p) // and nothing was answered for it
	}
	return verdict{outcome: fmt.Sprintf("kept; %d ids echoed, %d refused", answered, len(cases)-answered)}
}

// attackUnknownReplies answers requests that were never made.
func attackUnknownReplies(e *hostileEnv) verdict {
	p, sc := e.dial()
	frames := []struct {
		f    string
		want error // nil: dropped silently (a cancel for nothing)
	}{
		{reply(`"6e8bc430-9c3a-11d9-9669-0800200c9a66"`, `1`), wsactor.ErrLateReply},
		{reply(`"not-a-uuid"`, `1`), wsactor.ErrUnknownReply},
		{reply(`12`, `{"x":1}`), wsactor.ErrUnknownReply},
		{`{"plugin":"primus-responder","responseId":"6e8bc430-9c3a-41d9-9669-0800200c9a66","error":{"code":"x","message":"y"}}`, wsactor.ErrLateReply},
		{`{"plugin":"primus-responder","responseId":"x","error":7}`, wsactor.ErrBadField},
		{cancelOf(`"nothing-in-progress"`), nil},
		{cancelOf(`99`), nil},
	}
	const rounds = 20
	for range rounds {
		for _, f := range frames {
			p.text(e.t, f.f)
		}
	}
	for _, target := range []error{wsactor.ErrLateReply, wsactor.ErrUnknownReply, wsactor.ErrBadField} {
		n := 0
		for _, f := range frames {
			if f.want == target {
				n += rounds
			}
		}
		e.waitHook(target, n)
	}
	e.stillServes(p)
	if st := e.srv.Stats(); st.LateReplies != 2*rounds || st.UnknownReplies != 2*rounds || st.CancelsReceived != 0 {
		e.t.Fatalf("stats: late %d unknown %d cancels %d", st.LateReplies, st.UnknownReplies, st.CancelsReceived)
	}
	if sc.Err() != nil {
		e.t.Fatalf("closed: %v", sc.Err())
	}
	return verdict{outcome: fmt.Sprintf("kept; %d late, %d unknown, cancels ignored", 2*rounds, 2*rounds)}
}

// attackForeignReplies: a peer answers, on its own connection, a request
// the server sent to another connection. The forged replies are dropped;
// the real answer still completes the request, exactly once.
func attackForeignReplies(e *hostileEnv) verdict {
	victim, sv := e.dial()
	forger, _ := e.dial()
	res := make(chan error, 1)
	ctx := ctxWait(e.t)
	go func() {
		r, err := sv.Request(ctx, "who?")
		if err == nil && string(r.Data) != `"victim"` {
			err = fmt.Errorf("the request was answered with %s", r.Data)
		}
		res <- err
	}()
	var sent struct {
		ID json.RawMessage `json:"requestId"`
	}
	frame := victim.read(e.t)
	if err := json.Unmarshal([]byte(frame), &sent); err != nil || sent.ID == nil {
		e.t.Fatalf("the victim got %s", frame)
	}
	id := string(sent.ID)
	forger.text(e.t, reply(id, `"forged"`))
	forger.text(e.t, `{"plugin":"primus-responder","responseId":`+id+`,"error":{"code":"forged","message":"forged"}}`)
	e.waitHook(wsactor.ErrLateReply, 2)
	select {
	case err := <-res:
		e.t.Fatalf("the request ended on a forged reply: %v", err)
	default:
	}
	victim.text(e.t, reply(id, `"victim"`))
	if err := recv(e.t, res, "the victim's answer"); err != nil {
		e.t.Fatal(err)
	}
	victim.text(e.t, reply(id, `"again"`)) // a duplicate from the right peer: late
	e.waitHook(wsactor.ErrLateReply, 3)
	e.stillServes(forger)
	if st := e.srv.Stats(); st.Requests != 1 || st.Replied != 1 {
		e.t.Fatalf("stats: %d requests, %d replied", st.Requests, st.Replied)
	}
	return verdict{outcome: "kept; forged replies late, real one wins"}
}

// attackDuplicates reuses the id of a request in progress.
func attackDuplicates(e *hostileEnv) verdict {
	p, _ := e.dial()
	const dups = 100
	p.text(e.t, req(`"d"`, `{"op":"hold"}`))
	e.eventually("the held request in progress", func() bool { return e.srv.Stats().InProgress == 1 })
	for range dups {
		p.text(e.t, req(`"d"`, add12))
	}
	for range dups {
		r := parseReply(e.t, p.read(e.t))
		if string(r.ID) != `"d"` || r.Error == nil || r.Error.Code != wsactor.CodeDuplicateID {
			e.t.Fatalf("duplicate: got %+v, want a %s error reply", r, wsactor.CodeDuplicateID)
		}
	}
	e.waitHook(wsactor.ErrDuplicateID, dups)
	e.stillServes(p)
	// The original is answered once, with its own data.
	e.releaseHandlers()
	if got, want := p.read(e.t), reply(`"d"`, `"held"`); got != want {
		e.t.Fatalf("the original: got %s, want %s", got, want)
	}
	// The id is free again once its request ended.
	p.text(e.t, req(`"d"`, add12))
	if got, want := p.read(e.t), reply(`"d"`, "3"); got != want {
		e.t.Fatalf("reused id: got %s, want %s", got, want)
	}
	return verdict{outcome: fmt.Sprintf("kept; %d × %s", dups, wsactor.CodeDuplicateID)}
}

// attackOversize announces a frame of n bytes and sends a little of it:
// the server closes with 1009 on the header.
func attackOversize(n int) func(e *hostileEnv) verdict {
	return func(e *hostileEnv) verdict {
		p, sc := e.dial()
		return e.expect1009(p, sc, append(wsHeader(true, opText, n), bytes.Repeat([]byte{' '}, 4096)...))
	}
}

// expect1009 writes frames and checks that the server closes the
// connection with 1009 and ErrTooLarge (reported to the error hook once).
func (e *hostileEnv) expect1009(p *wsPeer, sc *wsactor.Conn, frames []byte) verdict {
	start := time.Now()
	_ = p.write(frames)
	code := p.closed(e.t)
	dropped := time.Since(start)
	if code != 1009 {
		e.t.Fatalf("close code %d, want 1009", code)
	}
	recv(e.t, sc.Done(), "server conn closed")
	if !errors.Is(sc.Err(), wsactor.ErrTooLarge) {
		e.t.Fatalf("the server conn ended with %v, want ErrTooLarge", sc.Err())
	}
	e.waitHook(wsactor.ErrTooLarge, 1)
	return verdict{outcome: "close 1009", dropped: dropped}
}

// attackFragments sends a message in fragments whose sum is over the
// limit, each under it.
func attackFragments(e *hostileEnv) verdict {
	p, sc := e.dial()
	chunk := bytes.Repeat([]byte{'a'}, hostileMaxMessage/2+1)
	start := time.Now()
	_ = p.write(wsFrame(false, opText, append([]byte{'"'}, chunk...)))
	_ = p.write(wsFrame(false, opCont, chunk))
	code := p.closed(e.t)
	dropped := time.Since(start)
	if code != 1009 {
		e.t.Fatalf("close code %d, want 1009", code)
	}
	recv(e.t, sc.Done(), "server conn closed")
	return verdict{outcome: "close 1009", dropped: dropped}
}

// attackHeaderOnly: peers announce a frame of the size limit and never
// send its payload. They must be dropped within limit, with close code
// code and server-side error want (when set).
func attackHeaderOnly(limit time.Duration, code uint16, want error) func(e *hostileEnv) verdict {
	return func(e *hostileEnv) verdict {
		const peers = 10
		var ps []*wsPeer
		var scs []*wsactor.Conn
		for range peers {
			p, sc := e.dial()
			ps, scs = append(ps, p), append(scs, sc)
		}
		start := time.Now()
		for _, p := range ps {
			if err := p.write(wsHeader(true, opText, hostileMaxMessage)); err != nil {
				e.t.Fatal(err)
			}
		}
		e.snapshot()
		var dropped time.Duration
		var got uint16
		for i, p := range ps {
			if got = p.closed(e.t); code != 0 && got != code {
				e.t.Fatalf("peer %d: close code %d, want %d", i, got, code)
			}
			dropped = max(dropped, time.Since(start))
		}
		for _, sc := range scs {
			recv(e.t, sc.Done(), "server conn closed")
			if want != nil && !errors.Is(sc.Err(), want) {
				e.t.Fatalf("server conn ended with %v, want %v", sc.Err(), want)
			}
		}
		if dropped > limit {
			e.t.Fatalf("the stalled peers were dropped after %v, want within %v", dropped, limit)
		}
		return verdict{outcome: fmt.Sprintf("%d dropped: %d, %v", peers, got, scs[0].Err()), dropped: dropped}
	}
}

// attackDeepRequest: a request whose data nests 100,000 deep is answered
// with a bad_request error reply.
func attackDeepRequest(e *hostileEnv) verdict {
	p, _ := e.dial()
	p.text(e.t, `{"plugin":"primus-responder","requestId":"deep","data":`+deep(100000)+`}`)
	r := parseReply(e.t, p.read(e.t))
	if string(r.ID) != `"deep"` || r.Error == nil || r.Error.Code != wsactor.CodeBadRequest {
		e.t.Fatalf("got %+v, want a %s error reply", r, wsactor.CodeBadRequest)
	}
	e.stillServes(p)
	return verdict{outcome: "kept; " + wsactor.CodeBadRequest}
}

// attackUnreadFlood: a peer sends requests and never reads the replies.
// Its outbound queue stays bounded (replies refused), and once the socket
// stalls longer than the write timeout the server closes it.
func attackUnreadFlood(e *hostileEnv) verdict {
	p, sc := e.dial()
	if tc, ok := p.nc.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4096)
	}
	payload := `{"op":"echo","pad":"` + strings.Repeat("x", 2048) + `"}`
	const total, perTick = 3000, 10
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	sent := 0
flood:
	for sent < total {
		var batch []byte
		for range perTick {
			batch = append(batch, wsFrame(true, opText, []byte(req(strconv.Itoa(sent+1), payload)))...)
			sent++
		}
		if p.write(batch) != nil {
			break // closed by the server
		}
		select {
		case <-sc.Done():
			break flood
		case <-tick.C:
		}
	}
	e.snapshot()
	recv(e.t, sc.Done(), "the server to close the flooding conn")
	dropped := time.Since(start)
	if !errors.Is(sc.Err(), wsactor.ErrWriteTimeout) {
		e.t.Fatalf("the server conn ended with %v, want ErrWriteTimeout", sc.Err())
	}
	st := e.srv.Stats()
	return verdict{outcome: fmt.Sprintf("ErrWriteTimeout after %d reqs; %d replies refused", sent, st.RepliesNotSent), dropped: dropped}
}

// attackOverInflight: twice the in-flight cap of held requests. The server
// reads no more than the cap until some finish (TCP backpressure), and
// refuses none: every request is answered with its data once released.
func attackOverInflight(limit int) func(e *hostileEnv) verdict {
	return func(e *hostileEnv) verdict {
		p, _ := e.dial()
		n := 2 * limit
		var batch []byte
		for i := range n {
			batch = append(batch, wsFrame(true, opText, []byte(req(strconv.Itoa(i+1), `{"op":"hold"}`)))...)
		}
		if err := p.write(batch); err != nil {
			e.t.Fatal(err)
		}
		e.eventually("the cap's worth of requests in progress", func() bool { return e.srv.Stats().InProgress >= int64(limit) })
		e.snapshot()
		// The server's InProgress also counts the control connection's
		// request when one is in progress: the cap is per connection.
		if st := e.srv.Stats(); st.InProgress > int64(limit)+1 || e.running.Load() > int64(limit) || st.Busy != 0 {
			e.t.Fatalf("in progress %d (cap %d, plus the control's 1), the peer's handlers running %d, busy %d", st.InProgress, limit, e.running.Load(), st.Busy)
		}
		e.releaseHandlers()
		seen := map[string]bool{}
		for range n {
			r := parseReply(e.t, p.read(e.t))
			if r.Error != nil || string(r.Data) != `"held"` || seen[string(r.ID)] {
				e.t.Fatalf("reply %s %s %+v: want each id answered once with \"held\"", r.ID, r.Data, r.Error)
			}
			seen[string(r.ID)] = true
		}
		return verdict{outcome: fmt.Sprintf("kept; %d answered, 0 busy", n)}
	}
}

// attackCancelFlood: request+cancel pairs for handlers that run until
// cancelled. Never more than the cap may run at once.
func attackCancelFlood(limit int) func(e *hostileEnv) verdict {
	return func(e *hostileEnv) verdict {
		p, _ := e.dial()
		const pairs, perTick = 4000, 200
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < pairs; {
			var batch []byte
			for range perTick {
				id := strconv.Itoa(i + 1)
				batch = append(batch, wsFrame(true, opText, []byte(req(id, `{"op":"block"}`)))...)
				batch = append(batch, wsFrame(true, opText, []byte(cancelOf(id)))...)
				i++
			}
			if err := p.write(batch); err != nil {
				e.t.Fatal(err)
			}
			<-tick.C
		}
		e.snapshot()
		e.stillServes(p)
		e.eventually("every handler to return", func() bool { return e.srv.Stats().InProgress == 0 && e.running.Load() == 0 })
		if m := e.maxRunning.Load(); m > int64(limit) {
			e.t.Fatalf("%d handlers ran at once, cap %d", m, limit)
		}
		return verdict{outcome: fmt.Sprintf("kept; max %d running (cap %d)", e.maxRunning.Load(), limit)}
	}
}

// attackSilent: peers that never answer the heartbeat are dropped without
// a close frame within two intervals.
func attackSilent(e *hostileEnv) verdict {
	const peers = 5
	var ps []*wsPeer
	var scs []*wsactor.Conn
	for range peers {
		p, sc := e.dial()
		ps, scs = append(ps, p), append(scs, sc)
	}
	start := time.Now()
	var dropped time.Duration
	for i, p := range ps {
		if f := p.read(e.t); !strings.HasPrefix(f, `"primus::ping::`) {
			e.t.Fatalf("peer %d: first frame %s, want a ping", i, f)
		}
		if code := p.closed(e.t); code != 1006 {
			e.t.Fatalf("peer %d: close code %d, want 1006 (dropped without a close frame)", i, code)
		}
		dropped = max(dropped, time.Since(start))
	}
	for _, sc := range scs {
		recv(e.t, sc.Done(), "server conn closed")
		if !errors.Is(sc.Err(), wsactor.ErrHeartbeat) {
			e.t.Fatalf("ended with %v, want ErrHeartbeat", sc.Err())
		}
	}
	if limit := 3*hostilePing + hostileDropSlack; dropped > limit {
		e.t.Fatalf("dropped after %v, want within %v", dropped, limit)
	}
	return verdict{outcome: "1006, ErrHeartbeat", dropped: dropped}
}

// attackSlowloris: half a request line, then silence. The http.Server's
// ReadHeaderTimeout closes them.
func attackSlowloris(e *hostileEnv) verdict {
	const peers = 20
	var ps []*wsPeer
	start := time.Now()
	for range peers {
		p := e.tcp()
		if err := p.write([]byte("GET /primus HTT")); err != nil {
			e.t.Fatal(err)
		}
		ps = append(ps, p)
	}
	e.snapshot()
	var dropped time.Duration
	for i, p := range ps {
		_ = p.nc.SetReadDeadline(time.Now().Add(wait))
		_, err := io.Copy(io.Discard, p.nc) // whatever the server says, until it closes
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			e.t.Fatalf("peer %d was not closed", i)
		}
		dropped = max(dropped, time.Since(start))
	}
	if limit := hostileReadHeader + hostileDropSlack; dropped > limit {
		e.t.Fatalf("closed after %v, want within %v", dropped, limit)
	}
	if st := e.srv.Stats(); st.Accepted != 1 {
		e.t.Fatalf("accepted %d connections", st.Accepted)
	}
	return verdict{outcome: fmt.Sprintf("%d closed by ReadHeaderTimeout", peers), dropped: dropped}
}

// httpRefusal checks a refused upgrade: status and the Primus-style body.
func httpRefusal(e *hostileEnv, resp *http.Response, status int, msg string) {
	e.t.Helper()
	defer resp.Body.Close()
	var body struct{ Error string }
	err := json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != status || err != nil || body.Error != msg {
		e.t.Fatalf("got %s %+v (%v), want %d {\"error\":%q}", resp.Status, body, err, status, msg)
	}
}

// attackOrigin: browsers from origins not allowed are refused with 403.
func attackOrigin(e *hostileEnv) verdict {
	origins := []string{"https://evil.example", "null", "http://127.0.0.1.evil.example", "file://", "http://" + e.addr + ".evil"}
	for _, o := range origins {
		_, resp := e.upgrade("", http.Header{"Origin": {o}})
		httpRefusal(e, resp, http.StatusForbidden, "origin not allowed")
	}
	if st := e.srv.Stats(); st.Refused != int64(len(origins)) || st.Accepted != 1 {
		e.t.Fatalf("refused %d accepted %d", st.Refused, st.Accepted)
	}
	return verdict{outcome: fmt.Sprintf("HTTP 403 × %d", len(origins))}
}

// attackMaxConns: with the control connection and limit-1 peers in, the
// next upgrades are refused with 503 and Retry-After before the handshake;
// once a peer has gone, an upgrade is admitted again.
func attackMaxConns(limit int) func(e *hostileEnv) verdict {
	return func(e *hostileEnv) verdict {
		var ps []*wsPeer
		var scs []*wsactor.Conn
		for range limit - 1 { // the control connection holds one place
			p, sc := e.dial()
			ps, scs = append(ps, p), append(scs, sc)
		}
		const refused = 20
		for range refused {
			_, resp := e.upgrade("", nil)
			if ra := resp.Header.Get("Retry-After"); ra == "" {
				e.t.Fatalf("503 without Retry-After: %v", resp.Header)
			}
			httpRefusal(e, resp, http.StatusServiceUnavailable, "too many connections")
		}
		if st := e.srv.Stats(); st.Refused != refused || st.Accepted != int64(limit) {
			e.t.Fatalf("refused %d accepted %d, want %d and %d", st.Refused, st.Accepted, refused, limit)
		}
		ps[0].reset()
		recv(e.t, scs[0].Done(), "server conn of the reset peer")
		p, _ := e.dial() // its place is free again
		ps[0] = p
		return verdict{outcome: fmt.Sprintf("HTTP 503 × %d, Retry-After; admitted again after a peer left", refused)}
	}
}

func hostileAuth(r *http.Request) (any, error) {
	switch r.URL.Query().Get("token") {
	case "good":
		return "alice", nil
	case "banned":
		return nil, &statusErr{http.StatusForbidden, "banned"}
	case "panic":
		panic("auth hook bug")
	}
	return nil, errors.New("bad token")
}

// attackAuth: upgrades the authentication hook refuses (or panics on).
func attackAuth(e *hostileEnv) verdict {
	for _, c := range []struct {
		query  string
		status int
		msg    string
	}{
		{"", http.StatusUnauthorized, "bad token"},
		{"?token=bad", http.StatusUnauthorized, "bad token"},
		{"?token=banned", http.StatusForbidden, "banned"},
		{"?token=panic", http.StatusInternalServerError, "authentication failed"},
	} {
		_, resp := e.upgrade(c.query, nil)
		httpRefusal(e, resp, c.status, c.msg)
	}
	e.waitHook(wsactor.ErrHandlerPanic, 1)
	if st := e.srv.Stats(); st.Refused != 4 || st.Accepted != 1 {
		e.t.Fatalf("refused %d accepted %d", st.Refused, st.Accepted)
	}
	return verdict{outcome: "HTTP 401, 403, 500 (panic)"}
}

// attackResets: n connections, each with a request in progress, reset
// (TCP RST) at once. The server ends every handler and forgets every
// connection.
func attackResets(n int) func(e *hostileEnv) verdict {
	return func(e *hostileEnv) verdict {
		const perTick = 5
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		ps := make([]*wsPeer, 0, n)
		for len(ps) < n {
			for range perTick {
				p, _ := e.dial()
				p.text(e.t, req(`"r"`, `{"op":"hold"}`))
				ps = append(ps, p)
			}
			<-tick.C
		}
		e.eventually("every request in progress", func() bool { return e.srv.Stats().InProgress >= int64(n) })
		e.snapshot()
		// All within about 200 ms, 25 per tick: a mass reset that does
		// not turn into a CPU burst of the test's own making.
		start := time.Now()
		for i, p := range ps {
			p.reset()
			if i%25 == 24 {
				<-tick.C
			}
		}
		e.eventually("every reset connection gone", func() bool {
			st := e.srv.Stats()
			return st.Conns == 1 && st.InProgress == 0 && e.running.Load() == 0
		})
		dropped := time.Since(start)
		if st := e.srv.Stats(); st.Closed != int64(n) {
			e.t.Fatalf("closed %d, want %d", st.Closed, n)
		}
		return verdict{outcome: fmt.Sprintf("%d reset; all handlers ended", n), dropped: dropped}
	}
}

// attackPrimusStrings sends odd "primus::" strings. Only "primus::id::…"
// (answered) and "primus::pong::…" (liveness) are control messages on a
// server; the rest are plain messages, as in Primus.
func attackPrimusStrings(e *hostileEnv) verdict {
	p, sc := e.dial()
	idReply := `"primus::id::` + sc.ID() + `"`
	cases := []struct {
		frame string
		reply string // the frame the server answers with; "" for none
		data  bool   // reaches the message handler verbatim
	}{
		{`"primus::id::"`, idReply, false},
		{` "primus::id::" `, idReply, false},
		{`"primus::id::` + strings.Repeat("z", 60<<10) + `"`, idReply, false},
		{`"primus\u003a:id::"`, idReply, false},
		{`"primus::pong::NaN"`, "", false},
		{`"primus::pong::"`, "", false},
		{`"primus::ping::1795618408068"`, "", true},
		{`"primus::server::close"`, "", true},
		{`"primus::"`, "", true},
		{`"primus::id"`, "", true},
		{`"primus::::::"`, "", true},
		{`"PRIMUS::id::"`, "", true},
		{`"primus::\u0000::"`, "", true},
		{`"primus::whatever::` + strings.Repeat("w", 60<<10) + `"`, "", true},
		{`["primus::id::"]`, "", true},
	}
	const rounds = 10
	replies, messages := 0, 0
	for range rounds {
		for _, c := range cases {
			p.text(e.t, c.frame)
			if c.reply != "" {
				if got := p.read(e.t); got != c.reply {
					e.t.Fatalf("%.40s: got %.80s, want %s", c.frame, got, c.reply)
				}
				replies++
			}
			if c.data {
				if got, want := recv(e.t, e.msgs, "message"), strings.TrimSpace(c.frame); got != want {
					e.t.Fatalf("message %.80s, want %.80s", got, want)
				}
				messages++
			}
		}
	}
	e.stillServes(p)
	select {
	case m := <-e.msgs:
		e.t.Fatalf("an extra message: %.80s", m)
	default:
	}
	if st := e.srv.Stats(); st.BadInput != 0 {
		e.t.Fatalf("BadInput %d", st.BadInput)
	}
	return verdict{outcome: fmt.Sprintf("kept; %d id replies, %d messages", replies, messages)}
}

// attackProtocol: frames that break RFC 6455 close the connection with
// 1002 (protocol error).
func attackProtocol(e *hostileEnv) verdict {
	cases := []struct {
		name  string
		frame []byte
	}{
		{"reserved opcode", wsFrame(true, 0x3, []byte("x"))},
		{"RSV1 without an extension", func() []byte { f := wsFrame(true, opText, []byte(`1`)); f[0] |= 0x40; return f }()},
		{"unmasked client frame", func() []byte { f := []byte{0x81, 0x01, '1'}; return f }()},
		{"continuation without a start", wsFrame(true, opCont, []byte("x"))},
		{"fragmented ping", wsFrame(false, opPing, nil)},
		{"oversized control frame", wsFrame(true, opPing, bytes.Repeat([]byte{1}, 126))},
	}
	var dropped time.Duration
	for _, c := range cases {
		p, sc := e.dial()
		start := time.Now()
		if err := p.write(c.frame); err != nil {
			e.t.Fatal(err)
		}
		if code := p.closed(e.t); code != 1002 {
			e.t.Fatalf("%s: close code %d, want 1002", c.name, code)
		}
		dropped = max(dropped, time.Since(start))
		recv(e.t, sc.Done(), "server conn closed")
	}
	return verdict{outcome: fmt.Sprintf("close 1002 × %d", len(cases)), dropped: dropped}
}
