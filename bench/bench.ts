/**
 * `npm run bench`: provium against a hand-written batch baseline, Mininet, its own
 * start-up, and itself (one-field change, destroy, the iproute2 path), on generated labs
 * of 50 and 200 netns nodes, plus the memory of planning a 1,000-node lab. provium runs
 * with its netlink helper (PROVIUM_NETLINK=on: the bench fails when it is not built);
 * the iproute2 path (PROVIUM_NETLINK=off) is timed once per lab and cross-checked: a
 * lab built on either path is planned as unchanged on the other. Everything runs in
 * throwaway namespaces created here and removed at the end (also on error or Ctrl-C);
 * the root namespace's network is not touched. Prints a table and rewrites the
 * generated part of BENCHMARKS.md.
 *
 * Options (env): PVB_RUNS (apply/destroy/baseline repetitions, default 3),
 * PVB_PLAN_RUNS (no-op plan repetitions, default 5), PVB_SIZES (default "50,200"),
 * PVB_BIG (nodes of the memory lab, default 1000; 0 skips it), PVB_NO_MININET=1,
 * PVB_NO_VM=1, PVB_NO_DIAG=1 (no diagnostics timing, bench/diagnostics.ts),
 * PVB_NO_EXEC=1 (exec start-up rows, bench/exec.ts), PVB_NO_PROBE=1 (probe rows, bench/probe.ts),
 * PVB_NO_WRITE=1 (do not touch BENCHMARKS.md), PVB_ONLY=steps (only the 50-node lab's
 * scenario step and library API rows: apply, bench/scenario.ts, bench/api.ts, destroy;
 * BENCHMARKS.md is not written).
 */
import { execFileSync } from 'node:child_process';
import { vmBench, type VmResult } from './vm.js';
import { multiHostBench, multiHostRows, type MultiHostResult } from './multihost.js';
import { best, diagnosticsBench, type DiagnosticsResult } from './diagnostics.js';
import { execBench, execRows, type ExecResult } from './exec.js';
import { probeBench, probeRows, type ProbeBenchResult } from './probe.js';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { baselinePhases, baselineSize, baselineTeardown, runBaseline } from './baseline.js';
import { ensureMininet, mininetVersion, runMininet, type MininetResult } from './mininet.js';
import { breakdown, describe, fmtBreakdown, fmtGroups, fmtHelper, isReader, type Breakdown } from './timeline.js';
import { counts, generateLab, plainLab, renamed, toYaml, withOneDropChanged, type LabSpec } from './topology.js';
import { deleteNetns, listNetns, median, randTag, run, secs, TraceTap, waitQuiet, type Ran, type TraceEntry } from './util.js';
import { scenarioBench, scenarioDetails, scenarioRows, type ScenarioResult } from './scenario.js';
import { apiBench, apiDetails, apiRows, type ApiResult } from './api.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const RUNS = Number(process.env.PVB_RUNS ?? 3);
const PLAN_RUNS = Number(process.env.PVB_PLAN_RUNS ?? 5);
const SIZES = (process.env.PVB_SIZES ?? '50,200').split(',').map(Number);

const BIG = Number(process.env.PVB_BIG ?? 1000);
/** The size whose rows carry the issue's targets; other sizes are information. */
const TARGET_SIZE = 200;

const LAB_PARAMS: Record<number, { partitions: number; impairments: number }> = {
  50: { partitions: 200, impairments: 100 },
  200: { partitions: 400, impairments: 300 },
  1000: { partitions: 2000, impairments: 1500 },
};

/** provium on its netlink helper (the default path; required here) and on the iproute2 path. */
const HELPER = { PROVIUM_NETLINK: 'on' };
const IPROUTE2 = { PROVIUM_NETLINK: 'off' };

const log = (s: string) => process.stderr.write(`[bench] ${s}\n`);

interface Row {
  metric: string;
  value: string;
  reference: string;
  ratio: string;
  target: string;
  ok: boolean | undefined;
}

interface BigResult {
  n: number;
  /** Wall time and peak RSS (KiB) of the first plan (YAML parsed) and of the second (topology cache). */
  ms: number;
  rssKb: number;
  warmMs: number;
  warmRssKb: number;
  changes: number;
  fileBytes: number;
  outBytes: number;
}

interface LabResult {
  n: number;
  spec: LabSpec;
  applyMs: number[];
  applyBreakdowns: Breakdown[];
  applyHostCommands: number[];
  destroyMs: number[];
  destroyBreakdowns: Breakdown[];
  baselineMs: number[];
  baselinePhases: string[];
  baselineTeardownMs: number[];
  baselineSize: { processes: number; lines: number };
  baselineVerified: string;
  planMs: number[];
  /** `provium --help`, run right before each timed no-op plan (the same load as the plan). */
  planHelpMs: number[];
  planBreakdown?: Breakdown;
  validateMs: number;
  /** The iproute2 path (PROVIUM_NETLINK=off): one apply from empty and its destroy, with breakdowns. */
  ipApplyMs: number;
  ipApplyBreakdown?: Breakdown;
  ipDestroyMs: number;
  /** Cross-checks: plan on one path of a lab applied on the other ("yes (no changes)" or what differs). */
  crossIpPlansHelperLab: string;
  crossHelperPlansIpLab: string;
  change: { what: string; planChanges: number; planItems: number; hostCommands: number; invocations: string[]; applyMs: number; breakdown?: Breakdown };
  mininet?: MininetResult;
  /** Scenario steps against fresh applies (bench/scenario.ts), on the 50-node lab. */
  scenario?: ScenarioResult;
  /** lab.impair() through the library (bench/api.ts), on the 50-node lab. */
  api?: ApiResult;
  /** The same topology as Mininet's single,N (N hosts on one bridge): provium and the baseline. */
  plain?: { applyMs: number[]; destroyMs: number[]; baselineMs: number[]; verified: string };
}

/**
 * Copies the build (dist/src, bin, schemas, package.json; node_modules linked) into the
 * bench's temp dir and returns its bin/provium. The work tree is shared with other
 * sessions that rebuild dist/ while the bench runs; without the copy a lab applied by
 * one build could be planned by the next one.
 */
