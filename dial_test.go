package wsactor_test

import (
	"context"
	"errors"
	"io"
	"math"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsactor/wsactor"
)

// blackHole is a TCP listener on 127.0.0.1 that accepts connections and
// never answers (a black-holed load balancer). If backend is set, the first
// connection it accepts is passed through to it instead; drop cuts that
// one. Every accept is counted on accepts.
type blackHole struct {
	ln      net.Listener
	accepts chan struct{}
	backend string

	mu    sync.Mutex
	held  []net.Conn
	first []net.Conn // the passed-through connection's two sockets
	wg    sync.WaitGroup
}

func newBlackHole(t *testing.T, backend string) *blackHole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackHole{ln: ln, accepts: make(chan struct{}, 1000), backend: backend}
	b.wg.Add(1)
	go b.loop()
	t.Cleanup(func() {
		_ = ln.Close()
		b.mu.Lock()
		for _, c := range append(b.held, b.first...) {
			_ = c.Close()
		}
		b.mu.Unlock()
		b.wg.Wait()
	})
	return b
}

func (b *blackHole) url() string { return "ws://" + b.ln.Addr().String() + "/primus" }

func (b *blackHole) loop() {
	defer b.wg.Done()
	for n := 0; ; n++ {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.accepts <- struct{}{}
		b.mu.Lock()
		if n == 0 && b.backend != "" {
			if bc, err := net.Dial("tcp", b.backend); err == nil {
				b.first = []net.Conn{c, bc}
				b.wg.Add(2)
				go func() { defer b.wg.Done(); _, _ = io.Copy(bc, c); _ = bc.Close() }()
				go func() { defer b.wg.Done(); _, _ = io.Copy(c, bc); _ = c.Close() }()
				b.mu.Unlock()
				continue
			}
		}
		b.held = append(b.held, c) // never read, never answered
		b.mu.Unlock()
	}
}

// drop cuts the passed-through connection, as a network failure would.
func (b *blackHole) drop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.first {
		_ = c.Close()
	}
}

// Dial against a listener that accepts TCP and never answers the
// handshake returns by the dial timeout, well before its ctx ends, with an
// error matching ErrDial and context.DeadlineExceeded.
func TestDialHandshakeTimeout(t *testing.T) {
	bh := newBlackHole(t, "")
	ctx := ctxWait(t) // 15s: far beyond the dial timeout
	begin := time.Now()
	_, err := wsactor.Dial(ctx, bh.url(), wsactor.WithDialTimeout(200*time.Millisecond))
	t.Logf("Dial returned after %v: %v", time.Since(begin), err)
	if ctx.Err() != nil {
		t.Fatalf("Dial returned only when its ctx ended: %v", err)
	}
	if !errors.Is(err, wsactor.ErrDial) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial = %v, want ErrDial and DeadlineExceeded", err)
	}
	if !strings.HasPrefix(err.Error(), "wsactor: ") || strings.Contains(err.Error(), "conn: ") {
		t.Fatalf("Dial error reads %q", err)
	}
	recv(t, bh.accepts, "the connection attempt")

	// Dial's ctx bounds the attempt too, when it ends first.
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = wsactor.Dial(short, bh.url()) // the default dial timeout is 10s
	if !errors.Is(err, wsactor.ErrDial) || !errors.Is(err, context.DeadlineExceeded) || short.Err() == nil {
		t.Fatalf("Dial with a short ctx = %v", err)
	}
}

// After a drop, a supervised client whose server now accepts TCP and never
// answers keeps retrying with its backoff: each attempt is cut by the dial
// timeout. (Without a handshake deadline the first reconnect attempt hung
// for ever.)
func TestReconnectToBlackHoleKeepsRetrying(t *testing.T) {
	_, url := startServer(t)
	bh := newBlackHole(t, strings.TrimPrefix(strings.TrimSuffix(url, "/primus"), "ws://"))
	connected := make(chan struct{}, 10)
	cl := dial(t, bh.url(),
		wsactor.WithDialTimeout(time.Second), // the first attempt passes through to the server
		wsactor.WithReconnect(wsactor.Backoff{Min: 10 * time.Millisecond, Max: 20 * time.Millisecond}, 1000, time.Minute, 0),
		wsactor.WithConnectHook(func(*wsactor.Conn) { connected <- struct{}{} }))
	recv(t, connected, "first connection")
	recv(t, bh.accepts, "first accept")
	if _, err := cl.Request(ctxWait(t), "x"); err == nil {
		// no handler on the server: an error reply; any answer proves the pass-through works
		t.Fatal("want the no_handler error reply")
	}
	bh.drop()
	// Several more attempts, each cut by the dial timeout: each of 3 within
	// 15s is a bound no slow machine misses (1s timeout + 20ms backoff
	// each), and one that a client hanging in its first attempt never meets.
	for i := range 3 {
		recv(t, bh.accepts, "reconnect attempt "+string(rune('1'+i)))
	}
	// Between connections: what cannot wait says so.
	if err := cl.Send("x"); !errors.Is(err, wsactor.ErrNotConnected) {
		t.Fatalf("Send while reconnecting = %v, want ErrNotConnected", err)
	}
	if err := cl.Go(ctxWait(t), "x", func(wsactor.Response, error) {}); !errors.Is(err, wsactor.ErrNotConnected) {
		t.Fatalf("Go while reconnecting = %v, want ErrNotConnected", err)
	}
	// Requests meanwhile wait for a connection until their ctx ends.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := cl.Request(ctx, "x"); !errors.Is(err, wsactor.ErrTimeout) {
		t.Fatalf("Request while reconnecting = %v, want ErrTimeout", err)
	}
	if err := cl.Close(); err != nil {
		t.Fatal(err)
	}
}

