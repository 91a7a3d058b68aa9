// Waymark's service worker: keeps one version of the app shell and the SDK in a cache of its
// own, so the app loads (and its SDK restores the outbox from IndexedDB) without a network.
// Rules (docs/web-app.md): the files below are fetched together at install, bypassing the HTTP
// cache, and served cache-first from then on, so a tab always runs one coherent version (never
// a new app.js over an old SDK). Nothing else is cached: /ws, /healthz, /metrics and every URL
// not listed go to the network untouched. A changed VERSION makes this file differ, which is
// what makes the browser install the new worker: it waits until the page says 'skip-waiting'
// (the "new version" banner's click), then deletes every other waymark-shell-* cache.

// Bump on every deployment that changes web/ or the SDK (any change of this file's bytes is a
// new version for the browser; the name of the cache follows VERSION).
const VERSION = '2026-12-03.5';
const CACHE_PREFIX = 'waymark-shell-';
const CACHE = `${CACHE_PREFIX}${VERSION}`;

// The shell: everything index.html loads, the manifest and its icons, and the SDK (/sdk/).
const INDEX = '/index.html';
const SHELL = [
  INDEX,
  '/access.js',
  '/announcements.js',
  '/app.css',
  '/app.js',
  '/connection-banner.js',
  '/handoff-panel.js',
  '/handoff.js',
  '/icons.js',
  '/incident-panel.js',
  '/incident.js',
  '/lifecycle-panel.js',
  '/mentions.js',
  '/message-list.js',
  '/names.js',
  '/offline.js',
  '/timeline.js',
  '/typing.js',
  '/manifest.webmanifest',
  '/icon.svg',
  '/icon-192.png',
  '/icon-512.png',
  '/sdk/waymark.js',
  '/sdk/waymark_core.js',
  '/sdk/waymark_core.wasm',
];
const SHELL_PATHS = new Set(SHELL);

self.addEventListener('install', (event) => {
  // All or nothing: a shell missing one file would not start offline, so then the install
  // fails and the worker in charge (if any) stays.
  event.waitUntil(caches.open(CACHE).then((cache) =>
    cache.addAll(SHELL.map((path) => new Request(path, { cache: 'reload' })))));
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith(CACHE_PREFIX) && name !== CACHE) await caches.delete(name);
    }
    // The first install takes the open tab at once, so it works offline without a reload.
    await self.clients.claim();
  })());
});

self.addEventListener('message', (event) => {
  const type = event.data?.type;
  if (type === 'skip-waiting') self.skipWaiting();
  else if (type === 'version') event.source?.postMessage({ type: 'version', version: VERSION, cache: CACHE });
});

// The path a request is kept under, or null when this worker leaves it to the network.
function shellPath(request) {
  if (request.method !== 'GET') return null;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return null;
  // A navigation to the app (any query) is index.html; the edge serves it for '/' too.
  if (request.mode === 'navigate') return url.pathname === '/' || url.pathname === INDEX ? INDEX : null;
  return SHELL_PATHS.has(url.pathname) ? url.pathname : null;
}

self.addEventListener('fetch', (event) => {
  const path = shellPath(event.request);
  if (!path) return;  // the browser fetches it as if there were no worker
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    const hit = await cache.match(path);
    if (hit) return hit;
    // Only when the cache lost the file (storage pressure, devtools): the network, and keep it.
    const response = await fetch(event.request);
    if (response.ok && response.type === 'basic') await cache.put(path, response.clone());
    return response;
  })());
});
