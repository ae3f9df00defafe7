// The run's parameters: one state object, read from and written to the URL and the form.
// Field names are the simulator's scenario fields (sim/src/scenario.rs), so a link, the form
// and `pacer simulate` all speak the same words. Ranges are checked by the simulator itself;
// here only what JSON cannot carry (a number that is not one) is caught, naming the field.

export const NUMBER_FIELDS = [
  'clients', 'rate_per_client', 'duration_s', 'seed', 'origin_rate', 'origin_burst',
  'burst_period_s', 'outage_start_s', 'outage_end_s', 'base_ms', 'cost', 'latency_ms',
];
const WHOLE_FIELDS = new Set(NUMBER_FIELDS.filter((f) => !['rate_per_client', 'origin_rate'].includes(f)));

/** Memory points as the form writes them: "0:0.5, 300:0.9". */
export function formatMemory(points) {
  return points.map(([t, f]) => `${t}:${f}`).join(', ');
}

/** Parses "0:0.5, 300:0.9"; throws naming the field. */
export function parseMemory(text) {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  return trimmed.split(',').map((pair) => {
    const parts = pair.split(':').map((s) => s.trim());
    const numbers = parts.map(Number);
    if (parts.length !== 2 || parts.some((p) => p === '') || numbers.some((n) => !Number.isFinite(n))) {
      throw new Error(`memory: "${pair.trim()}" is not seconds:fraction (write e.g. 0:0.5, 300:0.9)`);
    }
    return numbers;
  });
}

/** A number field's value; throws naming the field. */
export function parseNumber(name, text) {
  const value = Number(String(text).trim());
  if (String(text).trim() === '' || !Number.isFinite(value)) {
    throw new Error(`${name}: "${text}" is not a number`);
  }
  if (WHOLE_FIELDS.has(name) && (!Number.isInteger(value) || value < 0)) {
    throw new Error(`${name}: must be a whole number, at least 0`);
  }
  return value;
}

/**
 * The state from a query string over the defaults (the default scenario's JSON).
 * Returns { state, errors }: a bad parameter keeps its default and is reported.
 */
export function stateFromQuery(search, defaults) {
  const query = new URLSearchParams(search);
  const { config, ...scenario } = defaults;
  const state = { scenario, config, configB: config, compare: false, hosts: 1 };
  const errors = [];
  if (query.has('hosts')) {
    try {
      state.hosts = parseHosts(query.get('hosts'));
    } catch (e) {
      errors.push(e.message);
    }
  }
  for (const name of NUMBER_FIELDS) {
    if (!query.has(name)) continue;
    try {
      state.scenario[name] = parseNumber(name, query.get(name));
    } catch (e) {
      errors.push(e.message);
    }
  }
  if (query.has('pattern')) state.scenario.pattern = query.get('pattern');
  if (query.has('memory')) {
    try {
      state.scenario.memory = parseMemory(query.get('memory'));
    } catch (e) {
      errors.push(e.message);
    }
  }
  if (query.has('config')) state.config = query.get('config');
  if (query.has('config_b')) state.configB = query.get('config_b');
  state.compare = query.get('compare') === '1';
  return { state, errors };
}

/** The query string that recreates `state`. */
export function queryFromState(state) {
  const query = new URLSearchParams();
  for (const name of NUMBER_FIELDS) query.set(name, String(state.scenario[name]));
  query.set('pattern', state.scenario.pattern);
  query.set('memory', formatMemory(state.scenario.memory));
  query.set('config', state.config);
  if (state.compare) {
    query.set('compare', '1');
    query.set('config_b', state.configB);
  }
  if (state.hosts > 1) query.set('hosts', String(state.hosts));
  return query.toString();
}

/** The number of hosts: a whole number from 1 to 64; throws naming the field. */
export function parseHosts(text) {
  const hosts = Number(String(text).trim());
  if (!Number.isInteger(hosts) || hosts < 1 || hosts > 64) {
    throw new Error(`hosts: "${text}" must be a whole number from 1 to 64`);
  }
  return hosts;
}

/**
 * The config `hosts` hosts run between them, each with a limiter of its own copied from the
 * first (client i belongs to host i mod hosts). Alone, each has the whole quota, as hosts that
 * pace alone do; sharing, each has 1/hosts of the rate and of the burst (at least 1), starting
 * empty: what `pacer run --shared` gives equally busy hosts.
 */
