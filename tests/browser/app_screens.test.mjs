// Screenshots of the web app's screens at desktop and phone width, for docs/web-app.md
// ("Screens"): alice and bob walk through sign-in, a conversation, a failed and a queued message,
// an incident, a shift handoff and an announcement; a reader of a broadcast channel (the edge in
// JWT mode) sees its disabled composer. The pictures go to a temporary directory, each checked to
// be a PNG of the viewport's size; WAYMARK_UPDATE_SCREENSHOTS=1 also copies them into
// docs/screenshots/ (and removes the ones no longer made). Every picture made must be committed
// there, and linked from docs/web-app.md, and nothing else may be there.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EDGE, Edge, SDK_DIR, tempDir } from './sdk_harness.mjs';
import {
  DESKTOP, PHONE, declareIncident, goOffline, joinConv, launchBrowser, line, mintToken, newUser, openConv,
  openDrawer, openSignIn, postHandoff, postIncidentUpdate, send, signIn, signInWithToken, WEB_DIR,
} from './app_screens.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const COMMITTED = path.join(ROOT, 'docs', 'screenshots');
const DOC = path.join(ROOT, 'docs', 'web-app.md');
const UPDATE = process.env.WAYMARK_UPDATE_SCREENSHOTS === '1';
const SECRET = randomBytes(32).toString('hex');
// Hidden in the pictures: the offline banner's "Reconnecting in 3 s" counts down with the SDK's
// backoff, which has jitter.
const SHOT_STYLE = '#banner-countdown { visibility: hidden; }';
// A screenshot of a real screen is tens of kilobytes; a blank or broken one is a few.
const MIN_PNG_BYTES = 8_000;
// The edge stamps messages with its real time and an incident's conversation is named after
// the day it was declared, so those would change every run: the pictures show these instead.
const SHOWN_CLOCK = '09:41';
const SHOWN_DAY = '20261203';

let edge;
let jwtEdge;
let browser;
let shotDir;
const dirs = [];
const made = [];  // file names of the screenshots made, in order

before(async () => {
  assert.ok(existsSync(EDGE), `no edge binary at ${EDGE}: build it or set WAYMARK_EDGE`);
  assert.ok(existsSync(path.join(SDK_DIR, 'waymark.js')), `no SDK at ${SDK_DIR}: build it or set WAYMARK_SDK_DIR`);
  const data = tempDir('screens-data');
  const jwtData = tempDir('screens-jwt-data');
  const secrets = tempDir('screens-secrets');
  shotDir = tempDir('screens');
  dirs.push(data, jwtData, secrets, shotDir);
  writeFileSync(path.join(secrets, 'secrets'), `${SECRET}\n`);
  [edge, jwtEdge, browser] = await Promise.all([
    new Edge({ data, web: WEB_DIR }).start(),
    new Edge({ data: jwtData, web: WEB_DIR, dev: false, args: ['--auth-secret-file', path.join(secrets, 'secrets')] }).start(),
    launchBrowser(),
  ]);
});

after(async () => {
  await browser?.close();
  await Promise.all([edge?.stop(), jwtEdge?.stop()]);
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

// Writes the clock times and the incident's day over the real ones (text only, just before a
// shot); returns how many it replaced.
function steadyTimes(page) {
  return page.evaluate(({ clock, day }) => {
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    let replaced = 0;
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const text = node.nodeValue
        .replace(/\b\d{1,2}:\d{2}\b/g, () => { replaced += 1; return clock; })
        .replace(/\binc-\d{8}-/g, () => { replaced += 1; return `inc-${day}-`; });
      if (text !== node.nodeValue) node.nodeValue = text;
    }
    return replaced;
  }, { clock: SHOWN_CLOCK, day: SHOWN_DAY });
}

// Width and height from a PNG's IHDR chunk; fails on anything that is not a PNG.
function pngSize(file) {
  const bytes = readFileSync(file);
  assert.ok(bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])), `${file}: not a PNG`);
  assert.equal(bytes.subarray(12, 16).toString('latin1'), 'IHDR', `${file}: no IHDR first`);
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) };
}

