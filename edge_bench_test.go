package wsactor_test

import (
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/wsactor/wsactor"
)

func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkHeaderOnlyPeers measures the worst case of WithMaxMessageSize and
// WithFrameTimeout with the defaults: 16 peers each send only the 14-byte
// header of a frame declaring the largest message (frag: after a complete
// first fragment of that size) and stall. It reports the heap they make the
// server hold per peer and how long until the last is dropped. One
// iteration lasts the frame timeout (10 s): run with -benchtime 1x.
func BenchmarkHeaderOnlyPeers(b *testing.B) {
	for _, frag := range []bool{false, true} {
		name := "frame"
		if frag {
			name = "fragmented"
		}
		b.Run(name, func(b *testing.B) {
			const peers, size = 16, 64 << 10 // the default WithMaxMessageSize
			for b.Loop() {
				_, url := startServer(b, wsactor.WithPingInterval(0))
				socks := make([]net.Conn, peers)
				for i := range socks {
					resp, nc := upgradeRaw(b, url)
					if resp.StatusCode != http.StatusSwitchingProtocols {
						b.Fatal(resp.Status)
					}
					socks[i] = nc
				}
				header := func(b0 byte) []byte {
					h := binary.BigEndian.AppendUint64([]byte{b0, 0x80 | 127}, size)
					return append(h, 0, 0, 0, 0)
				}
				idle := heapAlloc()
				start := time.Now()
				for _, nc := range socks {
					var out []byte
					if frag {
						out = append(header(0x01), make([]byte, size)...) // text, FIN clear
						out = append(out, header(0x00)...)                // the next fragment's header
					} else {
						out = header(0x81)
					}
					if _, err := nc.Write(out); err != nil {
						b.Fatal(err)
					}
				}
				// Let the server read what was sent (a tenth of the timeout).
				<-time.After(time.Second)
				held := heapAlloc()
				dropped := make(chan time.Duration, peers)
				for _, nc := range socks {
					go func() {
						_, _ = io.Copy(io.Discard, nc) // until the server drops it
						dropped <- time.Since(start)
					}()
				}
				var last time.Duration
				for range peers {
					last = max(last, recv(b, dropped, "drop"))
				}
				b.ReportMetric(float64(int64(held)-int64(idle))/peers, "heap-B/peer")
				b.ReportMetric(last.Seconds(), "s-until-dropped")
			}
		})
	}
}
