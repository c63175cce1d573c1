/**
 * realize: Topology -> desired HostState (pure; no host access).
 * Maps every user-level object onto the host objects that implement it, using the
 * recipes measured in shared/notes/kernel-experiments.md:
 * - partitions: nft bridge-family set of directed pairs, sender MAC . receiver port
 *   (ARP exempt); isolation: a set of port names;
 * - drop: nft `numgen random mod 10000` interval elements per directed pair (sender
 *   MAC . receiver port);
 * - bandwidth/latency: HTB on the destination port's egress, one class per shaped
 *   source (selected by the nft `prio` map, sender MAC . receiver port, through
 *   skb->priority), netem as leaf;
 *   a whole-bridge bandwidth/latency is each member port's default class;
 * - uplink/routes: inet-family table plus ip_forward, routes inside the nodes; for
 *   bridges with subnet6 also IPv6 routes, net.ipv6.conf.all.forwarding and an IPv6
 *   masquerade.
 * Per-pair impairment fields override the whole-bridge field of the same name.
 */
import type { Topology, BridgeSpec, GroupRef, ImpairmentSpec, NodeSpec } from '../model/topology.js';
import { hasNamespace } from '../model/topology.js';
import { defaultGateways, realizeRouters, returnRoutes } from './routers.js';
import { dirname, resolve } from 'node:path';
import type { HostState, PortShaping, NftBridgeTable, NftInetTable, RouteState } from '../model/state.js';
import { emptyState, routeOrder } from '../model/state.js';
import * as names from '../model/names.js';
import { addr } from './owners.js';
import { allocateMajors, allocateMinors, classid, DEFAULT_MINOR, UNSHAPED_BPS } from './ids.js';
import { bridgeSkeleton, inetSkeleton, desiredFingerprint } from './nft-skeleton.js';
import { hostsFiles } from './hosts.js';
import { PROFILES } from '../load/profiles.js';

/** What realize needs to know about the host (observed before planning). */
export interface RealizeContext {
  /** Interface of the host namespace's default route (for uplink NAT). */
  defaultRouteDev?: string;
  /** Interface of the host namespace's IPv6 default route (IPv6 uplink NAT); the IPv4 one is used when absent. */
  defaultRouteDev6?: string;
  /** /dev/kvm runs ordinary guests: `accel: auto` picks kvm, else tcg. */
  kvmUsable?: boolean;
  /** The lab's state directory (dnsmasq files live in <stateDir>/dnsmasq/). */
  stateDir?: string;
}

/** Files of a bridge's dnsmasq. */
export function dnsmasqPaths(stateDir: string, bridge: string) {
  const dir = `${stateDir}/dnsmasq`;
  return { dir, conf: `${dir}/${bridge}.conf`, pid: `${dir}/${bridge}.pid`, leases: `${dir}/${bridge}.leases`, log: `${dir}/${bridge}.log` };
}

/** Path of a netns node's resolv.conf: `ip netns exec` binds /etc/netns/<ns>/resolv.conf over /etc/resolv.conf. */
export function resolvPath(ns: string): string {
  return `/etc/netns/${ns}/resolv.conf`;
}

/**
 * dnsmasq config of a bridge (dnsmasq 2.90 option names): bound to the bridge device
 * and its host address only, no upstream servers (names outside the lab fail fast),
 * names <node>.<bridge> for every member with an address, a static DHCP lease
 * (MAC -> address) per member, the host address as DNS server for DHCP clients.
 */
