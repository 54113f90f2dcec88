package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/lxzan/gws"
)

// junkEvents is the gws handler of a junk connection: it collects the
// server's replies by responseId.
type junkEvents struct {
	gws.BuiltinEventHandler
	mu      sync.Mutex
	replies map[string][]junkReply
	got     chan struct{} // a reply arrived (buffered 1)
	closed  chan struct{}
}

type junkReply struct {
	data bool
	code string
}

func (h *junkEvents) OnMessage(_ *gws.Conn, m *gws.Message) {
	defer m.Close()
	var env struct {
		Plugin     string          `json:"plugin"`
		ResponseID string          `json:"responseId"`
		Data       json.RawMessage `json:"data"`
		Error      *struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(m.Bytes(), &env) != nil || env.Plugin != "primus-responder" || env.ResponseID == "" {
		return // pings and the like
	}
	r := junkReply{data: env.Error == nil}
	if env.Error != nil {
		r.code = env.Error.Code
	}
	h.mu.Lock()
	h.replies[env.ResponseID] = append(h.replies[env.ResponseID], r)
	h.mu.Unlock()
	select {
	case h.got <- struct{}{}:
	default:
	}
}

func (h *junkEvents) OnClose(*gws.Conn, error) { close(h.closed) }

func (h *junkEvents) get(id string) []junkReply {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.replies[id]
}

// junk opens a raw WebSocket (gws, not wsactor) to the server and sends
// what a broken or hostile peer would: malformed JSON, a top-level null, a
// binary frame, invalid UTF-8, replies to ids never issued, requests with
// bad or missing ids, a duplicate request id, a cancel of nothing, data the
// handler cannot use, and (every other time) a frame over the server's
// size limit, which closes the connection with 1009.
//
// The server must report each as bad input and go on serving; the
// duplicate must be handled once (one reply, one duplicate_id error) and
// the unusable data must get a bad_request error, never a reply.
func (f *fleet) junk(ctx context.Context, url string, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x1e))
	h := &junkEvents{replies: make(map[string][]junkReply), got: make(chan struct{}, 1), closed: make(chan struct{})}
	c, _, err := gws.NewClient(h, &gws.ClientOption{
		Addr:                url,
		HandshakeTimeout:    5 * time.Second,
		ReadMaxPayloadSize:  16 << 20,
		WriteMaxPayloadSize: 4 * f.cfg.maxMessage(),
	})
	if err != nil {
		return // the server may be busy or shutting down; not a violation
	}
	var rl sync.WaitGroup
	rl.Add(1)
	go func() {
		defer rl.Done()
		c.ReadLoop()
	}()
	defer func() {
		_ = c.NetConn().Close()
		rl.Wait()
	}()

	tag := fmt.Sprintf("%x", rng.Uint64())
	text := func(s string) error { return c.WriteMessage(gws.OpcodeText, []byte(s)) }
	// The frames the server must report as bad input, in order.
	bad := []func() error{
		func() error { return text(`{"plugin":"primus-responder","requestId":`) },                  // malformed
		func() error { return text(`null`) },                                                       // null
		func() error { return c.WriteMessage(gws.OpcodeBinary, []byte{0, 1, 2, 0xff}) },            // binary
		func() error { return text("{\"p\":\"\xff\xfe\xfd\"}") },                                   // invalid UTF-8
		func() error { return text(`{"plugin":"primus-responder","responseId":"nope","data":1}`) }, // unknown reply
		func() error {
			return text(`{"plugin":"primus-responder","responseId":"6f1c2e3a-1b2c-4d5e-8f90-a1b2c3d4e5f6","data":1}`)
		}, // a reply in our id form never issued: late
		func() error { return text(`{"plugin":"primus-responder","requestId":{"x":1},"data":1}`) }, // bad id
		func() error { return text(`{"plugin":"primus-responder","data":1}`) },                     // missing id
	}
	sent := 0
	for _, w := range bad {
		if w() != nil {
			return
		}
		sent++
		f.junkFrames.Add(1)
	}
	// A duplicate request id while the first is in progress (it stalls
	// until the cancel that follows, so that it is in progress however
	// slowly the server reads: a handler that merely took a while raced the
	// duplicate under load), a request the handler cannot decode, and a
	// cancel of an id never sent.
	dup, badData := "dup-"+tag, "bad-"+tag
	stall, _ := json.Marshal(reqMsg{Op: opStall, N: 1, C: checksum("")})
	req := func(id string, data []byte) error {
		return text(`{"plugin":"primus-responder","requestId":"` + id + `","data":` + string(data) + `}`)
	}
	if req(dup, stall) != nil || req(dup, stall) != nil || req(badData, []byte(`"not a soak request"`)) != nil ||
		text(`{"plugin":"primus-responder","cancelId":"`+dup+`"}`) != nil ||
		text(`{"plugin":"primus-responder","cancelId":"never-`+tag+`"}`) != nil {
		return
	}
	f.junkFrames.Add(5)
	sent++ // the duplicate is bad input too

	// Wait for the answers: one duplicate_id error for dup (the first ends
	// quietly with the cancel), one bad_request error for badData.
	deadline := time.NewTimer(f.cfg.Timeout + 2*time.Second)
	defer deadline.Stop()
	for len(h.get(dup)) < 1 || len(h.get(badData)) < 1 {
		select {
		case <-h.got:
		case <-h.closed:
			return
		case <-deadline.C:
			f.junkUnverified.Add(1)
			return
		case <-ctx.Done():
			return
		}
	}
	// Every frame before the replies has been read and reported.
	f.junkBadExpected.Add(int64(sent))
	datas, dups := 0, 0
	for _, r := range h.get(dup) {
		switch {
		case r.data:
			datas++
		case r.code == "duplicate_id":
			dups++
		}
	}
	if datas > 0 {
		f.chk.fail("duplicate", "junk connection: a stalled request (or its duplicate) got %d replies with data", datas)
	}
	if dups != 1 {
		f.chk.fail("duplicate", "junk connection: the duplicate request got %d duplicate_id errors, want 1 (replies %+v)", dups, h.get(dup))
	}
	for _, r := range h.get(badData) {
		if r.data || r.code != "bad_request" {
			f.chk.fail("wrong-reply", "junk connection: a request with unusable data got %+v, want a bad_request error", r)
		}
	}
	if rng.IntN(2) == 0 {
		// Over the server's limit: it closes with 1009.
		big := `"` + strings.Repeat("x", f.cfg.maxMessage()) + `"`
		if text(big) == nil {
			f.junkFrames.Add(1)
			// As long as a request may take: the server's read goroutine
			// and this one's must both be scheduled.
			wait := f.cfg.Timeout + f.cfg.Grace
			t := time.NewTimer(wait)
			select {
			case <-h.closed:
			case <-t.C:
				f.chk.fail("too-large", "junk connection: the server did not close within %v after a frame over its size limit", wait)
			}
			t.Stop()
		}
		return
	}
	_ = c.WriteClose(1000, nil)
}
