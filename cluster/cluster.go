package cluster

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/wsactor/wsactor"
)

var (
	// ErrNATSDown: the node is not connected to NATS (it is reconnecting,
	// or closed); connections on other nodes cannot be reached. Nothing was
	// sent.
	ErrNATSDown = errors.New("cluster: not connected to NATS")
	// ErrNodeGone: the node that had the member went away before the
	// member's outcome arrived. It matches [wsactor.ErrConnLost].
	ErrNodeGone = fmt.Errorf("%w: cluster: node gone", wsactor.ErrConnLost)
	// ErrClosed: the node was closed.
	ErrClosed    = errors.New("cluster: node closed")
	errBadOption = errors.New("cluster: bad option")
)

// Node is one wsactor server joined to the others over NATS. All methods
// may be called concurrently. The zero value is not usable: use [Join].
type Node struct {
	srv    *wsactor.Server
	nc     *nats.Conn
	o      options
	id     string
	inst   string // this incarnation of the node: random, per Join
	prefix string // with the trailing dot

	ctx    context.Context // ends at Close: remote asks in progress end
	cancel context.CancelFunc
	wg     sync.WaitGroup // remote asks in progress

	mu     sync.Mutex
	subs   map[string]*nats.Subscription // room and key subjects
	peers  map[string]string             // id → incarnation ("" when not known yet)
	closed bool
	own    []*nats.Subscription // hello, node subject, reply inbox
	stopW  func()

	// Requests by key in flight to other nodes (ops.go): replies come to
	// inbox.<token> on one subscription, as in nats.go's own request mux.
	inbox   string
	callsMu sync.Mutex
	calls   map[string]*keyCall
	callSeq uint64
	lost    chan struct{} // closed when NATS is lost (then replaced): room asks in flight end

	// Events for the hook, delivered in order by a goroutine that runs only
	// while some are queued (never on a caller's goroutine).
	evMu      sync.Mutex
	evQueue   []Event
	evRunning bool
	evIdle    chan struct{}
	evClosed  bool
}

// EventKind says what an [Event] reports.
type EventKind uint8

const (
	Connected    EventKind = iota + 1 // NATS connection (re)established
	Disconnected                      // NATS connection lost; nats.go reconnects
	PeerUp                            // another node announced itself
	PeerDown                          // another node left or was found gone
)

func (k EventKind) String() string {
	return [...]string{"?", "connected", "disconnected", "peer up", "peer down"}[min(int(k), 4)]
}

// Event is a change of the node's NATS connection or of the nodes it knows.
type Event struct {
	Kind EventKind
	Peer string // PeerUp, PeerDown: the other node's id
	Err  error  // Disconnected: why, if known
}

// Option configures [Join].
type Option func(*options)

type options struct {
	prefix         string
	id             string
	natsOpts       []nats.Option
	onEvent        func(Event)
	probe          time.Duration
	requestTimeout time.Duration
}

func defaultOptions() options {
	return options{prefix: "wsactor", probe: 500 * time.Millisecond, requestTimeout: 30 * time.Second}
}

// WithSubjectPrefix sets the first token of every subject the node uses
// (default "wsactor"); nodes with different prefixes do not see each other.
func WithSubjectPrefix(p string) Option { return func(o *options) { o.prefix = p } }

// WithNodeID names the node (default: 16 random hex digits). Ids must be
// unique among the nodes and one valid NATS subject token.
func WithNodeID(id string) Option { return func(o *options) { o.id = id } }

// WithNATSOptions adds options to the NATS connection (credentials, TLS,
// reconnect policy). The node sets its own disconnect and reconnect
// handlers and calls those given here after its own. By default it
// reconnects forever and does not receive its own messages (NoEcho).
func WithNATSOptions(opts ...nats.Option) Option {
	return func(o *options) { o.natsOpts = append(o.natsOpts, opts...) }
}

// WithEventHook calls fn on connection and peer changes, one event at a
// time and in order, on a goroutine of the node's that runs only while
// events are queued: never inside a call made into the node (a peer found
// gone during [Node.RequestRoom] is reported after, not inside it). fn
// must be quick and must not call [Node.Close] (which waits for it); a
// panic in fn is not recovered (as in nats.go's own handlers). No event is
// delivered after Close returns.
func WithEventHook(fn func(Event)) Option { return func(o *options) { o.onEvent = fn } }

