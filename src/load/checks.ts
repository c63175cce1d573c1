/**
 * Semantic checks on node and bridge references: every name used exists, every
 * node used inside a bridge is attached to that bridge, no duplicates or
 * self-references, routes and uplinks have what they need. Each problem is
 * reported at the YAML node that causes it.
 */
import { NAME_RE } from '../model/names.js';
import type { InBridge, InRef, Input } from './input.js';
import { q, type Reporter } from './report.js';
import { formatIpv6, inPrefix, parseIpv6 } from '../model/ipv6.js';

/** Runs every reference check over all bridges, plus the lab-wide ones (MACs, unattached nodes). */
export function checkReferences(input: Input, r: Reporter): void {
  for (const bridge of input.bridges?.values() ?? []) {
    checkAttach(bridge, input, r);
    checkPartitions(bridge, input, r);
    checkImpairments(bridge, input, r);
    checkIsolate(bridge, input, r);
    checkRoutes(bridge, input, r);
  }
  checkForwards(input, r);
  checkIpv6(input, r);
  if (input.macPrefix && parseInt(input.macPrefix.slice(0, 2), 16) & 1) {
    r.error(['mac_prefix'], 'multicast mac_prefix', `${q(input.macPrefix)} has the multicast bit set (first byte odd); NIC MACs must be unicast`);
  }
  for (const b of input.bridges?.values() ?? []) {
    for (const k of ['dhcp', 'dns'] as const) {
      if (b[k] && !b.subnet) r.error([...b.path, k], `${k} without subnet`, `bridge ${q(b.name)} serves ${k.toUpperCase()} but has no subnet; add subnet: (e.g. 10.40.0.0/24)`, { key: true });
    }
  }
  checkMacs(input, r);
  warnUnattached(input, r);
}

const attachedCache = new WeakMap<InBridge, Set<string>>();

/** Names of the nodes attached to a bridge (computed once per bridge: checks ask for every reference). */
function attachedTo(bridge: InBridge): Set<string> {
  let set = attachedCache.get(bridge);
  if (!set) attachedCache.set(bridge, (set = new Set(bridge.attach.map((a) => a.node))));
  return set;
}

/**
 * Checks that a node named inside bridge `bridge` (by `what`, e.g. "partition")
 * exists and is attached to it. Returns false when it reported an error.
 */
function checkMember(ref: InRef, what: string, bridge: InBridge, input: Input, r: Reporter): boolean {
  if (input.nodes && !input.nodes.has(ref.name)) {
    r.error(ref.path, 'unknown node', `${what} names node ${q(ref.name)}, which is not defined under nodes`);
    return false;
  }
  if (!attachedTo(bridge).has(ref.name)) {
    r.error(ref.path, 'unknown node', `${what} names node ${q(ref.name)}, which is not attached to bridge ${q(bridge.name)}`);
    return false;
  }
  return true;
}

/** Attach entries: the node exists, and is attached once. */
function checkAttach(bridge: InBridge, input: Input, r: Reporter): void {
  const seen = new Map<string, number>();
  for (const a of bridge.attach) {
    if (input.nodes && !input.nodes.has(a.node)) {
      r.error(a.nodePath, 'unknown node', `bridge ${q(bridge.name)} attaches node ${q(a.node)}, which is not defined under nodes`);
    }
    const first = seen.get(a.node);
    if (first !== undefined) {
      r.error(a.nodePath, 'node attached twice', `node ${q(a.node)} is already attached to bridge ${q(bridge.name)} at line ${first}`);
    } else {
      seen.set(a.node, r.line(a.path));
    }
  }
}

/** Partitions: both nodes on this bridge, and distinct. */
function checkPartitions(bridge: InBridge, input: Input, r: Reporter): void {
  for (const p of bridge.partitions) {
    checkMember(p.a, 'partition', bridge, input, r);
    checkMember(p.b, 'partition', bridge, input, r);
    if (p.a.name === p.b.name) {
      r.error(p.path, 'self partition', `partition of node ${q(p.a.name)} with itself; a partition needs two different nodes`);
    }
  }
}

/** Impairments: nodes on this bridge, distinct, at most one whole-bridge entry and one per (from, to) pair. */
function checkImpairments(bridge: InBridge, input: Input, r: Reporter): void {
  const seen = new Map<string, number>();
  for (const imp of bridge.impairments) {
    if (imp.jitterAlone) r.error([...imp.path, 'jitter_ms'], 'incomplete entry', '"jitter_ms" requires "latency_ms" (or a profile) in the same impairment', { key: true });
    if (imp.from) checkMember(imp.from, 'impairment', bridge, input, r);
    if (imp.to) checkMember(imp.to, 'impairment', bridge, input, r);
    if (!imp.from !== !imp.to) continue; // from without to: reported by the schema
    if (imp.from && imp.to && imp.from.name === imp.to.name) {
      r.error(imp.path, 'self impairment', `impairment from node ${q(imp.from.name)} to itself; from and to must differ`);
      continue;
    }
    const key = imp.from && imp.to ? JSON.stringify([imp.from.name, imp.to.name]) : '';
    const first = seen.get(key);
    if (first === undefined) {
      seen.set(key, r.line(imp.path));
    } else if (key === '') {
      r.error(imp.path, 'duplicate impairment', `bridge ${q(bridge.name)} already has a whole-bridge impairment at line ${first}; merge them into one entry`);
    } else {
      r.error(imp.path, 'duplicate impairment', `bridge ${q(bridge.name)} already has an impairment from ${q(imp.from!.name)} to ${q(imp.to!.name)} at line ${first}; merge them into one entry`);
    }
  }
}

