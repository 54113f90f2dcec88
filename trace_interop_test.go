package wsactor_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/wsactor/wsactor"
)

// TestBrowserTraceparent: a traceparent round-trips across the browser
// client (js/wsactor.js in Chromium), a wsactor server and a Go client:
// the page's request carries it to the server's handler, whose request
// back to the page passes it on; a Go client's request, passed on by the
// server to the page, carries the Go client's. The page's invalid one is
// not sent.
func TestBrowserTraceparent(t *testing.T) {
	requireNode(t, true)
	const tpPage = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	page, err := os.ReadFile(filepath.Join(jsDir, "test", "browser-go.html"))
	if err != nil {
		t.Fatal(err)
	}
	client, err := os.ReadFile(filepath.Join(jsDir, "wsactor.js"))
	if err != nil {
		t.Fatal(err)
	}
	pageConn := make(chan *wsactor.Conn, 1)
	handler := func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
		var m struct{ Op string }
		if err := req.Decode(&m); err != nil {
			return nil, err
		}
		switch m.Op {
		case "trace": // the page asks; the server asks the page back with its ctx
			r, err := c.Request(ctx, map[string]string{"op": "nested"})
			if err != nil {
				return nil, err
			}
			return map[string]any{"server": tpOf(ctx), "nested": r.Data}, nil
		case "ready":
			pageConn <- c
			return true, nil
		case "relay": // from the Go client: passed on to the page with ctx
			select {
			case pc := <-pageConn:
				r, err := pc.Request(ctx, map[string]string{"op": "relay"})
				return r.Data, err
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return nil, &wsactor.RemoteError{Code: "unknown_op", Message: m.Op}
	}
	srv, err := wsactor.NewServer(wsactor.WithRequestHandler(handler))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/primus", srv)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(page)
	})
	mux.HandleFunc("GET /js/wsactor.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		_, _ = w.Write(client)
	})
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("server Close: %v", err)
		}
		hs.Close()
	})
	p := startNode(t, true, "test/browser-go.mjs", hs.URL+"/?mode=trace")

	// The Go client, once the page is ready: its traceparent reaches the
	// page through the server.
	cl := dial(t, "ws"+strings.TrimPrefix(hs.URL, "http")+"/primus")
	r, err := cl.Request(wsactor.WithTraceparent(ctxWait(t), traceA), map[string]string{"op": "relay"})
	if err != nil {
		t.Fatal(err)
	}
	var relayed string
	if err := r.Decode(&relayed); err != nil || relayed != traceA {
		t.Fatalf("the page saw %s of the Go client's request, want %q (%v)", r.Data, traceA, err)
	}

	ev := p.waitFrom(t, 0, "page result", func(e nodeEvent) bool { return e.name() == "page" })
	if code := p.exitCode(t); code != 0 {
		t.Fatalf("browser-go.mjs exit code %d", code)
	}
	b, _ := json.Marshal(ev["result"])
	type answer struct {
		Server string  `json:"server"`
		Nested *string `json:"nested"`
	}
	var res struct {
		Error                     string
		Traced, Untraced, Invalid answer
		Seen                      []struct {
			Op          string  `json:"op"`
			Traceparent *string `json:"traceparent"`
		}
	}
	if err := json.Unmarshal(b, &res); err != nil || res.Error != "" {
		t.Fatalf("page result %s (%v)", b, err)
	}
	if res.Traced.Server != tpPage || res.Traced.Nested == nil || *res.Traced.Nested != tpPage {
		t.Errorf("traced: %s; want the server and the nested request to carry %q", b, tpPage)
	}
	if res.Untraced.Server != "" || res.Untraced.Nested != nil || res.Invalid.Server != "" || res.Invalid.Nested != nil {
		t.Errorf("untraced / invalid: %s; want no traceparent anywhere", b)
	}
	var ops []string
	for _, s := range res.Seen {
		ops = append(ops, s.Op)
	}
	if want := []string{"nested", "nested", "nested", "relay"}; !reflect.DeepEqual(ops, want) {
		t.Errorf("the page's handler saw %v, want %v", ops, want)
	}
	if n := len(res.Seen); n == 4 && (res.Seen[3].Traceparent == nil || *res.Seen[3].Traceparent != traceA) {
		t.Errorf("the relayed request reached the page with %v, want %q", res.Seen[3].Traceparent, traceA)
	}
}

// TestInteropTraceparentIgnoredByStockPeers: the traceparent extension key
// is ignored by stock Primus 8 + primus-responder peers in both roles; they
// answer as usual, and their requests carry none.
func TestInteropTraceparentIgnoredByStockPeers(t *testing.T) {
	// A Go client and a stock Node server.
	_, url := startPrimusServer(t, "--ping-interval", "1000")
	seen := make(chan string, 1)
	cl := dial(t, url, wsactor.WithRequestHandler(func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
		seen <- tpOf(ctx)
		return goHello(ctx, c, req)
	}))
	ctx := wsactor.WithTraceparent(ctxWait(t), traceA)
	r, err := cl.Request(ctx, op{Op: "add", A: 2, B: 40})
	if err != nil || checkInt(r, 42) != nil {
		t.Fatalf("add with a traceparent: %s %v", r.Data, err)
	}
	r, err = cl.Request(ctx, map[string]string{"op": "echo", "s": "traced"})
	if err != nil || string(r.Data) != `{"op":"echo","s":"traced"}` {
		t.Fatalf("echo with a traceparent: %s %v", r.Data, err)
	}
	// The Node server asks back inside its handler: no traceparent.
	r, err = cl.Request(ctx, map[string]string{"op": "ask"})
	if h, derr := decodeHello(r); err != nil || derr != nil || h.From != "go" {
		t.Fatalf("ask with a traceparent: %s %v", r.Data, err)
	}
	if tp := recv(t, seen, "the Node server's request"); tp != "" {
		t.Fatalf("the stock server's request carried %q", tp)
	}

	// A Go server and a stock Node client.
	conns := make(chan *wsactor.Conn, 1)
	_, surl := startServer(t, wsactor.WithRequestHandler(arith), wsactor.WithConnectHook(func(c *wsactor.Conn) { conns <- c }))
	p := startPrimusClient(t, surl, "--n", "1", "--stay-ms", "60000", "--timeout-ms", "30000")
	sc := recv(t, conns, "the node client's connection")
	r, err = sc.Request(ctx, hello{Op: "hello", N: 7})
	if h, derr := decodeHello(r); err != nil || derr != nil || h != (hello{Op: "hello", N: 7, From: "node"}) {
		t.Fatalf("server→stock client with a traceparent: %s %v %v", r.Data, err, derr)
	}
	if res := p.waitEvent(t, "result"); res.num("matched") != 1 {
		t.Fatalf("node client result %v", res)
	}
	p.stop(t)
	if code := p.exitCode(t); code != 0 {
		t.Fatalf("node client exit code %d", code)
	}
}