// Option misuse fails Dial before any network I/O: the listener sees no
// connection.
func TestDialOptionMisuseBeforeIO(t *testing.T) {
	bh := newBlackHole(t, "")
	ctx := ctxWait(t)
	b := func(f func(*wsactor.Backoff)) wsactor.Backoff {
		x := wsactor.Backoff{Min: time.Millisecond, Max: time.Second, Factor: 2, Jitter: 0.5}
		f(&x)
		return x
	}
	cases := map[string]wsactor.Option{
		"factor between 0 and 1": wsactor.WithReconnect(b(func(x *wsactor.Backoff) { x.Factor = 0.5 }), 5, time.Minute, time.Second),
		"negative factor":        wsactor.WithReconnect(b(func(x *wsactor.Backoff) { x.Factor = -2 }), 5, time.Minute, time.Second),
		"NaN factor":             wsactor.WithReconnect(b(func(x *wsactor.Backoff) { x.Factor = math.NaN() }), 5, time.Minute, time.Second),
		"infinite factor":        wsactor.WithReconnect(b(func(x *wsactor.Backoff) { x.Factor = math.Inf(1) }), 5, time.Minute, time.Second),
		"jitter above 1":         wsactor.WithReconnect(b(func(x *wsactor.Backoff) { x.Jitter = 1.5 }), 5, time.Minute, time.Second),
		"NaN jitter":             wsactor.WithReconnect(b(func(x *wsactor.Backoff) { x.Jitter = math.NaN() }), 5, time.Minute, time.Second),
		"negative min":           wsactor.WithReconnect(b(func(x *wsactor.Backoff) { x.Min = -1 }), 5, time.Minute, time.Second),
		"negative reset-after":   wsactor.WithReconnect(b(func(*wsactor.Backoff) {}), 5, time.Minute, -time.Second),
		"negative reconnects":    wsactor.WithReconnect(b(func(*wsactor.Backoff) {}), -1, time.Minute, time.Second),
		"reconnects over 65536":  wsactor.WithReconnect(b(func(*wsactor.Backoff) {}), 1<<20, time.Minute, time.Second),
		"zero window":            wsactor.WithReconnect(b(func(*wsactor.Backoff) {}), 5, 0, time.Second),
		"zero dial timeout":      wsactor.WithDialTimeout(0),
		"server option":          wsactor.WithPingInterval(time.Second),
		"zero Option":            {},
	}
	for name, opt := range cases {
		t.Run(name, func(t *testing.T) {
			cl, err := wsactor.Dial(ctx, bh.url(), opt)
			if err == nil {
				_ = cl.Close()
				t.Fatal("Dial accepted the option")
			}
			if !errors.Is(err, wsactor.ErrInvalidOption) {
				t.Fatalf("Dial = %v, want ErrInvalidOption", err)
			}
			checkText(t, err)
		})
	}
	// Every case failed before connecting: prove the listener works, and
	// that this one accept is the first.
	cl, err := wsactor.Dial(ctx, bh.url(), wsactor.WithDialTimeout(50*time.Millisecond))
	if err == nil {
		_ = cl.Close()
	}
	recv(t, bh.accepts, "the valid Dial's attempt")
	select {
	case <-bh.accepts:
		t.Fatal("a Dial with a bad option connected")
	default:
	}
}

// checkText: each line of the text (errors.Join makes several) has the one
// prefix "wsactor: " and no lower package's prefix where a part starts, and
// there is no stack trace.
func checkText(t *testing.T, err error) {
	t.Helper()
	s := err.Error()
	for _, line := range strings.Split(s, "\n") {
		rest, ok := strings.CutPrefix(line, "wsactor: ")
		if !ok {
			t.Errorf("%q: want the prefix wsactor:", s)
			continue
		}
		for _, part := range strings.Split(rest, ": ") {
			for _, p := range []string{"wsactor", "actor", "conn", "supervisor", "envelope", "mailbox"} {
				if part == p {
					t.Errorf("%q: a second prefix %q", s, p+": ")
				}
			}
		}
	}
	if strings.Contains(s, "goroutine ") || strings.Contains(s, "stacktrace") {
		t.Errorf("%q: a stack trace in the text", s)
	}
}
