package actor_test

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wsactor/wsactor/actor"
	"github.com/wsactor/wsactor/envelope"
)

// An in-memory transport for actor tests: two ends joined by a link. Write
// queues a copy of the frame; a pump goroutine per end decodes it and
// delivers it to the other end's actor, or to a channel when the test plays
// the peer itself.

var errLinkClosed = errors.New("memlink: closed")
var errLinkFull = errors.New("memlink: full")

type closeInfo struct {
	code   uint16
	reason string
}

type link struct {
	done   chan struct{}
	once   sync.Once
	closed chan closeInfo // the first Close, buffered(1)
	wg     sync.WaitGroup
	ends   [2]*end
}

type end struct {
	l    *link
	out  chan []byte
	self *actor.Actor
	peer *actor.Actor // nil: frames go to raw
	raw  chan []byte
	gate func(f []byte) // if set, called by Write first (on the writer's goroutine)
}

func (e *end) Write(f []byte) error {
	if e.gate != nil {
		e.gate(f)
	}
	select {
	case <-e.l.done:
		return errLinkClosed
	default:
	}
	select {
	case e.out <- bytes.Clone(f):
		return nil
	default:
		return errLinkFull
	}
}

func (e *end) Close(code uint16, reason string) error {
	e.l.close(code, reason)
	return nil
}

func (l *link) close(code uint16, reason string) {
	l.once.Do(func() {
		l.closed <- closeInfo{code, reason}
		close(l.done)
		cause := fmt.Errorf("%w: memlink closed %d %s", actor.ErrConnLost, code, reason)
		for _, e := range l.ends {
			if e.self != nil {
				e.self.Stop(cause, 0, "")
			}
		}
	})
}

func (l *link) pump(e *end) {
	for {
		select {
		case <-l.done:
			return
		case f := <-e.out:
			if e.peer == nil {
				select {
				case e.raw <- f:
				case <-l.done:
					return
				}
				continue
			}
			env, err := envelope.Decode(f)
			if err != nil {
				panic(fmt.Sprintf("actor wrote an undecodable frame %q: %v", f, err))
			}
			_ = e.peer.Deliver(env)
		}
	}
}

// pair is two actors on one link, or one actor and a raw peer (b == nil).
type pair struct {
	a, b *actor.Actor
	l    *link
	pool *actor.Pool
	rawA chan []byte // frames a wrote, when b is nil
}

func newLink() *link {
	return &link{done: make(chan struct{}), closed: make(chan closeInfo, 1)}
}

// newPair joins two actors built from cfgA and cfgB (cfgB nil: the test is
// the peer of a and reads a's frames from rawA).
func newPair(t testing.TB, cfgA, cfgB *actor.Config) *pair {
	t.Helper()
	l := newLink()
	ea := &end{l: l, out: make(chan []byte, 1<<16)}
	eb := &end{l: l, out: make(chan []byte, 1<<16)}
	l.ends = [2]*end{ea, eb}
	p := &pair{l: l}
	var err error
	if p.a, err = actor.New(ea, cfgA, "a"); err != nil {
		t.Fatal(err)
	}
	ea.self = p.a
	if cfgB != nil {
		if p.b, err = actor.New(eb, cfgB, "b"); err != nil {
			t.Fatal(err)
		}
		eb.self = p.b
		ea.peer, eb.peer = p.b, p.a
	} else {
		ea.raw = make(chan []byte, 1<<16)
		p.rawA = ea.raw
	}
	l.wg.Go(func() { l.pump(ea) })
	l.wg.Go(func() { l.pump(eb) })
	t.Cleanup(func() {
		l.close(1000, "test over")
		l.wg.Wait()
		waitDone(t, p.a.Done(), "actor a done")
		if p.b != nil {
			waitDone(t, p.b.Done(), "actor b done")
		}
	})
	return p
}

// gateA makes a's transport call fn with every frame a writes, on the
// writing goroutine, before queuing it. Set it before a writes anything.
func (p *pair) gateA(fn func(f []byte)) { p.l.ends[0].gate = fn }

// inject plays the peer: it delivers a raw frame to a.
func (p *pair) inject(t testing.TB, frame string) {
	t.Helper()
	env, err := envelope.Decode([]byte(frame))
	if err != nil {
		t.Fatalf("bad test frame %q: %v", frame, err)
	}
	if err := p.a.Deliver(env); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
}

// nextFrame reads the next frame a wrote (raw peer only).
func (p *pair) nextFrame(t testing.TB) envelope.Envelope {
	t.Helper()
	select {
	case f := <-p.rawA:
		env, err := envelope.Decode(f)
		if err != nil {
			t.Fatalf("actor wrote %q: %v", f, err)
		}
		return env
	case <-time.After(testWait):
		t.Fatal("no frame from the actor")
	}
	panic("unreachable")
}

const testWait = 10 * time.Second

func waitDone(t testing.TB, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(testWait):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func newPool(t testing.TB, workers, queue int) *actor.Pool {
	t.Helper()
	p, err := actor.NewPool(workers, queue)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func newConfig(t testing.TB, opts ...actor.Option) *actor.Config {
	t.Helper()
	c, err := actor.NewConfig(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
