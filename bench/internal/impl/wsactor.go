package impl

import (
	"context"
	"encoding/json"

	"github.com/wsactor/wsactor"
)

// wsactorServer is a wsactor server whose handler echoes the request's data.
// Its connections are not capped (WithMaxConnections(0)): bench holds up to
// -mem-per-server or -accept-per-server connections per process, over the
// library's default cap of 10,000, as the raw gws server does.
type wsactorServer struct{ *wsactor.Server }

func newWSActorServer(opts ...wsactor.Option) (Server, error) {
	srv, err := wsactor.NewServer(append(opts, wsactor.WithMaxConnections(0), wsactor.WithRequestHandler(
		func(_ context.Context, _ *wsactor.Conn, req wsactor.Request) (any, error) {
			return req.Data, nil
		}))...)
	if err != nil {
		return nil, err
	}
	return wsactorServer{srv}, nil
}

func (s wsactorServer) Conns() int { return s.Stats().Conns }

// wsactorClient is a wsactor Client (one supervised connection).
type wsactorClient struct{ cl *wsactor.Client }

func dialWSActor(ctx context.Context, url string, opts ...wsactor.Option) (Client, error) {
	cl, err := wsactor.Dial(ctx, url, append(opts, wsactor.WithRequestTimeout(RequestTimeout))...)
	if err != nil {
		return nil, err
	}
	return wsactorClient{cl}, nil
}

func (c wsactorClient) RoundTrip(ctx context.Context, payload, dst []byte) ([]byte, error) {
	resp, err := c.cl.Request(ctx, json.RawMessage(payload))
	if err != nil {
		return dst, err
	}
	return append(dst, resp.Data...), nil
}

func (c wsactorClient) Close() error { return c.cl.Close() }
