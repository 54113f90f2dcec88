package conn

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection; the first is
// wrapped in a netConn set up as Upgrade sets one up (initRead), and
// following the bytes as handshake text (no frames) so that no frame
// deadline is involved.
func tcpPair(t *testing.T) (*netConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = peer.Close() })
	sc, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { _ = sc.Close() })
	o := Options{}.withDefaults()
	c := newConn(Client, nil, &o) // phHTTP: the bytes are taken as handshake text
	c.nc.Conn = sc
	c.nc.initRead()
	if c.nc.rfn == nil {
		t.Fatal("a TCP socket got no RawConn reads")
	}
	return &c.nc, peer
}

// Reads of every size get the stream whole and in order, whether they are
// served from the pooled buffer, from the socket through it, or straight
// into a large slice; the buffer is not held once it is empty.
func TestPooledReadsKeepTheStream(t *testing.T) {
	n, peer := tcpPair(t)
	rng := rand.New(rand.NewPCG(3, 4))
	want := make([]byte, 1<<20)
	for i := range want {
		want[i] = 'a' + byte(rng.IntN(26)) // no '\r': the handshake text never ends
	}
	go func() {
		rest := want
		for len(rest) > 0 {
			k := min(len(rest), 1+rng.IntN(3*readChunk))
			if _, err := peer.Write(rest[:k]); err != nil {
				return
			}
			rest = rest[k:]
		}
	}()
	got := make([]byte, 0, len(want))
	sizes := []int{1, 2, 14, readerSize, 100, 4096, readChunk - 1, readChunk, 3 * readChunk}
	buf := make([]byte, 3*readChunk)
	for i := 0; len(got) < len(want); i++ {
		m, err := n.Read(buf[:sizes[i%len(sizes)]])
		if err != nil {
			t.Fatalf("after %d bytes: %v", len(got), err)
		}
		got = append(got, buf[:m]...)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the bytes read differ from the bytes written")
	}
	if n.rb != nil {
		t.Fatal("the read buffer is held after every byte was read")
	}
}

// The end of the stream, a reset and a read deadline read as they do
// through net.Conn.Read: io.EOF, and *net.OpError "read" errors wrapping
// the cause.
func TestPooledReadErrors(t *testing.T) {
	t.Run("EOF", func(t *testing.T) {
		n, peer := tcpPair(t)
		if _, err := peer.Write([]byte("ab")); err != nil {
			t.Fatal(err)
		}
		_ = peer.Close()
		var b [readerSize]byte
		var got []byte
		for {
			m, err := n.Read(b[:])
			got = append(got, b[:m]...)
			if err != nil {
				if err != io.EOF || string(got) != "ab" {
					t.Fatalf("read %q, then %v; want \"ab\", then io.EOF", got, err)
				}
				break
			}
		}
	})
	t.Run("reset", func(t *testing.T) {
		n, peer := tcpPair(t)
		_ = peer.(*net.TCPConn).SetLinger(0)
		_ = peer.Close() // RST
		var b [readerSize]byte
		_, err := n.Read(b[:])
		var oe *net.OpError
		if !errors.As(err, &oe) || oe.Op != "read" || !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("read after a reset: %v (%T); want a \"read\" *net.OpError wrapping ECONNRESET", err, err)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		n, _ := tcpPair(t)
		_ = n.Conn.SetReadDeadline(time.Now().Add(-time.Second))
		var b [readerSize]byte
		_, err := n.Read(b[:])
		var oe *net.OpError
		if !errors.As(err, &oe) || oe.Op != "read" || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read past the deadline: %v; want a \"read\" *net.OpError wrapping os.ErrDeadlineExceeded", err)
		}
	})
}
