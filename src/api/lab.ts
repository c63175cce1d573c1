/**
 * `Lab`: a lab driven from test code (node:test, vitest, jest). Every call that changes
 * the network (partition, impair, link, apply, heal) is a change of the desired
 * topology: an overlay merged onto it by the loader's rules (the same as `-f` files
 * and scenario steps), checked by the loader, then planned against what the host has
 * and applied minimally and verified by the one engine (src/engine/session.ts), which
 * holds the lab's lock from `up` to `down`.
 *
 * Calls accumulate: `partition` then `impair` leaves both in place; `heal()` goes back to
 * the files given to `up`. Calls that change the lab run one after another (a call made
 * while another runs waits for it). Nothing here writes to stdout or stderr: warnings
 * go to `onWarning`. Errors are typed (see docs/api.md): InputError (bad argument or
 * overlay; nothing ran), ConflictError (the plan cannot be applied; nothing ran),
 * CommandError (a host command failed, the host rolled back; or exec/until did not get
 * the expected exit status), LockError (another process holds the lab), ApplyError
 * (verification failed, rolled back), ProviumError (anything else).
 */
import { ApplyError } from '../apply/index.js';
import { CommandError, type RunResult } from '../host/runner.js';
import { checkSources, checkTree, sortDiagnostics, type LoadOptions, type SourceInput } from '../load/index.js';
import { merge } from '../load/merge.js';
import { mergeSources } from '../load/sources.js';
import { withoutKeys, type PNode } from '../load/tree.js';
import { InputError, ProviumError, formatDiagnostic } from '../model/diagnostics.js';
import { nodeNetns } from '../model/names.js';
import type { Topology } from '../model/topology.js';
import type { Plan } from '../plan/types.js';
import { runCommand } from '../scenario/run.js';
import { UNTIL_INTERVAL_MS, EXEC_TIMEOUT_MS } from '../scenario/compile.js';
import { resolveHostNetns } from '../engine/hostns.js';
import { LabSession, type SessionApplyResult } from '../engine/session.js';
import {
  addressOf, argError, checkArgv, checkCommandNode, checkExpect, checkMs, impairEntry, impairOverlay, linkOverlay, overlayTree,
  partitionEntry, partitionOverlay, withoutEntry, type ImpairSpec, type Overlay, type PartitionSpec,
} from './overlay.js';

/** A topology file to bring up: its path, or its text (with a name for messages; relative paths in it resolve against `cwd`). */
export type LabSource = string | { name?: string; text: string };

/** Options of `Lab.up`. Every field is optional. */
export interface LabOptions {
  /**
   * The existing network namespace the lab's host side (bridges, host ports, qdiscs, nft
   * tables) lives in, as the CLI's `--netns`. Default: the namespace recorded when the lab
   * was last applied, else the root namespace. Node namespaces are named `pv-<lab>-<node>`
   * wherever the host side is.
   */
  netns?: string;
  /** Overlay files merged onto the file in order, later winning (the CLI's `-f`). */
  files?: readonly string[];
  /** Values of `${NAME}` in the files (the CLI's `--var`); they win over `env`. */
  vars?: Readonly<Record<string, string>>;
  /** Environment variables for `${NAME}` (default process.env; `{}` for none). */
  env?: Readonly<Record<string, string | undefined>>;
  /** Folder relative file names are resolved against (default process.cwd()). */
  cwd?: string;
  /** Told about warnings: a stale lock taken over, a recorded namespace gone, a warning of the files. Default: ignored. */
  onWarning?: (message: string) => void;
  /** Told about processes ended in node namespaces that a change deletes (namespace, pids). */
  onProcesses?: (netns: string, pids: number[]) => void;
}

/**
 * What one change did. Times in milliseconds from the start of the call's own work
 * (a call waiting for an earlier one starts when that one ends).
 */
export interface LabChange {
  /** The plan that was applied (its changes, item changes and host invocations). */
  plan: Plan;
  /** plan.changes.length: 0 when the lab already was as asked. */
  changes: number;
  /** Changing host invocations run. */
  hostCommands: number;
  /** When the last changing command finished (the network changed then); undefined when nothing had to change. */
  committedMs?: number;
  /** When the change was verified (the call returned). */
  totalMs: number;
}

/** The outcome of a command run in a node: exit status (124 timed out, 130 stopped), output, duration (ms). */
export interface LabExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** `lab.until`'s outcome: the passing try's result, and the tries made. */
export interface LabUntilResult extends LabExecResult {
  tries: number;
}

