// wsactor.js frame by frame against a raw `ws` server: exact bytes, the wsactor extensions
// (cancel, error responses) that a stock Primus server cannot send, and odd inputs.
import assert from 'node:assert/strict';
import { after, before, beforeEach, test } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import { AbortError, ClosedError, DisconnectedError, RemoteError, connect } from '../wsactor.js';
import { once, until } from './helpers.mjs';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

// A raw server: every connection's text frames are collected in `frames` (strings).
let wss;
let url;
let peers; // array of {ws, frames: string[]}

before(async () => {
  wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((r) => wss.on('listening', r));
  url = `ws://127.0.0.1:${wss.address().port}/primus`;
  wss.on('connection', (ws, req) => {
    const peer = { ws, frames: [], path: req.url };
    ws.on('message', (data, isBinary) => peer.frames.push(isBinary ? data : data.toString()));
    peers.push(peer);
  });
});
beforeEach(() => {
  peers = [];
});
after(async () => {
  for (const c of wss.clients) c.terminate();
  await new Promise((r) => wss.close(r));
});

function client(opts = {}) {
  return connect(url, { WebSocket, reconnect: { min: 10, max: 20, factor: 2, resetAfter: 0 }, ...opts });
}

async function open(opts) {
  const c = client(opts);
  await once(c, 'open');
  await until(() => peers.length === 1, 5000, 'server side');
  return [c, peers[0]];
}

const frameCount = (peer, n) => until(() => peer.frames.length >= n, 5000, `${n} frames`);

test('request and response frames are exact', async () => {
  const [c, peer] = await open();
  try {
    assert.equal(peer.path, '/primus');
    const p1 = c.request({ op: 'x' }, { timeout: 5000 });
    const p2 = c.request(undefined, { timeout: 0 });
    await frameCount(peer, 2);
    const m1 = peer.frames[0].match(/^\{"plugin":"primus-responder","requestId":"([^"]+)","data":\{"op":"x"\},"timeout":(\d+)\}$/);
    assert.ok(m1, peer.frames[0]);
    assert.match(m1[1], UUID);
    assert.ok(Number(m1[2]) > 4900 && Number(m1[2]) <= 5000);
    const m2 = peer.frames[1].match(/^\{"plugin":"primus-responder","requestId":"([^"]+)"\}$/);
    assert.ok(m2, `undefined data and no timeout: no keys (${peer.frames[1]})`);
    peer.ws.send(`{"plugin":"primus-responder","responseId":"${m2[1]}"}`);
    peer.ws.send(JSON.stringify({ plugin: 'primus-responder', responseId: m1[1], error: { code: 'nope', message: 'denied' } }));
    assert.equal(await p2, undefined);
    await assert.rejects(p1, (err) => err instanceof RemoteError && err.code === 'nope' && err.message === 'denied');
    // duplicate and unknown responses are ignored and counted
    peer.ws.send(`{"plugin":"primus-responder","responseId":"${m2[1]}","data":1}`);
    peer.ws.send(`{"plugin":"primus-responder","responseId":"never-sent","data":1}`);
    await until(() => c.stats.lateReplies === 1 && c.stats.unknownReplies === 1, 5000, 'counters');
  } finally {
    await c.close();
  }
});

test('answers requests: id verbatim, data omitted when undefined, pong echoes ping', async () => {
  const [c, peer] = await open();
  try {
    c.onRequest((data) => (data === 'nothing' ? undefined : { got: data }));
    peer.ws.send('{"plugin":"primus-responder","requestId":7,"data":"n"}');
    peer.ws.send('{"plugin":"primus-responder","requestId":"abc","data":"nothing"}');
    peer.ws.send('"primus::ping::1795618408068"');
    peer.ws.send('{"plugin":"primus-responder","requestId":"","data":"swallowed"}');
    peer.ws.send('{"plugin":"primus-responder","requestId":"null-data","data":null}');
    await frameCount(peer, 4);
    assert.deepEqual(peer.frames, [
      '{"plugin":"primus-responder","responseId":7,"data":{"got":"n"}}',
      '{"plugin":"primus-responder","responseId":"abc"}',
      '"primus::pong::1795618408068"',
      '{"plugin":"primus-responder","responseId":"null-data","data":{"got":null}}',
    ]);
    assert.equal(c.stats.pings, 1);
  } finally {
    await c.close();
  }
});