export function hostsConfig(json, hosts, shared) {
  let config;
  try {
    config = JSON.parse(json);
  } catch (e) {
    throw new Error(`config: ${e.message}`);
  }
  const base = config && Array.isArray(config.limiters) ? config.limiters[0] : undefined;
  if (!base || typeof base.tokens_per_hour !== 'number') {
    throw new Error('config: hosts need limiters[0] with a tokens_per_hour');
  }
  const burst = base.burst ?? Math.max(1, Math.floor(base.tokens_per_hour / 60));
  config.limiters = Array.from({ length: hosts }, (_, i) => (shared
    ? { ...base, name: `host${i}`, tokens_per_hour: base.tokens_per_hour / hosts,
      burst: Math.max(1, Math.floor(burst / hosts)), initial: 0 }
    : { ...base, name: `host${i}` }));
  return JSON.stringify(config);
}

/** The config one side runs: with several hosts, A paces each alone and B shares. */
export function sideConfig(state, side) {
  if (state.hosts > 1) return hostsConfig(state.config, state.hosts, side === 'b');
  return side === 'b' ? state.configB : state.config;
}

/** The simulator's scenario JSON for one side. */
export function scenarioJson(state, side) {
  return JSON.stringify({ ...state.scenario, config: sideConfig(state, side) });
}

/** Writes `state` into the form. */
export function fillForm(form, state) {
  for (const name of NUMBER_FIELDS) form.elements[name].value = state.scenario[name];
  form.elements.pattern.value = state.scenario.pattern;
  form.elements.memory.value = formatMemory(state.scenario.memory);
  form.elements.config.value = state.config;
  form.elements.config_b.value = state.configB;
  form.elements.compare.checked = state.compare;
  form.elements.hosts.value = state.hosts;
}

/** Reads the form into a state; throws naming the first bad field. */
export function readForm(form) {
  const scenario = {};
  for (const name of NUMBER_FIELDS) scenario[name] = parseNumber(name, form.elements[name].value);
  scenario.pattern = form.elements.pattern.value;
  scenario.memory = parseMemory(form.elements.memory.value);
  return {
    scenario,
    config: form.elements.config.value,
    configB: form.elements.config_b.value,
    compare: form.elements.compare.checked,
    hosts: parseHosts(form.elements.hosts.value),
  };
}

// The policy form: the common fields of limiters[0] and jitter, kept in step with the JSON.

const LIMITER_FIELDS = ['tokens_per_hour', 'burst'];
const JITTER_FIELDS = ['strategy', 'max_ms'];
/** Limiter 0's `adaptive` section: both bounds or neither (then the rate is fixed). */
const ADAPTIVE_FIELDS = ['min_tokens_per_hour', 'max_tokens_per_hour'];

/** Where a small-form field lives in the config: limiter 0, its adaptive section, or jitter. */
function sectionOf(config, field) {
  if (LIMITER_FIELDS.includes(field)) return config.limiters[0];
  if (ADAPTIVE_FIELDS.includes(field)) return config.limiters[0].adaptive;
  return config.jitter;
}

/** Shows the JSON's common fields in the side's small form (left alone if the JSON is bad). */
export function jsonToFields(fieldset, json) {
  let config;
  try {
    config = JSON.parse(json);
  } catch {
    return;
  }
  const limiter = (config && Array.isArray(config.limiters) && config.limiters[0]) || {};
  const view = { limiters: [{ ...limiter, adaptive: limiter.adaptive || {} }], jitter: (config && config.jitter) || {} };
  for (const input of fieldset.querySelectorAll('[data-field]')) {
    const field = input.dataset.field;
    const fallback = field === 'strategy' ? 'adaptive' : '';
    input.value = sectionOf(view, field)[field] ?? fallback;
  }
}

/** Writes the side's small form into its JSON; returns the new JSON, or null if it is bad. */
export function fieldsToJson(fieldset, json) {
  let config;
  try {
    config = JSON.parse(json);
  } catch {
    return null;
  }
  if (!config || typeof config !== 'object') return null;
  if (!Array.isArray(config.limiters) || config.limiters.length === 0) {
    config.limiters = [{ name: 'origin' }];
  }
  config.jitter = config.jitter || {};
  config.limiters[0].adaptive = config.limiters[0].adaptive || {};
  for (const input of fieldset.querySelectorAll('[data-field]')) {
    const field = input.dataset.field;
    const target = sectionOf(config, field);
    if (input.value === '') {
      delete target[field];
    } else {
      target[field] = field === 'strategy' ? input.value : Number(input.value);
    }
  }
  if (Object.keys(config.jitter).length === 0) delete config.jitter;
  // The core says which bound is missing; with neither, the rate is fixed.
  if (Object.keys(config.limiters[0].adaptive).length === 0) delete config.limiters[0].adaptive;
  return JSON.stringify(config);
}
