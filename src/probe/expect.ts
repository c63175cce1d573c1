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
  fromKind: 'netns' | 'vm' | 'qemu';
  toKind: 'netns' | 'vm' | 'qemu';
  /** IPv4 addresses (bare) on this bridge; undefined without an address. */
  fromIp?: string;
  toIp?: string;
  reachable: boolean;
  /** Why it is unreachable, in the file's words ("partition a -> c", "isolate c", "c link down", "drop 100 %"); "open" otherwise. */
  why: string;
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

export interface Expectations {
  pairs: PairSpec[];
  routes: RouteSpec[];
  uplinks: UplinkSpec[];
}

const q2 = (pct: number) => Math.min(10000, Math.round(pct * 100)) / 100;

/** Node kind as the probe sees it: a qemu node boots a VM when it has a kernel or a disk. */
function kindOf(t: Topology, node: string): 'netns' | 'vm' | 'qemu' {
  const n = t.nodes[node];
  if (n.kind === 'netns') return 'netns';
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
        pairs.push({
          bridge: b.name, from: x, to: y, fromKind: kindOf(t, x), toKind: kindOf(t, y), fromIp: bare(ax.ip), toIp: bare(ay.ip),
          reachable: cut === undefined, why: cut ?? 'open', dropPct: eff.dropPct,
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
  const uplinks: UplinkSpec[] = [];
  for (const b of bridges.filter((x) => x.uplink)) {
    // A node's default route goes via the first uplink bridge it is on (bridge-name order).
    const n = usable(b).find((a) => bridges.find((x) => x.uplink && x.attach.some((z) => z.node === a.node))?.name === b.name);
    uplinks.push({ bridge: b.name, ...(n ? { node: n.node } : {}) });
  }
  return { pairs, routes, uplinks };
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
