package conn_test

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsactor/wsactor/conn"
)

var deflateOn = &conn.Compression{}

// payload is a JSON string of about n bytes that compresses well, as chat
// or game JSON does.
func payload(n int) []byte {
	var b bytes.Buffer
	b.WriteByte('"')
	for i := 0; b.Len() < n-1; i++ {
		fmt.Fprintf(&b, "player %d moved to x=%d y=%d; ", i%17, i%101, i%37)
	}
	b.Truncate(n - 1)
	b.WriteByte('"')
	return b.Bytes()
}

// deflateRaw compresses p as a permessage-deflate message (no context).
func deflateRaw(t testing.TB, p []byte, level int) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := flate.NewWriter(&b, level)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write(p)
	_ = w.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}

func inflateRaw(t testing.TB, z []byte) []byte {
	t.Helper()
	r := flate.NewReader(io.MultiReader(bytes.NewReader(z), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff})))
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("inflate: %v", err)
	}
	return b
}

// rawDeflateHandshake is rawHandshake offering ext (none when empty); it
// returns the socket, a reader of what follows the response, and the
// response's Sec-WebSocket-Extensions.
func rawDeflateHandshake(t testing.TB, wsURL, ext string) (net.Conn, *bufio.Reader, string) {
	t.Helper()
	u, err := url.Parse(wsURL)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n", u.Path, u.Host)
	if ext != "" {
		req += "Sec-WebSocket-Extensions: " + ext + "\r\n"
	}
	if _, err := io.WriteString(nc, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake status %d", resp.StatusCode)
	}
	return nc, br, resp.Header.Get("Sec-WebSocket-Extensions")
}

// readFrame reads one unmasked frame: its first byte and its payload.
func readFrame(t testing.TB, br *bufio.Reader) (byte, []byte) {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Fatalf("read frame: %v", err)
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var e [2]byte
		_, _ = io.ReadFull(br, e[:])
		n = uint64(binary.BigEndian.Uint16(e[:]))
	case 127:
		var e [8]byte
		_, _ = io.ReadFull(br, e[:])
		n = binary.BigEndian.Uint64(e[:])
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(br, p); err != nil {
		t.Fatalf("read payload: %v", err)
	}
	return h[0], p
}

// readClose reads frames until a close frame and returns its code.
func readClose(t testing.TB, nc net.Conn, br *bufio.Reader) uint16 {
	t.Helper()
	_ = nc.SetReadDeadline(time.Now().Add(waitFor))
	for {
		b0, p := readFrame(t, br)
		if b0&0x0F == 0x8 {
			if len(p) < 2 {
				return 1005
			}
			return binary.BigEndian.Uint16(p)
		}
	}
}

