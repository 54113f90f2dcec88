package wsactor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"runtime"
	"strconv"
	"testing"

	"github.com/wsactor/wsactor"
)

// goid returns the calling goroutine's id, read from its stack header
// ("goroutine 42 [running]:"). Tests only.
func goid() uint64 {
	var buf [64]byte
	b := bytes.TrimPrefix(buf[:runtime.Stack(buf[:], false)], []byte("goroutine "))
	n, err := strconv.ParseUint(string(b[:bytes.IndexByte(b, ' ')]), 10, 64)
	if err != nil {
		panic("goid: " + err.Error())
	}
	return n
}

// No handler, callback or hook runs inside a call the user makes, over real
// sockets: the test goroutine makes every call (Request, Go and Send both
// ways, then the end of the connection: Conn.Close, Client.Shutdown or
// Server.Shutdown, which ends a pending Go call), and every piece of user
// code records the goroutine it ran on; none may be the test goroutine.
// Before the fix the end of the connection ran the pending Go call's
// callback on its caller.
func TestUserCallsRunNoUserCodeOverSockets(t *testing.T) {
	for _, end := range []string{"Conn.Close", "Client.Shutdown", "Server.Shutdown"} {
		t.Run(end, func(t *testing.T) {
			type ran struct {
				what string
				g    uint64
			}
			log := make(chan ran, 4096) // never full: user code must not block here
			rec := func(what string) { log <- ran{what, goid()} }
			blocked := make(chan struct{}, 1)
			handler := func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
				rec("request handler")
				if string(req.Data) == `"block"` {
					blocked <- struct{}{}
					<-ctx.Done()
					return nil, ctx.Err()
				}
				return req.Data, nil
			}
			opts := func(connect func(*wsactor.Conn)) []wsactor.Option {
				return []wsactor.Option{
					wsactor.WithRequestHandler(handler),
					wsactor.WithMessageHandler(func(*wsactor.Conn, json.RawMessage) { rec("message handler") }),
					wsactor.WithConnectHook(func(c *wsactor.Conn) { rec("connect hook"); connect(c) }),
					wsactor.WithDisconnectHook(func(*wsactor.Conn, error) { rec("disconnect hook") }),
					wsactor.WithErrorHook(func(*wsactor.Conn, error) { rec("error hook") }),
				}
			}
			serverConns := make(chan *wsactor.Conn, 4)
			srv, url := startServer(t, opts(func(c *wsactor.Conn) { serverConns <- c })...)
			cl := dial(t, url, opts(func(*wsactor.Conn) {})...)
			ctx := ctxWait(t)
			caller := goid()

			c, err := cl.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			sc := recv(t, serverConns, "the server's conn")
			const n = 20
			goDone := make(chan error, 2*n)
			cb := func(_ wsactor.Response, err error) {
				rec("Go callback")
				goDone <- err
			}
			for i := range n {
				for _, conn := range []*wsactor.Conn{c, sc} {
					if r, err := conn.Request(ctx, i); err != nil || string(r.Data) != strconv.Itoa(i) {
						t.Fatalf("Request %d: %s %v", i, r.Data, err)
					}
					if err := conn.Go(ctx, i, cb); err != nil {
						t.Fatalf("Go %d: %v", i, err)
					}
					if err := conn.Send(i); err != nil {
						t.Fatalf("Send %d: %v", i, err)
					}
				}
			}
			for range 2 * n {
				if err := recv(t, goDone, "a Go callback"); err != nil {
					t.Fatalf("Go: %v", err)
				}
			}

			// A Go call pending at the peer of the side that the call
			// below ends; that ends the call, and runs its callback: not
			// here.
			pending := make(chan error, 1)
			asker := c
			if end == "Server.Shutdown" {
				asker = sc
			}
			if err := asker.Go(ctx, "block", func(_ wsactor.Response, err error) {
				rec("callback of the pending Go")
				pending <- err
			}); err != nil {
				t.Fatal(err)
			}
			recv(t, blocked, "the blocking request at the peer")
			cut, cancel := context.WithCancel(context.Background())
			cancel() // no grace period: the pending call is cut off
			switch end {
			case "Conn.Close":
				_ = c.Close()
			case "Client.Shutdown":
				_ = cl.Shutdown(cut)
			case "Server.Shutdown":
				_ = srv.Shutdown(cut)
			}
			if err := recv(t, pending, "the pending Go call's outcome"); err == nil {
				t.Fatal("the pending Go call got a reply")
			}
			recv(t, c.Done(), "the client conn's end") // its disconnect hook has run

			seen := map[string]bool{}
			for len(log) > 0 {
				r := <-log
				seen[r.what] = true
				if r.g == caller {
					t.Errorf("the %s ran on the test goroutine, inside a call into wsactor", r.what)
				}
			}
			for _, what := range []string{"request handler", "message handler", "connect hook", "disconnect hook", "Go callback", "callback of the pending Go"} {
				if !seen[what] {
					t.Errorf("no %s ran: the test exercised less than it should", what)
				}
			}
		})
	}
}
