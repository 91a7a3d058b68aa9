// web/announcements.js: broadcast channels and how many have read an announcement.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isAnnouncementConv, readCount, readCountText } from '../../web/announcements.js';

test('isAnnouncementConv: announce and announce-*', () => {
  assert.equal(isAnnouncementConv('announce'), true);
  assert.equal(isAnnouncementConv('announce-all'), true);
  assert.equal(isAnnouncementConv('announcements'), false);
  assert.equal(isAnnouncementConv('ops'), false);
});

test('readCount: others whose read cursor reached the seq', () => {
  const cursors = new Map([['pat', 9], ['rita', 3], ['sam', 2], ['tom', 7]]);
  assert.equal(readCount(3, cursors, 'pat'), 2);
  assert.equal(readCount(8, cursors, 'pat'), 0, 'the poster\'s own cursor does not count');
  assert.equal(readCount(1, cursors, 'nobody'), 4);
  assert.equal(readCount(undefined, cursors, 'pat'), 0, 'not stored yet');
  assert.equal(readCount(1, undefined, 'pat'), 0);
});

test('readCountText', () => {
  assert.equal(readCountText(0), 'Not read yet');
  assert.equal(readCountText(1), 'Read by 1 person');
  assert.equal(readCountText(2), 'Read by 2 people');
});
