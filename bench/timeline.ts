/**
 * Splits one provium run's wall time using its PROVIUM_TRACE entries (timestamped by
 * the bench as they arrive, see TraceTap): time before the first host command
 * (Node start-up, module loading, reading and checking the file), the first
 * observation, planning, the changing batches, verification (re-observations), and
 * the exit. Also lists the slowest commands.
 */
import type { TraceEntry } from './util.js';

export interface Breakdown {
  totalMs: number;
  beforeFirstCmdMs: number;
  observeMs: number;
  planMs: number;
  changeMs: number;
  verifyMs: number;
  /** Observations made (each reads `nft list ruleset` once). */
  observeRounds: number;
  afterLastCmdMs: number;
  readers: number;
  changers: number;
  /** Sum of the changing commands' own durations. */
  changeCmdMs: number;
  slowest: { what: string; ms: number }[];
  /** The changing commands grouped: per-namespace batches together, others one by one; in start order. */
  changeGroups: { what: string; n: number; wallMs: number; sumMs: number }[];
}

export function isReader(e: { argv: string[]; stdin?: string }): boolean {
  if (e.argv.includes('-j')) return true;
  if (e.stdin && /^(addr show|class show)/.test(e.stdin)) return true;
  if (e.argv.includes('sysctl') && e.argv.includes('-n')) return true;
  return false;
}

export function describe(e: { argv: string[]; stdin?: string }): string {
  const a = e.argv.join(' ');
  const lines = e.stdin ? e.stdin.split('\n').filter((l) => l).length : 0;
  return lines ? `${a} (${lines} lines: ${e.stdin!.split('\n')[0].slice(0, 40)}...)` : a;
}

/** t0: when the process was spawned; wall: its wall time (both on the bench clock). */
export function breakdown(entries: TraceEntry[], t0: number, wall: number): Breakdown {
  const ev = entries.map((e) => ({ e, start: e.at - e.ms - t0, end: e.at - t0, reader: isReader(e) })).sort((a, b) => a.start - b.start);
  const changes = ev.filter((x) => !x.reader);
  const firstStart = ev.length ? Math.min(...ev.map((x) => x.start)) : wall;
  const lastEnd = ev.length ? Math.max(...ev.map((x) => x.end)) : wall;
  let observeMs = 0;
  let planMs = 0;
  let changeMs = 0;
  let verifyMs = 0;
  if (changes.length === 0) {
    observeMs = lastEnd - firstStart;
  } else {
    const cStart = Math.min(...changes.map((x) => x.start));
    const cEnd = Math.max(...changes.map((x) => x.end));
    const firstReads = ev.filter((x) => x.reader && x.end <= cStart + 0.5);
    const obsEnd = firstReads.length ? Math.max(...firstReads.map((x) => x.end)) : firstStart;
    observeMs = obsEnd - firstStart;
    planMs = cStart - obsEnd;
    changeMs = cEnd - cStart;
    verifyMs = lastEnd - cEnd;
  }
  return {
    totalMs: wall,
    beforeFirstCmdMs: firstStart,
    observeMs,
    planMs,
    changeMs,
    verifyMs,
    observeRounds: entries.filter((e) => e.argv.includes('ruleset')).length,
    afterLastCmdMs: wall - lastEnd,
    readers: ev.filter((x) => x.reader).length,
    changers: changes.length,
    changeCmdMs: changes.reduce((a, x) => a + x.e.ms, 0),
    slowest: [...entries].sort((a, b) => b.ms - a.ms).slice(0, 4).map((e) => ({ what: describe(e), ms: e.ms })),
    changeGroups: groups(changes),
  };
}

function groups(changes: { e: TraceEntry; start: number; end: number }[]): Breakdown['changeGroups'] {
  const out: (Breakdown['changeGroups'][number] & { start: number; end: number })[] = [];
  const nsBatch = (e: TraceEntry) => e.argv[0] === 'ip' && e.argv[1] === '-n' && e.argv[2]?.startsWith('pv-') && e.argv.includes('-batch');
  for (const c of changes) {
    const what = nsBatch(c.e) ? 'per-node `ip -n NS -batch` (8 at a time)' : `\`${describe(c.e)}\``;
    const g = nsBatch(c.e) ? out.find((x) => x.what === what) : undefined;
    if (g) {
      g.n++;
      g.start = Math.min(g.start, c.start);
      g.end = Math.max(g.end, c.end);
      g.sumMs += c.e.ms;
    } else out.push({ what, n: 1, start: c.start, end: c.end, wallMs: 0, sumMs: c.e.ms });
  }
  return out.map((g) => ({ what: g.what, n: g.n, wallMs: g.end - g.start, sumMs: g.sumMs }));
}

export function fmtGroups(b: Breakdown): string {
  return b.changeGroups.map((g) => (g.n > 1 ? `${g.n} x ${g.what} ${Math.round(g.wallMs)} ms wall (${Math.round(g.sumMs)} ms summed)` : `${g.what} ${Math.round(g.wallMs)} ms`)).join('; ');
}

export function fmtBreakdown(b: Breakdown): string {
  const f = (ms: number) => `${Math.round(ms)}`;
  return (
    (b.changers === 0
      ? `total ${f(b.totalMs)} ms = before 1st command ${f(b.beforeFirstCmdMs)} + observe ${f(b.observeMs)} + plan and output ${f(b.afterLastCmdMs)}; `
      : `total ${f(b.totalMs)} ms = before 1st command ${f(b.beforeFirstCmdMs)} + observe ${f(b.observeMs)} + plan ${f(b.planMs)}` +
        ` + changes ${f(b.changeMs)} (${b.changers} cmds) + verify ${f(b.verifyMs)} + exit ${f(b.afterLastCmdMs)}; `) +
    `${b.observeRounds} observation(s), ${b.readers} reader cmds`
  );
}
