package wsactor_test

// The cap on the peer's requests in progress, the backpressure when it is
// reached and the fairness of the shared handler pool, over real sockets.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lxzan/gws"
	"github.com/wsactor/wsactor"
)

// peak tracks how many handlers run at once and the most seen.
type peak struct{ now, max atomic.Int64 }

func (p *peak) enter() {
	n := p.now.Add(1)
	for m := p.max.Load(); n > m && !p.max.CompareAndSwap(m, n); m = p.max.Load() {
	}
}

func (p *peak) leave() { p.now.Add(-1) }

func rawRequest(id int, data string) string {
	return fmt.Sprintf(`{"plugin":"primus-responder","requestId":%d,"data":%s}`, id, data)
}

// rawWriter writes frames from a goroutine of its own (the server may stop
// reading: the writes then wait in the socket buffers) and reports the first
// error, or nil when all were written.
func rawWriter(p *rawPeer, frames []string) <-chan error {
	done := make(chan error, 1)
	go func() {
		for _, f := range frames {
			if err := p.ws.WriteMessage(gws.OpcodeText, []byte(f)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	return done
}

type replyFrame struct {
	ID   int             `json:"responseId"`
	Data json.RawMessage `json:"data"`
	Err  *struct {
		Code string `json:"code"`
	} `json:"error"`
}

func readReply(t *testing.T, p *rawPeer) replyFrame {
	t.Helper()
	f := p.read(t)
	var r replyFrame
	if err := json.Unmarshal([]byte(f), &r); err != nil || r.ID == 0 {
		t.Fatalf("frame %q is not a reply (%v)", f, err)
	}
	return r
}

// Issue item 1: request + cancel pairs do not let more than WithMaxInbound
// handlers of one connection run, neither does a restart of its actor,
// however the peer floods and however long the handlers take to notice
// their ctx. Every request's handler runs exactly once, and every request
// that was not cancelled is answered exactly once.
func TestMaxInboundHoldsAgainstCancelAndRestart(t *testing.T) {
	for _, mode := range []string{"cancel", "restart"} {
		t.Run(mode, func(t *testing.T) {
			const n, limit = 200, 2
			var g peak
			var calls atomic.Int64
			started := make(chan struct{})
			release := make(chan struct{})
			over := make(chan struct{})
			h := func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
				calls.Add(1)
				g.enter()
				defer g.leave()
				select {
				case started <- struct{}{}:
				case <-over:
				}
				select {
				case <-release: // not ctx.Done: the handler ignores the cancel
				case <-over:
				}
				return req.Data, nil
			}
			conns := make(chan *wsactor.Conn, 1)
			srv, url := startServer(t, wsactor.WithRequestHandler(h), wsactor.WithMaxInbound(limit),
				wsactor.WithRestartIntensity(n, time.Hour), wsactor.WithConnectHook(func(c *wsactor.Conn) { conns <- c }),
				wsactor.WithMessageHandler(func(c *wsactor.Conn, msg json.RawMessage) { panic("restart, please") }))
			t.Cleanup(func() { close(over) }) // before the server closes: a failed test leaves no handler waiting
			p := dialRawBuf(t, url, n+16)
			replies := map[int]int{}
			switch mode {
			case "cancel":
				// The whole flood first (it fits in the socket buffers):
				// each request followed by its cancel. Then the handlers
				// return one by one.
				for i := 1; i <= n; i++ {
					p.write(t, false, rawRequest(i, fmt.Sprint(i)))
					p.write(t, false, fmt.Sprintf(`{"plugin":"primus-responder","cancelId":%d}`, i))
				}
				for range limit {
					recv(t, started, "a handler start")
				}
				// A window in which a server that frees a slot at the
				// cancel reads the flood and starts more handlers. With the
				// cap it reads no further: the window passes. (Not a
				// synchronisation: nothing waits for the server to be slow.)
				window := time.NewTimer(300 * time.Millisecond)
				tick := time.NewTicker(2 * time.Millisecond)
			watch:
				for srv.Stats().Received <= limit {
					select {
					case <-tick.C:
					case <-window.C:
						break watch
					}
				}
				window.Stop()
				tick.Stop()
				release <- struct{}{}
				release <- struct{}{}
				for range n - limit {
					recv(t, started, "a handler start")
					release <- struct{}{}
				}
			case "restart":
				// In rounds: once limit handlers run, a message that
				// restarts the actor and the next round's requests. (The
				// restart is sent only once the handlers run: a failure
				// overtakes requests still in the mailbox.)
				next := 1
				send := func() {
					for range limit {
						p.write(t, false, rawRequest(next, fmt.Sprint(next)))
						next++
					}
				}
				send()
				for round := range n / limit {
					for range limit {
						recv(t, started, "a handler start")
					}
					p.write(t, false, `"boom"`) // the message handler panics: the actor restarts
					if round < n/limit-1 {
						send()
					}
					// The restart answers the requests in progress at
					// once; their handlers are still running. The next
					// requests must wait for them all the same.
					for range limit {
						r := readReply(t, p)
						replies[r.ID]++
						if r.Err == nil || r.Err.Code != wsactor.CodeRestarted {
							t.Fatalf("reply %d: %s, want a restart error reply", r.ID, r.Data)
						}
					}
					for range limit {
						release <- struct{}{}
					}
				}
			}
			if got := g.max.Load(); got > limit {
				t.Fatalf("%d handlers of one connection ran at once, cap %d", got, limit)
			}
			if c := calls.Load(); c != n {
				t.Fatalf("%d handler calls for %d requests", c, n)
			}
			if mode == "restart" {
				// Each request was answered once, by the restart (its
				// handler's later result is dropped).
				for i := 1; i <= n; i++ {
					if replies[i] != 1 {
						t.Fatalf("request %d answered %d times", i, replies[i])
					}
				}
				select {
				case f := <-p.frames:
					t.Fatalf("a second answer: %s", f)
				default:
				}
				if st := srv.Stats(); st.Restarts != n/limit {
					t.Fatalf("%d restarts, want %d", st.Restarts, n/limit)
				}
			}
			// Once the connection is gone, the server's counts are final.
			sc := recv(t, conns, "conn")
			_ = p.ws.NetConn().Close()
			recv(t, sc.Done(), "the server's conn done")
			st := srv.Stats()
			if st.Received != n || st.Busy != 0 {
				t.Fatalf("server: received %d, busy %d", st.Received, st.Busy)
			}
			// A request whose cancel came while it was in progress gets no
			// reply; one whose handler had returned first was answered.
			if mode == "cancel" && st.Answered+st.CancelsReceived != n {
				t.Fatalf("server: %d answered + %d cancelled, want %d", st.Answered, st.CancelsReceived, n)
			}
		})
	}
}

// Issue item 8: a burst far over WithMaxInbound is answered in full, with
// no busy reply (the server stops reading instead), and never more than the
// cap are in progress.
func TestMaxInboundBackpressureAnswersBurst(t *testing.T) {
	const n, limit = 3000, 8
	var g peak
	h := func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
		g.enter()
		defer g.leave()
		return req.Data, nil
	}
	srv, url := startServer(t, wsactor.WithRequestHandler(h), wsactor.WithMaxInbound(limit))
	cl := dial(t, url, wsactor.WithMaxPending(n))
	ctx := ctxWait(t)
	var wg sync.WaitGroup
	var wrong atomic.Int64
	for i := range n {
		wg.Go(func() {
			r, err := cl.Request(ctx, i)
			if err := errors.Join(err, checkInt(r, i)); err != nil {
				if wrong.Add(1) == 1 {
					t.Errorf("request %d: %v", i, err)
				}
			}
		})
	}
	wg.Wait()
	if w := wrong.Load(); w != 0 {
		t.Fatalf("%d of %d requests failed", w, n)
	}
	if st := srv.Stats(); st.Busy != 0 || st.Answered != n {
		t.Fatalf("server: busy %d, answered %d of %d", st.Busy, st.Answered, n)
	}
	if got := g.max.Load(); got > limit {
		t.Fatalf("%d handlers of one connection ran at once, cap %d", got, limit)
	}
}

// A peer that floods requests and never reads the replies stays bounded:
// the server goes on reading while handlers return (their replies meet the
// outbound limit and are dropped), never runs more than the cap, and
// closes the connection once its writes stall for the write timeout.
func TestMaxInboundFloodWithoutReading(t *testing.T) {
	const limit = 4
	var g peak
	big := strings.Repeat("x", 16<<10)
	h := func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
		g.enter()
		defer g.leave()
		return big, nil
	}
	conns := make(chan *wsactor.Conn, 1)
	srv, url := startServer(t, wsactor.WithRequestHandler(h), wsactor.WithMaxInbound(limit),
		wsactor.WithMaxOutboundBytes(64<<10), wsactor.WithWriteTimeout(300*time.Millisecond),
		wsactor.WithConnectHook(func(c *wsactor.Conn) { conns <- c }))
	p := dialRawBuf(t, url, 1) // stops reading after one frame
	sc := recv(t, conns, "conn")
	stop := make(chan struct{})
	written := make(chan int, 1)
	go func() {
		i := 0
		defer func() { written <- i }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			i++
			if p.ws.WriteMessage(gws.OpcodeText, []byte(rawRequest(i, "1"))) != nil {
				return // the server closed the connection
			}
		}
	}()
	recv(t, sc.Done(), "the server closing the stalled connection")
	close(stop)
	sent := recv(t, written, "the flood to end")
	if err := sc.Err(); !errors.Is(err, wsactor.ErrWriteTimeout) {
		t.Fatalf("closed with %v, want ErrWriteTimeout", err)
	}
	if got := g.max.Load(); got > limit {
		t.Fatalf("%d handlers ran at once, cap %d", got, limit)
	}
	st := srv.Stats()
	if st.RepliesNotSent == 0 {
		t.Fatalf("no reply was refused by the outbound limit: %+v", st)
	}
	t.Logf("the peer wrote %d requests; the server read %d, %d replies not sent", sent, st.Received, st.RepliesNotSent)
}

