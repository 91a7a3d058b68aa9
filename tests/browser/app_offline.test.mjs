// Browser tests of the web app's offline side (web/sw.js, offline.js, mentions.js) on the real
// edge and SDK in Debian's chromium: a reload with no network, a service worker update, a
// frozen and resumed page, the manifest, and a mention notification while the tab is hidden.
//
// "No network" here is both at once: the edge process is stopped, so nothing can answer from the
// network and whatever loads came from the service worker's cache, and the context is set
// offline (navigator.onLine false, the offline/online events the app and SDK react to). With
// playwright-core 1.64 and Chromium 156, setOffline also fails the worker's own fetches
// (net::ERR_FAILED), but the stopped edge does not depend on that.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS, EDGE, Edge, SDK_DIR, storedMessages } from './sdk_harness.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const WEB_DIR = process.env.WAYMARK_WEB_DIR ?? path.join(ROOT, 'web');
const WAIT_MS = 15_000;  // the bound on every single wait below unless it says otherwise
const SW_VERSION = /^const VERSION = '([^']+)';$/m;

let browser;
const cleanups = [];

function tempDir(prefix) {
  const dir = mkdtempSync(path.join(tmpdir(), `waymark-${prefix}-`));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// An edge serving `web` on a free port, or on `port` to come back on the same address.
async function startEdge({ web = WEB_DIR, port = 0, data = tempDir('offline-data') } = {}) {
  const edge = await new Edge({ data, web, port }).start();
  cleanups.push(() => edge.stop());
  return edge;
}

// The same edge again (same port, same data) after edge.stop().
async function restartEdge(edge) {
  return startEdge({ web: edge.web, port: edge.port, data: edge.data });
}

async function newUser({ initScript } = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  context.setDefaultTimeout(WAIT_MS);
  if (initScript) await context.addInitScript(initScript);
  const page = await context.newPage();
  page.problems = [];
  page.on('pageerror', (error) => page.problems.push(`pageerror: ${error.message}`));
  cleanups.push(() => context.close().catch(() => {}));
  return { context, page };
}

async function signIn(page, edge, name) {
  await page.goto(`${edge.url}/`);
  await page.locator('#signin-name').fill(name);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#conn-chip[data-state="online"]').waitFor();
  assert.equal(await page.locator('#me-name').textContent(), name);
}

// Until a service worker controls the page and has said its version.
async function controlled(page) {
  await page.waitForFunction(() => navigator.serviceWorker.controller && document.documentElement.dataset.appVersion,
    null, { timeout: WAIT_MS });
  return page.evaluate(() => document.documentElement.dataset.appVersion);
}

async function openConv(page, conv) {
  await page.locator(`#conv-list button[data-conv="${conv}"]`).click();
  await page.locator('#chat-title', { hasText: `#${conv}` }).waitFor();
}

async function send(page, text) {
  const box = page.locator('#composer-input');
  await box.fill(text);
  await box.press('Enter');
}

// The line of a message by its exact text, as one user sees it.
const line = (page, text) => page.locator('li.msg').filter({ has: page.locator(`.msg-text:text-is(${JSON.stringify(text)})`) });

// Until the SDK's state in IndexedDB holds every one of `ids` (it is written after each change).
async function persisted(page, ids) {
  await page.waitForFunction((list) => new Promise((resolve) => {
    const open = indexedDB.open('waymark');
    open.onsuccess = () => {
      const db = open.result;
      if (!db.objectStoreNames.contains('state')) { db.close(); resolve(false); return; }
      const all = db.transaction('state', 'readonly').objectStore('state').getAll();
      all.onsuccess = () => { db.close(); resolve(all.result.some((r) => list.every((id) => String(r.state).includes(id)))); };
      all.onerror = () => { db.close(); resolve(false); };
    };
    open.onerror = () => resolve(false);
  }), ids, { timeout: WAIT_MS, polling: 100 });
}

before(async () => {
  assert.ok(existsSync(EDGE), `no edge binary at ${EDGE}: build it or set WAYMARK_EDGE`);
  assert.ok(existsSync(path.join(SDK_DIR, 'waymark.js')), `no SDK at ${SDK_DIR}: build it or set WAYMARK_SDK_DIR`);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: WAIT_MS });
});

