package conn

import (
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/lxzan/gws"
	"github.com/wsactor/wsactor/envelope"
)

// events is the gws.Event shared by every Conn; it finds the Conn through the
// net.Conn gws was given.
type events struct{}

func owner(s *gws.Conn) *Conn { return s.NetConn().(*netConn).owner }

func (events) OnOpen(s *gws.Conn) {
	c := owner(s)
	if c.role == Client && c.o.PingTimeout > 0 {
		c.armPingTimeout()
	}
	c.callOpen()
}

func (events) OnClose(s *gws.Conn, err error) { owner(s).onClose(err) }

// OnPing answers a WebSocket PING through the ordered write path (never
// blocking the read loop). Like every read it counts as liveness.
func (events) OnPing(s *gws.Conn, payload []byte) {
	c := owner(s)
	_ = c.enqueue(opPong, payload, true, false) // dropped when the queue is full
}

func (events) OnPong(*gws.Conn, []byte) {}

func (events) OnMessage(s *gws.Conn, m *gws.Message) {
	// The Handler gets slices of m's buffer, valid only during its call
	// (Handler's contract): the buffer goes back to gws's pool afterwards.
	defer m.Close()
	owner(s).onMessage(m)
}

// recovery is gws's Recovery: our Handler calls recover on their own, so this
// only catches a bug of ours; it logs instead of killing the process.
func recovery(logger gws.Logger) {
	if r := recover(); r != nil {
		logger.Error(fmt.Sprintf("conn: panic in gws callback: %v\n%s", r, debug.Stack()))
	}
}

// noSession replaces gws's per-connection session map, which we do not use.
type noSession struct{}

func (noSession) Len() int                     { return 0 }
func (noSession) Load(string) (any, bool)      { return nil, false }
func (noSession) Delete(string)                {}
func (noSession) Store(string, any)            {}
func (noSession) Range(func(string, any) bool) {}
func newNoSession() gws.SessionStorage         { return noSession{} }

func (c *Conn) onMessage(m *gws.Message) {
	if d := c.nc.dfl; d != nil {
		c.onMessageDeflate(d, m) // permessage-deflate (deflate.go)
		return
	}
	if m.Opcode != gws.OpcodeText {
		c.callBadInput(ErrBinaryFrame)
		return
	}
	c.onText(m.Bytes())
}

// onText decodes and dispatches a text message.
func (c *Conn) onText(b []byte) {
	env, err := envelope.Decode(b)
	if err != nil {
		c.callBadInput(err)
		return
	}
	if env.Kind == envelope.KindControl {
		if c.control(env.Control) {
			return
		}
		env = envelope.Envelope{Kind: envelope.KindData, Data: trimSpace(b)}
	}
	c.callEnvelope(env)
}

// control handles the Primus control messages of this role (PRIMUS-WIRE §3)
// and reports whether s was consumed.
func (c *Conn) control(s string) bool {
	typ, val := parseControl(s)
	switch c.role {
	case Server:
		switch typ {
		case "pong": // liveness: its read already counted (netConn.Read)
			if HBTraceEnabled {
				v, _ := strconv.ParseInt(val, 10, 64)
				traceHB(c, 'R', v)
			}
			return true
		case "id":
			_ = c.writeControl("primus::id::" + c.ID())
			return true
		}
	case Client:
		switch typ {
		case "ping":
			if HBTraceEnabled {
				v, _ := strconv.ParseInt(val, 10, 64)
				traceHB(c, 'C', v)
			}
			if c.o.PingTimeout > 0 {
				c.armPingTimeout()
			}
			// Primus replies 'primus::pong::' + Number(value); we echo the
			// value verbatim (the same digits for the server's numbers).
			_ = c.writeControl("primus::pong::" + val)
			return true
		case "server":
			if val == "close" {
				c.serverEnded.Store(true)
			}
			return true
		case "id":
			return true
		}
	}
	return false
}

func (c *Conn) writeControl(s string) error {
	var a [64]byte
	return c.enqueue(opText, envelope.AppendControl(a[:0], s), true, false)
}

// parseControl splits a control string exactly as Primus does:
// last = indexOf(':', 8); type = slice(8, last); value = slice(last + 2).
func parseControl(s string) (typ, val string) {
	last := -1
	if len(s) > 8 {
		if i := strings.IndexByte(s[8:], ':'); i >= 0 {
			last = i + 8
		}
	}
	return jsSlice(s, 8, last), jsSlice(s, last+2, len(s))
}

