// Package load is the closed-loop load generator of ./bench and the small
// statistics it needs: it keeps a fixed number of requests in flight on a
// set of connections, records the latency of every round trip completed in
// a measured window, and reports throughput and percentiles. It also reads
// the process's own CPU time and resident memory.
//
// # Concurrency
//
// [Run] starts InFlight goroutines per client and returns after all of them
// have finished; each goroutine owns its latency slice until then. The hooks
// run on the goroutine that called Run. [CPUTime] and [RSS] may be called
// from any goroutine.
package load
