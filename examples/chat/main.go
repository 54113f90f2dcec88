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
	"syscall"
	"time"
)

func main() {
	cfg := defaultConfig()
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	flag.DurationVar(&cfg.PresenceEvery, "presence", cfg.PresenceEvery, "how often the server checks who is still there")
	flag.DurationVar(&cfg.PresenceTimeout, "presence-timeout", cfg.PresenceTimeout, "how long a browser has to answer a presence check")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, cfg, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// run serves the chat on addr until ctx ends; it prints the URL to out.
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
