package conn

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/klauspost/compress/flate"
	"github.com/lxzan/gws"
)

// permessage-deflate (RFC 7692).
//
// gws is left with its own compression off: it negotiates nothing and
// refuses every frame with an RSV bit (close 1002). We negotiate ourselves
// (the server adds its answer to gws's handshake response as it is
// written, netConn.writeAnswer; the client adds the offer to its request
// and reads the answer), compress in Write (RSV1 set by us: our write path
// frames messages itself) and inflate in onMessage.
//
// To get a compressed message past gws, netConn.Read, which sees every
// byte gws reads and follows the frame boundaries (frames.go), rewrites the
// first byte of a compressed TEXT message: RSV1 cleared, opcode BINARY. gws
// then delivers the deflated bytes as a binary message. A genuine binary
// message (which we ignore as ErrBinaryFrame) is told apart by a FIFO of
// one bit per binary message, pushed in Read and popped in onMessage, both
// on the read goroutine, in the same order (gws delivers messages in the
// order it read them). The FIFO holds the binary messages read but not yet
// delivered: at most what fits in gws's 4 KiB read buffer.
//
// Context takeover is never used, in either direction: the server always
// answers server_no_context_takeover and client_no_context_takeover, the
// client always offers both. So each message is deflated and inflated on
// its own with a flate writer or reader (github.com/klauspost/compress,
// about twice as fast as compress/flate at level 1, with a smaller writer)
// taken from a process-wide pool: a connection holds no compression state
// between messages, only deflateState (48 bytes, plus an 8-byte FIFO word
// once a compressed message was read). The process keeps up to GOMAXPROCS
// idle writers per level used (about 500 KB each at level 1, 760 KB at
// levels 2–9: 1 MB at level 1 on 2 cores), and a sync.Pool of readers
// (about 37 KB each, one per message being inflated at the same time).

// Compression configures permessage-deflate (RFC 7692) on a connection: a
// client offers it, a server accepts a client's offer. It is used only on
// connections whose peer agreed ([Conn.Compressed]); the others get plain
// frames. The zero value means the defaults.
//
// Only messages of at least Threshold bytes written with [Conn.Write] (or
// [Conn.WritePrepared]) are compressed, and only when that makes them
// smaller; control messages (heartbeats, "primus::" strings the Conn
// writes itself) never are. Context takeover is never used (the server
// answers, and the client offers, server_no_context_takeover and
// client_no_context_takeover): each message is compressed on its own, so
// a connection keeps no compressor or decompressor between messages
// (they come from a pool shared by the process), at some cost in ratio for
// small messages that repeat what earlier ones said.
type Compression struct {
	// Level is the flate level of outgoing messages: 1 (fastest, the
	// default) to 9 (smallest). On JSON, level 1 costs about 4 µs per
	// 4 KiB message and gets nearly all of the gain (see BENCHMARKS.md).
	Level int
	// Threshold is the size in bytes from which a message is compressed
	// (default 512): a small message compressed on its own (no context)
	// shrinks by a few bytes at best, for the full cost of a compression
	// on both sides.
	Threshold int
}

// Compression defaults.
const (
	DefaultCompressionLevel     = flate.BestSpeed
	DefaultCompressionThreshold = 512
)

func (z *Compression) validate() error {
	if z == nil {
		return nil
	}
	switch {
	case z.Level < 0 || z.Level > 9:
		return fmt.Errorf("%w: Compression.Level %d, want 1 to 9 (0: the default)", ErrInvalidOptions, z.Level)
	case z.Threshold < 0:
		return fmt.Errorf("%w: Compression.Threshold %d < 0", ErrInvalidOptions, z.Threshold)
	}
	return nil
}

func (z *Compression) withDefaults() *Compression {
	if z == nil {
		return nil
	}
	d := *z
	if d.Level == 0 {
		d.Level = DefaultCompressionLevel
	}
	if d.Threshold == 0 {
		d.Threshold = DefaultCompressionThreshold
	}
	return &d
}

