#!/usr/bin/env node
// A stock Primus 8.0.9 + primus-responder 1.0.4 server for interop tests.
//
//   node interop/primus-server.mjs [--port 0] [--host 127.0.0.1] [--ping-interval 30000]
//        [--drop-after-ms 0] [--log-requests] [--ignore-stdin] [--compression]
//
// --compression: Primus's compression option (ws's perMessageDeflate: it accepts a client's
// permessage-deflate offer and compresses messages of 1 KiB or more).
//
// stdout: one JSON object per line ({"event":...}); the first is {"event":"listening","port":N}.
// stdin:  one command per line (each acknowledged with {"event":"ack","cmd":...,"count":K}):
//   drop [sparkId]   spark.end(undefined,{reconnect:true})  (clients reconnect)
//   end [sparkId]    spark.end()  ("primus::server::close": clients do not reconnect)
//   ask [sparkId]    spark.writeAndWait({op:'hello',n}) to each client (ack lists the n values);
//                    each reply is printed as {"event":"answer","id":sparkId,"n":n,"data":reply}
//   push <json>      spark.write(<json>) to every client (refuses null)
//   quit             destroy and exit 0
// Exits 0 on SIGTERM/SIGINT, on "quit", and when stdin closes (unless --ignore-stdin).
//
// Request ops (data of a client's writeAndWait):
//   {op:'add',a,b} -> a+b          {op:'echo',...} -> data          {op:'nodata'} -> done() (no data key)
//   {op:'null'} -> done(null)      {op:'ask'} -> the server asks the client {op:'hello',n} and answers with its reply
//   {op:'sleep',ms,value} -> value (or data) after ms, even if the requester cancelled (stock behaviour)
//   {op:'never'} -> no answer      {op:'push',data} -> spark.write(data), then true
//   {op:'drop'} / {op:'end'} -> closes this connection without answering (as the stdin commands)
//   {op:'fail',code,message} -> wsactor error response {responseId,error:{code,message}} (extension, written raw)
//   anything else -> the data back
import http from 'node:http';
import readline from 'node:readline';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

const require = createRequire(import.meta.url);
const Primus = require('primus');
const responder = require('primus-responder');

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
    'ping-interval': { type: 'string', default: '30000' },
    'drop-after-ms': { type: 'string', default: '0' },
    'log-requests': { type: 'boolean', default: false },
    'ignore-stdin': { type: 'boolean', default: false },
    compression: { type: 'boolean', default: false },
  },
});

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function num(name) {
  const v = Number(args[name]);
  if (!Number.isFinite(v) || v < 0) {
    process.stderr.write(`primus-server: --${name} must be a non-negative number\n`);
    process.exit(2);
  }
  return v;
}

const pingInterval = num('ping-interval');
const dropAfter = num('drop-after-ms');
const server = http.createServer();
const primus = new Primus(server, {
  transformer: 'websockets',
  pingInterval: pingInterval > 0 ? pingInterval : false,
  compression: args.compression,
});
const sparks = new Map(); // id -> spark
let askCounter = 0;

// Runs before primus-responder's own incoming transformer (registered below): it remembers the
// requestId being dispatched (needed for 'fail') and reports wsactor extension envelopes that the
// stock plugin swallows (cancelId) or ignores (timeout).
primus.transform('incoming', function observe(packet) {
  const d = packet.data;
  if (d !== null && typeof d === 'object' && d.plugin === 'primus-responder') {
    if (d.requestId) {
      this.currentRequestId = d.requestId;
      if (args['log-requests']) out({ event: 'request', id: this.id, requestId: d.requestId, timeout: d.timeout, data: d.data });
    } else if (d.cancelId) {
      out({ event: 'cancel', id: this.id, cancelId: d.cancelId });
    } else if (d.responseId && d.error) {
      out({ event: 'error-response', id: this.id, responseId: d.responseId, error: d.error });
    }
  }
  return true;
});
primus.plugin('responder', responder);

function drop(spark) {
  spark.end(undefined, { reconnect: true });
}

