package prom

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/wsactor/wsactor"
)

// Source is what a [Metrics] reads when scraped: a [*wsactor.Server] or a
// [*wsactor.Client].
type Source interface {
	Stats() wsactor.Stats
	QueuedBytes() int64
}

// DefaultBuckets are the request duration buckets, in seconds: 100 µs
// times powers of 4, up to about 26 s (a loopback round trip to the
// default request timeout of 30 s).
var DefaultBuckets = prometheus.ExponentialBuckets(0.0001, 4, 10)

// Metrics is a [wsactor.Observer] and a [prometheus.Collector]; see the
// package doc. Make it with [New]. All methods may be called concurrently.
type Metrics struct {
	src atomic.Pointer[sourceBox]

	requests  *prometheus.CounterVec
	durations *prometheus.HistogramVec
	// Resolved once, so that an observation is a few atomic adds.
	reqs [wsactor.NumDirections][wsactor.NumOutcomes]prometheus.Counter
	durs [wsactor.NumDirections]prometheus.Observer
}

type sourceBox struct{ s Source }

// Option configures [New].
type Option func(*config)

type config struct{ buckets []float64 }

// WithBuckets sets the request duration histogram's buckets (upper bounds
// in seconds, increasing). Default [DefaultBuckets].
func WithBuckets(b []float64) Option { return func(c *config) { c.buckets = b } }

// New returns a Metrics that observes nothing until it is given to
// [wsactor.WithObserver] and watches nothing until [Metrics.Watch].
func New(opts ...Option) *Metrics {
	c := config{buckets: DefaultBuckets}
	for _, o := range opts {
		o(&c)
	}
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wsactor_requests_total",
			Help: "Requests ended, by direction (outbound: this side's; inbound: the peer's) and outcome.",
		}, []string{"direction", "outcome"}),
		durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wsactor_request_duration_seconds",
			Help:    "How long requests were in flight, by direction (every outcome but refused).",
			Buckets: c.buckets,
		}, []string{"direction"}),
	}
	for d := range wsactor.NumDirections {
		dir := wsactor.Direction(d)
		for o := range wsactor.NumOutcomes {
			m.reqs[d][o] = m.requests.WithLabelValues(dir.String(), wsactor.Outcome(o).String())
		}
		m.durs[d] = m.durations.WithLabelValues(dir.String())
	}
	return m
}

// Watch makes the Metrics report src's counters when scraped. A second
// call replaces the first source.
func (m *Metrics) Watch(src Source) { m.src.Store(&sourceBox{src}) }

// ObserveRequest implements [wsactor.Observer]: it counts the request and
// (unless it was refused before any work) times it.
func (m *Metrics) ObserveRequest(dir wsactor.Direction, outcome wsactor.Outcome, d time.Duration) {
	if int(dir) >= wsactor.NumDirections || int(outcome) >= wsactor.NumOutcomes {
		return
	}
	m.reqs[dir][outcome].Inc()
	if outcome != wsactor.OutcomeRefused {
		m.durs[dir].Observe(d.Seconds())
	}
}

type metric struct {
	desc  *prometheus.Desc
	typ   prometheus.ValueType
	value func(*wsactor.Stats) float64
}

func newDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

func counter(name, help string, v func(*wsactor.Stats) int64) metric {
	return metric{newDesc(name, help), prometheus.CounterValue, func(s *wsactor.Stats) float64 { return float64(v(s)) }}
}

func gauge(name, help string, v func(*wsactor.Stats) int64) metric {
	return metric{newDesc(name, help), prometheus.GaugeValue, func(s *wsactor.Stats) float64 { return float64(v(s)) }}
}

