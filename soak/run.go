package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/wsactor/wsactor"
)

// run is one soak: it starts what the mode asks (server, clients or both),
// loads them for cfg.Duration (with chaos if asked), stops everything,
// checks the invariants and returns the report. The error is for a run
// that could not be made (bad config, no listener, no connection); a run
// that broke an invariant returns a Report with Passed false.
func run(ctx context.Context, cfg Config) (Report, error) {
	if err := cfg.check(); err != nil {
		return Report{}, err
	}
	logw := cfg.Log
	if cfg.Quiet {
		logw = nil
	}
	m := cfg.mode()
	rep := Report{Mode: m.String(), Config: cfg, Started: time.Now()}
	g0 := runtime.NumGoroutine()
	rss0 := rssBytes()
	chk := newChecker(logw)
	pay := newPayloads(cfg.Seed, cfg.PayloadMin, cfg.PayloadMax)
	prog := newProgress(logw, cfg.Quiet)
	defer prog.finish()

	var srv *serverSide
	var fl *fleet
	urls := cfg.Client
	if m != modeClient {
		var err error
		if srv, err = newServerSide(&cfg, chk, pay, cfg.listenAddrs()); err != nil {
			return rep, err
		}
		urls = srv.urls
		rep.URLs = srv.urls
		if cfg.OnListen != nil {
			cfg.OnListen(srv.urls)
		}
	}
	rssServer := settledRSS()

	// Connect the clients.
	sweepCtx, stopSweep := context.WithCancel(context.Background())
	defer stopSweep()
	if m != modeServer {
		fl = newFleet(&cfg, chk, pay, urls)
		prog.start(int64(cfg.Conns), "dialing")
		t0 := time.Now()
		rep.Connected = fl.connect(ctx, func(n int) {
			if n%100 == 0 || n == cfg.Conns {
				prog.set(int64(n), "dialing")
			}
		})
		prog.finish()
		rep.DialSeconds = time.Since(t0).Seconds()
		if rep.Connected == 0 {
			fl.close(time.Second)
			if srv != nil {
				_ = srv.shutdown(context.Background())
			}
			return rep, errNoConnection(urls)
		}
		fl.wg.Add(1)
		go fl.sweep(sweepCtx)
	}
	rep.Memory.RSSStartMiB = float64(rss0) / mib
	if fl != nil {
		rssConnected := settledRSS()
		rep.Memory.RSSConnectedMiB = float64(rssConnected) / mib
		rep.Memory.PerConnKiB = float64(rssConnected-rssServer) / 1024 / float64(rep.Connected)
	}
	rt := &rssTracker{warmup: cfg.Warmup, every: max(20*time.Second, cfg.Warmup)}
	if fl != nil {
		rt.peak = rep.Connected
	}

	// The load.
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	if m != modeServer || cfg.Duration > 0 {
		loadCtx, stopLoad = context.WithTimeout(ctx, cfg.Duration)
		defer stopLoad()
	}
	seed := uint64(cfg.Seed)
	if fl != nil {
		if cfg.Rate > 0 {
			n := min(2*runtime.GOMAXPROCS(0), len(fl.slots))
			for d := range n {
				fl.load.Add(1)
				go fl.drive(loadCtx, d, n, seed)
			}
		} else {
			for _, s := range fl.slots {
				for k := range cfg.Inflight {
					fl.load.Add(1)
					go fl.worker(loadCtx, s, seed+uint64(k)<<32)
				}
			}
		}
	}
	if srv != nil && (cfg.ServerRate > 0 || cfg.MsgRate > 0) {
		srv.load.Add(1)
		go srv.drive(loadCtx, cfg.Seed)
	}
	chaosCtx, stopChaos := context.WithCancel(loadCtx)
	defer stopChaos()
	chaosDone := make(chan map[string]int64, 1)
	if cfg.Chaos {
		go func() { chaosDone <- chaosLoop(chaosCtx, &cfg, srv, fl) }()
	} else {
		chaosDone <- nil
	}

	// Sample every second until the load ends.
	smp := newSampler(&cfg, chk, srv, fl)
	total := int64(cfg.Duration / time.Second)
	if total <= 0 {
		total = -1
	}
	prog.start(total, "soak")
	tick := time.NewTicker(time.Second)
	loadStart := time.Now()
	var idleSince time.Time
	hadConns := false
sampling:
	for {
		select {
		case <-loadCtx.Done():
			break sampling
		case <-tick.C:
		}
		s := smp.sample(time.Since(loadStart))
		rep.Samples = append(rep.Samples, s)
		rt.tick(time.Now(), s.Conns)
		prog.set(int64(s.T), status(s))
		if m == modeServer && cfg.ExitIdle > 0 {
			switch {
			case s.Conns > 0:
				hadConns, idleSince = true, time.Time{}
			case hadConns && idleSince.IsZero():
				idleSince = time.Now()
			case hadConns && time.Since(idleSince) >= cfg.ExitIdle:
				break sampling
			}
		}
	}
	tick.Stop()
	if fl != nil && ctx.Err() == nil {
		rt.measure() // the end of the load, all clients still there
	}
	stopLoad()
	prog.finish()
	rep.LoadSeconds = time.Since(loadStart).Seconds()

	// Stop: let the requests in flight end, then close the clients and
	// the server.
	stopChaos()
	rep.Chaos.Events = <-chaosDone
	drainWait := cfg.Timeout + 2*cfg.Grace
	if !waitGroupWithin(loadWaiters(srv, fl), drainWait) {
		chk.fail("stuck", "the load goroutines did not return within %v of the end of the load", drainWait)
	}
	waitLedgers(drainWait, srv, fl)
	if fl != nil {
		stopSweep()
		fl.close(cfg.Grace)
	}
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), cfg.Grace)
		_ = srv.shutdown(sctx) // an error: requests were cut off at the deadline, which the ledgers judge
		cancel()
	}

	// The invariants at the end.
	final(&rep, chk, srv, fl)
	rep.Goroutines = waitGoroutines(g0, cfg.GoroutineWait)
	if rep.Goroutines.Final > g0 {
		chk.fail("goroutines", "%d goroutines after the run, %d before (waited %v)", rep.Goroutines.Final, g0, cfg.GoroutineWait)
	}
	for _, s := range rep.Samples {
		rep.Goroutines.Peak = max(rep.Goroutines.Peak, s.Goroutines)
	}
	rt.check(&rep.Memory, chk, &cfg)
	for _, s := range rep.Samples {
		rep.Memory.RSSMaxMiB = max(rep.Memory.RSSMaxMiB, s.RSSMiB)
	}
	rep.Memory.RSSEndMiB = float64(rssBytes()) / mib
	if m == modeServer && rt.warmConns > 0 {
		rep.Memory.PerConnKiB = (rt.warm - float64(rssServer)/mib) * 1024 / float64(rt.warmConns)
	}

	rep.Violations = chk.count()
	rep.ViolationList, rep.ViolationKinds = chk.snapshot()
	rep.Passed = rep.Violations == 0
	if err := writeOut(&rep, &cfg); err != nil && logw != nil {
		_, _ = logw.Write([]byte("soak: writing the report: " + err.Error() + "\n"))
	}
	return rep, nil
}

