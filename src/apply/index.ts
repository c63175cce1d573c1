/**
 * apply: runs a plan's invocations in order (node-namespace batches concurrently),
 * then observes again and verifies that a fresh plan is empty, retrying briefly
 * while the kernel settles (namespace and veth teardown is asynchronous).
 */
import type { Topology } from '../model/topology.js';
import type { HostState } from '../model/state.js';
import { ProviumError } from '../model/diagnostics.js';
import { CommandError, mapLimit, type Runner } from '../host/runner.js';
import { namespaceIO, type NsDump } from '../host/namespaces.js';
import { observe, realFiles, type HostFiles, type Observation, type Reuse, type Wanted } from '../observe/index.js';
import { partialParts } from '../observe/partial.js';
import { bridgeDev, nodeNetns, parseAlias } from '../model/names.js';
import { computePlan, planToState, prepareDesired, wantedFor, type Plan } from '../plan/index.js';
import { needsForwarding, needsForwarding6 } from '../plan/realize.js';
import { ipArgv, type HostContext } from '../plan/commands.js';
import type { Invocation } from '../plan/types.js';
import { ETC_NETNS, etcNetnsFs, removeLabDir, readRecord, readHostNsRecord, writeHostNsRecord, updateRecord, stateRoot, treeOf, readJournal, writeJournal, removeJournal, type LabRecord, type HostNsRecord } from './statedir.js';
import { startVm, stopVm, runQmp } from './vm.js';
import { livePid, processesInNetns, terminate } from '../host/proc.js';
import { join } from 'node:path';
import { opendirSync, type Dir } from 'node:fs';

export interface Planned {
  plan: Plan;
  observation: Observation;
  /**
   * Forwarding sysctls this plan puts back to the value found before the first lab of
   * the host namespace turned them on (this lab no longer forwards, relied on it, and no
   * other lab there still forwards, by the host's nft tables).
   */
  restore?: { ipForward?: boolean; ip6Forward?: boolean };
}

/** The values found before the labs of this host namespace turned forwarding on, and whether this lab relies on them. */
function forwardingRecords(lab: string, ctx: HostContext): { rec: LabRecord; ns: HostNsRecord; before4?: boolean; before6?: boolean; relies4: boolean; relies6: boolean } {
  const rec = readRecord(lab, ctx.warn);
  const ns = readHostNsRecord(ctx.hostNetns, ctx.warn);
  // Records written before 0.2 kept the value found in the lab's own record.
  const before4 = ns.ipForwardBefore ?? rec.ipForwardBefore;
  const before6 = ns.ip6ForwardBefore ?? rec.ip6ForwardBefore;
  return { rec, ns, before4, before6, relies4: rec.forwards === true || rec.ipForwardBefore !== undefined, relies6: rec.forwards6 === true || rec.ip6ForwardBefore !== undefined };
}

/**
 * Observes the host and computes the plan for a topology. A lab that no longer routes
 * (IPv6) puts ip_forward (IPv6 forwarding) back to the value found before the first lab
 * of its host namespace turned it on, once no other lab there forwards.
 */
export async function planFor(t: Topology, ctx0: HostContext, runner: Runner, files: HostFiles = realFiles, reuse?: Reuse): Promise<Planned> {
  const ctx = labContext(t.lab, ctx0);
  const wanted = wantedWithRecord(t, ctx);
  // observe returns once its reads are sent and the node folders read; while the answers
  // come (the helper's dumps, nft, tc: ~20 ms for 200 nodes), the desired state is made.
  // It depends on the topology and on facts known now; with an uplink also on the default
  // route, read by observe: then computePlan makes it.
  const observing = observe(t.lab, ctx, runner, wanted, files, reuse);
  if (!reuse && !wanted.defaultRoute && Object.keys(t.nodes).length > 0) {
    try {
      prepareDesired(t, { kvmUsable: files.kvmUsable(), stateDir: ctx.stateDir });
    } catch {
      /* computePlan realizes it again and reports what fails */
    }
  }
  const observation = await observing;
  return planFromObservation(t, observation, ctx);
}

/** The context with the lab's state directory filled in. */
export function labContext(lab: string, ctx: HostContext): HostContext {
  return { ...ctx, stateDir: ctx.stateDir ?? join(stateRoot(), lab) };
}

