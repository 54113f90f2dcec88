// Package impl holds the three request-response implementations that the
// benchmarks in ./bench compare, each as a server ([NewServer]) and a client
// ([Dial]) talking over real loopback TCP with github.com/lxzan/gws:
//
//   - [Raw]: gws echo. The server writes every text frame back with
//     WriteMessage from OnMessage; the client writes a frame and waits for the
//     echo (replies come back in order, so waiters are a FIFO). No envelope,
//     no ids, no timeouts: the ceiling.
//   - [Naive]: the request layer a user writes in an afternoon on gws:
//     encoding/json envelopes {"plugin":"primus-responder","requestId":
//     uuid.NewString(),"data":…}, a mutex-guarded map[string]chan, a
//     context.WithTimeout per request; the server decodes each envelope with
//     encoding/json and answers from OnMessage.
//   - [WSActor]: the public wsactor API: NewServer with a RequestHandler that
//     echoes req.Data as json.RawMessage, Dial and Client.Request.
//
// [Discard] is a gws server that reads and drops every frame (a peer that
// never answers), for the pending-requests measurement.
//
// # Concurrency
//
// A [Server] runs one gws read goroutine per connection (wsactor: plus its
// own on-demand goroutines); ServeHTTP may be called concurrently and Close
// waits for every goroutine it started. A [Client] is one connection with
// one read goroutine; RoundTrip may be called from many goroutines at once
// (the in-flight requests of one connection); Close closes the socket and
// waits for the read goroutine.
package impl
