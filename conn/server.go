package conn

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/lxzan/gws"
)

// Upgrader accepts server-role connections. It is safe for concurrent use;
// make it with NewUpgrader (the zero value is not usable).
type Upgrader struct {
	opts Options
	up   *gws.Upgrader
}

// NewUpgrader validates opts and returns an Upgrader whose connections use
// them. gws is configured with one read goroutine per connection
// (ParallelEnabled off), ReadMaxPayloadSize = MaxMessageSize, no UTF-8 check
// (invalid UTF-8 is reported by the envelope decoder and the connection
// stays), its own compression off (with Options.Compression the Upgrader
// accepts a client's permessage-deflate offer itself: see [Compression]),
// and a Recovery that logs.
func NewUpgrader(opts Options) (*Upgrader, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	o := opts.withDefaults()
	return &Upgrader{
		opts: o,
		up: gws.NewUpgrader(events{}, &gws.ServerOption{
			ReadMaxPayloadSize: o.MaxMessageSize,
			Recovery:           recovery,
			NewSession:         newNoSession,
		}),
	}, nil
}

// Upgrade performs the WebSocket handshake on r and returns the server-role
// Conn; it does not start reading: call Serve. h must not be nil. On error
// the HTTP response has been written (a 400 for a bad handshake) and the
// connection closed. Upgrade does not check Origin; the caller does.
func (u *Upgrader) Upgrade(w http.ResponseWriter, r *http.Request, h Handler) (*Conn, error) {
	if h == nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return nil, fmt.Errorf("%w: nil Handler", ErrInvalidOptions)
	}
	netConn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "cannot upgrade", http.StatusInternalServerError)
		return nil, fmt.Errorf("conn: upgrade: %w", err)
	}
	c := newConn(Server, h, &u.opts)
	c.nc.Conn = netConn
	if u.opts.Compression != nil && acceptOffer(r.Header) {
		// Before the early bytes are tracked; netConn.Write adds the answer.
		c.nc.dfl = &deflateState{on: true, tx: true}
	}
	c.nc.initRead()
	// gws reads through its own bufio.Reader, over c.nc, which follows the
	// frame boundaries (the early bytes are frames too) and on a plain
	// socket buffers the reads itself, holding no buffer while idle
	// (readbuf.go): the hijacked 4 KiB reader is not kept; a small one
	// takes its place, keeping any bytes the client sent early.
	br := brw.Reader
	size := readerSizeFor(netConn)
	if n := br.Buffered(); n > 0 {
		early, _ := br.Peek(n)
		early = bytes.Clone(early)
		c.nc.afterRead(time.Time{}, early)
		br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(early), &c.nc), size)
	} else if size == br.Size() {
		br.Reset(&c.nc)
	} else {
		br = bufio.NewReaderSize(&c.nc, size)
	}
	ws, err := u.up.UpgradeFromConn(&c.nc, br, r)
	if err != nil {
		return nil, fmt.Errorf("conn: upgrade: %w", err)
	}
	if d := c.nc.dfl; d != nil && !d.answered {
		c.nc.dfl = nil // (never: gws wrote its answer in one piece)
	}
	c.ws = ws
	c.nc.setFramed()
	return c, nil
}
