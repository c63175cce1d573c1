/**
 * A typed, path-carrying view of the plain YAML data, read defensively: any
 * value of the wrong shape is skipped (the schema reports it), so semantic
 * checks can run on a partly broken file and still report every other problem.
 * On a schema-valid file the view is complete.
 */
import type { NodeKind } from '../model/topology.js';
import type { DataPath } from './source.js';
import { PROFILES, type Profile } from './profiles.js';

/** A node under `nodes`. `path` is ["nodes", name]. */
export interface InNode {
  name: string;
  path: DataPath;
  kind?: NodeKind;
  kernel?: string;
  initrd?: string;
  append?: string;
  disk?: string;
  memory_mb?: number;
  cpus?: number;
  accel?: 'auto' | 'kvm' | 'tcg';
  /** Multi-host labs: the host it runs on. */
  host?: string;
}

/** A host under `hosts` (multi-host labs). `path` is ["hosts", name]. */
export interface InHost {
  name: string;
  path: DataPath;
  local: boolean;
  ssh?: string;
  port?: number;
  identity?: string;
  sshConfig?: string;
  underlay?: string;
  stateDir?: string;
}

/** One entry of a bridge's `attach` list. `nodePath` locates the node name (the entry itself in short form). */
export interface InAttach {
  node: string;
  ip?: string;
  link?: 'up' | 'down';
  mac?: string;
  ip6?: string;
  path: DataPath;
  nodePath: DataPath;
  ipPath: DataPath;
}

/** A node name somewhere in a bridge, with where it is written. */
export interface InRef {
  name: string;
  path: DataPath;
}

/** One partition: `[a, b]` (symmetric) or `{from, to}` (directional). */
export interface InPartition {
  kind: 'symmetric' | 'directional';
  a: InRef;
  b: InRef;
  path: DataPath;
}

/** One impairment entry; from/to absent for a whole-bridge entry. Units as in ImpairmentSpec. */
export interface InImpairment {
  from?: InRef;
  to?: InRef;
  latency_ms?: number;
  jitter_ms?: number;
  drop_pct?: number;
  bandwidth_bps?: number;
  /** Named link condition whose values fill the fields not given (profiles.ts). */
  profile?: string;
  /** jitter_ms given without latency_ms or a profile (an error: netem jitter needs a delay). */
  jitterAlone?: boolean;
  path: DataPath;
}

/** A port forward: host port -> node port, tcp or udp. */
export interface InForward {
  hostPort: number;
  node: InRef;
  port: number;
  proto: 'tcp' | 'udp';
  path: DataPath;
}

/** One group of a group entry: node names, or `others` (every member of the bridge not named in another group of the entry). */
export interface InGroupSet {
  names: InRef[];
  others: boolean;
  /** Where the group (or the from/to value) is written. */
  path: DataPath;
}

/**
 * A partition or impairment written with groups: `{ groups: [[a], [b, c]] }` (every pair
 * across different groups, both ways) or `{ from: [a, b], to: [c] }` (every directed pair
 * from the first set to the second; `others` allowed as either set).
 */
export interface InGroupEntry {
  list: 'partitions' | 'impairments';
  kind: 'groups' | 'fromto';
  /** groups: each group; fromto: [from, to]. */
  sets: InGroupSet[];
  /** Both `groups` and from/to were given (an error). */
  mixed: boolean;
  /** Impairments: the entry's settings (from/to absent). */
  fields?: InImpairment;
  path: DataPath;
}

/** A bridge under `bridges`. `path` is ["bridges", name]. */
export interface InBridge {
  name: string;
  path: DataPath;
  subnet?: string;
  subnet6?: string;
  mtu?: number;
  attach: InAttach[];
  partitions: InPartition[];
  partitionAll: boolean;
  impairments: InImpairment[];
  isolate: InRef[];
  /** Partitions and impairments written with groups (groups, from/to lists, others), in list order. */
  groupEntries: InGroupEntry[];
  uplink: boolean;
  routes: InRef[];
  forwards: InForward[];
  dhcp: boolean;
  dns: boolean;
  /** Multi-host labs: the bridge's home host. */
  home?: string;
  vni?: number;
  /** The router named by `gateway:` (load/routers.ts checks it). */
  gateway?: string;
}

/** The whole file. nodes/bridges are undefined when absent or not mappings (then references cannot be checked). */
export interface Input {
  lab?: string;
  macPrefix?: string;
  nodes?: Map<string, InNode>;
  bridges?: Map<string, InBridge>;
  /** Multi-host labs: undefined when absent or not a mapping. */
  hosts?: Map<string, InHost>;
  /** `vxlan.port`; `vxlanGiven` when the vxlan key exists. */
  vxlanPort?: number;
  vxlanGiven?: boolean;
}

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const oneOf = <T extends string>(v: unknown, allowed: readonly T[]): T | undefined =>
  allowed.includes(v as T) ? (v as T) : undefined;

