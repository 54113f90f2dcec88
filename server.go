package wsactor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sourcegraph/conc/panics"
	"github.com/wsactor/wsactor/actor"
	"github.com/wsactor/wsactor/conn"
)

// Server accepts WebSocket connections that speak the Primus +
// primus-responder wire and gives each one an actor. It is an
// [http.Handler]: mount it where Primus clients look, "/primus" (and
// "/primus/" for the spec endpoint):
//
//	srv, err := wsactor.NewServer(wsactor.WithRequestHandler(h))
//	mux.Handle("/primus", srv)
//	mux.Handle("/primus/", srv)
//
// All methods may be called concurrently. The zero value is not usable: use
// [NewServer].
type Server struct {
	sh *shared
	up *conn.Upgrader

	mu        sync.Mutex
	conns     []map[*Conn]struct{} // the open connections, sharded for the heartbeat (see shardOf)
	closing   bool
	upgrading sync.WaitGroup // ServeHTTP calls past the closing check
	beat      chan struct{}  // closed to stop the heartbeat goroutine
	beating   bool
	seed      maphash.Seed   // places a connection in its shard
	wg        sync.WaitGroup // read loops and the heartbeat
	shutOnce  sync.Once
	shutErr   error
	stats     counters
	admitted  atomic.Int64 // connections open or being upgraded, for WithMaxConnections
}

// NewServer validates the options once and returns a server. It starts no
// goroutine until the first connection.
func NewServer(opts ...Option) (*Server, error) {
	o, err := buildOptions(serverOnly, opts)
	if err != nil {
		return nil, err
	}
	s := &Server{seed: maphash.MakeSeed()}
	if s.sh, err = newShared(o, &s.stats); err != nil {
		return nil, public(err)
	}
	s.conns = make([]map[*Conn]struct{}, 1)
	if o.pingInterval > 0 {
		s.conns = make([]map[*Conn]struct{}, heartbeatSlices(o.pingInterval))
	}
	for i := range s.conns {
		s.conns[i] = make(map[*Conn]struct{})
	}
	s.sh.rooms = newRegistry(o.presenceBacklog) // rooms.go
	s.sh.gone = func(c *Conn) {
		s.sh.rooms.drop(c) // rooms.go: leave every room, release every key
		s.mu.Lock()
		delete(s.shardOf(c), c)
		s.mu.Unlock()
		s.admitted.Add(-1)
	}
	if s.up, err = conn.NewUpgrader(s.sh.connOptions(conn.Server)); err != nil {
		s.sh.closePool()
		return nil, public(fmt.Errorf("%w: %w", ErrInvalidOption, err))
	}
	return s, nil
}

