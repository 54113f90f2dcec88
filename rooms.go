package wsactor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/sourcegraph/conc/panics"
	"github.com/wsactor/wsactor/actor"
)

// Rooms and keys.
//
// A server keeps one registry: room name → members, key → holders, and per
// connection the rooms and keys it is in (so that a disconnect removes them
// all). Everything sits behind one mutex; there is no goroutine per room,
// and a room exists only while it has members (an idle room costs its map
// entry). Presence events are queued under that mutex, in the order of the
// changes, and delivered outside it by a goroutine of the registry's own,
// started when the first event is queued and ending when the queue is empty
// (the mailbox's on-demand scheme): no watcher runs inside the Join, Leave,
// Bind or Unbind that caused its event; watchers see every change in order,
// one event at a time; and a watcher may itself call Join or Leave (its
// event is queued and delivered after it returns). The server's Shutdown
// waits for that goroutine while its ctx lasts. Events wait in an in-memory
// queue bounded by [WithPresenceBacklog].

var (
	// ErrServerOnly: rooms and keys belong to a [Server]'s connections; a
	// [Client]'s connection has none.
	ErrServerOnly = errors.New("wsactor: rooms and keys are for a server's connections")
	// ErrEmptyName: a room or key name must not be empty.
	ErrEmptyName = errors.New("wsactor: empty room or key name")
	// ErrNameTooLong: a room or key name is over [MaxNameLen] bytes.
	ErrNameTooLong = fmt.Errorf("wsactor: room or key name over %d bytes", MaxNameLen)
	// ErrNoConn: no live connection holds the key ([Server.RequestKey],
	// [Server.SendKey]); nothing was sent.
	ErrNoConn = errors.New("wsactor: no connection holds the key")
	// ErrPresenceBacklog: a Join or Bind was refused because the presence
	// watchers ([Server.WatchPresence]) are [WithPresenceBacklog] events
	// behind; nothing changed. Leaves and unbinds are never refused.
	ErrPresenceBacklog = errors.New("wsactor: presence watchers too far behind")
)

// MaxNameLen is the longest room or key name, in bytes: names are kept per
// member, and the cluster package carries them in NATS subjects (base64,
// within NATS's 4 KiB protocol line, which a longer subject would make the
// NATS server close the connection over).
const MaxNameLen = 1024

// checkName returns why name cannot be a room or key name, or nil.
func checkName(name string) error {
	switch {
	case name == "":
		return ErrEmptyName
	case len(name) > MaxNameLen:
		return ErrNameTooLong
	}
	return nil
}

// PresenceKind says what a [Presence] event reports.
type PresenceKind uint8

const (
	Joined  PresenceKind = iota + 1 // the connection joined the room
	Left                            // the connection left the room (Leave, or its disconnect)
	Bound                           // the connection took the key (Bind)
	Unbound                         // the connection gave the key up (Unbind, or its disconnect)
)

func (k PresenceKind) String() string {
	switch k {
	case Joined:
		return "joined"
	case Left:
		return "left"
	case Bound:
		return "bound"
	case Unbound:
		return "unbound"
	}
	return "unknown"
}

// Presence is one change of a room's members or a key's holders.
type Presence struct {
	Kind PresenceKind
	Name string // the room (Joined, Left) or the key (Bound, Unbound)
	Conn *Conn
	// Count is the room's members (the key's holders) right after this
	// change: 1 on a Joined event means the room was empty before, 0 on a
	// Left event means it is empty now.
	Count int
	// Disconnected is true when the change came from the connection's end.
	Disconnected bool
}

// registry is a server's rooms and keys; see the comment at the top.
type registry struct {
	mu     sync.Mutex
	rooms  map[string]map[*Conn]struct{}
	keys   map[string][]*Conn // holders, oldest first
	byConn map[*Conn]*membership

	watchers   []*watcher    // copy on write
	events     []Presence    // queued for delivery
	delivering bool          // the delivery goroutine runs
	idle       chan struct{} // closed when that goroutine ends
	queued     uint64        // events queued so far
	delivered  uint64        // events delivered so far
	step       chan struct{} // closed at the next delivery, while FlushPresence waits
	backlog    int           // WithPresenceBacklog: queued events beyond which joins and binds are refused (0: no bound)
}

