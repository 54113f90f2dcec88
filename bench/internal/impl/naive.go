package impl

import (
	"context"
	"encoding/json"
	"sync"

	"github.com/google/uuid"
	"github.com/lxzan/gws"
)

// The naive request layer: what a user writes in an afternoon on gws.

const plugin = "primus-responder"

type naiveEnvelope struct {
	Plugin     string          `json:"plugin"`
	RequestID  string          `json:"requestId,omitempty"`
	ResponseID string          `json:"responseId,omitempty"`
	Data       json.RawMessage `json:"data,omitempty"`
}

// naiveServer decodes each request with encoding/json, "handles" it (the
// handler returns the data it got) and writes the reply from OnMessage.
type naiveServer struct{ gws.BuiltinEventHandler }

func (naiveServer) OnMessage(c *gws.Conn, m *gws.Message) {
	var req naiveEnvelope
	err := json.Unmarshal(m.Bytes(), &req)
	_ = m.Close()
	if err != nil || req.Plugin != plugin || req.RequestID == "" {
		return
	}
	b, err := json.Marshal(naiveEnvelope{Plugin: plugin, ResponseID: req.RequestID, Data: echoHandler(req.Data)})
	if err != nil {
		return
	}
	_ = c.WriteMessage(gws.OpcodeText, b)
}

// echoHandler is the naive server's request handler.
func echoHandler(data json.RawMessage) json.RawMessage { return data }

// naiveClient keeps a mutex-guarded map from request id to the channel its
// caller waits on.
type naiveClient struct {
	gwsClient
	mu      sync.Mutex
	pending map[string]chan []byte
}

func (c *naiveClient) RoundTrip(ctx context.Context, payload, dst []byte) ([]byte, error) {
	id := uuid.NewString()
	ch := make(chan []byte, 1)
	c.mu.Lock()
	c.pending[id] = ch
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	b, err := json.Marshal(naiveEnvelope{Plugin: plugin, RequestID: id, Data: payload})
	if err == nil {
		err = c.ws.WriteMessage(gws.OpcodeText, b)
	}
	if err != nil {
		c.forget(id)
		return dst, err
	}
	select {
	case data := <-ch:
		return append(dst, data...), nil
	case <-ctx.Done():
		c.forget(id)
		return dst, ctx.Err()
	case <-c.done:
		c.forget(id)
		return dst, ErrClosed
	}
}

func (c *naiveClient) forget(id string) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

func (c *naiveClient) OnMessage(_ *gws.Conn, m *gws.Message) {
	var resp naiveEnvelope
	err := json.Unmarshal(m.Bytes(), &resp)
	_ = m.Close()
	if err != nil || resp.ResponseID == "" {
		return
	}
	c.mu.Lock()
	ch := c.pending[resp.ResponseID]
	delete(c.pending, resp.ResponseID)
	c.mu.Unlock()
	if ch != nil {
		ch <- resp.Data
	}
}
