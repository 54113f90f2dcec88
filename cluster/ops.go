package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/wsactor/wsactor"
)

// RequestKey sends v as a request to a connection holding key, on this node
// if one holds it here (no NATS hop), else on whichever node NATS picks
// among those with a holder, and waits for the outcome: the reply, a
// [*wsactor.RemoteError], [wsactor.ErrTimeout] at ctx's deadline (or
// [WithRequestTimeout]), and so on, exactly once. A key no live connection
// holds fails at once with [wsactor.ErrNoConn]; with NATS unreachable a key
// with no local holder fails at once with [ErrNATSDown]. The node that
// takes the request acknowledges it at once with its id; while the reply
// is due, that node is probed every [WithProbeInterval], and if it is gone
// (it died, or left) the request fails with [ErrNodeGone] then, not at its
// deadline. If this node loses NATS or is closed meanwhile, the request
// fails at once with [ErrNATSDown] or [ErrClosed] (both wrapped in
// [wsactor.ErrConnLost]: the request may have been handled).
func (n *Node) RequestKey(ctx context.Context, key string, v any) (wsactor.Response, error) {
	if err := checkName(key); err != nil {
		return wsactor.Response{}, err
	}
	if len(n.srv.Holders(key)) > 0 {
		r, err := n.srv.RequestKey(ctx, key, v)
		if !errors.Is(err, wsactor.ErrNoConn) { // not released meanwhile
			return r, err
		}
	}
	data, err := encode(v)
	if err != nil {
		return wsactor.Response{}, err
	}
	if ctx.Err() != nil {
		return wsactor.Response{}, ctxError(ctx)
	}
	if !n.nc.IsConnected() {
		return wsactor.Response{}, ErrNATSDown
	}
	ctx, cancel := n.deadline(ctx)
	defer cancel()
	call, token := n.newCall()
	if call == nil {
		return wsactor.Response{}, ErrClosed
	}
	defer n.dropCall(token)
	reply := n.inbox + "." + token
	m := n.msg(n.keySubject(key), opReq, data)
	m.Reply = reply
	setTimeout(m.Header, ctx)
	n.setTrace(m.Header, ctx)
	if err := n.nc.PublishMsg(m); err != nil {
		return wsactor.Response{}, fmt.Errorf("%w: %w", ErrNATSDown, err)
	}
	// The acknowledgement does not wake this goroutine (onKeyReply notes
	// the node in call): a quick reply costs no more than one wake-up. The
	// probe timer looks at what was noted.
	probe := time.NewTimer(n.o.probe)
	defer probe.Stop()
	probing := false // a probe's answer is due
	unanswered := 0  // probe intervals the answer has been due for
	for {
		select {
		case <-ctx.Done():
			return wsactor.Response{}, ctxError(ctx)
		case <-probe.C:
			if probing {
				// An answer lost (a hung node whose subscription NATS still
				// holds): probe again, so that its "no responders" is asked
				// for once NATS drops it.
				if unanswered++; unanswered >= 3 {
					probing = false
				}
			}
			if node, _ := call.taken(n); node != "" && !probing {
				p := n.msg(n.nodeSubject(node), opPing, nil)
				p.Reply = reply
				probing, unanswered = n.nc.PublishMsg(p) == nil, 0
			}
			probe.Reset(n.o.probe)
		case r := <-call.ch:
			node, inst := call.taken(n)
			switch {
			case r == sigNATSLost:
				return wsactor.Response{}, errLostNATS
			case r == sigClosed:
				return wsactor.Response{}, fmt.Errorf("%w: %w", wsactor.ErrConnLost, ErrClosed)
			case noResponders(r) && node == "":
				// Nobody took the request: no node holds the key.
				return wsactor.Response{}, fmt.Errorf("%w: %q on no node", wsactor.ErrNoConn, key)
			case noResponders(r):
				// A probe found the node's subject without a subscriber.
				n.peerDown(node, inst)
				return wsactor.Response{}, fmt.Errorf("%w (node %s)", ErrNodeGone, node)
			}
			switch r.Header.Get(hOp) {
			case opPong:
				probing = false
				if r.Header.Get(hInst) != inst { // restarted under the same id
					return wsactor.Response{}, fmt.Errorf("%w (node %s restarted)", ErrNodeGone, node)
				}
			case opBye: // the node is leaving: its connections go with it
				return wsactor.Response{}, fmt.Errorf("%w (node %s left)", ErrNodeGone, node)
			case opReply:
				if err := getErr(r.Header); err != nil {
					return wsactor.Response{}, err
				}
				return wsactor.Response{Data: dataOrNil(r.Data)}, nil
			}
		}
	}
}

