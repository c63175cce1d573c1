/**
 * The fixed structure (sets, maps, chains, rules) of the lab's two nftables tables,
 * as nft text for `nft -f`, and the fingerprint both sides of a plan compare.
 * Ownership: the table name (provium_<lab>) and a comment "provium:<lab>:..." on every
 * set, map and rule; `nft -j` drops table and chain comments, so those are not used.
 * Recipes measured in shared/notes/kernel-experiments.md (Q1-Q4).
 */
import { nftTable } from '../model/names.js';

export interface SkeletonSet {
  name: string;
  /** The declaration body as nft text. */
  decl: string;
  /** As `nft -j` reports it: the "type" array/string and "map" (for maps). */
  jsonType: string;
}

export interface SkeletonChain {
  name: string;
  decl: string;
  rules: { body: string; comment: string }[];
}

export interface Skeleton {
  family: 'bridge' | 'inet';
  table: string;
  sets: SkeletonSet[];
  chains: SkeletonChain[];
}

/**
 * Bridge family table: partitions, isolation, drop (per pair, and whole-bridge per receiving
 * port), HTB class selection.
 * A directed pair is keyed by the sender's MAC (`ether saddr`, the NIC's deterministic
 * MAC) and the receiver's port (`oifname`): enforced where the frame leaves the bridge
 * towards the receiver, so a frame that entered the bridge through a VXLAN port (a
 * sender on another host) is matched exactly like one from a local port. Isolation is
 * keyed by the isolated node's own port, which is always on the host that enforces it.
 */
export function bridgeSkeleton(lab: string): Skeleton {
  const c = (x: string) => `provium:${lab}:${x}`;
  return {
    family: 'bridge',
    table: nftTable(lab),
    sets: [
      // Every element counts what it matched (`counter`): `provium show` reports the packets
      // each partition, isolation and drop element dropped. Not part of the fingerprint: a
      // table made before keeps working, without counters per element.
      { name: 'blocked', decl: `type ether_addr . ifname; counter; comment "${c('partitions')}";`, jsonType: 'ether_addr.ifname' },
      { name: 'isolated', decl: `type ifname; counter; comment "${c('isolation')}";`, jsonType: 'ifname' },
      {
        name: 'loss',
        decl: `typeof ether saddr . oifname . numgen random mod 10000; flags interval; counter; comment "${c('loss')}";`,
        jsonType: 'ether_addr.ifname.integer',
      },
      // The whole-bridge drop: one element per receiving port, for every sender but those
      // whose pair has a drop of its own (`loss_own`, matched by `loss` instead).
      {
        name: 'loss_port',
        decl: `typeof oifname . numgen random mod 10000; flags interval; counter; comment "${c('loss-whole')}";`,
        jsonType: 'ifname.integer',
      },
      { name: 'loss_own', decl: `type ether_addr . ifname; comment "${c('loss-own')}";`, jsonType: 'ether_addr.ifname' },
      { name: 'prio', decl: `type ether_addr . ifname : classid; comment "${c('classes')}";`, jsonType: 'ether_addr.ifname:classid' },
    ],
    chains: [
      {
        name: 'lab_forward',
        decl: 'type filter hook forward priority -10; policy accept;',
        rules: [
          { body: 'ether type != arp ether saddr . oifname @blocked counter drop', comment: c('partition') },
          { body: 'ether type != arp iifname @isolated counter drop', comment: c('isolate-in') },
          { body: 'ether type != arp oifname @isolated counter drop', comment: c('isolate-out') },
          { body: 'ether type != arp ether saddr . oifname . numgen random mod 10000 @loss counter drop', comment: c('loss') },
          { body: 'ether type != arp ether saddr . oifname != @loss_own oifname . numgen random mod 10000 @loss_port counter drop', comment: c('loss-whole') },
          { body: 'meta priority set ether saddr . oifname map @prio', comment: c('classify') },
        ],
      },
    ],
  };
}

/**
 * Inet family table: L3 forwarding between the lab's bridges and uplink masquerade.
 * The forward chain matches interfaces only, so it filters IPv4 and IPv6 alike; the
 * masquerade has one rule per family (`masq`/`wan` for IPv4, `masq6`/`wan6` for IPv6,
 * whose uplink interface can differ).
 */
