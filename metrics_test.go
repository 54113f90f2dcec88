package wsactor_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/wsactor/wsactor"
)

// upgrade sends a WebSocket upgrade request to url (ws://) with the given
// Origin ("" for none) and returns the status.
func upgrade(t *testing.T, url, origin string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(ctxWait(t), http.MethodGet, "http"+strings.TrimPrefix(url, "ws"), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// Stats.RefusedBy counts each refused upgrade under its reason, and
// Refused is their sum.
func TestStatsRefusedByReason(t *testing.T) {
	srv, url := startServer(t, wsactor.WithMaxConnections(1))
	dial(t, url)
	if code := upgrade(t, url, ""); code != http.StatusServiceUnavailable {
		t.Fatalf("over capacity: %d", code)
	}
	if code := upgrade(t, url, "http://evil.example"); code != http.StatusForbidden {
		t.Fatalf("foreign origin: %d", code)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if code := upgrade(t, url, ""); code != http.StatusServiceUnavailable {
		t.Fatalf("shut down: %d", code)
	}
	st := srv.Stats()
	var want [wsactor.NumRefuseReasons]int64
	want[wsactor.RefusedCapacity] = 1
	want[wsactor.RefusedOrigin] = 1
	want[wsactor.RefusedShutdown] = 1
	if st.RefusedBy != want || st.Refused != 3 {
		t.Fatalf("Refused %d, RefusedBy %v, want 3 and %v", st.Refused, st.RefusedBy, want)
	}
	for r, name := range map[wsactor.RefuseReason]string{wsactor.RefusedOrigin: "origin", wsactor.RefusedCapacity: "capacity", wsactor.RefusedAuth: "auth", wsactor.RefusedShutdown: "shutdown", wsactor.RefusedHandshake: "handshake"} {
		if r.String() != name {
			t.Errorf("%d.String() = %q, want %q", r, r.String(), name)
		}
	}
}