// keyCall is a request by key in flight to another node. Its channel has
// room for every message that can come for it (the reply, one probe's
// answer at a time, a "no responders", a "bye" and one of the node's own
// signals), so the reply handler never blocks.
type keyCall struct {
	ch         chan *nats.Msg
	node, inst string // from the acknowledgement, set by onKeyReply under callsMu
}

// taken returns the node (and its incarnation) that acknowledged the call,
// or "" before that.
func (c *keyCall) taken(n *Node) (node, inst string) {
	n.callsMu.Lock()
	defer n.callsMu.Unlock()
	return c.node, c.inst
}

// errLostNATS ends the requests in flight across NATS when it is lost.
var errLostNATS = fmt.Errorf("%w: %w", wsactor.ErrConnLost, ErrNATSDown)

// Signals of the node's own to its calls in flight.
var (
	sigNATSLost = &nats.Msg{}
	sigClosed   = &nats.Msg{}
)

func (n *Node) newCall() (*keyCall, string) {
	c := &keyCall{ch: make(chan *nats.Msg, 6)}
	n.callsMu.Lock()
	defer n.callsMu.Unlock()
	if n.calls == nil { // closed
		return nil, ""
	}
	n.callSeq++
	token := strconv.FormatUint(n.callSeq, 36)
	n.calls[token] = c
	return c, token
}

func (n *Node) dropCall(token string) {
	n.callsMu.Lock()
	delete(n.calls, token)
	n.callsMu.Unlock()
}

// onKeyReply routes a message for a request by key to its call; one for a
// call that has ended is dropped.
func (n *Node) onKeyReply(m *nats.Msg) {
	token := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	n.callsMu.Lock()
	c := n.calls[token]
	if c != nil {
		if m.Header.Get(hOp) == opAck {
			if c.node == "" {
				c.node, c.inst = m.Header.Get(hOrigin), m.Header.Get(hInst)
			}
			n.callsMu.Unlock()
			return
		}
		select {
		case c.ch <- m:
		default: // more than can come for one call: a confused peer
		}
	}
	n.callsMu.Unlock()
}

// failCalls ends every request by key in flight with sig; after
// sigClosed no new one starts.
func (n *Node) failCalls(sig *nats.Msg) {
	n.callsMu.Lock()
	for _, c := range n.calls {
		select {
		case c.ch <- sig:
		default:
		}
	}
	if sig == sigClosed {
		n.calls = nil
	} else {
		close(n.lost)
		n.lost = make(chan struct{})
	}
	n.callsMu.Unlock()
}

// lostChan is closed when the node next loses NATS.
func (n *Node) lostChan() <-chan struct{} {
	n.callsMu.Lock()
	defer n.callsMu.Unlock()
	return n.lost
}

// peerGone tells the requests by key in flight to node's incarnation inst
// ("": whichever) that it left.
func (n *Node) peerGone(node, inst string) {
	bye := &nats.Msg{Header: nats.Header{hOp: {opBye}}}
	n.callsMu.Lock()
	for _, c := range n.calls {
		if c.node == node && (inst == "" || c.inst == "" || c.inst == inst) {
			select {
			case c.ch <- bye:
			default:
			}
		}
	}
	n.callsMu.Unlock()
}