/** What observe must read for t, including the forwarding sysctls whose found values the lab may have to put back. */
export function wantedWithRecord(t: Topology, ctx: HostContext): Wanted {
  const f = forwardingRecords(t.lab, ctx);
  const wanted = wantedFor(t);
  if (f.relies4 && f.before4 !== undefined) wanted.ipForward = true;
  if (f.relies6 && f.before6 !== undefined) wanted.ip6Forward = true;
  return wanted;
}

/**
 * The plan of t against an observation made with (at least) wantedWithRecord(t, ctx):
 * pure but for reading the lab's and the host namespace's records. What planFor does
 * after observing; a LabSession plans this way against its cached observation.
 */
export function planFromObservation(t: Topology, observation: Observation, ctx0: HostContext): Planned {
  const ctx = labContext(t.lab, ctx0);
  const f = forwardingRecords(t.lab, ctx);
  const others = observation.facts.forwardingLabs ?? { v4: [], v6: [] };
  const restore4 = !needsForwarding(t) && f.relies4 && others.v4.length === 0 ? f.before4 : undefined;
  const restore6 = !needsForwarding6(t) && f.relies6 && others.v6.length === 0 ? f.before6 : undefined;
  const plan = computePlan(t, managedView(t, observation.state, restore4, restore6), observation.facts, ctx, restore4, restore6);
  return { plan, observation, restore: { ...(restore4 !== undefined ? { ipForward: restore4 } : {}), ...(restore6 !== undefined ? { ip6Forward: restore6 } : {}) } };
}

/** ip_forward (IPv6 forwarding) is only managed while the lab routes (IPv6), or while it puts back a value. */
function managedView(t: Topology, s: HostState, restore4: boolean | undefined, restore6: boolean | undefined): HostState {
  const out = { ...s };
  if (!needsForwarding(t) && restore4 === undefined) out.ipForward = undefined;
  if (!needsForwarding6(t) && restore6 === undefined) out.ip6Forward = undefined;
  return out;
}

/**
 * Test hooks, read from the environment, for the crash-consistency and rollback tests:
 * PROVIUM_TEST_KILL_AFTER=N kills provium (SIGKILL) right after its N-th changing
 * invocation; PROVIUM_TEST_FAIL_AT=LABEL makes the invocation with that label fail
 * without running (as a failed host command would).
 */
function testHooks(): { killAfter?: number; failLabel?: string } {
  const k = process.env.PROVIUM_TEST_KILL_AFTER;
  return { killAfter: k ? Number(k) : undefined, failLabel: process.env.PROVIUM_TEST_FAIL_AT || undefined };
}

/**
 * The invocations that are not host commands (files, processes, VMs), done on one host:
 * this machine by default (localActions); a remote host's over SSH (src/hosts/remote.ts).
 */
export interface InvocationActions {
  /** Writes files atomically (content undefined: create empty when absent). */
  writeFiles(files: { path: string; content?: string }[]): Promise<void>;
  /** Removes files, then these folders when empty. */
  removeFiles(files: string[], dirsIfEmpty: string[]): Promise<void>;
  /** Ends the process a pidfile names if its command line contains `match`. */
  stopPidfile(pidfile: string, match: string): Promise<void>;
  startVm(inv: Invocation, runner: Runner): Promise<void>;
  stopVm(inv: Invocation): Promise<void>;
  runQmp(inv: Invocation): Promise<void>;
}

/**
 * Whether /etc/netns exists and holds anything (a read-only look at its first entry, not
 * a listing: a destroy asks once per node file it removes; removal still goes through the
 * safe tree).
 */
function etcNetnsHasEntries(): boolean {
  let dir: Dir | undefined;
  try {
    dir = opendirSync(ETC_NETNS);
    return dir.readSync() !== null;
  } catch {
    return false;
  } finally {
    dir?.closeSync();
  }
}

/**
 * This machine's actions. Files are written and removed only under the state directory
 * and /etc/netns, through their safe trees (no symbolic link followed, atomic writes).
 */
