// Browser test of the web app on an edge in JWT mode (docs/security.md): a broadcast channel that
// one user posts to and another may only read (the `read` claim). The reader sees the
// announcement, the composer says it is read-only, and a message she had queued offline before
// her token was narrowed is refused by the edge, the row showing the edge's reason.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS, EDGE, Edge, SDK_DIR, storedMessages, tempDir } from './sdk_harness.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const WEB_DIR = process.env.WAYMARK_WEB_DIR ?? path.join(ROOT, 'web');
const WAIT_MS = 15_000;
const CHANNEL = 'announce-all';
const SECRET = randomBytes(32).toString('hex');

// An HS256 JWT as docs/security.md describes it; exp in seconds.
function mint(claims) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const unsigned = `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ tnt: 'acme', exp: Math.floor(Date.now() / 1000) + 3600, ...claims })}`;
  return `${unsigned}.${createHmac('sha256', SECRET).update(unsigned).digest('base64url')}`;
}

let edge;
let browser;
const dirs = [];

before(async () => {
  assert.ok(existsSync(EDGE), `no edge binary at ${EDGE}: build it or set WAYMARK_EDGE`);
  assert.ok(existsSync(path.join(SDK_DIR, 'waymark.js')), `no SDK at ${SDK_DIR}: build it or set WAYMARK_SDK_DIR`);
  const data = tempDir('access-data');
  const secrets = tempDir('access-secrets');
  dirs.push(data, secrets);
  writeFileSync(path.join(secrets, 'secrets'), `${SECRET}\n`);
  edge = await new Edge({ data, web: WEB_DIR, dev: false, args: ['--auth-secret-file', path.join(secrets, 'secrets')] }).start();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: WAIT_MS });
});

