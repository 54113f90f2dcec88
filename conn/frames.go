package conn

import "time"

// The frame deadline.
//
// gws allocates a frame's whole declared payload as soon as it has read the
// header, then waits for the payload with no bound of its own: a peer that
// sends a header and stalls pins MaxMessageSize bytes until something else
// ends the connection. netConn.Read sees every byte gws reads, so it
// follows the frame boundaries itself (headers are parsed byte by byte,
// payloads skipped by their length) without copying or buffering anything.
// A message that begins in a read gets a budget of Options.FrameTimeout;
// every read made while a message is incomplete runs under a read deadline
// of what is left of the budget, and spends from it the time it waited. So
// the message (a frame, or all the frames of a fragmented message and any
// control frames between them) must arrive within FrameTimeout of waiting
// for the peer; the time our side spends between reads (a handler holding
// the read goroutine, a full mailbox) is not counted against the peer. A
// small message that arrives whole in one read costs no deadline at all.
//
// Everything here runs on the read goroutine (gws's ReadLoop calls Read;
// OnOpen and OnMessage, which re-arm the client's ping deadline, run there
// too). Deadline changes take c.mu and are skipped once the connection is
// closing, when the closing handshake owns the read deadline.

// Phases of readState.
const (
	phHTTP    uint8 = iota // client role: the handshake response, up to its blank line
	phHead0                // a frame's first byte (or a message boundary)
	phHead1                // mask bit and 7-bit length
	phExtLen               // ext more bytes of the 16- or 64-bit length
	phMaskKey              // ext more bytes of the masking key
	phPayload              // left more payload bytes
)

// readState follows frame boundaries in the bytes read. 32 bytes.
type readState struct {
	left     uint64 // payload bytes left; during phExtLen, the length so far
	budget   int64  // ns the peer has left to complete the current message
	pingAt   int64  // client role: the ping deadline (unix ns); 0 = none
	phase    uint8
	ext      uint8 // length or key bytes left; in phHTTP, "\r\n\r\n" bytes matched
	flags    uint8
	quick    uint8  // reads in a row that came within busyGap of the one before (saturates)
	lastRead uint32 // when bytes were last read, in ms (wraps; only differences count)
}

const (
	rdControl uint8 = 1 << iota // the current frame is a control frame
	rdFin                       // the current frame has FIN set
	rdMasked                    // the current frame is masked
	rdInMsg                     // a fragmented message is open (its last frame not read)
	rdArmed                     // the read deadline is the frame deadline
)

// busy reports whether a message is incomplete.
func (r *readState) busy() bool {
	return r.phase > phHead0 || r.flags&rdInMsg != 0
}

// track advances the state over p and reports whether a new message began
// in p (a frame's first byte read at a message boundary). With d (the
// connection's permessage-deflate state, nil when off) it rewrites the first
// byte of each data message in p for gws (deflateState.head).
func (r *readState) track(p []byte, d *deflateState) (began bool) {
	for len(p) > 0 {
		switch r.phase {
		case phHTTP:
			for i, b := range p {
				switch {
				case b == "\r\n\r\n"[r.ext]:
					r.ext++
				case b == '\r':
					r.ext = 1
				default:
					r.ext = 0
				}
				if r.ext == 4 {
					r.phase, r.ext = phHead0, 0
					p = p[i+1:]
					break
				}
			}
			if r.phase == phHTTP {
				return began
			}
		case phHead0:
			if d != nil && p[0]&0x08 == 0 && r.flags&rdInMsg == 0 {
				p[0] = d.head(p[0])
			}
			b := p[0]
			p = p[1:]
			if r.flags&rdInMsg == 0 {
				began = true
			}
			r.flags &^= rdControl | rdFin | rdMasked
			if b&0x08 != 0 {
				r.flags |= rdControl
			}
			if b&0x80 != 0 {
				r.flags |= rdFin
			}
			r.phase = phHead1
		case phHead1:
			b := p[0]
			p = p[1:]
			if b&0x80 != 0 {
				r.flags |= rdMasked
			}
			switch n := b & 0x7F; n {
			case 126:
				r.left, r.ext, r.phase = 0, 2, phExtLen
			case 127:
				r.left, r.ext, r.phase = 0, 8, phExtLen
			default:
				r.left = uint64(n)
				r.afterLength()
			}
		case phExtLen:
			r.left = r.left<<8 | uint64(p[0])
			p = p[1:]
			if r.ext--; r.ext == 0 {
				r.afterLength()
			}
		case phMaskKey:
			n := min(int(r.ext), len(p))
			p = p[n:]
			if r.ext -= uint8(n); r.ext == 0 {
				r.afterKey()
			}
		case phPayload:
			n := uint64(len(p))
			if n >= r.left {
				p = p[r.left:]
				r.left = 0
				r.frameDone()
			} else {
				r.left -= n
				p = nil
			}
		}
	}
	// A zero-length frame whose header ended p is complete already.
	if r.phase == phPayload && r.left == 0 {
		r.frameDone()
	}
	return began
}

