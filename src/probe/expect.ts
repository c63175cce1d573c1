/**
 * What a lab file declares about traffic, as properties `provium probe` can measure
 * (pure; no host access). Computed from the Topology by the file's own rules (README,
 * "Semantics worth knowing"), independently of the realization in plan/realize.ts, so a
 * realization that disagrees with the file is caught by measurement:
 * - a directed pair X -> Y on a bridge is unreachable when a partition (symmetric,
 *   directional or partition_all) cuts it, when X or Y is isolated, when X's or Y's NIC
 *   on that bridge has `link: down`, or when its drop is 100 %;
 * - its drop, bandwidth and latency are the per-pair impairment's fields, each falling
 *   back to the whole-bridge impairment's field of the same name; jitter goes with the
 *   latency it belongs to (a pair that sets latency_ms takes its own jitter_ms, else 0);
 * - a whole-bridge bandwidth or latency applies to what each member receives, so every
 *   pair into one member without its own bandwidth/latency shares that member's queue
 *   (`queue` names it; pairs with the same queue are never loaded at once);
 * - routes connect two bridges at L3 in both directions (partitions and isolation act on
 *   bridged frames only, so they do not apply); uplink reaches the host namespace's
 *   default gateway through NAT.
 * - routers (`kind: router`) are members of their bridges like netns nodes; a router
 *   with NAT or a firewall drops unsolicited UDP that reaches it from its upstream, so
 *   pairs into it there depend on what it sent first (conntrack) and are not measured;
 * - through a router: a netns node whose default route is a router (its `gateway:`
 *   bridge, or `default_route:`) reaches a netns node on the router's upstream bridge
 *   (through its NAT, if any), unless a partition, isolation or link state cuts either
 *   leg, or the router's firewall restricts outbound UDP to some ports.
 * VMs carry no agent: pairs between a netns node and a VM are measured as a round trip
 * (ping) and pairs between two VMs are not measured.
 */
import type { BridgeSpec, ImpairmentSpec, Topology } from '../model/topology.js';

/** Rates at or above this are unshaped (provium's default class rate is 10 Gbit/s). */
export const UNSHAPED_BPS = 10_000_000_000;

/** One directed pair on one bridge, with what the file says about it. */
export interface PairSpec {
  bridge: string;
  from: string;
  to: string;
  fromKind: NodeKindSeen;
  toKind: NodeKindSeen;
  /** IPv4 addresses (bare) on this bridge; undefined without an address. */
  fromIp?: string;
  toIp?: string;
  reachable: boolean;
  /** Why it is unreachable, in the file's words ("partition a -> c", "isolate c", "c link down", "drop 100 %"); "open" otherwise. */
  why: string;
  /** Set when the pair cannot be measured by what the file says (a filtering router's upstream, inbound): why. */
  unmeasurable?: string;
  /** Drop in percent (realized at 0.01 % resolution, as provium rounds it). */
  dropPct: number;
  /** Bandwidth in bits/s; undefined when unshaped. */
  bandwidthBps?: number;
  /** One-way latency and jitter in ms; undefined without latency. */
  latencyMs?: number;
  jitterMs?: number;
  /** Where the pair's bandwidth/latency queue is: "<bridge>/<to>/<from>" for its own, "<bridge>/<to>/*" for the member's shared one. */
  queue: string;
  /** MTU of the bridge in bytes (1500 when the file does not set one). */
  mtu: number;
}

export interface RouteSpec {
  from: string;
  to: string;
  /** A netns node on `from` only, and one on `to` only (up, with addresses); undefined when there is none. */
  src?: { node: string; ip: string };
  dst?: { node: string; ip: string };
}

export interface UplinkSpec {
  bridge: string;
  /** A netns node whose default route is this bridge's uplink (up, with an address); undefined when there is none. */
  node?: string;
}

