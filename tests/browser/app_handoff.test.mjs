// Browser test of the shift handoff (web/handoff.js, handoff-panel.js) on the real edge: alice,
// going off shift, posts a structured note to #handoff naming bob; bob reads it and
// acknowledges it; alice sees when he read it and when he acknowledged it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { storedMessages } from './sdk_harness.mjs';
import { appSuite, newUser as newScreenUser, openConv, openSignIn, signIn } from './app_screens.mjs';
import { formatClock } from '../../web/names.js';

const suite = appSuite('handoff');

// A signed-in user (in #handoff), at desktop width.
async function newUser(name) {
  const user = await newScreenUser(suite.browser);
  await openSignIn(user.page, suite.edge);
  await signIn(user.page, name);
  await openConv(user.page, 'handoff');
  return user;
}

// The clock texts a time between `from` and now may show (a minute may turn meanwhile).
function clocksSince(from) {
  const now = Date.now();
  return new Set([formatClock(from, now), formatClock(now, now)]);
}

test('a handoff note: posted, read and acknowledged by the incoming owner, seen by the outgoing one',
  { timeout: 60_000 }, async () => {
    const alice = await newUser('alice');
    const panel = alice.page.locator('#handoff-panel');
    await panel.waitFor();
    assert.equal(await panel.locator('.ho-card').isVisible(), false, 'no note yet');

    await panel.getByRole('button', { name: 'Write a handoff note' }).click();
    assert.equal(await alice.page.evaluate(() => document.activeElement?.id), 'ho-items-field');
    await panel.getByRole('button', { name: 'Post handoff' }).click();
    await panel.locator('.ho-error', { hasText: 'Name the incoming owner.' }).waitFor();
    await panel.getByLabel('Incoming owner').fill('alice');
    await panel.getByRole('button', { name: 'Post handoff' }).click();
    await panel.locator('.ho-error', { hasText: 'someone else' }).waitFor();

    await panel.getByLabel('Open items, one per line').fill('rotate the TLS certs\n\nwatch the queue depth');
    await panel.getByLabel('Risks, one per line').fill('disk on db-2 at 85%');
    await panel.getByLabel('Incoming owner').fill('bob');
    const posted = Date.now();
    await panel.getByRole('button', { name: 'Post handoff' }).click();
    assert.equal(await panel.locator('.ho-form').isVisible(), false);
    await panel.locator('.ho-reads', { hasText: 'Not read yet' }).waitFor();
    assert.equal(await panel.locator('.ho-acks').textContent(), 'Waiting for bob to acknowledge');
    assert.equal(await panel.locator('.ho-ack').isVisible(), false, 'the author has nothing to acknowledge');
    assert.deepEqual(await panel.locator('.ho-items li').allTextContents(), ['rotate the TLS certs', 'watch the queue depth']);

    // Bob, coming on shift, opens #handoff: the note, and his Acknowledge button.
    const bob = await newUser('bob');
    const bobPanel = bob.page.locator('#handoff-panel');
    await bobPanel.locator('.ho-head', { hasText: /^Handoff from alice to bob, \d\d:\d\d$/ }).waitFor();
    assert.deepEqual(await bobPanel.locator('.ho-items li').allTextContents(), ['rotate the TLS certs', 'watch the queue depth']);
    assert.deepEqual(await bobPanel.locator('.ho-risks li').allTextContents(), ['disk on db-2 at 85%']);
    const ack = bobPanel.getByRole('button', { name: 'Acknowledge handoff' });
    await ack.waitFor();

    // Alice sees when he read it: the time her tab heard his read receipt.
    const reads = await panel.locator('.ho-reads', { hasText: /^Read by bob at / }).textContent();
    assert.ok(clocksSince(posted).has(reads.replace('Read by bob at ', '')), reads);

    await ack.click();
    await ack.waitFor({ state: 'hidden' });
    const acked = await panel.locator('.ho-acks', { hasText: /^Acknowledged by bob at / }).textContent();
    const stored = await storedMessages(alice.page, suite.edge, 'handoff');
    assert.deepEqual(stored.map((m) => [m.from, m.body.kind]), [['alice', 'handoff'], ['bob', 'handoff-ack']]);
    assert.deepEqual(stored[0].body.open_items, ['rotate the TLS certs', 'watch the queue depth']);
    assert.deepEqual(stored[0].body.risks, ['disk on db-2 at 85%']);
    assert.equal(stored[0].body.owner, 'bob');
    assert.equal(stored[1].body.ref, stored[0].id);
    assert.equal(acked, `Acknowledged by bob at ${formatClock(stored[1].ts)}`, 'the time the edge stored the acknowledgement');
    await bobPanel.locator('.ho-acks', { hasText: 'Acknowledged by bob at' }).waitFor();

    // Another conversation has no handoff strip.
    await alice.page.locator('#conv-list button[data-conv="ops"]').click();
    await alice.page.locator('#chat-title', { hasText: '#ops' }).waitFor();
    assert.equal(await panel.isVisible(), false);

    assert.deepEqual([...alice.page.problems, ...bob.page.problems], []);
    await alice.context.close();
    await bob.context.close();
  });
