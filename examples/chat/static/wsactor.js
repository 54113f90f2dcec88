// wsactor.js — a small, dependency-free client for the Primus + primus-responder
// wire (see PRIMUS-WIRE.md) with the wsactor extensions (request timeout hint,
// error responses, cancel envelopes, W3C traceparent). Works in browsers and in Node >= 20 when a
// WebSocket constructor is injected (for example the `ws` package).
//
//   import { connect } from './wsactor.js';
//   const c = connect('ws://127.0.0.1:8080/primus');
//   const sum = await c.request({ op: 'add', a: 1, b: 2 }, { timeout: 5000 });
//
// Concurrency: JavaScript is single-threaded; every method may be called at any
// time from the event loop. Every request promise settles exactly once.

const PLUGIN = 'primus-responder';
const PING = 'primus::ping::';
const SERVER_CLOSE = 'primus::server::close';
const OPEN = 1; // WebSocket.OPEN
const RECENT_LIMIT = 4096; // settled request ids remembered to tell late replies from unknown ones

/** Base class of every error this module creates. */
export class WsactorError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The peer answered with an error response: `{"error":{"code","message"}}`. Handlers may throw it to pick the code. */
export class RemoteError extends WsactorError {
  constructor(code, message) {
    super(String(message ?? ''));
    this.code = String(code ?? 'error');
  }
}

/** No response arrived within the request's timeout (a cancel envelope was sent if the request had gone out). */
export class TimeoutError extends WsactorError {}

/** The request's AbortSignal fired (a cancel envelope was sent if the request had gone out). `cause` is the signal's reason. */
export class AbortError extends WsactorError {}

/** The connection dropped while the request was on the wire. It is never resent: a reconnect is a new session. */
export class DisconnectedError extends WsactorError {}

/** The client is closed for good: close() was called, the server ended the session, or reconnect retries ran out. */
export class ClosedError extends WsactorError {}

/** The offline queue already holds queueLimit entries. */
export class QueueFullError extends WsactorError {}

const DEFAULTS = {
  reconnect: { min: 500, max: 30000, factor: 2, retries: Infinity, resetAfter: 5000 },
  queueLimit: 1000,
  pingTimeout: 45000,
  connectTimeout: 10000,
  maxMessageSize: 65536,
};

/**
 * Open a client. It connects at once and keeps reconnecting until close() or a server end.
 * @param {string|URL} url ws://, wss://, http:// or https:// URL (the path is used as given; Primus servers want /primus).
 * @param {object} [options]
 * @param {object|false} [options.reconnect] {min, max, factor, retries, resetAfter} in ms; false disables reconnecting.
 * @param {number} [options.queueLimit=1000] max sends+requests waiting while offline.
 * @param {number|false} [options.pingTimeout=45000] drop and reconnect when no primus::ping arrives for this long.
 * @param {number} [options.connectTimeout=10000] give up on one connection attempt after this long.
 * @param {number} [options.maxMessageSize=65536] refuse to send frames larger than this: a wsactor server's default
 *   limit (WithMaxMessageSize; a larger frame makes it close the connection with 1009). Primus servers take 10485760.
 * @param {Function} [options.WebSocket=globalThis.WebSocket] WebSocket constructor (inject `ws` in Node 20).
 */
export function connect(url, options = {}) {
  return new Client(url, options);
}

function positive(name, v, allowInfinity) {
  if (typeof v !== 'number' || Number.isNaN(v) || v < 0 || (!allowInfinity && !Number.isFinite(v))) {
    throw new TypeError(`wsactor: option ${name} must be a non-negative number, got ${v}`);
  }
  return v;
}

function uuidv4() {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === 'function') return c.randomUUID();
  // randomUUID exists only in secure contexts in browsers; getRandomValues works everywhere.
  const b = c.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-.*)?$/s;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_PARENT = '0'.repeat(16);

