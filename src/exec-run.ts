/**
 * `provium exec FILE NODE -- CMD...` on a lean path: users poll with it (`until provium
 * exec lab.yaml a -- curl -sf b:8080; do sleep 0.1; done`), so it must start fast. This
 * module loads node builtins only (its own bundle, dist/exec.mjs, which bin/provium
 * imports instead of the whole CLI). The file's lab name and node kinds come from a small
 * cache keyed by the SHA-256 of the file's bytes (<state root>/exec-cache.json: the same
 * bytes always mean the same lab); on a miss, exec-fast.ts parses the YAML (and fills the
 * cache). Then the command runs with `ip netns exec`. Anything unusual (a file that does
 * not parse, a multi-host file, an unknown node, a node that is neither a netns node nor a
 * router or is not running, options it
 * does not know) goes to the full CLI, which validates the whole file and explains.
 * Measured in `npm run bench` (bench/exec.ts).
 *
 * Exit status: the command's own; 127 when it is not found and 126 when it cannot be
 * run, as a shell does (`ip netns exec` itself would say 255); 128+N when a signal N
 * ended it.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { stateFs } from './apply/statedir.js';
import { constants as osConstants } from 'node:os';

const LAB = /^[a-z][a-z0-9]{0,7}$/;
const NAME = /^[a-z][a-z0-9-]{0,30}$/;
const CACHE_MAX = 64;
const CACHE = 'exec-cache.json';

/** What the lean path knows of a file: its lab and every node's kind. */
export interface FilePeek {
  lab: string;
  nodes: Record<string, string>;
}

/** The cache's entries; {} when absent, unreadable, or not what provium wrote (the state directory's safe tree: no symbolic link followed, owned by root). */
function readCache(): Record<string, FilePeek> {
  try {
    const text = stateFs().read(CACHE);
    if (text === undefined) return {};
    const doc = JSON.parse(text) as { v?: number; entries?: Record<string, FilePeek> };
    return doc.v === 1 && doc.entries && typeof doc.entries === 'object' ? doc.entries : {};
  } catch {
    return {};
  }
}

export function fileHash(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** A cached peek, checked again (lab and node names as the loader allows them). */
export function cachedPeek(hash: string): FilePeek | undefined {
  const e = readCache()[hash];
  if (!e || typeof e.lab !== 'string' || !LAB.test(e.lab) || !e.nodes || typeof e.nodes !== 'object') return undefined;
  return e;
}

/**
 * Remembers a peek (at most 64 files; written atomically through the state directory's
 * safe tree, mode 0600). Only where the state root exists (apply made it); a failure to
 * write is ignored (the cache is an optimization).
 */
export function rememberPeek(hash: string, peek: FilePeek): void {
  try {
    const fs = stateFs();
    if (!fs.exists('')) return;
    const entries = readCache();
    delete entries[hash];
    entries[hash] = peek;
    const keys = Object.keys(entries);
    for (const k of keys.slice(0, Math.max(0, keys.length - CACHE_MAX))) delete entries[k];
    fs.write(CACHE, JSON.stringify({ v: 1, entries }));
  } catch {
    /* not cached */
  }
}

/**
 * Where a command would be found, as a shell looks it up: a name with a slash as it is,
 * else the first executable file of that name on PATH. 127 when nothing is there, 126 when
 * it is there but cannot be executed; otherwise undefined.
 */
export function commandMissing(cmd: string, path = process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'): 126 | 127 | undefined {
  const runnable = (p: string): boolean | undefined => {
    try {
      if (!statSync(p).isFile()) return false;
    } catch {
      return undefined;
    }
    try {
      accessSync(p, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  if (cmd.includes('/')) {
    const r = runnable(cmd);
    return r === undefined ? 127 : r ? undefined : 126;
  }
  let seen = false;
  for (const dir of path.split(':')) {
    const r = runnable(`${dir || '.'}/${cmd}`);
    if (r) return undefined;
    if (r === false) seen = true;
  }
  return seen ? 126 : 127;
}

/** Runs argv inside namespace `ns` with the terminal attached; resolves to its exit status (see the module comment). */
export function runInNode(ns: string, cmd: string[]): Promise<number> {
  const missing = commandMissing(cmd[0]);
  if (missing !== undefined) {
    process.stderr.write(`provium exec: ${cmd[0]}: ${missing === 127 ? 'command not found' : 'permission denied'}\n`);
    return Promise.resolve(missing);
  }
  return new Promise((resolve) => {
    const child = spawn('ip', ['netns', 'exec', ns, ...cmd], { stdio: 'inherit' });
    const forward = (sig: NodeJS.Signals) => () => child.kill(sig);
    const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'] as const).map((s) => [s, forward(s)] as const);
    for (const [s, h] of handlers) process.on(s, h);
    child.on('error', () => resolve(127));
    child.on('exit', (code, signal) => {
      for (const [s, h] of handlers) process.off(s, h);
      const n = signal ? (osConstants.signals as Record<string, number>)[signal] ?? 0 : 0;
      resolve(code ?? 128 + n);
    });
  });
}

/**
 * The lean path: argv after `node provium`. Returns the exit status, or undefined to
 * hand over to the full CLI (which then runs from the start, so nothing was done twice).
 */
export async function execFast(args: string[]): Promise<number | undefined> {
  let i = 0;
  // A --netns given is checked against the lab's by the full CLI.
  while (args[i] === '--no-color') i++;
  if (args[i] !== 'exec') return undefined;
  const [file, node, sep, ...rest] = args.slice(i + 1);
  if (!file || !node || file.startsWith('-') || !NAME.test(node)) return undefined;
  // Without `--`, an option-like word would be the full CLI's to read.
  const cmd = sep === '--' ? rest : [sep, ...rest].filter((x) => x !== undefined);
  if (cmd.length === 0 || (sep !== '--' && cmd.some((x) => x.startsWith('-')))) return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const hash = fileHash(text);
  let peek = cachedPeek(hash);
  if (!peek) {
    const { peekFile } = await import('./exec-fast.js');
    peek = peekFile(text);
    if (!peek) return undefined;
    rememberPeek(hash, peek);
  }
  if (!Object.prototype.hasOwnProperty.call(peek.nodes, node) || (peek.nodes[node] !== 'netns' && peek.nodes[node] !== 'router')) return undefined;
  const ns = `pv-${peek.lab}-${node}`;
  if (!existsSync(`/run/netns/${ns}`)) return undefined;
  return runInNode(ns, cmd);
}
