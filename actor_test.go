package wsactor_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lxzan/gws"
	"github.com/wsactor/wsactor"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const wait = 15 * time.Second

// startServer runs srv on 127.0.0.1 at /primus and returns its ws:// URL.
func startServer(t testing.TB, opts ...wsactor.Option) (*wsactor.Server, string) {
	t.Helper()
	srv, err := wsactor.NewServer(opts...)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/primus", srv)
	mux.Handle("/primus/", srv)
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("server Close: %v", err)
		}
		hs.Close()
	})
	return srv, "ws" + strings.TrimPrefix(hs.URL, "http") + "/primus"
}

func dial(t testing.TB, url string, opts ...wsactor.Option) *wsactor.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	cl, err := wsactor.Dial(ctx, url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

func ctxWait(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

// recv waits for a value on ch.
func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		t.Fatalf("timed out waiting for %s", what)
	}
	panic("unreachable")
}

type op struct {
	Op string `json:"op"`
	A  int    `json:"a,omitempty"`
	B  int    `json:"b,omitempty"`
	N  int    `json:"n,omitempty"`
}

// arith is a request handler: add answers a+b, echo the data, block waits for
// ctx, panic panics.
func arith(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
	var o op
	if err := req.Decode(&o); err != nil {
		return nil, &wsactor.RemoteError{Code: wsactor.CodeBadRequest, Message: err.Error()}
	}
	switch o.Op {
	case "add":
		return o.A + o.B, nil
	case "echo":
		return req.Data, nil
	case "nodata":
		return wsactor.NoData, nil
	case "block":
		<-ctx.Done()
		return nil, ctx.Err()
	case "panic":
		panic("handler bug")
	case "fail":
		return nil, errors.New("it failed")
	}
	return nil, &wsactor.RemoteError{Code: "unknown_op", Message: o.Op}
}

func TestRoundTripBothDirections(t *testing.T) {
	conns := make(chan *wsactor.Conn, 1)
	_, url := startServer(t, wsactor.WithRequestHandler(arith),
		wsactor.WithConnectHook(func(c *wsactor.Conn) { conns <- c }))
	cl := dial(t, url, wsactor.WithRequestHandler(arith))
	sc := recv(t, conns, "server conn")
	ctx := ctxWait(t)

	const n = 1000
	var wg sync.WaitGroup
	var wrong atomic.Int32
	for i := range n {
		wg.Go(func() {
			r, err := cl.Request(ctx, op{Op: "add", A: i, B: i})
			var got int
			if err != nil || r.Decode(&got) != nil || got != 2*i {
				wrong.Add(1)
				t.Errorf("client→server %d: %s %v", i, r.Data, err)
			}
		})
		wg.Go(func() {
			r, err := sc.Request(ctx, op{Op: "add", A: i, B: 1})
			var got int
			if err != nil || r.Decode(&got) != nil || got != i+1 {
				wrong.Add(1)
				t.Errorf("server→client %d: %s %v", i, r.Data, err)
			}
		})
	}
	wg.Wait()
	if wrong.Load() > 0 {
		t.Fatalf("%d wrong answers", wrong.Load())
	}
	// data left out, remote errors, typed and plain.
	r, err := cl.Request(ctx, op{Op: "nodata"})
	if err != nil || r.Data != nil {
		t.Fatalf("nodata: %q %v", r.Data, err)
	}
	var re *wsactor.RemoteError
	if _, err := cl.Request(ctx, op{Op: "fail"}); !errors.As(err, &re) || re.Code != wsactor.CodeError || re.Message != "it failed" {
		t.Fatalf("fail: %v", err)
	}
	if _, err := cl.Request(ctx, op{Op: "nope"}); !errors.As(err, &re) || re.Code != "unknown_op" {
		t.Fatalf("unknown op: %v", err)
	}
	// The callback form.
	got := make(chan int, 1)
	if err := sc.Go(ctx, op{Op: "add", A: 20, B: 22}, func(r wsactor.Response, err error) {
		var v int
		_ = r.Decode(&v)
		got <- v
	}); err != nil {
		t.Fatal(err)
	}
	if v := recv(t, got, "Go callback"); v != 42 {
		t.Fatalf("Go: %d", v)
	}
}

