// web/handoff.js: the shift handoff's rules over a conversation's rows and read receipts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ackBody, awaitsAckFrom, handoffBody, handoffProblem, isHandoffConv, latestHandoff, listLines } from '../../web/handoff.js';

const T0 = Date.UTC(2026, 11, 3, 6, 0, 0);
const row = (seq, from, body) => ({ id: `id-${seq}`, seq, from, body, ts: T0 + seq * 1000 });

test('isHandoffConv: "handoff" and a team\'s "handoff-<team>"', () => {
  assert.equal(isHandoffConv('handoff'), true);
  assert.equal(isHandoffConv('handoff-sre'), true);
  assert.equal(isHandoffConv('handoffs'), false);
  assert.equal(isHandoffConv('ops'), false);
});

test('listLines and handoffProblem: one item per line; an owner who is someone else; something to hand over', () => {
  assert.deepEqual(listLines(' a \n\n b\n '), ['a', 'b']);
  assert.deepEqual(listLines(undefined), []);
  assert.match(handoffProblem({ openItems: ['a'], risks: [], owner: ' ' }, 'alice'), /owner/);
  assert.match(handoffProblem({ openItems: ['a'], risks: [], owner: 'alice' }, 'alice'), /someone else/);
  assert.match(handoffProblem({ openItems: [], risks: [], owner: 'bob' }, 'alice'), /at least one/);
  assert.equal(handoffProblem({ openItems: [], risks: ['r'], owner: 'bob' }, 'alice'), null);
});

test('handoffBody: structured, with a readable text', () => {
  assert.deepEqual(handoffBody({ openItems: ['rotate certs'], risks: ['disk 85%'], owner: ' bob ' }), {
    kind: 'handoff', open_items: ['rotate certs'], risks: ['disk 85%'], owner: 'bob',
    text: 'Shift handoff to bob\nOpen items:\n- rotate certs\nRisks:\n- disk 85%',
  });
  assert.equal(handoffBody({ openItems: [], risks: ['x'], owner: 'bob' }).text, 'Shift handoff to bob\nRisks:\n- x');
  assert.deepEqual(ackBody('id-1'), { kind: 'handoff-ack', ref: 'id-1', text: 'Handoff acknowledged' });
});

test('latestHandoff: the newest note, reads from receipts at or past it, acks that refer to it', () => {
  const rows = [
    row(1, 'carol', handoffBody({ openItems: ['old'], risks: [], owner: 'alice' })),
    row(2, 'alice', ackBody('id-1')),
    row(3, 'alice', handoffBody({ openItems: ['rotate certs', 'watch queue'], risks: ['disk 85%'], owner: 'bob' })),
    row(4, 'bob', ackBody('id-1')),       // acknowledges the older note: not this one
    row(5, 'alice', ackBody('id-3')),     // its author: not an acknowledgement
    row(6, 'bob', ackBody('id-3')),
    row(7, 'bob', ackBody('id-3')),       // twice: the first counts
    { id: 'q', seq: undefined, from: 'dave', body: ackBody('id-3') },  // not stored yet
  ];
  const readLog = [
    { user: 'bob', seq: 2, at: 100 },     // before the note
    { user: 'alice', seq: 3, at: 150 },   // the author
    { user: 'bob', seq: 3, at: 200 },
    { user: 'bob', seq: 7, at: 300 },
    { user: 'dave', seq: 5, at: 250 },
  ];
  const handoff = latestHandoff(rows, readLog);
  assert.equal(handoff.id, 'id-3');
  assert.equal(handoff.seq, 3);
  assert.equal(handoff.from, 'alice');
  assert.equal(handoff.owner, 'bob');
  assert.equal(handoff.at, T0 + 3000);
  assert.deepEqual(handoff.openItems, ['rotate certs', 'watch queue']);
  assert.deepEqual(handoff.risks, ['disk 85%']);
  assert.deepEqual(handoff.reads, [{ user: 'bob', at: 200 }, { user: 'dave', at: 250 }]);
  assert.deepEqual(handoff.acks, [{ user: 'bob', at: T0 + 6000 }]);
  assert.equal(awaitsAckFrom(handoff, 'bob'), false);
  assert.equal(awaitsAckFrom(latestHandoff(rows.slice(0, 3), readLog), 'bob'), true);
  assert.equal(awaitsAckFrom(handoff, 'dave'), false, 'not the owner');
  assert.equal(latestHandoff([row(1, 'a', { text: 'hi' })]), null);
  assert.deepEqual(latestHandoff([{ ...rows[2], seq: undefined }], readLog).reads, [], 'a note not stored yet is read by no one');
});
