/**
 * provium's state directory: what the host cannot tell back. Root:
 * $PROVIUM_STATE_DIR, default /var/lib/provium; every access goes through the
 * safe tree of src/host/safefs.ts (root-owned folders, no symbolic link followed,
 * atomic writes). Layout:
 *
 *   <root>/<lab>.lock                 the lab's lock (pid, command, host, since)
 *   <root>/<lab>/state.json           the lab's record (LabRecord; an extensible object)
 *   <root>/<lab>/pending-netns.json   journal of namespaces an apply is creating
 *   <root>/<lab>/dnsmasq/, vm/<node>/ service and VM files
 *   <root>/_hostns/<ns>.json          per host namespace (`_root` for the root one): the
 *                                     ip_forward / IPv6 forwarding values found before the
 *                                     first lab turned them on (shared by every lab there)
 *
 * Lab names are [a-z][a-z0-9]{0,7}, so `_hostns` never collides with a lab.
 */
import { hostname } from 'node:os';
import { LockError, ProviumError, type LockHolder } from '../model/diagnostics.js';
import { processAlive } from '../host/proc.js';
import { LocalSafeFs, type SafeFs } from '../host/safefs.js';

/** Absolute path of the state directory ($PROVIUM_STATE_DIR, default /var/lib/provium). */
export function stateRoot(): string {
  const root = process.env.PROVIUM_STATE_DIR ?? '/var/lib/provium';
  // Paths under it go into dnsmasq's config file and QEMU's command line.
  if (!root.startsWith('/') || /[\u0000-\u001f\u007f]/.test(root)) {
    throw new ProviumError(`PROVIUM_STATE_DIR=${JSON.stringify(root)}: the state directory must be an absolute path without control characters`);
  }
  return root;
}

/** The state directory as a safe tree (folders 0700, files 0600). */
export function stateFs(): SafeFs {
  return new LocalSafeFs(stateRoot(), { dirMode: 0o700, fileMode: 0o600, what: 'state directory', chosenBy: 'PROVIUM_STATE_DIR' });
}

/** Path of the folder /etc/netns, whose <ns>/<file> `ip netns exec` binds over /etc/<file>. */
export const ETC_NETNS = '/etc/netns';

/**
 * /etc/netns as a safe tree: folders 0755 and files 0644, because every process in a
 * node reads them (services run as their own users: a 0700 folder breaks their name
 * resolution). Reused for every per-node file there (resolv.conf, hosts).
 */
export function etcNetnsFs(): SafeFs {
  // One object per process: its root's parents (/ and /etc) are checked once (see
  // LocalSafeFs); a lab's hundreds of node files otherwise repeat that check for each.
  return (etcTree ??= new LocalSafeFs(ETC_NETNS, { dirMode: 0o755, fileMode: 0o644, readable: true, durable: false, what: 'per-namespace /etc folder' }));
}
let etcTree: SafeFs | undefined;

/**
 * The safe tree holding an absolute path provium manages, and the path relative to
 * it: under the state directory or /etc/netns. Throws ProviumError for any other
 * path: provium writes and removes files nowhere else.
 */
export function treeOf(path: string): { fs: SafeFs; rel: string } {
  for (const fs of [stateFs(), etcNetnsFs()]) {
    if (path.startsWith(`${fs.root}/`) && path.length > fs.root.length + 1) return { fs, rel: path.slice(fs.root.length + 1) };
  }
  throw new ProviumError(`refusing to touch ${path}: provium writes only under its state directory (${stateRoot()}) and ${ETC_NETNS}`);
}

/** Receives warnings (a corrupt record, a stale lock); the CLI prints them as "warning: ...". */
export type Warn = (message: string) => void;

/**
 * Reads a JSON file of a tree. Absent: undefined. Empty, not JSON, or not of the
 * expected shape (`valid`): warns naming the file and what happens instead
 * (`consequence`), and returns undefined, so provium recovers from the host rather
 * than failing every run. A file that breaks the tree's rules (a symbolic link, a
 * foreign owner) is refused with an UnsafePathError.
 */