func TestManyClients(t *testing.T) {
	srv, url := startServer(t, wsactor.WithRequestHandler(arith))
	const clients, per = 40, 25
	var wg sync.WaitGroup
	for range clients {
		cl := dial(t, url)
		for j := range per {
			wg.Go(func() {
				r, err := cl.Request(ctxWait(t), op{Op: "add", A: j, B: 1000})
				var v int
				if err != nil || r.Decode(&v) != nil || v != j+1000 {
					t.Errorf("%s %v", r.Data, err)
				}
			})
		}
	}
	wg.Wait()
	if st := srv.Stats(); st.Conns != clients {
		t.Fatalf("server has %d conns, want %d", st.Conns, clients)
	}
	// A reply is counted as answered after its write returns, which may be
	// after the client has read it: read the counters once every actor has
	// stopped.
	if err := srv.Shutdown(ctxWait(t)); err != nil {
		t.Fatal(err)
	}
	if st := srv.Stats(); st.Received != clients*per || st.Answered != clients*per {
		t.Fatalf("server stats %+v", st)
	}
}

func TestPlainMessages(t *testing.T) {
	got := make(chan string, 10)
	_, url := startServer(t, wsactor.WithMessageHandler(func(c *wsactor.Conn, msg json.RawMessage) {
		got <- string(msg)
		_ = c.Send(map[string]string{"echo": string(msg)})
	}))
	back := make(chan string, 10)
	cl := dial(t, url, wsactor.WithMessageHandler(func(c *wsactor.Conn, msg json.RawMessage) { back <- string(msg) }))
	for _, v := range []any{"hello", 42, []int{1, 2}, map[string]int{"x": 1}} {
		if err := cl.Send(v); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{`"hello"`, `42`, `[1,2]`, `{"x":1}`} {
		if g := recv(t, got, "message"); g != want {
			t.Fatalf("server got %s, want %s", g, want)
		}
		if b := recv(t, back, "echo"); !strings.Contains(b, `"echo"`) {
			t.Fatalf("client got %s", b)
		}
	}
	if err := cl.Send(nil); !errors.Is(err, wsactor.ErrNullMessage) {
		t.Fatalf("Send(nil) = %v", err)
	}
	if err := cl.Send(json.RawMessage("null")); !errors.Is(err, wsactor.ErrNullMessage) {
		t.Fatalf("Send(null) = %v", err)
	}
}

// A request times out exactly once; the server's handler sees its ctx end
// (the cancel envelope), and the request timeout travels to the handler.
func TestTimeoutAndCancelOverTheWire(t *testing.T) {
	handlerCtx := make(chan error, 2)
	deadlines := make(chan time.Duration, 2)
	_, url := startServer(t, wsactor.WithRequestHandler(func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
		deadlines <- req.Timeout
		<-ctx.Done()
		handlerCtx <- ctx.Err()
		return nil, ctx.Err()
	}))
	cl := dial(t, url, wsactor.WithRequestTimeout(time.Hour))

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := cl.Request(ctx, "x")
	if !errors.Is(err, wsactor.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if d := recv(t, deadlines, "handler"); d <= 0 || d > 300*time.Millisecond {
		t.Fatalf("handler saw timeout %v, want (0, 300ms]", d)
	}
	if err := recv(t, handlerCtx, "handler ctx end"); err == nil {
		t.Fatal("handler ctx did not end")
	}

	ctx2, cancel2 := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() { _, err := cl.Request(ctx2, "y"); res <- err }()
	recv(t, deadlines, "second handler")
	cancel2()
	if err := recv(t, res, "cancelled request"); !errors.Is(err, wsactor.ErrCanceled) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want ErrCanceled", err)
	}
	if err := recv(t, handlerCtx, "handler ctx cancel"); !errors.Is(err, context.Canceled) {
		t.Fatalf("handler ctx: %v", err)
	}
	st := cl.Stats()
	if st.TimedOut != 1 || st.Canceled != 1 || st.Requests != 2 {
		t.Fatalf("client stats %+v", st)
	}
}