// The server's side on the wire: a large message goes out as one TEXT frame
// with RSV1 whose payload is the deflated message, a small one as a plain
// TEXT frame; the answer header declines context takeover both ways.
func TestDeflateServerFramesOnTheWire(t *testing.T) {
	rec := newRecorder()
	s := startServer(t, conn.Options{Compression: deflateOn}, rec)
	nc, br, ext := rawDeflateHandshake(t, s.url, "permessage-deflate; client_max_window_bits")
	if ext != "permessage-deflate; server_no_context_takeover; client_no_context_takeover" {
		t.Fatalf("Sec-WebSocket-Extensions %q", ext)
	}
	c := s.accept(t)
	if !c.Compressed() {
		t.Fatal("Compressed() false on a negotiated connection")
	}
	big := payload(4096)
	if err := c.Write(big); err != nil {
		t.Fatal(err)
	}
	if err := c.Write([]byte(`"small"`)); err != nil {
		t.Fatal(err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(waitFor))
	b0, z := readFrame(t, br)
	if b0 != 0xC1 {
		t.Fatalf("first byte %#x, want 0xC1 (FIN, RSV1, TEXT)", b0)
	}
	if len(z) >= len(big)/3 {
		t.Fatalf("compressed payload %d bytes for %d", len(z), len(big))
	}
	if got := inflateRaw(t, z); !bytes.Equal(got, big) {
		t.Fatal("the compressed frame does not inflate to the message")
	}
	b0, p := readFrame(t, br)
	if b0 != 0x81 || string(p) != `"small"` {
		t.Fatalf("small message: first byte %#x, payload %q; want a plain TEXT frame", b0, p)
	}
}

// The server's side of reading: compressed messages, whole or fragmented,
// mixed with plain and binary ones in one write, arrive in order; a binary
// frame is still ignored (ErrBinaryFrame) and the connection stays.
func TestDeflateServerReadsCompressedMessages(t *testing.T) {
	rec := newRecorder()
	s := startServer(t, conn.Options{Compression: deflateOn}, rec)
	nc, _, _ := rawDeflateHandshake(t, s.url, "permessage-deflate")
	_ = s.accept(t)
	big := payload(3000)
	z := deflateRaw(t, big, 6)
	var w []byte
	w = append(w, clientFrame(0xC1, len(z), string(z))...)         // compressed
	w = append(w, clientFrame(0x82, 3, "bin")...)                  // binary
	w = append(w, clientFrame(0x81, 7, `"plain"`)...)              // plain text
	w = append(w, clientFrame(0xC2, 3, "zzz")...)                  // compressed binary
	w = append(w, clientFrame(0x41, 10, string(z[:10]))...)        // compressed, first fragment
	w = append(w, clientFrame(0x89, 0, "")...)                     // ping between fragments
	w = append(w, clientFrame(0x80, len(z)-10, string(z[10:]))...) // last fragment
	write(t, nc, w)
	if e := rec.nextEnv(t); !(e.data == string(big)) {
		t.Fatalf("first message %.40q…, want the inflated payload", e.data)
	}
	if err := rec.nextBad(t); !errors.Is(err, conn.ErrBinaryFrame) {
		t.Fatalf("OnBadInput %v, want ErrBinaryFrame", err)
	}
	if e := rec.nextEnv(t); string(e.data) != `"plain"` {
		t.Fatalf("second message %q", e.data)
	}
	if err := rec.nextBad(t); !errors.Is(err, conn.ErrBinaryFrame) {
		t.Fatalf("OnBadInput %v, want ErrBinaryFrame", err)
	}
	if e := rec.nextEnv(t); !(e.data == string(big)) {
		t.Fatalf("fragmented message %.40q…", e.data)
	}
}

// countingListener counts the bytes its connections read and write.
type countingListener struct {
	net.Listener
	in, out atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, l: l}, nil
}

type countingConn struct {
	net.Conn
	l *countingListener
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.l.in.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.l.out.Add(int64(n))
	return n, err
}

// startCountingServer is startServer over a countingListener. The server's
// Conns write through raw syscalls when the socket allows, bypassing
// countingConn.Write: only reads are counted reliably (use the peer's).
func startCountingServer(t testing.TB, opts conn.Options, h conn.Handler) (*server, *countingListener) {
	t.Helper()
	var cl *countingListener
	s := startServerOn(t, opts, h, func(l net.Listener) net.Listener {
		cl = &countingListener{Listener: l}
		return cl
	})
	return s, cl
}

// A Go client and a Go server, both with compression: 4 KiB messages go
// both ways intact, and what crosses the wire is compressed (counted on
// the server's socket, for the client's messages, and on a counting proxy
// conn for the server's).
func TestDeflateRoundTripIsCompressedOnTheWire(t *testing.T) {
	srvRec, cliRec := newRecorder(), newRecorder()
	s, cl := startCountingServer(t, conn.Options{Compression: deflateOn}, srvRec)
	cli := dial(t, s.url, conn.Options{Compression: deflateOn}, cliRec)
	srv := s.accept(t)
	recv(t, srvRec.opened, "server OnOpen")
	recv(t, cliRec.opened, "client OnOpen")
	if !cli.Compressed() || !srv.Compressed() {
		t.Fatalf("Compressed(): client %v, server %v; want both", cli.Compressed(), srv.Compressed())
	}
	const n, size = 50, 4096
	base := cl.in.Load()
	for i := range n {
		msg := payload(size)
		msg[1] = byte('a' + i%26)
		if err := cli.Write(msg); err != nil {
			t.Fatal(err)
		}
		if e := srvRec.nextEnv(t); !(e.data == string(msg)) {
			t.Fatalf("server got message %d wrong", i)
		}
		if err := srv.Write(msg); err != nil {
			t.Fatal(err)
		}
		if e := cliRec.nextEnv(t); !(e.data == string(msg)) {
			t.Fatalf("client got message %d wrong", i)
		}
	}
	read := cl.in.Load() - base
	if read > n*size/3 {
		t.Fatalf("the server read %d bytes for %d messages of %d bytes: not compressed", read, n, size)
	}
	t.Logf("client→server: %d bytes on the wire for %d bytes of messages (%.1f%%)", read, n*size, 100*float64(read)/float64(n*size))
}

