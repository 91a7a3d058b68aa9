// Browser tests of the web app (web/) on the real edge and the real SDK: two users chat in
// Debian's chromium, with typing, receipts, the lifecycle panel, the connection banner and phone width.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { EDGE, Edge } from './sdk_harness.mjs';  // the browser tests' one edge launcher

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SDK_DIR = path.resolve(ROOT, process.env.WAYMARK_SDK_DIR ?? 'build/wasm/wasm/dist');
const WEB_DIR = process.env.WAYMARK_WEB_DIR ?? path.join(ROOT, 'web');
const SHOTS = path.join(ROOT, 'test-output/screenshots');
const WAIT_MS = 15_000;  // the bound on every single wait below
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run'];

let edge;     // {launched, base, port, dataDir}
let browser;

// Starts the edge (sdk_harness.mjs's Edge) serving the web app, on a free port or on `listen`'s
// port to come back on the same address, and resolves with its address.
async function startEdge({ listen = '127.0.0.1:0', dataDir = mkdtempSync(path.join(tmpdir(), 'waymark-app-test-')) } = {}) {
  const port = Number(listen.split(':').pop());
  const launched = await new Edge({ data: dataDir, web: WEB_DIR, port }).start();
  return { launched, base: launched.url, port: launched.port, dataDir };
}

// SIGTERM, then SIGKILL if it has not exited within the bound; keeps the data unless told.
async function stopEdge(node, { removeData = true } = {}) {
  if (!node) return;
  await node.launched.stop();
  if (removeData) rmSync(node.dataDir, { recursive: true, force: true });
}

async function newUserPage({ width = 1280, height = 800 } = {}) {
  const context = await browser.newContext({ viewport: { width, height } });
  context.setDefaultTimeout(WAIT_MS);
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
  page.problems = problems;
  return { context, page };
}

async function signIn(page, name, node = edge) {
  await page.goto(`${node.base}/`);
  await page.locator('#signin-name').fill(name);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#conn-chip[data-state="online"]').waitFor();
  assert.equal(await page.locator('#me-name').textContent(), name);
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

// The line of a message by its exact text (whitespace normalised), as one user sees it.
const line = (page, text) => page.locator('li.msg').filter({ has: page.locator(`.msg-text:text-is(${JSON.stringify(text)})`) });

async function shot(page, name) {
  // Transitions finish at once, so a sliding drawer is photographed where it stops.
  await page.screenshot({ path: path.join(SHOTS, name), animations: 'disabled' });
}

before(async () => {
  assert.ok(existsSync(EDGE), `no edge binary at ${EDGE}: build it or set WAYMARK_EDGE`);
  assert.ok(existsSync(path.join(SDK_DIR, 'waymark.js')), `no SDK at ${SDK_DIR}: build it or set WAYMARK_SDK_DIR`);
  mkdirSync(SHOTS, { recursive: true });
  edge = await startEdge();
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS, timeout: WAIT_MS });
});

after(async () => {
  await browser?.close();
  await stopEdge(edge);
});

