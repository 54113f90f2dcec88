package conn_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lxzan/gws"

	"github.com/wsactor/wsactor/conn"
	"github.com/wsactor/wsactor/envelope"
)

func TestFramesBothWays(t *testing.T) {
	p := newPair(t, conn.Options{}, conn.Options{})
	if p.srv.Role() != conn.Server || p.cli.Role() != conn.Client {
		t.Fatalf("roles %v %v", p.srv.Role(), p.cli.Role())
	}
	if p.srv.RemoteAddr() == nil || p.cli.RemoteAddr() == nil {
		t.Fatal("nil RemoteAddr")
	}
	frame := []byte(`{"plugin":"primus-responder","requestId":"r1","data":{"x":1}}`)
	if err := p.cli.Write(frame); err != nil {
		t.Fatal(err)
	}
	copy(frame, "XXXXXXXX") // Write copied it
	got := p.srvRec.nextEnv(t)
	if got != (event{envelope.KindRequest, `"r1"`, `{"x":1}`}) {
		t.Fatalf("server got %+v", got)
	}
	if err := p.srv.Write(envelope.AppendResponse(nil, []byte(`"r1"`), []byte(`[1,2]`))); err != nil {
		t.Fatal(err)
	}
	if got := p.cliRec.nextEnv(t); got != (event{envelope.KindResponse, `"r1"`, `[1,2]`}) {
		t.Fatalf("client got %+v", got)
	}
	if err := p.srv.Write(envelope.AppendCancel(nil, []byte(`7`))); err != nil {
		t.Fatal(err)
	}
	if got := p.cliRec.nextEnv(t); got != (event{envelope.KindCancel, `7`, ``}) {
		t.Fatalf("client got %+v", got)
	}
	if err := p.cli.Write([]byte(` "plain" `)); err != nil {
		t.Fatal(err)
	}
	if got := p.srvRec.nextEnv(t); got != (event{envelope.KindData, ``, `"plain"`}) {
		t.Fatalf("server got %+v", got)
	}
}

func TestOrderingOf10000Writes(t *testing.T) {
	p := newPair(t, conn.Options{}, conn.Options{})
	const n = 10000
	send := func(c *conn.Conn) {
		var b []byte
		for i := range n {
			b = strconv.AppendInt(b[:0], int64(i), 10)
			if err := c.Write(b); err != nil {
				t.Error(err)
				return
			}
		}
	}
	go send(p.srv)
	send(p.cli)
	for i := range n {
		if got := p.srvRec.nextEnv(t); got.data != strconv.Itoa(i) {
			t.Fatalf("server frame %d = %q", i, got.data)
		}
		if got := p.cliRec.nextEnv(t); got.data != strconv.Itoa(i) {
			t.Fatalf("client frame %d = %q", i, got.data)
		}
	}
}

func TestServerPingClientPong(t *testing.T) {
	p := newPair(t, conn.Options{}, conn.Options{})
	if n := p.srv.Beat(); n != 0 {
		t.Fatalf("Beat %d right after open, want 0 (live)", n)
	}
	if n := p.srv.Beat(); n != 1 {
		t.Fatalf("second Beat %d with nothing read, want 1", n)
	}
	// The client answers the ping from its read loop before it sees the
	// next frame, so once the echo of "after" is back the pong has arrived.
	if err := p.srv.Ping(time.UnixMilli(1795618408068)); err != nil {
		t.Fatal(err)
	}
	if err := p.srv.Write([]byte(`"after"`)); err != nil {
		t.Fatal(err)
	}
	if got := p.cliRec.nextEnv(t); got.data != `"after"` {
		t.Fatalf("client got %+v; the ping must not reach the Handler", got)
	}
	if err := p.cli.Write([]byte(`"echo"`)); err != nil {
		t.Fatal(err)
	}
	if got := p.srvRec.nextEnv(t); got.data != `"echo"` {
		t.Fatalf("server got %+v; the pong must not reach the Handler", got)
	}
	if n := p.srv.Beat(); n != 0 {
		t.Fatalf("Beat %d after the pong, want 0 (live)", n)
	}
	for want := 1; want <= 2; want++ {
		if n := p.srv.Beat(); n != want {
			t.Fatalf("Beat %d with nothing read, want %d", n, want)
		}
	}
}

