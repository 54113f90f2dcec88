package actor_test

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/wsactor/wsactor/actor"
)

// A pool handler that only polls ctx.Err (never Done) sees the peer's
// deadline, and an error wrapping ctx.Err() sends no reply: the peer has
// given up already.
func TestHandlerDeadlineWithoutDone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pool := newPool(t, 2, 2)
		errs := make(chan error, 2)
		h := func(ctx context.Context, a *actor.Actor, req actor.Incoming) ([]byte, error) {
			if string(req.Data) != `"slow"` {
				return req.Data, nil
			}
			errs <- ctx.Err()
			time.Sleep(1500 * time.Millisecond)
			errs <- ctx.Err()
			return nil, fmt.Errorf("gave up: %w", ctx.Err())
		}
		cfg := newConfig(t, actor.WithHandler(h, pool))
		p := newPair(t, cfg, nil)
		p.inject(t, `{"plugin":"primus-responder","requestId":"a","data":"slow","timeout":1000}`)
		if err := <-errs; err != nil {
			t.Fatalf("Err before the deadline: %v", err)
		}
		if err := <-errs; err != context.DeadlineExceeded {
			t.Fatalf("Err after the deadline: %v", err)
		}
		p.inject(t, `{"plugin":"primus-responder","requestId":"b","data":"fast"}`)
		if r := p.nextFrame(t); string(r.ID) != `"b"` {
			t.Fatalf("frame after a quiet timeout: %+v", r)
		}
		synctest.Wait()
		if s := cfg.Stats(); s.Answered.Load() != 1 || s.AnsweredError.Load() != 0 || s.Inbound.Load() != 0 {
			t.Fatalf("answered %d errors %d inbound %d", s.Answered.Load(), s.AnsweredError.Load(), s.Inbound.Load())
		}
	})
}
