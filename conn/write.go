package conn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"
)

// The write path.
//
// Write frames the payload (header, and mask for the client role) straight
// into pooled 16 KiB chunks in c.pending, under c.mu (a frame larger than a
// chunk gets a buffer of its own). If no flusher goroutine runs, it starts
// one. The flusher takes all pending chunks and writes them with ONE writev
// (net.Buffers), returns the chunks to the pool, and loops until nothing is
// pending, then exits: an idle connection has no writer goroutine and holds
// no write buffer, and no buffer ever grows by copying.
//
// gws also writes to the socket (its close frames). To never interleave with
// it, gws is given netConn, whose Write takes the same mutex the flusher
// holds for its batch writes, so every frame reaches the socket whole and in
// order. gws never writes data frames for us (we bypass WriteMessage), and
// its compression is off (permessage-deflate is ours: deflate.go), so gws
// keeps no per-frame state we would skip.

const (
	opText  = 0x1
	opClose = 0x8
	opPong  = 0xA

	chunkSize      = 16 << 10
	smallChunkSize = 512
)

type wbuf struct{ b []byte }

var (
	chunkPool      = sync.Pool{New: func() any { return &wbuf{b: make([]byte, 0, chunkSize)} }}
	smallChunkPool = sync.Pool{New: func() any { return &wbuf{b: make([]byte, 0, smallChunkSize)} }}
)

// putBuf recycles a chunk; a frame's own (larger) buffer is left to the GC.
func putBuf(w *wbuf) {
	switch cap(w.b) {
	case chunkSize:
		w.b = w.b[:0]
		chunkPool.Put(w)
	case smallChunkSize:
		w.b = w.b[:0]
		smallChunkPool.Put(w)
	}
}

func putBufs(ws []*wbuf) {
	for i, w := range ws {
		putBuf(w)
		ws[i] = nil
	}
}

// frameSize is the wire size of a frame with an n-byte payload.
func frameSize(n int, masked bool) int {
	h := 2
	switch {
	case n > 0xFFFF:
		h = 10
	case n > 125:
		h = 4
	}
	if masked {
		h += 4
	}
	return h + n
}

// appendFrame appends one unfragmented frame (FIN set, no RSV bits).
func appendFrame(dst []byte, op byte, p []byte, masked bool) []byte {
	var mb byte
	if masked {
		mb = 0x80
	}
	n := len(p)
	switch {
	case n <= 125:
		dst = append(dst, 0x80|op, mb|byte(n))
	case n <= 0xFFFF:
		dst = append(dst, 0x80|op, mb|126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x80|op, mb|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	if !masked {
		return append(dst, p...)
	}
	var key [4]byte
	binary.LittleEndian.PutUint32(key[:], rand.Uint32()) // runtime ChaCha8: unpredictable
	dst = append(dst, key[:]...)
	start := len(dst)
	dst = append(dst, p...)
	maskBytes(dst[start:], key)
	return dst
}

// maskBytes XORs b with the repeating 4-byte key (RFC 6455 §5.3).
func maskBytes(b []byte, key [4]byte) {
	k := uint64(binary.LittleEndian.Uint32(key[:]))
	k |= k << 32
	i := 0
	for ; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], binary.LittleEndian.Uint64(b[i:])^k)
	}
	for ; i < len(b); i++ {
		b[i] ^= key[i&3]
	}
}

// appendClose appends a close frame: no payload for code 0, else the code
// and the reason (at most 123 bytes, cut by closeWith).
func appendClose(dst []byte, code uint16, reason string, masked bool) []byte {
	if code == 0 {
		return appendFrame(dst, opClose, nil, masked)
	}
	var a [125]byte
	p := binary.BigEndian.AppendUint16(a[:0], code)
	p = append(p, reason...)
	return appendFrame(dst, opClose, p, masked)
}