// behindLocked reports whether a join or bind must be refused: watchers
// exist and that many events wait for them. Only additions are refused, so
// the queue holds at most the backlog plus the removals of memberships that
// exist (each leave or unbind undoes one).
func (r *registry) behindLocked() bool {
	return r.backlog > 0 && len(r.watchers) > 0 && len(r.events) >= r.backlog
}

type membership struct {
	rooms []string
	keys  []string
}

type watcher struct{ fn func(Presence) }

func newRegistry(backlog int) *registry {
	return &registry{
		backlog: backlog,
		rooms:   make(map[string]map[*Conn]struct{}),
		keys:    make(map[string][]*Conn),
		byConn:  make(map[*Conn]*membership),
	}
}

// reg returns c's registry, or ErrServerOnly.
func (c *Conn) reg() (*registry, error) {
	if c.sh.rooms == nil {
		return nil, ErrServerOnly
	}
	return c.sh.rooms, nil
}

// Join adds the connection to room (a no-op if it is a member already).
// A connection may be in any number of rooms; it leaves all of them when it
// closes. Join on a closed connection returns [ErrClosed], on a client's
// connection [ErrServerOnly]; a name that is empty or over [MaxNameLen]
// bytes, [ErrEmptyName] or [ErrNameTooLong]; while presence watchers are
// [WithPresenceBacklog] events behind, [ErrPresenceBacklog].
func (c *Conn) Join(room string) error {
	r, err := c.lockToAdd(room)
	if err != nil {
		return err
	}
	members := r.rooms[room]
	if _, ok := members[c]; ok {
		r.mu.Unlock()
		return nil
	}
	if r.behindLocked() {
		r.mu.Unlock()
		return ErrPresenceBacklog
	}
	if members == nil {
		members = make(map[*Conn]struct{}, 1)
		r.rooms[room] = members
	}
	members[c] = struct{}{}
	m := r.memberLocked(c)
	m.rooms = append(m.rooms, room)
	r.eventLocked(Presence{Kind: Joined, Name: room, Conn: c, Count: len(members)})
	r.deliver()
	return nil
}

// lockToAdd begins a Join or Bind of name: it checks the name and returns
// the registry with its lock held (the caller releases it), or an error
// without it. The connection's end is checked under the lock: the
// disconnect stores Err before it removes the connection under this lock,
// so an addition racing it either sees Err or is undone by the removal.
func (c *Conn) lockToAdd(name string) (*registry, error) {
	r, err := c.reg()
	if err != nil {
		return nil, err
	}
	if err := checkName(name); err != nil {
		return nil, err
	}
	r.mu.Lock()
	if c.Err() != nil {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	return r, nil
}

// Leave removes the connection from room; it reports whether it was a
// member.
func (c *Conn) Leave(room string) bool {
	r, err := c.reg()
	if err != nil {
		return false
	}
	r.mu.Lock()
	ok := r.leaveLocked(c, room, false)
	if ok {
		m := r.byConn[c]
		m.rooms = remove(m.rooms, room)
		r.forgetIfEmptyLocked(c, m)
	}
	r.deliver()
	return ok
}

// Rooms returns the rooms the connection is in, in the order it joined
// them.
func (c *Conn) Rooms() []string {
	r, err := c.reg()
	if err != nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if m := r.byConn[c]; m != nil {
		return slices.Clone(m.rooms)
	}
	return nil
}

// Bind registers the connection under key (a user id, say), so that server
// code can reach it with [Server.RequestKey] and [Server.SendKey] without
// holding the *Conn. Several connections may hold one key (a user's tabs):
// SendKey reaches all of them, RequestKey asks the one that bound it last.
// The key is released when the connection closes. Bind on a closed
// connection returns [ErrClosed]; names are checked, and a presence backlog
// refused, as by [Conn.Join].
func (c *Conn) Bind(key string) error {
	r, err := c.lockToAdd(key)
	if err != nil {
		return err
	}
	holders := r.keys[key]
	if slices.Contains(holders, c) {
		r.mu.Unlock()
		return nil
	}
	if r.behindLocked() {
		r.mu.Unlock()
		return ErrPresenceBacklog
	}
	holders = append(holders, c)
	r.keys[key] = holders
	m := r.memberLocked(c)
	m.keys = append(m.keys, key)
	r.eventLocked(Presence{Kind: Bound, Name: key, Conn: c, Count: len(holders)})
	r.deliver()
	return nil
}

// Unbind releases key; it reports whether the connection held it.
func (c *Conn) Unbind(key string) bool {
	r, err := c.reg()
	if err != nil {
		return false
	}
	r.mu.Lock()
	ok := r.unbindLocked(c, key, false)
	if ok {
		m := r.byConn[c]
		m.keys = remove(m.keys, key)
		r.forgetIfEmptyLocked(c, m)
	}
	r.deliver()
	return ok
}

// Keys returns the keys the connection holds, in the order it bound them.
func (c *Conn) Keys() []string {
	r, err := c.reg()
	if err != nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if m := r.byConn[c]; m != nil {
		return slices.Clone(m.keys)
	}
	return nil
}

// Members returns the connections in room (none for an unknown room).
func (s *Server) Members(room string) []*Conn {
	return s.sh.rooms.members(room, nil, nil)
}

// Count returns how many connections are in room.
func (s *Server) Count(room string) int {
	r := s.sh.rooms
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.rooms[room])
}

