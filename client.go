package wsactor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/wsactor/wsactor/actor"
	"github.com/wsactor/wsactor/conn"
	"github.com/wsactor/wsactor/supervisor"
)

// Client is a supervised connection to a Primus + primus-responder server (a
// wsactor [Server] or a Node Primus server). When the connection drops it
// reconnects with exponential backoff and jitter, within a restart window
// ([WithReconnect]); each connection is a new session (a new [Conn]), and
// requests pending on a lost connection fail with [ErrConnLost]: they are
// not resent, since the peer may have acted on them. It does not reconnect
// after the server ended the connection on purpose ("primus::server::close").
//
// All methods may be called concurrently. The zero value is not usable: use
// [Dial].
type Client struct {
	url   string
	sh    *shared
	sup   *supervisor.Supervisor
	stats counters

	ctx    context.Context // cancelled by Close and Shutdown
	cancel context.CancelFunc
	wg     sync.WaitGroup // the read goroutine (serve)
	done   chan struct{}

	// Owned by the read goroutine.
	runStart time.Time // when the current run (dial, serve) began

	mu      sync.Mutex
	cur     *Conn         // nil between connections
	ready   chan struct{} // closed when cur is set; replaced when it is cleared
	closed  bool
	err     error // why the client ended
	closing bool  // Close/Shutdown asked: end without reconnecting
	abort   bool  // Close asked (or Shutdown's ctx ended): do not wait on the server
}

// Dial connects to url (ws://host:port/primus) and returns a client that
// keeps the connection up. The first connection is made within ctx; Dial
// fails if it cannot be made. Handlers and hooks are options, so that they
// are in place before the server's first frame.
func Dial(ctx context.Context, url string, opts ...Option) (*Client, error) {
	o, err := buildOptions(clientOnly, opts)
	if err != nil {
		return nil, err
	}
	cl := &Client{url: url, ready: make(chan struct{}), done: make(chan struct{})}
	// The supervisor validates its options: before any network I/O. Its
	// child is not called: the read goroutine (serve) runs each connection
	// and asks the supervisor what to do after it (Supervisor.Next).
	cl.sup, err = supervisor.New(cl.run,
		supervisor.WithRestart(supervisor.Transient),
		supervisor.WithIntensity(o.reconnectMax, o.reconnectWithin),
		supervisor.WithBackoff(o.backoff),
		supervisor.WithResetAfter(o.resetAfter),
		supervisor.WithOnRestart(func(supervisor.RestartEvent) { cl.stats.reconnects.Add(1) }),
	)
	if err != nil {
		return nil, fmt.Errorf("%w: WithReconnect: %w", ErrInvalidOption, err)
	}
	if cl.sh, err = newShared(o, &cl.stats); err != nil {
		return nil, public(err)
	}
	cl.runStart = time.Now()
	first, err := cl.connect(ctx)
	if err != nil {
		cl.sh.closePool()
		return nil, public(err)
	}
	cl.cur = first
	close(cl.ready)
	cl.ctx, cl.cancel = context.WithCancel(context.Background())
	cl.wg.Add(1)
	go cl.serve(first)
	return cl, nil
}

// serve is the client's read goroutine: it runs each connection's read loop
// in turn, and between them the reconnection (next). Like the server's read
// goroutines (Server.serve) it is started with a plain go statement and
// keeps a small frame, so that an idle client's goroutine parked in its
// socket read is short enough for the runtime to shrink its stack back to
// 4 KiB at GC (a read loop under the supervisor's Run and conc's panic
// catchers, as it was, kept every idle client at 8 KiB). Panics need no
// wrapper: conn recovers every Handler call (see Server.serve).
func (cl *Client) serve(c *Conn) {
	for c != nil {
		c.wc.Serve()
		c = cl.next(c)
	}
	cl.wg.Done()
}

// next runs after c's read loop ended, on the read goroutine: it asks the
// supervisor whether to reconnect, waits the backoff and dials, as often
// as the supervisor allows; it returns the new connection, or nil when the
// client has ended (then Done is closed).
//
//go:noinline
func (cl *Client) next(c *Conn) *Conn {
	cause := cl.ended(c)
	end := time.Now()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if cl.ctx.Err() != nil {
			cl.finish(nil) // a cancelled ctx is a normal stop
			return nil
		}
		delay, stop, err := cl.sup.Next(cl.runStart, end, cause)
		if stop {
			cl.finish(err)
			return nil
		}
		if delay > 0 {
			if timer == nil {
				timer = time.NewTimer(delay)
			} else {
				timer.Reset(delay)
			}
			select {
			case <-cl.ctx.Done():
				cl.finish(nil)
				return nil
			case <-timer.C:
			}
		}
		cl.runStart = time.Now()
		if c, cause = cl.reconnect(); cause == nil {
			return c
		}
		end = time.Now()
	}
}

