// Browser test of the incident workflow (web/incident.js, incident-panel.js) on the real edge:
// alice declares an incident, bob acknowledges it by reading, status updates are pinned at the
// top for both, and resolving downloads the timeline, whose lines the test checks against the
// edge's stored messages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { storedMessages } from './sdk_harness.mjs';
import { appSuite, newUser as newScreenUser, openSignIn, signIn } from './app_screens.mjs';

const suite = appSuite('incident');

// A signed-in user (online), at desktop width.
async function newUser(name) {
  const user = await newScreenUser(suite.browser);
  await openSignIn(user.page, suite.edge);
  await signIn(user.page, name);
  return user;
}

const line = (page, text) => page.locator('li.msg').filter({ has: page.locator(`.msg-text:text-is(${JSON.stringify(text)})`) });
const panel = (page) => page.locator('#incident-panel');
const pinned = (page) => panel(page).locator('.inc-update-status').allTextContents();

test('declare, acknowledge, pinned status updates, resolve with the timeline downloaded', { timeout: 60_000 }, async () => {
  const alice = await newUser('alice');
  const bob = await newUser('bob');

  // An ordinary conversation has no incident strip.
  await alice.page.locator('#chat-title', { hasText: '#incidents' }).waitFor();
  assert.equal(await panel(alice.page).isVisible(), false);

  await alice.page.getByRole('button', { name: 'Declare an incident' }).click();
  await alice.page.getByRole('button', { name: 'Declare', exact: true }).click();
  await alice.page.locator('#declare-error', { hasText: 'Give the incident a title.' }).waitFor();
  await alice.page.locator('#declare-name').fill('Checkout errors');
  await alice.page.locator('#declare-severity').selectOption('SEV1');
  await alice.page.getByRole('button', { name: 'Declare', exact: true }).click();
  const title = await alice.page.locator('#chat-title', { hasText: /^#inc-\d{8}-checkout-errors$/ }).textContent();
  const conv = title.slice(1);
  assert.ok((await alice.page.locator('#conv-list button[data-conv]').evaluateAll((b) => b.map((x) => x.dataset.conv))).includes(conv));
  await panel(alice.page).waitFor();
  assert.equal(await panel(alice.page).locator('.inc-sev').textContent(), 'SEV1');
  assert.equal(await panel(alice.page).locator('.inc-title').textContent(), 'Checkout errors');
  assert.equal(await panel(alice.page).locator('.inc-status').textContent(), 'Status: investigating');
  await panel(alice.page).locator('.inc-acks', { hasText: 'Not acknowledged yet' }).waitFor();

  // Bob joins the incident's conversation; reading the declaration acknowledges it.
  await bob.page.locator('#join-name').fill(conv);
  await bob.page.locator('#join-name').press('Enter');
  await line(bob.page, 'SEV1 incident declared: Checkout errors').waitFor();
  await panel(bob.page).locator('.inc-title', { hasText: 'Checkout errors' }).waitFor();
  await panel(alice.page).locator('.inc-acks', { hasText: /^Acknowledged by bob$/ }).waitFor();

  await bob.page.locator('#composer-input').fill('rolling back deploy 4711');
  await bob.page.locator('#composer-input').press('Enter');
  await line(alice.page, 'rolling back deploy 4711').waitFor();

  // Status updates: pinned at the top, newest first, for both.
  for (const [status, note] of [['identified', 'bad deploy 4711'], ['monitoring', 'error rate back to normal']]) {
    await panel(alice.page).locator('.inc-status-field').selectOption(status);
    await panel(alice.page).locator('.inc-note-field').fill(note);
    await panel(alice.page).getByRole('button', { name: 'Post update' }).click();
    await panel(bob.page).locator('.inc-status', { hasText: `Status: ${status}` }).waitFor();
  }
  assert.deepEqual(await pinned(bob.page), ['monitoring', 'identified']);
  assert.deepEqual(await panel(bob.page).locator('.inc-update-note').allTextContents(), ['error rate back to normal', 'bad deploy 4711']);
  // Pinned: the strip sits above the scrolling history, not in it.
  assert.equal(await bob.page.locator('#scroller #incident-panel').count(), 0);
  assert.equal(await panel(bob.page).isVisible(), true);

  // Resolving downloads the timeline once the resolution is stored.
  const [download] = await Promise.all([
    alice.page.waitForEvent('download'),
    panel(alice.page).getByRole('button', { name: 'Resolve and export the timeline' }).click(),
  ]);
  assert.equal(download.suggestedFilename(), `${conv}-timeline.txt`);
  const file = readFileSync(await download.path(), 'utf8');
  const stored = await storedMessages(alice.page, suite.edge, conv);
  const at = (i) => new Date(stored[i].ts).toISOString();
  assert.equal(stored.length, 5);
  assert.equal(file, [
    'Incident: Checkout errors',
    `Conversation: #${conv}`,
    'Severity: SEV1',
    'Status: resolved',
    `Declared by alice at ${at(0)}`,
    '',
    'Timeline (UTC):',
    `${at(0)}  alice  [declared SEV1] Checkout errors`,
    `${at(1)}  bob  rolling back deploy 4711`,
    `${at(2)}  alice  [status: identified] bad deploy 4711`,
    `${at(3)}  alice  [status: monitoring] error rate back to normal`,
    `${at(4)}  alice  [status: resolved]`,
    '',
  ].join('\n'));
  assert.deepEqual(stored.map((m) => m.body.kind ?? 'text'), ['incident-declared', 'text', 'incident-status', 'incident-status', 'incident-status']);

  // Resolved, for both: no more controls; the timeline can be exported again.
  await panel(bob.page).locator('.inc-status', { hasText: 'Status: resolved' }).waitFor();
  assert.equal(await panel(bob.page).locator('.inc-update-form').isVisible(), false);
  assert.equal(await panel(bob.page).locator('.inc-resolve').isVisible(), false);
  const [again] = await Promise.all([
    bob.page.waitForEvent('download'),
    panel(bob.page).getByRole('button', { name: 'Export the timeline' }).click(),
  ]);
  assert.equal(readFileSync(await again.path(), 'utf8'), file, 'both users export the same timeline');

  assert.deepEqual([...alice.page.problems, ...bob.page.problems], []);
  await alice.context.close();
  await bob.context.close();
});
