package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/wsactor/wsactor/bench/internal/load"
)

// acceptResult is how fast one implementation's servers accepted Conns
// connections: from the first dial to the last completed upgrade, as the
// client processes saw them.
type acceptResult struct {
	Round    int     `json:"round"`
	Impl     string  `json:"impl"`
	Conns    int     `json:"conns"`
	Servers  int     `json:"servers"`
	Seconds  float64 `json:"seconds"`
	PerSec   float64 `json:"conns_per_sec"`
	ServerCP float64 `json:"server_cpu_us_per_conn"` // the servers' CPU time per accepted connection
}

// acceptMode (-accept N) measures the accept rate: for each implementation
// (raw gws and wsactor, both behind net/http), server processes of at most
// -accept-per-server connections each are started and warmed up, then one
// client process per server dials its share with 64 dials in flight (a
// dial ends when the 101 response is read) and holds the connections. The
// rate is N over the time from the first dial to the last completed one.
func acceptMode(f flags) error {
	impls := splitList(f.memImpls)
	nsrv := (f.accept + f.acceptPerServer - 1) / f.acceptPerServer
	fmt.Printf("%s\naccept rate at %d connections (%d server process(es), %d client process(es)), %d round(s)\n\n",
		environment().String(), f.accept, nsrv, nsrv, f.memRounds)
	var all []acceptResult
	for r := range f.memRounds {
		for i := range impls {
			name := impls[(i+r)%len(impls)]
			res, err := acceptOnce(name, f.accept, nsrv)
			if err != nil {
				return fmt.Errorf("round %d %s: %w", r+1, name, err)
			}
			res.Round = r + 1
			fmt.Fprintf(os.Stderr, "round %d %-8s %6d conns in %6.2f s: %7.0f conns/s, server CPU %5.1f µs/conn\n",
				r+1, name, res.Conns, res.Seconds, res.PerSec, res.ServerCP)
			all = append(all, res)
		}
	}
	med := map[string]acceptResult{}
	rows := [][]string{{"impl", "conns", "conns/s", "seconds", "server CPU µs/conn"}}
	for _, name := range impls {
		var rate, secs, cpu []float64
		for _, m := range all {
			if m.Impl == name {
				rate, secs, cpu = append(rate, m.PerSec), append(secs, m.Seconds), append(cpu, m.ServerCP)
			}
		}
		m := acceptResult{Impl: name, Conns: f.accept, Servers: nsrv, PerSec: load.Median(rate), Seconds: load.Median(secs), ServerCP: load.Median(cpu)}
		med[name] = m
		rows = append(rows, []string{name, strconv.Itoa(f.accept), fmt.Sprintf("%.0f", m.PerSec), fmt.Sprintf("%.2f", m.Seconds), fmt.Sprintf("%.1f", m.ServerCP)})
	}
	title := fmt.Sprintf("accept rate at %d connections (medians of %d rounds)", f.accept, f.memRounds)
	writeTable(os.Stdout, title, rows, false)
	if f.md {
		writeTable(os.Stdout, title, rows, true)
	}
	out := outPath(f, fmt.Sprintf("accept-%d.json", f.accept))
	b, err := json.MarshalIndent(map[string]any{"env": environment(), "medians": med, "rounds": all}, "", "  ")
	if err != nil {
		return err
	}
	fmt.Printf("\nwrote %s\n", out)
	return os.WriteFile(out, b, 0o644)
}

func acceptOnce(name string, n, nsrv int) (acceptResult, error) {
	res := acceptResult{Impl: name, Conns: n, Servers: nsrv}
	servers, shares, err := spawnServers(name, n, nsrv)
	defer stopAll(servers)
	if err != nil {
		return res, err
	}
	// Warm-up: one-time costs are not per connection.
	if err := holdAll(name, servers, func(int) int { return 100 }, nil); err != nil {
		return res, err
	}
	var cpu0 int64
	for _, s := range servers {
		if err := s.waitConns(0, time.Minute); err != nil {
			return res, err
		}
		st, err := s.stats(false)
		if err != nil {
			return res, err
		}
		cpu0 += st.CPUNanos
	}
	holders := make([]*child, 0, nsrv)
	defer func() {
		for _, h := range holders {
			h.stop()
		}
	}()
	for i, s := range servers {
		h, err := spawn("dial "+name, "-role", "dial", "-impl", name, "-url", s.url(), "-conns", strconv.Itoa(shares[i]))
		if err != nil {
			return res, err
		}
		holders = append(holders, h)
	}
	var first, last int64
	for _, h := range holders {
		line, err := h.expect("DIALED ", 5*time.Minute)
		if err != nil {
			return res, err
		}
		var cnt int
		var start, end int64
		if _, err := fmt.Sscanf(line, "%d %d %d", &cnt, &start, &end); err != nil {
			return res, fmt.Errorf("dial child: %q: %w", line, err)
		}
		if first == 0 || start < first {
			first = start
		}
		last = max(last, end)
	}
	var cpu1 int64
	for i, s := range servers {
		if err := s.waitConns(shares[i], time.Minute); err != nil {
			return res, err
		}
		st, err := s.stats(false)
		if err != nil {
			return res, err
		}
		cpu1 += st.CPUNanos
	}
	res.Seconds = float64(last-first) / 1e9
	res.PerSec = float64(n) / res.Seconds
	res.ServerCP = float64(cpu1-cpu0) / 1e3 / float64(n)
	return res, nil
}

// dialRole is -accept's client child: it dials -conns connections to -url,
// 64 at a time, prints "DIALED <n> <first dial, unix ns> <last done, unix
// ns>" and holds them until its stdin closes.
func dialRole(f flags) error {
	start := time.Now()
	clients, err := dialMany(context.Background(), f.impl, f.url, f.conns)
	end := time.Now()
	if err != nil {
		return err
	}
	fmt.Printf("DIALED %d %d %d\n", len(clients), start.UnixNano(), end.UnixNano())
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil // exiting closes every socket
}