// finish ends the client once no connection is left: err is why
// (nil: closed, or ended by the server).
func (cl *Client) finish(err error) {
	cl.mu.Lock()
	cl.closed = true
	if cl.err == nil {
		switch {
		case err != nil:
			cl.err = public(err)
		case cl.closing:
			cl.err = ErrClosed
		default:
			cl.err = ErrServerEnded
		}
	}
	if cl.cur == nil {
		close(cl.ready) // wake waiters: they see closed
	}
	cl.cur = nil
	cl.mu.Unlock()
	close(cl.done)
}

// connect dials once, within ctx and the dial timeout, and makes the Conn;
// its read loop is not started.
func (cl *Client) connect(ctx context.Context) (*Conn, error) {
	c := newConn(cl.sh)
	d := cl.sh.o.dialTimeout
	dctx, cancel := context.WithTimeoutCause(ctx, d, dialTimeout{d})
	defer cancel() // after a handshake, the Conn no longer depends on dctx
	wc, _, err := conn.Dial(dctx, cl.url, cl.sh.o.header, (*connEvents)(c), cl.sh.connOptions(conn.Client))
	if err != nil {
		return nil, fmt.Errorf("%w to %s: %w", ErrDial, cl.url, err)
	}
	if err := c.start(wc); err != nil {
		_ = wc.Close(1011, "")
		wc.Serve()
		return nil, err
	}
	cl.stats.accepted.Add(1)
	return c, nil
}

// dialTimeout is the cause of a connection attempt cut by
// [WithDialTimeout]; it matches [context.DeadlineExceeded].
type dialTimeout struct{ d time.Duration }

func (e dialTimeout) Error() string {
	return "no connection within the dial timeout (" + e.d.String() + ")"
}
func (dialTimeout) Is(target error) bool { return target == context.DeadlineExceeded }
func (dialTimeout) Timeout() bool        { return true }

// run is the supervisor's child, which it never calls (the read goroutine
// runs each connection itself, and asks the supervisor with
// Supervisor.Next): supervisor.New needs one.
func (cl *Client) run(context.Context) error { return nil }

// reconnect dials a new connection and makes it current.
func (cl *Client) reconnect() (*Conn, error) {
	c, err := cl.connect(cl.ctx)
	if err != nil {
		return nil, err
	}
	cl.mu.Lock()
	cl.cur = c
	close(cl.ready)
	closing, abort := cl.closing, cl.abort
	cl.mu.Unlock()
	if closing {
		// Close or Shutdown came while c was being made: they found no
		// connection to end, and c must not outlive them. (Once c is
		// current, they end it themselves: Close and Shutdown stop the
		// current connection, and so does Shutdown's abort.)
		c.a.Stop(ErrClosed, 1000, "client closing")
		if abort {
			<-c.a.Done()
			_ = c.wc.Abort()
		}
	}
	return c, nil
}

// ended is what the read goroutine does once c's read loop has ended: c is
// no longer current. It returns why, as the supervisor's cause: nil when
// on purpose (the server ended it, or the client is closing): no
// reconnect.
func (cl *Client) ended(c *Conn) error {
	cl.mu.Lock()
	cl.cur = nil
	cl.ready = make(chan struct{})
	closing := cl.closing
	cl.mu.Unlock()

	err := c.Err() // ErrConnLost wrapping why, unless on purpose
	if errors.Is(err, ErrServerEnded) || closing || cl.ctx.Err() != nil {
		return nil // on purpose: no reconnect
	}
	if !errors.Is(err, ErrConnLost) {
		err = fmt.Errorf("%w: %w", ErrConnLost, err)
	}
	return err
}

// Conn returns the current connection, waiting for one while the client
// reconnects, until ctx ends or the client ends.
func (cl *Client) Conn(ctx context.Context) (*Conn, error) {
	for {
		cl.mu.Lock()
		c, ready, closed, err := cl.cur, cl.ready, cl.closed, cl.err
		cl.mu.Unlock()
		if closed {
			return nil, err
		}
		if c != nil {
			return c, nil
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, public(actor.CtxError(ctx))
		}
	}
}

