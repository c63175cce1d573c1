/**
 * bin/cjs-loader.mjs: the CLI's CommonJS bundle runs with V8's code cache only when the
 * cache was made from exactly that source (its sha256), else it is compiled as usual;
 * either way the code that runs is the file's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

type Loader = {
  loadCli(file: string, useCache?: boolean): { exports: { main(): number; url: string }; script: unknown; source: string; cached: boolean };
  cacheFor(script: unknown, source: string): Buffer;
};
const loader = (): Promise<Loader> => import(new URL('../../../bin/cjs-loader.mjs', import.meta.url).href) as Promise<Loader>;

const LOADER = new URL('../../../bin/cjs-loader.mjs', import.meta.url).href;

/** Loads `file` in a fresh Node process (V8 keeps compiled scripts per process): whether the cache was taken, and what main() returned. */
function loadInChild(file: string): { cached: boolean; value: number; url: string } {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', `import { loadCli } from ${JSON.stringify(LOADER)}; const r = loadCli(process.argv[1]); process.stdout.write(JSON.stringify({ cached: r.cached, value: r.exports.main(), url: r.exports.url }));`, file], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as { cached: boolean; value: number; url: string };
}

test('cjs loader: the cache is used for its own source only; a changed file of the same length runs as changed', async (t) => {
  const { loadCli, cacheFor } = await loader();
  const dir = mkdtempSync(join(tmpdir(), 'pv-cjs-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'provium.cjs');
  writeFileSync(file, 'exports.main = function () { return 41 + 1; }; exports.url = __pvUrl;\n');
  assert.deepEqual(loadInChild(file), { cached: false, value: 42, url: `file://${file}` }, 'no cache yet; import.meta.url of the bundle is its own URL');
  const made = loadCli(file, false);
  writeFileSync(`${file}.cache`, cacheFor(made.script, made.source));
  assert.deepEqual(loadInChild(file), { cached: true, value: 42, url: `file://${file}` }, 'the cache of this very source is taken');
  // Same length, other code: V8's own check (the length) would pass; the sha256 does not.
  writeFileSync(file, 'exports.main = function () { return 40 + 3; }; exports.url = __pvUrl;\n');
  assert.deepEqual(loadInChild(file), { cached: false, value: 43, url: `file://${file}` }, 'a stale cache is not used');
  // A cache whose hash matches but whose data is not V8's: V8 rejects it, the file still runs.
  const src = readFileSync(file, 'utf8');
  const good = cacheFor(loadCli(file, false).script, src);
  writeFileSync(`${file}.cache`, Buffer.concat([good.subarray(0, 64), Buffer.alloc(64, 7)]));
  assert.deepEqual(loadInChild(file), { cached: false, value: 43, url: `file://${file}` }, 'rejected by V8, compiled as usual');
});

test('cjs loader: the built CLI bundle carries a cache V8 takes (npm run build)', { skip: (() => { try { readFileSync(new URL('../../../dist/provium.cjs.cache', import.meta.url)); return false; } catch { return 'dist/provium.cjs.cache not built (npm run build)'; } })() }, () => {
  const file = new URL('../../../dist/provium.cjs', import.meta.url).pathname;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', `import { loadCli } from ${JSON.stringify(LOADER)}; const r = loadCli(process.argv[1]); process.stdout.write(JSON.stringify({ cached: r.cached, main: typeof r.exports.main }));`, file], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { cached: true, main: 'function' }, 'the build made the cache for this bundle and this Node');
});
