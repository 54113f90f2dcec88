package wsactor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsactor/wsactor"
)

// onPoolWorker reports whether the caller runs on a handler pool worker
// (actor.(*Pool).work is on its stack).
func onPoolWorker() bool {
	buf := make([]byte, 64<<10)
	return strings.Contains(string(buf[:runtime.Stack(buf, false)]), "actor.(*Pool).work")
}

func TestInlineHandlersOptionScope(t *testing.T) {
	srv, err := wsactor.NewServer(wsactor.WithInlineHandlers())
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	_ = srv.Close()
	_, url := startServer(t, wsactor.WithRequestHandler(arith))
	cl := dial(t, url, wsactor.WithInlineHandlers(), wsactor.WithRequestHandler(arith))
	_ = cl.Close()
}

// Both sides with inline handlers: answers, error replies, a panic that
// restarts only the actor, and handlers that never run on a pool worker.
func TestInlineHandlers(t *testing.T) {
	var mu sync.Mutex
	var onPool int
	h := func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
		if onPoolWorker() {
			mu.Lock()
			onPool++
			mu.Unlock()
		}
		return arith(ctx, c, req)
	}
	conns := make(chan *wsactor.Conn, 1)
	srv, url := startServer(t, wsactor.WithInlineHandlers(), wsactor.WithRequestHandler(h),
		wsactor.WithConnectHook(func(c *wsactor.Conn) { conns <- c }))
	cl := dial(t, url, wsactor.WithInlineHandlers(), wsactor.WithRequestHandler(h))
	sc := recv(t, conns, "server conn")
	ctx := ctxWait(t)

	for i := range 50 {
		r, err := cl.Request(ctx, op{Op: "add", A: i, B: 1})
		if err != nil || checkInt(r, i+1) != nil {
			t.Fatalf("client → server %d: %s %v", i, r.Data, err)
		}
		r, err = sc.Request(ctx, op{Op: "add", A: i, B: 2})
		if err != nil || checkInt(r, i+2) != nil {
			t.Fatalf("server → client %d: %s %v", i, r.Data, err)
		}
	}
	var re *wsactor.RemoteError
	if _, err := cl.Request(ctx, op{Op: "fail"}); !errors.As(err, &re) || re.Code != wsactor.CodeError || re.Message != "it failed" {
		t.Fatalf("error reply: %v", err)
	}
	if _, err := cl.Request(ctx, op{Op: "nope"}); !errors.As(err, &re) || re.Code != "unknown_op" {
		t.Fatalf("typed error reply: %v", err)
	}

	// A panic: a panic error reply, the server's own pending request on
	// that connection fails with ErrRestarted, the connection keeps serving.
	started := make(chan struct{})
	release := make(chan struct{})
	cl2 := dial(t, url, wsactor.WithRequestHandler(func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
		close(started)
		select { // a pool handler on the client: it may block
		case <-release:
		case <-ctx.Done():
		}
		return nil, ctx.Err()
	}))
	sc2 := recv(t, conns, "second server conn")
	pending := make(chan error, 1)
	go func() { _, err := sc2.Request(ctx, "wait"); pending <- err }()
	recv(t, started, "the server's request reached the client")
	if _, err := cl2.Request(ctx, op{Op: "panic"}); !errors.As(err, &re) || re.Code != wsactor.CodePanic {
		t.Fatalf("panicking request: %v", err)
	}
	if err := recv(t, pending, "server's pending request"); !errors.Is(err, wsactor.ErrRestarted) || !errors.Is(err, wsactor.ErrHandlerPanic) {
		t.Fatalf("server's request on the restarted conn: %v", err)
	}
	close(release)
	if r, err := cl2.Request(ctx, op{Op: "add", A: 2, B: 3}); err != nil || checkInt(r, 5) != nil {
		t.Fatalf("after the restart: %s %v", r.Data, err)
	}
	if st := srv.Stats(); st.Restarts != 1 || st.HandlerPanics != 1 {
		t.Fatalf("restarts %d panics %d", st.Restarts, st.HandlerPanics)
	}
	mu.Lock()
	defer mu.Unlock()
	if onPool != 0 {
		t.Fatalf("%d inline handler calls ran on a pool worker", onPool)
	}
}

// Requests sent on one connection are answered in the order they were sent,
// and the handler's ctx carries the peer's timeout.
func TestInlineHandlersOrderAndTimeout(t *testing.T) {
	type seen struct {
		timeout time.Duration
		left    time.Duration
		ok      bool
	}
	seenCh := make(chan seen, 1)
	h := func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
		if string(req.Data) == `"deadline?"` {
			dl, ok := ctx.Deadline()
			seenCh <- seen{req.Timeout, time.Until(dl), ok}
		}
		return req.Data, nil
	}
	_, url := startServer(t, wsactor.WithInlineHandlers(), wsactor.WithRequestHandler(h))
	cl := dial(t, url, wsactor.WithRequestTimeout(5*time.Second))
	ctx := ctxWait(t)
	c, err := cl.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	wg.Add(n)
	for i := range n {
		err := c.Go(ctx, i, func(r wsactor.Response, err error) {
			defer wg.Done()
			var v int
			if err == nil {
				err = json.Unmarshal(r.Data, &v)
			}
			if err != nil || v != i {
				t.Errorf("request %d: %s %v", i, r.Data, err)
			}
			mu.Lock()
			order = append(order, v)
			mu.Unlock()
		})
		if err != nil {
			t.Fatalf("Go %d: %v", i, err)
		}
	}
	wg.Wait()
	for i, v := range order {
		if v != i {
			t.Fatalf("reply %d answered request %d: replies out of order", i, v)
		}
	}

	if _, err := cl.Request(ctx, "deadline?"); err != nil {
		t.Fatal(err)
	}
	s := recv(t, seenCh, "handler")
	if !s.ok || s.timeout != 5*time.Second || s.left <= 0 || s.left > 5*time.Second {
		t.Fatalf("handler saw timeout %v, deadline in %v (%v); want 5s", s.timeout, s.left, s.ok)
	}
}

// An inline handler that asks its own connection with its ctx gets
// ErrSelfRequest at once instead of hanging the connection.
func TestInlineHandlerSelfRequest(t *testing.T) {
	_, url := startServer(t, wsactor.WithInlineHandlers(), wsactor.WithRequestHandler(
		func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
			_, err := c.Request(ctx, "back")
			if !errors.Is(err, wsactor.ErrSelfRequest) {
				return nil, fmt.Errorf("own Request: %v, want ErrSelfRequest", err)
			}
			return "refused", nil
		}))
	cl := dial(t, url, wsactor.WithRequestHandler(arith))
	r, err := cl.Request(ctxWait(t), "x")
	if err != nil || string(r.Data) != `"refused"` {
		t.Fatalf("got %s, %v", r.Data, err)
	}
}
