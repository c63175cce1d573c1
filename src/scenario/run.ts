/**
 * Running a compiled scenario: its steps in order on one LabSession (the lab's lock
 * held for the whole run, the host observed once), each step reported as an event
 * with time offsets from the start of the first step, in seconds. An apply step also
 * reports `committed`, the instant its last changing command finished (when the
 * network event really happened).
 *
 * On a failed step, or when `signal` is aborted (SIGINT, SIGTERM), the remaining steps
 * are skipped and the lab is restored to the scenario's base topology (re-observed in
 * full first), or destroyed with `destroyAfter`. An apply step in progress is allowed
 * to finish (it is short and verified); an exec, until or wait step is stopped at once.
 * Writes nothing itself: events go to `onEvent`.
 */
import { ProviumError, formatDiagnostic } from '../model/diagnostics.js';
import { LabSession, ConflictError, type ExecResult, type SessionOptions } from '../engine/session.js';
import { ApplyError } from '../apply/index.js';
import { fmtDuration, type ExecStep, type Scenario, type Step } from './compile.js';

/** Outcome of a step or of the run. */
export type Outcome = 'ok' | 'failed' | 'stopped';

/** One step's report. Times in seconds from the run's start (3 decimals). */
export interface StepEvent {
  event: 'step';
  step: string;
  name?: string;
  kind: Step['kind'];
  what: string;
  start: number;
  /** apply: when its last changing command finished (absent when nothing had to change). */
  committed?: number;
  end: number;
  outcome: Outcome;
  /** Why it failed or stopped. */
  reason?: string;
  /** apply: plan changes and changing invocations. */
  changes?: number;
  host_commands?: number;
  /** exec/until: the last attempt's exit status, the attempts made. */
  exit?: number;
  tries?: number;
  /** exec/until failure: the end of the last attempt's output. */
  output?: string;
}

/** The restore (or destroy) after a failure or a signal, or the destroy of --destroy-after. */
export interface CleanupEvent {
  event: 'restore' | 'destroy';
  start: number;
  committed?: number;
  end: number;
  outcome: 'ok' | 'failed';
  changes?: number;
  reason?: string;
}

/** The first event: what runs. */
export interface StartEvent {
  event: 'start';
  format_version: '1';
  /** Wall-clock time of offset 0 (milliseconds since the Unix epoch), to line events up with other logs. */
  epoch_ms: number;
  lab: string;
  files: string[];
  steps: number;
}

/** The last event. */
export interface RunEndEvent {
  event: 'run';
  outcome: 'passed' | 'failed' | 'stopped';
  steps: number;
  passed: number;
  failed_step?: string;
  reason?: string;
  end: number;
}

export type RunEvent = StartEvent | StepEvent | CleanupEvent | RunEndEvent;

export interface RunOptions extends Pick<SessionOptions, 'hostNetns' | 'runner' | 'onWarning' | 'onProcesses'> {
  /** Destroy the lab at the end (after success or failure) instead of leaving it / restoring the base. */
  destroyAfter?: boolean;
  /** Stops the run (SIGINT/SIGTERM); its reason (e.g. "SIGTERM") is reported. */
  signal?: AbortSignal;
  onEvent: (e: RunEvent) => void;
  /** Written into the lab's lock. */
  command?: string;
}

/** Seconds with millisecond precision. */
const secs = (ms: number) => Math.round(ms) / 1000;

/** Sleeps ms, or less when signal is aborted. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** The last lines of a command's output, at most 1000 characters. */
function tail(s: string): string {
  const t = s.trim();
  return t.length > 1000 ? `...${t.slice(-1000)}` : t;
}

/**
 * Runs the scenario. Returns true when every step passed (and the final destroy, with
 * destroyAfter, succeeded). Throws only what prevents starting (the lab is locked by
 * another process: ProviumError).
 */
