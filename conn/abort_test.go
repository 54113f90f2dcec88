package conn_test

import (
	"errors"
	"testing"
	"time"

	"github.com/wsactor/wsactor/conn"
)

// Abort after Close: a write blocked on a peer that never reads returns at
// once (WriteTimeout is a minute), and OnClose says the close was local.
func TestAbortCutsAStalledClose(t *testing.T) {
	rec := newRecorder()
	s := startServer(t, conn.Options{WriteTimeout: time.Minute, MaxMessageSize: 16 << 20}, rec)
	_ = rawHandshake(t, s.url) // never reads
	c := s.accept(t)
	if err := c.Write(make([]byte, 8<<20)); err != nil { // far more than the kernel buffers take
		t.Fatal(err)
	}
	if err := c.Close(1001, "going away"); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	if err := c.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := rec.closeErr(t); !errors.Is(err, conn.ErrClosedLocally) {
		t.Fatalf("OnClose %v, want ErrClosedLocally", err)
	}
	waitDone(t, c)
	// Half the write timeout: a close that waited for the write cannot
	// pass, a slow machine cannot fail it.
	if took := time.Since(begin); took > 30*time.Second {
		t.Fatalf("the aborted close took %v", took)
	}
	if err := c.Abort(); !errors.Is(err, conn.ErrClosed) {
		t.Fatalf("second Abort: %v", err)
	}
}

// Abort after Close on a peer that reads: the queued frame and the close
// frame still arrive.
func TestAbortKeepsAReadingPeersFrames(t *testing.T) {
	p := newPair(t, conn.Options{WriteTimeout: time.Minute}, conn.Options{})
	if err := p.srv.Write([]byte(`"last"`)); err != nil {
		t.Fatal(err)
	}
	if err := p.srv.Close(4000, "bye"); err != nil {
		t.Fatal(err)
	}
	if err := p.srv.Abort(); err != nil && !errors.Is(err, conn.ErrClosed) {
		t.Fatal(err)
	}
	if got := p.cliRec.nextEnv(t); got.data != `"last"` {
		t.Fatalf("client got %+v", got)
	}
	var ce *conn.CloseError
	if err := p.cliRec.closeErr(t); !errors.As(err, &ce) || ce.Code != 4000 {
		// The socket takes the frames at once: AbortGrace (100ms per
		// write) does not cut them.
		t.Fatalf("client OnClose %v, want the close frame", err)
	}
	if err := p.srvRec.closeErr(t); !errors.Is(err, conn.ErrClosedLocally) {
		t.Fatalf("server OnClose %v", err)
	}
}

// Abort without a Close closes the socket at once.
func TestAbortWithoutClose(t *testing.T) {
	p := newPair(t, conn.Options{}, conn.Options{})
	if err := p.srv.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := p.srvRec.closeErr(t); !errors.Is(err, conn.ErrClosedLocally) {
		t.Fatalf("server OnClose %v", err)
	}
	if err := p.cliRec.closeErr(t); err == nil {
		t.Fatal("client OnClose nil")
	}
	if err := p.srv.Write([]byte(`1`)); !errors.Is(err, conn.ErrClosed) {
		t.Fatalf("Write after Abort: %v", err)
	}
}
