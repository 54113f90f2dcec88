package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/wsactor/wsactor"
	"github.com/wsactor/wsactor/cluster"
)

// Several nodes (-nodes N): the soak's server becomes N wsactor servers in
// this process, each joined to the others by package cluster over a NATS
// server embedded here (127.0.0.1, a random port). Node 1 is the soak's
// main server; the clients are spread over all the nodes' URLs. Every
// connection binds the key "c:<id>" and joins the room "soak", so that the
// server's load can reach connections through the cluster: a part of its
// requests are requests by key from node 1 to connections on the other
// nodes (across NATS; their own ledger, "cluster"), and once a second node
// 1 asks the whole room (every member on every node gets one outcome; a
// second one, or a summary that does not add up, is a violation). With
// -chaos the NATS server restarts and nodes other than node 1 die (their
// NATS connection and their sockets cut, as when a process dies) and come
// back on the same address.

const (
	soakRoom      = "soak"
	nodeChaosMin  = 2 * time.Second // at most one NATS restart, and one node kill, this often
	crossFraction = 5               // one server request in crossFraction goes across nodes
)

// nodeSet is the nodes of a -nodes run.
type nodeSet struct {
	s     *serverSide
	xled  *ledger // requests by key across nodes
	nodes []*soakNode

	natsMu  sync.Mutex
	ns      *server.Server
	natsURL string
	port    int

	asks, askMembers, askDupes  atomic.Int64
	kills, natsRestarts, joinFa atomic.Int64
	lastRestart, lastKill       atomic.Int64 // unix ns of the last of each
}

// soakNode is one node; its server and cluster node are replaced when it
// is killed and brought back.
type soakNode struct {
	name string
	srv  atomic.Pointer[wsactor.Server]
	cn   atomic.Pointer[cluster.Node]

	hs  *http.Server // nodes other than node 1: their own listener
	url string

	mu      sync.Mutex
	retired wsactor.Stats // the Stats of its killed servers, summed
}

// startNodes starts NATS, joins the main server as node 1 and starts the
// other nodes, each on its own listener (whose URL it adds to s.urls).
func startNodes(s *serverSide) (*nodeSet, error) {
	set := &nodeSet{s: s, xled: newLedger("cluster", s.chk)}
	ns, err := startEmbeddedNATS(-1)
	if err != nil {
		return nil, err
	}
	set.ns, set.natsURL, set.port = ns, ns.ClientURL(), ns.Addr().(*net.TCPAddr).Port
	first := &soakNode{name: "n1"}
	first.srv.Store(s.srv)
	set.nodes = append(set.nodes, first)
	for i := 2; i <= s.cfg.Nodes; i++ {
		nd := &soakNode{name: fmt.Sprintf("n%d", i)}
		srv, err := wsactor.NewServer(s.opts...)
		if err != nil {
			set.close(context.Background())
			return nil, err
		}
		nd.srv.Store(srv)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			set.close(context.Background())
			return nil, err
		}
		nd.hs = s.httpServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { nd.srv.Load().ServeHTTP(w, r) }))
		nd.url = "ws://" + ln.Addr().String() + "/primus"
		s.urls = append(s.urls, nd.url)
		s.serve.Add(1)
		go func() {
			defer s.serve.Done()
			_ = nd.hs.Serve(ln)
		}()
		set.nodes = append(set.nodes, nd)
	}
	for _, nd := range set.nodes {
		cn, err := cluster.Join(nd.srv.Load(), set.natsURL, nodeOptions(nd.name, s.cfg)...)
		if err != nil {
			set.close(context.Background())
			return nil, err
		}
		nd.cn.Store(cn)
	}
	return set, nil
}

// nodeOptions: a node reconnects to NATS within a quarter second (nats.go's
// default waits 2 s), so that a short run sees traffic after a restart.
func nodeOptions(name string, cfg *Config) []cluster.Option {
	return []cluster.Option{
		cluster.WithNodeID(name),
		cluster.WithRequestTimeout(cfg.Timeout),
		cluster.WithNATSOptions(nats.ReconnectWait(250 * time.Millisecond)),
	}
}

func startEmbeddedNATS(port int) (*server.Server, error) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true})
	if err != nil {
		return nil, err
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, errors.New("soak: the embedded NATS server did not start")
	}
	return ns, nil
}

// close leaves the cluster, shuts the other nodes' servers down within
// ctx (node 1 is the caller's), and stops NATS.
func (set *nodeSet) close(ctx context.Context) error {
	var errs []error
	for _, nd := range set.nodes {
		if cn := nd.cn.Load(); cn != nil {
			_ = cn.Close()
		}
	}
	for _, nd := range set.nodes[1:] {
		if srv := nd.srv.Load(); srv != nil {
			errs = append(errs, srv.Shutdown(ctx))
		}
		if nd.hs != nil {
			_ = nd.hs.Close()
		}
	}
	set.natsMu.Lock()
	if set.ns != nil {
		set.ns.Shutdown()
		set.ns.WaitForShutdown()
		set.ns = nil
	}
	set.natsMu.Unlock()
	return errors.Join(errs...)
}

