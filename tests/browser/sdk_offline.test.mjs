// Browser SDK, offline outbox: bob sends while offline, reloads offline (his queued rows come
// back from IndexedDB), comes back online: each message reaches alice once, in order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './sdk_harness.mjs';

const ORDER = ['queued', 'stored', 'sequenced', 'delivered', 'read'];

let edge;
h.edgeForSuite((started) => { edge = started; });  // started before the tests, stopped after

test('offline sends survive a reload and arrive once, in order', { timeout: 120000 }, async () => {
  const alice = await h.launchProfile('offline-alice');
  const bob = await h.launchProfile('offline-bob');
  try {
    const a = await h.openClient(alice.context, edge, { token: 'dev:alice' });
    const b = await h.openClient(bob.context, edge, { token: 'dev:bob' });
    for (const { page } of [a, b]) {
      await page.evaluate(() => window.client.subscribe('room', { after: 0 }));
      await h.until(page, () => window.client.connectionState() === 'online', null, { what: 'online' });
    }
    // One message while online, so bob's cursor and cache are not empty.
    const first = await a.page.evaluate(() => window.client.send('room', { text: 'before' }));
    await h.until(b.page, (id) => window.client.rows('room').some((row) => row.id === id), first, { what: 'first message at bob' });

    await bob.context.setOffline(true);
    await h.until(b.page, () => window.client.connectionState() !== 'online', null, { what: 'bob offline' });
    const ids = await b.page.evaluate(() => ['o1', 'o2', 'o3'].map((text) => window.client.send('room', { text })));
    assert.equal(new Set(ids).size, 3);
    // Let the outbox reach IndexedDB before the reload (the SDK writes it after each change).
    await h.until(b.page, (list) => new Promise((resolve) => {
      const open = indexedDB.open('waymark');
      open.onsuccess = () => {
        const tx = open.result.transaction('state', 'readonly');
        const all = tx.objectStore('state').getAll();
        all.onsuccess = () => { open.result.close(); resolve(all.result.some((r) => list.every((id) => r.state.includes(id)))); };
      };
      open.onerror = () => resolve(false);
    }), ids, { what: 'the outbox persisted' });

    // Reload while still offline: the page comes from the service worker's cache, the rows from IndexedDB.
    await b.page.reload();
    await b.page.waitForFunction(() => window.pageReady === true);
    assert.equal(await b.page.evaluate(() => navigator.onLine), false);
    await h.startClient(b.page, { token: 'dev:bob', url: edge.wsUrl });
    const restored = await h.rowsOf(b.page);
    assert.deepEqual(restored.map((row) => row.id), [first, ...ids]);
    assert.deepEqual(restored.map((row) => row.state), ['delivered', 'queued', 'queued', 'queued']);
    assert.deepEqual(restored.slice(1).map((row) => row.body.text), ['o1', 'o2', 'o3']);
    assert.equal(await b.page.evaluate(() => window.client.user), 'bob');
    await h.screenshot(b.page, 'sdk-offline-bob-reloaded');
    // Nothing reached alice while bob was offline.
    assert.equal(await a.page.evaluate(() => window.log.messages.length), 1);

    await bob.context.setOffline(false);
    await h.until(a.page, () => window.log.messages.length >= 4, null, { what: "bob's 3 messages at alice" });
    await h.until(b.page, (list) => list.every((id) => window.client.rows('room').find((row) => row.id === id)?.state === 'delivered'), ids, { what: "bob's rows delivered" });

    const atAlice = await a.page.evaluate(() => window.log.messages.map((m) => ({ id: m.id, seq: m.seq, text: m.body.text })));
    assert.deepEqual(atAlice.map((m) => m.id), [first, ...ids], 'each once, in send order');
    assert.deepEqual(atAlice.map((m) => m.seq), [1, 2, 3, 4]);
    const stored = await h.storedMessages(a.page, edge, 'room');
    assert.deepEqual(stored.map((m) => m.id), [first, ...ids], 'stored once each');

    // Bob's rows after the reload only moved forward: queued (as restored), then the 'row'
    // events: sequenced, then delivered.
    const events = await b.page.evaluate((list) => list.map((id) => window.log.rows.filter((row) => row.id === id).map((row) => row.state)), ids);
    for (const states of events.map((list) => ['queued', ...list])) {
      const ranks = states.map((state) => ORDER.indexOf(state));
      assert.deepEqual(ranks, [...ranks].sort((x, y) => x - y), `never backwards: ${states}`);
      assert.deepEqual([...new Set(states)], ['queued', 'sequenced', 'delivered']);
    }
    const bobRows = await h.rowsOf(b.page);
    assert.deepEqual(bobRows.map((row) => row.seq), [1, 2, 3, 4]);
    for (const row of bobRows.slice(1)) assert.ok(row.times.queued < row.times.sequenced, JSON.stringify(row.times));
    await h.screenshot(b.page, 'sdk-offline-bob-delivered');
    await h.screenshot(a.page, 'sdk-offline-alice');
  } finally {
    await alice.close();
    await bob.close();
  }
});
