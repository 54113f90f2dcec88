package conn_test

import (
	"context"
	"sync"
	"testing"

	"github.com/wsactor/wsactor/conn"
)

// closeGate is a recorder whose OnClose waits for release.
type closeGate struct {
	*recorder
	inClose chan struct{}
	release chan struct{}
}

func (g closeGate) OnClose(c *conn.Conn, err error) {
	close(g.inClose)
	<-g.release
	g.recorder.OnClose(c, err)
}

// Done is made on demand: asked early, it closes only after OnClose has
// returned; asked after the end, it is closed at once.
func TestDoneMadeOnDemand(t *testing.T) {
	s := startServer(t, conn.Options{}, newRecorder())
	gate := closeGate{newRecorder(), make(chan struct{}), make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c, _, err := conn.Dial(ctx, s.url, nil, gate, conn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		c.Serve()
		close(served)
	}()
	s.accept(t)
	recv(t, gate.opened, "OnOpen")

	early := c.Done()
	if c.Done() != early {
		t.Fatal("two Done calls returned different channels")
	}
	if err := c.Close(1000, ""); err != nil {
		t.Fatal(err)
	}
	recv(t, gate.inClose, "OnClose")
	if c.Done() != early {
		t.Fatal("Done during OnClose returned another channel")
	}
	select {
	case <-early:
		t.Fatal("Done closed before OnClose returned")
	default:
	}
	close(gate.release)
	recv(t, early, "Done")
	gate.closeErr(t)
	recv(t, served, "Serve to return")

	// A connection nobody asked: Done after the end is closed at once.
	c2, _, err := conn.Dial(ctx, s.url, nil, newRecorder(), conn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	served2 := make(chan struct{})
	go func() {
		c2.Serve()
		close(served2)
	}()
	s.accept(t)
	_ = c2.Drop()
	recv(t, served2, "Serve to return")
	select {
	case <-c2.Done():
	default:
		t.Fatal("Done after the end is not closed")
	}
}

// The random id is made on first use, once, also under concurrent calls.
func TestIDMadeOnceOnDemand(t *testing.T) {
	p := newPair(t, conn.Options{}, conn.Options{})
	ids := make([]string, 8)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() { ids[i] = p.srv.ID() })
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] || len(id) != 21 {
			t.Fatalf("ids %q", ids)
		}
	}
}
