package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	_ "net/http/pprof" // -pprof
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	os.Exit(mainExit(os.Args[1:], os.Stdout, os.Stderr))
}

// mainExit parses args, runs the soak and returns the exit code: 0 when
// every invariant held, 1 when one broke, 2 for bad flags or a run that
// could not be made.
func mainExit(args []string, stdout, stderr io.Writer) int {
	cfg, pprofAddr, err := parseFlags(args, stderr)
	if err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		fmt.Fprintln(stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg.Log = stderr
	if cfg.mode() == modeServer {
		cfg.OnListen = func(urls []string) {
			for _, u := range urls {
				fmt.Fprintln(stdout, u)
			}
		}
	}
	if pprofAddr != "" {
		ln, err := net.Listen("tcp", pprofAddr)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		fmt.Fprintf(stderr, "soak: pprof on http://%s/debug/pprof/\n", ln.Addr())
		ps := &http.Server{Handler: http.DefaultServeMux}
		go func() { _ = ps.Serve(ln) }()
		defer ps.Close()
	}
	rep, err := run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	rep.summary(stdout)
	if cfg.mode() == modeServer && rep.Server != nil {
		line, _ := json.Marshal(struct {
			Passed     bool    `json:"passed"`
			Violations int64   `json:"violations"`
			PeakConns  int     `json:"peak_conns"`
			PerConnKiB float64 `json:"rss_per_conn_kib"`
			RSSMaxMiB  float64 `json:"rss_max_mib"`
			Stats      any     `json:"stats"`
		}{rep.Passed, rep.Violations, rep.PeakConns, rep.Memory.PerConnKiB, rep.Memory.RSSMaxMiB, rep.Server.Stats})
		fmt.Fprintln(stdout, string(line))
	}
	if !rep.Passed {
		return 1
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (cfg Config, pprofAddr string, err error) {
	cfg = defaultConfig()
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: go run ./soak [flags]   (see go doc ./soak)")
		fs.PrintDefaults()
	}
	var client, payload string
	fs.StringVar(&cfg.Server, "server", "", "run only the server, listening on `ADDR` (host:port, or a comma-separated list); prints its URLs")
	fs.StringVar(&client, "client", "", "run only clients, against `URL`s (comma-separated, used round-robin)")
	fs.IntVar(&cfg.Conns, "conns", cfg.Conns, "client connections (in this process)")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "load time (server only: 0 = until a signal or -exit-idle)")
	fs.Float64Var(&cfg.Rate, "rate", 0, "client → server requests/s per connection (0 = closed loop with -inflight)")
	fs.IntVar(&cfg.Inflight, "inflight", cfg.Inflight, "closed loop: requests in flight per connection; with -rate: the cap per connection")
	fs.Float64Var(&cfg.ServerRate, "srate", cfg.ServerRate, "server → client requests/s per connection")
	fs.Float64Var(&cfg.MsgRate, "msgrate", cfg.MsgRate, "plain messages/s per connection from the server (and from clients with -rate)")
	fs.StringVar(&payload, "payload", "64-64k", "payload size `MIN-MAX` (skewed to small: median ~150 B for 64-64k) or one size")
	fs.Int64Var(&cfg.Seed, "seed", cfg.Seed, "random seed")
	fs.BoolVar(&cfg.Chaos, "chaos", false, "chaos: kills, panics, restarts, stalls, timeouts, cancels, slow readers, junk and oversized frames")
	fs.Float64Var(&cfg.ChaosRate, "chaos-rate", 0, "disruptive chaos events per second (0 = max(4, conns/50))")
	fs.BoolVar(&cfg.Idle, "idle", false, "idle plus trickle: connections mostly idle, -rate (default 0.01) requests/s each")
	fs.IntVar(&cfg.Nodes, "nodes", 1, "server nodes joined by package cluster over an embedded NATS server; with -chaos NATS restarts and nodes die")
	fs.IntVar(&cfg.Addrs, "addrs", 0, "listen on this many loopback addresses 127.0.0.N (0 = one per 20,000 conns)")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "request timeout")
	fs.DurationVar(&cfg.Ping, "ping", cfg.Ping, "server heartbeat interval (clients time out after 3×)")
	fs.DurationVar(&cfg.Warmup, "warmup", 0, "warm-up before the RSS baseline (0 = min(10s, duration/4))")
	fs.Float64Var(&cfg.RSSSlackMiB, "rss-slack", cfg.RSSSlackMiB, "RSS may grow this many MiB after the warm-up …")
	fs.Float64Var(&cfg.RSSGrowth, "rss-growth", cfg.RSSGrowth, "… or this fraction of the warm RSS, whichever is more")
	fs.DurationVar(&cfg.Grace, "grace", cfg.Grace, "how late after its deadline a request may end before it is a violation")
	fs.DurationVar(&cfg.GoroutineWait, "goroutine-wait", cfg.GoroutineWait, "how long goroutines may take to return to the baseline")
	fs.IntVar(&cfg.DialConcurrency, "dial-concurrency", cfg.DialConcurrency, "dials in parallel")
	fs.IntVar(&cfg.Workers, "workers", 0, "server handler pool workers (0 = the library's default)")
	fs.DurationVar(&cfg.ExitIdle, "exit-idle", cfg.ExitIdle, "server only: end after this long without connections, once some came (0 = never)")
	fs.StringVar(&cfg.Out, "out", "", "report directory (default soak/out/<timestamp>; - for none)")
	fs.BoolVar(&cfg.NoPlots, "no-plots", false, "skip the PNG plots")
	fs.BoolVar(&cfg.Quiet, "quiet", false, "no progress line and no violations as they happen")
	fs.StringVar(&pprofAddr, "pprof", "", "serve net/http/pprof on `ADDR` while the soak runs")
	if err := fs.Parse(args); err != nil {
		return cfg, "", err
	}
	if fs.NArg() > 0 {
		return cfg, "", fmt.Errorf("soak: unexpected arguments %q", fs.Args())
	}
	if client != "" {
		cfg.Client = strings.Split(client, ",")
	}
	if cfg.PayloadMin, cfg.PayloadMax, err = parsePayload(payload); err != nil {
		return cfg, "", err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if cfg.mode() == modeServer && !set["duration"] {
		cfg.Duration = 0 // until a signal or -exit-idle
	}
	if cfg.Idle {
		if !set["srate"] {
			cfg.ServerRate = 0.005
		}
		if !set["msgrate"] {
			cfg.MsgRate = 0.005
		}
		if !set["inflight"] {
			cfg.Inflight = 1
		}
	}
	return cfg, pprofAddr, nil
}
