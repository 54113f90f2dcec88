package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The program runs over 127.0.0.1, both sides ask and answer, and it
// returns with every goroutine of the server, the client and the HTTP
// server ended (goleak).
func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	want := regexp.MustCompile(`^server listening on ws://127\.0\.0\.1:\d+/primus
the server asked: "who are you\?"
the server answered: 1 \+ 2 = 3, gopher
$`)
	if !want.MatchString(out.String()) {
		t.Fatalf("output:\n%s\nwant it to match:\n%s", out.String(), want)
	}
}

// The README's usage section is this program, verbatim, so that what a
// newcomer copies is what TestRun runs.
func TestREADMEShowsThisProgram(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	prog, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```go\n"+string(prog)+"```\n") {
		t.Fatal("README.md does not show examples/echo/main.go verbatim in a ```go block: copy it there")
	}
}
