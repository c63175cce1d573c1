/**
 * Builds the normalized Topology from a checked input (no errors left):
 * defaults filled in, addresses and NIC numbers assigned, routes made
 * symmetric, and source positions attached to every object.
 */
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type {
  AttachSpec,
  BridgeSpec,
  HostSpec,
  ImpairmentSpec,
  NodeSpec,
  PartitionSpec,
  Topology,
} from '../model/topology.js';
import { deriveVni, nicMac, nicName } from '../model/names.js';
import { bridgeHosts } from './hosts.js';
import type { Addressing } from './addresses.js';
import type { NicTable } from './devices.js';
import type { InAttach, InBridge, InImpairment, InNode, Input } from './input.js';
import { eui64, formatIpv6, parseIpv6 } from '../model/ipv6.js';
import { formatCidr } from './ipv4.js';
import { expandGroups } from './groups.js';
import type { PathLocator } from './tree.js';
import type { DataPath } from './source.js';
import type { SourcePos } from '../model/topology.js';

/** QEMU defaults: memory in MiB, virtual CPUs, accelerator. */
export const QEMU_DEFAULTS = { memory_mb: 256, cpus: 1, accel: 'auto' } as const;

/** Everything normalization needs from the earlier stages. */
export interface Checked {
  input: Input;
  addressing: Addressing;
  nics: NicTable;
  locator: PathLocator;
}

/**
 * The Topology of a file that passed every check. `absFile` is the absolute
 * path (Topology.file); positions keep the path as the user gave it.
 * Nodes and bridges keep file order; optional fields are omitted when unset.
 */
export function normalize(absFile: string, c: Checked): Topology {
  const routes = symmetricRoutes(c.input);
  const nodes: Record<string, NodeSpec> = {};
  for (const n of c.input.nodes?.values() ?? []) nodes[n.name] = normalizeNode(n, c);
  const bridges: Record<string, BridgeSpec> = {};
  for (const b of c.input.bridges?.values() ?? []) bridges[b.name] = normalizeBridge(b, routes.get(b.name) ?? [], c);
  let hosts: Record<string, HostSpec> | undefined;
  if (c.input.hosts) {
    hosts = {};
    const path = (p: string | undefined) => (p === undefined ? undefined : p.startsWith('~/') ? join(homedir(), p.slice(2)) : resolve(dirname(absFile), p));
    for (const h of c.input.hosts.values()) {
      hosts[h.name] = omitUndefined({
        name: h.name, local: h.local, ssh: h.ssh, port: h.port, identity: path(h.identity), sshConfig: path(h.sshConfig),
        underlay: h.underlay!, stateDir: h.stateDir?.replace(/\/+$/, '') || undefined, pos: c.locator.pos(h.path, { key: true }),
      });
    }
    for (const b of c.input.bridges?.values() ?? []) {
      bridges[b.name].home = bridgeHosts(c.input, b).home;
      bridges[b.name].vni = b.vni ?? deriveVni(c.input.lab!, b.name);
    }
  }
  return omitUndefined({
    file: absFile, lab: c.input.lab!, macPrefix: c.input.macPrefix || undefined, nodes, bridges, hosts,
    vxlanPort: hosts ? c.input.vxlanPort ?? 4789 : undefined, pos: c.locator.pos([]),
  }) as Topology;
}

/** A node; qemu settings with defaults for kind qemu. Positioned at its name. */
function normalizeNode(n: InNode, c: Checked): NodeSpec {
  const spec: NodeSpec = { name: n.name, kind: n.kind!, ...(n.host !== undefined ? { host: n.host } : {}), pos: c.locator.pos(n.path, { key: true }) };
  const keyPos = keyPositions(c, n.path, { kernel: n.kernel, initrd: n.initrd, disk: n.disk });
  if (keyPos) spec.keyPos = keyPos;
  if (n.kind === 'qemu') {
    spec.qemu = omitUndefined({
      kernel: n.kernel,
      initrd: n.initrd,
      append: n.append,
      disk: n.disk,
      memory_mb: n.memory_mb ?? QEMU_DEFAULTS.memory_mb,
      cpus: n.cpus ?? QEMU_DEFAULTS.cpus,
      accel: n.accel ?? QEMU_DEFAULTS.accel,
    });
  }
  return spec;
}

