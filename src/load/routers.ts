/**
 * Routers in the file: reading (`kind: router` nodes' upstream, nat, firewall;
 * `default_route` of netns nodes; `gateway` of bridges), the semantic checks (every
 * problem located), and their part of normalization. Kept apart from the generic
 * loader so routing can grow without touching it.
 *
 * Rules checked here: a bridge's gateway is a router attached to it, on a bridge with a
 * subnet and without host-side services (uplink, routes, forwards, dhcp, dns: the host
 * has no address there); a router has exactly one upstream (the bridge where it is a
 * plain member, or `upstream:`); router chains have no cycle; `default_route` names a
 * bridge of the node that offers a default route (a gateway or an uplink); NAT needs an
 * IPv4 address upstream.
 */
import { NAME_RE } from '../model/names.js';
import type { BridgeSpec, NodeSpec, Topology } from '../model/topology.js';
import { FIREWALL_PRESETS, NAT_PRESETS, type FirewallSpec, type NatSpec, type PortRange, type Rfc4787Behaviour, RFC4787_BEHAVIOURS } from '../model/router.js';
import type { Input } from './input.js';
import { contains, parseCidr } from './ipv4.js';
import { q, type Reporter } from './report.js';
import type { DataPath } from './source.js';

/** A name with where it is written. */
interface Ref {
  name: string;
  path: DataPath;
}

/** Routing fields of one node, read from the plain data. */
export interface InRouting {
  name: string;
  path: DataPath;
  kind?: string;
  upstream?: Ref;
  /** `nat:` as written: a preset name or a mapping; undefined when absent. */
  nat?: { value: unknown; path: DataPath };
  firewall?: { value: unknown; path: DataPath };
  defaultRoute?: Ref;
}

/** Every node's routing fields and every bridge's gateway, from the plain data. */
export interface Routing {
  nodes: Map<string, InRouting>;
  gateways: Map<string, Ref>;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Reads the routing fields (never throws; wrong shapes are the schema's to report). */
export function readRouting(data: unknown): Routing {
  const out: Routing = { nodes: new Map(), gateways: new Map() };
  if (!isObj(data)) return out;
  if (isObj(data.nodes)) {
    for (const [name, v] of Object.entries(data.nodes)) {
      const o = isObj(v) ? v : {};
      const path = ['nodes', name];
      const ref = (key: string): Ref | undefined => (typeof o[key] === 'string' ? { name: o[key] as string, path: [...path, key] } : undefined);
      out.nodes.set(name, {
        name, path, kind: typeof o.kind === 'string' ? o.kind : undefined,
        upstream: ref('upstream'), defaultRoute: ref('default_route'),
        nat: o.nat !== undefined ? { value: o.nat, path: [...path, 'nat'] } : undefined,
        firewall: o.firewall !== undefined ? { value: o.firewall, path: [...path, 'firewall'] } : undefined,
      });
    }
  }
  if (isObj(data.bridges)) {
    for (const [name, v] of Object.entries(data.bridges)) {
      if (isObj(v) && typeof v.gateway === 'string') out.gateways.set(name, { name: v.gateway, path: ['bridges', name, 'gateway'] });
    }
  }
  return out;
}

/** Bridges a node is attached to, in file order. */
function bridgesOf(input: Input, node: string): string[] {
  return [...(input.bridges?.values() ?? [])].filter((b) => b.attach.some((a) => a.node === node)).map((b) => b.name);
}

/** Bridges each router is the gateway of. */
function gatewayOf(routing: Routing): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const [bridge, ref] of routing.gateways) m.set(ref.name, [...(m.get(ref.name) ?? []), bridge]);
  return m;
}

/** The upstream bridge of each router that has a determinable one (checkRouting reports the others). */
export function upstreams(input: Input, routing: Routing): Map<string, string> {
  const gw = gatewayOf(routing);
  const out = new Map<string, string>();
  for (const n of routing.nodes.values()) {
    if (n.kind !== 'router') continue;
    if (n.upstream) {
      out.set(n.name, n.upstream.name);
      continue;
    }
    const plain = bridgesOf(input, n.name).filter((b) => !(gw.get(n.name) ?? []).includes(b));
    if (plain.length === 1) out.set(n.name, plain[0]);
  }
  return out;
}

