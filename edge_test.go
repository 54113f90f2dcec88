package wsactor_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wsactor/wsactor"
)

// upgradeRaw sends a WebSocket upgrade request on a new TCP connection and
// returns the response and the socket (closed at cleanup).
func upgradeRaw(t testing.TB, wsURL string) (*http.Response, net.Conn) {
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
	_ = nc.SetDeadline(time.Now().Add(wait))
	_, err = fmt.Fprintf(nc, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", u.Path, u.Host)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = nc.SetDeadline(time.Time{})
	return resp, nc
}

// An upgrade beyond WithMaxConnections gets 503 with Retry-After before the
// handshake, and is counted; once a connection ends there is room again.
func TestMaxConnectionsRefusesWith503(t *testing.T) {
	gone := make(chan struct{}, 4)
	srv, url := startServer(t,
		wsactor.WithMaxConnections(2),
		wsactor.WithDisconnectHook(func(*wsactor.Conn, error) { gone <- struct{}{} }),
		wsactor.WithRequestHandler(arith))
	ctx := ctxWait(t)
	a, b := dial(t, url), dial(t, url)
	for _, cl := range []*wsactor.Client{a, b} { // both registered on the server
		if _, err := cl.Request(ctx, op{Op: "add", A: 1, B: 2}); err != nil {
			t.Fatal(err)
		}
	}

	resp, _ := upgradeRaw(t, url)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third upgrade: %s, Retry-After %q; want 503 with Retry-After", resp.Status, resp.Header.Get("Retry-After"))
	}
	if st := srv.Stats(); st.Refused != 1 || st.Conns != 2 {
		t.Fatalf("Stats: Refused %d, Conns %d; want 1 and 2", st.Refused, st.Conns)
	}

	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	recv(t, gone, "the server forgets the closed connection")
	resp, _ = upgradeRaw(t, url)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade after a connection ended: %s", resp.Status)
	}
}

func TestMaxConnectionsOption(t *testing.T) {
	if _, err := wsactor.NewServer(wsactor.WithMaxConnections(-1)); err == nil {
		t.Fatal("WithMaxConnections(-1) accepted")
	}
	if _, err := wsactor.Dial(context.Background(), "ws://127.0.0.1:1/primus", wsactor.WithMaxConnections(1)); err == nil ||
		!strings.Contains(err.Error(), "NewServer") {
		t.Fatalf("WithMaxConnections on Dial: %v", err)
	}
	if _, err := wsactor.NewServer(wsactor.WithFrameTimeout(0)); err == nil {
		t.Fatal("WithFrameTimeout(0) accepted")
	}
}

// A peer that sends only a frame header declaring the largest message and
// stalls is dropped at the frame timeout, long before any heartbeat.
func TestHeaderOnlyPeerIsDropped(t *testing.T) {
	errs := make(chan error, 1)
	_, url := startServer(t,
		wsactor.WithFrameTimeout(200*time.Millisecond),
		wsactor.WithDisconnectHook(func(_ *wsactor.Conn, err error) { errs <- err }))
	resp, nc := upgradeRaw(t, url)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatal(resp.Status)
	}
	hdr := []byte{0x81, 0x80 | 127}
	hdr = binary.BigEndian.AppendUint64(hdr, 64<<10) // the default maximum
	hdr = append(hdr, 1, 2, 3, 4)
	if _, err := nc.Write(hdr); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, errs, "disconnect"); !errors.Is(err, wsactor.ErrFrameTimeout) {
		t.Fatalf("disconnect with %v, want ErrFrameTimeout", err)
	}
}

// A request whose data nests deeper than the decoder allows (100,000 deep,
// wherever its id is) gets a bad_request error reply with its id; a request
// after it on the same connection is answered as usual. Before, it got no
// reply at all and its sender waited for its timeout.
func TestTooDeepRequestGetsBadRequest(t *testing.T) {
	_, url := startServer(t, wsactor.WithMaxMessageSize(1<<20), wsactor.WithRequestHandler(arith))
	p := dialRaw(t, url)
	deep := strings.Repeat("[", 100000) + strings.Repeat("]", 100000)
	p.write(t, false, `{"plugin":"primus-responder","requestId":"deep","data":`+deep+`}`)
	p.write(t, false, `{"data":`+deep+`,"plugin":"primus-responder","requestId":7}`)
	p.write(t, false, `{"plugin":"primus-responder","requestId":"ctl","data":{"op":"add","a":1,"b":2}}`)
	type reply struct {
		ResponseID json.RawMessage `json:"responseId"`
		Data       json.RawMessage `json:"data"`
		Error      *struct{ Code, Message string }
	}
	got := map[string]reply{}
	for range 3 {
		var r reply
		if err := json.Unmarshal([]byte(p.read(t)), &r); err != nil {
			t.Fatal(err)
		}
		got[string(r.ResponseID)] = r
	}
	for _, id := range []string{`"deep"`, `7`} {
		if r := got[id]; r.Error == nil || r.Error.Code != wsactor.CodeBadRequest || r.Data != nil {
			t.Errorf("reply to %s: %+v, want a bad_request error", id, r)
		}
	}
	if r := got[`"ctl"`]; r.Error != nil || string(r.Data) != "3" {
		t.Errorf("control reply %+v", r)
	}
}
