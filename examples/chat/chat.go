package main

//go:generate cp ../../js/wsactor.js static/wsactor.js

import (
	"context"
	"embed"
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

	"github.com/wsactor/wsactor"
)

//go:embed static
var static embed.FS

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
	History         int           // messages kept and sent to newcomers
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

	mu      sync.Mutex
	members map[*wsactor.Conn]*member // joined connections
	history []message
	nextID  int

	stop      chan struct{}
	loopDone  chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// member is a joined connection. Its fields are guarded by chat.mu.
type member struct {
	name     string
	conn     *wsactor.Conn
	away     bool
	checking bool // a presence check is in flight
}

type message struct {
	ID     int    `json:"id"`
	From   string `json:"from,omitempty"`
	Text   string `json:"text"`
	At     int64  `json:"at"` // Unix ms
	System bool   `json:"system,omitempty"`
}

type user struct {
	Name string `json:"name"`
	Away bool   `json:"away"`
}

// push is what the server sends with Conn.Send.
type push struct {
	Type    string   `json:"type"` // "message" or "users"
	Message *message `json:"message,omitempty"`
	Users   []user   `json:"users,omitempty"`
}

// listReply answers {op:"list"}.
type listReply struct {
	History []message `json:"history"`
	Users   []user    `json:"users"`
}

// newChat makes the room and starts its presence goroutine.
func newChat(cfg config) (*chat, error) {
	if cfg.PresenceEvery <= 0 || cfg.PresenceTimeout <= 0 || cfg.History <= 0 {
		return nil, fmt.Errorf("chat: invalid config %+v", cfg)
	}
	c := &chat{
		cfg:      cfg,
		members:  make(map[*wsactor.Conn]*member),
		stop:     make(chan struct{}),
		loopDone: make(chan struct{}),
	}
	srv, err := wsactor.NewServer(
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
	page, err := fs.Sub(static, "static")
	if err != nil {
		return nil, err
	}
	c.mux = http.NewServeMux()
	c.mux.Handle("/primus", srv)
	c.mux.Handle("/primus/", srv)
	c.mux.Handle("/", http.FileServerFS(page))
	go c.presenceLoop()
	return c, nil
}

func (c *chat) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.mux.ServeHTTP(w, r) }

// Shutdown stops the presence checks and shuts the wsactor server down
// (requests in flight may finish until ctx ends).
func (c *chat) Shutdown(ctx context.Context) error {
	c.closeOnce.Do(func() {
		close(c.stop)
		<-c.loopDone
		c.closeErr = c.srv.Shutdown(ctx)
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

// handle answers the page's requests: join, send, list.
func (c *chat) handle(ctx context.Context, conn *wsactor.Conn, req wsactor.Request) (any, error) {
	var in struct {
		Op   string `json:"op"`
		Name string `json:"name"`
		Text string `json:"text"`
	}
	if req.Data == nil || req.Decode(&in) != nil {
		return nil, remoteErr(wsactor.CodeBadRequest, "a request is a JSON object with an op")
	}
	switch in.Op {
	case "join":
		return c.join(conn, in.Name)
	case "send":
		return c.send(conn, in.Text)
	case "list":
		c.mu.Lock()
		defer c.mu.Unlock()
		return listReply{History: c.historyLocked(), Users: c.usersLocked()}, nil
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

func (c *chat) join(conn *wsactor.Conn, name string) (any, error) {
	name, err := cleanText(name, maxName, "name")
	if err != nil {
		return nil, err
	}
	if strings.ContainsRune(name, '\n') {
		return nil, remoteErr("bad_text", "a name is one line")
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
	c.members[conn] = &member{name: name, conn: conn}
	c.postLocked(message{Text: name + " joined", System: true})
	c.broadcastUsersLocked()
	return map[string]string{"name": name}, nil
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
	id := c.postLocked(message{From: m.name, Text: text})
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
	c.postLocked(message{Text: m.name + " left", System: true})
	c.broadcastUsersLocked()
}

// postLocked appends a message to the history and pushes it to everyone.
func (c *chat) postLocked(msg message) int {
	c.nextID++
	msg.ID = c.nextID
	msg.At = time.Now().UnixMilli()
	c.history = append(c.history, msg)
	if len(c.history) > c.cfg.History {
		c.history = append(c.history[:0], c.history[len(c.history)-c.cfg.History:]...)
	}
	c.broadcastLocked(push{Type: "message", Message: &msg})
	return msg.ID
}

func (c *chat) broadcastUsersLocked() {
	c.broadcastLocked(push{Type: "users", Users: c.usersLocked()})
}

// broadcastLocked sends p to every member. Send never blocks; a member whose
// connection is too slow to take it misses it (the page reloads the list when
// it reconnects).
func (c *chat) broadcastLocked(p push) {
	for conn := range c.members {
		_ = conn.Send(p)
	}
}

func (c *chat) historyLocked() []message {
	return append([]message(nil), c.history...)
}

func (c *chat) usersLocked() []user {
	users := make([]user, 0, len(c.members))
	for _, m := range c.members {
		users = append(users, user{Name: m.name, Away: m.away})
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
		case <-t.C:
			c.checkPresence()
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
	c.broadcastUsersLocked()
}
