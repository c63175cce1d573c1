/**
 * apply: runs a plan's invocations in order (node-namespace batches concurrently),
 * then observes again and verifies that a fresh plan is empty, retrying briefly
 * while the kernel settles (namespace and veth teardown is asynchronous).
 */
import type { Topology } from '../model/topology.js';
import type { HostState } from '../model/state.js';
import { ProviumError } from '../model/diagnostics.js';
import { mapLimit, type Runner } from '../host/runner.js';
import { observe, realFiles, type HostFiles, type Observation, type Reuse } from '../observe/index.js';
import { nodeNetns, parseAlias } from '../model/names.js';
import { computePlan, wantedFor, type Plan } from '../plan/index.js';
import { ipArgv, type HostContext } from '../plan/commands.js';
import type { Invocation } from '../plan/types.js';
import { readRecord, writeRecord, stateRoot } from './statedir.js';
import { startVm, stopVm, runQmp } from './vm.js';
import { join } from 'node:path';

export interface Planned {
  plan: Plan;
  observation: Observation;
}

/**
 * Observes the host and computes the plan for a topology. When the lab recorded the
 * ip_forward value it found, a topology that no longer routes restores it.
 */
export async function planFor(t: Topology, ctx0: HostContext, runner: Runner, files: HostFiles = realFiles, reuse?: Reuse): Promise<Planned> {
  const ctx: HostContext = { ...ctx0, stateDir: ctx0.stateDir ?? join(stateRoot(), t.lab) };
  const rec = readRecord(t.lab);
  const wanted = wantedFor(t);
  if (rec.ipForwardBefore !== undefined) wanted.ipForward = true;
  const observation = await observe(t.lab, ctx, runner, wanted, files, reuse);
  const plan = computePlan(t, managedView(t, observation.state, rec.ipForwardBefore), observation.facts, ctx, rec.ipForwardBefore);
  return { plan, observation };
}

/** ip_forward is only managed while the lab routes, or while it has a value to restore. */
function managedView(t: Topology, s: HostState, before: boolean | undefined): HostState {
  const routes = Object.values(t.bridges).some((b) => b.uplink || b.routes.length > 0);
  if (routes || before !== undefined) return s;
  return { ...s, ipForward: undefined };
}

/** Runs one invocation: a host command, or a VM action (start, stop, QMP steps). Returns a command's stdout. */
async function runOne(inv: Invocation, runner: Runner): Promise<string> {
  if (inv.vmStart) await startVm(inv, runner);
  else if (inv.vmStop) await stopVm(inv);
  else if (inv.qmp) await runQmp(inv);
  else return (await runner.run(inv.argv, { stdin: inv.stdin })).stdout;
  return '';
}

/**
 * Runs invocations in order; consecutive per-namespace batches and VM starts/stops run
 * 8 at a time. Returns what the namespace batches read back (namespace -> JSON output).
 * Throws CommandError.
 */
export async function runInvocations(invs: Invocation[], runner: Runner, onStep?: (inv: Invocation) => void): Promise<Map<string, string>> {
  const readBack = new Map<string, string>();
  let i = 0;
  while (i < invs.length) {
    const isNs = (x: Invocation) => x.label.startsWith('namespace ') || x.vmStart !== undefined || x.vmStop !== undefined;
    if (isNs(invs[i])) {
      let j = i;
      while (j < invs.length && isNs(invs[j])) j++;
      const group = invs.slice(i, j);
      await mapLimit(group, 8, async (inv) => {
        onStep?.(inv);
        const out = await runOne(inv, runner);
        if (inv.readsBack) readBack.set(inv.readsBack, out);
      });
      i = j;
    } else {
      onStep?.(invs[i]);
      await runOne(invs[i], runner);
      i++;
    }
  }
  return readBack;
}

/** Applies a computed plan, records what must be restored later, and verifies. Returns the number of changing invocations run. */
export async function applyPlan(t: Topology, planned: Planned, ctx: HostContext, runner: Runner, onStep?: (inv: Invocation) => void): Promise<number> {
  const { plan, observation } = planned;
  if (plan.errors.length) throw new ProviumError('the plan has errors; nothing was changed');
  const rec = readRecord(t.lab);
  const setsForward = plan.invocations.some((x) => x.label === 'sysctl' && x.argv.includes('net.ipv4.ip_forward=1'));
  if (setsForward && rec.ipForwardBefore === undefined && observation.state.ipForward === false) {
    writeRecord(t.lab, { ...rec, ipForwardBefore: false });
  }
  const readBack = await runInvocations(plan.invocations, runner, onStep);
  await waitPortsGone(plan, ctx, runner);
  await verify(t, { ...ctx, refreshLinks: false }, runner, { previous: observation.state, touched: touchedNamespaces(plan), readBack });
  return plan.invocations.length;
}

/**
 * Ports removed by deleting their node's namespace disappear asynchronously (the
 * kernel tears veth pairs down in bulk). Waits, with one cheap `ip -j link show` per
 * poll, until none is left (up to 15 s), so verification reads a settled host.
 */
async function waitPortsGone(plan: Plan, ctx: HostContext, runner: Runner): Promise<void> {
  const names = new Set(plan.changes.flatMap((c) => c.items).filter((i) => i.implied && i.before?.ref.kind === 'link').map((i) => (i.before!.ref as { name: string }).name));
  if (names.size === 0) return;
  const t0 = Date.now();
  for (let delay = 10; ; delay = Math.min(delay * 2, 200)) {
    const r = await runner.run([...ipArgv(ctx), '-j', 'link', 'show']);
    const left = (JSON.parse(r.stdout || '[]') as { ifname: string }[]).filter((l) => names.has(l.ifname));
    if (left.length === 0) return;
    if (Date.now() - t0 > 15_000) throw new ProviumError(`${left.length} port(s) of deleted node namespaces are still present after 15 s: ${left.slice(0, 5).map((l) => l.ifname).join(', ')}`);
    await new Promise((r) => setTimeout(r, delay));
  }
}

/** Node namespaces a plan changes: its namespace, NIC and route items, and the peers of changed ports. */
export function touchedNamespaces(plan: Plan): Set<string> {
  const out = new Set<string>();
  for (const it of plan.changes.flatMap((c) => c.items)) {
    const ref = (it.after ?? it.before)!.ref;
    if (ref.kind === 'netns' || ref.kind === 'nic' || ref.kind === 'routes') out.add(ref.ns);
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
export async function verify(t: Topology, ctx: HostContext, runner: Runner, reuse?: Reuse): Promise<Plan> {
  let last: Plan | undefined;
  for (let attempt = 0; attempt < 12; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, Math.min(50 * 2 ** attempt, 800)));
    // The namespaces' read-back is only as fresh as the first attempt: retries read again.
    last = (await planFor(t, ctx, runner, realFiles, attempt === 0 ? reuse : reuse && { ...reuse, readBack: undefined })).plan;
    if (last.changes.length === 0 && last.errors.length === 0) return last;
  }
  const what = last!.changes.map((c) => `${c.action} ${c.address}`).join(', ');
  throw new ProviumError(`verification failed: after apply the host still differs from the file (${what})`);
}