after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await browser?.close();
});

test('offline: a reload shows the conversation, its rows and queued rows; back online each goes out once',
  { timeout: 120_000 }, async () => {
    let edge = await startEdge();
    const alice = await newUser();
    await signIn(alice.page, edge, 'alice');
    await controlled(alice.page);
    await send(alice.page, 'sent while online');
    const online = line(alice.page, 'sent while online');
    await online.and(alice.page.locator('[data-seq="1"]')).waitFor();
    const onlineId = await online.getAttribute('data-id');

    // The network goes: the edge is gone and the browser says offline.
    await edge.stop();
    await alice.context.setOffline(true);
    await alice.page.locator('#conn-chip[data-state="offline"]').waitFor();
    await send(alice.page, 'queued before the reload');
    const before = line(alice.page, 'queued before the reload');
    await before.and(alice.page.locator('[data-state="queued"]')).waitFor();
    const beforeId = await before.getAttribute('data-id');
    await persisted(alice.page, [onlineId, beforeId]);

    // The page, its modules and the SDK come from the worker's cache; the rows from IndexedDB.
    const response = await alice.page.reload();
    assert.equal(response.fromServiceWorker(), true, 'the reloaded page came from the service worker');
    await alice.page.locator('#app').waitFor();
    assert.equal(await alice.page.evaluate(() => navigator.onLine), false);
    assert.equal(await alice.page.locator('#me-name').textContent(), 'alice');
    assert.deepEqual(await alice.page.locator('#conv-list button[data-conv]').evaluateAll(
      (buttons) => buttons.map((b) => b.dataset.conv)), ['incidents', 'ops', 'handoff']);
    await alice.page.locator('#chat-title', { hasText: '#incidents' }).waitFor();
    await line(alice.page, 'sent while online').and(alice.page.locator('[data-seq="1"]')).waitFor();
    await line(alice.page, 'queued before the reload').and(alice.page.locator('[data-state="queued"]')).waitFor();
    await alice.page.locator('#conn-chip[data-state="offline"]').waitFor();

    // Writing still works: queued.
    await send(alice.page, 'written after the reload');
    const after = line(alice.page, 'written after the reload');
    await after.and(alice.page.locator('[data-state="queued"]')).waitFor();
    const afterId = await after.getAttribute('data-id');

    // The network is back: both queued rows go out, in order.
    edge = await restartEdge(edge);
    await alice.context.setOffline(false);
    await alice.page.locator('#conn-chip[data-state="online"]').waitFor();
    await line(alice.page, 'queued before the reload').and(alice.page.locator('[data-seq="2"]')).waitFor();
    await line(alice.page, 'written after the reload').and(alice.page.locator('[data-seq="3"]')).waitFor();

    // Once each: in the edge's log, and at another user's client.
    const bob = await newUser();
    await signIn(bob.page, edge, 'bob');
    const stored = await storedMessages(bob.page, edge, 'incidents');
    assert.deepEqual(stored.map((m) => m.id), [onlineId, beforeId, afterId], 'each id stored once, in order');
    assert.deepEqual(stored.map((m) => m.body.text), ['sent while online', 'queued before the reload', 'written after the reload']);
    await line(bob.page, 'written after the reload').waitFor();
    for (const text of ['sent while online', 'queued before the reload', 'written after the reload']) {
      assert.equal(await line(bob.page, text).count(), 1, `bob sees "${text}" once`);
      assert.equal(await line(alice.page, text).count(), 1, `alice sees "${text}" once`);
    }
    assert.deepEqual([...alice.page.problems, ...bob.page.problems], []);
  });

