/**
 * Names of every host object a lab creates, derived from lab, node and bridge names.
 * Pure. Interface names are at most 15 bytes (IFNAMSIZ - 1); the loader rejects
 * topologies whose derived names would be longer or would collide.
 */

import { fmix32, fnv1a } from './hash.js';

export const IFNAMSIZ_MAX = 15;
export const LAB_RE = /^[a-z][a-z0-9]{0,7}$/;
/** Node and bridge names: lower-case letters, digits and dashes, starting with a letter. */
export const NAME_RE = /^[a-z][a-z0-9-]{0,30}$/;

/** Bridge device in the lab's host namespace, e.g. "demo-lan". */
export function bridgeDev(lab: string, bridge: string): string {
  return `${lab}-${bridge}`;
}

/** Host-side port (veth end or TAP) of node's NIC number nicIndex, e.g. "demo-a-0" for a's eth0. */
export function portDev(lab: string, node: string, nicIndex: number): string {
  return `${lab}-${node}-${nicIndex}`;
}

/** Interface name inside a node: eth0, eth1, ... */
export function nicName(nicIndex: number): string {
  return `eth${nicIndex}`;
}

/** Network namespace of a netns node, e.g. "pv-demo-a". */
export function nodeNetns(lab: string, node: string): string {
  return `pv-${lab}-${node}`;
}

/** Prefix of every node namespace of a lab ("pv-demo-"). */
export function netnsPrefix(lab: string): string {
  return `pv-${lab}-`;
}

/** nftables table name of a lab (families bridge and inet), e.g. "provium_demo". */
export function nftTable(lab: string): string {
  return `provium_${lab}`;
}

/** Ownership mark prefix carried by every object: ifalias on links, comment on nft sets and rules. */
export function ownerPrefix(lab: string): string {
  return `provium:${lab}:`;
}

/** ifalias of a bridge device: "provium:demo:bridge:lan". */
export function bridgeAlias(lab: string, bridge: string): string {
  return `provium:${lab}:bridge:${bridge}`;
}

/** ifalias of a port: "provium:demo:port:a:lan" (node a's NIC on bridge lan). */
export function portAlias(lab: string, node: string, bridge: string): string {
  return `provium:${lab}:port:${node}:${bridge}`;
}

/**
 * ifalias of a node namespace's loopback, marking the namespace as the lab's:
 * "provium:demo:node:a"; in a multi-host lab also the host it is placed on,
 * "provium:demo:node:a:h1" (hosts that share /run/netns, as test hosts on one machine
 * do, then tell their namespaces apart).
 */
export function nodeAlias(lab: string, node: string, host?: string): string {
  return `provium:${lab}:node:${node}${host ? `:${host}` : ''}`;
}

/** ifalias of a bridge's VXLAN port (multi-host labs): "provium:demo:vxlan:lan". */
export function vxlanAlias(lab: string, bridge: string): string {
  return `provium:${lab}:vxlan:${bridge}`;
}

/** VXLAN port device of a bridge spanning hosts, e.g. "demo-lan-vx". */
export function vxlanDev(lab: string, bridge: string): string {
  return `${lab}-${bridge}-vx`;
}

/** ifalias of a router namespace's loopback: "provium:demo:router:home" (a router's namespace is marked as one); in a multi-host lab also its host, as for nodeAlias. */
export function routerAlias(lab: string, node: string, host?: string): string {
  return `provium:${lab}:router:${node}${host ? `:${host}` : ''}`;
}

/** Parses an ifalias written by provium; undefined for anything else. */
export function parseAlias(alias: string | undefined):
  | { lab: string; kind: 'bridge'; bridge: string }
  | { lab: string; kind: 'port'; node: string; bridge: string }
  | { lab: string; kind: 'node' | 'router'; node: string; host?: string }
  | { lab: string; kind: 'vxlan'; bridge: string }
  | undefined {
  if (!alias || !alias.startsWith('provium:')) return undefined;
  // Pure, and asked for the same few hundred marks thousands of times per plan: kept (read-only).
  const hit = aliases.get(alias);
  if (hit !== undefined || aliases.has(alias)) return hit;
  if (aliases.size >= 50_000) aliases.clear();
  const r = parseAliasOnce(alias);
  aliases.set(alias, r);
  return r;
}
const aliases = new Map<string, ReturnType<typeof parseAlias>>();

