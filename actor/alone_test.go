package actor_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/wsactor/wsactor/actor"
	"github.com/wsactor/wsactor/envelope"
)

// aloneRecorder is a Transport that records, for each frame, its kind and
// whether it came through WriteAlone.
type aloneRecorder struct {
	mu     sync.Mutex
	writes []string
	frames chan envelope.Envelope
}

func (r *aloneRecorder) record(frame []byte, alone bool) error {
	env, err := envelope.Decode(frame)
	if err != nil {
		return err
	}
	env.ID = append([]byte(nil), env.ID...)
	how := "batched"
	if alone {
		how = "alone"
	}
	r.mu.Lock()
	r.writes = append(r.writes, env.Kind.String()+" "+how)
	r.mu.Unlock()
	r.frames <- env
	return nil
}

func (r *aloneRecorder) Write(frame []byte) error      { return r.record(frame, false) }
func (r *aloneRecorder) WriteAlone(frame []byte) error { return r.record(frame, true) }
func (r *aloneRecorder) Close(uint16, string) error    { return nil }

func (r *aloneRecorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.writes)
}

// A request is written alone when no other is pending, a reply when no
// other request of the peer is in progress; otherwise they may be batched.
func TestWritesAloneOnlyWhenNothingElseIsInFlight(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 2)
	h := func(ctx context.Context, a *actor.Actor, req actor.Incoming) ([]byte, error) {
		started <- struct{}{}
		if string(req.Data) == `"first"` {
			<-release
		}
		return req.Data, nil
	}
	rec := &aloneRecorder{frames: make(chan envelope.Envelope, 16)}
	a, err := actor.New(rec, newConfig(t, actor.WithHandler(h, newPool(t, 4, 16))), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { a.Stop(actor.ErrClosed, 0, ""); <-a.Done() }()

	// This side's requests: the first alone, the second while the first is
	// pending.
	done := make(chan error, 2)
	for range 2 {
		if err := a.Go(context.Background(), []byte(`1`), func(_ actor.Reply, err error) { done <- err }); err != nil {
			t.Fatal(err)
		}
		<-rec.frames
	}
	// The peer's requests: "first" blocks until "second" has been answered
	// (batched: "first" is still in progress), then "first" is answered
	// alone.
	for _, d := range []string{`"first"`, `"second"`} {
		if err := a.Deliver(envelope.Envelope{Kind: envelope.KindRequest, ID: []byte(`"` + d[1:len(d)-1] + `"`), Data: []byte(d)}); err != nil {
			t.Fatal(err)
		}
		<-started
	}
	<-rec.frames // the reply to "second"
	close(release)
	<-rec.frames // the reply to "first"
	want := []string{"request alone", "request batched", "response batched", "response alone"}
	if got := rec.got(); !slices.Equal(got, want) {
		t.Fatalf("writes %v, want %v", got, want)
	}
}