type noConnection string

func (e noConnection) Error() string { return "soak: no client could connect to " + string(e) }

func errNoConnection(urls []string) error { return noConnection(strings.Join(urls, ", ")) }

// chaosLoop makes ChaosRate disruptive chaos events per second, cycling
// through the kinds this process can make, until ctx ends. It returns the
// events made by kind.
func chaosLoop(ctx context.Context, cfg *Config, srv *serverSide, fl *fleet) map[string]int64 {
	var kinds []string
	if fl != nil {
		kinds = append(kinds, clientChaos...)
	}
	if srv != nil {
		kinds = append(kinds, serverChaos...)
		if srv.ns.Load() != nil {
			kinds = append(kinds, nodeChaos...)
		}
	}
	events := make(map[string]int64)
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0xc4a05))
	t := time.NewTicker(time.Duration(float64(time.Second) / cfg.ChaosRate))
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return events
		case <-t.C:
		}
		kind := kinds[i%len(kinds)]
		var ok bool
		if slices.Contains(serverChaos, kind) || slices.Contains(nodeChaos, kind) {
			ok = srv.chaos(kind, rng)
		} else {
			ok = fl.chaos(ctx, kind, rng)
		}
		if ok {
			events[kind]++
		} else {
			events["missed"]++
		}
	}
}

