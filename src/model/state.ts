/**
 * The host state of one lab, at the level of host objects (links, addresses,
 * routes, qdiscs/classes, nftables sets). Both sides of a plan have this shape:
 * `plan/realize.ts` derives the desired one from a Topology (pure) and
 * `observe/` lifts the observed one from `ip -j`, `tc -j`, `tc class show`
 * and `nft -j` output. Only fields the topology controls are kept; fields only
 * the kernel reports (ifindex, counters, handles) are dropped by the readers.
 */

/** A node's network namespace (netns nodes only). Name: pv-<lab>-<node>. */
export interface NamespaceState {
  name: string;
  /** Node name (from the lo ifalias "provium:<lab>:node:<node>" when observed). */
  node: string;
  /** lo's ifalias: the ownership mark. Observed: undefined when absent. */
  owner?: string;
  loUp: boolean;
  /** Interfaces inside the namespace provium manages (eth0, eth1, ...). */
  nics: Record<string, NicState>;
  /** Routes provium manages (IPv4 and IPv6 with a gateway; not the kernel's nor router advertisements'), in routeOrder. */
  routes: RouteState[];
}

/** A NIC inside a node namespace (the veth peer of a port). */
export interface NicState {
  ifname: string;
  /** MAC address (ip -j "address"), lower case. */
  mac?: string;
  /** IPv4 addresses in CIDR form ("10.40.0.2/24"), sorted. */
  addrs: string[];
  /** Global IPv6 addresses in CIDR form ("fd00:40::2/64", as iproute2 prints them), sorted. */
  addrs6?: string[];
  /** Administrative state (flags contain UP). */
  up: boolean;
  /** MTU in bytes; undefined in desired state means "leave as is". */
  mtu?: number;
}

/**
 * A route inside a node: "default" or a CIDR ("10.41.0.0/24", "fd00:41::/64"), via a
 * gateway address. The gateway tells the family: IPv6 when it contains ":" (so the
 * two "default" routes of a dual-stack uplink are told apart), as iproute2 infers it.
 */
export interface RouteState {
  dst: string;
  via: string;
}

/** Order of a node's routes on both sides of a plan: by dst, then by gateway. */
export function routeOrder(a: RouteState, b: RouteState): number {
  const x = `${a.dst} ${a.via}`;
  const y = `${b.dst} ${b.via}`;
  return x < y ? -1 : x > y ? 1 : 0;
}

/** A link in the lab's host namespace: a bridge, or a port (veth end / TAP) enslaved to one. */
export interface LinkState {
  name: string;
  /** iproute2 linkinfo.info_kind: "bridge", "veth", "tun" (TAP). */
  kind: string;
  /** ifalias: the ownership mark ("provium:<lab>:bridge:<name>" / "provium:<lab>:port:<node>:<bridge>"). */
  alias?: string;
  /** Bridge device this link is a port of. */
  master?: string;
  /** MTU in bytes; undefined in desired state means "leave as is". */
  mtu?: number;
  /** Administrative state. For a port, down = the node sees carrier off. */
  up: boolean;
  /** IPv4 addresses in CIDR form (the bridge's host address), sorted. */
  addrs: string[];
  /** Global IPv6 addresses in CIDR form (the bridge's host address), sorted. */
  addrs6?: string[];
  /** Ports only: the namespace of the veth peer (desired: node netns; observed: not known, left undefined). */
  peerNetns?: string;
  /** Ports only: the peer's interface name inside the node (eth0, ...). */
  peerName?: string;
  /** Ports only: the peer's MAC address. */
  peerMac?: string;
  /**
   * VXLAN ports only (kind "vxlan", multi-host labs): VNI, UDP destination port, local
   * underlay address (iproute2 linkinfo.info_data id/port/local) and the peers' underlay
   * addresses of its all-zeros FDB entries (`bridge fdb append 00:00:00:00:00:00 dst PEER`:
   * head-end replication of broadcast and unknown unicast).
   */
  vxlan?: { vni: number; port: number; local: string; peers: string[] };
}

