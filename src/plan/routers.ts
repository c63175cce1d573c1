/**
 * Routers in the desired state (pure): each `kind: router` node's own settings
 * (forwarding, conntrack timeouts, its nft table: plan/router-nft.ts), and the routes
 * routing adds inside namespaces: default routes through a bridge's gateway (or the
 * host side of an uplink bridge), and the return routes that make prefixes routed but
 * not translated by a router (IPv6 always, IPv4 behind `nat: none`) reachable from the
 * other members of its upstream bridge.
 */
import type { BridgeSpec, NodeSpec, Topology } from '../model/topology.js';
import type { HostState, RouteState, RouterState } from '../model/state.js';
import * as names from '../model/names.js';
import { desiredRouterTable, routerTableText, type RouterNftInput } from './router-nft.js';

/** sysctl keys of a router (read and written in its namespace), in the order observe reads them. */
export const ROUTER_SYSCTLS = {
  ipForward: 'net.ipv4.ip_forward',
  ip6Forward: 'net.ipv6.conf.all.forwarding',
  ctUdp: 'net.netfilter.nf_conntrack_udp_timeout',
  ctUdpStream: 'net.netfilter.nf_conntrack_udp_timeout_stream',
  ctTcpEstablished: 'net.netfilter.nf_conntrack_tcp_timeout_established',
} as const;

/** Bridges a node is attached to, by name. */
function bridgesOf(t: Topology, node: string): BridgeSpec[] {
  return Object.values(t.bridges)
    .filter((b) => b.attach.some((a) => a.node === node))
    .sort((a, b) => (a.name < b.name ? -1 : 1));
}

/** A node's bare addresses on a bridge (undefined when it has none there). */
function addrsOn(b: BridgeSpec, node: string): { v4?: string; v6?: string } {
  const a = b.attach.find((x) => x.node === node);
  return { v4: a?.ip?.split('/')[0], v6: a?.ip6?.split('/')[0] };
}

/**
 * Gateways of a node's default routes (bare addresses), IPv4 and IPv6: a router's
 * through its upstream bridge only; a netns node's through its `default_route` bridge
 * first, then the first of its bridges (by name) that offers one. A bridge offers a
 * default route through its gateway router (gatewayAddr/gatewayAddr6) or, with
 * `uplink: true`, through the host side (hostAddr/hostAddr6), for the families the
 * node has an address in.
 */
export function defaultGateways(t: Topology, node: string): { v4?: string; v6?: string } {
  const n = t.nodes[node];
  if (!n) return {};
  let candidates = bridgesOf(t, node);
  if (n.router) candidates = candidates.filter((b) => b.name === n.router!.upstream);
  else if (n.defaultRoute) candidates.sort((a, b) => Number(b.name === n.defaultRoute) - Number(a.name === n.defaultRoute));
  const out: { v4?: string; v6?: string } = {};
  for (const b of candidates) {
    if (b.gateway === node) continue;
    const me = addrsOn(b, node);
    const v4 = b.gateway ? b.gatewayAddr : b.uplink ? b.hostAddr : undefined;
    const v6 = b.gateway ? b.gatewayAddr6 : b.uplink ? b.hostAddr6 : undefined;
    if (out.v4 === undefined && v4 && me.v4) out.v4 = v4.split('/')[0];
    if (out.v6 === undefined && v6 && me.v6) out.v6 = v6.split('/')[0];
  }
  return out;
}

/**
 * Prefixes reachable through router `r` without translation: the subnets of the bridges
 * it is the gateway of and, recursively, those reachable through routers whose upstream
 * is one of them. IPv6 always; IPv4 only when `r` (and so each router on the way down
 * that is not itself translating) has no NAT.
 */
export function untranslatedPrefixes(t: Topology, r: string, family: 4 | 6, seen = new Set<string>()): string[] {
  const spec = t.nodes[r]?.router;
  if (!spec || seen.has(r) || (family === 4 && spec.nat)) return [];
  seen.add(r);
  const out: string[] = [];
  for (const g of spec.downstream) {
    const b = t.bridges[g];
    const p = family === 4 ? b?.subnet : b?.subnet6;
    if (p) out.push(p);
    for (const d of Object.values(t.nodes)) {
      if (d.name !== r && d.router?.upstream === g) out.push(...untranslatedPrefixes(t, d.name, family, seen));
    }
  }
  return out;
}

/**
 * Return routes of a node: for every router on one of its bridges (where that bridge is
 * the router's upstream), the router's untranslated prefixes via the router's address
 * there, except prefixes of bridges the node is on itself.
 */
export function returnRoutes(t: Topology, node: string): RouteState[] {
  const mine = bridgesOf(t, node);
  const onSubnet = new Set(mine.flatMap((b) => [b.subnet, b.subnet6].filter((x): x is string => !!x)));
  const out: RouteState[] = [];
  for (const b of mine) {
    const me = addrsOn(b, node);
    for (const r of b.attach.map((a) => t.nodes[a.node]).filter((x): x is NodeSpec => !!x?.router)) {
      if (r.name === node || r.router!.upstream !== b.name) continue;
      const via = addrsOn(b, r.name);
      if (me.v4 && via.v4) for (const p of untranslatedPrefixes(t, r.name, 4)) if (!onSubnet.has(p)) out.push({ dst: p, via: via.v4 });
      if (me.v6 && via.v6) for (const p of untranslatedPrefixes(t, r.name, 6)) if (!onSubnet.has(p)) out.push({ dst: p, via: via.v6 });
    }
  }
  return out;
}

/** What a router's nft table is generated from. */
export function routerNftInput(t: Topology, n: NodeSpec): RouterNftInput {
  const r = n.router!;
  const nic = (bridge: string) => t.bridges[bridge]?.attach.find((a) => a.node === n.name)?.nic;
  const up = t.bridges[r.upstream];
  return {
    lab: t.lab,
    node: n.name,
    wan: nic(r.upstream) ?? 'eth0',
    lan: r.downstream.map(nic).filter((x): x is string => !!x),
    public4: up ? addrsOn(up, n.name).v4 : undefined,
    nat: r.nat,
    firewall: r.firewall,
  };
}

/** Adds every router's own settings to a desired state (its namespace, NICs and routes are realized like a netns node's). */
export function realizeRouters(t: Topology, s: HostState): void {
  s.routers ??= {};
  for (const n of Object.values(t.nodes)) {
    if (n.kind !== 'router' || !n.router) continue;
    const ns = names.nodeNetns(t.lab, n.name);
    const input = routerNftInput(t, n);
    const nat = n.router.nat;
    const r: RouterState = {
      ns,
      node: n.name,
      ipForward: true,
      ip6Forward: bridgesOf(t, n.name).some((b) => b.subnet6 !== undefined),
      ...(nat ? { ctUdp: nat.udpTimeoutS, ctUdpStream: nat.udpTimeoutS, ctTcpEstablished: nat.tcpEstablishedTimeoutS } : {}),
      table: desiredRouterTable(input),
      nftText: routerTableText(input),
    };
    s.routers[ns] = r;
  }
}

/** The desired sysctl assignments of a router ("key=value"), in ROUTER_SYSCTLS order. */
export function routerSysctls(r: RouterState): string[] {
  const out: string[] = [];
  for (const [k, key] of Object.entries(ROUTER_SYSCTLS) as [keyof typeof ROUTER_SYSCTLS, string][]) {
    const v = r[k];
    if (v === undefined) continue;
    out.push(`${key}=${typeof v === 'boolean' ? (v ? 1 : 0) : v}`);
  }
  return out;
}
