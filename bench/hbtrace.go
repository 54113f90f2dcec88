package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/wsactor/wsactor"
	"github.com/wsactor/wsactor/conn"
)

// hbtraceMode (-hbtrace N) reproduces heartbeat drops of answering clients
// at a small scale and shows where each late pong's time went. Build with
// -tags hbtrace (conn then records every heartbeat step):
//
//	go run -tags hbtrace ./bench -hbtrace 6000 -hb-procs 3 -hb-interval 1s -hb-burn 6 -hb-duration 30s
//
// One server process (WithPingInterval -hb-interval, with -hb-burn goroutines
// spinning in it so that its CPU is saturated) and -hb-procs client
// processes holding N idle wsactor clients that answer pings. At the end
// every process writes its trace to -hb-dir, and the driver joins them per
// connection and per ping: queued (server), read by the client, pong read
// by the server, and the server's next check of that connection.
func hbtraceMode(f flags) error {
	if !conn.HBTraceEnabled {
		return errors.New("-hbtrace needs a build with -tags hbtrace")
	}
	dir := f.hbDir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	args := func(role string, extra ...string) []string {
		return append([]string{"-role", role, "-hb-interval", f.hbInterval.String(), "-hb-burn", fmt.Sprint(f.hbBurn), "-hb-dir", dir}, extra...)
	}
	type child struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		out   *bufio.Scanner
	}
	start := func(a []string) (*child, error) {
		cmd := exec.Command(self, a...)
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		return &child{cmd, in, bufio.NewScanner(out)}, nil
	}
	line := func(c *child, prefix string) (string, error) {
		for c.out.Scan() {
			if l := c.out.Text(); strings.HasPrefix(l, prefix) {
				return strings.TrimPrefix(l, prefix), nil
			} else {
				fmt.Println(l)
			}
		}
		return "", fmt.Errorf("child ended before %q", prefix)
	}
	srv, err := start(args("hbserver"))
	if err != nil {
		return err
	}
	addr, err := line(srv, "LISTEN ")
	if err != nil {
		return err
	}
	var clients []*child
	per := f.hbtrace / f.hbProcs
	for i := range f.hbProcs {
		c, err := start(args("hbclient", "-url", "ws://"+addr+"/primus", "-conns", fmt.Sprint(per), "-hb-index", fmt.Sprint(i)))
		if err != nil {
			return err
		}
		clients = append(clients, c)
	}
	for _, c := range clients {
		if _, err := line(c, "READY"); err != nil {
			return err
		}
	}
	fmt.Printf("%d connections up; burning %d goroutines in the server for %v at a %v ping interval\n", per*f.hbProcs, f.hbBurn, f.hbDuration, f.hbInterval)
	time.Sleep(f.hbDuration)
	_ = srv.stdin.Close()
	summary, err := line(srv, "DONE ")
	if err != nil {
		return err
	}
	for _, c := range clients {
		_ = c.stdin.Close()
		if _, err := line(c, "DONE"); err != nil {
			return err
		}
		_ = c.cmd.Wait()
	}
	_ = srv.cmd.Wait()
	fmt.Println("server:", summary)
	return analyzeHB(dir, f.hbProcs, f.hbInterval)
}