export function inetSkeleton(lab: string): Skeleton {
  const c = (x: string) => `provium:${lab}:${x}`;
  return {
    family: 'inet',
    table: nftTable(lab),
    sets: [
      { name: 'bridges', decl: `type ifname; comment "${c('bridges')}";`, jsonType: 'ifname' },
      { name: 'routed', decl: `type ifname . ifname; comment "${c('routes')}";`, jsonType: 'ifname.ifname' },
      { name: 'uplinked', decl: `type ifname; comment "${c('uplink-bridges')}";`, jsonType: 'ifname' },
      { name: 'masq', decl: `type ipv4_addr; flags interval; comment "${c('masquerade-sources')}";`, jsonType: 'ipv4_addr' },
      { name: 'wan', decl: `type ifname; comment "${c('uplink-interfaces')}";`, jsonType: 'ifname' },
      { name: 'masq6', decl: `type ipv6_addr; flags interval; comment "${c('masquerade-sources-ipv6')}";`, jsonType: 'ipv6_addr' },
      { name: 'wan6', decl: `type ifname; comment "${c('uplink-interfaces-ipv6')}";`, jsonType: 'ifname' },
      {
        name: 'forwards',
        decl: `type inet_proto . inet_service : ipv4_addr . inet_service; comment "${c('forwards')}";`,
        jsonType: 'inet_proto.inet_service:ipv4_addr . inet_service',
      },
    ],
    chains: [
      {
        name: 'lab_forward',
        decl: 'type filter hook forward priority 0; policy accept;',
        rules: [
          { body: 'iifname @bridges oifname @bridges iifname . oifname != @routed counter drop', comment: c('no-route') },
          // Replies of forwarded (DNAT) connections leave whatever the uplink says.
          { body: 'iifname @bridges oifname != @bridges ct status dnat accept', comment: c('forwarded-out') },
          { body: 'iifname @bridges oifname != @bridges iifname != @uplinked counter drop', comment: c('no-uplink') },
          { body: 'iifname != @bridges oifname @bridges ct state established,related accept', comment: c('return-traffic') },
          { body: 'iifname != @bridges oifname @bridges ct status dnat accept', comment: c('forwarded-in') },
          { body: 'iifname != @bridges oifname @bridges counter drop', comment: c('inbound') },
        ],
      },
      {
        name: 'lab_postrouting',
        decl: 'type nat hook postrouting priority srcnat; policy accept;',
        rules: [
          { body: 'ip saddr @masq oifname @wan masquerade', comment: c('masquerade') },
          { body: 'ip6 saddr @masq6 oifname @wan6 masquerade', comment: c('masquerade6') },
          // A forwarded connection reaches the node from the bridge's host address, so the
          // node answers through the host whatever routes it has.
          { body: 'oifname @bridges ct status dnat masquerade', comment: c('forward-masquerade') },
        ],
      },
      {
        name: 'lab_prerouting',
        decl: 'type nat hook prerouting priority -100; policy accept;',
        rules: [{ body: 'fib daddr type local dnat ip to meta l4proto . th dport map @forwards', comment: c('forward') }],
      },
      {
        name: 'lab_output',
        decl: 'type nat hook output priority -100; policy accept;',
        rules: [{ body: 'fib daddr type local dnat ip to meta l4proto . th dport map @forwards', comment: c('forward-local') }],
      },
    ],
  };
}

/** Canonical fingerprint of a skeleton: set names/types, chain names/hooks, rule comments in order. */
export function skeletonFingerprint(parts: {
  sets: { name: string; jsonType: string }[];
  chains: { name: string; hook: string; rules: string[] }[];
}): string {
  const sets = [...parts.sets].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).map((s) => `${s.name}=${s.jsonType}`);
  const chains = [...parts.chains]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((c) => `${c.name}(${c.hook})[${c.rules.join(',')}]`);
  return `sets:${sets.join(';')} chains:${chains.join(';')}`;
}

/** The fingerprint of a skeleton as provium writes it. Hooks as "forward/-10" (hook/priority). */
export function desiredFingerprint(s: Skeleton): string {
  return skeletonFingerprint({
    sets: s.sets,
    chains: s.chains.map((c) => {
      const m = /hook (\w+) priority ([-\w]+)/.exec(c.decl)!;
      const prio = m[2] === 'srcnat' ? '100' : m[2];
      return { name: c.name, hook: `${m[1]}/${prio}`, rules: c.rules.map((r) => r.comment) };
    }),
  });
}

/** nft text creating the whole table (sets empty). */
export function skeletonText(s: Skeleton): string {
  const lines = [`table ${s.family} ${s.table} {`];
  for (const set of s.sets) lines.push(`  ${set.decl.includes(' : ') ? 'map' : 'set'} ${set.name} { ${set.decl} }`);
  for (const ch of s.chains) {
    lines.push(`  chain ${ch.name} {`, `    ${ch.decl}`);
    for (const r of ch.rules) lines.push(`    ${r.body} comment "${r.comment}"`);
    lines.push('  }');
  }
  lines.push('}');
  return lines.join('\n');
}
