package conn

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wsactor/wsactor/envelope"
)

// nopHandler is a Handler that ignores everything; closed is closed by
// OnClose.
type nopHandler struct{ closed chan struct{} }

func (nopHandler) OnOpen(*Conn)                        {}
func (nopHandler) OnEnvelope(*Conn, envelope.Envelope) {}
func (nopHandler) OnBadInput(*Conn, error)             {}
func (h nopHandler) OnClose(*Conn, error)              { close(h.closed) }

// acceptOne starts an httptest server that upgrades one connection with
// opts and serves it; it returns the server Conn and the peer's raw socket
// after the handshake (the peer reads nothing more unless the test does).
func acceptOne(t *testing.T, opts Options, h Handler) (*Conn, net.Conn) {
	t.Helper()
	up, err := NewUpgrader(opts)
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan *Conn, 1)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, h)
		if err != nil {
			return
		}
		conns <- c
		c.Serve()
	}))
	t.Cleanup(ts.Close)
	host := strings.TrimPrefix(ts.URL, "http://")
	// A small fixed receive buffer (no autotuning): the peer's window
	// cannot grow after the server's send buffer filled.
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return errors.Join(err, serr)
	}}
	peer, err := d.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = peer.Close() })
	_, err = fmt.Fprintf(peer, "GET /primus HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", host)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(peer), nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	select {
	case c := <-conns:
		if err := c.nc.Conn.(*net.TCPConn).SetWriteBuffer(4096); err != nil {
			t.Fatal(err)
		}
		return c, peer
	case <-time.After(10 * time.Second):
		t.Fatal("no server conn")
		return nil, nil
	}
}

// fillSendBuffer writes to the server socket, without blocking, until the
// kernel takes no more: what a server that wrote replies to a peer that
// stopped reading ends with. The bytes are never parsed (the peer reads
// nothing). The peer's kernel may still grow its receive window after a
// first EAGAIN, so it fills again until a round takes nothing.
func fillSendBuffer(t *testing.T, n *netConn) {
	t.Helper()
	junk := make([]byte, 64<<10)
	settled := false
	for range 200 {
		wrote := 0
		err := n.raw.Write(func(fd uintptr) bool {
			// Down to single bytes: a small write may still fit in the
			// last segment after a large one was refused.
			for size := len(junk); size > 0; size /= 4 {
				for {
					m, e := syscall.Write(int(fd), junk[:size])
					if m > 0 {
						wrote += m
					}
					if e == nil || e == syscall.EINTR {
						continue
					}
					if e != syscall.EAGAIN {
						t.Errorf("write: %v", e)
						return true
					}
					break
				}
			}
			return true
		})
		if err != nil {
			t.Fatalf("filling the send buffer: %v", err)
		}
		if wrote == 0 && settled {
			return
		}
		settled = wrote == 0
		// Let delayed ACKs arrive (at most 200 ms on Linux): they free
		// send memory, which the next round takes.
		<-time.After(250 * time.Millisecond)
	}
	t.Fatal("the send buffer never filled")
}

// Item: "the actor loop can block". gws answers the peer's close frame on
// the read goroutine, under netConn's write lock, with a write bounded only
// by WriteTimeout; a quiet connection's Write (the actor loop's reply, a
// heartbeat) writes directly and took the same lock, so it waited for that
// write: up to WriteTimeout. Reproduced over a real socket: the peer stopped
// reading (the server's send buffer is full), then sent a close frame.
func TestQuietWriteNeverWaitsForGwsCloseAnswer(t *testing.T) {
	h := nopHandler{closed: make(chan struct{})}
	// A WriteTimeout far longer than the test waits: a Write that waits for
	// gws's blocked write cannot return in time.
	c, peer := acceptOne(t, Options{WriteTimeout: 10 * time.Minute}, h)
	fillSendBuffer(t, &c.nc)

	// The peer's close frame (masked, no payload): gws answers it at once,
	// and its answer blocks on the full socket while holding the lock.
	if _, err := peer.Write([]byte{0x88, 0x80, 1, 2, 3, 4}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for c.nc.wmu.TryLock() { // wait until gws's close answer holds the lock
		c.nc.wmu.Unlock()
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatal("gws never took the write lock to answer the close frame")
		}
	}

	// A Write now takes the quiet path (nothing queued, no flusher).
	done := make(chan error, 1)
	go func() { done <- c.Write([]byte(`"reply"`)) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Write: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("a quiet Write blocked behind gws's close answer (it holds the write lock for up to WriteTimeout)")
	}

	_ = c.Drop() // unblocks gws's write; the read loop ends
	select {
	case <-h.closed:
	case <-time.After(30 * time.Second):
		t.Fatal("no OnClose after Drop")
	}
	<-c.Done()
}
