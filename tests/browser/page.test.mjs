// The simulator page in headless Chromium: its numbers against the native core's, compare
// mode, the URL, a user's module, exports, and errors that say what is wrong.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  ROOT, startServer, launchBrowser, openPage, settled, runAgain, errorText, nativeReport,
  exportedJson, query, outputDir, nativeScorecard,
} from './support.mjs';

// A run with something to see: an outage (503s, backoff, the circuit), an origin limit
// tighter than the load, memory pressure rising through High, adaptive jitter.
const CONFIG_A = JSON.stringify({
  seed: 11,
  limiters: [{ name: 'origin', tokens_per_hour: 32400, burst: 12 }],
  jitter: { strategy: 'adaptive', max_ms: 800 },
  backoff: { base_ms: 200, max_ms: 10000, failure_threshold: 4, open_ms: 5000 },
});
const CONFIG_B = JSON.stringify({
  seed: 11,
  limiters: [{ name: 'origin', tokens_per_hour: 50400, burst: 40 }],
  jitter: { strategy: 'full', max_ms: 800 },
});
const PARAMS = {
  clients: 30, pattern: 'herd', rate_per_client: 0.4, duration_s: 900, seed: 42,
  origin_rate: 10, origin_burst: 5, burst_period_s: 60, outage_start_s: 300, outage_end_s: 420,
  memory: '0:0.4, 400:0.9, 600:0.5', base_ms: 100, cost: 1, config: CONFIG_A,
};

// The README's screenshot: the scorecard's herd after a 60 s outage (sim/scenarios/herd.json,
// with memory pressure), a jittered policy against a fast unjittered one
// (docs/simulator.png is a copy of what the last test writes).
const SHOWCASE = {
  clients: 40, pattern: 'herd', rate_per_client: 0.15, duration_s: 1500, seed: 3,
  origin_rate: 8, origin_burst: 10, burst_period_s: 60, outage_start_s: 200, outage_end_s: 260,
  memory: '0:0.5, 300:0.9, 450:0.6', base_ms: 0, cost: 1, latency_ms: 50,
  config: JSON.stringify({ seed: 7, limiters: [{ name: 'origin', tokens_per_hour: 25200, burst: 10 }], jitter: { strategy: 'adaptive', max_ms: 2000 } }),
  compare: '1',
  config_b: JSON.stringify({ seed: 7, limiters: [{ name: 'origin', tokens_per_hour: 36000, burst: 40 }], jitter: { strategy: 'none' } }),
};

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  server?.stop();
});

/** The scenario a JSON export describes, for one side. */
function scenarioOf(exported, side) {
  return { ...exported.scenario, config: side === 'b' ? exported.config_b : exported.config };
}

test('a fixed-seed run gives exactly the native core\'s report, shown in the summary', async () => {
  const page = await openPage(browser, server.url + query(PARAMS));
  assert.equal(await settled(page), 'done', await errorText(page));
  const exported = await exportedJson(page);
  const native = nativeReport(scenarioOf(exported, 'a'));
  assert.deepEqual(exported.results.a, native);
  const summary = native.summary;
  assert.ok(summary.failed_503 > 0 && summary.refused_circuit > 0 && summary.rejected_429 > 0,
    `the scenario exercises outage, circuit and 429s: ${JSON.stringify(summary)}`);
  const cell = (key) => page.textContent(`#summary td[data-side="a"][data-key="${key}"]`);
  assert.equal(await cell('rejected_429'), summary.rejected_429.toLocaleString('en'));
  assert.equal(await cell('admitted'), summary.admitted.toLocaleString('en'));
  assert.equal(await cell('wait_p99_ms'),
    `${summary.wait_p99_ms.toLocaleString('en', { maximumFractionDigits: 1 })} ms`);
  const charts = await page.$$eval('#charts figure canvas', (canvases) => canvases.length);
  assert.equal(charts, 7, 'rate, tokens, flows, waits, jitter, memory, pool');
  assert.deepEqual(page.problems, []);
  await page.close();
});