type waiter interface{ Wait() }

func loadWaiters(srv *serverSide, fl *fleet) []waiter {
	var ws []waiter
	if srv != nil {
		ws = append(ws, &srv.load)
	}
	if fl != nil {
		ws = append(ws, &fl.load)
	}
	return ws
}

// waitGroupWithin waits for every waiter, at most d.
func waitGroupWithin(ws []waiter, d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		for _, w := range ws {
			w.Wait()
		}
		close(done)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// waitLedgers waits (at most d) until every request issued has ended: the
// Go callbacks of the rate mode and of the server's load.
func waitLedgers(d time.Duration, srv *serverSide, fl *fleet) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		n := 0
		if srv != nil {
			n += srv.led.open()
			if ns := srv.ns.Load(); ns != nil {
				n += ns.xled.open()
			}
		}
		if fl != nil {
			n += fl.led.open()
		}
		if n == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond) // polling a count: no event to wait on
	}
}

// sampler makes the per-second samples; it is used by the run's goroutine
// only.
type sampler struct {
	cfg        *Config
	chk        *checker
	srv        *serverSide
	fl         *fleet
	last       time.Duration
	prevClient int64
	prevOK     int64
	prevServer int64
}

func newSampler(cfg *Config, chk *checker, srv *serverSide, fl *fleet) *sampler {
	return &sampler{cfg: cfg, chk: chk, srv: srv, fl: fl}
}

func completed(l *ledger) (all, ok int64) {
	for c := range numClasses {
		all += l.outcomes[c].Load()
	}
	return all, l.outcomes[clOK].Load()
}

func (sm *sampler) sample(t time.Duration) Sample {
	dt := (t - sm.last).Seconds()
	sm.last = t
	now := time.Now()
	s := Sample{
		T:          t.Seconds(),
		RSSMiB:     float64(rssBytes()) / mib,
		HeapMiB:    heapMiB(),
		Goroutines: runtime.NumGoroutine(),
		OpenFiles:  openFiles(),
	}
	if sm.fl != nil {
		sm.fl.led.scanOverdue(now, sm.cfg.Grace)
		all, ok := completed(sm.fl.led)
		s.ClientRate = float64(all-sm.prevClient) / dt
		s.ClientOK = float64(ok-sm.prevOK) / dt
		sm.prevClient, sm.prevOK = all, ok
		h := sm.fl.lat.interval()
		s.P50, s.P99 = float64(h.ValueAtQuantile(50))/1000, float64(h.ValueAtQuantile(99))/1000
		st, connected := sm.fl.stats()
		s.Restarts += st.Restarts
		s.Reconnects = st.Reconnects + sm.fl.redials.Load()
		s.Conns = connected
		s.LedgerOpen += sm.fl.led.open()
		liveCheck(sm.chk, "client", st)
	}
	if sm.srv != nil {
		sm.srv.led.scanOverdue(now, sm.cfg.Grace)
		all, _ := completed(sm.srv.led)
		s.ServerRate = float64(all-sm.prevServer) / dt
		sm.prevServer = all
		h := sm.srv.lat.interval()
		s.SrvP50, s.SrvP99 = float64(h.ValueAtQuantile(50))/1000, float64(h.ValueAtQuantile(99))/1000
		st := sm.srv.stats()
		s.Restarts += st.Restarts
		s.Conns = st.Conns
		s.LedgerOpen += sm.srv.led.open()
		if ns := sm.srv.ns.Load(); ns != nil {
			ns.xled.scanOverdue(now, sm.cfg.Grace)
			s.LedgerOpen += ns.xled.open()
		}
		liveCheck(sm.chk, "server", st)
	}
	s.Violations = sm.chk.count()
	return s
}

// liveCheck checks what must hold at any time in a Stats snapshot taken
// while requests run (the exact ledger is checked at the end, when nothing
// moves: the counters of a live snapshot are read one after another).
func liveCheck(chk *checker, side string, st wsactor.Stats) {
	if st.Pending < 0 || st.InProgress < 0 {
		chk.fail("stats", "%s Stats has Pending %d, InProgress %d: below zero", side, st.Pending, st.InProgress)
	}
}

