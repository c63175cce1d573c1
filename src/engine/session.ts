/**
 * A lab session: one owner of one lab for a while (a `provium run`, a test suite using
 * the library), so that a sequence of small changes does not pay a full observation of
 * the host each time.
 *
 * `LabSession.open` takes the lab's lock and observes the host once; the session then
 * keeps the host context and the last verified observation. `apply(t)` plans against
 * that cached observation (a pure computation), runs exactly the plan's invocations,
 * notes the instant the last changing command finished (`committedMs`), verifies by
 * re-reading only the node namespaces the change touched (the host-wide reads are one
 * `ip`, `tc` and `nft` dump each, run concurrently), and keeps the verified
 * observation for the next call. A topology that needs names or host facts the cached
 * observation did not cover (a new node, a new bridge, a port forward, an uplink) is
 * planned after a fresh full observation, as is anything after a failed apply.
 *
 * The assumption that makes this right: while the session holds the lock, nothing but
 * the session changes the lab's host objects (other applies are locked out; processes
 * in the nodes do not own links, qdiscs or nft sets). `refresh()` re-observes
 * everything when that may not hold.
 *
 * Writes nothing to stdout or stderr; errors are typed: ProviumError (lock held, node
 * unknown), LockError (lock held), ConflictError (the plan has errors, nothing ran), ApplyError (a command or the
 * verification failed; the host was rolled back unless `rollback: false`).
 */
import { existsSync } from 'node:fs';
import { ProviumError, type Diagnostic } from '../model/diagnostics.js';
import type { Topology } from '../model/topology.js';
import { nodeNetns } from '../model/names.js';
import { HostRunner, type RunResult, type Runner } from '../host/runner.js';
import { observe, type Observation, type Wanted } from '../observe/index.js';
import { emptyTopology, type Plan } from '../plan/index.js';
import type { HostContext } from '../plan/commands.js';
import { applyPlan, labContext, planFromObservation, recordApplied, recordDestroyed, wantedWithRecord, type Planned } from '../apply/index.js';
import { acquireLock } from '../apply/statedir.js';

export { ApplyError } from '../apply/index.js';

/** How a session reaches the host. */
export interface SessionOptions {
  /** The lab's host side lives in this existing network namespace (`--netns`); default the root namespace. */
  hostNetns?: string;
  /** Runs host commands (default a new HostRunner); tests substitute a replayer. */
  runner?: Runner;
  /** Take the lab's lock for the session's lifetime (default true). */
  lock?: boolean;
  /** Written into the lock file, shown to whoever finds the lab locked (default "provium session"). */
  command?: string;
  /** Told about a stale lock taken over. */
  onWarning?: (message: string) => void;
  /** Told about processes ended in node namespaces an apply deletes (pid list). */
  onProcesses?: (netns: string, pids: number[]) => void;
}

/**
 * The plan cannot be applied, and nothing was run: a host object the lab needs is
 * owned by something else (a link, namespace or nft table of the same name that
 * provium did not make), or the kernel lacks a feature the topology needs (netem for
 * latency/jitter, ...). `diagnostics` are the plan's errors, `plan` the whole plan.
 */
export class ConflictError extends ProviumError {
  constructor(public readonly plan: Plan) {
    super(`the plan for lab ${plan.lab} has ${plan.errors.length} error(s); nothing was changed: ${plan.errors.map((d) => `${d.summary}${d.detail ? `: ${d.detail}` : ''}`).join('; ')}`);
    this.name = 'ConflictError';
  }

  /** The plan's errors (Diagnostic: summary, detail, the file position they come from when known). */
  get diagnostics(): Diagnostic[] {
    return this.plan.errors;
  }
}

/** The former name of ConflictError. */
export { ConflictError as PlanError };

/** What one `apply` did. Times in milliseconds from the call (performance.now() clock). */
export interface SessionApplyResult {
  plan: Plan;
  /** Changing invocations run (0 when the host already matched). */
  hostCommands: number;
  /** When the last changing command finished, from the call; undefined when nothing had to change. */
  committedMs?: number;
  /** Until the change was verified (or, with nothing to change, planned). */
  totalMs: number;
  /** Whether the plan was computed after a full observation (not the cached one). */
  observedFully: boolean;
}

