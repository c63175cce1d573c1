/**
 * A cache of loaded topologies. Parsing YAML with source positions is the slow part of
 * loading (the `yaml` package builds a full document: ~0.15-0.2 s for a 200-node lab, as
 * long as the rest of a no-op plan), and loading is a pure function of what it reads:
 * the files (a base, its `extends:` chain, `-f` overlays), the real paths it resolved
 * (an `extends:` through a symbolic link), the environment variables the files refer
 * to, the `--var` values, the working folder, the home directory (a host's
 * `identity: ~/...`) and provium's build. So the CLI's plan, apply, destroy, show, exec
 * and capture keep what they loaded, with every one of those inputs, and use it again
 * only when each is still the same:
 *
 * - the entry is found by sha256(build id, home, working folder, the sources as given,
 *   the `--var` values);
 * - it is used only if every file it read still has the same text (sha256; read again,
 *   through the same safe reader, load/read.ts), every real path resolves the same, and
 *   every environment variable the files looked up (set or not) has the same value.
 *
 * Anything else is a miss: loaded anew, and the entry replaced. Standard input (`-`) is
 * never cached. Only the bundled CLI uses it (model/build.ts: its build id, dist/build-id,
 * is the hash of the bundle and the schema validator, written by scripts/bundle.mjs); the
 * modules under dist/src never do. Entries live in $PROVIUM_CACHE_DIR (default
 * /var/cache/provium, mode 0700; "off" disables the cache), at most MAX_ENTRIES of them,
 * through host/safefs.ts (safe folders, no symbolic link followed, atomic writes). An
 * entry that cannot be read or does not carry its own key is ignored; a cache folder
 * that is not safe is not used.
 */
import { createHash } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { homedir } from 'node:os';
import { LocalSafeFs, type SafeFs } from '../host/safefs.js';
import type { Topology } from '../model/topology.js';
import { buildId } from '../model/build.js';
import { checkSources, type CheckResult, type LoadedFile, type LoadOptions, type SourceInput } from './index.js';
import { readInputFile } from './read.js';

/** Entries kept; older ones (by modification time) are removed when a new one is written. */
export const MAX_ENTRIES = 32;

/** The cache directory, or undefined when the cache is off. */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const d = env.PROVIUM_CACHE_DIR ?? '/var/cache/provium';
  return d === 'off' || d === '' ? undefined : d;
}

/**
 * The key an entry is found by: the build, the home directory, the working folder, the
 * sources as given (names; a source's text when the caller gave it) and the `--var` values.
 */
export function cacheKey(build: string, home: string, cwd: string, sources: SourceInput[], vars: Record<string, string> = {}): string {
  const h = createHash('sha256');
  for (const part of [build, home, cwd, JSON.stringify(sources.map((s) => [s.name, s.text ?? null])), JSON.stringify(Object.entries(vars).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))]) {
    h.update(part).update('\0');
  }
  return h.digest('hex');
}

const sha = (text: string) => createHash('sha256').update(text).digest('hex');

/** What an entry holds: the load's result and every input it depended on. */
export interface CacheEntry {
  key: string;
  topology: Topology;
  /** Every file read, in merge order (load's CheckResult.files), with the sha256 of its text. */
  files: { name: string; path: string; sha: string }[];
  /** Variables substituted, with their values (CheckResult.vars). */
  vars: Record<string, string>;
  rootPath: string;
  /** The merged files have a scenario's top-level `steps:`. */
  steps: boolean;
  /** Real paths resolved while loading: [path, real path]. */
  realpaths: [string, string][];
  /** Environment variables looked up while loading, with their values (null: not set). */
  env: [string, string | null][];
}

/** The cache as a safe tree (folders 0700, files 0600; see host/safefs.ts). */
function cacheFs(dir: string): SafeFs {
  return new LocalSafeFs(dir, { dirMode: 0o700, fileMode: 0o600, what: 'topology cache', chosenBy: 'PROVIUM_CACHE_DIR' });
}

const entryName = (key: string) => `topology-${key}.json`;

/** The entry for `key`, or undefined (absent, unreadable, unsafe, or not carrying its own key). Not yet checked against its inputs. */
export function readEntry(dir: string, key: string): CacheEntry | undefined {
  try {
    const text = cacheFs(dir).read(entryName(key));
    if (text === undefined) return undefined;
    const doc = JSON.parse(text) as Partial<CacheEntry>;
    return doc.key === key && doc.topology && Array.isArray(doc.files) && Array.isArray(doc.realpaths) && Array.isArray(doc.env) ? (doc as CacheEntry) : undefined;
  } catch {
    return undefined;
  }
}

