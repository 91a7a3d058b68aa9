// web/access.js: what a token lets its user do in a conversation, as the UI reads it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { composerNote, convAccess, expiresAt, grantCovers, namedConvs, tokenClaims } from '../../web/access.js';

const b64url = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
const jwt = (payload) => `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url(payload)}.signature`;

test('tokenClaims: a dev token writes everywhere; a JWT gives its sub, tnt, convs, read and exp', () => {
  assert.deepEqual(tokenClaims('dev:ann'), { user: 'ann', dev: true });
  const claims = tokenClaims(jwt({ sub: 'rita', tnt: 'acme', convs: ['ops'], read: ['announce-*'], exp: 1800000000 }));
  assert.deepEqual(claims, { user: 'rita', tenant: 'acme', convs: ['ops'], read: ['announce-*'], exp: 1800000000 });
});

test('tokenClaims: a payload with non-ASCII text and base64url characters decodes', () => {
  // "ü" and "?" make "-" / "_" appear in the base64url text, which atob alone would refuse.
  const token = jwt({ sub: 'jo', tnt: 'acme', convs: ['équipe', '??>>'] });
  assert.ok(/[-_]/.test(token.split('.')[1]));
  assert.deepEqual(tokenClaims(token).convs, ['équipe', '??>>']);
});

test('tokenClaims: not a token, a broken payload, no sub: null; missing lists are empty', () => {
  assert.equal(tokenClaims('alice'), null);
  assert.equal(tokenClaims('a.b'), null);
  assert.equal(tokenClaims('x.!!!.y'), null);
  assert.equal(tokenClaims(jwt({ tnt: 'acme' })), null);
  assert.equal(tokenClaims(undefined), null);
  assert.deepEqual(tokenClaims(jwt({ sub: 'bo', convs: 'ops' })), { user: 'bo', tenant: '', convs: [], read: [], exp: null });
});

test('convAccess: convs writes, read only reads, a prefix ending in * covers, "*" covers all', () => {
  const claims = tokenClaims(jwt({ sub: 'rita', tnt: 'acme', convs: ['ops', 'team-*'], read: ['announce-*', 'ops'] }));
  assert.equal(convAccess(claims, 'ops'), 'write', 'convs wins over read');
  assert.equal(convAccess(claims, 'team-red'), 'write');
  assert.equal(convAccess(claims, 'announce-all'), 'read');
  assert.equal(convAccess(claims, 'announce'), 'none', 'the prefix is "announce-"');
  assert.equal(convAccess(claims, 'opsx'), 'none', 'a name is not a prefix');
  assert.equal(convAccess(tokenClaims(jwt({ sub: 'a', convs: ['*'] })), 'anything'), 'write');
  assert.equal(convAccess(tokenClaims(jwt({ sub: 'a', convs: [] })), 'ops'), 'none');
  assert.equal(convAccess(tokenClaims('dev:a'), 'ops'), 'write');
  assert.equal(convAccess(null, 'ops'), 'none');
  assert.equal(convAccess(claims, undefined), 'none', 'no conversation open');
  assert.equal(grantCovers('*', ''), true);
});

test('namedConvs: exact names from convs then read, once; prefixes name none', () => {
  const claims = tokenClaims(jwt({ sub: 'r', convs: ['ops', 'team-*'], read: ['news', 'ops', 'announce-*'] }));
  assert.deepEqual(namedConvs(claims), ['ops', 'news']);
  assert.deepEqual(namedConvs(tokenClaims('dev:a')), []);
});

test('expiresAt: seconds become ms, a value above 10^11 already is ms, none is null', () => {
  assert.equal(expiresAt({ exp: 1800000000 }), 1800000000000);
  assert.equal(expiresAt({ exp: 1800000000000 }), 1800000000000);
  assert.equal(expiresAt({ exp: null }), null);
  assert.equal(expiresAt({ user: 'a', dev: true }), null);
});

test('composerNote: says why the composer is off, nothing where the user writes', () => {
  assert.equal(composerNote('write', 'ops'), '');
  assert.match(composerNote('read', 'announce-all'), /^#announce-all is read-only for you/);
  assert.match(composerNote('none', 'secret'), /no access to #secret/);
});