// Negotiation matrix: compression is used only when both sides want it;
// otherwise both send plain frames, and messages still go both ways.
func TestDeflateNegotiationMatrix(t *testing.T) {
	for _, tc := range []struct{ srv, cli bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		t.Run(fmt.Sprintf("server=%v/client=%v", tc.srv, tc.cli), func(t *testing.T) {
			var so, co conn.Options
			if tc.srv {
				so.Compression = deflateOn
			}
			if tc.cli {
				co.Compression = deflateOn
			}
			p := newPair(t, so, co)
			want := tc.srv && tc.cli
			if p.srv.Compressed() != want || p.cli.Compressed() != want {
				t.Fatalf("Compressed(): server %v, client %v; want %v", p.srv.Compressed(), p.cli.Compressed(), want)
			}
			msg := payload(2048)
			if err := p.cli.Write(msg); err != nil {
				t.Fatal(err)
			}
			if e := p.srvRec.nextEnv(t); !(e.data == string(msg)) {
				t.Fatal("server got the message wrong")
			}
			if err := p.srv.Write(msg); err != nil {
				t.Fatal(err)
			}
			if e := p.cliRec.nextEnv(t); !(e.data == string(msg)) {
				t.Fatal("client got the message wrong")
			}
		})
	}
}

// Offers the server must decline (RFC 7692): a server window below 15
// (we compress with 32 KiB), unknown or repeated parameters, another
// extension. A later acceptable offer in the same header is taken.
func TestDeflateServerDeclinesOffers(t *testing.T) {
	s := startServer(t, conn.Options{Compression: deflateOn}, newRecorder())
	for _, tc := range []struct{ offer, want string }{
		{"permessage-deflate; server_max_window_bits=10", ""},
		{"permessage-deflate; foo", ""},
		{"permessage-deflate; client_no_context_takeover; client_no_context_takeover", ""},
		{"x-webkit-deflate-frame", ""},
		{"permessage-deflate; server_max_window_bits=10, permessage-deflate", "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
		{`permessage-deflate; client_max_window_bits="12"; server_max_window_bits=15`, "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
	} {
		_, _, ext := rawDeflateHandshake(t, s.url, tc.offer)
		c := s.accept(t)
		if ext != tc.want || c.Compressed() != (tc.want != "") {
			t.Errorf("offer %q: answer %q, Compressed %v; want %q", tc.offer, ext, c.Compressed(), tc.want)
		}
	}
}

// A zip bomb: a 10 KiB compressed frame that inflates to 10 MiB closes the
// connection with 1009 and ErrTooLarge (OnBadInput then OnClose), like an
// oversized frame, without waiting for the peer to answer the close; the
// inflater stopped at the limit (see TestInflateStopsAtTheLimit for what
// it allocates).
func TestDeflateZipBombClosesWith1009(t *testing.T) {
	rec := newRecorder()
	s := startServer(t, conn.Options{Compression: deflateOn}, rec)
	nc, br, _ := rawDeflateHandshake(t, s.url, "permessage-deflate")
	c := s.accept(t)
	bomb := deflateRaw(t, make([]byte, 10<<20), 9)
	if len(bomb) > conn.DefaultMaxMessageSize {
		t.Fatalf("bomb of %d bytes is over the frame limit itself", len(bomb))
	}
	write(t, nc, clientFrame(0xC1, len(bomb), string(bomb)))
	if code := readClose(t, nc, br); code != 1009 {
		t.Fatalf("close code %d, want 1009", code)
	}
	// The peer does not answer the close: the server does not wait for it
	// (WriteTimeout, 10 s, is longer than recv's wait).
	if err := rec.nextBad(t); !errors.Is(err, conn.ErrTooLarge) {
		t.Fatalf("OnBadInput %v, want ErrTooLarge", err)
	}
	if err := rec.closeErr(t); !errors.Is(err, conn.ErrTooLarge) {
		t.Fatalf("OnClose %v, want ErrTooLarge", err)
	}
	waitDone(t, c)
}

// A message that inflates to exactly MaxMessageSize is accepted.
func TestDeflateMessageAtTheLimit(t *testing.T) {
	rec := newRecorder()
	s := startServer(t, conn.Options{Compression: deflateOn, MaxMessageSize: 4096}, rec)
	nc, _, _ := rawDeflateHandshake(t, s.url, "permessage-deflate")
	_ = s.accept(t)
	msg := payload(4096)
	z := deflateRaw(t, msg, 6)
	write(t, nc, clientFrame(0xC1, len(z), string(z)))
	if e := rec.nextEnv(t); !(e.data == string(msg)) {
		t.Fatal("message at the limit not delivered")
	}
}

// RSV1 without negotiation is a protocol error (RFC 6455 §5.2): the peer
// gets 1002 and OnClose ErrProtocol, whether the server has compression
// off or on but the client did not offer it.
func TestDeflateRSV1WithoutNegotiationCloses1002(t *testing.T) {
	for _, srvOn := range []bool{false, true} {
		t.Run(fmt.Sprintf("server compression %v", srvOn), func(t *testing.T) {
			var o conn.Options
			if srvOn {
				o.Compression = deflateOn
			}
			rec := newRecorder()
			s := startServer(t, o, rec)
			nc, br, ext := rawDeflateHandshake(t, s.url, "")
			if ext != "" {
				t.Fatalf("answer %q to no offer", ext)
			}
			c := s.accept(t)
			z := deflateRaw(t, payload(1000), 6)
			write(t, nc, clientFrame(0xC1, len(z), string(z)))
			if code := readClose(t, nc, br); code != 1002 {
				t.Fatalf("close code %d, want 1002", code)
			}
			_ = nc.Close()
			if err := rec.closeErr(t); !errors.Is(err, conn.ErrProtocol) {
				t.Fatalf("OnClose %v, want ErrProtocol", err)
			}
			waitDone(t, c)
		})
	}
}

// On a negotiated connection RSV1 is still an error on a control frame and
// on a continuation frame (RFC 7692 §6.1), and corrupt deflate data is
// one too.
func TestDeflateBadCompressedFramesClose1002(t *testing.T) {
	z := deflateRaw(t, payload(1000), 6)
	for name, frames := range map[string][]byte{
		"ping with RSV1":         clientFrame(0xC9, 0, ""),
		"continuation with RSV1": append(clientFrame(0x01, 3, `"ab`), clientFrame(0xC0, 2, `c"`)...),
		"corrupt data":           clientFrame(0xC1, 6, "\xff\xff\xff\xff\xff\xff"),
		"truncated data":         clientFrame(0xC1, len(z)/2, string(z[:len(z)/2])),
	} {
		t.Run(name, func(t *testing.T) {
			rec := newRecorder()
			s := startServer(t, conn.Options{Compression: deflateOn}, rec)
			nc, br, _ := rawDeflateHandshake(t, s.url, "permessage-deflate")
			c := s.accept(t)
			write(t, nc, frames)
			if code := readClose(t, nc, br); code != 1002 {
				t.Fatalf("close code %d, want 1002", code)
			}
			// Not answered: the server drops the peer without waiting.
			if err := rec.closeErr(t); !errors.Is(err, conn.ErrProtocol) {
				t.Fatalf("OnClose %v, want ErrProtocol", err)
			}
			waitDone(t, c)
		})
	}
}

// The frame deadline follows compressed frames too (their RSV1 does not
// confuse the tracking): a compressed frame whose payload never completes
// is dropped at FrameTimeout, and a compressed frame split across writes
// arrives.
func TestDeflateFrameDeadline(t *testing.T) {
	rec := newRecorder()
	s := startServer(t, conn.Options{Compression: deflateOn, FrameTimeout: 300 * time.Millisecond}, rec)
	nc, _, _ := rawDeflateHandshake(t, s.url, "permessage-deflate")
	c := s.accept(t)
	msg := payload(2000)
	z := deflateRaw(t, msg, 6)
	f := clientFrame(0xC1, len(z), string(z))
	write(t, nc, f[:3])
	write(t, nc, f[3:])
	if e := rec.nextEnv(t); !(e.data == string(msg)) {
		t.Fatal("split compressed frame not delivered")
	}
	write(t, nc, f[:len(f)-1]) // the last byte never comes
	if err := rec.closeErr(t); !errors.Is(err, conn.ErrFrameTimeout) {
		t.Fatalf("OnClose %v, want ErrFrameTimeout", err)
	}
	waitDone(t, c)
}

// rawServerOnce accepts one connection, answers the handshake with
// answer as Sec-WebSocket-Extensions (none when empty) and, in the same
// write, the frames given; then it keeps the socket until the test ends.
func rawServerOnce(t *testing.T, answer string, frames []byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
	})
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		req, err := http.ReadRequest(bufio.NewReader(nc))
		if err != nil {
			return
		}
		resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: " + acceptKey(req.Header.Get("Sec-WebSocket-Key")) + "\r\n"
		if answer != "" {
			resp += "Sec-WebSocket-Extensions: " + answer + "\r\n"
		}
		_, _ = nc.Write(append([]byte(resp+"\r\n"), frames...))
		_, _ = io.Copy(io.Discard, nc) // until the client closes
	}()
	return "ws://" + ln.Addr().String() + "/primus"
}

