package main

//go:generate cp ../../js/wsactor.js static/wsactor.js

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/wsactor/wsactor"
	"github.com/wsactor/wsactor/cluster"
	"github.com/wsactor/wsactor/prom"
)

//go:embed static
var static embed.FS

// rooms are the chat's rooms; a member is in one at a time and starts in
// the first.
var rooms = []string{"lobby", "go", "random"}

// Subjects of the chat's own messages between nodes (the cluster package
// carries the pushes to members; these keep the nodes' histories and user
// lists in step).
const (
	subjectPost  = "chat.post"  // a message posted on a node: every node keeps it in its history
	subjectUsers = "chat.users" // a node's members per room, on every change and every presence round
)

// Limits of what users may send.
const (
	maxName = 20  // runes
	maxText = 500 // runes
)

// config tunes a chat. The zero value is not usable: start from
// defaultConfig.
type config struct {
	PresenceEvery   time.Duration // how often the server asks each browser whether it is there
	PresenceTimeout time.Duration // how long it waits for the answer before marking it away
	History         int           // messages kept per room and sent to newcomers
	NATS            string        // NATS URL: join the other nodes there; "" runs alone
	NodeID          string        // the node's id in the cluster (default: random)
}

func defaultConfig() config {
	return config{PresenceEvery: 5 * time.Second, PresenceTimeout: 2 * time.Second, History: 200}
}

// chat is the room and its HTTP handler: the page at "/", the wsactor
// server at "/primus". All methods may be called concurrently; make it with
// newChat and stop it with Close.
type chat struct {
	cfg config
	srv *wsactor.Server
	mux *http.ServeMux
	met *prom.Metrics // srv's, served at /metrics

	node *cluster.Node        // nil when alone
	subs []*nats.Subscription // subjectPost, subjectUsers

	mu      sync.Mutex
	members map[*wsactor.Conn]*member // joined connections of this node
	history map[string][]message      // per room
	lastID  int
	remote  map[string]remoteUsers // other nodes' members, by node id

	stop      chan struct{}
	loopDone  chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// member is a joined connection. Its fields are guarded by chat.mu.
type member struct {
	name     string
	room     string
	conn     *wsactor.Conn
	away     bool
	checking bool // a presence check is in flight
}

// remoteUsers is what another node last said about its members.
type remoteUsers struct {
	at    time.Time
	rooms map[string][]user
}

// usersNote is a subjectUsers message.
type usersNote struct {
	Node  string            `json:"node"`
	Rooms map[string][]user `json:"rooms"`
}

// postNote is a subjectPost message.
type postNote struct {
	Room    string  `json:"room"`
	Message message `json:"message"`
}

type message struct {
	ID     int    `json:"id"` // increasing on each node; across nodes, by time (Unix µs)
	From   string `json:"from,omitempty"`
	Text   string `json:"text"`
	At     int64  `json:"at"` // Unix ms
	System bool   `json:"system,omitempty"`
}

type user struct {
	Name string `json:"name"`
	Away bool   `json:"away"`
}

// push is what the server sends to a room's members.
type push struct {
	Type    string   `json:"type"` // "message" or "users"
	Room    string   `json:"room"`
	Message *message `json:"message,omitempty"`
	Users   []user   `json:"users,omitempty"`
}

// listReply answers {op:"list"}: the member's room.
type listReply struct {
	Room    string    `json:"room"`
	Rooms   []string  `json:"rooms"`
	History []message `json:"history"`
	Users   []user    `json:"users"`
}

// newChat makes the chat and starts its presence goroutine; with
// cfg.NATS it joins the other nodes there.
func newChat(cfg config) (*chat, error) {
	if cfg.PresenceEvery <= 0 || cfg.PresenceTimeout <= 0 || cfg.History <= 0 {
		return nil, fmt.Errorf("chat: invalid config %+v", cfg)
	}
	c := &chat{
		cfg:      cfg,
		members:  make(map[*wsactor.Conn]*member),
		history:  make(map[string][]message),
		remote:   make(map[string]remoteUsers),
		stop:     make(chan struct{}),
		loopDone: make(chan struct{}),
	}
	c.met = prom.New()
	srv, err := wsactor.NewServer(
		wsactor.WithObserver(c.met),
		wsactor.WithRequestHandler(c.handle),
		wsactor.WithDisconnectHook(c.left),
		wsactor.WithRequestTimeout(10*time.Second),
		// The list reply carries up to History messages of maxText runes:
		// more than the default 64 KiB at worst.
		wsactor.WithMaxMessageSize(1<<20),
	)
	if err != nil {
		return nil, err
	}
	c.srv = srv
	if cfg.NATS != "" {
		if err := c.joinCluster(); err != nil {
			_ = srv.Close()
			return nil, err
		}
	}
	page, err := fs.Sub(static, "static")
	if err != nil {
		return nil, err
	}
	c.mux = http.NewServeMux()
	c.mux.Handle("/primus", srv)
	c.mux.Handle("/primus/", srv)
	c.mux.Handle("/", http.FileServerFS(page))
	// Prometheus metrics of this node's wsactor server (package prom).
	c.met.Watch(srv)
	reg := prometheus.NewRegistry()
	reg.MustRegister(c.met)
	c.mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	go c.presenceLoop()
	return c, nil
}

// joinCluster joins the other nodes and follows their posts and members.
func (c *chat) joinCluster() error {
	var opts []cluster.Option
	if c.cfg.NodeID != "" {
		opts = append(opts, cluster.WithNodeID(c.cfg.NodeID))
	}
	node, err := cluster.Join(c.srv, c.cfg.NATS, opts...)
	if err != nil {
		return err
	}
	c.node = node
	nc := node.NATS()
	for subj, fn := range map[string]nats.MsgHandler{subjectPost: c.onPost, subjectUsers: c.onUsers} {
		sub, err := nc.Subscribe(subj, fn)
		if err != nil {
			_ = node.Close()
			return err
		}
		c.subs = append(c.subs, sub)
	}
	return nc.Flush()
}

func (c *chat) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.mux.ServeHTTP(w, r) }

