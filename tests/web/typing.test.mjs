// web/typing.js: TypingSender's throttling and idle stop (with node's mock timers), and
// TypingBoard, which shows exactly what the SDK's typing events say.
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { TypingBoard, TypingSender } from '../../web/typing.js';

function sender() {
  let now = 0;
  const sent = [];
  const s = new TypingSender((conv, on) => sent.push([conv, on]), { refreshMs: 3000, idleMs: 4000, now: () => now });
  return { s, sent, advance: (ms) => { now += ms; mock.timers.tick(ms); } };
}

test('TypingSender: on once per refresh while keys come, off after idle', () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    const { s, sent, advance } = sender();
    s.input('ops', true);
    advance(1000);
    s.input('ops', true);  // within refreshMs: nothing new
    assert.deepEqual(sent, [['ops', true]]);
    advance(2000);
    s.input('ops', true);  // 3 s since the last on: refreshed
    assert.deepEqual(sent, [['ops', true], ['ops', true]]);
    advance(3999);
    assert.equal(sent.length, 2);
    advance(1);            // 4 s without a key
    assert.deepEqual(sent.at(-1), ['ops', false]);
    advance(10000);
    assert.equal(sent.length, 3, 'off once');
  } finally {
    mock.timers.reset();
  }
});

test('TypingSender: an emptied box, another conversation, stop()', () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    const { s, sent } = sender();
    s.input('ops', true);
    s.input('ops', false);  // the box was emptied
    assert.deepEqual(sent, [['ops', true], ['ops', false]]);
    s.input('ops', true);
    s.input('dev', true);   // another conversation: off here, on there
    assert.deepEqual(sent.slice(2), [['ops', true], ['ops', false], ['dev', true]]);
    s.stop();
    s.stop();
    assert.deepEqual(sent.slice(5), [['dev', false]]);
  } finally {
    mock.timers.reset();
  }
});

test('TypingBoard: follows the events, tells of changes only, has no timer of its own', () => {
  mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
  try {
    const changed = [];
    const board = new TypingBoard((conv) => changed.push(conv));
    board.set('ops', 'carol', true);
    board.set('ops', 'bob', true);
    board.set('ops', 'bob', true);  // a refresh: nothing changes
    board.set('dev', 'bob', true);
    assert.deepEqual(board.users('ops'), ['bob', 'carol']);
    assert.deepEqual(changed, ['ops', 'ops', 'dev']);
    mock.timers.tick(60_000);       // no expiry here: the core's off event does that
    assert.deepEqual(board.users('ops'), ['bob', 'carol']);
    board.set('ops', 'bob', false);
    board.set('ops', 'bob', false); // already off
    board.set('nowhere', 'x', false);
    assert.deepEqual(board.users('ops'), ['carol']);
    assert.deepEqual(changed, ['ops', 'ops', 'dev', 'ops']);
    board.clear();
    assert.deepEqual(board.users('ops'), []);
  } finally {
    mock.timers.reset();
  }
});
