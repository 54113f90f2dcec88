package main

import (
	"context"
	"encoding/json"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"time"

	"github.com/wsactor/wsactor"
)

// What the soak sends. Every request carries a nonce unique in the issuing
// process and a CRC-32 of its payload; the peer's handler checks the CRC of
// what it received and echoes nonce, CRC and payload, so the issuer can tell
// a reply that belongs to another request (wrong nonce) from a corrupt one
// (wrong CRC).

// Request operations: what the handler on the other side is asked to do.
const (
	opEcho  = "echo"  // reply at once
	opSlow  = "slow"  // sleep MS milliseconds (or until ctx ends), then reply
	opStall = "stall" // never reply: wait for ctx (the issuer times out or cancels)
	opPanic = "panic" // panic in the handler: an error reply "panic" and an actor restart
	opError = "error" // return a RemoteError of code codeSoak
	opAsk   = "ask"   // the server handler asks the client back before it replies
	opClose = "close" // the server handler ends the connection (Conn.Close) mid-request
	opRst   = "rst"   // the server handler resets the TCP socket under the connection
	opFlood = "flood" // the server handler floods the client with MS plain messages of 64 KiB
	opPrime = "prime" // the server handler sends the client a plain message and asks it back before it replies
)

// codeSoak is the RemoteError code of opError.
const codeSoak = "soak"

type reqMsg struct {
	Op string `json:"op"`
	N  uint64 `json:"n"`
	C  uint32 `json:"c"`
	MS int    `json:"ms,omitempty"`
	P  string `json:"p"`
}

type replyMsg struct {
	N uint64 `json:"n"`
	C uint32 `json:"c"`
	P string `json:"p"`
}

// plainMsg is a plain message (Conn.Send). Panic asks the receiving message
// handler to panic; Flood marks the messages of an opFlood.
type plainMsg struct {
	M     uint64 `json:"m"`
	C     uint32 `json:"c"`
	Panic bool   `json:"panic,omitempty"`
	Flood bool   `json:"flood,omitempty"`
	P     string `json:"p"`
}

func checksum(s string) uint32 { return crc32.ChecksumIEEE([]byte(s)) }

// payloads hands out payload strings cut from one random text: no
// allocation per request, and JSON needs no escaping for them.
type payloads struct {
	text     string
	min, max int
}

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

func newPayloads(seed int64, minSize, maxSize int) *payloads {
	r := rand.New(rand.NewPCG(uint64(seed), 0x50a4))
	n := max(maxSize, 64<<10) * 4
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return &payloads{text: string(b), min: minSize, max: maxSize}
}

// size draws a payload size between min and max, skewed towards small
// ones: min·(max/min)^(u³) for a uniform u, so that with 64 B–64 KiB the
// median is about 150 B and one payload in ten is over 10 KiB.
func (p *payloads) size(r *rand.Rand) int {
	if p.max <= p.min {
		return p.min
	}
	u := r.Float64()
	s := float64(p.min) * math.Pow(float64(p.max)/float64(p.min), u*u*u)
	return min(max(int(s), p.min), p.max)
}

// get returns a payload of n bytes.
func (p *payloads) get(r *rand.Rand, n int) string {
	off := r.IntN(len(p.text) - n + 1)
	return p.text[off : off+n]
}

// sleepCtx waits d or until ctx ends and reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// decodeReply checks a reply against the request it answers: it returns
// "" when it matches, else what is wrong.
func decodeReply(data json.RawMessage, nonce uint64, crc uint32) string {
	var r replyMsg
	if err := json.Unmarshal(data, &r); err != nil {
		return "reply is not a soak reply: " + err.Error()
	}
	switch {
	case r.N != nonce:
		return "reply delivered to the wrong request (nonce mismatch)"
	case r.C != crc:
		return "reply checksum differs from the request's"
	case checksum(r.P) != crc:
		return "reply payload is corrupt (checksum mismatch)"
	}
	return ""
}

// answer is the request handling both sides share: it decodes and checks
// the request and runs the ops every side knows; extra (may be nil) runs the
// side's own ops and reports false for an op it does not know either.
func answer(ctx context.Context, req wsactor.Request, chk *checker, side string, extra func(reqMsg) bool) (any, error) {
	var m reqMsg
	if err := req.Decode(&m); err != nil || m.N == 0 {
		return nil, &wsactor.RemoteError{Code: wsactor.CodeBadRequest, Message: "soak: not a soak request"}
	}
	if checksum(m.P) != m.C {
		chk.fail("corrupt", "%s received request %d (%s) with a payload that fails its checksum", side, m.N, m.Op)
	}
	switch m.Op {
	case opEcho:
	case opSlow:
		if !sleepCtx(ctx, time.Duration(m.MS)*time.Millisecond) {
			return nil, ctx.Err()
		}
	case opStall:
		<-ctx.Done()
		return nil, ctx.Err()
	case opPanic:
		panic("soak: chaos: " + side + " request handler panic")
	case opError:
		return nil, &wsactor.RemoteError{Code: codeSoak, Message: "soak: asked for an error"}
	default:
		if extra == nil || !extra(m) {
			return nil, &wsactor.RemoteError{Code: wsactor.CodeBadRequest, Message: "soak: unknown op " + m.Op}
		}
	}
	return replyMsg{N: m.N, C: m.C, P: m.P}, nil
}
