// Package cluster joins several wsactor servers ("nodes") over NATS, so that
// server code on any node reaches connections on every node: a request or
// message to a key ([Node.RequestKey], [Node.SendKey]), a broadcast to a room
// ([Node.Broadcast]) and a request to every member of a room
// ([Node.RequestRoom]), with the semantics of the same operations on one
// [wsactor.Server]: exactly one outcome per request (per member), ctx
// deadlines, remote errors as [*wsactor.RemoteError]. Local members take the
// local path, with no NATS hop.
//
// NATS does the routing; there is no membership protocol of our own. A node
// subscribes to a room's subject only while the room has members on it
// (presence events of the server), and to a key's subjects only while one of
// its connections holds the key, so a message goes only to the nodes that
// need it:
//
//	<prefix>.room.<room>     broadcasts (every node with members)
//	<prefix>.key.<key>       requests by key (queue group: one node answers)
//	<prefix>.keysend.<key>   messages by key (every node with holders)
//	<prefix>.node.<id>       a node's own subject: room asks, liveness probes
//	<prefix>.hello           nodes announcing themselves
//
// (names are base64url-encoded into one subject token). A request to a key
// that no live connection holds fails at once with [wsactor.ErrNoConn]: NATS
// answers "no responders". The node that takes a request by key
// acknowledges it at once with its id, and the asker probes that node every
// [WithProbeInterval] until the reply: a node that dies with the request
// ends it with [ErrNodeGone] then, not at its deadline (also when it is
// back under the same id: the answers carry an incarnation, random per
// [Join], and the new one's is not the old one's). A room ask goes to every known node on its own
// subject; each node answers with the list of members it asks, then one
// message per member outcome, then "done". A node that is gone (its NATS
// connection closed, as when its process dies) has no subscribers left, so
// the ask, or the liveness probe sent every [WithProbeInterval] to nodes that
// have not finished, gets "no responders" and its unfinished members end
// with [ErrNodeGone] (which matches [wsactor.ErrConnLost]). A node that
// loses NATS ends the cross-node requests it is waiting for at once with
// [ErrNATSDown] (in [wsactor.ErrConnLost]: they may have been handled).
//
// Limits: a room or key name travels base64-encoded in a subject, so names
// are at most [wsactor.MaxNameLen] bytes (1 KiB, about 1.4 KiB in the
// subject: NATS closes a connection that sends a protocol line over 4 KiB
// by default); longer ones are refused with [wsactor.ErrNameTooLong] by
// Join and Bind, and by the node's calls before anything is sent. Keep the
// subject prefix ([WithSubjectPrefix]) short.
//
// A node that loses NATS keeps serving its own connections (local paths need
// no NATS), reports the change to [WithEventHook], and carries on when
// nats.go reconnects (it resubscribes by itself); meanwhile cross-node calls
// fail at once with [ErrNATSDown].
//
// # Concurrency
//
// All methods of [Node] may be called concurrently. nats.go runs each
// subscription's handler on its own goroutine; a node's handlers never block
// on a WebSocket connection: requests by key are answered from the
// connection actor's callback, and each room ask a node answers runs on a
// goroutine of its own that ends by the asker's deadline. The event hook
// ([WithEventHook]) runs on a goroutine of the node's that exists only while
// events are queued, never inside a call made into the node; the each
// function given to [Node.RequestRoom] is that call's own and runs inside
// it, on the caller's goroutine. [Node.Close] waits for all of them.
package cluster
