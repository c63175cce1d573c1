/**
 * Plan, apply, verify, roll back and destroy a multi-host lab: the single-host engine
 * (observe, computePlan, runInvocations, planToState) run per host on that host's
 * projection (project.ts), hosts in parallel.
 *
 * plan: observes every host at once, takes each host's underlay MTU from what it read,
 * fits spanning bridges' MTU (or fails naming the bridge), then plans each host; errors
 * name their host. apply: every host's invocations in parallel; then verification
 * re-plans every host until all plans are empty; a failure on any host rolls back every
 * host that ran something to the state observed before (each by its own plan to state).
 */
import type { Topology } from '../model/topology.js';
import type { Diagnostic } from '../model/diagnostics.js';
import { ProviumError } from '../model/diagnostics.js';
import type { HostState } from '../model/state.js';
import { observe, type Observation } from '../observe/index.js';
import { computePlan, planToState, wantedFor, type Plan } from '../plan/index.js';
import { needsForwarding, needsForwarding6 } from '../plan/realize.js';
import type { HostContext } from '../plan/commands.js';
import type { Invocation } from '../plan/types.js';
import { ApplyError, deletedNetns, runInvocations, waitBridgesIpv6Ready, waitPortsGone } from '../apply/index.js';
import type { LabRecord } from '../apply/statedir.js';
import { project, spanningMtus } from './project.js';
import type { LabHost } from './hosts.js';

/** The plan of one host. */
export interface HostPlan {
  host: string;
  /** The host's projection of the file (what it was planned for). */
  topology: Topology;
  ctx: HostContext;
  plan: Plan;
  observation: Observation;
  record: LabRecord;
}

/** A multi-host plan: one plan per host, plus lab-wide errors (MTU that cannot fit, a missing underlay address). */
export interface MultiPlan {
  lab: string;
  hosts: HostPlan[];
  errors: Diagnostic[];
}

/** Whether the whole plan has nothing to do. */
export function isEmpty(mp: MultiPlan): boolean {
  return mp.errors.length === 0 && mp.hosts.every((h) => h.plan.changes.length === 0 && h.plan.errors.length === 0);
}

/** Every error, host errors prefixed with their host. */
export function allErrors(mp: MultiPlan): Diagnostic[] {
  return [...mp.errors, ...mp.hosts.flatMap((h) => h.plan.errors.map((e) => ({ ...e, summary: `host ${h.host}: ${e.summary}` })))];
}

/** ip_forward is managed only while the lab routes on that host, or has a value to restore (as apply/index.ts managedView). */
function managedView(t: Topology, s: HostState, rec: LabRecord): HostState {
  const out = { ...s };
  if (!needsForwarding(t) && rec.ipForwardBefore === undefined) out.ipForward = undefined;
  if (!needsForwarding6(t) && rec.ip6ForwardBefore === undefined) out.ip6Forward = undefined;
  return out;
}

/**
 * Observes every host (in parallel) and plans each. `opts.refreshLinks`/`replace` as for a
 * single host. Pure apart from the reads; throws only when a host cannot be read.
 */
