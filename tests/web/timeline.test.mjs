// web/timeline.js: the paging bookkeeping over the SDK's rows, and the display helpers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LIFECYCLE_STEPS, Timeline, shownTime, stepTimes } from '../../web/timeline.js';

test('Timeline: rows are the SDK\'s, as given; seq bounds and lookup over them', () => {
  let rows = [];
  const tl = new Timeline('ops', () => rows);
  assert.equal(tl.lowestSeq(), undefined);
  assert.equal(tl.highestSeq(), 0);
  rows = [
    { id: 'a', seq: 3, state: 'read', times: {} },
    { id: 'b', seq: 7, state: 'delivered', times: {} },
    { id: 'q', state: 'queued', times: { queued: 5 } },
  ];
  assert.deepEqual(tl.rows().map((row) => row.id), ['a', 'b', 'q']);
  assert.equal(tl.lowestSeq(), 3);
  assert.equal(tl.highestSeq(), 7);
  assert.equal(tl.get('b').state, 'delivered');
  assert.equal(tl.get('zz'), undefined);
  const before = tl.version;
  tl.touch();
  assert.equal(tl.version, before + 1);
  assert.deepEqual(new Timeline('x', () => undefined).rows(), []);
});

test('stepTimes: what this tab saw, else the send time (own) and the edge time', () => {
  assert.deepEqual(stepTimes({ own: true, times: { queued: 1, sequenced: 2 }, cts: 0, ts: 9 }), { queued: 1, sequenced: 2 });
  assert.deepEqual(stepTimes({ own: true, times: {}, cts: 4, ts: 9 }), { queued: 4, sequenced: 9 });
  assert.deepEqual(stepTimes({ own: false, times: { delivered: 12 }, cts: 4, ts: 9 }), { delivered: 12, sequenced: 9 });
});

test('shownTime: the edge time, else the earliest step seen, else the send time', () => {
  assert.equal(shownTime({ ts: 50, times: { queued: 10 } }), 50);
  assert.equal(shownTime({ times: { failed: 30, queued: 10 } }), 10);
  assert.equal(shownTime({ times: {}, cts: 7 }), 7);
  assert.equal(shownTime({ times: {} }), undefined);
});

test('LIFECYCLE_STEPS: the five steps the panel lists', () => {
  assert.deepEqual(LIFECYCLE_STEPS, ['queued', 'stored', 'sequenced', 'delivered', 'read']);
});
