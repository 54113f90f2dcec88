package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wsactor/wsactor"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const wait = 15 * time.Second

// jsDir is the repository's js/ folder, relative to this package.
var jsDir = filepath.Join("..", "..", "js")

// The embedded browser client is a copy of js/wsactor.js (go generate).
func TestEmbeddedClientMatchesJS(t *testing.T) {
	want, err := os.ReadFile(filepath.Join(jsDir, "wsactor.js"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := static.ReadFile("static/wsactor.js")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("examples/chat/static/wsactor.js differs from js/wsactor.js: run `go generate ./examples/chat`")
	}
}

func startChat(t *testing.T, cfg config) (*chat, *httptest.Server, string) {
	t.Helper()
	app, err := newChat(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(app)
	t.Cleanup(func() {
		if err := app.Close(); err != nil {
			t.Errorf("chat Close: %v", err)
		}
		hs.Close()
	})
	return app, hs, "ws" + strings.TrimPrefix(hs.URL, "http") + "/primus"
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		t.Fatalf("timed out waiting for %s", what)
	}
	panic("unreachable")
}

// joinClient dials the chat as a Go client. It answers presence checks unless
// silent; pushes go to the returned channel.
func joinClient(t *testing.T, url string, silent bool) (*wsactor.Client, <-chan push) {
	t.Helper()
	pushes := make(chan push, 256)
	answer := func(ctx context.Context, c *wsactor.Conn, req wsactor.Request) (any, error) {
		if silent {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return map[string]bool{"here": true}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	cl, err := wsactor.Dial(ctx, url, wsactor.WithRequestHandler(answer),
		wsactor.WithMessageHandler(func(c *wsactor.Conn, msg json.RawMessage) {
			var p push
			if err := json.Unmarshal(msg, &p); err != nil {
				t.Errorf("push %s: %v", msg, err)
			}
			pushes <- p
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	return cl, pushes
}

func ask(t *testing.T, cl *wsactor.Client, v any, into any) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	r, err := cl.Request(ctx, v)
	if err == nil && into != nil {
		if derr := r.Decode(into); derr != nil {
			t.Fatalf("decode %s: %v", r.Data, derr)
		}
	}
	return err
}

func wantCode(t *testing.T, err error, code string) *wsactor.RemoteError {
	t.Helper()
	var re *wsactor.RemoteError
	if !errors.As(err, &re) || re.Code != code {
		t.Fatalf("got %v, want a RemoteError %q", err, code)
	}
	return re
}

// waitPush returns the first push that satisfies ok.
func waitPush(t *testing.T, ch <-chan push, what string, ok func(push) bool) push {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case p := <-ch:
			if ok(p) {
				return p
			}
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func usersAre(p push, want string) bool {
	if p.Type != "users" {
		return false
	}
	var parts []string
	for _, u := range p.Users {
		s := u.Name
		if u.Away {
			s += "(away)"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ") == want
}

// The room's rules, with Go clients: join, send, list, refusals, pushes,
// presence, leaving.
func TestChatRules(t *testing.T) {
	_, _, url := startChat(t, config{PresenceEvery: 50 * time.Millisecond, PresenceTimeout: 200 * time.Millisecond, History: 3})
	alice, ap := joinClient(t, url, false)

	wantCode(t, ask(t, alice, map[string]string{"op": "send", "text": "too early"}, nil), "not_joined")
	wantCode(t, ask(t, alice, map[string]string{"op": "join", "name": "   "}, nil), "empty")
	wantCode(t, ask(t, alice, map[string]string{"op": "join", "name": strings.Repeat("é", maxName+1)}, nil), "too_long")
	wantCode(t, ask(t, alice, map[string]string{"op": "join", "name": "a\x01b"}, nil), "bad_text")
	wantCode(t, ask(t, alice, map[string]string{"op": "dance"}, nil), "unknown_op")
	wantCode(t, ask(t, alice, "not an object", nil), wsactor.CodeBadRequest)
	var joined struct {
		Name, Room string
		Rooms      []string
	}
	if err := ask(t, alice, map[string]string{"op": "join", "name": " alice "}, &joined); err != nil || joined.Name != "alice" || joined.Room != "lobby" || len(joined.Rooms) != 3 {
		t.Fatalf("join: %v %v", joined, err)
	}
	wantCode(t, ask(t, alice, map[string]string{"op": "join", "name": "alice2"}, nil), "already_joined")
	waitPush(t, ap, "alice's own join", func(p push) bool { return usersAre(p, "alice") })

	bob, bp := joinClient(t, url, false)
	re := wantCode(t, ask(t, bob, map[string]string{"op": "join", "name": "ALICE"}, nil), "name_taken")
	if !strings.Contains(re.Message, `"alice"`) {
		t.Fatalf("refusal message %q", re.Message)
	}
	if err := ask(t, bob, map[string]string{"op": "join", "name": "bob"}, nil); err != nil {
		t.Fatal(err)
	}
	var sent map[string]int
	if err := ask(t, bob, map[string]string{"op": "send", "text": "hi alice"}, &sent); err != nil || sent["id"] == 0 {
		t.Fatalf("send: %v %v", sent, err)
	}
	got := waitPush(t, ap, "bob's message", func(p push) bool { return p.Type == "message" && !p.Message.System })
	if got.Message.From != "bob" || got.Message.Text != "hi alice" || got.Message.ID != sent["id"] {
		t.Fatalf("pushed %+v", got.Message)
	}
	waitPush(t, bp, "bob's own message", func(p push) bool { return p.Type == "message" && p.Message.Text == "hi alice" })

	// A member that never answers the presence check is marked away; the
	// others stay online.
	carol, _ := joinClient(t, url, true)
	if err := ask(t, carol, map[string]string{"op": "join", "name": "carol"}, nil); err != nil {
		t.Fatal(err)
	}
	waitPush(t, ap, "carol away", func(p push) bool { return usersAre(p, "alice bob carol(away)") })

	var l listReply
	if err := ask(t, alice, map[string]string{"op": "list"}, &l); err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, m := range l.History {
		texts = append(texts, m.Text)
	}
	if strings.Join(texts, "|") != "bob joined|hi alice|carol joined" { // History: 3
		t.Fatalf("history %q", texts)
	}

	// Leaving: the others are told.
	if err := bob.Close(); err != nil {
		t.Fatal(err)
	}
	waitPush(t, ap, "bob left", func(p push) bool { return p.Type == "message" && p.Message.System && p.Message.Text == "bob left" })
	waitPush(t, ap, "users without bob", func(p push) bool { return usersAre(p, "alice carol(away)") })
}

// `go run ./examples/chat` prints a URL that serves the page and the client,
// and stops cleanly.
func TestRunPrintsURLAndServes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, "127.0.0.1:0", defaultConfig(), pw)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	u := regexp.MustCompile(`http://127\.0\.0\.1:\d+/`).FindString(line)
	if u == "" {
		t.Fatalf("no URL in %q", line)
	}
	for path, want := range map[string]string{"": "wsactor chat", "app.js": "onRequest", "wsactor.js": "primus-responder", "style.css": "--accent"} {
		resp, err := http.Get(u + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Fatalf("GET /%s: %d, body without %q", path, resp.StatusCode, want)
		}
	}
	cancel()
	if err := recv(t, done, "run to return"); err != nil {
		t.Fatalf("run: %v", err)
	}
}

// requireNode returns the node binary; it skips only when node is missing
// and CI is not set.
func requireNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("node is not installed, and CI is set: the browser test must run on CI (%v)", err)
		}
		t.Skipf("node is not installed (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(jsDir, "node_modules", "playwright-core", "package.json")); err != nil {
		t.Fatalf("js/node_modules is missing: run js/install-test-deps.sh before go test (%v)", err)
	}
	chromium := os.Getenv("CHROMIUM_PATH")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("Chromium is missing at %s: run js/install-test-deps.sh before go test (%v)", chromium, err)
	}
	return node
}

// runNode runs a Node script in js/ to its end (in its own process group,
// always stopped) and returns its JSON lines.
func runNode(t *testing.T, script string, args ...string) []map[string]any {
	t.Helper()
	node := requireNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{script}, args...)...)
	cmd.Dir = jsDir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// SIGTERM first: playwright closes its browser on it; WaitDelay then kills.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var events []map[string]any
	for _, line := range strings.Split(stdout.String(), "\n") {
		var ev map[string]any
		if json.Unmarshal([]byte(line), &ev) == nil && ev != nil {
			events = append(events, ev)
		}
	}
	if err != nil {
		t.Fatalf("node %s: %v\nstdout:\n%s\nstderr:\n%s", script, err, stdout.String(), stderr.String())
	}
	return events
}

type chatPage struct {
	Me       string
	Room     string
	State    string
	Messages []struct {
		From, Text string
		System     bool
	}
	Users []user
}

// Two tabs join as alice and bob (bob is first refused the name "Alice"),
// exchange messages, both see them, both see carol (a Go client that never
// answers the presence check) as away; the screenshot is not blank.
func TestChatInBrowser(t *testing.T) {
	requireNode(t)
	app, hs, url := startChat(t, config{PresenceEvery: 200 * time.Millisecond, PresenceTimeout: 500 * time.Millisecond, History: 100})
	carol, _ := joinClient(t, url, true)
	if err := ask(t, carol, map[string]string{"op": "join", "name": "carol"}, nil); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(t.TempDir(), "chat.png")
	events := runNode(t, filepath.Join("test", "chat-demo.mjs"), hs.URL+"/", shot, "--away", "carol")
	if len(events) == 0 || events[len(events)-1]["event"] != "result" {
		t.Fatalf("no result: %v", events)
	}
	b, _ := json.Marshal(events[len(events)-1])
	var res struct {
		JoinError struct{ Code, Text string }
		A, B      chatPage
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if res.JoinError.Code != "name_taken" || !strings.Contains(res.JoinError.Text, "taken") {
		t.Fatalf("the duplicate name was not refused on the page: %+v", res.JoinError)
	}
	for _, p := range []struct {
		me   string
		page chatPage
	}{{"alice", res.A}, {"bob", res.B}} {
		if p.page.Me != p.me || p.page.State != "joined" {
			t.Fatalf("%s's tab: me %q state %q", p.me, p.page.Me, p.page.State)
		}
		var said, system []string
		for _, m := range p.page.Messages {
			if m.System {
				system = append(system, m.Text)
			} else {
				said = append(said, m.From+": "+m.Text)
			}
		}
		// history (list) and pushes merged in order
		if strings.Join(system, "|") != "carol joined|alice joined|bob joined" {
			t.Fatalf("%s's tab shows events %q", p.me, system)
		}
		if strings.Join(said, "\n") != "alice: hello bob, this is alice\nbob: hi alice! bob here — ça va ?" {
			t.Fatalf("%s's tab shows %q", p.me, said)
		}
		if got, _ := json.Marshal(p.page.Users); string(got) != `[{"name":"alice","away":false},{"name":"bob","away":false},{"name":"carol","away":true}]` {
			t.Fatalf("%s's tab users %s", p.me, got)
		}
	}
	// The server's history has the same two messages.
	app.mu.Lock()
	var said []string
	for _, m := range app.history["lobby"] {
		if !m.System {
			said = append(said, m.From+": "+m.Text)
		}
	}
	app.mu.Unlock()
	if len(said) != 2 {
		t.Fatalf("server history %q", said)
	}

	checkScreenshot(t, shot)
	if data, err := os.ReadFile(shot); err == nil {
		if err := os.WriteFile("/tmp/chat-screenshot.png", data, 0o644); err != nil {
			t.Logf("copy of the screenshot: %v", err)
		}
	}
}

// checkScreenshot fails unless the PNG has many colours and no colour covers
// almost all of it.
func checkScreenshot(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	bounds := img.Bounds()
	counts := map[[4]uint32]int{}
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			r, g, b, a := img.At(x, y).RGBA()
			counts[[4]uint32{r >> 8, g >> 8, b >> 8, a >> 8}]++
		}
	}
	total := bounds.Dx() * bounds.Dy()
	top := 0
	for _, n := range counts {
		top = max(top, n)
	}
	t.Logf("screenshot %dx%d: %d colours, the commonest covers %.0f%%", bounds.Dx(), bounds.Dy(), len(counts), 100*float64(top)/float64(total))
	if bounds.Dx() < 800 || bounds.Dy() < 600 || len(counts) < 200 || float64(top) > 0.9*float64(total) {
		t.Fatalf("the screenshot looks blank: %dx%d, %d colours, commonest %d of %d pixels", bounds.Dx(), bounds.Dy(), len(counts), top, total)
	}
}

