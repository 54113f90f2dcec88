package conn

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/lxzan/gws"
)

// Dial connects to a ws:// (or wss://, with the system roots) URL and
// returns the client-role Conn; it does not start reading: call Serve. ctx
// bounds the TCP connect and the whole handshake: when it ends first, the
// socket is closed and Dial returns an error wrapping ctx.Err(). With no
// deadline in ctx the handshake is bounded only by ctx. header is sent with
// the upgrade request (e.g. Origin); with Options.Compression it also
// offers permessage-deflate. The *http.Response is the server's
// answer when one was read (also on a refused handshake).
func Dial(ctx context.Context, rawURL string, header http.Header, h Handler, opts Options) (*Conn, *http.Response, error) {
	if h == nil {
		return nil, nil, fmt.Errorf("%w: nil Handler", ErrInvalidOptions)
	}
	if err := opts.Validate(); err != nil {
		return nil, nil, err
	}
	o := opts.withDefaults()
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrBadURL, err)
	}
	var port string
	switch u.Scheme {
	case "ws":
		port = "80"
	case "wss":
		port = "443"
	default:
		return nil, nil, fmt.Errorf("%w: scheme %q, want ws or wss", ErrBadURL, u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, nil, fmt.Errorf("%w: no host in %q", ErrBadURL, rawURL)
	}
	if u.Port() != "" {
		port = u.Port()
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		return nil, nil, fmt.Errorf("conn: dial: %w", err)
	}
	if u.Scheme == "wss" {
		tc := tls.Client(nc, &tls.Config{ServerName: u.Hostname(), NextProtos: []string{"http/1.1"}})
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = nc.Close()
			return nil, nil, fmt.Errorf("conn: dial: %w", err)
		}
		nc = tc
	}

	c := newConn(Client, h, &o)
	c.nc.Conn = nc
	if o.Compression != nil { // offer permessage-deflate (deflate.go)
		header = header.Clone()
		if header == nil {
			header = http.Header{}
		}
		header.Set(extHeader, deflateOffer)
		c.nc.dfl = &deflateState{} // frames read with the answer are tracked with it
	}
	c.nc.initRead() // readbuf.go
	// gws bounds the handshake with its own timeout and clears the deadline
	// after; ctx cancellation closes the socket, which no deadline change
	// can undo. gws's timeout must stay well behind ctx: gws writes the
	// request from a goroutine that reports to an unbuffered channel, so if
	// its own timeout wins the race with that write's end, the goroutine
	// waits on the channel forever. Closing the socket at ctx's end makes
	// the write return at once; a minute of margin covers any scheduling
	// delay (the 100,000-connection soak, at load 59, left about 100 such
	// goroutines per client process with a second of margin).
	handshake := 365 * 24 * time.Hour
	if dl, ok := ctx.Deadline(); ok {
		handshake = time.Until(dl) + time.Minute // ctx fires first
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.Close() })
	ws, resp, err := gws.NewClientFromConn(events{}, &gws.ClientOption{
		ReadMaxPayloadSize: o.MaxMessageSize,
		Recovery:           recovery,
		NewSession:         newNoSession,
		Addr:               rawURL,
		RequestHeader:      header,
		HandshakeTimeout:   handshake,
		ReadBufferSize:     readerSizeFor(nc), // readbuf.go
	}, &c.nc)
	if !stop() {
		_ = nc.Close()
		return nil, resp, fmt.Errorf("conn: dial: %w", context.Cause(ctx))
	}
	if err != nil {
		return nil, resp, fmt.Errorf("conn: dial: handshake: %w", err)
	}
	if d := c.nc.dfl; d != nil {
		on, tx, err := acceptAnswer(resp.Header)
		if err != nil {
			_ = nc.Close()
			return nil, resp, fmt.Errorf("conn: dial: handshake: %w", err)
		}
		d.on, d.tx = on, tx
		if !on && d.q.n == 0 {
			c.nc.dfl = nil // turned down: RSV1 frames now fail in gws (1002)
		}
	}
	c.ws = ws
	c.nc.setFramed()
	return c, resp, nil
}