/** Runs every routing check; problems go to r. */
export function checkRouting(input: Input, routing: Routing, r: Reporter): void {
  const nodes = input.nodes;
  const bridges = input.bridges;
  const gw = gatewayOf(routing);
  const kindOf = (n: string) => routing.nodes.get(n)?.kind;

  for (const [bridgeName, ref] of routing.gateways) {
    const b = bridges?.get(bridgeName);
    if (!b) continue;
    if (nodes && !nodes.has(ref.name)) {
      r.error(ref.path, 'unknown router', `gateway names node ${q(ref.name)}, which is not defined under nodes`);
      continue;
    }
    if (kindOf(ref.name) !== 'router') {
      r.error(ref.path, 'gateway is not a router', `gateway ${q(ref.name)} is a ${kindOf(ref.name) ?? 'node'} node; a gateway must be a node of kind: router`);
      continue;
    }
    const at = b.attach.find((a) => a.node === ref.name);
    if (!at) {
      r.error(ref.path, 'gateway not attached', `gateway ${q(ref.name)} is not attached to bridge ${q(bridgeName)}; add it to attach`);
    } else {
      if (at.ip !== undefined) r.error(at.ipPath, 'gateway address is fixed', `${q(ref.name)} is the gateway of bridge ${q(bridgeName)} and takes the subnet's first address; remove ip`);
      if (at.ip6 !== undefined) r.error([...at.path, 'ip6'], 'gateway address is fixed', `${q(ref.name)} is the gateway of bridge ${q(bridgeName)} and takes ::1 of subnet6; remove ip6`);
    }
    if (b.subnet === undefined) r.error(ref.path, 'missing subnet', `bridge ${q(bridgeName)} has a gateway but no subnet; the gateway takes the subnet's first address`);
    for (const [key, on] of [['uplink', b.uplink], ['routes', b.routes.length > 0], ['forwards', b.forwards.length > 0], ['dhcp', b.dhcp], ['dns', b.dns]] as const) {
      if (on) r.error([...b.path, key], 'not on a gateway bridge', `bridge ${q(bridgeName)} has gateway ${q(ref.name)}, so the host has no address there and cannot serve ${key}; remove ${key} or the gateway`, { key: true });
    }
  }
  // A bridge with a gateway cannot be routed to through the host either.
  for (const b of bridges?.values() ?? []) {
    for (const ref of b.routes) {
      if (routing.gateways.has(ref.name)) r.error(ref.path, 'not on a gateway bridge', `bridge ${q(ref.name)} has a gateway, so the host has no address there to route through; reach it through its router instead`);
    }
  }

  const ups = upstreams(input, routing);
  for (const n of routing.nodes.values()) {
    if (!NAME_RE.test(n.name)) continue;
    if (n.kind === 'router') {
      const attached = bridgesOf(input, n.name);
      const mine = gw.get(n.name) ?? [];
      if (n.upstream) {
        if (bridges && !bridges.has(n.upstream.name)) r.error(n.upstream.path, 'unknown bridge', `upstream names bridge ${q(n.upstream.name)}, which is not defined under bridges`);
        else if (!attached.includes(n.upstream.name)) r.error(n.upstream.path, 'upstream not attached', `router ${q(n.name)} is not attached to bridge ${q(n.upstream.name)}`);
        else if (mine.includes(n.upstream.name)) r.error(n.upstream.path, 'upstream is a downstream bridge', `router ${q(n.name)} is the gateway of bridge ${q(n.upstream.name)}; its upstream must be a bridge where it is a plain member`);
      } else if (attached.length > 0) {
        const plain = attached.filter((b) => !mine.includes(b));
        if (plain.length === 0) r.error(n.path, 'no upstream', `router ${q(n.name)} is the gateway of every bridge it is on; attach it to an upstream bridge where it is a plain member`, { key: true });
        else if (plain.length > 1) r.error(n.path, 'ambiguous upstream', `router ${q(n.name)} is a plain member of bridges ${plain.map(q).join(', ')}; say which is upstream with upstream: ${plain[0]}`, { key: true });
      } else {
        r.error(n.path, 'no upstream', `router ${q(n.name)} is attached to no bridge`, { key: true });
      }
      if (attached.length > 0 && mine.length === 0) r.warning(n.path, 'router without downstream', `router ${q(n.name)} is the gateway of no bridge (set gateway: ${n.name} on the bridges it serves)`, { key: true });
      const up = ups.get(n.name);
      if (n.nat && natOf(n.nat.value) && up && bridges?.get(up) && bridges.get(up)!.subnet === undefined) {
        r.error(n.nat.path, 'NAT needs an upstream address', `router ${q(n.name)} translates to its address on bridge ${q(up)}, which has no subnet; give ${q(up)} a subnet`);
      }
      checkFirewall(n, r);
      for (const [key, field] of [['nat', n.nat], ['firewall', n.firewall]] as const) {
        const v = field?.value;
        if (isObj(v) && v.preset === 'none' && Object.keys(v).length > 1) r.error([...field!.path, 'preset'], 'nothing to override', `${key} preset none takes no other fields; remove them or pick another preset`);
      }
      if (n.nat && presetName(n.nat.value) === 'cgnat') {
        for (const b of mine) {
          const cidr = bridges?.get(b)?.subnet ? parseCidr(bridges.get(b)!.subnet!) : undefined;
          const shared = parseCidr('100.64.0.0/10')!;
          if (cidr && !(contains(shared, cidr.addr) && cidr.prefix >= 10)) {
            r.warning([...(bridges!.get(b)!.path), 'subnet'], 'not shared address space', `bridge ${q(b)} is behind cgnat router ${q(n.name)}; carriers number it from 100.64.0.0/10 (RFC 6598)`);
          }
        }
      }
    }
    if (n.defaultRoute) {
      const d = n.defaultRoute;
      const b = bridges?.get(d.name);
      if (!b) r.error(d.path, 'unknown bridge', `default_route names bridge ${q(d.name)}, which is not defined under bridges`);
      else if (!b.attach.some((a) => a.node === n.name)) r.error(d.path, 'not attached', `node ${q(n.name)} is not attached to bridge ${q(d.name)}`);
      else if (!routing.gateways.has(d.name) && !b.uplink) r.error(d.path, 'no default route there', `bridge ${q(d.name)} has neither a gateway nor uplink: true, so it offers no default route`);
    }
  }
  checkCycles(routing, ups, r);
}