function snapshotProvium(root: string): string {
  // The whole build: the modules, the bundled CLI (dist/provium.cjs with its code cache,
  // which bin/provium runs, and dist/provium.mjs with its chunks) and the build-time schema
  // validator.
  cpSync(join(REPO, 'dist'), join(root, 'dist'), { recursive: true, filter: (p) => !/\/dist\/(test|bench)(\/|$)/.test(p) });
  cpSync(join(REPO, 'bin'), join(root, 'bin'), { recursive: true });
  cpSync(join(REPO, 'schemas'), join(root, 'schemas'), { recursive: true });
  cpSync(join(REPO, 'package.json'), join(root, 'package.json'));
  symlinkSync(join(REPO, 'node_modules'), join(root, 'node_modules'));
  return join(root, 'bin', 'provium');
}

class Bench {
  readonly tag = randTag();
  readonly host = `pvb-${this.tag}`;
  readonly baseHost = `pvb-${this.tag}b`;
  readonly mnNs = `pvb-mn-${this.tag}`;
  readonly tmp = mkdtempSync(join(tmpdir(), 'pvb-'));
  readonly fifo = join(this.tmp, 'trace.fifo');
  readonly stateDir = join(this.tmp, 'state');
  tap!: TraceTap;
  /** bin/provium of a private copy of the build (see snapshotProvium). */
  provBin = '';
  /** Every namespace this run may create: removed at the end whatever happens. */
  readonly owned = new Set<string>();

  env(): Record<string, string> {
    return { PROVIUM_STATE_DIR: this.stateDir, PROVIUM_CACHE_DIR: join(this.tmp, 'cache'), PROVIUM_TRACE: this.fifo, NO_COLOR: '1' };
  }

  async setup(): Promise<void> {
    this.provBin = snapshotProvium(join(this.tmp, 'provium'));
    execFileSync('mkfifo', [this.fifo]);
    this.tap = new TraceTap(this.fifo);
    this.owned.add(this.host).add(this.baseHost).add(this.mnNs);
    await run(['ip', 'netns', 'add', this.host]);
  }

  async cleanup(): Promise<void> {
    try {
      await deleteNetns([...this.owned]);
    } catch (e) {
      log(`cleanup: ${(e as Error).message}`);
    }
    // Node files the baseline wrote (and a provium lab's, if a run stopped before its destroy).
    for (const ns of this.owned) if (ns.startsWith('pv-')) rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
    this.tap?.close();
    rmSync(this.tmp, { recursive: true, force: true });
  }

  /** Runs the provium CLI; returns the run and the trace entries it produced. */
  async provium(args: string[], check = true, env: Record<string, string> = HELPER): Promise<{ r: Ran; t0: number; trace: TraceEntry[] }> {
    await this.tap.take();
    const t0 = performance.now();
    const r = await run([process.execPath, this.provBin, ...args], { env: { ...this.env(), ...env }, check, timeoutMs: 300_000 });
    const trace = await this.tap.take();
    return { r, t0, trace };
  }

