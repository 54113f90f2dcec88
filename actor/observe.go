package actor

import (
	"errors"
	"time"
)

// Direction says whose request an observation is about.
type Direction uint8

const (
	// Outbound: a request this side asked ([Actor.Request], [Actor.Go]).
	Outbound Direction = iota
	// Inbound: a request from the peer, answered (or not) by this side.
	Inbound
)

// NumDirections is the number of [Direction] values, for tables indexed by
// them.
const NumDirections = 2

func (d Direction) String() string {
	if d == Inbound {
		return "inbound"
	}
	return "outbound"
}

// Outcome is how a request ended. Each request, either way, gets exactly
// one.
type Outcome uint8

const (
	// OutcomeReply: answered with data.
	OutcomeReply Outcome = iota
	// OutcomeError: answered with an error reply (outbound: the peer's
	// [*RemoteError]; inbound: this side's handler returned an error or
	// panicked).
	OutcomeError
	// OutcomeTimeout: outbound, no reply in time; inbound, the peer's
	// timeout passed and the handler gave up.
	OutcomeTimeout
	// OutcomeCanceled: outbound, the caller's ctx was cancelled; inbound,
	// the peer cancelled.
	OutcomeCanceled
	// OutcomeLost: the connection ended under it (or the reply could not be
	// written).
	OutcomeLost
	// OutcomeRestarted: the actor restarted after a failure (or gave up
	// restarting) while it was in flight.
	OutcomeRestarted
	// OutcomeShutdown: cut off or refused by a shutdown (drain or stop).
	OutcomeShutdown
	// OutcomeRefused: refused before any work: outbound, too many pending
	// or the mailbox full; inbound, busy, no handler or a duplicate id.
	OutcomeRefused
	// OutcomeClosed: this side closed the connection on purpose.
	OutcomeClosed
)

// NumOutcomes is the number of [Outcome] values, for tables indexed by
// them.
const NumOutcomes = 9

var outcomeNames = [NumOutcomes]string{"reply", "error", "timeout", "canceled", "lost", "restarted", "shutdown", "refused", "closed"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unknown"
}

// Observer is told about every request's outcome, once per request and
// direction. See [WithObserver].
type Observer interface {
	// ObserveRequest is called on the actor's loop when a request ends: d
	// is how long it was in flight (outbound: from its registration on the
	// loop; inbound: from its acceptance; 0 for a request refused before
	// either). It must be fast and must not block, allocate much or call
	// into the actor; a panic in it is not caught. An outbound outcome is
	// observed before the caller gets it; an inbound reply just after its
	// write.
	ObserveRequest(dir Direction, outcome Outcome, d time.Duration)
}

// WithObserver reports every request's outcome and duration to o. Without
// it (the default) nothing is measured: no clock is read for it.
func WithObserver(o Observer) Option { return func(c *Config) { c.observer = o } }

// OutcomeOf classifies the error a request ended with (nil: a reply).
func OutcomeOf(err error) Outcome {
	switch {
	case err == nil:
		return OutcomeReply
	case isRemote(err):
		if errors.Is(err, ErrShutdown) {
			return OutcomeShutdown // the peer refused it: shutting down
		}
		return OutcomeError
	case errors.Is(err, ErrTimeout):
		return OutcomeTimeout
	case errors.Is(err, ErrCanceled):
		return OutcomeCanceled
	case errors.Is(err, ErrRestarted):
		return OutcomeRestarted
	case errors.Is(err, ErrShutdown):
		return OutcomeShutdown
	case errors.Is(err, ErrTooManyPending), errors.Is(err, ErrMailboxFull), errors.Is(err, ErrSelfRequest):
		return OutcomeRefused
	case errors.Is(err, ErrClosed):
		return OutcomeClosed
	}
	return OutcomeLost
}

// observeCall reports the end of this side's call c. On the loop.
func (a *Actor) observeCall(c *call, err error) {
	var d time.Duration
	if c.deadline != 0 { // registered: it started at deadline - timeout
		d = time.Duration(now() - (c.deadline - int64(c.timeout)))
	}
	defer a.recoverUserCode() // a panic must not stop the result being delivered
	a.cfg.observer.ObserveRequest(Outbound, a.endOutcome(err), d)
}

// observeTask reports the end of the peer's request t. On the loop.
func (a *Actor) observeTask(t *task, o Outcome) {
	if a.cfg.observer != nil {
		defer a.recoverUserCode() // a panic must not stop the budget being released
		a.cfg.observer.ObserveRequest(Inbound, o, time.Duration(now()-t.start()))
	}
}

// endOutcome is the outcome of what a stop or a restart with err ends.
func (a *Actor) endOutcome(err error) Outcome {
	o := OutcomeOf(err)
	if a.gaveUp && o == OutcomeLost {
		o = OutcomeRestarted
	}
	return o
}

// observeRefused reports a peer request refused before acceptance.
func (a *Actor) observeRefused(o Outcome) {
	if a.cfg.observer != nil {
		defer a.recoverUserCode()
		a.cfg.observer.ObserveRequest(Inbound, o, 0)
	}
}
