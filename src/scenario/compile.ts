/**
 * Scenario files: a topology (its own keys, its `extends:` base, `-f` overlays) plus a
 * top-level `steps:` list that `provium run` executes in order:
 *   - `apply: {...}` an overlay over the scenario's topology (`{}`: the topology itself),
 *     or `apply: { file: cut.yaml }` (relative to the file that names it);
 *   - `wait: 5s`;
 *   - `exec: { node, run: [argv...], expect: 0, timeout: 60s }`: argv in a netns node,
 *     its exit status must be `expect`;
 *   - `until: { node, run, timeout, interval: 500ms, expect: 0 }`: the same, retried
 *     every `interval` until it succeeds or `timeout` has passed;
 *   - `repeat: { times: N, steps: [...] }`, `${i}` being the round (1..N) inside;
 *   - `name:` on any step.
 * Durations: a number with ms, s, m or h (500ms, 5s, 2m); a plain number is seconds.
 *
 * Compiling checks everything before the host is touched: every step's shape, every
 * variable, every node named, and the full topology each apply step produces (located
 * errors in the file that holds the offending text). Repeats are unrolled (each round
 * substituted with its `${i}`). Pure apart from reading files.
 */
import { dirname, isAbsolute, resolve } from 'node:path';
import type { Diagnostic } from '../model/diagnostics.js';
import { hasNamespace, type SourcePos, type Topology } from '../model/topology.js';
import { checkSources, checkTree, sortDiagnostics, type LoadOptions, type LoadedFile, type SourceInput } from '../load/index.js';
import { merge } from '../load/merge.js';
import { mergeSources, shown } from '../load/sources.js';
import { toData, withoutKeys, type PMap, type PNode } from '../load/tree.js';
import { bind, interpolate, type Scope, type VarProblem } from '../load/vars.js';

/** What every step has: its number ("3", or "3.2.1" for step 1 of round 2 of repeat step 3), optional name, where it is written. */
interface StepBase {
  id: string;
  name?: string;
  pos: SourcePos;
  /** Short description for output: "apply {}", "wait 5s", "until r2: redis-cli ping". */
  what: string;
}

/** Applies a topology (the scenario's own, or it with an overlay merged on). */
export interface ApplyStep extends StepBase {
  kind: 'apply';
  topology: Topology;
}

/** Waits. */
export interface WaitStep extends StepBase {
  kind: 'wait';
  ms: number;
}

/** Runs argv in a netns node; success is exit status `expect`. `until` retries every intervalMs until timeoutMs. */
export interface ExecStep extends StepBase {
  kind: 'exec' | 'until';
  node: string;
  argv: string[];
  expect: number;
  timeoutMs: number;
  intervalMs: number;
}

export type Step = ApplyStep | WaitStep | ExecStep;

/** A compiled scenario: the topology the steps start from (the "base"), and the steps, repeats unrolled. */
export interface Scenario {
  base: Topology;
  steps: Step[];
  /** Every file read (the scenario, its bases, overlays, files named by apply steps). */
  files: LoadedFile[];
  /** Variables substituted, with their values. */
  vars: Record<string, string>;
}

/** Most steps a scenario unrolls to (repeats included). */
export const MAX_STEPS = 100_000;
/** Default timeout of an exec step. */
export const EXEC_TIMEOUT_MS = 60_000;
/** Default retry interval of an until step. */
export const UNTIL_INTERVAL_MS = 500;

const ACTIONS = ['apply', 'wait', 'exec', 'until', 'repeat'] as const;

/**
 * Milliseconds of a duration: "500ms", "5s", "2m", "1h", "1.5s", or a number of
 * seconds. Undefined when it is not one.
 */