/**
 * Netem settings of an HTB leaf (one-way): delay and jitter in milliseconds.
 * Observed from `tc -j qdisc show` kind "netem".
 */
export interface NetemState {
  delayMs: number;
  jitterMs: number;
  /** netem's queue limit in packets (tc `limit`; netem's default is 1000). Desired: sized by plan/realize.ts netemLimit. */
  limit?: number;
}

/** One HTB class under the port's root class <major>:1. rateBps = ceil, bits per second. */
export interface ClassState {
  minor: number;
  rateBps: number;
  netem?: NetemState;
}

/**
 * Egress shaping of one port: `tc qdisc root handle <major>: htb default <defaultMinor>`,
 * class <major>:1 (10 Gbit/s parent) and leaf classes. The per-pair classes are
 * selected by skb->priority, which the nft `prio` map sets to <major>:<minor>.
 */
export interface PortShaping {
  dev: string;
  major: number;
  defaultMinor: number;
  /** Leaf classes by minor (the default class included). */
  classes: Record<number, ClassState>;
}

/**
 * Directed pair "<sender MAC>><receiver port>", e.g. "02:1a:2b:3c:4d:5e>demo-b-0": the
 * sender by its NIC's MAC (nft `ether saddr`), the receiver by its port device
 * (`oifname`), so a sender on another host (frames arriving over VXLAN) is matched too.
 */
export type PortPair = string;

/** Element value plus its owner: the plan address stored in the element's nft comment. */
export interface Owned<T = true> {
  owner: string;
  value: T;
}

/**
 * The lab's `table bridge provium_<lab>`: partitions, isolation, drop and class selection.
 * Pair keys are sender MAC and receiver port (PortPair); isolation keys are port device
 * names; every element carries its owner as comment.
 */
export interface NftBridgeTable {
  /** Fingerprint of sets/chains/rules (not elements): equal when the table's structure is intact. */
  skeleton: string;
  /** Directed port pairs whose frames are dropped (ARP exempt). */
  blocked: Record<PortPair, Owned>;
  /** Ports cut off from every other port (ARP exempt). */
  isolated: Record<string, Owned>;
  /**
   * Drop rate per directed pair in hundredths of a percent (1 % = 100); nft element saddr . oif . 0-(n-1) over numgen mod 10000.
   * Only pairs whose drop is their own (a pair-level or group entry); the whole-bridge drop is `lossPort`.
   */
  loss: Record<PortPair, Owned<number>>;
  /**
   * Whole-bridge drop per receiving port in hundredths of a percent: nft element oif . 0-(n-1) over numgen mod
   * 10000, applied to every frame towards that port except from the senders in `lossOwn`. One element per port
   * instead of one per directed pair (a 250-node bridge: 250, not 62,250).
   */
  lossPort: Record<string, Owned<number>>;
  /** Directed pairs exempt from `lossPort`: those whose drop differs from the whole bridge's (their own `loss` element, or none for 0 %). */
  lossOwn: Record<PortPair, Owned>;
  /** HTB class per directed pair: classid "<major hex>:<minor hex>", set as skb->priority by the `prio` map. */
  prio: Record<PortPair, Owned<string>>;
}

/** The lab's `table inet provium_<lab>`: routing between bridges and uplink NAT. */
export interface NftInetTable {
  skeleton: string;
  /** The lab's bridge devices. */
  bridges: Record<string, Owned>;
  /** Bridge-device pairs allowed to forward at L3, "in>out" (both directions; a bridge to itself always). */
  forward: Record<string, Owned>;
  /** Bridge devices whose traffic may leave through the uplink. */
  uplinkBridges: Record<string, Owned>;
  /** Source subnets (CIDR) masqueraded on the uplink. */
  masqSources: Record<string, Owned>;
  /** Interfaces masquerading happens on: the host namespace's default-route interface. */
  uplinkOifs: Record<string, Owned>;
  /** IPv6 source subnets (the uplinked bridges' subnet6, "fd00:40::/64") masqueraded on the IPv6 uplink (set `masq6`). */
  masqSources6: Record<string, Owned>;
  /** Interfaces IPv6 masquerading happens on (set `wan6`): the host namespace's IPv6 default-route interface, else the IPv4 one. */
  uplinkOifs6: Record<string, Owned>;
  /** Port forwards: "tcp/8080" -> "10.40.0.2:80" (nft map inet_proto . inet_service : ipv4_addr . inet_service). */
  forwards: Record<string, Owned<string>>;
}