// WithProbeInterval sets how often a room ask checks that the nodes that
// have not finished answering are still there (default 500ms): a node found
// gone ends its members' requests with [ErrNodeGone] at once rather than at
// the deadline.
func WithProbeInterval(d time.Duration) Option { return func(o *options) { o.probe = d } }

// WithRequestTimeout bounds cross-node requests whose ctx has no deadline
// (default 30s, the server's default request timeout).
func WithRequestTimeout(d time.Duration) Option { return func(o *options) { o.requestTimeout = d } }

// Join connects srv to the NATS server(s) at url (a comma-separated list)
// and to the other nodes there. It subscribes for the rooms and keys srv's
// connections have now and follows their changes. It returns once NATS has
// registered the node's subscriptions. Close the node before srv.
func Join(srv *wsactor.Server, url string, opts ...Option) (*Node, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if o.id == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		o.id = hex.EncodeToString(b[:])
	}
	switch {
	case !validToken(o.prefix):
		return nil, fmt.Errorf("%w: subject prefix %q", errBadOption, o.prefix)
	case !validToken(o.id):
		return nil, fmt.Errorf("%w: node id %q", errBadOption, o.id)
	case o.probe <= 0 || o.requestTimeout <= 0:
		return nil, fmt.Errorf("%w: probe interval %v, request timeout %v", errBadOption, o.probe, o.requestTimeout)
	}
	var inst [8]byte
	_, _ = rand.Read(inst[:])
	n := &Node{
		srv: srv, o: o, id: o.id, inst: hex.EncodeToString(inst[:]), prefix: o.prefix + ".",
		subs:  make(map[string]*nats.Subscription),
		peers: make(map[string]string),
		calls: make(map[string]*keyCall),
		lost:  make(chan struct{}),
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	nopts := append([]nats.Option{nats.MaxReconnects(-1), nats.NoEcho(), nats.Name("wsactor node " + o.id)}, o.natsOpts...)
	nc, err := nats.Connect(url, nopts...)
	if err != nil {
		n.cancel()
		return nil, fmt.Errorf("cluster: %w", err)
	}
	n.nc = nc
	n.chainHandlers()
	if err := n.start(); err != nil {
		n.cancel()
		nc.Close()
		n.closeEvents()
		return nil, err
	}
	return n, nil
}

// chainHandlers puts the node's connection handlers in front of the user's.
func (n *Node) chainHandlers() {
	nc := n.nc
	userDisc, userRec := nc.DisconnectErrHandler(), nc.ReconnectHandler()
	nc.SetDisconnectErrHandler(func(c *nats.Conn, err error) {
		n.failCalls(sigNATSLost) // requests by key in flight: their replies may never come
		n.event(Event{Kind: Disconnected, Err: err})
		if userDisc != nil {
			userDisc(c, err)
		}
	})
	nc.SetReconnectHandler(func(c *nats.Conn) {
		n.event(Event{Kind: Connected})
		n.hello() // nodes that started meanwhile learn of us, and we of them
		if userRec != nil {
			userRec(c)
		}
	})
}

func (n *Node) start() error {
	hello, err := n.nc.Subscribe(n.prefix+"hello", n.onHello)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	self, err := n.nc.Subscribe(n.nodeSubject(n.id), n.onNode)
	if err != nil {
		_ = hello.Unsubscribe()
		return fmt.Errorf("cluster: %w", err)
	}
	n.inbox = n.nc.NewInbox()
	replies, err := n.nc.Subscribe(n.inbox+".*", n.onKeyReply)
	if err != nil {
		_ = hello.Unsubscribe()
		_ = self.Unsubscribe()
		return fmt.Errorf("cluster: %w", err)
	}
	n.own = []*nats.Subscription{hello, self, replies}
	n.stopW = n.srv.WatchPresence(n.onPresence)
	// What the server has already; events from now on reconcile the rest.
	for _, room := range n.srv.Rooms() {
		n.reconcile(roomKind, room)
	}
	for _, key := range n.srv.Keys() {
		n.reconcile(keyKind, key)
	}
	n.hello()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.nc.FlushWithContext(ctx); err != nil {
		n.stop(false)
		return fmt.Errorf("cluster: %w", err)
	}
	return nil
}

