package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// The live status line fits an 80-column terminal in every state (dialing,
// the soak with a known duration, a server-only run's spinner), even with
// the largest figures a run can show; a wider line wraps, and each redraw
// then scrolls the terminal instead of overwriting the line.
func TestProgressFits80Columns(t *testing.T) {
	huge := Sample{T: 35999, ClientRate: 1.5e6, ClientOK: 1.5e6, ServerRate: 999999, P50: 12345.6, P99: 30000,
		SrvP50: 12345.6, SrvP99: 30000, RSSMiB: 123456, HeapMiB: 99999, Goroutines: 1234567, Conns: 100000,
		Restarts: 123456, Reconnects: 123456, Violations: 123456}
	typical := Sample{T: 12, ClientRate: 12345, ServerRate: 1234, P50: 1.2, P99: 4.1, RSSMiB: 512, Goroutines: 1234,
		Conns: 200, Restarts: 5}
	for _, tc := range []struct {
		name string
		max  int64
		n    int64
		what string
		desc string
	}{
		{"dialing", 100000, 99900, "dialing", "dialing"},
		{"soak start", 600, 0, "soak", "soak"},
		{"soak typical", 600, 12, "soak", status(typical)},
		{"soak huge", 36000, 35999, "soak", status(huge)},
		{"server only typical", -1, 12, "soak", status(typical)},
		{"server only huge", -1, 1234567, "soak", status(huge)},
		{"one long field", 600, 300, "soak", strings.Repeat("x", 200)},
		{"one long field, server only", -1, 300, "soak", strings.Repeat("x", 200)},
		{"one long field, dialing", 100000, 99900, "dialing", strings.Repeat("x", 200)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			p := &progress{w: &buf, every: time.Nanosecond} // draw every set
			p.start(tc.max, tc.what)
			p.set(tc.n, tc.desc)
			p.finish()
			if buf.Len() == 0 {
				t.Fatal("nothing was drawn")
			}
			widest := ""
			for _, line := range strings.Split(buf.String(), "\r") {
				if w := utf8.RuneCountInString(line); w > 80 {
					t.Errorf("%d columns: %q", w, line)
				}
				if strings.TrimSpace(line) != "" && len(line) > len(widest) {
					widest = line
				}
			}
			t.Logf("%q", widest)
		})
	}
	// The line keeps what matters most when it must drop fields.
	if s := status(huge); !strings.HasPrefix(s, "conns 100000") {
		t.Errorf("status(huge) = %q, want it to start with the connections", s)
	}
}