export const localActions: InvocationActions = {
  writeFiles: async (files) => {
    for (const f of files) {
      const { fs, rel } = treeOf(f.path);
      if (f.content === undefined) fs.ensureFile(rel);
      else fs.write(rel, f.content);
    }
  },
  removeFiles: async (files, dirs) => {
    for (const f of files) {
      const { fs, rel } = treeOf(f);
      fs.remove(rel);
    }
    for (const d of dirs) {
      // /etc/netns holds every namespace's folder: while any is left (the common case when
      // a lab's files go one by one) it is not even tried.
      if (d === ETC_NETNS) {
        if (!etcNetnsHasEntries()) etcNetnsFs().removeDirIfEmpty('');
      }
      else {
        const { fs, rel } = treeOf(d);
        fs.removeDirIfEmpty(rel);
      }
    }
  },
  stopPidfile: async (pidfile, match) => {
    const pid = livePid(pidfile, match);
    if (pid !== undefined) await terminate([pid]);
  },
  startVm: (inv, runner) => startVm(inv, runner),
  stopVm: (inv) => stopVm(inv),
  runQmp: (inv) => runQmp(inv),
};

/**
 * Runs one invocation: a host command, a node namespace's batch (through the runner's
 * NamespaceIO: the netlink helper, or `ip -n NS -batch` on hosts without it), or a VM
 * action (start, stop, QMP steps). Returns what a namespace batch read back.
 */
async function runOne(inv: Invocation, runner: Runner, actions: InvocationActions = localActions): Promise<NsDump | undefined> {
  if (inv.writeFiles?.length) await actions.writeFiles(inv.writeFiles);
  if (inv.removeFiles) {
    await actions.removeFiles(inv.removeFiles.files, inv.removeFiles.dirsIfEmpty);
    return undefined;
  }
  if (inv.stopPidfile) {
    await actions.stopPidfile(inv.stopPidfile.pidfile, inv.stopPidfile.match);
    return undefined;
  }
  if (inv.writeFiles && inv.argv[0] === 'write') return undefined;
  if (inv.readsBack) return namespaceIO(runner).applyNamespace(inv.readsBack, inv.stdin ?? '');
  const io = inv.sysctl ? namespaceIO(runner) : undefined;
  if (inv.sysctl && io?.setSysctls) {
    await io.setSysctls(inv.sysctl.netns, inv.sysctl.values);
    return undefined;
  }
  if (inv.vmStart) await actions.startVm(inv, runner);
  else if (inv.vmStop) await actions.stopVm(inv);
  else if (inv.qmp) await actions.runQmp(inv);
  else if (!(await ipBatchWithoutProcess(inv, runner))) await runner.run(inv.argv, { stdin: inv.stdin });
  return undefined;
}

/**
 * An `ip [-n NS] -batch -` invocation the runner's NamespaceIO does without a process
 * (the netlink helper: `netns del`, `link del`, a destroy's teardown); false when it
 * cannot (then argv runs as it is).
 */
async function ipBatchWithoutProcess(inv: Invocation, runner: Runner): Promise<boolean> {
  const a = inv.argv;
  const netns = a.length === 3 && a[0] === 'ip' && a[1] === '-batch' && a[2] === '-' ? ''
    : a.length === 5 && a[0] === 'ip' && a[1] === '-n' && a[3] === '-batch' && a[4] === '-' ? a[2] : undefined;
  if (netns === undefined || !inv.stdin) return false;
  const io = namespaceIO(runner);
  return io.runIpBatch ? io.runIpBatch(netns, inv.stdin) : false;
}

/**
 * Runs invocations in order; consecutive per-namespace batches and VM starts/stops run
 * together (8 at a time; the netlink helper takes every namespace batch at once and runs
 * them in order); so do consecutive invocations of one `parallel` group (8 at a time).
 * Returns what the namespace batches read back (namespace -> links and routes after the
 * writes). `actions`: where files, processes and VMs are handled (this machine by
 * default). Throws CommandError.
 */