// A panic in a handler restarts that connection's actor only: the panicking
// request gets a panic error, the server's own pending requests on that
// connection fail with ErrRestarted, other connections are untouched; past
// the restart intensity the connection is closed with 1011.
func TestPanicRestartsOnlyThatConnection(t *testing.T) {
	conns := make(chan *wsactor.Conn, 2)
	srv, url := startServer(t, wsactor.WithRequestHandler(arith),
		wsactor.WithRestartIntensity(2, time.Minute),
		wsactor.WithConnectHook(func(c *wsactor.Conn) { conns <- c }))
	asked := make(chan struct{}, 1)
	clientBlock := func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
		asked <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	}
	victim := dial(t, url, wsactor.WithRequestHandler(clientBlock), wsactor.WithReconnect(wsactor.Backoff{}, 0, time.Minute, 0))
	sv := recv(t, conns, "victim conn")
	bystander := dial(t, url, wsactor.WithRequestHandler(arith))
	sb := recv(t, conns, "bystander conn")
	ctx := ctxWait(t)

	// The server has a request pending on each connection.
	pendingV := make(chan error, 1)
	go func() { _, err := sv.Request(ctx, "wait"); pendingV <- err }()
	recv(t, asked, "the server's request reached the victim") // so it is pending
	pendingB := make(chan error, 1)
	go func() {
		r, err := sb.Request(ctx, op{Op: "add", A: 1, B: 1})
		pendingB <- errors.Join(err, checkInt(r, 2))
	}()

	var re *wsactor.RemoteError
	if _, err := victim.Request(ctx, op{Op: "panic"}); !errors.As(err, &re) || re.Code != wsactor.CodePanic {
		t.Fatalf("panicking request: %v", err)
	}
	if err := recv(t, pendingV, "server's pending request"); !errors.Is(err, wsactor.ErrRestarted) || !errors.Is(err, wsactor.ErrHandlerPanic) {
		t.Fatalf("server's request on the restarted conn: %v", err)
	}
	if err := recv(t, pendingB, "bystander request"); err != nil {
		t.Fatalf("bystander: %v", err)
	}
	// The victim connection still serves after a restart.
	r, err := victim.Request(ctx, op{Op: "add", A: 2, B: 3})
	if err != nil || checkInt(r, 5) != nil {
		t.Fatalf("after restart: %s %v", r.Data, err)
	}
	// Two more panics: the third failure within the window gives up.
	for range 2 {
		_, _ = victim.Request(ctx, op{Op: "panic"})
	}
	select {
	case <-victim.Done():
	case <-time.After(wait):
		t.Fatal("the victim client did not end after the server gave up on its connection")
	}
	recv(t, sv.Done(), "server conn closed")
	if !strings.Contains(victim.Err().Error(), "1011") {
		t.Fatalf("victim ended with %v, want a 1011 close", victim.Err())
	}
	if st := srv.Stats(); st.Restarts != 2 || st.HandlerPanics < 3 {
		t.Fatalf("restarts %d panics %d", st.Restarts, st.HandlerPanics)
	}
	// The bystander is fine.
	if r, err := bystander.Request(ctx, op{Op: "add", A: 1, B: 2}); err != nil || checkInt(r, 3) != nil {
		t.Fatalf("bystander after: %v", err)
	}
}

func checkInt(r wsactor.Response, want int) error {
	var v int
	if err := r.Decode(&v); err != nil {
		return err
	}
	if v != want {
		return fmt.Errorf("got %d, want %d", v, want)
	}
	return nil
}

// Dropping the connection mid-request fails it with ErrConnLost; the client
// reconnects and serves again; the server's pending map is empty.
func TestDropMidRequestAndReconnect(t *testing.T) {
	conns := make(chan *wsactor.Conn, 4)
	inHandler := make(chan struct{}, 4)
	srv, url := startServer(t,
		wsactor.WithConnectHook(func(c *wsactor.Conn) { conns <- c }),
		wsactor.WithRequestHandler(func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
			if string(req.Data) == `"block"` {
				inHandler <- struct{}{}
				<-ctx.Done()
				return nil, ctx.Err()
			}
			return req.Data, nil
		}))
	reconnected := make(chan struct{}, 4)
	cl := dial(t, url, wsactor.WithReconnect(wsactor.Backoff{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond}, 10, time.Minute, time.Second),
		wsactor.WithConnectHook(func(c *wsactor.Conn) { reconnected <- struct{}{} }),
		wsactor.WithRequestHandler(func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
			<-ctx.Done() // the server's request stays pending until the drop
			return nil, ctx.Err()
		}))
	recv(t, reconnected, "first connect")
	sc := recv(t, conns, "server conn")
	ctx := ctxWait(t)

	res := make(chan error, 1)
	go func() { _, err := cl.Request(ctx, "block"); res <- err }()
	srvPending := make(chan error, 1)
	go func() { _, err := sc.Request(ctx, "never answered"); srvPending <- err }()
	recv(t, inHandler, "handler entered")
	// Kill the TCP connection under both sides without a close frame.
	if err := dropTCP(sc); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, res, "client request"); !errors.Is(err, wsactor.ErrConnLost) {
		t.Fatalf("client request: %v, want ErrConnLost", err)
	}
	if err := recv(t, srvPending, "server request"); !errors.Is(err, wsactor.ErrConnLost) {
		t.Fatalf("server request: %v, want ErrConnLost", err)
	}
	recv(t, reconnected, "reconnect")
	r, err := cl.Request(ctx, "after")
	if err != nil || string(r.Data) != `"after"` {
		t.Fatalf("after reconnect: %s %v", r.Data, err)
	}
	if st := cl.Stats(); st.Reconnects < 1 {
		t.Fatalf("client reconnects %d", st.Reconnects)
	}
	<-sc.Done()
	if st := srv.Stats(); st.Pending != 0 || st.InProgress != 0 {
		t.Fatalf("server left pending %d in progress %d", st.Pending, st.InProgress)
	}
}