// checkStats checks a Stats snapshot of a server or client that has
// stopped: the ledger balances and nothing is pending or in progress.
func checkStats(chk *checker, side string, st wsactor.Stats, stopped bool) {
	sum := st.Replied + st.RemoteErrors + st.TimedOut + st.Canceled + st.Failed + st.Pending
	if st.Requests != sum {
		chk.fail("stats-ledger", "%s: Requests %d != Replied %d + RemoteErrors %d + TimedOut %d + Canceled %d + Failed %d + Pending %d = %d",
			side, st.Requests, st.Replied, st.RemoteErrors, st.TimedOut, st.Canceled, st.Failed, st.Pending, sum)
	}
	if stopped && (st.Pending != 0 || st.InProgress != 0 || st.Conns != 0) {
		chk.fail("pending", "%s after shutdown: Pending %d, InProgress %d, Conns %d; want 0", side, st.Pending, st.InProgress, st.Conns)
	}
}

func addStats(dst *wsactor.Stats, s wsactor.Stats) {
	dst.Conns += s.Conns
	dst.Accepted += s.Accepted
	dst.Refused += s.Refused
	dst.Closed += s.Closed
	dst.Requests += s.Requests
	dst.Replied += s.Replied
	dst.RemoteErrors += s.RemoteErrors
	dst.TimedOut += s.TimedOut
	dst.Canceled += s.Canceled
	dst.Failed += s.Failed
	dst.Pending += s.Pending
	dst.LateReplies += s.LateReplies
	dst.UnknownReplies += s.UnknownReplies
	dst.Received += s.Received
	dst.Answered += s.Answered
	dst.AnsweredError += s.AnsweredError
	dst.Busy += s.Busy
	dst.CancelsReceived += s.CancelsReceived
	dst.DuplicateRequests += s.DuplicateRequests
	dst.InProgress += s.InProgress
	dst.MessagesIn += s.MessagesIn
	dst.MessagesOut += s.MessagesOut
	dst.BadInput += s.BadInput
	dst.HandlerPanics += s.HandlerPanics
	dst.Restarts += s.Restarts
	dst.Reconnects += s.Reconnects
}

