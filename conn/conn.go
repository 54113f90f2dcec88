package conn

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"
	"github.com/wsactor/wsactor/envelope"
)

// Sentinel errors. Errors returned or reported by this package wrap one of
// them (test with errors.Is).
var (
	// ErrClosed: the connection is closed (or closing); nothing more can be
	// written.
	ErrClosed = errors.New("conn: connection closed")
	// ErrWriteQueueFull: a Write would have queued more than
	// Options.MaxOutboundBytes; the frame was not queued, the connection stays.
	ErrWriteQueueFull = errors.New("conn: write queue full")
	// ErrTooLarge: a frame is larger than Options.MaxMessageSize. From Write
	// the frame is refused; from the peer the connection is closed with 1009.
	ErrTooLarge = errors.New("conn: message too large")
	// ErrBinaryFrame: the peer sent a binary frame, which Primus never
	// parses; the frame is ignored and the connection stays.
	ErrBinaryFrame = errors.New("conn: binary frame")
	// ErrWriteTimeout: a socket write was blocked longer than
	// Options.WriteTimeout (the peer stopped reading); the connection was
	// closed. It also matches os.ErrDeadlineExceeded.
	ErrWriteTimeout = errors.New("conn: write timed out")
	// ErrHeartbeat: the connection was dropped for missing heartbeats:
	// [Conn.Drop] was called, or (client role) no "primus::ping::…" arrived
	// within Options.PingTimeout.
	ErrHeartbeat = errors.New("conn: heartbeat missed")
	// ErrClosedLocally: the connection was closed by [Conn.Close] or
	// [Conn.End].
	ErrClosedLocally = errors.New("conn: closed locally")
	// ErrServerEnded (client role): the server sent "primus::server::close"
	// before closing: it ended the connection on purpose, do not reconnect.
	ErrServerEnded = errors.New("conn: server ended the connection")
	// ErrFrameTimeout: the peer began a message (a frame header, or the
	// first frame of a fragmented message) and did not complete it within
	// Options.FrameTimeout; the connection was dropped without a close
	// frame, and the buffer gws had allocated for it released.
	ErrFrameTimeout = errors.New("conn: message not completed in time")
	// ErrHandlerPanic: a Handler method panicked; the panic value and stack
	// are in the message. The connection keeps serving.
	ErrHandlerPanic = errors.New("conn: handler panicked")
	// ErrProtocol: the peer broke the WebSocket protocol (bad framing,
	// unmasked client frames, …); the connection was closed.
	ErrProtocol = errors.New("conn: protocol error")
	// ErrInvalidOptions: an [Options] field or an argument is out of range.
	ErrInvalidOptions = errors.New("conn: invalid options")
	// ErrInvalidCloseCode: Close was given a code that may not be sent.
	ErrInvalidCloseCode = errors.New("conn: invalid close code")
	// ErrBadURL: Dial was given a URL it cannot dial.
	ErrBadURL = errors.New("conn: bad URL")
)

// CloseError is the close frame the peer sent. Code is 1005 (no status) when
// the frame carried no code, which is what every Primus-initiated close does.
type CloseError struct {
	Code   uint16
	Reason string
}