// dropTCP closes the server side's socket abruptly.
func dropTCP(c *wsactor.Conn) error { return wsactor.DropForTest(c) }

// An intentional close from the server ends the client: no reconnect.
func TestServerEndsClient(t *testing.T) {
	conns := make(chan *wsactor.Conn, 2)
	_, url := startServer(t, wsactor.WithConnectHook(func(c *wsactor.Conn) { conns <- c }))
	cl := dial(t, url)
	sc := recv(t, conns, "server conn")
	if err := sc.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-cl.Done():
	case <-time.After(wait):
		t.Fatal("client did not end")
	}
	if !errors.Is(cl.Err(), wsactor.ErrServerEnded) {
		t.Fatalf("client Err = %v", cl.Err())
	}
	if _, err := cl.Request(ctxWait(t), 1); !errors.Is(err, wsactor.ErrServerEnded) {
		t.Fatalf("request after end: %v", err)
	}
	select {
	case c := <-conns:
		t.Fatalf("client reconnected: %v", c.ID())
	default:
	}
}

// Shutdown lets requests in flight finish, refuses new ones, cuts the rest
// at the deadline, closes with 1001, and leaves no goroutine (goleak).
func TestShutdownWithRequestsInFlight(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	srv, err := wsactor.NewServer(wsactor.WithRequestHandler(func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
		if string(req.Data) == `"probe"` {
			return "ok", nil // answered at once: probes the drain
		}
		started <- struct{}{}
		switch string(req.Data) {
		case `"finishes"`:
			<-release
			return "finished", nil
		default:
			<-ctx.Done()
			return nil, ctx.Err()
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/primus"
	cl := dial(t, url)
	ctx := ctxWait(t)
	finishes := make(chan error, 1)
	go func() {
		r, err := cl.Request(ctx, "finishes")
		if err == nil && string(r.Data) != `"finished"` {
			err = fmt.Errorf("got %s", r.Data)
		}
		finishes <- err
	}()
	stuck := make(chan error, 1)
	go func() { _, err := cl.Request(ctx, "stuck"); stuck <- err }()
	recv(t, started, "handler 1")
	recv(t, started, "handler 2")

	shutCtx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(shutCtx) }()
	// New requests are refused once draining (they may race the drain
	// message; retry until the refusal shows, with a request that does not
	// wait for release).
	var re *wsactor.RemoteError
	for {
		_, err := cl.Request(ctx, "probe")
		if errors.As(err, &re) && re.Code == wsactor.CodeShutdown {
			break
		}
		if err != nil {
			t.Fatalf("request during shutdown: %v", err)
		}
	}
	close(release)
	if err := recv(t, finishes, "finishing request"); err != nil {
		t.Fatalf("in-flight request: %v", err)
	}
	if err := recv(t, shut, "Shutdown"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want DeadlineExceeded (one request was stuck)", err)
	}
	var cut error = recv(t, stuck, "stuck request")
	if !errors.As(cut, &re) || re.Code != wsactor.CodeShutdown {
		t.Fatalf("stuck request: %v, want a %s error reply", cut, wsactor.CodeShutdown)
	}
	if st := srv.Stats(); st.Conns != 0 || st.InProgress != 0 {
		t.Fatalf("after shutdown %+v", st)
	}
}

// Bad input is reported and counted and the connection keeps serving.
func TestBadInputKeepsServing(t *testing.T) {
	errs := make(chan error, 32)
	srv, url := startServer(t, wsactor.WithRequestHandler(arith),
		wsactor.WithMaxMessageSize(1<<16),
		wsactor.WithErrorHook(func(c *wsactor.Conn, err error) { errs <- err }))
	raw := dialRaw(t, url)
	frames := []struct {
		binary bool
		data   string
		want   error
	}{
		{false, `{not json`, wsactor.ErrMalformed},
		{false, `null`, wsactor.ErrNull},
		{true, "\x01\x02\xff", wsactor.ErrBinaryFrame},
		{false, "\"bad \xff utf8\"", wsactor.ErrInvalidUTF8},
		{false, `{"plugin":"primus-responder","requestId":""}`, wsactor.ErrMissingID},
		{false, `{"plugin":"primus-responder","requestId":{"x":1}}`, wsactor.ErrBadID},
		{false, `{"plugin":"primus-responder","responseId":"nobody-waits","data":1}`, wsactor.ErrUnknownReply},
		{false, `{"plugin":"primus-responder","responseId":"6e8bc430-9c3a-11d9-9669-0800200c9a66","data":1}`, wsactor.ErrLateReply},
	}
	for _, f := range frames {
		raw.write(t, f.binary, f.data)
		if err := recv(t, errs, "error hook"); !errors.Is(err, f.want) {
			t.Fatalf("frame %q: hook got %v, want %v", f.data, err, f.want)
		}
	}
	// Still serving: a request with a numeric id, answered verbatim.
	raw.write(t, false, `{"plugin":"primus-responder","requestId":7,"data":{"op":"add","a":2,"b":40}}`)
	if got := raw.read(t); got != `{"plugin":"primus-responder","responseId":7,"data":42}` {
		t.Fatalf("reply %s", got)
	}
	if st := srv.Stats(); st.BadInput != int64(len(frames)) {
		t.Fatalf("BadInput = %d, want %d", st.BadInput, len(frames))
	}
	// An oversized frame closes the connection with 1009.
	raw.write(t, false, `"`+strings.Repeat("x", 1<<16)+`"`)
	if err := recv(t, errs, "too large"); !errors.Is(err, wsactor.ErrTooLarge) {
		t.Fatalf("oversized: %v", err)
	}
	if code := raw.closeCode(t); code != 1009 {
		t.Fatalf("close code %d, want 1009", code)
	}
}

func TestOriginAndAuthentication(t *testing.T) {
	type who struct{ name string }
	_, url := startServer(t,
		wsactor.WithAllowedOrigins("*.trusted.example"),
		wsactor.WithAuthenticate(func(r *http.Request) (any, error) {
			switch r.URL.Query().Get("token") {
			case "good":
				return who{"alice"}, nil
			case "banned":
				return nil, &statusErr{http.StatusForbidden, "banned"}
			}
			return nil, errors.New("bad token")
		}),
		wsactor.WithRequestHandler(func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
			return c.Identity().(who).name + " " + c.Query().Get("token"), nil
		}))
	ctx := ctxWait(t)
	for _, tc := range []struct {
		origin, token string
		status        int
	}{
		{"", "good", 0},
		{"https://app.trusted.example", "good", 0},
		{"https://evil.example", "good", http.StatusForbidden},
		{"null", "good", http.StatusForbidden},
		{"", "bad", http.StatusUnauthorized},
		{"", "banned", http.StatusForbidden},
	} {
		h := http.Header{}
		if tc.origin != "" {
			h.Set("Origin", tc.origin)
		}
		cl, err := wsactor.Dial(ctx, url+"?token="+tc.token, wsactor.WithHeader(h))
		if tc.status == 0 {
			if err != nil {
				t.Fatalf("%+v: %v", tc, err)
			}
			r, err := cl.Request(ctx, nil)
			if err != nil || string(r.Data) != `"alice good"` {
				t.Fatalf("%+v: %s %v", tc, r.Data, err)
			}
			_ = cl.Close()
			continue
		}
		if err == nil {
			_ = cl.Close()
			t.Fatalf("%+v: connected, want HTTP %d", tc, tc.status)
		}
		if !strings.Contains(err.Error(), fmt.Sprint(tc.status)) {
			t.Fatalf("%+v: %v, want HTTP %d", tc, err, tc.status)
		}
	}
	// Same-origin browsers are allowed by default.
	h := http.Header{"Origin": {"http://" + strings.TrimPrefix(strings.TrimSuffix(url, "/primus"), "ws://")}}
	cl, err := wsactor.Dial(ctx, url+"?token=good", wsactor.WithHeader(h))
	if err != nil {
		t.Fatalf("same origin: %v", err)
	}
	_ = cl.Close()
}

type statusErr struct {
	code int
	msg  string
}

func (e *statusErr) Error() string   { return e.msg }
func (e *statusErr) StatusCode() int { return e.code }

func TestPrimusHTTPEndpoints(t *testing.T) {
	_, url := startServer(t, wsactor.WithPingInterval(25*time.Second))
	base := "http" + strings.TrimPrefix(url, "ws")
	resp, err := http.Get(base + "/spec")
	if err != nil {
		t.Fatal(err)
	}
	var spec map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&spec)
	resp.Body.Close()
	if spec["pingInterval"] != float64(25000) || spec["pathname"] != "/primus" {
		t.Fatalf("spec %v", spec)
	}
	resp, err = http.Get(base)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired || string(body) != "Upgrade Required" {
		t.Fatalf("GET /primus: %d %q", resp.StatusCode, body)
	}
}