test('an update of the service worker: the banner, then the new version on click, the old cache gone',
  { timeout: 90_000 }, async () => {
    const web = tempDir('offline-web');
    cpSync(WEB_DIR, web, { recursive: true });
    const oldVersion = readFileSync(path.join(web, 'sw.js'), 'utf8').match(SW_VERSION)?.[1];
    assert.ok(oldVersion, 'web/sw.js declares its VERSION');
    const edge = await startEdge({ web });
    const { page } = await newUser();
    await page.goto(`${edge.url}/`);
    assert.equal(await controlled(page), oldVersion);
    assert.deepEqual(await page.evaluate(() => caches.keys()), [`waymark-shell-${oldVersion}`]);
    assert.equal(await page.locator('#update-banner').isHidden(), true);

    // A new deployment: a new version, and a changed page that only it may serve.
    const newVersion = 'test-update-2';
    const sw = readFileSync(path.join(web, 'sw.js'), 'utf8');
    writeFileSync(path.join(web, 'sw.js'), sw.replace(SW_VERSION, `const VERSION = '${newVersion}';`));
    const html = readFileSync(path.join(web, 'index.html'), 'utf8');
    writeFileSync(path.join(web, 'index.html'), html.replace('</head>', '<meta name="waymark-test-build" content="2">\n</head>'));
    await page.evaluate(() => navigator.serviceWorker.getRegistration().then((registration) => registration.update()));

    const banner = page.locator('#update-banner');
    await banner.waitFor();
    assert.match(await banner.textContent(), /A new version is ready/);
    // Installed beside the old one, but the tab still runs the old version until the click.
    assert.deepEqual((await page.evaluate(() => caches.keys())).sort(), [`waymark-shell-${newVersion}`, `waymark-shell-${oldVersion}`].sort());
    assert.equal(await page.evaluate(() => document.documentElement.dataset.appVersion), oldVersion);

    await Promise.all([page.waitForEvent('load', { timeout: WAIT_MS }), banner.getByRole('button', { name: 'Reload' }).click()]);
    await page.waitForFunction((v) => document.documentElement.dataset.appVersion === v, newVersion, { timeout: WAIT_MS });
    assert.equal(await page.locator('meta[name="waymark-test-build"]').count(), 1, 'the new index.html is served');
    assert.deepEqual(await page.evaluate(() => caches.keys()), [`waymark-shell-${newVersion}`], 'the old cache is deleted');
    assert.equal(await page.locator('#update-banner').isHidden(), true);
    assert.deepEqual(page.problems, []);
  });