/** Options of `lab.exec`. */
export interface ExecOptions {
  /** Kill the command after this many ms (exit status 124). Default 60,000. */
  timeoutMs?: number;
  /** Stops the command (exit status 130) and rejects with the signal's reason. */
  signal?: AbortSignal;
  /** When set, an exit status other than this one throws CommandError. Default: any status is returned. */
  expect?: number;
}

/** Options of `lab.until`. */
export interface UntilOptions {
  /** How long to keep trying, in ms (required). */
  timeoutMs: number;
  /** Pause between tries in ms (default 500). */
  intervalMs?: number;
  /** The exit status that means success (default 0). */
  expect?: number;
  /** Stops trying and rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** What the Lab needs of its session (a LabSession; unit tests substitute a fake). */
export interface LabEngine {
  apply(t: Topology): Promise<SessionApplyResult>;
  plan(t: Topology): Promise<Plan>;
  destroy(): Promise<SessionApplyResult>;
  exec(node: string, argv: string[], opts?: { timeoutMs?: number; signal?: AbortSignal }): Promise<RunResult>;
  close(): void;
}

/** How a Lab is made (Lab.up, or a unit test with a fake engine). */
export interface LabParts {
  /** The base: the merged tree of the files given to up (no steps, no extends) and its topology. */
  baseTree: PNode;
  base: Topology;
  /** Names of the files merged (for sorting diagnostics). */
  files: string[];
  hostNetns?: string;
  engine: LabEngine;
  /** Opens a new engine (lock and full observation), for down() after close() or a failed down(). */
  reopen: () => Promise<LabEngine>;
  load: LoadOptions;
  onWarning?: (message: string) => void;
}

/** Turns an engine error into the API's: a failed host command of an apply becomes that CommandError (with rolledBack and the hint). */
function apiError(e: unknown): unknown {
  if (e instanceof ApplyError && e.cause instanceof CommandError) {
    const c = e.cause;
    c.rolledBack = e.rolledBack;
    c.hint = e.hint;
    return c;
  }
  return e;
}

let construct: (p: LabParts) => Lab;

/**
 * A running lab, owned (locked) by this process from `Lab.up` to `lab.down()` (or
 * `lab.close()`). See docs/api.md.
 */
export class Lab {
  static {
    construct = (p) => new Lab(p);
  }

  /** The lab's name (the file's `lab:`). */
  readonly name: string;
  private baseTree: PNode;
  private tree: PNode;
  private desired: Topology;
  private engine?: LabEngine;
  private state: 'up' | 'closed' | 'down' = 'up';
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(private readonly parts: LabParts) {
    this.name = parts.base.lab;
    this.baseTree = parts.baseTree;
    this.tree = parts.baseTree;
    this.desired = parts.base;
    this.engine = parts.engine;
  }

  /**
   * Loads `file` (with `opts.files` overlays and variables; every problem at once, as
   * InputError with located diagnostics), takes the lab's lock (LockError when another
   * live process holds it; a stale lock of a dead process is taken over, with a
   * warning), reads the host, and applies the lab: only what differs (a lab left by a
   * crashed process converges), verified. Throws ConflictError when the plan cannot be
   * applied (nothing changed), CommandError or ApplyError when applying failed (the
   * host rolled back), ProviumError when `netns` does not exist or is not where the lab
   * lives, or the file spans several hosts (`hosts:`, not supported by Lab yet).
   * Needs root. A file's `steps:` are ignored (with a warning).
   */
  static async up(file: LabSource, opts: LabOptions = {}): Promise<Lab> {
    const warn = opts.onWarning;
    let source: SourceInput;
    if (typeof file === 'string' && file !== '') source = { name: file };
    else if (file && typeof file === 'object' && typeof file.text === 'string') source = { name: file.name ?? '<text>', text: file.text };
    else throw argError('Lab.up', 'give a file name or { text, name? }');
    if (opts.files !== undefined && (!Array.isArray(opts.files) || !opts.files.every((f) => typeof f === 'string' && f !== ''))) throw argError('Lab.up', 'files is a list of overlay file names');
    const load: LoadOptions = { vars: opts.vars ? { ...opts.vars } : undefined, env: opts.env, cwd: opts.cwd };
    const r = checkSources([source, ...(opts.files ?? []).map((name) => ({ name }))], load);
    if (!r.topology || !r.merged) throw new InputError(r.diagnostics);
    for (const d of r.diagnostics) if (d.severity === 'warning') warn?.(formatDiagnostic(d));
    if (r.merged.kind === 'map' && r.merged.entries.has('steps')) warn?.(`${source.name} has steps:, which provium run runs; Lab.up uses its topology and ignores them`);
    const t = r.topology;
    if (t.hosts) throw new ProviumError(`lab ${t.lab} spans hosts (hosts:): Lab works on one-host labs only yet`, 'use provium apply FILE for labs with hosts:');
    const hostNetns = resolveHostNetns(t.lab, opts.netns, { option: 'netns', warn }).netns;
    const open = () => LabSession.open(t, { hostNetns, command: `Lab.up(${source.name}) in ${process.argv[1] ?? 'node'}`, onWarning: warn, onProcesses: opts.onProcesses });
    const engine = await open();
    try {
      await engine.apply(t);
    } catch (e) {
      engine.close();
      throw apiError(e);
    }
    return construct({
      baseTree: withoutKeys(r.merged, ['steps', 'extends']), base: t, files: r.files.map((f) => f.name), hostNetns, engine,
      reopen: open,
      load, onWarning: warn,
    });
  }

