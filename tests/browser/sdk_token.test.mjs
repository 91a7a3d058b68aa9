// Browser SDK, token expiry: an edge with JWT auth (no --dev) ends alice's session at her token's
// exp with bye token_expired; the SDK asks getToken for a new token and reconnects. Messages
// sent around the expiry and while waiting for the token are each stored, acked and seen once.
// Also: a getToken that keeps returning the refused token is retried with growing delays, and a
// fixed token without getToken stays offline.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as h from './sdk_harness.mjs';

const SECRET = randomBytes(32).toString('hex');  // 64 hex chars
const secretDir = h.tempDir('secret');
const SECRET_FILE = join(secretDir, 'auth-secrets');
writeFileSync(SECRET_FILE, `# test secret\n${SECRET}\n`, { mode: 0o600 });
after(() => rmSync(secretDir, { recursive: true, force: true }));

let edge;
h.edgeForSuite((started) => { edge = started; }, { dev: false, args: ['--auth-secret-file', SECRET_FILE] });

const TENANT = 'acme';
const base64url = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

// An HS256 JWT as protocol.md describes it; `exp` in seconds.
function mint(sub, expSeconds) {
  const head = `${base64url({ alg: 'HS256', typ: 'JWT' })}.${base64url({ sub, tnt: TENANT, exp: expSeconds, convs: ['*'] })}`;
  return `${head}.${createHmac('sha256', SECRET).update(head).digest('base64url')}`;
}
const inSeconds = (seconds) => Math.ceil(Date.now() / 1000) + seconds;

const sleep = (ms) => new Promise((resolveSleep) => { setTimeout(resolveSleep, ms); });

// A page of `context` whose window.mintToken() runs `tokens` in node (the page's getToken).
async function openPage(context, tokens) {
  const page = await context.newPage();
  if (tokens) await page.exposeFunction('mintToken', tokens);
  await page.goto(`${edge.url}/`);
  await page.waitForFunction(() => window.pageReady === true);
  return page;
}

async function startWithGetToken(page) {
  return h.bounded(page.evaluate((url) => window.start({ url, getToken: () => window.mintToken() }), edge.wsUrl), 'connect() with getToken');
}

const onlineAgainAfterExpiry = () => {
  const log = window.log.connection;
  const expired = log.findIndex((e) => e.state === 'offline' && e.reason.startsWith('unauthorized'));
  return expired >= 0 && log.slice(expired + 1).some((e) => e.state === 'online');
};

