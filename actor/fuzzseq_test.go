package actor_test

// FuzzFrameSequence feeds arbitrary sequences of peer frames and lifecycle
// events to a live actor on the in-memory transport of pipe_test.go, while
// this side has requests outstanding, and checks the actor's promises after
// each sequence: every local request completed exactly once, no peer
// request answered more often than it was sent, the counters balance, and
// the actor stopped cleanly with no goroutine left.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsactor/wsactor/actor"
	"github.com/wsactor/wsactor/envelope"
)

// The events a fuzz input decodes into: one byte picks the event (modulo
// seqOps), the bytes after it are its arguments.
const (
	seqPeerRequest   = iota // id, behaviour, timeout: a request from the peer
	seqReplyKnown           // which, kind: a reply to a request this side sent
	seqReplyRandom          // 16 bytes: a reply to an id never sent (or a string id)
	seqCancelPeer           // id: the peer cancels one of its requests
	seqJunk                 // n, n bytes: whatever they decode to is delivered
	seqRestart              // a failure: the actor restarts (or stops, past its intensity)
	seqStop                 // the owner stops the actor
	seqLocalRequest         // ctx kind, form: this side asks the peer
	seqLocalCancel          // which: this side's caller gives up
	seqDrain                // the owner starts draining
	seqTransportGone        // the transport closes under the actor
	seqOps
)

// Behaviours of the peer's requests (the handler switches on the data).
var seqBehaviours = []string{`"answer"`, `"block"`, `"error"`, `"remote"`, `"panic"`, `"ask"`, `null`, ``}

// seqIDs are the peer's request ids: few, so that they repeat (duplicates,
// cancels of requests in progress, reuse after an end).
var seqIDs = []string{`1`, `2`, `"a"`, `"b"`, `7.5`, `"é"`, `"6e8bc430-9c3a-41d9-9669-0800200c9a66"`, `-3`}

const maxSeqEvents = 256

type seqReader struct {
	b []byte
	i int
}

func (r *seqReader) next() (byte, bool) {
	if r.i >= len(r.b) {
		return 0, false
	}
	r.i++
	return r.b[r.i-1], true
}

func (r *seqReader) arg() byte { b, _ := r.next(); return b }

// localCall is one request of this side and how often it completed.
type localCall struct {
	done     atomic.Int32
	refused  bool // Go returned an error: the callback must never run
	cancel   context.CancelFunc
	blocking bool // made with Request (a goroutine waits), not Go
}

// seqRun is the state of one sequence.
type seqRun struct {
	t       *testing.T
	a       *actor.Actor
	e       *end
	inline  bool
	locals  []*localCall
	waiters sync.WaitGroup // goroutines blocked in Request

	sentIDs  [][]byte       // ids of this side's requests seen on the wire
	peerReqs map[string]int // requests the peer sent, by id
	replies  map[string]int // replies (data or error) this side sent, by id
}

// FuzzFrameSequence: see the top of the file. Its seeds are seqSeeds, also
// kept as files in testdata/fuzz/FuzzFrameSequence (with any crasher found).
func FuzzFrameSequence(f *testing.F) {
	for _, s := range seqSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		runSequence(t, in)
	})
}

