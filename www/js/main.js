// The page: reads the parameters (URL, then form), runs the simulator in batches between
// frames, and hands the reports to the charts. Every error lands in #error, never a blank page.

import {
  fillForm, readForm, queryFromState, scenarioJson, stateFromQuery, jsonToFields, fieldsToJson,
} from './params.js';
import { AbiModule } from './abi-module.js';
import { toCsv, toJson, download } from './export.js';

/** Events per batch: a few ms of work, so the page keeps painting. */
const BATCH = 250_000;
const BENCH_DECISIONS = 5_000_000;

const $ = (selector) => document.querySelector(selector);
const form = $('#form');
const errorBox = $('#error');
let wasm;
let charts;
let uploaded = null; // { name, bytes }
let last = null; // { state, results, timings }

/** A fresh seed, 0..2^53, from the browser's crypto.getRandomValues (21 + 32 random bits). */
function randomSeed() {
  const [high, low] = crypto.getRandomValues(new Uint32Array(2));
  return (high >>> 11) * 2 ** 32 + low;
}

function showError(message) {
  errorBox.textContent = message;
  errorBox.hidden = false;
  document.body.dataset.status = 'error';
}

function clearError() {
  errorBox.hidden = true;
  errorBox.textContent = '';
}

const messageOf = (e) => (e && e.message) || String(e);

window.addEventListener('error', (event) => showError(`Unexpected error: ${event.message}`));
window.addEventListener('unhandledrejection', (event) => showError(`Unexpected error: ${messageOf(event.reason)}`));

// --- the form ----------------------------------------------------------------------------

function showPatternFields() {
  const pattern = form.elements.pattern.value;
  for (const el of document.querySelectorAll('.herd-only')) el.hidden = pattern !== 'herd';
  for (const el of document.querySelectorAll('.bursts-only')) el.hidden = pattern !== 'bursts';
  $('#policy-b').hidden = !form.elements.compare.checked;
}

function checkConfigField(name) {
  const note = document.querySelector(`.field-error[data-for="${name}"]`);
  const side = name === 'config' ? 'a' : 'b';
  const onCore = form.elements[`engine_${side}`].value === 'core';
  const message = onCore ? wasm.checkConfig(form.elements[name].value) : undefined;
  note.textContent = message ? `Policy ${side.toUpperCase()}: ${message}` : '';
  note.hidden = !message;
  return message;
}

/** Policy B's fieldset: a copy of A's, renamed, placed after the compare toggle. */
function buildPolicyB() {
  const a = document.querySelector('fieldset.policy[data-side="a"]');
  const b = a.cloneNode(true);
  b.dataset.side = 'b';
  b.id = 'policy-b';
  b.querySelector('legend').textContent = 'Policy B';
  b.querySelector('textarea[name="config"]').name = 'config_b';
  b.querySelector('.field-error').dataset.for = 'config_b';
  b.querySelector('select[name="engine_a"]').name = 'engine_b';
  form.elements.compare.closest('label').after(b);
}

function wirePolicy(side) {
  const fieldset = document.querySelector(`fieldset.policy[data-side="${side}"]`);
  const textarea = form.elements[side === 'a' ? 'config' : 'config_b'];
  textarea.addEventListener('input', () => {
    jsonToFields(fieldset, textarea.value);
    checkConfigField(textarea.name);
  });
  for (const input of fieldset.querySelectorAll('[data-field]')) {
    input.addEventListener('input', () => {
      const json = fieldsToJson(fieldset, textarea.value);
      if (json !== null) textarea.value = json;
      checkConfigField(textarea.name);
    });
  }
  jsonToFields(fieldset, textarea.value);
}

// --- user modules -------------------------------------------------------------------------

