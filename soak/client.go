package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsactor/wsactor"
)

// fleet is the soak's clients: one slot per connection, each holding a
// supervised wsactor.Client (which reconnects by itself); when a client
// ends for good (closed by the chaos, ended by the server, out of
// reconnects) the sweeper dials a new one into its slot.
//
// Goroutines: the sweeper and the dialers/closers (wg); the load (load):
// closed-loop workers or rate drivers, and request goroutines.
type fleet struct {
	cfg  *Config
	chk  *checker
	pay  *payloads
	led  *ledger  // requests the clients issue
	lat  *latency // client → server echo round trips
	urls []string

	slots []*slot

	stopping atomic.Bool
	wg       sync.WaitGroup
	load     sync.WaitGroup
	sem      chan struct{} // bounds request goroutines in rate mode
	dialSem  chan struct{}

	retiredMu sync.Mutex
	retired   wsactor.Stats // stats of the clients that ended
	nRetired  int

	dials, dialFailures, redials            atomic.Int64
	msgsIn, msgsOut, msgsRefused            atomic.Int64
	skipped                                 atomic.Int64
	clientCloses, askCloses, askRsts        atomic.Int64
	floodsAsked, readerBlocks, floodMsgsIn  atomic.Int64
	msgPanicsAsked, cbPanicsArmed, cbPanics atomic.Int64
	junkConns, junkFrames, junkBadExpected  atomic.Int64
	junkUnverified                          atomic.Int64

	badMu    sync.Mutex
	badKinds map[string]int64
}

// slot is one connection of the fleet. cl and changed are guarded by mu;
// the flags are set by the chaos and read by the handlers.
type slot struct {
	id  int
	url string

	mu      sync.Mutex
	cl      *wsactor.Client
	changed chan struct{} // closed when cl is replaced
	dialing bool

	inflight  atomic.Int32 // rate mode: this slot's requests in flight
	block     atomic.Int64 // ns the message handler blocks at the next flood message (a slow reader)
	panicNext atomic.Bool  // the next Go callback on this slot panics
}

func (s *slot) get() (*wsactor.Client, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cl, s.changed
}

func ended(cl *wsactor.Client) bool {
	select {
	case <-cl.Done():
		return true
	default:
		return false
	}
}

func newFleet(cfg *Config, chk *checker, pay *payloads, urls []string) *fleet {
	f := &fleet{
		cfg:      cfg,
		chk:      chk,
		pay:      pay,
		led:      newLedger("client", chk),
		lat:      newLatency(),
		urls:     urls,
		sem:      make(chan struct{}, 4096),
		dialSem:  make(chan struct{}, cfg.DialConcurrency),
		badKinds: make(map[string]int64),
	}
	f.slots = make([]*slot, cfg.Conns)
	for i := range f.slots {
		f.slots[i] = &slot{id: i, url: urls[i%len(urls)], changed: make(chan struct{})}
	}
	return f
}

// connect dials every slot (DialConcurrency at a time) and reports how many
// connected. progress, if not nil, is told after each dial.
func (f *fleet) connect(ctx context.Context, progress func(done int)) int {
	var wg sync.WaitGroup
	var done, ok atomic.Int64
	for _, s := range f.slots {
		if ctx.Err() != nil {
			break
		}
		f.dialSem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-f.dialSem }()
			if f.dial(ctx, s) == nil {
				ok.Add(1)
			}
			if progress != nil {
				progress(int(done.Add(1)))
			}
		}()
	}
	wg.Wait()
	return int(ok.Load())
}

func (f *fleet) options(s *slot) []wsactor.Option {
	opts := []wsactor.Option{
		wsactor.WithRequestHandler(func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
			return f.handle(ctx, req)
		}),
		wsactor.WithMessageHandler(func(_ *wsactor.Conn, msg json.RawMessage) { f.onMessage(s, msg) }),
		wsactor.WithErrorHook(func(_ *wsactor.Conn, err error) { f.bad(err) }),
		wsactor.WithRequestTimeout(f.cfg.Timeout),
		wsactor.WithMaxMessageSize(f.cfg.maxMessage()),
		wsactor.WithHandlerPool(8, 256),
		wsactor.WithReconnect(wsactor.Backoff{Min: 20 * time.Millisecond, Max: 500 * time.Millisecond, Factor: 2, Jitter: 0.5},
			50, 10*time.Second, 2*time.Second),
		wsactor.WithPingTimeout(0),
	}
	if f.cfg.Ping > 0 {
		opts = append(opts, wsactor.WithPingTimeout(3*f.cfg.Ping))
	}
	return opts
}