// Any frame the peer sends counts as liveness, not only a pong: a server
// busy reading a peer's data is not misled into dropping it.
func TestBeatAnyFrame(t *testing.T) {
	p := newPair(t, conn.Options{}, conn.Options{})
	p.srv.Beat()
	if n := p.srv.Beat(); n != 1 {
		t.Fatalf("Beat %d with nothing read, want 1", n)
	}
	if err := p.cli.Write([]byte(`"data"`)); err != nil {
		t.Fatal(err)
	}
	if got := p.srvRec.nextEnv(t); got.data != `"data"` {
		t.Fatalf("server got %+v", got)
	}
	if n := p.srv.Beat(); n != 0 {
		t.Fatalf("Beat %d after a data frame, want 0 (live)", n)
	}
}

func TestClientAnswersPingWithSameValue(t *testing.T) {
	rs := startRawServer(t)
	rec := newRecorder()
	dial(t, rs.url, conn.Options{}, rec)
	sock := recv(t, rs.socks, "raw server conn")
	for _, v := range []string{"1795618408068", "0", "x y"} {
		if err := sock.WriteString(`"primus::ping::` + v + `"`); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, rs.texts, "pong"); got != `"primus::pong::`+v+`"` {
			t.Fatalf("client answered %s", got)
		}
	}
	// A pong sent to a client, and an unknown control, are data.
	for _, s := range []string{`"primus::pong::1"`, `"primus::whatever::x"`} {
		if err := sock.WriteString(s); err != nil {
			t.Fatal(err)
		}
		if got := rec.nextEnv(t); got != (event{envelope.KindData, "", s}) {
			t.Fatalf("client got %+v", got)
		}
	}
	// id replies are consumed, like Primus does.
	if err := sock.WriteString(`"primus::id::abc"`); err != nil {
		t.Fatal(err)
	}
	if err := sock.WriteString(`1`); err != nil {
		t.Fatal(err)
	}
	if got := rec.nextEnv(t); got.data != `1` {
		t.Fatalf("client got %+v", got)
	}
}

func TestServerAnswersID(t *testing.T) {
	for _, id := range []string{"", "spark-1"} {
		rec := newRecorder()
		s := startServer(t, conn.Options{ID: id}, rec)
		rc := dialRaw(t, s.url)
		c := s.accept(t)
		if id == "" && !regexp.MustCompile(`^[A-Za-z0-9_-]{21}$`).MatchString(c.ID()) {
			t.Fatalf("default id %q", c.ID())
		}
		if id != "" && c.ID() != id {
			t.Fatalf("ID() = %q, want %q", c.ID(), id)
		}
		rc.text(t, `"primus::id::"`)
		if got := recv(t, rc.texts, "id answer"); got != `"primus::id::`+c.ID()+`"` {
			t.Fatalf("answer %s", got)
		}
		// Control messages the server does not handle are data.
		for _, f := range []string{`"primus::whatever::x"`, `"primus::ping::1"`, `"primus::server::close"`} {
			rc.text(t, f)
			if got := rec.nextEnv(t); got != (event{envelope.KindData, "", f}) {
				t.Fatalf("server got %+v for %s", got, f)
			}
		}
		rc.text(t, `"primus::pong::5"`)
		rc.text(t, `"done"`)
		if got := rec.nextEnv(t); got.data != `"done"` {
			t.Fatalf("server got %+v", got)
		}
	}
}

