// A user's policy module, loaded with the browser's own WebAssembly and driven through ABI v1
// (ABI.md). The simulator (Rust, www/src/user_module.rs) calls these methods; each returns the
// export's answer as a Number (i64 crosses into JS as BigInt). The lists of imports and
// exports come from the core's table (abi-table.js, generated and checked by a test).

import { ABI_VERSION, EXPORTS, IMPORTS, IMPORT_MODULE } from './abi-table.js';

const IMPORT_NAMES = IMPORTS.map((f) => f.name);
const REQUIRED = ['memory', ...EXPORTS.filter((f) => f.feature === 0).map((f) => f.name)];
const MAGIC = [0x00, 0x61, 0x73, 0x6d];
const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ');

export class AbiModule {
  /** Checks and instantiates `bytes`; throws an Error whose message says what is wrong. */
  static async load(bytes, name) {
    const head = new Uint8Array(bytes, 0, Math.min(4, bytes.byteLength));
    if (head.length < 4 || MAGIC.some((b, i) => head[i] !== b)) {
      throw new Error(`${name} is not a WebAssembly module: it starts with ${hex(head) || 'nothing'}, `
        + 'not 00 61 73 6d ("\\0asm")');
    }
    let compiled;
    try {
      compiled = await WebAssembly.compile(bytes);
    } catch (e) {
      throw new Error(`${name} is not a valid WebAssembly module: ${e.message}`);
    }
    for (const entry of WebAssembly.Module.imports(compiled)) {
      if (entry.module !== IMPORT_MODULE || !IMPORT_NAMES.includes(entry.name) || entry.kind !== 'function') {
        throw new Error(`${name} imports ${entry.module}.${entry.name} (${entry.kind}); an ABI v1 module `
          + `imports only functions of "${IMPORT_MODULE}": ${IMPORT_NAMES.join(', ')}`);
      }
    }
    const exported = new Set(WebAssembly.Module.exports(compiled).map((e) => e.name));
    const missing = REQUIRED.filter((e) => !exported.has(e));
    if (missing.length > 0) {
      throw new Error(`${name} lacks ${missing.join(', ')}: not an ABI v1 policy module`);
    }
    const module = new AbiModule(name, bytes.byteLength);
    let instance;
    try {
      instance = await WebAssembly.instantiate(compiled, { pacer: module.imports() });
    } catch (e) {
      throw new Error(`${name} could not start: ${e.message}`);
    }
    module.exports = instance.exports;
    const version = module.exports.pacer_abi_version();
    if (version !== ABI_VERSION) {
      throw new Error(`${name} implements ABI version ${version}; this page speaks version ${ABI_VERSION}`);
    }
    const features = module.exports.pacer_features();
    const unbacked = EXPORTS.filter((f) => (features & f.feature) !== 0 && !exported.has(f.name));
    if (unbacked.length > 0) {
      throw new Error(`${name} announces ${unbacked.map((f) => f.name).join(', ')} in pacer_features `
        + 'but does not export them');
    }
    return module;
  }

  constructor(name, size) {
    this.name = name;
    this.size = size;
    this.now = 0n;
    this.used = -1n;
    this.limit = -1n;
    this.entropy = new Uint8Array(32);
    this.hostError = '';
  }

  imports() {
    return {
      now_ns: () => this.now,
      memory_used: () => this.used,
      memory_limit: () => this.limit,
      random_fill: (ptr, len) => {
        const memory = new Uint8Array(this.exports.memory.buffer);
        if (ptr < 0 || len < 0 || ptr + len > memory.length) return;
        // As the native simulator's host: the scenario's 32 bytes, repeated.
        for (let i = 0; i < len; i += 1) memory[ptr + i] = this.entropy[i % 32];
      },
      log: () => {},
    };
  }

  setReading(nowNs, memoryUsed, memoryLimit) {
    this.now = BigInt(nowNs);
    this.used = BigInt(memoryUsed);
    this.limit = BigInt(memoryLimit);
  }

  /** Returns undefined when configured, else the module's message. */
  configure(json, entropy) {
    this.entropy = Uint8Array.from(entropy);
    const bytes = new TextEncoder().encode(json);
    const ex = this.exports;
    const ptr = ex.pacer_alloc(bytes.length);
    if (ptr === 0 && bytes.length > 0) return `the module could not allocate ${bytes.length} bytes`;
    new Uint8Array(ex.memory.buffer, ptr, bytes.length).set(bytes);
    const code = ex.pacer_configure(ptr, bytes.length);
    ex.pacer_dealloc(ptr, bytes.length);
    return code === 0 ? undefined : (this.lastError() || `pacer_configure returned ${code}`);
  }

  tryAcquire(limiter, cost) { return Number(this.exports.pacer_try_acquire(limiter, cost)); }

  nextDelay(limiter, cost, baseNs) {
    return Number(this.exports.pacer_next_delay_ns(limiter, cost, BigInt(baseNs)));
  }

  onResponse(limiter, status, retryAfterMs) {
    return this.exports.pacer_on_response(limiter, status, BigInt(retryAfterMs));
  }

  retryIn(limiter) { return Number(this.exports.pacer_retry_in_ns(limiter)); }

  /** `pacer_features`, less any bit whose optional export the module lacks. */
  features() {
    const ex = this.exports;
    let features = ex.pacer_features();
    for (const f of EXPORTS) {
      if (f.feature !== 0 && typeof ex[f.name] !== 'function') features &= ~f.feature;
    }
    return features;
  }

  replace(limiter, cost, dueInNs) {
    return Number(this.exports.pacer_replace_ns(limiter, cost, BigInt(dueInNs)));
  }

  onResponseSent(limiter, status, retryAfterMs, sentAtNs) {
    return this.exports.pacer_on_response_sent(limiter, status, BigInt(retryAfterMs), BigInt(sentAtNs));
  }

  availableMilli(limiter) { return Number(this.exports.pacer_available_milli(limiter)); }

  /** `pacer_rate_micro` (feature bit 128), or -1 where the module lacks it. */
  rateMicro(limiter) {
    const rate = this.exports.pacer_rate_micro;
    return this.features() & 128 ? Number(rate(limiter)) : -1;
  }

  jitter(baseNs, utilizationPpm) {
    return Number(this.exports.pacer_jitter_ns(BigInt(baseNs), utilizationPpm));
  }

  pressure() { return this.exports.pacer_pressure(); }

  poolTarget(maxBuffers) { return this.exports.pacer_pool_target(maxBuffers); }

  lastError() {
    const ex = this.exports;
    const ptr = ex.pacer_last_error_ptr();
    const len = ex.pacer_last_error_len();
    const memory = ex.memory.buffer;
    if (ptr < 0 || len <= 0 || ptr + len > memory.byteLength) return '';
    return new TextDecoder().decode(new Uint8Array(memory, ptr, len));
  }
}