export async function runScenario(sc: Scenario, opts: RunOptions): Promise<boolean> {
  const emit = opts.onEvent;
  const session = await LabSession.open(sc.base, {
    hostNetns: opts.hostNetns, runner: opts.runner, command: opts.command ?? 'provium run', onWarning: opts.onWarning, onProcesses: opts.onProcesses,
  });
  const t0 = performance.now();
  const now = () => performance.now() - t0;
  const reason = () => String(opts.signal?.reason ?? 'signal');
  let passed = 0;
  let failed: { step: string; reason: string } | undefined;
  let stopped = false;
  emit({ event: 'start', format_version: '1', epoch_ms: Date.now() - (performance.now() - t0), lab: sc.base.lab, files: sc.files.map((f) => f.name), steps: sc.steps.length });
  try {
    for (const step of sc.steps) {
      if (opts.signal?.aborted) {
        stopped = true;
        break;
      }
      const ev = await runStep(step, session, now, opts.signal);
      emit(ev);
      if (ev.outcome === 'ok') passed++;
      else {
        if (ev.outcome === 'stopped') stopped = true;
        else failed = { step: ev.step, reason: ev.reason ?? 'failed' };
        break;
      }
    }
    if (!failed && !stopped && opts.signal?.aborted) stopped = true;
    const ok = !failed && !stopped;
    let cleanupOk = true;
    if (!ok || opts.destroyAfter) cleanupOk = await cleanup(session, sc, opts.destroyAfter === true, now, emit);
    const outcome = failed ? 'failed' : stopped ? 'stopped' : cleanupOk ? 'passed' : 'failed';
    emit({
      event: 'run', outcome, steps: sc.steps.length, passed,
      ...(failed ? { failed_step: failed.step, reason: failed.reason } : stopped ? { reason: `stopped by ${reason()}` } : !cleanupOk ? { reason: 'destroying the lab failed' } : {}),
      end: secs(now()),
    });
    return outcome === 'passed';
  } finally {
    session.close();
  }
}

/** Restores the base topology (a full observation first), or destroys the lab. */
async function cleanup(session: LabSession, sc: Scenario, destroy: boolean, now: () => number, emit: (e: RunEvent) => void): Promise<boolean> {
  const start = now();
  try {
    let r;
    if (destroy) {
      await session.refresh(sc.base);
      r = await session.destroy();
    } else {
      await session.refresh(sc.base);
      r = await session.apply(sc.base);
    }
    emit({ event: destroy ? 'destroy' : 'restore', start: secs(start), ...(r.committedMs !== undefined ? { committed: secs(start + r.committedMs) } : {}), end: secs(now()), outcome: 'ok', changes: r.plan.changes.length });
    return true;
  } catch (e) {
    emit({ event: destroy ? 'destroy' : 'restore', start: secs(start), end: secs(now()), outcome: 'failed', reason: errorText(e) });
    return false;
  }
}

/** A failure's message (plan errors listed). */
function errorText(e: unknown): string {
  if (e instanceof ConflictError) return e.plan.errors.map(formatDiagnostic).join('; ');
  if (e instanceof ApplyError) return `${e.message}${e.hint ? ` (${e.hint})` : ''}`;
  if (e instanceof ProviumError) return e.message;
  return e instanceof Error ? e.message : String(e);
}

async function runStep(step: Step, session: LabSession, now: () => number, signal?: AbortSignal): Promise<StepEvent> {
  const start = now();
  const base = { event: 'step' as const, step: step.id, ...(step.name !== undefined ? { name: step.name } : {}), kind: step.kind, what: step.what, start: secs(start) };
  const end = (rest: Partial<StepEvent> & { outcome: Outcome }): StepEvent => ({ ...base, ...rest, end: secs(now()) });
  try {
    switch (step.kind) {
      case 'apply': {
        const r = await session.apply(step.topology);
        return end({ ...(r.committedMs !== undefined ? { committed: secs(start + r.committedMs) } : {}), outcome: 'ok', changes: r.plan.changes.length, host_commands: r.hostCommands });
      }
      case 'wait':
        await sleep(step.ms, signal);
        return signal?.aborted ? end({ outcome: 'stopped', reason: `stopped by ${String(signal.reason)}` }) : end({ outcome: 'ok' });
      case 'exec':
      case 'until':
        return await execStep(step, session, start, now, end, signal);
    }
  } catch (e) {
    return end({ outcome: 'failed', reason: errorText(e) });
  }
}

async function execStep(step: ExecStep, session: LabSession, start: number, now: () => number, end: (r: Partial<StepEvent> & { outcome: Outcome }) => StepEvent, signal?: AbortSignal): Promise<StepEvent> {
  const r = await runCommand(session, { ...step, retry: step.kind === 'until' }, signal, start, now);
  return end({ outcome: r.outcome, ...(r.reason !== undefined ? { reason: r.reason } : {}), exit: r.result.exitCode, tries: r.tries, ...(r.output !== undefined ? { output: r.output } : {}) });
}

/** A command to run in a node until it exits with `expect` (an exec or until step, `Lab.exec`/`Lab.until`). */
export interface CommandSpec {
  node: string;
  argv: string[];
  /** The exit status that means success. */
  expect: number;
  /** exec: the command's own timeout; until: the whole time to keep trying (ms). */
  timeoutMs: number;
  /** until: pause between tries (ms). */
  intervalMs: number;
  /** Retry until the time is up (until), or run once (exec). */
  retry: boolean;
}

