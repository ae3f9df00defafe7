// Drives a pacer ABI v1 module with Node's own WebAssembly (no wasm-bindgen, no npm packages).
import fs from 'node:fs';

import { EXPORTS } from '../../www/js/abi-table.js';

/** The module's i64 parameters, by export, so numbers can be passed as BigInt: from the
 * core's table (www/js/abi-table.js, generated from src/interface.rs). */
const I64_PARAMS = Object.fromEntries(EXPORTS.map((f) => [
  f.name,
  f.params.flatMap((type, i) => (type === 'i64' ? [i] : [])),
]));

/** Loads `path` and returns a factory of fresh instances sharing one set of import values. */
export function loadModule(path) {
  const module = new WebAssembly.Module(fs.readFileSync(path));
  const env = { nowNs: 0n, memoryUsed: -1n, memoryLimit: 0n, randomFillCalls: 0, logs: [] };
  const instantiate = () => {
    let memory;
    const imports = {
      pacer: {
        now_ns: () => env.nowNs,
        memory_used: () => env.memoryUsed,
        memory_limit: () => env.memoryLimit,
        random_fill: (ptr, len) => {
          env.randomFillCalls += 1;
          const bytes = new Uint8Array(memory.buffer, ptr, len);
          for (let i = 0; i < len; i++) bytes[i] = i % 256;
        },
        log: (level, ptr, len) => {
          env.logs.push([level, new TextDecoder().decode(new Uint8Array(memory.buffer, ptr, len))]);
        },
      },
    };
    const instance = new WebAssembly.Instance(module, imports);
    memory = instance.exports.memory;
    return new Pacer(instance);
  };
  return { module, env, instantiate };
}

/** One instance, with helpers for the calls that pass bytes. */
export class Pacer {
  constructor(instance) {
    this.exports = instance.exports;
  }

  /** Calls export `name` with integer `args`; returns a Number (i64 results included). */
  call(name, args = []) {
    const fn = this.exports[name];
    if (typeof fn !== 'function') throw new Error(`no export ${name}`);
    const wide = I64_PARAMS[name] ?? [];
    const result = fn(...args.map((a, i) => (wide.includes(i) ? BigInt(a) : a)));
    return typeof result === 'bigint' ? Number(result) : result;
  }

  /** Copies `bytes` into guest memory, calls `name(ptr, len)`, frees the buffer. */
  withBytes(name, bytes) {
    const ptr = bytes.length === 0 ? 0 : this.exports.pacer_alloc(bytes.length);
    if (bytes.length > 0 && ptr === 0) throw new Error('pacer_alloc failed');
    new Uint8Array(this.exports.memory.buffer, ptr, bytes.length).set(bytes);
    try {
      return this.exports[name](ptr, bytes.length);
    } finally {
      if (bytes.length > 0) this.exports.pacer_dealloc(ptr, bytes.length);
    }
  }

  configure(text) {
    return this.withBytes('pacer_configure', new TextEncoder().encode(text));
  }

  lastError() {
    const ptr = this.exports.pacer_last_error_ptr();
    const len = this.exports.pacer_last_error_len();
    return new TextDecoder().decode(new Uint8Array(this.exports.memory.buffer, ptr, len));
  }

  /** Exports a snapshot and returns a copy of its bytes (null on error). */
  snapshot() {
    const len = this.exports.pacer_state_export();
    if (len < 0) return null;
    return new Uint8Array(this.exports.memory.buffer, this.exports.pacer_state_ptr(), len).slice();
  }
}

/** Replays one vector file; `check(actual, expected, where)` reports mismatches. */
export function replayVector(wasmPath, vector, check) {
  const loaded = loadModule(wasmPath);
  let pacer = loaded.instantiate();
  let saved = null;
  vector.steps.forEach((step, i) => {
    const where = `step ${i} (${step.call})`;
    if ('now_ns' in step) loaded.env.nowNs = BigInt(step.now_ns);
    if ('memory' in step) [loaded.env.memoryUsed, loaded.env.memoryLimit] = step.memory.map(BigInt);
    let result;
    switch (step.call) {
      case 'restart':
        pacer = loaded.instantiate();
        return;
      case 'pacer_configure':
        result = pacer.configure(typeof step.config === 'string' ? step.config : JSON.stringify(step.config));
        break;
      case 'pacer_state_export': {
        const bytes = pacer.snapshot();
        result = bytes === null ? pacer.exports.pacer_state_export() : bytes.length;
        if (bytes !== null) saved = bytes;
        break;
      }
      case 'pacer_state_import': {
        let bytes = saved.slice();
        if ('flip_byte' in step) bytes[step.flip_byte] ^= 0xff;
        if ('truncate' in step) bytes = bytes.slice(0, step.truncate);
        result = pacer.withBytes('pacer_state_import', bytes);
        break;
      }
      default:
        result = pacer.call(step.call, step.args ?? []);
    }
    check('expect' in step || 'error' in step, true, `${where}: checks nothing (no expect, no error)`);
    if ('expect' in step) check(result, step.expect, `${where}: ${pacer.lastError()}`);
    if ('error' in step) check(pacer.lastError().includes(step.error), true, `${where}: last error ${JSON.stringify(pacer.lastError())} lacks ${JSON.stringify(step.error)}`);
  });
  if ('random_fill_calls' in vector) check(loaded.env.randomFillCalls, vector.random_fill_calls, 'random_fill calls');
}
