// web/sw.js's precache list covers the whole app shell: a file the app loads but the list
// misses would be fetched from the network, and so fail, in a reload without one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const WEB = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../web');
const source = readFileSync(path.join(WEB, 'sw.js'), 'utf8');
const shell = JSON.parse(source.match(/const SHELL = (\[[^\]]*\]);/)[1].replace(/\bINDEX\b/, "'/index.html'").replace(/'/g, '"').replace(/,\s*\]/, ']'));

test('every file of web/ but the worker itself is precached, and nothing that is not there', () => {
  const files = readdirSync(WEB).filter((name) => name !== 'sw.js').map((name) => `/${name}`).sort();
  assert.deepEqual(shell.filter((p) => !p.startsWith('/sdk/')).sort(), files);
});

test('the SDK the edge serves under /sdk/ is precached, its loader and its module too', () => {
  assert.deepEqual(shell.filter((p) => p.startsWith('/sdk/')).sort(), ['/sdk/waymark.js', '/sdk/waymark_core.js', '/sdk/waymark_core.wasm']);
});

test('the cache is named after a VERSION constant', () => {
  assert.match(source, /^const VERSION = '[^']+';$/m);
  assert.match(source, /const CACHE = `\$\{CACHE_PREFIX\}\$\{VERSION\}`;/);
});