/** How a CommandSpec ended: ok, failed (why, the end of the last output) or stopped by the signal; the last attempt's result and the attempts made. */
export interface CommandOutcome {
  outcome: Outcome;
  reason?: string;
  result: ExecResult;
  tries: number;
  output?: string;
}

/**
 * Runs a command in a node (through `session.exec`) as an exec step (once) or an until
 * step (every `intervalMs` until it exits with `expect` or `timeoutMs` has passed from
 * `start`). The one implementation behind scenario steps and `Lab.exec`/`Lab.until`.
 * Throws only what session.exec throws (the node's namespace does not exist).
 */
export async function runCommand(
  session: Pick<LabSession, 'exec'>,
  spec: CommandSpec,
  signal?: AbortSignal,
  start = performance.now(),
  now: () => number = () => performance.now(),
): Promise<CommandOutcome> {
  let tries = 0;
  for (;;) {
    tries++;
    const left = spec.timeoutMs - (now() - start);
    const r = await session.exec(spec.node, spec.argv, { timeoutMs: Math.max(1, Math.ceil(spec.retry ? left : spec.timeoutMs)), signal });
    const stopped = (): CommandOutcome => ({ outcome: 'stopped', reason: `stopped by ${String(signal?.reason)}`, result: r, tries });
    if (signal?.aborted) return stopped();
    if (r.exitCode === spec.expect) return { outcome: 'ok', result: r, tries };
    const output = tail(`${r.stdout}${r.stderr}`);
    const why = r.exitCode === 124 ? `timed out after ${fmtDuration(spec.timeoutMs)}` : `exit ${r.exitCode} (expected ${spec.expect})`;
    if (!spec.retry) return { outcome: 'failed', reason: `${why}${output ? `: ${output.split('\n').pop()}` : ''}`, result: r, tries, output };
    if (now() - start + spec.intervalMs >= spec.timeoutMs) {
      const last = r.exitCode === 124 ? 'the last try was still running when the time was up' : `last try: exit ${r.exitCode} (expected ${spec.expect})${output ? `: ${output.split('\n').pop()}` : ''}`;
      return { outcome: 'failed', reason: `not within ${fmtDuration(spec.timeoutMs)} (${tries} tries); ${last}`, result: r, tries, output };
    }
    await sleep(spec.intervalMs, signal);
    if (signal?.aborted) return stopped();
  }
}

/** One line of text per event (the run's human output). */
export function renderEvent(e: RunEvent): string {
  const at = (s: number) => `+${s.toFixed(3)}s`;
  switch (e.event) {
    case 'start':
      return `provium run: lab ${e.lab}, ${e.steps} step(s)${e.files.length > 1 ? ` (files merged: ${e.files.join(', ')})` : ''}\n`;
    case 'step': {
      const label = `step ${e.step}${e.name ? ` (${e.name})` : ''}: ${e.what}`;
      let detail = '';
      if (e.kind === 'apply' && e.outcome === 'ok') {
        detail = e.committed !== undefined ? `: ${e.changes} change(s) committed at ${at(e.committed)} (${Math.round((e.committed - e.start) * 1000)} ms), verified at ${at(e.end)}` : ': no changes';
      } else if ((e.kind === 'until' || e.kind === 'exec') && e.outcome === 'ok') {
        detail = e.kind === 'until' ? `: ok after ${e.tries} tr${e.tries === 1 ? 'y' : 'ies'}, at ${at(e.end)}` : `: exit ${e.exit}, at ${at(e.end)}`;
      } else if (e.kind === 'wait' && e.outcome === 'ok') {
        detail = `, until ${at(e.end)}`;
      }
      const status = e.outcome === 'ok' ? 'ok' : `${e.outcome.toUpperCase()}: ${e.reason ?? ''}`;
      return `${at(e.start).padStart(10)}  ${label}${detail}  ${status}\n`;
    }
    case 'restore':
    case 'destroy': {
      const verb = e.event === 'restore' ? 'restoring the base lab' : 'destroying the lab';
      if (e.outcome === 'failed') return `${at(e.start).padStart(10)}  ${verb}: FAILED: ${e.reason}\n`;
      return `${at(e.start).padStart(10)}  ${verb}: ${e.changes ? `${e.changes} change(s)${e.committed !== undefined ? ` committed at ${at(e.committed)}` : ''}` : 'no changes'}, done at ${at(e.end)}  ok\n`;
    }
    case 'run':
      if (e.outcome === 'passed') return `run passed: ${e.steps} step(s) in ${e.end.toFixed(1)} s\n`;
      if (e.outcome === 'stopped') return `run stopped after ${e.passed} of ${e.steps} step(s): ${e.reason}\n`;
      return e.failed_step ? `run failed at step ${e.failed_step}: ${e.reason}\n` : `run failed: ${e.reason}\n`;
  }
}
