// Loads the CommonJS build of the CLI (dist/provium.cjs, made by scripts/bundle.mjs) with
// V8's code cache (dist/provium.cjs.cache): the bytecode of the bundle's top level and of
// every function a build-time run of the CLI compiled, so a provium call skips most of
// parsing and compiling its ~0.8 MB of JavaScript (measured: `provium --help` 213 -> 175 ms,
// a 200-node no-op plan 387 -> 355 ms). Node 20 has no code cache for ES modules, hence
// the CommonJS build. The cache starts with the sha256 (hex) of the exact source it was
// made from and is used only for that source (V8's own check is the source's length);
// V8 rejects it for another Node or V8 version, and the bundle is then compiled as usual.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { pathToFileURL } from 'node:url';
import vm from 'node:vm';

const HASH_HEX = 64;

/**
 * Compiles `file` (an absolute path to dist/provium.cjs) with its code cache when the cache
 * matches it, runs its top level and returns its exports ({ main }), whether V8 took the
 * cache (`cached`), and `script` and `source` (for scripts/bundle.mjs, which makes the
 * cache with cacheFor(script, source) after running it).
 */
export function loadCli(file, useCache = true) {
  const source = readFileSync(file, 'utf8');
  let cachedData;
  if (useCache) {
    try {
      const cache = readFileSync(`${file}.cache`);
      if (cache.subarray(0, HASH_HEX).toString('latin1') === sha256(source)) cachedData = cache.subarray(HASH_HEX);
    } catch {
      /* no cache: compiled as usual */
    }
  }
  // The same wrapper as Node's CommonJS loader, plus the URL the bundle gets for import.meta.url.
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname, __pvUrl) {${source}\n})`, { filename: file, cachedData });
  const module = { exports: {} };
  script.runInThisContext()(module.exports, createRequire(file), module, file, dirname(file), pathToFileURL(file).href);
  return { exports: module.exports, script, source, cached: cachedData !== undefined && script.cachedDataRejected !== true };
}

/** The cache file's bytes for a script loaded (and run) by loadCli. */
export function cacheFor(script, source) {
  return Buffer.concat([Buffer.from(sha256(source), 'latin1'), script.createCachedData()]);
}

function sha256(text) {
  return createHash('sha256').update(text).digest('hex');
}
