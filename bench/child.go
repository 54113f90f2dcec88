package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	httppprof "net/http/pprof"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/wsactor/wsactor/bench/internal/impl"
	"github.com/wsactor/wsactor/bench/internal/load"
)

// procStats is what a server child reports about itself (/ctl/stats).
type procStats struct {
	CPUNanos   int64  `json:"cpu_ns"`
	RSS        int64  `json:"rss"`
	HeapAlloc  uint64 `json:"heap_alloc,omitempty"`
	HeapInuse  uint64 `json:"heap_inuse,omitempty"`
	StackInuse uint64 `json:"stack_inuse,omitempty"`
	Sys        uint64 `json:"sys,omitempty"`
	Goroutines int    `json:"goroutines"`
	Conns      int    `json:"conns"`
	load.Counters
}

func selfStats(mem bool, conns int) procStats {
	st := procStats{
		CPUNanos:   int64(load.CPUTime()),
		RSS:        load.RSS(),
		Goroutines: runtime.NumGoroutine(),
		Conns:      conns,
		Counters:   load.OSCounters(),
	}
	if mem {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		st.HeapAlloc, st.HeapInuse, st.StackInuse, st.Sys = ms.HeapAlloc, ms.HeapInuse, ms.StackInuse, ms.Sys
	}
	return st
}

