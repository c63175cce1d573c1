/**
 * The lab's state directory (mode 0700): lock file and the few facts the host cannot
 * tell back (the ip_forward and IPv6 forwarding values before the lab changed them). Root:
 * $PROVIUM_STATE_DIR, default /var/lib/provium. Layout: <root>/<lab>/state.json,
 * <root>/<lab>.lock.
 */
import { mkdirSync, readFileSync, writeFileSync, rmSync, readdirSync, rmdirSync, openSync, closeSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { hostname } from 'node:os';
import { ProviumError } from '../model/diagnostics.js';
import { processAlive } from '../host/proc.js';

export function stateRoot(): string {
  return process.env.PROVIUM_STATE_DIR ?? '/var/lib/provium';
}

export interface LabRecord {
  /** Absolute path of the file last applied (provium ls). */
  file?: string;
  /** The lab's host namespace (--netns), null for the root namespace. */
  hostNetns?: string | null;
  /** When the last apply finished (ISO 8601). */
  appliedAt?: string;
  /** What the file declares: nodes, vms, bridges, partitions, impairments (provium ls). */
  objects?: Record<string, number>;
  /** net.ipv4.ip_forward of the host namespace before this lab set it to 1. */
  ipForwardBefore?: boolean;
  /** net.ipv6.conf.all.forwarding of the host namespace before this lab set it to 1. */
  ip6ForwardBefore?: boolean;
}

export function readRecord(lab: string): LabRecord {
  try {
    return JSON.parse(readFileSync(join(stateRoot(), lab, 'state.json'), 'utf8')) as LabRecord;
  } catch {
    return {};
  }
}

export function writeRecord(lab: string, rec: LabRecord): void {
  const dir = join(stateRoot(), lab);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(join(dir, 'state.json'), JSON.stringify(rec, null, 2) + '\n', { mode: 0o600 });
}

/** Removes the lab's directory, and the root when nothing else is left in it (but exec's cache, src/exec-run.ts). */
export function removeLabDir(lab: string): void {
  rmSync(join(stateRoot(), lab), { recursive: true, force: true });
  try {
    const left = readdirSync(stateRoot());
    if (left.length === 1 && left[0] === 'exec-cache.json') rmSync(join(stateRoot(), 'exec-cache.json'), { force: true });
    if (readdirSync(stateRoot()).length === 0) rmdirSync(stateRoot());
  } catch {
    /* absent or not empty */
  }
}

export interface LockInfo {
  pid: number;
  command: string;
  host: string;
  since: string;
}

const alive = processAlive;

/**
 * Takes the lab's lock (O_EXCL file). A lock held by a live process fails at once,
 * naming the holder; a lock whose process is gone is stale and is taken over.
 * Returns the release function. Throws ProviumError when held.
 */
export function acquireLock(lab: string, command: string, warn: (msg: string) => void = () => {}): () => void {
  mkdirSync(stateRoot(), { recursive: true, mode: 0o700 });
  const path = join(stateRoot(), `${lab}.lock`);
  const info: LockInfo = { pid: process.pid, command, host: hostname(), since: new Date().toISOString() };
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, JSON.stringify(info) + '\n');
      closeSync(fd);
      return () => {
        rmSync(path, { force: true });
        try {
          if (readdirSync(stateRoot()).length === 0) rmdirSync(stateRoot());
        } catch {
          /* not empty */
        }
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let held: LockInfo | undefined;
      try {
        held = JSON.parse(readFileSync(path, 'utf8')) as LockInfo;
      } catch {
        /* half-written: treat as stale */
      }
      if (held && held.host === hostname() && alive(held.pid)) {
        throw new ProviumError(
          `lab ${lab} is locked by pid ${held.pid} (${held.command}, since ${held.since})`,
          `wait for it to finish; the lock is ${path}`,
        );
      }
      warn(`removing stale lock ${path}${held ? ` of pid ${held.pid} (${held.command}), which is no longer running` : ''}`);
      rmSync(path, { force: true });
    }
  }
  throw new ProviumError(`could not take the lock for lab ${lab}`);
}