test('two users chat: unread, delivered then read, typing, lifecycle, offline banner, phone width',
  { timeout: 180_000 }, async (t) => {
    const alice = await newUserPage();
    const bob = await newUserPage();

    await t.test('sign-in is remembered across a reload', async () => {
      await alice.page.goto(`${edge.base}/`);
      await alice.page.locator('#signin').waitFor();
      assert.equal(await alice.page.evaluate(() => document.activeElement?.id), 'signin-name');
      await alice.page.locator('#signin-name').fill('not a name!');
      await alice.page.getByRole('button', { name: 'Sign in' }).click();
      await alice.page.locator('#signin-error', { hasText: 'Use only' }).waitFor();
      await alice.page.locator('#signin-name').fill('');
      await shot(alice.page, 'app-01-signin.png');
      await signIn(alice.page, 'alice');
      await alice.page.reload();
      await alice.page.locator('#conn-chip[data-state="online"]').waitFor();
      assert.equal(await alice.page.locator('#me-name').textContent(), 'alice');
      assert.deepEqual(await alice.page.locator('#conv-list button[data-conv]').evaluateAll(
        (buttons) => buttons.map((b) => b.dataset.conv)), ['incidents', 'ops', 'handoff']);
    });

    await t.test('alice\'s message is delivered to bob, unread until he opens it, then read', async () => {
      await signIn(bob.page, 'bob');
      await openConv(alice.page, 'incidents');
      await openConv(bob.page, 'ops');
      await alice.page.locator('#members li[data-user="bob"][data-present="true"]').waitFor();

      await send(alice.page, 'db failover done');
      const mine = line(alice.page, 'db failover done');
      await mine.and(alice.page.locator('.own[data-state="delivered"]')).waitFor();
      // bob has another conversation open: his client confirmed delivery but he has not read it.
      await bob.page.locator('#conv-list button[data-conv="incidents"] .badge-count', { hasText: /^1$/ }).waitFor();
      assert.equal(await mine.getAttribute('data-state'), 'delivered');

      await openConv(bob.page, 'incidents');
      const theirs = line(bob.page, 'db failover done');
      await theirs.waitFor();
      assert.equal(await theirs.locator('.msg-from').textContent(), 'alice');
      assert.equal(await theirs.evaluate((el) => el.classList.contains('own')), false);
      await mine.and(alice.page.locator('[data-state="read"]')).waitFor();
      await bob.page.locator('#conv-list button[data-conv="incidents"] .badge').waitFor({ state: 'hidden' });
    });

    await t.test('bob sees alice typing, and the indicator clears when she sends', async () => {
      await alice.page.locator('#composer-input').pressSequentially('checking replicas');
      await bob.page.locator('#typing', { hasText: 'alice is typing…' }).waitFor();
      await shot(bob.page, 'app-03-typing.png');
      await alice.page.locator('#composer-input').press('Enter');
      await line(bob.page, 'checking replicas').waitFor();
      await bob.page.locator('#typing', { hasText: /^$/ }).waitFor();

      await send(bob.page, 'thanks, watching the replicas');
      await line(alice.page, 'thanks, watching the replicas').waitFor();
      // Shift+Enter makes a new line instead of sending.
      const box = alice.page.locator('#composer-input');
      await box.fill('line one');
      await box.press('Shift+Enter');
      await box.pressSequentially('line two');
      assert.equal(await box.inputValue(), 'line one\nline two');
      await box.press('Enter');
      const multi = line(bob.page, 'line one line two');
      await multi.waitFor();
      assert.equal(await multi.locator('.msg-text').textContent(), 'line one\nline two');
      await line(alice.page, 'line one line two').and(alice.page.locator('[data-state="read"]')).waitFor();
      await shot(alice.page, 'app-02-chat.png');
    });

    await t.test('the lifecycle panel shows every step\'s time, the seq, the id and the trace id', async () => {
      const mine = line(alice.page, 'db failover done');
      const seq = Number(await mine.getAttribute('data-seq'));
      assert.ok(Number.isInteger(seq) && seq >= 1, `seq ${seq}`);
      const opener = mine.locator('.msg-meta');
      await opener.click();
      const panel = alice.page.locator('#lifecycle');
      await panel.waitFor();
      await panel.locator('[data-step="read"].done').waitFor();
      const times = {};
      for (const step of ['queued', 'sequenced', 'delivered', 'read']) {
        const ms = await panel.locator(`[data-step="${step}"] .lc-time`).getAttribute('data-ms');
        assert.ok(ms && Number(ms) > 0, `${step} has a time`);
        times[step] = Number(ms);
      }
      assert.ok(times.queued <= times.sequenced && times.sequenced <= times.delivered && times.delivered <= times.read,
        `steps in order: ${JSON.stringify(times)}`);
      assert.equal(await panel.locator('[data-fact="seq"]').textContent(), String(seq));
      assert.equal(await panel.locator('[data-fact="id"]').textContent(), await mine.getAttribute('data-id'));
      assert.equal(await panel.locator('[data-fact="state"]').textContent(), 'read');
      const traceId = await panel.locator('[data-fact="trace-id"]').textContent();
      assert.match(traceId, /^[0-9a-f]{32}$/);
      assert.notEqual(traceId, '0'.repeat(32));
      assert.match(await panel.locator('[data-fact="traceparent"]').textContent(), new RegExp(`^00-${traceId}-[0-9a-f]{16}-[0-9a-f]{2}$`));
      // bob's copy of the message carries the same trace.
      await line(bob.page, 'db failover done').locator('.msg-meta').click();
      await bob.page.locator('#lifecycle [data-fact="trace-id"]', { hasText: traceId }).waitFor();
      await bob.page.keyboard.press('Escape');
      await shot(alice.page, 'app-04-lifecycle.png');
      await alice.page.keyboard.press('Escape');
      await panel.waitFor({ state: 'hidden' });
      assert.equal(await opener.evaluate((el) => el === document.activeElement), true, 'focus returns to the message');
    });

    await t.test('the connection banner follows the network, and a message sent offline arrives', async () => {
      await alice.context.setOffline(true);
      const banner = alice.page.locator('#banner[data-state="offline"]');
      await banner.waitFor();
      assert.match(await banner.locator('#banner-title').textContent(), /Offline/);
      await alice.page.locator('#conn-chip[data-state="offline"]').waitFor();
      await alice.page.locator('#banner-retry').waitFor();
      await send(alice.page, 'sent while offline');
      await line(alice.page, 'sent while offline').waitFor();
      await shot(alice.page, 'app-05-offline.png');
      await alice.context.setOffline(false);
      await alice.page.locator('#conn-chip[data-state="online"]').waitFor();
      assert.notEqual(await alice.page.locator('#banner').getAttribute('data-state'), 'offline');
      await line(bob.page, 'sent while offline').waitFor();
      await line(alice.page, 'sent while offline').and(alice.page.locator('[data-state="read"]')).waitFor();
    });

    await t.test('at phone width the conversations fold into a drawer and nothing overflows', async () => {
      await alice.page.setViewportSize({ width: 390, height: 844 });
      await alice.page.locator('#banner').waitFor({ state: 'hidden' });  // "Back online" fades
      const sidebar = alice.page.locator('#sidebar');
      await sidebar.waitFor({ state: 'hidden' });
      assert.equal(await alice.page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), true);
      await alice.page.locator('#composer-input').waitFor();
      await shot(alice.page, 'app-06-phone.png');
      const toggle = alice.page.locator('#nav-toggle');
      await toggle.click();
      await sidebar.waitFor();
      assert.equal(await toggle.getAttribute('aria-expanded'), 'true');
      await shot(alice.page, 'app-07-phone-drawer.png');
      await alice.page.keyboard.press('Escape');
      await sidebar.waitFor({ state: 'hidden' });
      await toggle.click();
      await openConv(alice.page, 'ops');
      await sidebar.waitFor({ state: 'hidden' });
      await alice.page.setViewportSize({ width: 1280, height: 800 });
      await sidebar.waitFor();
    });

    await t.test('signing out says goodbye to the others', async () => {
      await openConv(alice.page, 'incidents');
      await alice.page.locator('#members li[data-user="bob"][data-present="true"]').waitFor();
      await bob.page.getByRole('button', { name: 'Sign out' }).click();
      await bob.page.locator('#signin').waitFor();
      assert.equal(await bob.page.evaluate(() => localStorage.getItem('waymark.user')), null);
      await alice.page.locator('#members li[data-user="bob"][data-present="false"]').waitFor();
    });

    assert.deepEqual([...alice.page.problems, ...bob.page.problems], []);
    await alice.context.close();
    await bob.context.close();
  });

