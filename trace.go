package wsactor

import (
	"context"
	"fmt"

	"github.com/sourcegraph/conc/panics"
	"github.com/wsactor/wsactor/actor"
	"github.com/wsactor/wsactor/envelope"
)

// WithTraceparent returns a copy of ctx that carries tp, a W3C Trace
// Context traceparent ("00-<trace-id>-<parent-id>-<flags>",
// https://www.w3.org/TR/trace-context/): requests made with it
// ([Conn.Request], [Conn.Go], [Client.Request], [Server.RequestKey], room
// requests, and the cluster package's) send tp in the envelope's
// "traceparent" extension key, so that one request can be followed across
// peers and nodes. A stock primus-responder peer ignores the key.
//
// A tp that is not valid (wrong length, upper-case hex, an all-zero id,
// version ff, "" …) carries none: it hides what ctx carried, so requests
// made with the result send no traceparent. A later version's tp is cut to
// the 55 bytes all versions share.
func WithTraceparent(ctx context.Context, tp string) context.Context {
	return actor.WithTraceparent(ctx, tp)
}

// Traceparent returns the traceparent ctx carries and whether it carries
// one: set by [WithTraceparent], or, in a [RequestHandler]'s ctx (and
// contexts made from it), the one the peer sent with the request (an
// invalid one was ignored). A handler's own requests made with its ctx pass
// it on, so a chain of requests stays in one trace even when nothing else
// is set up.
func Traceparent(ctx context.Context) (string, bool) {
	return actor.Traceparent(ctx)
}

// WithTracePropagation plugs a tracer's propagation in, so that spans
// follow requests without code at each call; it keeps the library free of
// any tracing dependency. With OpenTelemetry, inject and extract wrap
// propagation.TraceContext{}.Inject and .Extract on a carrier holding the
// one "traceparent" key (see ExampleWithTracePropagation).
//
// inject (may be nil) is called with the ctx of each request this side
// makes, on the goroutine making it, before anything is sent: the
// traceparent it returns (of the span current in ctx) is sent; when it
// returns "" or an invalid one, the request sends [Traceparent](ctx) if
// any. It must be quick and must not call into this connection. A panic in
// it is a failure of the connection's actor, like a panic in a handler: the
// error hook is told ([ErrHandlerPanic]) and the actor restarts (requests
// pending then fail with [ErrRestarted]); the request is sent without a
// traceparent from inject.
//
// extract (may be nil) is called on the handler's goroutine, just before
// the [RequestHandler], when the peer sent a valid traceparent: the handler
// gets the ctx it returns (which must be made from the ctx given, e.g. with
// context.WithValue, or the handler loses its cancellation; a nil result
// keeps ctx). A panic in it is a panic of the handler.
//
// Without this option the cost of tracing is nil: a request without a
// traceparent is encoded, sent and decoded as before.
func WithTracePropagation(inject func(ctx context.Context) string, extract func(ctx context.Context, traceparent string) context.Context) Option {
	return Option{"WithTracePropagation", both, func(o *options) {
		o.traceInject, o.traceExtract = inject, extract
		o.traceSet = true
	}}
}

// checkTrace is buildOptions' check of WithTracePropagation.
func checkTrace(o *options) error {
	if o.traceSet && o.traceInject == nil && o.traceExtract == nil {
		return fmt.Errorf("%w: WithTracePropagation needs inject or extract (both are nil)", ErrInvalidOption)
	}
	return nil
}

// traceCtx is ctx for a request this side makes on c: with the
// traceparent of the inject hook when it gives one. A panic in the hook is
// a failure of c's actor, as in any user code the library runs (it
// restarts, and the request fails with ErrRestarted); the request is made
// without that traceparent.
func (sh *shared) traceCtx(c *Conn, ctx context.Context) context.Context {
	if sh.o.traceInject == nil {
		return ctx
	}
	tp, err := sh.inject(ctx)
	if err != nil {
		c.a.Fail(err)
		return ctx
	}
	if tp != "" {
		if _, ok := envelope.Traceparent(tp); ok {
			return actor.WithTraceparent(ctx, tp)
		}
	}
	return ctx
}

// inject runs the inject hook, catching a panic.
func (sh *shared) inject(ctx context.Context) (tp string, err error) {
	defer func() {
		if r := recover(); r != nil {
			rp := panics.NewRecovered(1, r)
			err = fmt.Errorf("%w: WithTracePropagation's inject: %w", ErrHandlerPanic, actor.NewPanicError(&rp))
		}
	}()
	return sh.o.traceInject(ctx), nil
}

// handlerCtx is ctx for the request handler: through the extract hook when
// the peer sent a traceparent.
func (sh *shared) handlerCtx(ctx context.Context) context.Context {
	if sh.o.traceExtract == nil {
		return ctx
	}
	tp, ok := actor.Traceparent(ctx)
	if !ok {
		return ctx
	}
	if next := sh.o.traceExtract(ctx, tp); next != nil {
		return next
	}
	return ctx
}

// OutgoingTraceparent returns the traceparent a request made by s with
// ctx sends (see [WithTracePropagation] and [WithTraceparent]), for code
// that carries requests further by other means: the cluster package puts
// it in the NATS headers of a request to another node.
//
// A panic in the inject hook is not caught here: it reaches the caller.
func (s *Server) OutgoingTraceparent(ctx context.Context) (string, bool) {
	if s.sh.o.traceInject != nil {
		if tp := s.sh.o.traceInject(ctx); tp != "" {
			if tp, ok := envelope.Traceparent(tp); ok {
				return tp, true
			}
		}
	}
	return actor.Traceparent(ctx)
}
