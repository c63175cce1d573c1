/**
 * plan: a pure function of (topology, observation) -> Plan; and `wantedFor`, which
 * tells observe what names to check for conflicts and which optional facts to read.
 */
import type { Topology } from '../model/topology.js';
import { hasNamespace } from '../model/topology.js';
import type { Diagnostic } from '../model/diagnostics.js';
import type { HostState, HostFacts } from '../model/state.js';
import * as names from '../model/names.js';
import type { Wanted } from '../observe/index.js';
import { FEATURE_FIX, featureModule } from '../observe/features.js';
import { realize, requiredFeatures, bootsVm, needsForwarding, needsForwarding6, isHome, isHere, type RealizeContext } from './realize.js';
import { dirname, resolve } from 'node:path';
import { itemize, type Item } from './items.js';
import { diffItems, groupChanges, targetChanges } from './diff.js';
import { buildInvocations, type HostContext } from './commands.js';
import type { Plan } from './types.js';

export type { Plan } from './types.js';

/** The names and facts observe must look at for this topology. */
export function wantedFor(t: Topology, observedHint?: HostState): Wanted {
  const links: string[] = [];
  const namespaces: string[] = [];
  for (const b of Object.values(t.bridges)) {
    if (!isHere(b)) continue;
    links.push(names.bridgeDev(t.lab, b.name));
    if (b.placement?.vxlan) links.push(names.vxlanDev(t.lab, b.name));
    for (const a of b.attach) if (!a.remote) links.push(names.portDev(t.lab, a.node, a.nicIndex));
  }
  for (const n of Object.values(t.nodes)) if (hasNamespace(n.kind)) namespaces.push(names.nodeNetns(t.lab, n.name));
  const routers = Object.values(t.nodes).filter((n) => n.kind === 'router').map((n) => names.nodeNetns(t.lab, n.name));
  const l3 = needsForwarding(t);
  const vms = Object.values(t.nodes).filter(bootsVm);
  const files = vms.flatMap((n) => [n.qemu!.kernel, n.qemu!.initrd, n.qemu!.disk]).filter((x): x is string => !!x).map((f) => resolve(dirname(t.file), f));
  const home = Object.values(t.bridges).filter(isHome);
  const forwardPorts = home.flatMap((b) => b.forwards.map((f) => `${f.proto}/${f.hostPort}`));
  const resolv = Object.values(t.nodes).filter((n) => n.kind === 'netns' && Object.values(t.bridges).some((b) => b.dns && b.attach.some((a) => a.node === n.name))).map((n) => names.nodeNetns(t.lab, n.name));
  return {
    links, namespaces, files, qemu: vms.length > 0, vms: vms.map((n) => n.name), forwardPorts, resolv, hosts: namespaces, dnsmasq: home.some((b) => b.dhcp || b.dns),
    defaultRoute: home.some((b) => b.uplink),
    ipForward: l3 || observedHint?.nft.inet !== undefined,
    ip6Forward: needsForwarding6(t),
    ...(routers.length ? { routers } : {}),
  };
}

/** A topology with no nodes and no bridges: planning against it deletes everything the lab owns. */
export function emptyTopology(lab: string, file = '<destroy>'): Topology {
  return { file, lab, nodes: {}, bridges: {} };
}

/** Maps a NIC inside a node namespace to its host port by the naming rule (eth<i> -> <lab>-<node>-<i>). */
export function portOfNic(lab: string, state: HostState) {
  return (ns: string, ifname: string): string => {
    const node = state.namespaces[ns]?.node ?? ns.slice(names.netnsPrefix(lab).length);
    return names.portDev(lab, node, Number(ifname.replace(/^eth/, '')));
  };
}

/**
 * Computes the plan. Pure: no host access. Errors (conflicts with objects provium
 * does not own, kernel features the topology needs but the host lacks, an uplink
 * without a default route) are returned in `errors`; apply refuses such a plan.
 * `ipForwardBefore`/`ip6ForwardBefore`: net.ipv4.ip_forward and
 * net.ipv6.conf.all.forwarding as the lab found them (its state directory), restored
 * once the topology no longer needs them.
 */
/**
 * The last realization of each topology object (and its items), reused while the
 * topology (compared by its JSON) and the realize context are the same: an apply's
 * verification plans the same file again right after the plan (a 200-node lab: realize
 * and itemize ~70 ms). Callers treat both as read-only; computePlan copies the state
 * before setting its forwarding fields.
 */