// enqueue frames p into the pending buffer and makes sure a flusher runs.
// limit applies MaxOutboundBytes.
func (c *Conn) enqueue(op byte, p []byte, limit, alone bool) error {
	masked := c.role == Client
	size := frameSize(len(p), masked)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if limit && c.queued > 0 && c.queued+size > c.o.MaxOutboundBytes {
		c.mu.Unlock()
		return ErrWriteQueueFull
	}
	t := int64(time.Since(epoch))
	// Alone, unless more of the peer's frames are already read ahead: the
	// replies to them will follow, and may go out in one batch.
	quiet := (alone && !c.ahead.Load()) || t-c.lastEnqueue > int64(quietGap)
	c.lastEnqueue = t
	if quiet && !c.flushing && !c.final && len(c.pending) == 0 && c.nc.raw != nil && size <= chunkSize {
		c.writeNow(op, p, masked, size) // unlocks c.mu
		return nil
	}
	c.appendLocked(op, p, masked, size)
	c.startFlusherLocked()
	c.mu.Unlock()
	return nil
}

// quietGap: a Write that comes this long after the previous one takes the
// fast path (writeNow). Busier connections queue for the flusher, which
// batches frames into one writev: measured on loopback with 64 requests in
// flight on one connection, writing every frame at once cost 0.57× raw gws
// throughput against 0.78× with batching, while 1,000 connections with one
// request each gained from it (no flusher goroutine per reply).
const quietGap = 100 * time.Microsecond

var epoch = time.Now()

// writeNow is the fast path of an idle connection: the caller writes the
// frame to the socket itself, without waiting (a non-blocking write), so
// that a reply on an idle connection needs no flusher goroutine. What the
// socket does not take at once is queued for a flusher. Called with c.mu
// held; returns with it released.
func (c *Conn) writeNow(op byte, p []byte, masked bool, size int) {
	c.flushing = true // the writer role: Writes meanwhile queue behind us
	c.flushers.Add(1)
	// The connection was quiet: the flusher's chunk lists (empty) are
	// dropped, so that a connection that had a burst and went idle keeps
	// no write buffer after its next write (a heartbeat's, at the latest).
	c.pending, c.spare = nil, nil
	c.mu.Unlock()

	var w *wbuf
	if size <= smallChunkSize {
		w = smallChunkPool.Get().(*wbuf)
	} else {
		w = chunkPool.Get().(*wbuf)
	}
	w.b = appendFrame(w.b, op, p, masked)
	n, _ := c.nc.tryWrite(w) // an error shows again in the flusher's write

	c.mu.Lock()
	c.flushing = false
	c.flushers.Done()
	if n < len(w.b) {
		// The rest goes first, before whatever was queued meanwhile.
		rest := copy(w.b, w.b[n:])
		w.b = w.b[:rest]
		c.pending = append(c.pending, nil)
		copy(c.pending[1:], c.pending)
		c.pending[0] = w
		c.pendingBytes += rest
		c.pendingFrames++
		c.queued += rest
	} else {
		putBuf(w)
	}
	if len(c.pending) > 0 || (c.closeWanted && !c.closeSent) {
		c.startFlusherLocked()
	}
	c.mu.Unlock()
}

func (c *Conn) appendLocked(op byte, p []byte, masked bool, size int) {
	c.appendFrameLocked(size, func(dst []byte) []byte { return appendFrame(dst, op, p, masked) })
	c.pendingBytes += size
	c.pendingFrames++
	c.queued += size
}

// appendFrameLocked appends a frame of size bytes made by add to the last
// pending chunk, or to a new one.
func (c *Conn) appendFrameLocked(size int, add func([]byte) []byte) {
	var w *wbuf
	if n := len(c.pending); n > 0 && cap(c.pending[n-1].b)-len(c.pending[n-1].b) >= size {
		w = c.pending[n-1]
	} else {
		switch {
		case size > chunkSize:
			w = &wbuf{b: make([]byte, 0, size)}
		case size <= smallChunkSize/2 && len(c.pending) == 0:
			// A small frame on an idle connection (a heartbeat, a short
			// reply) takes a small chunk: 10,000 connections pinged at once
			// then hold 5 MiB of chunks, not 160 MiB.
			w = smallChunkPool.Get().(*wbuf)
		default:
			w = chunkPool.Get().(*wbuf)
		}
		if c.pending == nil {
			c.pending, c.spare = c.spare, nil
		}
		c.pending = append(c.pending, w)
	}
	w.b = add(w.b)
}