// Rooms returns the rooms that have members, in no particular order.
func (s *Server) Rooms() []string {
	r := s.sh.rooms
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.rooms))
	for name := range r.rooms {
		out = append(out, name)
	}
	return out
}

// Keys returns the keys held by at least one connection, in no particular
// order.
func (s *Server) Keys() []string {
	r := s.sh.rooms
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.keys))
	for k := range r.keys {
		out = append(out, k)
	}
	return out
}

// Holders returns the connections holding key, the most recent Bind first.
func (s *Server) Holders(key string) []*Conn {
	r := s.sh.rooms
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.keys[key])
	slices.Reverse(out)
	return out
}

// WatchPresence calls fn for every change of a room's members or a key's
// holders from now on, until stop is called. Events are delivered one at a
// time, in the order of the changes, after the change and outside any lock,
// on a goroutine of the server's that runs only while events are queued:
// never inside the Join, Leave, Bind or Unbind that made the change, so
// these may be called while holding a lock that fn takes. fn may call Join,
// Leave, Bind and Unbind itself; their events follow once fn returns. fn
// must be quick (it delays every later event) and must not wait for a later
// event. A panic in fn is reported to the error hook ([WithErrorHook]) with
// [ErrHandlerPanic] and does not stop the delivery of the other events.
// After stop returns fn is not called again, except by a delivery already
// under way. [Server.Shutdown] and [Server.Close] return after the events
// of the connections they closed were delivered.
func (s *Server) WatchPresence(fn func(Presence)) (stop func()) {
	r := s.sh.rooms
	w := &watcher{fn: fn}
	r.mu.Lock()
	r.watchers = append(slices.Clip(r.watchers), w)
	r.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			r.watchers = slices.DeleteFunc(slices.Clone(r.watchers), func(x *watcher) bool { return x == w })
			r.mu.Unlock()
		})
	}
}

// drop removes a closed connection from every room and key. Called by the
// server as the connection ends (after Err is set).
func (r *registry) drop(c *Conn) {
	r.mu.Lock()
	if m := r.byConn[c]; m != nil {
		for _, room := range m.rooms {
			r.leaveLocked(c, room, true)
		}
		for _, key := range m.keys {
			r.unbindLocked(c, key, true)
		}
		delete(r.byConn, c)
	}
	r.deliver()
}

func (r *registry) memberLocked(c *Conn) *membership {
	m := r.byConn[c]
	if m == nil {
		m = &membership{}
		r.byConn[c] = m
	}
	return m
}