// WithBusyRefusal keeps the old behaviour: over the cap, a busy error reply
// at once.
func TestBusyRefusalOption(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	h := func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
		started <- struct{}{}
		<-release
		return req.Data, nil
	}
	srv, url := startServer(t, wsactor.WithRequestHandler(h), wsactor.WithMaxInbound(1), wsactor.WithBusyRefusal())
	p := dialRaw(t, url)
	p.write(t, false, rawRequest(1, "1"))
	recv(t, started, "the first handler")
	p.write(t, false, rawRequest(2, "2"))
	if r := readReply(t, p); r.ID != 2 || r.Err == nil || r.Err.Code != wsactor.CodeBusy {
		t.Fatalf("got %+v, want a busy reply to request 2", r)
	}
	close(release)
	if r := readReply(t, p); r.ID != 1 || r.Err != nil || string(r.Data) != "1" {
		t.Fatalf("got %+v, want the answer to request 1", r)
	}
	if st := srv.Stats(); st.Busy != 1 {
		t.Fatalf("Busy = %d", st.Busy)
	}
}

// Issue item 3: one connection flooding the shared pool does not starve
// another. With one worker, connection A's 50 requests are all queued
// before B's one; B's handler then starts after at most one more of A's,
// not after all of them. (The order is what is asserted, not a time.)
func TestPoolFairBetweenConnections(t *testing.T) {
	const n = 50
	var mu sync.Mutex
	var order []string
	started := make(chan struct{})
	release := make(chan struct{})
	h := func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
		var name string
		_ = req.Decode(&name)
		mu.Lock()
		order = append(order, name)
		mu.Unlock()
		started <- struct{}{}
		<-release
		return nil, nil
	}
	// A plain message makes the server send a request to that peer: it is
	// registered on the connection's actor after the requests read before
	// the message, so when the peer sees it they are all in the pool.
	marker := func(c *wsactor.Conn, msg json.RawMessage) {
		_ = c.Go(context.Background(), "marker", func(wsactor.Response, error) {})
	}
	_, url := startServer(t, wsactor.WithRequestHandler(h), wsactor.WithHandlerPool(1, 4*n),
		wsactor.WithMessageHandler(marker))
	a, b := dialRaw(t, url), dialRaw(t, url)
	for i := 1; i <= n; i++ {
		a.write(t, false, rawRequest(i, fmt.Sprintf(`"a%d"`, i)))
	}
	a.write(t, false, `"marker"`)
	recv(t, started, "A's first handler") // the only worker is busy
	if f := a.read(t); !strings.Contains(f, `"marker"`) {
		t.Fatalf("A got %q, want the server's marker request", f)
	}
	b.write(t, false, rawRequest(1, `"b"`))
	b.write(t, false, `"marker"`)
	if f := b.read(t); !strings.Contains(f, `"marker"`) {
		t.Fatalf("B got %q, want the server's marker request", f)
	}
	for i := range n + 1 {
		release <- struct{}{}
		if i < n {
			recv(t, started, "the next handler")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	at := -1
	for i, name := range order {
		if name == "b" {
			at = i
		}
	}
	// a1 was running, a2 was next in turn: b must come third.
	if at < 0 || at > 2 {
		t.Fatalf("B's request ran at position %d of %v, want at most 2", at, order)
	}
}

// A reader waiting for room (backpressure) cannot see its connection close;
// when this side drops the connection (here: the peer answers no heartbeat,
// as a dead peer would not), the wait ends, the reader sees the close, the
// connection's actor stops and its handlers' ctx ends. Without that, a peer
// that filled the cap with requests whose handlers wait for their ctx would
// hold the connection, its reader and those handlers forever.
func TestBackpressureWaitEndsWhenConnectionDrops(t *testing.T) {
	started := make(chan struct{}, 1)
	ended := make(chan error, 1)
	h := func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
		started <- struct{}{}
		<-ctx.Done() // a long poll: waits for an event, or for the ctx
		ended <- ctx.Err()
		return nil, ctx.Err()
	}
	conns := make(chan *wsactor.Conn, 1)
	_, url := startServer(t, wsactor.WithRequestHandler(h), wsactor.WithMaxInbound(1),
		wsactor.WithPingInterval(50*time.Millisecond),
		wsactor.WithConnectHook(func(c *wsactor.Conn) { conns <- c }))
	p := dialRaw(t, url) // never answers "primus::ping"
	sc := recv(t, conns, "conn")
	p.write(t, false, rawRequest(1, "1"))
	recv(t, started, "the first handler")
	p.write(t, false, rawRequest(2, "2")) // over the cap: the server's reader waits
	recv(t, sc.Done(), "the dropped connection to end")
	if err := sc.Err(); !errors.Is(err, wsactor.ErrHeartbeat) {
		t.Fatalf("closed with %v, want ErrHeartbeat", err)
	}
	if err := recv(t, ended, "the handler's ctx to end"); !errors.Is(err, context.Canceled) {
		t.Fatalf("handler ctx: %v", err)
	}
}
