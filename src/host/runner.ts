/**
 * The only module that runs host commands. Commands are argument arrays (never a
 * shell string); batch input goes on stdin. Every invocation is counted, and traced
 * as one JSON line to $PROVIUM_TRACE when set (used by tests and the benchmark).
 *
 * Captured commands use node:child_process directly: a plan or apply runs one
 * command per node namespace, and execa costs about twice the CPU per spawn
 * (measured: 55 commands, 8 at a time: 143-192 ms with execa, 90-96 ms with
 * child_process) plus ~90 ms to load. execa runs the interactive `provium exec`.
 */
import { spawn } from 'node:child_process';
import { appendFileSync } from 'node:fs';

export interface RunResult {
  argv: string[];
  exitCode: number;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface RunOptions {
  stdin?: string;
  /** Do not throw on a non-zero exit (the caller inspects exitCode). */
  allowFail?: boolean;
  /** Milliseconds before the command is killed. Default 60 s. */
  timeoutMs?: number;
  /** Kills the command (SIGKILL) when aborted; it then ends with exit code 130. */
  signal?: AbortSignal;
}

/**
 * Thrown when a command did not end as required (a host command exiting non-zero, or a
 * `Lab.exec`/`until` command not exiting with the expected status in time): carries
 * the command (`argv`, as run on the host), its exit code (124: timed out, 130:
 * stopped), stdout and stderr, and the batch input it was given (`stdin`).
 */
export class CommandError extends Error {
  /**
   * When the command was part of an apply: whether the host was rolled back to the
   * state before it (true), the partial state kept (undefined), or the rollback failed
   * too (false). Not set for commands outside an apply.
   */
  rolledBack?: boolean;
  /** What to do next, when known (e.g. how the failed apply was undone). */
  hint?: string;

  constructor(public readonly result: RunResult, public readonly stdin?: string, message?: string) {
    super(message ?? `command failed (exit ${result.exitCode}): ${result.argv.join(' ')}\n${result.stderr.trim()}`);
    this.name = 'CommandError';
  }

  /** The command as run on the host (argument array). */
  get argv(): string[] {
    return this.result.argv;
  }

  /** Its exit status (124 timed out, 127 could not be started, 130 stopped). */
  get exitCode(): number {
    return this.result.exitCode;
  }

  /** Its standard error output. */
  get stderr(): string {
    return this.result.stderr;
  }

  /** Its standard output. */
  get stdout(): string {
    return this.result.stdout;
  }
}

/** What observe/apply need from a runner; tests substitute a replayer of recorded output. */
export interface Runner {
  count: number;
  run(argv: string[], opts?: RunOptions): Promise<RunResult>;
}

/** Appends one invocation to $PROVIUM_TRACE and $PROVIUM_RECORD when set (`host` names a remote host). */
export function traceRun(r: RunResult, stdin: string | undefined, host?: string): void {
  const trace = process.env.PROVIUM_TRACE;
  if (trace) appendFileSync(trace, JSON.stringify({ ...(host ? { host } : {}), argv: r.argv, exitCode: r.exitCode, ms: Math.round(r.ms * 10) / 10, stdin }) + '\n');
  // Full recordings (with output) make the planner's test fixtures: see test/fixtures/README.md.
  const record = process.env.PROVIUM_RECORD;
  if (record) appendFileSync(record, JSON.stringify({ ...(host ? { host } : {}), argv: r.argv, stdin, exitCode: r.exitCode, stdout: r.stdout }) + '\n');
}

/** Runs host commands. One instance per CLI call; `count` is the number of invocations made. */
export class HostRunner implements Runner {
  count = 0;
  readonly log: RunResult[] = [];

  async run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
    const t0 = performance.now();
    this.count++;
    const p = await capture(argv, opts.stdin ?? '', opts.timeoutMs ?? 60_000, opts.signal);
    const r: RunResult = { argv, ...p, ms: performance.now() - t0 };
    this.log.push(r);
    traceRun(r, opts.stdin);
    if (r.exitCode !== 0 && !opts.allowFail) throw new CommandError(r, opts.stdin);
    return r;
  }

  /** Runs a command with the terminal attached; returns its exit code. */
  async interactive(argv: string[]): Promise<number> {
    this.count++;
    return runInteractive(argv);
  }
}

/**
 * Spawns argv (no shell), writes `input` to its stdin, collects stdout and stderr.
 * Exit code 124 after a timeout (SIGKILL), 127 when the program cannot be started.
 */
export function capture(argv: string[], input: string, timeoutMs: number, signal?: AbortSignal): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    let aborted = false;
    let spawnError: Error | undefined;
    const child = spawn(argv[0], argv.slice(1), { env: { ...process.env, LC_ALL: 'C' }, stdio: ['pipe', 'pipe', 'pipe'] });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    const onAbort = () => {
      aborted = true;
      child.kill('SIGKILL');
    };
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.stdin.on('error', () => {}); // a command that exits without reading its input
    child.on('error', (e) => (spawnError = e));
    child.stdin.end(input);
    child.on('close', (code) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      let stderr = Buffer.concat(err).toString('utf8');
      if (timedOut) stderr += `\n(timed out after ${timeoutMs} ms)`;
      if (aborted) stderr += '\n(stopped)';
      if (spawnError) stderr += `\n${spawnError.message}`;
      resolve({ exitCode: timedOut ? 124 : aborted ? 130 : spawnError ? 127 : code ?? 1, stdout: Buffer.concat(out).toString('utf8'), stderr });
    });
  });
}

/** Runs a command with the terminal attached (provium exec); returns its exit code. */
export async function runInteractive(argv: string[]): Promise<number> {
  const { execa } = await import('execa');
  const p = await execa(argv[0], argv.slice(1), { stdio: 'inherit', reject: false });
  return p.exitCode ?? 1;
}

/** Runs fn over items with at most `limit` running at once; results in input order. */
export async function mapLimit<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