test('a token that expires mid-session is refreshed; nothing is lost or doubled', { timeout: 90000 }, async () => {
  const alice = await h.launchProfile('token-alice');
  const bob = await h.launchProfile('token-bob');
  try {
    let firstExpMs = 0;
    const calls = [];  // when getToken ran, and what it returned
    const a = await openPage(alice.context, async () => {
      calls.push(Date.now());
      if (calls.length === 1) {
        const exp = inSeconds(3);
        firstExpMs = exp * 1000;
        return mint('alice', exp);
      }
      await sleep(800);  // a slow token endpoint: the client stays offline a while
      return mint('alice', inSeconds(3600));
    });
    const b = await openPage(bob.context, null);
    await h.startClient(b, { token: mint('bob', inSeconds(3600)), url: edge.wsUrl });
    await startWithGetToken(a);
    assert.equal(calls.length, 1, 'getToken at start (no token given)');
    assert.ok(firstExpMs - Date.now() > 1000, 'enough of the first token left to set up');

    // A message sent the moment the session learns of the expiry: certainly offline then.
    await a.evaluate(() => {
      window.client.on('connection', (event) => {
        if (event.state === 'offline' && event.reason.startsWith('unauthorized') && !window.offlineId) {
          window.offlineState = window.client.connectionState();
          window.offlineId = window.client.send('room', { text: 'while offline' });
        }
      });
    });
    for (const page of [a, b]) {
      await page.evaluate(() => window.client.subscribe('room', { after: 0 }));
      await h.until(page, () => window.client.connectionState() === 'online', null, { what: 'online' });
    }
    assert.equal(await a.evaluate(() => window.client.user), 'alice');

    // One message every 100 ms from 600 ms before the exp to 600 ms after it: some are acked
    // before the bye, some are in flight when it comes, some are queued while offline.
    const burst = await h.bounded(a.evaluate((expMs) => new Promise((resolveBurst) => {
      const ids = [];
      const times = [];
      for (let at = expMs - 600; at <= expMs + 600; at += 100) times.push(at);
      for (const at of times) {
        setTimeout(() => {
          ids.push(window.client.send('room', { text: `t${at - expMs}` }));
          if (ids.length === times.length) resolveBurst(ids);
        }, Math.max(0, at - Date.now()));
      }
    }), firstExpMs), 'the burst around the expiry');
    assert.equal(new Set(burst).size, 13);

    await h.until(a, onlineAgainAfterExpiry, null, { what: 'alice offline (unauthorized) and online again' });
    const connection = await a.evaluate(() => window.log.connection);
    const expiredAt = connection.findIndex((e) => e.state === 'offline' && e.reason.startsWith('unauthorized'));
    assert.equal(connection[expiredAt].reason, 'unauthorized: token expired', JSON.stringify(connection));
    assert.ok(calls.length >= 2, 'getToken asked again');
    assert.ok(calls[1] >= firstExpMs - 1000, `the second getToken came with the expiry (${calls[1] - firstExpMs} ms from exp)`);
    assert.equal(calls.length, 2, `getToken called exactly twice: ${calls.map((t) => t - firstExpMs)}`);
    // Between the expiry and the refresh the client waited for the token instead of retrying.
    const between = connection.slice(expiredAt + 1, connection.findIndex((e, i) => i > expiredAt && e.state === 'online'));
    assert.ok(between.filter((e) => e.state === 'connecting').length <= 1, JSON.stringify(between));

    const offlineId = await a.evaluate(() => window.offlineId);
    assert.ok(offlineId, 'a message was sent while offline');
    assert.equal(await a.evaluate(() => window.offlineState), 'offline');

    // Every message: sequenced once at alice, seen once by both, stored once, dense seqs.
    const ids = [...burst, offlineId];
    await h.until(a, (list) => list.every((id) => window.client.rows('room').find((row) => row.id === id)?.seq != null), ids, { what: 'every row of alice sequenced' });
    await h.until(b, (list) => list.every((id) => window.log.messages.some((m) => m.id === id)), ids, { what: 'every message at bob' });
    await h.until(a, (list) => list.every((id) => window.log.messages.some((m) => m.id === id)), ids, { what: 'every message back at alice' });

    const stored = await h.storedMessages(b, edge, 'room', mint('auditor', inSeconds(3600)));
    assert.deepEqual(stored.map((m) => m.seq), stored.map((_, i) => i + 1), 'dense seqs');
    assert.deepEqual([...stored.map((m) => m.id)].sort(), [...ids].sort(), 'each stored exactly once');
    const seqOf = new Map(stored.map((m) => [m.id, m.seq]));

    for (const page of [a, b]) {
      const seen = await page.evaluate(() => window.log.messages.map((m) => ({ id: m.id, seq: m.seq })));
      assert.deepEqual(seen.map((m) => m.seq), stored.map((m) => m.seq), 'each seq delivered once, in order');
      for (const m of seen) assert.equal(m.seq, seqOf.get(m.id));
    }
    const aliceRows = await h.rowsOf(a);
    assert.equal(aliceRows.length, ids.length, 'one row per message');
    for (const row of aliceRows) {
      assert.equal(row.seq, seqOf.get(row.id), `row ${row.id} has the stored seq`);
      assert.notEqual(row.state, 'failed');
      assert.notEqual(row.state, 'queued');
    }
    // Each own row went queued -> sequenced once and never back ('row' also fires when the
    // row's msg arrives, with the state unchanged: repeats of one state are one transition).
    const ORDER = ['queued', 'stored', 'sequenced', 'delivered', 'read'];
    const histories = await a.evaluate((list) => list.map((id) => window.log.rows.filter((row) => row.id === id).map((row) => row.state)), ids);
    for (const [i, states] of histories.entries()) {
      const transitions = states.filter((state, j) => j === 0 || state !== states[j - 1]);
      assert.equal(transitions.filter((state) => state === 'sequenced').length, 1, `${ids[i]}: ${states}`);
      const ranks = transitions.map((state) => ORDER.indexOf(state));
      assert.ok(ranks.every((rank, j) => rank >= 0 && (j === 0 || rank > ranks[j - 1])), `${ids[i]} never backwards: ${states}`);
    }
    // The message sent while offline was sequenced after the refresh, not before.
    const offlineRow = aliceRows.find((row) => row.id === offlineId);
    assert.ok(offlineRow.times.sequenced > calls[1], 'sequenced after the new token');
    await h.screenshot(a, 'sdk-token-alice');
  } finally {
    await alice.close();
    await bob.close();
  }
});