func runSequence(t *testing.T, in []byte) {
	base := runtime.NumGoroutine()
	r := &seqReader{b: in}
	flags := r.arg()
	inline := flags&1 != 0
	initial := 1 + int(flags>>1&3)
	restarts := int(flags >> 3 & 3)

	pool, err := actor.NewPool(4, 4)
	if err != nil {
		t.Fatal(err)
	}
	failures := 0 // owned by the actor's loop (the decider runs there)
	opts := []actor.Option{
		actor.WithHandler(seqHandler(inline), pool),
		actor.WithRequestTimeout(time.Hour),
		actor.WithMaxPending(8),
		actor.WithMaxInbound(4),
		actor.WithMailboxCapacity(16),
		actor.WithRestartDecider(func(a *actor.Actor, cause error) error {
			if failures++; failures > restarts {
				return fmt.Errorf("fuzz: %d failures: %w", failures, cause)
			}
			return nil
		}),
	}
	if inline {
		opts = append(opts, actor.WithInlineHandlers())
	}
	cfg, err := actor.NewConfig(opts...)
	if err != nil {
		t.Fatal(err)
	}
	l := newLink()
	e := &end{l: l, out: make(chan []byte, 4096)}
	l.ends = [2]*end{e, {l: l}}
	a, err := actor.New(e, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.self = a
	s := &seqRun{t: t, a: a, e: e, inline: inline, peerReqs: map[string]int{}, replies: map[string]int{}}

	for i := range initial {
		s.localRequest(byte(i), byte(i))
	}
	for n := 0; n < maxSeqEvents; n++ {
		b, ok := r.next()
		if !ok {
			break
		}
		s.collect()
		s.event(b%seqOps, r)
	}

	// End the actor as its owner would, then check.
	switch flags >> 5 & 3 {
	case 0:
		a.Stop(actor.ErrClosed, 1000, "fuzz over")
	case 1:
		_ = e.Close(1006, "gone")
	case 2:
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = a.Shutdown(ctx)
	default:
		a.Stop(fmt.Errorf("%w: fuzz", actor.ErrConnLost), 0, "")
	}
	waitDone(t, a.Done(), "the actor to stop")
	waited := make(chan struct{})
	go func() { s.waiters.Wait(); close(waited) }()
	waitDone(t, waited, "every blocked Request to return")
	pool.Close() // every handler returned: stop cancelled their ctx
	s.collect()

	for i, c := range s.locals {
		switch n := c.done.Load(); {
		case c.refused && n != 0:
			t.Errorf("local request %d: Go refused it, yet its callback ran %d times", i, n)
		case !c.refused && n != 1:
			t.Errorf("local request %d (blocking %v): completed %d times, want exactly once", i, c.blocking, n)
		}
		if c.cancel != nil {
			c.cancel()
		}
	}
	for id, n := range s.replies {
		if n > s.peerReqs[id] {
			t.Errorf("id %s: %d replies to %d requests", id, n, s.peerReqs[id])
		}
	}
	st := cfg.Stats()
	ended := st.Replied.Load() + st.RemoteErrors.Load() + st.TimedOut.Load() + st.Canceled.Load() + st.Failed.Load()
	if req, pend := st.Requests.Load(), st.Pending.Load(); req != ended || pend != 0 {
		t.Errorf("ledger: %d requests, %d ended, %d pending", req, ended, pend)
	}
	if n := st.Inbound.Load(); n != 0 {
		t.Errorf("%d peer requests still in progress after the stop", n)
	}
	if a.Pending() != 0 {
		t.Errorf("Pending() = %d after the stop", a.Pending())
	}
	l.close(1000, "fuzz over") // idempotent: the link's done channel
	// Timer and AfterFunc goroutines may still be on their way out:
	// poll the count under a deadline.
	deadline := time.After(testWait)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
poll:
	for runtime.NumGoroutine() > base {
		select {
		case <-tick.C:
		case <-deadline:
			break poll
		}
	}
	if n := runtime.NumGoroutine(); n > base {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines left, %d before the sequence\n%s", n, base, buf[:runtime.Stack(buf, true)])
	}
}

func (s *seqRun) event(op byte, r *seqReader) {
	switch op {
	case seqPeerRequest:
		id := seqIDs[int(r.arg())%len(seqIDs)]
		beh := seqBehaviours[int(r.arg())%len(seqBehaviours)]
		frame := `{"plugin":"primus-responder","requestId":` + id
		if beh != "" {
			frame += `,"data":` + beh
		}
		if tm := r.arg() % 8; tm >= 6 {
			frame += `,"timeout":` + strconv.Itoa(int(tm)-5) // 1 or 2 ms
		}
		s.deliver(frame + `}`)
	case seqReplyKnown:
		which, kind := r.arg(), r.arg()
		if len(s.sentIDs) == 0 {
			return
		}
		id := string(s.sentIDs[int(which)%len(s.sentIDs)])
		switch kind % 3 {
		case 0:
			s.deliver(`{"plugin":"primus-responder","responseId":` + id + `,"data":{"ok":1}}`)
		case 1:
			s.deliver(`{"plugin":"primus-responder","responseId":` + id + `,"error":{"code":"nope","message":"m"}}`)
		default:
			s.deliver(`{"plugin":"primus-responder","responseId":` + id + `}`)
		}
	case seqReplyRandom:
		var u [16]byte
		for i := range u {
			u[i] = r.arg()
		}
		var id string
		if u[0]&1 == 0 {
			id = strconv.Quote(fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16]))
		} else {
			id = strconv.Itoa(int(u[1]) + 1)
		}
		s.deliver(`{"plugin":"primus-responder","responseId":` + id + `,"data":0}`)
	case seqCancelPeer:
		s.deliver(`{"plugin":"primus-responder","cancelId":` + seqIDs[int(r.arg())%len(seqIDs)] + `}`)
	case seqJunk:
		n := int(r.arg() % 64)
		junk := make([]byte, 0, n)
		for range n {
			junk = append(junk, r.arg())
		}
		env, err := envelope.Decode(junk)
		if err != nil {
			return // the connection reports it; the actor never sees it
		}
		switch env.Kind {
		case envelope.KindRequest, envelope.KindResponse, envelope.KindCancel:
			if env.Kind == envelope.KindRequest {
				s.peerReqs[string(env.ID)]++
			}
			_ = s.a.Deliver(env)
		default:
			if err := s.a.Deliver(env); err == nil {
				s.t.Errorf("Deliver of a %v envelope succeeded", env.Kind)
			}
		}
	case seqRestart:
		s.a.Fail(errors.New("fuzz: a failure"))
	case seqStop:
		s.a.Stop(actor.ErrClosed, 1000, "fuzz stop")
	case seqLocalRequest:
		s.localRequest(r.arg(), r.arg())
	case seqLocalCancel:
		which := r.arg()
		if len(s.locals) > 0 {
			if c := s.locals[int(which)%len(s.locals)]; c.cancel != nil {
				c.cancel()
			}
		}
	case seqDrain:
		_ = s.a.Drain()
	case seqTransportGone:
		_ = s.e.Close(1006, "fuzz: gone")
	}
}

