package main

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsactor/wsactor"
	"github.com/wsactor/wsactor/cluster"
)

// checker collects invariant violations. Every goroutine may report one;
// the first few are printed at once, all are counted by kind.
type checker struct {
	log io.Writer // nil: print nothing

	n      atomic.Int64
	mu     sync.Mutex
	first  []string
	byKind map[string]int64
}

const keepViolations = 200

func newChecker(log io.Writer) *checker {
	return &checker{log: log, byKind: make(map[string]int64)}
}

func (c *checker) fail(kind, format string, args ...any) {
	n := c.n.Add(1)
	msg := kind + ": " + fmt.Sprintf(format, args...)
	c.mu.Lock()
	c.byKind[kind]++
	if len(c.first) < keepViolations {
		c.first = append(c.first, msg)
	}
	c.mu.Unlock()
	if c.log != nil && n <= 20 {
		fmt.Fprintf(c.log, "\nsoak: VIOLATION %s\n", msg)
	}
}

func (c *checker) count() int64 { return c.n.Load() }

func (c *checker) snapshot() ([]string, map[string]int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.first), maps.Clone(c.byKind)
}

// Outcome classes of a request, as the exported outcomes of wsactor say.
type class int

const (
	clOK class = iota
	clRemote
	clTimeout
	clCanceled
	clRestarted
	clTooManyRestarts
	clConnLost
	clShutdown
	clClosed
	clServerEnded
	clNotConnected
	clTooManyPending
	clMailboxFull
	clWriteQueueFull
	clTooLarge
	clNoConn   // -nodes: the key's connection is gone (wsactor.ErrNoConn)
	clNATSDown // -nodes: node 1 was not connected to NATS (cluster.ErrNATSDown)
	clUnknown
	numClasses
)

var classNames = [numClasses]string{
	"ok", "remote_error", "timeout", "canceled", "restarted", "too_many_restarts",
	"conn_lost", "shutdown", "closed", "server_ended", "not_connected",
	"too_many_pending", "mailbox_full", "write_queue_full", "too_large", "no_conn", "nats_down", "UNKNOWN",
}

func (c class) String() string { return classNames[c] }

// classify maps an outcome to its class with errors.Is and errors.As
// against the outcomes wsactor exports; anything else is clUnknown.
func classify(err error) (class, *wsactor.RemoteError) {
	var re *wsactor.RemoteError
	switch {
	case err == nil:
		return clOK, nil
	case errors.As(err, &re):
		return clRemote, re
	case errors.Is(err, wsactor.ErrTimeout):
		return clTimeout, nil
	case errors.Is(err, wsactor.ErrCanceled):
		return clCanceled, nil
	case errors.Is(err, wsactor.ErrRestarted):
		return clRestarted, nil
	case errors.Is(err, wsactor.ErrTooManyRestarts):
		return clTooManyRestarts, nil
	case errors.Is(err, wsactor.ErrConnLost):
		return clConnLost, nil
	case errors.Is(err, wsactor.ErrShutdown):
		return clShutdown, nil
	case errors.Is(err, wsactor.ErrClosed):
		return clClosed, nil
	case errors.Is(err, wsactor.ErrServerEnded):
		return clServerEnded, nil
	case errors.Is(err, wsactor.ErrNotConnected):
		return clNotConnected, nil
	case errors.Is(err, wsactor.ErrTooManyPending):
		return clTooManyPending, nil
	case errors.Is(err, wsactor.ErrMailboxFull):
		return clMailboxFull, nil
	case errors.Is(err, wsactor.ErrWriteQueueFull):
		return clWriteQueueFull, nil
	case errors.Is(err, wsactor.ErrTooLarge):
		return clTooLarge, nil
	case errors.Is(err, wsactor.ErrNoConn):
		return clNoConn, nil
	case errors.Is(err, cluster.ErrNATSDown):
		return clNATSDown, nil
	}
	return clUnknown, nil
}

// allowedCodes are the error reply codes a request of each op may get:
// the library's own (busy, restarted while handled, shutting down, and
// reply_failed: the reply did not fit in the outbound queue of a connection
// that a slow reader or a flood had filled) plus the one the op asks for. Anything else (bad_request for a well-formed request,
// another op's code) means a reply went to the wrong request or the handler
// got the wrong data.
func codeAllowed(op, code string) bool {
	switch code {
	case wsactor.CodeBusy, wsactor.CodeRestarted, wsactor.CodeShutdown, wsactor.CodeReplyFailed:
		return true
	case wsactor.CodePanic:
		return op == opPanic
	case codeSoak:
		return op == opError
	}
	return false
}

// entry is one request in a ledger.
type entry struct {
	nonce    uint64
	crc      uint32
	op       string
	start    time.Time
	deadline time.Time
	state    atomic.Uint32 // stPending → stDone or stRefused, exactly once

	flagged bool // overdue already reported; guarded by the shard's mutex
}

const (
	stPending uint32 = iota
	stDone
	stRefused
)

type ledgerShard struct {
	mu sync.Mutex
	m  map[uint64]*entry
}

// ledger tracks every request one side of the soak issues, by nonce, from
// before it is issued until its outcome. Its methods may be called from any
// goroutine (request callbacks run on actor loops and must be quick: end
// takes one shard mutex and a few atomics).
type ledger struct {
	side string
	chk  *checker
	next atomic.Uint64

	shards [64]ledgerShard

	issued   atomic.Int64
	refused  atomic.Int64
	outcomes [numClasses]atomic.Int64
	refusals [numClasses]atomic.Int64

	mu          sync.Mutex
	remoteCodes map[string]int64
}