// jsSlice is JavaScript's s.slice(start, end) for start >= -1.
func jsSlice(s string, start, end int) string {
	n := len(s)
	if start < 0 {
		start += n
	}
	if end < 0 {
		end += n
	}
	start, end = min(max(start, 0), n), min(max(end, 0), n)
	if start >= end {
		return ""
	}
	return s[start:end]
}

func trimSpace(b []byte) []byte {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// armPingTimeout (client role) moves the read deadline PingTimeout ahead: a
// silent server makes the read fail, which onClose reports as ErrHeartbeat.
// A read deadline needs no timer goroutine. Not done once closing, when the
// closing handshake owns the read deadline.
// While the frame deadline is armed (a message is incomplete) it stays; the
// ping deadline is set again before the first read at a message boundary.
func (c *Conn) armPingTimeout() {
	t := time.Now().Add(c.o.PingTimeout)
	c.nc.rd.pingAt = t.UnixNano()
	if c.nc.rd.flags&rdArmed != 0 {
		return
	}
	c.mu.Lock()
	if !c.closed {
		_ = c.nc.Conn.SetReadDeadline(t)
	}
	c.mu.Unlock()
}

// readTimedOut drops the connection after the read deadline expired; frame
// says it was the frame deadline.
func (c *Conn) readTimedOut(frame bool) {
	c.mu.Lock()
	c.closed = true
	if frame {
		c.setCauseLocked(fmt.Errorf("%w: a message was incomplete after %v", ErrFrameTimeout, c.o.FrameTimeout))
	} else {
		c.setCauseLocked(fmt.Errorf("%w: no primus::ping for %v", ErrHeartbeat, c.o.PingTimeout))
	}
	c.dropPendingLocked()
	c.mu.Unlock()
	_ = c.nc.Close()
}

func (c *Conn) onClose(gerr error) {
	_ = c.nc.Close() // gws has closed it already; make sure
	// readbuf.go: reading is over.
	c.nc.releaseRead()
	c.mu.Lock()
	c.final, c.closed = true, true
	c.dropPendingLocked()
	cause := c.cause
	c.mu.Unlock()
	c.flushers.Wait() // the socket is closed: a blocked write returns now

	err := c.closeCause(cause, gerr)
	if errors.Is(err, ErrTooLarge) {
		c.callBadInput(err)
	}
	c.callClose(err)
	c.mu.Lock()
	c.ended = true
	done := c.done
	c.mu.Unlock()
	if done != nil {
		close(done)
	}
}

func (c *Conn) closeCause(cause, gerr error) error {
	if cause != nil {
		return cause
	}
	if c.serverEnded.Load() {
		return ErrServerEnded
	}
	var ce *gws.CloseError
	if errors.As(gerr, &ce) {
		code := ce.Code
		if code == 0 {
			code = 1005
		}
		return &CloseError{Code: code, Reason: string(ce.Reason)}
	}
	// gws reports a protocol violation it closed for as its status code.
	if sc, ok := gerr.(interface{ Uint16() uint16 }); ok {
		if sc.Uint16() == 1009 {
			return ErrTooLarge
		}
		return fmt.Errorf("%w: %v (close code %d)", ErrProtocol, gerr, sc.Uint16())
	}
	if gerr == nil || gerr.Error() == "" {
		return ErrClosed
	}
	return gerr
}

// Handler calls: a panic becomes ErrHandlerPanic reported to OnBadInput.

func (c *Conn) recoverHandler() {
	if r := recover(); r != nil {
		c.reportPanic(r)
	}
}

func (c *Conn) reportPanic(r any) {
	err := fmt.Errorf("%w: %v\n%s", ErrHandlerPanic, r, debug.Stack())
	defer func() { _ = recover() }() // OnBadInput panicking too: nowhere left to report
	c.h.OnBadInput(c, err)
}

func (c *Conn) callOpen() {
	defer c.recoverHandler()
	c.h.OnOpen(c)
}

func (c *Conn) callEnvelope(env envelope.Envelope) {
	defer c.recoverHandler()
	c.h.OnEnvelope(c, env)
}

func (c *Conn) callBadInput(err error) {
	defer c.recoverHandler()
	c.h.OnBadInput(c, err)
}

func (c *Conn) callClose(err error) {
	defer c.recoverHandler()
	c.h.OnClose(c, err)
}
