// wsactor.js against a real Primus 8.0.9 + primus-responder 1.0.4 server (interop/primus-server.mjs).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import {
  AbortError,
  ClosedError,
  DisconnectedError,
  QueueFullError,
  RemoteError,
  TimeoutError,
  connect,
} from '../wsactor.js';
import { freePort, once, startServer, until } from './helpers.mjs';

const fast = { min: 10, max: 50, factor: 2, retries: Infinity, resetAfter: 0 };

function client(url, opts = {}) {
  return connect(url, { WebSocket, reconnect: fast, ...opts });
}

// Connect and wait until the server has reported the connection too (its 'connection' event may be
// printed after the client's 'open'). Returns the index of the next server event.
async function connected(srv, url, opts) {
  const n0 = srv.count((e) => e.event === 'connection');
  const c = client(url, opts);
  await once(c, 'open');
  await until(() => srv.count((e) => e.event === 'connection') === n0 + 1, 5000, 'server connection event');
  return [c, srv.events.length];
}

describe('against a stock Primus server', () => {
  let srv;
  before(async () => {
    srv = await startServer(['--ping-interval', '0', '--log-requests']);
  });
  after(async () => {
    const { code } = await srv.stop();
    assert.equal(code, 0, 'server exits 0 when stdin closes');
  });

  test('requests both ways', async () => {
    const c = client(srv.url);
    try {
      c.onRequest((data) => ({ ...data, from: 'wsactor.js' }));
      assert.equal(await c.request({ op: 'add', a: 2, b: 40 }), 42);
      const echo = { op: 'echo', s: 'é\u2028"quoted"', nested: { list: [1, null, true, 1.5] } };
      assert.deepEqual(await c.request(echo), echo);
      assert.equal(await c.request({ op: 'nodata' }), undefined);
      assert.equal(await c.request({ op: 'null' }), null);
      assert.equal(await c.request('plain string'), 'plain string');
      // the server asks us inside its own handler, and answers with our reply
      const reply = await c.request({ op: 'ask' });
      assert.equal(reply.op, 'hello');
      assert.equal(reply.from, 'wsactor.js');
      assert.equal(typeof reply.n, 'number');
      // server-initiated from stdin
      const ack = await srv.cmd('ask');
      assert.equal(ack.count, 1);
      const ans = await srv.waitEvent((e) => e.event === 'answer' && e.n === ack.n[0], 5000, 'answer');
      assert.equal(ans.data.from, 'wsactor.js');
      // the wsactor "timeout" hint is on the wire and ignored by the stock server
      const req = srv.events.find((e) => e.event === 'request' && e.data?.op === 'add' && e.data.a === 2);
      assert.ok(req.timeout > 0 && req.timeout <= 30000, `timeout hint ${req.timeout}`);
      assert.match(req.requestId, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      assert.equal(c.stats.answered, 6);
      assert.equal(c.stats.requestsAnswered, 2);
      assert.equal(c.stats.pending, 0);
    } finally {
      await c.close();
    }
  });

  test('a stock server ignores the traceparent extension and answers as usual', async () => {
    const c = client(srv.url);
    try {
      const TP = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
      assert.equal(await c.request({ op: 'add', a: 2, b: 40 }, { traceparent: TP }), 42);
      const echo = { op: 'echo', s: 'traced' };
      assert.deepEqual(await c.request(echo, { traceparent: TP }), echo);
      // its own requests carry none: the handler is told undefined
      const seen = [];
      c.onRequest((data, { traceparent }) => {
        seen.push(traceparent);
        return { ...data, from: 'wsactor.js' };
      });
      const reply = await c.request({ op: 'ask' }, { traceparent: TP });
      assert.equal(reply.from, 'wsactor.js');
      assert.deepEqual(seen, [undefined]);
    } finally {
      await c.close();
    }
  });

  test('1,000 concurrent requests', async (t) => {
    const c = client(srv.url);
    try {
      await once(c, 'open');
      const t0 = performance.now();
      const answers = await Promise.all(Array.from({ length: 1000 }, (_, i) => c.request({ op: 'add', a: i, b: i })));
      const ms = performance.now() - t0;
      answers.forEach((v, i) => assert.equal(v, 2 * i));
      assert.equal(c.stats.sent, 1000);
      assert.equal(c.stats.answered, 1000);
      assert.equal(c.stats.pending, 0);
      t.diagnostic(`1000 concurrent requests in ${ms.toFixed(1)} ms`);
    } finally {
      await c.close();
    }
  });

  test('handler errors and missing handler become error responses', async () => {
    const c = client(srv.url);
    try {
      const from = srv.events.length;
      // no handler yet: the server's writeAndWait gets a no_handler error response (stock: data undefined)
      await c.request({ op: 'ask' });
      let er = await srv.waitEvent((e) => e.event === 'error-response', 5000, 'error-response', from);
      assert.deepEqual(er.error, { code: 'no_handler', message: 'no request handler' });
      c.onRequest(async () => {
        throw new Error('boom');
      });
      const from2 = srv.events.length;
      assert.equal(await c.request({ op: 'ask' }), undefined);
      er = await srv.waitEvent((e) => e.event === 'error-response', 5000, 'error-response', from2);
      assert.deepEqual(er.error, { code: 'error', message: 'boom' });
      c.onRequest(() => {
        throw new RemoteError('bad_input', 'n is odd');
      });
      const from3 = srv.events.length;
      await c.request({ op: 'ask' });
      er = await srv.waitEvent((e) => e.event === 'error-response', 5000, 'error-response', from3);
      assert.deepEqual(er.error, { code: 'bad_input', message: 'n is odd' });
      assert.equal(c.stats.requestErrors, 3);
    } finally {
      await c.close();
    }
  });

  test('error response rejects with RemoteError', async () => {
    const c = client(srv.url);
    try {
      await assert.rejects(c.request({ op: 'fail', code: 'not_found', message: 'no such thing' }), (err) => {
        assert.ok(err instanceof RemoteError);
        assert.equal(err.code, 'not_found');
        assert.equal(err.message, 'no such thing');
        return true;
      });
      assert.equal(c.stats.remoteErrors, 1);
    } finally {
      await c.close();
    }
  });

  test('plain messages both ways; null is refused', async () => {
    const c = client(srv.url);
    try {
      const got = [];
      c.onMessage((m) => got.push(m));
      assert.throws(() => c.send(null), TypeError);
      assert.throws(() => c.send(NaN), TypeError);
      assert.throws(() => c.send(undefined), TypeError);
      const cyc = {};
      cyc.self = cyc;
      await assert.rejects(c.request(cyc), TypeError);
      const from = srv.events.length;
      c.send({ hello: 'server' }); // queued until open, then flushed
      const d = await srv.waitEvent((e) => e.event === 'data', 5000, 'data', from);
      assert.deepEqual(d.data, { hello: 'server' });
      assert.equal(await c.request({ op: 'push', data: { pushed: 1 } }), true);
      await until(() => got.length === 1, 5000, 'pushed message');
      assert.deepEqual(got, [{ pushed: 1 }]);
      // a request with null data is fine: null is inside the envelope
      assert.equal(await c.request(null), null);
    } finally {
      await c.close();
    }
  });

  test('timeout: TimeoutError, cancel sent, late reply ignored and counted', async () => {
    const c = client(srv.url);
    try {
      await once(c, 'open');
      const from = srv.events.length;
      const t0 = performance.now();
      await assert.rejects(c.request({ op: 'sleep', ms: 600, value: 'late' }, { timeout: 100 }), TimeoutError);
      const waited = performance.now() - t0;
      // upper bound only catches a missing timer: the box is shared and may stall us
      assert.ok(waited >= 95 && waited < 5000, `timed out after ${waited} ms`);
      const req = await srv.waitEvent((e) => e.event === 'request' && e.data?.op === 'sleep', 5000, 'request', from);
      assert.ok(req.timeout >= 1 && req.timeout <= 100);
      const cancel = await srv.waitEvent((e) => e.event === 'cancel', 5000, 'cancel', from);
      assert.equal(cancel.cancelId, req.requestId);
      await until(() => c.stats.lateReplies === 1, 5000, 'late reply');
      assert.equal(c.stats.timedOut, 1);
      assert.equal(c.stats.cancelsSent, 1);
      assert.equal(c.stats.answered, 0);
      assert.equal(await c.request({ op: 'add', a: 1, b: 1 }), 2, 'connection still usable');
    } finally {
      await c.close();
    }
  });

  test('abort: AbortError, cancel sent; pre-aborted signal', async () => {
    const c = client(srv.url);
    try {
      await once(c, 'open');
      const pre = AbortSignal.abort(new Error('nope'));
      await assert.rejects(c.request({ op: 'add', a: 1, b: 1 }, { signal: pre }), (err) => err instanceof AbortError && err.name === 'AbortError');
      const ac = new AbortController();
      const from = srv.events.length;
      const p = c.request({ op: 'never' }, { signal: ac.signal, timeout: 0 });
      const req = await srv.waitEvent((e) => e.event === 'request' && e.data?.op === 'never', 5000, 'request', from);
      assert.equal(req.timeout, undefined, 'timeout:0 sends no hint');
      ac.abort(new Error('user gave up'));
      await assert.rejects(p, (err) => err instanceof AbortError && err.cause.message === 'user gave up');
      const cancel = await srv.waitEvent((e) => e.event === 'cancel', 5000, 'cancel', from);
      assert.equal(cancel.cancelId, req.requestId);
      assert.equal(c.stats.aborted, 2);
      assert.equal(c.stats.sent, 1);
      assert.equal(c.stats.pending, 0);
    } finally {
      await c.close();
    }
  });

  test('server drop: pending requests reject with DisconnectedError exactly once, client reconnects', async () => {
    const [c, from] = await connected(srv, srv.url);
    try {
      const N = 20;
      const outcomes = new Array(N).fill(0);
      const errors = [];
      const ps = Array.from({ length: N }, (_, i) =>
        c.request({ op: 'sleep', ms: 2000, i }).then(
          () => {
            outcomes[i]++;
          },
          (err) => {
            outcomes[i]++;
            errors.push(err);
          },
        ),
      );
      // all N requests have reached the server
      await until(() => srv.events.slice(from).filter((e) => e.event === 'request' && e.data?.op === 'sleep').length === N, 5000, 'requests at server');
      const closed = once(c, 'close');
      const reconnecting = once(c, 'reconnecting');
      await srv.cmd('drop');
      const info = await closed;
      assert.equal(info.willReconnect, true);
      const r = await reconnecting;
      assert.equal(r.attempt, 1);
      await Promise.all(ps);
      assert.deepEqual(outcomes, new Array(N).fill(1));
      assert.equal(errors.length, N);
      for (const err of errors) assert.ok(err instanceof DisconnectedError, String(err));
      await once(c, 'open');
      assert.equal(await c.request({ op: 'add', a: 20, b: 22 }), 42, 'usable after reconnect');
      await until(() => srv.events.slice(from).some((e) => e.event === 'connection'), 5000, 'new connection at the server');
      assert.equal(srv.events.slice(from).filter((e) => e.event === 'connection').length, 1, 'one new connection');
      assert.equal(c.stats.disconnected, N);
      assert.equal(c.stats.pending, 0);
      assert.equal(c.stats.opens, 2);
    } finally {
      await c.close();
    }
  });

  test('drop while a request is in the handler (op drop) rejects it with DisconnectedError', async () => {
    const c = client(srv.url);
    try {
      await assert.rejects(c.request({ op: 'drop' }), DisconnectedError);
      await once(c, 'open');
      assert.equal(await c.request({ op: 'add', a: 1, b: 2 }), 3);
    } finally {
      await c.close();
    }
  });

  test('server end: ClosedError, no reconnect', async () => {
    const [c, from] = await connected(srv, srv.url);
    let reconnecting = 0;
    c.on('reconnecting', () => reconnecting++);
    const ended = once(c, 'end');
    const p = c.request({ op: 'sleep', ms: 2000 });
    await srv.waitEvent((e) => e.event === 'request' && e.data?.op === 'sleep', 5000, 'request', from);
    await srv.cmd('end');
    await ended;
    await assert.rejects(p, ClosedError);
    assert.equal(c.state, 'closed');
    await assert.rejects(c.request({ op: 'add', a: 1, b: 1 }), ClosedError);
    assert.throws(() => c.send('x'), ClosedError);
    // With reconnect.min = 10 ms a reconnect would have happened well within 300 ms.
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(reconnecting, 0);
    assert.equal(srv.count((e) => e.event === 'connection' && srv.events.indexOf(e) >= from), 0);
    await c.close(); // idempotent
  });

  test('close(): pending and queued requests reject with ClosedError, no reconnect', async () => {
    const [c, from] = await connected(srv, srv.url);
    const p = c.request({ op: 'never' });
    const rejected = assert.rejects(p, ClosedError);
    await srv.waitEvent((e) => e.event === 'request' && e.data?.op === 'never', 5000, 'request', from);
    await c.close();
    await rejected;
    await assert.rejects(c.request('x'), ClosedError);
    await srv.waitEvent((e) => e.event === 'disconnection', 5000, 'disconnection', from);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(srv.count((e) => e.event === 'connection' && srv.events.indexOf(e) >= from), 0);
  });

  test('heartbeat: pongs answer pings; the server keeps the connection', async () => {
    // Generous numbers: the box is shared and often loaded. The server drops a connection that
    // did not pong between two ticks; the client drops one that saw no ping for pingTimeout.
    const hb = await startServer(['--ping-interval', '300']);
    const c = client(hb.url, { pingTimeout: 3000 });
    try {
      await once(c, 'open');
      let closes = 0;
      c.on('close', () => closes++);
      await until(() => c.stats.pings >= 3, 10000, '3 pings');
      await until(() => hb.count((e) => e.event === 'heartbeat') >= 3, 5000, '3 pongs at the server');
      assert.equal(closes, 0, 'no drop: pongs keep the server happy and pings keep pingTimeout armed');
      assert.equal(hb.count((e) => e.event === 'connection'), 1);
      assert.equal(hb.count((e) => e.event === 'disconnection'), 0);
    } finally {
      await c.close();
      await hb.stop();
    }
  });
});

test('ping timeout: no primus::ping within pingTimeout -> reconnect', async () => {
  const srv = await startServer(['--ping-interval', '0']);
  const c = client(srv.url, { pingTimeout: 400 });
  try {
    const reconnecting = once(c, 'reconnecting');
    await once(c, 'open');
    const t0 = performance.now();
    const r = await reconnecting;
    const ms = performance.now() - t0;
    assert.equal(r.reason, 'ping timeout');
    assert.ok(ms >= 350 && ms < 5000, `dead after ${ms} ms`);
    // a request on the wire when the connection is declared dead gets DisconnectedError
    await once(c, 'open');
    const rejected = assert.rejects(c.request({ op: 'never' }, { timeout: 10000 }), DisconnectedError);
    assert.equal((await once(c, 'reconnecting')).reason, 'ping timeout');
    await rejected;
    await until(() => srv.count((e) => e.event === 'connection') >= 2, 5000, 'second connection');
  } finally {
    await c.close();
    await srv.stop();
  }
});

test('offline: bounded queue, timeouts while queued, ordered flush on connect', async () => {
  const port = await freePort();
  const url = `ws://127.0.0.1:${port}/primus`;
  const c = client(url, { queueLimit: 4, reconnect: { min: 20, max: 40, factor: 2, retries: Infinity } });
  let srv;
  try {
    c.send('m1');
    const willTimeOut = c.request({ op: 'echo', n: 0 }, { timeout: 50 });
    const r1 = c.request({ op: 'echo', n: 1 });
    c.send('m2');
    assert.equal(c.stats.queued, 4);
    await assert.rejects(c.request({ op: 'echo', n: 2 }), QueueFullError);
    assert.throws(() => c.send('m3'), QueueFullError);
    assert.equal(c.stats.queueFull, 2);
    await assert.rejects(willTimeOut, TimeoutError);
    assert.equal(c.stats.queued, 3, 'timed-out request left the queue');
    assert.equal(c.stats.cancelsSent, 0, 'nothing to cancel: it was never sent');
    const r3 = c.request({ op: 'echo', n: 3 });
    await once(c, 'reconnecting', 2000); // attempts are failing
    srv = await startServer(['--port', String(port), '--ping-interval', '0', '--log-requests']);
    assert.deepEqual(await r1, { op: 'echo', n: 1 });
    assert.deepEqual(await r3, { op: 'echo', n: 3 });
    // the server's stdout may lag behind its answers
    const order = () =>
      srv.events.filter((e) => e.event === 'data' || e.event === 'request').map((e) => (e.event === 'data' ? e.data : `req${e.data.n}`));
    await until(() => order().length >= 4, 5000, 'server events');
    assert.deepEqual(order(), ['m1', 'req1', 'm2', 'req3']);
    assert.equal(c.stats.queued, 0);
  } finally {
    await c.close();
    await srv?.stop();
  }
});

test('retries exhausted: ClosedError and end', async () => {
  const port = await freePort();
  const c = client(`ws://127.0.0.1:${port}/primus`, { reconnect: { min: 5, max: 10, factor: 2, retries: 2 } });
  const p = c.request('x');
  const attempts = [];
  c.on('reconnecting', (r) => attempts.push(r.attempt));
  await once(c, 'end', 3000);
  await assert.rejects(p, ClosedError);
  assert.deepEqual(attempts, [1, 2]);
  assert.equal(c.state, 'closed');
});

test('option validation', () => {
  if (typeof globalThis.WebSocket !== 'function') {
    assert.throws(() => connect('ws://127.0.0.1:1/primus', { WebSocket: undefined }), TypeError);
  }
  assert.throws(() => connect('ftp://127.0.0.1:1/primus', { WebSocket }), TypeError);
  assert.throws(() => connect('ws://127.0.0.1:1/primus', { WebSocket, queueLimit: -1 }), TypeError);
  assert.throws(() => connect('ws://127.0.0.1:1/primus', { WebSocket, reconnect: { min: 100, max: 10 } }), TypeError);
  assert.throws(() => connect('ws://127.0.0.1:1/primus', { WebSocket, reconnect: { factor: 0.5 } }), TypeError);
});
