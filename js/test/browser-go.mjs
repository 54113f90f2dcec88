#!/usr/bin/env node
// Open pages in headless Chromium and print what they compute.
//
//   node test/browser-go.mjs <url> [<url> ...] [--timeout-ms 30000]
//
// Each page must set window.result (any JSON value). For each URL, in order, it prints one line
//   {"event":"page","url":...,"mode":<the url's ?mode= or "">,"result":...,"console":["type: text", ...]}
// (console includes page errors and Chromium's own log entries, e.g. a refused WebSocket
// handshake), then {"event":"done"}, closes the browser and exits 0; on a failure it prints
// {"event":"fail","message":...} and exits 1. Used by TestBrowserAgainstGoServer (interop_test.go).
// Chromium: $CHROMIUM_PATH or /usr/bin/chromium (js/install-test-deps.sh installs it).
import { parseArgs } from 'node:util';
import { launch } from './chromium.mjs';

const { values: args, positionals: urls } = parseArgs({
  allowPositionals: true,
  options: { 'timeout-ms': { type: 'string', default: '30000' } },
});
const timeout = Number(args['timeout-ms']);

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

async function run() {
  if (urls.length === 0) throw new Error('usage: browser-go.mjs <url> [<url> ...]');
  const browser = await launch();
  try {
    for (const url of urls) {
      const page = await browser.context.newPage();
      const logs = [];
      page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
      page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
      await page.goto(url);
      const handle = await page.waitForFunction(() => window.result, null, { timeout });
      const result = await handle.jsonValue();
      out({ event: 'page', url, mode: new URL(url).searchParams.get('mode') ?? '', result, console: logs });
      await page.close();
    }
  } finally {
    await browser.close();
  }
}

try {
  await run();
  out({ event: 'done' });
  process.exit(0);
} catch (err) {
  out({ event: 'fail', message: String(err?.stack ?? err) });
  process.exit(1);
}
