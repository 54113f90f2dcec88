package wsactor_test

// Interop with software this project did not write: stock Node Primus 8.0.9 +
// primus-responder 1.0.4 (js/interop/*.mjs) in both directions, and the
// browser client js/wsactor.js in headless Chromium (js/test/browser-go.mjs)
// against a wsactor Server.
//
// These tests need node, js/node_modules (js/install-test-deps.sh) and
// /usr/bin/chromium. They skip only when node is missing and CI is not set;
// on CI (CI set in the environment) every missing piece is a failure.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wsactor/wsactor"
)

// jsDir is the JS half of the repository, relative to this package.
const jsDir = "js"

// requireNode returns the node binary. It skips the test only when node is
// missing and CI is not set; a missing js/node_modules (or, with browser,
// Chromium) fails it with what to run.
func requireNode(t testing.TB, browser bool) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("node is not installed, and CI is set: the interop tests must run on CI (%v)", err)
		}
		t.Skipf("node is not installed (%v); these tests run when it is, and must run when CI is set", err)
	}
	mods := []string{"primus", "primus-responder"}
	if browser {
		mods = append(mods, "playwright-core")
	}
	for _, m := range mods {
		if _, err := os.Stat(filepath.Join(jsDir, "node_modules", m, "package.json")); err != nil {
			t.Fatalf("%s/node_modules/%s is missing: run js/install-test-deps.sh before go test (%v)", jsDir, m, err)
		}
	}
	if browser {
		if _, err := os.Stat(chromiumPath()); err != nil {
			t.Fatalf("Chromium is missing at %s: run js/install-test-deps.sh before go test (%v)", chromiumPath(), err)
		}
	}
	return node
}

func chromiumPath() string {
	if p := os.Getenv("CHROMIUM_PATH"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

// nodeEvent is one JSON line printed by a Node program.
type nodeEvent map[string]any

func (e nodeEvent) name() string { s, _ := e["event"].(string); return s }

func (e nodeEvent) num(key string) int { f, _ := e[key].(float64); return int(f) }

func (e nodeEvent) str(key string) string { s, _ := e[key].(string); return s }

// nodeProc is a Node program run by a test in its own process group. Its
// stdout is parsed as JSON lines; stdin takes its commands. It is always
// stopped when the test ends.
type nodeProc struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	cancel context.CancelFunc
	exited chan struct{} // closed when Wait returned (all output is in)

	mu      sync.Mutex
	events  []nodeEvent
	changed chan struct{} // closed and replaced at each new event
	partial []byte
	stderr  bytes.Buffer
}

// startNode runs `node <script> args...` in js/ (script relative to js/).
func startNode(t testing.TB, browser bool, script string, args ...string) *nodeProc {
	t.Helper()
	node := requireNode(t, browser)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, node, append([]string{script}, args...)...)
	cmd.Dir = jsDir
	cmd.Env = append(os.Environ(), "CHROMIUM_PATH="+chromiumPath())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	p := &nodeProc{name: filepath.Base(script), cmd: cmd, cancel: cancel, exited: make(chan struct{}), changed: make(chan struct{})}
	cmd.Stdout = (*stdoutSink)(p)
	cmd.Stderr = (*stderrSink)(p)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	p.stdin = stdin
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", script, err)
	}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop closes stdin (the programs then exit), then escalates to SIGTERM and
// SIGKILL of the whole process group while the program still runs, and
// waits for the exit.
func (p *nodeProc) stop(t testing.TB) {
	_ = p.stdin.Close()
	pid := p.cmd.Process.Pid
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pid, syscall.SIGTERM) // playwright closes its browser on SIGTERM
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
			p.cancel()
			<-p.exited
		}
	}
	p.cancel()
	// No kill after the exit: the group id may be reused once the leader is
	// reaped. Chromium runs in its own group and exits with playwright.
	if t.Failed() {
		p.mu.Lock()
		last := p.events[max(0, len(p.events)-15):]
		t.Logf("%s: last events %v\nstderr:\n%s", p.name, last, p.stderr.String())
		p.mu.Unlock()
	}
}

type stdoutSink nodeProc

func (s *stdoutSink) Write(b []byte) (int, error) {
	p := (*nodeProc)(s)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.partial = append(p.partial, b...)
	added := false
	for {
		i := bytes.IndexByte(p.partial, '\n')
		if i < 0 {
			break
		}
		line := bytes.TrimSpace(p.partial[:i])
		p.partial = p.partial[i+1:]
		if len(line) == 0 {
			continue
		}
		var ev nodeEvent
		if err := json.Unmarshal(line, &ev); err != nil || ev == nil {
			ev = nodeEvent{"event": "unparsed", "line": string(line)}
		}
		p.events = append(p.events, ev)
		added = true
	}
	if added {
		close(p.changed)
		p.changed = make(chan struct{})
	}
	return len(b), nil
}

type stderrSink nodeProc

func (s *stderrSink) Write(b []byte) (int, error) {
	p := (*nodeProc)(s)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stderr.Len() < 1<<16 {
		p.stderr.Write(b)
	}
	return len(b), nil
}

func (p *nodeProc) stderrText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// mark is the number of events so far: waitFrom(mark, …) sees later ones.
func (p *nodeProc) mark() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.events)
}

