package wsactor_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wsactor/wsactor"
)

// stallWrites pushes big messages to sc until its outbound queue stays full:
// the peer does not read, the socket buffers are full and the flusher's
// write is blocked (for the write timeout).
func stallWrites(t *testing.T, sc *wsactor.Conn) {
	t.Helper()
	big := strings.Repeat("x", 32<<10) // under the default message size
	retry := time.NewTicker(2 * time.Millisecond)
	defer retry.Stop()
	giveUp := time.After(wait)
	for full := 0; full < 50; { // 50 retries in a row found the queue full
		err := sc.Send(big)
		switch {
		case err == nil:
			full = 0
		case errors.Is(err, wsactor.ErrWriteQueueFull):
			full++
			select {
			case <-retry.C:
			case <-giveUp:
				t.Fatal("could not fill the socket buffers")
			}
		default:
			t.Fatalf("Send: %v", err)
		}
	}
}

// Shutdown returns by its ctx with ctx's error even when a peer that does
// not read holds a write (and the closing handshake) for a write timeout of
// a minute; every request still ends exactly once.
func TestShutdownStalledPeerReturnsByCtx(t *testing.T) {
	for _, pending := range []int{0, 8} {
		t.Run(map[int]string{0: "idle", 8: "requests in flight"}[pending], func(t *testing.T) {
			conns := make(chan *wsactor.Conn, 1)
			started := make(chan struct{}, 1)
			returned := make(chan struct{}, 1)
			srv, err := wsactor.NewServer(
				wsactor.WithWriteTimeout(time.Minute),
				wsactor.WithMaxOutboundBytes(256<<10),
				wsactor.WithConnectHook(func(c *wsactor.Conn) { conns <- c }),
				wsactor.WithRequestHandler(func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
					started <- struct{}{}
					<-ctx.Done()
					returned <- struct{}{}
					return nil, ctx.Err()
				}))
			if err != nil {
				t.Fatal(err)
			}
			_, url := serve(t, srv)
			p := dialRawBuf(t, url, 1) // reads one frame more, then stops reading
			sc := recv(t, conns, "server conn")
			ctx := ctxWait(t)

			outcomes := make(chan error, pending)
			if pending > 0 {
				// The peer's request: its handler is in progress.
				p.write(t, false, `{"plugin":"primus-responder","requestId":"r1","data":"block"}`)
				recv(t, started, "handler")
				// The server's requests, pending: half Request, half Go.
				for i := range pending {
					if i%2 == 0 {
						go func() { _, err := sc.Request(ctx, "never answered"); outcomes <- err }()
					} else if err := sc.Go(ctx, "never answered", func(_ wsactor.Response, err error) { outcomes <- err }); err != nil {
						t.Fatal(err)
					}
				}
				for range pending {
					p.read(t) // written: registered before the shutdown begins
				}
			}
			stallWrites(t, sc)

			shutCtx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			begin := time.Now()
			err = srv.Shutdown(shutCtx)
			took := time.Since(begin)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Shutdown = %v, want DeadlineExceeded", err)
			}
			// Half the write timeout: a Shutdown that waited for the
			// stalled write cannot pass, a slow machine cannot fail it.
			if took > 30*time.Second {
				t.Errorf("Shutdown took %v with a 100ms ctx", took)
			}
			t.Logf("Shutdown returned after %v: %v", took, err)
			for range pending {
				if err := recv(t, outcomes, "request outcome"); !errors.Is(err, wsactor.ErrShutdown) {
					t.Errorf("server request: %v, want ErrShutdown", err)
				}
			}
			select {
			case err := <-outcomes: // every goroutine of the server has finished
				t.Errorf("a request ended twice: %v", err)
			default:
			}
			if pending > 0 {
				recv(t, returned, "handler return")
			}
			recv(t, sc.Done(), "conn closed")
			if !errors.Is(sc.Err(), wsactor.ErrClosed) {
				t.Errorf("conn closed with %v, want ErrClosed (closed by this side)", sc.Err())
			}
			st := srv.Stats()
			if st.Conns != 0 || st.Pending != 0 || st.InProgress != 0 ||
				st.Requests != st.Replied+st.RemoteErrors+st.TimedOut+st.Canceled+st.Failed {
				t.Errorf("after Shutdown: %+v", st)
			}
		})
	}
}

// serve mounts srv on a test HTTP server (closed at cleanup, after srv).
func serve(t *testing.T, srv *wsactor.Server) (*wsactor.Server, string) {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/primus", srv)
	hs := httptest.NewServer(mux)
	t.Cleanup(func() { _ = srv.Close(); hs.Close() })
	return srv, "ws" + strings.TrimPrefix(hs.URL, "http") + "/primus"
}

