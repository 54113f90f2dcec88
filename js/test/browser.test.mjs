// Playwright smoke test: a page served on 127.0.0.1 imports wsactor.js (browser WebSocket, no
// injection) and talks to the stock Primus server. Needs /usr/bin/chromium (see install-test-deps.sh).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { chromium } from 'playwright-core';
import { JS_DIR, startServer } from './helpers.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>wsactor smoke</title>
<script type="module">
import { connect, RemoteError } from './wsactor.js';
const port = new URLSearchParams(location.search).get('port');
const c = connect('ws://127.0.0.1:' + port + '/primus', { reconnect: { min: 50, max: 200 } });
c.onRequest((data) => ({ ...data, from: 'browser' }));
try {
  const t0 = performance.now();
  const sum = await c.request({ op: 'add', a: 2, b: 3 }, { timeout: 5000 });
  const ask = await c.request({ op: 'ask' });
  let remote = null;
  try {
    await c.request({ op: 'fail', code: 'bad', message: 'went wrong' });
  } catch (e) {
    remote = { name: e.name, code: e.code, message: e.message, isRemote: e instanceof RemoteError };
  }
  const t1 = performance.now();
  const many = await Promise.all(Array.from({ length: 1000 }, (_, i) => c.request({ op: 'add', a: i, b: i })));
  const ms = performance.now() - t0;
  const batchMs = performance.now() - t1;
  // wait (up to 5 s) for a server ping, answered with a pong
  for (let i = 0; i < 100 && c.stats.pings === 0; i++) await new Promise((r) => setTimeout(r, 50));
  window.result = { sum, ask, remote, manyOk: many.every((v, i) => v === 2 * i), ms, batchMs, stats: { ...c.stats }, secure: isSecureContext };
  await c.close();
} catch (e) {
  window.result = { error: String(e && e.stack || e) };
}
</script>`;

test('browser: wsactor.js in Chromium against the stock Primus server', { timeout: 60000 }, async (t) => {
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: run js/install-test-deps.sh`);
  const primus = await startServer(['--ping-interval', '400']);
  const web = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://127.0.0.1');
    if (u.pathname === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      return res.end(PAGE);
    }
    if (u.pathname === '/wsactor.js') {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' });
      return res.end(fs.readFileSync(path.join(JS_DIR, 'wsactor.js')));
    }
    res.writeHead(u.pathname === '/favicon.ico' ? 204 : 404).end();
  });
  await new Promise((r) => web.listen(0, '127.0.0.1', r));
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsactor-chromium-'));
  let context;
  try {
    const t0 = performance.now();
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    const page = context.pages()[0] ?? (await context.newPage());
    const logs = [];
    page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
    await page.goto(`http://127.0.0.1:${web.address().port}/?port=${primus.port}`);
    const handle = await page.waitForFunction(() => window.result, null, { timeout: 20000 });
    const r = await handle.jsonValue();
    t.diagnostic(`browser launch+page+requests: ${(performance.now() - t0).toFixed(0)} ms; 3 requests + 1000 concurrent in page: ${r.ms?.toFixed(1)} ms (the 1000: ${r.batchMs?.toFixed(1)} ms)`);
    assert.equal(r.error, undefined, `page failed: ${r.error}\n${logs.join('\n')}`);
    assert.equal(r.secure, true, 'http://127.0.0.1 is a secure context (crypto.randomUUID available)');
    assert.equal(r.sum, 5);
    assert.equal(r.ask.op, 'hello');
    assert.equal(r.ask.from, 'browser');
    assert.deepEqual(r.remote, { name: 'RemoteError', code: 'bad', message: 'went wrong', isRemote: true });
    assert.equal(r.manyOk, true);
    assert.equal(r.stats.answered, 1002);
    assert.ok(r.stats.pings >= 1, `pings answered: ${r.stats.pings}`);
    // the server saw a browser connection (with an Origin) and pongs from it
    // (waited for: the page may have answered a ping whose 'heartbeat' line
    // the server process has not printed yet)
    await primus.waitEvent((e) => e.event === 'heartbeat', 5000, 'a heartbeat from the browser');
  } finally {
    await context?.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
    await new Promise((r) => web.close(r));
    await primus.stop();
  }
});