// serveRole is a server child: it serves one implementation on -listen,
// prints "LISTEN <addr>", answers the control endpoints under /ctl/ and
// exits when its stdin closes.
func serveRole(f flags) error {
	if f.cpuprofile != "" {
		pf, err := os.Create(f.cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer func() {
			pprof.StopCPUProfile()
			_ = pf.Close()
		}()
	}
	if f.memRate > 0 {
		runtime.MemProfileRate = f.memRate
	}
	if f.contention {
		runtime.SetMutexProfileFraction(10)
		runtime.SetBlockProfileRate(10_000) // one blocking event per 10 µs blocked
	}
	var srv impl.Server // set before the first request reaches /ctl/
	var profMu sync.Mutex
	var profFile *os.File
	r, err := impl.Start(f.impl, f.listen, func(mux *http.ServeMux) {
		mux.HandleFunc("/debug/pprof/", httppprof.Index)
		mux.HandleFunc("/debug/pprof/profile", httppprof.Profile)
		mux.HandleFunc("/ctl/stats", func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, selfStats(r.URL.Query().Get("mem") != "", srv.Conns()))
		})
		mux.HandleFunc("POST /ctl/gc", func(w http.ResponseWriter, r *http.Request) {
			runtime.GC()
			debug.FreeOSMemory()
			writeJSON(w, selfStats(true, srv.Conns()))
		})
		mux.HandleFunc("POST /ctl/profile/start", func(w http.ResponseWriter, r *http.Request) {
			profMu.Lock()
			defer profMu.Unlock()
			if profFile != nil {
				http.Error(w, "a profile is running", http.StatusConflict)
				return
			}
			pf, err := os.Create(r.URL.Query().Get("path"))
			if err == nil {
				if err = pprof.StartCPUProfile(pf); err != nil {
					_ = pf.Close()
				}
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			profFile = pf
		})
		mux.HandleFunc("POST /ctl/profile/stop", func(w http.ResponseWriter, r *http.Request) {
			profMu.Lock()
			defer profMu.Unlock()
			if profFile != nil {
				pprof.StopCPUProfile()
				_ = profFile.Close()
				profFile = nil
			}
		})
	})
	if err != nil {
		return err
	}
	srv = r.Server
	fmt.Printf("LISTEN %s\n", r.Addr)
	_, _ = io.Copy(io.Discard, os.Stdin) // until the driver goes
	return nil                           // exiting closes every socket
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// holdRole is a client child for the memory measurement: it opens -conns
// connections to -url, makes one round trip on each, prints "READY <n>" and
// holds them idle until its stdin closes.
func holdRole(f flags) error {
	ctx := context.Background()
	base := gcStats(0)
	clients, err := dialMany(ctx, f.impl, f.url, f.conns)
	if err != nil {
		return err
	}
	payload, err := impl.ParsePayload(f.memPayload)
	if err != nil {
		return err
	}
	if err := forEach(len(clients), 64, func(i int) error {
		_, err := clients[i].RoundTrip(ctx, payload, nil)
		return err
	}); err != nil {
		return err
	}
	fmt.Printf("READY %d\n", len(clients))
	// The client side's idle memory, as memOnce measures the server's
	// (the baseline was read before dialing: a wsactor Client's own
	// goroutines and pool are per connection too).
	time.Sleep(3 * time.Second)
	st, n := gcStats(len(clients)), float64(len(clients))
	fmt.Printf("IDLE client %s %d conns: RSS %.0f B/conn, heap %.0f B/conn, stacks %.0f B/conn, %.2f goroutines/conn\n",
		f.impl, len(clients), float64(st.RSS-base.RSS)/n, (float64(st.HeapInuse)-float64(base.HeapInuse))/n,
		(float64(st.StackInuse)-float64(base.StackInuse))/n, float64(st.Goroutines-base.Goroutines)/n)
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil // exiting closes every socket
}

// gcStats is selfStats after two forced GCs and returning memory to the OS,
// as the server's /ctl/gc reads it.
func gcStats(conns int) procStats {
	for range 2 {
		runtime.GC()
		debug.FreeOSMemory()
	}
	return selfStats(true, conns)
}

// dialMany opens n connections, 64 at a time.
func dialMany(ctx context.Context, name, url string, n int) ([]impl.Client, error) {
	clients := make([]impl.Client, n)
	err := forEach(n, 64, func(i int) error {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		c, err := impl.Dial(ctx, name, url)
		clients[i] = c
		return err
	})
	if err != nil {
		closeAll(clients)
		return nil, err
	}
	return clients, nil
}

func closeAll(clients []impl.Client) {
	_ = forEach(len(clients), 64, func(i int) error {
		if clients[i] != nil {
			_ = clients[i].Close()
		}
		return nil
	})
}

// forEach runs fn(0..n-1) on par goroutines and returns the first error.
func forEach(n, par int, fn func(i int) error) error {
	var (
		mu    sync.Mutex
		next  int
		first error
		wg    sync.WaitGroup
	)
	for range min(par, n) {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				stop := first != nil
				mu.Unlock()
				if i >= n || stop {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("#%d: %w", i, err)
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return first
}

// child is a child process of this binary.
type child struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	addr  string // server children: host:port
	hc    *http.Client
}

// spawn starts this binary with args. Its stdout lines arrive on lines; its
// stderr is ours.
func spawn(name string, args ...string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{name: name, cmd: cmd, stdin: stdin, lines: make(chan string, 16), hc: &http.Client{Timeout: time.Minute}}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	}()
	return c, nil
}

// spawnServer starts a server child of the named implementation.
func spawnServer(name string, extra ...string) (*child, error) {
	c, err := spawn("server "+name, append([]string{"-role", "server", "-impl", name}, extra...)...)
	if err != nil {
		return nil, err
	}
	line, err := c.expect("LISTEN ", 30*time.Second)
	if err != nil {
		c.stop()
		return nil, err
	}
	c.addr = line
	return c, nil
}

func (c *child) url() string { return "ws://" + c.addr + "/primus" }

// expect waits for a stdout line starting with prefix and returns the rest.
func (c *child) expect(prefix string, timeout time.Duration) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				return "", fmt.Errorf("%s exited before printing %q", c.name, prefix)
			}
			if rest, found := strings.CutPrefix(line, prefix); found {
				return rest, nil
			}
		case <-t.C:
			return "", fmt.Errorf("%s: no %q within %v", c.name, prefix, timeout)
		}
	}
}

// stop closes the child's stdin (it exits) and waits; it kills a child that
// does not exit within 10 s.
func (c *child) stop() {
	_ = c.stdin.Close()
	done := make(chan struct{})
	go func() {
		_ = c.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}

func (c *child) ctl(method, path string, out any) error {
	req, err := http.NewRequest(method, "http://"+c.addr+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s %s: %s: %s", c.name, path, resp.Status, strings.TrimSpace(string(b)))
	}
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func (c *child) stats(mem bool) (procStats, error) {
	var st procStats
	path := "/ctl/stats"
	if mem {
		path += "?mem=1"
	}
	return st, c.ctl(http.MethodGet, path, &st)
}

func (c *child) gc() (procStats, error) {
	var st procStats
	return st, c.ctl(http.MethodPost, "/ctl/gc", &st)
}

// waitConns waits until the server child reports n connections.
func (c *child) waitConns(n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		st, err := c.stats(false)
		if err != nil {
			return err
		}
		if st.Conns == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %d connections, want %d", c.name, st.Conns, n)
		}
		time.Sleep(20 * time.Millisecond) // polling another process
	}
}