// deliver plays the peer: the frame as the connection would decode it.
func (s *seqRun) deliver(frame string) {
	env, err := envelope.Decode([]byte(frame))
	if err != nil {
		s.t.Fatalf("bad fuzz frame %s: %v", frame, err)
	}
	if env.Kind == envelope.KindRequest {
		s.peerReqs[string(env.ID)]++
	}
	_ = s.a.Deliver(env) // ErrClosed once stopped: dropped, as the connection would
}

// localRequest makes a request of this side: with Go (a callback) or
// Request (a goroutine waits), with a ctx that never ends, can be
// cancelled, or has a 1 ms deadline.
func (s *seqRun) localRequest(ctxKind, form byte) {
	c := &localCall{}
	s.locals = append(s.locals, c)
	ctx := context.Background()
	switch ctxKind % 3 {
	case 1:
		ctx, c.cancel = context.WithCancel(ctx)
	case 2:
		ctx, c.cancel = context.WithTimeout(ctx, time.Millisecond)
	}
	data := []byte(`{"q":` + strconv.Itoa(len(s.locals)) + `}`)
	if form%2 == 1 {
		c.blocking = true
		s.waiters.Go(func() {
			_, _ = s.a.Request(ctx, data)
			c.done.Add(1)
		})
		return
	}
	err := s.a.Go(ctx, data, func(actor.Reply, error) {
		if c.done.Add(1) > 1 {
			s.t.Errorf("a Go callback ran twice")
		}
	})
	c.refused = err != nil
}