// onKeyRequest answers a request by key from another node: an
// acknowledgement with this node's id at once (the asker watches this node
// until the reply), then the outcome from the connection actor's callback:
// no goroutine waits for it.
func (n *Node) onKeyRequest(key string, m *nats.Msg) {
	reply := func(data []byte, err error) {
		r := n.msg("", opReply, data)
		if err != nil {
			putErr(r.Header, err)
			r.Data = nil
		}
		n.sendOrTooLarge(m.RespondMsg, r)
	}
	h := n.srv.Holders(key)
	if len(h) == 0 {
		reply(nil, wsactor.ErrNoConn)
		return
	}
	_ = m.RespondMsg(n.instMsg("", opAck, nil))
	ctx, cancel := context.WithTimeout(getTrace(n.ctx, m.Header), getTimeout(m.Header, n.o.requestTimeout))
	err := h[0].Go(ctx, value(m.Data), func(r wsactor.Response, err error) {
		cancel()
		reply(r.Data, err)
	})
	if err != nil {
		cancel()
		reply(nil, err)
	}
}

// SendKey sends v as a plain message to every connection holding key, on
// every node. The result counts this node's holders; the other nodes' are
// reached through NATS without an acknowledgement (a slow reader there is
// skipped and counted by its own server). It fails only when v cannot be
// sent at all (see [wsactor.Server.Broadcast]) or the name cannot be one
// ([wsactor.ErrEmptyName], [wsactor.ErrNameTooLong]), or, after the local
// holders got it, with [ErrNATSDown] when the other nodes could not be
// reached.
func (n *Node) SendKey(key string, v any) (wsactor.BroadcastResult, error) {
	if err := checkName(key); err != nil {
		return wsactor.BroadcastResult{}, err
	}
	data, err := encode(v)
	if err != nil {
		return wsactor.BroadcastResult{}, err
	}
	res, err := n.srv.SendKey(key, value(data))
	if err != nil && !errors.Is(err, wsactor.ErrNoConn) {
		return res, err
	}
	return res, n.publish(n.msg(n.sendSubject(key), opSend, data))
}

func (n *Node) onKeySend(key string, m *nats.Msg) {
	if m.Header.Get(hOrigin) == n.id {
		return // its own holders had it already
	}
	_, _ = n.srv.SendKey(key, value(m.Data))
}

// Broadcast sends v as a plain message to every member of room on every
// node, except except (a connection of this node, or nil). v is encoded
// once here; every node with members gets one NATS message and queues the
// same bytes to its members as [wsactor.Server.Broadcast] does. The result
// counts this node's members; the others are reached without an
// acknowledgement. Errors as for [Node.SendKey].
func (n *Node) Broadcast(room string, v any, except *wsactor.Conn) (wsactor.BroadcastResult, error) {
	if err := checkName(room); err != nil {
		return wsactor.BroadcastResult{}, err
	}
	data, err := encode(v)
	if err != nil {
		return wsactor.BroadcastResult{}, err
	}
	res, err := n.srv.Broadcast(room, value(data), except)
	if err != nil {
		return res, err // not sendable: null, too large
	}
	return res, n.publish(n.msg(n.roomSubject(room), opCast, data))
}

func (n *Node) onRoom(room string, m *nats.Msg) {
	if m.Header.Get(hOrigin) == n.id {
		return
	}
	_, _ = n.srv.Broadcast(room, value(m.Data), nil)
}

func (n *Node) publish(m *nats.Msg) error {
	if !n.nc.IsConnected() {
		return fmt.Errorf("%w: the other nodes were not reached", ErrNATSDown)
	}
	if err := n.nc.PublishMsg(m); err != nil {
		return fmt.Errorf("%w: %w", ErrNATSDown, err)
	}
	return nil
}

// MemberReply is one member's outcome in [Node.RequestRoom].
type MemberReply struct {
	Node     string        // the id of the member's node
	ConnID   string        // the member's connection id
	Conn     *wsactor.Conn // the member, if it is on this node; else nil
	Response wsactor.Response
	Err      error
}

