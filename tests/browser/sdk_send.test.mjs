// Browser SDK, online: two users in two browser profiles send to each other through the real
// edge; rows move through their states, receipts and history work.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './sdk_harness.mjs';

let edge;
h.edgeForSuite((started) => { edge = started; });  // started before the tests, stopped after

test('two users exchange messages; rows go sequenced, delivered, read; history pages', { timeout: 120000 }, async () => {
  const alice = await h.launchProfile('send-alice');
  const bob = await h.launchProfile('send-bob');
  try {
    const a = await h.openClient(alice.context, edge, { token: 'dev:alice' });
    const b = await h.openClient(bob.context, edge, { token: 'dev:bob' });
    assert.equal(a.role, 'leader');
    assert.equal(b.role, 'leader');
    for (const { page } of [a, b]) {
      await page.evaluate(() => window.client.subscribe('room', { after: 0 }));
      await h.until(page, () => window.client.connectionState() === 'online', null, { what: 'online' });
    }
    assert.equal(await a.page.evaluate(() => window.client.user), 'alice');

    // alice sends three; send() returns the id at once and the row is queued right away.
    const sent = await a.page.evaluate(() => ['one', 'two', 'three'].map((text) => {
      const id = window.client.send('room', { text });
      return { id, rowState: window.client.rows('room').find((row) => row.id === id)?.state };
    }));
    assert.deepEqual(sent.map((s) => s.rowState), ['queued', 'queued', 'queued']);
    const ids = sent.map((s) => s.id);

    await h.until(b.page, (n) => window.log.messages.length >= n, 3, { what: 'bob receives 3' });
    const atBob = await b.page.evaluate(() => window.log.messages.map((m) => ({ id: m.id, seq: m.seq, from: m.from, text: m.body.text })));
    assert.deepEqual(atBob.map((m) => m.id), ids);
    assert.deepEqual(atBob.map((m) => m.seq), [1, 2, 3]);
    assert.ok(atBob.every((m) => m.from === 'alice'));
    assert.deepEqual(atBob.map((m) => m.text), ['one', 'two', 'three']);

    // bob's delivered receipts (automatic) make alice's rows delivered.
    await h.until(a.page, (list) => list.every((id) => window.client.rows('room').find((row) => row.id === id)?.state === 'delivered'), ids, { what: "alice's rows delivered" });
    const aliceRows = await h.rowsOf(a.page);
    assert.deepEqual(aliceRows.map((row) => row.seq), [1, 2, 3]);
    for (const row of aliceRows) {
      assert.equal(row.own, true);
      assert.equal(row.from, 'alice');
      assert.match(row.trace, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
      assert.ok(row.times.queued <= row.times.sequenced && row.times.sequenced <= row.times.delivered, JSON.stringify(row.times));
    }
    // The states each of alice's rows went through, in order, as her 'row' events told them.
    const history = await a.page.evaluate((list) => list.map((id) => window.log.rows.filter((row) => row.id === id).map((row) => row.state)), ids);
    for (const states of history) assert.deepEqual([...new Set(states)], ['queued', 'sequenced', 'delivered']);

    // bob reads up to 2: alice's first two rows become read, the third stays delivered.
    assert.equal(await b.page.evaluate(() => window.client.unread('room')), 3);
    await b.page.evaluate(() => window.client.markRead('room', 2));
    await h.until(a.page, () => window.client.rows('room').filter((row) => row.state === 'read').length === 2, null, { what: 'read receipts' });
    assert.deepEqual((await h.rowsOf(a.page)).map((row) => row.state), ['read', 'read', 'delivered']);
    assert.equal(await b.page.evaluate(() => window.client.unread('room')), 1);
    const bobRows = await h.rowsOf(b.page);
    assert.deepEqual(bobRows.map((row) => row.state), ['read', 'read', 'delivered']);
    assert.ok(bobRows.every((row) => row.own === false && row.from === 'alice'));
    const receipts = await a.page.evaluate(() => window.log.receipts.filter((r) => r.user === 'bob' && r.kind === 'read'));
    assert.deepEqual(receipts.map((r) => r.seq), [2]);

    // bob answers; alice sees it as someone else's row.
    const reply = await b.page.evaluate(() => window.client.send('room', { text: 'got them' }));
    await h.until(a.page, (id) => window.client.rows('room').some((row) => row.id === id), reply, { what: "bob's reply at alice" });
    const replyRow = (await h.rowsOf(a.page)).find((row) => row.id === reply);
    assert.equal(replyRow.seq, 4);
    assert.equal(replyRow.from, 'bob');
    assert.equal(replyRow.own, false);
    assert.deepEqual(replyRow.body, { text: 'got them' });
    assert.deepEqual(await a.page.evaluate(() => window.client.present('room').sort()), ['alice', 'bob']);

    // history: the page just below seq 4, then the newest two.
    const below = await a.page.evaluate(() => window.client.history('room', { before: 4, limit: 2 }));
    assert.deepEqual(below.msgs.map((m) => m.seq), [2, 3]);
    assert.equal(below.more, true);
    const newest = await b.page.evaluate(() => window.client.history('room', { limit: 2 }));
    assert.deepEqual(newest.msgs.map((m) => m.id), [ids[2], reply]);

    await h.screenshot(a.page, 'sdk-send-alice');
    await h.screenshot(b.page, 'sdk-send-bob');
  } finally {
    await alice.close();
    await bob.close();
  }
});

test('a send to an invalid conversation fails at once; history rejects with the core code', { timeout: 60000 }, async () => {
  const carol = await h.launchProfile('send-carol');
  try {
    const c = await h.openClient(carol.context, edge, { token: 'dev:carol' });
    await h.until(c.page, () => window.client.connectionState() === 'online', null, { what: 'online' });
    // An invalid conversation name never enters the outbox: failed with the core's error.
    const bad = await c.page.evaluate(() => {
      const id = window.client.send('no spaces allowed', { text: 'x' });
      return window.client.rows('no spaces allowed').find((row) => row.id === id);
    });
    assert.equal(bad.state, 'failed');
    assert.equal(bad.error.code, 'invalid');
    // history offline-or-bad rejects with the core's error code.
    const refused = await c.page.evaluate(() => window.client.history('bad conv').then(() => null, (e) => e.code));
    assert.equal(refused, 'invalid');
  } finally {
    await carol.close();
  }
});
