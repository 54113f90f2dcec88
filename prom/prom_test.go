package prom_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/wsactor/wsactor"
	"github.com/wsactor/wsactor/prom"
)

// serve runs srv at /primus and a registry holding m at /metrics on
// 127.0.0.1; it returns the host:port.
func serve(t *testing.T, srv *wsactor.Server, m *prom.Metrics) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	mux := http.NewServeMux()
	mux.Handle("/primus", srv)
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("server Close: %v", err)
		}
		hs.Close()
	})
	return strings.TrimPrefix(hs.URL, "http://")
}

func dial(t *testing.T, url string, opts ...wsactor.Option) *wsactor.Client {
	t.Helper()
	cl, err := wsactor.Dial(ctxWait(t), url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// TestScrapeCountsWhatHappened drives a real server over 127.0.0.1 —
// requests both ways ending in every way a test can make them end, bad
// frames, refused upgrades, a panic, a give-up, a broadcast that skips a
// member that does not read — then scrapes /metrics in the text format and
// checks each metric against what the test did, exactly.
func TestScrapeCountsWhatHappened(t *testing.T) {
	m := prom.New()
	release := make(chan struct{}) // the server's "slow" handlers wait for it
	started := make(chan struct{}, 8)
	serverConns := make(chan *wsactor.Conn, 8)
	badInput := make(chan error, 64)
	srv, err := wsactor.NewServer(
		wsactor.WithObserver(m),
		wsactor.WithMaxOutboundBytes(64<<10),
		wsactor.WithWriteTimeout(time.Minute),
		wsactor.WithRestartIntensity(1, time.Hour), // a second failure gives up
		wsactor.WithConnectHook(func(c *wsactor.Conn) { serverConns <- c }),
		wsactor.WithErrorHook(func(_ *wsactor.Conn, err error) { badInput <- err }),
		wsactor.WithAuthenticate(func(r *http.Request) (any, error) {
			if r.URL.Query().Get("deny") != "" {
				return nil, errors.New("denied")
			}
			return nil, nil
		}),
		wsactor.WithRequestHandler(func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
			var s string
			_ = req.Decode(&s)
			switch s {
			case "ok":
				return "fine", nil
			case "fail":
				return nil, errors.New("no")
			case "panic":
				panic("boom")
			case "slow": // ends by the peer's cancel; returns at cleanup
				started <- struct{}{}
				<-release
				return nil, ctx.Err()
			}
			return nil, errors.New("unknown")
		}),
	)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, srv, m)
	m.Watch(srv)
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) }) // before the server's Close
	url := "ws://" + addr + "/primus"

	// The client answers the server's requests.
	clientStarted := make(chan struct{}, 8)
	got := make(chan string, 4096)
	cl := dial(t, url,
		wsactor.WithMessageHandler(func(_ *wsactor.Conn, msg json.RawMessage) { got <- string(msg) }),
		wsactor.WithRequestHandler(func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
			var s string
			_ = req.Decode(&s)
			switch s {
			case "ok":
				return "fine", nil
			case "fail":
				return nil, errors.New("no")
			case "slow":
				clientStarted <- struct{}{}
				<-ctx.Done()
				return nil, ctx.Err()
			}
			return nil, errors.New("unknown")
		}))
	sc := recv(t, serverConns, "server conn")
	ctx := ctxWait(t)

	// Client to server: 3 replies, 2 errors, a timeout and a cancel (both
	// after the server's handler started, so that the server counts a
	// cancel for each), a panic (an error reply and a restart).
	for range 3 {
		if _, err := cl.Request(ctx, "ok"); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if _, err := cl.Request(ctx, "fail"); !errors.As(err, new(*wsactor.RemoteError)) {
			t.Fatalf("fail: %v", err)
		}
	}
	tctx, tcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	if _, err := cl.Request(tctx, "slow"); !errors.Is(err, wsactor.ErrTimeout) {
		t.Fatalf("slow: %v, want ErrTimeout", err)
	}
	tcancel()
	recv(t, started, "slow handler") // it started before the timeout
	cctx, ccancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { _, err := cl.Request(cctx, "slow"); errc <- err }()
	recv(t, started, "slow handler")
	ccancel()
	if err := recv(t, errc, "canceled request"); !errors.Is(err, wsactor.ErrCanceled) {
		t.Fatalf("canceled request: %v", err)
	}
	if _, err := cl.Request(ctx, "panic"); !errors.Is(err, wsactor.ErrHandlerPanic) && !errors.As(err, new(*wsactor.RemoteError)) {
		t.Fatalf("panic: %v", err)
	}

	// Server to client: 2 replies, an error, a cancel, a timeout.
	for range 2 {
		if _, err := sc.Request(ctx, "ok"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sc.Request(ctx, "fail"); !errors.As(err, new(*wsactor.RemoteError)) {
		t.Fatalf("server fail: %v", err)
	}
	cctx, ccancel = context.WithCancel(ctx)
	go func() { _, err := sc.Request(cctx, "slow"); errc <- err }()
	recv(t, clientStarted, "client slow handler")
	ccancel()
	if err := recv(t, errc, "server canceled request"); !errors.Is(err, wsactor.ErrCanceled) {
		t.Fatalf("server canceled request: %v", err)
	}
	tctx, tcancel = context.WithTimeout(ctx, 300*time.Millisecond)
	if _, err := sc.Request(tctx, "slow"); !errors.Is(err, wsactor.ErrTimeout) {
		t.Fatalf("server slow: %v, want ErrTimeout", err)
	}
	tcancel()

	// A client whose actor on the server fails twice: a restart, then a
	// give-up that closes its connection (it does not reconnect).
	d := dial(t, url, wsactor.WithReconnect(wsactor.Backoff{}, 0, time.Minute, 0))
	dc := recv(t, serverConns, "server conn of d")
	for range 2 {
		if _, err := d.Request(ctx, "panic"); err == nil {
			t.Fatal("panic: no error")
		}
	}
	recv(t, dc.Done(), "give-up close")

	// Refused upgrades: a foreign origin, authentication, a bad handshake.
	for _, r := range []struct {
		path  string
		extra []string
		code  int
	}{
		{"/primus", []string{"Origin: http://evil.example"}, http.StatusForbidden},
		{"/primus?deny=1", nil, http.StatusUnauthorized},
		{"/primus", []string{"Sec-WebSocket-Version: 7"}, 0},
	} {
		if _, code := rawUpgrade(t, addr, r.path, r.extra...); r.code != 0 && code != r.code || code == http.StatusSwitchingProtocols {
			t.Fatalf("%s %v: status %d, want %d", r.path, r.extra, code, r.code)
		}
	}

	// Bad input on a raw connection: a binary frame, malformed JSON, a
	// null, a reply to an id never issued and a reply to a request that is
	// not pending (a well-formed id).
	raw, code := rawUpgrade(t, addr, "/primus")
	if code != http.StatusSwitchingProtocols {
		t.Fatalf("raw upgrade: %d", code)
	}
	rc := recv(t, serverConns, "raw server conn")
	writeFrame(t, raw, 0x2, "bin")
	writeFrame(t, raw, 0x1, `{"a":`)
	writeFrame(t, raw, 0x1, `null`)
	writeFrame(t, raw, 0x1, `{"plugin":"primus-responder","responseId":"x","data":1}`)
	writeFrame(t, raw, 0x1, `{"plugin":"primus-responder","responseId":"0b7e6d3c-1f3a-4d2e-9c1b-2a3b4c5d6e7f","data":1}`)
	kinds := map[string]int{}
	for range 3 + 5 { // 3 panics, 5 bad frames
		err := recv(t, badInput, "bad input")
		switch {
		case errors.Is(err, wsactor.ErrHandlerPanic):
			kinds["panic"]++
		case errors.Is(err, wsactor.ErrBinaryFrame):
			kinds["binary"]++
		case errors.Is(err, wsactor.ErrNull):
			kinds["null"]++
		case errors.Is(err, wsactor.ErrMalformed):
			kinds["malformed"]++
		case errors.Is(err, wsactor.ErrUnknownReply):
			kinds["unknown_reply"]++
		case errors.Is(err, wsactor.ErrLateReply):
			kinds["late_reply"]++
		default:
			t.Fatalf("unexpected bad input: %v", err)
		}
	}

	// A broadcast to the client and to the raw connection, which does not
	// read: it is skipped once its queue is over the outbound bound.
	for _, c := range []*wsactor.Conn{sc, rc} {
		if err := c.Join("room"); err != nil {
			t.Fatal(err)
		}
	}
	big := strings.Repeat("x", 16<<10)
	var sent, skipped int
	for round := 0; skipped == 0; round++ {
		if round == 10000 {
			t.Fatal("the raw member was never skipped")
		}
		res, err := srv.Broadcast("room", big, nil)
		if err != nil {
			t.Fatal(err)
		}
		sent, skipped = sent+res.Sent, skipped+res.Skipped
		recv(t, got, "broadcast") // the client's queue is empty at each round
	}

	// A barrier: the server's loop for sc has handled everything before
	// this request (its reply is observed before the caller returns).
	if _, err := sc.Request(ctx, "ok"); err != nil {
		t.Fatal(err)
	}

	fams := scrape(t, "http://"+addr+"/metrics")
	reqs := map[[2]string]float64{
		{"inbound", "reply"}: 3, {"inbound", "error"}: 2 + 1 + 2, {"inbound", "canceled"}: 2,
		{"outbound", "reply"}: 3, {"outbound", "error"}: 1, {"outbound", "canceled"}: 1, {"outbound", "timeout"}: 1,
	}
	var wants []want
	for _, dir := range prom.Directions {
		var n float64
		for _, o := range prom.Outcomes {
			v := reqs[[2]string{dir, o}]
			wants = append(wants, want{"wsactor_requests_total", []string{label("direction", dir), label("outcome", o)}, v})
			if o != "refused" {
				n += v
			}
		}
		wants = append(wants, want{"wsactor_request_duration_seconds", []string{label("direction", dir)}, n})
	}
	refused := map[string]float64{"origin": 1, "auth": 1, "handshake": 1}
	for _, r := range prom.Reasons {
		wants = append(wants, want{"wsactor_connections_refused_total", []string{label("reason", r)}, refused[r]})
	}
	for _, k := range prom.Kinds {
		wants = append(wants, want{"wsactor_bad_input_total", []string{label("kind", k)}, float64(kinds[k])})
	}
	wants = append(wants,
		want{"wsactor_connections_accepted_total", nil, 3},
		want{"wsactor_connections_open", nil, 2},
		want{"wsactor_connections_closed_total", nil, 1},
		want{"wsactor_requests_pending", nil, 0},
		want{"wsactor_requests_in_progress", nil, 0},
		want{"wsactor_handler_pool_queued", nil, 0},
		want{"wsactor_late_replies_total", nil, 1},
		want{"wsactor_unknown_replies_total", nil, 1},
		want{"wsactor_duplicate_requests_total", nil, 0},
		want{"wsactor_handler_panics_total", nil, 3},
		want{"wsactor_actor_restarts_total", nil, 2},
		want{"wsactor_actor_give_ups_total", nil, 1},
		want{"wsactor_heartbeat_timeouts_total", nil, 0},
		want{"wsactor_broadcast_deliveries_total", nil, float64(sent)},
		want{"wsactor_broadcast_skips_total", []string{label("reason", "slow")}, 1},
		want{"wsactor_broadcast_skips_total", []string{label("reason", "closed")}, 0},
		want{"wsactor_messages_sent_total", nil, float64(sent)},
		want{"wsactor_messages_received_total", nil, 0},
		want{"wsactor_reconnects_total", nil, 0},
	)
	check(t, fams, wants)
	// The raw member's queue drains into the kernel's socket buffer,
	// which grows meanwhile: its size at the scrape is not known here
	// (TestCollectReadsSource checks the gauge's wiring).
	if _, ok := value(fams, "wsactor_outbound_queued_bytes"); !ok {
		t.Error("wsactor_outbound_queued_bytes: missing")
	}
	if w, ok := value(fams, "wsactor_handler_pool_workers"); !ok || w < 2 {
		t.Errorf("wsactor_handler_pool_workers = %v (%v), want >= 2: two handlers wait for release", w, ok)
	}
	once.Do(func() { close(release) })
}

// fakeSource reports fixed counters.
type fakeSource struct{ st wsactor.Stats }

func (f fakeSource) Stats() wsactor.Stats { return f.st }
func (f fakeSource) QueuedBytes() int64   { return 4242 }

// TestCollectReadsSource: each metric read at scrape time reports its own
// field of Stats (distinct values, so that a swapped field shows).
func TestCollectReadsSource(t *testing.T) {
	st := wsactor.Stats{
		Conns: 1, Accepted: 2, Closed: 3, Pending: 4, InProgress: 5, PoolWorkers: 6, PoolQueued: 7,
		LateReplies: 8, UnknownReplies: 9, DuplicateRequests: 10, HandlerPanics: 11, Restarts: 12,
		GiveUps: 13, HeartbeatTimeouts: 14, BroadcastSent: 15, MessagesIn: 16, MessagesOut: 17,
		Reconnects: 18, BroadcastSkipped: 19, BroadcastClosed: 20,
	}
	for i := range st.RefusedBy {
		st.RefusedBy[i] = int64(100 + i)
	}
	for i := range st.BadInputBy {
		st.BadInputBy[i] = int64(200 + i)
	}
	m := prom.New()
	m.Watch(fakeSource{st})
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	hs := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer hs.Close()
	fams := scrape(t, hs.URL)
	wants := []want{
		{"wsactor_connections_open", nil, 1},
		{"wsactor_connections_accepted_total", nil, 2},
		{"wsactor_connections_closed_total", nil, 3},
		{"wsactor_requests_pending", nil, 4},
		{"wsactor_requests_in_progress", nil, 5},
		{"wsactor_handler_pool_workers", nil, 6},
		{"wsactor_handler_pool_queued", nil, 7},
		{"wsactor_late_replies_total", nil, 8},
		{"wsactor_unknown_replies_total", nil, 9},
		{"wsactor_duplicate_requests_total", nil, 10},
		{"wsactor_handler_panics_total", nil, 11},
		{"wsactor_actor_restarts_total", nil, 12},
		{"wsactor_actor_give_ups_total", nil, 13},
		{"wsactor_heartbeat_timeouts_total", nil, 14},
		{"wsactor_broadcast_deliveries_total", nil, 15},
		{"wsactor_messages_received_total", nil, 16},
		{"wsactor_messages_sent_total", nil, 17},
		{"wsactor_reconnects_total", nil, 18},
		{"wsactor_broadcast_skips_total", []string{label("reason", "slow")}, 19},
		{"wsactor_broadcast_skips_total", []string{label("reason", "closed")}, 20},
		{"wsactor_outbound_queued_bytes", nil, 4242},
	}
	for i, r := range prom.Reasons {
		wants = append(wants, want{"wsactor_connections_refused_total", []string{label("reason", r)}, float64(100 + i)})
	}
	for i, k := range prom.Kinds {
		wants = append(wants, want{"wsactor_bad_input_total", []string{label("kind", k)}, float64(200 + i)})
	}
	check(t, fams, wants)
	if n := len(prom.Kinds); n != int(wsactor.NumBadInputKinds) {
		t.Fatalf("%d kinds", n)
	}
	problems, err := testutil.CollectAndLint(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// TestScrapeHeartbeatTimeout: a peer that never answers the heartbeat is
// dropped, and counted once.
func TestScrapeHeartbeatTimeout(t *testing.T) {
	m := prom.New()
	conns := make(chan *wsactor.Conn, 1)
	srv, err := wsactor.NewServer(wsactor.WithObserver(m), wsactor.WithPingInterval(50*time.Millisecond),
		wsactor.WithConnectHook(func(c *wsactor.Conn) { conns <- c }))
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, srv, m)
	m.Watch(srv)
	if _, code := rawUpgrade(t, addr, "/primus"); code != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %d", code)
	}
	c := recv(t, conns, "server conn")
	recv(t, c.Done(), "heartbeat drop") // closed once the disconnect is counted
	if err := c.Err(); !errors.Is(err, wsactor.ErrHeartbeat) {
		t.Fatalf("Err %v, want ErrHeartbeat", err)
	}
	check(t, scrape(t, "http://"+addr+"/metrics"), []want{
		{"wsactor_heartbeat_timeouts_total", nil, 1},
		{"wsactor_connections_accepted_total", nil, 1},
		{"wsactor_connections_closed_total", nil, 1},
		{"wsactor_connections_open", nil, 0},
	})
}

// BenchmarkObserveRequest: what a request pays for the Observer (a
// counter and a histogram observation), from 2 goroutines at once.
func BenchmarkObserveRequest(b *testing.B) {
	m := prom.New()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.ObserveRequest(wsactor.Inbound, wsactor.OutcomeReply, 1500*time.Microsecond)
		}
	})
}
