//go:build !race

package wsactor_test

import (
	"context"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"testing"

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