test('a cancel envelope aborts the handler and suppresses its response', async () => {
  const [c, peer] = await open();
  try {
    let signal;
    let release;
    c.onRequest((data, ctx) => {
      if (data === 'slow') {
        signal = ctx.signal;
        return new Promise((r) => (release = r));
      }
      return 'fast';
    });
    peer.ws.send('{"plugin":"primus-responder","requestId":"r1","data":"slow"}');
    await until(() => signal, 5000, 'handler started');
    peer.ws.send('{"plugin":"primus-responder","cancelId":"r1"}');
    await until(() => signal.aborted, 5000, 'abort');
    assert.ok(signal.reason instanceof AbortError);
    release('too late');
    peer.ws.send('{"plugin":"primus-responder","requestId":"r2","data":"x"}');
    await frameCount(peer, 1);
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(peer.frames, ['{"plugin":"primus-responder","responseId":"r2","data":"fast"}']);
    assert.equal(c.stats.cancelsReceived, 1);
  } finally {
    await c.close();
  }
});

test('a dropped connection aborts in-flight handlers; their answers are not sent on the next connection', async () => {
  const [c, peer] = await open();
  try {
    let signal;
    let release;
    c.onRequest((data, ctx) => {
      signal = ctx.signal;
      return new Promise((r) => (release = r));
    });
    peer.ws.send('{"plugin":"primus-responder","requestId":"r1","data":"slow"}');
    await until(() => signal, 5000, 'handler started');
    const pending = c.request('lost', { timeout: 5000 });
    await frameCount(peer, 1);
    peer.ws.terminate();
    await assert.rejects(pending, DisconnectedError);
    assert.ok(signal.aborted && signal.reason instanceof DisconnectedError);
    await once(c, 'open');
    await until(() => peers.length === 2, 5000, 'reconnected');
    release('answer for the old session');
    c.send('marker');
    await frameCount(peers[1], 1);
    assert.deepEqual(peers[1].frames, ['"marker"'], 'no stale response and no resent request');
  } finally {
    await c.close();
  }
});

test('primus::server::close then close: ClosedError, end, no reconnect', async () => {
  const [c, peer] = await open();
  const p = c.request('pending');
  const rejected = assert.rejects(p, ClosedError);
  const ended = once(c, 'end');
  peer.ws.send('"primus::server::close"');
  peer.ws.close();
  await ended;
  await rejected;
  await new Promise((r) => setTimeout(r, 100)); // a reconnect (min 10 ms) would have happened by now
  assert.equal(peers.length, 1);
  assert.equal(c.state, 'closed');
});

test('odd frames: invalid JSON, binary, null, unknown primus:: strings, foreign plugins', async () => {
  const [c, peer] = await open();
  try {
    const msgs = [];
    const errors = [];
    c.onMessage((m) => msgs.push(m));
    c.on('error', (e) => errors.push(e));
    peer.ws.send('{not json');
    peer.ws.send(Buffer.from([1, 2, 255]));
    peer.ws.send('null');
    peer.ws.send('"primus::whatever::x"');
    peer.ws.send('{"plugin":"other","x":1}');
    peer.ws.send('"primus::id::abc"');
    peer.ws.send('42');
    await until(() => msgs.length === 5, 5000, '5 messages');
    assert.ok(msgs[0] instanceof ArrayBuffer);
    assert.deepEqual([...new Uint8Array(msgs[0])], [1, 2, 255]);
    assert.deepEqual(msgs.slice(1), [null, 'primus::whatever::x', { plugin: 'other', x: 1 }, 42]);
    assert.equal(errors.length, 1);
    assert.equal(c.stats.decodeErrors, 1);
    assert.equal(c.state, 'open');
  } finally {
    await c.close();
  }
});

test('too-large messages are refused before sending', async () => {
  const [c, peer] = await open({ maxMessageSize: 1000 });
  try {
    assert.throws(() => c.send('x'.repeat(1000)), RangeError);
    assert.throws(() => c.send('é'.repeat(600)), RangeError, 'counted in UTF-8 bytes');
    await assert.rejects(c.request('x'.repeat(1000)), RangeError);
    c.onRequest(() => 'y'.repeat(2000));
    peer.ws.send('{"plugin":"primus-responder","requestId":"big"}');
    await frameCount(peer, 1);
    const r = JSON.parse(peer.frames[0]);
    assert.equal(r.responseId, 'big');
    assert.equal(r.error.code, 'too_large');
  } finally {
    await c.close();
  }
});