// Shutdown stops the presence checks and shuts the wsactor server down
// (requests in flight may finish until ctx ends).
func (c *chat) Shutdown(ctx context.Context) error {
	c.closeOnce.Do(func() {
		close(c.stop)
		<-c.loopDone
		for _, sub := range c.subs {
			_ = sub.Unsubscribe()
		}
		var nodeErr error
		if c.node != nil {
			nodeErr = c.node.Close()
		}
		c.closeErr = errors.Join(nodeErr, c.srv.Shutdown(ctx))
	})
	return c.closeErr
}

// Close is Shutdown without a grace period.
func (c *chat) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func remoteErr(code, format string, args ...any) error {
	return &wsactor.RemoteError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// handle answers the page's requests: join, switch, send, list.
func (c *chat) handle(ctx context.Context, conn *wsactor.Conn, req wsactor.Request) (any, error) {
	var in struct {
		Op   string `json:"op"`
		Name string `json:"name"`
		Text string `json:"text"`
		Room string `json:"room"`
	}
	if req.Data == nil || req.Decode(&in) != nil {
		return nil, remoteErr(wsactor.CodeBadRequest, "a request is a JSON object with an op")
	}
	switch in.Op {
	case "join":
		return c.join(ctx, conn, in.Name)
	case "switch":
		return c.switchRoom(conn, in.Room)
	case "send":
		return c.send(conn, in.Text)
	case "list":
		c.mu.Lock()
		defer c.mu.Unlock()
		room := rooms[0]
		if m := c.members[conn]; m != nil {
			room = m.room
		}
		return listReply{Room: room, Rooms: rooms, History: c.historyLocked(room), Users: c.usersLocked(room)}, nil
	}
	return nil, remoteErr("unknown_op", "unknown op %q", in.Op)
}

func cleanText(s string, limit int, what string) (string, error) {
	s = strings.TrimSpace(s)
	switch n := utf8.RuneCountInString(s); {
	case n == 0:
		return "", remoteErr("empty", "the %s is empty", what)
	case n > limit:
		return "", remoteErr("too_long", "the %s is longer than %d characters", what, limit)
	}
	if strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) && r != '\n' }) {
		return "", remoteErr("bad_text", "the %s contains control characters", what)
	}
	return s, nil
}

func nameKey(name string) string { return "name:" + strings.ToLower(name) }