  async labResult(n: number): Promise<LabResult> {
    const p = LAB_PARAMS[n] ?? { partitions: 2 * n, impairments: Math.round(1.5 * n) };
    const spec = generateLab(`b${n}`, { nodes: n, ...p, seed: 1000 + n });
    const base = renamed(spec, `q${n}`);
    for (const s of [spec, base]) for (const node of s.nodes) this.owned.add(`pv-${s.lab}-${node}`);
    const existing = (await listNetns()).filter((x) => this.owned.has(x) && x !== this.host);
    if (existing.length) throw new Error(`namespaces the bench would create already exist (${existing.slice(0, 5).join(', ')}...); remove them or wait for the other run to finish`);
    const file = join(this.tmp, `${spec.lab}.yaml`);
    const baseFile = join(this.tmp, `${base.lab}.yaml`);
    writeFileSync(file, toYaml(spec));
    writeFileSync(baseFile, toYaml(base));
    const c = counts(spec);
    log(`lab ${spec.lab}: ${c.nodes} nodes, ${c.attachments} attachments on 4 bridges, ${c.partitions} partitions (${c.symmetric} symmetric), ${c.impairments} per-pair impairments + whole-bridge drop on lan3, routes lan0<>lan1`);

    const res: LabResult = {
      n, spec, applyMs: [], applyBreakdowns: [], applyHostCommands: [], destroyMs: [], destroyBreakdowns: [], baselineMs: [], baselinePhases: [], baselineTeardownMs: [],
      baselineSize: { processes: 0, lines: 0 }, baselineVerified: 'not checked', planMs: [], planHelpMs: [], validateMs: 0,
      ipApplyMs: NaN, ipDestroyMs: NaN, crossIpPlansHelperLab: 'not checked', crossHelperPlansIpLab: 'not checked',
      change: { what: '', planChanges: -1, planItems: -1, hostCommands: -1, invocations: [], applyMs: NaN },
    };
    res.validateMs = (await run([process.execPath, this.provBin, 'validate', file], { env: this.env() })).ms;
    log(`provium validate ${spec.lab}: ${secs(res.validateMs)} s`);

    // --- apply from empty vs the baseline, interleaved (baseline run i, then provium run i)
    //     so that both see the same background load; provium destroys between its runs ---
    const phases = baselinePhases(base, this.baseHost);
    res.baselineSize = baselineSize(phases);
    for (let i = 0; i < RUNS; i++) {
      const b = await this.baselineOnce(base, phases, i === 0 ? baseFile : undefined);
      res.baselineMs.push(b.ms);
      res.baselinePhases.push(b.phases.map((p) => `${p.label} ${Math.round(p.ms)}`).join(', '));
      log(`baseline ${base.lab} #${i + 1}: ${secs(b.ms)} s (${res.baselineSize.processes} processes, ${res.baselineSize.lines} batch lines): ${res.baselinePhases[i]} ms`);
      if (b.verified) {
        res.baselineVerified = b.verified;
        log(`baseline ${base.lab} builds the same objects as provium: ${res.baselineVerified}`);
      }
      res.baselineTeardownMs.push(b.teardownMs);
      log(`baseline teardown ${base.lab} #${i + 1}: ${secs(b.teardownMs)} s (netns del + bridges + nft tables, until the host ports are gone)`);

      await waitQuiet();
      const a = await this.provium(['--netns', this.host, 'apply', '--auto-approve', '--json', file]);
      const j = JSON.parse(a.r.stdout) as { host_commands: number };
      res.applyMs.push(a.r.ms);
      res.applyHostCommands.push(j.host_commands);
      const bd = breakdown(a.trace, a.t0, a.r.ms);
      res.applyBreakdowns.push(bd);
      log(`apply ${spec.lab} #${i + 1}: ${secs(a.r.ms)} s, host_commands ${j.host_commands}; ${fmtBreakdown(bd)}`);
      if (i < RUNS - 1) await this.destroy(file, res);
    }

    // --- no-op plan on the applied lab ---
    await waitQuiet();
    const first = await this.provium(['--netns', this.host, 'plan', file]);
    res.planBreakdown = breakdown(first.trace, first.t0, first.r.ms);
    if (first.trace.some((e) => !isReader(e))) throw new Error('the plan trace contains a changing command');
    // Each timed plan right after a `provium --help`: the target compares the two under the
    // same load (a shared machine's speed drifts by 20-40 % within minutes).
    for (let i = 0; i < PLAN_RUNS; i++) {
      res.planHelpMs.push((await run([process.execPath, this.provBin, '--help'], { env: this.env() })).ms);
      const pl = await this.provium(['--netns', this.host, 'plan', file]);
      if (!/No changes/.test(pl.r.stdout)) throw new Error(`plan on the freshly applied lab ${spec.lab} is not empty:\n${pl.r.stdout.slice(0, 2000)}`);
      res.planMs.push(pl.r.ms);
    }
    log(`no-op plan ${spec.lab}: ${res.planMs.map(secs).join(', ')} s (median ${secs(median(res.planMs))}); provium --help before each: ${res.planHelpMs.map(secs).join(', ')} s (median ${secs(median(res.planHelpMs))}); first (untimed) run: ${fmtBreakdown(res.planBreakdown)}`);
    // The iproute2 path plans the helper-built lab as unchanged.
    res.crossIpPlansHelperLab = await this.noChanges(file, IPROUTE2);
    log(`iproute2 path plans the helper-built lab ${spec.lab}: ${res.crossIpPlansHelperLab}`);

    // --- one-field change: one per-pair drop_pct ---
    const ch = withOneDropChanged(spec);
    const chFile = join(this.tmp, `${spec.lab}-changed.yaml`);
    writeFileSync(chFile, toYaml(ch.spec));
    const pj = await this.provium(['--netns', this.host, 'plan', '--json', chFile]);
    const plan = JSON.parse(pj.r.stdout) as { changes: { items: unknown[] }[]; commands: { argv: string[] }[] };
    const ap = await this.provium(['--netns', this.host, 'apply', '--auto-approve', '--json', chFile]);
    const aj = JSON.parse(ap.r.stdout) as { host_commands: number };
    res.change = {
      what: ch.what,
      planChanges: plan.changes.length,
      planItems: plan.changes.reduce((a, x) => a + x.items.length, 0),
      hostCommands: aj.host_commands,
      invocations: ap.trace.filter((e) => !isReader(e)).map((e) => `${describe(e)} ${e.ms} ms`),
      applyMs: ap.r.ms,
      breakdown: breakdown(ap.trace, ap.t0, ap.r.ms),
    };
    log(`one-field change ${spec.lab} (${ch.what}): plan ${res.change.planChanges} change(s) / ${res.change.planItems} item(s), apply host_commands ${aj.host_commands}, ${secs(ap.r.ms)} s; ${fmtBreakdown(res.change.breakdown!)}`);
    for (const inv of res.change.invocations) log(`   ran: ${inv}`);

    if (n === 50) {
      await waitQuiet();
      res.scenario = await scenarioBench((a) => this.provium(a), spec, file, this.host, this.tmp, 5);
      log(`scenario ${spec.lab}: ${scenarioDetails(res.scenario).join(' ')}`);
      await waitQuiet();
      res.api = await this.api(spec, file);
      log(`api ${spec.lab}: ${apiDetails(res.api, res.scenario).join(' ')}`);
    }

    await this.destroy(chFile, res);

    // --- the iproute2 path: apply from empty (timed), planned as unchanged by the helper path, destroyed ---
    await waitQuiet();
    const ia = await this.provium(['--netns', this.host, 'apply', '--auto-approve', '--json', file], true, IPROUTE2);
    res.ipApplyMs = ia.r.ms;
    res.ipApplyBreakdown = breakdown(ia.trace, ia.t0, ia.r.ms);
    log(`apply ${spec.lab} on the iproute2 path: ${secs(ia.r.ms)} s; ${fmtBreakdown(res.ipApplyBreakdown)}`);
    res.crossHelperPlansIpLab = await this.noChanges(file, HELPER);
    log(`helper path plans the iproute2-built lab ${spec.lab}: ${res.crossHelperPlansIpLab}`);
    await waitQuiet();
    res.ipDestroyMs = (await this.provium(['--netns', this.host, 'destroy', '--auto-approve', '--json', file], true, IPROUTE2)).r.ms;
    log(`destroy ${spec.lab} on the iproute2 path: ${secs(res.ipDestroyMs)} s`);
    return res;
  }

  /** `provium plan --json` on one path: "yes (no changes)", or what it would change. */
  async noChanges(file: string, env: Record<string, string>, host = this.host): Promise<string> {
    const pl = await this.provium(['--netns', host, 'plan', '--json', file], false, env);
    if (pl.r.exitCode !== 0) return `NO: provium plan failed: ${pl.r.stderr.trim().slice(0, 300)}`;
    const j = JSON.parse(pl.r.stdout) as { changes: { address: string; action: string }[] };
    if (j.changes.length === 0) return 'yes (no changes)';
    return `NO: ${j.changes.length} change(s), e.g. ${j.changes.slice(0, 3).map((c) => `${c.action} ${c.address}`).join(', ')}`;
  }

