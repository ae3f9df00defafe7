// Renames the page module's imports to short names, in the .wasm and in wasm-bindgen's JS glue
// alike: `node scripts/short-imports.mjs DIR NAME` rewrites DIR/NAME_bg.wasm and DIR/NAME.js.
//
// wasm-bindgen names every import `__wbg_<name>_<16 hex digits>` in a module called
// `./NAME_bg.js`; the page's 25-odd imports spend over a kilobyte of the .wasm on those
// strings. Each module and each field becomes one or two letters. The JS glue is rewritten
// by exact string: each old name must occur exactly once as an object key there, or nothing
// is written and the script fails naming it (a wasm-bindgen whose output differs is caught
// here, not in the browser).

import fs from 'node:fs';
import path from 'node:path';

const [dir, crate] = process.argv.slice(2);
if (!dir || !crate) {
  console.error('usage: node scripts/short-imports.mjs DIR NAME');
  process.exit(2);
}
const wasmPath = path.join(dir, `${crate}_bg.wasm`);
const jsPath = path.join(dir, `${crate}.js`);
const wasm = fs.readFileSync(wasmPath);
let js = fs.readFileSync(jsPath, 'utf8');

function fail(message) {
  console.error(`short-imports: ${message}; nothing written`);
  process.exit(1);
}

// --- LEB128 and the module's sections ---
function readU32(bytes, at) {
  let value = 0;
  let shift = 0;
  for (;;) {
    const byte = bytes[at++];
    value += (byte & 0x7f) * 2 ** shift;
    shift += 7;
    if (!(byte & 0x80)) return [value, at];
  }
}
function u32(value) {
  const out = [];
  do {
    let byte = value & 0x7f;
    value = Math.floor(value / 128);
    if (value) byte |= 0x80;
    out.push(byte);
  } while (value);
  return out;
}
function readName(bytes, at) {
  const [length, start] = readU32(bytes, at);
  return [bytes.subarray(start, start + length).toString('utf8'), start + length];
}
function encodeName(text) {
  const utf8 = Buffer.from(text, 'utf8');
  return [...u32(utf8.length), ...utf8];
}

if (wasm.readUInt32LE(0) !== 0x6d736100) fail(`${wasmPath} is not a wasm module`);
let at = 8;
let importSection = null;
while (at < wasm.length) {
  const id = wasm[at];
  const [size, body] = readU32(wasm, at + 1);
  if (id === 2) importSection = { start: at, body, end: body + size };
  at = body + size;
}
if (!importSection) fail(`${wasmPath} has no imports`);

// Short names: a..z, A..Z, then two letters; valid JS identifiers, never reserved words.
const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
const short = (i) =>
  i < LETTERS.length ? LETTERS[i] : LETTERS[Math.floor(i / LETTERS.length) - 1] + LETTERS[i % LETTERS.length];

// --- rewrite the import section ---
const modules = new Map();
const fields = new Map();
let [count, cursor] = readU32(wasm, importSection.body);
const entries = [];
for (let i = 0; i < count; i++) {
  let module, field;
  [module, cursor] = readName(wasm, cursor);
  [field, cursor] = readName(wasm, cursor);
  const descStart = cursor;
  const kind = wasm[cursor++];
  if (kind === 0) [, cursor] = readU32(wasm, cursor); // func: type index
  else if (kind === 1) { cursor++; const [flags, c] = readU32(wasm, cursor); cursor = c; [, cursor] = readU32(wasm, cursor); if (flags & 1) [, cursor] = readU32(wasm, cursor); }
  else if (kind === 2) { const [flags, c] = readU32(wasm, cursor); cursor = c; [, cursor] = readU32(wasm, cursor); if (flags & 1) [, cursor] = readU32(wasm, cursor); }
  else if (kind === 3) cursor += 2; // global: type, mutability
  else fail(`import ${module}.${field} has an unknown kind ${kind}`);
  if (!modules.has(module)) modules.set(module, short(modules.size));
  const key = `${module}\u0000${field}`;
  if (!fields.has(key)) fields.set(key, short(fields.size));
  entries.push([modules.get(module), fields.get(key), wasm.subarray(descStart, cursor)]);
}
if (cursor !== importSection.end) fail('the import section did not parse to its end');

// --- rewrite the JS glue: each old name exactly once, as a key ---
function replaceOnce(pattern, replacement, what) {
  const hits = js.split(pattern).length - 1;
  if (hits !== 1) fail(`${jsPath}: ${what} occurs ${hits} times, expected once`);
  js = js.replace(pattern, replacement);
}
for (const [key, shortName] of fields) {
  const field = key.split('\u0000')[1];
  const mentions = js.split(field).length - 1;
  if (mentions !== 1) fail(`${jsPath}: ${field} is named ${mentions} times, expected once (its key)`);
  replaceOnce(`\n        ${field}: `, `\n        ${shortName}: `, `the import key ${field}`);
}
for (const [module, shortName] of modules) {
  replaceOnce(`"${module}": `, `"${shortName}": `, `the import module "${module}"`);
}

const body = [...u32(entries.length)];
for (const [module, field, desc] of entries) body.push(...encodeName(module), ...encodeName(field), ...desc);
const section = Buffer.from([2, ...u32(body.length), ...body]);
const out = Buffer.concat([wasm.subarray(0, importSection.start), section, wasm.subarray(importSection.end)]);

fs.writeFileSync(`${wasmPath}.tmp`, out);
fs.writeFileSync(`${jsPath}.tmp`, js);
fs.renameSync(`${wasmPath}.tmp`, wasmPath);
fs.renameSync(`${jsPath}.tmp`, jsPath);
console.log(`short-imports: ${fields.size} imports in ${modules.size} module(s), ${wasm.length - out.length} bytes fewer`);
