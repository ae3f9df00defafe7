// Draws a run's reports with uPlot: JS draws, Rust decides.

import uPlot from '../vendor/uPlot.esm.js';

const SIDES = {
  a: { label: 'A', dash: [] },
  b: { label: 'B', dash: [6, 4] },
};
const COLORS = {
  tokens: '#2563eb', admitted: '#16a34a', rejected: '#dc2626', failed: '#9333ea',
  refused: '#ea580c', waiting: '#0f172a', memory: '#0891b2', pressure: '#dc2626', pool: '#16a34a',
  rate: '#7c3aed', origin: '#64748b',
};
const JITTER_COLORS = ['#93c5fd', '#3b82f6', '#1e3a8a'];

let plots = [];

function formatMs(ms) {
  if (ms >= 3_600_000) return `${+(ms / 3_600_000).toFixed(1)} h`;
  if (ms >= 60_000) return `${+(ms / 60_000).toFixed(1)} min`;
  if (ms >= 1000) return `${+(ms / 1000).toFixed(1)} s`;
  return `${+ms.toFixed(1)} ms`;
}

function line(label, stroke, side, extra = {}) {
  return { label: `${label} (${SIDES[side].label})`, stroke, width: 1.5, dash: SIDES[side].dash, ...extra };
}

function chart(container, title, opts, data) {
  const box = document.createElement('figure');
  box.className = 'chart';
  box.dataset.chart = title;
  const caption = document.createElement('figcaption');
  caption.textContent = title;
  box.append(caption);
  container.append(box);
  const width = Math.max(300, box.clientWidth - 12);
  plots.push(new uPlot({ width, height: 220, legend: { live: false }, ...opts }, data, box));
}

/** Per-second rate of a count series sampled every `interval_s`. */
const perSecond = (counts, interval) => counts.map((n) => n / interval);

/** The origin's limit at each time, requests / s (`null` while unlimited). */
export function originLimit(scenario, times) {
  const schedule = [...(scenario.origin_schedule || [])].sort((x, y) => x[0] - y[0]);
  return times.map((t) => {
    let rate = scenario.origin_rate;
    for (const [at, r] of schedule) if (at < t) rate = r;
    return rate > 0 ? rate : null;
  });
}