// Summary counts the outcomes of a [Node.RequestRoom], one per member
// asked on any node.
type Summary struct {
	wsactor.RoomSummary
	Nodes int // other nodes asked
	// NodesMissed counts other nodes that did not say which members they
	// asked before they went away or the deadline passed: their members, if
	// they had any, are not in the counts.
	NodesMissed int
}

// RequestRoom asks every member of room on every node (except except, a
// connection of this node, or nil) with v, and waits until every member
// asked has its outcome, exactly once: a reply, a [*wsactor.RemoteError],
// [wsactor.ErrTimeout] at ctx's deadline (or [WithRequestTimeout]),
// [wsactor.ErrConnLost] if the member disconnects, [ErrNodeGone] if its
// node goes away, [ErrNATSDown] (in [wsactor.ErrConnLost]) if this node
// loses NATS before the other nodes' outcomes came. each, if not nil, gets
// every outcome as it arrives, one call at a time on the calling goroutine,
// inside this call (like the body of a loop; a panic in it reaches the
// caller). Members on this node are asked
// directly. Every other node this node knows of ([Node.Peers]) is asked on
// its own subject and answers with the list of members it asks, their
// outcomes, and "done"; a node that has gone (NATS: no responders, on the
// ask or on a probe every [WithProbeInterval]) ends its unfinished members
// with [ErrNodeGone]. Members on a node not known yet (one that joined
// within the last moment) are not asked; while NATS is down only this
// node's members are (the others count in [Summary.NodesMissed]). The error
// is non-nil only when nothing was sent: v could not be encoded, or room is
// empty or over [wsactor.MaxNameLen] bytes.
func (n *Node) RequestRoom(ctx context.Context, room string, v any, except *wsactor.Conn, each func(MemberReply)) (Summary, error) {
	if err := checkName(room); err != nil {
		return Summary{}, err
	}
	data, err := encode(v)
	if err != nil {
		return Summary{}, err
	}
	ctx, cancel := n.deadline(ctx)
	defer cancel()
	quit := make(chan struct{}) // unblocks the helpers if each panics
	defer close(quit)

	var sum Summary
	deliver := func(r MemberReply) {
		sum.Add(r.Err)
		if each != nil {
			each(r)
		}
	}

	local := make(chan wsactor.MemberReply)
	localDone := make(chan struct{})
	go func() {
		defer close(localDone)
		_, _ = n.srv.RequestRoom(ctx, room, value(data), except, func(r wsactor.MemberReply) {
			select {
			case local <- r:
			case <-quit:
			}
		})
	}()

	lost := n.lostChan()
	a := n.startAsk(ctx, room, data, quit)
	if a.sub != nil {
		defer func() { _ = a.sub.Unsubscribe() }()
	}
	sum.Nodes = len(a.nodes)
	if a.sub == nil && a.left > 0 { // NATS is down: the other nodes are out of reach
		sum.NodesMissed, a.left = a.left, 0
	}
	var probe <-chan time.Time
	if a.left > 0 {
		t := time.NewTicker(n.o.probe)
		defer t.Stop()
		probe = t.C
	}
	done := ctx.Done()
	for localDone != nil || a.left > 0 {
		select {
		case r := <-local:
			deliver(MemberReply{Node: n.id, ConnID: r.Conn.ID(), Conn: r.Conn, Response: r.Response, Err: r.Err})
		case <-localDone:
			localDone = nil
		case m := <-a.ch:
			n.askMessage(a, m, deliver, &sum)
		case <-probe:
			n.probe(a)
		case <-lost:
			// The other nodes' outcomes may never come: their members
			// end now (they may have answered).
			for _, an := range a.nodes {
				a.finish(an, errLostNATS, deliver, &sum)
			}
			lost, probe = nil, nil
		case <-done:
			// The remote members still pending time out here, whatever
			// comes later; the local ones time out in their actors.
			for _, an := range a.nodes {
				a.finish(an, ctxError(ctx), deliver, &sum)
			}
			done, probe = nil, nil
		}
	}
	return sum, nil
}