test('a frozen page resumes: it reconnects at once, not at its backoff, and shows what came meanwhile',
  { timeout: 150_000 }, async () => {
    let edge = await startEdge();
    // Record the Page Lifecycle events the page itself sees.
    const alice = await newUser({ initScript: () => {
      window.__lifecycle = [];
      for (const name of ['freeze', 'resume']) document.addEventListener(name, () => window.__lifecycle.push(name));
    } });
    const bob = await newUser();
    await signIn(alice.page, edge, 'alice');
    await signIn(bob.page, edge, 'bob');

    // The edge goes away until alice's SDK waits at least 5 s before its next try (the backoff
    // grows with every failed try; the countdown is that wait, rounded up to seconds).
    await edge.stop();
    const countdown = alice.page.locator('#banner-countdown');
    await countdown.filter({ hasText: /^Reconnecting in ([6-9]|[1-9]\d) s$/ }).waitFor({ timeout: 90_000 });
    const seconds = Number((await countdown.textContent()).match(/\d+/)[0]);
    const nextTryNoEarlierThan = Date.now() + (seconds - 1) * 1000;

    // Chromium 156 accepts Page.setWebLifecycleState for a visible page and does nothing (no
    // 'freeze', timers keep running), and automation cannot make a page hidden; where the CDP
    // call has no effect, the page is sent the Page Lifecycle events themselves, so the app's
    // resume path is what is tested either way.
    const cdp = await alice.context.newCDPSession(alice.page);
    await cdp.send('Page.setWebLifecycleState', { state: 'frozen' });
    const lifecycle = (name) => alice.page.evaluate((event) => {
      if (window.__lifecycle.at(-1) !== event) document.dispatchEvent(new Event(event));
    }, name);
    await lifecycle('freeze');
    edge = await restartEdge(edge);
    await bob.page.getByRole('button', { name: 'Retry now' }).click();
    await bob.page.locator('#conn-chip[data-state="online"]').waitFor();
    await send(bob.page, 'posted while alice was frozen');
    await line(bob.page, 'posted while alice was frozen').and(bob.page.locator('[data-seq]:not([data-seq=""])')).waitFor();

    await cdp.send('Page.setWebLifecycleState', { state: 'active' });
    await lifecycle('resume');
    const resumedAt = Date.now();
    assert.ok(resumedAt < nextTryNoEarlierThan, 'resumed before the SDK would have tried by itself');
    await line(alice.page, 'posted while alice was frozen').waitFor();
    await alice.page.locator('#conn-chip[data-state="online"]').waitFor();
    assert.ok(Date.now() < nextTryNoEarlierThan,
      `reconnected and caught up on resume (${Date.now() - resumedAt} ms), before the backoff's try`);
    assert.deepEqual(await alice.page.evaluate(() => window.__lifecycle), ['freeze', 'resume']);
    assert.deepEqual([...alice.page.problems, ...bob.page.problems], []);
  });