// final checks the invariants once everything has stopped and fills in the
// sides of the report.
func final(rep *Report, chk *checker, srv *serverSide, fl *fleet) {
	if srv != nil {
		st := srv.stats()
		checkStats(chk, "server", st, true)
		srv.lat.interval() // what was recorded after the last sample
		lost := srv.led.lost()
		lr := srv.led.report(lost)
		if ns := srv.ns.Load(); ns != nil {
			rep.Cluster = ns.report()
			crossCheckNodes(chk, lr, rep.Cluster, st)
		} else {
			crossCheck(chk, "server", lr, st)
		}
		rep.Server = &SideReport{
			Ledger:      lr,
			Latency:     percentiles(srv.lat.total),
			Stats:       st,
			BadInput:    srv.badKindsSnapshot(),
			MsgsOut:     srv.msgsOut.Load(),
			MsgsIn:      srv.msgsIn.Load(),
			MsgsRefused: srv.msgsRefused.Load(),

			HeartbeatDrops: srv.heartbeatDrops.Load(),
		}
		rep.Server.PerSec = float64(lr.Completed) / rep.LoadSeconds
		rep.Server.OKPerSec = float64(lr.Outcomes["ok"]) / rep.LoadSeconds
		rep.Chaos.ServerResets = srv.rsts.Load()
		rep.Chaos.ServerEnds = srv.ends.Load()
		rep.Chaos.Floods = srv.floods.Load()
		rep.Chaos.FloodSent = srv.floodSent.Load()
		rep.Chaos.FloodQueueFull = srv.floodQueueFull.Load()
		rep.Chaos.ServerPanicAsks = srv.panicsAsked.Load()
		rep.Chaos.ServerMsgPanics = srv.msgPanics.Load()
	}
	for _, s := range rep.Samples {
		rep.PeakConns = max(rep.PeakConns, s.Conns)
	}
	if fl != nil {
		st, _ := fl.stats()
		checkStats(chk, "clients (sum)", st, true)
		fl.lat.interval()
		lost := fl.led.lost()
		lr := fl.led.report(lost)
		crossCheck(chk, "clients", lr, st)
		rep.Client = &SideReport{
			Ledger:      lr,
			Latency:     percentiles(fl.lat.total),
			Stats:       st,
			BadInput:    fl.badKindsSnapshot(),
			MsgsOut:     fl.msgsOut.Load(),
			MsgsIn:      fl.msgsIn.Load(),
			MsgsRefused: fl.msgsRefused.Load(),
			Clients:     fl.nRetired,
			Dials:       fl.dials.Load(),
			DialFails:   fl.dialFailures.Load(),
			Redials:     fl.redials.Load(),
			Skipped:     fl.skipped.Load(),
		}
		rep.Client.PerSec = float64(lr.Completed) / rep.LoadSeconds
		rep.Client.OKPerSec = float64(lr.Outcomes["ok"]) / rep.LoadSeconds
		c := &rep.Chaos
		c.ClientCloses = fl.clientCloses.Load()
		c.AskCloses = fl.askCloses.Load()
		c.AskResets = fl.askRsts.Load()
		c.FloodsAsked = fl.floodsAsked.Load()
		c.ReaderBlocks = fl.readerBlocks.Load()
		c.FloodReceived = fl.floodMsgsIn.Load()
		c.MsgPanicsAsked = fl.msgPanicsAsked.Load()
		c.CallbackPanicsArmed = fl.cbPanicsArmed.Load()
		c.CallbackPanics = fl.cbPanics.Load()
		c.JunkConns = fl.junkConns.Load()
		c.JunkFrames = fl.junkFrames.Load()
		c.JunkUnverified = fl.junkUnverified.Load()
	}
	c := &rep.Chaos
	c.ConnsKilled = c.ClientCloses + c.ServerEnds + c.ServerResets
	if rep.Server != nil {
		c.Restarts += rep.Server.Stats.Restarts
		c.BadInput += rep.Server.Stats.BadInput
		c.Timeouts += rep.Server.Ledger.Outcomes["timeout"]
	}
	if rep.Client != nil {
		c.Restarts += rep.Client.Stats.Restarts
		c.BadInput += rep.Client.Stats.BadInput
		c.Timeouts += rep.Client.Ledger.Outcomes["timeout"]
	}
	if srv != nil && fl != nil {
		// Messages: none arrives that was not sent (the sender counts a
		// Send that returned nil; a message may be lost with its
		// connection, never duplicated).
		if in, out := srv.msgsIn.Load(), fl.msgsOut.Load(); in > out {
			chk.fail("messages", "the server received %d plain messages, the clients sent %d", in, out)
		}
		if in, out := fl.msgsIn.Load(), srv.msgsOut.Load(); in > out {
			chk.fail("messages", "the clients received %d plain messages, the server sent %d", in, out)
		}
		if in, out := fl.floodMsgsIn.Load(), srv.floodSent.Load(); in > out {
			chk.fail("messages", "the clients received %d flood messages, the server sent %d", in, out)
		}
		// Bad input: every junk frame the server read was reported.
		if want := fl.junkBadExpected.Load(); rep.Server.Stats.BadInput < want {
			chk.fail("bad-input", "the server reported %d bad inputs, the junk connections sent at least %d it read", rep.Server.Stats.BadInput, want)
		}
	}
}

// crossCheck compares a side's own ledger with the library's Stats: each
// reply and error reply the library counted reached exactly one caller.
func crossCheck(chk *checker, side string, lr LedgerReport, st wsactor.Stats) {
	if ok := lr.Outcomes["ok"]; ok != st.Replied {
		chk.fail("stats-ledger", "%s: %d replies reached callers, Stats.Replied is %d", side, ok, st.Replied)
	}
	if re := lr.Outcomes["remote_error"]; re != st.RemoteErrors {
		chk.fail("stats-ledger", "%s: %d error replies reached callers, Stats.RemoteErrors is %d", side, re, st.RemoteErrors)
	}
}