func TestWebSocketPingFrame(t *testing.T) {
	rec := newRecorder()
	s := startServer(t, conn.Options{}, rec)
	rc := dialRaw(t, s.url)
	c := s.accept(t)
	c.Beat()
	if n := c.Beat(); n != 1 {
		t.Fatalf("Beat %d without a ping, want 1", n)
	}
	if err := rc.sock.WritePing([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, rc.pongs, "PONG"); got != "hi" {
		t.Fatalf("PONG payload %q", got)
	}
	if n := c.Beat(); n != 0 {
		t.Fatalf("Beat %d after a PING frame, want 0 (live)", n)
	}
}

func TestBinaryFrameIsReported(t *testing.T) {
	rec := newRecorder()
	s := startServer(t, conn.Options{}, rec)
	rc := dialRaw(t, s.url)
	if err := rc.sock.WriteMessage(gws.OpcodeBinary, []byte{1, 2, 0xff}); err != nil {
		t.Fatal(err)
	}
	if err := rec.nextBad(t); !errors.Is(err, conn.ErrBinaryFrame) {
		t.Fatalf("bad input %v", err)
	}
	rc.text(t, `"still here"`)
	if got := rec.nextEnv(t); got.data != `"still here"` {
		t.Fatalf("got %+v", got)
	}
}

func TestBadFramesAreReportedAndConnStays(t *testing.T) {
	p := newPair(t, conn.Options{}, conn.Options{})
	for _, tc := range []struct {
		frame string
		want  error
	}{
		{`{not json`, envelope.ErrMalformed},
		{`null`, envelope.ErrNull},
		{"\"\xff\"", envelope.ErrInvalidUTF8},
		{``, envelope.ErrEmpty},
		{`primus::id::`, envelope.ErrMalformed},
		{`{"plugin":"primus-responder","requestId":""}`, envelope.ErrMissingID},
	} {
		if err := p.cli.Write([]byte(tc.frame)); err != nil {
			t.Fatal(err)
		}
		if err := p.srvRec.nextBad(t); !errors.Is(err, tc.want) {
			t.Fatalf("%q: bad input %v, want %v", tc.frame, err, tc.want)
		}
		if err := p.cli.Write([]byte(`{"ok":true}`)); err != nil {
			t.Fatal(err)
		}
		if got := p.srvRec.nextEnv(t); got.data != `{"ok":true}` {
			t.Fatalf("after %q got %+v", tc.frame, got)
		}
	}
}

func TestTooLargeFrameClosesWith1009(t *testing.T) {
	p := newPair(t, conn.Options{MaxMessageSize: 1024}, conn.Options{})
	if err := p.srv.Write(make([]byte, 1025)); !errors.Is(err, conn.ErrTooLarge) {
		t.Fatalf("Write over MaxMessageSize: %v", err)
	}
	big := `"` + strings.Repeat("a", 2000) + `"`
	if err := p.cli.Write([]byte(big)); err != nil {
		t.Fatal(err)
	}
	if err := p.srvRec.nextBad(t); !errors.Is(err, conn.ErrTooLarge) {
		t.Fatalf("bad input %v", err)
	}
	if err := p.srvRec.closeErr(t); !errors.Is(err, conn.ErrTooLarge) {
		t.Fatalf("server OnClose %v", err)
	}
	var ce *conn.CloseError
	if err := p.cliRec.closeErr(t); !errors.As(err, &ce) || ce.Code != 1009 {
		t.Fatalf("client OnClose %v, want close 1009", err)
	}
}

func TestWriteQueueFullThenWriteTimeout(t *testing.T) {
	rec := newRecorder()
	s := startServer(t, conn.Options{MaxMessageSize: 16 << 20, MaxOutboundBytes: 64 << 10, WriteTimeout: 200 * time.Millisecond}, rec)
	_ = rawHandshake(t, s.url) // never reads
	c := s.accept(t)
	// A Write to an empty queue is always taken, whatever its size; this
	// one is far more than the kernel buffers of a peer that never reads.
	huge := make([]byte, 8<<20)
	if err := c.Write(huge); err != nil {
		t.Fatal(err)
	}
	if err := c.Write(make([]byte, 1024)); !errors.Is(err, conn.ErrWriteQueueFull) {
		t.Fatalf("Write over MaxOutboundBytes: %v", err)
	}
	if q := c.QueuedBytes(); q < 8<<20 {
		t.Fatalf("QueuedBytes %d", q)
	}
	err := rec.closeErr(t)
	if !errors.Is(err, conn.ErrWriteTimeout) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("OnClose %v, want ErrWriteTimeout", err)
	}
	waitDone(t, c)
	noFlusher(t)
	if c.DroppedFrames() != 1 {
		t.Fatalf("DroppedFrames %d, want 1", c.DroppedFrames())
	}
	if err := c.Write([]byte(`1`)); !errors.Is(err, conn.ErrClosed) {
		t.Fatalf("Write after close: %v", err)
	}
}