  /**
   * Plans a generated lab of n nodes against an empty host (its whole desired state,
   * every change and every command: `provium plan`, text) in a process that reports its
   * peak RSS; twice: with an empty topology cache (the YAML parsed), then from the cache.
   */
  async bigPlan(n: number): Promise<BigResult> {
    const p = LAB_PARAMS[n] ?? { partitions: 2 * n, impairments: Math.round(1.5 * n) };
    const spec = generateLab(`m${n}`, { nodes: n, ...p, seed: 1000 + n });
    const file = join(this.tmp, `${spec.lab}.yaml`);
    const text = toYaml(spec);
    writeFileSync(file, text);
    // A wrapper that runs provium's CLI in the same process and prints its peak RSS (KiB) on exit.
    const wrapper = join(this.tmp, 'provium-rss.mjs');
    writeFileSync(wrapper, [
      `process.on('exit', () => process.stderr.write('\\n[maxrss ' + process.resourceUsage().maxRSS + ']\\n'));`,
      `const { main } = await import(${JSON.stringify(new URL('../dist/provium.mjs', `file://${this.provBin}`).href)});`,
      'process.exitCode = await main(process.argv);',
    ].join('\n'));
    const once = async () => {
      await waitQuiet();
      const r = await run([process.execPath, wrapper, '--netns', this.host, 'plan', file], { env: { ...this.env(), ...HELPER }, timeoutMs: 300_000 });
      const summary = /Plan: (\d+) to add, (\d+) to change, (\d+) to destroy/.exec(r.stdout);
      return { ms: r.ms, rssKb: Number(/\[maxrss (\d+)\]/.exec(r.stderr)?.[1] ?? NaN), changes: summary ? Number(summary[1]) + Number(summary[2]) + Number(summary[3]) : NaN, outBytes: Buffer.byteLength(r.stdout) };
    };
    const cold = await once();
    const warm = await once();
    return { n, ...cold, warmMs: warm.ms, warmRssKb: warm.rssKb, fileBytes: Buffer.byteLength(text) };
  }

  /** bench/api.ts on the applied lab, through this run's copy of the build. */
  api(spec: LabSpec, file: string): Promise<ApiResult> {
    return apiBench(join(this.tmp, 'provium', 'dist', 'src', 'index.js'), spec, file, this.host, { PROVIUM_STATE_DIR: this.stateDir, NO_COLOR: '1' }, 5);
  }

  /** PVB_ONLY=steps: the n-node lab applied once, the scenario steps and the library API measured, destroyed. */
  async stepsResult(n: number): Promise<{ scenario: ScenarioResult; api: ApiResult }> {
    const p = LAB_PARAMS[n] ?? { partitions: 2 * n, impairments: Math.round(1.5 * n) };
    const spec = generateLab(`b${n}`, { nodes: n, ...p, seed: 1000 + n });
    for (const node of spec.nodes) this.owned.add(`pv-${spec.lab}-${node}`);
    const existing = (await listNetns()).filter((x) => this.owned.has(x) && x !== this.host);
    if (existing.length) throw new Error(`namespaces the bench would create already exist (${existing.slice(0, 5).join(', ')}...)`);
    const file = join(this.tmp, `${spec.lab}.yaml`);
    writeFileSync(file, toYaml(spec));
    const a = await this.provium(['--netns', this.host, 'apply', '--auto-approve', '--json', file]);
    log(`apply ${spec.lab}: ${secs(a.r.ms)} s`);
    await waitQuiet();
    const scenario = await scenarioBench((x) => this.provium(x), spec, file, this.host, this.tmp, 5);
    log(`scenario ${spec.lab}: ${scenarioDetails(scenario).join(' ')}`);
    await waitQuiet();
    const api = await this.api(spec, file);
    log(`api ${spec.lab}: ${apiDetails(api, scenario).join(' ')}`);
    await this.provium(['--netns', this.host, 'destroy', '--auto-approve', '--json', file]);
    return { scenario, api };
  }

  /**
   * Mininet's own topology (`--topo single,N`: N hosts on one switch) built by provium
   * (apply from empty, then destroy) and by the baseline, RUNS times interleaved, so
   * the Mininet rows compare like with like.
   */
  async plainResult(n: number): Promise<NonNullable<LabResult['plain']>> {
    const spec = plainLab(`p${n}`, n);
    const base = renamed(spec, `r${n}`);
    for (const s of [spec, base]) for (const node of s.nodes) this.owned.add(`pv-${s.lab}-${node}`);
    const file = join(this.tmp, `${spec.lab}.yaml`);
    const baseFile = join(this.tmp, `${base.lab}.yaml`);
    writeFileSync(file, toYaml(spec));
    writeFileSync(baseFile, toYaml(base));
    const out = { applyMs: [] as number[], destroyMs: [] as number[], baselineMs: [] as number[], verified: 'not checked' };
    const phases = baselinePhases(base, this.baseHost);
    for (let i = 0; i < RUNS; i++) {
      const b = await this.baselineOnce(base, phases, i === 0 ? baseFile : undefined);
      out.baselineMs.push(b.ms);
      if (b.verified) out.verified = b.verified;
      await waitQuiet();
      out.applyMs.push((await this.provium(['--netns', this.host, 'apply', '--auto-approve', '--json', file])).r.ms);
      await waitQuiet();
      out.destroyMs.push((await this.provium(['--netns', this.host, 'destroy', '--auto-approve', '--json', file])).r.ms);
    }
    log(`single,${n} (${spec.lab}): apply ${out.applyMs.map(secs).join(', ')} s; destroy ${out.destroyMs.map(secs).join(', ')} s; baseline ${out.baselineMs.map(secs).join(', ')} s; same objects: ${out.verified}`);
    return out;
  }