// The server pings; a Go client answers and stays; a peer that never pongs
// gets one ping and is dropped (no close frame) at the next tick.
func TestHeartbeat(t *testing.T) {
	const interval = 100 * time.Millisecond
	conns := make(chan *wsactor.Conn, 4)
	srv, url := startServer(t, wsactor.WithPingInterval(interval),
		wsactor.WithConnectHook(func(c *wsactor.Conn) { conns <- c }))
	cl := dial(t, url)
	good := recv(t, conns, "client conn")
	// Two silent peers one after the other: the answering client must
	// outlive both, about four intervals.
	for range 2 {
		raw := dialRaw(t, url)
		silent := recv(t, conns, "raw conn")
		start := time.Now()
		if f := raw.read(t); !strings.HasPrefix(f, `"primus::ping::`) {
			t.Fatalf("first frame %s, want a ping", f)
		}
		if code := raw.closeCode(t); code != 1006 {
			t.Fatalf("silent peer closed with %d, want 1006 (dropped without a close frame)", code)
		}
		recv(t, silent.Done(), "silent conn closed")
		if !errors.Is(silent.Err(), wsactor.ErrHeartbeat) {
			t.Fatalf("silent conn ended with %v, want ErrHeartbeat", silent.Err())
		}
		if took := time.Since(start); took > 2*interval+time.Second {
			t.Fatalf("dropped after %v", took)
		}
	}
	select {
	case <-good.Done():
		t.Fatalf("the answering client was dropped: %v", good.Err())
	default:
	}
	var re *wsactor.RemoteError
	if _, err := cl.Request(ctxWait(t), 1); !errors.As(err, &re) || re.Code != wsactor.CodeNoHandler {
		t.Fatalf("request after heartbeats: %v", err)
	}
	if st := srv.Stats(); st.Conns != 1 {
		t.Fatalf("open conns %d", st.Conns)
	}
}

