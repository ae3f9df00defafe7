// Results out of the page: CSV (the series, one row per sample) and JSON (scenario and reports).

import { sideConfig } from './params.js';

const COLUMNS = [
  ['tokens', (s, i) => s.tokens[i]],
  ['admitted_per_s', (s, i) => s.admitted[i] / s.interval_s],
  ['rejected_429_per_s', (s, i) => s.rejected[i] / s.interval_s],
  ['failed_503_per_s', (s, i) => s.failed[i] / s.interval_s],
  ['refused_circuit_per_s', (s, i) => s.refused[i] / s.interval_s],
  ['waiting', (s, i) => s.waiting[i]],
  ['pressure', (s, i) => s.pressure[i]],
  ['pool_target', (s, i) => s.pool_target[i]],
  ['memory_used', (s, i) => s.memory[i] ?? ''],
  ['rate_per_s', (s, i) => s.rate_per_s[i] ?? ''],
];

/** One row per sample time, each side's columns suffixed `_a` / `_b`. */
export function toCsv(results) {
  const sides = Object.keys(results);
  const header = ['t_s', ...sides.flatMap((side) => COLUMNS.map(([name]) => `${name}_${side}`))];
  const rows = results.a.series.t_s.map((t, i) => [
    t, ...sides.flatMap((side) => COLUMNS.map(([, value]) => value(results[side].series, i))),
  ]);
  return [header, ...rows].map((row) => row.join(',')).join('\n') + '\n';
}

/** The scenario, the config each side ran, and every side's report. */
export function toJson(state, results) {
  const two = state.compare || state.hosts > 1;
  return JSON.stringify({ scenario: state.scenario, config: sideConfig(state, 'a'),
    config_b: two ? sideConfig(state, 'b') : undefined,
    hosts: state.hosts > 1 ? state.hosts : undefined, results }, null, 2);
}

/** Offers `text` as a file download. */
export function download(name, type, text) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
