package conn_test

import (
	"encoding/binary"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/wsactor/wsactor/conn"
	"github.com/wsactor/wsactor/envelope"
)

// clientFrame is a masked client frame (mask key 0: the payload is sent as
// it is) with the given first byte, declared payload length and payload
// (which may be shorter than declared: the rest never comes).
func clientFrame(b0 byte, declared int, payload string) []byte {
	f := []byte{b0}
	switch {
	case declared <= 125:
		f = append(f, 0x80|byte(declared))
	case declared <= 0xFFFF:
		f = append(f, 0x80|126)
		f = binary.BigEndian.AppendUint16(f, uint16(declared))
	default:
		f = append(f, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, uint64(declared))
	}
	f = append(f, 0, 0, 0, 0)
	return append(f, payload...)
}

func write(t *testing.T, nc net.Conn, b []byte) {
	t.Helper()
	if _, err := nc.Write(b); err != nil {
		t.Fatal(err)
	}
}

// A peer that sends only a frame header (14 bytes, declaring the largest
// payload allowed) and stalls is dropped at FrameTimeout: before, nothing
// in conn ended it (a server's heartbeat, 30–60 s later, did).
func TestHeaderOnlyFrameIsDroppedAtFrameTimeout(t *testing.T) {
	rec := newRecorder()
	s := startServer(t, conn.Options{MaxMessageSize: 1 << 20, FrameTimeout: 200 * time.Millisecond}, rec)
	peer := rawHandshake(t, s.url)
	c := s.accept(t)
	write(t, peer, clientFrame(0x81, 1<<20, ""))
	if err := rec.closeErr(t); !errors.Is(err, conn.ErrFrameTimeout) {
		t.Fatalf("OnClose %v, want ErrFrameTimeout", err)
	}
	waitDone(t, c)
}

// The deadline covers a whole fragmented message: complete fragments (and a
// ping between them) do not extend it.
func TestStalledFragmentedMessageIsDropped(t *testing.T) {
	rec := newRecorder()
	s := startServer(t, conn.Options{FrameTimeout: 300 * time.Millisecond}, rec)
	peer := rawHandshake(t, s.url)
	c := s.accept(t)
	write(t, peer, clientFrame(0x01, 2, `"a`)) // text, FIN clear
	write(t, peer, clientFrame(0x89, 0, ""))   // ping
	if err := rec.closeErr(t); !errors.Is(err, conn.ErrFrameTimeout) {
		t.Fatalf("OnClose %v, want ErrFrameTimeout", err)
	}
	waitDone(t, c)
}

// Messages split across reads, fragmented or not, arrive, and once they are
// complete no deadline is left: the connection then stays quiet for longer
// than FrameTimeout and still reads.
func TestCompleteMessagesLeaveNoDeadline(t *testing.T) {
	rec := newRecorder()
	const timeout = 200 * time.Millisecond
	s := startServer(t, conn.Options{FrameTimeout: timeout}, rec)
	peer := rawHandshake(t, s.url)
	_ = s.accept(t)

	// A frame whose header and payload come in separate writes.
	f := clientFrame(0x81, 300, `"`+string(make300())+`"`)
	write(t, peer, f[:5])
	write(t, peer, f[5:100])
	write(t, peer, f[100:])
	if got := rec.nextEnv(t); len(got.data) != 300 {
		t.Fatalf("got %d bytes", len(got.data))
	}
	// A fragmented message with a ping in the middle.
	write(t, peer, clientFrame(0x01, 2, `"a`))
	write(t, peer, clientFrame(0x89, 0, ""))
	write(t, peer, clientFrame(0x80, 2, `b"`))
	if got := rec.nextEnv(t); got.data != `"ab"` {
		t.Fatalf("got %q", got.data)
	}
	// Quiet past the deadline (wall-clock time on purpose: the deadline is
	// what is under test), then one more message.
	<-time.After(3 * timeout)
	write(t, peer, clientFrame(0x81, 1, `7`))
	if got := rec.nextEnv(t); got.data != `7` {
		t.Fatalf("got %q", got.data)
	}
	select {
	case err := <-rec.closed:
		t.Fatalf("the connection closed: %v", err)
	default:
	}
}

func make300() []byte {
	b := make([]byte, 298)
	for i := range b {
		b[i] = 'x'
	}
	return b
}

// The client role follows frames after the handshake response too: a
// server that sends a header and stalls is dropped at FrameTimeout.
func TestClientDropsStalledServerFrame(t *testing.T) {
	rs := startRawServer(t)
	rec := newRecorder()
	c := dial(t, rs.url, conn.Options{FrameTimeout: 200 * time.Millisecond}, rec)
	sock := recv(t, rs.socks, "raw server conn")
	// An unmasked server frame header declaring 1000 bytes, then 10 of them.
	hdr := []byte{0x81, 126, 0x03, 0xE8}
	if _, err := sock.NetConn().Write(append(hdr, "\"123456789"...)); err != nil {
		t.Fatal(err)
	}
	if err := rec.closeErr(t); !errors.Is(err, conn.ErrFrameTimeout) {
		t.Fatalf("client OnClose %v, want ErrFrameTimeout", err)
	}
	waitDone(t, c)
}

// The deadline counts only the time spent waiting for the peer: a handler
// that holds the read goroutine for longer than FrameTimeout while the next
// message is half read does not get that message's sender dropped.
func TestSlowHandlerDoesNotSpendThePeersTime(t *testing.T) {
	rec := newRecorder()
	const timeout = 200 * time.Millisecond
	release := make(chan struct{})
	first := true
	rec.onEnv = func(*conn.Conn, envelope.Envelope) {
		if first {
			first = false
			<-release
		}
	}
	s := startServer(t, conn.Options{FrameTimeout: timeout}, rec)
	peer := rawHandshake(t, s.url)
	_ = s.accept(t)
	// The first message and the start of the second in one write: one read
	// ends inside the second.
	m2 := clientFrame(0x81, 3, `"b"`)
	write(t, peer, append(clientFrame(0x81, 3, `"a"`), m2[:4]...))
	// The handler holds the read goroutine well past the frame timeout
	// (wall-clock time on purpose: the deadline is what is under test).
	<-time.After(3 * timeout)
	write(t, peer, m2[4:])
	close(release)
	if got := rec.nextEnv(t); got.data != `"a"` {
		t.Fatalf("got %q", got.data)
	}
	if got := rec.nextEnv(t); got.data != `"b"` {
		t.Fatalf("got %q", got.data)
	}
	select {
	case err := <-rec.closed:
		t.Fatalf("the connection closed: %v", err)
	default:
	}
}
