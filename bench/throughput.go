package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wsactor/wsactor/bench/internal/impl"
	"github.com/wsactor/wsactor/bench/internal/load"
)

// scenario is a connection count and requests in flight per connection.
type scenario struct {
	Name     string `json:"name"`
	Conns    int    `json:"conns"`
	InFlight int    `json:"inflight"` // per connection
}

func (s scenario) String() string {
	return fmt.Sprintf("%s (%d conn × %d in flight)", s.Name, s.Conns, s.InFlight)
}

// cell is one measurement: an implementation in a scenario with a payload,
// in one round.
type cell struct {
	Round    int     `json:"round"` // -1: the profiled round
	Scenario string  `json:"scenario"`
	Payload  string  `json:"payload"`
	Impl     string  `json:"impl"`
	N        int64   `json:"round_trips"`
	Seconds  float64 `json:"seconds"`
	RTPS     float64 `json:"rt_per_s"`
	P50us    float64 `json:"p50_us"`
	P90us    float64 `json:"p90_us"`
	P99us    float64 `json:"p99_us"`
	P999us   float64 `json:"p999_us"`
	SrvCPUus float64 `json:"server_cpu_us_per_rt"`
	CliCPUus float64 `json:"client_cpu_us_per_rt"`
	SrvCPU   float64 `json:"server_cpu_cores"` // server CPU seconds per second
	CliCPU   float64 `json:"client_cpu_cores"`
	// OS counters per round trip, server and client process.
	SrvCtx    float64 `json:"server_ctx_switches_per_rt"`
	SrvWrites float64 `json:"server_write_syscalls_per_rt"`
	SrvReads  float64 `json:"server_read_syscalls_per_rt"`
	CliCtx    float64 `json:"client_ctx_switches_per_rt"`
	CliWrites float64 `json:"client_write_syscalls_per_rt"`
	CliReads  float64 `json:"client_read_syscalls_per_rt"`
}

func throughputMode(f flags) error {
	impls := splitList(f.impls)
	for _, name := range impls {
		if !impl.Known(name) {
			return fmt.Errorf("-impls: %q is not one of %v", name, impl.Impls)
		}
	}
	var scs []scenario
	for _, s := range splitList(f.scenarios) {
		switch s {
		case "seq":
			scs = append(scs, scenario{"seq", 1, 1})
		case "inflight":
			scs = append(scs, scenario{fmt.Sprintf("inflight%d", f.inflight), 1, f.inflight})
		case "conns":
			scs = append(scs, scenario{fmt.Sprintf("conns%d", f.manyConns), f.manyConns, 1})
		default:
			return fmt.Errorf("-scenarios: unknown %q", s)
		}
	}
	payloads := splitList(f.payloads)
	for _, p := range payloads {
		if _, err := impl.ParsePayload(p); err != nil {
			return err
		}
	}

	servers := map[string]*child{}
	defer func() {
		for _, c := range servers {
			c.stop()
		}
	}()
	var extra []string
	if f.contention {
		extra = append(extra, "-contention")
		runtime.SetMutexProfileFraction(10)
		runtime.SetBlockProfileRate(10_000)
	}
	for _, name := range impls {
		c, err := spawnServer(name, extra...)
		if err != nil {
			return err
		}
		servers[name] = c
	}
	env := environment()
	fmt.Printf("%s\n%d rounds × %d scenarios × %d payloads × %d implementations, warm-up %v, window %v\n\n",
		env.String(), f.rounds, len(scs), len(payloads), len(impls), f.warmup, f.duration)

	ctx := context.Background()
	var cells []cell
	total := f.rounds * len(scs) * len(payloads) * len(impls)
	rounds := f.rounds
	if f.profile != "" {
		if err := os.MkdirAll(f.profile, 0o755); err != nil {
			return err
		}
		rounds++
	}
	done := 0
	for r := range rounds {
		profiled := f.profile != "" && r == f.rounds
		for _, sc := range scs {
			for _, pname := range payloads {
				payload, _ := impl.ParsePayload(pname)
				for i := range impls {
					name := impls[(i+r)%len(impls)] // rotate: no implementation always goes first
					var prof string
					if profiled {
						prof = filepath.Join(f.profile, fmt.Sprintf("%s-%s-%s", sc.Name, pname, name))
					}
					c, err := measure(ctx, f, servers[name], name, sc, pname, payload, prof)
					if err != nil {
						return fmt.Errorf("round %d %s %s %s: %w", r+1, sc.Name, pname, name, err)
					}
					c.Round = r + 1
					if profiled {
						c.Round = -1
						fmt.Fprintf(os.Stderr, "profiled %-10s %-5s %-8s %9.0f rt/s\n", sc.Name, pname, name, c.RTPS)
					} else {
						done++
						fmt.Fprintf(os.Stderr, "[%3d/%d] round %d %-10s %-5s %-8s %9.0f rt/s  p50 %7.1fµs  p99 %7.1fµs  srv %5.1fµs/rt\n",
							done, total, r+1, sc.Name, pname, name, c.RTPS, c.P50us, c.P99us, c.SrvCPUus)
					}
					cells = append(cells, c)
				}
			}
		}
	}
	var sum []summary
	if f.rounds > 0 {
		sum = summarize(cells, scs, payloads, impls)
		printTables(os.Stdout, sum, false)
		if f.md {
			printTables(os.Stdout, sum, true)
		}
	}
	out := outPath(f, "results.json")
	b, err := json.MarshalIndent(map[string]any{
		"env":     env,
		"config":  map[string]any{"rounds": f.rounds, "warmup": f.warmup.String(), "duration": f.duration.String(), "scenarios": scs, "payloads": payloadSizes(payloads), "impls": impls},
		"summary": sum,
		"cells":   cells,
	}, "", "  ")
	if err != nil {
		return err
	}
	fmt.Printf("\nwrote %s\n", out)
	return os.WriteFile(out, b, 0o644)
}

