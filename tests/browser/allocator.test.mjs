// The page's wasm on Node's own engine (no browser): its allocator under churn. Simulations of
// different sizes run interleaved, again and again; every repeat must give the report of the
// first run exactly. A block handed out twice, or one too small, shows up as a changed report,
// a trap or an error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { initSync, Simulator, defaultScenario } from '../../www/pkg/pacer_www.js';

initSync({ module: readFileSync(new URL('../../www/pkg/pacer_www_bg.wasm', import.meta.url)) });

function scenario(overrides) {
  const base = defaultScenario();
  base.memory = base.memory.map(([t, f]) => [t, f]);
  return JSON.stringify({ ...base, ...overrides });
}

function simulate(json) {
  const sim = new Simulator(json, undefined);
  while (!sim.step(50_000)) { /* runs to the end */ }
  const report = sim.report();
  sim.free();
  return JSON.stringify(report);
}

test('reports stay identical through interleaved runs of every size', () => {
  const scenarios = [
    scenario({ clients: 3, duration_s: 60 }),
    scenario({ clients: 400, pattern: 'poisson', rate_per_client: 2, duration_s: 300 }),
    scenario({ clients: 50, pattern: 'herd', duration_s: 600, outage_start_s: 100, outage_end_s: 200 }),
  ];
  const first = scenarios.map(simulate);
  for (let round = 0; round < 4; round += 1) {
    for (const [i, json] of scenarios.entries()) {
      assert.equal(simulate(json), first[i], `scenario ${i}, round ${round}`);
    }
  }
});