// deflateState is a connection's permessage-deflate state, allocated only
// when the extension was offered (client) or accepted (server): nil on
// every other connection. Set before the Conn is shared; on and tx do not
// change afterwards. q and failed are the read goroutine's.
type deflateState struct {
	q      bitQueue
	on     bool // negotiated: incoming RSV1 messages are inflated
	tx     bool // outgoing messages may be compressed (the peer's window allows it)
	failed bool // a compressed message failed the connection: read no more
	// answered (server role): the handshake answer carried the extension.
	answered bool
}

// Compressed reports whether permessage-deflate was negotiated on this
// connection: messages of at least Compression.Threshold bytes are then
// sent compressed, and compressed messages from the peer are accepted.
func (c *Conn) Compressed() bool { return c.nc.dfl != nil && c.nc.dfl.on }

const (
	rsv1     = 0x40
	opBinary = 0x2
)

// head rewrites the first byte b of a data message's first frame (called by
// readState.track): a compressed text message becomes binary without RSV1
// (bit 1 pushed), a binary one loses RSV1 (bit 0 pushed: it is ignored
// anyway). Anything else is left for gws to judge.
func (d *deflateState) head(b byte) byte {
	switch b & 0x0F {
	case opText:
		if b&rsv1 != 0 {
			d.q.push(true)
			return b&^(rsv1|0x0F) | opBinary
		}
	case opBinary:
		d.q.push(false)
		return b &^ rsv1
	}
	return b
}

// bitQueue is a FIFO of bits.
type bitQueue struct {
	w       []uint64
	head, n uint32 // in bits
}

func (q *bitQueue) push(b bool) {
	size := uint32(len(q.w)) * 64
	if q.n == size {
		w := make([]uint64, max(1, 2*len(q.w)))
		for i := range q.n {
			j := (q.head + i) % size
			if q.w[j/64]>>(j%64)&1 != 0 {
				w[i/64] |= 1 << (i % 64)
			}
		}
		q.w, q.head = w, 0
		size = uint32(len(w)) * 64
	}
	i := (q.head + q.n) % size
	if b {
		q.w[i/64] |= 1 << (i % 64)
	} else {
		q.w[i/64] &^= 1 << (i % 64)
	}
	q.n++
}

func (q *bitQueue) pop() (b, ok bool) {
	if q.n == 0 {
		return false, false
	}
	i := q.head
	b = q.w[i/64]>>(i%64)&1 != 0
	q.head = (i + 1) % (uint32(len(q.w)) * 64)
	q.n--
	if q.n == 0 && len(q.w) > 1 {
		q.w, q.head = nil, 0 // a burst is over: keep no more than a word
	}
	return b, true
}

// Negotiation.

const (
	extHeader   = "Sec-WebSocket-Extensions"
	deflateName = "permessage-deflate"
	// deflateOffer is both the client's offer and the server's answer.
	deflateOffer = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
)

// extParams splits one extension of a Sec-WebSocket-Extensions list into
// its name and parameters (values unquoted).
func extParams(ext string) (name string, params [][2]string) {
	parts := strings.Split(ext, ";")
	name = strings.TrimSpace(parts[0])
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(p, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		params = append(params, [2]string{k, v})
	}
	return name, params
}

// windowBits parses a max_window_bits value (8 to 15).
func windowBits(v string) (int, bool) {
	n, err := strconv.Atoi(v)
	return n, err == nil && n >= 8 && n <= 15
}

// acceptOffer reports whether one of the client's permessage-deflate offers
// is one we accept: we compress with a 32 KiB window, so an offer that
// limits server_max_window_bits below 15 is declined (RFC 7692 §7.1.2.1);
// any client window is fine to inflate. Unknown or repeated parameters
// decline the offer (§5).
func acceptOffer(h http.Header) bool {
	for _, line := range h.Values(extHeader) {
	offers:
		for _, ext := range strings.Split(line, ",") {
			name, params := extParams(ext)
			if name != deflateName {
				continue
			}
			seen := map[string]bool{}
			for _, p := range params {
				k, v := p[0], p[1]
				if seen[k] {
					continue offers
				}
				seen[k] = true
				switch k {
				case "server_no_context_takeover", "client_no_context_takeover":
					if v != "" {
						continue offers
					}
				case "server_max_window_bits":
					if n, ok := windowBits(v); !ok || n < 15 {
						continue offers
					}
				case "client_max_window_bits":
					if _, ok := windowBits(v); v != "" && !ok {
						continue offers
					}
				default:
					continue offers
				}
			}
			return true
		}
	}
	return false
}