/** Writes the entry atomically and keeps at most MAX_ENTRIES. Never throws (a cache that cannot be written is no cache). */
export function writeEntry(dir: string, e: CacheEntry): void {
  try {
    const fs = cacheFs(dir);
    fs.write(entryName(e.key), JSON.stringify(e));
    const entries = fs.list('').filter((f) => /^topology-[0-9a-f]{64}\.json$/.test(f));
    if (entries.length <= MAX_ENTRIES) return;
    const byAge = entries.map((f) => ({ f, t: fs.lstat(f)?.mtimeMs ?? 0 })).sort((a, b) => a.t - b.t);
    for (const { f } of byAge.slice(0, entries.length - MAX_ENTRIES)) fs.remove(f);
  } catch {
    /* unsafe or unwritable: no cache */
  }
}

/** realpathSync, or the path itself when it cannot be resolved (as load/sources.ts does). */
function realOf(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

/**
 * The files of an entry as loaded now, when every input it depended on is unchanged;
 * undefined otherwise. `env`: the environment to compare with.
 */
export function validEntry(e: CacheEntry, env: Record<string, string | undefined> = process.env): LoadedFile[] | undefined {
  for (const [name, value] of e.env) if ((env[name] ?? null) !== value) return undefined;
  for (const [p, real] of e.realpaths) if (realOf(p) !== real) return undefined;
  const files: LoadedFile[] = [];
  const texts = new Map<string, string>();
  for (const f of e.files) {
    if (f.path === '-') return undefined;
    let text = texts.get(f.path);
    if (text === undefined) {
      try {
        text = readInputFile(f.path, f.name);
      } catch {
        return undefined;
      }
      if (sha(text) !== f.sha) return undefined;
      texts.set(f.path, text);
    }
    files.push({ name: f.name, path: f.path, text });
  }
  return files;
}

/** checkSources through the cache, and whether the merged files have `steps:`. */
export interface CachedCheck {
  r: CheckResult;
  steps: boolean;
  /** The result came from the cache. */
  hit: boolean;
}

/**
 * checkSources(sources, opts) through the cache (see the module comment): the same
 * topology, files and variables, or the same diagnostics, as loading anew. A result
 * from the cache carries no `merged` tree and no warnings (the commands that use the
 * cache print neither). `opts.vars` are the `--var` values; the other LoadOptions must
 * be left to their defaults (the real file system, process.env, process.cwd()).
 * `where`: the cache directory and build id (default cacheDir() and buildId(); tests
 * give their own).
 */
export function checkSourcesCached(sources: SourceInput[], opts: LoadOptions = {}, where: { dir?: string; build?: string } = {}): CachedCheck {
  const dir = where.dir ?? cacheDir();
  const build = where.build ?? buildId();
  const hasSteps = (r: CheckResult) => r.merged?.kind === 'map' && r.merged.entries.has('steps');
  if (!dir || !build || sources.some((s) => s.name === '-') || opts.env || opts.readFile || opts.cwd || opts.realpath) {
    const r = checkSources(sources, opts);
    return { r, steps: hasSteps(r), hit: false };
  }
  const key = cacheKey(build, homedir(), process.cwd(), sources, opts.vars);
  const e = readEntry(dir, key);
  const files = e && validEntry(e);
  if (e && files) {
    return { r: { topology: e.topology, diagnostics: [], files, vars: e.vars, rootPath: e.rootPath }, steps: e.steps, hit: true };
  }
  // Load, recording what loading depends on.
  const realpaths: [string, string][] = [];
  const looked = new Map<string, string | null>();
  const env = new Proxy(process.env, {
    get(target, name) {
      const v = Reflect.get(target, name) as string | undefined;
      if (typeof name === 'string') looked.set(name, v ?? null);
      return v;
    },
  });
  const r = checkSources(sources, {
    ...opts,
    env,
    realpath: (p) => {
      // A path that does not resolve is recorded as itself (load/sources.ts then keeps the
      // path; realOf gives the same while it still does not resolve).
      const real = realOf(p);
      realpaths.push([p, real]);
      return real;
    },
  });
  const steps = hasSteps(r);
  if (r.topology && r.files.every((f) => f.path !== '-')) {
    writeEntry(dir, {
      key, topology: r.topology, files: r.files.map((f) => ({ name: f.name, path: f.path, sha: sha(f.text) })), vars: r.vars,
      rootPath: r.rootPath ?? '', steps, realpaths, env: [...looked],
    });
  }
  return { r, steps, hit: false };
}
