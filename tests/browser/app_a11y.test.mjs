// Accessibility of the web app in Chromium: axe-core finds no serious or critical violation on
// any screen (sign-in, a conversation, the lifecycle panel, the incident and handoff strips and
// their forms, the offline banner, the phone-width drawer), and the app works from the keyboard
// alone: sign in, switch conversations, send, retry a failed message.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import {
  appSuite, declareIncident, goOffline, goOnline, newUser, openConv, openDeclareForm, openDrawer,
  openHandoffForm, openSignIn, postHandoff, postIncidentUpdate, signIn,
} from './app_screens.mjs';

const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
const suite = appSuite('a11y');

// axe-core's serious and critical violations on the page as it is now, as readable lines.
async function seriousViolations(page) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.addScriptTag({ path: AXE });
  const violations = await page.evaluate(async () => (await window.axe.run(document, { resultTypes: ['violations'] })).violations);
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact} ${v.id}: ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}

async function assertAccessible(page, screen) {
  assert.deepEqual(await seriousViolations(page), [], `axe on ${screen}`);
}

// Presses Tab until `selector` has the focus (at most `max` times); fails if it never does.
async function tabTo(page, selector, max = 40) {
  for (let i = 0; i < max; i += 1) {
    if (await page.evaluate((s) => document.activeElement?.matches(s) ?? false, selector)) return;
    await page.keyboard.press('Tab');
  }
  assert.fail(`Tab never reached ${selector}`);
}

test('keyboard only: sign in, switch conversations, send, retry; no serious axe violation on the way',
  { timeout: 60_000 }, async () => {
    const { context, page } = await newUser(suite.browser);
    await page.goto(`${suite.edge.url}/`);
    await page.locator('#signin').waitFor();
    await assertAccessible(page, 'the sign-in screen');
    // The name field has the focus on arrival; a bad name is explained, in the alert.
    await page.keyboard.type('no spaces allowed');
    await page.keyboard.press('Enter');
    await page.locator('#signin-error', { hasText: /\S/ }).waitFor();
    await page.locator('#token-signin summary').focus();
    await page.keyboard.press('Enter');  // the token sign-in opens from the keyboard too
    assert.equal(await page.locator('#token-signin').evaluate((el) => el.open), true);
    await assertAccessible(page, 'the sign-in screen with an error and the token field');
    await page.locator('#signin-name').focus();
    await page.keyboard.press('Control+A');
    await page.keyboard.type('kim');
    await page.keyboard.press('Enter');
    await page.locator('#conn-chip[data-state="online"]').waitFor();
    await page.locator('#chat-title', { hasText: '#incidents' }).waitFor();
    await assertAccessible(page, 'an empty conversation');

    // Switch to #ops with Tab and Enter; the message box has the focus after it.
    await tabTo(page, '#conv-list button[data-conv="ops"]');
    await page.keyboard.press('Enter');
    await page.locator('#chat-title', { hasText: '#ops' }).waitFor();
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'composer-input');
    await page.keyboard.type('sent from the keyboard');
    await page.keyboard.press('Enter');
    await page.locator('li.msg.own[data-state="sequenced"] .msg-text', { hasText: 'sent from the keyboard' }).waitFor();
    await assertAccessible(page, 'a conversation with a message');

    // A message too large fails; Tab reaches its Retry button and Enter retries it.
    await page.locator('#composer-input').fill('x'.repeat(70_000));
    await page.keyboard.press('Enter');
    const failed = page.locator('li.msg.own[data-state="failed"]');
    await failed.waitFor();
    await assertAccessible(page, 'a failed message');
    assert.equal(await failed.locator('.msg-error').textContent(), 'Too large to send.');
    await page.locator('#chat-title').focus();
    await tabTo(page, 'li.msg.own[data-state="failed"] .msg-retry');
    await page.keyboard.press('Enter');
    // Retried, it fails again (it cannot shrink), and the line says it was tried again.
    await failed.locator('.msg-error', { hasText: /^Tried again: Too large to send\.$/ }).waitFor();

    // The lifecycle panel from the keyboard, and Escape back to the line's button.
    await page.locator('li.msg.own[data-state="sequenced"] .msg-meta').focus();
    await page.keyboard.press('Enter');
    await page.locator('#lifecycle').waitFor();
    await assertAccessible(page, 'the lifecycle panel');
    await page.keyboard.press('Escape');
    await page.locator('#lifecycle').waitFor({ state: 'hidden' });
    assert.equal(await page.evaluate(() => document.activeElement?.classList.contains('msg-meta')), true);
    assert.deepEqual(page.problems, []);
    await context.close();
  });

test('no serious axe violation on the incident and handoff screens, offline, and at phone width',
  { timeout: 60_000 }, async () => {
    const { context, page } = await newUser(suite.browser);
    await openSignIn(page, suite.edge);
    await signIn(page, 'lee');

    await openDeclareForm(page);
    await assertAccessible(page, 'the declare form');
    await declareIncident(page, 'Queue backlog');
    await postIncidentUpdate(page, 'consumers scaled up');
    await assertAccessible(page, 'an incident');

    await openConv(page, 'handoff');
    await openHandoffForm(page);
    await assertAccessible(page, 'the handoff form');
    await postHandoff(page, { items: ['drain the backlog'], owner: 'max' });
    await assertAccessible(page, 'a handoff note');

    await goOffline(context, page);
    await assertAccessible(page, 'the offline banner');
    await goOnline(context, page);

    await page.setViewportSize({ width: 390, height: 780 });
    await assertAccessible(page, 'phone width');
    await openDrawer(page);
    await assertAccessible(page, 'the drawer at phone width');
    assert.deepEqual(page.problems, []);
    await context.close();
  });