export function dnsmasqConfig(t: Topology, b: BridgeSpec, stateDir: string): string {
  const p = dnsmasqPaths(stateDir, b.name);
  const host = b.hostAddr!.split('/')[0];
  const lines = [
    `# provium:${t.lab}:dnsmasq:${b.name} (written by provium; changes are drift)`,
    `interface=${names.bridgeDev(t.lab, b.name)}`, 'bind-interfaces', 'except-interface=lo', `listen-address=${host}`,
    'user=root', `pid-file=${p.pid}`, `dhcp-leasefile=${p.leases}`, `log-facility=${p.log}`, 'no-resolv', 'no-hosts',
  ];
  if (b.hostAddr6) lines.push(`listen-address=${b.hostAddr6.split('/')[0]}`);
  if (b.dns) lines.push(`domain=${b.name}`, `local=/${b.name}/`);
  else lines.push('port=0');
  for (const a of b.attach) {
    if (!a.ip) continue;
    const ip = a.ip.split('/')[0];
    if (b.dns) lines.push(`host-record=${a.node}.${b.name},${ip}${a.ip6 ? `,${a.ip6.split('/')[0]}` : ''}`);
  }
  if (b.dhcp) {
    const [net, prefix] = b.subnet!.split('/');
    const mask = prefixMask(Number(prefix));
    lines.push(`dhcp-range=${net},static,${mask},12h`);
    for (const a of b.attach) if (a.ip) lines.push(`dhcp-host=${a.mac ?? names.nicMac(t.lab, a.node, b.name, t.macPrefix)},${a.ip.split('/')[0]},${a.node}`);
    if (b.dns) lines.push(`dhcp-option=option:dns-server,${host}`, `dhcp-option=option:domain-search,${b.name}`);
    // IPv6 by SLAAC: router advertisements of subnet6, so a guest configures the EUI-64
    // address of its (known) MAC, which is the address planned for it.
    if (b.subnet6) lines.push('enable-ra', `dhcp-range=::,constructor:${names.bridgeDev(t.lab, b.name)},ra-only,64,12h`);
  }
  return lines.join('\n') + '\n';
}

function prefixMask(prefix: number): string {
  const m = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return [24, 16, 8, 0].map((sh) => (m >>> sh) & 255).join('.');
}

/**
 * Whether this host holds the bridge's host side (host address, DHCP/DNS, routes, uplink,
 * forwards): always, except in a multi-host lab's projection for a host that is not the
 * bridge's home (src/hosts/project.ts).
 */
export function isHome(b: BridgeSpec): boolean {
  return b.placement?.home !== false;
}

/** Whether the bridge exists on this host (false only in a multi-host projection). */
export function isHere(b: BridgeSpec): boolean {
  return b.placement?.absent !== true;
}

/**
 * Whether the lab forwards IP traffic in its host namespace (uplink, routes between
 * bridges or port forwards): then it has the inet table and needs net.ipv4.ip_forward=1.
 */
export function needsForwarding(t: Topology): boolean {
  return Object.values(t.bridges).some((b) => isHome(b) && (b.uplink || b.routes.length > 0 || b.forwards.length > 0));
}

/**
 * Whether the lab forwards IPv6 in its host namespace: a bridge with subnet6 routes to
 * another bridge with subnet6, or has uplink. Then it needs net.ipv6.conf.all.forwarding=1.
 * Routes between a bridge with subnet6 and one without are IPv4 only.
 */
export function needsForwarding6(t: Topology): boolean {
  return Object.values(t.bridges).some((b) => isHome(b) && b.subnet6 !== undefined && (b.uplink || b.routes.some((r) => t.bridges[r]?.subnet6 !== undefined)));
}

/** A qemu node boots a VM when it has a kernel or a disk; otherwise it only gets its TAPs. */
export function bootsVm(n: NodeSpec): boolean {
  return n.kind === 'qemu' && !!(n.qemu?.kernel || n.qemu?.disk);
}

/** Effective impairment of one directed pair after merging whole-bridge and per-pair fields. */
interface Effective {
  drop?: { pct: number; owner: string };
  shape?: { rateBps: number; latencyMs?: number; jitterMs?: number; owner: string };
}

