package wsactor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsactor/wsactor"
)

// member is a test client and its connection as the server sees it.
type member struct {
	cl  *wsactor.Client
	sc  *wsactor.Conn
	got chan string // plain messages the client received
}

// roomServer starts a server whose connect hook hands out the server side of
// each connection.
func roomServer(t *testing.T, opts ...wsactor.Option) (*wsactor.Server, string, chan *wsactor.Conn) {
	t.Helper()
	conns := make(chan *wsactor.Conn, 64)
	srv, url := startServer(t, append([]wsactor.Option{wsactor.WithConnectHook(func(c *wsactor.Conn) { conns <- c })}, opts...)...)
	return srv, url, conns
}

// join dials a client with h as its request handler (nil for none) and
// returns it with its server-side connection.
func join(t *testing.T, url string, conns chan *wsactor.Conn, h wsactor.RequestHandler, opts ...wsactor.Option) *member {
	t.Helper()
	m := &member{got: make(chan string, 1024)}
	opts = append(opts, wsactor.WithMessageHandler(func(_ *wsactor.Conn, msg json.RawMessage) { m.got <- string(msg) }))
	if h != nil {
		opts = append(opts, wsactor.WithRequestHandler(h))
	}
	m.cl = dial(t, url, opts...)
	m.sc = recv(t, conns, "server conn")
	return m
}

func sameConns(t *testing.T, got []*wsactor.Conn, want ...*wsactor.Conn) {
	t.Helper()
	key := func(c *wsactor.Conn) string { return c.ID() }
	g := make([]string, len(got))
	for i, c := range got {
		g[i] = key(c)
	}
	w := make([]string, len(want))
	for i, c := range want {
		w[i] = key(c)
	}
	slices.Sort(g)
	slices.Sort(w)
	if !slices.Equal(g, w) {
		t.Fatalf("conns %v, want %v", g, w)
	}
}

// Joining and leaving rooms, queried from both sides; a disconnect leaves
// every room and releases every key before the connection's Done closes;
// presence events arrive in order, with the counts after each change.
func TestRoomsMembershipAndPresence(t *testing.T) {
	srv, url, conns := roomServer(t)
	events := make(chan wsactor.Presence, 64)
	stop := srv.WatchPresence(func(p wsactor.Presence) { events <- p })
	defer stop()
	a, b := join(t, url, conns, nil), join(t, url, conns, nil)

	for _, step := range []struct {
		c    *wsactor.Conn
		room string
	}{{a.sc, "lobby"}, {b.sc, "lobby"}, {a.sc, "game"}, {a.sc, "lobby"}} {
		if err := step.c.Join(step.room); err != nil {
			t.Fatal(err)
		}
	}
	sameConns(t, srv.Members("lobby"), a.sc, b.sc)
	sameConns(t, srv.Members("game"), a.sc)
	if n := srv.Count("lobby"); n != 2 {
		t.Fatalf("Count(lobby) = %d", n)
	}
	if r := a.sc.Rooms(); !slices.Equal(r, []string{"lobby", "game"}) {
		t.Fatalf("a.Rooms() = %v", r)
	}
	if err := a.sc.Bind("user:a"); err != nil {
		t.Fatal(err)
	}
	if !b.sc.Leave("lobby") || b.sc.Leave("lobby") {
		t.Fatal("Leave: want true then false")
	}
	if r := srv.Rooms(); !slices.Equal(slices.Sorted(slices.Values(r)), []string{"game", "lobby"}) {
		t.Fatalf("Rooms() = %v", r)
	}

	// a disconnects: it leaves lobby and game and releases its key.
	if err := a.cl.Close(); err != nil {
		t.Fatal(err)
	}
	recv(t, a.sc.Done(), "a's server conn closed")
	if n := srv.Count("lobby") + srv.Count("game"); n != 0 {
		t.Fatalf("rooms still have %d members after the disconnect", n)
	}
	if len(srv.Rooms()) != 0 || len(srv.Holders("user:a")) != 0 || a.sc.Rooms() != nil || a.sc.Keys() != nil {
		t.Fatalf("left over: rooms %v, holders %v", srv.Rooms(), srv.Holders("user:a"))
	}
	if err := a.sc.Join("lobby"); !errors.Is(err, wsactor.ErrClosed) {
		t.Fatalf("Join after close = %v, want ErrClosed", err)
	}

	type ev struct {
		k     wsactor.PresenceKind
		name  string
		c     *wsactor.Conn
		n     int
		disco bool
	}
	want := []ev{
		{wsactor.Joined, "lobby", a.sc, 1, false},
		{wsactor.Joined, "lobby", b.sc, 2, false},
		{wsactor.Joined, "game", a.sc, 1, false},
		{wsactor.Bound, "user:a", a.sc, 1, false},
		{wsactor.Left, "lobby", b.sc, 1, false},
		{wsactor.Left, "lobby", a.sc, 0, true},
		{wsactor.Left, "game", a.sc, 0, true},
		{wsactor.Unbound, "user:a", a.sc, 0, true},
	}
	for i, w := range want {
		p := recv(t, events, "presence event")
		if g := (ev{p.Kind, p.Name, p.Conn, p.Count, p.Disconnected}); g != w {
			t.Fatalf("event %d: %v %q n=%d disco=%v, want %v %q n=%d disco=%v", i, g.k, g.name, g.n, g.disco, w.k, w.name, w.n, w.disco)
		}
	}
	select {
	case p := <-events:
		t.Fatalf("unexpected event %+v", p)
	default:
	}
}

