// Browser SDK, failover: connect({url: [first, second]}) uses the first edge while it is up; when
// it dies (SIGKILL) the core's reconnect goes to the next URL, and the message queued meanwhile
// is resent there and acknowledged (read back from the second edge itself). For now the two
// edges are independent (each --dev, its own data dir): no relay joins them yet.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import * as h from './sdk_harness.mjs';

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