test('ids fall back to getRandomValues where crypto.randomUUID is missing (insecure browser contexts)', async () => {
  const [c, peer] = await open();
  Object.defineProperty(globalThis.crypto, 'randomUUID', { value: undefined, configurable: true, writable: true });
  try {
    const ids = new Set();
    const ps = [];
    for (let i = 0; i < 50; i++) ps.push(c.request(i, { timeout: 5000 }));
    await frameCount(peer, 50);
    for (const f of peer.frames) {
      const id = JSON.parse(f).requestId;
      assert.match(id, UUID);
      ids.add(id);
      peer.ws.send(JSON.stringify({ plugin: 'primus-responder', responseId: id, data: 'ok' }));
    }
    assert.equal(ids.size, 50);
    assert.deepEqual(await Promise.all(ps), new Array(50).fill('ok'));
  } finally {
    delete globalThis.crypto.randomUUID;
    await c.close();
  }
  assert.equal(typeof globalThis.crypto.randomUUID, 'function', 'restored');
});

test('close() while offline rejects queued requests with ClosedError and drops queued sends', async () => {
  const c = connect('ws://127.0.0.1:1/primus', { WebSocket, reconnect: { min: 1000, max: 1000 } });
  const p = c.request('queued');
  c.send('queued too');
  assert.equal(c.stats.queued, 2);
  const rejected = assert.rejects(p, ClosedError);
  await c.close();
  await rejected;
  assert.equal(c.stats.queued, 0);
  assert.equal(c.stats.closed, 1);
});

test('traceparent: sent when given and valid, handed to the request handler when received and valid', async () => {
  const TP = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  const [c, peer] = await open();
  try {
    // out: a valid one goes right after the id; an invalid one (or none) is not sent
    const p1 = c.request(1, { timeout: 0, traceparent: TP });
    const p2 = c.request(2, { timeout: 0, traceparent: TP.toUpperCase() });
    const p3 = c.request(3, { timeout: 0, traceparent: `01${TP.slice(2)}-later-version` });
    const p4 = c.request(4, { timeout: 0 });
    await frameCount(peer, 4);
    const ids = peer.frames.map((f) => JSON.parse(f).requestId);
    assert.deepEqual(peer.frames, [
      `{"plugin":"primus-responder","requestId":"${ids[0]}","traceparent":"${TP}","data":1}`,
      `{"plugin":"primus-responder","requestId":"${ids[1]}","data":2}`,
      `{"plugin":"primus-responder","requestId":"${ids[2]}","traceparent":"01${TP.slice(2)}","data":3}`,
      `{"plugin":"primus-responder","requestId":"${ids[3]}","data":4}`,
    ]);
    for (const id of ids) peer.ws.send(`{"plugin":"primus-responder","responseId":"${id}","data":0}`);
    await Promise.all([p1, p2, p3, p4]);

    // in: the handler gets the valid one; an invalid one is ignored and the request still answered
    c.onRequest((data, { traceparent }) => traceparent ?? null);
    const n0 = peer.frames.length;
    peer.ws.send(`{"plugin":"primus-responder","requestId":"a","traceparent":"${TP}","data":1}`);
    peer.ws.send(`{"plugin":"primus-responder","requestId":"b","traceparent":"00-${'0'.repeat(32)}-00f067aa0ba902b7-01","data":1}`);
    peer.ws.send(`{"plugin":"primus-responder","requestId":"c","traceparent":42,"data":1}`);
    peer.ws.send(`{"plugin":"primus-responder","requestId":"d","data":1}`);
    await frameCount(peer, n0 + 4);
    assert.deepEqual(peer.frames.slice(n0), [
      `{"plugin":"primus-responder","responseId":"a","data":"${TP}"}`,
      '{"plugin":"primus-responder","responseId":"b","data":null}',
      '{"plugin":"primus-responder","responseId":"c","data":null}',
      '{"plugin":"primus-responder","responseId":"d","data":null}',
    ]);
  } finally {
    await c.close();
  }
});

test('validTraceparent follows the W3C format', async () => {
  const { validTraceparent } = await import('../wsactor.js');
  const TP = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  assert.equal(validTraceparent(TP), TP);
  assert.equal(validTraceparent(`${TP}-x`), undefined, 'version 00 is exactly 55 long');
  assert.equal(validTraceparent(`cc${TP.slice(2)}-x`), `cc${TP.slice(2)}`);
  assert.equal(validTraceparent(`cc${TP.slice(2)}x`), undefined);
  assert.equal(validTraceparent(`ff${TP.slice(2)}`), undefined);
  assert.equal(validTraceparent(TP.replace('00f067aa0ba902b7', '0000000000000000')), undefined);
  assert.equal(validTraceparent(TP.replace('-01', '-0g')), undefined);
  assert.equal(validTraceparent(undefined), undefined);
  assert.equal(validTraceparent(7), undefined);
});
