// Package prom exposes a wsactor [wsactor.Server] or [wsactor.Client] to
// Prometheus. It is opt-in: the wsactor packages do not import
// client_golang, only this one does.
//
//	m := prom.New()
//	srv, err := wsactor.NewServer(wsactor.WithObserver(m), wsactor.WithRequestHandler(h))
//	m.Watch(srv)
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(m)
//	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// A [Metrics] is two things at once. As a [wsactor.Observer] (given to
// [wsactor.WithObserver]) it counts every request by direction and outcome
// and times it in a histogram by direction: a few atomic adds per request
// on the connection's actor loop, nothing allocated. As a
// [prometheus.Collector] it reads the watched side's [wsactor.Stats] when
// scraped (constant metrics: nothing is counted twice, and the hot path
// pays nothing for them).
//
// # Metrics
//
// No label carries a connection, a request id or anything else unbounded:
// direction has 2 values, outcome 9, reason 5 (refusals) or 2 (broadcast
// skips), kind 14.
//
//	wsactor_connections_open                 gauge    connections open now
//	wsactor_connections_accepted_total       counter  connections accepted (client: made)
//	wsactor_connections_refused_total        counter  upgrades refused, by reason: origin, capacity, auth, shutdown, handshake
//	wsactor_connections_closed_total         counter  connections that ended
//	wsactor_requests_total                   counter  requests ended, by direction (outbound, inbound) and outcome (reply, error, timeout, canceled, lost, restarted, shutdown, refused, closed)
//	wsactor_request_duration_seconds         histogram  request latency by direction (every outcome but refused)
//	wsactor_requests_pending                 gauge    this side's requests in flight
//	wsactor_requests_in_progress             gauge    the peer's requests being handled
//	wsactor_handler_pool_workers             gauge    handler pool goroutines (running a handler, or idle a moment before they exit)
//	wsactor_handler_pool_queued              gauge    handlers waiting for a worker
//	wsactor_outbound_queued_bytes            gauge    bytes queued for writing on all connections
//	wsactor_late_replies_total               counter  replies that came after their request ended (late or duplicate): dropped
//	wsactor_unknown_replies_total            counter  replies to ids this side never issued: dropped
//	wsactor_duplicate_requests_total         counter  peer requests reusing an id in progress
//	wsactor_bad_input_total                  counter  bad input, by kind (malformed, empty, invalid_utf8, null, bad_id, bad_field, binary, too_large, late_reply, unknown_reply, duplicate_id, panic, reply_not_sent, other)
//	wsactor_handler_panics_total             counter  panics in user code
//	wsactor_actor_restarts_total             counter  connection actors restarted after a failure
//	wsactor_actor_give_ups_total             counter  connections closed after too many restarts
//	wsactor_heartbeat_timeouts_total         counter  connections dropped for a missed heartbeat
//	wsactor_broadcast_deliveries_total       counter  members a Broadcast or SendKey queued a message to
//	wsactor_broadcast_skips_total            counter  members skipped, by reason: slow (over the outbound bound), closed
//	wsactor_messages_received_total          counter  plain messages received
//	wsactor_messages_sent_total              counter  plain messages sent (broadcasts included)
//	wsactor_reconnects_total                 counter  client reconnects
//
// wsactor_requests_total and wsactor_request_duration_seconds come from the
// [wsactor.Observer]: they stay at zero unless the Metrics was given to
// [wsactor.WithObserver]. To export a server and a client (or two servers)
// from one process, give each its own Metrics and register them with
// distinct constant labels: prometheus.WrapRegistererWith(prometheus.Labels{"side": "client"}, reg).
//
// # Concurrency
//
// All methods may be called concurrently. ObserveRequest runs on the
// connections' actor loops; Collect on the scraping goroutine, which reads
// the Stats snapshot and walks the connections for the queued bytes
// ([wsactor.Server.QueuedBytes]).
package prom