/** Reads the plain data of a topology file (doc.toJS()) into the typed view. Never throws. */
export function readInput(data: unknown): Input {
  if (!isObj(data)) return {};
  return {
    lab: str(data.lab),
    macPrefix: str((data as Record<string, unknown> | undefined)?.mac_prefix)?.toLowerCase(),
    nodes: isObj(data.nodes) ? readMap(data.nodes, (name, v) => readNode(name, v)) : undefined,
    bridges: isObj(data.bridges) ? readMap(data.bridges, (name, v) => readBridge(name, v)) : undefined,
    hosts: isObj(data.hosts) ? readMap(data.hosts, (name, v) => readHost(name, v)) : undefined,
    vxlanPort: isObj(data.vxlan) ? num(data.vxlan.port) : undefined,
    vxlanGiven: data.vxlan !== undefined,
  };
}

/** A host's typed fields (multi-host labs). */
function readHost(name: string, v: unknown): InHost {
  const o = isObj(v) ? v : {};
  return {
    name, path: ['hosts', name], local: o.local === true, ssh: str(o.ssh), port: num(o.port), identity: str(o.identity),
    sshConfig: str(o.ssh_config), underlay: str(o.underlay), stateDir: str(o.state_dir),
  };
}

/** Reads each entry of a mapping (name -> value) in file order. */
function readMap<T>(obj: Obj, read: (name: string, value: unknown) => T): Map<string, T> {
  return new Map(Object.entries(obj).map(([name, value]) => [name, read(name, value)]));
}

/** A node's typed fields; wrongly typed ones are left undefined. */
function readNode(name: string, v: unknown): InNode {
  const o = isObj(v) ? v : {};
  return {
    name,
    path: ['nodes', name],
    kind: oneOf(o.kind, ['netns', 'qemu', 'router'] as const),
    kernel: str(o.kernel),
    initrd: str(o.initrd),
    append: str(o.append),
    disk: str(o.disk),
    memory_mb: num(o.memory_mb),
    cpus: num(o.cpus),
    accel: oneOf(o.accel, ['auto', 'kvm', 'tcg'] as const),
    host: str(o.host),
  };
}

/** A bridge's typed fields and lists; unreadable list items are dropped, flags default to false. */
function readBridge(name: string, v: unknown): InBridge {
  const o = isObj(v) ? v : {};
  const path = ['bridges', name];
  return {
    name,
    path,
    subnet: str(o.subnet),
    subnet6: str(o.subnet6),
    mtu: num(o.mtu),
    attach: list(o.attach).flatMap((item, i) => readAttach(item, [...path, 'attach', i])),
    partitions: list(o.partitions).flatMap((item, i) => readPartition(item, [...path, 'partitions', i])),
    partitionAll: o.partition_all === true,
    impairments: list(o.impairments).flatMap((item, i) => readImpairment(item, [...path, 'impairments', i])),
    isolate: readRefs(o.isolate, [...path, 'isolate']),
    groupEntries: [
      ...list(o.partitions).flatMap((item, i) => readGroupEntry(item, 'partitions', [...path, 'partitions', i])),
      ...list(o.impairments).flatMap((item, i) => readGroupEntry(item, 'impairments', [...path, 'impairments', i])),
    ],
    uplink: o.uplink === true,
    routes: readRefs(o.routes, [...path, 'routes']),
    forwards: list(o.forwards).flatMap((item, i) => readForward(item, [...path, 'forwards', i])),
    dhcp: o.dhcp === true,
    dns: o.dns === true,
    home: str(o.home),
    vni: num(o.vni),
    gateway: str(o.gateway),
  };
}

/** Forward entry; [] when unreadable (the schema reports it). */
function readForward(item: unknown, path: DataPath): InForward[] {
  if (!isObj(item) || typeof item.node !== 'string' || typeof item.host_port !== 'number' || typeof item.port !== 'number') return [];
  return [{ hostPort: item.host_port, node: { name: item.node, path: [...path, 'node'] }, port: item.port, proto: item.proto === 'udp' ? 'udp' : 'tcp', path }];
}