func (c *Conn) startFlusherLocked() {
	if c.flushing || c.final {
		return
	}
	c.flushing = true
	c.flushers.Add(1)
	flushersStarted.Add(1)
	go c.flush()
}

// flushersStarted counts the flusher goroutines started, by every Conn of
// the process (for tests: a goroutine start costs far more than the add).
var flushersStarted atomic.Uint64

func (c *Conn) dropPendingLocked() {
	c.dropped += uint64(c.pendingFrames)
	c.queued -= c.pendingBytes
	putBufs(c.pending)
	c.pending, c.pendingBytes, c.pendingFrames = c.pending[:0], 0, 0
}

var serverCloseFrame = []byte(`"primus::server::close"`)

// closeWith starts a closing handshake written by the flusher, after the
// frames already queued. end queues "primus::server::close" first.
func (c *Conn) closeWith(code uint16, reason string, end bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	c.closed = true
	c.setCauseLocked(ErrClosedLocally)
	if len(reason) > 123 { // what fits in a close frame
		n := 123
		for n > 0 && !utf8.RuneStart(reason[n]) {
			n--
		}
		reason = reason[:n]
	}
	// Frames already queued go out before the close frame (replies, error
	// replies of a shutdown): each write is still bounded by WriteTimeout.
	if end {
		c.appendLocked(opText, serverCloseFrame, c.role == Client, frameSize(len(serverCloseFrame), c.role == Client))
	}
	c.closeWanted, c.closeCode, c.closeReason = true, code, reason
	c.startFlusherLocked()
	return nil
}

// flush is the flusher goroutine: it owns the socket writes of data frames
// until nothing is pending, then exits.
func (c *Conn) flush() {
	defer c.flushers.Done()
	for {
		c.mu.Lock()
		if c.final {
			c.dropPendingLocked()
		}
		sendClose := c.closeWanted && !c.closeSent && !c.final
		if sendClose {
			c.closeSent = true
			masked := c.role == Client
			size := frameSize(len(c.closeReason)+2, masked)
			c.appendFrameLocked(size, func(dst []byte) []byte {
				return appendClose(dst, c.closeCode, c.closeReason, masked)
			})
		}
		batch, n, frames := c.pending, c.pendingBytes, c.pendingFrames
		if len(batch) == 0 {
			c.flushing = false
			// Idle: hold no chunk (they are all back in the pool), and
			// keep the chunk lists only while they are small (the next
			// quiet write drops them: see writeNow).
			if cap(c.pending) > 4 {
				c.pending = nil
			}
			if cap(c.spare) > 4 {
				c.spare = nil
			}
			c.mu.Unlock()
			return
		}
		c.pending, c.pendingBytes, c.pendingFrames = c.spare, 0, 0
		c.spare = nil
		c.mu.Unlock()

		err := c.nc.writeBatch(batch, sendClose)

		c.mu.Lock()
		c.queued -= n
		putBufs(batch)
		if c.spare == nil {
			c.spare = batch[:0]
		}
		if err != nil {
			c.dropped += uint64(frames)
			c.closed = true
			c.dropPendingLocked()
			if !c.nc.isClosed() && !errors.Is(err, errCloseSent) {
				// Our write failed on a socket nobody else is closing.
				if errors.Is(err, os.ErrDeadlineExceeded) {
					err = fmt.Errorf("%w: %w", ErrWriteTimeout, err)
				}
				c.setCauseLocked(err)
			}
		}
		c.mu.Unlock()
		switch {
		case err != nil:
			_ = c.nc.Close()
		case sendClose:
			// Half-close: the peer reads our frames and the close frame, then
			// answers with its close frame, which ends the read loop; if it
			// does not, the read deadline does.
			c.nc.closeWrite()
		}
	}
}

// errCloseSent: a close frame was already written; no frame may follow it.
var errCloseSent = errors.New("conn: close frame already sent")