export async function runInvocations(invs: Invocation[], runner: Runner, onStep?: (inv: Invocation) => void, actions?: InvocationActions): Promise<Map<string, NsDump>> {
  const readBack = new Map<string, NsDump>();
  const hook = testHooks();
  let done = 0;
  const runOneHooked = async (inv: Invocation): Promise<NsDump | undefined> => {
    if (hook.failLabel !== undefined && inv.label === hook.failLabel) {
      throw new CommandError({ argv: inv.argv, exitCode: 1, stdout: '', stderr: `injected failure (PROVIUM_TEST_FAIL_AT=${hook.failLabel})`, ms: 0 }, inv.stdin);
    }
    const out = await runOne(inv, runner, actions);
    if (hook.killAfter !== undefined && ++done >= hook.killAfter) process.kill(process.pid, 'SIGKILL');
    return out;
  };
  // Node files under /etc/netns (hosts, resolv.conf) depend on no other invocation and no
  // other invocation on them: they are written (or removed) one per event-loop turn while
  // the host commands run, so their file system work overlaps the commands' processes
  // (200 hosts files: ~0.1 s). All of them are done before this returns; a failure throws.
  const side = actions ? [] : invs.filter(nodeFileOnly); // local files only (a remote host's go in order over SSH)
  const main = side.length ? invs.filter((x) => !side.includes(x)) : invs;
  // In a teardown the node files wait until `netns del` returned (its unmounts and unlinks
  // and their removals would share the file system and the CPU): they then overlap the wait
  // for the kernel's namespace cleanup, when the main thread is idle.
  let namespacesGone: () => void = () => {};
  const afterNetnsDel = main[0]?.label === 'delete node namespaces' ? new Promise<void>((r) => (namespacesGone = r)) : Promise.resolve();
  const sideDone = (async () => {
    await afterNetnsDel;
    for (const inv of side) {
      await new Promise<void>((r) => setImmediate(r));
      onStep?.(inv);
      await runOneHooked(inv);
    }
  })();
  // Until the main sequence awaits it, a failure is only recorded (no unhandled rejection).
  sideDone.catch(() => {});
  try {
    await runMain(main);
  } finally {
    namespacesGone();
    await sideDone.catch(() => {});
  }
  await sideDone;
  return readBack;

  async function runMain(invs: Invocation[]): Promise<void> {
    let i = 0;
    while (i < invs.length) {
      const isNs = (x: Invocation) => x.label.startsWith('namespace ') || x.vmStart !== undefined || x.vmStop !== undefined;
      const groupOf = (x: Invocation) => (isNs(x) ? 'namespaces' : x.parallel);
      if (groupOf(invs[i]) !== undefined) {
        let j = i;
        while (j < invs.length && groupOf(invs[j]) === groupOf(invs[i])) j++;
        const group = invs.slice(i, j);
        const netlink = namespaceIO(runner).mechanism === 'netlink' && group.every((x) => x.readsBack);
        await mapLimit(group, netlink ? group.length : 8, async (inv) => {
          onStep?.(inv);
          const out = await runOneHooked(inv);
          if (inv.readsBack && out) readBack.set(inv.readsBack, out);
        });
        i = j;
      } else {
        onStep?.(invs[i]);
        await runOneHooked(invs[i]);
        if (invs[i].label === 'delete node namespaces') namespacesGone();
        i++;
      }
    }
  }
}

/** An invocation that only writes or removes files under /etc/netns/<ns>/ (a node's hosts or resolv.conf). */
function nodeFileOnly(inv: Invocation): boolean {
  const under = (p: string) => p.startsWith(`${ETC_NETNS}/`);
  if (inv.argv[0] === 'write') return inv.argv.length === 2 && (inv.writeFiles ?? []).length > 0 && inv.writeFiles!.every((f) => under(f.path) && f.content !== undefined);
  if (inv.argv[0] === 'remove') return inv.removeFiles !== undefined && inv.removeFiles.files.every(under) && inv.removeFiles.dirsIfEmpty.every((d) => d === ETC_NETNS || under(d));
  return false;
}

/**
 * An apply that failed: what failed (a host command with its exit code and stderr,
 * a QMP exchange, or verification), and whether the host was rolled back to the
 * state observed before the apply.
 */
export class ApplyError extends ProviumError {
  constructor(
    public readonly cause: Error,
    public readonly rolledBack: boolean | undefined,
    public readonly rollbackError?: Error,
  ) {
    super(
      `apply failed: ${cause.message.split('\n')[0]}`,
      rolledBack === undefined ? 'the partial state was kept (--no-rollback): run provium plan to see it'
        : rolledBack ? 'the host was rolled back to the state observed before the apply'
        : `rolling back failed too: ${rollbackError?.message.split('\n')[0]}; run provium plan to see what is left`,
    );
  }
}

/** Names of the node namespaces a list of invocations deletes. */
export function deletedNetns(invs: Invocation[]): string[] {
  return invs.flatMap((i) => (i.label === 'delete node namespaces' ? (i.stdin ?? '').split('\n').filter((l) => l.startsWith('netns del ')).map((l) => l.slice(10)) : []));
}

/**
 * After a successful apply (also one with nothing to do): records where the lab lives
 * and whether it relies on forwarding, and forgets a forwarding value that the plan put
 * back (or that is back to what was found).
 */
