// Command chat is the wsactor demo: a chat room served by a wsactor
// [wsactor.Server] to browsers running js/wsactor.js.
//
//	go run ./examples/chat            # then open the URL it prints
//	go run ./examples/chat -addr 127.0.0.1:9000 -presence 3s
//
// The page asks the server with requests (join, send, list); a name already
// online is refused with an error reply that the page shows. The server
// pushes new messages and the list of who is online with plain messages
// (Conn.Send), and asks the browsers too: every few seconds it sends each
// of them a presence check (Conn.Go with a 2 s timeout); a tab that does not
// answer in time is shown as away until it answers again.
//
// The page and a copy of js/wsactor.js are embedded (go:embed); a test fails
// when the copy differs from js/wsactor.js (run go generate to refresh it).
//
// # Concurrency
//
// The room (members, history) is guarded by one mutex, held briefly by
// request handlers (on wsactor's handler pool), the disconnect hook (on a
// connection's read goroutine), presence callbacks (on a connection's actor
// loop) and the presence goroutine. Broadcasts happen under the mutex so that
// every browser sees the same order; Conn.Send never blocks, so that is cheap.
// The presence goroutine is the only goroutine the room starts; Close stops
// it and waits for it.
package main