// The metrics read from Stats at scrape time.
var (
	plain = []metric{
		gauge("wsactor_connections_open", "Connections open now.", func(s *wsactor.Stats) int64 { return int64(s.Conns) }),
		counter("wsactor_connections_accepted_total", "Connections accepted (a client: connections made).", func(s *wsactor.Stats) int64 { return s.Accepted }),
		counter("wsactor_connections_closed_total", "Connections that ended.", func(s *wsactor.Stats) int64 { return s.Closed }),
		gauge("wsactor_requests_pending", "This side's requests in flight.", func(s *wsactor.Stats) int64 { return s.Pending }),
		gauge("wsactor_requests_in_progress", "The peer's requests being handled.", func(s *wsactor.Stats) int64 { return s.InProgress }),
		gauge("wsactor_handler_pool_workers", "Handler pool goroutines (running a handler, or idle a moment before they exit).", func(s *wsactor.Stats) int64 { return int64(s.PoolWorkers) }),
		gauge("wsactor_handler_pool_queued", "Handlers waiting for a worker.", func(s *wsactor.Stats) int64 { return int64(s.PoolQueued) }),
		counter("wsactor_late_replies_total", "Replies that came after their request ended (late or duplicate), dropped.", func(s *wsactor.Stats) int64 { return s.LateReplies }),
		counter("wsactor_unknown_replies_total", "Replies to ids this side never issued, dropped.", func(s *wsactor.Stats) int64 { return s.UnknownReplies }),
		counter("wsactor_duplicate_requests_total", "Peer requests that reused the id of one in progress.", func(s *wsactor.Stats) int64 { return s.DuplicateRequests }),
		counter("wsactor_handler_panics_total", "Panics in user code.", func(s *wsactor.Stats) int64 { return s.HandlerPanics }),
		counter("wsactor_actor_restarts_total", "Connection actors restarted after a failure.", func(s *wsactor.Stats) int64 { return s.Restarts }),
		counter("wsactor_actor_give_ups_total", "Connections closed after too many restarts.", func(s *wsactor.Stats) int64 { return s.GiveUps }),
		counter("wsactor_heartbeat_timeouts_total", "Connections dropped for a missed heartbeat.", func(s *wsactor.Stats) int64 { return s.HeartbeatTimeouts }),
		counter("wsactor_broadcast_deliveries_total", "Members a Broadcast or SendKey queued a message to.", func(s *wsactor.Stats) int64 { return s.BroadcastSent }),
		counter("wsactor_messages_received_total", "Plain messages received.", func(s *wsactor.Stats) int64 { return s.MessagesIn }),
		counter("wsactor_messages_sent_total", "Plain messages sent, broadcasts included.", func(s *wsactor.Stats) int64 { return s.MessagesOut }),
		counter("wsactor_reconnects_total", "Client reconnects.", func(s *wsactor.Stats) int64 { return s.Reconnects }),
	}
	refusedDesc = newDesc("wsactor_connections_refused_total", "Upgrades refused, by reason.", "reason")
	badDesc     = newDesc("wsactor_bad_input_total", "Bad input reported to the error hook, by kind.", "kind")
	skipsDesc   = newDesc("wsactor_broadcast_skips_total", "Broadcast members skipped, by reason: slow (over the outbound bound) or closed.", "reason")
	queuedDesc  = newDesc("wsactor_outbound_queued_bytes", "Bytes queued for writing on all connections.")
)

// Describe implements [prometheus.Collector].
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.requests.Describe(ch)
	m.durations.Describe(ch)
	for _, p := range plain {
		ch <- p.desc
	}
	ch <- refusedDesc
	ch <- badDesc
	ch <- skipsDesc
	ch <- queuedDesc
}

// Collect implements [prometheus.Collector]: the observed requests, and the
// watched source's counters read now.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.requests.Collect(ch)
	m.durations.Collect(ch)
	box := m.src.Load()
	if box == nil {
		return
	}
	st := box.s.Stats()
	for _, p := range plain {
		ch <- prometheus.MustNewConstMetric(p.desc, p.typ, p.value(&st))
	}
	for r, n := range st.RefusedBy {
		ch <- prometheus.MustNewConstMetric(refusedDesc, prometheus.CounterValue, float64(n), wsactor.RefuseReason(r).String())
	}
	for k, n := range st.BadInputBy {
		ch <- prometheus.MustNewConstMetric(badDesc, prometheus.CounterValue, float64(n), wsactor.BadInputKind(k).String())
	}
	ch <- prometheus.MustNewConstMetric(skipsDesc, prometheus.CounterValue, float64(st.BroadcastSkipped), "slow")
	ch <- prometheus.MustNewConstMetric(skipsDesc, prometheus.CounterValue, float64(st.BroadcastClosed), "closed")
	ch <- prometheus.MustNewConstMetric(queuedDesc, prometheus.GaugeValue, float64(box.s.QueuedBytes()))
}

// The label values, for users building dashboards: every value a label
// can take.
var (
	Directions = labelValues(wsactor.NumDirections, func(i int) string { return wsactor.Direction(i).String() })
	Outcomes   = labelValues(wsactor.NumOutcomes, func(i int) string { return wsactor.Outcome(i).String() })
	Reasons    = labelValues(int(wsactor.NumRefuseReasons), func(i int) string { return wsactor.RefuseReason(i).String() })
	Kinds      = labelValues(int(wsactor.NumBadInputKinds), func(i int) string { return wsactor.BadInputKind(i).String() })
)

func labelValues(n int, name func(int) string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = name(i)
	}
	return out
}

var (
	_ Source               = (*wsactor.Server)(nil)
	_ Source               = (*wsactor.Client)(nil)
	_ wsactor.Observer     = (*Metrics)(nil)
	_ prometheus.Collector = (*Metrics)(nil)
)