// ServeHTTP upgrades Primus WebSocket requests. Plain HTTP requests get the
// Primus spec (a path ending in "/spec") or 426 Upgrade Required.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		s.plainHTTP(w, r)
		return
	}
	if !originAllowed(r, s.sh.o.origins) {
		s.stats.refuse(RefusedOrigin)
		httpError(w, http.StatusForbidden, "origin not allowed")
		return
	}
	// Admission before authentication, which may be costly: a full server
	// refuses at the price of one atomic add.
	if !s.admit() {
		s.stats.refuse(RefusedCapacity)
		w.Header().Set("Retry-After", "5")
		httpError(w, http.StatusServiceUnavailable, "too many connections")
		return
	}
	served := false
	defer func() {
		if !served { // from here on the connection's end releases it (shared.gone)
			s.admitted.Add(-1)
		}
	}()
	var identity any
	if auth := s.sh.o.authenticate; auth != nil {
		var err error
		var pc panics.Catcher
		pc.Try(func() { identity, err = auth(r) })
		if rec := pc.Recovered(); rec != nil {
			s.sh.badInput(nil, fmt.Errorf("%w: authentication hook: %w", ErrHandlerPanic, actor.NewPanicError(rec)))
			err = &statusError{http.StatusInternalServerError, "authentication failed"}
		}
		if err != nil {
			s.stats.refuse(RefusedAuth)
			status := http.StatusUnauthorized
			var sc interface{ StatusCode() int }
			if errors.As(err, &sc) {
				status = sc.StatusCode()
			}
			httpError(w, status, err.Error())
			return
		}
	}
	s.mu.Lock()
	closing := s.closing
	if !closing {
		s.upgrading.Add(1) // Shutdown waits for this upgrade to finish
	}
	s.mu.Unlock()
	if closing {
		s.stats.refuse(RefusedShutdown)
		httpError(w, http.StatusServiceUnavailable, "server shutting down")
		return
	}
	defer s.upgrading.Done()

	c := newConn(s.sh)
	c.identity = identity
	if r.URL.RawQuery != "" {
		q := r.URL.Query()
		q.Del("_primuscb")
		if len(q) > 0 { // an empty map would be kept for the connection's life
			c.query = q
		}
	}
	wc, err := s.up.Upgrade(w, r, (*connEvents)(c))
	if err != nil {
		s.stats.refuse(RefusedHandshake)
		return // the upgrader answered the client
	}
	if err := c.start(wc); err != nil {
		_ = wc.Close(1011, "internal error")
		return
	}
	s.mu.Lock()
	s.shardOf(c)[c] = struct{}{} // Shutdown collects it after this upgrade
	s.startHeartbeatLocked()
	s.mu.Unlock()
	s.stats.accepted.Add(1)
	s.wg.Add(1)
	served = true
	go s.serve(c, wc)
}

// admit counts a connection in, unless WithMaxConnections are open or
// being upgraded already.
func (s *Server) admit() bool {
	n := s.admitted.Add(1)
	if limit := s.sh.o.maxConns; limit > 0 && n > int64(limit) {
		s.admitted.Add(-1)
		return false
	}
	return true
}

// serve is a connection's read goroutine. It is started with a plain go
// statement, with no wrapper frame and no deferred call: the first request's
// inline actor work grows this goroutine's stack to 8 KiB, and the runtime
// halves a stack at GC only when less than a quarter of it is in use, which
// the read loop parked in its socket read stays under only when nothing
// sits below it (a recover wrapper such as conc's WaitGroup.Go kept every
// idle connection at 8 KiB instead of 4). Panics need no wrapper here: conn
// recovers every Handler call and gws every message dispatch; a panic left
// is a bug of conn or gws and crashes the process like any goroutine's.
func (s *Server) serve(c *Conn, wc *conn.Conn) {
	wc.Serve() // OnClose removed c from s.conns (shared.gone)
	s.wg.Done()
}

type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string   { return e.msg }
func (e *statusError) StatusCode() int { return e.status }

func httpError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// plainHTTP answers non-upgrade requests as a Primus server does.
func (s *Server) plainHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, "/spec") {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"pingInterval": s.sh.o.pingInterval.Milliseconds(),
			"pathname":     strings.TrimSuffix(r.URL.Path, "/spec"),
			"version":      "wsactor",
			"parser":       "json",
			"transformer":  "websockets",
		})
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusUpgradeRequired)
	_, _ = w.Write([]byte("Upgrade Required"))
}

// startHeartbeatLocked starts the one heartbeat goroutine (Primus keeps one
// timer for all connections too).
func (s *Server) startHeartbeatLocked() {
	if s.beating || s.sh.o.pingInterval <= 0 {
		return
	}
	s.beating = true
	s.beat = make(chan struct{})
	stop := s.beat
	s.wg.Go(func() { s.heartbeat(stop) })
}

