package wsactor

import (
	"context"
	"errors"
	"sync"

	"github.com/wsactor/wsactor/actor"
	"github.com/wsactor/wsactor/conn"
	"github.com/wsactor/wsactor/envelope"
)

// BroadcastResult says what a [Server.Broadcast] or [Server.SendKey] did
// with each member. Sent + Skipped + Closed is the number of members
// addressed.
type BroadcastResult struct {
	Sent    int // members whose write queue took the frame
	Skipped int // members over [WithMaxOutboundBytes] (slow readers): not sent to them
	Closed  int // members whose connection was closing
}

// Broadcast sends v as a plain message to every member of room except
// except (nil for none). v is encoded once, and the same bytes are queued to
// every member; a member's own bound still applies: a member whose
// outbound queue is over [WithMaxOutboundBytes] is skipped and counted in
// Skipped, and never delays the others. Broadcast never blocks on a socket.
// It returns an error only when nothing was sent: v could not be encoded,
// is null ([ErrNullMessage]), or is over [WithMaxMessageSize]
// ([ErrTooLarge]). An empty room is not an error.
func (s *Server) Broadcast(room string, v any, except *Conn) (BroadcastResult, error) {
	data, err := s.plainMessage(v)
	if err != nil {
		return BroadcastResult{}, err
	}
	buf := getConns()
	members := s.sh.rooms.members(room, except, *buf)
	res := s.writeAll(members, data)
	putConns(buf, members)
	return res, nil
}

// SendKey sends v as a plain message to every connection holding key, like
// [Server.Broadcast]. It returns [ErrNoConn] when no connection holds key.
func (s *Server) SendKey(key string, v any) (BroadcastResult, error) {
	data, err := s.plainMessage(v)
	if err != nil {
		return BroadcastResult{}, err
	}
	r := s.sh.rooms
	buf := getConns()
	r.mu.Lock()
	holders := append(*buf, r.keys[key]...)
	r.mu.Unlock()
	defer putConns(buf, holders)
	if len(holders) == 0 {
		return BroadcastResult{}, ErrNoConn
	}
	return s.writeAll(holders, data), nil
}

// RequestKey sends v as a request (like [Conn.Request]) to the connection
// that bound key last, and waits for its outcome. It returns [ErrNoConn] at
// once when no connection holds key.
func (s *Server) RequestKey(ctx context.Context, key string, v any) (Response, error) {
	r := s.sh.rooms
	r.mu.Lock()
	var c *Conn
	if h := r.keys[key]; len(h) > 0 {
		c = h[len(h)-1]
	}
	r.mu.Unlock()
	if c == nil {
		return Response{}, ErrNoConn
	}
	return c.Request(ctx, v)
}

// plainMessage encodes a broadcast message once, with the checks Send and
// conn.Write make per message.
func (s *Server) plainMessage(v any) ([]byte, error) {
	data, err := encodeData(v)
	if err != nil {
		return nil, err
	}
	if data == nil || envelope.IsNull(data) {
		return nil, ErrNullMessage
	}
	if len(data) > s.sh.o.maxMessage {
		return nil, ErrTooLarge
	}
	return data, nil
}

// writeAll queues data to each connection. With [WithCompression], data is
// compressed once for all the members that negotiated it (conn.Prepared).
func (s *Server) writeAll(cs []*Conn, data []byte) BroadcastResult {
	var res BroadcastResult
	p := conn.NewPrepared(data)
	for _, c := range cs {
		switch err := c.wc.WritePrepared(p); {
		case err == nil:
			res.Sent++
		case errors.Is(err, conn.ErrWriteQueueFull):
			res.Skipped++
		default: // conn.ErrClosed: the only other error of a valid frame
			res.Closed++
		}
	}
	s.stats.messagesOut.Add(int64(res.Sent))
	s.stats.broadcastSent.Add(int64(res.Sent))       // metrics
	s.stats.broadcastSkipped.Add(int64(res.Skipped)) // metrics
	s.stats.broadcastGone.Add(int64(res.Closed))     // metrics
	return res
}

// MemberReply is one member's outcome in [Server.RequestRoom]: a reply
// (Err nil), or exactly one of the errors a [Conn.Request] can end with.
type MemberReply struct {
	Conn     *Conn
	Response Response
	Err      error
}

// RoomSummary counts the outcomes of a [Server.RequestRoom]: every member
// asked is counted exactly once, so Asked == Replied + RemoteErrors +
// TimedOut + Canceled + Lost + NotSent.
type RoomSummary struct {
	Asked        int // members asked
	Replied      int // a reply
	RemoteErrors int // an error reply ([*RemoteError])
	TimedOut     int // [ErrTimeout]: no reply by the deadline
	Canceled     int // [ErrCanceled]: ctx was cancelled
	Lost         int // the member's connection ended, restarted or shut down first ([ErrConnLost], [ErrClosed], [ErrRestarted], [ErrShutdown])
	NotSent      int // refused before it reached the member: [ErrTooManyPending], [ErrMailboxFull], [ErrWriteQueueFull], [ErrTooLarge]
}