test('compare mode runs both configs on the same arrivals, each as natively', async () => {
  const page = await openPage(browser, server.url + query({ ...PARAMS, compare: '1', config_b: CONFIG_B }));
  assert.equal(await settled(page), 'done', await errorText(page));
  const exported = await exportedJson(page);
  assert.deepEqual(exported.results.b, nativeReport(scenarioOf(exported, 'b')));
  assert.deepEqual(exported.results.a, nativeReport(scenarioOf(exported, 'a')));
  const [a, b] = [exported.results.a.summary, exported.results.b.summary];
  assert.equal(a.requests, b.requests, 'the same trace');
  assert.notEqual(a.rejected_429, b.rejected_429);
  const headers = await page.$$eval('#summary thead th', (ths) => ths.map((th) => th.textContent));
  assert.deepEqual(headers, ['', 'Policy A', 'Policy B']);
  const legend = await page.textContent('#charts');
  assert.match(legend, /\(B\)/);
  assert.equal(await page.isVisible('#policy-b'), true);
  // B's small form is A's, kept in step with B's own JSON.
  assert.equal(await page.inputValue('fieldset[data-side="b"] [data-field="tokens_per_hour"]'), '50400');
  assert.equal(await page.inputValue('fieldset[data-side="b"] [data-field="strategy"]'), 'full');
  assert.equal(await page.inputValue('fieldset[data-side="a"] [data-field="strategy"]'), 'adaptive');
  assert.deepEqual(page.problems, []);
  await page.close();
});

test('every parameter survives the URL: a run set in the form reruns the same from its link', async () => {
  const page = await openPage(browser, server.url);
  assert.equal(await settled(page), 'done', await errorText(page));
  await page.fill('input[name="clients"]', '12');
  await page.selectOption('select[name="pattern"]', 'bursts');
  await page.fill('input[name="burst_period_s"]', '30');
  // A fresh seed comes from crypto.getRandomValues.
  await page.click('#new-seed');
  const fresh = Number(await page.inputValue('input[name="seed"]'));
  assert.ok(Number.isInteger(fresh) && fresh >= 0 && fresh <= 2 ** 53 && fresh !== 1, String(fresh));
  await page.fill('input[name="seed"]', '9');
  await page.fill('input[name="memory"]', '0:0.2, 100:0.95');
  // The small policy form rewrites the JSON.
  await page.fill('fieldset[data-side="a"] [data-field="tokens_per_hour"]', '18000');
  await page.selectOption('fieldset[data-side="a"] [data-field="strategy"]', 'equal');
  assert.equal(await runAgain(page), 'done', await errorText(page));
  const config = JSON.parse(await page.inputValue('textarea[name="config"]'));
  assert.equal(config.limiters[0].tokens_per_hour, 18000);
  assert.equal(config.jitter.strategy, 'equal');
  const link = page.url();
  const first = await page.evaluate(() => window.pacer.results);

  const again = await openPage(browser, link);
  assert.equal(await settled(again), 'done', await errorText(again));
  assert.deepEqual(await again.evaluate(() => window.pacer.results), first);
  assert.equal(await again.inputValue('input[name="clients"]'), '12');
  assert.equal(await again.inputValue('select[name="pattern"]'), 'bursts');
  assert.equal(await again.inputValue('input[name="memory"]'), '0:0.2, 100:0.95');
  assert.equal(await again.inputValue('fieldset[data-side="a"] [data-field="tokens_per_hour"]'), '18000');
  assert.equal(await again.isVisible('input[name="burst_period_s"]'), true);
  assert.equal(await again.isVisible('input[name="outage_start_s"]'), false);
  await page.close();
  await again.close();
});