// Heartbeat. A server that is short of CPU must not drop clients that
// answer: the heartbeat used to ping every connection at once each interval,
// in the map's random order, and drop those whose pong had not been read
// since; when the walk over the connections took most of an interval (it
// did, on a saturated server), a connection pinged at the end of one walk
// and checked at the start of the next had milliseconds to answer (bench
// -hbtrace in BENCHMARKS.md). Now:
//   - anything read from the peer counts as liveness, not only a pong;
//   - the connections are kept in [heartbeatSlices] shards by a hash of
//     their address, and the heartbeat visits one shard per step, so each
//     connection is pinged once per interval at the same phase and the
//     pings do not come as one burst;
//   - a connection is dropped at the visit that finds nothing read from it
//     for [heartbeatMisses] whole intervals in a row: between 2 and 3
//     intervals after the last thing read (plus the heartbeat's scheduling
//     delay; a starved heartbeat stretches its intervals, never shrinks
//     them), so a client has at least 2 intervals to answer a ping.

// heartbeatMisses is how many visits in a row must find nothing read before
// a connection is dropped.
const heartbeatMisses = 2

// heartbeatSlices is how many steps an interval is walked in: one every
// 10 ms for short intervals, at most 100 (a step every 300 ms at the 30 s
// default).
func heartbeatSlices(interval time.Duration) int {
	return int(min(max(interval/(10*time.Millisecond), 1), 100))
}

// shardOf is the map of s.conns that holds c: fixed for c's life. s.mu
// held.
func (s *Server) shardOf(c *Conn) map[*Conn]struct{} {
	if len(s.conns) == 1 {
		return s.conns[0]
	}
	return s.conns[maphash.Comparable(s.seed, c)%uint64(len(s.conns))]
}

// openLocked counts the open connections. s.mu held.
func (s *Server) openLocked() int {
	n := 0
	for _, shard := range s.conns {
		n += len(shard)
	}
	return n
}

// heartbeat visits shard k of s.conns at step k of each interval: a visit
// pings the connection, or drops it after heartbeatMisses silent intervals.
// It visits one step per tick; when it falls behind (a starved process) the
// schedule shifts and the interval stretches, never shrinks: a shard's
// visits are at least an interval apart. It holds s.mu only to copy one
// shard's connections.
func (s *Server) heartbeat(stop <-chan struct{}) {
	interval := s.sh.o.pingInterval
	slices := len(s.conns)
	step := interval / time.Duration(slices)
	t := time.NewTicker(step)
	defer t.Stop()
	round := time.Now() // step k is due at round + (k+1)·step
	next := 0           // the next step
	var batch []*Conn
	for {
		var now time.Time
		select {
		case <-stop:
			return
		case now = <-t.C:
		}
		due := round.Add(time.Duration(next+1) * step)
		if now.Before(due) {
			continue
		}
		if now.Sub(due) >= step {
			// Late (a starved process): shift the schedule rather than
			// visit the steps missed at once, so that a shard's visits stay
			// at least an interval apart and two silent visits always mean
			// two whole intervals without a read.
			round = now.Add(-time.Duration(next+1) * step)
		}
		batch = batch[:0]
		s.mu.Lock()
		for c := range s.conns[next] {
			batch = append(batch, c)
		}
		s.mu.Unlock()
		for _, c := range batch {
			if c.wc.Beat() >= heartbeatMisses {
				_ = c.wc.Drop()
			} else {
				_ = c.wc.Ping(now)
			}
		}
		clear(batch)
		if next++; next == slices { // the interval is done
			next = 0
			round = round.Add(interval)
		}
	}
}

// Conns returns the open connections.
func (s *Server) Conns() []*Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Conn, 0, s.openLocked())
	for _, shard := range s.conns {
		for c := range shard {
			out = append(out, c)
		}
	}
	return out
}