/** Router chains (a router's upstream bridge has a gateway router, whose upstream ...) must end. */
function checkCycles(routing: Routing, ups: Map<string, string>, r: Reporter): void {
  const reported = new Set<string>();
  for (const start of ups.keys()) {
    const chain = [start];
    for (let cur = start; ; ) {
      const next = routing.gateways.get(ups.get(cur) ?? '')?.name;
      if (next === undefined || routing.nodes.get(next)?.kind !== 'router') break;
      if (chain.includes(next)) {
        const cycle = chain.slice(chain.indexOf(next));
        const key = [...cycle].sort().join(',');
        if (!reported.has(key)) {
          reported.add(key);
          const n = routing.nodes.get(start)!;
          r.error(n.path, 'router cycle', `routers form a cycle: ${[...cycle, next].map(q).join(' -> ')} (each one's upstream bridge has the next as gateway)`, { key: true });
        }
        break;
      }
      chain.push(next);
      cur = next;
    }
  }
}

/** The preset name of a `nat:`/`firewall:` value: the string, or the mapping's `preset`. */
function presetName(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (isObj(v) && typeof v.preset === 'string') return v.preset;
  return undefined;
}

/** Firewall port ranges: lo <= hi (shapes and ranges 1-65535 are the schema's). */
function checkFirewall(n: InRouting, r: Reporter): void {
  const v = n.firewall?.value;
  if (!isObj(v)) return;
  for (const key of ['outbound_tcp', 'outbound_udp', 'inbound_tcp', 'inbound_udp']) {
    const list = Array.isArray(v[key]) ? (v[key] as unknown[]) : [];
    list.forEach((p, i) => {
      if (typeof p === 'string' && /^\d+-\d+$/.test(p)) {
        const [lo, hi] = p.split('-').map(Number);
        if (lo > hi || lo < 1 || hi > 65535) r.error([...n.firewall!.path, key, i], 'invalid port range', `${q(p)}: a range is LOW-HIGH with 1 <= LOW <= HIGH <= 65535`);
      }
    });
  }
}