func payloadSizes(names []string) map[string]int {
	m := map[string]int{}
	for _, n := range names {
		p, _ := impl.ParsePayload(n)
		m[n] = len(p)
	}
	return m
}

// measure runs one cell: it dials the scenario's connections, runs the
// closed loop and samples CPU time of both processes around the window.
// With prof set it writes CPU profiles of both sides for the window.
func measure(ctx context.Context, f flags, srv *child, name string, sc scenario, pname string, payload []byte, prof string) (cell, error) {
	clients, err := dialMany(ctx, name, srv.url(), sc.Conns)
	if err != nil {
		return cell{}, err
	}
	defer func() {
		closeAll(clients)
		// The next cell starts on a server with no connection left.
		_ = srv.waitConns(0, 30*time.Second)
	}()
	if err := srv.waitConns(sc.Conns, 30*time.Second); err != nil {
		return cell{}, err
	}
	runtime.GC()
	var srv0, srv1 procStats
	var cli0, cli1 time.Duration
	var os0, os1 load.Counters
	var profErr, statErr error
	var pf *os.File
	var contention sync.WaitGroup
	res, err := load.Run(ctx, load.Config{
		Clients:  clients,
		InFlight: sc.InFlight,
		Payload:  payload,
		Warmup:   f.warmup,
		Duration: f.duration,
		OnStart: func() {
			if prof != "" {
				if profErr = srv.ctl(http.MethodPost, "/ctl/profile/start?path="+url.QueryEscape(prof+"-server.pprof"), nil); profErr != nil {
					return
				}
				if pf, profErr = os.Create(prof + "-client.pprof"); profErr == nil {
					profErr = pprof.StartCPUProfile(pf)
				}
				if f.contention {
					contentionProfiles(&contention, srv, prof, f.duration, "0")
				}
			}
			srv0, statErr = srv.stats(false)
			os0 = load.OSCounters()
			cli0 = load.CPUTime()
		},
		OnStop: func() {
			cli1 = load.CPUTime()
			os1 = load.OSCounters()
			var err error
			if srv1, err = srv.stats(false); statErr == nil {
				statErr = err
			}
			if prof != "" && profErr == nil {
				pprof.StopCPUProfile()
				_ = pf.Close()
				profErr = srv.ctl(http.MethodPost, "/ctl/profile/stop", nil)
				if f.contention {
					contentionProfiles(&contention, nil, prof, 0, "1")
					contention.Wait()
				}
			}
		},
	})
	if err != nil {
		return cell{}, err
	}
	if err := errors.Join(statErr, profErr); err != nil {
		return cell{}, err
	}
	n := float64(res.RoundTrips)
	secs := res.Elapsed.Seconds()
	us := func(d time.Duration) float64 { return float64(d) / 1e3 }
	return cell{
		Scenario: sc.Name, Payload: pname, Impl: name,
		N: res.RoundTrips, Seconds: secs, RTPS: res.PerSecond(),
		P50us: us(res.Percentile(0.50)), P90us: us(res.Percentile(0.90)),
		P99us: us(res.Percentile(0.99)), P999us: us(res.Percentile(0.999)),
		SrvCPUus: float64(srv1.CPUNanos-srv0.CPUNanos) / 1e3 / n,
		CliCPUus: float64(cli1-cli0) / 1e3 / n,
		SrvCPU:   float64(srv1.CPUNanos-srv0.CPUNanos) / 1e9 / secs,
		CliCPU:   (cli1 - cli0).Seconds() / secs,

		SrvCtx:    float64(srv1.CtxSwitches-srv0.CtxSwitches) / n,
		SrvWrites: float64(srv1.WriteCalls-srv0.WriteCalls) / n,
		SrvReads:  float64(srv1.ReadCalls-srv0.ReadCalls) / n,
		CliCtx:    float64(os1.CtxSwitches-os0.CtxSwitches) / n,
		CliWrites: float64(os1.WriteCalls-os0.WriteCalls) / n,
		CliReads:  float64(os1.ReadCalls-os0.ReadCalls) / n,
	}, nil
}