test('a user-supplied dist/pacer.wasm runs through WebAssembly with the same results as the built-in core', async () => {
  const page = await openPage(browser, server.url + query(PARAMS));
  assert.equal(await settled(page), 'done', await errorText(page));
  const builtIn = await page.evaluate(() => window.pacer.results.a);
  await page.setInputFiles('#module-file', path.join(ROOT, 'dist/pacer.wasm'));
  await page.waitForFunction(() => document.querySelector('#module-info').textContent.includes('ABI v1'));
  assert.equal(await page.inputValue('select[name="engine_a"]'), 'module');
  assert.equal(await runAgain(page), 'done', await errorText(page));
  const onModule = await page.evaluate(() => ({ report: window.pacer.results.a, timing: window.pacer.timings.a }));
  assert.equal(onModule.timing.engine, 'pacer.wasm');
  assert.deepEqual(onModule.report, builtIn);
  assert.match(await page.textContent('#summary thead'), /pacer\.wasm/);

  // Without a seed in the config the module seeds itself from random_fill: the page serves
  // it the scenario's bytes, as the native simulator does, so the runs still agree.
  await page.fill('textarea[name="config"]', CONFIG_A.replace('"seed":11,', ''));
  await page.selectOption('select[name="engine_a"]', 'core');
  assert.equal(await runAgain(page), 'done', await errorText(page));
  const seedless = await page.evaluate(() => window.pacer.results.a);
  assert.notDeepEqual(seedless, builtIn);
  await page.selectOption('select[name="engine_a"]', 'module');
  assert.equal(await runAgain(page), 'done', await errorText(page));
  assert.deepEqual(await page.evaluate(() => window.pacer.results.a), seedless);
  assert.deepEqual(page.problems, []);
  await page.close();
});

