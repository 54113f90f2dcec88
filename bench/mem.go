package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/wsactor/wsactor/bench/internal/load"
)

// memResult is the idle memory of one implementation's servers holding
// Conns connections (split over Servers processes), per connection.
type memResult struct {
	Round      int     `json:"round"`
	Impl       string  `json:"impl"`
	Conns      int     `json:"conns"`
	Servers    int     `json:"servers"`
	RSS        float64 `json:"rss_bytes_per_conn"`
	HeapInuse  float64 `json:"heap_inuse_bytes_per_conn"`
	StackInuse float64 `json:"stack_inuse_bytes_per_conn"`
	Goroutines float64 `json:"goroutines_per_conn"`
	BaseRSS    int64   `json:"base_rss_bytes"` // summed over the server processes
}

// memMode measures idle server memory per connection: for each
// implementation, server processes are started and warmed up, their RSS is
// read after a forced GC, client processes open and hold the connections
// (one round trip each, then idle), and after the server's on-demand
// goroutines have exited the RSS is read again.
func memMode(f flags) error {
	holdPayload = f.memPayload
	impls := splitList(f.memImpls)
	nsrv := (f.mem + f.memPerServer - 1) / f.memPerServer
	fmt.Printf("%s\nidle memory at %d connections (%d server process(es), %d client process(es)), %d round(s)\n\n",
		environment().String(), f.mem, nsrv, nsrv, f.memRounds)
	var all []memResult
	for r := range f.memRounds {
		for i := range impls {
			name := impls[(i+r)%len(impls)]
			res, err := memOnce(name, f.mem, nsrv)
			if err != nil {
				return fmt.Errorf("round %d %s: %w", r+1, name, err)
			}
			res.Round = r + 1
			fmt.Fprintf(os.Stderr, "round %d %-8s %6d conns: RSS %7.0f B/conn, heap %7.0f B/conn, stacks %7.0f B/conn, %.2f goroutines/conn\n",
				r+1, name, res.Conns, res.RSS, res.HeapInuse, res.StackInuse, res.Goroutines)
			all = append(all, res)
		}
	}
	med := map[string]memResult{}
	rows := [][]string{{"impl", "conns", "RSS B/conn", "heap B/conn", "stacks B/conn", "goroutines/conn"}}
	for _, name := range impls {
		var rss, heap, stack, gor []float64
		for _, m := range all {
			if m.Impl == name {
				rss, heap, stack, gor = append(rss, m.RSS), append(heap, m.HeapInuse), append(stack, m.StackInuse), append(gor, m.Goroutines)
			}
		}
		m := memResult{Impl: name, Conns: f.mem, Servers: nsrv, RSS: load.Median(rss), HeapInuse: load.Median(heap), StackInuse: load.Median(stack), Goroutines: load.Median(gor)}
		med[name] = m
		rows = append(rows, []string{name, strconv.Itoa(f.mem), fmt.Sprintf("%.0f", m.RSS), fmt.Sprintf("%.0f", m.HeapInuse), fmt.Sprintf("%.0f", m.StackInuse), fmt.Sprintf("%.2f", m.Goroutines)})
	}
	for _, name := range impls {
		if name == "raw" {
			continue
		}
		if raw, ok := med["raw"]; ok {
			m := med[name]
			rows = append(rows, []string{name + " − raw", "", fmt.Sprintf("%+.0f", m.RSS-raw.RSS), fmt.Sprintf("%+.0f", m.HeapInuse-raw.HeapInuse), fmt.Sprintf("%+.0f", m.StackInuse-raw.StackInuse), fmt.Sprintf("%+.2f", m.Goroutines-raw.Goroutines)})
		}
	}
	title := fmt.Sprintf("idle server memory per connection at %d connections (medians of %d rounds)", f.mem, f.memRounds)
	writeTable(os.Stdout, title, rows, false)
	if f.md {
		writeTable(os.Stdout, title, rows, true)
	}
	out := outPath(f, fmt.Sprintf("mem-%d.json", f.mem))
	b, err := json.MarshalIndent(map[string]any{"env": environment(), "medians": med, "rounds": all}, "", "  ")
	if err != nil {
		return err
	}
	fmt.Printf("\nwrote %s\n", out)
	if err := os.WriteFile(out, b, 0o644); err != nil {
		return err
	}
	if f.memProfile != "" {
		for _, name := range impls {
			if err := memProfile(f.memProfile, name, f.mem, nsrv); err != nil {
				return fmt.Errorf("heap profile %s: %w", name, err)
			}
		}
	}
	return nil
}