// Add counts one member's outcome (err nil for a reply) in s.
func (s *RoomSummary) Add(err error) {
	s.Asked++
	var re *RemoteError
	switch {
	case err == nil:
		s.Replied++
	case errors.As(err, &re):
		s.RemoteErrors++
	case errors.Is(err, ErrTimeout):
		s.TimedOut++
	case errors.Is(err, ErrCanceled):
		s.Canceled++
	case errors.Is(err, ErrConnLost), errors.Is(err, ErrClosed), errors.Is(err, ErrRestarted), errors.Is(err, ErrShutdown):
		s.Lost++
	default:
		s.NotSent++
	}
}

// Merge adds o's counts to s.
func (s *RoomSummary) Merge(o RoomSummary) {
	s.Asked += o.Asked
	s.Replied += o.Replied
	s.RemoteErrors += o.RemoteErrors
	s.TimedOut += o.TimedOut
	s.Canceled += o.Canceled
	s.Lost += o.Lost
	s.NotSent += o.NotSent
}

// RequestRoom asks every member of room (except except, nil for none) with
// v, as [Conn.Request] would, and waits until every member has its outcome:
// a reply, a [*RemoteError], [ErrTimeout] at ctx's deadline (or the request
// timeout, [WithRequestTimeout], whichever comes first), [ErrConnLost] if
// the member disconnects first, and so on. each, if not nil, is called
// exactly once per member as its outcome arrives, one call at a time, on
// the calling goroutine before RequestRoom returns, like the body of a loop
// over the outcomes (it is the one function this package runs inside a
// call: the caller's own, passed to this very call). A panic in each
// reaches the caller; the members' requests still end in their actors. The
// summary counts the same outcomes. v is encoded
// once; each member's request envelope (its own request id) is written
// around those bytes. The members are the room's at the time of the call:
// a member that joins later is not asked. The error is non-nil only when v
// could not be encoded (nothing was sent).
func (s *Server) RequestRoom(ctx context.Context, room string, v any, except *Conn, each func(MemberReply)) (RoomSummary, error) {
	data, err := encodeData(v)
	if err != nil {
		return RoomSummary{}, err
	}
	buf := getConns()
	members := s.sh.rooms.members(room, except, *buf)
	defer putConns(buf, members)
	return askAll(ctx, members, data, each), nil
}

// RequestEach is [Server.RequestRoom] for a list of connections of this
// server chosen by the caller (the members of several rooms, say, or a
// snapshot taken earlier with [Server.Members]): each gets v as a request
// and exactly one outcome, reported to each (if not nil) on the calling
// goroutine and counted in the summary. A connection listed twice is asked
// twice. A connection that closed meanwhile gets its closing error as its
// outcome. The error is non-nil only when v could not be encoded.
func (s *Server) RequestEach(ctx context.Context, conns []*Conn, v any, each func(MemberReply)) (RoomSummary, error) {
	data, err := encodeData(v)
	if err != nil {
		return RoomSummary{}, err
	}
	return askAll(ctx, conns, data, each), nil
}

// askAll sends data as a request to each connection and collects one
// outcome per connection. The outcomes channel is buffered for all of
// them, so an actor's callback never blocks.
func askAll(ctx context.Context, cs []*Conn, data []byte, each func(MemberReply)) RoomSummary {
	out := make(chan MemberReply, len(cs))
	if len(cs) > 0 {
		ctx = cs[0].sh.traceCtx(cs[0], ctx) // every Conn of a server shares sh
	}
	for _, c := range cs {
		err := c.a.Go(ctx, data, func(r actor.Reply, err error) {
			out <- MemberReply{Conn: c, Response: Response{Data: r.Data}, Err: public(err)}
		})
		if err != nil { // not accepted: the callback will not run
			out <- MemberReply{Conn: c, Err: public(err)}
		}
	}
	var sum RoomSummary
	for range cs {
		m := <-out
		sum.Add(m.Err)
		if each != nil {
			each(m)
		}
	}
	return sum
}

// members appends room's members but except to dst.
func (r *registry) members(room string, except *Conn, dst []*Conn) []*Conn {
	r.mu.Lock()
	for c := range r.rooms[room] {
		if c != except {
			dst = append(dst, c)
		}
	}
	r.mu.Unlock()
	return dst
}

// Member snapshots are pooled: a broadcast to a large room would otherwise
// allocate a slice of its size each time.
var connsPool = sync.Pool{New: func() any { return new([]*Conn) }}

func getConns() *[]*Conn { return connsPool.Get().(*[]*Conn) }

func putConns(p *[]*Conn, used []*Conn) {
	clear(used)
	*p = used[:0]
	connsPool.Put(p)
}