func (p *nodeProc) count(pred func(nodeEvent) bool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, e := range p.events {
		if pred(e) {
			n++
		}
	}
	return n
}

// waitFrom returns the first event at index >= from that matches pred. It
// fails the test after the deadline or when the program exits first.
func (p *nodeProc) waitFrom(t testing.TB, from int, what string, pred func(nodeEvent) bool) nodeEvent {
	t.Helper()
	return p.waitFromTimeout(t, from, wait, what, pred)
}

// waitFromTimeout is waitFrom with a deadline of its own, for long runs.
func (p *nodeProc) waitFromTimeout(t testing.TB, from int, d time.Duration, what string, pred func(nodeEvent) bool) nodeEvent {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	exited := false
	for {
		p.mu.Lock()
		for ; from < len(p.events); from++ {
			if pred(p.events[from]) {
				ev := p.events[from]
				p.mu.Unlock()
				return ev
			}
		}
		changed := p.changed
		p.mu.Unlock()
		if exited {
			t.Fatalf("%s exited (%v) before %s", p.name, p.cmd.ProcessState, what)
		}
		select {
		case <-changed:
		case <-p.exited:
			exited = true // look once more: all output is in
		case <-deadline.C:
			t.Fatalf("%s: timed out waiting for %s", p.name, what)
		}
	}
}

func (p *nodeProc) waitEvent(t testing.TB, name string) nodeEvent {
	t.Helper()
	return p.waitFrom(t, 0, "event "+name, func(e nodeEvent) bool { return e.name() == name })
}

// command writes a stdin command and returns its acknowledgement.
func (p *nodeProc) command(t testing.TB, line string) nodeEvent {
	t.Helper()
	from := p.mark()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		t.Fatalf("%s: write %q: %v", p.name, line, err)
	}
	cmd, _, _ := strings.Cut(line, " ")
	ack := p.waitFrom(t, from, "ack of "+cmd, func(e nodeEvent) bool { return e.name() == "ack" && e.str("cmd") == cmd })
	if msg := ack.str("error"); msg != "" {
		t.Fatalf("%s: command %q: %s", p.name, line, msg)
	}
	return ack
}

// exitCode waits for the program to exit and returns its exit code.
func (p *nodeProc) exitCode(t testing.TB) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(wait):
		t.Fatalf("%s did not exit", p.name)
	}
	return p.cmd.ProcessState.ExitCode()
}