/** Isolated nodes: on this bridge. (Duplicates are reported by the schema.) */
function checkIsolate(bridge: InBridge, input: Input, r: Reporter): void {
  for (const ref of bridge.isolate) checkMember(ref, 'isolate', bridge, input, r);
}

/** Routes and uplink: targets exist, differ from the bridge, and both ends have subnets. */
function checkRoutes(bridge: InBridge, input: Input, r: Reporter): void {
  for (const ref of bridge.routes) {
    const target = input.bridges?.get(ref.name);
    if (!target) {
      r.error(ref.path, 'unknown bridge', `routes names bridge ${q(ref.name)}, which is not defined under bridges`);
    } else if (target === bridge) {
      r.error(ref.path, 'route to itself', `bridge ${q(bridge.name)} routes to itself`);
    } else if (target.subnet === undefined) {
      r.error(ref.path, 'missing subnet', `bridge ${q(bridge.name)} routes to bridge ${q(target.name)}, which has no subnet`);
    }
  }
  if (bridge.subnet !== undefined) return;
  if (bridge.routes.length > 0) {
    r.error([...bridge.path, 'routes'], 'missing subnet', `bridge ${q(bridge.name)} has routes but no subnet; routing needs an address on the bridge`, { key: true });
  }
  if (bridge.uplink) {
    r.error([...bridge.path, 'uplink'], 'missing subnet', `bridge ${q(bridge.name)} has uplink: true but no subnet; the uplink needs an address on the bridge`, { key: true });
  }
}

/** MAC addresses are unique across the lab (compared case-insensitively). */
function checkMacs(input: Input, r: Reporter): void {
  const seen = new Map<string, string>();
  for (const bridge of input.bridges?.values() ?? []) {
    for (const a of bridge.attach) {
      if (a.mac === undefined || !/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(a.mac)) continue; // bad shape: schema
      const mac = a.mac.toLowerCase();
      const first = seen.get(mac);
      if (first !== undefined) {
        r.error([...a.path, 'mac'], 'duplicate MAC', `${mac} is already used by ${first}`);
      } else {
        seen.set(mac, `node ${q(a.node)} on bridge ${q(bridge.name)}`);
      }
    }
  }
}

/** Warns about nodes attached to no bridge (they get no NIC; allowed). Invalid names are left to the schema error. */
function warnUnattached(input: Input, r: Reporter): void {
  if (!input.nodes || !input.bridges) return;
  const attached = new Set([...input.bridges.values()].flatMap((b) => b.attach.map((a) => a.node)));
  for (const node of input.nodes.values()) {
    if (!attached.has(node.name) && NAME_RE.test(node.name)) {
      r.warning(node.path, 'unattached node', `node ${q(node.name)} is attached to no bridge`, { key: true });
    }
  }
}

/** Forwards: the node is on that bridge; one forward per (protocol, host port) in the whole lab. */
function checkForwards(input: Input, r: Reporter): void {
  const seen = new Map<string, number>();
  for (const bridge of input.bridges?.values() ?? []) {
    for (const f of bridge.forwards) {
      if (checkMember(f.node, 'forward', bridge, input, r)) {
        const a = bridge.subnet ? undefined : bridge.attach.find((x) => x.node === f.node.name);
        if (!bridge.subnet && !a?.ip) r.error(f.node.path, 'no address', `forward to node ${q(f.node.name)}: it has no IPv4 address on bridge ${q(bridge.name)} (give the bridge a subnet or the attachment an ip)`);
      }
      const key = `${f.proto}/${f.hostPort}`;
      const first = seen.get(key);
      if (first !== undefined) r.error([...f.path, 'host_port'], 'duplicate forward', `host port ${f.hostPort}/${f.proto} is already forwarded at line ${first}`, { key: true });
      else seen.set(key, r.line(f.path));
    }
  }
}

/** IPv6: subnet6 is a /64 network prefix; ip6 needs subnet6, lies inside it, is not ::1 (the host side), is unique. */
function checkIpv6(input: Input, r: Reporter): void {
  for (const b of input.bridges?.values() ?? []) {
    let net: number[] | undefined;
    if (b.subnet6) {
      net = parseIpv6(b.subnet6.split('/')[0]);
      if (!net) r.error([...b.path, 'subnet6'], 'invalid subnet6', `${q(b.subnet6)} is not an IPv6 prefix`);
      else if (net.slice(4).some((g) => g !== 0)) {
        r.error([...b.path, 'subnet6'], 'not a network prefix', `${q(b.subnet6)} has host bits set; did you mean ${formatIpv6([...net.slice(0, 4), 0, 0, 0, 0])}/64?`);
        net = undefined;
      }
    }
    const seen = new Map<string, number>();
    for (const a of b.attach) {
      if (!a.ip6) continue;
      const at = [...a.path, 'ip6'];
      const g = parseIpv6(a.ip6.split('/')[0]);
      if (!g) {
        r.error(at, 'invalid ip6', `${q(a.ip6)} is not an IPv6 address`);
        continue;
      }
      if (!b.subnet6) {
        r.error(at, 'ip6 without subnet6', `bridge ${q(b.name)} has no subnet6; add one (e.g. fd00:40::/64)`);
        continue;
      }
      if (!net) continue;
      if (!inPrefix(g, net, 64)) r.error(at, 'address outside subnet6', `${q(a.ip6)} is not inside ${b.subnet6}`);
      else if (formatIpv6(g) === formatIpv6([...net.slice(0, 7), 1])) r.error(at, 'host address', `${q(a.ip6)} is the host side's address (::1 of the prefix)`);
      const key = formatIpv6(g);
      const first = seen.get(key);
      if (first !== undefined) r.error(at, 'duplicate address', `${q(a.ip6)} is already used on bridge ${q(b.name)} (line ${first})`);
      else seen.set(key, r.line(at));
    }
  }
}