function parseAliasOnce(alias: string): ReturnType<typeof parseAlias> {
  const p = alias.split(':');
  if (p[2] === 'bridge' && p.length === 4) return { lab: p[1], kind: 'bridge', bridge: p[3] };
  if (p[2] === 'port' && p.length === 5) return { lab: p[1], kind: 'port', node: p[3], bridge: p[4] };
  if ((p[2] === 'node' || p[2] === 'router') && p.length === 4) return { lab: p[1], kind: p[2], node: p[3] };
  if ((p[2] === 'node' || p[2] === 'router') && p.length === 5) return { lab: p[1], kind: p[2], node: p[3], host: p[4] };
  if (p[2] === 'vxlan' && p.length === 4) return { lab: p[1], kind: 'vxlan', bridge: p[3] };
  return undefined;
}

/** QEMU ids of a VM NIC on TAP `tap`: netdev "n-<tap>", device "d-<tap>". */
export function vmNetdevId(tap: string): string {
  return `n-${tap}`;
}
export function vmDeviceId(tap: string): string {
  return `d-${tap}`;
}

/**
 * Deterministic MAC of a node's NIC (netns veth peer or VM virtio-net): 02 (locally
 * administered, unicast) followed by five bytes of a hash of lab, node and bridge;
 * stable across runs and hosts, so a re-created NIC keeps its MAC and peers' ARP
 * caches stay valid.
 */
export function nicMac(lab: string, node: string, bridge: string, prefix = ''): string {
  // FNV-1a 64 over the characters (the first UTF-16 unit of each code point), in four
  // 16-bit limbs (a0 lowest): the same value as BigInt arithmetic without its allocations
  // (realize derives every NIC's MAC; test/unit/names.test.ts compares both).
  let a0 = 0x2325, a1 = 0x8422, a2 = 0x9ce4, a3 = 0xcbf2;
  const text = `${lab}/${node}/${bridge}`;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    // A surrogate pair is one code point: only its first unit counts (as `for (const ch of text)` would give).
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    a0 ^= c;
    // h * 0x100000001b3 = h * 0x1b3 + (h << 40), mod 2^64
    const m0 = a0 * 0x1b3;
    const m1 = a1 * 0x1b3 + Math.floor(m0 / 0x10000);
    const m2 = a2 * 0x1b3 + Math.floor(m1 / 0x10000) + ((a0 << 8) & 0xffff);
    const m3 = a3 * 0x1b3 + Math.floor(m2 / 0x10000) + (((a0 >>> 8) | (a1 << 8)) & 0xffff);
    a0 = m0 & 0xffff;
    a1 = m1 & 0xffff;
    a2 = m2 & 0xffff;
    a3 = m3 % 0x10000;
  }
  const limbs = [a0, a1, a2, a3];
  // With a mac_prefix (0-3 bytes) the hash fills the remaining bytes; without, 02 + 5 bytes.
  const bytes = prefix ? prefix.split(':').map((x) => parseInt(x, 16)) : [0x02];
  for (let i = 0; bytes.length < 6; i++) bytes.push((limbs[i >> 1] >> ((i & 1) * 8)) & 0xff);
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/**
 * VXLAN network identifier of a bridge spanning hosts when the file gives none: FNV-1a of
 * "<lab>/<bridge>" mixed by fmix32, in 1-16777215 (24 bits, 0 excluded). The loader
 * rejects two bridges of a lab with the same VNI.
 */
export function deriveVni(lab: string, bridge: string): number {
  return 1 + (fmix32(fnv1a(`${lab}/${bridge}`)) % 0xfffffe);
}
