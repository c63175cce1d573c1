/**
 * Scenario steps against fresh processes, on a lab the bench has applied: the time from
 * the start of a `provium run` apply step to the moment its change is committed (its
 * last changing command finished), for a one-field overlay (one per-pair drop_pct),
 * against the same change applied by a fresh `provium apply` process (spawn to the end
 * of its changing command). The run holds the lab's lock and reuses its observation;
 * the fresh process starts Node, loads, observes the whole lab, then changes.
 *
 * Targets (issue 9): a step commits in at most 150 ms, at least 3x sooner than a fresh
 * apply.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { breakdown, type Breakdown } from './timeline.js';
import { toYaml, withOneDropChanged, type LabSpec } from './topology.js';
import { median, type Ran, type TraceEntry } from './util.js';

export interface ScenarioResult {
  /** The changed field, as withOneDropChanged describes it. */
  what: string;
  /** Overlay apply steps: ms from step start to commit, each. */
  stepCommitMs: number[];
  /** Same steps: ms from start to verified end. */
  stepTotalMs: number[];
  /** Fresh `provium apply` processes: ms from spawn to the end of the changing command, each. */
  freshCommitMs: number[];
  freshTotalMs: number[];
  /** The run's own wall time and its steps. */
  runMs: number;
  steps: number;
}

/** Runs provium (the bench's copy) with args; returns the run, when it was spawned, and its trace. */
export type ProviumFn = (args: string[]) => Promise<{ r: Ran; t0: number; trace: TraceEntry[] }>;

/** Spawn to the end of the last changing command, from a traced run's breakdown. */
function committedOf(b: Breakdown): number {
  return b.beforeFirstCmdMs + b.observeMs + b.planMs + b.changeMs;
}

/**
 * Measures on the applied lab `spec` (its file `file`, host namespace `host`): `rounds`
 * overlay steps (each followed by a step back to the base) in one `provium run`, then
 * `rounds` fresh applies of the changed file (each followed by one of the base).
 * Leaves the lab at the base.
 */
export async function scenarioBench(provium: ProviumFn, spec: LabSpec, file: string, host: string, dir: string, rounds: number): Promise<ScenarioResult> {
  const ch = withOneDropChanged(spec);
  const [bridge, rest] = ch.what.replace(/^bridges\./, '').split('.impairments');
  const m = /^\[(\w+)>(\w+)\]\.drop_pct [\d.]+ -> ([\d.]+)$/.exec(rest);
  if (!m) throw new Error(`unexpected change description ${ch.what}`);
  const overlay = `{ bridges: { ${bridge}: { impairments: [{ from: ${m[1]}, to: ${m[2]}, drop_pct: ${m[3]} }] } } }`;
  const scen = join(dir, `${spec.lab}-scenario.yaml`);
  writeFileSync(scen, `extends: ${file}\nsteps:\n  - apply: {}\n  - repeat:\n      times: ${rounds}\n      steps:\n        - name: one drop_pct\n          apply: ${overlay}\n        - apply: {}\n`);
  const run = await provium(['--netns', host, 'run', '--json', scen]);
  if (run.r.exitCode !== 0) throw new Error(`provium run failed (exit ${run.r.exitCode}):\n${run.r.stdout}\n${run.r.stderr}`);
  const events = run.r.stdout.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as { event: string; name?: string; start: number; committed?: number; end: number; changes?: number });
  const steps = events.filter((e) => e.event === 'step' && e.name === 'one drop_pct');
  for (const s of steps) if (s.changes !== 1 || s.committed === undefined) throw new Error(`an overlay step was not one committed change: ${JSON.stringify(s)}`);

  const chFile = join(dir, `${spec.lab}-one-drop.yaml`);
  writeFileSync(chFile, toYaml(ch.spec));
  const freshCommitMs: number[] = [];
  const freshTotalMs: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const a = await provium(['--netns', host, 'apply', '--auto-approve', '--json', chFile]);
    if (a.r.exitCode !== 0) throw new Error(`provium apply failed:\n${a.r.stderr}`);
    const b = breakdown(a.trace, a.t0, a.r.ms);
    freshCommitMs.push(committedOf(b));
    freshTotalMs.push(a.r.ms);
    await provium(['--netns', host, 'apply', '--auto-approve', '--json', file]);
  }
  return {
    what: ch.what,
    stepCommitMs: steps.map((s) => (s.committed! - s.start) * 1000),
    stepTotalMs: steps.map((s) => (s.end - s.start) * 1000),
    freshCommitMs,
    freshTotalMs,
    runMs: run.r.ms,
    steps: events.filter((e) => e.event === 'step').length,
  };
}

/** Rows for the results table: the step's commit time (target <= 150 ms) and the ratio to a fresh apply (>= 3x). */
export function scenarioRows(n: number, s: ScenarioResult) {
  const step = median(s.stepCommitMs);
  const fresh = median(s.freshCommitMs);
  const ratio = fresh / step;
  return [
    { metric: `scenario step, one drop_pct overlay, ${n} nodes: start to committed`, value: `${(step / 1000).toFixed(3)} s`, reference: `${(fresh / 1000).toFixed(3)} s fresh apply`, ratio: `${ratio.toFixed(2)}x`, target: '<= 0.150 s, >= 3x', ok: step <= 150 && ratio >= 3 },
  ];
}

/** Detail lines for BENCHMARKS.md. */
export function scenarioDetails(s: ScenarioResult): string[] {
  const ms = (xs: number[]) => xs.map((x) => Math.round(x)).join(', ');
  return [
    `- scenario steps (\`provium run\`, ${s.steps} steps, ${(s.runMs / 1000).toFixed(3)} s wall including Node start-up and the first observation): the overlay step (${s.what}) start to committed ${ms(s.stepCommitMs)} ms (median ${Math.round(median(s.stepCommitMs))}), to verified ${ms(s.stepTotalMs)} ms; a fresh \`provium apply\` of the same change, spawn to committed ${ms(s.freshCommitMs)} ms (median ${Math.round(median(s.freshCommitMs))}), whole process ${ms(s.freshTotalMs)} ms.`,
  ];
}
