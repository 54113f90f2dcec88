package wsactor_test

// OpenTelemetry appears only in this test file: the library has no tracing
// dependency (TestNoTracingDependency).

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/wsactor/wsactor"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// otelPropagation plugs OpenTelemetry's W3C propagator into wsactor: the
// span current in a request's ctx is sent as its traceparent, and a
// handler's ctx gets the peer's span as its remote parent.
func otelPropagation() wsactor.Option {
	prop := propagation.TraceContext{}
	return wsactor.WithTracePropagation(
		func(ctx context.Context) string {
			c := propagation.MapCarrier{}
			prop.Inject(ctx, c)
			return c["traceparent"]
		},
		func(ctx context.Context, tp string) context.Context {
			return prop.Extract(ctx, propagation.MapCarrier{"traceparent": tp})
		})
}

// One trace spans a Go client's request, the server's handler, and the
// handler's nested request back to the client, with spans recorded by
// OpenTelemetry's SDK in memory.
func ExampleWithTracePropagation() {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	tracer := tp.Tracer("example")

	srv, _ := wsactor.NewServer(otelPropagation(), wsactor.WithRequestHandler(
		func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
			ctx, span := tracer.Start(ctx, "server: handle", trace.WithSpanKind(trace.SpanKindServer))
			defer span.End()
			// A nested request back to the client, a child of this span.
			r, err := c.Request(ctx, "who are you?")
			if err != nil {
				return nil, err
			}
			return "hello, " + strings.Trim(string(r.Data), `"`), nil
		}))
	hs := httptest.NewServer(http.Handler(srv))
	defer hs.Close()
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := wsactor.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/primus", otelPropagation(),
		wsactor.WithRequestHandler(func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
			_, span := tracer.Start(ctx, "client: answer", trace.WithSpanKind(trace.SpanKindServer))
			defer span.End()
			return "gopher", nil
		}))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cl.Close()

	rctx, span := tracer.Start(ctx, "client: ask", trace.WithSpanKind(trace.SpanKindClient))
	r, err := cl.Request(rctx, "hi")
	span.End()
	fmt.Println(string(r.Data), err)

	// Every span, with its parent, in the order they started.
	spans := exp.GetSpans()
	byID := map[trace.SpanID]string{}
	for _, s := range spans {
		byID[s.SpanContext.SpanID()] = s.Name
	}
	for _, name := range []string{"client: ask", "server: handle", "client: answer"} {
		for _, s := range spans {
			if s.Name != name {
				continue
			}
			parent := byID[s.Parent.SpanID()]
			if !s.Parent.IsValid() {
				parent = "(root)"
			}
			fmt.Printf("%-15s parent %-15s same trace %v remote parent %v\n", s.Name, parent,
				s.SpanContext.TraceID() == spans[0].SpanContext.TraceID(), s.Parent.IsRemote())
		}
	}
	// Output:
	// "hello, gopher" <nil>
	// client: ask     parent (root)          same trace true remote parent false
	// server: handle  parent client: ask     same trace true remote parent true
	// client: answer  parent server: handle  same trace true remote parent true
}
