package wsactor

import (
	"fmt"

	"github.com/wsactor/wsactor/conn"
)

// Compression configures permessage-deflate (RFC 7692): Level is the flate
// level of outgoing messages (1, the fastest, by default; up to 9) and
// Threshold the size from which a message is compressed (512 bytes by
// default). The zero value means the defaults. See [WithCompression].
type Compression = conn.Compression

// Compression defaults.
const (
	DefaultCompressionLevel     = conn.DefaultCompressionLevel
	DefaultCompressionThreshold = conn.DefaultCompressionThreshold
)

// WithCompression offers (Dial) or accepts (NewServer) permessage-deflate,
// negotiated per connection: a peer that does not offer it (or a server
// that does not accept it) gets plain frames ([Conn.Compressed] says
// which). Off by default: compressing costs CPU on both sides, and on the
// usual small messages of a request-response protocol it gains nothing.
// Browsers offer it by default, and so do Node Primus clients (their ws
// offers it by default).
//
// Messages of at least c.Threshold bytes are compressed when that makes
// them smaller; heartbeats and other control messages never are. A
// broadcast compresses its message once for all the members that
// negotiated compression. Context takeover is never used, either way (the
// server answers, and the client offers, server_no_context_takeover and
// client_no_context_takeover): each message is compressed and inflated on
// its own with flate state taken from a process-wide pool, so a connection
// holds no compressor or decompressor while it is idle (see BENCHMARKS.md
// for the measured cost per connection). [WithMaxOutboundBytes] counts the
// compressed bytes queued.
//
// Incoming compressed messages are bounded by [WithMaxMessageSize] after
// inflation: a message that would inflate beyond it closes the connection
// with 1009 and [ErrTooLarge] once the limit is reached, and never makes
// the process hold more than about the limit for it (a zip bomb costs the
// CPU to inflate that much, no more). A compressed frame on a connection
// that did not negotiate compression closes it with 1002 (protocol error).
func WithCompression(c Compression) Option {
	return Option{"WithCompression", both, func(o *options) { o.compression = &c }}
}

func checkCompression(c *conn.Compression) error {
	if c == nil {
		return nil
	}
	if err := (conn.Options{Compression: c}).Validate(); err != nil {
		return fmt.Errorf("%w: WithCompression: %w", ErrInvalidOption, err)
	}
	return nil
}

// Compressed reports whether permessage-deflate was negotiated on this
// connection (both sides use [WithCompression], or a browser with it on
// the server).
func (c *Conn) Compressed() bool { return c.wc.Compressed() }