// memProfile writes heap profiles of the first of nsrv servers of the named
// implementation, recording every allocation (MemProfileRate 1, which
// inflates memory: this runs apart from the measured rounds), after the
// warm-up and after its share of n connections was opened, used for one
// round trip each and left idle: the difference (go tool pprof -base) is
// what the idle connections hold.
func memProfile(dir, name string, n, nsrv int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	s, err := spawnServer(name, "-memprofilerate", "1")
	if err != nil {
		return err
	}
	defer s.stop()
	if err := holdAll(name, []*child{s}, func(int) int { return 100 }, nil); err != nil {
		return err
	}
	if err := s.waitConns(0, time.Minute); err != nil {
		return err
	}
	time.Sleep(2 * time.Second) // as in memOnce
	base := filepath.Join(dir, "heap-"+name+"-base.pb.gz")
	if err := s.heapProfile(base); err != nil {
		return err
	}
	conns := n / nsrv
	final := filepath.Join(dir, "heap-"+name+".pb.gz")
	err = holdAll(name, []*child{s}, func(int) int { return conns }, func() error {
		if err := s.waitConns(conns, time.Minute); err != nil {
			return err
		}
		time.Sleep(3 * time.Second) // idle: on-demand goroutines exit
		return s.heapProfile(final)
	})
	if err == nil {
		fmt.Printf("wrote %s (%d connections; baseline %s)\n", final, conns, base)
	}
	return err
}

// heapProfile writes the server child's heap profile, taken after a GC.
func (c *child) heapProfile(path string) error {
	if _, err := c.gc(); err != nil {
		return err
	}
	resp, err := c.hc.Get("http://" + c.addr + "/debug/pprof/heap?gc=1")
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: heap profile: %s", c.name, resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// spawnServers starts nsrv server children of implementation name and
// splits n connections between them (shares[i] for server i). The servers
// started so far are returned even with an error: stop them with stopAll.
func spawnServers(name string, n, nsrv int) (servers []*child, shares []int, err error) {
	servers = make([]*child, 0, nsrv)
	shares = make([]int, nsrv)
	for i := range nsrv {
		shares[i] = n / nsrv
		if i < n%nsrv {
			shares[i]++
		}
		s, err := spawnServer(name)
		if err != nil {
			return servers, shares, err
		}
		servers = append(servers, s)
	}
	return servers, shares, nil
}

func stopAll(servers []*child) {
	for _, s := range servers {
		s.stop()
	}
}

func memOnce(name string, n, nsrv int) (memResult, error) {
	res := memResult{Impl: name, Conns: n, Servers: nsrv}
	servers, shares, err := spawnServers(name, n, nsrv)
	defer stopAll(servers)
	if err != nil {
		return res, err
	}
	// Warm up every server with a few connections (one-time costs such
	// as the handler pool and code paths are not per connection), then
	// read the baseline.
	if err := holdAll(name, servers, func(int) int { return 100 }, nil); err != nil {
		return res, err
	}
	base := make([]procStats, nsrv)
	for _, s := range servers {
		if err := s.waitConns(0, time.Minute); err != nil {
			return res, err
		}
	}
	time.Sleep(2 * time.Second) // on-demand goroutines (handler pool workers) exit after 1 s idle
	for i, s := range servers {
		if _, err := s.gc(); err != nil {
			return res, err
		}
		st, err := s.gc()
		if err != nil {
			return res, err
		}
		base[i] = st
		res.BaseRSS += st.RSS
	}
	err = holdAll(name, servers, func(i int) int { return shares[i] }, func() error {
		for i, s := range servers {
			if err := s.waitConns(shares[i], time.Minute); err != nil {
				return err
			}
		}
		time.Sleep(3 * time.Second) // idle: on-demand goroutines exit
		var d procStats
		var dHeap, dStack int64
		for i, s := range servers {
			if _, err := s.gc(); err != nil {
				return err
			}
			st, err := s.gc()
			if err != nil {
				return err
			}
			d.RSS += st.RSS - base[i].RSS
			dHeap += int64(st.HeapInuse) - int64(base[i].HeapInuse)
			dStack += int64(st.StackInuse) - int64(base[i].StackInuse)
			d.Goroutines += st.Goroutines - base[i].Goroutines
		}
		res.RSS = float64(d.RSS) / float64(n)
		res.HeapInuse = float64(dHeap) / float64(n)
		res.StackInuse = float64(dStack) / float64(n)
		res.Goroutines = float64(d.Goroutines) / float64(n)
		return nil
	})
	return res, err
}

// holdPayload is the -mem-payload of the hold children.
var holdPayload = "small"

// holdAll starts one hold child per server with conns(i) connections,
// waits until all are ready, runs then (if not nil) and stops them.
func holdAll(name string, servers []*child, conns func(i int) int, then func() error) error {
	holders := make([]*child, 0, len(servers))
	defer func() {
		for _, h := range holders {
			h.stop()
		}
	}()
	for i, s := range servers {
		h, err := spawn("hold "+name, "-role", "hold", "-impl", name, "-url", s.url(), "-conns", strconv.Itoa(conns(i)), "-mem-payload", holdPayload)
		if err != nil {
			return err
		}
		holders = append(holders, h)
	}
	for _, h := range holders {
		if _, err := h.expect("READY ", 5*time.Minute); err != nil {
			return err
		}
	}
	if then != nil {
		return then()
	}
	return nil
}
