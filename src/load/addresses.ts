/**
 * IPv4 addressing of bridges: subnet checks (valid, network address, prefix
 * 8..30, no overlap between bridges), static address checks, and allocation of
 * addresses to attachments without ip.
 *
 * Allocation is a pure function of the file and stable under edits: a node's
 * address is derived from its name (pool slot = fmix32(FNV-1a(node)) mod pool size, the
 * pool being the subnet minus network, host (.1) and broadcast addresses); when
 * that slot is taken (by a static address or an earlier attachment) the next
 * free slot is used, wrapping around. So adding, removing or reordering nodes
 * leaves every other node's address alone unless their slots collide, and
 * appending a node never moves another one. Static `ip:` always wins.
 */
import type { InAttach, InBridge, Input } from './input.js';
import {
  ADDR_OR_CIDR_SHAPE,
  CIDR_SHAPE,
  broadcastOf,
  contains,
  formatAddr,
  formatCidr,
  networkOf,
  overlaps,
  parseCidr,
  type Cidr,
} from './ipv4.js';
import { q, type Reporter } from './report.js';
import { nameHash } from '../model/hash.js';

/** Shortest and longest subnet prefix: /30 leaves room for host, one node, network and broadcast. */
export const MIN_PREFIX = 8;
export const MAX_PREFIX = 30;

/** Result of addressing: each bridge's network (when valid) and each attachment's CIDR (static or allocated). */
export interface Addressing {
  /** Bridge name -> its network (host bits cleared); absent when the bridge has no usable subnet. */
  subnets: Map<string, Cidr>;
  /** Attachment -> its address in CIDR form, e.g. "10.40.0.2/24". */
  ips: Map<InAttach, string>;
}

/** Checks every subnet and address and allocates the rest; problems go to r. */
export function assignAddresses(input: Input, r: Reporter): Addressing {
  const result: Addressing = { subnets: new Map(), ips: new Map() };
  const bridges = [...(input.bridges?.values() ?? [])];
  for (const bridge of bridges) {
    const net = checkSubnet(bridge, r);
    if (net) result.subnets.set(bridge.name, net);
  }
  checkOverlaps(bridges, result.subnets, r);
  for (const bridge of bridges) assignBridge(bridge, result.subnets.get(bridge.name), result.ips, r);
  return result;
}

/**
 * Parses a bridge's subnet. Returns its network, also when host bits are set
 * (reported, but later checks go on with the intended network); undefined when
 * absent or unusable.
 */
function checkSubnet(bridge: InBridge, r: Reporter): Cidr | undefined {
  if (bridge.subnet === undefined || !CIDR_SHAPE.test(bridge.subnet)) return undefined; // bad shape: schema
  const path = [...bridge.path, 'subnet'];
  const cidr = parseCidr(bridge.subnet);
  if (!cidr) {
    r.error(path, 'invalid subnet', `${q(bridge.subnet)} is not a valid IPv4 network (octets are 0-255 without leading zeros, prefix 0-32)`);
    return undefined;
  }
  if (cidr.prefix < MIN_PREFIX || cidr.prefix > MAX_PREFIX) {
    r.error(path, 'invalid subnet', `prefix length /${cidr.prefix} of ${bridge.subnet} is outside ${MIN_PREFIX}..${MAX_PREFIX}`);
    return undefined;
  }
  const net = { addr: networkOf(cidr.addr, cidr.prefix), prefix: cidr.prefix };
  if (net.addr !== cidr.addr) {
    r.error(path, 'subnet is not a network address', `${bridge.subnet} has host bits set; did you mean ${formatCidr(net)}?`);
  }
  return net;
}

/** Subnets of different bridges must not share addresses; reported at the later bridge. */
function checkOverlaps(bridges: InBridge[], subnets: Map<string, Cidr>, r: Reporter): void {
  bridges.forEach((bridge, j) => {
    const net = subnets.get(bridge.name);
    if (!net) return;
    const earlier = bridges.slice(0, j).find((b) => subnets.has(b.name) && overlaps(subnets.get(b.name)!, net));
    if (earlier) {
      r.error([...bridge.path, 'subnet'], 'overlapping subnets', `${formatCidr(net)} of bridge ${q(bridge.name)} overlaps ${formatCidr(subnets.get(earlier.name)!)} of bridge ${q(earlier.name)}`);
    }
  });
}

/** Checks a bridge's static addresses, then allocates the others from its subnet (when it has one). */
function assignBridge(bridge: InBridge, net: Cidr | undefined, ips: Map<InAttach, string>, r: Reporter): void {
  const used = new Map<number, string>();
  if (net) used.set(net.addr + 1, bridge.gateway ? `the gateway ${q(bridge.gateway)}` : 'the host');
  for (const a of bridge.attach) {
    // A bridge's gateway (a router) takes the first address (load/routers.ts).
    if (net && a.ip === undefined && a.node === bridge.gateway) ips.set(a, formatCidr({ addr: net.addr + 1, prefix: net.prefix }));
    const cidr = a.ip === undefined ? undefined : checkStatic(a, bridge, net, used, r);
    if (cidr) {
      used.set(cidr.addr, `node ${q(a.node)}`);
      ips.set(a, formatCidr(cidr));
    }
  }
  if (net) allocate(bridge, net, used, ips, r);
}