  /** The desired topology now (the base with every change made since up). */
  get topology(): Topology {
    return this.desired;
  }

  /** The topology of the files given to up (what heal() returns to). */
  get base(): Topology {
    return this.parts.base;
  }

  /** The host namespace the lab's host side lives in (undefined: the root namespace). */
  get hostNetns(): string | undefined {
    return this.parts.hostNetns;
  }

  /**
   * The bare IP address (no prefix length) of `node` on `bridge`, from the topology (no
   * host access): IPv4 by default, IPv6 with family 6. A router that is the bridge's
   * gateway has the gateway address. Throws InputError for an unknown node or bridge, a
   * node not attached there, or no address (a bridge without subnet).
   */
  address(node: string, bridge: string, family: 4 | 6 = 4): string {
    return addressOf(this.desired, node, bridge, family);
  }

  /** The network namespace of a netns node or router (`pv-<lab>-<node>`), for running tools there yourself. Throws InputError for other nodes. */
  namespace(node: string): string {
    checkCommandNode(this.desired, 'lab.namespace', node);
    return nodeNetns(this.name, node);
  }

  /**
   * Cuts traffic between groups of nodes of one bridge (nft drop rules; both ways for
   * groups, one way for from/to). The bridge is `bridge` (here or in the spec), else the
   * one bridge every named node is a member of. `partition([['r1'], 'others'])` cuts r1
   * from every other member. Cutting what is already cut changes nothing.
   * Throws InputError (bad spec, unknown node, no or several common bridges, a group
   * problem the loader finds), and what any change throws (see apply).
   */
  partition(spec: PartitionSpec, opts: { bridge?: string } = {}): Promise<LabChange> {
    return this.change('lab.partition', (t) => partitionOverlay(t, spec, opts?.bridge));
  }

  /**
   * Removes a partition added by partition() or written in the files: the entry with the
   * same endpoints (groups or from/to, names in any order). Throws InputError when the
   * lab has no such partition now.
   */
  unpartition(spec: PartitionSpec, opts: { bridge?: string } = {}): Promise<LabChange> {
    return this.edit('lab.unpartition', (tree, t) => {
      const p = partitionEntry(t, spec, opts?.bridge);
      return withoutEntry(tree, t, 'lab.unpartition', p.bridge, 'partitions', p.entry);
    });
  }

  /**
   * Impairs traffic: per directed pair (from/to), between groups, or on a whole bridge.
   * Units: latencyMs and jitterMs milliseconds (one way; need netem, else
   * ConflictError), dropPct percent, bandwidthBps bits per second. Merged into an
   * existing entry with the same endpoints field by field (`null` removes a field).
   * Throws InputError (bad spec or values out of the kernel's ranges) and what any change throws.
   */
  impair(spec: ImpairSpec): Promise<LabChange> {
    return this.change('lab.impair', (t) => impairOverlay(t, spec));
  }

  /** Removes an impairment entry (same endpoints; `{ bridge }` alone: the whole-bridge one). Throws InputError when the lab has no such entry now. */
  unimpair(spec: Pick<ImpairSpec, 'bridge' | 'from' | 'to' | 'groups'>): Promise<LabChange> {
    return this.edit('lab.unimpair', (tree, t) => {
      const p = impairEntry(t, spec, false);
      return withoutEntry(tree, t, 'lab.unimpair', p.bridge, 'impairments', p.entry);
    });
  }

  /** Sets the link of `node`'s NIC on `bridge` up or down (the host side port; a VM NIC over QMP). Throws InputError and what any change throws. */
  link(node: string, bridge: string, state: 'up' | 'down'): Promise<LabChange> {
    return this.change('lab.link', (t) => linkOverlay(t, node, bridge, state));
  }