/** Replaces every chart with those for `results` ({ a: report, b?: report }) of `scenario`. */
export function drawCharts(container, results, scenario) {
  for (const plot of plots) plot.destroy();
  plots = [];
  container.replaceChildren();
  const sides = Object.keys(results);
  const time = results.a.series.t_s;
  const timeAxis = { label: 'virtual time, s' };

  chart(container, 'Tokens in the bucket (limiter 0)', {
    scales: { x: { time: false } },
    axes: [timeAxis, { label: 'tokens' }],
    series: [{ label: 't, s' }, ...sides.map((s) => line('tokens', COLORS.tokens, s))],
  }, [time, ...sides.map((s) => results[s].series.tokens)]);

  // Limiter 0's rate: the configured one, or where adaptation and announcements moved it.
  chart(container, 'Rate of limiter 0 against the origin\'s limit', {
    scales: { x: { time: false } },
    axes: [timeAxis, { label: 'per second' }],
    series: [
      { label: 't, s' },
      ...sides.map((s) => line('rate', COLORS.rate, s)),
      { label: 'origin\'s limit', stroke: COLORS.origin, width: 1, dash: [2, 3] },
    ],
  }, [time, ...sides.map((s) => results[s].series.rate_per_s), originLimit(scenario, time)]);

  const flows = [['admitted', 'served /s'], ['rejected', '429 /s'], ['failed', '503 /s'], ['refused', 'circuit open /s']];
  chart(container, 'Admitted, rejected and waiting', {
    scales: { x: { time: false }, waiting: { auto: true } },
    axes: [timeAxis, { label: 'per second' }, { side: 1, scale: 'waiting', label: 'waiting', grid: { show: false } }],
    series: [
      { label: 't, s' },
      ...sides.flatMap((s) => [
        ...flows.map(([key, label]) => line(label, COLORS[key], s)),
        line('waiting', COLORS.waiting, s, { scale: 'waiting' }),
      ]),
    ],
  }, [time, ...sides.flatMap((s) => {
    const { series } = results[s];
    return [...flows.map(([key]) => perSecond(series[key], series.interval_s)), series.waiting];
  })]);

  // The wait histogram's buckets double in width: plot by bucket number, label by edge.
  const buckets = Math.max(...sides.map((s) => results[s].wait_histogram.counts.length));
  const edges = Array.from({ length: buckets }, (_, b) => (b === 0 ? 0 : 2 ** (b - 1)));
  const bars = (offset) => uPlot.paths.bars({ size: [sides.length > 1 ? 0.4 : 0.8, 64], align: offset });
  chart(container, 'Wait from arrival to served', {
    scales: { x: { time: false, range: [-0.5, buckets - 0.5] } },
    axes: [
      { label: 'wait at least', values: (u, ticks) => ticks.map((t) => (Number.isInteger(t) && t >= 0 && t < buckets ? formatMs(edges[t]) : '')) },
      { label: 'requests' },
    ],
    series: [
      { label: 'bucket' },
      ...sides.map((s, i) => ({
        label: `requests (${SIDES[s].label})`,
        stroke: i === 0 ? COLORS.tokens : COLORS.refused,
        fill: i === 0 ? '#2563eb88' : '#ea580c88',
        paths: bars(sides.length > 1 ? (i === 0 ? -1 : 1) : 0),
        points: { show: false },
      })),
    ],
  }, [edges.map((_, b) => b), ...sides.map((s) => edges.map((_, b) => results[s].wait_histogram.counts[b] ?? 0))]);

  // Each side's draws are binned on its own edges: one chart per side.
  for (const s of sides) {
    const { jitter } = results[s];
    chart(container, `Jitter draws of ${SIDES[s].label} (base ${formatMs(jitter.base_ms)}), by utilization`, {
      scales: { x: { time: false } },
      axes: [{ label: 'jitter, ms (bucket start)' }, { label: 'draws' }],
      series: [
        { label: 'ms' },
        ...jitter.utilization.map((u, i) => line(
          `${Math.round(u * 100)} % used`, JITTER_COLORS[i], s, { paths: uPlot.paths.stepped({ align: 1 }) },
        )),
      ],
    }, [jitter.edges_ms, ...jitter.counts]);
  }

  chart(container, 'Memory used and pressure level', {
    scales: { x: { time: false }, level: { range: [0, 2.2] }, '%': { range: [0, 100] } },
    axes: [
      timeAxis,
      { scale: '%', label: 'memory used, %' },
      { side: 1, scale: 'level', label: 'pressure', size: 70, grid: { show: false }, splits: () => [0, 1, 2], values: (u, t) => t.map((v) => ['Low', 'Medium', 'High'][v] ?? '') },
    ],
    series: [
      { label: 't, s' },
      line('memory %', COLORS.memory, 'a', { scale: '%' }),
      ...sides.map((s) => line('pressure', COLORS.pressure, s, { scale: 'level', paths: uPlot.paths.stepped({ align: 1 }) })),
    ],
  }, [time, results.a.series.memory.map((m) => (m === null ? null : m * 100)), ...sides.map((s) => results[s].series.pressure)]);

  chart(container, 'Buffer pool target (idle buffers to keep)', {
    scales: { x: { time: false } },
    axes: [timeAxis, { label: 'buffers' }],
    series: [{ label: 't, s' }, ...sides.map((s) => line('pool target', COLORS.pool, s, { paths: uPlot.paths.stepped({ align: 1 }) }))],
  }, [time, ...sides.map((s) => results[s].series.pool_target)]);
}
