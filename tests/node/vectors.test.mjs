// `node --test tests/node`: the shared vectors and hostile inputs against dist/pacer.wasm,
// on Node's own WebAssembly engine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModule, replayVector } from './harness.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const wasm = process.env.PACER_WASM ?? path.join(root, 'dist/pacer.wasm');
const vectorDir = path.join(root, 'tests/vectors');
const vectors = fs.readdirSync(vectorDir).filter((f) => f.endsWith('.json')).sort();

test('the module imports only the five pacer functions', () => {
  const { module } = loadModule(wasm);
  const imports = WebAssembly.Module.imports(module).map((i) => `${i.module}.${i.name}`).sort();
  assert.deepEqual(imports, ['pacer.log', 'pacer.memory_limit', 'pacer.memory_used', 'pacer.now_ns', 'pacer.random_fill']);
  const exports = WebAssembly.Module.exports(module).map((e) => e.name);
  for (const name of ['memory', 'pacer_abi_version', 'pacer_configure', 'pacer_next_delay_ns', 'pacer_state_import']) {
    assert.ok(exports.includes(name), `exports ${name}`);
  }
  const unexpected = exports.filter((e) => !e.startsWith('pacer_') && !['memory', '__heap_base', '__data_end'].includes(e));
  assert.deepEqual(unexpected, []);
});

for (const file of vectors) {
  test(`vector ${file} replays identically`, () => {
    const vector = JSON.parse(fs.readFileSync(path.join(vectorDir, file), 'utf8'));
    replayVector(wasm, vector, (actual, expected, where) => assert.equal(actual, expected, where));
  });
}

/** A small deterministic generator, so a failure can be replayed. */
function prng(seed) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0) / 2 ** 32);
}

test('malformed configs and random bytes never trap the module', () => {
  const { instantiate } = loadModule(wasm);
  const pacer = instantiate();
  const good = '{"seed":1,"limiters":[{"name":"a","tokens_per_hour":3600}]}';
  assert.equal(pacer.configure(good), 0);
  const random = prng(42);
  const samples = [
    '', '{', 'null', '[]', '{"limiters":[{}]}', '{"limiters":[{"name":"a","tokens_per_hour":1e999}]}',
    '{"limiters":[{"name":"\\ud800","tokens_per_hour":1}]}', '{"limiters":' + '['.repeat(10000),
    good.slice(0, 20), '\u0000'.repeat(100),
  ];
  for (let i = 0; i < 300; i++) {
    const len = Math.floor(random() * 200);
    samples.push(String.fromCharCode(...Array.from({ length: len }, () => Math.floor(random() * 256))));
    const cut = Math.floor(random() * good.length);
    samples.push(good.slice(0, cut) + String.fromCharCode(Math.floor(random() * 128)) + good.slice(cut + 1));
  }
  for (const sample of samples) {
    const code = pacer.configure(sample);
    assert.ok(code === 0 || code === -2, `configure(${JSON.stringify(sample).slice(0, 60)}) = ${code}`);
    if (code === -2) assert.ok(pacer.lastError().length > 0);
  }
  // Raw bytes, not UTF-8 at all.
  for (let i = 0; i < 200; i++) {
    const bytes = Uint8Array.from({ length: Math.floor(random() * 64) }, () => Math.floor(random() * 256));
    assert.ok([0, -2].includes(pacer.withBytes('pacer_configure', bytes)));
  }
  assert.equal(pacer.configure(good), 0);
  assert.equal(pacer.call('pacer_try_acquire', [0, 1]), 0);
});