// current returns the connection now, or an error without waiting.
func (cl *Client) current() (*Conn, error) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.closed {
		return nil, cl.err
	}
	if cl.cur == nil {
		return nil, ErrNotConnected
	}
	return cl.cur, nil
}

// Request asks the server and waits for the reply, like [Conn.Request]. While
// the client is reconnecting it first waits for the connection, for as long
// as ctx allows (give ctx a deadline), then the request timeout applies.
func (cl *Client) Request(ctx context.Context, v any) (Response, error) {
	c, err := cl.Conn(ctx)
	if err != nil {
		return Response{}, err
	}
	return c.Request(ctx, v)
}

// Go is [Conn.Go] on the current connection; it fails with
// [ErrNotConnected] while the client is reconnecting.
func (cl *Client) Go(ctx context.Context, v any, cb func(Response, error)) error {
	c, err := cl.current()
	if err != nil {
		return err
	}
	return c.Go(ctx, v, cb)
}

// Send is [Conn.Send] on the current connection; it fails with
// [ErrNotConnected] while the client is reconnecting.
func (cl *Client) Send(v any) error {
	c, err := cl.current()
	if err != nil {
		return err
	}
	return c.Send(v)
}

// Done is closed when the client has ended: closed, shut down, ended by the
// server, or out of reconnects. Err says which.
func (cl *Client) Done() <-chan struct{} { return cl.done }

// Err returns why the client ended, or nil while it runs.
func (cl *Client) Err() error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if !cl.closed {
		return nil
	}
	return cl.err
}

// Shutdown drains the current connection (no new requests either way; those
// in flight may finish until ctx ends), closes it and stops reconnecting.
// When ctx ends first, the requests still in flight fail with
// [ErrShutdown] and the connection is aborted (a server that does not read
// no longer holds it for the write timeout). It returns when every
// goroutine of the client has finished: nil, or an error matching ctx's if
// ctx ended first. It returns by ctx's deadline even when a request handler
// ignores its (canceled) ctx or a hook blocks: that code is then left
// running, and the client's last goroutine ends when it returns; Close waits
// for it.
func (cl *Client) Shutdown(ctx context.Context) error {
	cl.mu.Lock()
	cl.closing = true
	c := cl.cur
	cl.mu.Unlock()
	var err error
	if c != nil {
		select {
		case <-c.a.Drain():
		case <-ctx.Done():
			err = ctx.Err()
		}
		c.a.Stop(ErrShutdown, 1000, "client shutting down")
	}
	cl.cancel()
	if err == nil {
		select {
		case <-cl.done:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	if err != nil {
		cl.abortCurrent(ErrShutdown, "client shutting down")
	}
	// Handlers and hooks still running are user code: waited for while
	// ctx lasts (server.go).
	err = waitOrLeave(ctx, err, false, func() {
		cl.wg.Wait()
		cl.sh.closePool()
	})
	if err != nil {
		// Left before the read goroutine ended (it may be in a hook): the
		// client has ended all the same.
		cl.mu.Lock()
		if cl.err == nil {
			cl.closed, cl.err = true, ErrClosed
		}
		cl.mu.Unlock()
	}
	return public(err)
}

// Close closes the connection at once (pending requests fail with
// [ErrClosed]; a server that reads still gets the close frame, one that
// does not is not waited for) and stops reconnecting. It returns when every
// goroutine of the client has finished.
func (cl *Client) Close() error {
	cl.mu.Lock()
	cl.closing, cl.abort = true, true
	cl.mu.Unlock()
	cl.cancel()
	cl.abortCurrent(ErrClosed, "client closing")
	cl.wg.Wait()
	cl.sh.closePool()
	return nil
}

// abortCurrent stops the current connection's actor with cause and
// hurries its close (see conn.Conn.Abort): it is not waited for on a
// stalled server.
func (cl *Client) abortCurrent(cause error, reason string) {
	cl.mu.Lock()
	cl.abort = true
	c := cl.cur
	cl.mu.Unlock()
	if c == nil {
		return
	}
	c.a.Stop(cause, 1000, reason) // nothing if it stopped already
	<-c.a.Done()                  // quick: the loop never blocks; it has closed the conn
	_ = c.wc.Abort()
}

// Stats returns a snapshot of the client's counters.
func (cl *Client) Stats() Stats {
	n := 0
	if c, _ := cl.current(); c != nil {
		n = 1
	}
	return snapshot(&cl.stats, cl.sh.cfg.Stats(), cl.sh.pool, n)
}
