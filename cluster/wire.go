package cluster

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/wsactor/wsactor"
)

// What travels between nodes: a message's body is the raw JSON "data" (empty
// when the data is left out); everything else is in headers.
const (
	hOp      = "Wsactor-Op"
	hOrigin  = "Wsactor-Origin"  // the sending node
	hTimeout = "Wsactor-Timeout" // ms left until the asker's deadline
	hRoom    = "Wsactor-Room"    // encName(room)
	hConn    = "Wsactor-Conn"    // a member's connection id
	hErr     = "Wsactor-Err"     // an outcome's error kind
	hCode    = "Wsactor-Code"    // a remote error's code
	hMsg     = "Wsactor-Msg"     // an error's message
	hMore    = "Wsactor-More"    // a manifest part that is not the last
	hTrace   = "traceparent"     // a request's W3C traceparent, under its usual header name
	hInst    = "Wsactor-Inst"    // the sending node's incarnation (ack, pong, manifest)

	opHello    = "hello"    // on <prefix>.hello, reply to the sender's node subject
	opHere     = "here"     // the answer to hello
	opBye      = "bye"      // a node leaves
	opReq      = "req"      // a request by key
	opAck      = "ack"      // a request by key taken, by the node in hOrigin
	opReply    = "reply"    // its outcome
	opSend     = "send"     // a message by key
	opCast     = "cast"     // a room broadcast
	opAsk      = "ask"      // a room ask, to one node
	opManifest = "manifest" // the members a node asks (ids, one a line)
	opOutcome  = "outcome"  // one member's outcome
	opDone     = "done"     // every outcome of the node was sent
	opPing     = "ping"     // is the node there?
	opPong     = "pong"
)

func (n *Node) msg(subject, op string, data []byte) *nats.Msg {
	return &nats.Msg{Subject: subject, Data: data, Header: nats.Header{hOp: {op}, hOrigin: {n.id}}}
}

// instMsg is msg with the node's incarnation, for hello, here and bye and
// for the answers that start or confirm a wait on this node (ack, manifest,
// pong): a node restarted under the same id answers a probe with another
// incarnation, which ends what the dead one had taken, and the old copy's
// bye does not make its peers forget the new one.
func (n *Node) instMsg(subject, op string, data []byte) *nats.Msg {
	m := n.msg(subject, op, data)
	m.Header[hInst] = []string{n.inst}
	return m
}

// noResponders reports NATS's "no responders" status message.
func noResponders(m *nats.Msg) bool {
	return len(m.Data) == 0 && m.Header.Get("Status") == "503"
}

// errKinds are the outcomes that cross nodes by name, so that errors.Is
// works on the asking node as it does locally. Order matters: the first
// match wins.
var errKinds = []struct {
	kind string
	err  error
}{
	{"timeout", wsactor.ErrTimeout},
	{"canceled", wsactor.ErrCanceled},
	{"restarted", wsactor.ErrRestarted},
	{"shutdown", wsactor.ErrShutdown},
	{"lost", wsactor.ErrConnLost},
	{"closed", wsactor.ErrClosed},
	{"pending", wsactor.ErrTooManyPending},
	{"mailbox", wsactor.ErrMailboxFull},
	{"queue", wsactor.ErrWriteQueueFull},
	{"large", wsactor.ErrTooLarge},
	{"noconn", wsactor.ErrNoConn},
}

// errRemoteNode is an outcome error that happened on another node.
var errRemoteNode = errors.New("cluster: error on another node")

func putErr(h nats.Header, err error) {
	var re *wsactor.RemoteError
	if errors.As(err, &re) {
		h.Set(hErr, "remote")
		h.Set(hCode, oneLine(re.Code))
		h.Set(hMsg, oneLine(re.Message))
		return
	}
	kind := "other"
	for _, k := range errKinds {
		if errors.Is(err, k.err) {
			kind = k.kind
			break
		}
	}
	h.Set(hErr, kind)
	h.Set(hMsg, oneLine(err.Error()))
}

// getErr rebuilds the error put by putErr; nil for none.
func getErr(h nats.Header) error {
	kind := h.Get(hErr)
	switch kind {
	case "":
		return nil
	case "remote":
		return &wsactor.RemoteError{Code: h.Get(hCode), Message: h.Get(hMsg)}
	}
	from := h.Get(hOrigin)
	for _, k := range errKinds {
		if k.kind == kind {
			return fmt.Errorf("%w (on node %s: %s)", k.err, from, h.Get(hMsg))
		}
	}
	return fmt.Errorf("%w %s: %s", errRemoteNode, from, h.Get(hMsg))
}

// oneLine keeps a header value on one line.
func oneLine(s string) string {
	if strings.ContainsAny(s, "\r\n") {
		s = strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
	}
	return s
}

func decName(s string) (string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return string(b), err == nil
}

// encode turns v into the raw JSON of "data" as the server does: nil for
// [wsactor.NoData], a [json.RawMessage] as it is (checked), anything else
// through encoding/json.
func encode(v any) ([]byte, error) {
	if v == wsactor.NoData {
		return nil, nil
	}
	if raw, ok := v.(json.RawMessage); ok {
		if raw == nil {
			return []byte("null"), nil
		}
		if !json.Valid(raw) {
			return nil, errors.New("cluster: json.RawMessage is not valid JSON")
		}
		return raw, nil
	}
	return json.Marshal(v)
}

// value is data as a value to hand to the server again.
func value(data []byte) any {
	if len(data) == 0 {
		return wsactor.NoData
	}
	return json.RawMessage(data)
}

func dataOrNil(b []byte) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	return b
}

// deadline gives ctx a deadline if it has none.
func (n *Node) deadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, n.o.requestTimeout)
}

// setTimeout writes the time left until ctx's deadline.
func setTimeout(h nats.Header, ctx context.Context) {
	dl, _ := ctx.Deadline()
	h.Set(hTimeout, strconv.FormatInt(max(time.Until(dl).Milliseconds(), 1), 10))
}

// setTrace puts the traceparent a request made by the server with ctx
// would send (wsactor.WithTraceparent, wsactor.WithTracePropagation).
func (n *Node) setTrace(h nats.Header, ctx context.Context) {
	if tp, ok := n.srv.OutgoingTraceparent(ctx); ok {
		h.Set(hTrace, tp)
	}
}

// getTrace gives ctx the traceparent of a request from another node; an
// invalid one is ignored.
func getTrace(ctx context.Context, h nats.Header) context.Context {
	if tp := h.Get(hTrace); tp != "" {
		return wsactor.WithTraceparent(ctx, tp)
	}
	return ctx
}

func getTimeout(h nats.Header, def time.Duration) time.Duration {
	ms, err := strconv.ParseInt(h.Get(hTimeout), 10, 64)
	if err != nil || ms <= 0 {
		return def
	}
	return time.Duration(ms) * time.Millisecond
}

// ctxError is how a request ends when its ctx does, as on one node.
func ctxError(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return wsactor.ErrTimeout
	}
	return fmt.Errorf("%w: %w", wsactor.ErrCanceled, context.Cause(ctx))
}