/** Realizes a topology. Throws nothing: inputs are validated by load/. */
export function realize(t: Topology, ctx: RealizeContext = {}): HostState {
  const s = emptyState();
  const lab = t.lab;
  // Port device and NIC MAC of each attachment, by bridge and node (looked up for every pair of members).
  const ports = new Map(Object.values(t.bridges).map((b) => [b.name, new Map(b.attach.map((a) => [a.node, names.portDev(lab, a.node, a.nicIndex)]))]));
  const macs = new Map(Object.values(t.bridges).map((b) => [b.name, new Map(b.attach.map((a) => [a.node, a.mac ?? names.nicMac(lab, a.node, b.name, t.macPrefix)]))]));
  const portOf = (node: string, bridge: string): string => ports.get(bridge)!.get(node)!;
  const macOf = (node: string, bridge: string): string => macs.get(bridge)!.get(node)!;
  /** A directed pair's key: the sender's NIC MAC and the receiver's port (see PortPair). */
  const pairOf = (from: string, to: string, bridge: string): string => `${macOf(from, bridge)}>${portOf(to, bridge)}`;

  // Node namespaces (netns nodes and routers; a router's lo carries a router mark).
  for (const n of Object.values(t.nodes)) {
    if (!hasNamespace(n.kind)) continue;
    const ns = names.nodeNetns(lab, n.name);
    const owner = n.kind === 'router' ? names.routerAlias(lab, n.name, t.placement) : names.nodeAlias(lab, n.name, t.placement);
    s.namespaces[ns] = { name: ns, node: n.name, owner, loUp: true, nics: {}, routes: [] };
  }

  // Bridges, ports, NICs.
  for (const b of Object.values(t.bridges)) {
    if (!isHere(b)) continue;
    const dev = names.bridgeDev(lab, b.name);
    const home = isHome(b);
    s.links[dev] = {
      name: dev, kind: 'bridge', alias: names.bridgeAlias(lab, b.name), mtu: b.mtu, up: true,
      addrs: b.hostAddr && home ? [b.hostAddr] : [], addrs6: b.hostAddr6 && home ? [b.hostAddr6] : [],
    };
    const vx = b.placement?.vxlan;
    if (vx) {
      const vdev = names.vxlanDev(lab, b.name);
      s.links[vdev] = { name: vdev, kind: 'vxlan', alias: names.vxlanAlias(lab, b.name), master: dev, mtu: b.mtu, up: true, addrs: [], vxlan: { vni: vx.vni, port: vx.port, local: vx.local, peers: [...vx.peers].sort() } };
    }
    for (const a of b.attach) {
      if (a.remote) continue; // on another host: only a sender here (partitions, drop, shaping)
      const node = t.nodes[a.node];
      const port = names.portDev(lab, a.node, a.nicIndex);
      const isNetns = hasNamespace(node.kind);
      // A VM's link state is its NIC's (QMP set_link); the TAP itself stays up.
      const vm = bootsVm(node);
      if (vm) {
        const v = vmOf(s, t, node, ctx);
        // On a bridge spanning hosts the guest learns the MTU that fits the tunnel (virtio-net host_mtu).
        v.nics[port] = { tap: port, mac: a.mac ?? names.nicMac(lab, a.node, b.name, t.macPrefix), slot: 0x10 + a.nicIndex, ...(vx && b.mtu ? { mtu: b.mtu } : {}) };
        v.links[port] = a.link;
      }
      s.links[port] = {
        name: port, kind: isNetns ? 'veth' : 'tun', alias: names.portAlias(lab, a.node, b.name), master: dev,
        mtu: b.mtu, up: vm ? true : a.link === 'up', addrs: [],
        ...(isNetns ? { peerNetns: names.nodeNetns(lab, a.node), peerName: a.nic, peerMac: a.mac ?? names.nicMac(lab, a.node, b.name, t.macPrefix) } : {}),
      };
      if (isNetns) {
        const ns = s.namespaces[names.nodeNetns(lab, a.node)];
        ns.nics[a.nic] = { ifname: a.nic, mac: a.mac ?? names.nicMac(lab, a.node, b.name, t.macPrefix), addrs: a.ip ? [a.ip] : [], addrs6: a.ip6 ? [a.ip6] : [], up: true, mtu: b.mtu };
      }
    }
  }

  // VMs without any attachment still boot.
  for (const n of Object.values(t.nodes)) if (bootsVm(n)) vmOf(s, t, n, ctx);

  // Routes inside nodes: to routed bridges' subnets, default routes (uplink or gateway), routers' return routes.
  for (const ns of Object.values(s.namespaces)) ns.routes = nodeRoutes(t, ns.node);
  realizeRouters(t, s);

  // DHCP/DNS per bridge, and resolv.conf for netns nodes on a bridge with DNS (first in NIC order).
  for (const b of Object.values(t.bridges)) {
    if ((b.dhcp || b.dns) && b.hostAddr && ctx.stateDir && isHere(b) && isHome(b)) s.dnsmasq[b.name] = { bridge: b.name, config: dnsmasqConfig(t, b, ctx.stateDir), alive: true };
  }
  for (const ns of Object.values(s.namespaces)) {
    const dnsBridges = Object.values(t.bridges)
      .filter((b) => b.dns && b.hostAddr && b.attach.some((a) => a.node === ns.node))
      .sort((x, y) => (x.name < y.name ? -1 : 1));
    if (dnsBridges.length === 0) continue;
    s.resolv[ns.name] = `# ${names.nodeAlias(lab, ns.node, t.placement)}\nnameserver ${dnsBridges[0].hostAddr!.split('/')[0]}\nsearch ${dnsBridges.map((b) => b.name).join(' ')}\noptions timeout:1 attempts:2\n`;
  }

  // Names without DNS: a hosts file for every netns node.
  const hostsOf = hostsFiles(t);
  for (const ns of Object.values(s.namespaces)) s.hosts[ns.name] = hostsOf(ns.node);

  // Partitions, isolation, impairments.
  const bt: NftBridgeTable = { skeleton: desiredFingerprint(bridgeSkeleton(lab)), blocked: {}, isolated: {}, loss: {}, lossPort: {}, lossOwn: {}, prio: {} };
  // pairs: by the sender's MAC (which the nft prio map matches).
  type Shaped = { bridge: BridgeSpec; dstNode: string; pairs: Map<string, NonNullable<Effective['shape']> & { src: string }>; def?: Effective['shape'] };
  const shapedPorts = new Map<string, Shaped>();
  for (const b of Object.values(t.bridges)) {
    const members = b.attach.map((a) => a.node);
    // Pairs are enforced at the receiver's port: only receivers on this host.
    const remote = new Set(b.attach.filter((a) => a.remote).map((a) => a.node));
    const setBlocked = (x: string, y: string, owner: string) => {
      if (remote.has(y)) return;
      const k = pairOf(x, y, b.name);
      if (!bt.blocked[k]) bt.blocked[k] = { owner, value: true };
    };
    // The first owner of a directed pair stays: entries in precedence order (see byPrecedence).
    for (const p of [...b.partitions].sort(byPrecedence)) {
      if (p.group) {
        const owner = addr.partitionGroup(b.name, p.group.key);
        setBlocked(p.a, p.b, owner);
        if (p.kind === 'symmetric') setBlocked(p.b, p.a, owner);
      } else if (p.kind === 'symmetric') {
        const [x, y] = [p.a, p.b].sort();
        setBlocked(p.a, p.b, addr.partitionSym(b.name, x, y));
        setBlocked(p.b, p.a, addr.partitionSym(b.name, x, y));
      } else setBlocked(p.a, p.b, addr.partitionDir(b.name, p.a, p.b));
    }
    if (b.partitionAll) for (const x of members) for (const y of members) if (x !== y) setBlocked(x, y, addr.partitionAll(b.name));
    for (const n of b.isolate) if (!remote.has(n)) bt.isolated[portOf(n, b.name)] = { owner: addr.isolate(b.name, n), value: true };

    const whole = b.impairments.find((i) => !i.from);
    // Every pair-level entry covering a directed pair, most specific first, by source then destination node.
    const pairs = new Map<string, Map<string, ImpairmentSpec[]>>();
    for (const i of b.impairments) {
      if (!i.from) continue;
      const bySrc = pairs.get(i.from) ?? new Map<string, ImpairmentSpec[]>();
      pairs.set(i.from, bySrc);
      bySrc.set(i.to!, [...(bySrc.get(i.to!) ?? []), i]);
    }
    for (const bySrc of pairs.values()) for (const list of bySrc.values()) list.sort(byPrecedence);
    // The whole-bridge drop is one element per receiving port (lossPort, one owner string, one
    // value): every frame towards the port, except from the senders whose pair has a drop of its
    // own (lossOwn; their rate, if any, is a `loss` element).
    const wholeDrop = whole?.drop_pct !== undefined && Math.round(whole.drop_pct * 100) > 0 ? { owner: addr.impairWhole(b.name), value: Math.min(10000, Math.round(whole.drop_pct * 100)) } : undefined;
    if (wholeDrop && members.length > 1) for (const y of members) if (!remote.has(y)) bt.lossPort[portOf(y, b.name)] = wholeDrop;
    for (const x of members) {
      const mine = pairs.get(x);
      const mx = mine ? macOf(x, b.name) : '';
      // Only senders with pair-level entries: the others have no element of their own.
      if (mine) for (const y of members) {
        if (x === y || remote.has(y)) continue;
        const pair = mine.get(y);
        if (!pair) continue;
        const py = portOf(y, b.name);
        const eff = effective(b.name, whole, pair, x, y);
        const v = eff.drop ? Math.min(10000, Math.round(eff.drop.pct * 100)) : 0;
        const inherited = wholeDrop !== undefined && eff.drop?.owner === wholeDrop.owner && v === wholeDrop.value;
        if (wholeDrop && !inherited) bt.lossOwn[`${mx}>${py}`] = { owner: eff.drop?.owner ?? wholeDrop.owner, value: true };
        if (v > 0 && !inherited) bt.loss[`${mx}>${py}`] = { owner: eff.drop!.owner, value: v };
        if (eff.shape) {
          const e: Shaped = shapedPorts.get(py) ?? { bridge: b, dstNode: y, pairs: new Map() };
          e.pairs.set(mx, { ...eff.shape, src: x });
          shapedPorts.set(py, e);
        }
      }
      // The destination port's default class carries the whole-bridge bandwidth/latency.
      if (whole && !remote.has(x) && (whole.bandwidth_bps !== undefined || whole.latency_ms !== undefined)) {
        const py = portOf(x, b.name);
        const e: Shaped = shapedPorts.get(py) ?? { bridge: b, dstNode: x, pairs: new Map() };
        e.def = { rateBps: whole.bandwidth_bps ?? UNSHAPED_BPS, latencyMs: whole.latency_ms, jitterMs: whole.jitter_ms, owner: addr.impairWhole(b.name) };
        shapedPorts.set(py, e);
      }
    }
  }

  // HTB trees on shaped ports.
  const majors = allocateMajors([...shapedPorts.keys()]);
  for (const [port, e] of shapedPorts) {
    const major = majors.get(port)!;
    const minors = allocateMinors([...e.pairs.keys()]);
    const sh: PortShaping = { dev: port, major, defaultMinor: DEFAULT_MINOR, classes: {} };
    sh.classes[DEFAULT_MINOR] = {
      minor: DEFAULT_MINOR, rateBps: e.def?.rateBps ?? UNSHAPED_BPS,
      ...(e.def?.latencyMs !== undefined ? { netem: netemOf(e.def.rateBps, e.def.latencyMs, e.def.jitterMs ?? 0) } : {}),
    };
    for (const [src, p] of e.pairs) {
      const minor = minors.get(src)!;
      sh.classes[minor] = {
        minor, rateBps: p.rateBps,
        ...(p.latencyMs !== undefined ? { netem: netemOf(p.rateBps, p.latencyMs, p.jitterMs ?? 0) } : {}),
      };
      bt.prio[`${src}>${port}`] = { owner: p.owner, value: classid(major, minor) };
    }
    s.shaping[port] = sh;
  }
  const anyBridgeNft = Object.keys(bt.blocked).length + Object.keys(bt.isolated).length + Object.keys(bt.loss).length + Object.keys(bt.lossPort).length + Object.keys(bt.prio).length > 0;
  if (anyBridgeNft) s.nft.bridge = bt;

  // Routing between bridges and uplink NAT.
  if (needsForwarding(t)) {
    const it: NftInetTable = {
      skeleton: desiredFingerprint(inetSkeleton(lab)), bridges: {}, forward: {}, uplinkBridges: {}, masqSources: {}, uplinkOifs: {}, masqSources6: {}, uplinkOifs6: {}, forwards: {},
    };
    for (const b of Object.values(t.bridges)) {
      if (!isHere(b) || !isHome(b)) continue;
      const dev = names.bridgeDev(lab, b.name);
      it.bridges[dev] = { owner: addr.bridge(b.name), value: true };
      it.forward[`${dev}>${dev}`] = { owner: addr.bridge(b.name), value: true };
      for (const r of b.routes) it.forward[`${dev}>${names.bridgeDev(lab, r)}`] = { owner: addr.route(b.name, r), value: true };
      for (const f of b.forwards) {
        const ip = b.attach.find((a) => a.node === f.node)?.ip?.split('/')[0];
        if (ip) it.forwards[`${f.proto}/${f.hostPort}`] = { owner: addr.forward(b.name, f.proto, f.hostPort), value: `${ip}:${f.port}` };
      }
      if (b.uplink) {
        it.uplinkBridges[dev] = { owner: addr.uplink(b.name), value: true };
        if (b.subnet) it.masqSources[b.subnet] = { owner: addr.uplink(b.name), value: true };
        if (b.subnet6) it.masqSources6[b.subnet6] = { owner: addr.uplink(b.name), value: true };
      }
    }
    if (Object.keys(it.uplinkBridges).length > 0 && ctx.defaultRouteDev) {
      it.uplinkOifs[ctx.defaultRouteDev] = { owner: addr.uplinkOif, value: true };
    }
    // Without an IPv6 default route, IPv6 leaves (if at all, by a more specific route)
    // through the interface the host uses for IPv4.
    const wan6 = ctx.defaultRouteDev6 ?? ctx.defaultRouteDev;
    if (Object.keys(it.masqSources6).length > 0 && wan6) it.uplinkOifs6[wan6] = { owner: addr.uplinkOif6, value: true };
    s.nft.inet = it;
    s.ipForward = true;
    if (needsForwarding6(t)) s.ip6Forward = true;
  }
  return s;
}