// netConn is the net.Conn given to gws. Reads pass through. Writes (gws's,
// and the flusher's batches) are serialised by wmu and bounded by a write
// deadline; after a failed write (the stream may hold half a frame) or a
// close frame, nothing more is written.
type netConn struct {
	net.Conn
	owner *Conn
	raw   syscall.RawConn // for non-blocking writes and reads; nil when not a plain socket (TLS)
	try   tryState        // tryWrite's state, under wmu
	tryFn func(fd uintptr) bool
	dfl   *deflateState // permessage-deflate offered or on (deflate.go); set before sharing

	wmu       sync.Mutex
	state     atomic.Uint32 // stClosed | stAborted | stHalfClosed (packed with wmu and the bools: 8 bytes less)
	closeSent bool
	framed    bool // the handshake is done; set before the Conn is shared
	werr      error
	iov       net.Buffers // writev scratch, under wmu

	rd readState // the read goroutine's: frame boundaries (frames.go)

	// Reads without a held buffer (readbuf.go).
	rfn func(fd uintptr) bool // n.recvFD; nil unless raw
	rb  *readBuf              // the read goroutine's pooled buffer; nil when empty
}

const (
	stClosed     = 1 << iota // Close was called
	stAborted                // waits are AbortGrace from now on
	stHalfClosed             // closeWrite set the read deadline
)

// isClosed reports whether Close was called.
func (n *netConn) isClosed() bool { return n.state.Load()&stClosed != 0 }

// setWriteDeadline bounds the next write. Against abort, lock-free: if
// abort's flag is not seen here, abort's own deadline is set after this
// one (the flag is stored before it), and wins.
func (n *netConn) setWriteDeadline() error {
	if err := n.Conn.SetWriteDeadline(time.Now().Add(n.owner.o.WriteTimeout)); err != nil {
		return err
	}
	if n.state.Load()&stAborted != 0 {
		return n.Conn.SetWriteDeadline(time.Now().Add(AbortGrace))
	}
	return nil
}

// abort cuts the waits short: a write blocked now returns at once, and so
// does the wait for the peer's close frame; later ones wait AbortGrace.
func (n *netConn) abort() {
	st := n.state.Or(stAborted)
	now := time.Now()
	_ = n.Conn.SetWriteDeadline(now)
	if st&stHalfClosed != 0 {
		// Else closeWrite is yet to see stAborted (the two flags are set
		// and read in opposite orders: one side sees the other's).
		_ = n.Conn.SetReadDeadline(now)
	}
}

// Read is gws's read. It follows the frame boundaries to keep the frame
// deadline (frames.go). A read deadline expires on a peer that left a
// message incomplete for FrameTimeout, on a client whose PingTimeout passed
// without a "primus::ping", or after our closing handshake, when the socket
// is closing anyway: the peer is presumed dead or hostile, so the socket is
// dropped before gws would write a close frame to it.
//
// An idle connection's read goroutine is parked inside this Read, so its
// frame is part of every idle stack: the runtime halves a goroutine's stack
// at GC only while what is in use (plus 800 bytes it reserves) is under a
// quarter of it, and the read goroutine, grown to 8 KiB by the first
// request's inline actor work, shrinks back to 4 KiB only if its parked
// frames take less than about 1.2 KiB. So the untimed read (no message
// incomplete, no frame deadline to lift: the idle case) keeps a small
// frame, and the timed read and the error path are out of line.
func (n *netConn) Read(b []byte) (int, error) {
	if n.rb != nil {
		return n.buffered(b) // readbuf.go
	}
	if n.rd.busy() || n.rd.flags&rdArmed != 0 {
		return n.timedRead(b)
	}
	if n.rd.quick >= busyReads {
		return n.busyRead(b)
	}
	var m int
	var err error
	if n.rfn != nil && len(b) < readChunk {
		// Wait holding no buffer (readbuf.go).
		m, err = n.fromBuf(b, n.raw.Read(n.rfn))
	} else {
		m, err = n.Conn.Read(b)
	}
	if m > 0 {
		n.tracked(b[:m])
	}
	if err != nil {
		n.readFailed(err, false)
	}
	return m, err
}

// A connection is busy once busyReads reads in a row each came less than
// busyGap milliseconds after the one before; its read goroutine then waits
// in busyRead.
const (
	busyGap   = 1000
	busyReads = 8
)

// busyStack is what busyRead adds to the waiting read goroutine's stack.
const busyStack = 512