test('joining by name, history paging on scroll-up, and a failed send with retry', { timeout: 180_000 }, async (t) => {
  const carol = await newUserPage();
  const dave = await newUserPage({ width: 1000, height: 700 });
  const conv = 'release-42';
  const total = 60;

  await t.test('conversation names are checked before joining', async () => {
    await signIn(carol.page, 'carol');
    const field = carol.page.locator('#join-name');
    for (const bad of ['has space', 'x'.repeat(129), 'émoji']) {
      await field.fill(bad);
      await carol.page.getByRole('button', { name: 'Join' }).click();
      await carol.page.locator('#join-error:not(:empty)').waitFor();
      assert.equal(await field.getAttribute('aria-invalid'), 'true', bad);
      assert.equal(await carol.page.locator(`#conv-list button[data-conv="${bad}"]`).count(), 0);
    }
    await field.fill(conv);
    await carol.page.getByRole('button', { name: 'Join' }).click();
    await carol.page.locator('#chat-title', { hasText: `#${conv}` }).waitFor();
    assert.equal(await carol.page.locator('#join-error').textContent(), '');
    await carol.page.reload();
    await carol.page.locator(`#conv-list button[data-conv="${conv}"][aria-current="page"]`).waitFor();
  });

  await t.test('a newcomer sees the newest page and loads older ones by scrolling up', async () => {
    await carol.page.locator('#conn-chip[data-state="online"]').waitFor();
    for (let i = 1; i <= total; i += 1) await send(carol.page, `note ${i}`);
    await carol.page.waitForFunction((n) => document.querySelectorAll('li.msg[data-seq]:not([data-seq=""])').length === n,
      total, { timeout: WAIT_MS });

    await signIn(dave.page, 'dave');
    await dave.page.locator('#join-name').fill(conv);
    await dave.page.getByRole('button', { name: 'Join' }).click();
    await line(dave.page, `note ${total}`).waitFor();
    const seqs = () => dave.page.locator('li.msg').evaluateAll((lines) => lines.map((l) => Number(l.dataset.seq)));
    const first = await seqs();
    assert.equal(first.length, 50);
    assert.deepEqual(first, Array.from({ length: 50 }, (_, i) => total - 49 + i));
    await dave.page.locator('#scroller').evaluate((el) => { el.scrollTop = 0; });
    await dave.page.locator('#history-status', { hasText: `This is the beginning of #${conv}.` }).waitFor();
    assert.deepEqual(await seqs(), Array.from({ length: total }, (_, i) => i + 1));
    // The lines dave was reading stay on screen while older ones appear above.
    assert.equal(await dave.page.locator('#scroller').evaluate((el) => el.scrollTop > 0), true);
  });

  await t.test('a message too large to send fails with a Retry button', async () => {
    const big = 'x'.repeat(70_000);
    await send(carol.page, big);
    const failed = carol.page.locator('li.msg.own[data-state="failed"]');
    await failed.waitFor();
    await failed.locator('.msg-error', { hasText: /\S/ }).waitFor();
    await failed.locator('.msg-retry').waitFor();
    await failed.evaluate((el) => el.scrollIntoView({ block: 'end' }));
    await shot(carol.page, 'app-08-failed.png');
    await failed.locator('.msg-retry').click();
    // Retrying cannot make it smaller: it fails again, and the conversation keeps working.
    await carol.page.locator('li.msg.own[data-state="failed"] .msg-retry').waitFor();
    await send(carol.page, 'after the failure');
    await line(dave.page, 'after the failure').waitFor();
    assert.equal(await dave.page.locator('li.msg .msg-text').evaluateAll(
      (texts) => texts.some((el) => el.textContent.length > 60_000)), false);
  });

  assert.deepEqual([...carol.page.problems, ...dave.page.problems], []);
  await carol.context.close();
  await dave.context.close();
});