func (p *nodeProc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// startPrimusServer runs the stock Node Primus server and returns it and
// its ws:// URL.
func startPrimusServer(t testing.TB, args ...string) (*nodeProc, string) {
	t.Helper()
	p := startNode(t, false, "interop/primus-server.mjs", args...)
	l := p.waitEvent(t, "listening")
	return p, fmt.Sprintf("ws://127.0.0.1:%d/primus", l.num("port"))
}

// startPrimusClient runs the stock Node Primus client against url.
func startPrimusClient(t testing.TB, url string, args ...string) *nodeProc {
	t.Helper()
	return startNode(t, false, "interop/primus-client.mjs", append([]string{"--url", url}, args...)...)
}

type hello struct {
	Op   string `json:"op"`
	N    int    `json:"n"`
	From string `json:"from,omitempty"`
}

// goHello answers the stock Node server's {op:'hello',n} with
// {op:'hello',n,from:'go'} and echoes anything else.
func goHello(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
	var h hello
	if req.Data != nil && req.Decode(&h) == nil && h.Op == "hello" {
		return hello{Op: "hello", N: h.N, From: "go"}, nil
	}
	if req.Data == nil {
		return wsactor.NoData, nil
	}
	return req.Data, nil
}

func decodeHello(r wsactor.Response) (hello, error) {
	var h hello
	err := r.Decode(&h)
	return h, err
}

// ---------------------------------------------------------------------------
// Stock Node Primus client → wsactor server

// Thousands of concurrent writeAndWait calls from a stock client, all
// answered correctly, while the server asks the client a thousand things.
func TestInteropNodeClientManyRequests(t *testing.T) {
	const n, back = 5000, 1000
	conns := make(chan *wsactor.Conn, 2)
	// A stock client has no cap on requests in flight; over the server's
	// default cap per connection (1024) the server stops reading until
	// requests end, while its own requests' replies still come in.
	srv, url := startServer(t, wsactor.WithRequestHandler(arith),
		wsactor.WithConnectHook(func(c *wsactor.Conn) { conns <- c }))
	start := time.Now()
	p := startPrimusClient(t, url, "--n", fmt.Sprint(n), "--stay-ms", "60000", "--timeout-ms", "30000")
	sc := recv(t, conns, "the node client's connection")
	ctx := ctxWait(t)

	// The server's own requests to that client, concurrent with its batch.
	var wg sync.WaitGroup
	var wrongBack atomic.Int32
	backStart := time.Now()
	for i := range back {
		wg.Go(func() {
			r, err := sc.Request(ctx, hello{Op: "hello", N: i})
			h, derr := decodeHello(r)
			if err != nil || derr != nil || h != (hello{Op: "hello", N: i, From: "node"}) {
				wrongBack.Add(1)
				t.Errorf("server→client %d: %s %v %v", i, r.Data, err, derr)
			}
		})
	}
	wg.Wait()
	backTook := time.Since(backStart)

	res := p.waitEvent(t, "result")
	took := time.Since(start)
	if res.num("sent") != n || res.num("matched") != n || res.num("wrong") != 0 || res.num("missing") != 0 || res["timedOut"] != nil {
		t.Fatalf("node client result %v", res)
	}
	if wrongBack.Load() != 0 {
		t.Fatalf("%d server→client requests wrong", wrongBack.Load())
	}
	t.Logf("stock Node client → wsactor: %d concurrent writeAndWait, %d matched, %d ms in the client (%v from process start); wsactor → client: %d requests in %v",
		n, res.num("matched"), res.num("ms"), took.Round(time.Millisecond), back, backTook.Round(time.Millisecond))

	p.stop(t) // stdin closes: the client ends and exits
	if code := p.exitCode(t); code != 0 {
		t.Fatalf("node client exit code %d", code)
	}
	ex := p.waitEvent(t, "exit")
	if ex.num("opens") != 1 || ex.num("reconnects") != 0 {
		t.Fatalf("exit %v", ex)
	}
	recv(t, sc.Done(), "server conn closed")
	if st := srv.Stats(); st.Received != n || st.Answered != n || st.Replied != back || st.Requests != back {
		t.Fatalf("server stats %+v", st)
	}
}

// Issue item 8: a stock client's burst of 20,000 writeAndWait, far over the
// server's default cap on requests in progress (1024), is answered in full,
// as a stock Primus server answers it: over the cap the server stops
// reading that connection (TCP backpressure) instead of answering busy,
// which a stock client would see as undefined.
func TestInteropNodeClientBurstOverDefaultCap(t *testing.T) {
	const n = 20000
	var g peak
	h := func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
		g.enter()
		defer g.leave()
		// Some work (a query, say): 20 ms each on the default pool's 256
		// workers answers ~12,800 requests/s, slower than the client sends
		// them, so the requests in progress pile up past the cap.
		work := time.NewTimer(20 * time.Millisecond)
		defer work.Stop()
		select {
		case <-work.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return arith(ctx, c, req)
	}
	conns := make(chan *wsactor.Conn, 2)
	srv, url := startServer(t, wsactor.WithRequestHandler(h),
		wsactor.WithConnectHook(func(c *wsactor.Conn) { conns <- c }))
	p := startPrimusClient(t, url, "--n", fmt.Sprint(n), "--timeout-ms", "120000")
	sc := recv(t, conns, "the node client's connection")
	res := p.waitFromTimeout(t, 0, 150*time.Second, "result", func(e nodeEvent) bool { return e.name() == "result" })
	if res.num("sent") != n || res.num("matched") != n || res.num("wrong") != 0 || res.num("missing") != 0 || res["timedOut"] != nil {
		t.Fatalf("node client result %v", res)
	}
	if code := p.exitCode(t); code != 0 {
		t.Fatalf("node client exit code %d", code)
	}
	recv(t, sc.Done(), "server conn closed")
	st := srv.Stats()
	if st.Received != n || st.Answered != n || st.Busy != 0 {
		t.Fatalf("server: received %d, answered %d, busy %d", st.Received, st.Answered, st.Busy)
	}
	if got := g.max.Load(); got > 1024 {
		t.Fatalf("%d handlers of one connection ran at once, over the default cap", got)
	}
	t.Logf("stock Node client: %d concurrent writeAndWait answered in %d ms (client's clock); peak %d handlers of the connection",
		n, res.num("ms"), g.max.Load())
}

// The server's heartbeats keep a stock client connected for many intervals.
func TestInteropNodeClientHeartbeat(t *testing.T) {
	const interval = 200 * time.Millisecond
	conns := make(chan *wsactor.Conn, 2)
	_, url := startServer(t, wsactor.WithPingInterval(interval),
		wsactor.WithConnectHook(func(c *wsactor.Conn) { conns <- c }))
	p := startPrimusClient(t, url, "--n", "0", "--stay-ms", fmt.Sprint((5 * interval).Milliseconds()))
	sc := recv(t, conns, "conn")
	ex := p.waitEvent(t, "exit")
	if ex.str("reason") != "done" || ex.num("code") != 0 || ex.num("opens") != 1 || ex.num("reconnects") != 0 {
		t.Fatalf("client exit %v, want it to stay 5 intervals on one connection", ex)
	}
	if pongs := ex.num("pongs"); pongs < 3 {
		t.Fatalf("client answered %d pings in 5 intervals, want >= 3", pongs)
	}
	recv(t, sc.Done(), "server conn closed")
	if err := sc.Err(); errors.Is(err, wsactor.ErrHeartbeat) {
		t.Fatalf("the server dropped the answering client: %v", err)
	}
	select {
	case c := <-conns:
		t.Fatalf("a second connection %s", c.ID())
	default:
	}
}

// A dropped connection makes a stock client reconnect; an intentional close
// (Conn.Close → "primus::server::close") makes it end without reconnecting.
func TestInteropNodeClientReconnectsAfterDropNotAfterClose(t *testing.T) {
	conns := make(chan *wsactor.Conn, 4)
	srv, url := startServer(t, wsactor.WithConnectHook(func(c *wsactor.Conn) { conns <- c }))
	p := startPrimusClient(t, url, "--n", "0", "--stay-ms", "60000")
	first := recv(t, conns, "first conn")
	p.waitEvent(t, "open")

	// Drop: the socket dies without a close frame.
	mark := p.mark()
	if err := wsactor.DropForTest(first); err != nil {
		t.Fatal(err)
	}
	p.waitFrom(t, mark, "reconnect scheduled", func(e nodeEvent) bool { return e.name() == "reconnect" })
	second := recv(t, conns, "reconnected conn")
	p.waitFrom(t, mark, "second open", func(e nodeEvent) bool { return e.name() == "open" })
	if second == first {
		t.Fatal("same Conn after a reconnect")
	}
	// The new session works both ways.
	r, err := second.Request(ctxWait(t), hello{Op: "hello", N: 2})
	if h, derr := decodeHello(r); err != nil || derr != nil || h.From != "node" || h.N != 2 {
		t.Fatalf("request after reconnect: %s %v", r.Data, err)
	}

	// Close on purpose: the client ends and exits long before --stay-ms.
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
	ex := p.waitEvent(t, "exit")
	if ex.str("reason") != "end" || ex.num("opens") != 2 || ex.num("reconnects") != 1 {
		t.Fatalf("client exit %v, want an end after 2 opens and 1 reconnect", ex)
	}
	if code := p.exitCode(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if n := p.count(func(e nodeEvent) bool { return e.name() == "reconnect" }); n != 1 {
		t.Fatalf("%d reconnects scheduled, want 1 (none after the close)", n)
	}
	select {
	case c := <-conns:
		t.Fatalf("the client reconnected after the server's close: %s", c.ID())
	default:
	}
	if st := srv.Stats(); st.Accepted != 2 {
		t.Fatalf("accepted %d connections, want 2", st.Accepted)
	}
}

// ---------------------------------------------------------------------------
// wsactor Go client → stock Node Primus server

// The Go client's heartbeat answers keep it connected to a stock server
// pinging every 150 ms.
func TestInteropGoClientNodeServerHeartbeat(t *testing.T) {
	p, url := startPrimusServer(t, "--ping-interval", "150")
	cl := dial(t, url)
	spark := p.waitEvent(t, "connection").str("id")
	start := time.Now()
	beats := 0
	p.waitFrom(t, 0, "4 heartbeats", func(e nodeEvent) bool {
		if e.name() == "heartbeat" && e.str("id") == spark {
			beats++
		}
		return beats >= 4
	})
	if n := p.count(func(e nodeEvent) bool { return e.name() == "disconnection" || e.name() == "connection" }); n != 1 {
		t.Fatalf("%d connections/disconnections over %v of heartbeats, want only the first connection", n, time.Since(start))
	}
	if r, err := cl.Request(ctxWait(t), op{Op: "add", A: 1, B: 2}); err != nil || checkInt(r, 3) != nil {
		t.Fatalf("after heartbeats: %s %v", r.Data, err)
	}
}

// Requests both ways, a drop by the server (reconnect), an end (no
// reconnect). The server pings every second only: under load (-race, two
// cores) Node may not read a pong within a 150 ms tick while it answers a
// burst, and would drop the client; the heartbeat has its own test.
func TestInteropGoClientNodeServer(t *testing.T) {
	p, url := startPrimusServer(t, "--ping-interval", "1000", "--log-requests")
	connected := make(chan *wsactor.Conn, 4)
	cl := dial(t, url, wsactor.WithRequestHandler(goHello),
		wsactor.WithConnectHook(func(c *wsactor.Conn) { connected <- c }),
		wsactor.WithReconnect(wsactor.Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond}, 10, time.Minute, time.Second))
	recv(t, connected, "first connect")
	spark := p.waitEvent(t, "connection").str("id")
	ctx := ctxWait(t)

	// Go asks Node.
	r, err := cl.Request(ctx, op{Op: "add", A: 2, B: 40})
	if err != nil || checkInt(r, 42) != nil {
		t.Fatalf("add: %s %v", r.Data, err)
	}
	const n = 2000
	start := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r, err := cl.Request(ctx, map[string]any{"op": "add", "a": i, "b": 7}) // a:0 must be sent
			if err != nil || checkInt(r, i+7) != nil {
				t.Errorf("add %d: %s %v", i, r.Data, err)
			}
		})
	}
	wg.Wait()
	t.Logf("wsactor Go client → stock Node server: %d concurrent requests in %v", n, time.Since(start).Round(time.Millisecond))

	// Node asks Go: inside a request ({op:'ask'}) and from its stdin.
	r, err = cl.Request(ctx, map[string]string{"op": "ask"})
	if h, derr := decodeHello(r); err != nil || derr != nil || h.From != "go" || h.N == 0 {
		t.Fatalf("ask: %s %v", r.Data, err)
	}
	ack := p.command(t, "ask")
	ns, _ := ack["n"].([]any)
	if ack.num("count") != 1 || len(ns) != 1 {
		t.Fatalf("ask ack %v", ack)
	}
	want := int(ns[0].(float64))
	ans := p.waitFrom(t, 0, "answer", func(e nodeEvent) bool { return e.name() == "answer" && e.num("n") == want })
	if d, _ := ans["data"].(map[string]any); d["from"] != "go" || d["op"] != "hello" {
		t.Fatalf("answer %v", ans)
	}

	// A drop by the server: the request in flight fails with ErrConnLost,
	// the client reconnects (a new spark) and works again.
	mark := p.mark()
	pending := make(chan error, 1)
	go func() { _, err := cl.Request(ctx, map[string]string{"op": "never"}); pending <- err }()
	p.waitFrom(t, mark, "the pending request", func(e nodeEvent) bool {
		d, _ := e["data"].(map[string]any)
		return e.name() == "request" && d["op"] == "never"
	})
	p.command(t, "drop")
	if err := recv(t, pending, "pending request"); !errors.Is(err, wsactor.ErrConnLost) {
		t.Fatalf("pending request: %v, want ErrConnLost", err)
	}
	recv(t, connected, "reconnect")
	spark2 := p.waitFrom(t, mark, "second connection", func(e nodeEvent) bool { return e.name() == "connection" }).str("id")
	if spark2 == spark {
		t.Fatal("same spark after a reconnect")
	}
	r, err = cl.Request(ctx, op{Op: "add", A: 1, B: 2})
	if err != nil || checkInt(r, 3) != nil {
		t.Fatalf("after reconnect: %s %v", r.Data, err)
	}
	if st := cl.Stats(); st.Reconnects != 1 {
		t.Fatalf("client reconnects %d, want 1", st.Reconnects)
	}

	// An intentional end: the client ends, no reconnect.
	p.command(t, "end")
	select {
	case <-cl.Done():
	case <-time.After(wait):
		t.Fatal("the client did not end after the server's end")
	}
	if !errors.Is(cl.Err(), wsactor.ErrServerEnded) {
		t.Fatalf("client ended with %v, want ErrServerEnded", cl.Err())
	}
	if n := p.count(func(e nodeEvent) bool { return e.name() == "connection" }); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
	select {
	case <-connected:
		t.Fatal("the client reconnected after end")
	default:
	}
}

