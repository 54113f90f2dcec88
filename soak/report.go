package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wsactor/wsactor"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Report is what a run found: written as report.json and summary.txt in
// the output directory, with one PNG per plot.
type Report struct {
	Mode           string           `json:"mode"`
	Config         Config           `json:"config"`
	Started        time.Time        `json:"started"`
	URLs           []string         `json:"urls,omitempty"`
	Passed         bool             `json:"passed"`
	Violations     int64            `json:"violations"`
	ViolationKinds map[string]int64 `json:"violation_kinds,omitempty"`
	ViolationList  []string         `json:"violation_list,omitempty"`

	Connected   int     `json:"connected"` // clients connected by the first dial
	DialSeconds float64 `json:"dial_s"`
	PeakConns   int     `json:"peak_conns"`
	LoadSeconds float64 `json:"load_s"`

	Client     *SideReport     `json:"client,omitempty"`  // requests the clients issued (client → server)
	Server     *SideReport     `json:"server,omitempty"`  // requests the server issued (server → client)
	Cluster    *ClusterReport  `json:"cluster,omitempty"` // -nodes: requests across nodes
	Chaos      ChaosReport     `json:"chaos"`
	Memory     MemoryReport    `json:"memory"`
	Goroutines GoroutineReport `json:"goroutines"`
	Samples    []Sample        `json:"samples"`
	OutDir     string          `json:"-"`
}

// SideReport is one side's view: its ledger of the requests it issued, the
// echo round trips, and its library Stats.
type SideReport struct {
	Ledger      LedgerReport     `json:"ledger"`
	Latency     Percentiles      `json:"latency"`
	PerSec      float64          `json:"requests_per_s"` // requests ended per second of load
	OKPerSec    float64          `json:"replies_per_s"`
	Stats       wsactor.Stats    `json:"stats"`
	BadInput    map[string]int64 `json:"bad_input,omitempty"`
	MsgsOut     int64            `json:"messages_sent"`
	MsgsIn      int64            `json:"messages_received"`
	MsgsRefused int64            `json:"messages_refused"`
	// HeartbeatDrops (server): connections dropped by the heartbeat.
	HeartbeatDrops int64 `json:"heartbeat_drops"`
	Clients        int   `json:"clients,omitempty"` // clients made over the run
	Dials          int64 `json:"dials,omitempty"`
	DialFails      int64 `json:"dial_failures,omitempty"`
	Redials        int64 `json:"redials,omitempty"`
	Skipped        int64 `json:"skipped,omitempty"` // rate mode: slot at its in-flight cap or not connected
}

// ChaosReport counts what the chaos did and what came of it.
type ChaosReport struct {
	Events              map[string]int64 `json:"events,omitempty"`
	ConnsKilled         int64            `json:"conns_killed"` // client closes + server ends + TCP resets
	ClientCloses        int64            `json:"client_closes"`
	ServerEnds          int64            `json:"server_ends"`
	ServerResets        int64            `json:"server_resets"`
	AskCloses           int64            `json:"ask_closes"`
	AskResets           int64            `json:"ask_resets"`
	FloodsAsked         int64            `json:"floods_asked"`
	Floods              int64            `json:"floods"`
	FloodSent           int64            `json:"flood_sent"`
	FloodQueueFull      int64            `json:"flood_write_queue_full"`
	FloodReceived       int64            `json:"flood_received"`
	ReaderBlocks        int64            `json:"slow_reader_blocks"`
	MsgPanicsAsked      int64            `json:"message_panics_asked"`
	ServerMsgPanics     int64            `json:"server_message_panics_asked"`
	ServerPanicAsks     int64            `json:"server_panic_requests"`
	CallbackPanicsArmed int64            `json:"callback_panics_armed"`
	CallbackPanics      int64            `json:"callback_panics"`
	JunkConns           int64            `json:"junk_conns"`
	JunkFrames          int64            `json:"junk_frames"`
	JunkUnverified      int64            `json:"junk_unverified"`
	Restarts            int64            `json:"restarts"`  // actor restarts, server + clients
	Timeouts            int64            `json:"timeouts"`  // requests that ended with ErrTimeout, both sides
	BadInput            int64            `json:"bad_input"` // Stats.BadInput, server + clients
}

