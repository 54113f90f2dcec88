//go:build !race

package conn_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"

	"github.com/wsactor/wsactor/conn"
	"github.com/wsactor/wsactor/envelope"
)

// deepHandler grows the read goroutine's stack past 4 KiB on every frame,
// as the root package's inline actor work does on the first request, and
// reports the frame on got.
type deepHandler struct{ got chan struct{} }

var deepSink byte

//go:noinline
func deepStack(d int) byte {
	var a [256]byte
	a[d%len(a)] = byte(d)
	if d == 0 {
		return a[0]
	}
	return deepStack(d-1) + a[d%len(a)]
}

func (h deepHandler) frame() {
	deepSink = deepStack(20) // about 5.5 KiB of frames: the stack grows to 8 KiB
	h.got <- struct{}{}
}

func (deepHandler) OnOpen(*conn.Conn)                          {}
func (h deepHandler) OnEnvelope(*conn.Conn, envelope.Envelope) { h.frame() }
func (h deepHandler) OnBadInput(*conn.Conn, error)             { h.frame() }
func (deepHandler) OnClose(*conn.Conn, error)                  {}

// serveConn is a read goroutine started as the root package's server starts
// it (Server.serve): Serve, then Done.
func serveConn(c *conn.Conn, wg *sync.WaitGroup) {
	c.Serve()
	wg.Done()
}

// stackInuse is the runtime's StackInuse after enough GCs for every
// shrinkable stack to have been halved as far as it goes.
func stackInuse() uint64 {
	for range 4 {
		runtime.GC()
	}
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.StackInuse
}

// An idle read goroutine parked in its socket read gives back the stack its
// first message grew: the runtime halves a parked stack at GC only while the
// frames in use, plus an 800-byte reserve, are under a quarter of it, so the
// parked read path (Serve, gws's read loop, netConn.Read, the poller) must
// stay under about 1.2 KiB for an 8 KiB stack to shrink to 4 KiB. Without
// -race only: the race detector doubles the reserve.
//
// The measurement runs in a child process (this test binary again): in a
// process that ran other tests, freed stacks cached by the runtime blur the
// figure.
func TestIdleReadStackShrinks(t *testing.T) {
	if os.Getenv(stackChildEnv) == "1" {
		idleReadStack(t, 1)
		return
	}
	runStackChild(t, "TestIdleReadStackShrinks")
}

// A busy connection (a frame read every few milliseconds) keeps the stack
// its messages grew across GCs, instead of giving it back at each GC and
// copying it again for the next message (runtime.copystack was 11 % of the
// server's CPU at 1,000 connections with 4 KiB requests); the idle test
// above shows it is given back once reads are far apart.
func TestBusyReadStackKept(t *testing.T) {
	if os.Getenv(stackChildEnv) == "1" {
		idleReadStack(t, 12)
		return
	}
	runStackChild(t, "TestBusyReadStackKept")
}

func runStackChild(t *testing.T, name string) {
	cmd := exec.Command(os.Args[0], "-test.run=^"+name+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), stackChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("child:\n%s", out)
	if err != nil {
		t.Fatalf("child: %v", err)
	}
}

const stackChildEnv = "CONN_TEST_STACK_CHILD"

// idleReadStack sends frames frames to each of n connections, one at a time
// (each after the previous one was handled: a read each), then measures
// the parked read goroutines' stacks after GC: 4 KiB each after a single
// frame, 8 KiB (kept) after a busy run of them.
func idleReadStack(t *testing.T, frames int) {
	const n = 200
	h := deepHandler{got: make(chan struct{}, n)}
	url, wg := serveGroup(t, h)
	frame := tinyFrame()
	socks := make([]net.Conn, 0, n)
	base := stackInuse()
	for range n {
		nc := rawHandshake(t, url)
		socks = append(socks, nc)
	}
	for range frames {
		for _, nc := range socks {
			if _, err := nc.Write(frame); err != nil {
				t.Fatal(err)
			}
		}
		for range n {
			recv(t, h.got, "a frame")
		}
	}
	idle := stackInuse()
	per := (int64(idle) - int64(base)) / n
	t.Logf("stack per parked read goroutine after %d frame(s): %d B", frames, per)
	if per < 2<<10 {
		t.Fatalf("%d idle read goroutines added %d B of stacks: fewer than one minimal stack each", n, idle-base)
	}
	for _, nc := range socks {
		_ = nc.Close()
	}
	ended := make(chan struct{})
	go func() {
		wg.Wait()
		close(ended)
	}()
	recv(t, ended, "the read goroutines' end")
	if frames == 1 && per > 6<<10 {
		t.Fatalf("an idle read goroutine holds %d B of stack: its 8 KiB stack was not halved at GC (want 4 KiB)", per)
	}
	if frames > 1 && per < 6<<10 {
		t.Fatalf("a busy read goroutine holds %d B of stack: its 8 KiB stack was halved at GC, to be copied again at the next message (want 8 KiB kept)", per)
	}
}

// serveGroup starts a test HTTP server (closed at cleanup) whose upgrades
// are served with h as the root package's server serves them, each read
// loop counted in the returned WaitGroup; it returns the server's URL.
func serveGroup(t *testing.T, h conn.Handler) (string, *sync.WaitGroup) {
	t.Helper()
	up, err := conn.NewUpgrader(conn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	wg := new(sync.WaitGroup)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, h)
		if err != nil {
			return
		}
		wg.Add(1)
		go serveConn(c, wg)
	}))
	t.Cleanup(ts.Close)
	return "ws" + strings.TrimPrefix(ts.URL, "http") + "/primus", wg
}

// tinyFrame is a masked (zero key) text frame of a small JSON object.
func tinyFrame() []byte {
	return append([]byte{0x81, 0x80 | 7, 0, 0, 0, 0}, `{"a":1}`...)
}