// collect reads what the actor wrote so far: the ids of this side's
// requests (for replies) and the replies to the peer.
func (s *seqRun) collect() {
	for {
		select {
		case f := <-s.e.out:
			env, err := envelope.Decode(f)
			if err != nil {
				s.t.Fatalf("the actor wrote an undecodable frame %q: %v", f, err)
			}
			switch env.Kind {
			case envelope.KindRequest:
				s.sentIDs = append(s.sentIDs, bytes.Clone(env.ID))
			case envelope.KindResponse:
				s.replies[string(env.ID)]++
			}
		default:
			return
		}
	}
}

// seqHandler answers by the request's data. On inline handlers "block"
// answers at once (an inline handler must not block).
func seqHandler(inline bool) actor.Handler {
	return func(ctx context.Context, a *actor.Actor, req actor.Incoming) ([]byte, error) {
		switch string(req.Data) {
		case `"block"`:
			if !inline {
				<-ctx.Done()
				return nil, ctx.Err()
			}
		case `"error"`:
			return nil, errors.New("fuzz: handler error")
		case `"remote"`:
			return nil, &actor.RemoteError{Code: "fuzz", Message: "remote"}
		case `"panic"`:
			panic("fuzz: handler panic")
		case `"ask"`:
			r, err := a.Request(ctx, []byte(`"nested"`))
			if err != nil {
				return nil, err
			}
			return r.Data, nil
		}
		return req.Data, nil
	}
}

// seqSeeds are hand-made sequences, one per path worth reaching.
func seqSeeds() [][]byte {
	req := func(id, beh, tm byte) []byte { return []byte{seqPeerRequest, id, beh, tm} }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	junk := func(f string) []byte { return append([]byte{seqJunk, byte(len(f))}, f...) }
	return [][]byte{
		// Replies to each local request, data then error.
		cat([]byte{0x06}, []byte{seqReplyKnown, 0, 0, seqReplyKnown, 1, 1, seqReplyKnown, 2, 2, seqReplyKnown, 3, 0}),
		// Peer requests of every behaviour, a duplicate, cancels.
		cat([]byte{0x00}, req(0, 0, 0), req(1, 1, 0), req(1, 0, 0), req(2, 2, 0), req(3, 3, 0), req(4, 5, 0),
			[]byte{seqCancelPeer, 1, seqReplyKnown, 1, 0}, req(5, 6, 0), req(6, 7, 0), req(7, 1, 7)),
		// A panic restarts; past the intensity the actor stops with 1011.
		cat([]byte{0x08}, req(0, 4, 0), []byte{seqRestart}, req(1, 4, 0), []byte{seqReplyKnown, 0, 0}),
		// Replies to ids never sent, junk, late duplicates.
		cat([]byte{0x22}, []byte{seqReplyRandom, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
			[]byte{seqReplyRandom, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
			junk(`{"plugin":"primus-responder","cancelId":1}`), junk(`{"plugin":"primus-responder","responseId":2}`),
			junk(`{"plugin":"primus-responder","requestId":3,"data":"block"}`), junk(`[1]`), junk("\"\xff\""),
			[]byte{seqReplyKnown, 0, 0, seqReplyKnown, 0, 0}),
		// Local cancels and deadlines racing replies; drain; stop mid-way.
		cat([]byte{0x46}, []byte{seqLocalRequest, 1, 0, seqLocalRequest, 2, 1, seqLocalCancel, 0, seqReplyKnown, 0, 0,
			seqDrain, seqLocalRequest, 0, 0}, req(0, 1, 0), []byte{seqStop, seqLocalRequest, 1, 1}),
		// Inline handlers; the transport goes away mid-sequence.
		cat([]byte{0x01}, req(0, 0, 0), req(1, 1, 0), req(2, 5, 0), []byte{seqTransportGone}, req(3, 0, 0)),
		// A handler asking its own actor, answered by the peer.
		cat([]byte{0x00}, req(0, 5, 0), []byte{seqReplyKnown, 1, 0, seqReplyKnown, 2, 0}),
	}
}