// remoteAsk is a RequestRoom's state for the other nodes; only the asking
// goroutine touches it.
type remoteAsk struct {
	inbox string
	sub   *nats.Subscription
	ch    chan *nats.Msg
	nodes []*askNode
	left  int // nodes not finished
}

type askNode struct {
	id       string
	manifest bool                // its member list arrived
	inst     string              // the incarnation that sent it
	pending  map[string]struct{} // members without an outcome yet
	finished bool
}

// startAsk sends the ask to every known node, each with its own reply
// subject (inbox.<index>), so that "no responders" says which node is gone.
func (n *Node) startAsk(ctx context.Context, room string, data []byte, quit chan struct{}) *remoteAsk {
	a := &remoteAsk{ch: make(chan *nats.Msg)}
	peers := n.Peers()
	if len(peers) == 0 {
		return a
	}
	for _, p := range peers {
		a.nodes = append(a.nodes, &askNode{id: p})
	}
	a.left = len(a.nodes)
	if !n.nc.IsConnected() {
		return a // no subscription: the caller counts them missed
	}
	a.inbox = n.nc.NewInbox()
	sub, err := n.nc.Subscribe(a.inbox+".*", func(m *nats.Msg) {
		select {
		case a.ch <- m:
		case <-quit:
		}
	})
	if err != nil {
		return a
	}
	a.sub = sub
	tp, _ := n.srv.OutgoingTraceparent(ctx)
	for i, an := range a.nodes {
		m := n.msg(n.nodeSubject(an.id), opAsk, data)
		m.Reply = a.inbox + "." + strconv.Itoa(i)
		m.Header.Set(hRoom, encName(room))
		setTimeout(m.Header, ctx)
		if tp != "" {
			m.Header.Set(hTrace, tp)
		}
		_ = n.nc.PublishMsg(m)
	}
	return a
}

// askMessage handles one message for a remote ask.
func (n *Node) askMessage(a *remoteAsk, m *nats.Msg, deliver func(MemberReply), sum *Summary) {
	i, err := strconv.Atoi(m.Subject[strings.LastIndexByte(m.Subject, '.')+1:])
	if err != nil || i < 0 || i >= len(a.nodes) {
		return
	}
	an := a.nodes[i]
	if an.finished {
		return
	}
	if noResponders(m) {
		a.finish(an, ErrNodeGone, deliver, sum)
		n.peerDown(an.id, "")
		return
	}
	switch m.Header.Get(hOp) {
	case opManifest:
		if an.manifest {
			return
		}
		if an.pending == nil {
			an.pending = make(map[string]struct{})
			an.inst = m.Header.Get(hInst)
		}
		for id := range strings.SplitSeq(string(m.Data), "\n") {
			if id != "" {
				an.pending[id] = struct{}{}
			}
		}
		an.manifest = m.Header.Get(hMore) == "" // the last part
	case opPong:
		if an.inst != "" && m.Header.Get(hInst) != an.inst { // restarted under the same id
			a.finish(an, ErrNodeGone, deliver, sum)
		}
	case opOutcome:
		id := m.Header.Get(hConn)
		if _, ok := an.pending[id]; !ok {
			return // not asked, or had its outcome
		}
		delete(an.pending, id)
		var data []byte
		err := getErr(m.Header)
		if err == nil {
			data = dataOrNil(m.Data)
		}
		deliver(MemberReply{Node: an.id, ConnID: id, Response: wsactor.Response{Data: data}, Err: err})
	case opDone:
		// Every outcome was sent before "done", in order: none is pending.
		a.finish(an, ErrNodeGone, deliver, sum)
	}
}

// finish ends a node's part: its pending members get err.
func (a *remoteAsk) finish(an *askNode, err error, deliver func(MemberReply), sum *Summary) {
	if an.finished {
		return
	}
	an.finished = true
	a.left--
	if !an.manifest {
		sum.NodesMissed++
		return
	}
	for id := range an.pending {
		deliver(MemberReply{Node: an.id, ConnID: id, Err: err})
	}
	clear(an.pending)
}