// dial connects s and installs the client.
func (f *fleet) dial(ctx context.Context, s *slot) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	f.dials.Add(1)
	cl, err := wsactor.Dial(ctx, s.url, f.options(s)...)
	if err != nil {
		f.dialFailures.Add(1)
		return err
	}
	s.mu.Lock()
	old := s.cl
	s.cl = cl
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	if old != nil {
		f.retire(old)
	}
	f.prime(ctx, s, cl)
	return nil
}

// prime makes a new connection carry each kind of traffic once, both
// ways (a request, a request back from the server's handler, a plain
// message each way), so that its goroutines' stacks and buffers have
// grown to their working size before memory is measured: an idle
// connection that has never seen a message is cheaper than one that has.
func (f *fleet) prime(ctx context.Context, s *slot, cl *wsactor.Client) {
	rng := rand.New(rand.NewPCG(uint64(f.cfg.Seed), uint64(s.id)))
	p := f.pay.get(rng, min(f.pay.max, 4<<10))
	if cl.Send(plainMsg{M: 1, C: checksum(p), P: p}) == nil {
		f.msgsOut.Add(1)
	}
	e := f.led.begin(opPrime, checksum(p), f.cfg.Timeout)
	rctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	resp, err := cl.Request(rctx, reqMsg{Op: opPrime, N: e.nonce, C: e.crc, P: p})
	f.done(e, resp, err)
}

// retire closes cl (it returns once every goroutine of cl has finished, so
// its Stats are final), checks its ledger and adds its Stats to the
// fleet's.
func (f *fleet) retire(cl *wsactor.Client) {
	_ = cl.Close()
	st := cl.Stats()
	checkStats(f.chk, "client", st, true)
	f.retiredMu.Lock()
	addStats(&f.retired, st)
	f.nRetired++
	f.retiredMu.Unlock()
}

// sweep redials the slots whose client ended, until ctx ends.
func (f *fleet) sweep(ctx context.Context) {
	defer f.wg.Done()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, s := range f.slots {
			s.mu.Lock()
			need := !s.dialing && (s.cl == nil || ended(s.cl))
			if need {
				s.dialing = true
			}
			s.mu.Unlock()
			if !need {
				continue
			}
			select {
			case f.dialSem <- struct{}{}:
			case <-ctx.Done():
				s.mu.Lock()
				s.dialing = false
				s.mu.Unlock()
				return
			}
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				defer func() { <-f.dialSem }()
				if !f.stopping.Load() {
					f.redials.Add(1)
					_ = f.dial(ctx, s)
				}
				s.mu.Lock()
				s.dialing = false
				s.mu.Unlock()
			}()
		}
	}
}

// close shuts every client down (in-flight requests may finish within
// grace) and retires it.
func (f *fleet) close(grace time.Duration) {
	// No dial may install a client after its slot was emptied below: the
	// sweeper's ctx has been cancelled; wait for it and its dialers (and
	// the closers and junk connections).
	f.stopping.Store(true)
	f.wg.Wait()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	for _, s := range f.slots {
		s.mu.Lock()
		cl := s.cl
		s.cl = nil
		s.mu.Unlock()
		if cl == nil {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), grace)
			_ = cl.Shutdown(ctx)
			cancel()
			f.retire(cl)
		}()
	}
	wg.Wait()
}

// stats sums the Stats of every client, ended or not.
func (f *fleet) stats() (wsactor.Stats, int) {
	f.retiredMu.Lock()
	st := f.retired
	f.retiredMu.Unlock()
	connected := 0
	for _, s := range f.slots {
		cl, _ := s.get()
		if cl == nil {
			continue
		}
		cs := cl.Stats()
		addStats(&st, cs)
		connected += cs.Conns
	}
	return st, connected
}

func (f *fleet) bad(err error) {
	k := badKind(err)
	f.badMu.Lock()
	f.badKinds[k]++
	f.badMu.Unlock()
}

func (f *fleet) badKindsSnapshot() map[string]int64 {
	f.badMu.Lock()
	defer f.badMu.Unlock()
	return maps.Clone(f.badKinds)
}

// handle answers the server's requests.
func (f *fleet) handle(ctx context.Context, req wsactor.Request) (any, error) {
	return answer(ctx, req, f.chk, "client", nil)
}

// onMessage receives the server's plain messages. At the first message of
// a flood it asked for, it blocks for a while: a slow reader.
func (f *fleet) onMessage(s *slot, msg json.RawMessage) {
	var m plainMsg
	if err := json.Unmarshal(msg, &m); err != nil || m.M == 0 {
		f.chk.fail("corrupt", "client received a plain message that is not a soak message: %.80s", msg)
		return
	}
	if m.Panic {
		panic("soak: chaos: client message handler panic")
	}
	if checksum(m.P) != m.C {
		f.chk.fail("corrupt", "client received a plain message with a payload that fails its checksum")
	}
	if m.Flood {
		f.floodMsgsIn.Add(1)
		if d := s.block.Swap(0); d > 0 {
			f.readerBlocks.Add(1)
			time.Sleep(time.Duration(d)) // the point: this reader stops reading
		}
		return
	}
	f.msgsIn.Add(1)
}

