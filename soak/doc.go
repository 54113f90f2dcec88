// Command soak is the wsactor soak harness: it runs a wsactor server and
// many clients under load in both directions, with chaos if asked, checks
// the library's promises all along, and fails (exit status 1) if one
// breaks. It uses only the public API of github.com/wsactor/wsactor, as a
// user would (plus a raw gws connection for the junk frames no wsactor peer
// sends).
//
//	go run ./soak                          # 200 conns, 30 s, no chaos: about a minute
//	go run ./soak -duration 10s -chaos     # the short chaos run
//	go run ./soak -conns 2000 -duration 2m -chaos
//
// # Load
//
// Each client connection runs -inflight closed-loop request streams (or,
// with -rate, gets that many requests per second, at most -inflight in
// flight); one operation in ten is a plain message. The server asks every
// client -srate times a second and sends -msgrate plain messages. Requests
// alternate between Request (blocking) and Go (callback). Payloads are
// mixed sizes (-payload 64-64k: skewed to small, median ~150 B, one in ten
// over 10 KiB); every request carries a nonce unique in its process and a
// CRC-32 of its payload, and the handler echoes both with the payload.
//
// # Chaos (-chaos)
//
// Per request (1 in 1000 units): 2 % slow handlers (20–200 ms), 3 % stalled
// handlers under a short ctx (they time out), 1 % cancelled, 1 % error
// replies, and client → server 0.3 % handler panics (an actor restart) and
// 1 % handlers that ask the client back. Besides, -chaos-rate events a
// second cycle through: a client closed mid-request (and redialled), the
// server ending a connection (Conn.Close) and resetting its TCP socket from
// a request handler, a slow reader (the client's message handler blocks
// while the server floods it, past the server's 1 MiB outbound bound and
// sometimes its 2 s write timeout), a junk connection (raw gws: malformed
// JSON, null, binary, invalid UTF-8, unknown and late reply ids, bad and
// missing ids, a duplicate request id, unusable data, a cancel of nothing,
// and every other time a frame over the size limit), message-handler and
// callback panics (actor restarts) on both sides, and server-side resets and
// ends of random connections.
//
// # Several nodes (-nodes N)
//
// The server becomes N wsactor servers in this process joined by package
// cluster over a NATS server embedded here; the clients are spread over the
// nodes. Every connection binds a key and joins one room: one server
// request in five is then a request by key from node 1 to a connection on
// another node (its own ledger, "cluster", with the same exactly-once and
// reply checks; a key whose connection is gone ends with ErrNoConn, and
// while NATS is away node 1 refuses at once with cluster.ErrNATSDown), and
// once a second node 1 asks the whole room across the nodes (one outcome
// per member, checked; the summary must add up). With -chaos, NATS restarts
// and a node other than node 1 dies (its NATS connection and sockets cut at
// once) and comes back on its address, each at most every 2 s. The server's
// Stats are summed over the nodes (killed servers included); since they
// also count the requests the cluster made for node 1, the server's ledger
// check becomes a bound: the replies the server's callers got plus those
// that came back across nodes, up to those plus every cluster request.
//
//	go run ./soak -nodes 3 -duration 10s -chaos
//
// # Invariants
//
// Checked while the run goes and at its end; each break is a violation:
//   - exactly once: every request the soak issues is in its ledger until
//     its one outcome (a reply, or an error that errors.Is/As classifies as
//     one of the exported outcomes: ErrTimeout, ErrCanceled, ErrConnLost,
//     ErrRestarted, ErrShutdown, ErrClosed, ErrTooManyPending,
//     ErrWriteQueueFull, *RemoteError, …); a second outcome, an unknown
//     error, a Go callback after Go refused, a request with no outcome
//     -grace after its deadline, or one left at the end, is a violation;
//   - no misdelivery: a reply's nonce and checksums match its request; an
//     error reply's code fits its op;
//   - the Stats ledger balances (Requests == Replied + RemoteErrors +
//     TimedOut + Canceled + Failed + Pending) for the server and for every
//     client when it closes, and agrees with the soak's own ledger;
//     Pending and InProgress are 0 after shutdown;
//   - no plain message arrives more often than it was sent; every junk
//     frame the server read was reported as bad input;
//   - goroutines return to the count before the run (within
//     -goroutine-wait);
//   - the settled RSS (read after debug.FreeOSMemory, so that the garbage
//     collector's sawtooth is not counted) at the end of the load is at
//     most max(-rss-slack MiB, -rss-growth × warm RSS) above the warm RSS,
//     measured -warmup after the connection count became steady (a server
//     process measures every 20 s while its connection count stays
//     within 10 % of its peak).
//
// # Output
//
// A live status line on stderr (a progress bar, when stderr is a terminal
// and not -quiet; it fits 80 columns, dropping its least important fields
// when it must), then a text summary on stdout (the server's counts its
// heartbeat drops); in -out (default
// soak/out/<timestamp>, git-ignored): report.json (config, ledgers,
// outcomes, Stats, latency percentiles from HdrHistogram, chaos counts,
// memory, per-second samples), summary.txt, and PNG plots over time of
// throughput (client → server and server → client in panels of their own),
// p50/p99 latency, RSS, goroutines and connections (one panel each) and
// restarts, with the legends beside the panels.
//
// # Long runs: splitting into processes
//
// A process may hold at most `ulimit -n` files (20,000 here), and each
// in-process connection costs two. -server runs only the server (it prints
// its URLs, then at the end the summary and one JSON line with its Stats;
// it stops on SIGINT/SIGTERM, after -duration if given, or -exit-idle after
// its last connection closed). -client runs only clients against the given
// URLs. Each process checks its own side's invariants; pass -chaos (and
// -idle) to both.
//
// 10 minutes at 10,000 connections with chaos (two servers of 5,000, four
// client processes of 2,500), at a rate the 2 cores of our machines carry
// without saturating (BENCHMARKS.md has the results; closed-loop, the same run
// saturates them and fails the timing checks):
//
//	go build -o /tmp/soak ./soak
//	U=ws://127.0.0.1:9001/primus,ws://127.0.0.2:9002/primus
//	S="-chaos -srate 0.03 -msgrate 0.03 -chaos-rate 2"
//	C="-conns 2500 -duration 10m -chaos -rate 0.1 -msgrate 0.03 -chaos-rate 5"
//	/tmp/soak -server 127.0.0.1:9001 $S > server1.txt &
//	/tmp/soak -server 127.0.0.2:9002 $S > server2.txt &
//	for i in 1 2 3 4; do /tmp/soak -client $U $C -seed $i > client$i.txt & done
//	wait
//
// 100,000 idle connections with a trickle of requests (-idle: 0.01
// requests/s per connection from the client, 0.005 from the server),
// with ten servers of 10,000 on 127.0.0.1–10 and ten client processes:
//
//	go build -o /tmp/soak ./soak
//	U=$(seq -s, -f 'ws://127.0.0.%g:9000/primus' 1 10)
//	for i in $(seq 1 10); do /tmp/soak -server 127.0.0.$i:9000 -idle > server$i.txt & done
//	for i in $(seq 1 10); do /tmp/soak -client $U -conns 10000 -idle -duration 5m -seed $i > client$i.txt & done
//	wait
//
// Two of each (-conns 10000, two URLs) make the 20,000-connection version.
// The in-process
// runs use one address per 20,000 connections (-addrs); loopback allows
// about 28,000 ephemeral ports per destination address and port.
//
// # Concurrency
//
// run owns the sampler, the progress line and the shutdown order. The
// server's handlers run on wsactor's goroutines; its load driver and its
// request goroutines are counted in serverSide.load, its http.Server
// goroutines in serverSide.serve. Each client slot holds one wsactor.Client
// (guarded by the slot's mutex); closed-loop workers or rate drivers and
// their request goroutines are counted in fleet.load, the sweeper (which
// redials ended clients), dialers, closers and junk connections in fleet.wg.
// The ledgers, latency recorders and checker may be used from any
// goroutine, actor loops included (Go callbacks): they take short locks.
package main