// GoroutineReport is the goroutine count before, at the peak of and after
// the run.
type GoroutineReport struct {
	Baseline int     `json:"baseline"`
	Peak     int     `json:"peak"`
	Final    int     `json:"final"`
	WaitedS  float64 `json:"waited_s"`
	Dump     string  `json:"-"`
}

// waitGoroutines waits up to d for the goroutine count to return to base
// (idle handler workers exit after a second).
func waitGoroutines(base int, d time.Duration) GoroutineReport {
	start := time.Now()
	for {
		n := runtime.NumGoroutine()
		if n <= base || time.Since(start) >= d {
			r := GoroutineReport{Baseline: base, Final: n, WaitedS: time.Since(start).Seconds()}
			if n > base {
				var b strings.Builder
				_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
				r.Dump = b.String()
			}
			return r
		}
		time.Sleep(50 * time.Millisecond) // polling a count: no event to wait on
	}
}

// settledRSS returns the memory to the OS and reads the RSS: what the
// process holds, without the garbage collector's sawtooth. Two collections:
// the first moves sync.Pool contents to the victim cache, the second (in
// FreeOSMemory, which then scavenges) frees them.
func settledRSS() int64 {
	runtime.GC()
	debug.FreeOSMemory()
	return rssBytes()
}

// rssTracker measures the settled RSS while the connection count is
// steady (at least 90 % of its peak): first Warmup after it became steady
// (the warm RSS), then every so often and at the end of the load (the last
// RSS). A rise of the peak by more than 10 % starts over. It is used by the
// run's goroutine only.
type rssTracker struct {
	warmup, every time.Duration

	peak      int
	steady    bool
	next      time.Time
	warm      float64 // MiB; 0 = not measured yet
	warmConns int
	last      float64
	conns     int

	warmDetail, lastDetail string
}

func (t *rssTracker) tick(now time.Time, conns int) {
	t.conns = conns
	switch {
	case conns > t.peak+t.peak/10 || (t.peak == 0 && conns > 0):
		t.peak, t.steady, t.next, t.warm, t.last = conns, true, now.Add(t.warmup), 0, 0
	case conns < t.peak-t.peak/10:
		t.steady = false
	case !t.steady && conns > 0:
		t.steady, t.next = true, now.Add(t.warmup)
	}
	if t.steady && !now.Before(t.next) {
		t.measure()
		t.next = now.Add(t.every)
	}
}

func (t *rssTracker) measure() {
	if !t.steady && t.peak > 0 {
		return
	}
	v := float64(settledRSS()) / mib
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mem := fmt.Sprintf("rss %.1f MiB: heap in use %.1f, stacks %.1f, heap idle not released %.1f, other %.1f MiB; %d goroutines",
		v, float64(ms.HeapInuse)/mib, float64(ms.StackInuse)/mib, float64(ms.HeapIdle-ms.HeapReleased)/mib,
		float64(ms.MSpanInuse+ms.MCacheInuse+ms.BuckHashSys+ms.GCSys+ms.OtherSys)/mib, runtime.NumGoroutine())
	if t.warm == 0 {
		t.warm, t.warmConns, t.warmDetail = v, t.conns, mem
		return
	}
	t.last, t.lastDetail = v, mem
}

// check compares the last settled RSS with the warm one.
func (t *rssTracker) check(mem *MemoryReport, chk *checker, cfg *Config) {
	mem.RSSWarmMiB, mem.RSSLastMiB = t.warm, t.last
	mem.WarmDetail, mem.LastDetail = t.warmDetail, t.lastDetail
	if t.warm == 0 || t.last == 0 {
		mem.RSSCheck = "skipped: the load was too short to measure after the warm-up"
		return
	}
	mem.GrowthMiB = t.last - t.warm
	mem.AllowedMiB = max(cfg.RSSSlackMiB, cfg.RSSGrowth*t.warm)
	mem.RSSCheck = "ok"
	if mem.GrowthMiB > mem.AllowedMiB {
		mem.RSSCheck = "failed"
		chk.fail("rss", "settled RSS grew %.1f MiB after the warm-up (%.1f → %.1f MiB), more than the %.1f MiB allowed",
			mem.GrowthMiB, t.warm, t.last, mem.AllowedMiB)
	}
}
