package mailbox_test

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/wsactor/wsactor/mailbox"
)

// goid returns the calling goroutine's id, read from its stack header.
func goid() uint64 {
	var buf [64]byte
	b := bytes.TrimPrefix(buf[:runtime.Stack(buf[:], false)], []byte("goroutine "))
	n, err := strconv.ParseUint(string(b[:bytes.IndexByte(b, ' ')]), 10, 64)
	if err != nil {
		panic("goid: " + err.Error())
	}
	return n
}

// Each mode runs on the poster exactly what it says, through each of the
// three ways to post: Drain the posted message and those posted while it
// runs (within the budget), Own the posted message only, Handoff nothing.
func TestPostModes(t *testing.T) {
	type post func(p mailbox.Poster[int], v int) error
	posts := map[string]post{
		"Post":       func(p mailbox.Poster[int], v int) error { return p.Post(v) },
		"PostWait":   func(p mailbox.Poster[int], v int) error { return p.PostWait(context.Background(), v) },
		"PostSystem": func(p mailbox.Poster[int], v int) error { return p.PostSystem(v) },
	}
	for _, tc := range []struct {
		mode mailbox.Mode
		name string
		want string // which of 1, 2, 3 ran on the poster
	}{
		{mailbox.Drain, "Drain", "[true true true]"},
		{mailbox.Own, "Own", "[true false false]"},
		{mailbox.Handoff, "Handoff", "[false false false]"},
	} {
		for how, fn := range posts {
			t.Run(tc.name+"/"+how, func(t *testing.T) {
				var poster uint64
				var onPoster [3]bool
				done := make(chan struct{})
				var m *mailbox.Mailbox[int]
				m, err := mailbox.New(func(v int) {
					onPoster[v-1] = goid() == poster
					if v == 1 {
						// Posted while 1 runs: the poster holds the role.
						_ = m.Post(2)
						_ = m.PostSystem(3)
					}
					if v == 2 {
						close(done)
					}
				}, mailbox.WithInlineDrain(8))
				if err != nil {
					t.Fatal(err)
				}
				poster = goid()
				if err := fn(m.With(tc.mode), 1); err != nil {
					t.Fatal(err)
				}
				waitClosed(t, done, "the messages")
				m.Close()
				waitClosed(t, m.Stopped(), "Stopped")
				if got := fmt.Sprint(onPoster); got != tc.want {
					t.Errorf("on the poster: %s, want %s", got, tc.want)
				}
			})
		}
	}
}

// Without an inline budget every mode hands off.
func TestPostModesWithoutBudget(t *testing.T) {
	for _, mode := range []mailbox.Mode{mailbox.Drain, mailbox.Own, mailbox.Handoff} {
		poster := goid()
		ran := make(chan uint64, 1)
		m, err := mailbox.New(func(int) { ran <- goid() })
		if err != nil {
			t.Fatal(err)
		}
		if err := m.With(mode).Post(1); err != nil {
			t.Fatal(err)
		}
		select {
		case g := <-ran:
			if g == poster {
				t.Errorf("mode %d ran the handler on the poster without an inline budget", mode)
			}
		case <-time.After(wait):
			t.Fatal("the message was not handled")
		}
		m.Close()
		waitClosed(t, m.Stopped(), "Stopped")
	}
}

// With WithOwnAlso, a post in mode Own goes on with the queued messages
// the predicate allows, in order, and hands off from the first it refuses
// (system lane first, as always).
func TestOwnAlso(t *testing.T) {
	var poster uint64
	onPoster := map[int]bool{}
	done := make(chan struct{})
	var m *mailbox.Mailbox[int]
	m, err := mailbox.New(func(v int) {
		onPoster[v] = goid() == poster
		switch v {
		case 1:
			_ = m.Post(3)
			_ = m.Post(4)
			_ = m.PostSystem(2)
		case 4:
			close(done)
		}
	}, mailbox.WithInlineDrain(8), mailbox.WithOwnAlso(func(v int) bool { return v != 3 }))
	if err != nil {
		t.Fatal(err)
	}
	poster = goid()
	if err := m.With(mailbox.Own).Post(1); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, done, "the messages")
	m.Close()
	waitClosed(t, m.Stopped(), "Stopped")
	if got := fmt.Sprint(onPoster); got != "map[1:true 2:true 3:false 4:false]" {
		t.Errorf("on the poster: %s", got)
	}
	if _, err := mailbox.New(func(int) {}, mailbox.WithOwnAlso(func(string) bool { return true })); err == nil {
		t.Error("WithOwnAlso for another type accepted")
	}
	if _, err := mailbox.New(func(int) {}, mailbox.WithOwnAlso[int](nil)); err == nil {
		t.Error("WithOwnAlso(nil) accepted")
	}
}