// worker is one closed-loop request stream of slot s: it issues the next
// operation when the previous one ended.
func (f *fleet) worker(ctx context.Context, s *slot, seed uint64) {
	defer f.load.Done()
	rng := rand.New(rand.NewPCG(seed, uint64(s.id)))
	for ctx.Err() == nil {
		cl, changed := s.get()
		if cl == nil || ended(cl) {
			select {
			case <-changed:
			case <-ctx.Done():
			}
			continue
		}
		if !f.op(ctx, s, cl, rng, true) {
			pause(ctx, 10*time.Millisecond) // not connected: do not spin
		}
	}
}

func pause(ctx context.Context, d time.Duration) { sleepCtx(ctx, d) }

// op issues one operation on slot s: a plain message (one in ten) or a
// request, as a blocking Request or a Go callback. With wait it returns
// when the operation ended (closed loop); otherwise at once. It reports
// false when nothing could be sent because the client is not connected.
func (f *fleet) op(ctx context.Context, s *slot, cl *wsactor.Client, rng *rand.Rand, wait bool) bool {
	if wait && rng.IntN(10) == 0 {
		return f.send(cl, rng, false)
	}
	op, ms, tmo, cancelAfter := pickOp(rng, f.cfg.Chaos, true)
	return f.request(ctx, s, cl, rng, op, ms, tmo, cancelAfter, wait)
}

func (f *fleet) send(cl *wsactor.Client, rng *rand.Rand, panicMsg bool) bool {
	p := f.pay.get(rng, f.pay.size(rng))
	if err := cl.Send(plainMsg{M: 1, C: checksum(p), Panic: panicMsg, P: p}); err != nil {
		f.msgsRefused.Add(1)
		return !errors.Is(err, wsactor.ErrNotConnected)
	}
	f.msgsOut.Add(1)
	return true
}

func (f *fleet) request(ctx context.Context, s *slot, cl *wsactor.Client, rng *rand.Rand, op string, ms int, tmo, cancelAfter time.Duration, wait bool) bool {
	p := f.pay.get(rng, f.pay.size(rng))
	crc := checksum(p)
	timeout := f.cfg.Timeout
	if tmo > 0 {
		timeout = tmo
	}
	useGo := tmo == 0 && cancelAfter == 0 && rng.IntN(2) == 0
	if !wait && !useGo {
		select {
		case f.sem <- struct{}{}:
		default:
			if tmo != 0 || cancelAfter != 0 {
				f.skipped.Add(1)
				return true
			}
			useGo = true
		}
	}
	if useGo {
		// Closed loop: wait for a connection (Client.Conn), then Conn.Go.
		// Rate mode: Client.Go, refused with ErrNotConnected between
		// connections.
		goFn := cl.Go
		if wait {
			c, err := cl.Conn(ctx)
			if err != nil || ctx.Err() != nil {
				return false
			}
			goFn = c.Go
		}
		e := f.led.begin(op, crc, timeout)
		m := reqMsg{Op: op, N: e.nonce, C: crc, MS: ms, P: p}
		var done chan struct{}
		if wait {
			done = make(chan struct{}, 1)
		} else {
			s.inflight.Add(1)
		}
		err := goFn(context.Background(), m, func(r wsactor.Response, err error) {
			if _, first := f.done(e, r, err); first && !wait {
				s.inflight.Add(-1)
			}
			if done != nil {
				select {
				case done <- struct{}{}:
				default:
				}
			}
			if s.panicNext.CompareAndSwap(true, false) {
				f.cbPanics.Add(1)
				panic("soak: chaos: Go callback panic")
			}
		})
		if err != nil {
			c := f.led.refuse(e, err)
			if !wait {
				s.inflight.Add(-1)
			}
			return !connGone(c)
		}
		if wait {
			// The library promises the callback by the request timeout;
			// the ledger reports it overdue after that. Stop waiting
			// eventually so that a lost callback cannot hang the run.
			t := time.NewTimer(timeout + 2*f.cfg.Grace)
			select {
			case <-done:
			case <-t.C:
			}
			t.Stop()
		}
		return true
	}
	e := f.led.begin(op, crc, timeout)
	m := reqMsg{Op: op, N: e.nonce, C: crc, MS: ms, P: p}
	run := func() class {
		rctx, cancel := requestCtx(context.Background(), f.cfg.Timeout, tmo, cancelAfter)
		defer cancel()
		resp, err := cl.Request(rctx, m)
		c, _ := f.done(e, resp, err)
		return c
	}
	if wait {
		return !connGone(run())
	}
	s.inflight.Add(1)
	f.load.Add(1)
	go func() {
		defer f.load.Done()
		defer func() { <-f.sem }()
		defer s.inflight.Add(-1)
		_ = run()
	}()
	return true
}