/** The outcome of a command run in a node: exit code (124 timed out, 130 stopped), output, duration in ms. */
export type ExecResult = RunResult;

/** Whether `have` read everything `want` needs (names to check for conflicts, facts to read). */
function covers(have: Wanted, want: Wanted): boolean {
  const sub = (a: string[] | undefined, b: string[] | undefined) => (b ?? []).every((x) => (a ?? []).includes(x));
  const flag = (a: boolean | undefined, b: boolean | undefined) => !b || !!a;
  return (
    sub(have.links, want.links) && sub(have.namespaces, want.namespaces) && sub(have.files, want.files) && sub(have.resolv, want.resolv) &&
    sameList(have.forwardPorts, want.forwardPorts) && flag(have.defaultRoute, want.defaultRoute) && flag(have.ipForward, want.ipForward) &&
    flag(have.ip6Forward, want.ip6Forward) && flag(have.qemu, want.qemu) && flag(have.dnsmasq, want.dnsmasq)
  );
}

/** Listening sockets are checked for exactly the forwarded ports: a different set is read again. */
function sameList(a: string[] | undefined, b: string[] | undefined): boolean {
  return JSON.stringify([...(a ?? [])].sort()) === JSON.stringify([...(b ?? [])].sort());
}

/**
 * One lab, owned for the session's lifetime. Create with `LabSession.open`, end with
 * `close()` (releases the lock; the lab stays as it is). Calls must not overlap (each
 * awaits the previous one's host commands).
 */
export class LabSession {
  private obs?: { observation: Observation; wanted: Wanted };
  private released = false;

  private constructor(
    /** The lab's name (Topology.lab). */
    readonly lab: string,
    private readonly ctx: HostContext,
    private readonly runner: Runner,
    private readonly release: () => void,
    private readonly opts: SessionOptions,
  ) {}

  /**
   * Takes the lock of lab `t.lab` (LockError when another live process holds it;
   * a stale lock is taken over) and observes the host for topology `t` (the one about
   * to be applied; any topology of the lab works, others are observed again when they
   * need more). Throws ProviumError when --netns names a missing namespace.
   */
  static async open(t: Topology, opts: SessionOptions = {}): Promise<LabSession> {
    if (t.hosts) throw new ProviumError(`lab ${t.lab} spans hosts (hosts:): sessions and provium run work on one-host labs only yet`, 'apply each step with provium apply FILE -f STEP.yaml, which handles hosts:');
    if (opts.hostNetns !== undefined && !existsSync(`/run/netns/${opts.hostNetns}`)) {
      throw new ProviumError(`network namespace ${opts.hostNetns} does not exist`, `create it with: ip netns add ${opts.hostNetns}`);
    }
    const release = opts.lock === false ? () => {} : acquireLock(t.lab, opts.command ?? 'provium session', opts.onWarning);
    const s = new LabSession(t.lab, labContext(t.lab, { hostNetns: opts.hostNetns, warn: opts.onWarning }), opts.runner ?? new HostRunner(), release, opts);
    try {
      await s.observeFor(t);
    } catch (e) {
      s.close();
      throw e;
    }
    return s;
  }

  /** The last verified (or freshly read) observation of the lab's host objects. */
  get observation(): Observation | undefined {
    return this.obs?.observation;
  }

  /** Host commands run so far through the session's runner (reads and changes). */
  get commandCount(): number {
    return this.runner.count;
  }

  /** Reads the whole host state again (after something outside the session may have changed the lab). */
  async refresh(t?: Topology): Promise<void> {
    this.obs = undefined;
    await this.observeFor(t ?? emptyTopology(this.lab));
  }

  /**
   * The plan that would take the lab to topology `t` (same lab), against the cached
   * observation (observed again first when `t` needs more). Pure apart from that read.
   */
  async plan(t: Topology): Promise<Plan> {
    return (await this.planned(t)).planned.plan;
  }

