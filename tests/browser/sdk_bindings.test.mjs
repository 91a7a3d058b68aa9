// The embind bindings (wasm/bindings.cpp) in node, without a browser: the JSON shapes waymark.js
// relies on, state export/import, and the forwarded-send ids two tabs must agree on.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { SDK_DIR } from './sdk_harness.mjs';

let core;

before(async () => {
  assert.ok(existsSync(join(SDK_DIR, 'waymark_core.wasm')), `no SDK build in ${SDK_DIR}`);
  // Emscripten 3.1.6's ES6 output refers to require and __dirname when it runs under node.
  globalThis.require = createRequire(import.meta.url);
  globalThis.__dirname = SDK_DIR;
  const { default: createWaymarkCore } = await import(join(SDK_DIR, 'waymark_core.js'));
  core = await createWaymarkCore({ wasmBinary: readFileSync(join(SDK_DIR, 'waymark_core.wasm')) });
});

const io = (session) => JSON.parse(session.takeIo());
const events = (session) => JSON.parse(session.takeEvents());
const WELCOME = JSON.stringify({ t: 'welcome', session: 's', node: 'n', user: 'alice', ts: 1, hb: 15000, max_frame: 65536 });

function online(session, now = 1000) {
  session.start(now);
  const [open] = io(session);
  session.onOpen(open.conn, now + 1);
  const [hello] = io(session);
  session.onFrame(open.conn, WELCOME, now + 2);
  return { conn: open.conn, hello: JSON.parse(hello.text) };
}

test('a session opens a socket, says hello, goes online', () => {
  const session = new core.WasmSession('dev:alice', 'tab-1', 1, 2);
  assert.equal(session.nextDeadline(), -1);
  assert.equal(session.connectionState(), 'offline');
  const { conn, hello } = online(session);
  assert.equal(conn, 1);
  assert.deepEqual(hello, { t: 'hello', token: 'dev:alice', device: 'tab-1' });
  assert.equal(session.connectionState(), 'online');
  assert.equal(session.user(), 'alice');
  const seen = events(session).map((e) => [e.type, e.state]);
  assert.deepEqual(seen, [['connection', 'connecting'], ['connection', 'online']]);
  assert.ok(session.nextDeadline() > 1002);
  session.delete();
});

test('send: a queued row with body and trace, the same id on the wire, state to persist', () => {
  const session = new core.WasmSession('dev:alice', '', 3, 4);
  online(session);
  events(session);
  const id = session.send('ops', JSON.stringify({ text: 'hi' }), 5000);
  assert.match(id, /^[0-9A-Z]{26}$/);
  const [write] = io(session);
  const frame = JSON.parse(write.text);
  assert.equal(frame.t, 'send');
  assert.equal(frame.id, id);
  assert.deepEqual(frame.body, { text: 'hi' });
  const [row, state] = events(session);
  assert.deepEqual({ ...row, trace: undefined }, { type: 'row', conv: 'ops', id, state: 'queued', own: true, body: { text: 'hi' }, at: 5000, trace: undefined });
  assert.equal(row.trace, frame.trace);
  assert.equal(state.type, 'state');
  // A body that is not JSON gets an id and a row failed at once (the core checks the text).
  const bad = session.send('ops', 'not json', 5001);
  const refused = events(session).filter((e) => e.type === 'row');
  assert.deepEqual(refused.map((e) => [e.id, e.state, e.error?.code]), [[bad, 'failed', 'invalid']]);
  assert.deepEqual(io(session), []);
  // The ack makes it sequenced; the msg reaches the app once.
  session.onFrame(1, JSON.stringify({ t: 'ack', conv: 'ops', id, seq: 7, ts: 5002 }), 5003);
  assert.deepEqual(events(session).filter((e) => e.type === 'row').map((e) => [e.state, e.seq]), [['sequenced', 7]]);
  session.delete();
});