// acceptAnswer reads the server's answer to our offer: on says the
// extension is in use, tx that we may compress (a client_max_window_bits
// below 15 forbids our 32 KiB window: we then send plain frames, which is
// always allowed). An answer we did not ask for is an error (RFC 7692 §5:
// the client fails the connection).
func acceptAnswer(h http.Header) (on, tx bool, err error) {
	vals := h.Values(extHeader)
	var exts []string
	for _, e := range strings.Split(strings.Join(vals, ","), ",") {
		if strings.TrimSpace(e) != "" {
			exts = append(exts, e)
		}
	}
	if len(exts) == 0 {
		return false, false, nil
	}
	bad := func(why string) (bool, bool, error) {
		return false, false, fmt.Errorf("%w: the server's %s %q: %s", ErrProtocol, extHeader, strings.Join(vals, ", "), why)
	}
	if len(exts) != 1 {
		return bad("more than one extension")
	}
	name, params := extParams(exts[0])
	if name != deflateName {
		return bad("an extension we did not offer")
	}
	tx = true
	noTakeover := false
	for _, p := range params {
		switch p[0] {
		case "server_no_context_takeover":
			noTakeover = true
		case "client_no_context_takeover":
		case "server_max_window_bits":
			if _, ok := windowBits(p[1]); !ok {
				return bad("bad server_max_window_bits")
			}
		case "client_max_window_bits":
			n, ok := windowBits(p[1])
			if !ok {
				return bad("bad client_max_window_bits")
			}
			tx = tx && n == 15
		default:
			return bad("unknown parameter " + p[0])
		}
	}
	if !noTakeover {
		// We inflate each message on its own: a server keeping its context
		// would send messages we cannot read.
		return bad("no server_no_context_takeover")
	}
	return true, tx, nil
}

// writeAnswer is netConn.Write for gws's handshake answer on a server
// connection that accepted permessage-deflate: it adds our
// Sec-WebSocket-Extensions line. gws cannot be given it: its ResponseHeader
// option drops that header, and its own negotiation would turn on its
// compression. gws writes the answer in one piece, ending with the blank
// line; should it not, nothing is added and the connection is left
// uncompressed (Upgrade checks d.answered).
func (n *netConn) writeAnswer(b []byte) (int, error) {
	d := n.dfl
	if d.answered || !bytes.HasSuffix(b, []byte("\r\n\r\n")) {
		return n.Conn.Write(b)
	}
	const line = extHeader + ": " + deflateOffer + "\r\n\r\n"
	out := make([]byte, 0, len(b)+len(line))
	out = append(append(out, b[:len(b)-2]...), line...)
	if _, err := n.Conn.Write(out); err != nil {
		return 0, err
	}
	d.answered = true
	return len(b), nil
}

// The write side.

// compressor is a pooled flate writer and its output.
type compressor struct {
	fw  *flate.Writer
	out sliceWriter
}

type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// compressors are the idle compressors, by level: at most GOMAXPROCS each
// (as many as can compress at once). Not a sync.Pool: that drops its
// content at every other GC, and under load (frequent GCs) each message
// would then risk allocating a new writer of about 500 KB.
var compressors = func() (a [10]chan *compressor) {
	for i := range a {
		a[i] = make(chan *compressor, runtime.GOMAXPROCS(0))
	}
	return a
}()