// Two nodes joined over an embedded NATS server, a tab on each: bob is
// refused alice's name although she is on the other node; they talk in
// #lobby; alice moves to #go and speaks there, which bob (still in #lobby)
// does not see until he moves too, when #go's history (kept by both nodes)
// shows it and the user list shows both of them.
func TestChatTwoNodesInBrowser(t *testing.T) {
	requireNode(t)
	ns, err := startNATS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	var apps []*chat
	var urls []string
	for i := range 2 {
		cfg := config{PresenceEvery: 200 * time.Millisecond, PresenceTimeout: 500 * time.Millisecond, History: 100,
			NATS: ns.ClientURL(), NodeID: fmt.Sprintf("node%d", i+1)}
		app, hs, _ := startChat(t, cfg)
		apps, urls = append(apps, app), append(urls, hs.URL+"/")
	}
	shot := filepath.Join(t.TempDir(), "chat-two-nodes.png")
	events := runNode(t, filepath.Join("test", "chat-demo.mjs"), urls[0], shot, "--url-b", urls[1], "--rooms")
	if len(events) == 0 || events[len(events)-1]["event"] != "result" {
		t.Fatalf("no result: %v", events)
	}
	b, _ := json.Marshal(events[len(events)-1])
	var res struct {
		JoinError struct{ Code, Text string }
		A, B      chatPage
		LobbyB    chatPage
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if res.JoinError.Code != "name_taken" {
		t.Fatalf("alice's name was not refused on the other node: %+v", res.JoinError)
	}
	said := func(p chatPage) string {
		var out []string
		for _, m := range p.Messages {
			if !m.System {
				out = append(out, m.From+": "+m.Text)
			}
		}
		return strings.Join(out, "\n")
	}
	if got := said(res.LobbyB); got != "alice: hello bob, this is alice\nbob: hi alice! bob here — ça va ?\nbob: still in the lobby" {
		t.Fatalf("bob's tab in #lobby shows %q", got)
	}
	for _, p := range []struct {
		me   string
		page chatPage
	}{{"alice", res.A}, {"bob", res.B}} {
		if p.page.Room != "go" || said(p.page) != "alice: anyone in go?" {
			t.Fatalf("%s's tab in %q shows %q", p.me, p.page.Room, said(p.page))
		}
		if got, _ := json.Marshal(p.page.Users); string(got) != `[{"name":"alice","away":false},{"name":"bob","away":false}]` {
			t.Fatalf("%s's tab users %s", p.me, got)
		}
	}
	for i, app := range apps {
		app.mu.Lock()
		var texts []string
		for _, m := range app.history["go"] {
			texts = append(texts, m.Text)
		}
		app.mu.Unlock()
		if !slices.Contains(texts, "anyone in go?") {
			t.Fatalf("node %d's #go history %q", i+1, texts)
		}
	}
	checkScreenshot(t, shot)
}

// `go run ./examples/chat -nodes 2` starts an embedded NATS server and two
// nodes, prints both URLs, serves both and stops cleanly.
func TestRunTwoNodes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- runNodes(ctx, "127.0.0.1:0", 2, defaultConfig(), pw)
		pw.Close()
	}()
	rd := bufio.NewReader(pr)
	var urls []string
	for len(urls) < 2 {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if u := regexp.MustCompile(`http://127\.0\.0\.1:\d+/`).FindString(line); u != "" {
			urls = append(urls, u)
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	for _, u := range urls {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), "wsactor chat") {
			t.Fatalf("GET %s: %d", u, resp.StatusCode)
		}
	}
	cancel()
	if err := recv(t, done, "runNodes to return"); err != nil {
		t.Fatalf("runNodes: %v", err)
	}
}