// MemoryReport is the RSS over the run.
type MemoryReport struct {
	RSSStartMiB     float64 `json:"rss_start_mib"`
	RSSConnectedMiB float64 `json:"rss_connected_mib,omitempty"`
	PerConnKiB      float64 `json:"rss_per_conn_kib"` // in process: server + client; server only: server
	RSSWarmMiB      float64 `json:"rss_warm_mib"`
	RSSLastMiB      float64 `json:"rss_last_mib"`
	RSSMaxMiB       float64 `json:"rss_max_mib"`
	RSSEndMiB       float64 `json:"rss_end_mib"`
	GrowthMiB       float64 `json:"rss_growth_mib"`
	AllowedMiB      float64 `json:"rss_growth_allowed_mib"`
	RSSCheck        string  `json:"rss_check"`
	WarmDetail      string  `json:"warm_detail,omitempty"` // the Go runtime's view at the warm and last measurements
	LastDetail      string  `json:"last_detail,omitempty"`
}

// summary writes the text report.
func (r *Report) summary(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	verdict := "PASSED"
	if !r.Passed {
		verdict = "FAILED"
	}
	c := r.Config
	conns := c.Conns
	if r.Client == nil {
		conns = r.PeakConns
	}
	p("soak %s: %s — %d conns, %.0fs of load, chaos %v, seed %d", r.Mode, verdict, conns, r.LoadSeconds, c.Chaos, c.Seed)
	if len(r.URLs) > 0 {
		p("  urls: %s", strings.Join(r.URLs, " "))
	}
	if r.Client != nil {
		p("  connected %d of %d in %.1fs; clients made %d (redials %d, dial failures %d)",
			r.Connected, c.Conns, r.DialSeconds, r.Client.Clients, r.Client.Redials, r.Client.DialFails)
	}
	side := func(name string, s *SideReport) {
		if s == nil {
			return
		}
		l := s.Ledger
		p("  %s requests: %d issued, %d ended, %d refused by Go, %d lost; %.0f req/s (%.0f replies/s)",
			name, l.Issued, l.Completed, l.Refused, l.Lost, s.PerSec, s.OKPerSec)
		p("    outcomes: %s", kv(l.Outcomes))
		if len(l.Refusals) > 0 {
			p("    refusals: %s", kv(l.Refusals))
		}
		if len(l.RemoteCodes) > 0 {
			p("    error replies: %s", kv(l.RemoteCodes))
		}
		lt := s.Latency
		p("    echo round trip: n=%d mean %.2fms p50 %.2fms p90 %.2fms p99 %.2fms p99.9 %.2fms max %.2fms",
			lt.Count, lt.Mean, lt.P50, lt.P90, lt.P99, lt.P999, lt.Max)
		st := s.Stats
		p("    Stats: requests %d = replied %d + remote %d + timed out %d + canceled %d + failed %d + pending %d; late %d unknown %d",
			st.Requests, st.Replied, st.RemoteErrors, st.TimedOut, st.Canceled, st.Failed, st.Pending, st.LateReplies, st.UnknownReplies)
		p("           received %d answered %d answered-error %d busy %d cancels %d in progress %d; bad input %d panics %d restarts %d reconnects %d",
			st.Received, st.Answered, st.AnsweredError, st.Busy, st.CancelsReceived, st.InProgress, st.BadInput, st.HandlerPanics, st.Restarts, st.Reconnects)
		p("    messages: sent %d received %d refused %d", s.MsgsOut, s.MsgsIn, s.MsgsRefused)
		if s == r.Server {
			p("    heartbeat drops: %d (connections from which nothing was read for 2 ping intervals)", s.HeartbeatDrops)
		}
		if len(s.BadInput) > 0 {
			p("    bad input: %s", kv(s.BadInput))
		}
	}
	side("client side: client → server", r.Client)
	side("server side: server → client", r.Server)
	if cl := r.Cluster; cl != nil {
		l := cl.Ledger
		p("  nodes %d: requests by key from node 1 to the others: %d issued, %d ended, %d refused, %d lost; outcomes: %s",
			cl.Nodes, l.Issued, l.Completed, l.Refused, l.Lost, kv(l.Outcomes))
		p("    room asks %d (%d member outcomes, one each); node kills %d, NATS restarts %d", cl.RoomAsks, cl.AskMembers, cl.NodeKills, cl.NATSRestarts)
	}
	ch := r.Chaos
	if c.Chaos {
		p("  chaos: events %s", kv(ch.Events))
		p("    conns killed %d (client closes %d, server ends %d, resets %d); restarts %d; timeouts %d; bad input %d",
			ch.ConnsKilled, ch.ClientCloses, ch.ServerEnds, ch.ServerResets, ch.Restarts, ch.Timeouts, ch.BadInput)
		p("    slow readers: floods %d, sent %d, write queue full %d, reader blocks %d; junk conns %d frames %d (unverified %d)",
			ch.Floods, ch.FloodSent, ch.FloodQueueFull, ch.ReaderBlocks, ch.JunkConns, ch.JunkFrames, ch.JunkUnverified)
	}
	m := r.Memory
	perConn := fmt.Sprintf("connected %.0f MiB: %.1f KiB/conn (client and server)", m.RSSConnectedMiB, m.PerConnKiB)
	switch {
	case r.Client == nil:
		perConn = fmt.Sprintf("%.1f KiB/conn at the warm measurement", m.PerConnKiB)
	case r.Server == nil:
		perConn = fmt.Sprintf("connected %.0f MiB: %.1f KiB/conn", m.RSSConnectedMiB, m.PerConnKiB)
	}
	p("  memory (settled RSS: after GC and FreeOSMemory): start %.0f MiB, %s; warm %.0f, last %.0f MiB; growth %.1f MiB (allowed %.1f): %s; sampled max %.0f MiB",
		m.RSSStartMiB, perConn, m.RSSWarmMiB, m.RSSLastMiB, m.GrowthMiB, m.AllowedMiB, m.RSSCheck, m.RSSMaxMiB)
	if m.WarmDetail != "" {
		p("    warm: %s", m.WarmDetail)
	}
	if m.LastDetail != "" {
		p("    last: %s", m.LastDetail)
	}
	g := r.Goroutines
	p("  goroutines: baseline %d, peak %d, after %d (waited %.1fs)", g.Baseline, g.Peak, g.Final, g.WaitedS)
	p("  violations: %d %s", r.Violations, kv(r.ViolationKinds))
	for i, v := range r.ViolationList {
		if i == 20 {
			p("    … %d more in report.json", len(r.ViolationList)-20)
			break
		}
		p("    %s", v)
	}
	if r.OutDir != "" {
		p("  report: %s", r.OutDir)
	}
}

