/**
 * The Mininet comparison: `mn --switch lxbr --controller none --topo single,N --test none`
 * (builds N hosts on one Linux bridge, then tears everything down) run inside a
 * throwaway network namespace. Installs the Debian packages mininet and bridge-utils
 * when `mn` is missing. Never runs `mn -c`: its cleanup does a system-wide
 * `killall ping mnexec controller ...` and `pkill -f "sudo mnexec"`, which would hit
 * processes this bench did not start; instead the bench kills only the process group
 * it started and deletes the namespace. Mininet raises a few global sysctls
 * (fs.file-max, kernel.pty.max, net.core.netdev_max_backlog) through its fixLimits();
 * the bench restores them afterwards when they changed.
 */
import { execa } from 'execa';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { deleteNetns, run } from './util.js';

export interface MininetResult {
  ok: boolean;
  /** Build and teardown. */
  ms?: number;
  /** Until mn printed its first "*** Stopping" line (the network was up). */
  buildMs?: number;
  why?: string;
  version?: string;
}

const GLOBAL_SYSCTLS = ['fs/file-max', 'kernel/pty/max', 'net/core/netdev_max_backlog'];

function hasMn(): boolean {
  return existsSync('/usr/bin/mn') && existsSync('/usr/sbin/brctl');
}

/** Makes sure mn and brctl exist; returns a reason when they cannot be had. */
export async function ensureMininet(log: (s: string) => void): Promise<string | undefined> {
  if (hasMn()) return undefined;
  log('installing Debian packages mininet and bridge-utils (apt-get install -y --no-install-recommends) ...');
  const env = { DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => run(['apt-get', 'install', '-y', '--no-install-recommends', 'mininet', 'bridge-utils'], { env, check: false, timeoutMs: 300_000 });
  let r = await install();
  if (r.exitCode !== 0) {
    await run(['apt-get', 'update'], { env, check: false, timeoutMs: 300_000 });
    r = await install();
  }
  if (r.exitCode !== 0 || !hasMn()) return `apt-get install mininet bridge-utils failed (exit ${r.exitCode}): ${r.stderr.trim().split('\n').slice(-2).join(' ')}`;
  return undefined;
}

export async function mininetVersion(): Promise<string> {
  const r = await run(['mn', '--version'], { check: false });
  return (r.stdout + r.stderr).trim().split('\n').pop() ?? '?';
}

/** Runs one mn build-and-teardown of N hosts in namespace ns (created and removed here). */
export async function runMininet(n: number, ns: string): Promise<MininetResult> {
  const saved = new Map(GLOBAL_SYSCTLS.map((k) => [k, readFileSync(`/proc/sys/${k}`, 'utf8')]));
  await run(['ip', 'netns', 'add', ns]);
  try {
    const argv = ['ip', 'netns', 'exec', ns, 'mn', '--switch', 'lxbr', '--controller', 'none', '--topo', `single,${n}`, '--test', 'none'];
    const t0 = performance.now();
    // Own process group, so a hung run can be ended without touching anything else.
    // Unbuffered, so mn's progress lines (on stderr) arrive as they are printed.
    const p = execa(argv[0], argv.slice(1), { reject: false, detached: true, input: '', env: { LC_ALL: 'C', PYTHONUNBUFFERED: '1' } });
    let buildMs: number | undefined;
    let pending = '';
    p.stderr?.on('data', (chunk: Buffer) => {
      pending += chunk.toString();
      if (buildMs === undefined && /\*\*\* Stopping/.test(pending)) buildMs = performance.now() - t0;
      pending = pending.slice(-64);
    });
    const timer = setTimeout(() => {
      if (p.pid) {
        try {
          process.kill(-p.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }, 120_000);
    const r = await p;
    clearTimeout(timer);
    const ms = performance.now() - t0;
    const out = `${r.stdout ?? ''}\n${r.stderr ?? ''}`;
    if (r.exitCode !== 0) return { ok: false, why: `mn exited ${r.exitCode ?? r.signal}: ${out.trim().split('\n').slice(-3).join(' | ')}` };
    if (!/\*\*\* Done/.test(out)) return { ok: false, why: `mn did not report "*** Done": ${out.trim().split('\n').slice(-3).join(' | ')}` };
    return { ok: true, ms, buildMs };
  } finally {
    await deleteNetns([ns]);
    for (const [k, v] of saved) {
      try {
        if (readFileSync(`/proc/sys/${k}`, 'utf8') !== v) writeFileSync(`/proc/sys/${k}`, v);
      } catch {
        /* not restorable: leave */
      }
    }
  }
}
