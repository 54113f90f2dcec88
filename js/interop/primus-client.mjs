#!/usr/bin/env node
// A stock Node Primus 8.0.9 client with primus-responder 1.0.4, for interop tests.
//
//   node interop/primus-client.mjs --url ws://127.0.0.1:PORT/primus [--n 100] [--stay-ms 0]
//        [--timeout-ms 10000] [--ping-timeout 0] [--ignore-stdin]
//
// It answers server requests ({op:'hello',n} -> {op:'hello',n,from:'node'}, anything else -> the data
// back), and after the first open fires --n concurrent writeAndWait({op:'add',a:i,b:i}) calls and checks
// each answer equals 2i. Then it stays connected for --stay-ms (heartbeat tests), calls end() and exits.
//
// stdout: one JSON object per line:
//   {"event":"open"}  {"event":"request","data":...}  {"event":"pong","count":K}
//   {"event":"reconnect","attempt":A,"scheduled":ms}  {"event":"reconnected"}  {"event":"close"}  {"event":"end"}
//   {"event":"result","sent":N,"matched":M,"wrong":W,"missing":X,"ms":T}
//   {"event":"exit","code":C,"pongs":K,"opens":O,"reconnects":R}
// Exit code 0 when every answer matched (or --n 0), 1 otherwise; 0 on SIGTERM/SIGINT and when stdin
// closes (unless --ignore-stdin), 2 on bad arguments.
//
// Note: Primus clients ignore the URL path; they always use the library's pathname, /primus.
import { createRequire } from 'node:module';
import readline from 'node:readline';
import { parseArgs } from 'node:util';

const require = createRequire(import.meta.url);
const Primus = require('primus');
const responder = require('primus-responder');

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    n: { type: 'string', default: '100' },
    'stay-ms': { type: 'string', default: '0' },
    'timeout-ms': { type: 'string', default: '10000' },
    'ping-timeout': { type: 'string', default: '0' },
    'ignore-stdin': { type: 'boolean', default: false },
  },
});

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function num(name) {
  const v = Number(args[name]);
  if (!Number.isInteger(v) || v < 0) {
    process.stderr.write(`primus-client: --${name} must be a non-negative integer\n`);
    process.exit(2);
  }
  return v;
}

if (!args.url) {
  process.stderr.write('primus-client: --url is required (e.g. ws://127.0.0.1:8080/primus)\n');
  process.exit(2);
}
const n = num('n');
const stayMs = num('stay-ms');
const timeoutMs = num('timeout-ms');
const pingTimeout = num('ping-timeout');

const Socket = Primus.createSocket({ transformer: 'websockets', plugin: { responder } });
const client = new Socket(args.url, { pingTimeout: pingTimeout > 0 ? pingTimeout : false });

let pongs = 0;
let opens = 0;
let reconnects = 0;
let finished = false;
let batchStarted = false;
let result = null;

function finish(code, reason) {
  if (finished) return;
  finished = true;
  try {
    client.end();
  } catch {
    // already ended
  }
  out({ event: 'exit', code, reason, pongs, opens, reconnects });
  // let stdout drain and the close frame go out
  setTimeout(() => process.exit(code), 50);
}

client.on('request', (data, done) => {
  // decoded objects come from a vm context; normalise with a JSON round trip
  const d = data === undefined ? undefined : JSON.parse(JSON.stringify(data));
  out({ event: 'request', data: d });
  if (d !== null && typeof d === 'object' && d.op === 'hello') done({ op: 'hello', n: d.n, from: 'node' });
  else done(d);
});
client.on('data', (data) => out({ event: 'data', data }));
client.on('outgoing::pong', () => {
  pongs++;
  out({ event: 'pong', count: pongs });
});
client.on('reconnect scheduled', (opts) => {
  reconnects++;
  out({ event: 'reconnect', attempt: opts.attempt, scheduled: opts.scheduled });
});
client.on('reconnected', () => out({ event: 'reconnected' }));
client.on('close', () => out({ event: 'close' }));
client.on('error', (err) => out({ event: 'error', message: String(err?.message ?? err) }));
client.on('end', () => {
  out({ event: 'end' });
  if (finished) return;
  if (!result && batchStarted) report(true);
  finish(result && result.matched !== result.sent ? 1 : 0, 'end');
});
client.on('open', () => {
  opens++;
  out({ event: 'open' });
  if (!batchStarted) {
    batchStarted = true;
    runBatch();
  }
});

let matched = 0;
let wrong = 0;
let t0 = 0;
let timer = null;

function report(timedOut) {
  if (result) return;
  clearTimeout(timer);
  result = { event: 'result', sent: n, matched, wrong, missing: n - matched - wrong, ms: Math.round(performance.now() - t0) };
  if (timedOut) result.timedOut = true;
  out(result);
}

function runBatch() {
  t0 = performance.now();
  if (n === 0) {
    report(false);
    return afterBatch();
  }
  let settled = 0;
  timer = setTimeout(() => {
    report(true);
    finish(1, 'timeout');
  }, timeoutMs);
  for (let i = 0; i < n; i++) {
    client.writeAndWait({ op: 'add', a: i, b: i }, (answer) => {
      if (result) return;
      if (answer === 2 * i) matched++;
      else wrong++;
      if (++settled === n) {
        report(false);
        afterBatch();
      }
    });
  }
}

function afterBatch() {
  const code = matched === n ? 0 : 1;
  if (stayMs > 0) setTimeout(() => finish(code, 'done'), stayMs);
  else finish(code, 'done');
}

process.on('SIGTERM', () => finish(0, 'SIGTERM'));
process.on('SIGINT', () => finish(0, 'SIGINT'));
if (!args['ignore-stdin']) {
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('close', () => finish(0, 'stdin closed'));
}