/** MAC of node's NIC on bridge: the file's `mac:`, else the deterministic one (names.nicMac). */
export function nicMacOf(t: Topology, node: string, bridge: string): string {
  const a = t.bridges[bridge].attach.find((x) => x.node === node)!;
  return a.mac ?? names.nicMac(t.lab, node, bridge, t.macPrefix);
}

/** Bytes per packet netem's queue is sized for: a mix of full-size packets and ACKs. */
export const NETEM_SIZING_PACKET_BYTES = 500;
/** Rate a class without bandwidth (unshaped) is sized for: 1 Gbit/s. */
export const NETEM_SIZING_UNSHAPED_BPS = 1_000_000_000;
export const NETEM_LIMIT_MIN = 1000;
export const NETEM_LIMIT_MAX = 50_000;

/**
 * netem's queue limit (packets) for a class of `rateBps` with `delayMs` +- `jitterMs`.
 * netem holds every packet for its delay, so a link carrying its full bandwidth has
 * rate x (delay + jitter) of data queued in netem; with netem's default limit of 1000
 * packets, a 300 ms link at 25 Mbit/s drops whatever exceeds it (with 500-byte packets,
 * 30 % of its traffic). The limit is that amount in 500-byte packets plus 10 %: at least
 * 1000 (netem's default), at most 50,000; a class without bandwidth counts 1 Gbit/s.
 * Traffic up to the bandwidth, in packets of 500 bytes or more on average, then loses
 * only what the file declares. Beyond the bandwidth the queue holds up to `limit`
 * packets before dropping, as a bottleneck buffer would.
 */
