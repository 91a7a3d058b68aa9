// Browser, regions (issue 11): the web app on two relaying edges of one root, real binaries on
// loopback. alice and carol use relay A, bob relay B; a TCP proxy this test owns sits between
// relay A and the root. Through the root alice and bob chat; with relay A cut off alice and
// carol keep chatting (each other's messages shown at once, labelled provisional) while bob
// chats on the other side; after the heal all three show the same messages, each once, in the
// root's order, none provisional any more, and the root stores each id once.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import * as h from './sdk_harness.mjs';
import { TcpProxy } from './tcp_proxy.mjs';

const ROOT_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const WEB_DIR = process.env.WAYMARK_WEB_DIR ?? path.join(ROOT_DIR, 'web');
const SHOTS = path.join(h.OUTPUT_DIR, 'screenshots');
const CONV = 'incidents';

let root;
let relayA;
let relayB;
let proxy;
let browser;
const dirs = [];

// A relay of `upstreamUrl` named `node`: its node token in a file, as in production.
async function startRelay(node, upstreamUrl) {
  const data = h.tempDir(`regions-${node}`);
  dirs.push(data);
  const tokenFile = path.join(data, 'node-token');
  writeFileSync(tokenFile, `dev-node:${node}\n`);
  return new h.Edge({
    data,
    web: WEB_DIR,
    args: ['--node', node, '--upstream', upstreamUrl, '--upstream-token-file', tokenFile],
  }).start();
}

before(async () => {
  assert.equal(h.prerequisites(), null);
  mkdirSync(SHOTS, { recursive: true });
  const rootData = h.tempDir('regions-root');
  dirs.push(rootData);
  root = await new h.Edge({ data: rootData, web: WEB_DIR, args: ['--node', 'root'] }).start();
  proxy = await new TcpProxy(root.port).start();
  relayA = await startRelay('relay-a', proxy.wsUrl);
  relayB = await startRelay('relay-b', root.wsUrl);
  browser = await chromium.launch({ executablePath: h.CHROMIUM, args: h.CHROMIUM_ARGS, timeout: h.WAIT_MS });
});