export function recordApplied(t: Topology, planned: Planned, ctx: HostContext): void {
  updateRecord(t.lab, (rec) => {
    rec.hostNetns = ctx.hostNetns ?? null;
    // What provium ls shows.
    const bridges = Object.values(t.bridges);
    rec.file = t.file;
    rec.appliedAt = new Date().toISOString();
    rec.objects = {
      nodes: Object.keys(t.nodes).length, vms: Object.values(t.nodes).filter((n) => n.kind === 'qemu').length, bridges: bridges.length,
      partitions: bridges.reduce((n, b) => n + b.partitions.length + (b.partitionAll ? 1 : 0), 0),
      impairments: bridges.reduce((n, b) => n + b.impairments.length, 0),
    };
    if (needsForwarding(t)) rec.forwards = true;
    else delete rec.forwards;
    if (needsForwarding6(t)) rec.forwards6 = true;
    else delete rec.forwards6;
    delete rec.ipForwardBefore; // moved to the host namespace's record (applyPlan)
    delete rec.ip6ForwardBefore;
  }, ctx.warn);
  forgetRestored(planned, ctx);
}

/**
 * After a successful destroy (also one with nothing to do): forgets a forwarding value
 * the plan put back, then removes the lab's folder from the state directory.
 */
export function recordDestroyed(lab: string, planned: Planned, ctx: HostContext): void {
  forgetRestored(planned, ctx);
  removeLabDir(lab);
}

/** Removes from the host namespace's record the forwarding values this plan put back. */
function forgetRestored(planned: Planned, ctx: HostContext): void {
  const ns = readHostNsRecord(ctx.hostNetns, ctx.warn);
  const next: HostNsRecord = { ...ns };
  if (planned.restore?.ipForward !== undefined) delete next.ipForwardBefore;
  if (planned.restore?.ip6Forward !== undefined) delete next.ip6ForwardBefore;
  if (JSON.stringify(next) !== JSON.stringify(ns)) writeHostNsRecord(ctx.hostNetns, next);
}

/**
 * Ends processes still running in node namespaces about to be deleted (servers users
 * started with provium exec): `ip netns del` only removes the name, and a process
 * inside keeps the namespace and its veth pair alive. SIGTERM, then SIGKILL after 2 s.
 */
export async function endProcessesIn(namespaces: string[], _runner: Runner, report?: (ns: string, pids: number[]) => void): Promise<void> {
  const found = processesInNetns(namespaces);
  const all = [...found.values()].flat().map((p) => p.pid);
  if (all.length === 0) return;
  for (const [ns, procs] of found) report?.(ns, procs.map((p) => p.pid));
  await terminate(all);
}

export interface ApplyOptions {
  /** Told about processes ended in namespaces being deleted. */
  onProcesses?: (ns: string, pids: number[]) => void;
  /** Undo a failed apply (default true); false keeps the partial state for debugging. */
  rollback?: boolean;
  onStep?: (inv: Invocation) => void;
  /** Called when the last changing invocation finished (the instant the change happened), before verification. */
  onCommitted?: () => void;
  /** Called with the observation that verified the apply (the host as it is now). */
  onVerified?: (o: Observation) => void;
}

/**
 * Applies a computed plan, records what must be restored later, and verifies.
 * Returns the number of changing invocations run. On a failed command or a failed
 * verification the host is rolled back to the observed state the plan started from
 * (links, qdiscs, VMs undone; nft is one transaction already), then ApplyError.
 */
