package wsactor_test

// permessage-deflate with software this project did not write: headless
// Chromium running js/wsactor.js, a stock Node Primus server with its
// compression option, and a stock Node Primus client (whose ws offers
// compression by default). Same requirements as interop_test.go.

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsactor/wsactor"
)

type echoText struct {
	Op   string `json:"op"`
	From string `json:"from,omitempty"`
	Text string `json:"text"`
}

// textOf is the JS pages' and scripts' text(n, tag).
func textOf(n int, tag string) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		b.WriteString(tag + ": player " + itoa(i%17) + " at x=" + itoa(i%101) + " y=" + itoa(i%37) + "; ")
	}
	return b.String()[:n]
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// deflateEchoServer is a server with WithCompression that answers
// {op:'echo',text} with the data back, behind a countListener; its connect
// hook hands out the connections. It serves the files given too.
func deflateEchoServer(t *testing.T, files map[string][]byte) (*httptest.Server, *countListener, chan *wsactor.Conn) {
	t.Helper()
	conns := make(chan *wsactor.Conn, 4)
	srv, err := wsactor.NewServer(wsactor.WithCompression(wsactor.Compression{}),
		wsactor.WithPingInterval(300*time.Millisecond), // heartbeats run on compressed connections too
		wsactor.WithConnectHook(func(c *wsactor.Conn) { conns <- c }),
		wsactor.WithRequestHandler(func(_ context.Context, _ *wsactor.Conn, req wsactor.Request) (any, error) {
			return req.Data, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/primus", srv)
	for path, body := range files {
		ctype := "text/html; charset=utf-8"
		if strings.HasSuffix(path, ".js") {
			ctype = "text/javascript; charset=utf-8"
		}
		mux.HandleFunc("GET "+path, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", ctype)
			_, _ = w.Write(body)
		})
	}
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	hs := httptest.NewUnstartedServer(mux)
	cl := &countListener{Listener: hs.Listener}
	hs.Listener = cl
	hs.Start()
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("server Close: %v", err)
		}
		hs.Close()
	})
	return hs, cl, conns
}

// askText makes the server ask the peer {op:'hello',text} of n bytes and
// checks the answer carries the text back.
func askText(t *testing.T, sc *wsactor.Conn, n int, from string) {
	t.Helper()
	want := textOf(n, "server")
	r, err := sc.Request(ctxWait(t), echoText{Op: "hello", Text: want})
	if err != nil {
		t.Fatal(err)
	}
	var got echoText
	if err := json.Unmarshal(r.Data, &got); err != nil || got.Text != want || got.From != from {
		t.Fatalf("answer from %q (%d bytes of text, equal %v): %v", got.From, len(got.Text), got.Text == want, err)
	}
}

// Chromium (which offers permessage-deflate by default) and a wsactor
// server with WithCompression: the page's 8 KB requests and the server's
// replies, the server's 8 KB request and the page's answer, all intact,
// heartbeats answered (the connection outlives several ping intervals),
// and the browser's connection carried a fraction of those bytes in both
// directions.
func TestBrowserCompression(t *testing.T) {
	requireNode(t, true)
	page, err := os.ReadFile(filepath.Join(jsDir, "test", "browser-deflate.html"))
	if err != nil {
		t.Fatal(err)
	}
	client, err := os.ReadFile(filepath.Join(jsDir, "wsactor.js"))
	if err != nil {
		t.Fatal(err)
	}
	hs, cl, conns := deflateEchoServer(t, map[string][]byte{"/{$}": page, "/js/wsactor.js": client})
	p := startNode(t, true, "test/browser-go.mjs", hs.URL+"/?mode=deflate")

	sc := recv(t, conns, "page connection")
	if !sc.Compressed() {
		t.Fatal("Chromium's connection did not negotiate permessage-deflate")
	}
	askText(t, sc, 8000, "browser")
	ev := p.waitFrom(t, 0, "page result", func(e nodeEvent) bool { return e.name() == "page" })
	var res struct {
		Result struct {
			Error                       string
			Sent, Matched, Asked, Pings int
		}
		Console []string
	}
	b, _ := json.Marshal(ev)
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	r := res.Result
	if r.Error != "" || r.Sent != 20 || r.Matched != 20 || r.Asked != 1 || r.Pings < 2 {
		t.Fatalf("page: %+v\nconsole: %v", r, res.Console)
	}
	if code := p.exitCode(t); code != 0 {
		t.Fatalf("browser-go.mjs exit code %d", code)
	}
	wc := cl.conn(t, sc.RemoteAddr())
	in, out := wc.in.Load(), wc.out.Load()
	const each = 21 * 8000 // 20 requests and an answer; 20 replies and a request
	t.Logf("browser connection: read %d, wrote %d bytes for about %d bytes of text each way", in, out, each)
	if in > each/3 || out > each/3 {
		t.Fatalf("browser connection read %d and wrote %d bytes for %d bytes of text each way: not compressed", in, out, each)
	}
}

type countReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	return n, err
}

// countingProxy forwards TCP connections to target, counting the bytes
// each way. It returns its address.
func countingProxy(t *testing.T, target string, up, down *atomic.Int64) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range open {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			mu.Lock()
			open = append(open, c, s)
			mu.Unlock()
			pipe := func(dst, src net.Conn, n *atomic.Int64) {
				// Counted as read, before it is passed on: what the
				// other side has received is counted already.
				_, _ = io.Copy(dst, countReader{src, n})
				_ = dst.Close()
				_ = src.Close()
			}
			wg.Go(func() { pipe(s, c, up) })
			wg.Go(func() { pipe(c, s, down) })
		}
	})
	return ln.Addr().String()
}

// A Go client with WithCompression and the stock Node Primus server with
// its compression option: 8 KB echo requests and replies intact, and
// compressed on the wire both ways (counted by a proxy). Without
// compression on either side, the same requests go plain.
func TestPrimusServerCompression(t *testing.T) {
	for _, tc := range []struct {
		name       string
		srvOn, cli bool
	}{{"both", true, true}, {"server only", true, false}, {"client only", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			var args []string
			if tc.srvOn {
				args = append(args, "--compression")
			}
			_, url := startPrimusServer(t, args...)
			var up, down atomic.Int64
			proxy := countingProxy(t, strings.TrimSuffix(strings.TrimPrefix(url, "ws://"), "/primus"), &up, &down)
			var opts []wsactor.Option
			if tc.cli {
				opts = append(opts, wsactor.WithCompression(wsactor.Compression{}))
			}
			c := dial(t, "ws://"+proxy+"/primus", opts...)
			cc, err := c.Conn(ctxWait(t))
			if err != nil {
				t.Fatal(err)
			}
			want := tc.srvOn && tc.cli
			if cc.Compressed() != want {
				t.Fatalf("Compressed() %v, want %v", cc.Compressed(), want)
			}
			const n, size = 20, 8000
			for i := range n {
				text := textOf(size, "request "+itoa(i))
				r, err := c.Request(ctxWait(t), echoText{Op: "echo", Text: text})
				if err != nil {
					t.Fatal(err)
				}
				var got echoText
				if err := json.Unmarshal(r.Data, &got); err != nil || got.Text != text {
					t.Fatalf("reply %d: %v", i, err)
				}
			}
			_ = c.Close()
			<-c.Done()
			t.Logf("client→server %d bytes, server→client %d bytes, for %d bytes of text each way", up.Load(), down.Load(), n*size)
			compressed := up.Load() < n*size/3 && down.Load() < n*size/3
			if compressed != want {
				t.Fatalf("sent %d and received %d bytes for %d bytes of text each way: compressed %v, want %v", up.Load(), down.Load(), n*size, compressed, want)
			}
		})
	}
}

// The stock Node Primus client (its ws offers permessage-deflate) and a
// wsactor server with WithCompression: the client's 8 KB echo requests,
// and the server's 8 KB request and its answer, intact and compressed on
// the wire.
func TestPrimusClientCompression(t *testing.T) {
	hs, cl, conns := deflateEchoServer(t, nil)
	p := startNode(t, false, "interop/primus-deflate-client.mjs", "--url", "ws"+strings.TrimPrefix(hs.URL, "http")+"/primus", "--n", "20", "--bytes", "8000")
	open := p.waitEvent(t, "open")
	if ext := open.str("extensions"); !strings.HasPrefix(ext, "permessage-deflate") {
		t.Fatalf("the Node client's negotiated extensions: %q", ext)
	}
	sc := recv(t, conns, "Node client connection")
	if !sc.Compressed() {
		t.Fatal("the server's Conn is not Compressed")
	}
	askText(t, sc, 8000, "node")
	res := p.waitEvent(t, "result")
	if res.num("sent") != 20 || res.num("matched") != 20 {
		t.Fatalf("Node client: %v", res)
	}
	wc := cl.conn(t, sc.RemoteAddr())
	in, out := wc.in.Load(), wc.out.Load()
	const each = 21 * 8000
	t.Logf("Node client connection: read %d, wrote %d bytes for about %d bytes of text each way", in, out, each)
	if in > each/3 || out > each/3 {
		t.Fatalf("read %d and wrote %d bytes for %d bytes of text each way: not compressed", in, out, each)
	}
}