// A slow reader: the server's outbound queue fills, Send fails with
// ErrWriteQueueFull, and the stalled socket is closed after the write
// timeout.
func TestSlowReader(t *testing.T) {
	conns := make(chan *wsactor.Conn, 1)
	_, url := startServer(t, wsactor.WithMaxOutboundBytes(256<<10), wsactor.WithWriteTimeout(300*time.Millisecond),
		wsactor.WithConnectHook(func(c *wsactor.Conn) { conns <- c }))
	dialRawBuf(t, url, 1) // stops reading after one frame
	sc := recv(t, conns, "conn")
	big := strings.Repeat("x", 32<<10)
	// Keep pushing: the kernel's socket buffers take megabytes before the
	// writes stall; each time the queue is full, retry a little later.
	var full int
	retry := time.NewTicker(5 * time.Millisecond)
	defer retry.Stop()
	giveUp := time.After(wait)
push:
	for {
		err := sc.Send(big)
		switch {
		case errors.Is(err, wsactor.ErrWriteQueueFull):
			full++
			select {
			case <-retry.C:
			case <-sc.Done():
				break push
			case <-giveUp:
				t.Fatal("the stalled connection was not closed")
			}
		case err != nil:
			break push // closed meanwhile
		}
	}
	if full == 0 {
		t.Fatal("the outbound queue never filled")
	}
	recv(t, sc.Done(), "conn closed")
	if err := sc.Err(); !errors.Is(err, wsactor.ErrWriteTimeout) {
		t.Fatalf("closed with %v, want ErrWriteTimeout", err)
	}
}

