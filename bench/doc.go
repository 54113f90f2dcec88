// Command bench measures wsactor side by side with raw gws echo (the
// ceiling) and a naive request layer on gws, over loopback TCP; see
// BENCHMARKS.md at the repository root for the figures and the commands
// that made them.
//
//	go run ./bench                       # throughput, latency and CPU: all three, interleaved rounds
//	go run ./bench -mem 10000            # idle memory per connection, server side
//	go run ./bench -pending 1000000      # 1,000,000 pending requests expiring in one process
//	go run ./bench -fairness 1024        # one connection's request while another floods the handler pool
//
// Servers always run in child processes (this binary with -role server), one
// per implementation, so that server CPU time and memory are measured alone
// and no process holds more sockets than its fd limit allows; the driver is
// the client. Rounds interleave the implementations (A,B,C, then B,C,A, …)
// and the report gives medians over rounds, and ratios computed within each
// round. Results are printed as a table (and Markdown with -md) and written
// as JSON (-out).
//
// # Concurrency
//
// The driver runs one measurement at a time; package load owns the
// goroutines of a measurement. A child process exits when its stdin closes,
// so children never outlive the driver.
package main
