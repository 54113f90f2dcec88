package conn

import (
	"bytes"
	"io"
	"testing"
	"time"
)

// WriteAlone writes a frame at once even right after another write, so one
// request at a time costs no flusher goroutine per frame; Write keeps
// batching frames that come close together.
func TestWriteAloneSkipsTheFlusher(t *testing.T) {
	c, peer := acceptOne(t, Options{}, nopHandler{closed: make(chan struct{})})
	frame := []byte(`{"plugin":"primus-responder","responseId":"x","data":1}`)
	const n = 10
	before := flushersStarted.Load()
	for range n {
		if err := c.WriteAlone(frame); err != nil {
			t.Fatal(err)
		}
	}
	alone := flushersStarted.Load() - before
	before = flushersStarted.Load()
	for range n {
		if err := c.Write(frame); err != nil {
			t.Fatal(err)
		}
	}
	batched := flushersStarted.Load() - before
	// The peer gets all 2n frames, whole and in order.
	want := bytes.Repeat(append([]byte{0x81, byte(len(frame))}, frame...), 2*n)
	got := make([]byte, len(want))
	if err := peer.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(peer, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("the peer read %q, want %q", got, want)
	}
	if alone != 0 {
		t.Errorf("%d back-to-back WriteAlone calls started %d flushers, want none", n, alone)
	}
	if batched == 0 {
		t.Errorf("%d back-to-back Write calls started no flusher: they are no longer batched", n)
	}
	t.Logf("flushers started: %d for %d WriteAlone, %d for %d Write", alone, n, batched, n)
}

// While the reader holds more of the peer's frames read ahead (replies to
// them will follow), WriteAlone batches as Write does.
func TestWriteAloneBatchesWhenFramesAreReadAhead(t *testing.T) {
	c, peer := acceptOne(t, Options{}, nopHandler{closed: make(chan struct{})})
	frame := []byte(`{"plugin":"primus-responder","responseId":"x","data":1}`)
	const n = 10
	c.ahead.Store(true) // as fromBuf sets it when bytes stay in the read buffer
	before := flushersStarted.Load()
	for range n {
		if err := c.WriteAlone(frame); err != nil {
			t.Fatal(err)
		}
	}
	c.ahead.Store(false)
	if started := flushersStarted.Load() - before; started == 0 {
		t.Errorf("%d back-to-back WriteAlone calls with frames read ahead started no flusher: not batched", n)
	}
	want := bytes.Repeat(append([]byte{0x81, byte(len(frame))}, frame...), n)
	got := make([]byte, len(want))
	if err := peer.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(peer, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("the peer read %q, want %q", got, want)
	}
}