export function netemLimit(rateBps: number, delayMs: number, jitterMs: number): number {
  const bytes = (Math.min(rateBps, NETEM_SIZING_UNSHAPED_BPS) / 8) * ((delayMs + jitterMs) / 1000);
  return Math.min(NETEM_LIMIT_MAX, Math.max(NETEM_LIMIT_MIN, Math.ceil((1.1 * bytes) / NETEM_SIZING_PACKET_BYTES - 1e-9)));
}

function netemOf(rateBps: number, delayMs: number, jitterMs: number): { delayMs: number; jitterMs: number; limit: number } {
  return { delayMs, jitterMs, limit: netemLimit(rateBps, delayMs, jitterMs) };
}

/** The desired VM of a qemu node (created on first use). Paths resolve against the topology file's folder. */
function vmOf(s: HostState, t: Topology, n: NodeSpec, ctx: RealizeContext) {
  const q = n.qemu!;
  const abs = (p?: string) => (p ? resolve(dirname(t.file), p) : undefined);
  return (s.vms[n.name] ??= {
    node: n.name,
    spec: {
      kernel: abs(q.kernel), initrd: abs(q.initrd), append: q.kernel ? q.append ?? 'console=ttyS0' : q.append, disk: abs(q.disk),
      memoryMb: q.memory_mb, cpus: q.cpus, accel: q.accel === 'auto' ? (ctx.kvmUsable ? 'kvm' : 'tcg') : q.accel,
    },
    alive: true, status: 'running', nics: {}, links: {},
  });
}