// contentionProfiles writes the driver's cumulative mutex and block
// profiles to prof-client-{mutex,block}-<suffix>.pprof (compare two with
// go tool pprof -diff_base) and, when srv is not nil, fetches the server's
// delta profiles over d in the background.
func contentionProfiles(wg *sync.WaitGroup, srv *child, prof string, d time.Duration, suffix string) {
	for _, kind := range []string{"mutex", "block"} {
		if pf, err := os.Create(fmt.Sprintf("%s-client-%s-%s.pprof", prof, kind, suffix)); err == nil {
			_ = pprof.Lookup(kind).WriteTo(pf, 0)
			_ = pf.Close()
		}
		if srv == nil {
			continue
		}
		wg.Go(func() {
			resp, err := srv.hc.Get(fmt.Sprintf("http://%s/debug/pprof/%s?seconds=%d", srv.addr, kind, int(d.Seconds()+0.5)))
			if err != nil {
				return
			}
			defer func() { _ = resp.Body.Close() }()
			if pf, err := os.Create(fmt.Sprintf("%s-server-%s.pprof", prof, kind)); err == nil {
				_, _ = io.Copy(pf, resp.Body)
				_ = pf.Close()
			}
		})
	}
}

// summary is the medians over rounds of one implementation in one
// scenario and payload, and its ratios to the others.
type summary struct {
	Scenario string  `json:"scenario"`
	Payload  string  `json:"payload"`
	Impl     string  `json:"impl"`
	Rounds   int     `json:"rounds"`
	RTPS     float64 `json:"rt_per_s"`
	P50us    float64 `json:"p50_us"`
	P99us    float64 `json:"p99_us"`
	SrvCPUus float64 `json:"server_cpu_us_per_rt"`
	CliCPUus float64 `json:"client_cpu_us_per_rt"`
	// OS counters per round trip (medians).
	SrvCtx    float64 `json:"server_ctx_switches_per_rt"`
	SrvWrites float64 `json:"server_write_syscalls_per_rt"`
	SrvReads  float64 `json:"server_read_syscalls_per_rt"`
	CliCtx    float64 `json:"client_ctx_switches_per_rt"`
	CliWrites float64 `json:"client_write_syscalls_per_rt"`
	CliReads  float64 `json:"client_read_syscalls_per_rt"`
	// Ratios to other implementations: the median over rounds of the
	// ratio measured within each round.
	Ratios map[string]ratios `json:"ratios,omitempty"`
}

type ratios struct {
	RTPS     float64 `json:"rt_per_s"`
	P50      float64 `json:"p50"`
	P99      float64 `json:"p99"`
	SrvCPU   float64 `json:"server_cpu_per_rt"`
	TotalCPU float64 `json:"total_cpu_per_rt"`
}