/**
 * Gives each attachment without ip its node's slot in the pool [network+2,
 * broadcast-1] (FNV-1a of the node name, mixed by fmix32, modulo the pool size), or the next free
 * one after it (wrapping) when taken; attachments are served in attach order,
 * after all static addresses are placed.
 */
function allocate(bridge: InBridge, net: Cidr, used: Map<number, string>, ips: Map<InAttach, string>, r: Reporter): void {
  const first = net.addr + 2;
  const size = broadcastOf(net.addr, net.prefix) - first;
  let free = size - [...used.keys()].filter((x) => x >= first && x < first + size).length;
  for (const a of bridge.attach) {
    if (a.ip !== undefined || ips.has(a)) continue;
    if (free <= 0) {
      r.error(a.path, 'address pool exhausted', `subnet ${formatCidr(net)} of bridge ${q(bridge.name)} has no free address left for node ${q(a.node)}; use a shorter prefix`);
      continue;
    }
    let slot = nameHash(a.node) % size;
    while (used.has(first + slot)) slot = (slot + 1) % size;
    used.set(first + slot, `node ${q(a.node)}`);
    ips.set(a, formatCidr({ addr: first + slot, prefix: net.prefix }));
    free--;
  }
}

/**
 * Validates one static ip (a.ip) against the bridge's network; returns the
 * address with its prefix (bare addresses take the subnet's), or undefined
 * after reporting why it is unusable.
 */
function checkStatic(a: InAttach, bridge: InBridge, net: Cidr | undefined, used: Map<number, string>, r: Reporter): Cidr | undefined {
  const ip = a.ip!;
  if (!ADDR_OR_CIDR_SHAPE.test(ip)) return undefined; // bad shape: schema
  const bare = !ip.includes('/');
  if (bare && !net) {
    if (bridge.subnet === undefined) {
      r.error(a.ipPath, 'address needs a prefix', `bridge ${q(bridge.name)} has no subnet, so write the prefix length, e.g. ${ip}/24`);
    }
    return undefined;
  }
  const cidr = parseCidr(ip, net?.prefix);
  if (!cidr) {
    r.error(a.ipPath, 'invalid address', `${q(ip)} is not a valid IPv4 address (octets are 0-255 without leading zeros, prefix 0-32)`);
    return undefined;
  }
  const problem = net ? subnetProblem(cidr, net, bridge) : ownPrefixProblem(cidr);
  if (problem) {
    r.error(a.ipPath, problem.summary, problem.detail);
    return undefined;
  }
  const owner = used.get(cidr.addr);
  if (owner !== undefined) {
    r.error(a.ipPath, 'duplicate address', `${formatAddr(cidr.addr)} is already used by ${owner} on bridge ${q(bridge.name)}`);
    return undefined;
  }
  return cidr;
}

type Problem = { summary: string; detail: string } | undefined;

/** Why cidr cannot be an address on network net (wrong prefix, outside, network/broadcast/host address). */
function subnetProblem(cidr: Cidr, net: Cidr, bridge: InBridge): Problem {
  const addr = formatAddr(cidr.addr);
  const subnet = `${formatCidr(net)} of bridge ${q(bridge.name)}`;
  if (cidr.prefix !== net.prefix) {
    return { summary: 'prefix mismatch', detail: `${formatCidr(cidr)} has prefix /${cidr.prefix}, but subnet ${subnet} has /${net.prefix}; write ${addr} or ${addr}/${net.prefix}` };
  }
  if (!contains(net, cidr.addr)) return { summary: 'address outside subnet', detail: `${addr} is not inside subnet ${subnet}` };
  if (cidr.addr === net.addr) return { summary: 'reserved address', detail: `${addr} is the network address of subnet ${subnet}` };
  if (cidr.addr === broadcastOf(net.addr, net.prefix)) return { summary: 'reserved address', detail: `${addr} is the broadcast address of subnet ${subnet}` };
  if (cidr.addr === net.addr + 1) {
    const whose = bridge.gateway ? `the gateway ${q(bridge.gateway)}'s address` : "the host's address";
    return { summary: 'reserved address', detail: `${addr} is ${whose} on bridge ${q(bridge.name)} (the subnet's first address)` };
  }
  return undefined;
}

/** Without a subnet: the address must not be the network or broadcast address of its own prefix (up to /30). */
function ownPrefixProblem(cidr: Cidr): Problem {
  if (cidr.prefix > MAX_PREFIX) return undefined;
  const addr = formatAddr(cidr.addr);
  if (cidr.addr === networkOf(cidr.addr, cidr.prefix)) return { summary: 'reserved address', detail: `${addr} is the network address of ${addr}/${cidr.prefix}` };
  if (cidr.addr === broadcastOf(cidr.addr, cidr.prefix)) return { summary: 'reserved address', detail: `${addr} is the broadcast address of /${cidr.prefix}` };
  return undefined;
}