  /**
   * Applies topology `t` (same lab): plan against the cached observation, run the plan's
   * invocations, verify, keep the verified observation. Throws ConflictError (nothing ran)
   * or ApplyError (rolled back to the state before, unless `rollback: false`); after an
   * ApplyError the next call observes the host afresh.
   */
  async apply(t: Topology, opts: { rollback?: boolean } = {}): Promise<SessionApplyResult> {
    return this.applyTo(t, opts);
  }

  /** apply(), and for a destroy the lab's records removed. */
  private async applyTo(t: Topology, opts: { rollback?: boolean; destroy?: boolean }): Promise<SessionApplyResult> {
    this.check(t);
    const t0 = performance.now();
    const { planned, fresh } = await this.planned(t);
    const { plan } = planned;
    if (plan.errors.length) throw new ConflictError(plan);
    const record = () => (opts.destroy ? recordDestroyed(this.lab, planned, this.ctx) : recordApplied(t, planned, this.ctx));
    if (plan.changes.length === 0) {
      record();
      return { plan, hostCommands: 0, totalMs: performance.now() - t0, observedFully: fresh };
    }
    let committedAt: number | undefined;
    let verified: Observation | undefined;
    try {
      const ran = await applyPlan(t, planned, this.ctx, this.runner, {
        rollback: opts.rollback !== false,
        onProcesses: this.opts.onProcesses,
        onCommitted: () => (committedAt = performance.now()),
        onVerified: (o) => (verified = o),
      });
      record();
      this.obs = verified ? { observation: verified, wanted: wantedWithRecord(t, this.ctx) } : undefined;
      return { plan, hostCommands: ran, committedMs: committedAt === undefined ? undefined : committedAt - t0, totalMs: performance.now() - t0, observedFully: fresh };
    } catch (e) {
      this.obs = undefined;
      throw e;
    }
  }

  /**
   * Removes every host object the lab owns (and puts back the forwarding sysctls as the
   * CLI's destroy does), then the lab's folder in the state directory. The session stays
   * open (an apply afterwards builds the lab again).
   */
  async destroy(): Promise<SessionApplyResult> {
    return this.applyTo(emptyTopology(this.lab), { rollback: false, destroy: true });
  }

  /**
   * Runs argv inside node `node` (a netns node or router) (`ip netns exec pv-<lab>-<node> argv...`), output
   * captured; never throws on a non-zero exit. `timeoutMs` (default 60 s) kills it
   * (exit 124); `signal` stops it (exit 130). Throws ProviumError when the node's
   * namespace does not exist.
   */
  async exec(node: string, argv: string[], opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<ExecResult> {
    const ns = nodeNetns(this.lab, node);
    if (!existsSync(`/run/netns/${ns}`)) throw new ProviumError(`node ${node} is not running (no namespace ${ns}): apply the lab first`);
    return this.runner.run(['ip', 'netns', 'exec', ns, ...argv], { allowFail: true, timeoutMs: opts.timeoutMs ?? 60_000, signal: opts.signal });
  }

  /** Releases the lock (idempotent). The lab is left as it is. */
  close(): void {
    if (this.released) return;
    this.released = true;
    this.release();
  }

  /** Throws when t is another lab's topology. */
  private check(t: Topology): void {
    if (this.released) throw new ProviumError(`the session of lab ${this.lab} is closed`);
    if (t.lab !== this.lab) throw new ProviumError(`this session owns lab ${this.lab}; the topology is lab ${t.lab}`);
  }

  /** The cached observation when it covers t, else a fresh one; and the plan of t against it. */
  private async planned(t: Topology): Promise<{ planned: Planned; fresh: boolean }> {
    this.check(t);
    const want = wantedWithRecord(t, this.ctx);
    let fresh = false;
    if (!this.obs || !covers(this.obs.wanted, want)) {
      await this.observeFor(t);
      fresh = true;
    }
    return { planned: planFromObservation(t, this.obs!.observation, this.ctx), fresh };
  }

  /** Observes the host for t (its names and facts). */
  private async observeFor(t: Topology): Promise<void> {
    const want = wantedWithRecord(t, this.ctx);
    const observation = await observe(this.lab, this.ctx, this.runner, want);
    this.obs = { observation, wanted: want };
  }
}

