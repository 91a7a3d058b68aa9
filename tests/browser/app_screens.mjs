// The steps that walk the web app through its screens, shared by the browser tests that visit
// them all: app_a11y.test.mjs (axe on each) and app_screens.test.mjs (a screenshot of each).
// Each step waits until the app shows its outcome, so the caller can look at the screen next.
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS, EDGE, Edge, SDK_DIR, tempDir } from './sdk_harness.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
// The web app the edges serve: this checkout's web/ unless WAYMARK_WEB_DIR names another.
export const WEB_DIR = process.env.WAYMARK_WEB_DIR ?? path.join(ROOT, 'web');

export const WAIT_MS = 15_000;
export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

export function launchBrowser() {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: WAIT_MS });
}

// One --dev edge serving WEB_DIR and one chromium for a test file: registers node:test's before
// and after (the edge's data removed at the end) and returns {edge, browser}, set once before ran.
export function appSuite(name) {
  const suite = { edge: null, browser: null };
  let data;
  before(async () => {
    assert.ok(existsSync(EDGE), `no edge binary at ${EDGE}: build it or set WAYMARK_EDGE`);
    assert.ok(existsSync(path.join(SDK_DIR, 'waymark.js')), `no SDK at ${SDK_DIR}: build it or set WAYMARK_SDK_DIR`);
    data = tempDir(`${name}-data`);
    suite.edge = await new Edge({ data, web: WEB_DIR }).start();
    suite.browser = await launchBrowser();
  });
  after(async () => {
    await suite.browser?.close();
    await suite.edge?.stop();
    if (data) rmSync(data, { recursive: true, force: true });
  });
  return suite;
}

// A user of their own: a fresh context (own storage, own network switch) and one tab, with
// reduced motion (no drawer slide); `page.problems` collects uncaught page errors.
export async function newUser(browser, viewport = DESKTOP) {
  const context = await browser.newContext({ viewport, reducedMotion: 'reduce' });
  context.setDefaultTimeout(WAIT_MS);
  const page = await context.newPage();
  page.problems = [];
  page.on('pageerror', (error) => page.problems.push(`pageerror: ${error.message}`));
  return { context, page };
}

export async function openSignIn(page, edge) {
  await page.goto(`${edge.url}/`);
  await page.locator('#signin').waitFor();
}

// Signs in with a development name (the edge runs with --dev) and waits to be online.
export async function signIn(page, name) {
  await page.locator('#signin-name').fill(name);
  await page.locator('#signin-name').press('Enter');
  await page.locator('#conn-chip[data-state="online"]').waitFor();
}

export async function openConv(page, conv) {
  await page.locator(`#conv-list button[data-conv="${conv}"]`).click();
  await page.locator('#chat-title', { hasText: `#${conv}` }).waitFor();
}

export async function joinConv(page, conv) {
  await page.locator('#join-name').fill(conv);
  await page.locator('#join-name').press('Enter');
  await page.locator('#chat-title', { hasText: `#${conv}` }).waitFor();
}

// The message line whose text is exactly `text`.
export function line(page, text) {
  return page.locator('li.msg').filter({ has: page.locator(`.msg-text:text-is(${JSON.stringify(text)})`) });
}

// Sends `text` from the composer; `state` is what the own line must reach (a data-state, or a
// list of them) before this returns.
export async function send(page, text, state = ['sequenced', 'delivered', 'read']) {
  await page.locator('#composer-input').fill(text);
  await page.locator('#composer-input').press('Enter');
  const states = [state].flat().map((s) => `[data-state="${s}"]`).join(', ');
  await line(page, text).and(page.locator(states)).waitFor();
}

export async function openDeclareForm(page) {
  await page.getByRole('button', { name: 'Declare an incident' }).click();
  await page.locator('#declare-form').waitFor();
}

// Declares an incident from the sidebar's form and returns its conversation's name.
export async function declareIncident(page, title, severity = 'SEV2') {
  if (!(await page.locator('#declare-form').isVisible())) await openDeclareForm(page);
  await page.locator('#declare-name').fill(title);
  await page.locator('#declare-severity').selectOption(severity);
  await page.locator('#declare-name').press('Enter');
  await page.locator('#incident-panel .inc-title', { hasText: title }).waitFor();
  return (await page.locator('#chat-title').textContent()).replace(/^#/, '');
}

// Posts a status update from the incident strip; waits for it to be pinned there.
export async function postIncidentUpdate(page, note, status) {
  const panel = page.locator('#incident-panel');
  if (status) await panel.locator('.inc-status-field').selectOption(status);
  await panel.locator('.inc-note-field').fill(note);
  await panel.locator('.inc-note-field').press('Enter');
  await panel.locator('.inc-update .inc-update-note', { hasText: note }).waitFor();
}

export async function openHandoffForm(page) {
  await page.getByRole('button', { name: 'Write a handoff note' }).click();
  await page.locator('#handoff-panel .ho-form').waitFor();
}

// Posts a handoff note in the open handoff channel; waits for its card.
export async function postHandoff(page, { items = [], risks = [], owner }) {
  if (!(await page.locator('#handoff-panel .ho-form').isVisible())) await openHandoffForm(page);
  await page.getByLabel('Open items, one per line').fill(items.join('\n'));
  await page.getByLabel('Risks, one per line').fill(risks.join('\n'));
  await page.getByLabel('Incoming owner').fill(owner);
  await page.getByRole('button', { name: 'Post handoff' }).click();
  await page.locator('#handoff-panel .ho-card .ho-head', { hasText: `to ${owner}` }).waitFor();
}

export async function goOffline(context, page) {
  await context.setOffline(true);
  await page.locator('#conn-chip[data-state="offline"]').waitFor();
}

export async function goOnline(context, page) {
  await context.setOffline(false);
  await page.locator('#conn-chip[data-state="online"]').waitFor();
}

export async function openDrawer(page) {
  await page.locator('#nav-toggle').click();
  await page.locator('body.drawer-open').waitFor();
}

// An HS256 JWT signed with `secret` (docs/security.md, "Claims"); an hour's `exp` unless given.
export function mintToken(secret, claims) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const payload = { tnt: 'acme', exp: Math.floor(Date.now() / 1000) + 3600, ...claims };
  const unsigned = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(payload)}`;
  return `${unsigned}.${createHmac('sha256', secret).update(unsigned).digest('base64url')}`;
}

// Signs in on the sign-in screen with an access token (the edge runs in JWT mode).
export async function signInWithToken(page, token) {
  const details = page.locator('#token-signin');
  if (!(await details.evaluate((el) => el.open))) await details.locator('summary').click();
  await page.locator('#signin-token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#conn-chip[data-state="online"]').waitFor();
}