func TestEndMeansServerEnded(t *testing.T) {
	p := newPair(t, conn.Options{}, conn.Options{})
	if err := p.srv.Write([]byte(`"last"`)); err != nil {
		t.Fatal(err)
	}
	if err := p.srv.End(); err != nil {
		t.Fatal(err)
	}
	if err := p.srv.Write([]byte(`"too late"`)); !errors.Is(err, conn.ErrClosed) {
		t.Fatalf("Write after End: %v", err)
	}
	if got := p.cliRec.nextEnv(t); got.data != `"last"` {
		t.Fatalf("client got %+v", got)
	}
	if err := p.cliRec.closeErr(t); !errors.Is(err, conn.ErrServerEnded) {
		t.Fatalf("client OnClose %v", err)
	}
	if err := p.srvRec.closeErr(t); !errors.Is(err, conn.ErrClosedLocally) {
		t.Fatalf("server OnClose %v", err)
	}
	if err := p.srv.End(); !errors.Is(err, conn.ErrClosed) {
		t.Fatalf("second End: %v", err)
	}
}

func TestCloseSendsCodeAndReason(t *testing.T) {
	p := newPair(t, conn.Options{}, conn.Options{})
	if err := p.srv.Close(1005, ""); !errors.Is(err, conn.ErrInvalidCloseCode) {
		t.Fatalf("Close(1005): %v", err)
	}
	if err := p.srv.Close(4000, "bye"); err != nil {
		t.Fatal(err)
	}
	if err := p.srv.Close(4000, "bye"); !errors.Is(err, conn.ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	var ce *conn.CloseError
	if err := p.cliRec.closeErr(t); !errors.As(err, &ce) || *ce != (conn.CloseError{Code: 4000, Reason: "bye"}) {
		t.Fatalf("client OnClose %v", err)
	}
	if err := p.srvRec.closeErr(t); !errors.Is(err, conn.ErrClosedLocally) {
		t.Fatalf("server OnClose %v", err)
	}
}

func TestClientCloseWithoutCode(t *testing.T) {
	p := newPair(t, conn.Options{}, conn.Options{})
	if err := p.cli.Close(0, ""); err != nil {
		t.Fatal(err)
	}
	var ce *conn.CloseError
	if err := p.srvRec.closeErr(t); !errors.As(err, &ce) || ce.Code != 1005 {
		t.Fatalf("server OnClose %v, want 1005", err)
	}
	if err := p.cliRec.closeErr(t); !errors.Is(err, conn.ErrClosedLocally) {
		t.Fatalf("client OnClose %v", err)
	}
}

func TestDropIsAbnormal(t *testing.T) {
	p := newPair(t, conn.Options{}, conn.Options{})
	if err := p.srv.Drop(); err != nil {
		t.Fatal(err)
	}
	if err := p.srvRec.closeErr(t); !errors.Is(err, conn.ErrHeartbeat) {
		t.Fatalf("server OnClose %v", err)
	}
	err := p.cliRec.closeErr(t)
	var ce *conn.CloseError
	if err == nil || errors.As(err, &ce) || errors.Is(err, conn.ErrServerEnded) {
		t.Fatalf("client OnClose %v, want an abnormal close", err)
	}
	waitDone(t, p.srv)
	if err := p.srv.Drop(); !errors.Is(err, conn.ErrClosed) {
		t.Fatalf("second Drop: %v", err)
	}
}

func TestClientPingTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	t.Run("silent server", func(t *testing.T) {
		p := newPair(t, conn.Options{}, conn.Options{PingTimeout: timeout})
		if err := p.cliRec.closeErr(t); !errors.Is(err, conn.ErrHeartbeat) {
			t.Fatalf("client OnClose %v", err)
		}
		// Dropped, not closed: no close frame reaches the server.
		var ce *conn.CloseError
		if err := p.srvRec.closeErr(t); errors.As(err, &ce) {
			t.Fatalf("server OnClose %v, want an abnormal close", err)
		}
	})
	t.Run("pinging server", func(t *testing.T) {
		p := newPair(t, conn.Options{}, conn.Options{PingTimeout: timeout})
		stop, stopped := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(stopped)
			tick := time.NewTicker(timeout / 6)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case now := <-tick.C:
					_ = p.srv.Ping(now)
				}
			}
		}()
		select {
		case err := <-p.cliRec.closed:
			t.Fatalf("closed while pinged: %v", err)
		case <-time.After(4 * timeout):
		}
		close(stop)
		<-stopped
		if err := p.cliRec.closeErr(t); !errors.Is(err, conn.ErrHeartbeat) {
			t.Fatalf("client OnClose %v", err)
		}
	})
}

