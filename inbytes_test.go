package wsactor_test

// The per-connection budget of the peer's bytes held (WithMaxInboundBytes),
// over real sockets.

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/wsactor/wsactor"
)

// Issue item 8: a peer that sends many large requests to slow handlers
// cannot make the server hold more than the byte budget of them (plus one
// message): with the defaults, WithMaxInbound alone would let it hold
// 1024 × 64 KiB per connection. The reader waits instead (no busy reply),
// every request is answered once the handlers return, and the server's
// heap grows by about the budget, not by what the peer sent.
func TestMaxInboundBytesBoundsHeldRequests(t *testing.T) {
	const n, pad = 200, 60 << 10
	const budget = wsactor.DefaultMaxInboundBytes
	frames := make([]string, n)
	for i := range frames {
		frames[i] = rawRequest(1000+i, `"`+strings.Repeat("x", pad)+`"`)
	}
	const per = 2*4 + pad + 2       // what the server holds for one: id twice, data
	const most = budget / per       // requests that fit in the budget at once
	const heldMax = budget + per    // the budget plus one message, at most
	const heapMax = heldMax + 3<<20 // margin for socket buffers and the test's own garbage
	const without = n * per         // what the server would hold without the budget
	if heapMax >= without-2<<20 {
		t.Fatalf("the heap bound %d does not tell %d held from the budget", heapMax, without)
	}

	var g peak
	release := make(chan struct{})
	over := make(chan struct{})
	h := func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
		g.enter()
		defer g.leave()
		select {
		case <-release: // not ctx.Done: a slow handler
		case <-over:
		}
		return len(req.Data), nil
	}
	srv, url := startServer(t, wsactor.WithRequestHandler(h))
	t.Cleanup(func() { close(over) }) // before the server closes: a failed test leaves no handler waiting
	p := dialRawBuf(t, url, n+16)

	var before, after runtime.MemStats
	settledHeap(&before)
	wrote := rawWriter(p, frames)

	// A window in which a server without the budget reads the whole flood
	// (it is far under WithMaxInbound) and starts every handler. With the
	// budget it reads no further than the budget: the window passes. (Not
	// a synchronisation: nothing waits for the server to be slow.)
	window := time.NewTimer(time.Second)
	tick := time.NewTicker(2 * time.Millisecond)
	var held int64
watch:
	for {
		st := srv.Stats()
		held = max(held, st.InboundBytes)
		if st.Received > most+1 || held > heldMax {
			break
		}
		select {
		case <-tick.C:
		case <-window.C:
			break watch
		}
	}
	window.Stop()
	tick.Stop()
	settledHeap(&after)
	runtime.KeepAlive(frames) // the peer's frames were in the baseline: they stay out of the growth
	st := srv.Stats()
	if st.Received > most+1 || held > heldMax {
		t.Fatalf("the server read %d requests of %d bytes and held up to %d bytes, budget %d: at most %d requests and %d bytes",
			st.Received, per, held, budget, most+1, heldMax)
	}
	if st.InboundBytes < budget-per {
		t.Fatalf("the server holds %d bytes with %d requests read: the budget was not used", st.InboundBytes, st.Received)
	}
	growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	if growth > heapMax {
		t.Fatalf("the heap grew by %d bytes while the server held %d requests, want at most %d (%d without the budget)",
			growth, st.Received, heapMax, without)
	}
	t.Logf("held %d bytes of %d requests read; heap growth %.2f MiB (%.2f MiB sent)", st.InboundBytes, st.Received,
		float64(growth)/(1<<20), float64(n*per)/(1<<20))

	close(release)
	seen := map[int]int{}
	for range n {
		r := readReply(t, p)
		if r.Err != nil || string(r.Data) != fmt.Sprint(pad+2) {
			t.Fatalf("reply %d: %s (error %+v), want %d", r.ID, r.Data, r.Err, pad+2)
		}
		seen[r.ID]++
	}
	for i := range n {
		if seen[1000+i] != 1 {
			t.Fatalf("request %d answered %d times", 1000+i, seen[1000+i])
		}
	}
	if err := recv(t, wrote, "the peer's writes"); err != nil {
		t.Fatal(err)
	}
	if got := g.max.Load(); got > most {
		t.Fatalf("%d handlers held requests at once, %d fit in the budget", got, most)
	}
	if st := srv.Stats(); st.Busy != 0 || st.Answered != n || st.InboundBytes != 0 {
		t.Fatalf("server: busy %d, answered %d of %d, %d bytes still held", st.Busy, st.Answered, n, st.InboundBytes)
	}
}