func kv(m map[string]int64) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

// outDir picks the report directory: cfg.Out, or soak/out/<timestamp>
// (with the mode and pid for split runs).
func outDir(r *Report, cfg *Config) string {
	switch cfg.Out {
	case "-":
		return ""
	case "":
		name := r.Started.Format("20060102-150405")
		if m := cfg.mode(); m != modeBoth {
			name += fmt.Sprintf("-%s-%d", m, os.Getpid())
		}
		return filepath.Join("soak", "out", name)
	}
	return cfg.Out
}

// writeOut writes report.json, summary.txt, the plots and (if goroutines
// leaked) their stacks.
func writeOut(r *Report, cfg *Config) error {
	dir := outDir(r, cfg)
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	r.OutDir = dir
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), b, 0o644); err != nil {
		return err
	}
	var sb strings.Builder
	r.summary(&sb)
	if err := os.WriteFile(filepath.Join(dir, "summary.txt"), []byte(sb.String()), 0o644); err != nil {
		return err
	}
	if r.Goroutines.Dump != "" {
		if err := os.WriteFile(filepath.Join(dir, "goroutines.txt"), []byte(r.Goroutines.Dump), 0o644); err != nil {
			return err
		}
	}
	if cfg.NoPlots || len(r.Samples) < 2 {
		return nil
	}
	return plots(r.Samples, dir)
}

// plots draws the per-second samples: throughput, latency, RSS,
// goroutines and connections, restarts over time, one PNG each.
func plots(samples []Sample, dir string) error {
	for _, ch := range charts {
		img, _, err := ch.render(samples)
		if err != nil {
			return fmt.Errorf("soak: plot %s: %w", ch.file, err)
		}
		f, err := os.Create(filepath.Join(dir, ch.file))
		if err != nil {
			return err
		}
		_, err = vgimg.PngCanvas{Canvas: img}.WriteTo(f)
		if err := errors.Join(err, f.Close()); err != nil {
			return fmt.Errorf("soak: plot %s: %w", ch.file, err)
		}
	}
	return nil
}

// A chart is one PNG: panels stacked over the same time axis. Lines share
// a panel only when they share a unit and a scale; each panel with more
// than one line has its legend beside it, off the curves.
type chart struct {
	file, title string
	panels      []panel
}

// A panel is one plot of a chart; label names its Y axis (and the line,
// when it has one).
type panel struct {
	label string
	lines []line
}

type line struct {
	name string
	f    func(Sample) float64
}