export interface NftState {
  bridge?: NftBridgeTable;
  inet?: NftInetTable;
}

/** A VM NIC: `-netdev tap,id=n-<tap>` + `-device virtio-net-pci,id=d-<tap>` on the TAP port. */
export interface VmNic {
  tap: string;
  /** Guest MAC, "02:xx:xx:xx:xx:xx" (locally administered) unless given in the file. */
  mac: string;
  /** PCI slot (0x10 + NIC index), so guest eth<i> order follows bridge names. */
  slot: number;
  /** MTU the guest is told (virtio-net host_mtu), bytes: set on bridges spanning hosts only. */
  mtu?: number;
}

/** How a VM is launched; any change restarts it. Paths are absolute. */
export interface VmSpec {
  kernel?: string;
  initrd?: string;
  append?: string;
  disk?: string;
  memoryMb: number;
  cpus: number;
  /** Resolved accelerator (auto is decided at plan time). */
  accel: 'kvm' | 'tcg';
}

/**
 * A QEMU VM of a `kind: qemu` node, owned by the lab: its process, QMP socket, pidfile
 * and console log live in <state dir>/<lab>/vm/<node>/. Observed from the pidfile,
 * /proc and QMP (`query-status`, `qom-list /machine/peripheral`); NIC link state
 * cannot be read back from QEMU, so `links` holds what provium last set (recorded).
 */
export interface VmState {
  node: string;
  spec: VmSpec;
  /** Process alive (pidfile names a live qemu using this VM's QMP socket). */
  alive: boolean;
  /** QMP query-status "status": running, paused, ... ("unresponsive" when QMP did not answer). */
  status: string;
  pid?: number;
  nics: Record<string, VmNic>;
  /** Link state per TAP as last set with QMP set_link (recorded, not observed). */
  links: Record<string, 'up' | 'down'>;
}

/**
 * A bridge's dnsmasq (DHCP and/or DNS), owned by the lab: config, pidfile, lease file
 * and log in <state dir>/<lab>/dnsmasq/. Observed from the config file on disk and the
 * process named by the pidfile (its command line names that config).
 */
export interface DnsmasqState {
  bridge: string;
  /** The config text; desired and observed compare equal when the file is as provium writes it. */
  config: string;
  alive: boolean;
  pid?: number;
}

/**
 * A router's own settings in its namespace (see model/router.ts): forwarding sysctls,
 * conntrack timeouts (the mapping timers of its NAT) and its nft table. Observed with
 * `sysctl` and `nft -j list table inet provium_<lab>` run in the router's namespace.
 */
export interface RouterState {
  ns: string;
  node: string;
  /** net.ipv4.ip_forward and net.ipv6.conf.all.forwarding in the router's namespace. */
  ipForward?: boolean;
  ip6Forward?: boolean;
  /**
   * conntrack timeouts in seconds (net.netfilter.nf_conntrack_udp_timeout,
   * _udp_timeout_stream, _tcp_timeout_established); undefined in desired state means
   * "leave as is" (routers without NAT), observed undefined when conntrack is not loaded.
   */
  ctUdp?: number;
  ctUdpStream?: number;
  ctTcpEstablished?: number;
  /** The router's table `inet provium_<lab>`; undefined when absent. */
  table?: RouterTableState;
  /** Desired state only: the nft text creating the table (plan/router-nft.ts), not compared. */
  nftText?: string;
  /** Observed only: a table of that name exists (even one provium cannot read back), so a rewrite deletes it first. */
  tableExists?: boolean;
}

/**
 * The parts of a router's nft table provium compares. `nat`/`firewall` are the
 * canonical configuration codes carried by the comment of its `config` set
 * (plan/router-nft.ts: natCode, firewallCode); the rest are set elements and the
 * fingerprints (set names/types, chain hooks, rule comments) of its base, NAT and
 * firewall rules.
 */