const realized = new WeakMap<Topology, { key: string; state: HostState; items?: { key: string; items: Item[] } }>();

function desiredOf(t: Topology, rctx: RealizeContext): { key: string; state: HostState; items?: { key: string; items: Item[] } } {
  const key = `${JSON.stringify(rctx)}\n${JSON.stringify(t)}`;
  const hit = realized.get(t);
  if (hit?.key === key) return hit;
  const entry = { key, state: realize(t, rctx) };
  realized.set(t, entry);
  return entry;
}

/**
 * Realizes and itemizes t's desired state ahead of computePlan (which then finds both
 * memoized when `rctx` is the one it builds from the facts: { defaultRouteDev,
 * defaultRouteDev6, kvmUsable, stateDir }, in that order). planFor does it while the
 * host's answers are on their way. Pure.
 */
export function prepareDesired(t: Topology, rctx: RealizeContext): void {
  const memo = desiredOf(t, rctx);
  const key = `${memo.state.ipForward}/${memo.state.ip6Forward}`;
  if (memo.items?.key !== key) memo.items = { key, items: itemize(memo.state, portOfNic(t.lab, memo.state)) };
}

export function computePlan(t: Topology, observedIn: HostState, facts: HostFacts, ctx: HostContext, ipForwardBefore?: boolean, ip6ForwardBefore?: boolean): Plan {
  let observed = observedIn;
  const errors: Diagnostic[] = [];
  for (const c of facts.conflicts) {
    errors.push({
      severity: 'error', summary: `conflict: ${c.kind} ${c.name} exists and is not owned by lab ${t.lab}`,
      detail: `found ${c.found}; provium never changes objects it does not own. Remove or rename it, or rename the lab/node/bridge`,
    });
  }
  const seen = new Set<string>();
  for (const r of requiredFeatures(t)) {
    if (facts.features[r.feature] || seen.has(r.feature)) continue;
    seen.add(r.feature);
    errors.push({
      severity: 'error', pos: r.pos,
      summary: `missing kernel feature: ${featureModule(r.feature)} (${r.because})`,
      detail: `this kernel has no ${featureModule(r.feature)} (${facts.featureSource[r.feature]}). Fix: ${FEATURE_FIX[r.feature]}`,
    });
  }
  const uplinks = Object.values(t.bridges).filter((b) => isHome(b) && b.uplink);
  if (uplinks.length > 0 && !facts.defaultRouteDev) {
    errors.push({
      severity: 'error', pos: uplinks[0].keyPos?.uplink ?? uplinks[0].pos,
      summary: `uplink: the lab's host namespace${ctx.hostNetns ? ` (${ctx.hostNetns})` : ''} has no default route`,
      detail: 'an uplink masquerades to the default-route interface; add a default route or set uplink: false',
    });
  }
  for (const n of Object.values(t.nodes).filter(bootsVm)) {
    for (const f of [n.qemu!.kernel, n.qemu!.initrd, n.qemu!.disk]) {
      if (f && facts.missingFiles?.includes(resolve(dirname(t.file), f))) {
        const key = (['kernel', 'initrd', 'disk'] as const).find((k) => n.qemu![k] === f);
        errors.push({ severity: 'error', pos: (key && n.keyPos?.[key]) ?? n.pos, summary: `node ${n.name}: file not found: ${f}`, detail: `resolved against the topology file's folder: ${resolve(dirname(t.file), f)}` });
      }
    }
  }
  const served = Object.values(t.bridges).find((b) => isHome(b) && (b.dhcp || b.dns));
  if (served && facts.dnsmasqBinary === undefined) {
    errors.push({ severity: 'error', pos: served.keyPos?.dhcp ?? served.keyPos?.dns ?? served.pos, summary: `dnsmasq not found: bridge ${served.name} serves DHCP/DNS`, detail: 'install it (Debian: apt-get install dnsmasq-base)' });
  }
  if (Object.values(t.nodes).some(bootsVm) && facts.qemuBinary === undefined) {
    errors.push({ severity: 'error', summary: 'qemu-system-x86_64 not found: the topology boots VMs', detail: 'install it (Debian: apt-get install qemu-system-x86)' });
  }
  for (const b of Object.values(t.bridges).filter(isHome)) {
    for (const f of b.forwards) {
      if (facts.portsInUse?.includes(`${f.proto}/${f.hostPort}`)) {
        errors.push({
          severity: 'error', pos: f.pos, summary: `forward: host port ${f.hostPort}/${f.proto} is in use`,
          detail: `a socket listens on it in the lab's host namespace${ctx.hostNetns ? ` (${ctx.hostNetns})` : ''}; choose another host_port or stop that service`,
        });
      }
    }
  }
  const memo = desiredOf(t, { defaultRouteDev: facts.defaultRouteDev, defaultRouteDev6: facts.defaultRouteDev6, kvmUsable: facts.kvmUsable, stateDir: ctx.stateDir });
  const desired = { ...memo.state };
  if (ctx.refreshLinks) for (const vm of Object.values(observed.vms)) observed = { ...observed, vms: { ...observed.vms, [vm.node]: { ...vm, links: {} } } };
  // Without routing, ip_forward goes back to what the lab found (recorded in its state directory).
  if (desired.ipForward === undefined && ipForwardBefore !== undefined && observed.ipForward !== undefined) desired.ipForward = ipForwardBefore;
  if (desired.ip6Forward === undefined && ip6ForwardBefore !== undefined && observed.ip6Forward !== undefined) desired.ip6Forward = ip6ForwardBefore;
  const lab = t.lab;
  const itemsKey = `${desired.ipForward}/${desired.ip6Forward}`;
  if (memo.items?.key !== itemsKey) memo.items = { key: itemsKey, items: itemize(desired, portOfNic(lab, desired)) };
  const dItems = memo.items.items;
  const oItems = itemize(observed, portOfNic(lab, observed));
  for (const a of ctx.replace ?? []) {
    if (!dItems.some((i) => i.owner === a || i.owner.startsWith(`${a}.`))) {
      errors.push({ severity: 'error', summary: `--replace ${a}: no such object in the file`, detail: 'give a plan address as plan prints it, e.g. node.a or bridge.lan.attach.a' });
    }
  }
  for (const x of ctx.targets ?? []) {
    if (!t.nodes[x] && !t.bridges[x]) errors.push({ severity: 'error', summary: `--target ${x}: no node or bridge of that name in the file` });
  }
  const forced = (i: { owner: string }) => (ctx.replace ?? []).some((a) => i.owner === a || i.owner.startsWith(`${a}.`));
  let itemChanges = diffItems(dItems, oItems, forced);
  if (ctx.targets?.length) itemChanges = targetChanges(itemChanges, (address) => ctx.targets!.some((x) => addressMentions(address, x)));
  const changes = groupChanges(itemChanges, dItems, oItems);
  const invocations = errors.length ? [] : buildInvocations(lab, itemChanges, ctx);
  if (invocations.some((i) => i.label.endsWith('conntrack flush')) && !facts.conntrackBinary) {
    errors.push({
      severity: 'error', summary: 'conntrack not found: a router\'s NAT or firewall changes in place',
      detail: 'the connections tracked under the old rules are flushed with conntrack -F in the router\'s namespace; install it (Debian: apt-get install conntrack)',
    });
    return { lab, changes, errors, invocations: [] };
  }
  return { lab, changes, errors, invocations };
}

/** Whether a plan address is about node or bridge `name` (node.a, bridge.lan.attach.a, ...impairment[a>b], ...partition[a|b,c], route[data<>lan]). */
export function addressMentions(address: string, name: string): boolean {
  const tokens = address.split(/[.[\]<>*,|]+/).filter(Boolean);
  return tokens.includes(name);
}

/**
 * A plan whose target is a host state rather than a topology: rollback plans from
 * the host as it is after a failed apply back to the state observed before it.
 * Pure, like computePlan.
 */
export function planToState(lab: string, desired: HostState, observed: HostState, ctx: HostContext): Plan {
  const dItems = itemize(desired, portOfNic(lab, desired));
  const oItems = itemize(observed, portOfNic(lab, observed));
  const itemChanges = diffItems(dItems, oItems);
  return { lab, changes: groupChanges(itemChanges, dItems, oItems), errors: [], invocations: buildInvocations(lab, itemChanges, ctx) };
}
