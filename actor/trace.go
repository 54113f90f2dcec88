package actor

import (
	"context"

	"github.com/wsactor/wsactor/envelope"
)

// traceKey is the context key of a traceparent.
type traceKey struct{}

// WithTraceparent returns a copy of ctx that carries tp, a W3C Trace
// Context traceparent ("00-<trace-id>-<parent-id>-<flags>"): a request made
// with it ([Actor.Request], [Actor.Go]) sends tp in its envelope's
// "traceparent" (a wsactor extension, which a stock primus-responder peer
// ignores). A tp that is not valid (see [envelope.Traceparent]), "" among
// them, carries none: it hides what ctx carried, so that requests made with
// the result send no traceparent. A later version's tp is cut to the 55
// bytes every version shares.
func WithTraceparent(ctx context.Context, tp string) context.Context {
	tp, _ = envelope.Traceparent(tp)
	return context.WithValue(ctx, traceKey{}, tp)
}

// Traceparent returns the traceparent ctx carries, and whether it carries
// one: set by [WithTraceparent], or, in a [Handler]'s ctx (and contexts
// made from it), the one the peer sent with the request. A handler's
// requests pass it on unless they are made with another.
func Traceparent(ctx context.Context) (string, bool) {
	tp, _ := ctx.Value(traceKey{}).(string)
	return tp, tp != ""
}