after(async () => {
  await browser?.close();
  await edge?.stop();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

async function newUser() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  context.setDefaultTimeout(WAIT_MS);
  const page = await context.newPage();
  page.problems = [];
  page.on('pageerror', (error) => page.problems.push(`pageerror: ${error.message}`));
  return { context, page };
}

// Signs in on the sign-in screen with a token; `online: false` when the network is off.
async function signInWithToken(page, token, { online = true } = {}) {
  if (!(await page.locator('#signin').isVisible())) await page.goto(`${edge.url}/`);
  await page.locator('#signin').waitFor();
  const details = page.locator('#token-signin');
  if (!(await details.evaluate((el) => el.open))) await details.locator('summary').click();
  await page.locator('#signin-token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#app').waitFor();
  if (online) await page.locator('#conn-chip[data-state="online"]').waitFor();
}

async function join(page, conv) {
  await page.locator('#join-name').fill(conv);
  await page.locator('#join-name').press('Enter');
  await page.locator('#chat-title', { hasText: `#${conv}` }).waitFor();
}

const line = (page, text) => page.locator('li.msg').filter({ has: page.locator(`.msg-text:text-is(${JSON.stringify(text)})`) });

test('the sign-in screen says what is wrong with a token before trying it', { timeout: 30_000 }, async () => {
  const { context, page } = await newUser();
  await page.goto(`${edge.url}/`);
  await signInAttempt(page, 'not-a-token');
  await page.locator('#signin-error', { hasText: 'This is not an access token' }).waitFor();
  assert.equal(await page.locator('#signin-token').getAttribute('aria-invalid'), 'true');
  await signInAttempt(page, mint({ sub: 'old', convs: ['*'], exp: Math.floor(Date.now() / 1000) - 60 }));
  await page.locator('#signin-error', { hasText: 'This token expired at' }).waitFor();
  // A token signed with another secret reads fine here but the edge refuses it: signed out, why.
  const forged = mint({ sub: 'mallory', convs: ['*'] }).replace(/\.[^.]+$/, `.${createHmac('sha256', 'x'.repeat(32)).update('x').digest('base64url')}`);
  await signInAttempt(page, forged);
  await page.locator('#signin-error', { hasText: /^Signed out: unauthorized/ }).waitFor();
  assert.equal(await page.locator('#app').isVisible(), false);
  assert.equal(await page.evaluate(() => localStorage.getItem('waymark.token')), null, 'a refused token is not remembered');
  assert.deepEqual(page.problems, []);
  await context.close();
});

async function signInAttempt(page, token) {
  const details = page.locator('#token-signin');
  if (!(await details.evaluate((el) => el.open))) await details.locator('summary').click();
  await page.locator('#signin-token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

test('a read-only channel: the reader sees the announcement, cannot post, and the edge\'s refusal is shown',
  { timeout: 60_000 }, async () => {
    const poster = await newUser();
    const reader = await newUser();

    // The poster writes to every announce-* channel; the token names ops, so ops is listed.
    await signInWithToken(poster.page, mint({ sub: 'pat', convs: ['announce-*', 'ops'] }));
    assert.deepEqual(await poster.page.locator('#conv-list button[data-conv]').evaluateAll(
      (buttons) => buttons.map((b) => b.dataset.conv)), ['ops'], 'only the conversations the token covers');
    await join(poster.page, CHANNEL);
    assert.equal(await poster.page.locator('#composer-input').isDisabled(), false);
    assert.equal(await poster.page.locator('#composer-note').isVisible(), false);
    const announcement = 'Release 42 ships on Friday';
    await poster.page.locator('#composer-input').fill(announcement);
    await poster.page.locator('#composer-input').press('Enter');
    await line(poster.page, announcement).and(poster.page.locator('[data-state="sequenced"], [data-state="delivered"], [data-state="read"]')).waitFor();

    // Rita could still post when she wrote a reply offline; it waits in her outbox.
    await signInWithToken(reader.page, mint({ sub: 'rita', convs: ['announce-*', 'ops'] }));
    await join(reader.page, CHANNEL);
    await line(reader.page, announcement).waitFor();
    await reader.context.setOffline(true);
    await reader.page.locator('#conn-chip[data-state="offline"]').waitFor();
    const reply = 'Can we move it to Monday?';
    await reader.page.locator('#composer-input').fill(reply);
    await reader.page.locator('#composer-input').press('Enter');
    await line(reader.page, reply).and(reader.page.locator('[data-state="queued"]')).waitFor();

    // Her token is narrowed to reading the channel; she signs in again with it, still offline.
    await reader.page.locator('#signout').click();
    await signInWithToken(reader.page, mint({ sub: 'rita', convs: ['ops'], read: ['announce-*'] }), { online: false });
    await reader.page.locator('#chat-title', { hasText: `#${CHANNEL}` }).waitFor();
    const note = reader.page.locator('#composer-note');
    await note.waitFor();
    assert.equal(await note.textContent(), `#${CHANNEL} is read-only for you: you can read it, but not post here.`);
    assert.equal(await reader.page.locator('#composer-input').isDisabled(), true);
    assert.equal(await reader.page.locator('#composer button[type="submit"]').isDisabled(), true);
    assert.match(await reader.page.locator('#composer-input').getAttribute('aria-describedby'), /\bcomposer-note\b/);
    await line(reader.page, reply).and(reader.page.locator('[data-state="queued"]')).waitFor();

    // Back online the outbox goes out and the edge refuses it: the row says so, in its words.
    await reader.context.setOffline(false);
    await reader.page.locator('#conn-chip[data-state="online"]').waitFor();
    const refused = line(reader.page, reply);
    await refused.and(reader.page.locator('[data-state="failed"]')).waitFor();
    assert.equal(await refused.locator('.msg-error').textContent(),
      `Not sent: the server refused it: conv: "${CHANNEL}" is read-only for this token.`);
    assert.equal(await refused.locator('.msg-retry').isVisible(), true);
    await line(reader.page, announcement).waitFor();

    // Reading still works for her: her read receipt reaches the poster's row.
    await line(poster.page, announcement).and(poster.page.locator('[data-state="read"]')).waitFor();
    // Nothing of hers was stored; the poster never sees it.
    const stored = await storedMessages(poster.page, edge, CHANNEL, mint({ sub: 'auditor', convs: [CHANNEL] }));
    assert.deepEqual(stored.map((m) => [m.from, m.body.text]), [['pat', announcement]]);
    assert.equal(await line(poster.page, reply).count(), 0);

    // ops stays writable for her: the composer is back when she switches.
    await reader.page.locator('#conv-list button[data-conv="ops"]').click();
    await reader.page.locator('#chat-title', { hasText: '#ops' }).waitFor();
    assert.equal(await reader.page.locator('#composer-input').isDisabled(), false);
    assert.equal(await note.isVisible(), false);
    assert.equal(await reader.page.locator('#composer-input').getAttribute('placeholder'), 'Message #ops');

    assert.deepEqual([...poster.page.problems, ...reader.page.problems], []);
    await poster.context.close();
    await reader.context.close();
  });

test('announcements: the poster sees how many have read each one', { timeout: 60_000 }, async () => {
  const channel = 'announce-eng';
  const poster = await newUser();
  await signInWithToken(poster.page, mint({ sub: 'paula', convs: ['announce-*'] }));
  await join(poster.page, channel);
  const texts = ['Freeze starts Thursday', 'New on-call rota is out'];
  for (const text of texts) {
    await poster.page.locator('#composer-input').fill(text);
    await poster.page.locator('#composer-input').press('Enter');
  }
  const note = (text) => line(poster.page, text).locator('.msg-note');
  for (const text of texts) await note(text).filter({ hasText: /^Not read yet$/ }).waitFor();

  const readers = [];
  for (const [index, sub] of ['ria', 'sam'].entries()) {
    const reader = await newUser();
    readers.push(reader);
    await signInWithToken(reader.page, mint({ sub, convs: [], read: ['announce-*'] }));
    await join(reader.page, channel);
    await line(reader.page, texts[1]).waitFor();
    assert.equal(await reader.page.locator('#composer-input').isDisabled(), true);
    assert.equal(await line(reader.page, texts[1]).locator('.msg-note').textContent(), '', 'readers see no counts');
    const expected = index === 0 ? 'Read by 1 person' : 'Read by 2 people';
    for (const text of texts) await note(text).filter({ hasText: new RegExp(`^${expected}$`) }).waitFor();
  }

  // A new one starts unread... and both readers, looking at the channel, read it.
  await poster.page.locator('#composer-input').fill('Retro at 15:00');
  await poster.page.locator('#composer-input').press('Enter');
  await note('Retro at 15:00').filter({ hasText: /^Read by 2 people$/ }).waitFor();
  assert.equal(await note(texts[0]).textContent(), 'Read by 2 people');
  // Each of the poster's three lines carries its count, and nothing else on the page does.
  assert.equal(await poster.page.locator('li.msg .msg-note:not(:empty)').count(), 3);

  assert.deepEqual([...poster.page.problems, ...readers.flatMap((r) => r.page.problems)], []);
  for (const user of [poster, ...readers]) await user.context.close();
});
