// Package supervisor restarts a function when it fails, Erlang style: a
// restart type ([Permanent], [Transient], [Temporary]), exponential
// [Backoff] with real jitter between restarts, and a restart [Intensity]
// (at most N restarts within T, then give up with [ErrTooManyRestarts]
// wrapping the last failure).
//
// It knows nothing of transports or messages. It serves two kinds of user:
//
//   - One long-lived child per goroutine, such as a client connection that
//     must reconnect: build a [Supervisor] with [New] and call
//     [Supervisor.Run], which runs "dial and serve until the connection
//     drops" and restarts it.
//   - Many children that must cost nothing while healthy, such as 100,000
//     server connection actors: no goroutine per child. The actor restarts
//     itself in its own loop and only uses the goroutine-free helpers: it
//     owns an [Intensity] (created when first needed) and a [Backoff] value.
//
// On a failure such an actor does, in its own loop:
//
//	if !in.Allow(time.Now()) {
//		return fmt.Errorf("%w: %w", supervisor.ErrTooManyRestarts, cause)
//	}
//	attempt++
//	wait := b.Delay(attempt, nil) // then schedule the restart as a message
//
// Restarts are never performed by a timer callback or by recursion: a
// [Supervisor] waits on a timer in a select with its ctx and loops.
//
// # Concurrency
//
// [Supervisor.Run] owns the goroutine that calls it: the child, every
// restart, the backoff waits and the [WithOnRestart] callback all run
// there, one after the other; the package starts no goroutine.
// [Supervisor.Next], for a caller that runs the child on a goroutine of its
// own, makes Run's decision on the caller's goroutine, calls the
// WithOnRestart callback there, and starts no goroutine either.
// [Supervisor.Restarts] may be called from any goroutine.
//
// An [Intensity] has a single owner: it is not safe for concurrent use, and
// a connection actor keeps it in its own loop state.
//
// A [Backoff] is a plain value; [Backoff.Delay] is safe to call from any
// goroutine provided the *rand.Rand it is given is not shared (nil uses the
// concurrency-safe package-level source).
package supervisor