/**
 * Precedence of pair-level entries covering one directed pair, most specific first: an
 * entry naming exactly that pair beats any group entry; among group entries the one
 * covering fewer directed pairs wins, and among equally many the later one in the
 * list. A comparator for Array.prototype.sort (stable: exact pairs keep list order).
 */
export function byPrecedence(x: { group?: GroupRef }, y: { group?: GroupRef }): number {
  if (!x.group || !y.group) return (x.group ? 1 : 0) - (y.group ? 1 : 0);
  return x.group.pairs - y.group.pairs || y.group.index - x.group.index;
}

/**
 * Effective drop and shaping of pair x->y on bridge b. `specs`: the pair-level entries
 * covering it, most specific first (byPrecedence). Each field comes from the first entry
 * that sets it, else from the whole-bridge entry; jitter goes with the latency it
 * belongs to. Host objects are owned by the entry that provided their value.
 */
function effective(b: string, whole: ImpairmentSpec | undefined, specs: ImpairmentSpec[], x: string, y: string): Effective {
  const out: Effective = {};
  const owner = (s: ImpairmentSpec) => (s.group ? addr.impairGroup(b, s.group.key) : addr.impairPair(b, x, y));
  const wOwner = addr.impairWhole(b);
  const drop = specs.find((s) => s.drop_pct !== undefined);
  if (drop) out.drop = { pct: drop.drop_pct!, owner: owner(drop) };
  else if (whole?.drop_pct !== undefined) out.drop = { pct: whole.drop_pct, owner: wOwner };
  // A pair gets its own class only when a pair-level entry sets bandwidth or latency;
  // otherwise it shares the destination port's default class (whole-bridge values).
  const bw = specs.find((s) => s.bandwidth_bps !== undefined);
  const lat = specs.find((s) => s.latency_ms !== undefined);
  if (bw || lat) {
    const first = specs.find((s) => s === bw || s === lat)!;
    const latencyMs = lat ? lat.latency_ms : whole?.latency_ms;
    const jitterMs = lat ? lat.jitter_ms : whole?.jitter_ms;
    out.shape = { rateBps: bw?.bandwidth_bps ?? whole?.bandwidth_bps ?? UNSHAPED_BPS, latencyMs, jitterMs, owner: owner(first) };
  }
  return out;
}