/**
 * Check a W3C Trace Context traceparent (https://www.w3.org/TR/trace-context/#traceparent-header):
 * "version-traceid-parentid-flags", lower-case hex, version not ff, ids not all zero; version 00 is
 * exactly 55 characters, a later version may go on after a "-". Returns its first 55 characters, the part
 * every version shares, or undefined when it is not valid (or not a string).
 */
export function validTraceparent(tp) {
  if (typeof tp !== 'string' || !TRACEPARENT.test(tp)) return undefined;
  if (tp.startsWith('ff') || (tp.startsWith('00') && tp.length !== 55)) return undefined;
  if (tp.slice(3, 35) === ZERO_TRACE || tp.slice(36, 52) === ZERO_PARENT) return undefined;
  return tp.slice(0, 55);
}

function utf8Length(s) {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) { n += 4; i++; }
    else n += 3;
  }
  return n;
}

class Client {
  constructor(url, options) {
    const o = { ...DEFAULTS, ...options };
    this._WebSocket = o.WebSocket ?? globalThis.WebSocket;
    if (typeof this._WebSocket !== 'function') {
      throw new TypeError('wsactor: no WebSocket constructor; pass options.WebSocket (e.g. the `ws` package in Node 20)');
    }
    const u = new URL(String(url));
    if (u.protocol === 'http:') u.protocol = 'ws:';
    else if (u.protocol === 'https:') u.protocol = 'wss:';
    if (u.protocol !== 'ws:' && u.protocol !== 'wss:') throw new TypeError(`wsactor: unsupported URL scheme ${u.protocol}`);
    this.url = u.toString();

    if (o.reconnect === false) {
      this._reconnect = null;
    } else {
      const r = { ...DEFAULTS.reconnect, ...(o.reconnect ?? {}) };
      positive('reconnect.min', r.min);
      positive('reconnect.max', r.max);
      positive('reconnect.resetAfter', r.resetAfter, true);
      positive('reconnect.retries', r.retries, true);
      if (typeof r.factor !== 'number' || !(r.factor >= 1)) throw new TypeError('wsactor: option reconnect.factor must be >= 1');
      if (r.max < r.min) throw new TypeError('wsactor: option reconnect.max must be >= reconnect.min');
      this._reconnect = r;
    }
    this._queueLimit = positive('queueLimit', o.queueLimit, true);
    this._pingTimeout = o.pingTimeout ? positive('pingTimeout', o.pingTimeout) : 0;
    this._connectTimeout = o.connectTimeout ? positive('connectTimeout', o.connectTimeout) : 0;
    this._maxMessageSize = positive('maxMessageSize', o.maxMessageSize, true);

    this._listeners = new Map(); // event name -> Set<fn>
    this._handler = null; // onRequest handler
    this._pending = new Map(); // requestId -> call (requests we sent or queued)
    this._recent = new Map(); // settled requestIds (insertion-ordered, bounded) -> true
    this._queue = new Set(); // entries {frame?, call?} waiting for an open connection, in order
    this._serving = new Map(); // JSON(requestId) -> Set<AbortController> for incoming requests in progress
    this._conn = null; // current connection record {ws, openedAt, open}
    this._state = 'connecting'; // connecting | open | reconnecting | closed
    this._attempt = 0; // consecutive failed attempts
    this._retryTimer = null;
    this._closedPromise = null;
    this.stats = {
      sent: 0, // requests written to a socket
      answered: 0, // requests resolved with a data response
      remoteErrors: 0, // requests rejected with RemoteError
      timedOut: 0,
      aborted: 0,
      disconnected: 0, // requests rejected with DisconnectedError
      closed: 0, // requests rejected with ClosedError
      queueFull: 0, // sends/requests refused with QueueFullError
      lateReplies: 0, // responses for requests already settled (late or duplicate)
      unknownReplies: 0, // responses for ids never seen (or long forgotten)
      cancelsSent: 0,
      messagesSent: 0, // send() frames written
      messagesReceived: 0, // frames delivered to onMessage
      requestsReceived: 0,
      requestsAnswered: 0, // data responses we sent
      requestErrors: 0, // error responses we sent (handler threw/rejected, no handler, unencodable)
      cancelsReceived: 0,
      pings: 0, // primus::ping received (and pong sent)
      opens: 0,
      reconnects: 0, // reconnect attempts scheduled
      decodeErrors: 0,
    };
    Object.defineProperty(this.stats, 'pending', { enumerable: true, get: () => this._pending.size });
    Object.defineProperty(this.stats, 'queued', { enumerable: true, get: () => this._queue.size });
    this._open();
  }