// probe asks the nodes that have not finished whether they are still there;
// a gone node's subject has no subscriber, and NATS says so.
func (n *Node) probe(a *remoteAsk) {
	if a.sub == nil {
		return
	}
	for i, an := range a.nodes {
		if !an.finished {
			m := n.msg(n.nodeSubject(an.id), opPing, nil)
			m.Reply = a.inbox + "." + strconv.Itoa(i)
			_ = n.nc.PublishMsg(m)
		}
	}
}

// manifestPart is how many member ids go in one manifest message: 10,000
// ids of about 40 bytes stay well under NATS's default 1 MiB payload limit.
// (A variable for a test.)
var manifestPart = 10000

// answerAsk is another node's room ask: the manifest at once, then each
// member's outcome, then "done", from a goroutine of its own that ends by
// the asker's deadline.
func (n *Node) answerAsk(m *nats.Msg) {
	room, ok := decName(m.Header.Get(hRoom))
	if !ok || m.Reply == "" || checkName(room) != nil {
		return
	}
	members := n.srv.Members(room)
	ids := make([]string, len(members))
	for i, c := range members {
		ids[i] = c.ID()
	}
	reply := m.Reply
	// The member list in parts that fit NATS's default payload limit;
	// all but the last carry hMore.
	for len(ids) > manifestPart {
		part := n.instMsg(reply, opManifest, []byte(strings.Join(ids[:manifestPart], "\n")))
		part.Header.Set(hMore, "1")
		_ = n.nc.PublishMsg(part)
		ids = ids[manifestPart:]
	}
	_ = n.nc.PublishMsg(n.instMsg(reply, opManifest, []byte(strings.Join(ids, "\n"))))
	n.mu.Lock()
	if n.closed || len(members) == 0 {
		n.mu.Unlock()
		_ = n.nc.PublishMsg(n.msg(reply, opDone, nil))
		return
	}
	n.wg.Add(1)
	n.mu.Unlock()
	d := getTimeout(m.Header, n.o.requestTimeout)
	data := m.Data
	h := m.Header
	go func() {
		defer n.wg.Done()
		ctx, cancel := context.WithTimeout(getTrace(n.ctx, h), d)
		defer cancel()
		_, _ = n.srv.RequestEach(ctx, members, value(data), func(r wsactor.MemberReply) {
			om := n.msg(reply, opOutcome, r.Response.Data)
			om.Header.Set(hConn, r.Conn.ID())
			if r.Err != nil {
				putErr(om.Header, r.Err)
				om.Data = nil
			}
			n.sendOrTooLarge(n.nc.PublishMsg, om)
		})
		_ = n.nc.PublishMsg(n.msg(reply, opDone, nil))
	}()
}

// checkName refuses, before anything is sent, a room or key name that no
// connection can have ([wsactor.Conn.Join] checks the same): an empty one
// would make an invalid subject, and one over [wsactor.MaxNameLen] bytes a
// subject long enough for the NATS server to close the connection over.
func checkName(name string) error {
	switch {
	case name == "":
		return wsactor.ErrEmptyName
	case len(name) > wsactor.MaxNameLen:
		return wsactor.ErrNameTooLong
	}
	return nil
}

// sendOrTooLarge sends an outcome. One that NATS refuses for its size (a
// reply under the WebSocket message limit can be over the NATS server's
// max_payload) becomes an ErrTooLarge outcome, sent instead: the asker gets
// an answer now rather than its timeout.
func (n *Node) sendOrTooLarge(send func(*nats.Msg) error, m *nats.Msg) {
	err := send(m)
	if !errors.Is(err, nats.ErrMaxPayload) {
		return // sent, or NATS is unusable: the asker's probe or deadline ends it
	}
	size := len(m.Data)
	m.Data = nil
	putErr(m.Header, wsactor.ErrTooLarge) // the kind; the message says why
	m.Header.Set(hMsg, fmt.Sprintf("a reply of %d bytes is over the NATS server's max payload of %d bytes", size, n.nc.MaxPayload()))
	_ = send(m)
}