/**
 * Routes of one netns node or router: routed bridges' subnets via the attached bridge's
 * host address; default routes through a gateway router or an uplink bridge's host side
 * (routers.ts defaultGateways: `default_route` first, else the first such bridge in
 * bridge-name order; a router's through its upstream); routers' return routes (routers.ts
 * returnRoutes). The same for IPv6 where bridges have subnet6: their subnet6 via the host
 * side's ::1, defaults via ::1 of the gateway or uplink bridge. Sorted by routeOrder.
 */
export function nodeRoutes(t: Topology, node: string): RouteState[] {
  const mine = Object.values(t.bridges)
    .filter((b) => b.attach.some((a) => a.node === node))
    .sort((a, b) => (a.name < b.name ? -1 : 1));
  const attached = new Set(mine.map((b) => b.name));
  const routes = new Map<string, string>();
  const routes6 = new Map<string, string>();
  const add = (m: Map<string, string>, b: BridgeSpec, hostAddr: string, subnetOf: (r: BridgeSpec) => string | undefined) => {
    const gw = hostAddr.split('/')[0];
    for (const r of b.routes) {
      const sub = subnetOf(t.bridges[r]);
      if (sub && !attached.has(r) && !m.has(sub)) m.set(sub, gw);
    }
  };
  for (const b of mine) {
    const me = b.attach.find((a) => a.node === node)!;
    if (b.hostAddr && me.ip) add(routes, b, b.hostAddr, (r) => r.subnet);
    if (b.hostAddr6 && me.ip6) add(routes6, b, b.hostAddr6, (r) => r.subnet6);
  }
  const d = defaultGateways(t, node);
  if (d.v4) routes.set('default', d.v4);
  if (d.v6) routes6.set('default', d.v6);
  for (const r of returnRoutes(t, node)) {
    const m = r.via.includes(':') ? routes6 : routes;
    if (!m.has(r.dst)) m.set(r.dst, r.via);
  }
  return [...routes, ...routes6].map(([dst, via]) => ({ dst, via })).sort(routeOrder);
}