func (r *registry) forgetIfEmptyLocked(c *Conn, m *membership) {
	if len(m.rooms) == 0 && len(m.keys) == 0 {
		delete(r.byConn, c)
	}
}

// leaveLocked removes c from room's members (not from c's membership).
func (r *registry) leaveLocked(c *Conn, room string, disconnected bool) bool {
	members := r.rooms[room]
	if _, ok := members[c]; !ok {
		return false
	}
	delete(members, c)
	if len(members) == 0 {
		delete(r.rooms, room)
	}
	r.eventLocked(Presence{Kind: Left, Name: room, Conn: c, Count: len(members), Disconnected: disconnected})
	return true
}

// unbindLocked removes c from key's holders (not from c's membership).
func (r *registry) unbindLocked(c *Conn, key string, disconnected bool) bool {
	holders := r.keys[key]
	i := slices.Index(holders, c)
	if i < 0 {
		return false
	}
	holders = slices.Delete(holders, i, i+1)
	if len(holders) == 0 {
		delete(r.keys, key)
	} else {
		r.keys[key] = holders
	}
	r.eventLocked(Presence{Kind: Unbound, Name: key, Conn: c, Count: len(holders), Disconnected: disconnected})
	return true
}

func (r *registry) eventLocked(p Presence) {
	if len(r.watchers) > 0 {
		r.events = append(r.events, p)
		r.queued++
	}
}

// deliver is called with r.mu held and releases it. If events are queued
// and no delivery goroutine runs, it starts one.
func (r *registry) deliver() {
	if r.delivering || len(r.events) == 0 {
		r.mu.Unlock()
		return
	}
	r.delivering = true
	r.idle = make(chan struct{})
	r.mu.Unlock()
	go r.run()
}

// run is the delivery goroutine: it delivers the queued events, those
// queued meanwhile included, and ends when none is left.
func (r *registry) run() {
	r.mu.Lock()
	for len(r.events) > 0 {
		p := r.events[0]
		r.events[0] = Presence{}
		r.events = r.events[1:]
		if len(r.events) == 0 {
			r.events = nil // let the backing array go
		}
		ws := r.watchers
		r.mu.Unlock()
		for _, w := range ws {
			r.call(w, p)
		}
		r.mu.Lock()
		r.delivered++
		if r.step != nil {
			close(r.step)
			r.step = nil
		}
	}
	r.delivering = false
	close(r.idle)
	r.mu.Unlock()
}

// FlushPresence returns once the presence watchers ([Server.WatchPresence])
// have had every event of the changes made before it was called, or with
// ctx's error when ctx ends first. Joins and leaves return before their
// events are delivered; this is how code that reacts to them (the cluster
// package's subscriptions, say) can be waited for. Do not call it from a
// watcher: it would wait for itself until ctx ends.
func (s *Server) FlushPresence(ctx context.Context) error {
	r := s.sh.rooms
	r.mu.Lock()
	target := r.queued
	for r.delivered < target {
		if r.step == nil {
			r.step = make(chan struct{})
		}
		step := r.step
		r.mu.Unlock()
		select {
		case <-step:
		case <-ctx.Done():
			return public(actor.CtxError(ctx))
		}
		r.mu.Lock()
	}
	r.mu.Unlock()
	return nil
}

// wait returns once no delivery goroutine runs. The server calls it when
// its connections are gone, so that no new one starts afterwards.
func (r *registry) wait() {
	r.mu.Lock()
	for r.delivering {
		idle := r.idle
		r.mu.Unlock()
		<-idle
		r.mu.Lock()
	}
	r.mu.Unlock()
}

func (r *registry) call(w *watcher, p Presence) {
	var pc panics.Catcher
	pc.Try(func() { w.fn(p) })
	if rec := pc.Recovered(); rec != nil {
		p.Conn.sh.badInput(p.Conn, fmt.Errorf("%w: presence watcher: %w", ErrHandlerPanic, actor.NewPanicError(rec)))
	}
}

func remove(s []string, v string) []string {
	if i := slices.Index(s, v); i >= 0 {
		return slices.Delete(s, i, i+1)
	}
	return s
}
