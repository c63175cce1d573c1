/**
 * A cache of loaded topologies. Loading a topology is a pure function of the file's
 * absolute path, its text and provium's build; parsing YAML with source positions is
 * its slow part (the `yaml` package builds a full document: ~0.15-0.2 s for a 200-node
 * lab, as long as the rest of a no-op plan). So the CLI's plan, apply, destroy and show
 * keep the normalized Topology of a file they loaded, as JSON keyed by
 * sha256(build id, path as given, absolute path, text), and read it back (a few ms) while none of the
 * three changed. A changed file, another path or another build is a miss: loaded anew.
 *
 * Only the bundled CLI uses it (model/build.ts: its build id, dist/build-id, is the
 * hash of the bundle and the schema validator, written by scripts/bundle.mjs); the
 * modules under dist/src never do. Entries live in $PROVIUM_CACHE_DIR (default
 * /var/cache/provium, mode 0700; "off" disables the cache), at most MAX_ENTRIES of them,
 * each written atomically (temporary file, then rename) and read without following
 * symlinks. An entry that cannot be read or does not carry its own key is ignored.
 */
import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Topology } from '../model/topology.js';
import { buildId } from '../model/build.js';
import { loadTopology } from './index.js';

/** Entries kept; older ones (by modification time) are removed when a new one is written. */
export const MAX_ENTRIES = 32;

/** The cache directory, or undefined when the cache is off. */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const d = env.PROVIUM_CACHE_DIR ?? '/var/cache/provium';
  return d === 'off' || d === '' ? undefined : d;
}

/** The cache key of a file's text, at its path as given (source positions name it) and its absolute path, under a build. */
export function cacheKey(build: string, file: string, absFile: string, text: string): string {
  return createHash('sha256').update(build).update('\0').update(file).update('\0').update(absFile).update('\0').update(text).digest('hex');
}

/** Reads a regular file without following a symlink; undefined when that is not possible. */
function readNoFollow(path: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch {
    return undefined;
  }
  try {
    if (!fstatSync(fd).isFile()) return undefined;
    return readFileSync(fd, 'utf8');
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** The directory, created 0700 when missing; undefined when it is not a real directory of ours. */
function ensureDir(dir: string): string | undefined {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = lstatSync(dir);
    if (!st.isDirectory() || (process.getuid && st.uid !== process.getuid()) || (st.mode & 0o022) !== 0) return undefined;
    return dir;
  } catch {
    return undefined;
  }
}

/**
 * The entry for `key`, or undefined. `dir` must be a directory (checked by the caller
 * or here with lstat: a symlinked cache directory is never used).
 */
export function readEntry(dir: string, key: string): Topology | undefined {
  try {
    if (!lstatSync(dir).isDirectory()) return undefined;
  } catch {
    return undefined;
  }
  const text = readNoFollow(join(dir, `topology-${key}.json`));
  if (text === undefined) return undefined;
  try {
    const doc = JSON.parse(text) as { key?: string; topology?: Topology };
    return doc.key === key && doc.topology ? doc.topology : undefined;
  } catch {
    return undefined;
  }
}

/** Writes the entry atomically and keeps at most MAX_ENTRIES. Never throws (a cache that cannot be written is no cache). */
export function writeEntry(dir0: string, key: string, t: Topology): void {
  const dir = ensureDir(dir0);
  if (!dir) return;
  const final = join(dir, `topology-${key}.json`);
  const tmp = join(dir, `.tmp-${key}-${process.pid}`);
  try {
    const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      writeSync(fd, JSON.stringify({ key, topology: t }));
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, final);
  } catch {
    rmSync(tmp, { force: true });
    return;
  }
  try {
    const entries = readdirSync(dir).filter((f) => /^topology-[0-9a-f]{64}\.json$/.test(f));
    if (entries.length <= MAX_ENTRIES) return;
    const byAge = entries.map((f) => ({ f, t: statSync(join(dir, f)).mtimeMs })).sort((a, b) => a.t - b.t);
    for (const { f } of byAge.slice(0, entries.length - MAX_ENTRIES)) rmSync(join(dir, f), { force: true });
  } catch {
    /* pruning is best effort */
  }
}

/**
 * loadTopology through the cache (see the module comment): the same Topology, or the
 * same InputError, as loadTopology(file). Reads the file once.
 */
export function loadTopologyCached(file: string): Topology {
  const dir = cacheDir();
  const build = buildId();
  if (!dir || !build) return loadTopology(file);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return loadTopology(file); // the loader reports the unreadable file
  }
  const key = cacheKey(build, file, resolve(file), text);
  const hit = readEntry(dir, key);
  if (hit) return hit;
  const t = loadTopology(file, text);
  writeEntry(dir, key, t);
  return t;
}