func (c *chat) join(ctx context.Context, conn *wsactor.Conn, name string) (any, error) {
	name, err := cleanText(name, maxName, "name")
	if err != nil {
		return nil, err
	}
	if strings.ContainsRune(name, '\n') {
		return nil, remoteErr("bad_text", "a name is one line")
	}
	if c.node != nil {
		// Names are unique across the nodes: each member holds its name as
		// a key; a request to a key nobody holds fails at once (ErrNoConn),
		// any other outcome means someone has it. (Two tabs joining with
		// one name at the same instant on two nodes could both pass.)
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := c.node.RequestKey(ctx, nameKey(name), presenceAsk)
		cancel()
		if !errors.Is(err, wsactor.ErrNoConn) {
			return nil, remoteErr("name_taken", "the name %q is taken, pick another one", name)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if m := c.members[conn]; m != nil {
		return nil, remoteErr("already_joined", "you already joined as %q", m.name)
	}
	for _, m := range c.members {
		if strings.EqualFold(m.name, name) {
			return nil, remoteErr("name_taken", "the name %q is taken, pick another one", m.name)
		}
	}
	room := rooms[0]
	if err := errors.Join(conn.Bind(nameKey(name)), conn.Join(room)); err != nil {
		return nil, err // the connection closed meanwhile
	}
	c.members[conn] = &member{name: name, room: room, conn: conn}
	c.postLocked(room, message{Text: name + " joined", System: true})
	c.usersChangedLocked(room)
	return map[string]any{"name": name, "room": room, "rooms": rooms}, nil
}

// switchRoom moves a member to another room.
func (c *chat) switchRoom(conn *wsactor.Conn, room string) (any, error) {
	if !slices.Contains(rooms, room) {
		return nil, remoteErr("no_room", "there is no room %q", room)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.members[conn]
	if m == nil {
		return nil, remoteErr("not_joined", "join before switching rooms")
	}
	if m.room == room {
		return map[string]string{"room": room}, nil
	}
	old := m.room
	conn.Leave(old)
	if err := conn.Join(room); err != nil {
		return nil, err
	}
	m.room = room
	c.postLocked(old, message{Text: m.name + " left", System: true})
	c.postLocked(room, message{Text: m.name + " joined", System: true})
	c.usersChangedLocked(old)
	c.usersChangedLocked(room)
	return map[string]string{"room": room}, nil
}

func (c *chat) send(conn *wsactor.Conn, text string) (any, error) {
	text, err := cleanText(text, maxText, "message")
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.members[conn]
	if m == nil {
		return nil, remoteErr("not_joined", "join before sending")
	}
	id := c.postLocked(m.room, message{From: m.name, Text: text})
	return map[string]int{"id": id}, nil
}

// left is the disconnect hook.
func (c *chat) left(conn *wsactor.Conn, _ error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.members[conn]
	if m == nil {
		return
	}
	delete(c.members, conn)
	c.postLocked(m.room, message{Text: m.name + " left", System: true})
	c.usersChangedLocked(m.room)
}

// postLocked appends a message to the room's history, pushes it to the
// room's members on every node, and tells the other nodes to keep it too.
func (c *chat) postLocked(room string, msg message) int {
	c.lastID = max(c.lastID+1, int(time.Now().UnixMicro()))
	msg.ID = c.lastID
	msg.At = time.Now().UnixMilli()
	c.keepLocked(room, msg)
	p := push{Type: "message", Room: room, Message: &msg}
	if c.node == nil {
		_, _ = c.srv.Broadcast(room, p, nil)
		return msg.ID
	}
	// Encoded once, queued to this node's members, one NATS message to
	// each node with members. A member too slow to take it misses it (the
	// page reloads the list when it reconnects).
	_, _ = c.node.Broadcast(room, p, nil)
	if b, err := json.Marshal(postNote{Room: room, Message: msg}); err == nil {
		_ = c.node.NATS().Publish(subjectPost, b)
	}
	return msg.ID
}

func (c *chat) keepLocked(room string, msg message) {
	h := append(c.history[room], msg)
	if len(h) > c.cfg.History {
		h = append(h[:0], h[len(h)-c.cfg.History:]...)
	}
	c.history[room] = h
}

// onPost keeps another node's message in this node's history, in id
// order (its members had it pushed already).
func (c *chat) onPost(m *nats.Msg) {
	var n postNote
	if json.Unmarshal(m.Data, &n) != nil || !slices.Contains(rooms, n.Room) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.keepLocked(n.Room, n.Message)
	slices.SortStableFunc(c.history[n.Room], func(a, b message) int { return a.ID - b.ID })
}

// usersChangedLocked pushes the room's user list to its members here and
// tells the other nodes, which push their own merged lists.
func (c *chat) usersChangedLocked(room string) {
	_, _ = c.srv.Broadcast(room, push{Type: "users", Room: room, Users: c.usersLocked(room)}, nil)
	c.announceLocked()
}

// announceLocked sends this node's members per room to the other nodes.
func (c *chat) announceLocked() {
	if c.node == nil {
		return
	}
	note := usersNote{Node: c.node.ID(), Rooms: make(map[string][]user)}
	for _, m := range c.members {
		note.Rooms[m.room] = append(note.Rooms[m.room], user{Name: m.name, Away: m.away})
	}
	if b, err := json.Marshal(note); err == nil {
		_ = c.node.NATS().Publish(subjectUsers, b)
	}
}

// onUsers records another node's members and pushes the rooms whose lists
// changed to this node's members.
func (c *chat) onUsers(m *nats.Msg) {
	var n usersNote
	if json.Unmarshal(m.Data, &n) != nil || n.Node == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	before := c.remote[n.Node].rooms
	c.remote[n.Node] = remoteUsers{at: time.Now(), rooms: n.Rooms}
	for _, room := range rooms {
		if !slices.Equal(before[room], n.Rooms[room]) {
			_, _ = c.srv.Broadcast(room, push{Type: "users", Room: room, Users: c.usersLocked(room)}, nil)
		}
	}
}

// forgetSilentLocked drops the members of nodes not heard from for three
// presence rounds (a node that died), and pushes the lists that changed.
func (c *chat) forgetSilentLocked(now time.Time) {
	for id, r := range c.remote {
		if now.Sub(r.at) > 3*c.cfg.PresenceEvery+c.cfg.PresenceTimeout {
			delete(c.remote, id)
			for room, us := range r.rooms {
				if len(us) > 0 {
					_, _ = c.srv.Broadcast(room, push{Type: "users", Room: room, Users: c.usersLocked(room)}, nil)
				}
			}
		}
	}
}

func (c *chat) historyLocked(room string) []message {
	return slices.Clone(c.history[room])
}

// usersLocked is who is in the room, on this node and the others.
func (c *chat) usersLocked(room string) []user {
	users := []user{}
	for _, m := range c.members {
		if m.room == room {
			users = append(users, user{Name: m.name, Away: m.away})
		}
	}
	for _, r := range c.remote {
		users = append(users, r.rooms[room]...)
	}
	// sorted by name, so that every page shows the same list
	slices.SortFunc(users, func(a, b user) int {
		return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name))
	})
	return users
}

// presenceLoop asks every member, every PresenceEvery, whether it is there.
func (c *chat) presenceLoop() {
	defer close(c.loopDone)
	t := time.NewTicker(c.cfg.PresenceEvery)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case now := <-t.C:
			c.checkPresence()
			c.mu.Lock()
			c.forgetSilentLocked(now)
			c.announceLocked() // also tells the others this node is alive
			c.mu.Unlock()
		}
	}
}

var presenceAsk = map[string]string{"op": "presence"}

func (c *chat) checkPresence() {
	c.mu.Lock()
	var due []*member
	for _, m := range c.members {
		if !m.checking {
			m.checking = true
			due = append(due, m)
		}
	}
	c.mu.Unlock()
	for _, m := range due {
		// Conn.Go: no goroutine per check; the callback runs exactly once,
		// on the connection's actor loop, with the answer or ErrTimeout.
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.PresenceTimeout)
		err := m.conn.Go(ctx, presenceAsk, func(_ wsactor.Response, err error) {
			cancel()
			c.presence(m, err == nil)
		})
		if err != nil {
			cancel()
			c.presence(m, false)
		}
	}
}

// presence records the outcome of a check and tells everyone when a member
// went away or came back.
func (c *chat) presence(m *member, here bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m.checking = false
	if c.members[m.conn] != m || m.away == !here {
		return
	}
	m.away = !here
	c.usersChangedLocked(m.room)
}