// ---------------------------------------------------------------------------
// PRIMUS-WIRE.md §8 quirks

// §8.1: a top-level null crashes Node peers. The Go side refuses to send
// one (nulls inside envelopes are fine), and the Node server survives.
// The control shows the crash is real: one raw null frame kills a Node server.
func TestPrimusQuirkNullNeverSent(t *testing.T) {
	p, url := startPrimusServer(t, "--log-requests")
	nullHandler := func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) { return nil, nil }
	cl := dial(t, url, wsactor.WithRequestHandler(nullHandler))
	ctx := ctxWait(t)
	for _, v := range []any{nil, json.RawMessage("null"), json.RawMessage(" null\n"), (*int)(nil)} {
		if err := cl.Send(v); !errors.Is(err, wsactor.ErrNullMessage) {
			t.Fatalf("Send(%#v) = %v, want ErrNullMessage", v, err)
		}
	}
	if err := cl.Send("after the nulls"); err != nil {
		t.Fatal(err)
	}
	p.waitFrom(t, 0, "plain message", func(e nodeEvent) bool { return e.name() == "data" && e["data"] == "after the nulls" })
	// null inside envelopes: a request with data null, and a reply with data null.
	r, err := cl.Request(ctx, nil)
	if err != nil || string(r.Data) != "null" {
		t.Fatalf("Request(nil): %q %v", r.Data, err)
	}
	p.waitFrom(t, 0, "the null request", func(e nodeEvent) bool {
		d, ok := e["data"]
		return e.name() == "request" && ok && d == nil
	})
	n := int(p.command(t, "ask")["n"].([]any)[0].(float64))
	ans := p.waitFrom(t, 0, "null answer", func(e nodeEvent) bool { return e.name() == "answer" && e.num("n") == n })
	if d, ok := ans["data"]; !ok || d != nil {
		t.Fatalf("answer %v, want data null", ans)
	}
	// The Node server is alive and serving.
	if r, err := cl.Request(ctx, op{Op: "add", A: 1, B: 1}); err != nil || checkInt(r, 2) != nil {
		t.Fatalf("after the nulls: %s %v", r.Data, err)
	}
	if got := p.count(func(e nodeEvent) bool { return e.name() == "data" }); got != 1 || !p.running() {
		t.Fatalf("node server: %d data events (want 1), running %v", got, p.running())
	}

	// The same on the server side: Conn.Send(nil) to a stock Node client.
	conns := make(chan *wsactor.Conn, 1)
	_, surl := startServer(t, wsactor.WithConnectHook(func(c *wsactor.Conn) { conns <- c }))
	nc := startPrimusClient(t, surl, "--n", "0", "--stay-ms", "60000")
	sc := recv(t, conns, "node client conn")
	if err := sc.Send(nil); !errors.Is(err, wsactor.ErrNullMessage) {
		t.Fatalf("server Send(nil) = %v", err)
	}
	if err := sc.Send(map[string]int{"x": 1}); err != nil {
		t.Fatal(err)
	}
	nc.waitFrom(t, 0, "data", func(e nodeEvent) bool { return e.name() == "data" })
	if !nc.running() {
		t.Fatal("the node client died")
	}

	// Control: a raw null frame crashes a stock Node server.
	victim, vurl := startPrimusServer(t)
	raw := dialRaw(t, vurl)
	victim.waitEvent(t, "connection")
	raw.write(t, false, "null")
	if code := victim.exitCode(t); code == 0 {
		t.Fatalf("the Node server survived a null frame (exit code 0); stderr %s", victim.stderrText())
	}
	if s := victim.stderrText(); !strings.Contains(s, "null") {
		t.Fatalf("crash without the expected TypeError: %s", s)
	}
}

