/**
 * Per-host projection of a multi-host topology (pure): the part of the lab one host
 * holds, as an ordinary Topology the single-host engine realizes, observes and plans.
 *
 * On host H: the nodes placed on H; every bridge with a member on H or with H as home,
 * with all its attachments (members on other hosts marked `remote`: no port here, only
 * senders whose MACs H's partitions, drop and shaping match at H's receiving ports);
 * per-pair impairments whose receiver is on H; a VXLAN port on every bridge that lives
 * on more than one host (unicast peers: the other hosts' underlay addresses); the host
 * address, DHCP/DNS, routes, uplink and forwards only where H is the bridge's home.
 * Bridges not on H stay in the projection marked `absent` so node routes know their
 * subnets. MTU: a spanning bridge's members get the smallest underlay MTU of its hosts
 * minus VXLAN's 50 bytes, or the declared `mtu` when it fits (else an error naming it).
 */
import type { BridgeSpec, Topology } from '../model/topology.js';
import type { Diagnostic } from '../model/diagnostics.js';

/** IPv4 VXLAN encapsulation: outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8 bytes. */
export const VXLAN_OVERHEAD = 50;

/** The hosts a bridge lives on: its members' hosts and its home, sorted. */
export function hostsOfBridge(t: Topology, b: BridgeSpec): string[] {
  const hs = new Set(b.attach.map((a) => t.nodes[a.node]?.host).filter((h): h is string => !!h));
  if (b.home) hs.add(b.home);
  return [...hs].sort();
}

/** Bridges living on more than one host (carried over VXLAN), with their hosts. */
export function spanningBridges(t: Topology): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const b of Object.values(t.bridges)) {
    const hs = hostsOfBridge(t, b);
    if (hs.length > 1) out.set(b.name, hs);
  }
  return out;
}

/**
 * The MTU of each spanning bridge: the declared `mtu` when it fits inside every one of
 * its hosts' underlay MTU minus 50, else an error naming the bridge; without a declared
 * mtu the largest that fits. `underlayMtu`: host -> MTU of the link holding its underlay
 * address (hosts missing from it are not constrained: the first projection, before observing).
 */
export function spanningMtus(t: Topology, underlayMtu: Record<string, number>): { mtus: Record<string, number | undefined>; errors: Diagnostic[] } {
  const mtus: Record<string, number | undefined> = {};
  const errors: Diagnostic[] = [];
  for (const [name, hosts] of spanningBridges(t)) {
    const b = t.bridges[name];
    const known = hosts.filter((h) => underlayMtu[h] !== undefined);
    if (known.length === 0) {
      mtus[name] = b.mtu;
      continue;
    }
    const tightest = known.reduce((x, y) => (underlayMtu[y] < underlayMtu[x] ? y : x));
    const fit = underlayMtu[tightest] - VXLAN_OVERHEAD;
    if (b.mtu !== undefined && b.mtu > fit) {
      errors.push({
        severity: 'error', pos: b.pos,
        summary: `bridge ${name}: mtu ${b.mtu} cannot fit the VXLAN underlay`,
        detail: `it spans hosts ${hosts.join(', ')}; host ${tightest}'s underlay MTU is ${underlayMtu[tightest]}, and VXLAN takes ${VXLAN_OVERHEAD} bytes: at most ${fit}. Lower mtu (or leave it out: ${fit} is chosen), or raise the underlay MTU`,
      });
    }
    mtus[name] = b.mtu ?? fit;
  }
  return { mtus, errors };
}

/** Host H's part of a multi-host topology (see the module comment). `mtus` from spanningMtus. */
export function project(t: Topology, host: string, mtus: Record<string, number | undefined> = {}): Topology {
  const hosts = t.hosts!;
  const nodes = Object.fromEntries(Object.values(t.nodes).filter((n) => n.host === host).map((n) => [n.name, n]));
  const bridges: Record<string, BridgeSpec> = {};
  for (const b of Object.values(t.bridges)) {
    const on = hostsOfBridge(t, b);
    const here = on.includes(host);
    const remote = (node: string) => t.nodes[node]?.host !== host;
    const spanning = on.length > 1;
    bridges[b.name] = {
      ...b,
      mtu: spanning ? mtus[b.name] ?? b.mtu : b.mtu,
      attach: b.attach.map((a) => (remote(a.node) ? { ...a, remote: t.nodes[a.node]?.host ?? '?' } : a)),
      impairments: b.impairments.filter((i) => !i.to || !remote(i.to)),
      isolate: b.isolate.filter((n) => !remote(n)),
      placement: {
        home: b.home === host,
        ...(here ? {} : { absent: true }),
        ...(here && spanning
          ? { vxlan: { vni: b.vni!, port: t.vxlanPort ?? 4789, local: hosts[host].underlay, peers: on.filter((h) => h !== host).map((h) => hosts[h].underlay).sort() } }
          : {}),
      },
    };
  }
  return { ...t, nodes, bridges, placement: host };
}
