package wsactor_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsactor/wsactor"
	"github.com/wsactor/wsactor/actor"
	"github.com/wsactor/wsactor/conn"
	"github.com/wsactor/wsactor/envelope"
	"github.com/wsactor/wsactor/supervisor"
)

// Every exported sentinel reads "wsactor: …" and matches the lower
// package's sentinel it stands for (code written against actor, conn,
// envelope or supervisor keeps working).
func TestSentinelsTextAndLowerMatch(t *testing.T) {
	cases := []struct {
		root, low error
	}{
		{wsactor.ErrTimeout, actor.ErrTimeout}, {wsactor.ErrTimeout, context.DeadlineExceeded},
		{wsactor.ErrCanceled, actor.ErrCanceled}, {wsactor.ErrConnLost, actor.ErrConnLost},
		{wsactor.ErrRestarted, actor.ErrRestarted}, {wsactor.ErrShutdown, actor.ErrShutdown},
		{wsactor.ErrClosed, actor.ErrClosed}, {wsactor.ErrTooManyPending, actor.ErrTooManyPending},
		{wsactor.ErrSelfRequest, actor.ErrSelfRequest}, {wsactor.ErrMailboxFull, actor.ErrMailboxFull},
		{wsactor.ErrWriteQueueFull, conn.ErrWriteQueueFull}, {wsactor.ErrWriteTimeout, conn.ErrWriteTimeout},
		{wsactor.ErrHeartbeat, conn.ErrHeartbeat}, {wsactor.ErrTooLarge, conn.ErrTooLarge},
		{wsactor.ErrTooManyRestarts, supervisor.ErrTooManyRestarts}, {wsactor.ErrServerEnded, conn.ErrServerEnded},
		{wsactor.ErrMalformed, envelope.ErrMalformed}, {wsactor.ErrInvalidUTF8, envelope.ErrInvalidUTF8},
		{wsactor.ErrNull, envelope.ErrNull}, {wsactor.ErrMissingID, envelope.ErrMissingID},
		{wsactor.ErrBadID, envelope.ErrBadID}, {wsactor.ErrBinaryFrame, conn.ErrBinaryFrame},
		{wsactor.ErrEmpty, envelope.ErrEmpty}, {wsactor.ErrBadField, envelope.ErrBadField}, {wsactor.ErrTooDeep, envelope.ErrTooDeep},
		{wsactor.ErrLateReply, actor.ErrLateReply}, {wsactor.ErrUnknownReply, actor.ErrUnknownReply},
		{wsactor.ErrDuplicateID, actor.ErrDuplicateRequest}, {wsactor.ErrHandlerPanic, actor.ErrHandlerPanic},
		{wsactor.ErrHandlerPanic, conn.ErrHandlerPanic}, {wsactor.ErrReplyNotSent, actor.ErrReplyNotSent},
		{wsactor.ErrNotConnected, nil}, {wsactor.ErrNullMessage, nil}, {wsactor.ErrDial, nil},
		{wsactor.ErrInvalidOption, nil}, {wsactor.ErrInvalidArgument, nil}, {wsactor.ErrEncode, nil},
		{wsactor.ErrDecode, nil},
	}
	for _, tc := range cases {
		checkText(t, tc.root)
		if tc.low != nil && !errors.Is(tc.root, tc.low) {
			t.Errorf("%q does not match %q", tc.root, tc.low)
		}
	}
}

// outcome is an error a user got, and the sentinels it must match.
type outcome struct {
	what string
	err  error
	is   []error
}