// primusLikeHandler answers like interop/primus-server.mjs, for byte-level
// comparisons with the stock server.
func primusLikeHandler(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
	if req.Data == nil {
		return wsactor.NoData, nil // done(undefined): no data key
	}
	var o struct {
		Op   string `json:"op"`
		A, B int
	}
	_ = json.Unmarshal(req.Data, &o)
	switch o.Op {
	case "add":
		return o.A + o.B, nil
	case "nodata":
		return wsactor.NoData, nil
	case "null":
		return nil, nil
	}
	return req.Data, nil
}

// §5.2/§8: ids that are not strings are echoed verbatim, and data left out
// stays left out. The same raw frames go to the stock Node server and to a
// wsactor server; the replies must be byte-for-byte the same.
func TestPrimusQuirkIDsAndNoDataVerbatim(t *testing.T) {
	_, nodeURL := startPrimusServer(t)
	_, goURL := startServer(t, wsactor.WithRequestHandler(primusLikeHandler))
	node, gosrv := dialRaw(t, nodeURL), dialRaw(t, goURL)
	for _, tc := range []struct{ frame, want string }{
		{`{"plugin":"primus-responder","requestId":7,"data":{"op":"add","a":2,"b":40}}`,
			`{"plugin":"primus-responder","responseId":7,"data":42}`},
		{`{"plugin":"primus-responder","requestId":"7","data":{"op":"add","a":1,"b":1}}`,
			`{"plugin":"primus-responder","responseId":"7","data":2}`},
		{`{"plugin":"primus-responder","requestId":12.5,"data":"x"}`,
			`{"plugin":"primus-responder","responseId":12.5,"data":"x"}`},
		{`{"plugin":"primus-responder","requestId":-3,"data":[1,null,true]}`,
			`{"plugin":"primus-responder","responseId":-3,"data":[1,null,true]}`},
		{`{"plugin":"primus-responder","requestId":"r-nodata-req"}`,
			`{"plugin":"primus-responder","responseId":"r-nodata-req"}`},
		{`{"plugin":"primus-responder","requestId":8,"data":{"op":"nodata"}}`,
			`{"plugin":"primus-responder","responseId":8}`},
		{`{"plugin":"primus-responder","requestId":9,"data":{"op":"null"}}`,
			`{"plugin":"primus-responder","responseId":9,"data":null}`},
	} {
		node.write(t, false, tc.frame)
		gosrv.write(t, false, tc.frame)
		fromNode, fromGo := node.read(t), gosrv.read(t)
		if fromNode != tc.want {
			t.Fatalf("stock server answered %s with %s, want %s (the expectation is wrong)", tc.frame, fromNode, tc.want)
		}
		if fromGo != fromNode {
			t.Fatalf("frame %s:\n wsactor: %s\n stock:   %s", tc.frame, fromGo, fromNode)
		}
	}
}