// deflate compresses p as one permessage-deflate message (the final
// 00 00 ff ff of the sync flush removed, RFC 7692 §7.2.1). ok is false
// when the result would not be smaller than p. The result aliases the
// compressor, which the caller returns to compressors[level] after use.
func deflate(p []byte, level int) (z []byte, cz *compressor, ok bool) {
	select {
	case cz = <-compressors[level]:
	default:
		cz = &compressor{}
		cz.fw, _ = flate.NewWriter(&cz.out, level) // level checked by Validate
	}
	cz.out.b = cz.out.b[:0]
	cz.fw.Reset(&cz.out)
	_, _ = cz.fw.Write(p) // a sliceWriter never fails
	_ = cz.fw.Flush()
	z = bytes.TrimSuffix(cz.out.b, []byte{0, 0, 0xff, 0xff})
	return z, cz, len(z) < len(p)
}

func putCompressor(cz *compressor, level int) {
	if cap(cz.out.b) > 64<<10 {
		cz.out.b = nil
	}
	select {
	case compressors[level] <- cz:
	default: // enough idle ones: left to the GC
	}
}

// writeDeflate is Write for a message to compress: it is deflated outside
// the lock, then queued as a TEXT frame with RSV1 set. MaxOutboundBytes
// counts the compressed frame (what is queued).
func (c *Conn) writeDeflate(frame []byte, alone bool) error {
	level := c.o.Compression.Level
	z, cz, ok := deflate(frame, level)
	defer putCompressor(cz, level)
	if !ok {
		return c.enqueue(opText, frame, true, alone)
	}
	return c.enqueue(opText|rsv1, z, true, alone)
}

// Prepared is one message for many connections ([Conn.WritePrepared]), as
// a broadcast writes: it is compressed at most once, by the first write to
// a connection that compresses it, and the other connections queue the
// same compressed bytes; connections without compression queue the plain
// bytes. The level is that of the first compressing connection (the
// connections of one Upgrader share their options). Safe for concurrent
// use; the zero value is not usable: make it with NewPrepared.
type Prepared struct {
	data []byte
	once sync.Once
	z    []byte // the compressed payload; nil when it would not be smaller
}

// NewPrepared makes a Prepared message of data (not copied: data must not
// change while the Prepared is in use).
func NewPrepared(data []byte) *Prepared { return &Prepared{data: data} }

// WritePrepared is [Conn.Write] of p's message, compressed once for all
// the connections it is written to.
func (c *Conn) WritePrepared(p *Prepared) error {
	if len(p.data) > c.o.MaxMessageSize {
		return ErrTooLarge
	}
	if d := c.nc.dfl; d == nil || !d.tx || len(p.data) < c.o.Compression.Threshold {
		return c.enqueue(opText, p.data, true, false)
	}
	p.once.Do(func() {
		level := c.o.Compression.Level
		z, cz, ok := deflate(p.data, level)
		if ok {
			p.z = bytes.Clone(z)
		}
		putCompressor(cz, level)
	})
	if p.z == nil {
		return c.enqueue(opText, p.data, true, false)
	}
	return c.enqueue(opText|rsv1, p.z, true, false)
}

// The read side.

// deflateTail ends a message's deflate data for the inflater: the
// 00 00 ff ff the sender removed (RFC 7692 §7.2.2), then an empty final
// stored block, so that the reader ends with io.EOF at the message's end.
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// msgReader reads a message's deflate data then deflateTail. It is an
// io.ByteReader, so that flate reads it directly (no bufio.Reader per
// message).
type msgReader struct {
	p    []byte
	tail int // deflateTail bytes read
}

func (r *msgReader) Read(b []byte) (int, error) {
	if len(r.p) > 0 {
		n := copy(b, r.p)
		r.p = r.p[n:]
		return n, nil
	}
	if r.tail == len(deflateTail) {
		return 0, io.EOF
	}
	n := copy(b, deflateTail[r.tail:])
	r.tail += n
	return n, nil
}

func (r *msgReader) ReadByte() (byte, error) {
	if len(r.p) > 0 {
		b := r.p[0]
		r.p = r.p[1:]
		return b, nil
	}
	if r.tail == len(deflateTail) {
		return 0, io.EOF
	}
	r.tail++
	return deflateTail[r.tail-1], nil
}

// inflater is a pooled flate reader with its source.
type inflater struct {
	src msgReader
	fr  io.ReadCloser
}