async function loadModuleFile(file) {
  const info = $('#module-info');
  try {
    const bytes = await file.arrayBuffer();
    await AbiModule.load(bytes.slice(0), file.name); // checks it now, not at the first run
    uploaded = { name: file.name, bytes };
    for (const select of document.querySelectorAll('select.engine')) {
      select.querySelector('option[value="module"]')?.remove();
      select.add(new Option(`${file.name} (your module)`, 'module'));
    }
    form.elements.engine_a.value = 'module';
    info.textContent = `${file.name}: ${bytes.byteLength.toLocaleString('en')} bytes, ABI v1. Policy A now runs on it.`;
    clearError();
    checkConfigField('config');
  } catch (e) {
    info.textContent = `Not loaded: ${messageOf(e)}`;
    showError(messageOf(e));
  }
}

function wireModuleDrop() {
  const drop = $('#drop');
  $('#module-file').addEventListener('change', (event) => {
    const [file] = event.target.files;
    if (file) loadModuleFile(file);
  });
  drop.addEventListener('dragover', (event) => {
    event.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (event) => {
    event.preventDefault();
    drop.classList.remove('over');
    const [file] = event.dataTransfer.files;
    if (file) loadModuleFile(file);
  });
}

// --- running ------------------------------------------------------------------------------

const nextFrame = () => new Promise((resolve) => { setTimeout(resolve, 0); });

async function simulate(state, side, done, total) {
  const label = side.toUpperCase();
  const onModule = form.elements[`engine_${side}`].value === 'module';
  let module;
  if (onModule) {
    if (!uploaded) throw new Error(`Policy ${label} is set to run on a module, but none is loaded`);
    module = await AbiModule.load(uploaded.bytes.slice(0), uploaded.name); // a fresh instance per run
  }
  let sim;
  try {
    sim = new wasm.Simulator(scenarioJson(state, side), module);
  } catch (e) {
    throw new Error(`Policy ${label}: ${messageOf(e)}`);
  }
  try {
    let busyMs = 0;
    const progress = $('#progress');
    for (;;) {
      const start = performance.now();
      const finished = sim.step(BATCH);
      busyMs += performance.now() - start;
      progress.value = (done + sim.progress()) / total;
      if (finished) break;
      await nextFrame();
    }
    const timing = { busy_ms: busyMs, decisions: sim.decisions(), requests: sim.requests(), engine: onModule ? uploaded.name : 'core' };
    return { report: sim.report(), timing };
  } catch (e) {
    throw new Error(`Policy ${label}: ${messageOf(e)}`);
  } finally {
    sim.free();
  }
}

/** The form's parameters, or `null` after showing what is wrong with them. */
function formState() {
  try {
    return readForm(form);
  } catch (e) {
    showError(messageOf(e));
    return null;
  }
}

async function run() {
  const state = formState();
  if (!state) return;
  history.replaceState(null, '', `?${queryFromState(state)}`);
  clearError();
  document.body.dataset.status = 'running';
  const progress = $('#progress');
  progress.hidden = false;
  $('#run').disabled = true;
  const sides = state.compare || state.hosts > 1 ? ['a', 'b'] : ['a'];
  try {
    const results = {};
    const timings = {};
    for (const [i, side] of sides.entries()) {
      const { report, timing } = await simulate(state, side, i, sides.length);
      results[side] = report;
      timings[side] = timing;
    }
    last = { state, results, timings };
    renderSummary(results, timings, state.hosts);
    charts.drawCharts($('#charts'), results, state.scenario);
    $('#status').textContent = sides.map((side) => {
      const t = timings[side];
      const rate = t.decisions / Math.max(t.busy_ms, 0.001) / 1000;
      return `${side.toUpperCase()}: ${t.requests.toLocaleString('en')} requests, ${t.decisions.toLocaleString('en')} decisions `
        + `in ${t.busy_ms.toFixed(0)} ms (${rate.toFixed(2)} M decisions/s, ${t.engine === 'core' ? 'built-in core' : t.engine})`;
    }).join(' · ');
    $('#export-csv').disabled = false;
    $('#export-json').disabled = false;
    window.pacer.results = results;
    window.pacer.timings = timings;
    document.body.dataset.status = 'done';
  } catch (e) {
    showError(messageOf(e));
  } finally {
    progress.hidden = true;
    $('#run').disabled = false;
  }
}

// --- the summary table --------------------------------------------------------------------

const count = (n) => n.toLocaleString('en');
const ms = (n) => `${n.toLocaleString('en', { maximumFractionDigits: 1 })} ms`;
const perHour = (n) => `${n.toLocaleString('en', { maximumFractionDigits: 1 })} /h`;
const ROWS = [
  ['requests', 'Requests', count],
  ['admitted', 'Served (200)', count],
  ['rejected_429', '429s from the origin', count],
  ['failed_503', '503s (outage)', count],
  ['refused_circuit', 'Refused, circuit open', count],
  ['waiting_at_end', 'Still waiting at the end', count],
  ['wait_p50_ms', 'Wait p50', ms],
  ['wait_p99_ms', 'Wait p99', ms],
  ['wait_max_ms', 'Wait max', ms],
  ['offered_per_hour', 'Offered', perHour],
  ['achieved_per_hour', 'Achieved', perHour],
  ['quota_per_hour', 'Quota', perHour],
  ['achieved_vs_quota', 'Achieved / quota', (n) => `${(n * 100).toFixed(1)} %`],
  ['decisions', 'Policy decisions', count],
];

/** A side's name: Policy A / B, or with several hosts, how they pace. */
function sideName(side, hosts) {
  if (hosts > 1) return side === 'a' ? `${hosts} hosts, each alone` : `${hosts} hosts sharing`;
  return `Policy ${side.toUpperCase()}`;
}

function renderSummary(results, timings, hosts) {
  const sides = Object.keys(results);
  const table = $('#summary');
  table.replaceChildren();
  const head = table.createTHead().insertRow();
  head.append(document.createElement('th'));
  for (const side of sides) {
    const th = document.createElement('th');
    th.textContent = `${sideName(side, hosts)}${timings[side].engine === 'core' ? '' : ` (${timings[side].engine})`}`;
    head.append(th);
  }
  const body = table.createTBody();
  for (const [key, label, format] of ROWS) {
    const row = body.insertRow();
    const th = document.createElement('th');
    th.textContent = label;
    row.append(th);
    for (const side of sides) {
      const cell = row.insertCell();
      cell.dataset.side = side;
      cell.dataset.key = key;
      cell.textContent = format(results[side].summary[key]);
    }
  }
}

// --- the scorecard --------------------------------------------------------------------------

const fixed = (digits) => (n) => (n === null ? '–' : n.toFixed(digits));
const SCORE_COLUMNS = [
  ['strategy', 'Strategy', String],
  ['goodput_per_s', 'Goodput /s', fixed(3)],
  ['sent_per_success', 'Sent per 2xx', fixed(3)],
  ['rejected_429', '429s', count],
  ['failed_5xx', '5xx', count],
  ['held', 'Held back', count],
  ['wait_p50_s', 'Wait p50 s', fixed(2)],
  ['wait_p99_s', 'Wait p99 s', fixed(2)],
  ['recovery_s', 'Recovery s', fixed(0)],
  ['fairness', 'Jain', fixed(3)],
  ['max_sent_1s', 'Most sent in 1 s', count],
  ['waiting_at_end', 'Waiting at end', count],
];

/** Runs policy A (core or module) and every baseline on the current scenario. */
async function runScorecard() {
  const state = formState();
  if (!state) return;
  clearError();
  $('#scorecard-run').disabled = true;
  try {
    let module;
    if (form.elements.engine_a.value === 'module') {
      if (!uploaded) throw new Error('Policy A is set to run on a module, but none is loaded');
      module = await AbiModule.load(uploaded.bytes.slice(0), uploaded.name);
    }
    const rows = wasm.scorecard(scenarioJson(state, 'a'), module);
    renderScorecard(rows);
    window.pacer.scorecard = rows;
    document.body.dataset.scorecard = 'done';
  } catch (e) {
    showError(`Scorecard: ${messageOf(e)}`);
  } finally {
    $('#scorecard-run').disabled = false;
  }
}

function renderScorecard(rows) {
  const table = $('#scorecard');
  table.replaceChildren();
  table.createCaption().textContent = `Scorecard: policy A and the baselines on the same arrivals `
    + `(the origin allows ${rows[0].origin_limit_1s} requests in 1 s)`;
  const head = table.createTHead().insertRow();
  for (const [, label] of SCORE_COLUMNS) {
    const th = document.createElement('th');
    th.textContent = label;
    head.append(th);
  }
  const body = table.createTBody();
  for (const row of rows) {
    const tr = body.insertRow();
    tr.dataset.strategy = row.strategy;
    for (const [key, , format] of SCORE_COLUMNS) {
      const cell = tr.insertCell();
      cell.dataset.key = key;
      cell.textContent = format(row[key]);
    }
  }
  table.hidden = false;
}

// --- buttons ------------------------------------------------------------------------------

function wireButtons() {
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    run();
  });
  form.elements.pattern.addEventListener('change', showPatternFields);
  form.elements.compare.addEventListener('change', showPatternFields);
  for (const side of ['a', 'b']) {
    form.elements[`engine_${side}`].addEventListener('change', () => checkConfigField(side === 'a' ? 'config' : 'config_b'));
  }
  $('#new-seed').addEventListener('click', () => {
    form.elements.seed.value = randomSeed();
  });
  $('#share').addEventListener('click', async () => {
    try {
      const state = readForm(form);
      const url = `${location.origin}${location.pathname}?${queryFromState(state)}`;
      history.replaceState(null, '', url);
      await navigator.clipboard.writeText(url);
      $('#status').textContent = 'Link copied: it reruns this simulation.';
    } catch (e) {
      showError(`Could not copy the link: ${messageOf(e)}`);
    }
  });
  $('#export-csv').addEventListener('click', () => download('pacer-simulation.csv', 'text/csv', toCsv(last.results)));
  $('#export-json').addEventListener('click', () => download('pacer-simulation.json', 'application/json', toJson(last.state, last.results)));
  $('#scorecard-run').addEventListener('click', runScorecard);
  $('#bench').addEventListener('click', () => {
    try {
      const rate = bench();
      $('#status').textContent = `${(rate / 1e6).toFixed(1)} M decisions/s (try_acquire on a virtual clock, policy A's config, in this browser)`;
    } catch (e) {
      showError(messageOf(e));
    }
  });
}

/** Raw decisions per second of policy A's config in this browser. */
function bench(count = BENCH_DECISIONS) {
  const config = form.elements.config.value;
  wasm.decisionBatch(config, 10_000); // warm up
  const start = performance.now();
  wasm.decisionBatch(config, count);
  return count / ((performance.now() - start) / 1000);
}

// --- start --------------------------------------------------------------------------------

async function start() {
  try {
    wasm = await import('../pkg/pacer_www.js');
    await wasm.default();
    charts = await import('./charts.js');
  } catch (e) {
    showError(`The simulator could not load (${messageOf(e)}). Build it with \`make www\` and serve this `
      + 'directory over HTTP (`pacer serve`); file:// cannot load WebAssembly modules.');
    return;
  }
  window.pacer = { run, bench, results: null };
  const defaults = wasm.defaultScenario();
  const { state, errors } = stateFromQuery(location.search, defaults);
  buildPolicyB();
  fillForm(form, state);
  wirePolicy('a');
  wirePolicy('b');
  wireButtons();
  wireModuleDrop();
  showPatternFields();
  document.body.dataset.status = 'ready';
  if (errors.length > 0) {
    showError(`The link has bad parameters: ${errors.join('; ')}`);
    return;
  }
  await run();
}

start();
