/**
 * Whether a process is running: it exists and is not a zombie. A daemon provium ends
 * (QEMU, dnsmasq) is reparented to PID 1; where PID 1 reaps slowly (containers,
 * sandboxes) an ended process stays a zombie for a while, and `kill(pid, 0)` still
 * succeeds on it. /proc/<pid>/stat's third field is the state (Z = zombie).
 */
import { localFs, type SyncFs } from './fs.js';
import { closeSync, constants as C, openSync, readFileSync, readSync } from 'node:fs';

/** Whether process `pid` is running (not a zombie); `fs` is the host's files (a remote snapshot too). */
export function processAlive(pid: number, fs: SyncFs = localFs): boolean {
  const stat = fs.readText(`/proc/${pid}/stat`);
  if (stat === undefined) return false;
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
}

/** The first bytes of a pidfile, read without following a symbolic link (and never blocking on a FIFO). */
function readPidfile(pidfile: string): string {
  const fd = openSync(pidfile, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
  try {
    const buf = Buffer.alloc(32);
    return buf.subarray(0, readSync(fd, buf, 0, buf.length, 0)).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/**
 * The pid in `pidfile` when that process is running and its command line contains
 * `match` (guards against a reused pid); undefined otherwise (also when the pidfile is
 * a symbolic link).
 */
export function livePid(pidfile: string, match: string, fs: SyncFs = localFs): number | undefined {
  try {
    // This machine's pidfile is opened without following a symlink; a remote snapshot never follows one.
    const pid = Number((fs === localFs ? readPidfile(pidfile) : fs.readText(pidfile) ?? '').trim());
    if (!Number.isInteger(pid) || pid <= 0 || !processAlive(pid, fs)) return undefined;
    return (fs.readText(`/proc/${pid}/cmdline`) ?? '').includes(match) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Waits up to ms for every pid to end; true when they all did. */
export async function waitGone(pids: number[], ms: number): Promise<boolean> {
  const t0 = Date.now();
  while (pids.some((p) => processAlive(p))) {
    if (Date.now() - t0 > ms) return false;
    await new Promise((r) => setTimeout(r, 25));
  }
  return true;
}

/** SIGTERM, then SIGKILL after graceMs for what is left; true when everything ended (within another graceMs). */
export async function terminate(pids: number[], graceMs = 2000): Promise<boolean> {
  const signal = (sig: NodeJS.Signals) => pids.filter((p) => processAlive(p)).forEach((p) => { try { process.kill(p, sig); } catch { /* gone */ } });
  signal('SIGTERM');
  if (await waitGone(pids, graceMs)) return true;
  signal('SIGKILL');
  return waitGone(pids, graceMs);
}
