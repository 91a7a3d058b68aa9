// Shared by the sdk_*.test.mjs browser tests: the real edge as a child process, Debian's
// chromium through playwright-core, and a tiny test page that imports /sdk/waymark.js.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { before, after } from 'node:test';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const EDGE = resolve(ROOT, process.env.WAYMARK_EDGE ?? 'build/release/edge/waymark-edge');
export const SDK_DIR = resolve(ROOT, process.env.WAYMARK_SDK_DIR ?? 'build/wasm/wasm/dist');
export const OUTPUT_DIR = join(ROOT, 'test-output');
export const CHROMIUM = process.env.WAYMARK_CHROMIUM ?? '/usr/bin/chromium';

// Every wait is bounded by this unless a test says otherwise.
export const WAIT_MS = 20000;

export function prerequisites() {
  const missing = [EDGE, join(SDK_DIR, 'waymark.js'), join(SDK_DIR, 'waymark_core.wasm'), CHROMIUM].filter((path) => !existsSync(path));
  return missing.length ? `missing: ${missing.join(', ')}` : null;
}

export function tempDir(prefix) {
  return mkdtempSync(join(tmpdir(), `waymark-${prefix}-`));
}

// The test page: window.start(options) connects and records every SDK event in window.log;
// the rows of window.conv are rendered for screenshots. A service worker serves the page and
// the SDK from its cache when the network is gone, so a reload works offline.
const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>Waymark SDK test</title>
<style>body{font:14px sans-serif} li{margin:2px 0} .queued{color:#a60} .failed{color:#c00}</style>
<h1 id="who">not connected</h1>
<p id="conn">offline</p>
<ol id="rows"></ol>
<script type="module">
import { connect } from '/sdk/waymark.js';
window.log = { rows: [], messages: [], connection: [], receipts: [], errors: [] };
window.conv = 'room';
window.render = () => {
  const c = window.client;
  if (!c) return;
  document.getElementById('who').textContent = c.user + ' (' + c.role + ')';
  document.getElementById('conn').textContent = c.connectionState();
  const list = document.getElementById('rows');
  list.replaceChildren(...c.rows(window.conv).map((row) => {
    const item = document.createElement('li');
    item.className = row.state;
    item.textContent = (row.seq ?? '-') + ' ' + row.from + ': ' + JSON.stringify(row.body) + ' [' + row.state + ']';
    return item;
  }));
};
window.start = async (options) => {
  const client = await connect(options);
  window.client = client;
  client.on('row', (row) => { window.log.rows.push(row); window.render(); });
  client.on('message', (msg) => window.log.messages.push(msg));
  client.on('connection', (event) => { window.log.connection.push(event); window.render(); });
  client.on('receipt', (event) => window.log.receipts.push(event));
  client.on('error', (event) => window.log.errors.push(event));
  window.render();
  return client.role;
};
window.swReady = navigator.serviceWorker.register('/sw.js').then(() => navigator.serviceWorker.ready);
window.pageReady = true;
</script>
`;

const SERVICE_WORKER = `// Network first, the cache when offline: enough for a test page to reload offline.
const CACHE = 'waymark-sdk-test';
const FILES = ['/', '/sdk/waymark.js', '/sdk/waymark_core.js', '/sdk/waymark_core.wasm'];
self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(FILES)).then(() => self.skipWaiting()));
});
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));
self.addEventListener('fetch', (event) => {
  if (event.request.method !== 'GET') return;
  event.respondWith(
    fetch(event.request)
      .then((response) => {
        const copy = response.clone();
        if (response.ok) caches.open(CACHE).then((cache) => cache.put(event.request, copy));
        return response;
      })
      .catch(() => caches.match(event.request).then((hit) => hit ?? Response.error())),
  );
});
`;

export function writeTestPage() {
  const dir = tempDir('web');
  writeFileSync(join(dir, 'index.html'), PAGE);
  writeFileSync(join(dir, 'sw.js'), SERVICE_WORKER);
  return dir;
}

// The edge on 127.0.0.1, the one launcher of the browser tests (the SDK's and app_chat's); `port`
// 0 picks one (read back from the "listening" log line).
// `dev: false` starts it without --dev (JWTs then; pass --auth-secret-file in `args`); `args`
// are appended to the command line.
export class Edge {
  constructor({ data, web, port = 0, dev = true, args = [] }) {
    this.data = data;
    this.web = web;
    this.port = port;
    this.dev = dev;
    this.args = args;
    this.stderr = '';
    this.process = null;
  }

  async start() {
    const args = [...(this.dev ? ['--dev'] : []), '--listen', `127.0.0.1:${this.port}`, '--data', this.data, '--sdk', SDK_DIR, '--web', this.web, ...this.args];
    const child = spawn(EDGE, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.process = child;
    let buffer = '';
    const listening = new Promise((resolveListening, rejectListening) => {
      const timer = setTimeout(() => rejectListening(new Error(`edge did not say "listening" in ${WAIT_MS} ms:\n${this.stderr}`)), WAIT_MS);
      child.stderr.on('data', (chunk) => {
        const text = chunk.toString();
        this.stderr += text;
        buffer += text;
        let newline;
        while ((newline = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, newline);
          buffer = buffer.slice(newline + 1);
          try {
            const event = JSON.parse(line);
            if (event.event === 'listening') {
              clearTimeout(timer);
              resolveListening(event);
            }
          } catch {
            // not a JSON log line
          }
        }
      });
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        rejectListening(new Error(`edge exited (${code ?? signal}) before listening:\n${this.stderr}`));
      });
      child.on('error', (error) => {  // could not start it at all (no binary at EDGE, ...)
        clearTimeout(timer);
        rejectListening(error);
      });
    });
    const event = await listening;
    this.port = Number(event.port ?? String(event.listen ?? event.address ?? '').split(':').pop());
    if (!this.port) throw new Error(`no port in the listening line: ${JSON.stringify(event)}`);
    return this;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  get wsUrl() {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  // Stops with `signal` and waits (bounded) for the exit.
  async stop(signal = 'SIGTERM') {
    const child = this.process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolveExit) => child.once('exit', resolveExit));
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), WAIT_MS);
    await exited;
    clearTimeout(timer);
    this.process = null;
  }
}

export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--disable-quic', '--no-first-run',
];

// A persistent context (its own profile dir): tabs of it share IndexedDB, Web Locks and
// BroadcastChannel like one browser profile does.
export async function launchProfile(name) {
  const profile = tempDir(`profile-${name}`);
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: WAIT_MS,
  });
  context.setDefaultTimeout(WAIT_MS);
  return {
    context,
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

// Opens the test page in a new tab of `context`, waits for its service worker, connects.
export async function openClient(context, edge, { token, conv = 'room', url, consoleLog } = {}) {
  const page = await context.newPage();
  if (consoleLog) page.on('console', (message) => consoleLog.push(`${message.type()}: ${message.text()}`));
  await page.goto(`${edge.url}/`);
  await page.waitForFunction(() => window.pageReady === true);
  await bounded(page.evaluate(() => window.swReady), 'the service worker');
  const role = await startClient(page, { token, conv, url: url ?? edge.wsUrl });
  return { page, role };
}

export async function startClient(page, { token, conv = 'room', url }) {
  await page.evaluate((c) => { window.conv = c; }, conv);
  return bounded(page.evaluate((options) => window.start(options), { token, url }), 'connect() in the page');
}

// page.evaluate has no timeout of its own.
export function bounded(promise, what, ms = WAIT_MS) {
  let timer;
  const timeout = new Promise((_, rejectTimeout) => {
    timer = setTimeout(() => rejectTimeout(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Waits until fn (run in the page with arg) returns a truthy value; returns it.
export async function until(page, fn, arg, { timeout = WAIT_MS, what = 'condition' } = {}) {
  try {
    const handle = await page.waitForFunction(fn, arg, { timeout, polling: 50 });
    return await handle.jsonValue();
  } catch (error) {
    throw new Error(`timed out after ${timeout} ms waiting for ${what}: ${error.message.split('\n')[0]}`);
  }
}

export async function rowsOf(page, conv = 'room') {
  return page.evaluate((c) => window.client.rows(c), conv);
}

// Asks the edge directly (a raw WebSocket from the page) for a conversation's stored messages.
export async function storedMessages(page, edge, conv, token = 'dev:auditor') {
  return bounded(page.evaluate(
    ({ url, conv: c, token: t, wait }) =>
      new Promise((resolvePage, rejectPage) => {
        const socket = new WebSocket(url, 'waymark.v1');
        const timer = setTimeout(() => { socket.close(); rejectPage(new Error('hist timed out')); }, wait);
        socket.onopen = () => socket.send(JSON.stringify({ t: 'hello', token: t }));
        socket.onmessage = (event) => {
          const frame = JSON.parse(event.data);
          if (frame.t === 'welcome') socket.send(JSON.stringify({ t: 'hist', conv: c, after: 0, limit: 1000, rid: 'audit' }));
          if (frame.t === 'page' && frame.rid === 'audit') {
            clearTimeout(timer);
            socket.close();
            resolvePage(frame.msgs);
          }
        };
        socket.onerror = () => { clearTimeout(timer); rejectPage(new Error('audit socket failed')); };
      }),
    { url: edge.wsUrl, conv, token, wait: WAIT_MS },
  ), 'hist from the edge');
}

export async function screenshot(page, name) {
  mkdirSync(OUTPUT_DIR, { recursive: true });
  await page.screenshot({ path: join(OUTPUT_DIR, `${name}.png`) });
}

// One edge for a whole test file, on a fresh data dir with the test page: started before the
// file's tests (onStart receives it), stopped and cleaned up after them. `options` go to Edge
// (dev, args).
export function edgeForSuite(onStart, options = {}) {
  let edge;
  let web;
  let data;
  before(async () => {
    assert.equal(prerequisites(), null);
    web = writeTestPage();
    data = tempDir('data');
    edge = await new Edge({ ...options, data, web }).start();
    onStart(edge);
  });
  after(async () => {
    await edge?.stop();
    for (const dir of [web, data]) if (dir) rmSync(dir, { recursive: true, force: true });
  });
}
