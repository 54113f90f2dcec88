package wsactor_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lxzan/gws"
	"github.com/wsactor/wsactor"
)

// hbPeer is a raw WebSocket peer for the heartbeat tests: it records when
// each "primus::ping::…" arrives and answers it after pongDelay (never when
// pongDelay < 0).
type hbPeer struct {
	gws.BuiltinEventHandler
	ws        *gws.Conn
	pongDelay time.Duration
	pings     chan time.Time

	mu      sync.Mutex
	stopped bool
	timers  []*time.Timer
}

func dialHB(t *testing.T, url string, pongDelay time.Duration) *hbPeer {
	t.Helper()
	p := &hbPeer{pongDelay: pongDelay, pings: make(chan time.Time, 1024)}
	ws, _, err := gws.NewClient(p, &gws.ClientOption{Addr: url})
	if err != nil {
		t.Fatal(err)
	}
	p.ws = ws
	done := make(chan struct{})
	go func() { ws.ReadLoop(); close(done) }()
	t.Cleanup(func() {
		p.mu.Lock()
		p.stopped = true
		for _, tm := range p.timers {
			tm.Stop()
		}
		p.mu.Unlock()
		_ = ws.NetConn().Close()
		<-done
	})
	return p
}

func (p *hbPeer) OnMessage(c *gws.Conn, m *gws.Message) {
	defer m.Close()
	s := m.Data.String()
	if !strings.HasPrefix(s, `"primus::ping::`) {
		return
	}
	select {
	case p.pings <- time.Now():
	default:
	}
	if p.pongDelay < 0 {
		return
	}
	pong := []byte(strings.Replace(s, "ping", "pong", 1))
	if p.pongDelay == 0 {
		_ = c.WriteMessage(gws.OpcodeText, pong)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.stopped {
		p.timers = append(p.timers, time.AfterFunc(p.pongDelay, func() { _ = c.WriteMessage(gws.OpcodeText, pong) }))
	}
}

// A peer that answers pings too late (after 2.5 intervals, later than the
// heartbeat allows) but keeps sending other frames is live: anything read
// from it counts, not only a pong. (The heartbeat used to count only pongs
// and dropped it at the second interval.)
func TestHeartbeatAnyFrameIsLiveness(t *testing.T) {
	const interval = 300 * time.Millisecond
	conns := make(chan *wsactor.Conn, 1)
	_, url := startServer(t, wsactor.WithPingInterval(interval),
		wsactor.WithConnectHook(func(c *wsactor.Conn) { conns <- c }))
	p := dialHB(t, url, interval*5/2)
	sc := recv(t, conns, "conn")
	// Messages every quarter interval for 8 intervals, each one a read.
	tick := time.NewTicker(interval / 4)
	defer tick.Stop()
	for range 32 {
		select {
		case <-sc.Done():
			t.Fatalf("a peer sending frames was dropped: %v", sc.Err())
		case <-tick.C:
			if err := p.ws.WriteMessage(gws.OpcodeText, []byte(`"still here"`)); err != nil {
				recv(t, sc.Done(), "the server conn to end after the socket closed")
				t.Fatalf("a peer sending frames was dropped (%v): %v", err, sc.Err())
			}
		}
	}
	if len(p.pings) < 2 {
		t.Fatalf("%d pings in 8 intervals: the heartbeat did not run", len(p.pings))
	}
}

// A peer silent after its last frame is dropped (ErrHeartbeat, no close
// frame) between 2 and 3 intervals after it: the bound asserted is 3
// intervals plus a generous allowance for a slow machine, which still
// fails if the drop never comes.
func TestHeartbeatDropsSilentPeer(t *testing.T) {
	const interval = 200 * time.Millisecond
	conns := make(chan *wsactor.Conn, 1)
	_, url := startServer(t, wsactor.WithPingInterval(interval),
		wsactor.WithConnectHook(func(c *wsactor.Conn) { conns <- c }))
	p := dialHB(t, url, -1) // never answers
	sc := recv(t, conns, "conn")
	last := time.Now()
	if err := p.ws.WriteMessage(gws.OpcodeText, []byte(`"last words"`)); err != nil {
		t.Fatal(err)
	}
	recv(t, sc.Done(), "the silent peer to be dropped")
	took := time.Since(last)
	if !errors.Is(sc.Err(), wsactor.ErrHeartbeat) {
		t.Fatalf("ended with %v, want ErrHeartbeat", sc.Err())
	}
	if limit := 3*interval + 3*time.Second; took > limit {
		t.Fatalf("dropped %v after its last frame, want at most %v", took, limit)
	}
	if n := len(p.pings); n < 1 {
		t.Fatalf("dropped after %d pings, want at least one", n)
	}
}

// The pings of one interval are spread over it, not sent as one burst:
// the first pings that n connections receive after they are all open come
// over most of an interval (each connection has its own phase).
func TestHeartbeatPingsSpread(t *testing.T) {
	const (
		interval = time.Second // long enough that a briefly starved heartbeat catching up does not bunch most pings
		n        = 24
	)
	conns := make(chan *wsactor.Conn, n)
	srv, url := startServer(t, wsactor.WithPingInterval(interval),
		wsactor.WithConnectHook(func(c *wsactor.Conn) { conns <- c }))
	peers := make([]*hbPeer, n)
	for i := range peers {
		peers[i] = dialHB(t, url, 0)
		recv(t, conns, "conn")
	}
	open := time.Now()
	var first, last time.Time
	for _, p := range peers {
		var at time.Time
		for at.Before(open) {
			at = recv(t, p.pings, "a ping")
		}
		if first.IsZero() || at.Before(first) {
			first = at
		}
		if at.After(last) {
			last = at
		}
	}
	if spread := last.Sub(first); spread < interval/3 {
		t.Fatalf("the first pings of %d connections came within %v, want them spread over at least a third of the %v interval", n, spread, interval)
	}
	if st := srv.Stats(); st.Conns != n {
		t.Fatalf("%d connections open, want %d (a peer answering at once was dropped)", st.Conns, n)
	}
}
