// scripts/short-imports.mjs (run by `make www` on the page's module): a module and glue in
// wasm-bindgen's shape get short import names that still link, and glue it cannot match
// exactly is refused with nothing written.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SCRIPT = path.join(ROOT, 'scripts/short-imports.mjs');
const FIELDS = ['__wbg_first_0123456789abcdef', '__wbg_second_fedcba9876543210'];

function name(text) {
  const bytes = [...Buffer.from(text)];
  return [bytes.length, ...bytes];
}
function section(id, body) {
  return [id, body.length, ...body];
}

/// A module importing both fields from `./t_bg.js` and exporting `run`, which calls them in order.
function module() {
  const imports = [2, ...FIELDS.flatMap((field) => [...name('./t_bg.js'), ...name(field), 0, 0])];
  const body = [0, 0x10, 0, 0x10, 1, 0x0b];
  return Buffer.from([
    0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
    ...section(1, [1, 0x60, 0, 0]),
    ...section(2, imports),
    ...section(3, [1, 0]),
    ...section(7, [1, ...name('run'), 0, 2]),
    ...section(10, [1, body.length, ...body]),
  ]);
}

/// Glue in wasm-bindgen's layout: an object of import functions under the module's name.
function glue(fields) {
  const keys = fields
    .map((field, i) => `        ${field}: function() {\n            calls.push(${i});\n        },\n`)
    .join('');
  return `function __wbg_get_imports() {\n    const import0 = {\n        __proto__: null,\n${keys}    };\n` +
    `    return {\n        __proto__: null,\n        "./t_bg.js": import0,\n    };\n}\n`;
}

function withPackage(fields, check) {
  const dir = mkdtempSync(path.join(tmpdir(), 'short-imports-'));
  try {
    writeFileSync(path.join(dir, 't_bg.wasm'), module());
    writeFileSync(path.join(dir, 't.js'), glue(fields));
    check(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('short names in the module and the glue, and the two still link', () => {
  withPackage(FIELDS, (dir) => {
    execFileSync(process.execPath, [SCRIPT, dir, 't'], { stdio: 'pipe' });
    const wasm = readFileSync(path.join(dir, 't_bg.wasm'));
    const js = readFileSync(path.join(dir, 't.js'), 'utf8');
    const compiled = new WebAssembly.Module(wasm);
    assert.deepEqual(WebAssembly.Module.imports(compiled).map((i) => [i.module, i.name]), [['a', 'a'], ['a', 'b']]);
    for (const field of FIELDS) assert.ok(!js.includes(field), `${field} is gone from the glue`);
    const calls = [];
    const imports = new Function('calls', `${js}\nreturn __wbg_get_imports();`)(calls);
    new WebAssembly.Instance(compiled, imports).exports.run();
    assert.deepEqual(calls, [0, 1], 'each import still reaches its own function');
  });
});

test('glue without one of the keys is refused, naming it, and nothing is written', () => {
  withPackage([FIELDS[0]], (dir) => {
    const before = [readFileSync(path.join(dir, 't_bg.wasm')), readFileSync(path.join(dir, 't.js'))];
    const run = spawnSync(process.execPath, [SCRIPT, dir, 't'], { encoding: 'utf8' });
    assert.equal(run.status, 1);
    assert.match(run.stderr, new RegExp(`${FIELDS[1]} is named 0 times`));
    assert.match(run.stderr, /nothing written/);
    assert.deepEqual(readFileSync(path.join(dir, 't_bg.wasm')), before[0]);
    assert.deepEqual(readFileSync(path.join(dir, 't.js')), before[1]);
  });
});