// The client role: a server that sends a compressed frame without having
// accepted compression (in the same write as its handshake answer, or
// later) fails the connection with ErrProtocol, whether or not the client
// offered it; one that accepted is read.
func TestDeflateClientRSV1(t *testing.T) {
	msg := payload(1000)
	z := deflateRaw(t, msg, 6)
	frame := append([]byte{0xC1, 126, byte(len(z) >> 8), byte(len(z))}, z...)
	for _, tc := range []struct {
		name   string
		offer  bool
		answer string
		ok     bool
	}{
		{"not offered", false, "", false},
		{"offered, turned down", true, "", false},
		{"offered, accepted", true, "permessage-deflate; server_no_context_takeover", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := rawServerOnce(t, tc.answer, frame)
			var o conn.Options
			if tc.offer {
				o.Compression = deflateOn
			}
			rec := newRecorder()
			c := dial(t, u, o, rec)
			if c.Compressed() != tc.ok {
				t.Fatalf("Compressed() %v", c.Compressed())
			}
			if tc.ok {
				if e := rec.nextEnv(t); !(e.data == string(msg)) {
					t.Fatal("compressed message not delivered")
				}
				return
			}
			if err := rec.closeErr(t); !errors.Is(err, conn.ErrProtocol) {
				t.Fatalf("OnClose %v, want ErrProtocol", err)
			}
		})
	}
}

