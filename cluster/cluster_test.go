package cluster_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/wsactor/wsactor"
	"github.com/wsactor/wsactor/cluster"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const wait = 20 * time.Second

func ctxWait(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

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

// startNATS runs an embedded NATS server on 127.0.0.1 (port 0: a random
// one) and returns it; the test shuts it down.
func startNATS(t testing.TB, port int) *server.Server {
	t.Helper()
	return startNATSWith(t, &server.Options{Port: port})
}

// startNATSWith is startNATS with more server options (Host, NoLog and
// NoSigs are set here).
func startNATSWith(t testing.TB, o *server.Options) *server.Server {
	t.Helper()
	o.Host, o.NoLog, o.NoSigs = "127.0.0.1", true, true
	ns, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(wait) {
		t.Fatal("NATS server not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

func natsPort(ns *server.Server) int { return ns.Addr().(*net.TCPAddr).Port }

// node is a wsactor server joined to the cluster, with its clients.
type node struct {
	t      testing.TB
	name   string
	srv    *wsactor.Server
	n      *cluster.Node
	url    string
	conns  chan *wsactor.Conn
	events chan cluster.Event
}

func startNode(t testing.TB, name, natsURL string, opts ...cluster.Option) *node {
	t.Helper()
	nd := &node{t: t, name: name, conns: make(chan *wsactor.Conn, 64), events: make(chan cluster.Event, 256)}
	srv, err := wsactor.NewServer(wsactor.WithConnectHook(func(c *wsactor.Conn) { nd.conns <- c }))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/primus", srv)
	hs := httptest.NewServer(mux)
	nd.srv, nd.url = srv, "ws"+strings.TrimPrefix(hs.URL, "http")+"/primus"
	all := append([]cluster.Option{
		cluster.WithNodeID(name),
		cluster.WithProbeInterval(50 * time.Millisecond),
		cluster.WithEventHook(func(e cluster.Event) {
			select {
			case nd.events <- e:
			default:
			}
		}),
		cluster.WithNATSOptions(nats.ReconnectWait(20 * time.Millisecond)),
	}, opts...) // later options win
	n, err := cluster.Join(srv, natsURL, all...)
	if err != nil {
		t.Fatal(err)
	}
	nd.n = n
	t.Cleanup(func() {
		_ = n.Close()
		_ = srv.Close()
		hs.Close()
	})
	return nd
}

// waitEvent waits for an event of the kind (and peer, if not empty).
func (nd *node) waitEvent(kind cluster.EventKind, peer string) {
	nd.t.Helper()
	for {
		e := recv(nd.t, nd.events, fmt.Sprintf("%s: %v %s", nd.name, kind, peer))
		if e.Kind == kind && (peer == "" || e.Peer == peer) {
			return
		}
	}
}

// cluster3 starts NATS and three nodes that know each other.
func clusterOf(t testing.TB, names ...string) (*server.Server, []*node) {
	ns := startNATS(t, -1)
	var nodes []*node
	for _, name := range names {
		nodes = append(nodes, startNode(t, name, ns.ClientURL()))
	}
	for _, nd := range nodes {
		for _, other := range nodes {
			if other != nd {
				nd.waitPeer(other.name)
			}
		}
	}
	return ns, nodes
}

func (nd *node) waitPeer(id string) {
	nd.t.Helper()
	for {
		for _, p := range nd.n.Peers() {
			if p == id {
				return
			}
		}
		nd.waitEvent(cluster.PeerUp, "")
	}
}

func flushAll(t testing.TB, nodes ...*node) {
	t.Helper()
	for _, nd := range nodes {
		if err := nd.n.Flush(ctxWait(t)); err != nil {
			t.Fatal(err)
		}
	}
}

// client is a Go client of one node, with its server-side connection.
type client struct {
	cl  *wsactor.Client
	sc  *wsactor.Conn
	got chan string
}

func (nd *node) dial(t testing.TB, h wsactor.RequestHandler) *client {
	t.Helper()
	c := &client{got: make(chan string, 256)}
	opts := []wsactor.Option{
		wsactor.WithMessageHandler(func(_ *wsactor.Conn, m json.RawMessage) { c.got <- string(m) }),
		wsactor.WithReconnect(wsactor.Backoff{}, 0, time.Minute, time.Second),
	}
	if h != nil {
		opts = append(opts, wsactor.WithRequestHandler(h))
	}
	cl, err := wsactor.Dial(ctxWait(t), nd.url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	c.cl = cl
	c.sc = recv(t, nd.conns, "server conn")
	return c
}

// named answers every request with its name, "fail" with a remote error,
// and "slow" not at all (until its ctx ends), after telling asked.
func named(name string, asked chan<- string) wsactor.RequestHandler {
	return func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
		var what string
		_ = req.Decode(&what)
		switch what {
		case "fail":
			return nil, &wsactor.RemoteError{Code: "refused", Message: name + " refuses"}
		case "slow":
			if asked != nil {
				asked <- name
			}
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return name + ":" + what, nil
	}
}

func str(t testing.TB, r wsactor.Response) string {
	t.Helper()
	var s string
	if err := r.Decode(&s); err != nil {
		t.Fatalf("decode %s: %v", r.Data, err)
	}
	return s
}

// Requests by key cross nodes in every direction, with replies, remote
// errors and timeouts as on one node; a key nobody holds fails at once.
func TestCrossNodeRequestsByKey(t *testing.T) {
	_, nodes := clusterOf(t, "a", "b", "c")
	for _, nd := range nodes {
		c := nd.dial(t, named(nd.name, nil))
		if err := c.sc.Bind("user:" + nd.name); err != nil {
			t.Fatal(err)
		}
	}
	flushAll(t, nodes...)
	for _, from := range nodes {
		for _, to := range nodes {
			r, err := from.n.RequestKey(ctxWait(t), "user:"+to.name, "hi")
			if err != nil {
				t.Fatalf("%s → %s: %v", from.name, to.name, err)
			}
			if got, want := str(t, r), to.name+":hi"; got != want {
				t.Fatalf("%s → %s: %q, want %q", from.name, to.name, got, want)
			}
		}
	}
	_, err := nodes[0].n.RequestKey(ctxWait(t), "user:c", "fail")
	var re *wsactor.RemoteError
	if !errors.As(err, &re) || re.Code != "refused" || re.Message != "c refuses" {
		t.Fatalf("remote error: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := nodes[1].n.RequestKey(ctx, "user:a", "slow"); !errors.Is(err, wsactor.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow: %v, want ErrTimeout", err)
	}
	// No holder anywhere: NATS says no responders, long before the deadline.
	if _, err := nodes[2].n.RequestKey(ctxWait(t), "user:nobody", "hi"); !errors.Is(err, wsactor.ErrNoConn) {
		t.Fatalf("no holder: %v, want ErrNoConn", err)
	}
}

// A broadcast reaches every member on every node exactly once but the
// excepted one; a room ask gets exactly one outcome per member, wherever
// it is.
func TestCrossNodeRoom(t *testing.T) {
	_, nodes := clusterOf(t, "a", "b", "c")
	var members []*client
	per := map[string]int{"a": 2, "b": 1, "c": 2}
	for _, nd := range nodes {
		for i := range per[nd.name] {
			c := nd.dial(t, named(fmt.Sprintf("%s%d", nd.name, i), nil))
			if err := c.sc.Join("room"); err != nil {
				t.Fatal(err)
			}
			members = append(members, c)
		}
	}
	outsider := nodes[1].dial(t, nil)
	flushAll(t, nodes...)

	sender := members[0] // on a
	res, err := nodes[0].n.Broadcast("room", "hello", sender.sc)
	if err != nil || res.Sent != 1 {
		t.Fatalf("broadcast: %+v %v", res, err)
	}
	for _, m := range members[1:] {
		if got := recv(t, m.got, "broadcast"); got != `"hello"` {
			t.Fatalf("got %s", got)
		}
	}
	// A marker from another node shows nothing else came first.
	if _, err := nodes[2].n.Broadcast("room", "end", nil); err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		if got := recv(t, m.got, "end"); got != `"end"` {
			t.Fatalf("got %s before the end marker", got)
		}
	}
	select {
	case g := <-outsider.got:
		t.Fatalf("a non-member got %s", g)
	default:
	}

	for _, from := range nodes {
		seen := map[string]string{}
		sum, err := from.n.RequestRoom(ctxWait(t), "room", "q", nil, func(r cluster.MemberReply) {
			if _, dup := seen[r.Node+"/"+r.ConnID]; dup {
				t.Errorf("two outcomes for %s/%s", r.Node, r.ConnID)
			}
			if r.Err != nil {
				t.Errorf("%s/%s: %v", r.Node, r.ConnID, r.Err)
				return
			}
			if (r.Conn != nil) != (r.Node == from.name) {
				t.Errorf("Conn set %v for a member on %s asked from %s", r.Conn != nil, r.Node, from.name)
			}
			seen[r.Node+"/"+r.ConnID] = str(t, r.Response)
		})
		if err != nil {
			t.Fatal(err)
		}
		if sum.Asked != 5 || sum.Replied != 5 || sum.Nodes != 2 || sum.NodesMissed != 0 || len(seen) != 5 {
			t.Fatalf("from %s: %+v, %d distinct", from.name, sum, len(seen))
		}
		for _, m := range members {
			var found bool
			for k, v := range seen {
				if strings.HasSuffix(k, "/"+m.sc.ID()) && strings.HasSuffix(v, ":q") {
					found = true
				}
			}
			if !found {
				t.Fatalf("from %s: member %s has no reply in %v", from.name, m.sc.ID(), seen)
			}
		}
	}

	// Remote errors and timeouts per member, across nodes.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	sum, err := nodes[1].n.RequestRoom(ctx, "room", "slow", nil, nil)
	if err != nil || sum.Asked != 5 || sum.TimedOut != 5 {
		t.Fatalf("slow: %+v %v", sum, err)
	}
	sum, err = nodes[1].n.RequestRoom(ctxWait(t), "room", "fail", nil, func(r cluster.MemberReply) {
		var re *wsactor.RemoteError
		if !errors.As(r.Err, &re) || re.Code != "refused" {
			t.Errorf("%s/%s: %v", r.Node, r.ConnID, r.Err)
		}
	})
	if err != nil || sum.Asked != 5 || sum.RemoteErrors != 5 {
		t.Fatalf("fail: %+v %v", sum, err)
	}
}

// A node that dies mid-ask: its members end with ErrNodeGone (a probe finds
// its subject without responders) long before the deadline; so does a
// request by key in flight to it (the node acknowledged it, and the asker
// probes it); later requests for its keys fail at once with ErrNoConn.
func TestNodeKilledMidRequest(t *testing.T) {
	_, nodes := clusterOf(t, "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	asked := make(chan string, 8)
	onB := b.dial(t, named("b0", asked))
	onC := c.dial(t, func(context.Context, *wsactor.Conn, wsactor.Request) (any, error) { return "c0", nil })
	for _, cl := range []*client{onB, onC} {
		if err := cl.sc.Join("room"); err != nil {
			t.Fatal(err)
		}
	}
	if err := onB.sc.Bind("user:b"); err != nil {
		t.Fatal(err)
	}
	flushAll(t, nodes...)

	// A request by key in flight when b dies ends with ErrNodeGone, not at
	// its deadline (ErrTimeout, which the test's wait would outlast).
	keyDone := make(chan error, 1)
	go func() {
		_, err := a.n.RequestKey(ctxWait(t), "user:b", "slow")
		keyDone <- err
	}()
	recv(t, asked, "b asked by key")

	type outcome struct {
		node string
		err  error
	}
	outs := make(chan outcome, 8)
	sumc := make(chan cluster.Summary, 1)
	go func() {
		sum, _ := a.n.RequestRoom(ctxWait(t), "room", "slow", nil, func(r cluster.MemberReply) { outs <- outcome{r.Node, r.Err} })
		sumc <- sum
	}()
	recv(t, asked, "b asked by the room")
	cluster.KillForTest(b.n)

	got := map[string]error{}
	for range 2 {
		o := recv(t, outs, "outcome")
		got[o.node] = o.err
	}
	if !errors.Is(got["b"], cluster.ErrNodeGone) || !errors.Is(got["b"], wsactor.ErrConnLost) {
		t.Fatalf("member on the dead node: %v", got["b"])
	}
	if got["c"] != nil {
		t.Fatalf("member on c: %v", got["c"])
	}
	if sum := recv(t, sumc, "summary"); sum.Asked != 2 || sum.Replied != 1 || sum.Lost != 1 {
		t.Fatalf("summary %+v", sum)
	}
	if err := recv(t, keyDone, "key request"); !errors.Is(err, cluster.ErrNodeGone) || !errors.Is(err, wsactor.ErrConnLost) {
		t.Fatalf("key request in flight to the dead node: %v, want ErrNodeGone", err)
	}
	if _, err := a.n.RequestKey(ctxWait(t), "user:b", "hi"); !errors.Is(err, wsactor.ErrNoConn) {
		t.Fatalf("key of the dead node: %v, want ErrNoConn", err)
	}
}

// NATS restarted mid-traffic: every request still ends exactly once (reply,
// or a prompt ErrNATSDown while NATS is away, never a hang); local requests
// keep working while NATS is down; the nodes report the loss and the
// return, and cross-node requests work again after nats.go reconnects.
func TestNATSRestartMidTraffic(t *testing.T) {
	ns, nodes := clusterOf(t, "a", "b")
	a, b := nodes[0], nodes[1]
	for _, nd := range nodes {
		c := nd.dial(t, named(nd.name, nil))
		if err := c.sc.Bind("user:" + nd.name); err != nil {
			t.Fatal(err)
		}
		if err := c.sc.Join("room"); err != nil {
			t.Fatal(err)
		}
	}
	flushAll(t, nodes...)

	stop := make(chan struct{})
	type tally struct{ ok, down, other int }
	results := make(chan tally, 1)
	firstOK, firstDown := make(chan struct{}), make(chan struct{})
	go func() { // cross-node traffic from b to a's key, throughout
		var tl tally
		defer func() { results <- tl }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			r, err := b.n.RequestKey(ctx, "user:a", "x")
			cancel()
			switch {
			case err == nil && string(r.Data) == `"a:x"`:
				if tl.ok++; tl.ok == 1 {
					close(firstOK)
				}
			case errors.Is(err, cluster.ErrNATSDown):
				if tl.down++; tl.down == 1 {
					close(firstDown)
				}
				// It fails at once while NATS is down: pace the loop rather
				// than spin on a core the restart needs.
				select {
				case <-stop:
				case <-time.After(5 * time.Millisecond):
				}
			case errors.Is(err, wsactor.ErrTimeout), errors.Is(err, wsactor.ErrNoConn), errors.Is(err, wsactor.ErrConnLost):
				tl.other++ // in flight as NATS went, or before the resubscription
			default:
				t.Errorf("unexpected outcome: %s %v", r.Data, err)
				return
			}
		}
	}()

	recv(t, firstOK, "a cross-node reply before the restart")
	port := natsPort(ns)
	ns.Shutdown()
	ns.WaitForShutdown()
	a.waitEvent(cluster.Disconnected, "")
	b.waitEvent(cluster.Disconnected, "")
	if r, err := a.n.RequestKey(ctxWait(t), "user:a", "local"); err != nil || string(r.Data) != `"a:local"` {
		t.Fatalf("local request without NATS: %s %v", r.Data, err)
	}
	if _, err := a.n.RequestKey(ctxWait(t), "user:b", "x"); !errors.Is(err, cluster.ErrNATSDown) {
		t.Fatalf("cross-node request without NATS: %v, want ErrNATSDown", err)
	}
	// A room ask asks the local member and does not wait for the others
	// (no deadline: the default request timeout, 30s, is longer than the
	// test waits).
	sums := make(chan cluster.Summary, 1)
	go func() {
		sum, _ := a.n.RequestRoom(context.Background(), "room", "x", nil, nil)
		sums <- sum
	}()
	if sum := recv(t, sums, "room ask without NATS"); sum.Asked != 1 || sum.Replied != 1 || sum.Nodes != 1 || sum.NodesMissed != 1 {
		t.Fatalf("room ask without NATS: %+v", sum)
	}

	// The traffic sees NATS down (its request in flight as NATS went ends
	// by its deadline first).
	recv(t, firstDown, "a request failing with ErrNATSDown")
	startNATS(t, port)
	a.waitEvent(cluster.Connected, "")
	b.waitEvent(cluster.Connected, "")
	flushAll(t, nodes...)
	for _, pair := range [][2]*node{{a, b}, {b, a}} {
		r, err := pair[0].n.RequestKey(ctxWait(t), "user:"+pair[1].name, "again")
		if err != nil || str(t, r) != pair[1].name+":again" {
			t.Fatalf("%s → %s after the restart: %s %v", pair[0].name, pair[1].name, r.Data, err)
		}
	}
	close(stop)
	tl := recv(t, results, "traffic")
	t.Logf("traffic: %+v", tl)
}

// A message by key reaches every holder on every node, once; a node
// unsubscribes from a room when its last member leaves, and a broadcast
// then reaches only the nodes with members.
func TestCrossNodeSendKeyAndSubscriptions(t *testing.T) {
	_, nodes := clusterOf(t, "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	tabA, tabB1, tabB2 := a.dial(t, nil), b.dial(t, nil), b.dial(t, nil)
	onC := c.dial(t, nil)
	for _, cl := range []*client{tabA, tabB1, tabB2} {
		if err := cl.sc.Bind("user:7"); err != nil {
			t.Fatal(err)
		}
	}
	flushAll(t, nodes...)
	res, err := c.n.SendKey("user:7", "ping")
	if err != nil || res != (wsactor.BroadcastResult{}) { // c has no holder: all remote
		t.Fatalf("SendKey from c: %+v %v", res, err)
	}
	if res, err := a.n.SendKey("user:7", "pong"); err != nil || res.Sent != 1 {
		t.Fatalf("SendKey from a: %+v %v", res, err)
	}
	for _, cl := range []*client{tabA, tabB1, tabB2} {
		// Two senders: no order between them.
		got := map[string]int{}
		for range 2 {
			got[recv(t, cl.got, "ping and pong")]++
		}
		if got[`"ping"`] != 1 || got[`"pong"`] != 1 {
			t.Fatalf("got %v", got)
		}
	}

	// Room membership comes and goes: a broadcast from c after b's only
	// member left reaches a's member and not b's former one.
	if err := tabA.sc.Join("r"); err != nil {
		t.Fatal(err)
	}
	if err := tabB1.sc.Join("r"); err != nil {
		t.Fatal(err)
	}
	flushAll(t, nodes...)
	if _, err := c.n.Broadcast("r", "one", nil); err != nil {
		t.Fatal(err)
	}
	for _, cl := range []*client{tabA, tabB1} {
		if got := recv(t, cl.got, "one"); got != `"one"` {
			t.Fatal(got)
		}
	}
	tabB1.sc.Leave("r")
	flushAll(t, nodes...)
	if _, err := c.n.Broadcast("r", "two", nil); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, tabA.got, "two"); got != `"two"` {
		t.Fatal(got)
	}
	// b's former member: a message by key sent after the broadcast arrives
	// first if the broadcast did not reach it (one NATS connection to b
	// keeps order).
	if _, err := c.n.SendKey("user:7", "after"); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, tabB1.got, "after"); got != `"after"` {
		t.Fatalf("b's former member got %s", got)
	}
	_ = onC
}

// A member on another node whose connection ends mid-ask (closed by its
// server: ErrClosed, in Lost) has exactly one outcome, and the other
// members still answer.
func TestCrossNodeMemberDropsMidAsk(t *testing.T) {
	_, nodes := clusterOf(t, "a", "b")
	a, b := nodes[0], nodes[1]
	asked := make(chan string, 4)
	dropper := b.dial(t, named("b0", asked))
	quick := func(context.Context, *wsactor.Conn, wsactor.Request) (any, error) { return "here", nil }
	stayer := b.dial(t, quick)
	local := a.dial(t, quick)
	for _, cl := range []*client{dropper, stayer, local} {
		if err := cl.sc.Join("room"); err != nil {
			t.Fatal(err)
		}
	}
	flushAll(t, nodes...)
	go func() {
		<-asked
		_ = dropper.sc.Close() // b closes the member's connection mid-ask
	}()
	seen := map[string]error{}
	// "slow" makes b0 wait until it is dropped; the others answer at once.
	sum, err := a.n.RequestRoom(ctxWait(t), "room", "slow", nil, func(r cluster.MemberReply) {
		if _, dup := seen[r.ConnID]; dup {
			t.Errorf("two outcomes for %s", r.ConnID)
		}
		seen[r.ConnID] = r.Err
	})
	if err != nil {
		t.Fatal(err)
	}
	if e := seen[dropper.sc.ID()]; !errors.Is(e, wsactor.ErrClosed) {
		t.Fatalf("dropped member: %v", e)
	}
	if sum.Asked != 3 || sum.Lost != 1 || sum.Replied != 2 || len(seen) != 3 {
		t.Fatalf("summary %+v, outcomes %v", sum, seen)
	}
}

// Chaos at test scale: requests by key and room requests from every node
// while NATS restarts and a node dies. Every call returns (nothing hangs),
// every error is one of the documented outcomes, and every room request
// gives each member it asked exactly one outcome, with a summary that adds
// up.
func TestClusterChaosExactlyOnce(t *testing.T) {
	ns, nodes := clusterOf(t, "a", "b", "c")
	handler := func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
		var what string
		_ = req.Decode(&what)
		switch what {
		case "fail":
			return nil, &wsactor.RemoteError{Code: "refused", Message: "no"}
		case "slow":
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(300 * time.Millisecond):
			}
		}
		return what, nil
	}
	var keys []string
	for _, nd := range nodes {
		for i := range 3 {
			c := nd.dial(t, handler)
			key := fmt.Sprintf("user:%s%d", nd.name, i)
			if err := c.sc.Bind(key); err != nil {
				t.Fatal(err)
			}
			if err := c.sc.Join("room"); err != nil {
				t.Fatal(err)
			}
			keys = append(keys, key)
		}
	}
	flushAll(t, nodes...)

	known := func(err error) bool {
		var re *wsactor.RemoteError
		return err == nil || errors.As(err, &re) || errors.Is(err, wsactor.ErrTimeout) ||
			errors.Is(err, wsactor.ErrCanceled) || errors.Is(err, wsactor.ErrConnLost) ||
			errors.Is(err, wsactor.ErrClosed) || errors.Is(err, wsactor.ErrShutdown) ||
			errors.Is(err, wsactor.ErrNoConn) || errors.Is(err, cluster.ErrNATSDown) ||
			errors.Is(err, wsactor.ErrRestarted)
	}
	whats := []string{"hi", "fail", "slow"}
	type counts struct{ keyCalls, roomCalls, members int }
	results := make(chan counts, 6)
	start := make(chan struct{})
	for w := range 6 {
		go func() {
			var cn counts
			defer func() { results <- cn }()
			<-start
			for i := range 60 {
				from := nodes[(w+i)%2] // a and b: c is the one that dies
				what := whats[(w*7+i)%3]
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(200+(i%3)*200)*time.Millisecond)
				if i%4 == 0 {
					seen := map[string]int{}
					sum, err := from.n.RequestRoom(ctx, "room", what, nil, func(r cluster.MemberReply) {
						seen[r.Node+"/"+r.ConnID]++
						if !known(r.Err) {
							t.Errorf("room outcome: unknown error %v", r.Err)
						}
					})
					cancel()
					if err != nil {
						t.Error(err)
						return
					}
					for m, n := range seen {
						if n != 1 {
							t.Errorf("member %s: %d outcomes", m, n)
						}
					}
					s := sum.RoomSummary
					if len(seen) != s.Asked || s.Asked != s.Replied+s.RemoteErrors+s.TimedOut+s.Canceled+s.Lost+s.NotSent {
						t.Errorf("summary %+v with %d distinct members", sum, len(seen))
					}
					cn.roomCalls++
					cn.members += s.Asked
					continue
				}
				_, err := from.n.RequestKey(ctx, keys[(w*5+i)%len(keys)], what)
				cancel()
				if !known(err) {
					t.Errorf("key request: unknown error %v", err)
				}
				cn.keyCalls++
			}
		}()
	}
	close(start)
	// NATS goes and comes back, then c dies, while the load runs.
	port := natsPort(ns)
	ns.Shutdown()
	ns.WaitForShutdown()
	startNATS(t, port)
	nodes[0].waitEvent(cluster.Connected, "")
	cluster.KillForTest(nodes[2].n)
	var total counts
	for range 6 {
		c := recv(t, results, "a load goroutine to finish")
		total.keyCalls += c.keyCalls
		total.roomCalls += c.roomCalls
		total.members += c.members
	}
	if total.keyCalls != 6*45 || total.roomCalls != 6*15 {
		t.Fatalf("calls %+v", total)
	}
	t.Logf("%+v", total)
}

