// Command echo is the smallest complete wsactor program: a server and a
// client in one process, each asking the other something. It runs in a
// second and exits:
//
//	go run ./examples/echo
//
// The README's usage section is this file, verbatim (a test checks it).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/wsactor/wsactor"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, out io.Writer) error {
	srv, err := wsactor.NewServer(
		wsactor.WithRequestTimeout(5*time.Second),
		wsactor.WithRequestHandler(add),
	)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/primus", srv)  // Primus clients connect to /primus
	mux.Handle("/primus/", srv) // and fetch /primus/spec
	// Without ReadHeaderTimeout, a peer that sends its upgrade request
	// slowly (slowloris) holds a socket and a goroutine forever.
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go hs.Serve(ln) // returns http.ErrServerClosed after hs.Shutdown
	url := "ws://" + ln.Addr().String() + "/primus"
	fmt.Fprintln(out, "server listening on", url)

	err = ask(ctx, url, out)

	// Shutdown drains the requests in flight and closes the WebSocket
	// connections with 1001; then the HTTP server stops (it does not see
	// upgraded connections).
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return errors.Join(err, srv.Shutdown(shutCtx), hs.Shutdown(shutCtx))
}

// add is the server's request handler. It runs on a bounded pool, so it may
// block, and it may ask the peer back on the same connection.
func add(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
	var in struct{ A, B int }
	if err := req.Decode(&in); err != nil {
		return nil, &wsactor.RemoteError{Code: "bad_request", Message: err.Error()}
	}
	resp, err := c.Request(ctx, "who are you?")
	if err != nil {
		return nil, err // the client gets an error reply
	}
	var name string
	if err := resp.Decode(&name); err != nil {
		return nil, err
	}
	return fmt.Sprintf("%d + %d = %d, %s", in.A, in.B, in.A+in.B, name), nil // JSON-encoded into the reply's "data"
}

// ask dials the server, answers its question and asks it one.
func ask(ctx context.Context, url string, out io.Writer) error {
	// The client is supervised: it reconnects with backoff when the
	// connection drops. Handlers are options, in place before the first frame.
	cl, err := wsactor.Dial(ctx, url,
		wsactor.WithRequestHandler(func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
			fmt.Fprintf(out, "the server asked: %s\n", req.Data)
			return "gopher", nil
		}))
	if err != nil {
		return err
	}
	defer cl.Close()

	resp, err := cl.Request(ctx, map[string]int{"A": 1, "B": 2}) // blocks until the reply
	if err != nil {
		return err
	}
	var answer string
	if err := resp.Decode(&answer); err != nil {
		return err
	}
	fmt.Fprintln(out, "the server answered:", answer)
	return nil
}