func summarize(cells []cell, scs []scenario, payloads, impls []string) []summary {
	type key struct{ sc, pl, impl string }
	by := map[key][]cell{} // measured rounds only, in round order
	for _, c := range cells {
		if c.Round > 0 {
			k := key{c.Scenario, c.Payload, c.Impl}
			by[k] = append(by[k], c)
		}
	}
	med := func(cs []cell, f func(cell) float64) float64 {
		xs := make([]float64, len(cs))
		for i, c := range cs {
			xs[i] = f(c)
		}
		return load.Median(xs)
	}
	var out []summary
	for _, sc := range scs {
		for _, pl := range payloads {
			for _, name := range impls {
				cs := by[key{sc.Name, pl, name}]
				s := summary{
					Scenario: sc.Name, Payload: pl, Impl: name, Rounds: len(cs),
					RTPS:      med(cs, func(c cell) float64 { return c.RTPS }),
					P50us:     med(cs, func(c cell) float64 { return c.P50us }),
					P99us:     med(cs, func(c cell) float64 { return c.P99us }),
					SrvCPUus:  med(cs, func(c cell) float64 { return c.SrvCPUus }),
					CliCPUus:  med(cs, func(c cell) float64 { return c.CliCPUus }),
					SrvCtx:    med(cs, func(c cell) float64 { return c.SrvCtx }),
					SrvWrites: med(cs, func(c cell) float64 { return c.SrvWrites }),
					SrvReads:  med(cs, func(c cell) float64 { return c.SrvReads }),
					CliCtx:    med(cs, func(c cell) float64 { return c.CliCtx }),
					CliWrites: med(cs, func(c cell) float64 { return c.CliWrites }),
					CliReads:  med(cs, func(c cell) float64 { return c.CliReads }),
					Ratios:    map[string]ratios{},
				}
				for _, other := range impls {
					if other == name {
						continue
					}
					os := by[key{sc.Name, pl, other}]
					n := min(len(cs), len(os))
					per := func(f func(a, b cell) float64) float64 {
						xs := make([]float64, n)
						for i := range n {
							xs[i] = f(cs[i], os[i])
						}
						return load.Median(xs)
					}
					s.Ratios[other] = ratios{
						RTPS:     per(func(a, b cell) float64 { return a.RTPS / b.RTPS }),
						P50:      per(func(a, b cell) float64 { return a.P50us / b.P50us }),
						P99:      per(func(a, b cell) float64 { return a.P99us / b.P99us }),
						SrvCPU:   per(func(a, b cell) float64 { return a.SrvCPUus / b.SrvCPUus }),
						TotalCPU: per(func(a, b cell) float64 { return (a.SrvCPUus + a.CliCPUus) / (b.SrvCPUus + b.CliCPUus) }),
					}
				}
				out = append(out, s)
			}
		}
	}
	return out
}