  /**
   * One baseline run in a fresh baseline host namespace: build (timed), then, when
   * `verifyFile` is given, `provium plan` against it, then the baseline's teardown
   * (timed); the namespaces are deleted whatever happens.
   */
  async baselineOnce(base: LabSpec, phases: ReturnType<typeof baselinePhases>, verifyFile?: string): Promise<{ ms: number; phases: { label: string; ms: number }[]; verified?: string; teardownMs: number }> {
    await waitQuiet();
    await run(['ip', 'netns', 'add', this.baseHost]);
    try {
      const b = await runBaseline(phases);
      const verified = verifyFile ? await this.verifyBaseline(verifyFile) : undefined;
      await waitQuiet();
      return { ...b, verified, teardownMs: await baselineTeardown(base, this.baseHost) };
    } finally {
      await deleteNetns([this.baseHost, ...base.nodes.map((x) => `pv-${base.lab}-${x}`)]);
    }
  }

  async destroy(file: string, res: LabResult): Promise<void> {
    await waitQuiet();
    const d = await this.provium(['--netns', this.host, 'destroy', '--auto-approve', '--json', file]);
    res.destroyMs.push(d.r.ms);
    const b = breakdown(d.trace, d.t0, d.r.ms);
    res.destroyBreakdowns.push(b);
    log(`destroy ${res.spec.lab}: ${secs(d.r.ms)} s; ${fmtBreakdown(b)}`);
  }

  /** `provium plan` (both paths) against the baseline-built lab: no changes means the baseline built the same objects. */
  async verifyBaseline(baseFile: string): Promise<string> {
    const a = await this.noChanges(baseFile, HELPER, this.baseHost);
    const b = await this.noChanges(baseFile, IPROUTE2, this.baseHost);
    if (a.startsWith('yes') && b.startsWith('yes')) return 'yes (provium plan, netlink and iproute2 paths: no changes)';
    log(`baseline differs from provium's objects: netlink path ${a}; iproute2 path ${b}`);
    return `NO: netlink path ${a}; iproute2 path ${b}`;
  }
}

function ratioRow(metric: string, value: number, reference: number, refLabel: string, max: number, targetLabel: string, invert = false): Row {
  const ratio = invert ? reference / value : value / reference;
  return {
    metric,
    value: `${secs(value)} s`,
    reference: `${secs(reference)} s ${refLabel}`,
    ratio: `${ratio.toFixed(2)}x`,
    target: targetLabel,
    ok: Number.isFinite(ratio) ? (invert ? ratio >= max : ratio <= max) : undefined,
  };
}

/** A target row only for the target size; information for the others. */
function tgt(n: number, label: string): string {
  return n === TARGET_SIZE ? label : '(info)';
}

function okIf(n: number, cond: boolean): boolean | undefined {
  return n === TARGET_SIZE ? cond : undefined;
}

function buildRows(results: LabResult[], helpMs: number, big?: BigResult): Row[] {
  const rows: Row[] = [];
  const x = (v: number) => `${v.toFixed(2)}x`;
  for (const r of results) {
    const ratio = median(r.baselineMs) / median(r.applyMs);
    rows.push({ metric: `apply from empty, ${r.n} nodes`, value: `${secs(median(r.applyMs))} s`, reference: `${secs(median(r.baselineMs))} s iproute2 baseline`, ratio: `${x(ratio)} faster`, target: tgt(r.n, '>= 3x faster'), ok: okIf(r.n, ratio >= 3) });
  }
  for (const r of results) {
    rows.push({ metric: `apply from empty, ${r.n} nodes, iproute2 path`, value: `${secs(r.ipApplyMs)} s`, reference: `${secs(median(r.baselineMs))} s iproute2 baseline`, ratio: `${x(median(r.baselineMs) / r.ipApplyMs)} faster`, target: '(info)', ok: undefined });
  }
  // Mininet: the same topology (single,N), brought up and torn down.
  for (const r of results) {
    const metric = `apply+destroy vs Mininet build+teardown, ${r.n} hosts (single,${r.n})`;
    if (r.mininet?.ok && r.plain) {
      const both = median(r.plain.applyMs) + median(r.plain.destroyMs);
      const ratio = r.mininet.ms! / both;
      rows.push({ metric, value: `${secs(both)} s`, reference: `${secs(r.mininet.ms!)} s mn build+teardown`, ratio: `${x(ratio)} faster`, target: tgt(r.n, '>= 10x faster'), ok: okIf(r.n, ratio >= 10) });
    } else rows.push({ metric, value: '-', reference: `skipped: ${r.mininet?.why ?? 'not run'}`, ratio: '-', target: tgt(r.n, '>= 10x faster'), ok: undefined });
  }
  for (const r of results) {
    if (!r.mininet?.ok || r.mininet.buildMs === undefined || !r.plain) continue;
    rows.push({ metric: `apply vs Mininet bringing up ${r.n} hosts (single,${r.n})`, value: `${secs(median(r.plain.applyMs))} s`, reference: `${secs(r.mininet.buildMs)} s mn build`, ratio: `${x(r.mininet.buildMs / median(r.plain.applyMs))} faster`, target: '(info)', ok: undefined });
    rows.push({ metric: `iproute2 baseline vs Mininet bringing up ${r.n} hosts`, value: `${secs(median(r.plain.baselineMs))} s`, reference: `${secs(r.mininet.buildMs)} s mn build`, ratio: `${x(r.mininet.buildMs / median(r.plain.baselineMs))} faster`, target: '(info)', ok: undefined });
  }
  for (const r of results) {
    const help = r.planHelpMs.length ? median(r.planHelpMs) : helpMs;
    const over = median(r.planMs) - help;
    rows.push({ metric: `no-op plan, ${r.n} nodes`, value: `${secs(median(r.planMs))} s`, reference: `${secs(help)} s provium --help (interleaved)`, ratio: `+${secs(over)} s`, target: tgt(r.n, '<= --help + 0.2 s'), ok: okIf(r.n, over <= 200) });
  }
  for (const r of results) {
    rows.push({ metric: `one drop_pct change, ${r.n} nodes: apply end to end`, value: `${secs(r.change.applyMs)} s`, reference: `${r.change.hostCommands} host command(s)`, ratio: '-', target: tgt(r.n, '<= 0.25 s'), ok: okIf(r.n, r.change.applyMs <= 250) });
    rows.push({ metric: `one drop_pct change, ${r.n} nodes: plan changes`, value: String(r.change.planChanges), reference: `${r.change.planItems} item(s)`, ratio: '-', target: '= 1', ok: r.change.planChanges === 1 });
  }
  for (const r of results) if (r.scenario) rows.push(...scenarioRows(r.n, r.scenario));
  for (const r of results) if (r.api) rows.push(...apiRows(r.n, r.api, r.scenario));
  for (const r of results) {
    const ref = median(r.baselineTeardownMs);
    const ratio = median(r.destroyMs) / ref;
    rows.push({ metric: `destroy, ${r.n} nodes`, value: `${secs(median(r.destroyMs))} s`, reference: `${secs(ref)} s baseline teardown`, ratio: x(ratio), target: tgt(r.n, '<= 2x baseline'), ok: okIf(r.n, ratio <= 2) });
  }
  for (const r of results) {
    const ok = r.crossIpPlansHelperLab.startsWith('yes') && r.crossHelperPlansIpLab.startsWith('yes');
    rows.push({ metric: `${r.n} nodes: each path plans the other's lab as unchanged`, value: ok ? 'yes' : 'NO', reference: `iproute2 on helper-built: ${r.crossIpPlansHelperLab}; helper on iproute2-built: ${r.crossHelperPlansIpLab}`.slice(0, 120), ratio: '-', target: 'both empty', ok });
  }
  if (big) {
    rows.push({ metric: `plan of a generated ${big.n}-node lab (empty host): peak RSS`, value: `${(big.rssKb / 1024).toFixed(0)} MB`, reference: `${secs(big.ms)} s, ${big.changes} changes`, ratio: '-', target: '< 200 MB', ok: big.rssKb / 1024 < 200 });
    rows.push({ metric: `the same plan, topology from the cache: peak RSS`, value: `${(big.warmRssKb / 1024).toFixed(0)} MB`, reference: `${secs(big.warmMs)} s`, ratio: '-', target: '(info)', ok: undefined });
  }
  return rows;
}

