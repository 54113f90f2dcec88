package cluster_test

import (
	"context"
	"testing"

	"github.com/wsactor/wsactor"
	"github.com/wsactor/wsactor/cluster"
)

const traceA = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// tracer answers every request with the traceparent its ctx carries.
func tracer(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
	tp, _ := wsactor.Traceparent(ctx)
	return tp, nil
}

// A request by key and a room ask carry the traceparent across NATS to the
// handler on the other node (and none when none is set).
func TestCrossNodeTraceparent(t *testing.T) {
	_, nodes := clusterOf(t, "a", "b")
	a, b := nodes[0], nodes[1]
	for _, nd := range nodes {
		c := nd.dial(t, tracer)
		if err := c.sc.Bind("user:" + nd.name); err != nil {
			t.Fatal(err)
		}
		if err := c.sc.Join("room"); err != nil {
			t.Fatal(err)
		}
	}
	flushAll(t, nodes...)
	for _, tp := range []string{traceA, ""} {
		ctx := ctxWait(t)
		if tp != "" {
			ctx = wsactor.WithTraceparent(ctx, tp)
		}
		r, err := a.n.RequestKey(ctx, "user:b", "hi")
		if err != nil {
			t.Fatal(err)
		}
		if got := str(t, r); got != tp {
			t.Errorf("by key a → b with %q: the handler saw %q", tp, got)
		}
		n := 0
		_, err = b.n.RequestRoom(ctx, "room", "hi", nil, func(m cluster.MemberReply) {
			n++
			if m.Err != nil {
				t.Errorf("room ask from b, member on %s: %v", m.Node, m.Err)
				return
			}
			if got := str(t, m.Response); got != tp {
				t.Errorf("room ask from b with %q: the member on %s saw %q", tp, m.Node, got)
			}
		})
		if err != nil || n != 2 {
			t.Fatalf("room ask: %d outcomes, %v; want 2", n, err)
		}
	}
}