test('bad input shows a clear message on the page, never a blank one', async () => {
  const page = await openPage(browser, server.url);
  assert.equal(await settled(page), 'done', await errorText(page));

  // A config that is not JSON: flagged as typed, refused at Run, the old results stay.
  await page.fill('textarea[name="config"]', '{"limiters": [');
  const note = await page.textContent('.field-error[data-for="config"]');
  assert.match(note, /^Policy A: /);
  assert.equal(await runAgain(page), 'error');
  assert.match(await errorText(page), /^Policy A: config: /);
  assert.equal(await page.isVisible('#summary td[data-key="requests"]'), true);

  // A config that parses but breaks a rule names the field.
  await page.fill('textarea[name="config"]', '{"limiters":[{"name":"a","tokens_per_hour":60,"burst":0}]}');
  assert.equal(await runAgain(page), 'error');
  assert.match(await errorText(page), /limiters\[0\]\.burst/);

  // A file that is not WebAssembly.
  await page.setInputFiles('#module-file', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hello, pacer') });
  await page.waitForFunction(() => !document.querySelector('#error').hidden
    && document.querySelector('#error').textContent.includes('notes.txt'));
  assert.match(await errorText(page), /notes\.txt is not a WebAssembly module: it starts with 68 65 6c 6c/);
  assert.match(await page.textContent('#module-info'), /^Not loaded: /);

  // WebAssembly, but not a policy.
  const empty = Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
  await page.setInputFiles('#module-file', { name: 'empty.wasm', mimeType: 'application/wasm', buffer: empty });
  await page.waitForFunction(() => document.querySelector('#error').textContent.includes('empty.wasm'));
  assert.match(await errorText(page), /empty\.wasm lacks memory, pacer_abi_version/);

  // Parameters out of range, from the form and from a link.
  await page.fill('textarea[name="config"]', CONFIG_A);
  await page.fill('input[name="clients"]', '0');
  assert.equal(await runAgain(page), 'error');
  assert.match(await errorText(page), /clients: must be from 1 to 100000/);
  await page.fill('input[name="clients"]', '10');
  await page.fill('input[name="memory"]', '0:half');
  assert.equal(await runAgain(page), 'error');
  assert.match(await errorText(page), /memory: "0:half" is not seconds:fraction/);

  const link = await openPage(browser, `${server.url}?clients=lots&duration_s=60`);
  await link.waitForFunction(() => document.body.dataset.status === 'error');
  assert.match(await errorText(link), /clients: "lots" is not a number/);
  assert.equal(await link.isVisible('#form'), true);
  await page.close();
  await link.close();
});

// An ABI v1 module whose next_delay traps: assembled by binaryen's wasm-as (npm).
const TRAPPING_WAT = `(module
  (memory (export "memory") 1)
  (func (export "pacer_abi_version") (result i32) (i32.const 1))
  (func (export "pacer_features") (result i32) (i32.const 0))
  (func (export "pacer_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "pacer_dealloc") (param i32 i32))
  (func (export "pacer_configure") (param i32 i32) (result i32) (i32.const 0))
  (func (export "pacer_last_error_ptr") (result i32) (i32.const 0))
  (func (export "pacer_last_error_len") (result i32) (i32.const 0))
  (func (export "pacer_try_acquire") (param i32 i32) (result i64) (i64.const 0))
  (func (export "pacer_reserve") (param i32 i32) (result i64) (i64.const 0))
  (func (export "pacer_available_milli") (param i32) (result i64) (i64.const 0))
  (func (export "pacer_on_response") (param i32 i32 i64) (result i32) (i32.const 0))
  (func (export "pacer_next_delay_ns") (param i32 i32 i64) (result i64) (unreachable))
  (func (export "pacer_retry_in_ns") (param i32) (result i64) (i64.const 0))
  (func (export "pacer_jitter_ns") (param i64 i32) (result i64) (i64.const 0))
  (func (export "pacer_pressure") (result i32) (i32.const 0))
  (func (export "pacer_should_throttle") (result i32) (i32.const 0))
  (func (export "pacer_pool_target") (param i32) (result i32) (i32.const 0))
  (func (export "pacer_state_export") (result i32) (i32.const 0))
  (func (export "pacer_state_ptr") (result i32) (i32.const 0))
  (func (export "pacer_state_import") (param i32 i32) (result i32) (i32.const 0)))`;

test('a user module that traps ends its run with the trap\'s message, and the page goes on', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pacer-wat-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, 'trap.wat'), TRAPPING_WAT);
  execFileSync(path.join(ROOT, 'node_modules/.bin/wasm-as'), [path.join(dir, 'trap.wat'), '-o', path.join(dir, 'trap.wasm')]);
  const page = await openPage(browser, server.url);
  assert.equal(await settled(page), 'done', await errorText(page));
  // Dropped on the page this time, as a user would drag it from their files.
  const bytes = [...readFileSync(path.join(dir, 'trap.wasm'))];
  const dataTransfer = await page.evaluateHandle((content) => {
    const transfer = new DataTransfer();
    transfer.items.add(new File([new Uint8Array(content)], 'trap.wasm', { type: 'application/wasm' }));
    return transfer;
  }, bytes);
  // The same module without pacer_reserve is refused, naming what it lacks (the list is the
  // core's table, as the host's is).
  writeFileSync(path.join(dir, 'short.wat'), TRAPPING_WAT.replace(/\n  \(func \(export "pacer_reserve"\)[^\n]*/, ''));
  execFileSync(path.join(ROOT, 'node_modules/.bin/wasm-as'), [path.join(dir, 'short.wat'), '-o', path.join(dir, 'short.wasm')]);
  await page.setInputFiles('#module-file', path.join(dir, 'short.wasm'));
  await page.waitForFunction(() => document.querySelector('#error').textContent.includes('lacks'));
  assert.match(await errorText(page), /short\.wasm lacks pacer_reserve: not an ABI v1 policy module/);
  await page.dispatchEvent('#drop', 'drop', { dataTransfer });
  await page.waitForFunction(() => document.querySelector('#module-info').textContent.match(/^trap\.wasm: [0-9,]+ bytes, ABI v1/));
  assert.equal(await runAgain(page), 'error');
  assert.match(await errorText(page), /^Policy A: pacer_next_delay_ns trapped: unreachable$/);
  await page.selectOption('select[name="engine_a"]', 'core');
  assert.equal(await runAgain(page), 'done', await errorText(page));
  assert.equal(await page.isVisible('#error'), false);
  await page.close();
});