// busyRead is Read's wait on a busy connection. The runtime halves a
// parked goroutine's stack at each GC when little of it is in use (see
// Read), and handling the next message grows it back to 8 KiB, copying it:
// on a connection that reads a message every few milliseconds that is a
// shrink and a copy per GC cycle. busyRead's frame keeps the parked stack
// in use above that quarter, so a busy connection keeps the stack it grew;
// once a read comes busyGap or more after the one before (an idle
// connection's heartbeat), Read waits with its small frame again and the
// stack shrinks at the next GC.
//
//go:noinline
func (n *netConn) busyRead(b []byte) (int, error) {
	var pad [busyStack]byte
	i := len(b) & (busyStack - 1)
	pad[i] = 1 // the frame holds pad across the wait: read again below
	// The same read as Read's, written out again rather than shared: a
	// shared function would put one more frame under every idle
	// connection's parked read, whose stack must stay small (see Read).
	var m int
	var err error
	if n.rfn != nil && len(b) < readChunk {
		m, err = n.fromBuf(b, n.raw.Read(n.rfn))
	} else {
		m, err = n.Conn.Read(b)
	}
	if m > 0 {
		n.tracked(b[:m])
	}
	if err != nil {
		n.readFailed(err, false)
	}
	if pad[i] != 1 {
		panic("conn: busyRead's stack reserve was lost")
	}
	return m, err
}

// timedRead is Read when a message is incomplete or the frame deadline is
// armed: the read runs under the frame deadline (or lifts it).
//
//go:noinline
func (n *netConn) timedRead(b []byte) (int, error) {
	start := n.beforeRead()
	m, err := n.sockRead(b)
	frame := n.rd.flags&rdArmed != 0
	n.afterRead(start, b[:m]) // tracked: the peer is live
	if err != nil {
		n.readFailed(err, frame)
	}
	return m, err
}

// readFailed drops the connection when the read failed for its deadline;
// frame says the deadline was the frame deadline.
//
//go:noinline
func (n *netConn) readFailed(err error, frame bool) {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		n.owner.readTimedOut(frame)
	}
}

// Write is used by gws only: the handshake (passed through) and afterwards
// whole frames (one frame per call; gws sends only close frames here).
func (n *netConn) Write(b []byte) (int, error) {
	if !n.framed {
		if n.dfl != nil && n.owner.role == Server {
			return n.writeAnswer(b) // permessage-deflate (deflate.go)
		}
		return n.Conn.Write(b)
	}
	n.wmu.Lock()
	defer n.wmu.Unlock()
	if err := n.usableLocked(); err != nil {
		return 0, err
	}
	if len(b) > 0 && b[0]&0x0F == opClose {
		n.closeSent = true
	}
	return n.writeLocked(b)
}

// writeBatch writes a batch of chunks of whole frames with one write (one
// writev for several chunks); closing says the batch ends with a close frame.
func (n *netConn) writeBatch(batch []*wbuf, closing bool) error {
	n.wmu.Lock()
	defer n.wmu.Unlock()
	if err := n.usableLocked(); err != nil {
		return err
	}
	if closing {
		n.closeSent = true
	}
	if err := n.setWriteDeadline(); err != nil {
		n.werr = err
		return err
	}
	var err error
	if len(batch) == 1 {
		_, err = n.Conn.Write(batch[0].b)
	} else {
		for _, w := range batch {
			n.iov = append(n.iov, w.b)
		}
		// WriteTo (a pointer receiver: on the field, so that nothing moves
		// to the heap) consumes n.iov; iov keeps its array for reuse.
		iov := n.iov
		_, err = n.iov.WriteTo(n.Conn)
		clear(iov)
		n.iov = iov[:0]
		if cap(n.iov) > 16 {
			n.iov = nil
		}
	}
	if err != nil {
		n.werr = err
		return err
	}
	// Clear the deadline: tryWrite's raw write checks it too, and a quiet
	// connection must not fail its next write on a stale deadline.
	_ = n.Conn.SetWriteDeadline(time.Time{})
	return nil
}