/** Kernel features a topology needs, with the user-level object that needs each first. */
export function requiredFeatures(t: Topology): { feature: 'netem' | 'htb' | 'tun'; because: string; pos?: import('../model/topology.js').SourcePos }[] {
  const out: { feature: 'netem' | 'htb' | 'tun'; because: string; pos?: import('../model/topology.js').SourcePos }[] = [];
  for (const b of Object.values(t.bridges)) {
    for (const i of b.impairments) {
      const where = i.group ? addr.impairGroup(b.name, i.group.key) : i.from ? addr.impairPair(b.name, i.from, i.to!) : addr.impairWhole(b.name);
      // Located at the setting that needs the feature (an overlay may have added it to a base's entry).
      const k = i.keyPos ?? {};
      if (i.latency_ms !== undefined || i.jitter_ms !== undefined) {
        // Name what the file says: a profile's latency comes from the profile.
        const because = i.profile !== undefined && PROFILES[i.profile]?.latency_ms !== undefined && i.latency_ms === PROFILES[i.profile].latency_ms
          ? `${where} uses profile: ${i.profile} (latency ${i.latency_ms} ms${i.jitter_ms ? `, jitter ${i.jitter_ms} ms` : ''})`
          : `${where} sets latency_ms${i.jitter_ms !== undefined ? '/jitter_ms' : ''}`;
        out.push({ feature: 'netem', because, pos: k.latency_ms ?? k.jitter_ms ?? k.profile ?? i.pos });
      }
      if (i.bandwidth_bps !== undefined || i.latency_ms !== undefined) out.push({ feature: 'htb', because: `${where} needs an HTB class`, pos: k.bandwidth_bps ?? k.latency_ms ?? k.profile ?? i.pos });
    }
  }
  if (Object.values(t.nodes).some((n) => n.kind === 'qemu')) out.push({ feature: 'tun', because: 'qemu nodes need TAP devices' });
  return out;
}
