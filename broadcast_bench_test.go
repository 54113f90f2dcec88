package wsactor_test

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lxzan/gws"
	"github.com/wsactor/wsactor"
)

// The broadcast benchmark: one 100-byte message to every member of a room
// of -members connections (default 10,000), three ways in one run:
//
//	go test -run '^$' -bench 'BroadcastRoom' -benchtime 20x -members 10000 .
//
// impl=wsactor is Server.Broadcast (encoded once), impl=sendloop a loop of
// Conn.Send over Server.Members (encoded per member, what a chat server
// without rooms does), impl=gws raw gws with its Broadcaster (encoded and
// framed once, written by each connection's own write queue). ns/op is the
// time from the call until the last member has read the message (the
// receivers are raw gws clients in a child process, the same for all
// three); server-cpu-ns/delivery is the server process's CPU time (user +
// system, from getrusage) per delivered message.

var members = flag.Int("members", 10000, "room size of BenchmarkBroadcastRoom")

type chatMsg struct {
	Room string `json:"room"`
	From string `json:"from"`
	Text string `json:"text"`
}

// benchMsg encodes to 100 bytes.
var benchMsg = chatMsg{Room: "lobby", From: "alice", Text: strings.Repeat("x", 100-len(`{"room":"lobby","from":"alice","text":""}`))}

// The receivers run in a child process (this test binary again, running
// TestBroadcastReceivers): 10,000 connections take 20,000 descriptors in
// one process, over this machine's limit, and the server's CPU time is then
// the bench process's own.

// receivers are raw gws clients that count the frames they read and print
// "round" each time every one of them has one more.
type receivers struct {
	gws.BuiltinEventHandler
	n   int64
	got atomic.Int64
	out chan struct{}
}

func (r *receivers) OnMessage(c *gws.Conn, m *gws.Message) {
	m.Close()
	if r.got.Add(1)%r.n == 0 {
		r.out <- struct{}{}
	}
}

// TestBroadcastReceivers is BenchmarkBroadcastRoom's helper process; run
// on its own it has nothing to do.
func TestBroadcastReceivers(t *testing.T) {
	url := os.Getenv("WSACTOR_BENCH_RECEIVERS")
	if url == "" {
		t.Skip("the helper process of BenchmarkBroadcastRoom")
	}
	n, err := strconv.Atoi(os.Getenv("WSACTOR_BENCH_MEMBERS"))
	if err != nil {
		t.Fatal(err)
	}
	r := &receivers{n: int64(n), out: make(chan struct{}, 1)}
	var wg sync.WaitGroup
	var ws []*gws.Conn
	defer func() {
		for _, c := range ws {
			_ = c.NetConn().Close()
		}
		wg.Wait()
	}()
	for range n {
		c, _, err := gws.NewClient(r, &gws.ClientOption{Addr: url, ReadBufferSize: 512})
		if err != nil {
			t.Fatalf("dial %d: %v", len(ws), err)
		}
		ws = append(ws, c)
		wg.Go(c.ReadLoop)
	}
	fmt.Println("ready")
	stdin := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(stdin) }()
	for {
		select {
		case <-r.out:
			fmt.Println("round")
		case <-stdin:
			return
		}
	}
}

// child is the parent's handle on the receivers process.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
}

func startReceivers(b *testing.B, url string, n int) *child {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestBroadcastReceivers$", "-test.bench", "^$")
	cmd.Env = append(os.Environ(), "WSACTOR_BENCH_RECEIVERS="+url, "WSACTOR_BENCH_MEMBERS="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: stdin, lines: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	b.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	})
	c.expect(b, "ready")
	return c
}

func (c *child) expect(b *testing.B, want string) {
	b.Helper()
	timeout := time.After(5 * time.Minute)
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				b.Fatalf("the receivers process ended before %q", want)
			}
			if line == want {
				return
			}
		case <-timeout:
			b.Fatalf("no %q from the receivers process", want)
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measureBroadcast times send until every member has read the message.
func measureBroadcast(b *testing.B, c *child, n int, send func()) {
	send() // warm up
	c.expect(b, "round")
	cpu0 := cpuTime()
	rounds := 0
	for b.Loop() {
		send()
		c.expect(b, "round")
		rounds++
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(rounds*n), "server-cpu-ns/delivery")
}

func BenchmarkBroadcastRoom(b *testing.B) {
	n := *members
	for _, impl := range []string{"wsactor", "sendloop"} {
		b.Run("impl="+impl, func(b *testing.B) {
			joined := make(chan struct{}, n)
			srv, url := startServer(b, wsactor.WithPingInterval(0), wsactor.WithConnectHook(func(c *wsactor.Conn) {
				if err := c.Join("room"); err == nil {
					joined <- struct{}{}
				}
			}))
			r := startReceivers(b, url, n)
			for range n {
				<-joined
			}
			// Primus clients get a ping at once from some servers; ours
			// sends none with the heartbeat off, so every frame counted is
			// a broadcast.
			send := func() {
				res, err := srv.Broadcast("room", benchMsg, nil)
				if err != nil || res.Sent != n {
					b.Fatalf("%+v %v", res, err)
				}
			}
			if impl == "sendloop" {
				send = func() {
					for _, c := range srv.Members("room") {
						if err := c.Send(benchMsg); err != nil {
							b.Fatal(err)
						}
					}
				}
			}
			measureBroadcast(b, r, n, send)
		})
	}
	b.Run("impl=gws", func(b *testing.B) {
		url, conns := startRawBroadcastServer(b, n)
		r := startReceivers(b, url, n)
		cs := conns()
		send := func() {
			payload, _ := json.Marshal(benchMsg)
			bc := gws.NewBroadcaster(gws.OpcodeText, payload)
			for _, c := range cs {
				_ = bc.Broadcast(c)
			}
			_ = bc.Close()
		}
		measureBroadcast(b, r, n, send)
	})
}

// startRawBroadcastServer is a bare gws server; conns waits for n
// connections and returns them.
func startRawBroadcastServer(b *testing.B, n int) (string, func() []*gws.Conn) {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	up := gws.NewUpgrader(&gws.BuiltinEventHandler{}, &gws.ServerOption{})
	var mu sync.Mutex
	var cs []*gws.Conn
	ready := make(chan struct{})
	var wg sync.WaitGroup
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r)
		if err != nil {
			return
		}
		mu.Lock()
		cs = append(cs, c)
		if len(cs) == n {
			close(ready)
		}
		mu.Unlock()
		wg.Go(c.ReadLoop)
	})}
	wg.Go(func() { _ = hs.Serve(ln) })
	b.Cleanup(func() {
		_ = hs.Close()
		mu.Lock()
		for _, c := range cs {
			_ = c.NetConn().Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return "ws://" + ln.Addr().String() + "/", func() []*gws.Conn {
		<-ready
		mu.Lock()
		defer mu.Unlock()
		return cs
	}
}
