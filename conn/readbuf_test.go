package conn_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/wsactor/wsactor/conn"
	"github.com/wsactor/wsactor/envelope"
)

// frameHandler reports each frame on got.
type frameHandler struct{ got chan struct{} }

func (frameHandler) OnOpen(*conn.Conn)                          {}
func (h frameHandler) OnEnvelope(*conn.Conn, envelope.Envelope) { h.got <- struct{}{} }
func (h frameHandler) OnBadInput(*conn.Conn, error)             { h.got <- struct{}{} }
func (frameHandler) OnClose(*conn.Conn, error)                  {}

// readCountingConn is a net.Conn wrapper of the kind a listener may hand out
// (a PROXY protocol reader, a metering layer): it embeds *net.TCPConn, so
// it has SyscallConn, and its Read must still be the one used.
type readCountingConn struct {
	*net.TCPConn
	reads *atomic.Int64
}

func (c readCountingConn) Read(b []byte) (int, error) {
	c.reads.Add(1)
	return c.TCPConn.Read(b)
}

type readCountingListener struct {
	net.Listener
	reads *atomic.Int64
}

func (l readCountingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return readCountingConn{c.(*net.TCPConn), l.reads}, nil
}

// A wrapped socket is read through its own Read, never around it through
// its file descriptor (the pooled reads are for the net package's own
// sockets only): a wrapper may hold bytes the descriptor no longer has.
func TestWrappedSocketReadThroughItsRead(t *testing.T) {
	up, err := conn.NewUpgrader(conn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := frameHandler{got: make(chan struct{}, 1)}
	var wg sync.WaitGroup
	upgraded := make(chan struct{}, 1)
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, h)
		if err != nil {
			return
		}
		upgraded <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Serve()
		}()
	}))
	var reads atomic.Int64
	ts.Listener = readCountingListener{ts.Listener, &reads}
	ts.Start()
	defer ts.Close()
	nc := rawHandshake(t, "ws"+strings.TrimPrefix(ts.URL, "http")+"/primus")
	recv(t, upgraded, "the upgrade")
	before := reads.Load()
	frame := append([]byte{0x81, 0x80 | 7, 0, 0, 0, 0}, `{"a":1}`...)
	if _, err := nc.Write(frame); err != nil {
		t.Fatal(err)
	}
	recv(t, h.got, "the frame")
	if reads.Load() == before {
		t.Fatal("the frame was read around the wrapper's Read")
	}
	_ = nc.Close()
	ended := make(chan struct{})
	go func() {
		wg.Wait()
		close(ended)
	}()
	recv(t, ended, "the read goroutine's end")
}