/** A router's forwarding from a node behind it to a node on its upstream bridge (UDP). */
export interface GatewaySpec {
  router: string;
  /** The bridge the router is the gateway of, and its upstream bridge. */
  lan: string;
  upstream: string;
  /** A netns node on `lan` whose default route is the router, and a netns node on `upstream` (up, with addresses); undefined when there is none. */
  src?: { node: string; ip: string };
  dst?: { node: string; ip: string };
  reachable: boolean;
  /** Why it is cut, in the file's words; "open" otherwise. */
  why: string;
  /** The router's NAT as the file gives it ("mapping endpoint-independent, filtering address-dependent"), or "no NAT". */
  nat: string;
  /** Drop of the two legs (src -> router on lan, router -> dst on upstream) combined, percent. */
  dropPct: number;
}

export interface Expectations {
  pairs: PairSpec[];
  routes: RouteSpec[];
  uplinks: UplinkSpec[];
  gateways: GatewaySpec[];
}

/** Node kind as the probe sees it: netns, router, a booting VM, or a qemu node without a VM. */
export type NodeKindSeen = 'netns' | 'router' | 'vm' | 'qemu';

const q2 = (pct: number) => Math.min(10000, Math.round(pct * 100)) / 100;

/** Node kind as the probe sees it: a qemu node boots a VM when it has a kernel or a disk. */
function kindOf(t: Topology, node: string): NodeKindSeen {
  const n = t.nodes[node];
  if (n.kind === 'netns' || n.kind === 'router') return n.kind;
  return n.qemu?.kernel || n.qemu?.disk ? 'vm' : 'qemu';
}

/** Why X -> Y on bridge b is cut, or undefined when it is open (before drop). */
function cutBy(b: BridgeSpec, x: string, y: string): string | undefined {
  const ax = b.attach.find((a) => a.node === x)!;
  const ay = b.attach.find((a) => a.node === y)!;
  if (ax.link === 'down') return `${x} link down`;
  if (ay.link === 'down') return `${y} link down`;
  if (b.isolate.includes(x)) return `isolate ${x}`;
  if (b.isolate.includes(y)) return `isolate ${y}`;
  for (const p of b.partitions) {
    if (p.kind === 'symmetric' && ((p.a === x && p.b === y) || (p.a === y && p.b === x))) return `partition ${p.a} <-> ${p.b}`;
    if (p.kind === 'directional' && p.a === x && p.b === y) return `partition ${x} -> ${y}`;
  }
  if (b.partitionAll) return 'partition_all';
  return undefined;
}

/** The effective impairment of X -> Y: per-pair fields over whole-bridge ones; jitter goes with its latency. */
export function effectiveImpairment(b: BridgeSpec, x: string, y: string): { dropPct: number; bandwidthBps?: number; latencyMs?: number; jitterMs?: number; ownQueue: boolean } {
  const whole: ImpairmentSpec | undefined = b.impairments.find((i) => !i.from);
  const pair: ImpairmentSpec | undefined = b.impairments.find((i) => i.from === x && i.to === y);
  const dropPct = q2(pair?.drop_pct ?? whole?.drop_pct ?? 0);
  const ownQueue = pair !== undefined && (pair.bandwidth_bps !== undefined || pair.latency_ms !== undefined);
  const bw = pair?.bandwidth_bps ?? whole?.bandwidth_bps;
  const latencyMs = pair?.latency_ms ?? whole?.latency_ms;
  const jitterMs = pair?.latency_ms !== undefined ? pair.jitter_ms ?? 0 : whole?.jitter_ms ?? (latencyMs !== undefined ? 0 : undefined);
  return {
    dropPct,
    ...(bw !== undefined && bw < UNSHAPED_BPS ? { bandwidthBps: bw } : {}),
    ...(latencyMs !== undefined && latencyMs > 0 ? { latencyMs, jitterMs: jitterMs ?? 0 } : {}),
    ownQueue,
  };
}

const bare = (cidr: string | undefined) => cidr?.split('/')[0];