test('the manifest is served as application/manifest+json, parses, and its icons load', { timeout: 60_000 }, async () => {
  const edge = await startEdge();
  const response = await fetch(`${edge.url}/manifest.webmanifest`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type'), /^application\/manifest\+json/);
  const manifest = await response.json();
  assert.equal(manifest.name, 'Waymark');
  assert.equal(manifest.start_url, '/');
  assert.equal(manifest.display, 'standalone');
  assert.match(manifest.theme_color, /^#[0-9a-f]{6}$/i);
  const sizes = manifest.icons.map((icon) => icon.sizes);
  assert.ok(sizes.includes('192x192') && sizes.includes('512x512'), `icons: ${sizes}`);
  for (const icon of manifest.icons) {
    const image = await fetch(new URL(icon.src, `${edge.url}/`));
    assert.equal(image.status, 200, icon.src);
    assert.equal(image.headers.get('content-type').split(';')[0], icon.type, icon.src);
    const bytes = Buffer.from(await image.arrayBuffer());
    if (icon.type === 'image/png') {
      assert.equal(bytes.subarray(1, 4).toString(), 'PNG', icon.src);
      assert.equal(`${bytes.readUInt32BE(16)}x${bytes.readUInt32BE(20)}`, icon.sizes, `${icon.src} is as large as it says`);
    } else {
      assert.match(bytes.toString(), /<svg[^>]+viewBox="0 0 512 512"/, icon.src);
    }
  }

  // The browser finds it from the page and reads it without errors; the icons decode.
  const { page } = await newUser();
  await page.goto(`${edge.url}/`);
  const cdp = await page.context().newCDPSession(page);
  const read = await cdp.send('Page.getAppManifest', {});
  assert.equal(read.url, `${edge.url}/manifest.webmanifest`);
  assert.deepEqual(read.errors, []);
  assert.equal(JSON.parse(read.data).name, 'Waymark');
  const decoded = await page.evaluate((icons) => Promise.all(icons.map((icon) => new Promise((resolve) => {
    const img = new Image();
    img.onload = () => resolve(img.naturalWidth > 0);
    img.onerror = () => resolve(false);
    img.src = icon.src;
  }))), manifest.icons);
  assert.deepEqual(decoded, manifest.icons.map(() => true));
  assert.deepEqual(page.problems, []);
});

test('a mention while the tab is hidden shows a notification; permission is asked only on a click',
  { timeout: 90_000 }, async () => {
    const edge = await startEdge();
    // Headless chromium has no permission prompt to click: Notification is replaced by a
    // recorder whose requestPermission grants (as a user clicking Allow would) and notes
    // whether it ran inside a user gesture. __setHidden stands in for the tab going to the back.
    const alice = await newUser({ initScript: () => {
      const notes = { requests: [], shown: [] };
      window.__notes = notes;
      let permission = 'default';
      class RecordingNotification {
        constructor(title, options = {}) {
          this.title = title;
          this.body = options.body;
          this.tag = options.tag;
          this.closed = false;
          notes.shown.push(this);
        }
        close() { this.closed = true; }
        static get permission() { return permission; }
        static async requestPermission() {
          notes.requests.push({ gesture: navigator.userActivation.isActive });
          permission = 'granted';
          return permission;
        }
      }
      window.Notification = RecordingNotification;
      window.__setHidden = (hidden) => {
        Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (hidden ? 'hidden' : 'visible') });
        Object.defineProperty(document, 'hidden', { configurable: true, get: () => hidden });
        document.dispatchEvent(new Event('visibilitychange'));
      };
    } });
    const bob = await newUser();
    await signIn(alice.page, edge, 'alice');
    await signIn(bob.page, edge, 'bob');
    const shown = () => alice.page.evaluate(() => window.__notes.shown.map(({ title, body, tag }) => ({ title, body, tag })));

    const toggle = alice.page.locator('#notify-toggle');
    await toggle.waitFor();
    assert.equal(await toggle.getAttribute('aria-pressed'), 'false');
    assert.deepEqual(await alice.page.evaluate(() => window.__notes.requests), [], 'not asked on load');
    await toggle.click();
    await alice.page.locator('#notify-toggle[aria-pressed="true"]').waitFor();
    assert.deepEqual(await alice.page.evaluate(() => window.__notes.requests), [{ gesture: true }], 'asked once, from the click');

    // Visible: a mention needs no notification.
    await send(bob.page, '@alice are you there?');
    await line(alice.page, '@alice are you there?').waitFor();
    // Hidden: only the message that mentions her (not "@alicex", not her own) notifies.
    await alice.page.evaluate(() => window.__setHidden(true));
    await send(bob.page, 'not for you, @alicex');
    await send(bob.page, 'status please, @alice.');
    await line(alice.page, 'status please, @alice.').waitFor();
    await send(alice.page, 'writing to myself @alice');
    await line(alice.page, 'writing to myself @alice').and(alice.page.locator('[data-seq]:not([data-seq=""])')).waitFor();
    assert.deepEqual(await shown(), [{ title: 'bob in #incidents', body: 'status please, @alice.', tag: 'waymark-mention-incidents' }]);

    // A mention in another conversation; clicking the notification opens it.
    await openConv(bob.page, 'ops');
    await send(bob.page, '@Alice the deploy is stuck');
    await alice.page.waitForFunction(() => window.__notes.shown.length === 2, null, { timeout: WAIT_MS });
    assert.deepEqual((await shown())[1], { title: 'bob in #ops', body: '@Alice the deploy is stuck', tag: 'waymark-mention-ops' });
    await alice.page.evaluate(() => { window.__setHidden(false); window.__notes.shown[1].onclick(); });
    await alice.page.locator('#chat-title', { hasText: '#ops' }).waitFor();
    assert.equal(await alice.page.evaluate(() => window.__notes.shown[1].closed), true);

    // Turned off, nothing more, also when hidden.
    await toggle.click();
    await alice.page.locator('#notify-toggle[aria-pressed="false"]').waitFor();
    await alice.page.evaluate(() => window.__setHidden(true));
    await send(bob.page, '@alice one more');
    await line(alice.page, '@alice one more').waitFor();
    assert.equal((await shown()).length, 2);
    assert.deepEqual([...alice.page.problems, ...bob.page.problems], []);
  });
