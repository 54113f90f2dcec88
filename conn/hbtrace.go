//go:build hbtrace

package conn

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Heartbeat tracing, built only with -tags hbtrace (go run -tags hbtrace
// ./bench -hbtrace …): it records, per connection (keyed by the client's
// local TCP port, the same on both ends of a loopback connection), when
// each heartbeat step happened, so that a late pong can be placed on the
// path ping queued → ping read by the client → pong read by the server →
// the server's next check. One mutex for the whole process: it adds a
// little contention, the same for every event.
//
// Events (HBEvent.Kind):
//
//	'P' server: Ping queued; Val = the ping's value (the tick, unix ms)
//	'T' server: TakeAlive/Beat checked; Val = 1 alive, 0 not
//	'R' server: a "primus::pong" read and processed; Val = its value
//	'C' client: a "primus::ping" read and processed; Val = its value

// HBEvent is one traced heartbeat step.
type HBEvent struct {
	Port uint16
	Kind byte
	Val  int64
	At   int64 // unix ns
}

var hbTrace struct {
	mu sync.Mutex
	ev []HBEvent
}

func traceHB(c *Conn, kind byte, val int64) {
	at := time.Now().UnixNano()
	var a net.Addr
	if c.role == Server {
		a = c.nc.RemoteAddr()
	} else {
		a = c.nc.LocalAddr()
	}
	ta, _ := a.(*net.TCPAddr)
	if ta == nil {
		return
	}
	hbTrace.mu.Lock()
	hbTrace.ev = append(hbTrace.ev, HBEvent{Port: uint16(ta.Port), Kind: kind, Val: val, At: at})
	hbTrace.mu.Unlock()
}

// HBTraceEnabled reports whether this build records heartbeat events.
const HBTraceEnabled = true

// WriteHBTrace writes the events recorded so far, one per line:
// "<kind> <port> <val> <at ns>".
func WriteHBTrace(w io.Writer) error {
	hbTrace.mu.Lock()
	ev := hbTrace.ev
	hbTrace.mu.Unlock()
	bw := bufio.NewWriter(w)
	for _, e := range ev {
		fmt.Fprintf(bw, "%c %d %d %d\n", e.Kind, e.Port, e.Val, e.At)
	}
	return bw.Flush()
}