test('the scorecard runs every baseline on the same arrivals, exactly as pacer simulate --scorecard does', async () => {
  const page = await openPage(browser, server.url + query(SHOWCASE));
  assert.equal(await settled(page), 'done', await errorText(page));
  await page.click('#scorecard-run');
  await page.waitForFunction(() => document.body.dataset.scorecard === 'done');
  const rows = await page.evaluate(() => window.pacer.scorecard);
  const { compare, config_b: _b, ...scenario } = SHOWCASE;
  void compare;
  scenario.memory = SHOWCASE.memory.split(',').map((p) => p.split(':').map(Number));
  // The page's columns (the adaptive goals' columns are pacer simulate's alone).
  const native = nativeScorecard(scenario);
  const columns = Object.keys(rows[0]);
  native.rows = native.rows.map((r) => Object.fromEntries(columns.map((k) => [k, r[k]])));
  assert.deepEqual(rows, native.rows);
  assert.deepEqual(rows.map((r) => r.strategy), [
    'pacer', '(a) AWS standard retry', '(b) AWS adaptive', '(c) SRE throttling', '(d) plain token bucket',
  ]);
  assert.equal(rows[0].rejected_429, 0, 'pacer: no 429 after the outage');
  assert.equal(await page.locator('#scorecard tbody tr').count(), 5);
  assert.equal(await page.textContent('#scorecard tr[data-strategy="pacer"] td[data-key="rejected_429"]'), '0');

  // The same on a dropped-in dist/pacer.wasm, through the browser's WebAssembly.
  await page.setInputFiles('#module-file', path.join(ROOT, 'dist/pacer.wasm'));
  await page.waitForFunction(() => document.querySelector('#module-info').textContent.includes('ABI v1'));
  await page.evaluate(() => { delete document.body.dataset.scorecard; });
  await page.click('#scorecard-run');
  await page.waitForFunction(() => document.body.dataset.scorecard === 'done');
  assert.deepEqual(await page.evaluate(() => window.pacer.scorecard), native.rows);
  assert.deepEqual(page.problems, []);
  await page.close();
});

test('CSV export has a row per sample and a screenshot is written for inspection', async () => {
  const page = await openPage(browser, server.url + query(SHOWCASE));
  assert.equal(await settled(page), 'done', await errorText(page));
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-csv')]);
  const csv = readFileSync(await download.path(), 'utf8').trim().split('\n');
  const header = csv[0].split(',');
  assert.equal(header[0], 't_s');
  assert.ok(header.includes('rejected_429_per_s_a') && header.includes('rejected_429_per_s_b'), header.join());
  assert.equal(csv.length, 1 + 1500);
  assert.ok(csv.slice(1).every((row) => row.split(',').length === header.length));
  await page.click('#scorecard-run');
  await page.waitForFunction(() => document.body.dataset.scorecard === 'done');
  const file = path.join(outputDir(), 'simulator.png');
  await page.screenshot({ path: file, fullPage: true });
  const png = readFileSync(file);
  assert.deepEqual([...png.subarray(1, 4)], [...Buffer.from('PNG')]);
  assert.ok(png.length > 50_000, `a screenshot with charts, not a blank page (${png.length} bytes)`);
  writeFileSync(path.join(outputDir(), 'simulator.url'), page.url());
  await page.close();
});