// tryState is what tryWrite's callback works on: fields rather than a
// closure, so that a write allocates nothing.
type tryState struct {
	w       *wbuf  // the frame(s) to write: w.b
	written int32  // a frame of at most a chunk (writeNow)
	errno   uint32 // a syscall.Errno; not an error interface: 8 bytes less per Conn
}

// setFramed marks the handshake done. Called before the Conn is shared.
func (n *netConn) setFramed() {
	n.framed = true
	if sc, ok := n.Conn.(syscall.Conn); ok && n.raw == nil { // initRead may have set it
		if raw, err := sc.SyscallConn(); err == nil {
			n.raw = raw
		}
	}
	if n.raw != nil {
		n.tryFn = n.tryWriteFD
	}
}

// tryWriteFD writes n.try.w.b to fd until it is written or the socket would
// block. It never asks to wait for writability: the flusher does that.
func (n *netConn) tryWriteFD(fd uintptr) bool {
	t := &n.try
	b := t.w.b
	for int(t.written) < len(b) {
		m, e := syscall.Write(int(fd), b[t.written:])
		if m > 0 {
			t.written += int32(m)
		}
		if e == syscall.EINTR {
			continue
		}
		if e != nil {
			if e != syscall.EAGAIN {
				t.errno = uint32(syscall.EIO) // never: Write's errors are Errnos
				if errno, ok := e.(syscall.Errno); ok {
					t.errno = uint32(errno)
				}
			}
			break
		}
	}
	return true
}

// tryWrite writes as much of w.b as the socket takes now, without waiting:
// it returns how much was written; what is left must be written by the
// flusher. An error is a broken socket.
//
// It does not wait for wmu either: the lock may be held by gws answering the
// peer's close frame (or failing the connection) on the read goroutine, a
// write bounded only by WriteTimeout when the peer does not read. The
// caller is the writer of a quiet connection (the actor loop, a heartbeat),
// which must not block: when the lock is taken, nothing is written and the
// flusher, which may wait, gets the frame.
func (n *netConn) tryWrite(w *wbuf) (int, error) {
	if !n.wmu.TryLock() {
		return 0, nil
	}
	defer n.wmu.Unlock()
	if err := n.usableLocked(); err != nil {
		return 0, err
	}
	n.iov = nil // a quiet connection: see writeNow
	n.try = tryState{w: w}
	err := n.raw.Write(n.tryFn)
	written := int(n.try.written)
	if err == nil && n.try.errno != 0 {
		err = syscall.Errno(n.try.errno)
	}
	n.try = tryState{}
	if err != nil {
		n.werr = err
	}
	return written, err
}

func (n *netConn) usableLocked() error {
	if n.werr != nil {
		return n.werr
	}
	if n.closeSent {
		return errCloseSent
	}
	return nil
}

func (n *netConn) writeLocked(b []byte) (int, error) {
	if err := n.setWriteDeadline(); err != nil {
		n.werr = err
		return 0, err
	}
	m, err := n.Conn.Write(b)
	if err != nil {
		n.werr = err
		return m, err
	}
	_ = n.Conn.SetWriteDeadline(time.Time{}) // see writeBatch
	return m, nil
}

// Close closes the socket; it may be called more than once.
func (n *netConn) Close() error {
	first := n.state.Or(stClosed)&stClosed == 0
	err := n.Conn.Close()
	if first && n.owner != nil {
		if h, ok := n.owner.h.(SocketClosedHandler); ok {
			h.OnSocketClosed(n.owner)
		}
	}
	return err
}

// closeWrite half-closes the socket after our close frame and gives the peer
// grace to answer before reads time out.
func (n *netConn) closeWrite() {
	if n.state.Or(stHalfClosed)&stAborted != 0 {
		_ = n.Conn.SetReadDeadline(time.Now().Add(AbortGrace))
	} else {
		_ = n.Conn.SetReadDeadline(time.Now().Add(n.owner.o.WriteTimeout))
		if n.state.Load()&stAborted != 0 { // abort came meanwhile
			_ = n.Conn.SetReadDeadline(time.Now().Add(AbortGrace))
		}
	}
	if cw, ok := n.Conn.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() == nil {
			return
		}
	}
	_ = n.Close()
}
