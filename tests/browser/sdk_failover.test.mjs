// Browser SDK, failover: connect({url: [first, second]}) uses the first edge while it is up; when
// it dies (SIGKILL) the core's reconnect goes to the next URL, and the message queued meanwhile
// is resent there and acknowledged (read back from the second edge itself). The first tests use
// two independent edges (each --dev, its own data dir); the last one two relays of one root,
// where a message the first relay stored and forwarded but whose ack was lost is resent through
// the second, and the root stores each id once.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as h from './sdk_harness.mjs';
import { TcpProxy } from './tcp_proxy.mjs';

let first;
let second;
let web;
const dirs = [];

before(async () => {
  assert.equal(h.prerequisites(), null);
  web = h.writeTestPage();
  dirs.push(web);
  for (const name of ['first', 'second']) dirs.push(h.tempDir(`failover-${name}`));
  first = await new h.Edge({ data: dirs[1], web }).start();
  second = await new h.Edge({ data: dirs[2], web }).start();
});

after(async () => {
  await first?.stop();
  await second?.stop();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const idsOf = (msgs) => msgs.map((msg) => msg.id);
const state = (page, id) => page.evaluate((i) => window.client.rows('room').find((row) => row.id === i)?.state, id);

test('with a list of URLs the first edge is used while it is up, the next one once it dies', { timeout: 120000 }, async () => {
  const profile = await h.launchProfile('failover');
  try {
    // The page comes from the second edge, so it outlives the first.
    const { page } = await h.openClient(profile.context, second, { token: 'dev:carol', url: [first.wsUrl, second.wsUrl] });
    await h.until(page, () => window.client.connectionState() === 'online', null, { what: 'online' });
    assert.deepEqual(await page.evaluate(() => window.client.urls), [first.wsUrl, second.wsUrl]);
    assert.equal(await page.evaluate(() => window.client.url), first.wsUrl);
    const online = await page.evaluate(() => window.log.connection.filter((event) => event.state === 'online'));
    assert.deepEqual(online.map((event) => event.url), [first.wsUrl], 'online once, on the first edge');

    // First edge alive: it is the one that stores the message.
    const early = await page.evaluate(() => window.client.send('room', { text: 'while the first is up' }));
    await h.until(page, (id) => window.client.rows('room').find((row) => row.id === id)?.state === 'sequenced', early, { what: 'sequenced on the first edge' });
    assert.ok(idsOf(await h.storedMessages(page, first, 'room')).includes(early), 'stored on the first edge');
    assert.ok(!idsOf(await h.storedMessages(page, second, 'room')).includes(early), 'not on the second edge');

    // Kill it and queue a message at once: the core reconnects (its backoff), the SDK picks the
    // second URL, the outbox is resent there.
    await first.stop('SIGKILL');
    const queued = await page.evaluate(() => window.client.send('room', { text: 'after the first died' }));
    assert.equal(await state(page, queued), 'queued');
    await h.until(page, (id) => window.client.rows('room').find((row) => row.id === id)?.state === 'sequenced', queued, { what: 'the queued message sequenced on the second edge' });
    await h.until(page, () => window.client.connectionState() === 'online', null, { what: 'online again' });
    assert.equal(await page.evaluate(() => window.client.url), second.wsUrl);
    const events = await page.evaluate(() => window.log.connection);
    const afterKill = events.slice(events.findIndex((event) => event.state === 'offline'));
    assert.ok(afterKill.some((event) => event.state === 'connecting' && event.url === second.wsUrl), JSON.stringify(afterKill));
    assert.equal(afterKill.findLast((event) => event.state === 'online')?.url, second.wsUrl);

    const atSecond = await h.storedMessages(page, second, 'room');
    assert.equal(idsOf(atSecond).filter((id) => id === queued).length, 1, 'stored once on the second edge');
    assert.equal(atSecond.find((msg) => msg.id === queued).body.text, 'after the first died');
    assert.ok(!idsOf(atSecond).includes(early), 'the first edge\'s message is not on the second (independent edges)');
    await h.screenshot(page, 'sdk-failover');
  } finally {
    await profile.close();
  }
});

test('a single URL string works as before: url and urls name it', { timeout: 60000 }, async () => {
  const profile = await h.launchProfile('failover-single');
  try {
    const { page } = await h.openClient(profile.context, second, { token: 'dev:dave' });
    await h.until(page, () => window.client.connectionState() === 'online', null, { what: 'online' });
    assert.equal(await page.evaluate(() => window.client.url), second.wsUrl);
    assert.deepEqual(await page.evaluate(() => window.client.urls), [second.wsUrl]);
    const id = await page.evaluate(() => window.client.send('room', { text: 'single' }));
    await h.until(page, (i) => window.client.rows('room').find((row) => row.id === i)?.state === 'sequenced', id, { what: 'sequenced' });
  } finally {
    await profile.close();
  }
});

test('connect refuses an empty list of URLs', { timeout: 60000 }, async () => {
  const profile = await h.launchProfile('failover-empty');
  try {
    const page = await profile.context.newPage();
    await page.goto(`${second.url}/`);
    await page.waitForFunction(() => window.pageReady === true);
    const error = await page.evaluate(() => window.start({ token: 'dev:erin', url: [] }).then(() => null, (e) => e.message));
    assert.match(error ?? '', /url must be a WebSocket URL or a non-empty list/);
  } finally {
    await profile.close();
  }
});

test('two relays of one root: the outbox resent through the second relay, each id stored once at the root', { timeout: 180000 }, async () => {
  const made = [];
  const tempDir = (name) => {
    const dir = h.tempDir(`failover-${name}`);
    made.push(dir);
    return dir;
  };
  const relay = (node, upstream) => {
    const data = tempDir(node);
    const tokenFile = join(data, 'node-token');
    writeFileSync(tokenFile, `dev-node:${node}\n`);
    return new h.Edge({ data, web, args: ['--node', node, '--upstream', upstream, '--upstream-token-file', tokenFile] }).start();
  };
  let root;
  let relayA;
  let relayB;
  let proxy;
  let profile;
  try {
    root = await new h.Edge({ data: tempDir('root'), web, args: ['--node', 'root'] }).start();
    relayA = await relay('relay-a', root.wsUrl);
    relayB = await relay('relay-b', root.wsUrl);
    // The browser reaches relay A through a proxy of this test's, to lose A's answers on purpose.
    proxy = await new TcpProxy(relayA.port).start();
    profile = await h.launchProfile('failover-relays');
    // The page comes from relay B, so it outlives relay A.
    const { page } = await h.openClient(profile.context, relayB, { token: 'dev:frank', url: [proxy.wsUrl, relayB.wsUrl] });
    await h.until(page, () => window.client.connectionState() === 'online', null, { what: 'online' });
    assert.equal(await page.evaluate(() => window.client.url), proxy.wsUrl, 'on relay A first');
    // A relay acks without seq: the seq comes with the root's msg, to the conversation's subscribers.
    await page.evaluate(() => window.client.subscribe('room'));
    const sequenced = (id, what) => h.until(page, (i) => window.client.rows('room').find((row) => row.id === i)?.state === 'sequenced', id, { what });

    const first = await page.evaluate(() => window.client.send('room', { text: 'through relay A' }));
    await sequenced(first, 'the first message sequenced through relay A');

    // Relay A stores and forwards the next one, but its ack never reaches the browser: the
    // message stays in the outbox, queued, while the root has it.
    proxy.swallowReplies();
    const lost = await page.evaluate(() => window.client.send('room', { text: 'its ack was lost' }));
    const deadline = Date.now() + h.WAIT_MS;
    while (!idsOf(await h.storedMessages(page, root, 'room')).includes(lost)) {
      assert.ok(Date.now() < deadline, 'the root never stored the message relay A forwarded');
      await new Promise((resolveWait) => setTimeout(resolveWait, 100));
    }
    assert.equal(await state(page, lost), 'queued', 'no ack reached the browser');

    // Relay A dies; the next connection goes to relay B, which gets the outbox again.
    const killedAt = Date.now();
    await relayA.stop('SIGKILL');
    const after = await page.evaluate(() => window.client.send('room', { text: 'after relay A died' }));
    await sequenced(lost, 'the resent message sequenced through relay B');
    await sequenced(after, 'the next message sequenced through relay B');
    console.log(`both sequenced through relay B ${Date.now() - killedAt} ms after relay A was killed`);
    assert.equal(await page.evaluate(() => window.client.url), relayB.wsUrl);
    const events = await page.evaluate(() => window.log.connection);
    assert.equal(events.findLast((event) => event.state === 'online')?.url, relayB.wsUrl, JSON.stringify(events));

    const atRoot = await h.storedMessages(page, root, 'room');
    assert.deepEqual(idsOf(atRoot), [first, lost, after], 'the root stores each id once, in one order');
    assert.deepEqual(atRoot.map((msg) => msg.seq), [1, 2, 3]);
    assert.equal(atRoot[1].body.text, 'its ack was lost');
    assert.deepEqual(idsOf(await h.storedMessages(page, relayB, 'room')), idsOf(atRoot), 'relay B\'s log is the root\'s');
    const rows = await h.rowsOf(page);
    assert.deepEqual(rows.map((row) => row.id), idsOf(atRoot), 'each id one row, in the root\'s order');
    assert.deepEqual(rows.map((row) => row.seq), [1, 2, 3]);
    await h.screenshot(page, 'sdk-failover-relays');
  } finally {
    await profile?.close();
    for (const edge of [relayA, relayB, root]) await edge?.stop();
    await proxy?.stop();
    for (const dir of made) rmSync(dir, { recursive: true, force: true });
  }
});
