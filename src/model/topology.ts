/**
 * The validated, normalized topology: what a user's YAML file asks for.
 * Produced by `load/` (YAML text -> Topology); consumed by `plan/realize.ts`.
 * Every object keeps the source position of the YAML node it came from, so
 * later stages (plan conflicts, missing kernel features) can point at the file.
 */
import type { RouterSpec } from './router.js';

/** A position in a topology file: 1-based line and column (yaml's LineCounter). */
export interface SourcePos {
  file: string;
  line: number;
  col: number;
}

export type NodeKind = 'netns' | 'qemu' | 'router';

/** Kinds of node that live in a network namespace of their own (netns nodes and routers). */
export function hasNamespace(kind: NodeKind): boolean {
  return kind === 'netns' || kind === 'router';
}

/** QEMU settings of a `kind: qemu` node (booted by a later issue; its TAPs exist now). */
export interface QemuSpec {
  kernel?: string;
  initrd?: string;
  append?: string;
  disk?: string;
  memory_mb: number;
  cpus: number;
  accel: 'auto' | 'kvm' | 'tcg';
}

export interface NodeSpec {
  name: string;
  kind: NodeKind;
  qemu?: QemuSpec;
  /** Multi-host labs: the host (Topology.hosts) this node runs on. */
  host?: string;
  /** `kind: router` only: upstream, downstream bridges, NAT and firewall (model/router.ts). */
  router?: RouterSpec;
  /** netns nodes: the bridge whose gateway (router or uplink host side) carries its default route. */
  defaultRoute?: string;
  pos?: SourcePos;
  /** Where some settings are written (kernel, initrd, disk), possibly in another file than the node's name. */
  keyPos?: Partial<Record<'kernel' | 'initrd' | 'disk', SourcePos>>;
}

/** One NIC of a node on a bridge. `nic` is eth0, eth1, ... in order of bridge name per node. */
export interface AttachSpec {
  node: string;
  /** CIDR, e.g. "10.40.0.3/24": static, or allocated from the bridge's subnet; absent when the bridge has no subnet and none was given. */
  ip?: string;
  /** IPv6 CIDR (/64) in the bridge's subnet6: static ip6, or EUI-64 from the NIC's MAC. */
  ip6?: string;
  link: 'up' | 'down';
  mac?: string;
  /** Interface name inside the node (eth0, eth1, ...). */
  nic: string;
  /** Index of that NIC (0 for eth0). */
  nicIndex: number;
  /**
   * Set in a per-host projection (src/hosts/project.ts) on members placed on another host:
   * that host's name. Such a member has no port here; it is only a sender whose MAC this
   * host's partitions, drop and shaping match.
   */
  remote?: string;
  pos?: SourcePos;
}

/**
 * The group entry a pair was expanded from (`{ groups: [[a], [b, c]] }` or
 * `{ from: [a, b], to: [c] }`): every pair of one entry shares it, and the host objects
 * of all of them are owned by the entry's plan address (bridge.<b>.partition[<key>] or
 * bridge.<b>.impairment[<key>]), so a plan shows the entry as one change.
 */
export interface GroupRef {
  /** The entry's canonical text: "a|b,c" (groups, `others` as written), "a,b>c" (from/to); a hash when too long for an nft comment. */
  key: string;
  /** Directed pairs the entry covers: its specificity (fewer is more specific). */
  pairs: number;
  /** Order of the entry among the list's group entries (among equally specific entries, the later wins). */
  index: number;
}

/** A partition: `symmetric` drops a->b and b->a; `directional` drops from->to only. */
export interface PartitionSpec {
  kind: 'symmetric' | 'directional';
  a: string;
  b: string;
  /** Set when the pair comes from a group entry. */
  group?: GroupRef;
  pos?: SourcePos;
}

/**
 * An impairment on a whole bridge (no from/to) or on one directed pair (from and to).
 * Units: latency_ms, jitter_ms one-way milliseconds; drop_pct percent (0-100, fractions
 * allowed, realized at 0.01 % resolution); bandwidth_bps bits per second.
 * A per-pair field overrides the whole-bridge value of the same field for that pair.
 */
export interface ImpairmentSpec {
  from?: string;
  to?: string;
  latency_ms?: number;
  jitter_ms?: number;
  drop_pct?: number;
  bandwidth_bps?: number;
  /** The named profile the entry used (its values are already merged into the fields above). */
  profile?: string;
  /** Set when the pair comes from a group entry (then from and to are set). */
  group?: GroupRef;
  pos?: SourcePos;
  /** Where each setting is written (an overlay may add it to an entry of its base). */
  keyPos?: Partial<Record<'latency_ms' | 'jitter_ms' | 'drop_pct' | 'bandwidth_bps' | 'profile', SourcePos>>;
}

