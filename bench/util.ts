/**
 * Small helpers for the benchmark: running commands (argument arrays, never a shell),
 * timing, medians, a concurrency limiter, waiting for the kernel to settle, and a
 * FIFO tap that timestamps PROVIUM_TRACE lines as provium writes them.
 */
import { execa } from 'execa';
import { constants, openSync, readFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { randomBytes } from 'node:crypto';

export interface Ran {
  argv: string[];
  exitCode: number;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface RunOpts {
  stdin?: string;
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
  /** Throw on a non-zero exit (default true). */
  check?: boolean;
  cwd?: string;
}

/** Runs argv, measuring wall time from spawn to exit. */
export async function run(argv: string[], o: RunOpts = {}): Promise<Ran> {
  const t0 = performance.now();
  const p = await execa(argv[0], argv.slice(1), {
    input: o.stdin ?? '',
    reject: false,
    timeout: o.timeoutMs ?? 120_000,
    env: { LC_ALL: 'C', ...(o.env ?? {}) },
    stripFinalNewline: false,
    cwd: o.cwd,
  });
  const r: Ran = {
    argv,
    exitCode: p.exitCode ?? (p.timedOut ? 124 : 1),
    stdout: String(p.stdout ?? ''),
    stderr: String(p.stderr ?? '') + (p.timedOut ? '\n(timed out)' : ''),
    ms: performance.now() - t0,
  };
  if ((o.check ?? true) && r.exitCode !== 0) {
    throw new Error(`command failed (exit ${r.exitCode}): ${argv.join(' ')}\n${r.stderr.trim().slice(0, 2000)}${o.stdin ? `\n--- stdin (first lines) ---\n${o.stdin.split('\n').slice(0, 8).join('\n')}` : ''}`);
  }
  return r;
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Seconds with 3 decimals from milliseconds. */
export function secs(ms: number): string {
  return Number.isFinite(ms) ? (ms / 1000).toFixed(3) : 'n/a';
}

export function randTag(): string {
  return randomBytes(3).toString('hex');
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Runs fn over items with at most `limit` running at once; results in input order. */
export async function mapLimit<T, R>(items: T[], limit: number, fn: (t: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

function cpuTimes(): { idle: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = v[3] + (v[4] ?? 0);
  return { idle, total: v.reduce((a, b) => a + b, 0) };
}

/**
 * Waits until the machine is mostly idle (>= `idleFrac` idle over a 250 ms window),
 * at most maxMs. Namespace and veth teardown runs asynchronously in kernel workers
 * after `ip netns del`; without this the next timed run would compete with it.
 * Returns the milliseconds waited.
 */
export async function waitQuiet(maxMs = 12_000, idleFrac = 0.85): Promise<number> {
  const t0 = performance.now();
  await sleep(100);
  while (performance.now() - t0 < maxMs) {
    const a = cpuTimes();
    await sleep(250);
    const b = cpuTimes();
    const total = b.total - a.total;
    if (total > 0 && (b.idle - a.idle) / total >= idleFrac) break;
  }
  return performance.now() - t0;
}

/** Named network namespaces (/run/netns). */
export async function listNetns(): Promise<string[]> {
  const r = await run(['ip', 'netns', 'list'], { check: false });
  return r.stdout.split('\n').map((l) => l.trim().split(/\s+/)[0]).filter((x) => x);
}

/** Deletes the given namespaces that exist, in one `ip -batch` (ignoring ones already gone). */
export async function deleteNetns(names: string[]): Promise<void> {
  const have = new Set(await listNetns());
  const del = names.filter((n) => have.has(n));
  if (del.length === 0) return;
  await run(['ip', '-force', '-batch', '-'], { stdin: del.map((n) => `netns del ${n}`).join('\n') + '\n', check: false });
}

/** One PROVIUM_TRACE line, with the time (ms, bench clock) at which the bench received it. */
export interface TraceEntry {
  argv: string[];
  exitCode: number;
  ms: number;
  stdin?: string;
  /** performance.now() when the line arrived (≈ the command's end). */
  at: number;
}

/**
 * A FIFO used as PROVIUM_TRACE. provium appends one JSON line per host command when
 * the command ends; reading the FIFO as lines arrive gives each command's end time
 * (start = end - ms) on the bench's clock, so a run's wall time can be split into
 * reads, changing batches, verification and what is left (Node start-up, planning).
 * Opened read-write so it never sees end-of-file between provium's appends.
 */
export class TraceTap {
  private buf = '';
  entries: TraceEntry[] = [];
  private stream: Socket;
  constructor(public readonly path: string) {
    // Non-blocking read-write open of the FIFO, read through libuv's pipe handle (no thread pool).
    const fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
    this.stream = new Socket({ fd, readable: true, writable: false });
    this.stream.setEncoding('utf8');
    this.stream.on('data', (chunk: string | Buffer) => {
      const now = performance.now();
      this.buf += String(chunk);
      let i: number;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 1);
        if (!line.trim()) continue;
        try {
          const e = JSON.parse(line) as Omit<TraceEntry, 'at'>;
          this.entries.push({ ...e, at: now });
        } catch {
          /* partial or foreign line: ignore */
        }
      }
    });
    this.stream.on('error', () => {});
  }
  /** Takes the entries gathered so far (after a short drain) and starts afresh. */
  async take(): Promise<TraceEntry[]> {
    await sleep(30);
    const e = this.entries;
    this.entries = [];
    return e;
  }
  close(): void {
    this.stream.destroy();
  }
}
