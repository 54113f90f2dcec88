package wsactor_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/wsactor/wsactor"
)

const (
	traceA = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	traceB = "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01"
)

// tpOf is the traceparent ctx carries, "" for none.
func tpOf(ctx context.Context) string { tp, _ := wsactor.Traceparent(ctx); return tp }

// A traceparent set on the client's request reaches the server's handler;
// the handler's request back to the client passes it on; nothing is sent
// when none is set.
func TestTraceparentClientServerNested(t *testing.T) {
	seen := make(chan string, 4) // what the client's handler saw
	_, url := startServer(t, wsactor.WithRequestHandler(func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
		r, err := c.Request(ctx, "back") // nested, with the handler's ctx
		if err != nil {
			return nil, err
		}
		var back string
		if err := r.Decode(&back); err != nil {
			return nil, err
		}
		return []string{tpOf(ctx), back}, nil
	}))
	cl := dial(t, url, wsactor.WithRequestHandler(func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
		seen <- tpOf(ctx)
		return tpOf(ctx), nil
	}))
	for _, tp := range []string{traceA, ""} {
		ctx := ctxWait(t)
		if tp != "" {
			ctx = wsactor.WithTraceparent(ctx, tp)
		}
		r, err := cl.Request(ctx, "hi")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		if err := r.Decode(&got); err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0] != tp || got[1] != tp {
			t.Fatalf("with traceparent %q: server handler / nested request saw %q", tp, got)
		}
		if s := recv(t, seen, "client handler"); s != tp {
			t.Fatalf("client handler saw %q, want %q", s, tp)
		}
	}
}

// What the server sees of a raw peer's traceparent: a valid one in the
// handler's ctx, an invalid one ignored (the request is still answered).
func TestTraceparentFromTheWire(t *testing.T) {
	_, url := startServer(t, wsactor.WithRequestHandler(func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
		return tpOf(ctx), nil
	}))
	p := dialRaw(t, url)
	for _, c := range []struct{ tp, want string }{
		{`"` + traceA + `"`, traceA},
		{`"` + strings.ToUpper(traceA) + `"`, ""},
		{`"00-00000000000000000000000000000000-00f067aa0ba902b7-01"`, ""},
		{`"` + traceA + `-x"`, ""},
		{`42`, ""},
		{`{"x":1}`, ""},
	} {
		p.write(t, false, `{"plugin":"primus-responder","requestId":"r1","traceparent":`+c.tp+`,"data":1}`)
		var reply struct {
			ResponseID string          `json:"responseId"`
			Data       json.RawMessage `json:"data"`
			Error      json.RawMessage `json:"error"`
		}
		f := p.read(t)
		if err := json.Unmarshal([]byte(f), &reply); err != nil || reply.ResponseID != "r1" || reply.Error != nil {
			t.Fatalf("traceparent %s: reply %s (%v)", c.tp, f, err)
		}
		if want, _ := json.Marshal(c.want); string(reply.Data) != string(want) {
			t.Errorf("traceparent %s: handler saw %s, want %s", c.tp, reply.Data, want)
		}
	}
}

// fakeSpan is a stand-in tracer's span: the hooks must connect it across
// the wire without the library knowing it.
type fakeSpan struct{ tp string }

type spanKey struct{}

// TestTracePropagationHooks: inject's traceparent is sent (it wins over
// the ctx's), extract's ctx reaches the handler, and without a span inject
// gives none and the ctx's traceparent is sent.
func TestTracePropagationHooks(t *testing.T) {
	inject := func(ctx context.Context) string {
		if s, ok := ctx.Value(spanKey{}).(*fakeSpan); ok {
			return s.tp
		}
		return ""
	}
	extract := func(ctx context.Context, tp string) context.Context {
		return context.WithValue(ctx, spanKey{}, &fakeSpan{tp: "remote:" + tp})
	}
	type seenT struct{ span, tp string }
	seen := make(chan seenT, 4)
	_, url := startServer(t, wsactor.WithTracePropagation(nil, extract), wsactor.WithRequestHandler(
		func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
			s, _ := ctx.Value(spanKey{}).(*fakeSpan)
			var span string
			if s != nil {
				span = s.tp
			}
			seen <- seenT{span, tpOf(ctx)}
			if ctx.Done() == nil || ctx.Err() != nil {
				return nil, errors.New("the extracted ctx lost the handler's cancellation")
			}
			return nil, nil
		}))
	cl := dial(t, url, wsactor.WithTracePropagation(inject, nil))

	// A span in ctx: its traceparent is sent, over the ctx's own.
	ctx := context.WithValue(wsactor.WithTraceparent(ctxWait(t), traceA), spanKey{}, &fakeSpan{tp: traceB})
	if _, err := cl.Request(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if s := recv(t, seen, "handler"); s.span != "remote:"+traceB || s.tp != traceB {
		t.Fatalf("handler saw %+v, want the span's %q", s, traceB)
	}
	// An invalid one from inject: the ctx's is sent.
	ctx = context.WithValue(wsactor.WithTraceparent(ctxWait(t), traceA), spanKey{}, &fakeSpan{tp: "bogus"})
	if _, err := cl.Request(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if s := recv(t, seen, "handler"); s.tp != traceA {
		t.Fatalf("handler saw %+v, want the ctx's %q", s, traceA)
	}
	// Nothing: extract is not called.
	done := make(chan error, 1)
	if err := cl.Go(ctxWait(t), 1, func(_ wsactor.Response, err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, done, "Go"); err != nil {
		t.Fatal(err)
	}
	if s := recv(t, seen, "handler"); s != (seenT{}) {
		t.Fatalf("handler saw %+v, want nothing", s)
	}
}

func TestTracePropagationOption(t *testing.T) {
	_, err := wsactor.NewServer(wsactor.WithTracePropagation(nil, nil))
	if !errors.Is(err, wsactor.ErrInvalidOption) || !strings.Contains(err.Error(), "WithTracePropagation") {
		t.Fatalf("NewServer(WithTracePropagation(nil, nil)) = %v, want ErrInvalidOption", err)
	}
}

// A panic in inject is a failure of the connection's actor, told to the
// error hook; the request still ends (here: answered, without a
// traceparent, as the restart came first).
func TestTracePropagationInjectPanics(t *testing.T) {
	_, url := startServer(t, wsactor.WithRequestHandler(func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
		return tpOf(ctx), nil
	}))
	errs := make(chan error, 4)
	cl := dial(t, url,
		wsactor.WithTracePropagation(func(context.Context) string { panic("tracer bug") }, nil),
		wsactor.WithErrorHook(func(_ *wsactor.Conn, err error) { errs <- err }))
	r, err := cl.Request(wsactor.WithTraceparent(ctxWait(t), traceA), 1)
	switch {
	case err == nil:
		var got string
		if derr := r.Decode(&got); derr != nil || got != traceA {
			t.Fatalf("the handler saw %s, want the ctx's %q (%v)", r.Data, traceA, derr)
		}
	case !errors.Is(err, wsactor.ErrRestarted):
		t.Fatalf("request: %v, want a reply or ErrRestarted", err)
	}
	if err := recv(t, errs, "the error hook"); !errors.Is(err, wsactor.ErrHandlerPanic) || !strings.Contains(err.Error(), "inject") {
		t.Fatalf("error hook: %v, want ErrHandlerPanic from inject", err)
	}
	if st := cl.Stats(); st.Restarts != 1 {
		t.Fatalf("restarts %d, want 1", st.Restarts)
	}
}