export function readJson<T>(fs: SafeFs, rel: string, valid: (v: unknown) => v is T, consequence: string, warn: Warn = () => {}): T | undefined {
  const text = fs.read(rel);
  if (text === undefined) return undefined;
  let problem: string | undefined;
  let value: unknown;
  if (text.trim() === '') problem = 'is empty';
  else {
    try {
      value = JSON.parse(text);
      if (!valid(value)) problem = 'does not hold what provium wrote there';
    } catch (e) {
      problem = `is not valid JSON (${(e as Error).message})`;
    }
  }
  if (problem === undefined) return value as T;
  warn(`${fs.path(rel)} ${problem}: ${consequence}`);
  return undefined;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * What provium remembers about a lab (state.json). An extensible object: unknown
 * fields written by other parts of provium are kept by updateRecord.
 */
export interface LabRecord {
  /** Host namespace the lab lives in (--netns), null for the root namespace. Recorded by apply. */
  hostNetns?: string | null;
  /** Absolute path of the file last applied (provium ls). */
  file?: string;
  /** When the last apply finished (ISO 8601; provium ls). */
  appliedAt?: string;
  /** What the file declares: nodes, vms, bridges, partitions, impairments (provium ls). */
  objects?: Record<string, number>;
  /** The lab forwards IPv4 in its host namespace (it relies on net.ipv4.ip_forward=1). */
  forwards?: boolean;
  /** The lab forwards IPv6 there (net.ipv6.conf.all.forwarding=1). */
  forwards6?: boolean;
  /** Written by provium before 0.2: the value found before this lab set it (moved to the host namespace's record). */
  ipForwardBefore?: boolean;
  ip6ForwardBefore?: boolean;
  [field: string]: unknown;
}

/** The lab's record; {} when absent or corrupt (with a warning naming the file). */
export function readRecord(lab: string, warn?: Warn): LabRecord {
  return readJson(stateFs(), `${lab}/state.json`, isObject, 'ignored; provium reads the lab from the host, and a value it recorded (the host namespace, forwarding) is forgotten until the next apply rewrites the file', warn) ?? {};
}

/** Writes the lab's record atomically. */
export function writeRecord(lab: string, rec: LabRecord): void {
  stateFs().write(`${lab}/state.json`, JSON.stringify(rec, null, 2) + '\n');
}

/** Reads, changes and writes the lab's record (keeping fields it does not know). */
export function updateRecord(lab: string, change: (rec: LabRecord) => void, warn?: Warn): LabRecord {
  const rec = readRecord(lab, warn);
  const before = JSON.stringify(rec);
  change(rec);
  if (JSON.stringify(rec) !== before) writeRecord(lab, rec);
  return rec;
}

/** The values of a host namespace's forwarding sysctls found before the first lab there turned them on. */
export interface HostNsRecord {
  ipForwardBefore?: boolean;
  ip6ForwardBefore?: boolean;
}

function hostNsRel(hostNetns: string | undefined): string {
  return `_hostns/${hostNetns ?? '_root'}.json`;
}

/** The host namespace's record; {} when absent or corrupt (warned). */
export function readHostNsRecord(hostNetns: string | undefined, warn?: Warn): HostNsRecord {
  return readJson(stateFs(), hostNsRel(hostNetns), isObject, 'ignored; the forwarding values found before the labs there turned them on are forgotten (they stay as they are when the last lab leaves)', warn) ?? {};
}

/** Writes the host namespace's record (removes it, and its folder when empty, when nothing is left in it). */
export function writeHostNsRecord(hostNetns: string | undefined, rec: HostNsRecord): void {
  const fs = stateFs();
  if (rec.ipForwardBefore === undefined && rec.ip6ForwardBefore === undefined) {
    fs.remove(hostNsRel(hostNetns));
    fs.removeDirIfEmpty('_hostns');
    return;
  }
  fs.write(hostNsRel(hostNetns), JSON.stringify(rec, null, 2) + '\n');
}

/**
 * Removes the lab's folder (record, journal, service and VM files); then the root when
 * nothing else is left in it (but exec's cache of file peeks, src/exec-run.ts).
 */
export function removeLabDir(lab: string): void {
  const fs = stateFs();
  fs.removeTree(lab);
  removeRootIfUnused(fs);
}

/** Removes the state root when no lab uses it any more: nothing in it but exec's cache. */
function removeRootIfUnused(fs: SafeFs): void {
  const left = fs.list('');
  if (left.length === 1 && left[0] === 'exec-cache.json') fs.remove('exec-cache.json');
  fs.removeDirIfEmpty('');
}

/**
 * Journal of the namespaces an apply is creating (<lab dir>/pending-netns.json):
 * names, or [] when absent or corrupt (warned). `labDir` is HostContext.stateDir.
 */
export function readJournal(labDir: string, warn?: Warn): string[] {
  const { fs, rel } = treeOf(`${labDir}/pending-netns.json`);
  const isNames = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');
  return readJson(fs, rel, isNames, 'ignored; a node namespace left unmarked by an interrupted apply shows as a conflict (delete it with ip netns del, then apply again)', warn) ?? [];
}

/** Writes the journal atomically (synced before the namespaces are created); returns its path. */
export function writeJournal(labDir: string, names: string[]): string {
  const { fs, rel } = treeOf(`${labDir}/pending-netns.json`);
  fs.write(rel, JSON.stringify(names));
  return fs.path(rel);
}

export function removeJournal(labDir: string): void {
  const { fs, rel } = treeOf(`${labDir}/pending-netns.json`);
  fs.remove(rel);
}

/** A lock file's content (see LockHolder). */
export type LockInfo = LockHolder;

const isLock = (v: unknown): v is LockInfo => isObject(v) && typeof v.pid === 'number' && typeof v.host === 'string';

/**
 * Takes the lab's lock: <root>/<lab>.lock, created complete at once (link of a
 * written temporary file, so a reader never sees it half-written). A lock held by a
 * live process fails at once, naming the holder; one whose process is gone is stale
 * and is taken over (moved aside and removed only if it is still the stale one).
 * Returns the release function. Throws LockError when held by a live process (or the
 * lock cannot be taken), ProviumError when the lock file cannot be read.
 */
export function acquireLock(lab: string, command: string, warn: Warn = () => {}): () => void {
  const fs = stateFs();
  const rel = `${lab}.lock`;
  const info: LockInfo = { pid: process.pid, command, host: hostname(), since: new Date().toISOString() };
  for (let attempt = 0; attempt < 5; attempt++) {
    if (fs.createExclusive(rel, JSON.stringify(info) + '\n')) {
      return () => {
        fs.remove(rel);
        removeRootIfUnused(fs);
      };
    }
    const st = fs.lstat(rel);
    if (!st) continue; // released meanwhile
    let held: LockInfo | undefined;
    try {
      held = readJson(fs, rel, isLock, 'taken as stale', warn);
    } catch (e) {
      throw new ProviumError(`cannot read the lock of lab ${lab}: ${(e as Error).message}`, (e as ProviumError).hint);
    }
    if (held && held.host === hostname() && processAlive(held.pid)) {
      throw new LockError(
        lab,
        `lab ${lab} is locked by pid ${held.pid} (${held.command}, since ${held.since})`,
        `wait for it to finish; the lock is ${fs.path(rel)}`,
        held,
      );
    }
    // Move it aside, then remove it only if it is the one found stale (another provium may
    // have taken it over and made a fresh one in between): put a fresh one back.
    const aside = `${lab}.lock.stale.${process.pid}`;
    try {
      fs.rename(rel, aside);
    } catch {
      continue; // gone meanwhile
    }
    const moved = fs.lstat(aside);
    if (moved && moved.ino !== st.ino) {
      // A fresh lock of another provium: put it back unless yet another one took its place.
      if (!fs.createExclusive(rel, fs.read(aside) ?? '')) warn(`lock ${fs.path(rel)} changed hands while provium took over a stale one`);
      fs.remove(aside);
      continue;
    }
    fs.remove(aside);
    warn(`removing stale lock ${fs.path(rel)}${held ? ` of pid ${held.pid} (${held.command}), which is no longer running` : ''}`);
  }
  throw new LockError(lab, `could not take the lock for lab ${lab}`, `the lock is ${fs.path(rel)}`);
}