// conns is every node's connections.
func (set *nodeSet) conns() []*wsactor.Conn {
	var out []*wsactor.Conn
	for _, nd := range set.nodes {
		out = append(out, nd.srv.Load().Conns()...)
	}
	return out
}

// stats sums the nodes' Stats, killed servers included.
func (set *nodeSet) stats() wsactor.Stats {
	var st wsactor.Stats
	for _, nd := range set.nodes {
		addStats(&st, nd.srv.Load().Stats())
		nd.mu.Lock()
		addStats(&st, nd.retired)
		nd.mu.Unlock()
	}
	return st
}

// nodeChaos are the chaos events of a -nodes run.
var nodeChaos = []string{"nats-restart", "node-kill"}

// onConnectNode makes a connection reachable through the cluster.
func onConnectNode(c *wsactor.Conn) {
	_ = c.Bind("c:" + c.ID())
	_ = c.Join(soakRoom)
}

// cross issues one request by key from node 1 to a connection on another
// node, on a goroutine of its own (counted in s.load, bounded by s.sem).
func (set *nodeSet) cross(rng *rand.Rand) {
	others := set.nodes[1+rng.IntN(len(set.nodes)-1)].srv.Load().Conns()
	if len(others) == 0 {
		return
	}
	key := "c:" + others[rng.IntN(len(others))].ID()
	s := set.s
	select {
	case s.sem <- struct{}{}:
	default:
		return // too many request goroutines
	}
	op, ms, tmo, cancelAfter := pickOp(rng, s.cfg.Chaos, false)
	p := s.pay.get(rng, s.pay.size(rng))
	crc := checksum(p)
	timeout := s.cfg.Timeout
	if tmo > 0 {
		timeout = tmo
	}
	e := set.xled.begin(op, crc, timeout)
	m := reqMsg{Op: op, N: e.nonce, C: crc, MS: ms, P: p}
	origin := set.nodes[0].cn.Load()
	s.load.Add(1)
	go func() {
		defer s.load.Done()
		defer func() { <-s.sem }()
		ctx, cancel := requestCtx(context.Background(), s.cfg.Timeout, tmo, cancelAfter)
		defer cancel()
		resp, err := origin.RequestKey(ctx, key, m)
		if errors.Is(err, cluster.ErrNATSDown) && !errors.Is(err, wsactor.ErrConnLost) {
			set.xled.refuse(e, err) // nothing was sent
			return
		}
		set.xled.end(e, resp, err)
	}()
}

// askRoom asks every member of the soak room on every node from node 1,
// and checks one outcome per member and a summary that adds up.
func (set *nodeSet) askRoom(ctx context.Context, rng *rand.Rand) {
	s := set.s
	p := s.pay.get(rng, 64)
	crc := checksum(p)
	nonce := set.xled.next.Add(1) // a nonce of the cluster ledger's space, not entered in it
	m := reqMsg{Op: opEcho, N: nonce, C: crc, P: p}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	seen := make(map[string]int)
	sum, err := set.nodes[0].cn.Load().RequestRoom(ctx, soakRoom, m, nil, func(r cluster.MemberReply) {
		id := r.Node + "/" + r.ConnID
		if seen[id]++; seen[id] == 2 {
			set.askDupes.Add(1)
			s.chk.fail("exactly-once", "room ask %d: member %s got a second outcome %v", nonce, id, r.Err)
		}
		switch c, _ := classify(r.Err); {
		case c == clUnknown && !errors.Is(r.Err, cluster.ErrNodeGone):
			s.chk.fail("unknown-error", "room ask %d: member %s ended with an error that is none of the exported outcomes: %v (%T)", nonce, id, r.Err, r.Err)
		case c == clOK:
			if why := decodeReply(r.Response.Data, nonce, crc); why != "" {
				s.chk.fail("wrong-reply", "room ask %d: member %s: %s", nonce, id, why)
			}
		}
	})
	if err != nil {
		s.chk.fail("room-ask", "room ask %d: %v", nonce, err)
		return
	}
	rs := sum.RoomSummary
	if rs.Asked != len(seen) || rs.Asked != rs.Replied+rs.RemoteErrors+rs.TimedOut+rs.Canceled+rs.Lost+rs.NotSent {
		s.chk.fail("room-ask", "room ask %d: summary %+v does not add up (%d members had outcomes)", nonce, sum, len(seen))
	}
	set.asks.Add(1)
	set.askMembers.Add(int64(rs.Asked))
}

