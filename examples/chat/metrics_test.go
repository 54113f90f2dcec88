package main

import (
	"context"
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestMetricsEndpoint: the chat serves /metrics, and the requests its
// clients made show there, by outcome.
func TestMetricsEndpoint(t *testing.T) {
	app, hs, url := startChat(t, defaultConfig())
	alice, ap := joinClient(t, url, false)
	bob, _ := joinClient(t, url, false)
	if err := ask(t, alice, map[string]string{"op": "join", "name": "alice"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := ask(t, bob, map[string]string{"op": "join", "name": "bob"}, nil); err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"one", "two"} {
		if err := ask(t, alice, map[string]string{"op": "send", "text": text}, nil); err != nil {
			t.Fatal(err)
		}
	}
	wantCode(t, ask(t, bob, map[string]string{"op": "dance"}, nil), "unknown_op")
	waitPush(t, ap, "alice's second message", func(p push) bool { return p.Type == "message" && p.Message.Text == "two" })
	// A barrier: a server request to each client is observed before its
	// caller returns, after the replies the connection's actor wrote
	// before it.
	for _, c := range app.srv.Conns() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		_, err := c.Request(ctx, map[string]string{"op": "here?"})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}

	resp, err := http.Get(hs.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("Content-Type %q", ct)
	}
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
		{"wsactor_connections_accepted_total", nil, 2},
		{"wsactor_connections_open", nil, 2},
		{"wsactor_requests_total", map[string]string{"direction": "inbound", "outcome": "reply"}, 4}, // 2 joins, 2 sends
		{"wsactor_requests_total", map[string]string{"direction": "inbound", "outcome": "error"}, 1},
		{"wsactor_handler_panics_total", nil, 0},
	} {
		got, ok := sample(fams[w.name], w.labels)
		if !ok || got != w.v {
			t.Errorf("%s%v = %v (found %v), want %v", w.name, w.labels, got, ok, w.v)
		}
	}
	// Each message was pushed to both members by Broadcast (joins push
	// the users list too).
	if got, _ := sample(fams["wsactor_broadcast_deliveries_total"], nil); got < 4 {
		t.Errorf("wsactor_broadcast_deliveries_total = %v, want >= 4", got)
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