/** A bridge with its subnet/host address, attachments, partitions and impairments. Positioned at its name. */
function normalizeBridge(b: InBridge, routes: string[], c: Checked): BridgeSpec {
  const net = c.addressing.subnets.get(b.name);
  const net6 = b.subnet6 ? parseIpv6(b.subnet6.split('/')[0]) : undefined;
  // Group entries expand into the pairs they stand for, after the entries written pair by pair.
  const groups = expandGroups(b, c.locator);
  return omitUndefined({
    name: b.name,
    subnet: net ? formatCidr(net) : undefined,
    hostAddr: net ? formatCidr({ addr: net.addr + 1, prefix: net.prefix }) : undefined,
    subnet6: net6 ? `${formatIpv6(net6)}/64` : undefined,
    hostAddr6: net6 ? `${formatIpv6([...net6.slice(0, 7), 1])}/64` : undefined,
    mtu: b.mtu,
    attach: b.attach.map((a) => normalizeAttach(a, b, c)),
    partitions: [
      ...b.partitions.map((p): PartitionSpec => ({ kind: p.kind, a: p.a.name, b: p.b.name, pos: c.locator.pos(p.path) })),
      ...groups.partitions,
    ],
    partitionAll: b.partitionAll,
    impairments: [...b.impairments.map((i) => normalizeImpairment(i, c)), ...groups.impairments],
    isolate: b.isolate.map((ref) => ref.name),
    uplink: b.uplink,
    routes,
    dhcp: b.dhcp,
    dns: b.dns,
    forwards: b.forwards.map((f) => ({ hostPort: f.hostPort, node: f.node.name, port: f.port, proto: f.proto, pos: c.locator.pos(f.path) })),
    pos: c.locator.pos(b.path, { key: true }),
    keyPos: keyPositions(c, b.path, { uplink: b.uplink || undefined, dhcp: b.dhcp || undefined, dns: b.dns || undefined }),
  });
}

/** Positions of the keys of `fields` that are set (their values undefined otherwise), under path; undefined when none is set. */
export function keyPositions<K extends string>(c: { locator: PathLocator }, path: DataPath, fields: Record<K, unknown>): Partial<Record<K, SourcePos>> | undefined {
  const out: Partial<Record<K, SourcePos>> = {};
  for (const [k, v] of Object.entries(fields) as [K, unknown][]) {
    // A value a profile filled in is not written: only keys present in the file have a position.
    if (v !== undefined && (c.locator.has?.([...path, k]) ?? true)) out[k] = c.locator.pos([...path, k], { key: true });
  }
  return Object.keys(out).length ? out : undefined;
}

/** One NIC: address (static or allocated), link state, MAC in lower case, NIC name and index. */
function normalizeAttach(a: InAttach, b: InBridge, c: Checked): AttachSpec {
  const nicIndex = c.nics.get(a.node)!.indexOf(b.name);
  const net6 = b.subnet6 ? parseIpv6(b.subnet6.split('/')[0]) : undefined;
  const given6 = a.ip6 ? parseIpv6(a.ip6.split('/')[0]) : undefined;
  const mac = a.mac?.toLowerCase() ?? nicMac(c.input.lab ?? '', a.node, b.name, c.input.macPrefix);
  return omitUndefined({
    node: a.node,
    ip: c.addressing.ips.get(a),
    ip6: net6 ? `${formatIpv6(given6 ?? eui64(net6, mac))}/64` : undefined,
    link: a.link ?? 'up',
    mac: a.mac?.toLowerCase(),
    nic: nicName(nicIndex),
    nicIndex,
    pos: c.locator.pos(a.path),
  });
}

/** One impairment: whole-bridge (no from/to) or per pair; absent fields stay absent. */
function normalizeImpairment(i: InImpairment, c: Checked): ImpairmentSpec {
  return omitUndefined({
    from: i.from?.name,
    to: i.to?.name,
    latency_ms: i.latency_ms,
    jitter_ms: i.jitter_ms,
    drop_pct: i.drop_pct,
    bandwidth_bps: i.bandwidth_bps,
    profile: i.profile,
    pos: c.locator.pos(i.path),
    keyPos: impairmentKeyPos(i, c.locator),
  });
}

/** Where an impairment entry's settings are written (each may come from another file than the entry). */
export function impairmentKeyPos(i: InImpairment, locator: PathLocator): ImpairmentSpec['keyPos'] {
  return keyPositions({ locator }, i.path, {
    latency_ms: i.latency_ms, jitter_ms: i.jitter_ms, drop_pct: i.drop_pct, bandwidth_bps: i.bandwidth_bps, profile: i.profile,
  });
}

/** Bridge name -> the bridges it routes to, on either side's say-so; sorted, unique. */
export function symmetricRoutes(input: Input): Map<string, string[]> {
  const sets = new Map<string, Set<string>>();
  const add = (from: string, to: string): void => {
    if (!sets.has(from)) sets.set(from, new Set());
    sets.get(from)!.add(to);
  };
  for (const b of input.bridges?.values() ?? []) {
    for (const ref of b.routes) {
      add(b.name, ref.name);
      add(ref.name, b.name);
    }
  }
  return new Map([...sets].map(([name, set]) => [name, [...set].sort()]));
}

/** A copy of obj without the keys whose value is undefined (so absent means absent). */
function omitUndefined<T extends object>(obj: T): T {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as T;
}