export interface RouterTableState {
  nat: string;
  firewall: string;
  /** Upstream interface(s) (set `wan`), downstream interfaces (set `lan`), public IPv4 address (set `public4`). */
  wan: string[];
  lan: string[];
  public4: string[];
  /** Firewall port lists ("80", "8000-8100"), sorted; undefined when the set is absent (every port allowed). */
  fwOutTcp?: string[];
  fwOutUdp?: string[];
  fwInTcp?: string[];
  fwInUdp?: string[];
  base: string;
  natRules: string;
  fwRules: string;
}

/** Everything provium manages for one lab, in one host namespace plus the node namespaces. */
export interface HostState {
  /** By bridge name. */
  dnsmasq: Record<string, DnsmasqState>;
  /** resolv.conf of netns nodes (/etc/netns/<ns>/resolv.conf, which `ip netns exec` binds over /etc/resolv.conf), by namespace. */
  resolv: Record<string, string>;
  /** hosts files of netns nodes (/etc/netns/<ns>/hosts, bound over /etc/hosts; plan/hosts.ts), by namespace. */
  hosts: Record<string, string>;
  vms: Record<string, VmState>;
  namespaces: Record<string, NamespaceState>;
  /** Routers' own settings, by namespace (`kind: router` nodes; their links, addresses and routes are in `namespaces`). */
  routers?: Record<string, RouterState>;
  links: Record<string, LinkState>;
  shaping: Record<string, PortShaping>;
  nft: NftState;
  /** net.ipv4.ip_forward of the lab's host namespace; undefined in desired state means "leave as is". */
  ipForward?: boolean;
  /**
   * net.ipv6.conf.all.forwarding of the lab's host namespace (writing `all` sets every
   * interface's and the default's value); undefined in desired state means "leave as is".
   */
  ip6Forward?: boolean;
}

/**
 * Facts about the host that are not lab objects: kernel features, the default
 * route, and same-named objects provium does not own (conflicts).
 */
export interface HostFacts {
  /** Kernel features: true when present or loadable. */
  features: { netem: boolean; htb: boolean; nftBridge: boolean; tun: boolean };
  /** /dev/kvm can run ordinary guests (kvm_intel or kvm_amd; a PVM-only host cannot). */
  kvmUsable?: boolean;
  /** Files the topology names that do not exist. */
  missingFiles?: string[];
  /** Path of qemu-system-x86_64 when the topology boots VMs and it was found. */
  qemuBinary?: string;
  /** Path of dnsmasq when the topology serves DHCP/DNS and it was found. */
  dnsmasqBinary?: string;
  /** Path of conntrack (conntrack-tools) when the topology has routers and it was found. */
  conntrackBinary?: string;
  /** Forwarded host ports ("tcp/8080") that a socket in the lab's host namespace listens on. */
  portsInUse?: string[];
  /** How each feature was determined (for messages). */
  featureSource: Record<string, string>;
  /** Interface of the (IPv4) default route in the lab's host namespace. */
  defaultRouteDev?: string;
  /** Interface of the IPv6 default route in the lab's host namespace (main table). */
  defaultRouteDev6?: string;
  /** Objects with a name provium wants that carry no (or another lab's) mark. */
  conflicts: Conflict[];
  /** Every address of the lab's host namespace (no prefix) -> MTU of its link: the underlay MTU of multi-host labs. */
  addressMtu?: Record<string, number>;
  /**
   * Other labs in the same host namespace that still need forwarding (from their nft
   * tables, see observe/parse.ts forwardingLabs): a forwarding sysctl is restored only
   * when none is left.
   */
  forwardingLabs?: { v4: string[]; v6: string[] };
}

export interface Conflict {
  kind: 'link' | 'netns' | 'nft-table' | 'file' | 'folder';
  name: string;
  found: string;
}

/** An empty host state. */
export function emptyState(): HostState {
  return { dnsmasq: {}, resolv: {}, hosts: {}, vms: {}, namespaces: {}, routers: {}, links: {}, shaping: {}, nft: {} };
}
