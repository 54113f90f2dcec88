package main

import (
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"gonum.org/v1/plot/vg"
)

// The plots' legends are beside the panels, never over the curves, and
// connections have a panel (and so a scale) of their own, not the
// goroutines' scale on which a few thousand connections are a flat line.
func TestPlotLayout(t *testing.T) {
	samples := make([]Sample, 30)
	for i := range samples {
		x := float64(i + 1)
		samples[i] = Sample{T: x, ClientRate: 20000 + 500*x, ClientOK: 19000 + 500*x, ServerRate: 20, P50: 1, P99: 9,
			SrvP50: 2, SrvP99: 12, RSSMiB: 200, HeapMiB: 120, Goroutines: 5000, Conns: 200, Restarts: int64(i), Reconnects: int64(i / 2)}
	}
	within := func(in, out vg.Rectangle) bool {
		return in.Min.X >= out.Min.X && in.Min.Y >= out.Min.Y && in.Max.X <= out.Max.X && in.Max.Y <= out.Max.Y
	}
	overlap := func(a, b vg.Rectangle) bool {
		return a.Min.X < b.Max.X && b.Min.X < a.Max.X && a.Min.Y < b.Max.Y && b.Min.Y < a.Max.Y
	}
	for _, ch := range charts {
		_, lay, err := ch.render(samples)
		if err != nil {
			t.Fatalf("%s: %v", ch.file, err)
		}
		img := vg.Rectangle{Max: lay.size}
		for i, pn := range ch.panels {
			leg := lay.legends[i]
			if len(pn.lines) == 1 {
				if leg != (vg.Rectangle{}) {
					t.Errorf("%s panel %q: a legend for one line (its axis label names it)", ch.file, pn.label)
				}
				continue
			}
			if leg.Size().X <= 0 || leg.Size().Y <= 0 {
				t.Errorf("%s panel %q: %d lines and no legend", ch.file, pn.label, len(pn.lines))
				continue
			}
			if !within(leg, img) {
				t.Errorf("%s panel %q: legend %v outside the image %v", ch.file, pn.label, leg, img)
			}
			for j, data := range lay.data {
				if overlap(leg, data) {
					t.Errorf("%s panel %q: legend %v is over the curves of panel %d %v", ch.file, pn.label, leg, j, data)
				}
			}
		}
	}

	panelOf := map[string]string{}
	for _, ch := range charts {
		for i, pn := range ch.panels {
			for _, l := range pn.lines {
				panelOf[l.name] = ch.file + "#" + string(rune('0'+i))
			}
		}
	}
	if panelOf["connections"] == "" || panelOf["connections"] == panelOf["goroutines"] {
		t.Errorf("connections are drawn at %q, goroutines at %q: they need panels of their own", panelOf["connections"], panelOf["goroutines"])
	}

	// And the files are PNGs.
	dir := t.TempDir()
	if err := plots(samples, dir); err != nil {
		t.Fatal(err)
	}
	for _, ch := range charts {
		f, err := os.Open(filepath.Join(dir, ch.file))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := png.Decode(f); err != nil {
			t.Errorf("%s: %v", ch.file, err)
		}
		f.Close()
	}
}
