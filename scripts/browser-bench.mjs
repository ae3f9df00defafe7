// Browser figures for BENCHMARKS.md (`make bench-www`): the simulator's speed in headless
// Chromium on a million requests, the raw decision rate, and the page's weight.
// Needs target/debug/pacer (or release), www/pkg and Debian's chromium, as the browser tests do.

import { statSync } from 'node:fs';
import path from 'node:path';
import { ROOT, startServer, launchBrowser, openPage, settled, errorText, query } from '../tests/browser/support.mjs';

const MILLION = {
  clients: 1000, pattern: 'poisson', rate_per_client: 1, duration_s: 1000, seed: 1,
  origin_rate: 0, origin_burst: 1, burst_period_s: 60, outage_start_s: 0, outage_end_s: 1,
  memory: '0:0.5', base_ms: 0, cost: 1,
  config: JSON.stringify({ seed: 1, limiters: [{ name: 'api', tokens_per_hour: 3_960_000, burst: 1000 }] }),
};

const server = await startServer();
const browser = await launchBrowser();
try {
  const page = await openPage(browser);
  const bytes = new Map();
  page.on('response', async (response) => {
    try {
      bytes.set(new URL(response.url()).pathname, (await response.body()).length);
    } catch { /* redirects have no body */ }
  });
  await page.goto(server.url + query(MILLION));
  if ((await settled(page)) !== 'done') throw new Error(await errorText(page));
  const runs = [];
  for (let i = 0; i < 3; i += 1) {
    await page.evaluate(() => { document.body.dataset.status = 'ready'; });
    await page.click('#run');
    await settled(page);
    runs.push(await page.evaluate(() => window.pacer.timings.a));
  }
  const best = runs.reduce((a, b) => (a.busy_ms < b.busy_ms ? a : b));
  console.log(`simulator: ${best.requests} requests, ${best.decisions} decisions in ${best.busy_ms.toFixed(0)} ms `
    + `(best of 3: ${runs.map((r) => r.busy_ms.toFixed(0)).join(', ')} ms) = `
    + `${(best.decisions / best.busy_ms / 1000).toFixed(2)} M decisions/s`);
  // The same run with dist/pacer.wasm dropped in: every call crosses wasm -> JS -> wasm.
  await page.setInputFiles('#module-file', path.join(ROOT, 'dist/pacer.wasm'));
  await page.waitForFunction(() => document.querySelector('#module-info').textContent.includes('ABI v1'));
  await page.evaluate(() => { document.body.dataset.status = 'ready'; });
  await page.click('#run');
  if ((await settled(page)) !== 'done') throw new Error(await errorText(page));
  const module = await page.evaluate(() => window.pacer.timings.a);
  console.log(`same run on dist/pacer.wasm through WebAssembly: ${module.busy_ms.toFixed(0)} ms = `
    + `${(module.decisions / module.busy_ms / 1000).toFixed(2)} M decisions/s `
    + `(${(module.busy_ms / best.busy_ms).toFixed(1)}x the built-in core's time)`);
  await page.selectOption('select[name="engine_a"]', 'core');
  const rates = [];
  for (let i = 0; i < 3; i += 1) rates.push(await page.evaluate(() => window.pacer.bench(5_000_000)));
  console.log(`raw try_acquire batch: ${rates.map((r) => (r / 1e6).toFixed(1)).join(', ')} M decisions/s`);
  const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
  let total = 0;
  for (const [file, size] of [...bytes].sort()) {
    console.log(`  ${file.padEnd(28)} ${kib(size)}`);
    total += size;
  }
  console.log(`page weight: ${kib(total)} uncompressed, of which wasm ${kib(statSync(path.join(ROOT, 'www/pkg/pacer_www_bg.wasm')).size)}`);
} finally {
  await browser.close();
  server.stop();
}
