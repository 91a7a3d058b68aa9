// web/names.js: the display formatting the app's views share.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bodyText, formatClock, formatDelta, formatPrecise, traceIdOf, typingSentence } from '../../web/names.js';

test('formatClock: hours and minutes today, the date on other days', () => {
  const now = new Date(2026, 10, 28, 18, 0).getTime();
  assert.equal(formatClock(new Date(2026, 10, 28, 14, 3).getTime(), now), '14:03');
  assert.equal(formatClock(new Date(2026, 10, 27, 9, 5).getTime(), now), '27 Nov 09:05');
});

test('formatPrecise: milliseconds, zero-padded', () => {
  assert.equal(formatPrecise(new Date(2026, 0, 2, 3, 4, 5, 6).getTime()), '03:04:05.006');
});

test('formatDelta: ms below a second, tenths of seconds below a minute, then minutes', () => {
  assert.equal(formatDelta(12.4), '+12 ms');
  assert.equal(formatDelta(-3), '+0 ms');
  assert.equal(formatDelta(1400), '+1.4 s');
  assert.equal(formatDelta(59_949), '+59.9 s');
  assert.equal(formatDelta(150_000), '+3 min');
});

test('traceIdOf: the trace id of a traceparent, else null', () => {
  assert.equal(traceIdOf('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'), '4bf92f3577b34da6a3ce929d0e0e4736');
  assert.equal(traceIdOf('not-a-trace'), null);
  assert.equal(traceIdOf(null), null);
});

test('bodyText: {text}, a string, nothing, or the JSON of anything else', () => {
  assert.equal(bodyText({ text: 'hi' }), 'hi');
  assert.equal(bodyText('plain'), 'plain');
  assert.equal(bodyText(undefined), '');
  assert.equal(bodyText(null), 'null');
  assert.equal(bodyText({ n: 1 }), '{"n":1}');
  assert.equal(bodyText([1, 2]), '[1,2]');
});

test('typingSentence: one, two, three and more users', () => {
  assert.equal(typingSentence([]), '');
  assert.equal(typingSentence(['bob']), 'bob is typing…');
  assert.equal(typingSentence(['bob', 'carol']), 'bob and carol are typing…');
  assert.equal(typingSentence(['bob', 'carol', 'dave']), 'bob, carol and 1 other are typing…');
  assert.equal(typingSentence(['bob', 'carol', 'dave', 'erin']), 'bob, carol and 2 others are typing…');
});