export async function planHosts(t: Topology, hosts: LabHost[], opts: { refreshLinks?: boolean; replace?: string[] } = {}): Promise<MultiPlan> {
  const first = spanningMtus(t, {});
  const read = await Promise.all(
    hosts.map(async (h) => {
      const proj = project(t, h.name, first.mtus);
      const wanted = wantedFor(proj);
      const { files, record } = await h.files(wanted);
      if (record.ipForwardBefore !== undefined) wanted.ipForward = true;
      if (record.ip6ForwardBefore !== undefined) wanted.ip6Forward = true;
      try {
        return { h, record, observation: await observe(t.lab, h.ctx, h.runner, wanted, files) };
      } catch (e) {
        throw new ProviumError(`host ${h.name}: reading the host failed: ${(e as Error).message}`);
      }
    }),
  );
  const errors: Diagnostic[] = [];
  const underlayMtu: Record<string, number> = {};
  for (const { h, observation } of read) {
    const mtu = observation.facts.addressMtu?.[h.spec.underlay];
    if (mtu === undefined) {
      errors.push({ severity: 'error', pos: h.spec.pos, summary: `host ${h.name}: underlay ${h.spec.underlay} is not an address of the lab's host namespace there`, detail: 'VXLAN tunnels start from that address: add it there, or set underlay: to one of its addresses' });
    } else underlayMtu[h.name] = mtu;
  }
  const fit = spanningMtus(t, underlayMtu);
  errors.push(...fit.errors);
  const plans = read.map(({ h, record, observation }): HostPlan => {
    const proj = project(t, h.name, fit.mtus);
    const ctx: HostContext = { ...h.ctx, refreshLinks: opts.refreshLinks, replace: opts.replace?.filter((a) => a.startsWith('node.') ? !!proj.nodes[a.split('.')[1]] : true) };
    const plan = computePlan(proj, managedView(proj, observation.state, record), observation.facts, ctx, record.ipForwardBefore, record.ip6ForwardBefore);
    if (errors.length) plan.invocations = [];
    return { host: h.name, topology: proj, ctx, plan, observation, record };
  });
  return { lab: t.lab, hosts: plans, errors };
}

export interface HostApplyOptions {
  rollback?: boolean;
  onStep?: (host: string, inv: Invocation) => void;
  onProcesses?: (host: string, ns: string, pids: number[]) => void;
  /** Per host: run these invocations instead of the plan's (a saved plan's, identical by fingerprint). */
  invocations?: Record<string, Invocation[]>;
}

/** Runs one host's plan: records, processes in deleted namespaces, the namespace journal, the invocations, settling waits. */
async function applyOne(h: LabHost, hp: HostPlan, invs: Invocation[], opts: HostApplyOptions): Promise<void> {
  const { plan, observation, record } = hp;
  const sets = (name: string) => invs.some((x) => x.label === 'sysctl' && x.argv.includes(`${name}=1`));
  const found: LabRecord = {};
  if (sets('net.ipv4.ip_forward') && record.ipForwardBefore === undefined && observation.state.ipForward === false) found.ipForwardBefore = false;
  if (sets('net.ipv6.conf.all.forwarding') && record.ip6ForwardBefore === undefined && observation.state.ip6Forward === false) found.ip6ForwardBefore = false;
  if (Object.keys(found).length) await h.writeFile(`${h.ctx.stateDir}/state.json`, JSON.stringify({ ...record, ...found }, null, 2) + '\n');
  await h.endProcesses(deletedNetns(invs), (ns, pids) => opts.onProcesses?.(h.name, ns, pids));
  const created = invs.filter((i) => i.label === 'node namespaces').flatMap((i) => (i.stdin ?? '').split('\n').filter((l) => l.startsWith('netns add ')).map((l) => l.slice(10)));
  const journal = `${h.ctx.stateDir}/pending-netns.json`;
  if (created.length) await h.writeFile(journal, JSON.stringify(created));
  try {
    await runInvocations(invs, h.runner, (inv) => opts.onStep?.(h.name, inv), h.actions);
    await waitPortsGone(plan, h.ctx, h.runner);
    await waitBridgesIpv6Ready(hp.topology, plan, h.ctx, h.runner);
  } finally {
    if (created.length) await h.removeFiles([journal], []).catch(() => undefined);
  }
}

/**
 * Applies a multi-host plan: every host's invocations in parallel, then verifies that a
 * fresh plan of every host is empty. On a failure (a command on any host, or the
 * verification) every host that ran something is rolled back to its observed state,
 * then ApplyError names the host. Returns the number of invocations run.
 */