func TestHandlerPanicIsReported(t *testing.T) {
	srvRec := newRecorder()
	srvRec.onEnv = func(_ *conn.Conn, env envelope.Envelope) {
		if string(env.Data) == `"boom"` {
			panic("boom")
		}
	}
	p := newPairWith(t, conn.Options{}, conn.Options{}, srvRec, newRecorder())
	if err := p.cli.Write([]byte(`"boom"`)); err != nil {
		t.Fatal(err)
	}
	if err := p.cli.Write([]byte(`"ok"`)); err != nil {
		t.Fatal(err)
	}
	if err := p.srvRec.nextBad(t); !errors.Is(err, conn.ErrHandlerPanic) || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("bad input %v", err)
	}
	if got := p.srvRec.nextEnv(t); got.data != `"ok"` {
		t.Fatalf("got %+v", got)
	}
}

func TestDialHonoursContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 4)
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c // and say nothing
		}
	}()
	var socks []net.Conn
	defer func() {
		_ = ln.Close()
		for c := range accepted {
			socks = append(socks, c)
		}
		for _, c := range socks {
			_ = c.Close()
		}
	}()
	url := "ws://" + ln.Addr().String() + "/primus"

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err = conn.Dial(ctx, url, nil, newRecorder(), conn.Options{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial: %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Dial took %v", d)
	}
	socks = append(socks, recv(t, accepted, "accept"))

	ctx, cancel = context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, _, err := conn.Dial(ctx, url, nil, newRecorder(), conn.Options{})
		errc <- err
	}()
	socks = append(socks, recv(t, accepted, "accept"))
	cancel()
	if err := recv(t, errc, "Dial"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Dial: %v, want canceled", err)
	}
}

func TestDialErrors(t *testing.T) {
	ctx := context.Background()
	for _, u := range []string{"http://127.0.0.1:1/", "ws:///nohost", "::"} {
		if _, _, err := conn.Dial(ctx, u, nil, newRecorder(), conn.Options{}); !errors.Is(err, conn.ErrBadURL) {
			t.Errorf("Dial(%q): %v, want ErrBadURL", u, err)
		}
	}
	if _, _, err := conn.Dial(ctx, "ws://127.0.0.1:1/", nil, nil, conn.Options{}); !errors.Is(err, conn.ErrInvalidOptions) {
		t.Errorf("nil handler: %v", err)
	}
	if _, _, err := conn.Dial(ctx, "ws://127.0.0.1:1/", nil, newRecorder(), conn.Options{WriteTimeout: -1}); !errors.Is(err, conn.ErrInvalidOptions) {
		t.Errorf("bad options: %v", err)
	}
	// A server that refuses the upgrade: the response comes back.
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Origin") != "http://allowed" {
			http.Error(w, "no", http.StatusForbidden)
			return
		}
		http.Error(w, "no upgrade here", http.StatusTeapot)
	}))
	defer ts.Close()
	wsURL := "ws" + strings.TrimPrefix(ts.URL, "http")
	for origin, want := range map[string]int{"": http.StatusForbidden, "http://allowed": http.StatusTeapot} {
		_, resp, err := conn.Dial(ctx, wsURL, http.Header{"Origin": {origin}}, newRecorder(), conn.Options{})
		if err == nil || resp == nil || resp.StatusCode != want {
			t.Fatalf("origin %q: resp %v, err %v; want status %d", origin, resp, err, want)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    conn.Options
		ok   bool
	}{
		{"zero", conn.Options{}, true},
		{"all set", conn.Options{MaxMessageSize: 1, MaxOutboundBytes: 1, WriteTimeout: 1, PingTimeout: 1, ID: "x"}, true},
		{"MaxMessageSize", conn.Options{MaxMessageSize: -1}, false},
		{"MaxOutboundBytes", conn.Options{MaxOutboundBytes: -1}, false},
		{"WriteTimeout", conn.Options{WriteTimeout: -1}, false},
		{"PingTimeout", conn.Options{PingTimeout: -1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.Validate()
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, conn.ErrInvalidOptions)) {
				t.Fatalf("Validate() = %v", err)
			}
			if _, err := conn.NewUpgrader(tc.o); tc.ok != (err == nil) {
				t.Fatalf("NewUpgrader: %v", err)
			}
		})
	}
}