var (
	inflaters  sync.Pool // *inflater
	inflateBuf sync.Pool // *[]byte
)

// errCorrupt: the peer's deflate data is not valid.
var errCorrupt = errors.New("invalid permessage-deflate data")

// inflate decompresses a message of at most limit bytes. It reads at most
// limit+1 bytes from the inflater, into a buffer that grows (doubling from
// 4× the compressed size) to at most limit+1 bytes, whatever the peer
// declares or sends: a small message that inflates to gigabytes (a zip
// bomb) costs at most limit+1 bytes and the time to inflate them before
// ErrTooLarge. The result is released with putInflateBuf.
func inflate(p []byte, limit int) (*[]byte, error) {
	f, _ := inflaters.Get().(*inflater)
	if f == nil {
		f = &inflater{}
		f.src = msgReader{p: p}
		f.fr = flate.NewReader(&f.src)
	} else {
		f.src = msgReader{p: p}
		_ = f.fr.(flate.Resetter).Reset(&f.src, nil)
	}
	defer func() {
		f.src = msgReader{}
		inflaters.Put(f)
	}()
	bp, _ := inflateBuf.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	buf := (*bp)[:0]
	if cap(buf) == 0 {
		buf = make([]byte, 0, min(limit+1, max(512, 4*len(p))))
	}
	for {
		if len(buf) == cap(buf) {
			if len(buf) > limit {
				break
			}
			nb := make([]byte, len(buf), min(limit+1, 2*cap(buf)))
			copy(nb, buf)
			buf = nb
		}
		n, err := f.fr.Read(buf[len(buf):min(cap(buf), limit+1)])
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			break
		}
		if err == io.EOF {
			*bp = buf
			return bp, nil
		}
		if err != nil {
			*bp = buf
			putInflateBuf(bp)
			return nil, fmt.Errorf("%w: %w: %w", ErrProtocol, errCorrupt, err)
		}
	}
	*bp = buf
	putInflateBuf(bp)
	return nil, fmt.Errorf("%w: a compressed message inflates to more than %d bytes", ErrTooLarge, limit)
}

func putInflateBuf(bp *[]byte) {
	if cap(*bp) > 256<<10 {
		return
	}
	*bp = (*bp)[:0]
	inflateBuf.Put(bp)
}

// onMessageDeflate is onMessage on a connection with permessage-deflate
// offered or negotiated.
func (c *Conn) onMessageDeflate(d *deflateState, m *gws.Message) {
	if d.failed {
		return // closing: what the peer sent after the failure is dropped
	}
	if m.Opcode == gws.OpcodeText {
		c.onText(m.Bytes())
		return
	}
	if compressed, _ := d.q.pop(); !compressed || m.Opcode != gws.OpcodeBinary {
		c.callBadInput(ErrBinaryFrame)
		return
	}
	if !d.on {
		// A client whose offer the server turned down, and that read the
		// server's compressed message along with the handshake answer.
		c.failDeflate(d, 1002, fmt.Errorf("%w: a compressed message without permessage-deflate", ErrProtocol))
		return
	}
	bp, err := inflate(m.Bytes(), c.o.MaxMessageSize)
	if err != nil {
		code := uint16(1002)
		if errors.Is(err, ErrTooLarge) {
			code = 1009
		}
		c.failDeflate(d, code, err)
		return
	}
	c.onText(*bp)
	putInflateBuf(bp)
}

// failDeflate fails the connection for a compressed message it cannot
// take (RFC 6455 §7.1.7): OnClose reports cause (and OnBadInput too for
// ErrTooLarge), the peer gets a close frame with code, and the socket is
// closed without waiting for the peer's answer (at most AbortGrace for
// the close frame to go out), as gws does for a frame over the limit. What
// the peer sends meanwhile is dropped.
func (c *Conn) failDeflate(d *deflateState, code uint16, cause error) {
	d.failed = true
	c.mu.Lock()
	c.setCauseLocked(cause)
	c.mu.Unlock()
	_ = c.closeWith(code, "", false)
	_ = c.Abort()
}