/** VM rows: information (no targets in the issue). */
function vmRows(vm: VmResult): Row[] {
  if (!vm.ok && vm.boot1.length === 0) return [{ metric: 'VM guest boot', value: '-', reference: `skipped: ${vm.why}`, ratio: '-', target: '(info)', ok: undefined }];
  const rows: Row[] = [
    { metric: 'VM: 1 guest, apply until it answers ping (TCG)', value: `${secs(median(vm.boot1))} s`, reference: `runs ${vm.boot1.map(secs).join(', ')}`, ratio: '-', target: '(info)', ok: undefined },
  ];
  if (vm.apply4 !== undefined) {
    rows.push({ metric: 'VM: 4 guests, apply (QEMU launched)', value: `${secs(vm.apply4)} s`, reference: '-', ratio: '-', target: '(info)', ok: undefined });
    rows.push({ metric: 'VM: 4 guests, apply until all answer ping', value: `${secs(vm.ready4!)} s`, reference: '2 cores, TCG', ratio: '-', target: '(info)', ok: undefined });
    rows.push({ metric: 'VM: 4 guests, destroy', value: `${secs(vm.destroy4!)} s`, reference: 'QMP quit, QEMU exit', ratio: '-', target: '(info)', ok: undefined });
  }
  if (!vm.ok) rows.push({ metric: 'VM rows incomplete', value: '-', reference: vm.why ?? '', ratio: '-', target: '(info)', ok: undefined });
  return rows;
}

/** Rows of bench/diagnostics.ts: the issue's 4 MB broken file under 2 s, and linear growth. */
function diagnosticsRows(d: DiagnosticsResult): Row[] {
  const [big, half, valid, dense] = d.cases;
  const rows: Row[] = [];
  rows.push({
    metric: `validate: ${big.name} (${big.nodes} qemu nodes, ${big.diagnostics} diagnostics)`, value: `${secs(best(big))} s`,
    reference: `${secs(best(valid))} s without the errors`, ratio: `${(best(big) / best(valid)).toFixed(2)}x`, target: '< 2 s', ok: best(big) < 2000,
  });
  rows.push({
    metric: 'validate: growth from 2 MB to 4 MB of such a file (2 = linear, 4 = quadratic)', value: `${(best(big) / best(half)).toFixed(2)}x`,
    reference: `${secs(best(half))} s at 2 MB`, ratio: '-', target: '<= 2.5x', ok: best(big) / best(half) <= 2.5,
  });
  rows.push({ metric: `validate: ${dense.name} (${dense.nodes} netns nodes, ${dense.diagnostics} diagnostics)`, value: `${secs(best(dense))} s`, reference: '-', ratio: '-', target: '(info)', ok: undefined });
  return rows;
}

function table(rows: Row[]): string {
  const head = ['metric', 'provium', 'reference', 'ratio', 'target', 'result'];
  const body = rows.map((r) => [r.metric, r.value, r.reference, r.ratio, r.target, r.ok === undefined ? '-' : r.ok ? 'PASS' : 'FAIL']);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (c: string[]) => `| ${c.map((x, i) => x.padEnd(w[i])).join(' | ')} |`;
  return [line(head), `|${w.map((n) => '-'.repeat(n + 2)).join('|')}|`, ...body.map(line)].join('\n');
}

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8' }).trim().split('\n')[0];
  } catch {
    return '?';
  }
}

