#!/usr/bin/env node
// Drive the chat demo (examples/chat) in two tabs of headless Chromium.
//
//   node test/chat-demo.mjs <url> <screenshot.png> [--away NAME] [--url-b URL] [--rooms] [--timeout-ms 20000]
//
// Tab A joins as "alice"; tab B first tries "Alice" (refused: the name is taken, the page shows the
// server's RemoteError), then joins as "bob". They exchange two messages and each tab waits until
// it shows both. With --away NAME it also waits until both tabs show NAME as away (a member who
// does not answer the server's presence checks) while alice and bob are shown online. With --url-b
// tab B opens that URL (another node of the same chat). With --rooms alice then switches to #go and
// says something there, bob (still in #lobby) says something too, and only then switches to #go,
// where the history shows alice's line and the user list both of them. Then it
// takes a screenshot of tab A and prints one line
//   {"event":"result","joinError":{code,text},"a":{me,state,messages,users},"b":{...},"screenshot":path}
// and exits 0; on failure {"event":"fail","message":...} and exit 1. Used by examples/chat/chat_test.go.
import { parseArgs } from 'node:util';
import { launch } from './chromium.mjs';

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    away: { type: 'string' },
    'url-b': { type: 'string' },
    rooms: { type: 'boolean', default: false },
    'timeout-ms': { type: 'string', default: '20000' },
  },
});
const [url, screenshot] = positionals;
const timeout = Number(args['timeout-ms']);

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

async function open(context, logs, tag, url) {
  const page = await context.newPage();
  await page.setViewportSize({ width: 1100, height: 700 });
  page.setDefaultTimeout(timeout);
  page.on('console', (m) => logs.push(`${tag} ${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`${tag} pageerror: ${e.message}`));
  await page.goto(url);
  await page.waitForSelector('body[data-state="online"]');
  return page;
}

async function join(page, name) {
  await page.fill('#name', name);
  await page.click('#join-btn');
}

async function say(page, text) {
  await page.fill('#text', text);
  await page.press('#text', 'Enter');
}

function sees(page, text) {
  return page.locator('#messages li.msg .text', { hasText: text }).waitFor();
}

function read(page) {
  return page.evaluate(() => ({
    me: document.getElementById('me').textContent,
    room: document.querySelector('#rooms button.current')?.dataset.room ?? '',
    state: document.body.dataset.state,
    messages: [...document.querySelectorAll('#messages li')].map((li) => ({
      from: li.dataset.from ?? '',
      text: li.querySelector('.text')?.textContent ?? '',
      system: li.classList.contains('system'),
    })),
    users: [...document.querySelectorAll('#users li')].map((li) => ({ name: li.dataset.name, away: li.classList.contains('away') })),
  }));
}

async function run() {
  if (!url || !screenshot) throw new Error('usage: chat-demo.mjs <url> <screenshot.png> [--away NAME]');
  const browser = await launch();
  const logs = [];
  try {
    const a = await open(browser.context, logs, 'A', url);
    const b = await open(browser.context, logs, 'B', args['url-b'] ?? url);

    await join(a, 'alice');
    await a.waitForSelector('body[data-state="joined"]');

    await join(b, 'Alice'); // taken (names are case-insensitive)
    await b.waitForSelector('#join-error:not([hidden])');
    const joinError = await b.$eval('#join-error', (el) => ({ code: el.dataset.code, text: el.textContent }));
    await join(b, 'bob');
    await b.waitForSelector('body[data-state="joined"]');

    await say(a, 'hello bob, this is alice');
    await sees(b, 'hello bob, this is alice');
    await say(b, 'hi alice! bob here — ça va ?');
    await sees(a, 'hi alice! bob here — ça va ?');
    await sees(b, 'hi alice! bob here — ça va ?');
    await sees(a, 'hello bob, this is alice');

    for (const page of [a, b]) {
      await page.locator('#users li[data-name="bob"]:not(.away)').waitFor();
      await page.locator('#users li[data-name="alice"]:not(.away)').waitFor();
      if (args.away) await page.locator(`#users li.away[data-name="${args.away}"]`).waitFor();
    }
    let lobbyB = null;
    if (args.rooms) {
      await a.click('#rooms button[data-room="go"]');
      await a.locator('#rooms button.current[data-room="go"]').waitFor();
      await say(a, 'anyone in go?');
      await sees(a, 'anyone in go?');
      await say(b, 'still in the lobby');
      await sees(b, 'still in the lobby');
      lobbyB = await read(b); // must not show alice's line in #go
      await b.click('#rooms button[data-room="go"]');
      await b.locator('#rooms button.current[data-room="go"]').waitFor();
      await sees(b, 'anyone in go?');
      for (const page of [a, b]) {
        await page.locator('#users li[data-name="alice"]').waitFor();
        await page.locator('#users li[data-name="bob"]').waitFor();
      }
    }
    await a.screenshot({ path: screenshot });
    out({ event: 'result', joinError, a: await read(a), b: await read(b), lobbyB, screenshot, console: logs });
  } catch (err) {
    err.message += `\nconsole:\n${logs.join('\n')}`;
    throw err;
  } finally {
    await browser.close();
  }
}

try {
  await run();
  process.exit(0);
} catch (err) {
  out({ event: 'fail', message: String(err?.stack ?? err) });
  process.exit(1);
}
