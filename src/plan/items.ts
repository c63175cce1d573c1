/**
 * itemize: HostState -> flat list of Items, the unit the planner compares.
 * The same function runs on the desired and the observed state, so both sides are
 * compared like with like. Each item names its owner (the plan address it is shown
 * under), taken from the object itself (ifalias, nft element comment), and how it
 * depends on others (`parent`: deleting it deletes this; `deps`: recreating it
 * recreates this).
 */
import type { HostState, LinkState } from '../model/state.js';
import { createHash } from 'node:crypto';
import { nodeNetns, parseAlias } from '../model/names.js';
import { addr } from './owners.js';
import { classid, DEFAULT_MINOR, tcRateString, UNSHAPED_BPS } from './ids.js';
import { routerItems } from './router-items.js';

export type ItemKind = 'netns' | 'nic' | 'routes' | 'link' | 'fdb' | 'qdisc' | 'class' | 'nft-table' | 'elem' | 'sysctl' | 'vm' | 'vm-nic' | 'vm-link' | 'dnsmasq' | 'resolv' | 'hosts' | 'router' | 'router-nat' | 'router-fw';

/** Identity of an item for command building. */
export type ItemRef =
  | { kind: 'netns'; ns: string }
  | { kind: 'nic'; ns: string; ifname: string }
  | { kind: 'routes'; ns: string }
  | { kind: 'link'; name: string }
  | { kind: 'fdb'; dev: string }
  | { kind: 'qdisc'; dev: string }
  | { kind: 'class'; dev: string; minor: number }
  | { kind: 'nft-table'; family: 'bridge' | 'inet' }
  | { kind: 'elem'; family: 'bridge' | 'inet'; set: string; key: string }
  | { kind: 'sysctl'; name: 'net.ipv4.ip_forward' | 'net.ipv6.conf.all.forwarding' }
  | { kind: 'vm'; node: string }
  | { kind: 'vm-nic'; node: string; tap: string }
  | { kind: 'vm-link'; node: string; tap: string }
  | { kind: 'dnsmasq'; bridge: string }
  | { kind: 'resolv'; ns: string }
  | { kind: 'hosts'; ns: string }
  | { kind: 'router' | 'router-nat' | 'router-fw'; ns: string };

export interface Item {
  key: string;
  ref: ItemRef;
  owner: string;
  /** Comparable fields. A field that is undefined on the desired side is not managed. */
  value: Record<string, unknown>;
  /** Facts for building commands that are not compared (a veth's peer, a class's exact rate). */
  meta?: Record<string, unknown>;
  parent?: string;
  deps: string[];
}

/** Owner address of a link from its ifalias. */
function linkOwner(l: LinkState | undefined, fallback: string): string {
  const a = parseAlias(l?.alias);
  if (a?.kind === 'bridge') return addr.bridge(a.bridge);
  if (a?.kind === 'vxlan') return addr.vxlan(a.bridge);
  if (a?.kind === 'port') return addr.attach(a.bridge, a.node);
  return fallback;
}

function shapingOwner(l: LinkState | undefined, dev: string): string {
  const a = parseAlias(l?.alias);
  return a?.kind === 'port' ? addr.shaping(a.bridge, a.node) : `tc.${dev}`;
}

/**
 * Flattens a state. `portOfNic(ns, ifname)` names the host port behind a NIC (from
 * the lab's naming rule) so a NIC is shown under its attachment.
 */