// Screenshots the page's viewport as <width>-<name>.png at desktop and phone width (or only
// those in `widths`), then goes back to desktop width. Returns the clock texts replaced.
async function shoot(page, name, { widths = ['desktop', 'phone'] } = {}) {
  let replaced = 0;
  for (const width of widths) {
    const viewport = width === 'desktop' ? DESKTOP : PHONE;
    await page.setViewportSize(viewport);
    if (await page.locator('#app').isVisible()) {
      await page.locator('#typing:empty').waitFor({ state: 'attached' });  // no "bob is typing…"
      await page.locator('#scroller').evaluate((el) => { el.scrollTop = el.scrollHeight; });
    }
    replaced += await steadyTimes(page);
    const file = `${width}-${name}.png`;
    await page.screenshot({ path: path.join(shotDir, file), animations: 'disabled', caret: 'hide', style: SHOT_STYLE });
    assert.ok(statSync(path.join(shotDir, file)).size > MIN_PNG_BYTES, `${file} is too small to be a screen`);
    assert.deepEqual(pngSize(path.join(shotDir, file)), viewport, `${file}'s size`);
    made.push(file);
  }
  await page.setViewportSize(DESKTOP);
  return replaced;
}

test('every screen at desktop and phone width', { timeout: 90_000 }, async () => {
  const alice = await newUser(browser);
  const bob = await newUser(browser);
  const a = alice.page;
  const b = bob.page;

  await openSignIn(a, edge);
  await a.locator('#signin-name').fill('alice');
  await shoot(a, 'sign-in');
  await signIn(a, 'alice');
  await openSignIn(b, edge);
  await signIn(b, 'bob');

  // A conversation: alice's lines read by bob, and the last one only delivered (he left it).
  await Promise.all([openConv(a, 'ops'), openConv(b, 'ops')]);
  await send(a, 'Deploy 4711 is rolling out to eu-west');
  await line(b, 'Deploy 4711 is rolling out to eu-west').waitFor();
  await send(b, 'Watching the error rate: all green so far');
  await line(a, 'Watching the error rate: all green so far').waitFor();
  await send(a, 'Canary at 10%, next step in a quarter of an hour');
  await line(a, 'Canary at 10%, next step in a quarter of an hour').and(a.locator('[data-state="read"]')).waitFor();
  await openConv(b, 'handoff');
  await send(a, 'Pausing the rollout: p99 latency went up', 'delivered');
  assert.deepEqual(await a.locator('li.msg.own').evaluateAll((lines) => lines.map((l) => l.dataset.state)),
    ['read', 'read', 'delivered']);
  assert.ok(await shoot(a, 'conversation') > 0, 'the message lines show their times');

  // A message too large to send fails, with Retry.
  const tooLarge = `Full log of deploy 4711 follows. ${'step ok; '.repeat(8000)}`;
  await a.locator('#composer-input').fill(tooLarge);
  await a.locator('#composer-input').press('Enter');
  await a.locator('li.msg.own[data-state="failed"] .msg-error', { hasText: 'Too large to send.' }).waitFor();
  await shoot(a, 'failed');

  // An incident: declared, bob acknowledges it by reading it, two updates pinned newest first.
  const conv = await declareIncident(a, 'Checkout errors', 'SEV1');
  assert.match(conv, /^inc-\d{8}-checkout-errors$/);
  await postIncidentUpdate(a, 'bad deploy 4711, rolling back', 'identified');
  await joinConv(b, conv);
  await b.locator('#incident-panel .inc-title', { hasText: 'Checkout errors' }).waitFor();
  await a.locator('#incident-panel .inc-acks', { hasText: 'Acknowledged by bob' }).waitFor();
  await postIncidentUpdate(a, 'error rate back to normal', 'monitoring');
  assert.deepEqual(await a.locator('#incident-panel .inc-update-status').allTextContents(), ['monitoring', 'identified']);
  await shoot(a, 'incident');

  // A shift handoff: bob sees it to acknowledge; alice sees when he read and acknowledged it.
  await openConv(a, 'handoff');
  await postHandoff(a, {
    items: ['rotate the TLS certs on edge-2', 'follow up on the checkout incident'],
    risks: ['disk on db-2 at 85%'],
    owner: 'bob',
  });
  await openConv(b, 'handoff');
  await b.locator('#handoff-panel .ho-ack').waitFor();
  await a.locator('#handoff-panel .ho-reads', { hasText: 'Read by bob at' }).waitFor();
  await shoot(b, 'handoff-incoming');
  await b.locator('#handoff-panel .ho-ack').click();
  await a.locator('#handoff-panel .ho-acks', { hasText: 'Acknowledged by bob at' }).waitFor();
  await shoot(a, 'handoff');

  // An announcement with its read count.
  await joinConv(a, 'announce');
  await send(a, 'The status page moves to status.example.com on Monday');
  await a.locator('li.msg.own .msg-note', { hasText: 'Not read yet' }).waitFor();
  await joinConv(b, 'announce');
  await a.locator('li.msg.own .msg-note', { hasText: 'Read by 1 person' }).waitFor();
  await shoot(a, 'announcement');

  // The drawer (phone width only: on a desktop the list is always there).
  await a.setViewportSize(PHONE);
  await openDrawer(a);
  await shoot(a, 'drawer', { widths: ['phone'] });
  await a.setViewportSize(PHONE);
  await a.keyboard.press('Escape');
  await a.locator('body:not(.drawer-open)').waitFor();
  await a.setViewportSize(DESKTOP);

  // Offline: the banner, and a message queued until the network is back.
  await openConv(a, 'ops');
  await goOffline(alice.context, a);
  await send(a, 'Will post the numbers once I am back online', 'queued');
  await a.locator('#banner', { hasText: 'Offline' }).waitFor();
  await shoot(a, 'offline');

  assert.deepEqual(a.problems, []);
  assert.deepEqual(b.problems, []);
  await Promise.all([alice.context.close(), bob.context.close()]);

  // A broadcast channel's reader (JWT mode): the composer is disabled and says why.
  const poster = await newUser(browser);
  const reader = await newUser(browser);
  await openSignIn(poster.page, jwtEdge);
  await signInWithToken(poster.page, mintToken(SECRET, { sub: 'pat', convs: ['announce-*', 'ops'] }));
  await joinConv(poster.page, 'announce-all');
  await send(poster.page, 'Release 42 ships on Friday');
  await openSignIn(reader.page, jwtEdge);
  await signInWithToken(reader.page, mintToken(SECRET, { sub: 'rita', convs: ['ops'], read: ['announce-*'] }));
  await joinConv(reader.page, 'announce-all');
  await line(reader.page, 'Release 42 ships on Friday').waitFor();
  await reader.page.locator('#composer-note', { hasText: 'read-only for you' }).waitFor();
  assert.equal(await reader.page.locator('#composer-input').isDisabled(), true);
  await shoot(reader.page, 'read-only');
  assert.deepEqual(poster.page.problems, []);
  assert.deepEqual(reader.page.problems, []);
  await Promise.all([poster.context.close(), reader.context.close()]);
});

test('docs/screenshots holds exactly the screenshots made, and docs/web-app.md shows each', () => {
  assert.ok(made.length > 0, 'the screens test made no screenshot');
  if (UPDATE) {
    mkdirSync(COMMITTED, { recursive: true });
    for (const file of readdirSync(COMMITTED)) if (!made.includes(file)) rmSync(path.join(COMMITTED, file));
    for (const file of made) copyFileSync(path.join(shotDir, file), path.join(COMMITTED, file));
  }
  const committed = existsSync(COMMITTED) ? readdirSync(COMMITTED) : [];
  const hint = 'run this test with WAYMARK_UPDATE_SCREENSHOTS=1 and commit docs/screenshots/';
  assert.deepEqual(made.filter((file) => !committed.includes(file)), [], `screenshots not in docs/screenshots/: ${hint}`);
  assert.deepEqual(committed.filter((file) => !made.includes(file)), [], `stale files in docs/screenshots/: ${hint}`);
  const doc = readFileSync(DOC, 'utf8');
  assert.deepEqual(made.filter((file) => !doc.includes(`(screenshots/${file})`)), [], 'screenshots docs/web-app.md does not show');
});
