// Command chat is the wsactor demo: a chat with rooms served by a wsactor
// [wsactor.Server] to browsers running js/wsactor.js, on one node or on
// several joined over NATS.
//
//	go run ./examples/chat                     # then open the URL it prints
//	go run ./examples/chat -nodes 2            # two nodes and an embedded NATS server: open one URL in each tab
//	go run ./examples/chat -addr 127.0.0.1:9000 -nats nats://127.0.0.1:4222   # a node of an existing cluster
//
// The page asks the server with requests (join, switch, send, list); a
// name already taken, on any node, is refused with an error reply that the
// page shows. A member is in one room at a time (#lobby, #go, #random) and
// switches with the buttons above the messages. The server pushes new
// messages and the list of who is in the room with plain messages
// ([wsactor.Server.Broadcast], [cluster.Node.Broadcast]: encoded once), and
// asks the browsers too: every few seconds it sends each of its members a
// presence check (Conn.Go with a 2 s timeout); a tab that does not answer
// in time is shown as away until it answers again.
//
// Several nodes: each member holds its name as a key, so a name is free
// when a request to that key finds nobody ([wsactor.ErrNoConn], at once,
// from NATS's no-responders). Posts reach members on every node through
// the cluster; the nodes keep each room's history and user list in step
// with two subjects of their own on the node's NATS connection (chat.post,
// chat.users); a node silent for three presence rounds is taken as gone and
// its members leave the lists.
//
// The page and a copy of js/wsactor.js are embedded (go:embed); a test fails
// when the copy differs from js/wsactor.js (run go generate to refresh it).
//
// # Concurrency
//
// The chat's state (members, histories, other nodes' members) is guarded by
// one mutex, held briefly by request handlers (on wsactor's handler pool),
// the disconnect hook (on a connection's read goroutine), presence
// callbacks (on a connection's actor loop), the NATS handlers (on nats.go's
// subscription goroutines) and the presence goroutine. Pushes happen under
// the mutex so that every browser sees one order; broadcasts never block, so
// that is cheap. The presence goroutine is the only goroutine the chat
// starts; Close stops it and waits for it.
package main
