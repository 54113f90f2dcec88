#!/usr/bin/env node
// A stock Node Primus 8.0.9 client (primus-responder 1.0.4) with permessage-deflate, for the
// compression interop test (TestPrimusClientCompression, compress_interop_test.go).
//
//   node interop/primus-deflate-client.mjs --url ws://127.0.0.1:PORT/primus [--n 20] [--bytes 8000]
//
// The client's ws offers permessage-deflate (ws's default for clients: "permessage-deflate;
// client_max_window_bits"), with a threshold of 0 so every message may be compressed. After the
// open it sends --n requests {op:'echo',text} with a --bytes text each, one after the other, and
// checks each reply's text; it answers a server request {op:'hello',text} with
// {op:'hello',from:'node',text} (the text back).
//
// stdout: one JSON object per line:
//   {"event":"open","extensions":<the negotiated Sec-WebSocket-Extensions>}
//   {"event":"request","bytes":N}      a server request it answered
//   {"event":"result","sent":N,"matched":M}
// It exits 0 when stdin closes (after an end()), 1 on an error.
import { createRequire } from 'node:module';
import readline from 'node:readline';
import { parseArgs } from 'node:util';

const require = createRequire(import.meta.url);
const Primus = require('primus');
const responder = require('primus-responder');

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    n: { type: 'string', default: '20' },
    bytes: { type: 'string', default: '8000' },
  },
});

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function text(n, tag) {
  let s = '';
  for (let i = 0; s.length < n; i++) s += `${tag}: player ${i % 17} at x=${i % 101} y=${i % 37}; `;
  return s.slice(0, n);
}

const n = Number(args.n);
const bytes = Number(args.bytes);
const Socket = Primus.createSocket({ transformer: 'websockets', plugin: { responder } });
const client = new Socket(args.url, {
  pingTimeout: false,
  reconnect: { retries: 0 },
  transport: { perMessageDeflate: { threshold: 0 } },
});

client.on('request', (data, done) => {
  const d = JSON.parse(JSON.stringify(data));
  out({ event: 'request', bytes: typeof d?.text === 'string' ? d.text.length : 0 });
  done({ op: 'hello', from: 'node', text: d?.text });
});
client.on('error', (err) => {
  out({ event: 'error', message: String(err?.message ?? err) });
  process.exit(1);
});

client.once('open', async () => {
  out({ event: 'open', extensions: client.socket?.extensions ?? '' });
  let matched = 0;
  for (let i = 0; i < n; i++) {
    const want = text(bytes, `request ${i}`);
    const got = await new Promise((resolve) => client.writeAndWait({ op: 'echo', text: want }, resolve));
    if (got && got.text === want) matched++;
  }
  out({ event: 'result', sent: n, matched });
});

const rl = readline.createInterface({ input: process.stdin });
rl.on('close', () => {
  client.end();
  setTimeout(() => process.exit(0), 50);
});