// Issue item 8: a peer that sends requests and never reads the replies
// makes the server hold at most the default WithMaxOutboundBytes (1 MiB)
// of them in its queue (plus the kernel's socket buffers, not the heap):
// replies beyond it are refused (reported as bad input, the connection
// stays) instead of buffered, until the write timeout drops the peer. The
// server's heap grows by about 1 MiB; with the former default of 4 MiB it
// grew by over 4 MiB.
func TestMaxOutboundBytesDefaultBoundsUnreadReplies(t *testing.T) {
	const pad = 60 << 10
	const bound = 1 << 20                   // what a slow reader may cost by default
	const heapMax = bound + 1<<20 + 512<<10 // one frame over, the requests' and sockets' buffers, the test's garbage
	big := json.RawMessage(`"` + strings.Repeat("y", pad) + `"`)
	h := func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) { return big, nil }
	// A long write timeout: the peer is not dropped while the test looks.
	srv, url := startServer(t, wsactor.WithRequestHandler(h), wsactor.WithWriteTimeout(time.Minute))
	p := dialRawBuf(t, url, 0) // reads one reply and then no more

	var before, after runtime.MemStats
	settledHeap(&before)
	sent := int64(0)
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	// In batches, each once the server has answered the last, until a
	// whole batch's replies are refused: the kernel's socket buffers are
	// full and the queue stays full.
	const batch = 50
	for refusedBefore, refused := int64(-1), int64(0); refused-refusedBefore < batch; {
		st := srv.Stats()
		if sent >= 20000 || time.Now().After(deadline) {
			t.Fatalf("%d requests sent, the outbound queue never stayed full (%+v)", sent, st)
		}
		if st.Received != sent || st.InProgress != 0 {
			<-tick.C
			continue
		}
		refusedBefore, refused = refused, st.BadInput
		if refused-refusedBefore >= batch {
			break
		}
		for range batch {
			sent++
			p.write(t, false, rawRequest(int(sent), "1"))
		}
	}
	// Until the server has read every request and its handlers' replies
	// went to the queue or were refused: then it holds only the queue.
	for st := srv.Stats(); st.Received != sent || st.InProgress != 0; st = srv.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests sent, the server is still busy: %+v", sent, st)
		}
		<-tick.C
	}
	settledHeap(&after)
	growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	st := srv.Stats()
	t.Logf("%d requests sent, %d answered, %d replies refused; heap growth %.2f MiB", sent, st.Answered, st.BadInput, float64(growth)/(1<<20))
	if growth > heapMax {
		t.Fatalf("the heap grew by %d bytes with the peer's replies unread, want at most %d", growth, heapMax)
	}
	if st.Conns != 1 {
		t.Fatalf("%d connections open, want the slow reader's to stay", st.Conns)
	}
}

// settledHeap reads the heap after two collections: the second empties the
// sync.Pools' victim caches, which are not held by anyone.
func settledHeap(m *runtime.MemStats) {
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(m)
}

// Stats().InboundBytes is a gauge kept as envelopes are counted and
// released (no walk over the connections under the server's lock): it
// follows requests in progress and comes back to exactly 0 when
// connections drop mid-request, with their handlers still running, and
// those handlers then return.
func TestInboundBytesGaugeBalances(t *testing.T) {
	const clients, per = 8, 4
	release := make(chan struct{})
	started := make(chan struct{}, clients*per)
	returned := make(chan struct{}, clients*per)
	srv, url := startServer(t, wsactor.WithRequestHandler(func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
		started <- struct{}{}
		<-release // past the connection's end too
		returned <- struct{}{}
		return "ok", nil
	}))
	var cls []*wsactor.Client
	for range clients {
		cl := dial(t, url)
		cls = append(cls, cl)
		for range per {
			if err := cl.Go(context.Background(), strings.Repeat("x", 1000), func(wsactor.Response, error) {}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for range clients * per {
		recv(t, started, "handler")
	}
	if st := srv.Stats(); st.InboundBytes < clients*per*1000 {
		t.Fatalf("%d bytes held with %d requests of 1000 bytes in progress", st.InboundBytes, clients*per)
	}
	for i, cl := range cls { // half drop their TCP connection, half close
		if i%2 == 0 {
			c, err := cl.Conn(ctxWait(t))
			if err != nil {
				t.Fatal(err)
			}
			if err := dropTCP(c); err != nil {
				t.Fatal(err)
			}
		}
		_ = cl.Close()
	}
	close(release)
	for range clients * per {
		recv(t, returned, "handler return")
	}
	// Each handler's bytes are released just after it returns, on its
	// worker: poll for that moment, failing if the gauge never gets there.
	deadline := time.After(wait)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		st := srv.Stats()
		if st.InboundBytes < 0 {
			t.Fatalf("the gauge went below zero: %d", st.InboundBytes)
		}
		if st.InboundBytes == 0 && st.Conns == 0 {
			return
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("every handler returned, yet %d bytes are still counted (%d connections)", st.InboundBytes, st.Conns)
		}
	}
}