test('while the edge is down the banner counts down, and Retry now reconnects to it', { timeout: 120_000 }, async () => {
  let node = await startEdge();
  const erin = await newUserPage();
  try {
    await signIn(erin.page, 'erin', node);
    await send(erin.page, 'before the restart');
    await line(erin.page, 'before the restart').and(erin.page.locator('[data-seq="1"]')).waitFor();

    await stopEdge(node, { removeData: false });
    const banner = erin.page.locator('#banner[data-state="offline"]');
    await banner.waitFor();
    await erin.page.locator('#banner-countdown', { hasText: /^(Reconnecting in \d+ s|Reconnecting…)$/ }).waitFor();
    const retry = erin.page.getByRole('button', { name: 'Retry now' });
    await retry.waitFor();
    await send(erin.page, 'while the edge is down');
    await line(erin.page, 'while the edge is down').and(erin.page.locator('[data-state="queued"]')).waitFor();
    await shot(erin.page, 'app-09-reconnecting.png');

    node = await startEdge({ listen: `127.0.0.1:${node.port}`, dataDir: node.dataDir });
    await retry.click();
    await erin.page.locator('#conn-chip[data-state="online"]').waitFor();
    await line(erin.page, 'while the edge is down').and(erin.page.locator('[data-seq="2"]')).waitFor();
    // Both messages survived the restart: a fresh load reads them back from the edge's log.
    await erin.page.reload();
    await line(erin.page, 'before the restart').waitFor();
    await line(erin.page, 'while the edge is down').waitFor();
    assert.deepEqual(erin.page.problems, []);
  } finally {
    await erin.context.close();
    await stopEdge(node);
  }
});