// The client fails Dial on an answer it cannot honour: no
// server_no_context_takeover, or an extension it did not offer; a
// client_max_window_bits below 15 is honoured by sending plain frames.
func TestDeflateClientAnswers(t *testing.T) {
	for _, tc := range []struct {
		answer string
		err    bool
	}{
		{"permessage-deflate", true},
		{"permessage-deflate; server_no_context_takeover; foo", true},
		{"x-webkit-deflate-frame", true},
		{"permessage-deflate; server_no_context_takeover; client_max_window_bits=9", false},
	} {
		u := rawServerOnce(t, tc.answer, nil)
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		c, _, err := conn.Dial(ctx, u, nil, newRecorder(), conn.Options{Compression: deflateOn})
		cancel()
		if tc.err {
			if !errors.Is(err, conn.ErrProtocol) {
				t.Errorf("answer %q: Dial error %v, want ErrProtocol", tc.answer, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("answer %q: %v", tc.answer, err)
		}
		go c.Serve()
		if !c.Compressed() {
			t.Errorf("answer %q: not Compressed", tc.answer)
		}
		_ = c.Drop()
		waitDone(t, c)
	}
}

// WritePrepared compresses once for the connections that negotiated
// compression and sends the plain bytes to the others.
func TestDeflateWritePrepared(t *testing.T) {
	s := startServer(t, conn.Options{Compression: deflateOn}, newRecorder())
	nc1, br1, _ := rawDeflateHandshake(t, s.url, "permessage-deflate")
	c1 := s.accept(t)
	nc2, br2, _ := rawDeflateHandshake(t, s.url, "")
	c2 := s.accept(t)
	msg := payload(4096)
	p := conn.NewPrepared(msg)
	for _, c := range []*conn.Conn{c1, c2} {
		if err := c.WritePrepared(p); err != nil {
			t.Fatal(err)
		}
	}
	_ = nc1.SetReadDeadline(time.Now().Add(waitFor))
	_ = nc2.SetReadDeadline(time.Now().Add(waitFor))
	if b0, z := readFrame(t, br1); b0 != 0xC1 || !bytes.Equal(inflateRaw(t, z), msg) {
		t.Fatalf("compressed member: first byte %#x", b0)
	}
	if b0, q := readFrame(t, br2); b0 != 0x81 || !bytes.Equal(q, msg) {
		t.Fatalf("plain member: first byte %#x", b0)
	}
}

func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}
