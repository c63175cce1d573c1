/**
 * Plan addresses: the user-level object each host object belongs to. Host objects
 * carry their owner themselves (ifalias on links, comments on nft elements), so an
 * observed object is grouped under the same address as the desired one.
 */

export const addr = {
  node: (n: string) => `node.${n}`,
  nodeRoutes: (n: string) => `node.${n}.routes`,
  routerNat: (n: string) => `node.${n}.nat`,
  routerFirewall: (n: string) => `node.${n}.firewall`,
  bridge: (b: string) => `bridge.${b}`,
  vxlan: (b: string) => `bridge.${b}.vxlan`,
  attach: (b: string, n: string) => `bridge.${b}.attach.${n}`,
  shaping: (b: string, n: string) => `bridge.${b}.shaping.${n}`,
  partitionSym: (b: string, x: string, y: string) => `bridge.${b}.partition[${x}<>${y}]`,
  partitionDir: (b: string, x: string, y: string) => `bridge.${b}.partition[${x}>${y}]`,
  partitionAll: (b: string) => `bridge.${b}.partition_all`,
  /** A partition written with groups; key as in GroupRef ("a|b,c", "a,b>c"). */
  partitionGroup: (b: string, key: string) => `bridge.${b}.partition[${key}]`,
  isolate: (b: string, n: string) => `bridge.${b}.isolate[${n}]`,
  impairWhole: (b: string) => `bridge.${b}.impairment[*]`,
  impairPair: (b: string, x: string, y: string) => `bridge.${b}.impairment[${x}>${y}]`,
  /** An impairment written with groups; key as in GroupRef. */
  impairGroup: (b: string, key: string) => `bridge.${b}.impairment[${key}]`,
  uplink: (b: string) => `bridge.${b}.uplink`,
  dns: (b: string) => `bridge.${b}.dhcp_dns`,
  nodeResolv: (n: string) => `node.${n}.resolv`,
  forward: (b: string, proto: string, port: number) => `bridge.${b}.forward[${proto}/${port}]`,
  route: (x: string, y: string) => (x < y ? `route[${x}<>${y}]` : `route[${y}<>${x}]`),
  nftBridge: 'nft.bridge',
  nftInet: 'nft.inet',
  ipForward: 'host.ip_forward',
  ip6Forward: 'host.ipv6_forwarding',
  uplinkOif: 'host.uplink_interface',
  uplinkOif6: 'host.uplink_interface_ipv6',
} as const;