// A node's member list for a room ask goes in parts when it is long; the
// asker waits for the last part, and every member has one outcome.
func TestRoomAskManifestInParts(t *testing.T) {
	defer cluster.SetManifestPartForTest(2)()
	_, nodes := clusterOf(t, "a", "b")
	for i := range 5 {
		c := nodes[1].dial(t, named(fmt.Sprintf("b%d", i), nil))
		if err := c.sc.Join("room"); err != nil {
			t.Fatal(err)
		}
	}
	flushAll(t, nodes...)
	seen := map[string]int{}
	sum, err := nodes[0].n.RequestRoom(ctxWait(t), "room", "q", nil, func(r cluster.MemberReply) {
		seen[r.ConnID]++
		if r.Err != nil {
			t.Errorf("%s: %v", r.ConnID, r.Err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Asked != 5 || sum.Replied != 5 || len(seen) != 5 || sum.NodesMissed != 0 {
		t.Fatalf("summary %+v, outcomes %v", sum, seen)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("%s: %d outcomes", id, n)
		}
	}
}

// The event hook never runs inside a call made into the node: a room ask
// made while holding a lock the hook takes returns, though it finds a node
// gone (a PeerDown event), and the event arrives after.
func TestEventHookNotInsideCalls(t *testing.T) {
	ns := startNATS(t, -1)
	var mu sync.Mutex
	evs := make(chan cluster.Event, 64)
	a := startNode(t, "a", ns.ClientURL(), cluster.WithEventHook(func(e cluster.Event) {
		mu.Lock() // the caller's lock
		defer mu.Unlock()
		select {
		case evs <- e:
		default:
		}
	}))
	b := startNode(t, "b", ns.ClientURL())
	for !slices.Contains(a.n.Peers(), "b") {
		recv(t, evs, "a: b up")
	}
	b.waitPeer("a")
	onB := b.dial(t, named("b0", nil))
	if err := onB.sc.Join("room"); err != nil {
		t.Fatal(err)
	}
	flushAll(t, a, b)
	cluster.KillForTest(b.n) // no goodbye: a learns it from the ask

	done := make(chan cluster.Summary, 1)
	go func() {
		mu.Lock()
		defer mu.Unlock()
		sum, _ := a.n.RequestRoom(ctxWait(t), "room", "q", nil, nil)
		done <- sum
	}()
	if sum := recv(t, done, "a room ask under the hook's lock"); sum.Nodes != 1 || sum.NodesMissed != 1 || sum.Asked != 0 {
		t.Fatalf("summary %+v", sum)
	}
	for {
		if e := recv(t, evs, "PeerDown b"); e.Kind == cluster.PeerDown && e.Peer == "b" {
			break
		}
	}
}

// A request by key in flight across NATS ends at once when this node loses
// NATS (ErrNATSDown, in ErrConnLost: it may have been handled) or is
// closed (ErrClosed), not at its deadline; nothing hangs.
func TestKeyRequestInFlightNATSLostOrClosed(t *testing.T) {
	ns, nodes := clusterOf(t, "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	asked := make(chan string, 4)
	onA := a.dial(t, named("a0", asked))
	if err := onA.sc.Bind("user:a"); err != nil {
		t.Fatal(err)
	}
	flushAll(t, nodes...)

	// c's own Close ends its request in flight.
	closed := make(chan error, 1)
	go func() {
		_, err := c.n.RequestKey(ctxWait(t), "user:a", "slow")
		closed <- err
	}()
	recv(t, asked, "a0 asked from c")
	if err := c.n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, closed, "c's request"); !errors.Is(err, cluster.ErrClosed) || !errors.Is(err, wsactor.ErrConnLost) {
		t.Fatalf("request in flight as its node closed: %v, want ErrClosed", err)
	}

	// NATS goes away under b's request.
	lost := make(chan error, 1)
	go func() {
		_, err := b.n.RequestKey(ctxWait(t), "user:a", "slow")
		lost <- err
	}()
	recv(t, asked, "a0 asked from b")
	ns.Shutdown()
	if err := recv(t, lost, "b's request"); !errors.Is(err, cluster.ErrNATSDown) || !errors.Is(err, wsactor.ErrConnLost) {
		t.Fatalf("request in flight as NATS went: %v, want ErrNATSDown", err)
	}
}

// Node.Flush follows the membership changes made before it: Bind returns
// before the node subscribes (presence events are delivered after the
// call), and Flush waits for that delivery; then the key is reachable from
// another node.
func TestFlushFollowsPresence(t *testing.T) {
	_, nodes := clusterOf(t, "a", "b")
	a, b := nodes[0], nodes[1]
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the nodes' cleanups, on failure too
	stop := a.srv.WatchPresence(func(p wsactor.Presence) {
		if p.Name == "block" && p.Kind == wsactor.Bound {
			<-release // holds the delivery of the events after this one
		}
	})
	defer stop()
	onA := a.dial(t, named("a0", nil))
	if err := onA.sc.Bind("block"); err != nil {
		t.Fatal(err)
	}
	if err := onA.sc.Bind("user:a"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := a.n.Flush(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Flush with the presence events held: %v, want DeadlineExceeded", err)
	}
	unblock()
	flushAll(t, a)
	r, err := b.n.RequestKey(ctxWait(t), "user:a", "hi")
	if err != nil || str(t, r) != "a0:hi" {
		t.Fatalf("b → user:a after a's Flush: %s %v", r.Data, err)
	}
}

// A room or key name over wsactor.MaxNameLen is refused before anything
// reaches NATS: a subject that long would make the NATS server close the
// node's connection. The node stays connected.
func TestLongNamesRefused(t *testing.T) {
	_, nodes := clusterOf(t, "a", "b")
	a, b := nodes[0], nodes[1]
	onB := b.dial(t, named("b0", nil))
	long := strings.Repeat("x", 3*wsactor.MaxNameLen)
	if err := onB.sc.Join(long); !errors.Is(err, wsactor.ErrNameTooLong) {
		t.Fatalf("Join: %v", err)
	}
	if err := onB.sc.Bind(long); !errors.Is(err, wsactor.ErrNameTooLong) {
		t.Fatalf("Bind: %v", err)
	}
	if err := onB.sc.Bind("user:b"); err != nil {
		t.Fatal(err)
	}
	if err := onB.sc.Join(strings.Repeat("r", wsactor.MaxNameLen)); err != nil { // the longest name
		t.Fatal(err)
	}
	flushAll(t, nodes...)
	if _, err := a.n.RequestKey(ctxWait(t), long, "hi"); !errors.Is(err, wsactor.ErrNameTooLong) {
		t.Fatalf("RequestKey: %v", err)
	}
	if _, err := a.n.SendKey(long, "hi"); !errors.Is(err, wsactor.ErrNameTooLong) {
		t.Fatalf("SendKey: %v", err)
	}
	if _, err := a.n.Broadcast(long, "hi", nil); !errors.Is(err, wsactor.ErrNameTooLong) {
		t.Fatalf("Broadcast: %v", err)
	}
	if _, err := a.n.RequestRoom(ctxWait(t), long, "hi", nil, nil); !errors.Is(err, wsactor.ErrNameTooLong) {
		t.Fatalf("RequestRoom: %v", err)
	}
	flushAll(t, a)
	for {
		select {
		case e := <-a.events:
			if e.Kind == cluster.Disconnected {
				t.Fatalf("a lost NATS: %v", e.Err)
			}
			continue
		default:
		}
		break
	}
	if sum, err := a.n.RequestRoom(ctxWait(t), strings.Repeat("r", wsactor.MaxNameLen), "hi", nil, nil); err != nil || sum.Replied != 1 {
		t.Fatalf("the longest room across nodes: %+v %v", sum, err)
	}
	if r, err := a.n.RequestKey(ctxWait(t), "user:b", "hi"); err != nil || str(t, r) != "b0:hi" {
		t.Fatalf("a → b after the refusals: %s %v", r.Data, err)
	}
}

// A room ask whose other nodes have not answered when this node loses NATS
// ends their members at once with ErrNATSDown (in ErrConnLost), not at its
// deadline; the local members still answer.
func TestRoomAskNATSLost(t *testing.T) {
	ns, nodes := clusterOf(t, "a", "b")
	a, b := nodes[0], nodes[1]
	asked := make(chan string, 4)
	onB := b.dial(t, named("b0", asked))
	onA := a.dial(t, func(context.Context, *wsactor.Conn, wsactor.Request) (any, error) { return "a0", nil })
	for _, c := range []*client{onA, onB} {
		if err := c.sc.Join("room"); err != nil {
			t.Fatal(err)
		}
	}
	flushAll(t, nodes...)
	outs := make(chan cluster.MemberReply, 4)
	sums := make(chan cluster.Summary, 1)
	go func() {
		sum, _ := a.n.RequestRoom(ctxWait(t), "room", "slow", nil, func(r cluster.MemberReply) { outs <- r })
		sums <- sum
	}()
	recv(t, asked, "b0 asked")
	ns.Shutdown()
	sum := recv(t, sums, "the room ask")
	got := map[string]error{}
	for range sum.Asked {
		r := recv(t, outs, "an outcome")
		got[r.Node] = r.Err
	}
	if got["a"] != nil || sum.Replied != 1 || sum.TimedOut != 0 {
		t.Fatalf("summary %+v, a's member: %v", sum, got["a"])
	}
	// b's member list may not have been read when NATS went: then b is
	// missed (its members unknown); else its member ends as lost.
	if sum.NodesMissed == 0 && (!errors.Is(got["b"], cluster.ErrNATSDown) || !errors.Is(got["b"], wsactor.ErrConnLost) || sum.Lost != 1) {
		t.Fatalf("summary %+v; b's member: %v, want ErrNATSDown", sum, got["b"])
	}
	t.Logf("summary %+v", sum)
}

// A node killed and started again under the same id at once: the new
// incarnation answers the probes, but what the dead one had taken (a
// request by key, members of a room ask) ends with ErrNodeGone at the next
// probe, not at the deadline.
func TestNodeRestartedUnderSameID(t *testing.T) {
	ns := startNATS(t, -1)
	// a probes every second: b is back long before the first probe (when
	// it is not, no responders ends the requests just the same).
	a := startNode(t, "a", ns.ClientURL(), cluster.WithProbeInterval(time.Second))
	b := startNode(t, "b", ns.ClientURL())
	a.waitPeer("b")
	b.waitPeer("a")
	asked := make(chan string, 4)
	onB := b.dial(t, named("b0", asked))
	if err := onB.sc.Bind("user:b"); err != nil {
		t.Fatal(err)
	}
	if err := onB.sc.Join("room"); err != nil {
		t.Fatal(err)
	}
	flushAll(t, a, b)

	keyDone := make(chan error, 1)
	go func() {
		_, err := a.n.RequestKey(ctxWait(t), "user:b", "slow")
		keyDone <- err
	}()
	recv(t, asked, "b0 asked by key")
	roomDone := make(chan error, 1)
	go func() {
		var last error
		sum, _ := a.n.RequestRoom(ctxWait(t), "room", "slow", nil, func(r cluster.MemberReply) { last = r.Err })
		if sum.Asked != 1 {
			last = fmt.Errorf("summary %+v", sum)
		}
		roomDone <- last
	}()
	recv(t, asked, "b0 asked by the room")
	cluster.KillForTest(b.n)
	b2 := startNode(t, "b", ns.ClientURL())
	flushAll(t, b2)
	if err := recv(t, keyDone, "the key request"); !errors.Is(err, cluster.ErrNodeGone) {
		t.Fatalf("key request taken by the dead incarnation: %v, want ErrNodeGone", err)
	}
	if err := recv(t, roomDone, "the room ask"); !errors.Is(err, cluster.ErrNodeGone) {
		t.Fatalf("room member on the dead incarnation: %v, want ErrNodeGone", err)
	}
}

// An old copy of a node that leaves after its replacement (same id) joined
// must not make the others forget the replacement: its bye names its own
// incarnation.
func TestOldIncarnationByeKeepsReplacement(t *testing.T) {
	ns := startNATS(t, -1)
	a := startNode(t, "a", ns.ClientURL())
	b := startNode(t, "b", ns.ClientURL())
	a.waitPeer("b")
	b2 := startNode(t, "b", ns.ClientURL()) // the replacement, joined first
	asked := make(chan string, 4)
	onB2 := b2.dial(t, named("b2", asked))
	if err := onB2.sc.Bind("user:b"); err != nil {
		t.Fatal(err)
	}
	flushAll(t, a, b2)
	if err := b.n.Close(); err != nil { // the old copy says bye
		t.Fatal(err)
	}
	// A hello after the bye on the same subject: once a knows c, it has
	// handled the bye.
	startNode(t, "c", ns.ClientURL())
	a.waitPeer("c")
	if !slices.Contains(a.n.Peers(), "b") {
		t.Fatalf("a forgot b after the old copy's bye: peers %v", a.n.Peers())
	}
	if _, err := a.n.RequestKey(ctxWait(t), "user:b", "hi"); err != nil {
		t.Fatalf("request to the replacement: %v", err)
	}
}

// A reply under the WebSocket message limit but over the NATS server's
// max_payload cannot cross nodes: the asker gets ErrTooLarge at once, by key
// and in a room ask, instead of waiting for its timeout.
func TestReplyOverNATSMaxPayload(t *testing.T) {
	ns := startNATSWith(t, &server.Options{Port: -1, MaxPayload: 16 << 10})
	a, b := startNode(t, "a", ns.ClientURL()), startNode(t, "b", ns.ClientURL())
	a.waitPeer("b")
	big := strings.Repeat("x", 32<<10) // under the 64 KiB message size, over the 16 KiB max_payload
	c := b.dial(t, func(context.Context, *wsactor.Conn, wsactor.Request) (any, error) { return big, nil })
	if err := c.sc.Bind("big"); err != nil {
		t.Fatal(err)
	}
	if err := c.sc.Join("room"); err != nil {
		t.Fatal(err)
	}
	flushAll(t, a, b)
	// A deadline far beyond the answer: an asker left to it fails the test.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	begin := time.Now()
	_, err := a.n.RequestKey(ctx, "big", "q")
	if !errors.Is(err, wsactor.ErrTooLarge) {
		t.Fatalf("RequestKey: %v, want ErrTooLarge", err)
	}
	t.Logf("by key after %v: %v", time.Since(begin), err)
	var outcomes []error
	sum, err := a.n.RequestRoom(ctx, "room", "q", nil, func(r cluster.MemberReply) { outcomes = append(outcomes, r.Err) })
	if err != nil {
		t.Fatal(err)
	}
	if len(outcomes) != 1 || !errors.Is(outcomes[0], wsactor.ErrTooLarge) || sum.Asked != 1 {
		t.Fatalf("room ask: summary %+v, outcomes %v; want one ErrTooLarge", sum, outcomes)
	}
	// The node still serves.
	if _, err := a.n.RequestKey(ctx, "nobody", "q"); !errors.Is(err, wsactor.ErrNoConn) {
		t.Fatalf("RequestKey(nobody): %v", err)
	}
}