  /** 'connecting' | 'open' | 'reconnecting' | 'closed' */
  get state() {
    return this._state;
  }

  // ---------------------------------------------------------------- events

  /** Subscribe to 'open' | 'close' | 'reconnecting' | 'error' | 'end' | 'message'. Returns an unsubscribe function. */
  on(event, fn) {
    if (typeof fn !== 'function') throw new TypeError('wsactor: listener must be a function');
    let set = this._listeners.get(event);
    if (!set) this._listeners.set(event, (set = new Set()));
    set.add(fn);
    return () => this.off(event, fn);
  }

  off(event, fn) {
    this._listeners.get(event)?.delete(fn);
  }

  /** Receive every non-envelope, non-control message (JSON value, or ArrayBuffer/Buffer for binary frames). */
  onMessage(fn) {
    return this.on('message', fn);
  }

  /**
   * Set the handler for requests from the peer (null removes it). handler(data, {signal, id, traceparent})
   * may return a value or a Promise; a throw/rejection becomes an error response. signal aborts when
   * the peer cancels, the connection drops, or the client closes; no response is sent then.
   * traceparent is the W3C traceparent the peer sent with the request (a wsactor extension), or
   * undefined when it sent none or an invalid one; pass it to request() to keep a nested request
   * in the same trace.
   */
  onRequest(handler) {
    if (handler !== null && typeof handler !== 'function') throw new TypeError('wsactor: handler must be a function or null');
    this._handler = handler;
  }

