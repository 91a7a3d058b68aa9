// Browser SDK across an edge crash: the edge is SIGKILLed mid-conversation and restarted on the
// same port and data; both tabs reconnect with backoff and resume with no gap and no repeat.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './sdk_harness.mjs';

let edge;
h.edgeForSuite((started) => { edge = started; });  // started before the tests, stopped after

const seqsOf = (page) => page.evaluate(() => window.log.messages.filter((m) => m.conv === 'room').map((m) => m.seq));
const idsOf = (page) => page.evaluate(() => window.log.messages.filter((m) => m.conv === 'room').map((m) => m.id));

test('edge SIGKILLed and restarted: reconnect with backoff, resume without gap or repeat', { timeout: 180000 }, async () => {
  const alice = await h.launchProfile('restart-alice');
  const bob = await h.launchProfile('restart-bob');
  try {
    const a = await h.openClient(alice.context, edge, { token: 'dev:alice' });
    const b = await h.openClient(bob.context, edge, { token: 'dev:bob' });
    for (const { page } of [a, b]) {
      await page.evaluate(() => window.client.subscribe('room', { after: 0 }));
      await h.until(page, () => window.client.connectionState() === 'online', null, { what: 'online' });
    }
    await a.page.evaluate(() => { window.client.send('room', { text: 'a1' }); window.client.send('room', { text: 'a2' }); });
    await b.page.evaluate(() => { window.client.send('room', { text: 'b1' }); window.client.send('room', { text: 'b2' }); });
    for (const { page } of [a, b]) await h.until(page, () => window.log.messages.length >= 4, null, { what: '4 messages' });

    await edge.stop('SIGKILL');
    for (const { page } of [a, b]) {
      await h.until(page, () => window.client.connectionState() !== 'online', null, { what: 'the crash noticed' });
    }
    // While the edge is down: alice queues one, and both keep retrying with growing waits.
    const whileDown = await a.page.evaluate(() => window.client.send('room', { text: 'a3 while down' }));
    for (const { page } of [a, b]) {
      await h.until(page, () => window.log.connection.filter((e) => e.state === 'offline' && e.nextRetryAt).length >= 3, null, { what: 'three backed-off retries' });
    }
    const retries = await a.page.evaluate(() => window.log.connection.filter((e) => e.state === 'offline' && e.nextRetryAt));
    assert.ok(retries.every((e) => e.reason), 'each offline event says why');

    await edge.start();  // same port, same data
    for (const { page } of [a, b]) {
      await h.until(page, () => window.client.connectionState() === 'online', null, { what: 'reconnected', timeout: 60000 });
    }
    await h.until(b.page, (id) => window.log.messages.some((m) => m.id === id), whileDown, { what: 'the queued message after the restart' });
    await b.page.evaluate(() => window.client.send('room', { text: 'b3 after' }));
    await a.page.evaluate(() => window.client.send('room', { text: 'a4 after' }));
    for (const { page } of [a, b]) await h.until(page, () => window.log.messages.length >= 7, null, { what: '7 messages' });

    const stored = await h.storedMessages(a.page, edge, 'room');
    assert.deepEqual(stored.map((m) => m.seq), [1, 2, 3, 4, 5, 6, 7]);
    for (const { page } of [a, b]) {
      assert.deepEqual(await seqsOf(page), [1, 2, 3, 4, 5, 6, 7], 'no gap, no repeat');
      assert.deepEqual(await idsOf(page), stored.map((m) => m.id));
      const rows = await h.rowsOf(page);
      assert.deepEqual(rows.map((row) => row.seq), [1, 2, 3, 4, 5, 6, 7]);
      assert.ok(rows.every((row) => row.state !== 'queued' && row.state !== 'failed'));
    }
    assert.deepEqual(stored.map((m) => m.body.text).filter((t) => t.startsWith('a')), ['a1', 'a2', 'a3 while down', 'a4 after']);
    await h.screenshot(a.page, 'sdk-restart-alice');
  } finally {
    await alice.close();
    await bob.close();
  }
});
