package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Config is one soak run. The zero value is not usable: start from
// defaultConfig (the flags' defaults) and change what you need.
type Config struct {
	Server string   `json:"server,omitempty"` // server only: listen addresses, comma-separated
	Client []string `json:"client,omitempty"` // client only: server URLs, used round-robin

	Conns      int           `json:"conns"`       // client connections (this process's, with Client)
	Duration   time.Duration `json:"duration_ns"` // load time; server only: 0 = until a signal or ExitIdle
	Rate       float64       `json:"rate"`        // client → server requests/s per connection; 0 = closed loop
	Inflight   int           `json:"inflight"`    // closed loop: requests in flight per connection; rate: the cap
	ServerRate float64       `json:"server_rate"` // server → client requests/s per connection
	MsgRate    float64       `json:"msg_rate"`    // plain messages/s per connection, each way (closed loop: also 1 op in 10)
	PayloadMin int           `json:"payload_min"`
	PayloadMax int           `json:"payload_max"`
	Seed       int64         `json:"seed"`
	Chaos      bool          `json:"chaos"`
	ChaosRate  float64       `json:"chaos_rate"` // disruptive chaos events per second; 0 = max(4, conns/50)
	Idle       bool          `json:"idle"`       // idle plus trickle: Rate defaults to 0.01, no closed loop
	Nodes      int           `json:"nodes"`      // server nodes joined over an embedded NATS server (in process only)

	Addrs           int           `json:"addrs"` // listen on 127.0.0.1 … 127.0.0.N (0 = one per 20,000 conns)
	Timeout         time.Duration `json:"timeout_ns"`
	Ping            time.Duration `json:"ping_ns"`
	Warmup          time.Duration `json:"warmup_ns"`         // 0 = min(10s, Duration/4)
	RSSSlackMiB     float64       `json:"rss_slack_mib"`     // RSS may grow this much after warm-up …
	RSSGrowth       float64       `json:"rss_growth"`        // … or this fraction of the warm RSS, whichever is more
	Grace           time.Duration `json:"grace_ns"`          // how late past its deadline a request may end
	GoroutineWait   time.Duration `json:"goroutine_wait_ns"` // how long goroutines may take to return to the baseline
	DialConcurrency int           `json:"dial_concurrency"`
	Workers         int           `json:"workers"`      // server handler pool; 0 = the library's default
	ExitIdle        time.Duration `json:"exit_idle_ns"` // server only: end after this long with no connection (0 = never)

	Out     string    `json:"-"` // report directory; "" = soak/out/<timestamp>; "-" = none
	NoPlots bool      `json:"-"`
	Quiet   bool      `json:"-"` // no progress, no log
	Log     io.Writer `json:"-"` // progress and violations as they happen (stderr); nil = none

	OnListen func(urls []string) `json:"-"` // told the server's URLs once it listens
}

func defaultConfig() Config {
	return Config{
		Conns:           200,
		Duration:        30 * time.Second,
		Inflight:        2,
		ServerRate:      2,
		MsgRate:         1,
		PayloadMin:      64,
		PayloadMax:      64 << 10,
		Seed:            1,
		Timeout:         5 * time.Second,
		Ping:            10 * time.Second,
		RSSSlackMiB:     64,
		RSSGrowth:       0.5,
		Grace:           5 * time.Second,
		GoroutineWait:   10 * time.Second,
		DialConcurrency: 64,
		ExitIdle:        5 * time.Second,
	}
}

type mode int

const (
	modeBoth mode = iota
	modeServer
	modeClient
)

func (m mode) String() string { return [...]string{"in-process", "server", "client"}[m] }

func (c *Config) mode() mode {
	switch {
	case len(c.Client) > 0:
		return modeClient
	case c.Server != "":
		return modeServer
	}
	return modeBoth
}

// maxMessage is the frame size limit on both sides: room for the largest
// payload, and the limit the junk connection goes over.
func (c *Config) maxMessage() int { return max(1<<20, 4*c.PayloadMax) }