// A client's Shutdown returns by its ctx, and Close at once, when the
// server does not read (its message handler blocks its read goroutine) and
// a write is blocked for a write timeout of a minute.
func TestClientShutdownAndCloseStalledServer(t *testing.T) {
	for _, how := range []string{"Shutdown", "Close"} {
		t.Run(how, func(t *testing.T) {
			blocked := make(chan struct{}, 1)
			release := make(chan struct{})
			defer close(release) // after the client is gone: the server reads again
			_, url := startServer(t, wsactor.WithMessageHandler(func(*wsactor.Conn, json.RawMessage) {
				select {
				case blocked <- struct{}{}:
					<-release
				default:
				}
			}))
			connected := make(chan *wsactor.Conn, 1)
			cl := dial(t, url, wsactor.WithWriteTimeout(time.Minute), wsactor.WithMaxOutboundBytes(256<<10),
				wsactor.WithConnectHook(func(c *wsactor.Conn) { connected <- c }))
			c := recv(t, connected, "client conn")
			if err := c.Send("stop reading"); err != nil {
				t.Fatal(err)
			}
			recv(t, blocked, "server blocked")
			stallWrites(t, c)
			pending := make(chan error, 1)
			go func() { _, err := cl.Request(ctxWait(t), "never read"); pending <- err }()

			begin := time.Now()
			var err error
			if how == "Shutdown" {
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				defer cancel()
				err = cl.Shutdown(ctx)
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("Shutdown = %v, want DeadlineExceeded", err)
				}
			} else if err = cl.Close(); err != nil {
				t.Errorf("Close = %v", err)
			}
			took := time.Since(begin)
			if took > 30*time.Second {
				t.Errorf("%s took %v", how, took)
			}
			t.Logf("%s returned after %v: %v", how, took, err)
			// The request ended once: refused or cut off by the shutdown or
			// close (or not sent: the queue was full).
			if err := recv(t, pending, "request"); err == nil {
				t.Error("the request got a reply")
			} else {
				checkText(t, err)
			}
			if err := cl.Err(); !errors.Is(err, wsactor.ErrClosed) {
				t.Errorf("client ended with %v, want ErrClosed", err)
			}
		})
	}
}

// Shutdown returns by its ctx even when user code does not end: a request
// handler that ignores its canceled ctx, or a presence watcher that blocks.
// The code is left running; the last goroutine ends once it returns.
func TestShutdownReturnsByCtxWhileUserCodeRuns(t *testing.T) {
	for _, stuck := range []string{"handler", "presence watcher", "client handler"} {
		t.Run(stuck, func(t *testing.T) {
			release := make(chan struct{})
			started := make(chan struct{}, 1)
			block := func() {
				started <- struct{}{}
				<-release // ignores every ctx
			}
			handler := wsactor.WithRequestHandler(func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
				block()
				return "late", nil
			})
			var srvOpts, clOpts []wsactor.Option
			switch stuck {
			case "handler":
				srvOpts = append(srvOpts, handler)
			case "client handler":
				clOpts = append(clOpts, handler)
			}
			conns := make(chan *wsactor.Conn, 1)
			srvOpts = append(srvOpts, wsactor.WithConnectHook(func(c *wsactor.Conn) { conns <- c }))
			srv, err := wsactor.NewServer(srvOpts...)
			if err != nil {
				t.Fatal(err)
			}
			_, url := serve(t, srv)
			if stuck == "presence watcher" {
				stop := srv.WatchPresence(func(wsactor.Presence) { block() })
				defer stop()
			}
			cl, err := wsactor.Dial(ctxWait(t), url, clOpts...)
			if err != nil {
				t.Fatal(err)
			}
			sc := recv(t, conns, "server conn")
			outcome := make(chan error, 1)
			switch stuck {
			case "handler":
				go func() { _, err := cl.Request(context.Background(), "x"); outcome <- err }()
			case "client handler":
				go func() { _, err := sc.Request(context.Background(), "x"); outcome <- err }()
			case "presence watcher":
				if err := sc.Join("room"); err != nil {
					t.Fatal(err)
				}
			}
			recv(t, started, stuck)

			shutCtx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			returned := make(chan error, 1)
			begin := time.Now()
			go func() {
				if stuck == "client handler" {
					returned <- cl.Shutdown(shutCtx)
				} else {
					returned <- srv.Shutdown(shutCtx)
				}
			}()
			select {
			case err := <-returned:
				took := time.Since(begin)
				t.Logf("Shutdown returned after %v: %v", took, err)
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("Shutdown = %v, want DeadlineExceeded", err)
				}
				close(release)
			case <-time.After(wait): // far beyond the 200ms ctx, yet no slow machine reaches it
				t.Errorf("Shutdown still running %v after its 200ms ctx ended: it waits for the %s", wait, stuck)
				close(release)
				<-returned
			}
			if stuck != "presence watcher" {
				// Exactly once: the request ended with the shutdown.
				if err := recv(t, outcome, "request outcome"); err == nil {
					t.Errorf("the request got a reply after Shutdown")
				}
			}
			_ = cl.Close()
			_ = srv.Close()
		})
	}
}