func (e *CloseError) Error() string {
	s := "conn: closed by peer with code " + strconv.Itoa(int(e.Code))
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// Handler receives what a Conn reads. All methods are called serially from
// the connection's read goroutine (the one running [Conn.Serve]); they must
// not block for long (blocking applies TCP backpressure to the peer). Slices
// in env alias a reused buffer: they are valid only during the call. A panic
// in a method is recovered and reported to OnBadInput as [ErrHandlerPanic].
type Handler interface {
	// OnOpen is called before the first frame is read.
	OnOpen(c *Conn)
	// OnEnvelope receives KindRequest, KindResponse, KindCancel and KindData.
	// Primus control messages are handled inside the Conn; a "primus::"
	// string this role does not handle arrives as KindData whose Data is the
	// whole frame (the JSON string), as Primus does.
	OnEnvelope(c *Conn, env envelope.Envelope)
	// OnBadInput reports a frame that could not be used: an envelope decode
	// error, [ErrBinaryFrame], [ErrTooLarge] (just before the close it
	// causes) or [ErrHandlerPanic]. Except for ErrTooLarge the connection
	// keeps serving.
	OnBadInput(c *Conn, err error)
	// OnClose is called exactly once, after reading stopped and the write
	// path has stopped. err is never nil: ErrClosedLocally, ErrHeartbeat,
	// ErrWriteTimeout, ErrServerEnded, ErrTooLarge, ErrProtocol, a
	// *CloseError with the peer's code, or the network error that ended
	// the read.
	OnClose(c *Conn, err error)
}

// SocketClosedHandler is what a [Handler] implements to hear at once that
// this side closed the socket (a heartbeat failure, a failed or stalled
// write, the end of a close). OnSocketClosed runs once per Conn, on the
// goroutine that closed the socket: it must be quick and must not block or
// call into the Conn. A read goroutine waiting
// in OnEnvelope (backpressure) cannot see the close while it waits; this is
// how it learns to stop waiting. OnClose still follows once the read loop
// has ended.
type SocketClosedHandler interface {
	OnSocketClosed(c *Conn)
}

// Role says which end of the connection a Conn is.
type Role uint8

// The roles.
const (
	Server Role = iota + 1 // accepted by an Upgrader: answers "primus::pong" and "primus::id::"
	Client                 // made by Dial: answers "primus::ping" with "primus::pong"
)

func (r Role) String() string {
	switch r {
	case Server:
		return "server"
	case Client:
		return "client"
	}
	return "Role(" + strconv.Itoa(int(r)) + ")"
}

// Default option values.
const (
	// DefaultMaxMessageSize is 64 KiB, not Primus's 10 MiB maxLength (nor
	// ws's 100 MiB maxPayload): see Options.MaxMessageSize.
	DefaultMaxMessageSize   = 64 << 10
	DefaultMaxOutboundBytes = 1 << 20 // see the root package's WithMaxOutboundBytes
	DefaultWriteTimeout     = 10 * time.Second
	DefaultFrameTimeout     = 10 * time.Second
	// AbortGrace bounds each socket write, and the wait for the peer's
	// close frame, after [Conn.Abort]: a write the socket takes at once
	// needs microseconds, but the writing goroutine may be descheduled
	// between setting the deadline and writing on a busy machine; too short
	// to wait on a peer that does not read.
	AbortGrace = 100 * time.Millisecond
)

// Options configures a Conn. The zero value means all defaults; a zero field
// takes its default. Validate reports negative values.
type Options struct {
	// MaxMessageSize is the largest message read or written, in bytes
	// (default 64 KiB). A larger incoming frame (or fragmented message)
	// closes the connection with 1009; a larger Write fails with
	// ErrTooLarge.
	//
	// It is also what one peer can make the process hold: gws allocates a
	// frame's whole declared payload when it has read the 2–14 byte header,
	// before the payload arrives (rounded up to a power of two, up to
	// 256 KiB, by its buffer pool: 128 KiB for a 64 KiB frame), and a
	// fragmented message keeps its fragments in a buffer growing up to
	// MaxMessageSize. A chat message or a game's state update is a few KiB
	// at most (a 4,000-character chat message is 16 KiB in the worst UTF-8
	// case), so 64 KiB is ample while keeping a hostile peer's cost small;
	// Primus's 10 MiB let 16 header-only connections pin 160 MiB. Raise it
	// for larger payloads, on both sides (a Dial client's reads and writes
	// are bounded by it too).
	MaxMessageSize int
	// MaxOutboundBytes bounds the bytes queued for writing, frame headers
	// included, counting a batch until the socket accepted it (default 1 MiB).
	// A Write that would exceed it fails with ErrWriteQueueFull (the frame is
	// not queued; the connection stays). A Write to an empty queue is always
	// accepted, so one frame of up to MaxMessageSize always fits.
	MaxOutboundBytes int
	// WriteTimeout bounds each socket write (default 10 s): a write (one
	// batch of queued frames) blocked longer closes the connection with
	// ErrWriteTimeout. It also bounds how long a closing handshake waits for
	// the peer's close frame.
	WriteTimeout time.Duration
	// FrameTimeout bounds how long a message may take to arrive once it has
	// begun (default 10 s): from the read that brought its first byte (a
	// frame header), the frame, or for a fragmented message all its frames,
	// must be complete within FrameTimeout of waiting for the peer, or the
	// connection is dropped with ErrFrameTimeout and gws's buffer for the
	// message released. Time this side spends between reads (a Handler
	// method holding the read goroutine) is not counted. 10 s is the
	// WriteTimeout we give a peer to take our frames; it lets a 64 KiB
	// message arrive at 52 kbit/s. Small messages arriving whole never set a
	// deadline.
	FrameTimeout time.Duration
	// PingTimeout (client role only): when no "primus::ping::…" arrives for
	// this long the connection is closed with ErrHeartbeat, like the Primus
	// browser client (which uses 1.5 × the server's pingInterval). 0 = off
	// (the default, like Node Primus clients).
	PingTimeout time.Duration
	// ID is the connection id. The server role answers "primus::id::" with
	// it. Default: a random 21-character id ([A-Za-z0-9_-]) per connection.
	// Set on an Upgrader, every connection it accepts gets this same id.
	ID string
	// Compression, when not nil, offers (client) or accepts (server)
	// permessage-deflate: see [Compression]. nil (the default): off, and a
	// compressed frame from the peer closes the connection with 1002.
	Compression *Compression
}

// Validate reports an out-of-range field, wrapping ErrInvalidOptions.
func (o Options) Validate() error {
	switch {
	case o.MaxMessageSize < 0:
		return fmt.Errorf("%w: MaxMessageSize %d < 0", ErrInvalidOptions, o.MaxMessageSize)
	case o.MaxOutboundBytes < 0:
		return fmt.Errorf("%w: MaxOutboundBytes %d < 0", ErrInvalidOptions, o.MaxOutboundBytes)
	case o.WriteTimeout < 0:
		return fmt.Errorf("%w: WriteTimeout %v < 0", ErrInvalidOptions, o.WriteTimeout)
	case o.FrameTimeout < 0:
		return fmt.Errorf("%w: FrameTimeout %v < 0", ErrInvalidOptions, o.FrameTimeout)
	case o.PingTimeout < 0:
		return fmt.Errorf("%w: PingTimeout %v < 0", ErrInvalidOptions, o.PingTimeout)
	}
	return o.Compression.validate()
}

func (o Options) withDefaults() Options {
	if o.MaxMessageSize == 0 {
		o.MaxMessageSize = DefaultMaxMessageSize
	}
	if o.MaxOutboundBytes == 0 {
		o.MaxOutboundBytes = DefaultMaxOutboundBytes
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.FrameTimeout == 0 {
		o.FrameTimeout = DefaultFrameTimeout
	}
	o.Compression = o.Compression.withDefaults()
	return o
}

// Conn is one Primus WebSocket connection, made by [Upgrader.Upgrade] or
// [Dial]. All methods may be called concurrently from any goroutine, except
// Serve, which must be called exactly once. The zero value is not usable.
//
// The struct is laid out to fit the 416-byte size class (384 before the
// read buffer was pooled: readbuf.go's two fields cost 32 bytes and save
// the 4 KiB buffer): an idle connection costs this struct, gws's, a small
// bufio.Reader and the socket's.
type Conn struct {
	o  *Options // with defaults applied; shared by an Upgrader's connections
	h  Handler
	ws *gws.Conn
	nc netConn // the net.Conn gws reads and writes through

	role        Role
	silent      uint8       // Beat's count of steps without a read; Beat's only
	alive       atomic.Bool // something was read since the last Beat
	ahead       atomic.Bool // the reader holds bytes read ahead, not yet taken by gws (readbuf.go)
	serverEnded atomic.Bool
	served      atomic.Uint32  // Serve calls
	flushers    sync.WaitGroup // at most one flusher at a time

	mu            sync.Mutex
	pending       []*wbuf // framed chunks not yet taken by the flusher
	lastEnqueue   int64   // when the last frame was queued (ns since epoch)
	pendingBytes  int
	pendingFrames int
	spare         []*wbuf // the flusher's other chunk list, reused; nil when idle
	queued        int     // bytes pending plus bytes of the batch being written
	flushing      bool    // a flusher goroutine is running
	closed        bool    // Write refused from now on
	final         bool    // the read loop ended: no flusher may start
	closeWanted   bool    // the flusher must send a close frame
	closeSent     bool
	ended         bool // OnClose returned: done is (or will be made) closed
	closeCode     uint16
	closeReason   string
	cause         error         // why we closed, first one wins
	id            string        // o.ID, or a random id made by the first ID call
	done          chan struct{} // made by the first Done call
	dropped       uint64
}

// newConn makes a Conn; o (defaults applied) must not change afterwards.
func newConn(role Role, h Handler, o *Options) *Conn {
	c := &Conn{role: role, o: o, h: h, id: o.ID}
	c.nc.owner = c
	if role == Server {
		c.nc.rd.phase = phHead0 // net/http read the handshake request
	}
	c.alive.Store(true)
	return c
}

const idAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"

// randomID returns a 21-character id like Primus's nanoid spark ids.
func randomID() string {
	var b [21]byte
	_, _ = rand.Read(b[:]) // never fails (Go 1.24+)
	for i := range b {
		b[i] = idAlphabet[b[i]&63]
	}
	return string(b[:])
}

// Serve runs the read loop in the calling goroutine until the connection
// ends: it calls OnOpen first, then the other Handler methods for each
// frame, and OnClose last; Done is closed after OnClose returned, and by
// then no goroutine of this Conn is left. Call it exactly once; further
// calls return at once.
//
// Serve is small enough to be inlined: it adds no frame to the stack of an
// idle read goroutine (see netConn.Read).
func (c *Conn) Serve() {
	if c.served.Add(1) == 1 {
		c.ws.ReadLoop()
	}
}

// Write queues frame as one TEXT frame and returns without waiting for the
// socket: it copies frame (the caller may reuse it at once). Frames go out in
// Write order. It returns ErrTooLarge when len(frame) > MaxMessageSize,
// ErrWriteQueueFull when the queue would exceed MaxOutboundBytes, and
// ErrClosed once the connection is closing. frame should be one JSON value
// (the envelope package makes them); Write does not check it.
func (c *Conn) Write(frame []byte) error {
	if len(frame) > c.o.MaxMessageSize {
		return ErrTooLarge
	}
	if d := c.nc.dfl; d != nil && d.tx && len(frame) >= c.o.Compression.Threshold {
		return c.writeDeflate(frame, false) // permessage-deflate (deflate.go)
	}
	return c.enqueue(opText, frame, true, false)
}

// WriteAlone is Write for a frame the caller expects no other to follow
// soon (a request or reply when no other is in flight on the connection):
// unless frames are queued or being written, or more of the peer's frames
// are already read ahead (their replies will follow), it is written to the
// socket at once by the calling goroutine, without waiting (what the socket
// does not take goes to the flusher), however recent the previous write. Write
// batches a frame that comes soon after another with those that may follow;
// for one request at a time that would cost a flusher goroutine's wake-up
// per frame.
func (c *Conn) WriteAlone(frame []byte) error {
	if len(frame) > c.o.MaxMessageSize {
		return ErrTooLarge
	}
	if d := c.nc.dfl; d != nil && d.tx && len(frame) >= c.o.Compression.Threshold {
		return c.writeDeflate(frame, true)
	}
	return c.enqueue(opText, frame, true, true)
}

// Ping writes "primus::ping::<now in unix ms>", the server heartbeat. A
// Primus client answers with the same value (see [Conn.Beat]). (A Primus server would take it as data.)
func (c *Conn) Ping(now time.Time) error {
	var a [48]byte
	b := append(a[:0], `"primus::ping::`...)
	b = strconv.AppendInt(b, now.UnixMilli(), 10)
	b = append(b, '"')
	if HBTraceEnabled {
		traceHB(c, 'P', now.UnixMilli())
	}
	return c.enqueue(opText, b, true, false)
}

// Beat is one step of the server heartbeat for this connection, made once
// per ping interval by one goroutine at a time (it is not safe to call
// concurrently with itself). It reports how many steps in a row, this one
// included, found nothing read from the peer since the step before: 0 when
// anything arrived (a "primus::pong::…", a WebSocket PING, a data frame,
// any byte of one), 1 after one interval without a read, and so on (it
// stops counting at 255). A connection is live until its first step. The
// heartbeat pings when it is below its limit and Drops the connection when
// it reaches it.
func (c *Conn) Beat() int {
	a := c.alive.Swap(false)
	if a {
		c.silent = 0
	} else if c.silent < 255 {
		c.silent++
	}
	if HBTraceEnabled {
		v := int64(0)
		if a {
			v = 1
		}
		traceHB(c, 'T', v)
	}
	return int(c.silent)
}

// Close sends a close frame with code and reason (truncated to 123 bytes)
// and closes the connection. Code 0 sends a close frame without a status
// code, as Primus does; other codes must be valid to send (1000–1003,
// 1007–1014, 3000–4999) or Close returns ErrInvalidCloseCode. Frames
// already queued are written before the close frame (a stalled write is
// still cut by WriteTimeout, and what remains is dropped: see
// DroppedFrames). Close does not wait for the socket: the write goroutine
// writes the queued frames and the close frame (each write is bounded by
// WriteTimeout), and half-closes
// the socket; the read loop then waits up to WriteTimeout for the peer's
// close frame.
// OnClose then reports ErrClosedLocally. A second call returns ErrClosed.
func (c *Conn) Close(code uint16, reason string) error {
	if !validCloseCode(code) {
		return fmt.Errorf("%w: %d", ErrInvalidCloseCode, code)
	}
	return c.closeWith(code, reason, false)
}

// End is the intentional Primus close: it queues "primus::server::close"
// after the frames already queued, then a 1000 close frame. A Primus client
// then does not reconnect. Otherwise it is like Close, except that queued
// frames are written, not dropped. It is meant for the server role (a Primus
// server would take the message as data).
func (c *Conn) End() error { return c.closeWith(1000, "", true) }

// Drop closes the socket at once without a close frame, dropping queued
// frames; a Primus client then reconnects. Use it for a heartbeat failure:
// OnClose reports ErrHeartbeat (unless the connection was already closing
// for another reason). It returns ErrClosed if the socket was already closed.
func (c *Conn) Drop() error {
	c.mu.Lock()
	if c.final || c.nc.isClosed() {
		c.mu.Unlock()
		return ErrClosed
	}
	c.closed = true
	c.setCauseLocked(ErrHeartbeat)
	c.dropPendingLocked()
	c.mu.Unlock()
	_ = c.nc.Close()
	return nil
}

// Abort ends the connection without waiting on the peer. After [Conn.Close]
// or [Conn.End] it hurries the closing handshake: a socket write blocked
// on a peer that does not read returns at once (the socket is closed and
// what was not written is dropped), later writes wait at most
// [AbortGrace] for the socket to take them, and so does the wait for the
// peer's close frame; a peer that reads gets the queued frames and the
// close frame as usual. Without a Close before, it closes the socket at
// once, dropping queued frames, like [Conn.Drop]. OnClose reports
// ErrClosedLocally unless the connection was already closing for another
// reason. It returns ErrClosed if the socket was already closed.
func (c *Conn) Abort() error {
	c.mu.Lock()
	if c.final || c.nc.isClosed() {
		c.mu.Unlock()
		return ErrClosed
	}
	closing := c.closed
	c.closed = true
	c.setCauseLocked(ErrClosedLocally)
	if !closing {
		c.dropPendingLocked()
	}
	c.mu.Unlock()
	if !closing {
		_ = c.nc.Close()
		return nil
	}
	c.nc.abort()
	return nil
}

// Role reports whether c is the server or the client end.
func (c *Conn) Role() Role { return c.role }

// ID returns the connection id (Options.ID or a random one). For the client
// role it is a local id, not the server's spark id.
func (c *Conn) ID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.id == "" {
		c.id = randomID() // on first use: most connections never need one
	}
	return c.id
}

// RemoteAddr returns the peer's network address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// Done is closed after OnClose returned. The channel is made by the first
// call (an idle connection nobody waits for holds none); a call after the
// end gets a closed channel.
func (c *Conn) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		if c.ended {
			return closedChan
		}
		c.done = make(chan struct{})
	}
	return c.done
}

// closedChan is what Done returns after the end when no channel was made.
var closedChan = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

// QueuedBytes returns the bytes queued for writing, frame headers included,
// counting the batch being written.
func (c *Conn) QueuedBytes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.queued
}

// DroppedFrames returns how many queued frames were never written because
// the connection closed (Close, Drop, a write error, or the peer leaving).
func (c *Conn) DroppedFrames() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dropped
}

func validCloseCode(code uint16) bool {
	switch {
	case code == 0,
		code >= 1000 && code <= 1003,
		code >= 1007 && code <= 1014,
		code >= 3000 && code <= 4999:
		return true
	}
	return false
}

func (c *Conn) setCauseLocked(err error) {
	if c.cause == nil {
		c.cause = err
	}
}
