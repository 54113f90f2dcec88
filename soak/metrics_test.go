package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/wsactor/wsactor"
)

// TestMetricsEndpoint: the soak server serves /metrics next to /primus,
// and what a client did there shows in it: the connection, echoes
// answered, errors asked for, a panic's restart, a broken frame.
func TestMetricsEndpoint(t *testing.T) {
	cfg := defaultConfig()
	cfg.Quiet = true
	chk := newChecker(io.Discard)
	s, err := newServerSide(&cfg, chk, newPayloads(1, 8, 64), []string{"127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	defer func() {
		if err := s.shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}()
	cl, err := wsactor.Dial(ctx, s.urls[0])
	if err != nil {
		t.Fatal(err)
	}
	const echoes, fails = 5, 2
	n := uint64(0)
	ask := func(op string) error {
		n++
		p := "payload"
		_, err := cl.Request(ctx, reqMsg{Op: op, N: n, C: checksum(p), P: p})
		return err
	}
	for range echoes {
		if err := ask(opEcho); err != nil {
			t.Fatal(err)
		}
	}
	for range fails {
		if err := ask(opError); !errors.As(err, new(*wsactor.RemoteError)) {
			t.Fatalf("error op: %v", err)
		}
	}
	if err := ask(opPanic); err == nil {
		t.Fatal("panic op: no error")
	}
	if err := ask(opEcho); err != nil {
		t.Fatal(err)
	}
	// A barrier: the server observes an inbound reply just after writing
	// it, and its own request's outcome before its caller returns; the
	// connection's actor handles one after the other. (The client has no
	// handler: its answer is an error reply.)
	conns := s.srv.Conns()
	if len(conns) != 1 {
		t.Fatalf("%d server conns", len(conns))
	}
	if _, err := conns[0].Request(ctx, "barrier"); !errors.As(err, new(*wsactor.RemoteError)) {
		t.Fatalf("barrier: %v", err)
	}
	defer func() { _ = cl.Close() }()
	if chk.n.Load() != 0 {
		t.Fatalf("soak checker: %d violations", chk.n.Load())
	}

	url := "http://" + strings.TrimSuffix(strings.TrimPrefix(s.urls[0], "ws://"), "/primus") + "/metrics"
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		name   string
		labels map[string]string
		v      float64
	}{
		{"wsactor_connections_accepted_total", nil, 1},
		{"wsactor_requests_total", map[string]string{"direction": "inbound", "outcome": "reply"}, echoes + 1},
		{"wsactor_requests_total", map[string]string{"direction": "inbound", "outcome": "error"}, fails + 1},
		{"wsactor_actor_restarts_total", nil, 1},
		{"wsactor_handler_panics_total", nil, 1},
		{"wsactor_bad_input_total", map[string]string{"kind": "panic"}, 1},
		{"wsactor_requests_total", map[string]string{"direction": "outbound", "outcome": "reply"}, 0},
		{"wsactor_requests_total", map[string]string{"direction": "outbound", "outcome": "error"}, 1},
	} {
		got, ok := sample(fams[w.name], w.labels)
		if !ok || got != w.v {
			t.Errorf("%s%v = %v (found %v), want %v", w.name, w.labels, got, ok, w.v)
		}
	}
}

// sample is the value of f's sample with exactly these labels.
func sample(f *dto.MetricFamily, labels map[string]string) (float64, bool) {
	if f == nil {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		match := true
		for _, l := range m.GetLabel() {
			if labels[l.GetName()] != l.GetValue() {
				match = false
			}
		}
		if !match {
			continue
		}
		if m.Counter != nil {
			return m.Counter.GetValue(), true
		}
		return m.Gauge.GetValue(), true
	}
	return 0, false
}