// Shutdown stops accepting connections (new upgrades get 503), refuses new
// requests in both directions ([ErrShutdown], error replies of code
// [CodeShutdown]), lets requests in flight finish until ctx ends, then fails
// the rest with [ErrShutdown] and closes every connection with 1001 (clients
// reconnect elsewhere). When ctx ends first, the requests still in flight
// are cut off and the connections still closing are aborted: a peer that
// does not read no longer holds Shutdown for the write timeout (see
// [WithWriteTimeout]). It returns when every connection, handler and
// goroutine of the server has finished: nil, or an error matching ctx's
// (context.DeadlineExceeded or context.Canceled) if ctx ended first.
// Shutdown returns by ctx's deadline even when user code does not: request
// handlers that ignore their (canceled) ctx, hooks or presence watchers that
// block are then left running, and the server's last goroutine ends when
// they return. Close waits for them. Do not call Shutdown or Close from a request handler,
// hook or callback of this server (it would wait for itself): start it on a
// goroutine of its own. A second call waits for the first and returns its
// result.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.shutdownOnce(ctx, false)
}

func (s *Server) shutdownOnce(ctx context.Context, wait bool) error {
	s.shutOnce.Do(func() { s.shutErr = public(s.shutdown(ctx, wait)) })
	return s.shutErr
}

// Close is Shutdown without a grace period: requests in flight are cut
// off, and connections are closed without waiting on their peers. It
// returns when every goroutine of the server has finished, which includes
// waiting for request handlers (their ctx is canceled) to return.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.shutdownOnce(ctx, true)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func (s *Server) shutdown(ctx context.Context, wait bool) error {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.upgrading.Wait() // upgrades already past the check register their conns
	conns := s.Conns()

	drained := make([]<-chan struct{}, len(conns))
	for i, c := range conns {
		drained[i] = c.a.Drain()
	}
	var err error
	for _, ch := range drained {
		select {
		case <-ch:
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err != nil {
			break
		}
	}
	for _, c := range conns {
		c.a.Stop(ErrShutdown, 1001, "server shutting down")
	}
	// The closing handshakes. Each is bounded by the write timeout, but
	// Shutdown is bounded by ctx: once it ends, what is left is aborted (a
	// write blocked on a peer that does not read returns at once; a peer
	// that reads still gets its error replies and the close frame).
	if err == nil {
		for _, c := range conns {
			select {
			case <-c.Done():
			case <-ctx.Done():
				err = ctx.Err()
			}
			if err != nil {
				break
			}
		}
	}
	if err != nil {
		for _, c := range conns {
			<-c.a.Done() // quick: the loop never blocks; it has closed the conn
			_ = c.wc.Abort()
		}
	}
	for _, c := range conns {
		<-c.Done()
	}
	s.mu.Lock()
	if s.beating {
		close(s.beat)
		s.beating = false
	}
	s.mu.Unlock()
	// What is left is user code: handlers still running (their ctx is
	// canceled), hooks and presence watchers. Shutdown waits for it until
	// ctx ends; Close (ctx canceled from the start) waits for it always.
	return waitOrLeave(ctx, err, wait, func() {
		s.wg.Wait()
		s.sh.rooms.wait() // rooms.go: the presence events of the closed connections
		s.sh.closePool()
	})
}

// waitOrLeave runs finish, which waits for user code to return, and waits
// for it while ctx lasts (always when wait is set); when ctx ends first,
// finish is left to complete on its own goroutine and ctx's error is
// returned. err is an earlier error, which wins.
func waitOrLeave(ctx context.Context, err error, wait bool, finish func()) error {
	if wait {
		finish()
		return err
	}
	done := make(chan struct{})
	go func() { // ends when the user code it waits for returns
		defer close(done)
		finish()
	}()
	select {
	case <-done:
	case <-ctx.Done():
		select {
		case <-done: // both ready: the work is done, report what happened before
		default:
			if err == nil {
				err = ctx.Err()
			}
		}
	}
	return err
}

