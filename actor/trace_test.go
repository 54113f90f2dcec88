package actor_test

import (
	"context"
	"strings"
	"testing"

	"github.com/wsactor/wsactor/actor"
	"github.com/wsactor/wsactor/envelope"
)

const (
	tpA = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tpB = "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01"
)

func TestTraceparentContext(t *testing.T) {
	ctx := context.Background()
	if tp, ok := actor.Traceparent(ctx); ok || tp != "" {
		t.Fatalf("Traceparent(Background) = %q, %v", tp, ok)
	}
	ctx = actor.WithTraceparent(ctx, tpA)
	if tp, ok := actor.Traceparent(ctx); !ok || tp != tpA {
		t.Fatalf("Traceparent = %q, %v; want %q", tp, ok, tpA)
	}
	// A later version is cut to the shared 55 bytes.
	v1 := "01" + tpB[2:]
	if tp, ok := actor.Traceparent(actor.WithTraceparent(ctx, v1+"-more")); !ok || tp != v1 {
		t.Fatalf("Traceparent(version 01 with more) = %q, %v; want %q", tp, ok, v1)
	}
	// An invalid or empty one hides what ctx carried.
	for _, bad := range []string{"", "garbage", strings.ToUpper(tpB)} {
		if tp, ok := actor.Traceparent(actor.WithTraceparent(ctx, bad)); ok || tp != "" {
			t.Errorf("Traceparent(WithTraceparent(%q)) = %q, %v; want none", bad, tp, ok)
		}
	}
}

// The traceparent a request is made with reaches the peer's handler in its
// ctx; a request the handler makes with that ctx (back to the asker) carries
// it on, unless the handler sets another; a request made without one sends
// none.
func TestTraceparentRoundTrip(t *testing.T) {
	pool := newPool(t, 8, 8)
	seenA := make(chan string, 4) // what a's handler saw
	ha := func(ctx context.Context, a *actor.Actor, req actor.Incoming) ([]byte, error) {
		tp, _ := actor.Traceparent(ctx)
		seenA <- tp
		return []byte(`1`), nil
	}
	hb := func(ctx context.Context, b *actor.Actor, req actor.Incoming) ([]byte, error) {
		tp, _ := actor.Traceparent(ctx)
		// Back to a: once passing it on, once as a child of its own.
		if _, err := b.Request(ctx, nil); err != nil {
			return nil, err
		}
		cctx, cancel := context.WithCancel(ctx) // derived contexts carry it too
		defer cancel()
		if _, err := b.Request(actor.WithTraceparent(cctx, tpB), nil); err != nil {
			return nil, err
		}
		return []byte(`"` + tp + `"`), nil
	}
	p := newPair(t, newConfig(t, actor.WithHandler(ha, pool)), newConfig(t, actor.WithHandler(hb, pool)))

	r, err := p.a.Request(actor.WithTraceparent(context.Background(), tpA), nil)
	if err != nil || string(r.Data) != `"`+tpA+`"` {
		t.Fatalf("b's handler saw %s (%v), want %q", r.Data, err, tpA)
	}
	if got := <-seenA; got != tpA {
		t.Errorf("a's handler saw %q on the nested request passed on, want %q", got, tpA)
	}
	if got := <-seenA; got != tpB {
		t.Errorf("a's handler saw %q on the nested request with its own, want %q", got, tpB)
	}

	// Without one: none anywhere.
	if r, err = p.a.Request(context.Background(), nil); err != nil || string(r.Data) != `""` {
		t.Fatalf("b's handler saw %s (%v), want none", r.Data, err)
	}
	if got := <-seenA; got != "" {
		t.Errorf("a's handler saw %q, want none", got)
	}
	<-seenA
	// Go carries it as Request does.
	done := make(chan actor.Reply, 1)
	if err := p.a.Go(actor.WithTraceparent(context.Background(), tpB), nil, func(r actor.Reply, err error) { done <- r }); err != nil {
		t.Fatal(err)
	}
	if r := <-done; string(r.Data) != `"`+tpB+`"` {
		t.Fatalf("Go: b's handler saw %s, want %q", r.Data, tpB)
	}
}

// The frame on the wire: the traceparent when there is one, nothing else
// otherwise.
func TestTraceparentOnTheWire(t *testing.T) {
	p := newPair(t, newConfig(t), nil)
	go func() { _, _ = p.a.Request(actor.WithTraceparent(context.Background(), tpA), []byte(`1`)) }()
	if env := p.nextFrame(t); string(env.Traceparent) != tpA || string(env.Data) != "1" {
		t.Fatalf("frame %+v, want traceparent %q", env, tpA)
	}
	go func() { _, _ = p.a.Request(context.Background(), []byte(`2`)) }()
	if env := p.nextFrame(t); env.Traceparent != nil || string(env.Data) != "2" {
		t.Fatalf("frame %+v, want no traceparent", env)
	}
}

// A handler run inline (on the loop) sees the traceparent too.
func TestTraceparentInlineHandler(t *testing.T) {
	hb := func(ctx context.Context, b *actor.Actor, req actor.Incoming) ([]byte, error) {
		tp, _ := actor.Traceparent(ctx)
		if string(req.Data) != `{"x":1}` || req.ID[0] != '"' {
			return nil, &actor.RemoteError{Code: "test", Message: "data " + string(req.Data) + " id " + string(req.ID)}
		}
		return append(append([]byte(`"`), tp...), '"'), nil
	}
	p := newPair(t, newConfig(t), newConfig(t, actor.WithHandler(hb, nil), actor.WithInlineHandlers()))
	r, err := p.a.Request(actor.WithTraceparent(context.Background(), tpA), []byte(`{"x":1}`))
	if err != nil || string(r.Data) != `"`+tpA+`"` {
		t.Fatalf("inline handler saw %s (%v), want %q", r.Data, err, tpA)
	}
}

// Deliver checks a traceparent it is given by hand (Decode's are checked
// already): an invalid one does not reach the handler.
func TestTraceparentDeliverChecks(t *testing.T) {
	pool := newPool(t, 2, 2)
	h := func(ctx context.Context, a *actor.Actor, req actor.Incoming) ([]byte, error) {
		tp, _ := actor.Traceparent(ctx)
		return append(append([]byte(`"`), tp...), '"'), nil
	}
	p := newPair(t, newConfig(t, actor.WithHandler(h, pool)), nil)
	for _, c := range []struct{ in, want string }{
		{strings.ToUpper(tpA), ""},
		{tpA, tpA},
		{"01" + tpA[2:] + "-more", "01" + tpA[2:]},
		{"short", ""},
	} {
		err := p.a.Deliver(envelope.Envelope{Kind: envelope.KindRequest, ID: []byte(`"r"`), Data: []byte(`1`), Traceparent: []byte(c.in)})
		if err != nil {
			t.Fatal(err)
		}
		if env := p.nextFrame(t); env.Kind != envelope.KindResponse || string(env.Data) != `"`+c.want+`"` {
			t.Errorf("Deliver with traceparent %q: reply %+v, want data %q", c.in, env, c.want)
		}
	}
}