// chaos makes a node-level chaos event: kinds "nats-restart" and
// "node-kill"; at most one of each kind every nodeChaosMin.
func (set *nodeSet) chaos(kind string, rng *rand.Rand) bool {
	at := &set.lastKill
	if kind == "nats-restart" {
		at = &set.lastRestart
	}
	now := time.Now().UnixNano()
	last := at.Load()
	if now-last < int64(nodeChaosMin) || !at.CompareAndSwap(last, now) {
		return false
	}
	switch kind {
	case "nats-restart":
		return set.restartNATS()
	case "node-kill":
		return set.kill(set.nodes[1+rng.IntN(len(set.nodes)-1)])
	}
	return false
}

// restartNATS stops the NATS server and starts a new one on the same port;
// the nodes reconnect by themselves.
func (set *nodeSet) restartNATS() bool {
	set.natsMu.Lock()
	defer set.natsMu.Unlock()
	if set.ns == nil {
		return false
	}
	set.ns.Shutdown()
	set.ns.WaitForShutdown()
	ns, err := startEmbeddedNATS(set.port)
	if err != nil {
		set.ns = nil
		set.s.chk.fail("nats", "the NATS server did not restart on port %d: %v", set.port, err)
		return false
	}
	set.ns = ns
	set.natsRestarts.Add(1)
	return true
}

// kill makes nd die as a process would (its NATS connection and its
// sockets cut at once), then brings a new server up in its place on the
// same address, joined to the cluster again.
func (set *nodeSet) kill(nd *soakNode) bool {
	old, oldCn := nd.srv.Load(), nd.cn.Load()
	if oldCn != nil {
		oldCn.NATS().Close() // no goodbye: the others find it gone
	}
	for _, c := range old.Conns() {
		set.s.rst(c)
	}
	srv, err := wsactor.NewServer(set.s.opts...)
	if err != nil {
		set.s.chk.fail("node", "node %s: a new server: %v", nd.name, err)
		return false
	}
	nd.srv.Store(srv) // new upgrades go to the new server from now on
	_ = old.Close()
	if oldCn != nil {
		_ = oldCn.Close()
	}
	nd.mu.Lock()
	addStats(&nd.retired, old.Stats())
	nd.mu.Unlock()
	cn, err := cluster.Join(srv, set.natsURL, nodeOptions(nd.name, set.s.cfg)...)
	if err != nil {
		set.joinFa.Add(1) // NATS restarting: the node serves alone until the next kill
		nd.cn.Store(nil)
	} else {
		nd.cn.Store(cn)
	}
	set.kills.Add(1)
	return true
}

// ClusterReport is what a -nodes run did across nodes.
type ClusterReport struct {
	Nodes        int          `json:"nodes"`
	Ledger       LedgerReport `json:"ledger"` // requests by key from node 1 to the other nodes
	RoomAsks     int64        `json:"room_asks"`
	AskMembers   int64        `json:"room_ask_members"`
	NodeKills    int64        `json:"node_kills"`
	NATSRestarts int64        `json:"nats_restarts"`
	JoinFailures int64        `json:"rejoin_failures,omitempty"`
}

func (set *nodeSet) report() *ClusterReport {
	return &ClusterReport{
		Nodes:        len(set.nodes),
		Ledger:       set.xled.report(set.xled.lost()),
		RoomAsks:     set.asks.Load(),
		AskMembers:   set.askMembers.Load(),
		NodeKills:    set.kills.Load(),
		NATSRestarts: set.natsRestarts.Load(),
		JoinFailures: set.joinFa.Load(),
	}
}

// crossCheckNodes is crossCheck for a -nodes run: the nodes' Stats also
// count the requests the cluster made on their connections for requests by
// key and room asks, whose outcome may not have made it back to node 1
// (NATS restarted, a node died): each reply the server's own ledger saw is
// in Stats.Replied, and Stats.Replied has no more than those plus the
// cluster's requests.
func crossCheckNodes(chk *checker, lr LedgerReport, cl *ClusterReport, st wsactor.Stats) {
	extra := cl.Ledger.Completed + cl.AskMembers
	for _, c := range []struct {
		what     string
		own, xok int64
		stats    int64
	}{
		{"replies", lr.Outcomes["ok"], cl.Ledger.Outcomes["ok"], st.Replied},
		{"error replies", lr.Outcomes["remote_error"], cl.Ledger.Outcomes["remote_error"], st.RemoteErrors},
	} {
		if c.stats < c.own+c.xok || c.stats > c.own+extra {
			chk.fail("stats-ledger", "server: %d %s reached the server's callers and %d came back across nodes, of at most %d cluster requests; the nodes' Stats count %d",
				c.own, c.what, c.xok, extra, c.stats)
		}
	}
}