export async function applyPlan(t: Topology, planned: Planned, ctx: HostContext, runner: Runner, opts: ApplyOptions = {}): Promise<number> {
  const { plan, observation } = planned;
  if (plan.errors.length) throw new ProviumError('the plan has errors; nothing was changed');
  const labDir = ctx.stateDir ?? join(stateRoot(), t.lab);
  // Before any host change: where the lab lives, whether it relies on forwarding, and the
  // forwarding values found (per host namespace: shared with the other labs there).
  const rec = updateRecord(t.lab, (r) => {
    r.hostNetns = ctx.hostNetns ?? null;
    if (needsForwarding(t)) r.forwards = true;
    if (needsForwarding6(t)) r.forwards6 = true;
  }, ctx.warn);
  const sets = (name: string) => plan.invocations.some((x) => x.label === 'sysctl' && x.argv.includes(`${name}=1`));
  const ns = readHostNsRecord(ctx.hostNetns, ctx.warn);
  const found: HostNsRecord = { ...ns };
  if (found.ipForwardBefore === undefined && rec.ipForwardBefore !== undefined) found.ipForwardBefore = rec.ipForwardBefore;
  if (found.ip6ForwardBefore === undefined && rec.ip6ForwardBefore !== undefined) found.ip6ForwardBefore = rec.ip6ForwardBefore;
  if (sets('net.ipv4.ip_forward') && found.ipForwardBefore === undefined && observation.state.ipForward === false) found.ipForwardBefore = false;
  if (sets('net.ipv6.conf.all.forwarding') && found.ip6ForwardBefore === undefined && observation.state.ip6Forward === false) found.ip6ForwardBefore = false;
  if (JSON.stringify(found) !== JSON.stringify(ns)) writeHostNsRecord(ctx.hostNetns, found);
  const invocations = plan.invocations;
  await endProcessesIn(deletedNetns(invocations), runner, opts.onProcesses);
  const journal = journalNetns(labDir, invocations, ctx.warn);
  try {
    const readBack = await runInvocations(invocations, runner, opts.onStep);
    opts.onCommitted?.();
    await waitPortsGone(plan, ctx, runner);
    await waitBridgesIpv6Ready(t, plan, ctx, runner);
    // Verify what was asked: not re-sending links nor forcing replaces again; a --target stays.
    // Only what the plan touched is read again (see observe/partial.ts).
    const reuse = { previous: observation.state, touched: touchedNamespaces(plan), readBack, parts: partialParts(plan), facts: observation.facts };
    await verify(t, { ...ctx, refreshLinks: false, replace: undefined }, runner, reuse, opts.onVerified);
  } catch (e) {
    if (opts.rollback === false) throw new ApplyError(e as Error, undefined);
    try {
      await rollback(t, observation.state, ctx, runner);
      throw new ApplyError(e as Error, true);
    } catch (re) {
      if (re instanceof ApplyError) throw re;
      throw new ApplyError(e as Error, false, re as Error);
    }
  } finally {
    if (journal) removeJournal(labDir);
  }
  return invocations.length;
}

/**
 * Writes the names of the namespaces this apply creates to the lab's state directory
 * (atomically, synced) before creating them: a namespace carries its mark (lo's ifalias)
 * only once its own batch ran, so an apply killed in between would otherwise leave
 * namespaces that look foreign. Returns whether a journal was written.
 */
function journalNetns(labDir: string, invs: Invocation[], warn?: (m: string) => void): boolean {
  const names = invs.filter((i) => i.label === 'node namespaces').flatMap((i) => (i.stdin ?? '').split('\n').filter((l) => l.startsWith('netns add ')).map((l) => l.slice(10)));
  if (names.length === 0) return false;
  writeJournal(labDir, [...new Set([...readJournal(labDir, warn), ...names])]);
  return true;
}

/** Plans from the host as it is now back to `before`, runs it, and checks that nothing differs. */
async function rollback(t: Topology, before: HostState, ctx: HostContext, runner: Runner): Promise<void> {
  const c = { ...ctx, refreshLinks: false, stateDir: ctx.stateDir ?? join(stateRoot(), t.lab) };
  const wanted = { ...wantedFor(t), ipForward: before.ipForward !== undefined, ip6Forward: before.ip6Forward !== undefined };
  const now = await observe(t.lab, c, runner, wanted);
  const back = planToState(t.lab, before, now.state, c);
  await runInvocations(back.invocations, runner);
  await waitPortsGone(back, c, runner);
  for (let attempt = 0; attempt < 8; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, 100 * attempt));
    const after = await observe(t.lab, c, runner, wanted);
    if (planToState(t.lab, before, after.state, c).changes.length === 0) return;
  }
  throw new ProviumError('after rolling back, the host still differs from the state before the apply');
}

/**
 * Ports removed by deleting their node's namespace disappear asynchronously (the
 * kernel tears veth pairs down in bulk). Waits, with one cheap `ip -j link show` per
 * poll, until none is left. A namespace can outlive `ip netns del` (orphaned TCP
 * sockets still closing hold it): ports still there after 1 s are deleted explicitly
 * (deleting one end of a veth pair removes both), then waited for up to 15 s.
 */
