/**
 * Names without DNS: every netns node gets /etc/netns/<ns>/hosts, which `ip netns exec`
 * (and so `provium exec`) binds over /etc/hosts. It lists every lab node that has an
 * address as `<node>.<bridge>` for each bridge it is on, and as `<node>` once per address
 * family, with the address on the first bridge (in name order) it shares with the node
 * reading the file (else its own first bridge). So `provium exec lab.yaml a -- ping b`
 * works with no dnsmasq. The first line carries the ownership mark (the node's mark, with
 * its host in a multi-host lab, as resolv.conf's); localhost entries keep the file a
 * complete /etc/hosts. In a multi-host lab's per-host projection the nodes of other hosts
 * are listed too (from the bridges' members). Pure.
 */
import type { Topology } from '../model/topology.js';
import { nodeAlias } from '../model/names.js';

/** Path of a netns node's hosts file. */
export function hostsPath(ns: string): string {
  return `/etc/netns/${ns}/hosts`;
}

/** The hosts file of netns node `node` (see the module comment). */
export function hostsFile(t: Topology, node: string): string {
  const bridges = Object.values(t.bridges).sort((a, b) => (a.name < b.name ? -1 : 1));
  const mine = new Set(bridges.filter((b) => b.attach.some((a) => a.node === node)).map((b) => b.name));
  const lines = [
    `# ${nodeAlias(t.lab, node, t.placement)} (written by provium; changes are drift)`,
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
  ];
  // Every lab node: this host's, and (multi-host) the other hosts' members of its bridges.
  const everyNode = new Set([...Object.keys(t.nodes), ...bridges.flatMap((b) => b.attach.map((a) => a.node))]);
  for (const other of [...everyNode].sort()) {
    const on = bridges.filter((b) => b.attach.some((a) => a.node === other));
    // The bridge whose address the short name takes: shared with `node` first.
    const short = (fam: 'ip' | 'ip6') => (on.find((b) => mine.has(b.name) && b.attach.find((a) => a.node === other)?.[fam]) ?? on.find((b) => b.attach.find((a) => a.node === other)?.[fam]))?.name;
    const s4 = short('ip');
    const s6 = short('ip6');
    for (const b of on) {
      const a = b.attach.find((x) => x.node === other)!;
      if (a.ip) lines.push(`${a.ip.split('/')[0]}\t${other}.${b.name}${s4 === b.name ? ` ${other}` : ''}`);
      if (a.ip6) lines.push(`${a.ip6.split('/')[0]}\t${other}.${b.name}${s6 === b.name ? ` ${other}` : ''}`);
    }
  }
  return lines.join('\n') + '\n';
}