// §8.8: data left out both ways between wsactor and stock peers: Go NoData
// arrives as undefined, and JS done() arrives as Response.Data == nil.
func TestPrimusQuirkNoDataBothWays(t *testing.T) {
	// Go client ↔ stock Node server.
	p, url := startPrimusServer(t, "--log-requests")
	noData := func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
		return wsactor.NoData, nil
	}
	cl := dial(t, url, wsactor.WithRequestHandler(noData))
	ctx := ctxWait(t)
	r, err := cl.Request(ctx, wsactor.NoData) // the server's default op echoes done(undefined)
	if err != nil || r.Data != nil {
		t.Fatalf("Request(NoData) to the stock server: %q %v, want no data", r.Data, err)
	}
	req := p.waitEvent(t, "request")
	if _, has := req["data"]; has {
		t.Fatalf("the stock server got data %v, want it left out", req)
	}
	r, err = cl.Request(ctx, map[string]string{"op": "nodata"}) // done()
	if err != nil || r.Data != nil {
		t.Fatalf("done(): %q %v, want no data", r.Data, err)
	}
	n := int(p.command(t, "ask")["n"].([]any)[0].(float64))
	ans := p.waitFrom(t, 0, "answer", func(e nodeEvent) bool { return e.name() == "answer" && e.num("n") == n })
	if _, has := ans["data"]; has {
		t.Fatalf("the stock server's writeAndWait got %v, want undefined", ans)
	}

	// wsactor server ↔ stock Node client.
	conns := make(chan *wsactor.Conn, 1)
	_, surl := startServer(t, wsactor.WithConnectHook(func(c *wsactor.Conn) { conns <- c }))
	nc := startPrimusClient(t, surl, "--n", "0", "--stay-ms", "60000")
	sc := recv(t, conns, "node client conn")
	r, err = sc.Request(ctx, wsactor.NoData) // the client answers done(data) with data undefined
	if err != nil || r.Data != nil {
		t.Fatalf("server Request(NoData) to the stock client: %q %v", r.Data, err)
	}
	ev := nc.waitEvent(t, "request")
	if _, has := ev["data"]; has {
		t.Fatalf("the stock client got %v, want data undefined", ev)
	}
}

