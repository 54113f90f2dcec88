package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

func main() {
	cfg := defaultConfig()
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on (with -nodes N, node i listens on the port + i)")
	nodes := flag.Int("nodes", 1, "how many chat nodes to run in this process, joined over NATS")
	flag.StringVar(&cfg.NATS, "nats", "", `NATS URL to join other nodes ("embedded": start a NATS server on 127.0.0.1 in this process; the default with -nodes 2 or more)`)
	flag.DurationVar(&cfg.PresenceEvery, "presence", cfg.PresenceEvery, "how often the server checks who is still there")
	flag.DurationVar(&cfg.PresenceTimeout, "presence-timeout", cfg.PresenceTimeout, "how long a browser has to answer a presence check")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runNodes(ctx, *addr, *nodes, cfg, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// runNodes runs n chat nodes on consecutive ports from addr's (random ports
// for port 0), joined over cfg.NATS, or over a NATS server embedded in this
// process when cfg.NATS is "embedded", or empty with n > 1.
func runNodes(ctx context.Context, addr string, n int, cfg config, out io.Writer) error {
	if n < 1 {
		return fmt.Errorf("chat: -nodes %d", n)
	}
	if cfg.NATS == "embedded" || (cfg.NATS == "" && n > 1) {
		ns, err := startNATS()
		if err != nil {
			return err
		}
		defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
		cfg.NATS = ns.ClientURL()
		fmt.Fprintf(out, "wsactor chat: NATS at %s\n", cfg.NATS)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	base, err := strconv.Atoi(port)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i := range n {
		a := addr
		if base != 0 {
			a = net.JoinHostPort(host, strconv.Itoa(base+i))
		}
		c := cfg
		if cfg.NATS != "" && n > 1 {
			c.NodeID = "node" + strconv.Itoa(i+1)
		}
		wg.Go(func() {
			errs[i] = run(ctx, a, c, out)
			cancel() // one node failing stops the others
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// startNATS runs a NATS server on 127.0.0.1 on a random port.
func startNATS() (*server.Server, error) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		return nil, err
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("chat: the embedded NATS server did not start")
	}
	return ns, nil
}

// run serves one chat node on addr until ctx ends; it prints the URL to
// out.
func run(ctx context.Context, addr string, cfg config, out io.Writer) error {
	app, err := newChat(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		_ = app.Close()
		return err
	}
	fmt.Fprintf(out, "wsactor chat: open http://%s/ in two tabs (Ctrl-C to stop)\n", ln.Addr())
	hs := &http.Server{Handler: app, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	select {
	case err = <-served:
	case <-ctx.Done():
	}
	// The wsactor server closes the WebSocket connections (hijacked, so
	// http.Server.Shutdown does not see them), then the HTTP server stops.
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return errors.Join(err, app.Shutdown(shutCtx), hs.Shutdown(shutCtx))
}