function details(results: LabResult[], nodeStartMs: number, helpMs: number, mnVersion: string | undefined, big?: BigResult): string {
  const out: string[] = [`Start-up: \`node -e 0\` ${secs(nodeStartMs)} s; \`provium --help\` (Node + provium's module graph, no work) ${secs(helpMs)} s.`, ''];
  if (big) out.push(`Memory: \`provium plan\` of a generated ${big.n}-node lab (the generator above at ${big.n} nodes: ${(big.fileBytes / 1024).toFixed(0)} KiB of YAML, ${big.changes} changes against an empty host, ${(big.outBytes / 1e6).toFixed(1)} MB of plan text; the whole-bridge drop on a ${big.n / 4}-member bridge is ${big.n / 4} port elements, where it was ${(big.n / 4) * (big.n / 4 - 1)} pair elements before this round) took ${secs(big.ms)} s with a peak RSS of ${(big.rssKb / 1024).toFixed(0)} MB; again from the topology cache: ${secs(big.warmMs)} s, ${(big.warmRssKb / 1024).toFixed(0)} MB.`, '');
  for (const r of results) {
    const c = counts(r.spec);
    out.push(`### ${r.n}-node lab (\`${r.spec.lab}\`)`, '');
    out.push(`- Topology: ${c.nodes} netns nodes, ${c.attachments} attachments on 4 bridges (/22 each; every 10th node on two bridges), ${c.partitions} partitions (${c.symmetric} symmetric, ${c.partitions - c.symmetric} directional), ${c.impairments} per-pair impairments (drop_pct and/or bandwidth_bps), drop_pct 1 on all of bridge lan3, routes lan0 <> lan1.`);
    out.push(`- \`provium validate\` (Node start-up + load + checks, no host commands): ${secs(r.validateMs)} s.`);
    out.push(`- apply from empty: ${r.applyMs.map(secs).join(', ')} s (median ${secs(median(r.applyMs))}); host_commands ${r.applyHostCommands.join(', ')}.`);
    r.applyBreakdowns.forEach((b, i) => out.push(`  - run ${i + 1}: ${fmtBreakdown(b)}`));
    const b0 = r.applyBreakdowns[r.applyBreakdowns.length - 1];
    if (b0) out.push(`  - changing commands (last run): ${fmtGroups(b0)}`);
    if (b0) out.push(`  - netlink helper's own time (last run; the floor of the per-namespace work): ${fmtHelper(b0)}`);
    out.push(`- apply from empty on the iproute2 path (PROVIUM_NETLINK=off): ${secs(r.ipApplyMs)} s${r.ipApplyBreakdown ? `; ${fmtBreakdown(r.ipApplyBreakdown)}` : ''}; its destroy ${secs(r.ipDestroyMs)} s.`);
    if (r.ipApplyBreakdown) out.push(`  - changing commands: ${fmtGroups(r.ipApplyBreakdown)}`);
    out.push(`- cross-checks: the iproute2 path plans the helper-built lab: ${r.crossIpPlansHelperLab}; the helper path plans the iproute2-built lab: ${r.crossHelperPlansIpLab}.`);
    out.push(`- baseline teardown: ${r.baselineTeardownMs.map(secs).join(', ')} s (median ${secs(median(r.baselineTeardownMs))}).`);
    out.push(`- baseline: ${r.baselineMs.map(secs).join(', ')} s (median ${secs(median(r.baselineMs))}); ${r.baselineSize.processes} processes, ${r.baselineSize.lines} batch lines; same objects as provium: ${r.baselineVerified}.`);
    r.baselinePhases.forEach((p, i) => out.push(`  - run ${i + 1} phases (ms): ${p}`));
    out.push(`- no-op plan: ${r.planMs.map(secs).join(', ')} s (median ${secs(median(r.planMs))}); \`provium --help\` right before each: ${r.planHelpMs.map(secs).join(', ')} s (median ${secs(median(r.planHelpMs))}); at the start of the run: \`provium --help\` ${secs(helpMs)} s, \`node -e 0\` ${secs(nodeStartMs)} s.`);
    if (r.planBreakdown) out.push(`  - first plan: ${fmtBreakdown(r.planBreakdown)}; helper: ${fmtHelper(r.planBreakdown)}`);
    out.push(`- one-field change (${r.change.what}): plan ${r.change.planChanges} change(s) with ${r.change.planItems} item(s); apply host_commands ${r.change.hostCommands}, ${secs(r.change.applyMs)} s.`);
    for (const inv of r.change.invocations) out.push(`  - ran \`${inv}\``);
    if (r.change.breakdown) out.push(`  - ${fmtBreakdown(r.change.breakdown)}`);
    if (r.scenario) out.push(...scenarioDetails(r.scenario));
    if (r.api) out.push(...apiDetails(r.api, r.scenario));
    out.push(`- destroy: ${r.destroyMs.map(secs).join(', ')} s (median ${secs(median(r.destroyMs))}).`);
    r.destroyBreakdowns.forEach((b, i) => out.push(`  - run ${i + 1}: ${fmtBreakdown(b)}`));
    const d0 = r.destroyBreakdowns[r.destroyBreakdowns.length - 1];
    if (d0) out.push(`  - changing commands (last run): ${fmtGroups(d0)}`);
    if (r.mininet) out.push(`- Mininet${mnVersion ? ` ${mnVersion}` : ''}: ${r.mininet.ok ? `${secs(r.mininet.ms!)} s (one run; builds ${r.n} hosts + 1 lxbr switch, then tears them down; network up after ${secs(r.mininet.buildMs ?? NaN)} s)` : `skipped: ${r.mininet.why}`}.`);
    if (r.plain) out.push(`- Same topology as Mininet (single,${r.n}: ${r.n} netns nodes on one bridge, lab \`p${r.n}\`): apply ${r.plain.applyMs.map(secs).join(', ')} s, destroy ${r.plain.destroyMs.map(secs).join(', ')} s; baseline ${r.plain.baselineMs.map(secs).join(', ')} s (same objects as provium: ${r.plain.verified}).`);
    out.push('');
  }
  return out.join('\n');
}

const BEGIN = '<!-- bench:begin (generated by npm run bench; edits inside are overwritten) -->';
const END = '<!-- bench:end -->';