/** Every property of the file that traffic can show. */
export function expectations(t: Topology): Expectations {
  const pairs: PairSpec[] = [];
  const bridges = Object.values(t.bridges).sort((a, b) => (a.name < b.name ? -1 : 1));
  for (const b of bridges) {
    for (const ax of b.attach) {
      for (const ay of b.attach) {
        if (ax.node === ay.node) continue;
        const x = ax.node;
        const y = ay.node;
        const eff = effectiveImpairment(b, x, y);
        const cut = cutBy(b, x, y) ?? (eff.dropPct >= 100 ? 'drop 100 %' : undefined);
        const ry = t.nodes[y]?.router;
        const filters = ry && ry.upstream === b.name && (ry.nat || ry.firewall) ? `${y}'s ${ry.nat ? 'NAT' : 'firewall'} drops unsolicited UDP from its upstream (what it accepts depends on what ${y} sent first)` : undefined;
        pairs.push({
          bridge: b.name, from: x, to: y, fromKind: kindOf(t, x), toKind: kindOf(t, y), fromIp: bare(ax.ip), toIp: bare(ay.ip),
          reachable: cut === undefined, why: cut ?? 'open', ...(filters ? { unmeasurable: filters } : {}), dropPct: eff.dropPct,
          ...(eff.bandwidthBps !== undefined ? { bandwidthBps: eff.bandwidthBps } : {}),
          ...(eff.latencyMs !== undefined ? { latencyMs: eff.latencyMs, jitterMs: eff.jitterMs } : {}),
          queue: `${b.name}/${y}/${eff.ownQueue ? x : '*'}`, mtu: b.mtu ?? 1500,
        });
      }
    }
  }
  pairs.sort((p, q) => (p.bridge === q.bridge ? (p.from === q.from ? (p.to < q.to ? -1 : 1) : p.from < q.from ? -1 : 1) : p.bridge < q.bridge ? -1 : 1));

  // A usable end of a route or uplink: a netns node that is up and has an address on the bridge.
  const usable = (b: BridgeSpec) => b.attach.filter((a) => kindOf(t, a.node) === 'netns' && a.link === 'up' && a.ip);
  const routes: RouteSpec[] = [];
  const seen = new Set<string>();
  for (const b of bridges) {
    for (const r of b.routes) {
      const other = t.bridges[r];
      if (!other) continue;
      for (const [from, to] of [[b, other], [other, b]] as const) {
        const key = `${from.name}>${to.name}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const onlyOn = (x: BridgeSpec, y: BridgeSpec) => usable(x).find((a) => !y.attach.some((z) => z.node === a.node));
        const s = onlyOn(from, to);
        const d = onlyOn(to, from);
        routes.push({ from: from.name, to: to.name, ...(s ? { src: { node: s.node, ip: bare(s.ip)! } } : {}), ...(d ? { dst: { node: d.node, ip: bare(d.ip)! } } : {}) });
      }
    }
  }
  routes.sort((a, b) => (a.from === b.from ? (a.to < b.to ? -1 : 1) : a.from < b.from ? -1 : 1));
  // A node's default route: its default_route bridge first, then its bridges in name
  // order; the first with a gateway (a router) or an uplink (the host side) where it has
  // an IPv4 address.
  const defaultBridge = (node: string): string | undefined => {
    const mine = bridges.filter((b) => b.attach.some((a) => a.node === node && a.ip));
    const want = t.nodes[node]?.defaultRoute;
    mine.sort((a, b) => Number(b.name === want) - Number(a.name === want));
    return mine.find((b) => (b.gateway && b.gateway !== node) || b.uplink)?.name;
  };
  const uplinks: UplinkSpec[] = [];
  for (const b of bridges.filter((x) => x.uplink)) {
    const n = usable(b).find((a) => defaultBridge(a.node) === b.name);
    uplinks.push({ bridge: b.name, ...(n ? { node: n.node } : {}) });
  }
  const gateways: GatewaySpec[] = [];
  const pairOf = (bridge: string, from: string, to: string) => pairs.find((p) => p.bridge === bridge && p.from === from && p.to === to);
  for (const lan of bridges.filter((b) => b.gateway && t.nodes[b.gateway]?.router)) {
    const r = lan.gateway!;
    const spec = t.nodes[r].router!;
    const up = t.bridges[spec.upstream];
    if (!up) continue;
    const s = usable(lan).find((a) => a.node !== r && defaultBridge(a.node) === lan.name);
    const d = usable(up).find((a) => a.node !== r && !lan.attach.some((z) => z.node === a.node));
    const leg1 = s ? pairOf(lan.name, s.node, r) : undefined;
    const leg2 = d ? pairOf(up.name, r, d.node) : undefined;
    const fw = spec.firewall?.outboundUdp ? `${r}'s firewall allows outbound UDP to port${spec.firewall.outboundUdp.length === 1 && spec.firewall.outboundUdp[0].lo === spec.firewall.outboundUdp[0].hi ? '' : 's'} ${spec.firewall.outboundUdp.map((x) => (x.lo === x.hi ? `${x.lo}` : `${x.lo}-${x.hi}`)).join(', ')} only` : undefined;
    const why = (leg1 && !leg1.reachable ? leg1.why : undefined) ?? (leg2 && !leg2.reachable ? leg2.why : undefined) ?? fw;
    const nat = spec.nat ? `mapping ${spec.nat.mapping}, filtering ${spec.nat.filtering}` : 'no NAT';
    gateways.push({
      router: r, lan: lan.name, upstream: up.name,
      ...(s ? { src: { node: s.node, ip: bare(s.ip)! } } : {}), ...(d ? { dst: { node: d.node, ip: bare(d.ip)! } } : {}),
      reachable: why === undefined, why: why ?? 'open', nat,
      dropPct: 100 * (1 - (1 - (leg1?.dropPct ?? 0) / 100) * (1 - (leg2?.dropPct ?? 0) / 100)),
    });
  }
  return { pairs, routes, uplinks, gateways };
}

/**
 * Parses `--only`: a comma-separated list of `X>Y` (one direction; `X->Y` too), `X<>Y`
 * (both) and `X` (every pair with X), each optionally prefixed `BRIDGE:`. Returns a
 * predicate over pairs; throws Error naming the valid nodes and bridges for an unknown name.
 */
export function onlyFilter(t: Topology, spec: string): (p: { bridge: string; from: string; to: string }) => boolean {
  const items = spec.split(',').map((s) => s.trim()).filter(Boolean);
  if (items.length === 0) throw new Error('--only: empty list (give pairs such as a>b, a<>b, a, or lan:a>b)');
  const nodes = Object.keys(t.nodes).sort();
  const bridgesList = Object.keys(t.bridges).sort();
  const check = (n: string) => {
    if (!t.nodes[n]) throw new Error(`--only: unknown node ${JSON.stringify(n)} (nodes: ${nodes.join(', ')})`);
  };
  const preds = items.map((item) => {
    let bridge: string | undefined;
    let rest = item;
    const colon = item.indexOf(':');
    if (colon >= 0) {
      bridge = item.slice(0, colon);
      rest = item.slice(colon + 1);
      if (!t.bridges[bridge]) throw new Error(`--only: unknown bridge ${JSON.stringify(bridge)} (bridges: ${bridgesList.join(', ')})`);
    }
    const onB = (p: { bridge: string }) => bridge === undefined || p.bridge === bridge;
    const both = /^(.+?)<-?>(.+)$/.exec(rest);
    if (both) {
      const [x, y] = [both[1], both[2]];
      check(x);
      check(y);
      return (p: { bridge: string; from: string; to: string }) => onB(p) && ((p.from === x && p.to === y) || (p.from === y && p.to === x));
    }
    const one = /^(.+?)-?>(.+)$/.exec(rest);
    if (one) {
      const [x, y] = [one[1], one[2]];
      check(x);
      check(y);
      return (p: { bridge: string; from: string; to: string }) => onB(p) && p.from === x && p.to === y;
    }
    check(rest);
    return (p: { bridge: string; from: string; to: string }) => onB(p) && (p.from === rest || p.to === rest);
  });
  return (p) => preds.some((f) => f(p));
}
