//go:build !race

package wsactor_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/wsactor/wsactor"
)

const clientStackEnv = "WSACTOR_TEST_CLIENT_STACK_URL"

// What an idle Client holds. Its read goroutine gives back the stack its
// first request grew, as a server's does (conn's TestIdleReadStackShrinks): it runs the
// read loop under a small frame (Client.serve), not under the supervisor's
// Run and conc's panic catchers, which kept every idle client at 8 KiB
// (the runtime halves a parked stack at GC only while its frames, plus an
// 800-byte reserve, are under a quarter of it). The clients run in a child
// process (this test binary again), the server here: the server's
// goroutines, heap and cached stacks stay out of the measure. Its heap
// holds no per-connection ctx watch, restart history or handler pool
// (none without a request handler): 6.1 KiB per client here, with the
// test's own cleanups, where those made it 7.5 KiB. Without -race (it
// doubles the stack reserve and adds to the heap).
func TestIdleClientMemory(t *testing.T) {
	if url := os.Getenv(clientStackEnv); url != "" {
		idleClientStack(t, url)
		return
	}
	_, url := startServer(t, wsactor.WithRequestHandler(func(_ context.Context, _ *wsactor.Conn, r wsactor.Request) (any, error) {
		return r.Data, nil
	}))
	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleClientMemory$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), clientStackEnv+"="+url)
	out, err := cmd.CombinedOutput()
	t.Logf("child:\n%s", out)
	if err != nil {
		t.Fatalf("child: %v", err)
	}
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

func idleClientStack(t *testing.T, url string) {
	const n = 100
	clients := make([]*wsactor.Client, 0, n)
	defer func() {
		for _, cl := range clients {
			_ = cl.Close()
		}
	}()
	base := stackInuse()
	baseHeap := heapAlloc()
	for range n {
		cl := dial(t, url)
		clients = append(clients, cl)
		if _, err := cl.Request(ctxWait(t), "ping"); err != nil {
			t.Fatal(err)
		}
	}
	per := (int64(stackInuse()) - int64(base)) / n
	heap := (int64(heapAlloc()) - int64(baseHeap)) / n
	t.Logf("stack per idle client: %d B; heap %d B", per, heap)
	if per < 2<<10 {
		t.Fatalf("%d idle clients added %d B of stacks each: less than one minimal stack; the measure is broken", n, per)
	}
	if per > 6<<10 {
		t.Errorf("an idle client holds %d B of stack: its read goroutine's 8 KiB stack was not halved at GC (want 4 KiB)", per)
	}
	if heap > 7<<10 {
		t.Errorf("an idle client holds %d B of heap, want under 7 KiB", heap)
	}
}

const serverMemEnv = "WSACTOR_TEST_SERVER_MEM"

// What an idle server connection holds, after one request: its read
// goroutine's stack back at 4 KiB, and a heap under 4 KiB per connection
// (its own structs, gws's, the socket's, and the test's end of the socket):
// no read buffer (conn's pooled reads), no mailbox lanes, no request slots.
// Raw sockets are the peers, so that the process holds nothing else per
// connection. In a child process (freed stacks cached by the runtime after
// other tests blur the figure); without -race.
func TestIdleServerMemory(t *testing.T) {
	if os.Getenv(serverMemEnv) == "1" {
		idleServerMemory(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleServerMemory$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), serverMemEnv+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("child:\n%s", out)
	if err != nil {
		t.Fatalf("child: %v", err)
	}
}

func idleServerMemory(t *testing.T) {
	const n = 200
	_, url := startServer(t) // no request handler: each request gets the no_handler error reply
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "ws://"), "/primus")
	peers := make([]net.Conn, 0, n)
	defer func() {
		for _, nc := range peers {
			_ = nc.Close()
		}
	}()
	baseStack, baseHeap := stackInuse(), heapAlloc()
	for i := range n {
		peers = append(peers, idleRequestPeer(t, addr, i))
	}
	stack := (int64(stackInuse()) - int64(baseStack)) / n
	heap := (int64(heapAlloc()) - int64(baseHeap)) / n
	t.Logf("per idle server connection: stack %d B, heap %d B", stack, heap)
	if stack < 2<<10 || heap < 1<<10 {
		t.Fatalf("stack %d B, heap %d B per connection: less than a connection's own; the measure is broken", stack, heap)
	}
	if stack > 6<<10 {
		t.Errorf("an idle server connection holds %d B of stack: its read goroutine's 8 KiB stack was not halved at GC (want 4 KiB)", stack)
	}
	if heap > 4<<10 {
		t.Errorf("an idle server connection holds %d B of heap, want under 4 KiB", heap)
	}
}

// idleRequestPeer opens a WebSocket connection on a bare socket, makes one
// request on it, reads the reply and returns the socket, holding nothing
// else.
func idleRequestPeer(t *testing.T, addr string, i int) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_, err = fmt.Fprintf(nc, "GET /primus HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", addr)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc) // not kept: the peer holds only the socket
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	req := fmt.Sprintf(`{"plugin":"primus-responder","requestId":"r%d","data":1}`, i)
	frame := append([]byte{0x81, 0x80 | byte(len(req)), 0, 0, 0, 0}, req...) // masked TEXT, zero key
	if _, err := nc.Write(frame); err != nil {
		t.Fatal(err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(wait))
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Fatal(err)
	}
	reply := make([]byte, h[1]&0x7F) // a short reply: 7-bit length
	if _, err := io.ReadFull(br, reply); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(reply), `"responseId":"r`) {
		t.Fatalf("reply %q", reply)
	}
	_ = nc.SetReadDeadline(time.Time{})
	return nc
}