  /**
   * Applies any overlay, as a scenario step's `apply:` holds it (`{ bridges: { lan: {
   * partitions: [...] } } }`), or `{ file: 'overlay.yaml' }` (relative to `cwd`), merged
   * onto the current desired topology by the overlay rules (docs/scenarios.md; `reset()`
   * marks a list or mapping that replaces instead of merging). No variable substitution
   * in objects. Throws InputError (the merged topology is invalid; nothing ran),
   * ConflictError (nothing ran), CommandError (a host command failed; `rolledBack` says
   * whether the host was put back), ApplyError (verification failed), ProviumError
   * (the lab is down or closed).
   */
  apply(overlay: Overlay | { file: string }): Promise<LabChange> {
    return this.edit('lab.apply', (tree) => merge(tree, this.overlayOf(overlay, 'lab.apply')));
  }

  /** Back to the files given to up: every change since removed, minimally. */
  heal(): Promise<LabChange> {
    return this.edit('lab.heal', () => this.baseTree);
  }

  /**
   * The plan that would take the lab to its desired topology with `overlay` merged on
   * (none: the desired topology itself), against what the session last read of the
   * host. Nothing is applied; the plan's `errors` list what would make apply throw
   * ConflictError. Throws InputError for an invalid overlay.
   */
  plan(overlay?: Overlay | { file: string }): Promise<Plan> {
    return this.serial(async () => {
      const engine = this.live('lab.plan');
      const tree = overlay === undefined ? this.tree : merge(this.tree, this.overlayOf(overlay, 'lab.plan'));
      return engine.plan(this.check(tree, 'lab.plan'));
    });
  }

  /**
   * Runs argv (no shell; `['sh', '-c', '...']` for one) in netns node or router `node`,
   * output captured. Returns the exit status and output whatever the status, unless
   * `expect` is given (then another status throws CommandError). `timeoutMs` (default
   * 60 s) kills it (status 124). Throws InputError (not a netns node or router, bad
   * argv), ProviumError (its namespace does not exist), the signal's reason when aborted.
   */
  async exec(node: string, argv: readonly string[], opts: ExecOptions = {}): Promise<LabExecResult> {
    const call = 'lab.exec';
    checkCommandNode(this.desired, call, node);
    checkArgv(call, argv);
    checkMs(call, 'timeoutMs', opts.timeoutMs, 1);
    checkExpect(call, opts.expect);
    const engine = this.live(call);
    const r = await runCommand(engine, { node, argv: [...argv], expect: opts.expect ?? 0, timeoutMs: opts.timeoutMs ?? EXEC_TIMEOUT_MS, intervalMs: 0, retry: false }, opts.signal);
    opts.signal?.throwIfAborted();
    if (opts.expect !== undefined && r.outcome === 'failed') throw new CommandError(r.result, undefined, `${call}(${node}): ${argv.join(' ')}: ${r.reason}`);
    return result(r.result);
  }

  /**
   * Runs argv in `node` every `intervalMs` (default 500) until it exits with `expect`
   * (default 0), for at most `timeoutMs` (required; a try still running then is killed).
   * Returns the passing try. Throws CommandError (not within the time: the last try's
   * status and output), InputError (bad arguments), the signal's reason when aborted.
   */
  async until(node: string, argv: readonly string[], opts: UntilOptions): Promise<LabUntilResult> {
    const call = 'lab.until';
    checkCommandNode(this.desired, call, node);
    checkArgv(call, argv);
    if (!opts || opts.timeoutMs === undefined) throw argError(call, 'give { timeoutMs }: how long to keep trying');
    checkMs(call, 'timeoutMs', opts.timeoutMs, 1);
    checkMs(call, 'intervalMs', opts.intervalMs, 0);
    checkExpect(call, opts.expect);
    const engine = this.live(call);
    const r = await runCommand(engine, { node, argv: [...argv], expect: opts.expect ?? 0, timeoutMs: opts.timeoutMs, intervalMs: opts.intervalMs ?? UNTIL_INTERVAL_MS, retry: true }, opts.signal);
    opts.signal?.throwIfAborted();
    if (r.outcome !== 'ok') throw new CommandError(r.result, undefined, `${call}(${node}): ${argv.join(' ')}: ${r.reason}`);
    return { ...result(r.result), tries: r.tries };
  }