// An error reply (the wsactor extension) reaching a stock client: its
// writeAndWait callback gets undefined data, and it keeps working.
func TestPrimusQuirkErrorReplyToStockClient(t *testing.T) {
	conns := make(chan *wsactor.Conn, 1)
	srv, url := startServer(t, wsactor.WithConnectHook(func(c *wsactor.Conn) { conns <- c }),
		wsactor.WithRequestHandler(func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
			var o op
			_ = req.Decode(&o)
			switch o.A {
			case 3:
				return nil, &wsactor.RemoteError{Code: "refused", Message: "not three"}
			case 5:
				return nil, errors.New("plain failure")
			}
			return o.A + o.B, nil
		}))
	const n = 10
	p := startPrimusClient(t, url, "--n", fmt.Sprint(n), "--stay-ms", "60000")
	sc := recv(t, conns, "conn")
	res := p.waitEvent(t, "result")
	// Two callbacks ran with undefined (counted "wrong"), none is missing.
	if res.num("sent") != n || res.num("matched") != n-2 || res.num("wrong") != 2 || res.num("missing") != 0 {
		t.Fatalf("result %v, want 8 matched and 2 answered with undefined", res)
	}
	// Still working both ways.
	r, err := sc.Request(ctxWait(t), hello{Op: "hello", N: 5})
	if h, derr := decodeHello(r); err != nil || derr != nil || h.From != "node" {
		t.Fatalf("request after the error replies: %s %v", r.Data, err)
	}
	if n := p.count(func(e nodeEvent) bool { return e.name() == "error" || e.name() == "close" }); n != 0 {
		t.Fatalf("client saw %d errors/closes", n)
	}
	if st := srv.Stats(); st.AnsweredError != 2 || st.Answered != n-2 {
		t.Fatalf("server stats %+v", st)
	}
}

// ---------------------------------------------------------------------------
// js/wsactor.js in headless Chromium against a wsactor server

// statusRecorder records the HTTP status written for an upgrade request (a
// refusal; accepted upgrades are hijacked and write none).
type statusRecorder struct {
	http.ResponseWriter
	record func(code int)
}

func (w statusRecorder) WriteHeader(code int) {
	w.record(code)
	w.ResponseWriter.WriteHeader(code)
}