export async function applyHosts(t: Topology, hosts: LabHost[], mp: MultiPlan, opts: HostApplyOptions = {}): Promise<number> {
  if (allErrors(mp).length) throw new ProviumError('the plan has errors; nothing was changed on any host');
  const byName = new Map(hosts.map((h) => [h.name, h]));
  const work = mp.hosts.map((hp) => ({ hp, h: byName.get(hp.host)!, invs: opts.invocations?.[hp.host] ?? hp.plan.invocations })).filter((w) => w.invs.length > 0);
  const results = await Promise.allSettled(work.map((w) => applyOne(w.h, w.hp, w.invs, opts)));
  let failure: Error | undefined;
  results.forEach((r, i) => {
    if (r.status === 'rejected' && !failure) {
      const e = r.reason as Error;
      e.message = e.message.startsWith('on host ') ? e.message : `on host ${work[i].hp.host}: ${e.message}`;
      failure = e;
    }
  });
  if (!failure) {
    try {
      await verifyHosts(t, hosts);
    } catch (e) {
      failure = e as Error;
    }
  }
  if (failure) {
    if (opts.rollback === false) throw new ApplyError(failure, undefined);
    try {
      await Promise.all(work.map((w) => rollbackHost(w.h, w.hp)));
    } catch (re) {
      throw new ApplyError(failure, false, re as Error);
    }
    throw new ApplyError(failure, true);
  }
  // Values recorded for restoring are dropped once restored.
  await Promise.all(mp.hosts.map(async (hp) => {
    const rec = { ...hp.record };
    let changed = false;
    if (!needsForwarding(hp.topology) && rec.ipForwardBefore !== undefined) (delete rec.ipForwardBefore, (changed = true));
    if (!needsForwarding6(hp.topology) && rec.ip6ForwardBefore !== undefined) (delete rec.ip6ForwardBefore, (changed = true));
    const h = byName.get(hp.host)!;
    if (changed) await h.writeFile(`${h.ctx.stateDir}/state.json`, JSON.stringify(rec, null, 2) + '\n');
  }));
  return work.reduce((n, w) => n + w.invs.length, 0);
}

/** Re-plans every host until all plans are empty (up to ~3 s); throws ProviumError naming what remains where. */
export async function verifyHosts(t: Topology, hosts: LabHost[]): Promise<MultiPlan> {
  let last: MultiPlan | undefined;
  for (let attempt = 0; attempt < 10; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, Math.min(50 * 2 ** attempt, 800)));
    last = await planHosts(t, hosts);
    if (isEmpty(last)) return last;
  }
  const what = last!.hosts.flatMap((h) => h.plan.changes.map((c) => `host ${h.host}: ${c.action} ${c.address}`)).join(', ');
  throw new ProviumError(`verification failed: after apply the hosts still differ from the file (${what || allErrors(last!).map((e) => e.summary).join(', ')})`);
}

/** Plans one host back to the state observed before the apply, runs it, checks it. */
async function rollbackHost(h: LabHost, hp: HostPlan): Promise<void> {
  const before = hp.observation.state;
  const wanted = { ...wantedFor(hp.topology), ipForward: before.ipForward !== undefined, ip6Forward: before.ip6Forward !== undefined };
  const read = async () => observe(hp.topology.lab, h.ctx, h.runner, wanted, (await h.files(wanted)).files);
  const back = planToState(hp.topology.lab, before, (await read()).state, h.ctx);
  await runInvocations(back.invocations, h.runner, undefined, h.actions);
  await waitPortsGone(back, h.ctx, h.runner);
  for (let attempt = 0; attempt < 8; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, 100 * attempt));
    if (planToState(hp.topology.lab, before, (await read()).state, h.ctx).changes.length === 0) return;
  }
  throw new ProviumError(`host ${h.name}: after rolling back, the host still differs from the state before the apply`);
}

/** The topology destroy plans for: the same hosts, no nodes and no bridges. */
export function emptyHostsTopology(t: Topology): Topology {
  return { ...t, nodes: {}, bridges: {} };
}

/** After destroy: the lab's folder on every host (and the state root where it is empty). */
export async function removeLabDirs(t: Topology, hosts: LabHost[]): Promise<void> {
  await Promise.all(hosts.map((h) => h.removeFiles([`${h.ctx.stateDir}/state.json`, `${h.ctx.stateDir}/pending-netns.json`], [`${h.ctx.stateDir}/dnsmasq`, `${h.ctx.stateDir}/vm`, h.ctx.stateDir!, h.root])));
}