func (r *readState) afterLength() {
	if r.flags&rdMasked != 0 {
		r.ext, r.phase = 4, phMaskKey
		return
	}
	r.afterKey()
}

func (r *readState) afterKey() {
	r.phase = phPayload
	if r.left == 0 {
		r.frameDone()
	}
}

func (r *readState) frameDone() {
	r.phase = phHead0
	if r.flags&rdControl == 0 { // control frames do not end or start messages
		if r.flags&rdFin != 0 {
			r.flags &^= rdInMsg
		} else {
			r.flags |= rdInMsg
		}
	}
}

// beforeRead sets the read deadline for the read about to be made: what is
// left of the message's budget while a message is incomplete, else the idle
// deadline (a client's ping deadline, or none). It returns when the read
// starts, zero when it is not timed.
func (n *netConn) beforeRead() time.Time {
	r := &n.rd
	if r.busy() {
		now := time.Now()
		n.setReadDeadline(now.Add(time.Duration(r.budget)), true)
		return now
	}
	if r.flags&rdArmed != 0 {
		var t time.Time
		if r.pingAt != 0 {
			t = time.Unix(0, r.pingAt)
		}
		n.setReadDeadline(t, false)
	}
	return time.Time{}
}

// afterRead spends the time a timed read waited from the budget and
// follows the frames in p; a message that began in p gets a full budget.
func (n *netConn) afterRead(start time.Time, p []byte) {
	r := &n.rd
	if !start.IsZero() {
		r.budget -= int64(time.Since(start))
	}
	if len(p) > 0 {
		n.tracked(p)
	}
}

// tracked marks the peer live (anything read counts for the heartbeat) and
// follows the frames in p; a message that began in p gets a full budget.
//
//go:noinline
func (n *netConn) tracked(p []byte) {
	if !n.owner.alive.Load() {
		n.owner.alive.Store(true) // the peer is live (Beat); stored once per interval
	}
	r := &n.rd
	if r.phase != phHTTP { // frames only, not the client's handshake answer
		now := uint32(time.Now().UnixMilli()) | 1 // never 0: no read yet
		if r.lastRead != 0 && now-r.lastRead < busyGap {
			r.quick = min(r.quick+1, busyReads)
		} else {
			r.quick = 0
		}
		r.lastRead = now
	}
	if r.track(p, n.dfl) && r.busy() {
		r.budget = int64(n.owner.o.FrameTimeout)
	}
}

// setReadDeadline sets the read deadline unless the connection is closing,
// and records whether it is the frame deadline.
func (n *netConn) setReadDeadline(t time.Time, frame bool) {
	c := n.owner
	c.mu.Lock()
	if !c.closed {
		_ = n.Conn.SetReadDeadline(t)
		if frame {
			n.rd.flags |= rdArmed
		} else {
			n.rd.flags &^= rdArmed
		}
	}
	c.mu.Unlock()
}
