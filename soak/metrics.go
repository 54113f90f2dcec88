package main

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// latency records round trips in microseconds into HdrHistograms. record
// may be called from any goroutine (actor loops included: it takes one of
// several mutexes); interval and total are called by the sampler only.
type latency struct {
	next   atomic.Uint32
	shards [16]struct {
		mu sync.Mutex
		h  *hdrhistogram.Histogram
	}
	total *hdrhistogram.Histogram // owned by the sampler
	tmp   *hdrhistogram.Histogram
}

const (
	latMin = 1                 // µs
	latMax = 120 * 1000 * 1000 // µs: two minutes
	latSig = 3
)

func newLatency() *latency {
	l := &latency{
		total: hdrhistogram.New(latMin, latMax, latSig),
		tmp:   hdrhistogram.New(latMin, latMax, latSig),
	}
	for i := range l.shards {
		l.shards[i].h = hdrhistogram.New(latMin, latMax, latSig)
	}
	return l
}

func (l *latency) record(d time.Duration) {
	us := min(max(d.Microseconds(), latMin), latMax)
	sh := &l.shards[l.next.Add(1)%uint32(len(l.shards))]
	sh.mu.Lock()
	_ = sh.h.RecordValue(us)
	sh.mu.Unlock()
}

// interval moves what was recorded since the last call into the total and
// returns it (valid until the next call).
func (l *latency) interval() *hdrhistogram.Histogram {
	l.tmp.Reset()
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		l.tmp.Merge(sh.h)
		sh.h.Reset()
		sh.mu.Unlock()
	}
	l.total.Merge(l.tmp)
	return l.tmp
}

// Percentiles of a latency histogram, in milliseconds.
type Percentiles struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

func percentiles(h *hdrhistogram.Histogram) Percentiles {
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Percentiles{
		Count: h.TotalCount(),
		Mean:  h.Mean() / 1000,
		P50:   ms(h.ValueAtQuantile(50)),
		P90:   ms(h.ValueAtQuantile(90)),
		P99:   ms(h.ValueAtQuantile(99)),
		P999:  ms(h.ValueAtQuantile(99.9)),
		Max:   ms(h.Max()),
	}
}

// rssBytes reads VmRSS from /proc/self/status (0 where there is none).
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte("VmRSS:")) {
			continue
		}
		f := bytes.Fields(line[len("VmRSS:"):])
		if len(f) == 0 {
			return 0
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0
		}
		return kb << 10
	}
	return 0
}

// openFiles counts this process's open file descriptors.
func openFiles() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(ents)
}

const mib = 1 << 20

// Sample is one per-second point of the run.
type Sample struct {
	T          float64 `json:"t"`                // seconds since the load started
	ClientRate float64 `json:"client_req_per_s"` // client → server requests ended per second (every outcome)
	ClientOK   float64 `json:"client_ok_per_s"`  // of which replies
	ServerRate float64 `json:"server_req_per_s"` // server → client requests ended per second
	P50        float64 `json:"p50_ms"`           // client → server echo round trip this second
	P99        float64 `json:"p99_ms"`
	SrvP50     float64 `json:"server_p50_ms"` // server → client
	SrvP99     float64 `json:"server_p99_ms"`
	RSSMiB     float64 `json:"rss_mib"`
	HeapMiB    float64 `json:"heap_mib"`
	Goroutines int     `json:"goroutines"`
	Conns      int     `json:"conns"`    // server: open connections; client-only: connected clients
	Restarts   int64   `json:"restarts"` // actor restarts so far, server and clients
	Reconnects int64   `json:"reconnects"`
	Violations int64   `json:"violations"`
	OpenFiles  int     `json:"open_files"`
	LedgerOpen int     `json:"ledger_open"` // requests issued and not yet ended
}

func heapMiB() float64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapInuse) / mib
}