func printTables(w *os.File, sum []summary, md bool) {
	var group []summary
	flush := func() {
		if len(group) == 0 {
			return
		}
		g := group[0]
		var rows [][]string
		rows = append(rows, []string{"impl", "rt/s", "p50 µs", "p99 µs", "server CPU µs/rt", "client CPU µs/rt"})
		for _, s := range group {
			rows = append(rows, []string{s.Impl, fmt.Sprintf("%.0f", s.RTPS), fmt.Sprintf("%.1f", s.P50us), fmt.Sprintf("%.1f", s.P99us),
				fmt.Sprintf("%.2f", s.SrvCPUus), fmt.Sprintf("%.2f", s.CliCPUus)})
		}
		for _, s := range group {
			if s.Impl != impl.WSActor && s.Impl != impl.WSActorInline && s.Impl != impl.WSActorDeflate {
				continue
			}
			for _, o := range group {
				if o.Impl == s.Impl {
					continue
				}
				r := s.Ratios[o.Impl]
				rows = append(rows, []string{s.Impl + "/" + o.Impl, x(r.RTPS), x(r.P50), x(r.P99), x(r.SrvCPU), "total " + x(r.TotalCPU)})
			}
		}
		for _, s := range group {
			if s.Impl == impl.Naive {
				if r, ok := s.Ratios[impl.Raw]; ok {
					rows = append(rows, []string{"naive/raw", x(r.RTPS), x(r.P50), x(r.P99), x(r.SrvCPU), "total " + x(r.TotalCPU)})
				}
			}
		}
		title := fmt.Sprintf("%s, payload %s (medians of %d rounds; ratios: median of per-round ratios)", g.Scenario, g.Payload, g.Rounds)
		writeTable(w, title, rows, md)
		rows = [][]string{{"per round trip", "srv ctx switches", "srv write calls", "srv read calls", "cli ctx switches", "cli write calls", "cli read calls"}}
		for _, s := range group {
			rows = append(rows, []string{s.Impl, fmt.Sprintf("%.2f", s.SrvCtx), fmt.Sprintf("%.2f", s.SrvWrites), fmt.Sprintf("%.2f", s.SrvReads),
				fmt.Sprintf("%.2f", s.CliCtx), fmt.Sprintf("%.2f", s.CliWrites), fmt.Sprintf("%.2f", s.CliReads)})
		}
		writeTable(w, "OS counters: "+title[:strings.Index(title, " (")], rows, md)
		group = group[:0]
	}
	for _, s := range sum {
		if len(group) > 0 && (group[0].Scenario != s.Scenario || group[0].Payload != s.Payload) {
			flush()
		}
		group = append(group, s)
	}
	flush()
}

func x(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "–"
	}
	return fmt.Sprintf("%.2f×", v)
}

func writeTable(w *os.File, title string, rows [][]string, md bool) {
	if md {
		fmt.Fprintf(w, "\n**%s**\n\n", title)
		for i, r := range rows {
			fmt.Fprintf(w, "| %s |\n", strings.Join(r, " | "))
			if i == 0 {
				seps := make([]string, len(r))
				for j := range seps {
					seps[j] = "---"
					if j > 0 {
						seps[j] = "---:"
					}
				}
				fmt.Fprintf(w, "|%s|\n", strings.Join(seps, "|"))
			}
		}
		return
	}
	widths := make([]int, len(rows[0]))
	for _, r := range rows {
		for j, c := range r {
			widths[j] = max(widths[j], len([]rune(c)))
		}
	}
	fmt.Fprintf(w, "\n%s\n", title)
	for _, r := range rows {
		var sb strings.Builder
		for j, c := range r {
			pad := strings.Repeat(" ", widths[j]-len([]rune(c)))
			if j == 0 {
				sb.WriteString(c + pad)
			} else {
				sb.WriteString("  " + pad + c)
			}
		}
		fmt.Fprintln(w, sb.String())
	}
}

// env describes the machine.
type env struct {
	GoVersion  string `json:"go_version"`
	GOOS       string `json:"goos"`
	GOARCH     string `json:"goarch"`
	NumCPU     int    `json:"num_cpu"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	CPUModel   string `json:"cpu_model"`
	Time       string `json:"time"`
	// Core is a hash of the library's non-test Go files in the working
	// directory (run from the repository root), to tell which state of
	// the core a result measured.
	Core string `json:"core,omitempty"`
}

func environment() env {
	e := env{
		GoVersion: runtime.Version(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH,
		NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
		Time: time.Now().UTC().Format(time.RFC3339),
	}
	e.Core = coreHash()
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				e.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return e
}

func (e env) String() string {
	return fmt.Sprintf("%s %s/%s, %d CPUs (%s), GOMAXPROCS %d, %s, core %s", e.GoVersion, e.GOOS, e.GOARCH, e.NumCPU, e.CPUModel, e.GOMAXPROCS, e.Time, e.Core)
}

// coreHash hashes the non-test Go files of the root package and the core
// packages under the working directory; "" when there are none.
func coreHash() string {
	h := sha256.New()
	n := 0
	for _, dir := range []string{".", "actor", "conn", "envelope", "mailbox", "supervisor"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		slices.Sort(files)
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			b, err := os.ReadFile(name)
			if err != nil {
				continue
			}
			fmt.Fprintf(h, "%s %d\n", name, len(b))
			h.Write(b)
			n++
		}
	}
	if n == 0 {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}
