// The browser SDK's cold start in Chromium: a fresh profile each run (no HTTP cache, no compiled
// WebAssembly), a page served by the edge that imports /sdk/waymark.js and connects. Times, in
// ms from the navigation's start: the module imported (waymark.js and the core's loader),
// connect() resolved (the .wasm fetched, compiled and instantiated, the outbox store opened),
// and the first `connection` event in state `online` (the socket up, `welcome` read).
// Prints one JSON line: every run and the medians. Run by tests/bench/run_bench.py.
//
//   WAYMARK_EDGE=... WAYMARK_SDK_DIR=... node tests/bench/sdk_cold_start.mjs [runs]
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

import { CHROMIUM, CHROMIUM_ARGS, Edge, prerequisites, tempDir } from '../browser/sdk_harness.mjs';

const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>Waymark cold start</title>
<script type="module">
window.coldStart = (async () => {
  const { connect } = await import('/sdk/waymark.js');
  const imported = performance.now();
  let online;
  const onlineAt = new Promise((resolve) => { online = resolve; });
  const client = await connect({ token: 'dev:cold', url: 'ws://' + location.host + '/ws' });
  const ready = performance.now();
  client.on('connection', (event) => { if (event.state === 'online') online(performance.now()); });
  if (client.connectionState() === 'online') online(performance.now());
  return { imported, ready, online: await onlineAt };
})();
</script>
`;

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

const runs = Number(process.argv[2] ?? 5);
const missing = prerequisites();
if (missing) {
  console.log(JSON.stringify({ ok: false, problems: [missing] }));
  process.exit(2);
}
const web = tempDir('cold-web');
writeFileSync(join(web, 'index.html'), PAGE);
const data = tempDir('cold-data');
const edge = await new Edge({ data, web }).start();
const results = [];
try {
  for (let i = 0; i < runs; ++i) {
    const profile = tempDir('cold-profile');
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 20000,
    });
    try {
      const page = await context.newPage();
      await page.goto(`${edge.url}/`);
      const times = await Promise.race([
        page.evaluate(() => window.coldStart),
        new Promise((_, reject) => setTimeout(() => reject(new Error('no cold start within 20 s')), 20000)),
      ]);
      results.push(times);
    } finally {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    }
  }
} finally {
  await edge.stop();
  rmSync(web, { recursive: true, force: true });
  rmSync(data, { recursive: true, force: true });
}
const round = (value) => Math.round(value * 10) / 10;
console.log(JSON.stringify({
  scenario: 'sdk_cold_start', target: 'waymark', ok: results.length === runs, runs,
  imported_ms: round(median(results.map((r) => r.imported))),
  ready_ms: round(median(results.map((r) => r.ready))),
  online_ms: round(median(results.map((r) => r.online))),
  every_online_ms: results.map((r) => round(r.online)).join('/'),
}));