test('near-valid configs with hostile numbers: accepted ones decide, refused ones say why', () => {
  // The right shape with numbers a careless or hostile caller writes: zero, negative, huge,
  // fractions, past f64 and u32, strings and nulls where numbers belong. Random bytes are
  // almost never accepted (6 of 610 above), so this test must see a stated share of both.
  const { instantiate } = loadModule(wasm);
  const pacer = instantiate();
  const random = prng(21);
  const pick = (list) => list[Math.floor(random() * list.length)];
  const plain = () => 1 + Math.floor(random() * 100_000);
  const hostile = ['0', '-1', '-3600', '1e999', '-1e999', '1e308', '4294967296', '18446744073709551616',
    '0.0000001', '1.5', '"3600"', 'null', 'true', '[]', '{}', '1e-320', '-0'];
  const number = () => (random() < 0.75 ? String(plain()) : pick(hostile));
  let accepted = 0;
  let refused = 0;
  for (let i = 0; i < 400; i++) {
    const limiter = [`"name":"l${i % 3}"`, `"tokens_per_hour":${number()}`];
    if (random() < 0.5) limiter.push(`"burst":${number()}`);
    if (random() < 0.3) limiter.push(`"initial":${pick(['0', '0.5', '1', '-0.5', '2', '1e999', 'null'])}`);
    const fields = [`"limiters":[{${limiter.join(',')}}]`];
    if (random() < 0.5) fields.push(`"seed":${number()}`);
    if (random() < 0.3) fields.push(`"jitter":{"max_ms":${number()}}`);
    const config = `{${fields.join(',')}}`;
    const code = pacer.configure(config);
    if (code === 0) {
      accepted += 1;
      const decided = pacer.call('pacer_try_acquire', [0, 1]);
      assert.ok(Number.isInteger(decided) && decided >= 0, `${config}: try_acquire = ${decided}`);
    } else {
      assert.equal(code, -2, `configure(${config})`);
      assert.ok(pacer.lastError().length > 0, `${config}: no reason given`);
      refused += 1;
    }
  }
  assert.ok(accepted >= 100, `only ${accepted} of 400 accepted (floor 100)`);
  assert.ok(refused >= 100, `only ${refused} of 400 refused (floor 100)`);
});

test('random and altered snapshots are refused without a trap', () => {
  const { instantiate } = loadModule(wasm);
  const pacer = instantiate();
  assert.equal(pacer.configure('{"seed":1,"limiters":[{"name":"a","tokens_per_hour":3600}]}'), 0);
  pacer.call('pacer_reserve', [0, 5]);
  const snapshot = pacer.snapshot();
  const random = prng(7);
  for (let i = 0; i < 500; i++) {
    let bytes;
    if (i % 2) {
      bytes = Uint8Array.from({ length: Math.floor(random() * 300) }, () => Math.floor(random() * 256));
    } else {
      bytes = snapshot.slice();
      bytes[Math.floor(random() * bytes.length)] ^= 1 + Math.floor(random() * 255);
    }
    assert.equal(pacer.withBytes('pacer_state_import', bytes), -6, `import #${i}`);
  }
  assert.equal(pacer.withBytes('pacer_state_import', snapshot), 0);
});

test('pointers and lengths outside memory are bad arguments, not traps', () => {
  const { instantiate } = loadModule(wasm);
  const pacer = instantiate();
  const e = pacer.exports;
  e.pacer_abi_version();
  pacer.configure('{}'); // the first call sets the module up, which may grow memory
  const size = () => e.memory.buffer.byteLength;
  for (const [ptr, len] of [[0, 5], [-1, 5], [size() - 2, 5], [8, -1], [2 ** 31 - 1, 2 ** 31 - 1], [size(), 1]]) {
    assert.equal(e.pacer_configure(ptr, len), -5, `configure(${ptr}, ${len})`);
    assert.equal(e.pacer_state_import(ptr, len), -5, `state_import(${ptr}, ${len})`);
  }
  assert.match(pacer.lastError(), /ptr/);
  assert.equal(e.pacer_alloc(-1), 0);
  assert.equal(e.pacer_alloc(2 ** 31 - 1), 0, 'an impossible allocation returns 0');
  e.pacer_dealloc(12345, 7); // never handed out: ignored
  e.pacer_dealloc(-1, -1);
  const ptr = e.pacer_alloc(16);
  e.pacer_dealloc(ptr, 15); // wrong length: ignored
  e.pacer_dealloc(ptr, 16);
  e.pacer_dealloc(ptr, 16); // twice: ignored
  // Every export with out-of-range integers, configured or not.
  for (const configured of [false, true]) {
    if (configured) pacer.configure('{"seed":1,"limiters":[{"name":"a","tokens_per_hour":3600}]}');
    for (const v of [-2147483648, -1, 0, 1, 2147483647]) {
      for (const w of [-(2n ** 63n), -1n, 0n, 2n ** 63n - 1n]) {
        e.pacer_try_acquire(v, v); e.pacer_reserve(v, v); e.pacer_available_milli(v);
        e.pacer_on_response(v, v, w); e.pacer_next_delay_ns(v, v, w); e.pacer_retry_in_ns(v);
        e.pacer_jitter_ns(w, v); e.pacer_pool_target(v);
      }
    }
  }
});
