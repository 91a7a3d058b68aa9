// Browser SDK, two tabs of one profile: one leader tab owns the session and the socket, the
// other forwards to it; a message queued offline is sent exactly once and both tabs show it;
// when the leader tab closes, the other takes over the persisted outbox.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './sdk_harness.mjs';

let edge;
h.edgeForSuite((started) => { edge = started; });  // started before the tests, stopped after

const rowOf = (page, id) => page.evaluate((i) => window.client.rows(window.conv).find((row) => row.id === i) ?? null, id);

async function twoTabs(profile, conv) {
  const first = await h.openClient(profile.context, edge, { token: 'dev:bob', conv });
  const second = await h.openClient(profile.context, edge, { token: 'dev:bob', conv });
  return [first, second];
}

async function runTwoTabs(name, { withoutLocks }) {
  const conv = `room-${name}`;
  const alice = await h.launchProfile(`${name}-alice`);
  const bob = await h.launchProfile(`${name}-bob`);
  try {
    if (withoutLocks) {
      await bob.context.addInitScript(() => Object.defineProperty(Navigator.prototype, 'locks', { get: () => undefined }));
    }
    const a = await h.openClient(alice.context, edge, { token: 'dev:alice', conv });
    await a.page.evaluate((c) => window.client.subscribe(c, { after: 0 }), conv);
    const [leader, follower] = await twoTabs(bob, conv);
    assert.equal(leader.role, 'leader');
    assert.equal(follower.role, 'follower');
    if (withoutLocks) assert.equal(await leader.page.evaluate(() => navigator.locks), undefined);
    await follower.page.evaluate((c) => window.client.subscribe(c, { after: 0 }), conv);
    await h.until(follower.page, () => window.client.connectionState() === 'online', null, { what: 'the follower sees the leader online' });

    // Offline; the follower tab queues one message: both tabs show the row at once.
    await bob.context.setOffline(true);
    await h.until(leader.page, () => window.client.connectionState() !== 'online', null, { what: 'offline' });
    const m1 = await follower.page.evaluate((c) => window.client.send(c, { text: 'from the second tab' }), conv);
    assert.equal((await rowOf(follower.page, m1)).state, 'queued');
    await h.until(leader.page, (id) => window.client.rows(window.conv).some((row) => row.id === id && row.state === 'queued' && row.trace), m1, { what: 'the row in the leader tab' });
    await h.until(follower.page, (id) => window.client.rows(window.conv).some((row) => row.id === id && row.trace), m1, { what: "the leader's row in the follower" });
    await h.screenshot(follower.page, `${name}-follower-queued`);

    await bob.context.setOffline(false);
    await h.until(a.page, (id) => window.log.messages.some((m) => m.id === id), m1, { what: 'm1 at alice' });
    for (const tab of [leader, follower]) {
      await h.until(tab.page, (id) => ['delivered', 'read'].includes(window.client.rows(window.conv).find((row) => row.id === id)?.state), m1, { what: 'm1 delivered in both tabs' });
      const row = await rowOf(tab.page, m1);
      assert.equal(row.seq, 1);
      assert.equal(row.from, 'bob');
      assert.deepEqual(row.body, { text: 'from the second tab' });
    }

    // Offline again, the follower queues m2, then the leader tab closes: the follower takes the
    // session over with m2 in its outbox, and sends it once when the network is back.
    await bob.context.setOffline(true);
    await h.until(leader.page, () => window.client.connectionState() !== 'online', null, { what: 'offline again' });
    const m2 = await follower.page.evaluate((c) => window.client.send(c, { text: 'queued, then the leader tab closed' }), conv);
    await h.until(leader.page, (id) => window.client.rows(window.conv).some((row) => row.id === id && row.trace), m2, { what: 'm2 in the leader tab' });
    await leader.page.close();
    await h.until(follower.page, () => window.client.role === 'leader', null, { what: 'the second tab leads' });
    assert.equal((await rowOf(follower.page, m2)).state, 'queued');
    await bob.context.setOffline(false);
    await h.until(a.page, (id) => window.log.messages.some((m) => m.id === id), m2, { what: 'm2 at alice' });
    await h.until(follower.page, (id) => window.client.rows(window.conv).find((row) => row.id === id)?.seq === 2, m2, { what: 'm2 sequenced' });

    const atAlice = await a.page.evaluate(() => window.log.messages.filter((m) => m.conv === window.conv).map((m) => m.id));
    assert.deepEqual(atAlice, [m1, m2], 'each message once at alice');
    const stored = await h.storedMessages(a.page, edge, conv);
    assert.deepEqual(stored.map((m) => m.id), [m1, m2], 'each message stored once');
    assert.deepEqual((await h.rowsOf(follower.page, conv)).map((row) => row.id), [m1, m2]);
    await h.screenshot(follower.page, `${name}-takeover`);
  } finally {
    await alice.close();
    await bob.close();
  }
}

test('two tabs (Web Locks): sent once, shown in both, taken over when the leader closes', { timeout: 120000 }, async () => {
  await runTwoTabs('sdk-tabs', { withoutLocks: false });
});

test('two tabs without Web Locks (BroadcastChannel election): the same', { timeout: 120000 }, async () => {
  await runTwoTabs('sdk-tabs-nolocks', { withoutLocks: true });
});