// Stats is a snapshot of a server's or client's counters.
type Stats struct {
	Conns    int   // open connections now
	Accepted int64 // connections accepted (client: connections made)
	Refused  int64 // upgrades refused: origin, capacity (WithMaxConnections), authentication, shutdown, handshake
	Closed   int64 // connections that ended

	// This side's requests. Requests == Replied + RemoteErrors + TimedOut +
	// Canceled + Failed + Pending (exactly once), whenever no request is
	// being registered or ended at the moment of the snapshot.
	Requests, Replied, RemoteErrors, TimedOut, Canceled, Failed, Pending int64
	LateReplies, UnknownReplies                                          int64

	// The peer's requests.
	Received, Answered, AnsweredError, Busy, CancelsReceived, DuplicateRequests, InProgress int64
	RepliesNotSent                                                                          int64 // replies refused by the transport: too large, or the peer not reading
	InboundBytes                                                                            int64 // gauge: bytes of the peer's messages held now (WithMaxInboundBytes), all connections

	MessagesIn, MessagesOut int64
	BadInput                int64 // everything reported to the error hook
	HandlerPanics           int64
	Restarts                int64 // actor restarts after failures
	Reconnects              int64 // client only

	// For metrics (see [Observer] for requests by outcome).
	RefusedBy         [NumRefuseReasons]int64 // Refused by reason (index: [RefuseReason])
	BadInputBy        [NumBadInputKinds]int64 // BadInput by kind (index: [BadInputKind])
	HeartbeatTimeouts int64                   // connections dropped for a missed heartbeat ([ErrHeartbeat])
	GiveUps           int64                   // connections closed after too many restarts ([ErrTooManyRestarts])
	BroadcastSent     int64                   // members a Broadcast or SendKey queued the message to
	BroadcastSkipped  int64                   // members skipped: over [WithMaxOutboundBytes]
	BroadcastClosed   int64                   // members skipped: their connection was closing
	PoolWorkers       int                     // handler pool goroutines now (running a handler, or idle a moment before they exit)
	PoolQueued        int                     // handlers waiting for a worker
}

func snapshot(st *counters, as *actor.Stats, pool *actor.Pool, open int) Stats {
	out := Stats{
		Conns:             open,
		Accepted:          st.accepted.Load(),
		Refused:           st.refused.Load(),
		Closed:            st.closed.Load(),
		Requests:          as.Requests.Load(),
		Replied:           as.Replied.Load(),
		RemoteErrors:      as.RemoteErrors.Load(),
		TimedOut:          as.TimedOut.Load(),
		Canceled:          as.Canceled.Load(),
		Failed:            as.Failed.Load(),
		Pending:           as.Pending.Load(),
		LateReplies:       as.LateReplies.Load(),
		UnknownReplies:    as.UnknownReplies.Load(),
		Received:          as.Received.Load(),
		Answered:          as.Answered.Load(),
		AnsweredError:     as.AnsweredError.Load(),
		Busy:              as.Busy.Load(),
		CancelsReceived:   as.CancelsReceived.Load(),
		DuplicateRequests: as.DuplicateRequests.Load(),
		InProgress:        as.Inbound.Load(),
		InboundBytes:      as.InboundBytes.Load(),
		RepliesNotSent:    as.RepliesNotSent.Load(),
		MessagesIn:        st.messagesIn.Load(),
		MessagesOut:       st.messagesOut.Load(),
		BadInput:          st.badInput.Load(),
		HandlerPanics:     as.HandlerPanics.Load(),
		Restarts:          as.Restarts.Load(),
		Reconnects:        st.reconnects.Load(),
		HeartbeatTimeouts: st.heartbeats.Load(),
		GiveUps:           st.giveUps.Load(),
		BroadcastSent:     st.broadcastSent.Load(),
		BroadcastSkipped:  st.broadcastSkipped.Load(),
		BroadcastClosed:   st.broadcastGone.Load(),
	}
	if pool != nil { // none without a request handler
		out.PoolWorkers, out.PoolQueued = pool.Running(), pool.Queued()
	}
	for i := range out.RefusedBy {
		out.RefusedBy[i] = st.refusedBy[i].Load()
	}
	for i := range out.BadInputBy {
		out.BadInputBy[i] = st.badInputBy[i].Load()
	}
	return out
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	n := s.openLocked()
	s.mu.Unlock()
	return snapshot(&s.stats, s.sh.cfg.Stats(), s.sh.pool, n)
}
