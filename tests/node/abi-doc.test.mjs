// ABI.md's JavaScript example is examples/node/embed.mjs, word for word (make test runs the
// file), and the page's list of exports is the core's table.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import test from 'node:test';

const root = new URL('../../', import.meta.url);
const read = (path) => fs.readFileSync(new URL(path, root), 'utf8');

test("ABI.md shows the Node example that make test runs", () => {
  const example = read('examples/node/embed.mjs');
  assert.ok(read('ABI.md').includes('```js\n' + example + '```'), 'ABI.md drifted from examples/node/embed.mjs');
});

test('the module exports what the table lists', async () => {
  const { EXPORTS } = await import(new URL('www/js/abi-table.js', root));
  const module = new WebAssembly.Module(fs.readFileSync(new URL('dist/pacer.wasm', root)));
  const exported = new Set(WebAssembly.Module.exports(module).map((e) => e.name));
  for (const f of EXPORTS) assert.ok(exported.has(f.name), `${f.name} is missing`);
  const pacerExports = [...exported].filter((name) => name.startsWith('pacer_'));
  assert.deepEqual(pacerExports.sort(), EXPORTS.map((f) => f.name).sort());
});