// A watcher may change rooms itself (no deadlock); its change's event
// follows once it returns. A panicking watcher is reported, and the next
// events are still delivered.
func TestPresenceWatcherReentrantAndPanics(t *testing.T) {
	errs := make(chan error, 4)
	srv, url, conns := roomServer(t, wsactor.WithErrorHook(func(_ *wsactor.Conn, err error) { errs <- err }))
	events := make(chan string, 16)
	srv.WatchPresence(func(p wsactor.Presence) {
		events <- p.Kind.String() + " " + p.Name
		switch {
		case p.Kind != wsactor.Joined: // the disconnect at the end
		case p.Name == "a":
			if err := p.Conn.Join("b"); err != nil { // from inside the watcher
				t.Error(err)
			}
			events <- "returned"
		case p.Name == "boom":
			panic("watcher bug")
		}
	})
	m := join(t, url, conns, nil)
	for _, room := range []string{"a", "boom", "c"} {
		if err := m.sc.Join(room); err != nil {
			t.Fatal(err)
		}
	}
	// The watcher's own Join returns before its event is delivered; that
	// event comes after the watcher returned, among the test's own joins.
	for _, want := range []string{"joined a", "returned"} {
		if got := recv(t, events, want); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	var rest []string
	for range 3 {
		rest = append(rest, recv(t, events, "an event"))
	}
	boom, c := slices.Index(rest, "joined boom"), slices.Index(rest, "joined c")
	if boom < 0 || c < boom || !slices.Contains(rest, "joined b") { // the test's joins in their order
		t.Fatalf("events after the watcher returned: %q", rest)
	}
	if err := recv(t, errs, "panic report"); !errors.Is(err, wsactor.ErrHandlerPanic) {
		t.Fatalf("error hook got %v", err)
	}
}

// Rooms and keys belong to a server's connections.
func TestRoomsServerOnlyAndNames(t *testing.T) {
	_, url, conns := roomServer(t)
	m := join(t, url, conns, nil)
	cc, err := m.cl.Conn(ctxWait(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := cc.Join("x"); !errors.Is(err, wsactor.ErrServerOnly) {
		t.Fatalf("client Join = %v", err)
	}
	if err := cc.Bind("x"); !errors.Is(err, wsactor.ErrServerOnly) {
		t.Fatalf("client Bind = %v", err)
	}
	if err := m.sc.Join(""); !errors.Is(err, wsactor.ErrEmptyName) {
		t.Fatalf("Join(\"\") = %v", err)
	}
	if err := m.sc.Bind(""); !errors.Is(err, wsactor.ErrEmptyName) {
		t.Fatalf("Bind(\"\") = %v", err)
	}
}

// countingMsg counts its encodings.
type countingMsg struct {
	n    *atomic.Int32
	text string
}

func (m countingMsg) MarshalJSON() ([]byte, error) {
	m.n.Add(1)
	return json.Marshal(map[string]string{"text": m.text})
}

// Broadcast encodes once, reaches every member but the excepted one exactly
// once, and refuses what cannot be sent before sending anything.
func TestBroadcast(t *testing.T) {
	srv, url, conns := roomServer(t, wsactor.WithMaxMessageSize(1024))
	var ms []*member
	for range 5 {
		m := join(t, url, conns, nil)
		if err := m.sc.Join("room"); err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	outsider := join(t, url, conns, nil)
	var encodes atomic.Int32
	res, err := srv.Broadcast("room", countingMsg{&encodes, "hi"}, ms[0].sc)
	if err != nil {
		t.Fatal(err)
	}
	if res != (wsactor.BroadcastResult{Sent: 4}) {
		t.Fatalf("result %+v", res)
	}
	if n := encodes.Load(); n != 1 {
		t.Fatalf("encoded %d times, want once", n)
	}
	// A second broadcast to all: order per member is kept, and the
	// excepted member got only this one.
	if res, err := srv.Broadcast("room", "all", nil); err != nil || res.Sent != 5 {
		t.Fatalf("%+v %v", res, err)
	}
	for i, m := range ms {
		if i > 0 {
			if got := recv(t, m.got, "hi"); got != `{"text":"hi"}` {
				t.Fatalf("member %d got %s", i, got)
			}
		}
		if got := recv(t, m.got, "all"); got != `"all"` {
			t.Fatalf("member %d got %s", i, got)
		}
	}
	select {
	case g := <-outsider.got:
		t.Fatalf("a non-member got %s", g)
	default:
	}
	if res, err := srv.Broadcast("nobody", "x", nil); err != nil || res != (wsactor.BroadcastResult{}) {
		t.Fatalf("empty room: %+v %v", res, err)
	}
	if _, err := srv.Broadcast("room", nil, nil); !errors.Is(err, wsactor.ErrNullMessage) {
		t.Fatalf("null: %v", err)
	}
	if _, err := srv.Broadcast("room", strings.Repeat("x", 2000), nil); !errors.Is(err, wsactor.ErrTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	if _, err := srv.Broadcast("room", json.RawMessage("{"), nil); err == nil {
		t.Fatal("invalid raw JSON was broadcast")
	}
	// Nothing else arrived: the refused broadcasts sent nothing. A last
	// message flushes what might be in flight.
	if _, err := srv.Broadcast("room", "end", nil); err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		if got := recv(t, m.got, "end"); got != `"end"` {
			t.Fatalf("member %d got %s before the end marker", i, got)
		}
	}
}

// A member that does not read is skipped once its outbound queue is over
// WithMaxOutboundBytes, and counted; the others still get every message,
// exactly once.
func TestBroadcastSkipsSlowReader(t *testing.T) {
	srv, url, conns := roomServer(t, wsactor.WithMaxOutboundBytes(64<<10), wsactor.WithWriteTimeout(time.Minute))
	fast := []*member{join(t, url, conns, nil), join(t, url, conns, nil)}
	dialRawBuf(t, url, 1) // stops reading after one frame; closed first at cleanup
	slow := recv(t, conns, "slow conn")
	for _, c := range []*wsactor.Conn{fast[0].sc, fast[1].sc, slow} {
		if err := c.Join("room"); err != nil {
			t.Fatal(err)
		}
	}
	big := strings.Repeat("x", 16<<10)
	want := `"` + big + `"`
	for round := 0; ; round++ {
		if round == 10000 {
			t.Fatal("the slow member was never skipped")
		}
		res, err := srv.Broadcast("room", big, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Closed != 0 || res.Sent+res.Skipped != 3 || res.Sent < 2 {
			t.Fatalf("round %d: %+v", round, res)
		}
		// Each fast member gets it before the next round: their queues are
		// empty at every broadcast, so only the slow one can be skipped.
		for _, m := range fast {
			if got := recv(t, m.got, "broadcast"); got != want {
				t.Fatalf("round %d: got %d bytes", round, len(got))
			}
		}
		if res.Skipped == 1 {
			break
		}
	}
	for _, m := range fast {
		select {
		case <-m.got:
			t.Fatal("a fast member got a message twice")
		default:
		}
	}
}

// Every member asked gets exactly one outcome, delivered once to the
// callback and counted once in the summary: replies, remote errors, a
// member that does not answer by the deadline and one that disconnects
// mid-ask.
func TestRequestRoomOutcomes(t *testing.T) {
	srv, url, conns := roomServer(t)
	reply := func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
		var n int
		if err := req.Decode(&n); err != nil {
			return nil, err
		}
		return n * 2, nil
	}
	refuse := func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
		return nil, &wsactor.RemoteError{Code: "nope", Message: "not today"}
	}
	silent := func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	asked := make(chan struct{}, 1)
	vanish := func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
		asked <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	}
	repliers := []*member{join(t, url, conns, reply), join(t, url, conns, reply), join(t, url, conns, reply)}
	refuser := join(t, url, conns, refuse)
	mute := join(t, url, conns, silent)
	gone := join(t, url, conns, vanish, wsactor.WithReconnect(wsactor.Backoff{}, 0, time.Minute, time.Second))
	skipped := join(t, url, conns, reply)
	for _, m := range append(repliers, refuser, mute, gone, skipped) {
		if err := m.sc.Join("room"); err != nil {
			t.Fatal(err)
		}
	}
	go func() {
		<-asked
		_ = wsactor.DropForTest(gone.sc) // the member's socket dies mid-ask
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	seen := map[*wsactor.Conn]int{}
	outcome := map[*wsactor.Conn]wsactor.MemberReply{}
	sum, err := srv.RequestRoom(ctx, "room", 21, skipped.sc, func(r wsactor.MemberReply) {
		seen[r.Conn]++
		outcome[r.Conn] = r
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 6 {
		t.Fatalf("%d members had outcomes, want 6", len(seen))
	}
	for c, n := range seen {
		if n != 1 {
			t.Fatalf("conn %s had %d outcomes", c.ID(), n)
		}
	}
	for _, m := range repliers {
		var v int
		if r := outcome[m.sc]; r.Err != nil || r.Response.Decode(&v) != nil || v != 42 {
			t.Fatalf("replier: %s %v", r.Response.Data, r.Err)
		}
	}
	var re *wsactor.RemoteError
	if r := outcome[refuser.sc]; !errors.As(r.Err, &re) || re.Code != "nope" {
		t.Fatalf("refuser: %v", r.Err)
	}
	if r := outcome[mute.sc]; !errors.Is(r.Err, wsactor.ErrTimeout) || !errors.Is(r.Err, context.DeadlineExceeded) {
		t.Fatalf("mute: %v", r.Err)
	}
	if r := outcome[gone.sc]; !errors.Is(r.Err, wsactor.ErrConnLost) {
		t.Fatalf("gone: %v", r.Err)
	}
	want := wsactor.RoomSummary{Asked: 6, Replied: 3, RemoteErrors: 1, TimedOut: 1, Lost: 1}
	if sum != want {
		t.Fatalf("summary %+v, want %+v", sum, want)
	}
}

// Under churn (members dropping while asked, asks overlapping) every call
// still gets exactly one outcome per member it asked, no more and no fewer.
func TestRequestRoomExactlyOnceUnderChurn(t *testing.T) {
	srv, url, conns := roomServer(t)
	echo := func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) { return req.Data, nil }
	var ms []*member
	for range 24 {
		m := join(t, url, conns, echo, wsactor.WithReconnect(wsactor.Backoff{}, 0, time.Minute, time.Second))
		if err := m.sc.Join("room"); err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	var wg sync.WaitGroup
	var totals wsactor.RoomSummary
	var mu sync.Mutex
	for i := range 6 {
		wg.Go(func() {
			for j := range 5 {
				seen := map[*wsactor.Conn]int{}
				sum, err := srv.RequestRoom(ctxWait(t), "room", fmt.Sprint(i, j), nil, func(r wsactor.MemberReply) {
					seen[r.Conn]++
					if r.Err != nil && !errors.Is(r.Err, wsactor.ErrConnLost) && !errors.Is(r.Err, wsactor.ErrClosed) {
						t.Errorf("unexpected outcome %v", r.Err)
					}
				})
				if err != nil {
					t.Error(err)
					return
				}
				for c, n := range seen {
					if n != 1 {
						t.Errorf("conn %s: %d outcomes", c.ID(), n)
					}
				}
				if len(seen) != sum.Asked || sum.Asked != sum.Replied+sum.Lost {
					t.Errorf("summary %+v, %d distinct members", sum, len(seen))
				}
				mu.Lock()
				totals.Merge(sum)
				mu.Unlock()
			}
		})
	}
	// Meanwhile a third of the members drop.
	for _, m := range ms[:8] {
		if err := wsactor.DropForTest(m.sc); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	for _, m := range ms[:8] {
		recv(t, m.sc.Done(), "dropped conn closed")
	}
	if n := srv.Count("room"); n != 16 {
		t.Fatalf("room has %d members after the drops, want 16", n)
	}
	if totals.Asked == 0 || totals.Asked != totals.Replied+totals.Lost {
		t.Fatalf("totals %+v", totals)
	}
}

// Keys: a request by key reaches the connection that bound it last; a send
// reaches every holder; a key nobody holds fails at once with ErrNoConn.
func TestKeys(t *testing.T) {
	srv, url, conns := roomServer(t)
	name := func(n string) wsactor.RequestHandler {
		return func(context.Context, *wsactor.Conn, wsactor.Request) (any, error) { return n, nil }
	}
	tab1, tab2 := join(t, url, conns, name("tab1")), join(t, url, conns, name("tab2"))
	for _, m := range []*member{tab1, tab2} {
		if err := m.sc.Bind("user:7"); err != nil {
			t.Fatal(err)
		}
	}
	sameConns(t, srv.Holders("user:7"), tab1.sc, tab2.sc)
	if h := srv.Holders("user:7"); h[0] != tab2.sc {
		t.Fatal("Holders: most recent first")
	}
	var who string
	r, err := srv.RequestKey(ctxWait(t), "user:7", "who")
	if err != nil || r.Decode(&who) != nil || who != "tab2" {
		t.Fatalf("RequestKey: %s %v", r.Data, err)
	}
	if res, err := srv.SendKey("user:7", "ping"); err != nil || res.Sent != 2 {
		t.Fatalf("SendKey: %+v %v", res, err)
	}
	for _, m := range []*member{tab1, tab2} {
		if got := recv(t, m.got, "ping"); got != `"ping"` {
			t.Fatal(got)
		}
	}
	// tab2 gives the key up: tab1 answers.
	if !tab2.sc.Unbind("user:7") {
		t.Fatal("Unbind: not held")
	}
	if r, err := srv.RequestKey(ctxWait(t), "user:7", "who"); err != nil || string(r.Data) != `"tab1"` {
		t.Fatalf("RequestKey: %s %v", r.Data, err)
	}
	// tab1 disconnects: nobody holds the key.
	if err := tab1.cl.Close(); err != nil {
		t.Fatal(err)
	}
	recv(t, tab1.sc.Done(), "tab1 closed")
	if _, err := srv.RequestKey(ctxWait(t), "user:7", "who"); !errors.Is(err, wsactor.ErrNoConn) {
		t.Fatalf("RequestKey on a released key = %v", err)
	}
	if _, err := srv.SendKey("user:7", "x"); !errors.Is(err, wsactor.ErrNoConn) {
		t.Fatalf("SendKey on a released key = %v", err)
	}
}

// Presence watchers never run inside the call that changed a membership:
// Join, Leave, Bind and Unbind return while the caller holds a lock the
// watcher takes, and the events still arrive, in order.
func TestPresenceWatcherNotOnCaller(t *testing.T) {
	srv, url, conns := roomServer(t)
	var mu sync.Mutex
	events := make(chan string, 16)
	stop := srv.WatchPresence(func(p wsactor.Presence) {
		mu.Lock() // the caller's lock: taken by the caller during its calls
		events <- p.Kind.String() + " " + p.Name
		mu.Unlock()
	})
	defer stop()
	m := join(t, url, conns, nil)
	done := make(chan error, 1)
	go func() {
		mu.Lock()
		defer mu.Unlock()
		if err := m.sc.Join("r"); err != nil {
			done <- err
			return
		}
		if err := m.sc.Bind("k"); err != nil {
			done <- err
			return
		}
		m.sc.Leave("r")
		m.sc.Unbind("k")
		done <- nil
	}()
	if err := recv(t, done, "Join, Bind, Leave, Unbind under the caller's lock"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"joined r", "bound k", "left r", "unbound k"} {
		if got := recv(t, events, want); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}

// Close waits for the presence watchers: when it returns, the events of the
// connections it closed have all been delivered and no watcher runs.
func TestPresenceCloseWaitsForWatchers(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	srv, url, conns := roomServer(t, wsactor.WithDisconnectHook(func(*wsactor.Conn, error) {
		once.Do(func() { close(release) }) // Close is under way
	}))
	var left, running atomic.Int32
	first := make(chan struct{})
	srv.WatchPresence(func(p wsactor.Presence) {
		running.Add(1)
		defer running.Add(-1)
		switch p.Kind {
		case wsactor.Joined:
			if p.Count == 1 {
				close(first)
				<-release // held until Close has begun closing the connections
			}
		case wsactor.Left:
			if p.Count == 0 {
				// The last event lingers: a Close that did not wait for
				// the watcher would return first. (A delay, not a
				// synchronisation: with the wait, the test passes however
				// slow the machine.)
				<-time.After(100 * time.Millisecond)
			}
			left.Add(1)
		}
	})
	const n = 4
	var ms []*member
	for range n {
		ms = append(ms, join(t, url, conns, nil))
	}
	joined := make(chan error, 1)
	go func() { // not on the test's goroutine: with watchers run by Join, this one would block
		var err error
		for _, m := range ms {
			err = errors.Join(err, m.sc.Join("r"))
		}
		joined <- err
	}()
	if err := recv(t, joined, "the joins"); err != nil {
		t.Fatal(err)
	}
	recv(t, first, "the first event")
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if l, r := left.Load(), running.Load(); l != n || r != 0 {
		t.Fatalf("after Close: %d of %d Left events delivered, %d watchers running", l, n, r)
	}
}

// Names are checked: empty, or over MaxNameLen bytes, refused.
func TestRoomNameLimits(t *testing.T) {
	_, url, conns := roomServer(t)
	m := join(t, url, conns, nil)
	long := strings.Repeat("x", wsactor.MaxNameLen+1)
	if err := m.sc.Join(long); !errors.Is(err, wsactor.ErrNameTooLong) {
		t.Fatalf("Join(long) = %v", err)
	}
	if err := m.sc.Bind(long); !errors.Is(err, wsactor.ErrNameTooLong) {
		t.Fatalf("Bind(long) = %v", err)
	}
	if err := m.sc.Join(long[1:]); err != nil {
		t.Fatalf("Join of MaxNameLen bytes: %v", err)
	}
	if r := m.sc.Rooms(); len(r) != 1 || len(r[0]) != wsactor.MaxNameLen {
		t.Fatalf("rooms %d", len(r))
	}
}

// FlushPresence returns once the events of earlier changes were delivered,
// or at ctx's end while a watcher holds them.
func TestFlushPresence(t *testing.T) {
	srv, url, conns := roomServer(t)
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the server's Close, on failure too
	var seen atomic.Int32
	stop := srv.WatchPresence(func(p wsactor.Presence) {
		if p.Name == "a" {
			<-release
		}
		seen.Add(1)
	})
	defer stop()
	if err := srv.FlushPresence(ctxWait(t)); err != nil { // nothing queued
		t.Fatal(err)
	}
	m := join(t, url, conns, nil)
	for _, room := range []string{"a", "b"} {
		if err := m.sc.Join(room); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := srv.FlushPresence(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("FlushPresence with a watcher holding the events: %v", err)
	}
	unblock()
	if err := srv.FlushPresence(ctxWait(t)); err != nil {
		t.Fatal(err)
	}
	if n := seen.Load(); n != 2 {
		t.Fatalf("%d events delivered after FlushPresence, want 2", n)
	}
}

// Presence events wait for slow watchers in a bounded queue: while
// WithPresenceBacklog events are queued, Join and Bind fail with
// ErrPresenceBacklog and change nothing; leaves are still queued; once the
// watcher catches up it has seen every change that was made, in order, and
// joins work again.
func TestPresenceBacklogBounded(t *testing.T) {
	const backlog = 8
	srv, url, conns := roomServer(t, wsactor.WithPresenceBacklog(backlog))
	release := make(chan struct{})
	var mu sync.Mutex
	var seen []string
	stop := srv.WatchPresence(func(p wsactor.Presence) {
		<-release // a watcher that fell behind
		mu.Lock()
		seen = append(seen, fmt.Sprintf("%v %s", p.Kind, p.Name))
		mu.Unlock()
	})
	defer stop()
	m := join(t, url, conns, nil)
	var want []string
	refused := 0
	for i := range 3 * backlog {
		room := fmt.Sprintf("r%d", i)
		switch err := m.sc.Join(room); {
		case err == nil:
			want = append(want, fmt.Sprintf("%v %s", wsactor.Joined, room))
		case errors.Is(err, wsactor.ErrPresenceBacklog):
			refused++
			if slices.Contains(m.sc.Rooms(), room) {
				t.Fatalf("refused join of %s changed the rooms: %v", room, m.sc.Rooms())
			}
		default:
			t.Fatalf("Join(%s): %v", room, err)
		}
	}
	// The first event is with the watcher, backlog more wait: the rest
	// are refused.
	if joined := len(want); joined > backlog+1 || refused == 0 {
		t.Fatalf("%d joins succeeded, %d refused, backlog %d", joined, refused, backlog)
	}
	if err := m.sc.Bind("user:1"); !errors.Is(err, wsactor.ErrPresenceBacklog) {
		t.Fatalf("Bind while behind: %v, want ErrPresenceBacklog", err)
	}
	if got := srv.Holders("user:1"); len(got) != 0 {
		t.Fatalf("refused Bind: %d holders", len(got))
	}
	if !m.sc.Leave("r0") { // leaves are never refused
		t.Fatal("Leave(r0) while behind")
	}
	want = append(want, fmt.Sprintf("%v r0", wsactor.Left))
	close(release)
	if err := srv.FlushPresence(ctxWait(t)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got := slices.Clone(seen)
	mu.Unlock()
	if !slices.Equal(got, want) {
		t.Fatalf("watcher saw %v, want %v", got, want)
	}
	if err := m.sc.Join("after"); err != nil {
		t.Fatalf("Join after the watcher caught up: %v", err)
	}
}
