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
  /** Netlink helper requests: how many, their summed own time (ms), and the wall time from the first one's start to the last one's end. */
  helper: { n: number; sumMs: number; wallMs: number; writes: number };
}

/** A batch line that only reads (`addr show`, `route show table all`, `class show dev X`, ...). */
const READ_LINE = /^\s*(addr|route|link|class|qdisc)\s+show\b/;

/**
 * Whether a traced command only reads: a batch whose every line is a `show` (the
 * netlink helper's requests are traced as `provium-nl -n NS -batch -` with the batch
 * lines they stand for), else `-j` output without a batch, or `sysctl -n`.
 */
export function isReader(e: { argv: string[]; stdin?: string }): boolean {
  if (e.argv[0] === 'provium-nl' && e.argv.includes('show')) return true; // the nftables generation
  if (e.argv.includes('-batch') && e.stdin !== undefined) return e.stdin.split('\n').filter((l) => l.trim()).every((l) => READ_LINE.test(l));
  if (e.argv.includes('-j')) return true;
  if (e.argv.includes('sysctl') && e.argv.includes('-n')) return true;
  return false;
}

/** A netlink helper request (its `ms` is the helper's own time for it). */
export function isHelper(e: { argv: string[] }): boolean {
  return e.argv[0] === 'provium-nl';
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
    helper: helperStats(ev),
  };
}

function helperStats(ev: { e: TraceEntry; start: number; end: number; reader: boolean }[]): Breakdown['helper'] {
  const h = ev.filter((x) => isHelper(x.e));
  if (h.length === 0) return { n: 0, sumMs: 0, wallMs: 0, writes: 0 };
  return {
    n: h.length,
    sumMs: h.reduce((a, x) => a + x.e.ms, 0),
    wallMs: Math.max(...h.map((x) => x.end)) - Math.min(...h.map((x) => x.start)),
    writes: h.filter((x) => !x.reader).length,
  };
}

/** "201 requests (200 writing), 85 ms of the helper's own time". */
export function fmtHelper(b: Breakdown): string {
  const h = b.helper;
  if (h.n === 0) return 'not used';
  return `${h.n} requests (${h.writes} writing), ${Math.round(h.sumMs)} ms of the helper's own time`;
}

function groups(changes: { e: TraceEntry; start: number; end: number }[]): Breakdown['changeGroups'] {
  const out: (Breakdown['changeGroups'][number] & { start: number; end: number })[] = [];
  const nsBatch = (e: TraceEntry) => e.argv.includes('-batch') && e.argv.some((a) => a.startsWith('pv-')) && (e.argv[0] === 'ip' || isHelper(e));
  for (const c of changes) {
    const what = !nsBatch(c.e) ? `\`${describe(c.e)}\`` : isHelper(c.e) ? 'per-node netlink helper requests' : 'per-node `ip -n NS -batch` (8 at a time)';
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
