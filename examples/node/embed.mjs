// A Node host for the pacer policy module (ABI v1): node examples/node/embed.mjs dist/pacer.wasm
import fs from 'node:fs';

const bytes = fs.readFileSync(process.argv[2] ?? 'dist/pacer.wasm'); // a browser: fetch(...)
let memory;
const text = (ptr, len) => new TextDecoder().decode(new Uint8Array(memory.buffer, ptr, len));
const { instance } = await WebAssembly.instantiate(bytes, {
  pacer: {
    now_ns: () => process.hrtime.bigint(), // i64 crosses as BigInt; a browser: performance.now()
    memory_used: () => -1n, // unknown
    memory_limit: () => 0n,
    random_fill: (ptr, len) => crypto.getRandomValues(new Uint8Array(memory.buffer, ptr, len)),
    log: (level, ptr, len) => console.log(`pacer[${level}]`, text(ptr, len)),
  },
});
const pacer = instance.exports;
memory = pacer.memory;

// Configure: copy the JSON into a guest buffer.
const config = new TextEncoder().encode(JSON.stringify({
  limiters: [{ name: 'catalog', tokens_per_hour: 36000, burst: 1 }], // 10 a second
}));
const ptr = pacer.pacer_alloc(config.length);
new Uint8Array(memory.buffer, ptr, config.length).set(config);
const code = pacer.pacer_configure(ptr, config.length);
pacer.pacer_dealloc(ptr, config.length);
if (code !== 0) throw new Error(text(pacer.pacer_last_error_ptr(), pacer.pacer_last_error_len()));

// Before each request: how long to wait (base jitter 10 ms); after it, the status.
const started = performance.now();
for (let request = 1; request <= 5; request += 1) {
  const delay = pacer.pacer_next_delay_ns(0, 1, 10_000_000n);
  if (delay === -7n) {
    console.log('circuit open; ask again in', pacer.pacer_retry_in_ns(0), 'ns');
    break;
  }
  await new Promise((resolve) => setTimeout(resolve, Math.ceil(Number(delay) / 1e6)));
  const status = 200; // ... the request; a Retry-After in ms goes in the third argument
  pacer.pacer_on_response(0, status, -1n);
  console.log(`request ${request} at ${Math.round(performance.now() - started)} ms`);
}
const elapsed = performance.now() - started;
if (elapsed < 300) throw new Error(`5 requests at 10 a second took only ${elapsed} ms`);
