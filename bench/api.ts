/**
 * The library API on the applied 50-node lab: `lab.impair(...)` of one field (one
 * per-pair drop_pct), from the call to the moment its change is committed (its last
 * changing command finished) — the measure of scenario steps (bench/scenario.ts) — in a
 * process that brought the lab up with `Lab.up` (bench/api-child.ts, loading the bench's
 * copy of the build). Compared with the same change by a fresh `provium apply` process
 * (spawn to committed), measured in the same run by bench/scenario.ts.
 *
 * Target (issue 11): at most 150 ms.
 */
import { fileURLToPath } from 'node:url';
import { withOneDropChanged, type LabSpec } from './topology.js';
import { median, run } from './util.js';
import type { ScenarioResult } from './scenario.js';

export interface ApiResult {
  what: string;
  /** lab.impair(): call to committed, and to verified (ms), each. */
  impairCommitMs: number[];
  impairTotalMs: number[];
  /** lab.heal() after each: call to verified. */
  healTotalMs: number[];
  /** Changes and changing host invocations of each impair. */
  changes: number[];
  hostCommands: number[];
  /** Lab.up of the already applied lab (lock, full observation, empty plan). */
  upMs: number;
}

const CHILD = fileURLToPath(new URL('./api-child.js', import.meta.url));

/**
 * Measures `rounds` lab.impair() + lab.heal() pairs on the applied lab `spec` (file,
 * host namespace), through the library at `index` (a dist/src/index.js); env: the
 * bench's (state directory). Leaves the lab at the base.
 */
export async function apiBench(index: string, spec: LabSpec, file: string, host: string, env: Record<string, string>, rounds: number): Promise<ApiResult> {
  const ch = withOneDropChanged(spec);
  const m = /^bridges\.(\w+)\.impairments\[(\w+)>(\w+)\]\.drop_pct [\d.]+ -> ([\d.]+)$/.exec(ch.what);
  if (!m) throw new Error(`unexpected change description ${ch.what}`);
  const impair = { bridge: m[1], from: m[2], to: m[3], dropPct: Number(m[4]) };
  const r = await run([process.execPath, CHILD, index, file, host, JSON.stringify(impair), String(rounds)], { env, timeoutMs: 300_000 });
  const j = JSON.parse(r.stdout.trim().split('\n').pop()!) as { upMs: number; impair: { committedMs?: number; totalMs: number; changes: number; hostCommands: number }[]; heal: { totalMs: number }[] };
  for (const s of j.impair) if (s.changes !== 1 || s.committedMs === undefined) throw new Error(`lab.impair() was not one committed change: ${JSON.stringify(s)}`);
  return {
    what: ch.what,
    impairCommitMs: j.impair.map((s) => s.committedMs!),
    impairTotalMs: j.impair.map((s) => s.totalMs),
    healTotalMs: j.heal.map((s) => s.totalMs),
    changes: j.impair.map((s) => s.changes),
    hostCommands: j.impair.map((s) => s.hostCommands),
    upMs: j.upMs,
  };
}

/** The row: lab.impair() call to committed (target <= 150 ms), against a fresh provium apply of the same change in the same run. */
export function apiRows(n: number, a: ApiResult, s?: ScenarioResult) {
  const api = median(a.impairCommitMs);
  const fresh = s ? median(s.freshCommitMs) : NaN;
  return [
    {
      metric: `lab.impair() of one drop_pct, ${n} nodes: call to committed`, value: `${(api / 1000).toFixed(3)} s`,
      reference: s ? `${(fresh / 1000).toFixed(3)} s fresh apply` : '-', ratio: s ? `${(fresh / api).toFixed(2)}x` : '-', target: '<= 0.150 s', ok: api <= 150,
    },
  ];
}

/** Detail lines for BENCHMARKS.md. */
export function apiDetails(a: ApiResult, s?: ScenarioResult): string[] {
  const ms = (xs: number[]) => xs.map((x) => Math.round(x)).join(', ');
  return [
    `- library API (\`Lab.up\` of the applied lab ${Math.round(a.upMs)} ms, then ${a.impairCommitMs.length} x \`lab.impair()\` of ${a.what.replace(/ [\d.]+ -> /, ' to ')} and \`lab.heal()\`): impair call to committed ${ms(a.impairCommitMs)} ms (median ${Math.round(median(a.impairCommitMs))}), to verified ${ms(a.impairTotalMs)} ms, ${a.hostCommands.join(', ')} changing invocation(s) each; heal to verified ${ms(a.healTotalMs)} ms${s ? `; in the same run a \`provium run\` step committed in ${Math.round(median(s.stepCommitMs))} ms (median) and a fresh \`provium apply\` in ${Math.round(median(s.freshCommitMs))} ms` : ''}.`,
  ];
}