/** A NAT spec from `nat:` (schema-valid): a preset, or RFC 4787 fields over a preset or the defaults; undefined for none. */
export function natOf(v: unknown): NatSpec | undefined {
  const preset = presetName(v);
  const base = preset !== undefined ? NAT_PRESETS[preset] : undefined;
  if (preset !== undefined && base === null) return undefined;
  if (typeof v === 'string') return base ? { ...base, preset } : undefined;
  if (!isObj(v)) return undefined;
  const b = base ?? { mapping: 'endpoint-independent', filtering: 'address-and-port-dependent', hairpin: false, portPreservation: false, udpTimeoutS: 300, tcpEstablishedTimeoutS: 7440 };
  const behaviour = (x: unknown, d: Rfc4787Behaviour) => (RFC4787_BEHAVIOURS.includes(x as Rfc4787Behaviour) ? (x as Rfc4787Behaviour) : d);
  return {
    mapping: behaviour(v.mapping, b.mapping),
    filtering: behaviour(v.filtering, b.filtering),
    hairpin: typeof v.hairpin === 'boolean' ? v.hairpin : b.hairpin,
    portPreservation: typeof v.port_preservation === 'boolean' ? v.port_preservation : b.portPreservation,
    udpTimeoutS: typeof v.udp_timeout_s === 'number' ? v.udp_timeout_s : b.udpTimeoutS,
    tcpEstablishedTimeoutS: typeof v.tcp_established_timeout_s === 'number' ? v.tcp_established_timeout_s : b.tcpEstablishedTimeoutS,
    ...(preset !== undefined ? { preset } : {}),
  };
}

/** Port list of the file: integers and "LOW-HIGH" strings. */
function portsOf(v: unknown): PortRange[] {
  if (!Array.isArray(v)) return [];
  return v.flatMap((p) => {
    if (typeof p === 'number') return [{ lo: p, hi: p }];
    if (typeof p === 'string' && /^\d+-\d+$/.test(p)) {
      const [lo, hi] = p.split('-').map(Number);
      return [{ lo, hi }];
    }
    return [];
  });
}

/** A firewall spec from `firewall:` (schema-valid); undefined for none. */
export function firewallOf(v: unknown): FirewallSpec | undefined {
  const preset = presetName(v);
  const base = preset !== undefined ? FIREWALL_PRESETS[preset] : undefined;
  if (typeof v === 'string') return base ? { ...base, preset } : undefined;
  if (!isObj(v) || base === null) return undefined;
  const b = base ?? { inboundTcp: [], inboundUdp: [] };
  const list = (key: string, d: PortRange[] | undefined) => (Array.isArray(v[key]) ? portsOf(v[key]) : d);
  return {
    ...(preset !== undefined ? { preset } : {}),
    outboundTcp: list('outbound_tcp', b.outboundTcp),
    outboundUdp: list('outbound_udp', b.outboundUdp),
    inboundTcp: list('inbound_tcp', b.inboundTcp)!,
    inboundUdp: list('inbound_udp', b.inboundUdp)!,
  };
}

/**
 * Adds routing to a normalized topology (in place): routers' specs, default_route,
 * bridges' gateway and its addresses (the subnet's first address and ::1 of subnet6,
 * given to the gateway's NIC; the host side of such a bridge has none).
 */
export function normalizeRouting(t: Topology, input: Input, routing: Routing): void {
  const ups = upstreams(input, routing);
  const gw = gatewayOf(routing);
  for (const [bridgeName, ref] of routing.gateways) {
    const b: BridgeSpec | undefined = t.bridges[bridgeName];
    if (!b) continue;
    b.gateway = ref.name;
    if (b.hostAddr) b.gatewayAddr = b.hostAddr;
    if (b.hostAddr6) b.gatewayAddr6 = b.hostAddr6;
    delete b.hostAddr;
    delete b.hostAddr6;
    const a = b.attach.find((x) => x.node === ref.name);
    if (a) {
      if (b.gatewayAddr) a.ip = b.gatewayAddr;
      if (b.gatewayAddr6) a.ip6 = b.gatewayAddr6;
      else delete a.ip6;
    }
  }
  for (const n of routing.nodes.values()) {
    const spec: NodeSpec | undefined = t.nodes[n.name];
    if (!spec) continue;
    if (n.defaultRoute) spec.defaultRoute = n.defaultRoute.name;
    if (spec.kind !== 'router') continue;
    const nat = n.nat ? natOf(n.nat.value) : undefined;
    const firewall = n.firewall ? firewallOf(n.firewall.value) : undefined;
    spec.router = {
      upstream: ups.get(n.name)!,
      downstream: [...(gw.get(n.name) ?? [])].sort(),
      ...(nat ? { nat } : {}),
      ...(firewall ? { firewall } : {}),
    };
  }
}