// ID is the node's id.
func (n *Node) ID() string { return n.id }

// Server is the node's server.
func (n *Node) Server() *wsactor.Server { return n.srv }

// Peers returns the ids of the other nodes this node knows of.
func (n *Node) Peers() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]string, 0, len(n.peers))
	for p := range n.peers {
		out = append(out, p)
	}
	return out
}

// NATS is the node's NATS connection, for the application's own subjects
// (keep them out of the node's prefix). Do not close it: [Node.Close] does.
func (n *Node) NATS() *nats.Conn { return n.nc }

// Connected reports whether the node is connected to NATS now.
func (n *Node) Connected() bool { return n.nc.IsConnected() }

// Flush waits until the node has followed the membership changes made
// before it was called ([wsactor.Server.FlushPresence]) and NATS has
// processed everything the node sent so far, subscriptions included: after
// it, rooms and keys that had members when it was called are reachable from
// the other nodes.
func (n *Node) Flush(ctx context.Context) error {
	if err := n.srv.FlushPresence(ctx); err != nil {
		return err
	}
	return n.nc.FlushWithContext(ctx)
}

// Close leaves the cluster: the node unsubscribes, tells the others, ends
// the room asks it was answering and closes its NATS connection. It does not
// close the server. A second call returns [ErrClosed].
func (n *Node) Close() error { return n.stop(true) }

func (n *Node) stop(bye bool) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return ErrClosed
	}
	n.closed = true
	subs := n.subs
	n.subs = nil
	n.mu.Unlock()
	if n.stopW != nil {
		n.stopW()
	}
	for _, s := range subs {
		_ = s.Unsubscribe()
	}
	for _, s := range n.own {
		_ = s.Unsubscribe()
	}
	if bye {
		_ = n.nc.PublishMsg(n.instMsg(n.prefix+"hello", opBye, nil)) // with the incarnation: a restarted copy under the same id stays
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = n.nc.FlushWithContext(ctx)
		cancel()
	}
	n.cancel()
	n.wg.Wait()
	n.failCalls(sigClosed)
	n.nc.Close()
	n.closeEvents()
	return nil
}

// event queues e for the hook and starts the delivery goroutine if none
// runs.
func (n *Node) event(e Event) {
	if n.o.onEvent == nil {
		return
	}
	n.evMu.Lock()
	if n.evClosed {
		n.evMu.Unlock()
		return
	}
	n.evQueue = append(n.evQueue, e)
	if n.evRunning {
		n.evMu.Unlock()
		return
	}
	n.evRunning = true
	n.evIdle = make(chan struct{})
	n.evMu.Unlock()
	go n.runEvents()
}

// runEvents delivers the queued events, those queued meanwhile included,
// and ends when none is left.
func (n *Node) runEvents() {
	n.evMu.Lock()
	for len(n.evQueue) > 0 {
		e := n.evQueue[0]
		n.evQueue = n.evQueue[1:]
		n.evMu.Unlock()
		n.o.onEvent(e) // a panic is not recovered, as in nats.go's handlers
		n.evMu.Lock()
	}
	n.evQueue = nil
	n.evRunning = false
	close(n.evIdle)
	n.evMu.Unlock()
}

// closeEvents stops new events and waits for the delivery of those queued.
func (n *Node) closeEvents() {
	n.evMu.Lock()
	n.evClosed = true
	for n.evRunning {
		idle := n.evIdle
		n.evMu.Unlock()
		<-idle
		n.evMu.Lock()
	}
	n.evMu.Unlock()
}

// Subjects.

type nameKind uint8

const (
	roomKind nameKind = iota
	keyKind
)

func (n *Node) roomSubject(room string) string { return n.prefix + "room." + encName(room) }
func (n *Node) keySubject(key string) string   { return n.prefix + "key." + encName(key) }
func (n *Node) sendSubject(key string) string  { return n.prefix + "keysend." + encName(key) }
func (n *Node) nodeSubject(id string) string   { return n.prefix + "node." + id }