test('hosts: N hosts pacing alone against one quota earn 429s; sharing it, none, on the same arrivals', async () => {
  // Four hosts, each with the origin's whole quota (10/s, burst 5) when alone.
  const params = {
    ...PARAMS, pattern: 'poisson', clients: 40, rate_per_client: 0.5, duration_s: 600,
    memory: '', outage_start_s: 0, outage_end_s: 0, hosts: '4',
    config: JSON.stringify({ seed: 3, limiters: [{ name: 'origin', tokens_per_hour: 36000, burst: 5 }] }),
  };
  const page = await openPage(browser, server.url + query(params));
  assert.equal(await settled(page), 'done', await errorText(page));
  const exported = await exportedJson(page);
  assert.equal(exported.hosts, 4);
  // A: a limiter per host with the whole quota; B: a quarter of the rate and burst each, empty.
  const limiters = (json) => JSON.parse(json).limiters.map((l) => [l.name, l.tokens_per_hour, l.burst, l.initial]);
  assert.deepEqual(limiters(exported.config), [0, 1, 2, 3].map((i) => [`host${i}`, 36000, 5, undefined]));
  assert.deepEqual(limiters(exported.config_b), [0, 1, 2, 3].map((i) => [`host${i}`, 9000, 1, 0]));
  assert.deepEqual(exported.results.a, nativeReport(scenarioOf(exported, 'a')));
  assert.deepEqual(exported.results.b, nativeReport(scenarioOf(exported, 'b')));
  const [alone, sharing] = [exported.results.a.summary, exported.results.b.summary];
  assert.equal(alone.requests, sharing.requests, 'the same arrivals');
  assert.ok(alone.rejected_429 > 100, `alone: ${alone.rejected_429} x 429`);
  assert.equal(sharing.rejected_429, 0, 'sharing: no 429');
  const headers = await page.$$eval('#summary thead th', (ths) => ths.map((th) => th.textContent));
  assert.deepEqual(headers, ['', '4 hosts, each alone', '4 hosts sharing']);
  assert.equal(await page.inputValue('input[name="hosts"]'), '4');
  assert.deepEqual(page.problems, []);
  await page.close();
});

test('adaptive fields write limiter 0\'s adaptive section, and the rate chart shows the rate learnt against the origin\'s limit', async () => {
  // A policy configured at 4x the origin's 5/s, adaptive, on a backlog of 6 clients.
  const config = JSON.stringify({ seed: 5, limiters: [{ name: 'origin', tokens_per_hour: 72000, burst: 5 }] });
  const params = {
    clients: 6, pattern: 'backlog', rate_per_client: 50, duration_s: 300, seed: 9,
    origin_rate: 5, origin_burst: 5, base_ms: 0, cost: 1, latency_ms: 50, memory: '', config,
  };
  const page = await openPage(browser, server.url + query(params));
  assert.equal(await settled(page), 'done', await errorText(page));
  const fixed = await page.evaluate(() => window.pacer.results.a.series.rate_per_s);
  assert.ok(fixed.every((r) => Math.abs(r - 20) < 1e-9), 'a fixed rate stays at 20/s');

  const fields = 'fieldset.policy[data-side="a"]';
  await page.fill(`${fields} [data-field="min_tokens_per_hour"]`, '360');
  await page.fill(`${fields} [data-field="max_tokens_per_hour"]`, '72000');
  const written = JSON.parse(await page.inputValue('textarea[name="config"]'));
  assert.deepEqual(written.limiters[0].adaptive, { min_tokens_per_hour: 360, max_tokens_per_hour: 72000 });
  assert.equal(await runAgain(page), 'done', await errorText(page));
  const { series } = await page.evaluate(() => window.pacer.results.a);
  const late = series.rate_per_s.slice(-Math.floor(series.rate_per_s.length / 3));
  const mean = late.reduce((a, r) => a + r, 0) / late.length;
  assert.ok(mean > 3.5 && mean < 6.5, `the rate learnt: ${mean}/s against the origin's 5/s`);
  assert.equal(await page.locator('figure[data-chart="Rate of limiter 0 against the origin\'s limit"]').count(), 1);

  // Both bounds cleared: the section goes, and the rate is fixed again.
  await page.fill(`${fields} [data-field="min_tokens_per_hour"]`, '');
  await page.fill(`${fields} [data-field="max_tokens_per_hour"]`, '');
  assert.equal(JSON.parse(await page.inputValue('textarea[name="config"]')).limiters[0].adaptive, undefined);
  // One bound alone: the core names the missing one.
  await page.fill(`${fields} [data-field="max_tokens_per_hour"]`, '72000');
  assert.match(await page.textContent('.field-error[data-for="config"]'), /adaptive\.min_tokens_per_hour: is required/);
  assert.deepEqual(page.problems, []);
  await page.close();
});