func (f *fleet) done(e *entry, r wsactor.Response, err error) (class, bool) {
	c, first := f.led.end(e, r, err)
	if first && c == clOK && e.op == opEcho {
		f.lat.record(time.Since(e.start))
	}
	return c, first
}

// connGone reports an outcome that says the connection or the client is
// gone: the closed loop pauses before it tries again.
func connGone(c class) bool {
	switch c {
	case clConnLost, clClosed, clShutdown, clServerEnded, clNotConnected, clTooManyRestarts:
		return true
	}
	return false
}

// drive is one rate driver (rate mode): it owns the slots i with
// i%n == d and issues Rate requests and MsgRate messages per slot per
// second, each slot at most Inflight requests at once.
func (f *fleet) drive(ctx context.Context, d, n int, seed uint64) {
	defer f.load.Done()
	rng := rand.New(rand.NewPCG(seed, uint64(d)))
	var mine []*slot
	for i := d; i < len(f.slots); i += n {
		mine = append(mine, f.slots[i])
	}
	if len(mine) == 0 {
		return
	}
	const tick = 10 * time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	var reqs, msgs float64
	next := rng.IntN(len(mine))
	last := time.Now()
	k := float64(len(mine))
	for {
		var now time.Time
		select {
		case <-ctx.Done():
			return
		case now = <-t.C:
		}
		dt := now.Sub(last).Seconds()
		last = now
		reqs = min(reqs+f.cfg.Rate*k*dt, f.cfg.Rate*k+1)
		msgs = min(msgs+f.cfg.MsgRate*k*dt, f.cfg.MsgRate*k+1)
		for ; reqs >= 1; reqs-- {
			s := mine[next%len(mine)]
			next++
			cl, _ := s.get()
			if cl == nil || ended(cl) || int(s.inflight.Load()) >= f.cfg.Inflight {
				f.skipped.Add(1)
				continue
			}
			op, ms, tmo, cancelAfter := pickOp(rng, f.cfg.Chaos, true)
			f.request(ctx, s, cl, rng, op, ms, tmo, cancelAfter, false)
		}
		for ; msgs >= 1; msgs-- {
			s := mine[rng.IntN(len(mine))]
			if cl, _ := s.get(); cl != nil && !ended(cl) {
				f.send(cl, rng, false)
			}
		}
	}
}

// clientChaos are the client side's chaos events.
var clientChaos = []string{"client-close", "ask-close", "ask-rst", "slow-reader", "junk", "msg-panic", "cb-panic"}

// chaos makes one client-side chaos event of the given kind on a random
// slot and reports whether it found a connected one.
func (f *fleet) chaos(ctx context.Context, kind string, rng *rand.Rand) bool {
	s := f.slots[rng.IntN(len(f.slots))]
	cl, _ := s.get()
	if kind == "junk" {
		f.junkConns.Add(1)
		f.wg.Add(1)
		url := f.urls[rng.IntN(len(f.urls))]
		seed := rng.Uint64()
		go func() {
			defer f.wg.Done()
			f.junk(ctx, url, seed)
		}()
		return true
	}
	if cl == nil || ended(cl) {
		return false
	}
	switch kind {
	case "client-close":
		f.clientCloses.Add(1)
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			_ = cl.Close()
		}()
	case "ask-close":
		f.askCloses.Add(1)
		f.request(ctx, s, cl, rng, opClose, 0, 0, 0, false)
	case "ask-rst":
		f.askRsts.Add(1)
		f.request(ctx, s, cl, rng, opRst, 0, 0, 0, false)
	case "slow-reader":
		f.floodsAsked.Add(1)
		s.block.Store(int64(300*time.Millisecond) + rng.Int64N(int64(2200*time.Millisecond)))
		f.request(ctx, s, cl, rng, opFlood, 256, 0, 0, false)
	case "msg-panic":
		f.msgPanicsAsked.Add(1)
		f.send(cl, rng, true)
	case "cb-panic":
		f.cbPanicsArmed.Add(1)
		s.panicNext.Store(true)
	default:
		panic(fmt.Sprintf("soak: unknown chaos %q", kind))
	}
	return true
}
