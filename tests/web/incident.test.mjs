// web/incident.js: the incident workflow's rules over a conversation's rows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  acknowledgedBy, declarationProblem, declaredBody, exportFileName, incidentConv, incidentState, pinnedUpdates,
  statusBody, timelineText,
} from '../../web/incident.js';

const T0 = Date.UTC(2026, 11, 3, 9, 30, 0);
let nextSeq = 1;
const row = (from, body, { seq = nextSeq++, ts = T0 + seq * 1000 } = {}) => ({ id: `id-${seq}`, from, body, seq, ts, own: false });

function incidentRows() {
  nextSeq = 1;
  return [
    row('alice', declaredBody({ title: ' Checkout errors ', severity: 'SEV2', conv: 'inc-20261203-checkout-errors' })),
    row('bob', { text: 'looking at the payment gateway' }),
    row('alice', statusBody('identified', 'gateway TLS cert expired')),
    row('carol', { kind: 'incident-status', status: 'exploded', text: 'nonsense' }),
    row('alice', statusBody('monitoring')),
  ];
}

test('incidentConv: the UTC day and the title as a slug, within the name rules', () => {
  assert.equal(incidentConv('Checkout errors!', T0), 'inc-20261203-checkout-errors');
  assert.equal(incidentConv('  Ünïcode & DB / 5xx  ', T0), 'inc-20261203-unicode-db-5xx');
  assert.equal(incidentConv('!!!', T0), 'inc-20261203-incident');
  const long = incidentConv('a'.repeat(30) + ' ' + 'b'.repeat(30), T0);
  assert.ok(long.length <= 'inc-20261203-'.length + 40 && !long.endsWith('-'), long);
});

test('declarationProblem: a title and a known severity', () => {
  assert.equal(declarationProblem({ title: 'x', severity: 'SEV1' }), null);
  assert.match(declarationProblem({ title: '  ', severity: 'SEV1' }), /title/);
  assert.match(declarationProblem({ title: 'x'.repeat(121), severity: 'SEV1' }), /120/);
  assert.match(declarationProblem({ title: 'x', severity: 'SEV9' }), /SEV1, SEV2, SEV3/);
});

test('bodies are structured and carry a text for clients that do not know them', () => {
  assert.deepEqual(declaredBody({ title: ' DB down ', severity: 'SEV1', conv: 'inc-x' }),
    { kind: 'incident-declared', title: 'DB down', severity: 'SEV1', conv: 'inc-x', status: 'investigating', text: 'SEV1 incident declared: DB down' });
  assert.deepEqual(statusBody('identified', ' cert '), { kind: 'incident-status', status: 'identified', note: 'cert', text: 'Status: identified (cert)' });
  assert.equal(statusBody('monitoring').text, 'Status: monitoring');
});

test('incidentState: the declaration, then each known status in order; unknown ones ignored', () => {
  const state = incidentState(incidentRows());
  assert.equal(state.title, 'Checkout errors');
  assert.equal(state.severity, 'SEV2');
  assert.equal(state.declaredBy, 'alice');
  assert.equal(state.declarationSeq, 1);
  assert.equal(state.declaredAt, T0 + 1000);
  assert.equal(state.status, 'monitoring');
  assert.equal(state.resolved, false);
  assert.deepEqual(state.updates.map((u) => u.status), ['identified', 'monitoring']);
  assert.deepEqual(pinnedUpdates(state).map((u) => [u.status, u.note]), [['monitoring', ''], ['identified', 'gateway TLS cert expired']]);
  assert.equal(incidentState([row('a', { text: 'hi' }), row('a', statusBody('resolved'))]), null, 'no declaration, no incident');
  assert.equal(incidentState([...incidentRows(), row('alice', statusBody('resolved'))]).resolved, true);
});

test('acknowledgedBy: others whose read cursor passed the declaration', () => {
  const state = incidentState(incidentRows());
  assert.deepEqual(acknowledgedBy(state, new Map([['alice', 5], ['dave', 3], ['bob', 1], ['carol', 0]])), ['bob', 'dave']);
  assert.deepEqual(acknowledgedBy(state, new Map()), []);
  assert.deepEqual(acknowledgedBy({ ...state, declarationSeq: null }, new Map([['bob', 9]])), [], 'a declaration not stored yet');
  assert.deepEqual(acknowledgedBy(null, new Map([['bob', 9]])), []);
});

test('timelineText: header, then every stored message with its UTC time, sender and text', () => {
  const rows = [...incidentRows(), { id: 'q', from: 'bob', body: { text: 'still queued' }, state: 'queued', own: true, cts: T0 }];
  rows.splice(2, 0, row('bob', { text: 'two\nlines' }));
  const state = incidentState(rows);
  assert.equal(timelineText('inc-20261203-checkout-errors', state, rows), [
    'Incident: Checkout errors',
    'Conversation: #inc-20261203-checkout-errors',
    'Severity: SEV2',
    'Status: monitoring',
    'Declared by alice at 2026-12-03T09:30:01.000Z',
    '',
    'Timeline (UTC):',
    '2026-12-03T09:30:01.000Z  alice  [declared SEV2] Checkout errors',
    '2026-12-03T09:30:02.000Z  bob  looking at the payment gateway',
    '2026-12-03T09:30:06.000Z  bob  two / lines',
    '2026-12-03T09:30:03.000Z  alice  [status: identified] gateway TLS cert expired',
    '2026-12-03T09:30:04.000Z  carol  nonsense',
    '2026-12-03T09:30:05.000Z  alice  [status: monitoring]',
    '',
  ].join('\n'));
  assert.equal(exportFileName('inc-x'), 'inc-x-timeline.txt');
});