  _emit(event, ...args) {
    const set = this._listeners.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(...args);
      } catch (err) {
        if (event !== 'error') this._emit('error', err);
      }
    }
  }

  // ---------------------------------------------------------------- sending

  /** Send a plain message. Throws TypeError (null/undefined/unencodable), RangeError (too large), QueueFullError or ClosedError. */
  send(data) {
    if (this._state === 'closed') throw new ClosedError('wsactor: client is closed');
    const frame = JSON.stringify(data); // may throw TypeError (cycles, BigInt)
    if (frame === undefined || frame === 'null') {
      throw new TypeError('wsactor: refusing to send a top-level null/undefined message (it crashes Primus peers)');
    }
    this._checkSize(frame);
    if (this._canWrite()) {
      this._conn.ws.send(frame);
      this.stats.messagesSent++;
      return;
    }
    if (this._queue.size >= this._queueLimit) {
      this.stats.queueFull++;
      throw new QueueFullError(`wsactor: offline queue full (${this._queueLimit})`);
    }
    this._queue.add({ frame });
  }

  /**
   * Send a request and wait for its response data.
   * @param {*} data any JSON value (undefined: no data key).
   * @param {{timeout?: number, signal?: AbortSignal, traceparent?: string}} [opts] timeout in ms (default 30000;
   *   0 or Infinity: none). traceparent: a W3C traceparent to send with the request (a wsactor extension
   *   that stock Primus peers ignore), e.g. of the caller's span or the one a request handler was given;
   *   an invalid one (see validTraceparent) is not sent.
   * @returns {Promise<*>} rejects with RemoteError, TimeoutError, AbortError, DisconnectedError, ClosedError,
   *   QueueFullError, TypeError (unencodable) or RangeError (too large).
   */
  request(data, { timeout = 30000, signal, traceparent } = {}) {
    return new Promise((resolve, reject) => {
      if (this._state === 'closed') return reject(new ClosedError('wsactor: client is closed'));
      if (signal?.aborted) {
        this.stats.aborted++;
        return reject(new AbortError('wsactor: request aborted', { cause: signal.reason }));
      }
      if (typeof timeout !== 'number' || Number.isNaN(timeout) || timeout < 0) {
        return reject(new TypeError(`wsactor: timeout must be a non-negative number, got ${timeout}`));
      }
      let dataJSON;
      try {
        dataJSON = JSON.stringify(data);
      } catch (err) {
        return reject(new TypeError(`wsactor: request data is not JSON-encodable: ${err.message}`, { cause: err }));
      }
      const id = uuidv4();
      const hasDeadline = timeout > 0 && Number.isFinite(timeout);
      const call = {
        id,
        dataJSON,
        deadline: hasDeadline ? Date.now() + timeout : Infinity,
        resolve,
        reject,
        timer: null,
        signal,
        onAbort: null,
        conn: null, // the connection it was written to
        entry: null, // its queue entry while queued
        traceparent: validTraceparent(traceparent),
      };
      if ((dataJSON?.length ?? 0) * 3 + 200 > this._maxMessageSize) {
        try {
          this._checkSize(this._requestFrame(call));
        } catch (err) {
          return reject(err);
        }
      }
      if (!this._canWrite() && this._queue.size >= this._queueLimit) {
        this.stats.queueFull++;
        return reject(new QueueFullError(`wsactor: offline queue full (${this._queueLimit})`));
      }
      this._pending.set(id, call);
      if (hasDeadline) {
        call.timer = setTimeout(() => this._giveUp(call, new TimeoutError(`wsactor: request timed out after ${timeout} ms`), 'timedOut'), timeout);
      }
      if (signal) {
        call.onAbort = () => this._giveUp(call, new AbortError('wsactor: request aborted', { cause: signal.reason }), 'aborted');
        signal.addEventListener('abort', call.onAbort, { once: true });
      }
      if (this._canWrite()) this._writeRequest(call);
      else this._queue.add((call.entry = { call }));
    });
  }

  _requestFrame(call) {
    let s = `{"plugin":"${PLUGIN}","requestId":${JSON.stringify(call.id)}`;
    if (call.traceparent !== undefined) s += `,"traceparent":"${call.traceparent}"`;
    if (call.dataJSON !== undefined) s += `,"data":${call.dataJSON}`;
    if (call.deadline !== Infinity) s += `,"timeout":${Math.max(1, call.deadline - Date.now())}`;
    return s + '}';
  }

  _writeRequest(call) {
    call.entry = null;
    call.conn = this._conn;
    this._conn.ws.send(this._requestFrame(call));
    this.stats.sent++;
  }

  _checkSize(frame) {
    if (frame.length > this._maxMessageSize || (frame.length * 3 > this._maxMessageSize && utf8Length(frame) > this._maxMessageSize)) {
      throw new RangeError(`wsactor: message larger than maxMessageSize (${this._maxMessageSize} bytes)`);
    }
  }

  _canWrite() {
    return this._state === 'open' && this._conn !== null && this._conn.ws.readyState === OPEN;
  }

  // Settle a call once; returns false when it was already settled.
  _settle(call) {
    if (this._pending.get(call.id) !== call) return false;
    this._pending.delete(call.id);
    this._recent.set(call.id, true);
    if (this._recent.size > RECENT_LIMIT) this._recent.delete(this._recent.keys().next().value);
    if (call.timer !== null) clearTimeout(call.timer);
    if (call.onAbort) call.signal.removeEventListener('abort', call.onAbort);
    if (call.entry) this._queue.delete(call.entry);
    return true;
  }

  // Timeout or abort: settle, and tell the peer if the request reached it on the current connection.
  _giveUp(call, err, stat) {
    const wasQueued = call.entry !== null;
    if (!this._settle(call)) return;
    this.stats[stat]++;
    if (!wasQueued && call.conn !== null && call.conn === this._conn && this._canWrite()) {
      this._conn.ws.send(`{"plugin":"${PLUGIN}","cancelId":${JSON.stringify(call.id)}}`);
      this.stats.cancelsSent++;
    }
    call.reject(err);
  }

  // ---------------------------------------------------------------- connection lifecycle

  _open() {
    let ws;
    try {
      ws = new this._WebSocket(this.url);
    } catch (err) {
      this._emit('error', err);
      this._lost(null, { code: 0, reason: String(err.message) }, 'connect failed');
      return;
    }
    const conn = { ws, open: false, openedAt: 0, pingTimer: null, connectTimer: null, serverClose: false, done: false };
    this._conn = conn;
    try {
      ws.binaryType = 'arraybuffer';
    } catch {
      // not every implementation lets it be set; binary frames then arrive in its default type
    }
    if (this._connectTimeout) {
      conn.connectTimer = setTimeout(() => this._kill(conn, 'connect timeout'), this._connectTimeout);
    }
    ws.addEventListener('open', () => this._onOpen(conn));
    ws.addEventListener('message', (ev) => this._onFrame(conn, ev.data));
    ws.addEventListener('error', (ev) => {
      if (conn !== this._conn) return;
      this._emit('error', ev?.error instanceof Error ? ev.error : new WsactorError(`wsactor: WebSocket error${ev?.message ? ': ' + ev.message : ''}`));
    });
    ws.addEventListener('close', (ev) => this._lost(conn, { code: ev?.code ?? 0, reason: ev?.reason ?? '' }, conn.serverClose ? 'server close' : 'closed'));
  }

  _onOpen(conn) {
    if (conn !== this._conn || conn.done) return;
    clearTimeout(conn.connectTimer);
    conn.open = true;
    conn.openedAt = Date.now();
    this._state = 'open';
    this.stats.opens++;
    this._armPing(conn);
    // Flush the offline queue in order; entries added while flushing (from listeners) keep their order.
    for (const entry of this._queue) {
      if (!this._canWrite()) break;
      this._queue.delete(entry);
      if (entry.call) this._writeRequest(entry.call);
      else {
        conn.ws.send(entry.frame);
        this.stats.messagesSent++;
      }
    }
    if (this._state === 'open') this._emit('open');
  }

  _armPing(conn) {
    if (!this._pingTimeout) return;
    clearTimeout(conn.pingTimer);
    conn.pingTimer = setTimeout(() => this._kill(conn, 'ping timeout'), this._pingTimeout);
  }

  // Abandon a connection we consider dead without waiting for its close event.
  _kill(conn, reason) {
    if (conn !== this._conn || conn.done) return;
    const ws = conn.ws;
    this._lost(conn, { code: 0, reason }, reason);
    try {
      if (typeof ws.terminate === 'function') ws.terminate();
      else ws.close();
    } catch {
      // already closing
    }
  }

  // The current connection is gone (close event, ping/connect timeout, or constructor failure).
  _lost(conn, info, reason) {
    if (conn !== null) {
      if (conn !== this._conn || conn.done) return;
      conn.done = true;
      clearTimeout(conn.pingTimer);
      clearTimeout(conn.connectTimer);
    }
    this._conn = null;
    if (this._state === 'closed') return; // close() already did the bookkeeping
    const wasOpen = conn?.open ?? false;
    const serverEnd = conn?.serverClose ?? false;
    const permanent = serverEnd || this._reconnect === null;
    this._abortServing(permanent ? new ClosedError('wsactor: connection ended') : new DisconnectedError('wsactor: connection lost'));
    if (wasOpen) {
      // Requests on the wire are lost with the connection; queued ones wait for the next.
      for (const call of [...this._pending.values()]) {
        if (call.conn !== conn || call.entry !== null) continue;
        if (!this._settle(call)) continue;
        if (permanent) {
          this.stats.closed++;
          call.reject(new ClosedError(serverEnd ? 'wsactor: server ended the session' : 'wsactor: connection closed'));
        } else {
          this.stats.disconnected++;
          call.reject(new DisconnectedError(`wsactor: connection lost (${reason})`));
        }
      }
      if (Date.now() - conn.openedAt >= (this._reconnect?.resetAfter ?? 0)) this._attempt = 0;
    }
    if (permanent) {
      this._finish(new ClosedError(serverEnd ? 'wsactor: server ended the session' : 'wsactor: connection closed'));
      if (wasOpen) this._emit('close', { ...info, reason, willReconnect: false });
      this._emit('end', { reason });
      return;
    }
    this._attempt++;
    if (this._attempt > this._reconnect.retries) {
      this._finish(new ClosedError('wsactor: reconnect retries exhausted'));
      if (wasOpen) this._emit('close', { ...info, reason, willReconnect: false });
      this._emit('error', new ClosedError('wsactor: reconnect retries exhausted'));
      this._emit('end', { reason: 'retries exhausted' });
      return;
    }
    const r = this._reconnect;
    const ceiling = Math.min(r.max, r.min * Math.pow(r.factor, this._attempt - 1));
    const delay = Math.round(Math.random() * ceiling); // full jitter
    this._state = 'reconnecting';
    this.stats.reconnects++;
    if (wasOpen) this._emit('close', { ...info, reason, willReconnect: true });
    if (this._state !== 'reconnecting') return; // a listener called close()
    this._emit('reconnecting', { attempt: this._attempt, delay, reason });
    if (this._state !== 'reconnecting') return;
    this._retryTimer = setTimeout(() => {
      this._retryTimer = null;
      if (this._state !== 'reconnecting') return;
      this._state = 'connecting';
      this._open();
    }, delay);
  }

  _abortServing(reason) {
    const all = [...this._serving.values()];
    this._serving.clear();
    for (const set of all) for (const ac of set) ac.abort(reason);
  }

  // Permanently closed: fail everything still waiting.
  _finish(err) {
    this._state = 'closed';
    clearTimeout(this._retryTimer);
    this._retryTimer = null;
    this._queue.clear();
    for (const call of [...this._pending.values()]) {
      if (!this._settle(call)) continue;
      this.stats.closed++;
      call.reject(err);
    }
    this._abortServing(err);
  }

  /** Close for good (no reconnect). Pending and queued requests reject with ClosedError. Resolves when the socket has closed. */
  close() {
    if (this._closedPromise) return this._closedPromise;
    const conn = this._conn;
    const wasOpen = this._state === 'open';
    this._finish(new ClosedError('wsactor: client closed'));
    this._closedPromise = new Promise((resolve) => {
      if (!conn || conn.done) return resolve();
      conn.done = true;
      clearTimeout(conn.pingTimer);
      clearTimeout(conn.connectTimer);
      const ws = conn.ws;
      if (ws.readyState === 3) return resolve();
      ws.addEventListener('close', () => resolve());
      try {
        ws.close();
      } catch {
        resolve();
      }
    });
    this._conn = null;
    if (wasOpen) this._emit('close', { code: 0, reason: 'client close', willReconnect: false });
    this._emit('end', { reason: 'client close' });
    return this._closedPromise;
  }

  // ---------------------------------------------------------------- receiving

  _onFrame(conn, raw) {
    if (conn !== this._conn || conn.done) return;
    if (typeof raw !== 'string') {
      this.stats.messagesReceived++;
      this._emit('message', raw);
      return;
    }
    let msg;
    try {
      msg = JSON.parse(raw);
    } catch (err) {
      this.stats.decodeErrors++;
      this._emit('error', new WsactorError('wsactor: invalid JSON frame', { cause: err }));
      return;
    }
    if (typeof msg === 'string' && msg.startsWith('primus::')) {
      if (msg.startsWith(PING)) {
        this.stats.pings++;
        this._armPing(conn);
        if (conn.ws.readyState === OPEN) conn.ws.send(JSON.stringify('primus::pong::' + msg.slice(PING.length)));
        return;
      }
      if (msg === SERVER_CLOSE) {
        conn.serverClose = true;
        return;
      }
      if (msg.startsWith('primus::id::')) return; // spark id reply; we never ask
      // other primus:: strings are ordinary data, as in Primus
    }
    if (msg !== null && typeof msg === 'object' && msg.plugin === PLUGIN) {
      if (msg.requestId) this._onRequest(conn, msg);
      else if (msg.responseId) this._onResponse(msg);
      else if (msg.cancelId) this._onCancel(msg);
      return;
    }
    this.stats.messagesReceived++;
    this._emit('message', msg);
  }

  _onResponse(msg) {
    const id = msg.responseId;
    const call = typeof id === 'string' ? this._pending.get(id) : undefined;
    if (!call) {
      if (typeof id === 'string' && this._recent.has(id)) this.stats.lateReplies++;
      else this.stats.unknownReplies++;
      return;
    }
    this._settle(call);
    const e = msg.error;
    if (e !== undefined && e !== null && typeof e === 'object') {
      this.stats.remoteErrors++;
      call.reject(new RemoteError(e.code ?? 'error', e.message ?? ''));
      return;
    }
    this.stats.answered++;
    call.resolve(msg.data);
  }

  _onCancel(msg) {
    this.stats.cancelsReceived++;
    const set = this._serving.get(JSON.stringify(msg.cancelId));
    if (!set) return;
    for (const ac of set) ac.abort(new AbortError('wsactor: request cancelled by peer'));
  }

  _onRequest(conn, msg) {
    this.stats.requestsReceived++;
    const id = msg.requestId;
    const handler = this._handler;
    if (!handler) {
      this._respond(conn, id, undefined, { code: 'no_handler', message: 'no request handler' });
      return;
    }
    const key = JSON.stringify(id);
    const ac = new AbortController();
    let set = this._serving.get(key);
    if (!set) this._serving.set(key, (set = new Set()));
    set.add(ac);
    const done = () => {
      const s = this._serving.get(key);
      if (s) {
        s.delete(ac);
        if (s.size === 0) this._serving.delete(key);
      }
      return !ac.signal.aborted && conn === this._conn && !conn.done;
    };
    let result;
    try {
      result = handler(msg.data, { signal: ac.signal, id, traceparent: validTraceparent(msg.traceparent) });
    } catch (err) {
      if (done()) this._respond(conn, id, undefined, errorBody(err));
      return;
    }
    if (result === null || (typeof result !== 'object' && typeof result !== 'function') || typeof result.then !== 'function') {
      if (done()) this._respond(conn, id, result);
      return;
    }
    Promise.resolve(result).then(
      (value) => {
        if (done()) this._respond(conn, id, value);
      },
      (err) => {
        if (done()) this._respond(conn, id, undefined, errorBody(err));
      },
    );
  }

  _respond(conn, id, value, error) {
    const head = `{"plugin":"${PLUGIN}","responseId":${JSON.stringify(id)}`;
    let frame;
    if (error) {
      frame = `${head},"error":${JSON.stringify(error)}}`;
    } else {
      let dataJSON;
      try {
        dataJSON = JSON.stringify(value);
      } catch (err) {
        return this._respond(conn, id, undefined, { code: 'encode', message: `response not JSON-encodable: ${err.message}` });
      }
      frame = dataJSON === undefined ? head + '}' : `${head},"data":${dataJSON}}`;
    }
    try {
      this._checkSize(frame);
    } catch (err) {
      return this._respond(conn, id, undefined, { code: 'too_large', message: err.message });
    }
    if (conn.ws.readyState !== OPEN) return;
    conn.ws.send(frame);
    if (error) this.stats.requestErrors++;
    else this.stats.requestsAnswered++;
  }
}

function errorBody(err) {
  if (err instanceof RemoteError) return { code: err.code, message: err.message };
  const message = err !== null && typeof err === 'object' && 'message' in err ? err.message : err;
  return { code: 'error', message: String(message) };
}