export function itemize(s: HostState, portOfNic: (ns: string, ifname: string) => string): Item[] {
  const out: Item[] = [];
  for (const ns of Object.values(s.namespaces)) {
    const nsKey = `netns:${ns.name}`;
    out.push({ key: nsKey, ref: { kind: 'netns', ns: ns.name }, owner: addr.node(ns.node), value: { owner: ns.owner, loUp: ns.loUp }, deps: [] });
    const nicKeys: string[] = [];
    for (const nic of Object.values(ns.nics)) {
      const port = portOfNic(ns.name, nic.ifname);
      const key = `nic:${ns.name}/${nic.ifname}`;
      nicKeys.push(key);
      out.push({
        key, ref: { kind: 'nic', ns: ns.name, ifname: nic.ifname },
        owner: linkOwner(s.links[port], addr.node(ns.node)),
        value: { mac: nic.mac, addrs: nic.addrs, addrs6: nic.addrs6, up: nic.up, mtu: nic.mtu },
        parent: `link:${port}`, deps: [nsKey, `link:${port}`],
      });
    }
    if (ns.routes.length > 0) {
      out.push({
        key: `routes:${ns.name}`, ref: { kind: 'routes', ns: ns.name }, owner: addr.nodeRoutes(ns.node),
        value: { routes: ns.routes.map((r) => `${r.dst} via ${r.via}`) }, parent: nsKey, deps: [nsKey, ...nicKeys],
      });
    }
  }
  out.push(...routerItems(s));
  for (const l of Object.values(s.links)) {
    // A veth port goes with its node's namespace: deleting the namespace deletes the pair.
    const a = parseAlias(l.alias);
    const nsParent = l.kind === 'veth' && a?.kind === 'port' ? `netns:${nodeNetns(a.lab, a.node)}` : undefined;
    out.push({
      key: `link:${l.name}`, ref: { kind: 'link', name: l.name }, owner: linkOwner(l, `link.${l.name}`),
      ...(nsParent ? { parent: nsParent } : {}),
      value: {
        kind: l.kind, alias: l.alias, master: l.master, mtu: l.mtu, up: l.up, addrs: l.addrs, addrs6: l.addrs6,
        ...(l.vxlan ? { vxlan: `vni ${l.vxlan.vni} port ${l.vxlan.port} local ${l.vxlan.local}` } : {}),
      },
      meta: { peerNetns: l.peerNetns, peerName: l.peerName, peerMac: l.peerMac, vxlan: l.vxlan },
      deps: [...(l.peerNetns ? [`netns:${l.peerNetns}`] : []), ...(l.master ? [`link:${l.master}`] : [])],
    });
    // A VXLAN port's unicast peers (head-end replication), changed in place.
    if (l.vxlan) {
      out.push({
        key: `fdb:${l.name}`, ref: { kind: 'fdb', dev: l.name }, owner: linkOwner(l, `link.${l.name}`), value: { peers: [...l.vxlan.peers].sort() },
        parent: `link:${l.name}`, deps: [`link:${l.name}`],
      });
    }
  }
  const prioOwners = new Map(Object.values(s.nft.bridge?.prio ?? {}).map((p) => [p.value, p.owner]));
  for (const sh of Object.values(s.shaping)) {
    const qKey = `qdisc:${sh.dev}`;
    const link = s.links[sh.dev];
    const sOwner = shapingOwner(link, sh.dev);
    out.push({ key: qKey, ref: { kind: 'qdisc', dev: sh.dev }, owner: sOwner, value: { major: sh.major, defaultMinor: sh.defaultMinor }, parent: `link:${sh.dev}`, deps: [`link:${sh.dev}`] });
    for (const c of Object.values(sh.classes)) {
      let owner = prioOwners.get(classid(sh.major, c.minor)) ?? sOwner;
      if (c.minor === DEFAULT_MINOR && (c.rateBps !== UNSHAPED_BPS || c.netem)) {
        const a = parseAlias(link?.alias);
        if (a?.kind === 'port') owner = addr.impairWhole(a.bridge);
      }
      out.push({
        key: `class:${sh.dev}:${c.minor}`, ref: { kind: 'class', dev: sh.dev, minor: c.minor }, owner,
        value: { rate: tcRateString(c.rateBps), delayMs: c.netem?.delayMs ?? 0, jitterMs: c.netem?.jitterMs ?? 0, limit: c.netem?.limit },
        meta: { major: sh.major, bps: c.rateBps },
        parent: qKey, deps: [qKey],
      });
    }
  }
  const elems = (family: 'bridge' | 'inet', set: string, m: Record<string, { owner: string; value: unknown }>, tKey: string) => {
    const deps = [tKey]; // shared by the set's elements (a big lab has tens of thousands): items are never changed
    for (const k in m) {
      const e = m[k];
      out.push({
        key: `elem:${family}:${set}:${k}`, ref: { kind: 'elem', family, set, key: k }, owner: e.owner,
        value: { value: e.value, owner: e.owner }, parent: tKey, deps,
      });
    }
  };
  if (s.nft.bridge) {
    const t = s.nft.bridge;
    const tKey = 'nft-table:bridge';
    out.push({ key: tKey, ref: { kind: 'nft-table', family: 'bridge' }, owner: addr.nftBridge, value: { skeleton: t.skeleton }, deps: [] });
    elems('bridge', 'blocked', t.blocked, tKey);
    elems('bridge', 'isolated', t.isolated, tKey);
    elems('bridge', 'loss', t.loss, tKey);
    elems('bridge', 'loss_port', t.lossPort ?? {}, tKey);
    elems('bridge', 'loss_own', t.lossOwn ?? {}, tKey);
    elems('bridge', 'prio', t.prio, tKey);
  }
  if (s.nft.inet) {
    const t = s.nft.inet;
    const tKey = 'nft-table:inet';
    out.push({ key: tKey, ref: { kind: 'nft-table', family: 'inet' }, owner: addr.nftInet, value: { skeleton: t.skeleton }, deps: [] });
    elems('inet', 'bridges', t.bridges, tKey);
    elems('inet', 'routed', t.forward, tKey);
    elems('inet', 'uplinked', t.uplinkBridges, tKey);
    elems('inet', 'masq', t.masqSources, tKey);
    elems('inet', 'wan', t.uplinkOifs, tKey);
    elems('inet', 'masq6', t.masqSources6, tKey);
    elems('inet', 'wan6', t.uplinkOifs6, tKey);
    elems('inet', 'forwards', t.forwards, tKey);
  }
  for (const vm of Object.values(s.vms)) {
    const vKey = `vm:${vm.node}`;
    const { spec } = vm;
    out.push({
      key: vKey, ref: { kind: 'vm', node: vm.node }, owner: addr.node(vm.node),
      value: {
        kernel: spec.kernel, initrd: spec.initrd, append: spec.append, disk: spec.disk, memoryMb: spec.memoryMb, cpus: spec.cpus,
        accel: spec.accel, alive: vm.alive, status: vm.status,
      },
      meta: { vm }, deps: [],
    });
    for (const nic of Object.values(vm.nics)) {
      const nKey = `vm-nic:${vm.node}:${nic.tap}`;
      const owner = linkOwner(s.links[nic.tap], addr.node(vm.node));
      out.push({
        key: nKey, ref: { kind: 'vm-nic', node: vm.node, tap: nic.tap }, owner, value: { mac: nic.mac, slot: nic.slot, ...(nic.mtu ? { mtu: nic.mtu } : {}) },
        meta: { nic }, parent: vKey, deps: [vKey, `link:${nic.tap}`],
      });
      const link = vm.links[nic.tap];
      if (link) {
        out.push({
          key: `vm-link:${vm.node}:${nic.tap}`, ref: { kind: 'vm-link', node: vm.node, tap: nic.tap }, owner,
          value: { link }, parent: nKey, deps: [nKey],
        });
      }
    }
  }
  for (const d of Object.values(s.dnsmasq)) {
    out.push({
      key: `dnsmasq:${d.bridge}`, ref: { kind: 'dnsmasq', bridge: d.bridge }, owner: addr.dns(d.bridge),
      value: { config: `sha256:${createHash('sha256').update(d.config).digest('hex').slice(0, 16)}`, alive: d.alive },
      // Bound to its bridge device: re-created with it.
      meta: { config: d.config, pid: d.pid }, deps: [`link:${/^interface=(\S+)$/m.exec(d.config)?.[1] ?? d.bridge}`],
    });
  }
  for (const [ns, content] of Object.entries(s.resolv)) {
    const node = s.namespaces[ns]?.node ?? ns;
    out.push({ key: `resolv:${ns}`, ref: { kind: 'resolv', ns }, owner: addr.nodeResolv(node), value: { content }, deps: [`netns:${ns}`] });
  }
  for (const [ns, content] of Object.entries(s.hosts ?? {})) {
    const node = s.namespaces[ns]?.node ?? ns;
    out.push({ key: `hosts:${ns}`, ref: { kind: 'hosts', ns }, owner: addr.nodeHosts(node), value: { content }, deps: [`netns:${ns}`] });
  }
  if (s.ipForward !== undefined) {
    out.push({ key: 'sysctl:ip_forward', ref: { kind: 'sysctl', name: 'net.ipv4.ip_forward' }, owner: addr.ipForward, value: { value: s.ipForward ? 1 : 0 }, deps: [] });
  }
  if (s.ip6Forward !== undefined) {
    out.push({ key: 'sysctl:ip6_forward', ref: { kind: 'sysctl', name: 'net.ipv6.conf.all.forwarding' }, owner: addr.ip6Forward, value: { value: s.ip6Forward ? 1 : 0 }, deps: [] });
  }
  return out;
}