// check validates c and fills in the derived defaults.
func (c *Config) check() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("soak: "+format, args...)) }
	if c.Server != "" && len(c.Client) > 0 {
		bad("-server and -client exclude each other (run two processes)")
	}
	if c.mode() != modeServer && c.Conns < 1 {
		bad("-conns %d, want >= 1", c.Conns)
	}
	if c.Duration < 0 || (c.mode() != modeServer && c.Duration == 0) {
		bad("-duration %v, want > 0", c.Duration)
	}
	if c.Rate < 0 || c.ServerRate < 0 || c.MsgRate < 0 || c.ChaosRate < 0 {
		bad("rates must be >= 0")
	}
	if c.Idle && c.Rate == 0 {
		c.Rate = 0.01
	}
	if c.Nodes < 1 {
		c.Nodes = 1
	}
	if c.Nodes > 1 && c.mode() != modeBoth {
		bad("-nodes runs in one process: not with -server or -client")
	}
	if c.Inflight < 1 {
		bad("-inflight %d, want >= 1", c.Inflight)
	}
	if c.PayloadMin < 1 || c.PayloadMax < c.PayloadMin || c.PayloadMax > 1<<20 {
		bad("-payload %d-%d, want 1 <= min <= max <= 1MiB", c.PayloadMin, c.PayloadMax)
	}
	if c.Timeout <= 0 || c.Grace <= 0 || c.Ping < 0 {
		bad("-timeout and -grace must be > 0, -ping >= 0")
	}
	if c.DialConcurrency < 1 {
		c.DialConcurrency = 1
	}
	if c.Addrs == 0 {
		c.Addrs = max(1, (c.Conns+19999)/20000)
	}
	if c.Addrs > 250 {
		bad("-addrs %d, want <= 250", c.Addrs)
	}
	if c.Warmup == 0 {
		c.Warmup = min(10*time.Second, c.Duration/4)
	}
	if c.ChaosRate == 0 {
		c.ChaosRate = max(4, float64(c.Conns)/50)
	}
	if c.GoroutineWait <= 0 {
		c.GoroutineWait = 10 * time.Second
	}
	return errors.Join(errs...)
}

// parsePayload parses "64-65536" or "1024" (sizes in bytes; k and m
// suffixes allowed).
func parsePayload(s string) (lo, hi int, err error) {
	a, b, ok := strings.Cut(s, "-")
	if lo, err = parseSize(a); err != nil {
		return 0, 0, err
	}
	if !ok {
		return lo, lo, nil
	}
	hi, err = parseSize(b)
	return lo, hi, err
}

func parseSize(s string) (int, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	mul := 1
	switch {
	case strings.HasSuffix(s, "k"):
		mul, s = 1<<10, strings.TrimSuffix(s, "k")
	case strings.HasSuffix(s, "m"):
		mul, s = 1<<20, strings.TrimSuffix(s, "m")
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("soak: bad size %q", s)
	}
	return n * mul, nil
}

// listenAddrs expands the -server value (or 127.0.0.1:0 in process) over
// Addrs loopback addresses: "127.0.0.1:9000" with Addrs 3 is 127.0.0.1:9000,
// 127.0.0.2:9000 and 127.0.0.3:9000 (clients pick them round-robin: more
// source/destination pairs, so more ephemeral ports). A comma-separated
// list is used as it is.
func (c *Config) listenAddrs() []string {
	spec := c.Server
	if spec == "" {
		spec = "127.0.0.1:0"
	}
	if strings.Contains(spec, ",") {
		return strings.Split(spec, ",")
	}
	host, port, ok := strings.Cut(spec, ":")
	first, err := strconv.Atoi(strings.TrimPrefix(host, "127.0.0."))
	if !ok || c.Addrs <= 1 || !strings.HasPrefix(host, "127.0.0.") || err != nil || first+c.Addrs > 255 {
		return []string{spec}
	}
	out := make([]string, c.Addrs)
	for i := range out {
		out[i] = fmt.Sprintf("127.0.0.%d:%s", first+i, port)
	}
	return out
}