// TestErrorTable walks the errors a user of the root package can get, over
// real connections, and checks each: the one "wsactor: " prefix and no
// lower package's, one line (no stack trace), and errors.Is with its
// sentinels.
func TestErrorTable(t *testing.T) {
	var (
		mu   sync.Mutex
		got  []outcome
		hook = make(chan error, 100)
	)
	add := func(what string, err error, is ...error) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, outcome{what, err, is})
	}
	ctx := ctxWait(t)
	conns := make(chan *wsactor.Conn, 10)
	srv, err := wsactor.NewServer(
		wsactor.WithConnectHook(func(c *wsactor.Conn) { conns <- c }),
		wsactor.WithErrorHook(func(_ *wsactor.Conn, err error) {
			select {
			case hook <- err:
			default:
			}
		}),
		wsactor.WithRequestHandler(func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
			switch string(req.Data) {
			case `"fail"`:
				return nil, errors.New("it failed")
			case `"busy"`:
				return nil, &wsactor.RemoteError{Code: wsactor.CodeBusy, Message: "come back later"}
			case `"block"`:
				<-ctx.Done()
				return nil, ctx.Err()
			case `"nodata"`:
				return wsactor.NoData, nil
			}
			return req.Data, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	_, url := serve(t, srv) // shut down below
	disconnects := make(chan error, 10)
	clientHandler := make(chan struct{}, 1)
	cl := dial(t, url, wsactor.WithMaxPending(2), wsactor.WithRequestTimeout(time.Minute),
		wsactor.WithMaxMessageSize(200),
		wsactor.WithDisconnectHook(func(_ *wsactor.Conn, err error) { disconnects <- err }),
		wsactor.WithRequestHandler(func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
			clientHandler <- struct{}{}
			<-ctx.Done()
			return nil, ctx.Err()
		}))
	sc := recv(t, conns, "server conn")
	cc, err := cl.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// Replies with errors.
	_, err = cl.Request(ctx, "fail")
	add("plain handler error", err)
	var re *wsactor.RemoteError
	if !errors.As(err, &re) || re.Code != wsactor.CodeError || err.Error() != "wsactor: remote error: it failed" {
		t.Errorf("plain handler error: %q (%#v)", err, re)
	}
	_, err = cl.Request(ctx, "busy")
	add("handler RemoteError", err)
	if err == nil || err.Error() != "wsactor: remote error (busy): come back later" {
		t.Errorf("RemoteError reads %q", err)
	}
	r, err := cl.Request(ctx, "nodata")
	if err != nil {
		t.Fatal(err)
	}
	var v int
	add("Decode without data", r.Decode(&v), wsactor.ErrDecode)
	r, err = cl.Request(ctx, "text")
	if err != nil {
		t.Fatal(err)
	}
	add("Decode into the wrong type", r.Decode(&v), wsactor.ErrDecode)

	// Refused before anything is sent.
	_, err = cl.Request(ctx, make(chan int))
	add("Request of an unencodable value", err, wsactor.ErrEncode)
	add("Send of an unencodable value", cl.Send(func() {}), wsactor.ErrEncode)
	add("Send of null", cl.Send(nil), wsactor.ErrNullMessage)
	add("Send too large", cl.Send(strings.Repeat("x", 300)), wsactor.ErrTooLarge)
	_, err = cl.Request(ctx, strings.Repeat("x", 300))
	add("Request too large", err, wsactor.ErrTooLarge)
	add("Go without a callback", cc.Go(ctx, "x", nil), wsactor.ErrInvalidArgument)

	// Timeout and cancel.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err = cl.Request(short, "block")
	cancel()
	add("ctx deadline", err, wsactor.ErrTimeout, context.DeadlineExceeded)
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = cl.Request(canceled, "block")
	add("ctx canceled", err, wsactor.ErrCanceled, context.Canceled)

	// The cap on pending requests: two block, the third is refused.
	blocked := make(chan error, 2)
	for range 2 {
		if err := cc.Go(ctx, "block", func(_ wsactor.Response, err error) { blocked <- err }); err != nil {
			t.Fatal(err)
		}
	}
	var third error
	for third == nil || errors.Is(third, wsactor.ErrTimeout) {
		// Go registers on the actor's loop: retry until both are pending.
		short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		_, third = cl.Request(short, "block")
		cancel()
	}
	add("too many pending", third, wsactor.ErrTooManyPending)

	// Shutdown of the server: the blocked ones are cut off with a
	// shutting_down error reply; the server's own request fails with
	// ErrShutdown.
	srvReq := make(chan error, 1)
	go func() { _, err := sc.Request(ctx, "never answered"); srvReq <- err }()
	recv(t, clientHandler, "the server's request at the client") // registered before the shutdown begins
	shutCtx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	add("Server.Shutdown cut requests off", srv.Shutdown(shutCtx), context.DeadlineExceeded)
	add("the server's request at shutdown", recv(t, srvReq, "server request"), wsactor.ErrShutdown)
	for range 2 {
		err := recv(t, blocked, "blocked request")
		add("the client's request cut off by the shutdown", err, wsactor.ErrShutdown)
		if !errors.As(err, &re) || re.Code != wsactor.CodeShutdown {
			t.Errorf("cut off by the shutdown: %v, want a shutting_down RemoteError", err)
		}
	}
	derr := recv(t, disconnects, "client disconnect")
	add("disconnect hook: server went away", derr, wsactor.ErrConnLost)
	var ce *wsactor.CloseError
	if !errors.As(derr, &ce) || ce.Code != 1001 {
		t.Errorf("disconnect hook: %v, want a CloseError with 1001", derr)
	}
	add("Conn.Err of the closed server conn", sc.Err(), wsactor.ErrClosed)
	add("Send on a closed conn", sc.Send("x"), wsactor.ErrClosed)
	_, err = sc.Request(ctx, "x")
	add("Request on a conn closed by the shutdown", err, wsactor.ErrShutdown)
	add("Close of a closed conn", sc.Close(), wsactor.ErrClosed)
	add("Client.Close", cl.Close())
	_, err = cl.Request(ctx, "x")
	add("Client.Request after Close", err, wsactor.ErrClosed)
	add("Client.Send after Close", cl.Send("x"), wsactor.ErrClosed)

	// Bad input, as the error hook sees it.
	_, url2 := startServer(t, wsactor.WithErrorHook(func(_ *wsactor.Conn, err error) { hook <- err }),
		wsactor.WithRequestHandler(func(context.Context, *wsactor.Conn, wsactor.Request) (any, error) {
			panic("handler bug")
		}))
	p := dialRaw(t, url2)
	for _, bad := range []struct {
		frame  string
		binary bool
		is     error
	}{
		{`{"plugin":`, false, wsactor.ErrMalformed},
		{`null`, false, wsactor.ErrNull},
		{`"x"`, true, wsactor.ErrBinaryFrame},
		{`{"plugin":"primus-responder","responseId":"not ours","data":1}`, false, wsactor.ErrUnknownReply},
		{`{"plugin":"primus-responder","requestId":"r1","data":1}`, false, wsactor.ErrHandlerPanic},
	} {
		p.write(t, bad.binary, bad.frame)
		err := recv(t, hook, "error hook")
		add("error hook: "+bad.frame, err, bad.is)
		if bad.is == wsactor.ErrHandlerPanic {
			var pe *wsactor.PanicError
			if !errors.As(err, &pe) || pe.Value != "handler bug" || !strings.Contains(string(pe.Stack), "goroutine") {
				t.Errorf("panic: %v, want a PanicError with the value and the stack", err)
			}
			if reply := p.read(t); !strings.Contains(reply, wsactor.CodePanic) {
				t.Errorf("reply to a panicking handler: %s", reply)
			}
		}
	}

	// A panic in a Go callback restarts the client's actor: its other
	// pending request fails with ErrRestarted wrapping the panic.
	inHandler := make(chan struct{}, 1)
	_, url3 := startServer(t, wsactor.WithRequestHandler(func(ctx context.Context, _ *wsactor.Conn, req wsactor.Request) (any, error) {
		if string(req.Data) == `"block"` {
			inHandler <- struct{}{}
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return "ok", nil
	}))
	cl3 := dial(t, url3)
	c3, err := cl3.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	restarted := make(chan error, 1)
	go func() { _, err := c3.Request(ctx, "block"); restarted <- err }()
	recv(t, inHandler, "the request at the server") // registered
	if err := c3.Go(ctx, "x", func(wsactor.Response, error) { panic(fmt.Errorf("callback bug")) }); err != nil {
		t.Fatal(err)
	}
	err = recv(t, restarted, "restarted request")
	add("pending request at a restart", err, wsactor.ErrRestarted, wsactor.ErrHandlerPanic)
	var pe *wsactor.PanicError
	if !errors.As(err, &pe) || len(pe.Stack) == 0 || err.Error() != "wsactor: restarted: panic in user code: panic: callback bug" {
		t.Errorf("restart: %q (%v)", err, pe)
	}

	// Dialing: nobody listens; bad options.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	_, err = wsactor.Dial(ctx, "ws://"+addr+"/primus")
	add("Dial: connection refused", err, wsactor.ErrDial)
	_, err = wsactor.Dial(ctx, "http://"+addr+"/primus")
	add("Dial: bad URL", err, wsactor.ErrDial)
	_, err = wsactor.NewServer(wsactor.WithRequestTimeout(-1))
	add("NewServer: bad option", err, wsactor.ErrInvalidOption)
	_, err = wsactor.NewServer(wsactor.WithRequestTimeout(-1), wsactor.WithHeader(nil))
	if !errors.Is(err, wsactor.ErrInvalidOption) || strings.Count(err.Error(), "\n") != 1 {
		t.Errorf("two bad options: %q, want one line each", err)
	}
	checkText(t, err) // each line
	_, err = wsactor.NewServer(wsactor.WithHandlerPool(0, 0))
	add("NewServer: bad pool", err, wsactor.ErrInvalidOption)

	// A client that may not reconnect: the drop ends it.
	conns4 := make(chan *wsactor.Conn, 1)
	_, url4 := startServer(t, wsactor.WithConnectHook(func(c *wsactor.Conn) { conns4 <- c }))
	cl4 := dial(t, url4, wsactor.WithReconnect(wsactor.Backoff{}, 0, time.Minute, 0))
	if err := wsactor.DropForTest(recv(t, conns4, "server conn")); err != nil {
		t.Fatal(err)
	}
	recv(t, cl4.Done(), "client end")
	add("client out of reconnects", cl4.Err(), wsactor.ErrTooManyRestarts, wsactor.ErrConnLost)

	// The server ends a client on purpose.
	conns5 := make(chan *wsactor.Conn, 1)
	_, url5 := startServer(t, wsactor.WithConnectHook(func(c *wsactor.Conn) { conns5 <- c }))
	cl5 := dial(t, url5)
	c5, err := cl5.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := recv(t, conns5, "server conn").Close(); err != nil {
		t.Fatal(err)
	}
	recv(t, cl5.Done(), "client end")
	add("client ended by the server", cl5.Err(), wsactor.ErrServerEnded)
	add("Conn.Err: ended by the server", c5.Err(), wsactor.ErrServerEnded)
	add("Client.Go after the end", cl5.Go(ctx, "x", func(wsactor.Response, error) {}), wsactor.ErrServerEnded)

	// A client's heartbeat: no ping from the server.
	_, url6 := startServer(t, wsactor.WithPingInterval(0))
	lost := make(chan error, 1)
	cl6 := dial(t, url6, wsactor.WithPingTimeout(50*time.Millisecond),
		wsactor.WithReconnect(wsactor.Backoff{Min: time.Minute, Max: time.Minute}, 5, time.Minute, 0),
		wsactor.WithDisconnectHook(func(_ *wsactor.Conn, err error) {
			select {
			case lost <- err:
			default:
			}
		}))
	add("heartbeat missed", recv(t, lost, "heartbeat"), wsactor.ErrConnLost, wsactor.ErrHeartbeat)
	_ = cl6 // ErrNotConnected: see TestReconnectToBlackHoleKeepsRetrying

	if len(got) < 38 {
		t.Fatalf("only %d outcomes", len(got))
	}
	for _, o := range got {
		if o.err == nil {
			if o.what != "Client.Close" {
				t.Errorf("%s: no error", o.what)
			}
			continue
		}
		t.Logf("%-48s %s", o.what, o.err)
		checkText(t, o.err)
		if strings.Contains(o.err.Error(), "\n") {
			t.Errorf("%s: %q is not one line", o.what, o.err)
		}
		for _, s := range o.is {
			if !errors.Is(o.err, s) {
				t.Errorf("%s: %q does not match %q", o.what, o.err, s)
			}
		}
	}
}

// A handler's ctx ends when the handler returns: a follow-up request made
// with it afterwards fails with ErrCanceled, one made with
// context.WithoutCancel(ctx) goes through (the RequestHandler doc).
func TestHandlerCtxEndsOnReturn(t *testing.T) {
	followUps := make(chan error, 2)
	_, url := startServer(t, wsactor.WithRequestHandler(func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
		go func() {
			<-ctx.Done() // the handler has returned
			_, err := c.Request(ctx, "with the handler's ctx")
			followUps <- err
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), wait)
			defer cancel()
			_, err = c.Request(fctx, "without its cancel")
			followUps <- err
		}()
		return "accepted", nil
	}))
	cl := dial(t, url, wsactor.WithRequestHandler(func(_ context.Context, _ *wsactor.Conn, req wsactor.Request) (any, error) {
		return req.Data, nil
	}))
	if _, err := cl.Request(ctxWait(t), "start"); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, followUps, "follow-up with ctx"); !errors.Is(err, wsactor.ErrCanceled) || !errors.Is(err, context.Canceled) {
		t.Errorf("follow-up with the handler's ctx: %v, want ErrCanceled", err)
	}
	if err := recv(t, followUps, "follow-up without cancel"); err != nil {
		t.Errorf("follow-up with WithoutCancel: %v", err)
	}
}