  /**
   * Destroys the lab (every host object it owns, its state folder) and releases the
   * lock. Calling it again does nothing. When destroying fails, the lock is released and
   * the error thrown (CommandError or ApplyError, what is left stays): calling down()
   * again tries again; `provium destroy` also removes it.
   */
  down(): Promise<void> {
    return this.serial(async () => {
      if (this.state === 'down') return;
      const engine = this.engine ?? (await this.parts.reopen());
      this.engine = engine;
      try {
        await engine.destroy();
        this.state = 'down';
      } catch (e) {
        this.state = 'closed';
        throw apiError(e);
      } finally {
        engine.close();
        this.engine = undefined;
      }
    });
  }

  /**
   * Releases the lock and leaves the lab as it is (to look at it by hand, or to hand it to
   * `provium` commands or another process). Afterwards only down() works (it takes the
   * lock again). Calling it again does nothing.
   */
  close(): Promise<void> {
    return this.serial(async () => {
      this.engine?.close();
      this.engine = undefined;
      if (this.state === 'up') this.state = 'closed';
    });
  }

  /** Runs fn after every earlier call of this lab has ended. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn, fn);
    this.queue = p.catch(() => undefined);
    return p;
  }

  /** The engine, or ProviumError when the lab is down or closed. */
  private live(call: string): LabEngine {
    if (this.state !== 'up' || !this.engine) {
      throw new ProviumError(`${call}(): lab ${this.name} is ${this.state === 'down' ? 'down (destroyed)' : 'closed (its lock released)'}`, 'bring it up again with Lab.up');
    }
    return this.engine;
  }

  /** An overlay argument as a tree (an object, or { file } read by the loader). Throws InputError. */
  private overlayOf(overlay: unknown, call: string): PNode {
    const o = overlay as Record<string, unknown> | undefined;
    if (o && typeof o === 'object' && !Array.isArray(o) && Object.keys(o).length === 1 && typeof o.file === 'string') {
      const m = mergeSources([{ name: o.file }], this.parts.load);
      if (!m.tree) throw new InputError(sortDiagnostics(m.diagnostics, m.files));
      if (m.tree.kind === 'scalar' && m.tree.value === null) return { kind: 'map', pos: m.tree.pos, entries: new Map() };
      if (m.tree.kind !== 'map') throw argError(call, `${o.file}: an overlay is a mapping of the keys it changes`, 'invalid overlay');
      return withoutKeys(m.tree, ['steps']);
    }
    const tree = overlayTree(overlay, `<${call}()>`);
    for (const k of ['extends', 'steps']) {
      if (tree.kind === 'map' && tree.entries.has(k)) throw argError(call, `an overlay cannot hold ${k}: it is merged onto the lab's topology`, 'invalid overlay');
    }
    return tree;
  }

  /** Checks a desired tree: the topology, or InputError with every diagnostic. */
  private check(tree: PNode, call: string): Topology {
    const r = checkTree(tree, this.parts.base.file);
    const errors = r.diagnostics.filter((d) => d.severity === 'error');
    if (!r.topology || errors.length) throw new InputError(sortDiagnostics(r.diagnostics, [...this.parts.files.map((name) => ({ name })), { name: `<${call}()>` }]));
    if (r.topology.lab !== this.name) throw argError(call, `an overlay cannot change the lab's name (${this.name} to ${r.topology.lab})`, 'invalid overlay');
    if (r.topology.hosts) throw argError(call, 'an overlay cannot add hosts: (Lab works on one-host labs only)', 'invalid overlay');
    return r.topology;
  }

  /** A change given as an overlay made from the desired topology. */
  private change(call: string, overlay: (t: Topology) => Overlay): Promise<LabChange> {
    return this.edit(call, (tree, t) => merge(tree, overlayTree(overlay(t), `<${call}()>`)));
  }

  /** A change of the desired tree: checked, applied, kept when applied. */
  private edit(call: string, next: (tree: PNode, t: Topology) => PNode): Promise<LabChange> {
    return this.serial(async () => {
      const t0 = performance.now();
      const engine = this.live(call);
      const tree = next(this.tree, this.desired);
      const t = this.check(tree, call);
      const t1 = performance.now();
      let r: SessionApplyResult;
      try {
        r = await engine.apply(t);
      } catch (e) {
        throw apiError(e);
      }
      this.tree = tree;
      this.desired = t;
      return {
        plan: r.plan, changes: r.plan.changes.length, hostCommands: r.hostCommands,
        ...(r.committedMs !== undefined ? { committedMs: t1 - t0 + r.committedMs } : {}),
        totalMs: performance.now() - t0,
      };
    });
  }
}

/** A RunResult without its argv. */
function result(r: RunResult): LabExecResult {
  return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr, ms: r.ms };
}

/** Makes a Lab from its parts (unit tests: a fake engine). Not part of the public API. */
export function labFromParts(p: LabParts): Lab {
  return construct(p);
}

