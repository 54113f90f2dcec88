package conn

import (
	"math/rand/v2"
	"testing"
)

// readState against a reference: random streams of frames (data frames,
// fragmented messages with control frames between fragments, every length
// encoding, masked or not) split at random points; after each piece, busy
// must say whether a message is incomplete, and track must report a new
// message exactly when one began in the piece.
func TestReadStateFollowsFrames(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := range 200 {
		var stream []byte
		var busyAfter []bool // busyAfter[i]: a message is incomplete after stream[:i+1]
		var beginsAt []bool  // beginsAt[i]: stream[i] is the first byte of a message
		inMsg := false
		add := func(frame []byte, ctrl, fin bool) {
			for i := range frame {
				beginsAt = append(beginsAt, i == 0 && !inMsg)
				last := i == len(frame)-1
				busy := !last || inMsg
				if last && !ctrl {
					busy = !fin
				}
				busyAfter = append(busyAfter, busy)
			}
			if !ctrl {
				inMsg = !fin
			}
			stream = append(stream, frame...)
		}
		masked := rng.IntN(2) == 0
		for range 1 + rng.IntN(8) {
			parts := 1 + rng.IntN(3)
			for p := range parts {
				op := byte(opText)
				if p > 0 {
					op = 0 // continuation
				}
				fin := p == parts-1
				add(testFrame(rng, op, fin, masked), false, fin)
				if !fin && rng.IntN(2) == 0 {
					add(testFrame(rng, 0x9, true, masked), true, true) // a ping between fragments
				}
			}
		}
		var r readState
		r.phase = phHead0
		for i := 0; i < len(stream); {
			n := 1 + rng.IntN(min(len(stream)-i, 1+rng.IntN(300)))
			want := false
			for _, b := range beginsAt[i : i+n] {
				want = want || b
			}
			if got := r.track(stream[i:i+n], nil); got != want {
				t.Fatalf("iter %d: track(stream[%d:%d]) began %v, want %v", iter, i, i+n, got, want)
			}
			i += n
			if r.busy() != busyAfter[i-1] {
				t.Fatalf("iter %d: after %d of %d bytes busy %v, want %v", iter, i, len(stream), r.busy(), busyAfter[i-1])
			}
		}
	}
}

func testFrame(rng *rand.Rand, op byte, fin, masked bool) []byte {
	var n int
	switch rng.IntN(20) {
	case 0, 1, 2:
		n = 0
	case 3: // the 16-bit length at its ends
		n = 126 + (0xFFFF-126)*rng.IntN(2)
	case 4: // a 64-bit length
		n = 0x10000 + rng.IntN(100)
	default:
		if rng.IntN(2) == 0 {
			n = rng.IntN(126)
		} else {
			n = 126 + rng.IntN(1000)
		}
	}
	if op >= 0x8 {
		n = rng.IntN(126)
	}
	f := appendFrame(nil, op, make([]byte, n), masked)
	if !fin {
		f[0] &^= 0x80
	}
	return f
}

// The client role starts in the handshake response: frames begin after its
// blank line, even when it arrives in pieces and with frame bytes.
func TestReadStateAfterHandshake(t *testing.T) {
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
	stream := append([]byte(resp), 0x81, 0x03, 'a') // a frame cut short
	for cut := 1; cut < len(stream); cut++ {
		var r readState // phHTTP
		r.track(stream[:cut], nil)
		began := r.track(stream[cut:], nil)
		if !r.busy() || (cut <= len(resp) && !began) {
			t.Fatalf("cut %d: busy %v began %v, want a message begun", cut, r.busy(), began)
		}
	}
}