func (w statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type blockEnd struct {
	tag string
	err error
}

func TestBrowserAgainstGoServer(t *testing.T) {
	requireNode(t, true)
	page, err := os.ReadFile(filepath.Join(jsDir, "test", "browser-go.html"))
	if err != nil {
		t.Fatal(err)
	}
	client, err := os.ReadFile(filepath.Join(jsDir, "wsactor.js"))
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan *wsactor.Conn, 4)
	blockEnds := make(chan blockEnd, 8)
	handler := func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
		var m struct {
			Op, Tag string
			A, B, N int
		}
		if err := req.Decode(&m); err != nil {
			return nil, &wsactor.RemoteError{Code: wsactor.CodeBadRequest, Message: err.Error()}
		}
		switch m.Op {
		case "add":
			return m.A + m.B, nil
		case "askme": // the server asks the page back, on the same connection
			r, err := c.Request(ctx, hello{Op: "hello", N: m.N})
			return r.Data, err
		case "block": // tell the page it started, then wait for the cancel
			if err := c.Send(map[string]string{"started": m.Tag}); err != nil {
				return nil, err
			}
			<-ctx.Done()
			blockEnds <- blockEnd{m.Tag, ctx.Err()}
			return nil, ctx.Err()
		case "drop": // the network fails under the page
			if err := wsactor.DropForTest(c); err != nil {
				return nil, err
			}
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return nil, &wsactor.RemoteError{Code: "unknown_op", Message: m.Op}
	}
	srv, err := wsactor.NewServer(wsactor.WithRequestHandler(handler), wsactor.WithPingInterval(time.Second),
		wsactor.WithConnectHook(func(c *wsactor.Conn) { conns <- c }))
	if err != nil {
		t.Fatal(err)
	}
	var statusMu sync.Mutex
	refusals := map[string]int{} // Origin → HTTP status of a refused upgrade
	mux := http.NewServeMux()
	mux.HandleFunc("/primus", func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		srv.ServeHTTP(statusRecorder{w, func(code int) {
			statusMu.Lock()
			refusals[origin] = code
			statusMu.Unlock()
		}}, r)
	})
	serveFile := func(ctype string, body []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", ctype)
			_, _ = w.Write(body)
		}
	}
	mux.HandleFunc("GET /{$}", serveFile("text/html; charset=utf-8", page))
	mux.HandleFunc("GET /js/wsactor.js", serveFile("text/javascript; charset=utf-8", client))
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	hs := httptest.NewServer(mux)
	// Another origin (another port) serving the same page.
	other := httptest.NewServer(mux)
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("server Close: %v", err)
		}
		hs.Close()
		other.Close()
	})
	wsURL := "ws" + strings.TrimPrefix(hs.URL, "http") + "/primus"

	p := startNode(t, true, "test/browser-go.mjs", hs.URL+"/?mode=main", other.URL+"/?mode=cross&ws="+wsURL)

	// The server asks the page from outside any handler, with the Conn
	// from the connect hook.
	sc := recv(t, conns, "page connection")
	r, err := sc.Request(ctxWait(t), hello{Op: "hello", N: 1000})
	if h, derr := decodeHello(r); err != nil || derr != nil || h != (hello{Op: "hello", N: 1000, From: "browser"}) {
		t.Fatalf("server→page: %s %v", r.Data, err)
	}

	type pageOut struct {
		URL     string          `json:"url"`
		Result  json.RawMessage `json:"result"`
		Console []string        `json:"console"`
	}
	pages := map[string]pageOut{}
	for range 2 {
		ev := p.waitFrom(t, 0, "page result", func(e nodeEvent) bool { return e.name() == "page" && pages[e.str("mode")].URL == "" })
		b, _ := json.Marshal(ev)
		var po pageOut
		if err := json.Unmarshal(b, &po); err != nil {
			t.Fatal(err)
		}
		pages[ev.str("mode")] = po
	}
	if code := p.exitCode(t); code != 0 {
		t.Fatalf("browser-go.mjs exit code %d", code)
	}

	// The main page.
	var main struct {
		Error       string
		Sum         int
		ManyOK      bool
		Many        int
		ViaHandler  hello
		Asked       []hello
		Timeout     struct{ Name string }
		Abort       struct{ Name string }
		Dropped     []string
		SettledOnce bool
		AfterDrop   int
		Events      []string
		Stats       map[string]int
	}
	mainOut := pages["main"]
	if err := json.Unmarshal(mainOut.Result, &main); err != nil {
		t.Fatalf("main page result %s: %v", mainOut.Result, err)
	}
	if main.Error != "" {
		t.Fatalf("main page failed: %s\nconsole: %q", main.Error, mainOut.Console)
	}
	t.Logf("main page: %s", mainOut.Result)
	if main.Sum != 5 || !main.ManyOK || main.Many == 0 {
		t.Fatalf("page→server: sum %d, %d concurrent ok %v", main.Sum, main.Many, main.ManyOK)
	}
	if main.ViaHandler != (hello{Op: "hello", N: 41, From: "browser"}) {
		t.Fatalf("server→page inside a handler: %+v", main.ViaHandler)
	}
	if !slices.Contains(main.Asked, hello{Op: "hello", N: 1000}) {
		t.Fatalf("the page did not record the server's request: %+v", main.Asked)
	}
	if main.Timeout.Name != "TimeoutError" || main.Abort.Name != "AbortError" {
		t.Fatalf("timeout %+v abort %+v", main.Timeout, main.Abort)
	}
	// Each pending request failed once with DisconnectedError; the page
	// reconnected and a new request succeeded.
	if !slices.Equal(main.Dropped, []string{"DisconnectedError", "DisconnectedError", "DisconnectedError"}) || !main.SettledOnce || main.AfterDrop != 42 {
		t.Fatalf("drop: pending outcomes %q, after %d", main.Dropped, main.AfterDrop)
	}
	if s := main.Stats; s["disconnected"] != 3 || s["timedOut"] != 1 || s["aborted"] != 1 || s["opens"] != 2 || s["lateReplies"] != 0 || s["pending"] != 0 {
		t.Fatalf("page stats %v", s)
	}
	// The server saw the timeout and the abort end its handlers: the abort
	// as a cancel, the timeout by its deadline or the cancel.
	ends := map[string]error{}
	for range 4 { // timeout, abort, and the two blocked when the connection dropped
		e := recv(t, blockEnds, "handler ctx end")
		ends[e.tag] = e.err
	}
	if !errors.Is(ends["abort"], context.Canceled) {
		t.Fatalf("abort: the handler's ctx ended with %v, want Canceled (the cancel envelope)", ends["abort"])
	}
	for _, tag := range []string{"timeout", "p1", "p2"} {
		if ends[tag] == nil {
			t.Fatalf("handler %q: ctx did not end (%v)", tag, ends)
		}
	}
	recv(t, conns, "the page's second connection")
	if st := srv.Stats(); st.CancelsReceived < 1 {
		t.Fatalf("server stats %+v", st)
	}

	// The cross-origin page: refused with 403, and its client says so.
	var cross struct {
		Error      string
		Opens      int
		State      string
		End        struct{ Reason string }
		Errors     []string
		RequestErr string
	}
	crossOut := pages["cross"]
	if err := json.Unmarshal(crossOut.Result, &cross); err != nil {
		t.Fatalf("cross page result %s: %v", crossOut.Result, err)
	}
	t.Logf("cross-origin page: %s; console %q", crossOut.Result, crossOut.Console)
	if cross.Error != "" || cross.Opens != 0 || cross.State != "closed" || len(cross.Errors) == 0 || cross.RequestErr != "ClosedError" {
		t.Fatalf("cross-origin page %+v", cross)
	}
	statusMu.Lock()
	got, want := fmt.Sprint(refusals), fmt.Sprint(map[string]int{other.URL: http.StatusForbidden})
	statusMu.Unlock()
	if got != want {
		t.Fatalf("refused upgrades by Origin %s, want %s (only the other origin, with 403)", got, want)
	}
	if !slices.ContainsFunc(crossOut.Console, func(s string) bool { return strings.Contains(s, "403") }) {
		t.Fatalf("Chromium did not report the 403: %q", crossOut.Console)
	}
	if st := srv.Stats(); st.Refused < 1 {
		t.Fatalf("refused %d", st.Refused)
	}
}