// rawPeer is a bare gws client for writing arbitrary frames.
type rawPeer struct {
	ws     *gws.Conn
	frames chan string
	closed chan uint16
	quit   chan struct{}
}

type rawEvents struct {
	gws.BuiltinEventHandler
	p *rawPeer
}

func (e rawEvents) OnMessage(c *gws.Conn, m *gws.Message) {
	select {
	case e.p.frames <- m.Data.String():
	case <-e.p.quit:
	}
	m.Close()
}

func (e rawEvents) OnClose(c *gws.Conn, err error) {
	var ce *gws.CloseError
	code := uint16(1006)
	if errors.As(err, &ce) {
		code = ce.Code
	}
	e.p.closed <- code
}

func dialRaw(t testing.TB, url string) *rawPeer { t.Helper(); return dialRawBuf(t, url, 1024) }

// dialRawBuf: a raw peer that stops reading once n frames are unread.
func dialRawBuf(t testing.TB, url string, n int) *rawPeer {
	t.Helper()
	p := &rawPeer{frames: make(chan string, n), closed: make(chan uint16, 1), quit: make(chan struct{})}
	ws, _, err := gws.NewClient(rawEvents{p: p}, &gws.ClientOption{Addr: url, ReadMaxPayloadSize: 1 << 20, ReadBufferSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	p.ws = ws
	done := make(chan struct{})
	go func() { ws.ReadLoop(); close(done) }()
	t.Cleanup(func() { close(p.quit); _ = ws.NetConn().Close(); <-done })
	return p
}

func (p *rawPeer) write(t testing.TB, binary bool, data string) {
	t.Helper()
	opcode := gws.OpcodeText
	if binary {
		opcode = gws.OpcodeBinary
	}
	if err := p.ws.WriteMessage(opcode, []byte(data)); err != nil {
		t.Fatal(err)
	}
}

func (p *rawPeer) read(t testing.TB) string { t.Helper(); return recv(t, p.frames, "frame") }

func (p *rawPeer) closeCode(t testing.TB) uint16 { t.Helper(); return recv(t, p.closed, "close") }

// Example: a server that adds numbers and asks each client its name, and a
// client that answers.
func Example() {
	srv, _ := wsactor.NewServer(
		wsactor.WithRequestHandler(func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
			var in struct{ A, B int }
			if err := req.Decode(&in); err != nil {
				return nil, &wsactor.RemoteError{Code: "bad_request", Message: err.Error()}
			}
			// Either side may ask: the server asks the client back.
			who, err := c.Request(ctx, "who are you?")
			if err != nil {
				return nil, err
			}
			var name string
			_ = who.Decode(&name)
			return fmt.Sprintf("%s: %d", name, in.A+in.B), nil
		}))
	hs := httptest.NewServer(srv) // in an app: http.Handle("/primus", srv)
	defer hs.Close()
	defer srv.Close()

	ctx := context.Background()
	cl, err := wsactor.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/primus",
		wsactor.WithRequestHandler(func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
			return "gopher", nil
		}))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cl.Close()

	resp, err := cl.Request(ctx, map[string]int{"A": 1, "B": 2})
	var answer string
	_ = resp.Decode(&answer)
	fmt.Println(answer, err)

	_, err = cl.Request(ctx, "not an object")
	var re *wsactor.RemoteError
	fmt.Println(errors.As(err, &re), re.Code)
	// Output:
	// gopher: 3 <nil>
	// true bad_request
}