func TestConcurrentWritersKeepTheirOrder(t *testing.T) {
	p := newPair(t, conn.Options{}, conn.Options{})
	const writers, each = 4, 1000
	errc := make(chan error, writers)
	for w := range writers {
		go func() {
			var b []byte
			for i := range each {
				b = strconv.AppendInt(append(b[:0], '['), int64(w), 10)
				b = strconv.AppendInt(append(b, ','), int64(i), 10)
				b = append(b, ']')
				if err := p.srv.Write(b); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	for range writers {
		if err := recv(t, errc, "writer"); err != nil {
			t.Fatal(err)
		}
	}
	next := make([]int, writers)
	for range writers * each {
		got := p.cliRec.nextEnv(t).data
		var w, i int
		if _, err := fmt.Sscanf(got, "[%d,%d]", &w, &i); err != nil || w >= writers || next[w] != i {
			t.Fatalf("frame %q out of order (want [%d,%d])", got, w, next[w])
		}
		next[w]++
	}
}

func TestWriteQueueFullKeepsTheConnection(t *testing.T) {
	rec := newRecorder()
	s := startServer(t, conn.Options{MaxMessageSize: 16 << 20, MaxOutboundBytes: 64 << 10}, rec)
	peer := rawHandshake(t, s.url) // reads only when told to below
	c := s.accept(t)
	const size = 8 << 20 // more than loopback buffers take from a non-reader
	if err := c.Write(make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	if err := c.Write([]byte(`1`)); !errors.Is(err, conn.ErrWriteQueueFull) {
		t.Fatalf("second Write: %v", err)
	}
	// The peer reads after all: the frame goes out, the queue empties and
	// Write works again.
	if _, err := io.ReadFull(peer, make([]byte, 10+size)); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(waitFor)
	for c.QueuedBytes() != 0 {
		select {
		case <-time.After(time.Millisecond): // poll: there is no event for "written"
		case <-deadline:
			t.Fatalf("QueuedBytes stuck at %d", c.QueuedBytes())
		}
	}
	if err := c.Write([]byte(`2`)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 3)
	if _, err := io.ReadFull(peer, got); err != nil || string(got) != "\x81\x012" {
		t.Fatalf("next frame %q, %v", got, err)
	}
}

// Frames queued before Close go out before the close frame.
func TestCloseFlushesQueuedFrames(t *testing.T) {
	rec := newRecorder()
	s := startServer(t, conn.Options{}, rec)
	peer := rawHandshake(t, s.url)
	c := s.accept(t)
	for _, f := range []string{`1`, `2`, `3`} {
		if err := c.Write([]byte(f)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(1001, "bye"); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 3*3+2+2+3)
	if _, err := io.ReadFull(peer, got); err != nil {
		t.Fatal(err)
	}
	want := "\x81\x011\x81\x012\x81\x013\x88\x05\x03\xe9bye"
	if string(got) != want {
		t.Fatalf("peer read %q, want %q", got, want)
	}
	_ = peer.Close()
	waitDone(t, c)
	if n := c.DroppedFrames(); n != 0 {
		t.Fatalf("DroppedFrames %d", n)
	}
}

// Close on a stalled socket: the queued frames wait behind the stalled
// write, which WriteTimeout cuts; then they are dropped and counted.
func TestCloseDropsQueuedFramesOfAStalledSocket(t *testing.T) {
	rec := newRecorder()
	s := startServer(t, conn.Options{MaxMessageSize: 16 << 20, MaxOutboundBytes: 16 << 20, WriteTimeout: 200 * time.Millisecond}, rec)
	peer := rawHandshake(t, s.url)
	c := s.accept(t)
	if err := c.Write(make([]byte, 8<<20)); err != nil { // blocks the flusher
		t.Fatal(err)
	}
	// Once the frame header arrives the flusher is in its write; the peer
	// reads no more.
	if _, err := io.ReadFull(peer, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := c.Write([]byte(`1`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(1000, ""); err != nil {
		t.Fatal(err)
	}
	if n := c.DroppedFrames(); n != 0 { // still queued behind the stalled write
		t.Fatalf("DroppedFrames right after Close %d, want 0", n)
	}
	if err := c.Write([]byte(`1`)); !errors.Is(err, conn.ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
	if err := rec.closeErr(t); !errors.Is(err, conn.ErrClosedLocally) {
		t.Fatalf("OnClose %v", err)
	}
	waitDone(t, c)
	noFlusher(t)
	if n := c.DroppedFrames(); n != 4 { // 3 queued, plus the one that timed out
		t.Fatalf("DroppedFrames %d, want 4", n)
	}
}

type panicky struct{ *recorder }

func (p panicky) OnOpen(*conn.Conn)         { panic("open") }
func (p panicky) OnClose(*conn.Conn, error) { p.recorder.closed <- nil; panic("close") }

func TestPanicInOpenAndClose(t *testing.T) {
	rec := newRecorder()
	s := startServer(t, conn.Options{}, panicky{rec})
	cli := dial(t, s.url, conn.Options{}, newRecorder())
	c := s.accept(t)
	if err := rec.nextBad(t); !errors.Is(err, conn.ErrHandlerPanic) || !strings.Contains(err.Error(), "open") {
		t.Fatalf("bad input %v", err)
	}
	if err := cli.Write([]byte(`1`)); err != nil {
		t.Fatal(err)
	}
	if got := rec.nextEnv(t); got.data != `1` {
		t.Fatalf("got %+v", got)
	}
	_ = cli.Close(1000, "")
	rec.closeErr(t)
	if err := rec.nextBad(t); !errors.Is(err, conn.ErrHandlerPanic) || !strings.Contains(err.Error(), "close") {
		t.Fatalf("bad input %v", err)
	}
	waitDone(t, c)
}

// noFlusher fails if a flusher goroutine is alive: called after Done of the
// only Conn of a test, none may be. The flusher's last act is to tell the
// Conn it is done, so its goroutine may still be returning: allow that.
func noFlusher(t *testing.T) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for range 100 {
		st := string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(st, "conn.(*Conn).flush") {
			return
		}
		runtime.Gosched()
	}
	t.Fatalf("a flusher outlived Done:\n%s", buf)
}

func TestCloseReasonIsTruncated(t *testing.T) {
	p := newPair(t, conn.Options{}, conn.Options{})
	reason := strings.Repeat("é", 100) // 200 bytes; 123 would split a rune
	if err := p.srv.Close(4001, reason); err != nil {
		t.Fatal(err)
	}
	var ce *conn.CloseError
	if err := p.cliRec.closeErr(t); !errors.As(err, &ce) || ce.Code != 4001 || ce.Reason != strings.Repeat("é", 61) {
		t.Fatalf("client OnClose %v", err)
	}
}

func TestDialWSS(t *testing.T) {
	ts := httptest.NewUnstartedServer(http.NotFoundHandler())
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
	ts.StartTLS()
	defer ts.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	// The test certificate is not in the system roots: the TLS handshake
	// runs, and fails.
	_, _, err := conn.Dial(ctx, "wss"+strings.TrimPrefix(ts.URL, "https"), nil, newRecorder(), conn.Options{})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Dial wss: %v, want a certificate error", err)
	}
}

// A connection that once used the batched (deadline-bounded) write path and
// then stays quiet for longer than WriteTimeout still writes: the deadline
// of the old batch must not fail the next direct write.
func TestQuietWriteAfterStaleDeadline(t *testing.T) {
	rec := newRecorder()
	const timeout = 100 * time.Millisecond
	s := startServer(t, conn.Options{WriteTimeout: timeout}, rec)
	peer := rawHandshake(t, s.url)
	c := s.accept(t)
	// A burst: back-to-back Writes go through the flusher's batched write.
	const burst = 64
	for range burst {
		if err := c.Write([]byte(`1`)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := io.ReadFull(peer, make([]byte, 3*burst)); err != nil {
		t.Fatal(err)
	}
	// Stay quiet past the batch's write deadline (this waits for wall-clock
	// time on purpose: the deadline is what is under test).
	<-time.After(3 * timeout)
	if err := c.Write([]byte(`2`)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 3)
	if _, err := io.ReadFull(peer, got); err != nil || string(got) != "\x81\x012" {
		t.Fatalf("after a quiet spell the peer read %q, %v", got, err)
	}
	select {
	case err := <-rec.closed:
		t.Fatalf("the connection closed: %v", err)
	default:
	}
}