// Sends {op:'hello',n} to the client; returns {n, answer: Promise}. Prints {"event":"answer",id,n,data}.
function ask(spark) {
  const n = ++askCounter;
  const answer = new Promise((resolve) => {
    spark.writeAndWait({ op: 'hello', n }, (reply) => {
      // objects decoded in the Node client come from a vm context; a JSON round trip normalises them
      const data = reply === undefined ? undefined : JSON.parse(JSON.stringify(reply));
      out({ event: 'answer', id: spark.id, n, data });
      resolve(data);
    });
  });
  return { n, answer };
}

function handle(spark, data, done) {
  const op = data !== null && typeof data === 'object' ? data.op : undefined;
  switch (op) {
    case 'add':
      return done(data.a + data.b);
    case 'echo':
      return done(data);
    case 'nodata':
      return done();
    case 'null':
      return done(null);
    case 'ask':
      return void ask(spark).answer.then(done);
    case 'sleep':
      return void setTimeout(() => done('value' in data ? data.value : data), Number(data.ms) || 0);
    case 'never':
      return undefined;
    case 'push':
      if (data.data !== null && data.data !== undefined) spark.write(data.data);
      return done(true);
    case 'drop':
      return drop(spark);
    case 'end':
      return spark.end();
    case 'fail':
      return spark.write({
        plugin: 'primus-responder',
        responseId: spark.currentRequestId,
        error: { code: String(data.code ?? 'error'), message: String(data.message ?? '') },
      });
    default:
      return done(data);
  }
}

primus.on('connection', (spark) => {
  sparks.set(spark.id, spark);
  out({ event: 'connection', id: spark.id, query: spark.query });
  spark.on('request', (data, done) => handle(spark, data, done));
  spark.on('data', (data) => out({ event: 'data', id: spark.id, data }));
  spark.on('heartbeat', () => out({ event: 'heartbeat', id: spark.id }));
  spark.on('error', (err) => out({ event: 'error', id: spark.id, message: String(err?.message ?? err) }));
  if (dropAfter > 0) {
    const t = setTimeout(() => {
      out({ event: 'dropped', id: spark.id });
      drop(spark);
    }, dropAfter);
    spark.on('end', () => clearTimeout(t));
  }
});
primus.on('disconnection', (spark) => {
  sparks.delete(spark.id);
  out({ event: 'disconnection', id: spark.id });
});

let exiting = false;
function shutdown(reason) {
  if (exiting) return;
  exiting = true;
  out({ event: 'exit', reason });
  // Close every spark ("primus::server::close": clients do not reconnect) and the HTTP server.
  primus.destroy({ timeout: 0 }, () => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

function targets(id) {
  if (!id) return [...sparks.values()];
  const s = sparks.get(id);
  return s ? [s] : [];
}

function command(line) {
  const text = line.trim();
  if (!text) return;
  const sp = text.indexOf(' ');
  const cmd = sp < 0 ? text : text.slice(0, sp);
  const rest = sp < 0 ? '' : text.slice(sp + 1).trim();
  switch (cmd) {
    case 'drop':
    case 'end': {
      const list = targets(rest);
      for (const s of list) (cmd === 'drop' ? drop(s) : s.end());
      return out({ event: 'ack', cmd, count: list.length });
    }
    case 'ask': {
      const list = targets(rest);
      const n = list.map((s) => ask(s).n);
      return out({ event: 'ack', cmd, count: list.length, n });
    }
    case 'push': {
      let value;
      try {
        value = JSON.parse(rest);
      } catch (err) {
        return out({ event: 'ack', cmd, error: `bad JSON: ${err.message}` });
      }
      if (value === null) return out({ event: 'ack', cmd, error: 'refusing to push null (it crashes Primus clients)' });
      const list = targets('');
      for (const s of list) s.write(value);
      return out({ event: 'ack', cmd, count: list.length });
    }
    case 'quit':
      out({ event: 'ack', cmd, count: 0 });
      return shutdown('quit');
    default:
      return out({ event: 'ack', cmd, error: 'unknown command' });
  }
}

if (!args['ignore-stdin']) {
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', command);
  rl.on('close', () => shutdown('stdin closed'));
}

server.listen(Number(args.port), args.host, () => {
  out({ event: 'listening', port: server.address().port, pingInterval: pingInterval > 0 ? pingInterval : false });
});
