package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

type flags struct {
	role string

	// server and hold roles
	impl       string
	listen     string
	url        string
	conns      int
	cpuprofile string
	contention bool
	memRate    int

	// driver
	impls     string
	scenarios string
	payloads  string
	rounds    int
	warmup    time.Duration
	duration  time.Duration
	manyConns int
	inflight  int
	out       string
	md        bool
	profile   string

	mem          int
	memImpls     string
	memPayload   string // -mem: the payload of each connection's round trip
	memPerServer int
	memRounds    int
	memProfile   string

	pending        int
	pendingTimeout time.Duration
	pendingShared  bool
	pendingWriteTO time.Duration
	pendingProfile string

	fairness    int
	fairHandler time.Duration
	fairWorkers int
	fairRounds  int

	accept          int
	acceptPerServer int

	hbtrace    int
	hbProcs    int
	hbInterval time.Duration
	hbBurn     int
	hbDuration time.Duration
	hbDir      string
	hbIndex    int
}

func main() {
	var f flags
	fs := newFlagSet(&f)
	_ = fs.Parse(os.Args[1:]) // ExitOnError: -h prints the usage and exits 0, a bad flag exits 2

	var err error
	switch f.role {
	case "server":
		err = serveRole(f)
	case "hold":
		err = holdRole(f)
	case "dial":
		err = dialRole(f)
	case "hbserver":
		err = hbServerRole(f)
	case "hbclient":
		err = hbClientRole(f)
	case "driver":
		switch {
		case f.mem > 0:
			err = memMode(f)
		case f.pending > 0:
			err = pendingMode(f)
		case f.fairness > 0:
			err = fairnessMode(f)
		case f.accept > 0:
			err = acceptMode(f)
		case f.hbtrace > 0:
			err = hbtraceMode(f)
		default:
			err = throughputMode(f)
		}
	default:
		err = fmt.Errorf("unknown -role %q", f.role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// usageSummary is the first line of -h.
const usageSummary = "bench compares wsactor with raw gws echo and a naive layer over loopback TCP."

// flagGroups orders -h: the driver's modes, then the flags of the child
// processes the driver starts itself (a user never needs them).
var flagGroups = []struct {
	title string
	names []string
}{
	{"Throughput, latency and CPU (the default mode):", []string{"impls", "scenarios", "payloads", "rounds", "warmup", "duration", "many", "inflight", "md", "out", "profile", "contention"}},
	{"Idle memory per connection (-mem N):", []string{"mem", "mem-impls", "mem-per-server", "mem-rounds", "mem-profile", "mem-payload"}},
	{"Pending requests expiring (-pending N):", []string{"pending", "pending-timeout", "pending-shared-deadline", "pending-write-timeout", "pending-cpuprofile"}},
	{"Fairness between connections (-fairness N):", []string{"fairness", "fair-handler", "fair-workers", "fair-rounds"}},
	{"Accept rate (-accept N; -mem-impls and -mem-rounds apply):", []string{"accept", "accept-per-server"}},
	{"Heartbeat trace (-hbtrace N, built with -tags hbtrace):", []string{"hbtrace", "hb-procs", "hb-interval", "hb-burn", "hb-duration", "hb-dir"}},
	{"Child processes (the driver starts these itself with -role server, hold, dial, hbserver or hbclient):", []string{"role", "impl", "listen", "url", "conns", "cpuprofile", "memprofilerate", "hb-index"}},
}

// newFlagSet defines bench's flags into f.
func newFlagSet(f *flags) *flag.FlagSet {
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	fs.StringVar(&f.role, "role", "driver", "driver, server (one implementation's server, a child process) hold (holds idle connections), dial (-accept's dialer), hbserver or hbclient (-hbtrace's): child processes")
	fs.StringVar(&f.impl, "impl", "wsactor", "server/hold roles: raw, naive, wsactor (or discard for a server)")
	fs.StringVar(&f.listen, "listen", "127.0.0.1:0", "server role: address to listen on")
	fs.StringVar(&f.url, "url", "", "hold role: the server's ws:// URL")
	fs.IntVar(&f.conns, "conns", 1000, "hold role: connections to hold")
	fs.StringVar(&f.cpuprofile, "cpuprofile", "", "server role: write a CPU profile of the whole process life to this file")
	fs.IntVar(&f.memRate, "memprofilerate", 0, "server role: runtime.MemProfileRate (1 records every allocation; for /debug/pprof/heap)")
	fs.BoolVar(&f.contention, "contention", false, "record mutex and block profiles (server children serve /debug/pprof/; with -profile the driver writes both sides' for the profiled round)")

	fs.StringVar(&f.impls, "impls", "raw,naive,wsactor,wsactor-inline", "implementations to compare")
	fs.StringVar(&f.scenarios, "scenarios", "seq,inflight,conns", "seq: 1 connection, 1 in flight; inflight: 1 connection, -inflight in flight; conns: -many connections, 1 in flight each")
	fs.StringVar(&f.payloads, "payloads", "small,large", "payloads: small (~100 B), large (~4 KiB) or a size in bytes")
	fs.IntVar(&f.rounds, "rounds", 5, "measured rounds (implementations interleaved in each)")
	fs.DurationVar(&f.warmup, "warmup", 500*time.Millisecond, "unmeasured warm-up before each measurement")
	fs.DurationVar(&f.duration, "duration", 2*time.Second, "measured window of each measurement")
	fs.IntVar(&f.manyConns, "many", 1000, "connections of the conns scenario")
	fs.IntVar(&f.inflight, "inflight", 64, "requests in flight of the inflight scenario")
	fs.StringVar(&f.out, "out", "", "JSON results file (default bench/results.json, bench/mem.json or bench/pending.json)")
	fs.BoolVar(&f.md, "md", false, "also print the tables as Markdown")
	fs.StringVar(&f.profile, "profile", "", "after the rounds, run one more round with CPU profiles of server and client written to this directory")

	fs.IntVar(&f.mem, "mem", 0, "measure idle server memory per connection at this many connections")
	fs.StringVar(&f.memImpls, "mem-impls", "raw,wsactor", "implementations for -mem")
	fs.StringVar(&f.memPayload, "mem-payload", "small", "-mem: payload of each connection's one round trip (large: a compressed one with wsactor-deflate)")
	fs.IntVar(&f.memPerServer, "mem-per-server", 15000, "-mem: connections per server process (an fd limit of 20,000 per process)")
	fs.IntVar(&f.memRounds, "mem-rounds", 2, "-mem: rounds (implementations interleaved)")
	fs.StringVar(&f.memProfile, "mem-profile", "", "-mem: after the rounds, write heap profiles (MemProfileRate 1) of each implementation's idle servers to this directory: heap-<impl>.pb.gz and its baseline heap-<impl>-base.pb.gz, for go tool pprof -base")

	fs.IntVar(&f.pending, "pending", 0, "measure this many pending wsactor requests expiring in one process")
	fs.DurationVar(&f.pendingTimeout, "pending-timeout", 20*time.Second, "-pending: the request timeout")
	fs.BoolVar(&f.pendingShared, "pending-shared-deadline", false, "-pending: give every request the same ctx with one deadline (instead of the request timeout), so that all expire at once")
	fs.DurationVar(&f.pendingWriteTO, "pending-write-timeout", 0, "-pending: the client's WithWriteTimeout (0: the library's default)")

	fs.StringVar(&f.pendingProfile, "pending-cpuprofile", "", "-pending: write a CPU profile of the issue loop (the Conn.Go calls) to this file")
	fs.IntVar(&f.fairness, "fairness", 0, "measure fairness between connections: connection A floods this many requests at once, then B's single request is timed")
	fs.DurationVar(&f.fairHandler, "fair-handler", 200*time.Millisecond, "-fairness: each request handler's run time")
	fs.IntVar(&f.fairWorkers, "fair-workers", 0, "-fairness: the server's handler pool workers (0: the default, max(256, 64×GOMAXPROCS))")
	fs.IntVar(&f.fairRounds, "fair-rounds", 5, "-fairness: rounds")
	fs.IntVar(&f.accept, "accept", 0, "measure how fast this many connections are accepted (raw gws and wsactor behind net/http)")
	fs.IntVar(&f.acceptPerServer, "accept-per-server", 15000, "-accept: connections per server process (an fd limit of 20,000 per process)")
	fs.IntVar(&f.hbtrace, "hbtrace", 0, "trace the heartbeat of this many idle connections, with the server's CPU saturated (build with -tags hbtrace)")
	fs.IntVar(&f.hbProcs, "hb-procs", 2, "-hbtrace: client processes")
	fs.DurationVar(&f.hbInterval, "hb-interval", time.Second, "-hbtrace: the server's WithPingInterval")
	fs.IntVar(&f.hbBurn, "hb-burn", 4, "-hbtrace: goroutines spinning in the server process")
	fs.DurationVar(&f.hbDuration, "hb-duration", 20*time.Second, "-hbtrace: how long to hold the connections")
	fs.StringVar(&f.hbDir, "hb-dir", os.TempDir()+"/wsactor-hbtrace", "-hbtrace: where the processes write their traces")
	fs.IntVar(&f.hbIndex, "hb-index", 0, "hbclient role: this client process's index")
	fs.Usage = func() { usage(fs) }
	return fs
}

// usage prints -h: the summary, how to run it, then the flags by group.
func usage(fs *flag.FlagSet) {
	w := fs.Output()
	fmt.Fprintln(w, usageSummary)
	fmt.Fprint(w, `
usage (figures and commands: BENCHMARKS.md):
  go run ./bench [flags]                   throughput, latency and CPU
  go run ./bench -mem 10000 [flags]        idle memory per connection
  go run ./bench -pending 1000000 [flags]  pending requests expiring
  go run ./bench -fairness 1024 [flags]    one connection's wait while another floods
  go run ./bench -accept 100000 [flags]    accept rate
  go run -tags hbtrace ./bench -hbtrace 6000 [flags]   heartbeat trace
`)
	for _, g := range flagGroups {
		fmt.Fprintf(w, "\n%s\n", g.title)
		// The group's flags, printed by the flag package itself (sorted,
		// with their defaults as defined, not as parsed so far).
		group := flag.NewFlagSet(g.title, flag.ContinueOnError)
		group.SetOutput(w)
		for _, name := range g.names {
			fl := fs.Lookup(name)
			group.Var(fl.Value, fl.Name, fl.Usage)
			group.Lookup(name).DefValue = fl.DefValue
		}
		group.PrintDefaults()
	}
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// outPath is the JSON file to write: -out, or bench/<name> when run from
// the repository root, or <name>.
func outPath(f flags, name string) string {
	if f.out != "" {
		return f.out
	}
	if st, err := os.Stat("bench"); err == nil && st.IsDir() {
		return "bench/" + name
	}
	return name
}