// hbServerRole is -hbtrace's server child.
func hbServerRole(f flags) error {
	var drops atomic.Int64
	srv, err := wsactor.NewServer(wsactor.WithPingInterval(f.hbInterval),
		wsactor.WithDisconnectHook(func(_ *wsactor.Conn, err error) {
			if errors.Is(err, wsactor.ErrHeartbeat) {
				drops.Add(1)
			}
		}))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/primus", srv)
	hs := &http.Server{Handler: mux}
	go func() { _ = hs.Serve(ln) }()
	var stop atomic.Bool
	for range f.hbBurn {
		go func() { // a CPU burner: the server process is saturated
			for i := 0; ; i++ {
				if i&0xffff == 0 && stop.Load() {
					return
				}
			}
		}()
	}
	fmt.Printf("LISTEN %s\n", ln.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	stop.Store(true)
	st := srv.Stats()
	fmt.Printf("DONE accepted %d heartbeat-drops %d open %d\n", st.Accepted, drops.Load(), st.Conns)
	if err := writeTrace(filepath.Join(f.hbDir, "server.trace")); err != nil {
		return err
	}
	_ = srv.Close()
	return nil
}

// hbClientRole is -hbtrace's client child: -conns idle wsactor clients.
func hbClientRole(f flags) error {
	ctx := context.Background()
	clients := make([]*wsactor.Client, f.conns)
	if err := forEach(f.conns, 32, func(i int) error {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		c, err := wsactor.Dial(ctx, f.url)
		clients[i] = c
		return err
	}); err != nil {
		return err
	}
	fmt.Println("READY")
	_, _ = io.Copy(io.Discard, os.Stdin)
	if err := writeTrace(filepath.Join(f.hbDir, fmt.Sprintf("client-%d.trace", f.hbIndex))); err != nil {
		return err
	}
	fmt.Println("DONE")
	return nil // exiting closes every socket
}

func writeTrace(path string) error {
	fh, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := conn.WriteHBTrace(fh); err != nil {
		_ = fh.Close()
		return err
	}
	return fh.Close()
}

type hbKey struct {
	port uint16
	val  int64 // the ping's value (its tick, unix ms)
}

type hbPing struct {
	queued, clientRead, pongRead int64 // unix ns, 0 = never
}

// analyzeHB joins the traces and prints, for the pings of every connection,
// the delays on the way, and for the checks that found no pong, where the
// missing pong was.
func analyzeHB(dir string, procs int, interval time.Duration) error {
	pings := map[hbKey]*hbPing{}
	type check struct {
		at    int64
		alive bool
	}
	checks := map[uint16][]check{}
	get := func(k hbKey) *hbPing {
		p := pings[k]
		if p == nil {
			p = &hbPing{}
			pings[k] = p
		}
		return p
	}
	type pingRef struct {
		at  int64
		val int64
	}
	sent := map[uint16][]pingRef{}
	read := func(name string) error {
		fh, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		defer fh.Close()
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			var kind byte
			var port uint16
			var val, at int64
			if _, err := fmt.Sscanf(sc.Text(), "%c %d %d %d", &kind, &port, &val, &at); err != nil {
				return err
			}
			switch kind {
			case 'P':
				get(hbKey{port, val}).queued = at
				sent[port] = append(sent[port], pingRef{at, val})
			case 'C':
				get(hbKey{port, val}).clientRead = at
			case 'R':
				get(hbKey{port, val}).pongRead = at
			case 'T':
				checks[port] = append(checks[port], check{at, val == 1})
			}
		}
		return sc.Err()
	}
	if err := read("server.trace"); err != nil {
		return err
	}
	for i := range procs {
		if err := read(fmt.Sprintf("client-%d.trace", i)); err != nil {
			return err
		}
	}
	// The heartbeat's walk: how long after its tick each ping was queued.
	var walk, toClient, toServer, rtt []float64
	for k, p := range pings {
		if p.queued == 0 {
			continue
		}
		walk = append(walk, nsMs(p.queued-k.val*1e6))
		if p.clientRead != 0 {
			toClient = append(toClient, nsMs(p.clientRead-p.queued))
			if p.pongRead != 0 {
				toServer = append(toServer, nsMs(p.pongRead-p.clientRead))
			}
		}
		if p.pongRead != 0 {
			rtt = append(rtt, nsMs(p.pongRead-p.queued))
		}
	}
	fmt.Printf("pings queued %d\n", len(walk))
	printDist("tick → ping queued (the walk)", walk)
	printDist("ping queued → read by the client", toClient)
	printDist("ping read by the client → pong read by the server", toServer)
	printDist("ping queued → pong read by the server", rtt)

	// Each failed check: the ping it judged (the latest queued before the
	// previous check), and where that ping's pong was at the failed check.
	var failed, neverRead, lateClient, lateServer int
	var window, lateBy []float64
	for port, cs := range checks {
		ps := sent[port]
		sort.Slice(ps, func(i, j int) bool { return ps[i].at < ps[j].at })
		for i, c := range cs {
			if c.alive || i == 0 {
				continue
			}
			failed++
			prev := cs[i-1].at
			// the ping queued right after the previous check
			j := sort.Search(len(ps), func(j int) bool { return ps[j].at >= prev })
			if j == len(ps) {
				neverRead++
				continue
			}
			p := pings[hbKey{port, ps[j].val}]
			window = append(window, nsMs(c.at-p.queued))
			switch {
			case p.clientRead == 0 || p.clientRead > c.at:
				lateClient++
			case p.pongRead == 0 || p.pongRead > c.at:
				lateServer++
				if p.pongRead != 0 {
					lateBy = append(lateBy, nsMs(p.pongRead-c.at))
				}
			default:
				neverRead++ // read before the check: cannot happen
			}
		}
	}
	fmt.Printf("checks that found nothing read since the previous one: %d (a drop before the fix; after it, a drop only at the %d-th in a row: see the server line)\n", failed, 2)
	fmt.Printf("  ping not yet read by the client at the check: %d\n", lateClient)
	fmt.Printf("  ping read by the client, pong not yet read by the server: %d\n", lateServer)
	fmt.Printf("  other: %d\n", neverRead)
	printDist("  time the dropped connections had: ping queued → next check", window)
	printDist("  pong read by the server after the check by", lateBy)
	return nil
}

func nsMs(ns int64) float64 { return float64(ns) / 1e6 }

func printDist(name string, v []float64) {
	if len(v) == 0 {
		fmt.Printf("%-55s n=0\n", name)
		return
	}
	sort.Float64s(v)
	q := func(p float64) float64 { return v[min(len(v)-1, int(p*float64(len(v))))] }
	fmt.Printf("%-55s n=%-7d p50 %8.1f ms  p90 %8.1f  p99 %8.1f  max %8.1f\n", name, len(v), q(.5), q(.9), q(.99), v[len(v)-1])
}