test('a forwarded send keeps the id the forwarding tab made; a repeat is one row', () => {
  const session = new core.WasmSession('dev:alice', '', 5, 6);
  online(session);
  for (const draws of [[1, 2, 3, 4], [0xffffffff, 0, 0x12345678, 0x9abcdef0], [0, 0, 0, 0]]) {
    const expected = core.messageIdFor(1700000000000, ...draws);
    const id = session.sendWithId('ops', '{"n":1}', 1700000000000, expected);
    assert.equal(id, expected);
    const frame = JSON.parse(io(session).at(-1).text);
    assert.equal(frame.id, expected);
    assert.equal(frame.cts, 1700000000000);
    assert.match(frame.trace, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  }
  // The same id forwarded twice (a follower's retry) stays one outbox entry and one row.
  const again = core.messageIdFor(1700000000000, 1, 2, 3, 4);
  events(session);
  assert.equal(session.sendWithId('ops', '{"n":1}', 1700000000000, again), again);
  assert.equal(events(session).filter((e) => e.type === 'row').length, 0);
  assert.equal(io(session).length, 0);
  // An id breaking the id rule fails at once.
  events(session);
  session.sendWithId('ops', '{}', 1700000000000, 'bad id!');
  assert.deepEqual(events(session).filter((e) => e.type === 'row').map((e) => e.state), ['failed']);
  // Different draws, different ids.
  assert.notEqual(core.messageIdFor(1, 1, 2, 3, 4), core.messageIdFor(1, 1, 2, 3, 5));
  session.delete();
});

test('state exported by one session is imported by the next: outbox rows and cursors', () => {
  const first = new core.WasmSession('dev:alice', '', 7, 8);
  first.subscribe('ops', 0, 900);
  const id = first.send('ops', '{"text":"offline"}', 1000);
  const state = first.exportState();
  const parsed = JSON.parse(state);
  assert.equal(parsed.outbox.length, 1);
  assert.equal(parsed.outbox[0].id, id);

  const second = new core.WasmSession('dev:alice', '', 9, 10);
  assert.equal(second.importState(state, 2000), '');
  const rows = events(second).filter((e) => e.type === 'row');
  assert.deepEqual(rows.map((r) => [r.id, r.state, r.body.text]), [[id, 'queued', 'offline']]);
  assert.equal(second.cursor('ops'), 0);
  const { hello } = online(second, 3000);
  assert.deepEqual(hello.subs, [{ conv: 'ops', after: 0 }]);
  const resent = io(second).map((a) => JSON.parse(a.text)).filter((f) => f.t === 'send');
  assert.deepEqual(resent.map((f) => f.id), [id]);

  const third = new core.WasmSession('dev:alice', '', 11, 12);
  assert.notEqual(third.importState('not json', 1), '');
  assert.notEqual(third.importState('{"v":2}', 1), '');
  for (const session of [first, second, third]) session.delete();
});

test('queries and history: present as JSON, history offline fails with unavailable', () => {
  const session = new core.WasmSession('dev:alice', '', 13, 14);
  const rid = session.requestHistory('ops', -1, -1, 0, 100);
  const [history] = events(session).filter((e) => e.type === 'history');
  assert.equal(history.rid, rid);
  assert.equal(history.error.code, 'unavailable');

  online(session);
  session.subscribe('ops', -1, 2000);
  const [sub] = io(session).map((a) => JSON.parse(a.text));
  assert.deepEqual(sub, { t: 'sub', conv: 'ops' });
  session.onFrame(1, JSON.stringify({ t: 'subd', conv: 'ops', head: 5, read: 3, present: ['bob', 'alice'], more: false }), 2001);
  assert.deepEqual(JSON.parse(session.present('ops')).sort(), ['alice', 'bob']);
  assert.equal(session.cursor('ops'), 5);
  assert.equal(session.cursor('nowhere'), -1);
  const asked = session.requestHistory('ops', 5, -1, 2, 2002);
  const hist = io(session).map((a) => JSON.parse(a.text)).find((f) => f.t === 'hist');
  assert.deepEqual(hist, { t: 'hist', conv: 'ops', before: 5, limit: 2, rid: asked });
  session.delete();
});

test('bye token_expired and a close with 4001 stop the session until setToken and connectNow', () => {
  const session = new core.WasmSession('dev:alice', '', 15, 16);
  const { conn } = online(session);
  events(session);
  session.onFrame(conn, JSON.stringify({ t: 'bye', reason: 'token_expired', retry_ms: [0, 1000] }), 3000);
  assert.deepEqual(io(session), [{ type: 'close', conn, code: 1000 }]);
  const [offline, ...rest] = events(session).filter((e) => e.type === 'connection');
  assert.deepEqual(offline, { type: 'connection', state: 'offline', reason: 'unauthorized: token expired', needsToken: true });
  assert.equal(rest.length, 0);
  assert.equal(session.nextDeadline(), -1);

  session.setToken('dev:alice-2');
  session.connectNow(4000);
  const [open] = io(session);
  assert.equal(open.type, 'open');
  session.onOpen(open.conn, 4001);
  assert.equal(JSON.parse(io(session)[0].text).token, 'dev:alice-2');
  // Closed with 4001 and no err: the same stop. Any other code: an ordinary reconnect.
  events(session);
  session.onClose(open.conn, 4002, 4001);
  assert.deepEqual(events(session).filter((e) => e.type === 'connection').map((e) => [e.state, e.reason, e.nextRetryAt]),
    [['offline', 'unauthorized: closed 4001', undefined]]);
  assert.equal(session.nextDeadline(), -1);
  session.connectNow(5000);
  const [reopen] = io(session);
  session.onClose(reopen.conn, 5001, -1);
  const [lost] = events(session).filter((e) => e.type === 'connection' && e.state === 'offline');
  assert.equal(lost.reason, 'closed');
  assert.ok(lost.nextRetryAt >= 5001);
  session.delete();
});

test('RowList: the session\'s row and message events, history, and the order, without a session', () => {
  const session = new core.WasmSession('dev:alice', '', 21, 22);
  const { conn } = online(session);
  session.subscribe('ops', 0, 1100);
  session.onFrame(conn, JSON.stringify({ t: 'subd', conv: 'ops', head: 0, read: 0, present: [], more: false }), 1101);
  events(session);
  io(session);
  const list = new core.RowList('ops');
  const apply = (event) => JSON.parse((event.type === 'message'
    ? list.applyMessage(JSON.stringify(event.msg), event.own)
    : list.applyRow(JSON.stringify(event))) || 'null');
  const queued = session.send('ops', JSON.stringify({ text: 'mine' }), 1200);
  for (const event of events(session)) if (event.type === 'row') apply(event);
  session.onFrame(conn, JSON.stringify({ t: 'msg', conv: 'ops', seq: 1, id: 'B1', from: 'bob', ts: 1300, body: { text: 'hers', n: 1.5 } }), 1301);
  for (const event of events(session)) if (event.type === 'row' || event.type === 'message') apply(event);
  const rows = JSON.parse(list.rows());
  assert.deepEqual(rows.map((row) => [row.id, row.seq, row.state, row.own, row.from]), [['B1', 1, 'delivered', false, 'bob'], [queued, undefined, 'queued', true, '']]);
  assert.deepEqual(rows[0].body, { text: 'hers', n: 1.5 });
  assert.equal(rows[0].ts, 1300);
  // A backward state is ignored; history adds an own message as sequenced.
  assert.equal(apply({ type: 'row', conv: 'ops', id: 'B1', state: 'queued', own: false }).state, 'delivered');
  const old = JSON.parse(list.addHistory(JSON.stringify({ t: 'msg', conv: 'ops', seq: 0 + 1, id: 'B1', from: 'bob', ts: 1, body: null }), 'alice'));
  assert.equal(old.state, 'delivered');
  const mine = JSON.parse(list.addHistory(JSON.stringify({ t: 'msg', conv: 'ops', seq: 2, id: 'A0', from: 'alice', ts: 2, body: 1 }), 'alice'));
  assert.deepEqual([mine.state, mine.own], ['sequenced', true]);
  assert.equal(list.addHistory('{"t":"msg","conv":"other","seq":3,"id":"x","from":"a","ts":1,"body":1}', 'alice'), '');
  assert.deepEqual(JSON.parse(list.rows()).map((row) => row.id), ['B1', 'A0', queued]);
  // Rows kept elsewhere: restore adds only new ones, replace overwrites.
  assert.equal(list.restore(list.row('A0')), false);
  assert.equal(list.replace(JSON.stringify({ ...JSON.parse(list.row('A0')), state: 'read' })), true);
  assert.equal(JSON.parse(list.row('A0')).state, 'read');
  assert.equal(list.row('nowhere'), '');
  list.delete();
  session.delete();
});

test('token refresh: the core asks for a token, at once and then on its backoff; wake and requeue', () => {
  const session = new core.WasmSession('dev:alice', '', 23, 24);
  session.setTokenRefresh(true);
  const { conn } = online(session);
  events(session);
  session.onFrame(conn, JSON.stringify({ t: 'bye', reason: 'token_expired', retry_ms: [0, 0] }), 3000);
  assert.deepEqual(io(session), [{ type: 'close', conn, code: 1000 }]);
  const stopped = events(session);
  assert.deepEqual(stopped.map((e) => e.type), ['connection', 'token']);
  assert.equal(stopped[0].needsToken, true);
  assert.equal(session.tokenFetched('dev:alice', 3001), false, 'the refused token is no answer');
  session.tokenFetchFailed(3002, 'getToken failed: nope');
  const [waiting] = events(session);
  assert.equal(waiting.reason, 'unauthorized: getToken failed: nope');
  assert.ok(waiting.nextRetryAt >= 3002 + 500 && waiting.nextRetryAt <= 3002 + 1000, String(waiting.nextRetryAt));
  assert.equal(session.nextDeadline(), waiting.nextRetryAt);
  session.wake(3003);  // the browser came online: ask now instead
  assert.deepEqual(events(session).map((e) => e.type), ['token']);
  assert.equal(session.tokenFetched('dev:alice-2', 3004), true);
  const [open] = io(session);
  assert.equal(open.type, 'open');
  session.onOpen(open.conn, 3005);
  assert.equal(JSON.parse(io(session)[0].text).token, 'dev:alice-2');
  session.onFrame(open.conn, WELCOME, 3006);
  events(session);
  // An own row another tab announced, missing from the outbox, goes back with its id and trace.
  const trace = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  assert.equal(session.requeue('ops', '01JD0000000000000000000000', '{"text":"orphan"}', 2500, trace, 3007), true);
  assert.equal(session.requeue('ops', '01JD0000000000000000000000', '{"text":"orphan"}', 2500, trace, 3008), false);
  const [send] = io(session).map((a) => JSON.parse(a.text));
  assert.deepEqual(send, { t: 'send', conv: 'ops', id: '01JD0000000000000000000000', cts: 2500, trace, body: { text: 'orphan' } });
  session.delete();
});

test('the core\'s name rules, identity key and state order', () => {
  assert.equal(core.convProblem('ops'), '');
  assert.equal(core.convProblem('a b'), 'Use only letters, digits and . _ : -');
  assert.equal(core.userProblem(''), 'Enter a user name.');
  assert.equal(core.userProblem('bob@example.com'), '');
  assert.equal(core.localIdentityKey('dev:alice'), 'dev:alice');
  const payload = Buffer.from(JSON.stringify({ sub: 'alice', tnt: 'acme' })).toString('base64url');
  assert.equal(core.localIdentityKey(`e30.${payload}.sig`), 'jwt:acme/alice');
  assert.equal(core.rowStatePassed('read', 'stored'), true);
  assert.equal(core.rowStatePassed('failed', 'sequenced'), false);
  assert.equal(core.rowStatePassed('nonsense', 'queued'), false);
});