after(async () => {
  await browser?.close();
  for (const edge of [relayA, relayB, root]) await edge?.stop();
  await proxy?.stop();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

async function healthz(edge) {
  const response = await fetch(`${edge.url}/healthz`);
  return response.json();
}

// A user of the web app served by `edge` (so its socket goes to that edge), in a browser
// context of its own, signed in with the conversation open.
async function user(name, edge) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  context.setDefaultTimeout(h.WAIT_MS);
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
  await page.goto(`${edge.url}/`);
  await page.locator('#signin-name').fill(name);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#conn-chip[data-state="online"]').waitFor();
  await page.locator(`#conv-list button[data-conv="${CONV}"]`).click();
  await page.locator('#chat-title', { hasText: `#${CONV}` }).waitFor();
  return { name, edge, context, page, problems };
}

async function say(who, text) {
  const box = who.page.locator('#composer-input');
  await box.fill(text);
  await box.press('Enter');
}

// The line of a message by its exact text.
const line = (page, text) => page.locator('li.msg').filter({ has: page.locator(`.msg-text:text-is(${JSON.stringify(text)})`) });

// The message lines as shown, top to bottom.
function linesOf(who) {
  return who.page.locator('li.msg').evaluateAll((items) => items.map((item) => ({
    id: item.dataset.id,
    seq: item.dataset.seq,
    state: item.dataset.state,
    text: item.querySelector('.msg-text').textContent,
    provisional: item.classList.contains('provisional'),
    label: item.querySelector('.msg-prov').hidden ? null : item.querySelector('.msg-prov').textContent,
  })));
}

// Waits until the line with `text` is shown and sequenced (has a seq, not provisional).
async function waitSequenced(who, text) {
  await line(who.page, text).and(who.page.locator('li.msg:not(.provisional)[data-seq]:not([data-seq=""])')).waitFor();
}

test('two tabs on two relays chat through the root; cut off, a relay\'s tabs chat on; after the heal one order',
  { timeout: 240000 }, async () => {
    const alice = await user('alice', relayA);
    const bob = await user('bob', relayB);
    const carol = await user('carol', relayA);
    const everyone = [alice, bob, carol];
    try {
      // Through the root: alice on relay A, bob on relay B.
      await say(alice, 'a1: hello from A');
      for (const who of everyone) await waitSequenced(who, 'a1: hello from A');
      await say(bob, 'b1: hello from B');
      for (const who of everyone) await waitSequenced(who, 'b1: hello from B');
      for (const who of everyone) {
        const lines = await linesOf(who);
        assert.deepEqual(lines.map((l) => l.text), ['a1: hello from A', 'b1: hello from B'], who.name);
        assert.ok(lines.every((l) => !l.provisional && l.label === null), JSON.stringify(lines));
      }
      assert.equal((await healthz(relayA)).upstream.links.dev.state, 'online');

      // Relay A is cut off from the root; its users still reach it.
      proxy.cut();
      await say(alice, 'a2: A is cut off');
      await say(carol, 'c2: still here on A');
      await say(bob, 'b2: meanwhile on B');
      // alice and carol see each other's message at once, labelled as not yet confirmed.
      for (const [who, text] of [[carol, 'a2: A is cut off'], [alice, 'c2: still here on A']]) {
        const shown = line(who.page, text);
        await shown.and(who.page.locator('li.msg.provisional')).waitFor();
        assert.equal(await shown.locator('.msg-prov').isVisible(), true);
        assert.equal((await shown.locator('.msg-prov [aria-hidden="true"]').textContent()), 'Not yet confirmed');
        assert.match(await shown.locator('.msg-prov .visually-hidden').textContent(), /not yet confirmed by the root/);
        assert.equal(await shown.getAttribute('data-seq'), '');
      }
      // Their own sends are stored at relay A (acked without seq), provisional too.
      for (const [who, text] of [[alice, 'a2: A is cut off'], [carol, 'c2: still here on A']]) {
        await line(who.page, text).and(who.page.locator('li.msg.own.provisional[data-state="stored"]')).waitFor();
      }
      // bob's side goes on through the root.
      await waitSequenced(bob, 'b2: meanwhile on B');
      const health = await healthz(relayA);
      console.log('relay A while cut off:', JSON.stringify(health.upstream), 'proxy refused', proxy.refused);
      assert.equal(health.upstream.outbox, 2, 'a2 and c2 staged at relay A');
      assert.notEqual(health.upstream.links.dev.state, 'online');
      for (const who of [alice, carol]) {
        const lines = await linesOf(who);
        assert.deepEqual(lines.slice(0, 2).map((l) => l.text), ['a1: hello from A', 'b1: hello from B'], 'sequenced rows first');
        assert.deepEqual(new Set(lines.slice(2).map((l) => l.text)), new Set(['a2: A is cut off', 'c2: still here on A']));
        assert.ok(lines.slice(2).every((l) => l.provisional), JSON.stringify(lines));
        assert.ok(!lines.some((l) => l.text === 'b2: meanwhile on B'), `${who.name} cannot see B's side yet`);
      }
      assert.ok(!(await linesOf(bob)).some((l) => l.text.startsWith('a2') || l.text.startsWith('c2')), 'bob cannot see A\'s side yet');
      await h.screenshot(carol.page, 'regions-cut-off-carol');

      // The heal: relay A drains its outbox; everyone converges on the root's order.
      const healedAt = Date.now();
      proxy.heal();
      const texts = ['a1: hello from A', 'b1: hello from B', 'a2: A is cut off', 'c2: still here on A', 'b2: meanwhile on B'];
      for (const who of everyone) for (const text of texts) await waitSequenced(who, text);
      console.log(`converged ${Date.now() - healedAt} ms after the heal (all three tabs show every message sequenced)`);

      const stored = await h.storedMessages(alice.page, root, CONV);
      const rootIds = stored.map((msg) => msg.id);
      assert.equal(new Set(rootIds).size, rootIds.length, 'the root stores each id once');
      assert.equal(rootIds.length, texts.length);
      assert.deepEqual(stored.map((msg) => msg.seq), [1, 2, 3, 4, 5]);
      for (const who of everyone) {
        const lines = await linesOf(who);
        assert.deepEqual(lines.map((l) => l.id), rootIds, `${who.name} shows the root's order, each id once`);
        assert.deepEqual(lines.map((l) => Number(l.seq)), [1, 2, 3, 4, 5], who.name);
        assert.ok(lines.every((l) => !l.provisional && l.label === null), JSON.stringify(lines));
      }
      for (const edge of [relayA, relayB]) {
        const atRelay = (await h.storedMessages(alice.page, edge, CONV)).map((msg) => msg.id);
        assert.deepEqual(atRelay, rootIds, `${edge.wsUrl}'s log is the root's`);
      }
      assert.equal((await healthz(relayA)).upstream.outbox, 0);
      await h.screenshot(bob.page, 'regions-healed-bob');
      for (const who of everyone) assert.deepEqual(who.problems, [], who.name);
    } finally {
      for (const who of everyone) await who.context.close().catch(() => {});
    }
  });