func newLedger(side string, chk *checker) *ledger {
	l := &ledger{side: side, chk: chk, remoteCodes: make(map[string]int64)}
	for i := range l.shards {
		l.shards[i].m = make(map[uint64]*entry)
	}
	return l
}

func (l *ledger) shard(n uint64) *ledgerShard { return &l.shards[n%uint64(len(l.shards))] }

// begin records a request about to be issued; it must end within timeout.
func (l *ledger) begin(op string, crc uint32, timeout time.Duration) *entry {
	now := time.Now()
	e := &entry{nonce: l.next.Add(1), crc: crc, op: op, start: now, deadline: now.Add(timeout)}
	sh := l.shard(e.nonce)
	sh.mu.Lock()
	sh.m[e.nonce] = e
	sh.mu.Unlock()
	l.issued.Add(1)
	return e
}

func (l *ledger) remove(e *entry) {
	sh := l.shard(e.nonce)
	sh.mu.Lock()
	delete(sh.m, e.nonce)
	sh.mu.Unlock()
}

// end records the outcome of e and checks it: first outcome, a known
// error, a reply that matches the request. It returns the outcome's class,
// or false when this was not the first outcome.
func (l *ledger) end(e *entry, resp wsactor.Response, err error) (class, bool) {
	if !e.state.CompareAndSwap(stPending, stDone) {
		was := "completed"
		if e.state.Load() == stRefused {
			was = "refused by Go (the callback must never run)"
		}
		l.chk.fail("exactly-once", "%s request %d (%s) got a second outcome %v; it was already %s", l.side, e.nonce, e.op, err, was)
		return clUnknown, false
	}
	l.remove(e)
	c, re := classify(err)
	l.outcomes[c].Add(1)
	switch c {
	case clUnknown:
		l.chk.fail("unknown-error", "%s request %d (%s) ended with an error that is none of the exported outcomes: %v (%T)", l.side, e.nonce, e.op, err, err)
	case clRemote:
		l.mu.Lock()
		l.remoteCodes[re.Code]++
		l.mu.Unlock()
		if !codeAllowed(e.op, re.Code) {
			l.chk.fail("wrong-reply", "%s request %d (%s) got error reply %q (%s), which no %s request may get", l.side, e.nonce, e.op, re.Code, re.Message, e.op)
		}
	case clOK:
		switch e.op {
		case opStall:
			l.chk.fail("wrong-reply", "%s request %d (stall) got a reply, but its handler never replies", l.side, e.nonce)
		default:
			if why := decodeReply(resp.Data, e.nonce, e.crc); why != "" {
				l.chk.fail("wrong-reply", "%s request %d (%s): %s", l.side, e.nonce, e.op, why)
			}
		}
	}
	return c, true
}

// refuse records that Go refused e (nothing was sent, no callback may
// follow). err must be a known outcome too.
func (l *ledger) refuse(e *entry, err error) class {
	if !e.state.CompareAndSwap(stPending, stRefused) {
		l.chk.fail("exactly-once", "%s request %d (%s): Go returned %v after its callback had run", l.side, e.nonce, e.op, err)
		return clUnknown
	}
	l.remove(e)
	c, _ := classify(err)
	l.refused.Add(1)
	l.refusals[c].Add(1)
	if c == clUnknown || c == clOK {
		l.chk.fail("unknown-error", "%s request %d (%s) refused with an error that is none of the exported outcomes: %v (%T)", l.side, e.nonce, e.op, err, err)
	}
	return c
}

// open reports the requests without an outcome yet.
func (l *ledger) open() int {
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// scanOverdue reports each request still without an outcome grace after
// its deadline: the library promises an outcome by the request timeout.
func (l *ledger) scanOverdue(now time.Time, grace time.Duration) {
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		for _, e := range sh.m {
			if !e.flagged && now.Sub(e.deadline) > grace {
				e.flagged = true
				l.chk.fail("overdue", "%s request %d (%s) has had no outcome for %v after its deadline", l.side, e.nonce, e.op, now.Sub(e.deadline).Round(time.Millisecond))
			}
		}
		sh.mu.Unlock()
	}
}

// lost reports every request left without an outcome (at the end of the
// run, when every client and the server have closed) and returns how many.
func (l *ledger) lost() int {
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		for _, e := range sh.m {
			n++
			if n <= 20 {
				l.chk.fail("lost", "%s request %d (%s), issued %v ago, never got an outcome", l.side, e.nonce, e.op, time.Since(e.start).Round(time.Millisecond))
			}
		}
		sh.mu.Unlock()
	}
	if n > 20 {
		l.chk.fail("lost", "%s: %d more requests never got an outcome", l.side, n-20)
	}
	return n
}

// LedgerReport is a ledger's totals.
type LedgerReport struct {
	Issued      int64            `json:"issued"`
	Completed   int64            `json:"completed"`
	Refused     int64            `json:"refused_by_go"`
	Lost        int64            `json:"lost"`
	Outcomes    map[string]int64 `json:"outcomes"`
	Refusals    map[string]int64 `json:"refusals,omitempty"`
	RemoteCodes map[string]int64 `json:"remote_codes,omitempty"`
}

func (l *ledger) report(lost int) LedgerReport {
	r := LedgerReport{
		Issued:   l.issued.Load(),
		Refused:  l.refused.Load(),
		Lost:     int64(lost),
		Outcomes: make(map[string]int64),
		Refusals: make(map[string]int64),
	}
	for c := range numClasses {
		if n := l.outcomes[c].Load(); n > 0 {
			r.Outcomes[c.String()] = n
			r.Completed += n
		}
		if n := l.refusals[c].Load(); n > 0 {
			r.Refusals[c.String()] = n
		}
	}
	l.mu.Lock()
	r.RemoteCodes = maps.Clone(l.remoteCodes)
	l.mu.Unlock()
	return r
}