export async function waitPortsGone(plan: Plan, ctx: HostContext, runner: Runner): Promise<void> {
  const names = new Set(plan.changes.flatMap((c) => c.items).filter((i) => i.implied && i.before?.ref.kind === 'link').map((i) => (i.before!.ref as { name: string }).name));
  if (names.size === 0) return;
  const t0 = Date.now();
  let forced = false;
  const io = namespaceIO(runner);
  for (let delay = 10; ; delay = Math.min(delay * 2, 200)) {
    const left = (await io.hostLinks(ctx.hostNetns)).filter((l) => names.has(l.ifname)).map((l) => l.ifname);
    if (left.length === 0) return;
    if (!forced && Date.now() - t0 > 1000) {
      forced = true;
      await runner.run([...ipArgv(ctx), '-force', '-batch', '-'], { stdin: left.map((n) => `link del ${n}`).join('\n') + '\n', allowFail: true });
      continue;
    }
    if (Date.now() - t0 > 15_000) throw new ProviumError(`${left.length} port(s) of deleted node namespaces are still present after 15 s: ${left.slice(0, 5).join(', ')}`);
    await new Promise((r) => setTimeout(r, delay));
  }
}

/**
 * When the lab forwards IPv6 and this apply created or changed one of its bridges:
 * waits until no IPv6 address on the lab's bridges is tentative ("tentative": true in
 * the addr_info of iproute2's `ip -j addr show`, or of the netlink helper's read). A new
 * bridge's link-local address goes through duplicate address detection (~1-2 s);
 * until then the host cannot resolve the neighbours it forwards IPv6 to, so apply
 * returns only once IPv6 forwarding really works. Bounded: after 5 s it goes on
 * (verification and traffic will tell).
 */
export async function waitBridgesIpv6Ready(t: Topology, plan: Plan, ctx: HostContext, runner: Runner): Promise<void> {
  if (!needsForwarding6(t)) return;
  const bridges = new Set(Object.values(t.bridges).filter((b) => b.subnet6).map((b) => bridgeDev(t.lab, b.name)));
  const touched = plan.changes.flatMap((c) => c.items).some((i) => i.after?.ref.kind === 'link' && bridges.has(i.after.ref.name));
  if (!touched) return;
  const t0 = Date.now();
  const io = namespaceIO(runner);
  for (let delay = 20; Date.now() - t0 < 5000; delay = Math.min(delay * 2, 200)) {
    const links = await io.hostLinks(ctx.hostNetns);
    if (!links.some((l) => bridges.has(l.ifname) && (l.addr_info ?? []).some((a) => a.family === 'inet6' && a.tentative))) return;
    await new Promise((res) => setTimeout(res, delay));
  }
}

/** Node namespaces a plan changes: its namespace, NIC and route items, and the peers of changed ports. */
export function touchedNamespaces(plan: Plan): Set<string> {
  const out = new Set<string>();
  for (const it of plan.changes.flatMap((c) => c.items)) {
    const ref = (it.after ?? it.before)!.ref;
    if (ref.kind === 'netns' || ref.kind === 'nic' || ref.kind === 'routes' || ref.kind === 'router' || ref.kind === 'router-nat' || ref.kind === 'router-fw') out.add(ref.ns);
    if (ref.kind === 'link') {
      for (const side of [it.before, it.after]) {
        const a = parseAlias((side?.value as { alias?: string } | undefined)?.alias);
        if (a?.kind === 'port') out.add(nodeNetns(a.lab, a.node));
      }
    }
  }
  return out;
}

/**
 * Re-observes until a fresh plan is empty (up to ~3 s); throws ProviumError listing
 * what remains. With `reuse`, only the namespaces the apply touched are read again.
 */
export async function verify(t: Topology, ctx: HostContext, runner: Runner, reuse?: Reuse, onVerified?: (o: Observation) => void): Promise<Plan> {
  let last: Plan | undefined;
  for (let attempt = 0; attempt < 12; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, Math.min(50 * 2 ** attempt, 800)));
    // The namespaces' read-back is only as fresh as the first attempt: retries read everything again.
    const planned = await planFor(t, ctx, runner, realFiles, attempt === 0 ? reuse : reuse && { ...reuse, readBack: undefined, parts: undefined });
    last = planned.plan;
    if (last.changes.length === 0 && last.errors.length === 0) {
      onVerified?.(planned.observation);
      return last;
    }
  }
  const what = last!.changes.map((c) => `${c.action} ${c.address}`).join(', ');
  throw new ProviumError(`verification failed: after apply the host still differs from the file (${what})`);
}