test('getToken returning the refused token is asked again with growing delays, then reconnects', { timeout: 60000 }, async () => {
  const carol = await h.launchProfile('token-carol');
  try {
    const calls = [];
    let expired = '';
    const page = await openPage(carol.context, async () => {
      calls.push(Date.now());
      if (calls.length === 1) {
        expired = mint('carol', inSeconds(2));
        return expired;
      }
      if (calls.length <= 3) return expired;  // a stale cache: the refused token again
      return mint('carol', inSeconds(3600));
    });
    await startWithGetToken(page);
    await page.evaluate(() => window.client.subscribe('room'));
    await h.until(page, onlineAgainAfterExpiry, null, { what: 'carol online again after the expiry', timeout: 30000 });
    assert.equal(calls.length, 4, `getToken calls at ${calls.map((t) => t - calls[0])}`);
    const gaps = [calls[2] - calls[1], calls[3] - calls[2]];
    // Attempt n waits within [ceiling/2, ceiling], ceiling = 1 s * 2^(n-1).
    // Lower bounds only: the backoff may not fire early (no spinning), but a busy machine may
    // fire it late, so no upper bound is a fact about the SDK.
    assert.ok(gaps[0] >= 450, `first retry after ${gaps[0]} ms, want at least half of 1 s`);
    assert.ok(gaps[1] >= 950, `second retry after ${gaps[1]} ms, want at least half of 2 s`);
    const connection = await page.evaluate(() => window.log.connection);
    const failures = connection.filter((e) => e.reason?.startsWith('unauthorized: getToken failed'));
    assert.equal(failures.length, 2, JSON.stringify(connection));
    for (const failure of failures) assert.ok(failure.nextRetryAt > 0, 'the wait is announced');
    // No hello with the refused token went out between the refusals: after the expiry, one
    // connection attempt, the one with the good token.
    const expiredAt = connection.findIndex((e) => e.reason === 'unauthorized: token expired');
    assert.ok(expiredAt >= 0, JSON.stringify(connection));
    assert.equal(connection.slice(expiredAt).filter((e) => e.state === 'connecting').length, 1, JSON.stringify(connection));
  } finally {
    await carol.close();
  }
});

test('a fixed token without getToken stays offline once it expires', { timeout: 60000 }, async () => {
  const dave = await h.launchProfile('token-dave');
  try {
    const page = await openPage(dave.context, null);
    await h.startClient(page, { token: mint('dave', inSeconds(2)), url: edge.wsUrl });
    await page.evaluate(() => window.client.subscribe('room'));
    await h.until(page, () => window.client.connectionState() === 'online', null, { what: 'dave online' });
    const refused = await h.until(page, () => window.log.connection.find((e) => e.state === 'offline' && e.reason.startsWith('unauthorized')), null, { what: 'dave refused' });
    assert.equal(refused.reason, 'unauthorized: token expired');
    assert.equal(refused.nextRetryAt, undefined, 'no retry promised');
    const id = await page.evaluate(() => window.client.send('room', { text: 'queued forever' }));
    // The browser saying it is online again does not retry the refused token.
    await page.evaluate(() => window.dispatchEvent(new Event('online')));
    await sleep(1500);  // a window in which a reconnect loop would show; nothing may happen
    const after = await page.evaluate(() => window.log.connection);
    const refusedAt = after.findIndex((e) => e.state === 'offline' && e.reason.startsWith('unauthorized'));
    assert.deepEqual(after.slice(refusedAt + 1), [], 'no reconnect attempt');
    assert.equal(await page.evaluate(() => window.client.connectionState()), 'offline');
    const row = (await h.rowsOf(page)).find((r) => r.id === id);
    assert.equal(row.state, 'queued');
  } finally {
    await dave.close();
  }
});
