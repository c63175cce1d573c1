/**
 * A cache of loaded topologies. Loading a topology is a pure function of the file's
 * absolute path, its text, the home directory and provium's build; parsing YAML with source positions is
 * its slow part (the `yaml` package builds a full document: ~0.15-0.2 s for a 200-node
 * lab, as long as the rest of a no-op plan). So the CLI's plan, apply, destroy and show
 * keep the normalized Topology of a file they loaded, as JSON keyed by
 * sha256(build id, path as given, absolute path, home directory, text), and read it back
 * (a few ms) while none of them changed. A changed file, another path, home directory or
 * build is a miss: loaded anew.
 *
 * Only the bundled CLI uses it (model/build.ts: its build id, dist/build-id, is the
 * hash of the bundle and the schema validator, written by scripts/bundle.mjs); the
 * modules under dist/src never do. Entries live in $PROVIUM_CACHE_DIR (default
 * /var/cache/provium, mode 0700; "off" disables the cache), at most MAX_ENTRIES of them,
 * through host/safefs.ts (safe folders, no symbolic link followed, atomic writes). An
 * entry that cannot be read or does not carry its own key is ignored; a cache folder
 * that is not safe is not used.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { resolve } from 'node:path';
import { LocalSafeFs, type SafeFs } from '../host/safefs.js';
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

/**
 * The cache key of a file's text, at its path as given (source positions name it) and its
 * absolute path, under a build, for a home directory (a host's `identity: ~/...` and
 * `ssh_config: ~/...` resolve against it: the only input of loading besides the file).
 */
export function cacheKey(build: string, file: string, absFile: string, text: string, home = homedir()): string {
  return createHash('sha256').update(build).update('\0').update(file).update('\0').update(absFile).update('\0').update(home).update('\0').update(text).digest('hex');
}

/** The cache as a safe tree (folders 0700, files 0600; see host/safefs.ts). */
function cacheFs(dir: string): SafeFs {
  return new LocalSafeFs(dir, { dirMode: 0o700, fileMode: 0o600, what: 'topology cache', chosenBy: 'PROVIUM_CACHE_DIR' });
}

const entryName = (key: string) => `topology-${key}.json`;

/** The entry for `key`, or undefined (absent, unreadable, unsafe, or not carrying its own key). */
export function readEntry(dir: string, key: string): Topology | undefined {
  try {
    const text = cacheFs(dir).read(entryName(key));
    if (text === undefined) return undefined;
    const doc = JSON.parse(text) as { key?: string; topology?: Topology };
    return doc.key === key && doc.topology ? doc.topology : undefined;
  } catch {
    return undefined;
  }
}

/** Writes the entry atomically and keeps at most MAX_ENTRIES. Never throws (a cache that cannot be written is no cache). */
export function writeEntry(dir: string, key: string, t: Topology): void {
  try {
    const fs = cacheFs(dir);
    fs.write(entryName(key), JSON.stringify({ key, topology: t }));
    const entries = fs.list('').filter((f) => /^topology-[0-9a-f]{64}\.json$/.test(f));
    if (entries.length <= MAX_ENTRIES) return;
    const byAge = entries.map((f) => ({ f, t: fs.lstat(f)?.mtimeMs ?? 0 })).sort((a, b) => a.t - b.t);
    for (const { f } of byAge.slice(0, entries.length - MAX_ENTRIES)) fs.remove(f);
  } catch {
    /* unsafe or unwritable: no cache */
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