var charts = []chart{
	{"throughput.png", "Requests ended per second", []panel{
		{"client → server req/s", []line{
			{"every outcome", func(s Sample) float64 { return s.ClientRate }},
			{"replies", func(s Sample) float64 { return s.ClientOK }},
		}},
		{"server → client req/s", []line{
			{"every outcome", func(s Sample) float64 { return s.ServerRate }},
		}},
	}},
	{"latency.png", "Echo round trip (per second)", []panel{
		{"ms", []line{
			{"p50", func(s Sample) float64 { return s.P50 }},
			{"p99", func(s Sample) float64 { return s.P99 }},
			{"server p50", func(s Sample) float64 { return s.SrvP50 }},
			{"server p99", func(s Sample) float64 { return s.SrvP99 }},
		}},
	}},
	{"rss.png", "Memory", []panel{
		{"MiB", []line{
			{"RSS", func(s Sample) float64 { return s.RSSMiB }},
			{"heap in use", func(s Sample) float64 { return s.HeapMiB }},
		}},
	}},
	{"goroutines.png", "Goroutines and connections", []panel{
		{"goroutines", []line{{"goroutines", func(s Sample) float64 { return float64(s.Goroutines) }}}},
		{"connections", []line{{"connections", func(s Sample) float64 { return float64(s.Conns) }}}},
	}},
	{"restarts.png", "Actor restarts and reconnects (cumulative)", []panel{
		{"count", []line{
			{"restarts", func(s Sample) float64 { return float64(s.Restarts) }},
			{"reconnects", func(s Sample) float64 { return float64(s.Reconnects) }},
			{"violations", func(s Sample) float64 { return float64(s.Violations) }},
		}},
	}},
}

// chartLayout is where render put things, for the tests: per panel, the
// area of its curves and of its legend (empty for a panel of one line).
type chartLayout struct {
	size    vg.Point
	data    []vg.Rectangle
	legends []vg.Rectangle
}

// render draws the chart, 8 × 3 inches per panel.
func (ch chart) render(samples []Sample) (*vgimg.Canvas, chartLayout, error) {
	const width, panelHeight = 8 * vg.Inch, 3 * vg.Inch
	pad := vg.Points(8)
	img := vgimg.New(width, panelHeight*vg.Length(len(ch.panels)))
	dc := draw.New(img)
	lay := chartLayout{size: dc.Size(), data: make([]vg.Rectangle, len(ch.panels)), legends: make([]vg.Rectangle, len(ch.panels))}

	rows := make([][]*plot.Plot, len(ch.panels))
	legends := make([]*plot.Legend, len(ch.panels))
	var legendWidth vg.Length
	for i, pn := range ch.panels {
		p := plot.New()
		if i == 0 {
			p.Title.Text = ch.title
		}
		if i == len(ch.panels)-1 {
			p.X.Label.Text = "seconds"
		}
		p.Y.Label.Text = pn.label
		p.Y.Tick.Marker = humanTicks{}
		p.Add(plotter.NewGrid())
		var args []any
		for _, l := range pn.lines {
			xy := make(plotter.XYs, len(samples))
			for j, s := range samples {
				xy[j].X, xy[j].Y = s.T, l.f(s)
			}
			args = append(args, l.name, xy)
		}
		if err := plotutil.AddLines(p, args...); err != nil {
			return nil, lay, err
		}
		// Rates, sizes and counts: from 0, with some room above the
		// highest point (and a range even when every value is 0).
		p.Y.Min = min(p.Y.Min, 0)
		p.Y.Max = max(p.Y.Max+0.05*(p.Y.Max-p.Y.Min), p.Y.Min+1)
		if len(pn.lines) > 1 {
			leg := p.Legend
			leg.Top, leg.Left = true, true
			leg.Padding = vg.Points(3)
			legends[i] = &leg
			legendWidth = max(legendWidth, leg.Rectangle(dc).Size().X)
		}
		p.Legend = plot.NewLegend() // none inside: it is drawn beside the panel
		rows[i] = []*plot.Plot{p}
	}
	if legendWidth > 0 {
		legendWidth += 2 * pad
	}
	tiles := draw.Tiles{Rows: len(rows), Cols: 1, PadTop: pad, PadBottom: pad, PadLeft: pad, PadRight: pad, PadY: 2 * pad}
	areas := plot.Align(rows, tiles, draw.Crop(dc, 0, -legendWidth, 0, 0))
	for i, row := range rows {
		p, area := row[0], areas[i][0]
		p.Draw(area)
		data := p.DataCanvas(area)
		lay.data[i] = data.Rectangle
		if legends[i] == nil {
			continue
		}
		// The legend's column, right of the plots, from the top of the
		// panel's curves.
		col := data
		col.Min.X, col.Max.X = area.Max.X+pad, dc.Max.X-pad
		legends[i].Draw(col)
		lay.legends[i] = legends[i].Rectangle(col)
	}
	return img, lay, nil
}

// humanTicks are plot.DefaultTicks labelled like the status line: 12k,
// 1.5M, 0.25 (not 12000.00).
type humanTicks struct{}

func (humanTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i, t := range ticks {
		switch {
		case t.Label == "":
		case math.Abs(t.Value) >= 1e4:
			ticks[i].Label = human(t.Value)
		default:
			ticks[i].Label = strconv.FormatFloat(t.Value, 'f', -1, 64)
		}
	}
	return ticks
}