export function parseStepDuration(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 ? Math.round(v * 1000) : undefined;
  if (typeof v !== 'string') return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(v);
  if (!m) return undefined;
  return Math.round(Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h']);
}

/** Seconds for messages: 500 -> "500ms", 5000 -> "5s", 90000 -> "90s". */
export function fmtDuration(ms: number): string {
  return ms < 1000 ? `${ms}ms` : `${Number((ms / 1000).toFixed(3))}s`;
}

/**
 * Compiles a scenario from its sources (sources[0] the scenario file, the others `-f`
 * overlays). Returns the scenario when there is no error, and every diagnostic
 * (sorted by file, line, column).
 */
export function checkScenario(sources: SourceInput[], opts: LoadOptions = {}): { scenario?: Scenario; diagnostics: Diagnostic[]; files: LoadedFile[] } {
  const r = checkSources(sources, opts);
  const diagnostics = [...r.diagnostics];
  const files = [...r.files];
  if (!r.merged) return { diagnostics, files };
  const stepsEntry = r.merged.kind === 'map' ? r.merged.entries.get('steps') : undefined;
  if (!stepsEntry) {
    diagnostics.push({ severity: 'error', summary: 'no steps', detail: 'provium run needs a scenario: a file with a top-level steps: list (see docs/scenarios.md)', pos: r.merged.pos });
    return { diagnostics: sortDiagnostics(diagnostics, files), files };
  }
  // The scope the files were read with (the same variables, recorded in the same map).
  const scope = scopeOf(opts, r.vars);
  const c = new Compiler(withoutKeys(r.merged, ['steps']), r.rootPath ?? '', r.topology, scope, files, opts);
  const steps = c.steps(stepsEntry.value);
  diagnostics.push(...c.diagnostics);
  const sorted = sortDiagnostics(diagnostics, files);
  const vars = { ...r.vars, ...Object.fromEntries(scope.used) };
  if (!r.topology || sorted.some((d) => d.severity === 'error')) return { diagnostics: sorted, files };
  return { scenario: { base: r.topology, steps, files, vars }, diagnostics: sorted, files };
}

/** The variables of LoadOptions as a Scope (vars over env), recording into a fresh map seeded with what loading used. */
function scopeOf(opts: LoadOptions, used: Record<string, string>): Scope {
  const vars = opts.vars ?? {};
  const env = opts.env ?? process.env;
  return {
    lookup: (n) => (Object.prototype.hasOwnProperty.call(vars, n) ? vars[n] : env[n]),
    used: new Map(Object.entries(used)),
  };
}

/** Walks the steps tree: checks, substitutes, unrolls, compiles apply topologies. */
class Compiler {
  readonly diagnostics: Diagnostic[] = [];
  private readonly memo = new Map<string, { topology?: Topology; diagnostics: Diagnostic[] }>();
  private count = 0;
  private readonly netnsNodes: string[];

  constructor(
    private readonly baseTree: PNode,
    private readonly rootPath: string,
    private readonly base: Topology | undefined,
    private readonly scope: Scope,
    private readonly files: LoadedFile[],
    private readonly opts: LoadOptions,
  ) {
    this.netnsNodes = base ? Object.values(base.nodes).filter((n) => hasNamespace(n.kind)).map((n) => n.name) : [];
  }

  private error(pos: SourcePos, summary: string, detail: string): void {
    this.diagnostics.push({ severity: 'error', summary, detail, pos });
  }

  /** A list of steps (top level, or a repeat's), with `scope` for substitution and `prefix` for ids. */
  steps(list: PNode, scope: Scope = this.scope, prefix = ''): Step[] {
    if (list.kind !== 'seq') {
      this.error(list.pos, 'invalid steps', 'steps is a list, e.g. steps: [ { apply: {} }, { wait: 5s } ]');
      return [];
    }
    if (list.items.length === 0) this.error(list.pos, 'invalid steps', 'steps is empty');
    const out: Step[] = [];
    list.items.forEach((item, i) => {
      const id = `${prefix}${i + 1}`;
      out.push(...this.step(item, scope, id));
    });
    return out;
  }

  private step(raw: PNode, scope: Scope, id: string): Step[] {
    if (raw.kind !== 'map') {
      this.error(raw.pos, 'invalid step', `step ${id} is not a mapping; a step is one of ${ACTIONS.join(', ')} (with an optional name), e.g. - wait: 5s`);
      return [];
    }
    // Everything but a repeat's inner steps is substituted now (those get ${i} per round).
    const problems: VarProblem[] = [];
    const node = interpolate(raw, scope, problems, (p) => p.length === 2 && p[0] === 'repeat' && p[1] === 'steps') as PMap;
    for (const p of problems) this.error(p.pos, p.summary, p.detail);
    if (problems.length) return [];
    for (const [k, e] of node.entries) {
      if (k !== 'name' && !(ACTIONS as readonly string[]).includes(k)) this.error(e.keyPos, 'unknown key', `${JSON.stringify(k)} is not allowed in a step; expected one of: name, ${ACTIONS.join(', ')}`);
    }
    const actions = ACTIONS.filter((a) => node.entries.has(a));
    if (actions.length !== 1) {
      this.error(node.pos, 'invalid step', actions.length === 0 ? `step ${id} has no action; give one of ${ACTIONS.join(', ')}` : `step ${id} has ${actions.join(' and ')}; a step has exactly one action (use two steps)`);
      return [];
    }
    const nameNode = node.entries.get('name')?.value;
    let name: string | undefined;
    if (nameNode) {
      if (nameNode.kind === 'scalar' && nameNode.value !== null) name = String(nameNode.value);
      else this.error(nameNode.pos, 'invalid name', 'name is a short text, e.g. name: cut the leader');
    }
    const action = actions[0];
    const e = node.entries.get(action)!;
    const base = { id, ...(name !== undefined ? { name } : {}), pos: e.keyPos };
    if (++this.count > MAX_STEPS) {
      if (this.count === MAX_STEPS + 1) this.error(e.keyPos, 'too many steps', `the scenario unrolls to more than ${MAX_STEPS} steps`);
      return [];
    }
    switch (action) {
      case 'apply':
        return this.apply(e.value, base);
      case 'wait': {
        const ms = parseStepDuration(scalar(e.value));
        if (ms === undefined) {
          this.error(e.value.pos, 'invalid duration', `wait takes a duration such as 500ms, 5s or 2m, not ${show(e.value)}`);
          return [];
        }
        return [{ ...base, kind: 'wait', ms, what: `wait ${fmtDuration(ms)}` }];
      }
      case 'exec':
      case 'until':
        return this.exec(action, e.value, base);
      case 'repeat':
        return this.repeat(e.value, scope, id);
    }
  }

  private repeat(v: PNode, scope: Scope, id: string): Step[] {
    if (v.kind !== 'map') {
      this.error(v.pos, 'invalid repeat', 'repeat is a mapping { times: N, steps: [...] }');
      return [];
    }
    this.unknownKeys(v, ['times', 'steps'], 'repeat');
    const times = v.entries.get('times')?.value;
    const steps = v.entries.get('steps')?.value;
    const n = scalar(times);
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_STEPS) {
      this.error(times?.pos ?? v.pos, 'invalid repeat', `repeat needs times: a whole number from 1 to ${MAX_STEPS}${times ? `, not ${show(times)}` : ''}`);
      return [];
    }
    if (!steps) {
      this.error(v.pos, 'invalid repeat', 'repeat needs steps: [...]');
      return [];
    }
    const out: Step[] = [];
    for (let round = 1; round <= n && this.count <= MAX_STEPS; round++) {
      const before = this.diagnostics.length;
      out.push(...this.steps(steps, bind(scope, { i: String(round) }), `${id}.${round}.`));
      // One round's problems are every round's: report them once.
      if (this.diagnostics.length > before) break;
    }
    return out;
  }

  private exec(kind: 'exec' | 'until', v: PNode, base: { id: string; name?: string; pos: SourcePos }): Step[] {
    const usage = kind === 'exec' ? 'exec: { node: a, run: [ping, -c, 1, b], expect: 0 }' : 'until: { node: a, run: [ping, -c, 1, b], timeout: 30s }';
    if (v.kind !== 'map') {
      this.error(v.pos, `invalid ${kind}`, `${kind} is a mapping, e.g. ${usage}`);
      return [];
    }
    this.unknownKeys(v, kind === 'exec' ? ['node', 'run', 'expect', 'timeout'] : ['node', 'run', 'expect', 'timeout', 'interval'], kind);
    let ok = true;
    const nodeNode = v.entries.get('node')?.value;
    const node = scalar(nodeNode);
    if (typeof node !== 'string') {
      this.error(nodeNode?.pos ?? v.pos, 'missing node', `${kind} needs node: the netns node or router to run in (${this.netnsNodes.join(', ') || 'none in this lab'})`);
      ok = false;
    } else if (this.base && !this.netnsNodes.includes(node)) {
      const what = this.base.nodes[node] ? `is a ${this.base.nodes[node].kind} node; commands run in netns nodes and routers` : 'is not a node of the lab';
      this.error(nodeNode!.pos, 'unknown node', `${JSON.stringify(node)} ${what} (netns nodes and routers: ${this.netnsNodes.join(', ') || 'none'})`);
      ok = false;
    }
    const runNode = v.entries.get('run')?.value;
    const argv = runNode?.kind === 'seq' ? runNode.items.map(argOf) : undefined;
    if (!argv || argv.length === 0 || argv.some((a) => a === undefined)) {
      this.error(runNode?.pos ?? v.pos, 'invalid run', `run is the command as a list of arguments (no shell), e.g. run: [ping, -c, 1, b]; for a shell pipeline: run: [sh, -c, "..."]`);
      ok = false;
    }
    const expectNode = v.entries.get('expect')?.value;
    const expect = expectNode ? scalar(expectNode) : 0;
    if (typeof expect !== 'number' || !Number.isInteger(expect) || expect < 0 || expect > 255) {
      this.error(expectNode!.pos, 'invalid expect', `expect is the exit status that means success, 0 to 255, not ${show(expectNode!)}`);
      ok = false;
    }
    const timeoutNode = v.entries.get('timeout')?.value;
    let timeoutMs = kind === 'exec' ? EXEC_TIMEOUT_MS : undefined;
    if (timeoutNode) timeoutMs = parseStepDuration(scalar(timeoutNode));
    if (timeoutMs === undefined || timeoutMs < 1) {
      this.error(timeoutNode?.pos ?? v.pos, timeoutNode ? 'invalid duration' : 'missing timeout', timeoutNode ? `timeout takes a duration such as 500ms, 5s or 2m, not ${show(timeoutNode)}` : 'until needs timeout: how long to keep trying, e.g. timeout: 30s');
      ok = false;
    }
    const intervalNode = v.entries.get('interval')?.value;
    const intervalMs = intervalNode ? parseStepDuration(scalar(intervalNode)) : UNTIL_INTERVAL_MS;
    if (intervalMs === undefined) {
      this.error(intervalNode!.pos, 'invalid duration', `interval takes a duration such as 200ms or 1s, not ${show(intervalNode!)}`);
      ok = false;
    }
    if (!ok) return [];
    const cmd = argv!.join(' ');
    return [{ ...base, kind, node: node as string, argv: argv as string[], expect: expect as number, timeoutMs: timeoutMs!, intervalMs: intervalMs!, what: `${kind} ${node}: ${cmd.length > 60 ? `${cmd.slice(0, 57)}...` : cmd}` }];
  }

  private apply(v: PNode, base: { id: string; name?: string; pos: SourcePos }): Step[] {
    let overlay: PNode | undefined;
    let what = 'apply {}';
    if (v.kind === 'scalar' && v.value === null) {
      overlay = undefined;
    } else if (v.kind !== 'map') {
      this.error(v.pos, 'invalid apply', 'apply takes an overlay mapping ({} is the scenario\'s own topology) or { file: overlay.yaml }');
      return [];
    } else if (v.entries.size === 1 && v.entries.has('file')) {
      const f = v.entries.get('file')!.value;
      if (f.kind !== 'scalar' || typeof f.value !== 'string' || f.value === '') {
        this.error(f.pos, 'invalid apply', 'file names an overlay file, relative to this file');
        return [];
      }
      overlay = this.loadFile(f.value, f.pos);
      if (!overlay) return [];
      what = `apply ${f.value}`;
    } else {
      if (v.entries.has('extends')) {
        this.error(v.entries.get('extends')!.keyPos, 'extends in apply', 'an apply overlay is merged onto the scenario\'s topology; it cannot name another base (use file: for an overlay file)');
        return [];
      }
      if (v.entries.has('steps')) {
        this.error(v.entries.get('steps')!.keyPos, 'steps in apply', 'an apply overlay changes the topology; steps belong at the top of the scenario');
        return [];
      }
      overlay = v.entries.size ? v : undefined;
      if (overlay) what = `apply ${summarize(v)}`;
    }
    const tree = overlay ? merge(this.baseTree, withoutKeys(overlay, ['steps'])) : this.baseTree;
    const key = JSON.stringify(toData(tree));
    let r = this.memo.get(key);
    if (!r) {
      r = checkTree(tree, this.base?.file ?? this.rootPath);
      this.memo.set(key, r);
      const errors = r.diagnostics.filter((d) => d.severity === 'error');
      if (errors.length) {
        this.diagnostics.push(...errors);
        this.error(base.pos, 'invalid apply', `step ${base.id}: the topology this apply makes has ${errors.length} error(s), listed with the text that causes them`);
      }
    }
    if (!r.topology) return [];
    if (this.base && r.topology.lab !== this.base.lab) {
      this.error(base.pos, 'lab changed', `step ${base.id} applies lab ${r.topology.lab}; a scenario runs one lab (${this.base.lab})`);
      return [];
    }
    return [{ ...base, kind: 'apply', topology: r.topology, what }];
  }

  /** Reads an overlay file named by an apply step (its extends chain too), relative to the file naming it. */
  private loadFile(name: string, pos: SourcePos): PNode | undefined {
    const from = this.files.find((f) => f.name === pos.file);
    const dir = from && from.path !== '-' ? dirname(from.path) : (this.opts.cwd ?? process.cwd());
    const abs = resolve(dir, name);
    const cwd = this.opts.cwd ?? process.cwd();
    const m = mergeSources([{ name: isAbsolute(name) || !from || isAbsolute(from.name) ? abs : shown(abs, cwd) }], this.opts);
    for (const f of m.files) if (!this.files.some((x) => x.path === f.path)) this.files.push(f);
    for (const [k, v] of Object.entries(m.vars)) this.scope.used.set(k, v);
    if (!m.tree) {
      this.diagnostics.push(...m.diagnostics.map((d) => (d.pos ? d : { ...d, pos })));
      return undefined;
    }
    this.diagnostics.push(...m.diagnostics);
    if (m.tree.kind === 'scalar' && m.tree.value === null) return undefined;
    if (m.tree.kind !== 'map') {
      this.error(pos, 'invalid overlay', `${name}: an overlay is a mapping of the keys it changes`);
      return undefined;
    }
    return m.tree;
  }

  private unknownKeys(v: PMap, allowed: string[], what: string): void {
    for (const [k, e] of v.entries) if (!allowed.includes(k)) this.error(e.keyPos, 'unknown key', `${JSON.stringify(k)} is not allowed in ${what}; expected one of: ${allowed.join(', ')}`);
  }
}

/** A scalar's value, or undefined for lists and mappings. */
function scalar(n: PNode | undefined): unknown {
  return n?.kind === 'scalar' ? n.value : undefined;
}

/** An argv item: a string, or a number/boolean as written. */
function argOf(n: PNode): string | undefined {
  if (n.kind !== 'scalar' || n.value === null) return undefined;
  if (typeof n.value === 'string') return n.value;
  return n.src ?? String(n.value);
}

/** A value for messages. */
function show(n: PNode): string {
  if (n.kind === 'scalar') return n.value === null ? 'nothing' : JSON.stringify(n.value);
  return n.kind === 'seq' ? 'a list' : 'a mapping';
}

/** The paths an overlay sets, for output: "bridges.lan.partitions", at most three. */
function summarize(n: PNode): string {
  const paths: string[] = [];
  const walk = (x: PNode, path: string[]) => {
    if (x.kind === 'map' && path.length < 3 && x.entries.size > 0) for (const [k, e] of x.entries) walk(e.value, [...path, k]);
    else paths.push(path.join('.'));
  };
  walk(n, []);
  return paths.length > 3 ? `${paths.slice(0, 3).join(', ')}, ...` : paths.join(', ');
}