// encName makes a room or key name one subject token.
func encName(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func validToken(s string) bool {
	return s != "" && !strings.ContainsAny(s, ".*> \t\r\n")
}

// Presence: subscribe while the name has local members.

func (n *Node) onPresence(p wsactor.Presence) {
	switch p.Kind {
	case wsactor.Joined, wsactor.Left:
		if p.Count <= 1 { // the first member came or the last went
			n.reconcile(roomKind, p.Name)
		}
	case wsactor.Bound, wsactor.Unbound:
		if p.Count <= 1 {
			n.reconcile(keyKind, p.Name)
		}
	}
}

// reconcile subscribes to or unsubscribes from name's subjects to match
// whether the server has members (holders) for it now. Presence events
// arrive in order and reconcile reads the state after them, so the last
// call leaves the right subscriptions.
func (n *Node) reconcile(kind nameKind, name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	var want bool
	var subjects []string
	if kind == roomKind {
		want = n.srv.Count(name) > 0
		subjects = []string{n.roomSubject(name)}
	} else {
		want = len(n.srv.Holders(name)) > 0
		subjects = []string{n.keySubject(name), n.sendSubject(name)}
	}
	for i, subj := range subjects {
		s, have := n.subs[subj]
		switch {
		case want && !have:
			var err error
			switch {
			case kind == roomKind:
				s, err = n.nc.Subscribe(subj, func(m *nats.Msg) { n.onRoom(name, m) })
			case i == 0:
				s, err = n.nc.QueueSubscribe(subj, n.prefix+"keys", func(m *nats.Msg) { n.onKeyRequest(name, m) })
			default:
				s, err = n.nc.Subscribe(subj, func(m *nats.Msg) { n.onKeySend(name, m) })
			}
			if err == nil { // only when the connection is closed
				n.subs[subj] = s
			}
		case !want && have:
			_ = s.Unsubscribe()
			delete(n.subs, subj)
		}
	}
}

// Peers.

func (n *Node) hello() {
	m := n.instMsg(n.prefix+"hello", opHello, nil)
	m.Reply = n.nodeSubject(n.id)
	_ = n.nc.PublishMsg(m)
}

func (n *Node) onHello(m *nats.Msg) {
	from := m.Header.Get(hOrigin)
	if from == "" || from == n.id {
		return
	}
	switch m.Header.Get(hOp) {
	case opHello:
		n.peerUp(from, m.Header.Get(hInst))
		if m.Reply != "" {
			_ = n.nc.PublishMsg(n.instMsg(m.Reply, opHere, nil))
		}
	case opBye:
		n.peerDown(from, m.Header.Get(hInst))
	}
}

func (n *Node) peerUp(id, inst string) {
	n.mu.Lock()
	_, had := n.peers[id]
	if !n.closed && (inst != "" || !had) {
		n.peers[id] = inst
	}
	n.mu.Unlock()
	if !had {
		n.event(Event{Kind: PeerUp, Peer: id})
	}
}

// peerDown forgets node id's incarnation inst ("": whichever): a bye or a
// "no responders" from an older copy of a node restarted under the same id
// leaves the new copy known, and its requests in flight alone.
func (n *Node) peerDown(id, inst string) {
	n.mu.Lock()
	cur, had := n.peers[id]
	if had && inst != "" && cur != "" && cur != inst {
		n.mu.Unlock()
		return
	}
	delete(n.peers, id)
	n.mu.Unlock()
	n.peerGone(id, inst) // ops.go: its requests by key in flight end now
	if had {
		n.event(Event{Kind: PeerDown, Peer: id})
	}
}

// onNode handles the node's own subject.
func (n *Node) onNode(m *nats.Msg) {
	switch m.Header.Get(hOp) {
	case opHere:
		n.peerUp(m.Header.Get(hOrigin), m.Header.Get(hInst))
	case opPing:
		_ = m.RespondMsg(n.instMsg("", opPong, nil))
	case opAsk:
		n.answerAsk(m)
	}
}