function writeReport(generated: string): void {
  const path = join(REPO, 'BENCHMARKS.md');
  const block = `${BEGIN}\n${generated}\n${END}`;
  let text: string;
  if (existsSync(path)) {
    const old = readFileSync(path, 'utf8');
    const i = old.indexOf(BEGIN);
    const j = old.indexOf(END);
    text = i >= 0 && j > i ? old.slice(0, i) + block + old.slice(j + END.length) : `${old.trimEnd()}\n\n${block}\n`;
  } else {
    text = `# provium benchmarks\n\n${block}\n`;
  }
  writeFileSync(path, text);
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench: needs root (creates network namespaces)\n');
    return 1;
  }
  const started = performance.now();
  const bench = new Bench();
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    log(`${sig}: cleaning up`);
    void bench.cleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const results: LabResult[] = [];
  let nodeStartMs = NaN;
  let helpMs = NaN;
  let mnVersion: string | undefined;
  let vm: VmResult | undefined;
  let ex: ExecResult | undefined;
  let pr: ProbeBenchResult | undefined;
  let big: BigResult | undefined;
  let mh: MultiHostResult | undefined;
  let diag: DiagnosticsResult | undefined;
  if (process.env.PVB_ONLY === 'steps') {
    try {
      await bench.setup();
      const r = await bench.stepsResult(50);
      process.stdout.write(`\n${table([...scenarioRows(50, r.scenario), ...apiRows(50, r.api, r.scenario)])}\n\n${[...scenarioDetails(r.scenario), ...apiDetails(r.api, r.scenario)].join('\n')}\n`);
    } finally {
      await bench.cleanup();
    }
    process.stdout.write(`bench (PVB_ONLY=steps) finished in ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
    return 0;
  }
  try {
    await bench.setup();
    log(`host namespace ${bench.host}, baseline host namespace ${bench.baseHost}, state dir ${bench.stateDir}`);
    const nodeRuns: number[] = [];
    for (let i = 0; i < 5; i++) nodeRuns.push((await run([process.execPath, '-e', '0'])).ms);
    nodeStartMs = median(nodeRuns);
    log(`node -e 0: median ${secs(nodeStartMs)} s`);
    const helpRuns: number[] = [];
    for (let i = 0; i < 5; i++) helpRuns.push((await run([process.execPath, bench.provBin, '--help'], { env: bench.env() })).ms);
    helpMs = median(helpRuns);
    log(`provium --help (Node + loading provium's modules): median ${secs(helpMs)} s`);
    if (process.env.PVB_NO_EXEC !== '1') ex = await execBench(bench.provBin, log);
    if (process.env.PVB_NO_PROBE !== '1') pr = await probeBench(bench.provBin, log);
    for (const n of SIZES) results.push(await bench.labResult(n));
    if (BIG > 0) {
      big = await bench.bigPlan(BIG);
      log(`plan of a ${BIG}-node lab: ${secs(big.ms)} s, peak RSS ${(big.rssKb / 1024).toFixed(0)} MB, ${big.changes} changes`);
    }

    if (process.env.PVB_NO_MININET !== '1') {
      const why = await ensureMininet(log);
      if (why) {
        log(`Mininet skipped: ${why}`);
        for (const r of results) r.mininet = { ok: false, why };
      } else {
        mnVersion = await mininetVersion();
        for (const r of results) {
          r.plain = await bench.plainResult(r.n);
          await waitQuiet();
          r.mininet = await runMininet(r.n, bench.mnNs);
          log(r.mininet.ok ? `mininet ${r.n}: ${secs(r.mininet.ms!)} s (network up after ${secs(r.mininet.buildMs ?? NaN)} s)` : `mininet ${r.n} skipped: ${r.mininet.why}`);
        }
      }
    }
    if (process.env.PVB_NO_DIAG !== '1') {
      await waitQuiet();
      diag = await diagnosticsBench(bench.provBin, log);
    }
    if (process.env.PVB_NO_VM !== '1') {
      await waitQuiet();
      vm = await vmBench(REPO, bench.provBin, log);
    }
    if (process.env.PVB_NO_MULTIHOST !== '1') {
      await waitQuiet();
      mh = await multiHostBench(log);
    }
  } finally {
    await bench.cleanup();
  }

  const rows = buildRows(results, helpMs, big);
  if (ex) rows.push(...execRows(ex));
  if (pr) rows.push(...probeRows(pr));
  if (vm) rows.push(...vmRows(vm));
  if (mh) rows.push(...multiHostRows(mh));
  if (diag) rows.push(...diagnosticsRows(diag));
  const tbl = table(rows);
  process.stdout.write(`\n${tbl}\n\n`);
  const elapsed = (performance.now() - started) / 1000;
  process.stdout.write(`bench finished in ${elapsed.toFixed(0)} s\n`);

  if (process.env.PVB_NO_WRITE !== '1') {
    const machine = [
      `- Date: ${new Date().toISOString()}`,
      `- Machine: ${sh('nproc', [])} CPUs (\`nproc\`), kernel ${sh('uname', ['-r'])}, ${sh('sh', ['-c', '. /etc/os-release && echo $PRETTY_NAME'])}`,
      `- Tools: ${sh('ip', ['-V'])}; ${sh('nft', ['-v'])}; Node ${process.version}${mnVersion ? `; Mininet ${mnVersion}` : ''}`,
      `- provium build: commit ${sh('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD'])}${sh('git', ['-C', REPO, 'status', '--porcelain', '--', 'src']) === '' ? '' : ' (src/ has uncommitted changes)'}, copied before the first run`,
      `- Bench wall time: ${elapsed.toFixed(0)} s (RUNS=${RUNS}, PLAN_RUNS=${PLAN_RUNS})`,
    ].join('\n');
    writeReport(`## Results (last run)\n\n${machine}\n\n${tbl}\n\n## Details\n\n${details(results, nodeStartMs, helpMs, mnVersion, big)}`);
    log('wrote BENCHMARKS.md');
  }
  return 0; // missed targets are reported in the table, not as a failure
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`bench failed: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