/** A port forward: TCP/UDP host port (on the lab's host namespace addresses) to a node's port on this bridge. */
export interface ForwardSpec {
  hostPort: number;
  node: string;
  port: number;
  proto: 'tcp' | 'udp';
  pos?: SourcePos;
}

export interface BridgeSpec {
  name: string;
  /** Normalized network CIDR, e.g. "10.40.0.0/24". */
  subnet?: string;
  /** The host side's address on the bridge: the subnet's first address, e.g. "10.40.0.1/24". */
  hostAddr?: string;
  /** Normalized IPv6 /64, e.g. "fd00:40::/64". */
  subnet6?: string;
  /** The host side's IPv6 address: ::1 of subnet6, e.g. "fd00:40::1/64". */
  hostAddr6?: string;
  /**
   * The router that is this bridge's gateway (`gateway: R`): R's NIC takes the subnet's
   * first address (gatewayAddr, and ::1 of subnet6 as gatewayAddr6), members route by
   * default through it, and the host side has no address (hostAddr/hostAddr6 unset).
   */
  gateway?: string;
  gatewayAddr?: string;
  gatewayAddr6?: string;
  mtu?: number;
  attach: AttachSpec[];
  partitions: PartitionSpec[];
  partitionAll: boolean;
  impairments: ImpairmentSpec[];
  isolate: string[];
  uplink: boolean;
  /** Names of bridges this one forwards to at L3 (symmetric: listing it on either side suffices). */
  routes: string[];
  forwards: ForwardSpec[];
  /** DHCP with a static lease per member (dnsmasq). */
  dhcp: boolean;
  /** DNS names <node>.<bridge> (dnsmasq); netns nodes resolve through it. */
  dns: boolean;
  /** Multi-host labs: the host holding the host address, DHCP/DNS, routes, uplink and forwards. */
  home?: string;
  /** Multi-host labs: VXLAN network identifier (1-16777215), given or derived from lab and bridge. */
  vni?: number;
  /** Set in a per-host projection only: what this host holds of the bridge. */
  placement?: BridgePlacement;
  pos?: SourcePos;
  /** Where some settings are written (uplink, dhcp, dns), possibly in another file than the bridge's name. */
  keyPos?: Partial<Record<'uplink' | 'dhcp' | 'dns', SourcePos>>;
}

/**
 * What one host holds of a bridge in a multi-host lab (per-host projection). `home`:
 * this host has the host address, DHCP/DNS, routes, uplink and forwards. `vxlan`: the
 * bridge has members on other hosts, reached through this VXLAN port: VNI, UDP port,
 * this host's underlay address (`local`), the other hosts' underlay addresses (`peers`,
 * head-end replication: `bridge fdb append 00:00:00:00:00:00 dst PEER` each).
 */
export interface BridgePlacement {
  home: boolean;
  /** The bridge is not on this host at all; kept so that node routes know its subnet. */
  absent?: boolean;
  vxlan?: { vni: number; port: number; local: string; peers: string[] };
}

/**
 * A host of a multi-host lab: the machine provium runs on (`local`) or one reached over
 * SSH. Paths (identity, sshConfig) are absolute; `underlay` is the IPv4 address VXLAN
 * peers send to; `stateDir` the host's state folder (lock, VM and dnsmasq files).
 */
export interface HostSpec {
  name: string;
  local: boolean;
  ssh?: string;
  port?: number;
  identity?: string;
  sshConfig?: string;
  underlay: string;
  stateDir?: string;
  pos?: SourcePos;
}

export interface Topology {
  /** Absolute path of the file it came from. */
  file: string;
  /** Lab name, ^[a-z][a-z0-9]{0,7}$: prefixes every host object the lab creates. */
  lab: string;
  /** First 0-3 bytes of derived MACs ("52:54:00"); derived MACs are 02:... without it. */
  macPrefix?: string;
  nodes: Record<string, NodeSpec>;
  bridges: Record<string, BridgeSpec>;
  /** Multi-host labs: the hosts, by name. Absent: the whole lab is on this machine. */
  hosts?: Record<string, HostSpec>;
  /** Multi-host labs: UDP port of the VXLAN tunnels (default 4789). */
  vxlanPort?: number;
  /** Set in a per-host projection only: the host this topology is the part of. */
  placement?: string;
  pos?: SourcePos;
}