// A reply the connection refuses (over the message size limit) does not
// leave the peer waiting for its timeout: it gets a reply_failed error, and
// the error hook hears of it.
func TestRefusedReplyBecomesAnErrorReply(t *testing.T) {
	hooked := make(chan error, 4)
	_, url := startServer(t,
		wsactor.WithMaxMessageSize(256),
		wsactor.WithErrorHook(func(_ *wsactor.Conn, err error) { hooked <- err }),
		wsactor.WithRequestHandler(func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
			return strings.Repeat("x", 400), nil
		}))
	cl := dial(t, url)
	_, err := cl.Request(ctxWait(t), 1)
	var re *wsactor.RemoteError
	if !errors.As(err, &re) || re.Code != wsactor.CodeReplyFailed {
		t.Fatalf("Request: %v, want a %s error reply", err, wsactor.CodeReplyFailed)
	}
	if err := recv(t, hooked, "error hook"); !errors.Is(err, wsactor.ErrReplyNotSent) || !errors.Is(err, wsactor.ErrTooLarge) {
		t.Fatalf("hook got %v", err)
	}
}

// hijackRW is a ResponseWriter whose Hijack waits for a signal, holding an
// upgrade in progress.
type hijackRW struct {
	http.ResponseWriter
	entered, release chan struct{}
	conn             net.Conn
}

func (h *hijackRW) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	close(h.entered)
	<-h.release
	return h.conn, bufio.NewReadWriter(bufio.NewReader(h.conn), bufio.NewWriter(h.conn)), nil
}

// An upgrade in progress when Shutdown starts is finished and then shut
// down before Shutdown returns: no hook or goroutine outlives Shutdown.
func TestUpgradeInProgressDuringShutdown(t *testing.T) {
	var shutdownReturned atomic.Bool
	hookAfter := make(chan bool, 2)
	srv, err := wsactor.NewServer(
		wsactor.WithConnectHook(func(c *wsactor.Conn) { hookAfter <- shutdownReturned.Load() }),
		wsactor.WithDisconnectHook(func(c *wsactor.Conn, err error) { hookAfter <- shutdownReturned.Load() }))
	if err != nil {
		t.Fatal(err)
	}
	cli, sconn := net.Pipe()
	defer cli.Close()
	go func() { _, _ = io.Copy(io.Discard, cli) }() // the client side reads whatever comes
	upgrade := func() *http.Request {
		r := httptest.NewRequest("GET", "http://127.0.0.1/primus", nil)
		r.Header.Set("Upgrade", "websocket")
		r.Header.Set("Connection", "Upgrade")
		r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		r.Header.Set("Sec-WebSocket-Version", "13")
		return r
	}
	w := &hijackRW{ResponseWriter: httptest.NewRecorder(), entered: make(chan struct{}), release: make(chan struct{}), conn: sconn}
	served := make(chan struct{})
	go func() { srv.ServeHTTP(w, upgrade()); close(served) }()
	<-w.entered

	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(ctxWait(t)) }()
	// Wait until Shutdown has begun: new upgrades are refused with 503.
	for {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, upgrade())
		if rec.Code == http.StatusServiceUnavailable {
			break
		}
	}
	close(w.release)
	if err := recv(t, shut, "Shutdown"); err != nil {
		t.Fatal(err)
	}
	shutdownReturned.Store(true)
	<-served
	for range 2 {
		if after := recv(t, hookAfter, "hook"); after {
			t.Fatal("a hook ran after Shutdown returned")
		}
	}
}

// A handler's json.RawMessage result is checked before it is sent, unless it
// is the request's own Data (validated by the decoder): a slice of it, or
// bytes elsewhere, are checked like any other.
func TestRawMessageResultValidation(t *testing.T) {
	_, url := startServer(t, wsactor.WithRequestHandler(func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
		switch string(req.Data[1 : len(req.Data)-1]) {
		case `"echo"`:
			return req.Data, nil
		case `"slice"`:
			return req.Data[1:], nil // `"slice"]`: not JSON on its own
		default:
			return json.RawMessage(`{"bad"`), nil
		}
	}))
	cl := dial(t, url)
	ctx := ctxWait(t)
	for _, tc := range []struct {
		mode string
		ok   bool
	}{{`"echo"`, true}, {`"slice"`, false}, {`"other"`, false}} {
		data := json.RawMessage(`[` + tc.mode + `]`)
		r, err := cl.Request(ctx, data)
		if tc.ok {
			if err != nil || string(r.Data) != string(data) {
				t.Fatalf("%s: got %s, %v; want the request echoed", tc.mode, r.Data, err)
			}
			continue
		}
		var re *wsactor.RemoteError
		if !errors.As(err, &re) || re.Code != wsactor.CodeEncode {
			t.Fatalf("%s: got %s, %v; want a RemoteError of code %q", tc.mode, r.Data, err, wsactor.CodeEncode)
		}
	}
}