/** Attach entry: "a" or {node: "a", ...}; [] when unreadable. */
function readAttach(item: unknown, path: DataPath): InAttach[] {
  if (typeof item === 'string') return [{ node: item, path, nodePath: path, ipPath: path }];
  if (!isObj(item) || typeof item.node !== 'string') return [];
  return [
    {
      node: item.node,
      ip: str(item.ip),
      link: oneOf(item.link, ['up', 'down'] as const),
      mac: str(item.mac),
      ip6: str(item.ip6),
      path,
      nodePath: [...path, 'node'],
      ipPath: [...path, 'ip'],
    },
  ];
}

/** Partition entry: [a, b] or {from, to}; [] when unreadable or written with groups (readGroupEntry). */
function readPartition(item: unknown, path: DataPath): InPartition[] {
  if (isGroupForm(item)) return [];
  if (Array.isArray(item)) {
    if (item.length !== 2 || typeof item[0] !== 'string' || typeof item[1] !== 'string') return [];
    return [{ kind: 'symmetric', a: { name: item[0], path: [...path, 0] }, b: { name: item[1], path: [...path, 1] }, path }];
  }
  if (!isObj(item) || typeof item.from !== 'string' || typeof item.to !== 'string') return [];
  return [{ kind: 'directional', a: { name: item.from, path: [...path, 'from'] }, b: { name: item.to, path: [...path, 'to'] }, path }];
}

/** Impairment entry, with its profile's values filled in; [] when not a mapping or written with groups (readGroupEntry). */
function readImpairment(item: unknown, path: DataPath): InImpairment[] {
  if (!isObj(item) || isGroupForm(item)) return [];
  const ref = (key: string): InRef | undefined =>
    typeof item[key] === 'string' ? { name: item[key] as string, path: [...path, key] } : undefined;
  // A profile fills the fields the entry does not set (unknown names are schema errors).
  const p: Profile = typeof item.profile === 'string' ? PROFILES[item.profile] ?? {} : {};
  return [
    {
      from: ref('from'),
      to: ref('to'),
      latency_ms: num(item.latency_ms) ?? p.latency_ms,
      jitter_ms: num(item.jitter_ms) ?? (num(item.latency_ms) === undefined ? p.jitter_ms : undefined),
      drop_pct: num(item.drop_pct) ?? p.drop_pct,
      bandwidth_bps: num(item.bandwidth_bps) ?? p.bandwidth_bps,
      profile: typeof item.profile === 'string' ? item.profile : undefined,
      jitterAlone: num(item.jitter_ms) !== undefined && num(item.latency_ms) === undefined && typeof item.profile !== 'string',
      path,
    },
  ];
}

/** A list of names (isolate, routes); non-strings skipped. */
function readRefs(v: unknown, path: DataPath): InRef[] {
  return list(v).flatMap((name, i) => (typeof name === 'string' ? [{ name, path: [...path, i] }] : []));
}

/** The word that names, in a group, every member of the bridge not named in another group of the entry. */
export const OTHERS = 'others';

/** True for an entry written with groups: a `groups` key, a list as from/to, or `others` as from/to. */
export function isGroupForm(item: unknown): boolean {
  if (!isObj(item)) return false;
  const set = (v: unknown) => Array.isArray(v) || v === OTHERS;
  return 'groups' in item || set(item.from) || set(item.to);
}

/** One group: a node name, `others`, or a list of names (which may be just [others]). Non-strings are skipped (the schema reports them). */
function readSet(v: unknown, path: DataPath): InGroupSet {
  if (typeof v === 'string') return v === OTHERS ? { names: [], others: true, path } : { names: [{ name: v, path }], others: false, path };
  const names: InRef[] = [];
  let others = false;
  list(v).forEach((name, i) => {
    if (name === OTHERS) others = true;
    else if (typeof name === 'string') names.push({ name, path: [...path, i] });
  });
  return { names, others, path };
}

/** A partition or impairment entry written with groups; [] for any other entry. */
function readGroupEntry(item: unknown, listName: 'partitions' | 'impairments', path: DataPath): InGroupEntry[] {
  if (!isObj(item) || !isGroupForm(item)) return [];
  const mixed = 'groups' in item && ('from' in item || 'to' in item);
  const { from: _f, to: _t, groups: _g, ...settings } = item;
  const fields = listName === 'impairments' ? readImpairment(settings, path)[0] : undefined;
  if ('groups' in item) {
    const sets = list(item.groups).map((g, i) => readSet(g, [...path, 'groups', i]));
    return [{ list: listName, kind: 'groups', sets, mixed, fields, path }];
  }
  if (item.from === undefined || item.to === undefined) return []; // from without to: reported by the schema
  return [{ list: listName, kind: 'fromto', sets: [readSet(item.from, [...path, 'from']), readSet(item.to, [...path, 'to'])], mixed, fields, path }];
}
