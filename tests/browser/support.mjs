// Shared by the browser tests: `pacer serve` on a free port, Debian's Chromium through
// playwright-core, and `pacer simulate` for the native side of every comparison.

import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const PACER = path.join(ROOT, 'target/debug/pacer');
export const OUT = path.join(ROOT, 'target/browser');

// The flags this machine's Chromium needs: no sandbox as root, no GPU, and nothing that
// reaches for the network beyond loopback.
const CHROMIUM_FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

/** Starts `pacer serve --port 0` and resolves with { url, stop }. */
export function startServer() {
  return new Promise((resolve, reject) => {
    const child = spawn(PACER, ['serve', '--port', '0', '--dir', path.join(ROOT, 'www')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const onData = (chunk) => {
      output += chunk;
      const match = output.match(/http:\/\/127\.0\.0\.1:\d+\//);
      if (match) resolve({ url: match[0], stop: () => child.kill('SIGINT') });
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (chunk) => { output += chunk; });
    child.on('exit', (code) => reject(new Error(`pacer serve exited (${code}): ${output}`)));
  });
}

/** Debian's Chromium, headless, with a fresh profile. */
export function launchBrowser() {
  return chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_FLAGS });
}

/** A page that records its console errors and uncaught exceptions in `page.problems`. */
export async function openPage(browser, url) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 }, acceptDownloads: true });
  const page = await context.newPage();
  page.problems = [];
  page.on('pageerror', (e) => page.problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') page.problems.push(`console: ${m.text()}`); });
  if (url) await page.goto(url);
  return page;
}

/** Waits until the page has finished a run (or failed); returns the status. */
export async function settled(page) {
  await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.status), null, { timeout: 60_000 });
  return page.evaluate(() => document.body.dataset.status);
}

/** Clicks Run and waits for the new run to finish. */
export async function runAgain(page) {
  await page.evaluate(() => { document.body.dataset.status = 'ready'; });
  await page.click('#run');
  return settled(page);
}

/** The page's visible error message ('' when none is shown). */
export function errorText(page) {
  return page.evaluate(() => {
    const box = document.querySelector('#error');
    return box.hidden ? '' : box.textContent;
  });
}

/** `pacer simulate ARGS --scenario FILE` on `scenario` (written to a temp dir, removed after), as JSON. */
function simulateNative(scenario, args) {
  const dir = mkdtempSync(path.join(tmpdir(), 'pacer-scenario-'));
  try {
    const file = path.join(dir, 'scenario.json');
    writeFileSync(file, JSON.stringify(scenario));
    return JSON.parse(execFileSync(PACER, ['simulate', ...args, '--scenario', file], { encoding: 'utf8' }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The same scenario simulated by the native core: `pacer simulate --json`. */
export function nativeReport(scenario) {
  return simulateNative(scenario, ['--json']);
}

/** `pacer simulate --scorecard --seeds 1 --json` on `scenario`: its one scorecard. */
export function nativeScorecard(scenario) {
  return simulateNative(scenario, ['--scorecard', '--seeds', '1', '--json']).scenario[0];
}

/** The page's JSON export (clicks the button, reads the download). */
export async function exportedJson(page) {
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-json')]);
  return JSON.parse(readFileSync(await download.path(), 'utf8'));
}

/** A query string for a scenario (the page's URL parameters). */
export function query(params) {
  return `?${new URLSearchParams(params).toString()}`;
}

export function outputDir() {
  mkdirSync(OUT, { recursive: true });
  return OUT;
}
