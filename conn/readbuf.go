package conn

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// The read buffer, held only while there is something in it.
//
// gws reads through a bufio.Reader, whose buffer (4 KiB by default) is the
// largest thing an idle connection holds: the read goroutine waits in a
// socket read into it. Here gws's bufio.Reader is small ([readerSize]), and
// netConn.Read waits for the socket to become readable holding no buffer
// (a non-blocking read through syscall.RawConn, which parks on the poller
// when the socket has nothing). A read that finds data reads into a
// [readChunk]-byte buffer taken from a pool; what gws did not take yet is
// served from it by the next Reads, and the buffer goes back to the pool as
// soon as it is empty. So an idle connection holds no read buffer at all,
// and a busy one reads in chunks of up to 16 KiB, four times gws's usual
// reader, so that a message of a few KiB (a 4 KiB payload in its envelope
// is just over 4 KiB) arrives in one read system call instead of two; a
// read of at least readChunk bytes (a large payload) goes straight into
// gws's slice.
//
// Every byte still passes through netConn.Read on its way to gws, so the
// frame tracking (frames.go) sees exactly what gws reads; the frame
// deadline is set only for reads that wait on the socket, never for those
// served from the buffer.
//
// Only a plain socket of the net package (*net.TCPConn, *net.UnixConn)
// reads this way: a wrapper may hold bytes of its own (a PROXY protocol
// header reader, TLS) that reading the file descriptor would skip. Other
// net.Conns (TLS, wrappers, a net.Pipe in tests) are read as before, with
// gws's reader at its usual size.

const (
	// readChunk is the size of a pooled read buffer: what one socket read
	// takes at most. Measured (bench, 4 KiB payloads, 3 interleaved
	// rounds): against 4 KiB, server read calls per round trip 1.15 → 0.38
	// at 64 in flight, server CPU per round trip −12 %.
	readChunk = 16 << 10
	// readerSize is the size of gws's bufio.Reader over a plain socket: a
	// frame header and a small message's payload in one Read.
	readerSize = 64
)

// readBuf is a pooled read buffer: b[r:w] is not yet read by gws. errno
// (or eof) is what the socket read that found no data returned.
type readBuf struct {
	b     [readChunk]byte
	r, w  int
	errno syscall.Errno
	eof   bool
}

var readBufs = sync.Pool{New: func() any { return new(readBuf) }}

// initRead prepares reads without a held buffer when the net.Conn is a plain
// socket. Called once the net.Conn is set, before the first read.
func (n *netConn) initRead() {
	if !plainSocket(n.Conn) {
		return
	}
	if n.raw == nil {
		raw, err := n.Conn.(syscall.Conn).SyscallConn()
		if err != nil {
			return
		}
		n.raw = raw
	}
	n.rfn = n.recvFD
}

// plainSocket reports whether nc is a socket of the net package itself,
// whose Read is the file descriptor's read.
func plainSocket(nc net.Conn) bool {
	switch nc.(type) {
	case *net.TCPConn, *net.UnixConn:
		return true
	}
	return false
}

// readerSizeFor is the size of gws's bufio.Reader over nc: small when
// netConn buffers the reads itself (see initRead), else gws's default.
func readerSizeFor(nc net.Conn) int {
	if plainSocket(nc) {
		return readerSize
	}
	return readChunk
}

// recvFD is the RawConn read callback (n.rfn): one non-blocking read into a
// pooled buffer, kept in n.rb when it brought data or an error. It returns
// false, giving the buffer back, when the socket has nothing: RawConn.Read
// then waits for readability and calls it again.
func (n *netConn) recvFD(fd uintptr) bool {
	rb := readBufs.Get().(*readBuf)
	for {
		m, e := syscall.Read(int(fd), rb.b[:])
		switch {
		case e == syscall.EINTR:
			continue
		case e == syscall.EAGAIN:
			readBufs.Put(rb)
			return false
		case e != nil:
			rb.r, rb.w, rb.eof = 0, 0, false
			rb.errno = syscall.EIO // never: Read's errors are Errnos
			if errno, ok := e.(syscall.Errno); ok {
				rb.errno = errno
			}
		default:
			rb.r, rb.w, rb.errno, rb.eof = 0, m, 0, m == 0
		}
		n.rb = rb
		return true
	}
}

// sockRead reads from the socket into b: through a pooled buffer for a
// small b on a plain socket, else straight into b. It waits for the socket
// (under whatever read deadline is set).
func (n *netConn) sockRead(b []byte) (int, error) {
	if n.rb != nil { // never: Read serves the buffer first
		return n.fromBuf(b, nil)
	}
	if n.rfn == nil || len(b) >= readChunk {
		return n.Conn.Read(b)
	}
	return n.fromBuf(b, n.raw.Read(n.rfn))
}

// fromBuf gives gws what the buffer holds, up to len(b), after a RawConn
// read that returned err; the buffer goes back to the pool once empty (or
// once it reported the socket's error or end). It does not track the bytes:
// the caller does.
//
//go:noinline
func (n *netConn) fromBuf(b []byte, err error) (int, error) {
	rb := n.rb
	if err != nil || rb == nil {
		if err == nil {
			err = io.ErrNoProgress // never: a nil error means recvFD kept a buffer
		}
		return 0, n.rawReadError(err)
	}
	if rb.r == rb.w {
		n.rb = nil
		eof, errno := rb.eof, rb.errno
		readBufs.Put(rb)
		if eof {
			return 0, io.EOF
		}
		return 0, &net.OpError{Op: "read", Net: n.LocalAddr().Network(), Source: n.LocalAddr(), Addr: n.RemoteAddr(), Err: os.NewSyscallError("read", errno)}
	}
	m := copy(b, rb.b[rb.r:rb.w])
	if rb.r += m; rb.r == rb.w {
		n.rb = nil
		readBufs.Put(rb)
	}
	if ahead := n.rb != nil; ahead != n.owner.ahead.Load() {
		n.owner.ahead.Store(ahead) // WriteAlone: more frames are already here
	}
	return m, nil
}

// rawReadError is a RawConn read's error as net.Conn.Read reports it (an
// *net.OpError whose Op is "read", not "raw-read").
func (n *netConn) rawReadError(err error) error {
	if oe, ok := err.(*net.OpError); ok && oe.Op == "raw-read" {
		e := *oe
		e.Op = "read"
		return &e
	}
	return err
}

// buffered gives gws what the read buffer holds, without waiting on the
// socket, and tracks it.
//
//go:noinline
func (n *netConn) buffered(b []byte) (int, error) {
	m, err := n.fromBuf(b, nil)
	if m > 0 {
		n.tracked(b[:m])
	}
	if err != nil {
		n.readFailed(err, false)
	}
	return m, err
}

// releaseRead gives the read buffer back after the read loop ended.
func (n *netConn) releaseRead() {
	if rb := n.rb; rb != nil {
		n.rb = nil
		readBufs.Put(rb)
	}
}
