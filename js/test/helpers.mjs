// Test helpers: run interop/primus-server.mjs as a child process and follow its JSON-lines stdout.
import { spawn } from 'node:child_process';
import net from 'node:net';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

export const JS_DIR = fileURLToPath(new URL('..', import.meta.url));
const SERVER = fileURLToPath(new URL('../interop/primus-server.mjs', import.meta.url));

/** Resolve when cond() is truthy (checked on every event and every 5 ms), reject after ms. */
export function until(cond, ms = 5000, what = 'condition') {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const tick = () => {
      let v;
      try {
        v = cond();
      } catch (err) {
        return reject(err);
      }
      if (v) return resolve(v);
      if (Date.now() - started > ms) return reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
      setTimeout(tick, 5);
    };
    tick();
  });
}

/** Wait for one emission of event on a wsactor client, with a deadline. */
export function once(client, event, ms = 5000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      off();
      reject(new Error(`timed out after ${ms} ms waiting for '${event}'`));
    }, ms);
    const off = client.on(event, (arg) => {
      clearTimeout(t);
      off();
      resolve(arg);
    });
  });
}

/** A port nothing listens on (bound, then released). */
export async function freePort() {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

/**
 * Start the stock Primus server. Returns {port, url, events, waitEvent, count, cmd, stop}.
 * events is every JSON line printed so far.
 */
export async function startServer(extraArgs = []) {
  const child = spawn(process.execPath, [SERVER, ...extraArgs], { stdio: ['pipe', 'pipe', 'inherit'] });
  const events = [];
  const waiters = new Set();
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    let ev;
    try {
      ev = JSON.parse(line);
    } catch {
      ev = { event: 'unparsed', line };
    }
    events.push(ev);
    for (const w of [...waiters]) w();
  });
  // Resolve with the first event at index >= from that matches pred.
  const waitEvent = (pred, ms = 5000, what = 'server event', from = 0) =>
    new Promise((resolve, reject) => {
      const check = () => {
        for (; from < events.length; from++) {
          if (pred(events[from])) {
            cleanup();
            resolve(events[from]);
            return;
          }
        }
      };
      const t = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${ms} ms waiting for ${what}; events: ${JSON.stringify(events.slice(-10))}`));
      }, ms);
      const cleanup = () => {
        clearTimeout(t);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });
  const listening = await waitEvent((e) => e.event === 'listening', 10000, 'listening');
  const port = listening.port;
  return {
    child,
    port,
    url: `ws://127.0.0.1:${port}/primus`,
    events,
    exited,
    waitEvent,
    count: (pred) => events.filter(pred).length,
    /** Send a stdin command; resolves with its ack. */
    async cmd(line) {
      const before = events.length;
      child.stdin.write(line + '\n');
      const name = line.split(' ')[0];
      return waitEvent((e) => e.event === 'ack' && e.cmd === name, 5000, `ack ${name}`, before);
    },
    /** Close stdin (the server then exits 0) and wait for the exit. */
    async stop() {
      child.stdin.end();
      return exited;
    },
  };
}
