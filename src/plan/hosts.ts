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

/** Per topology: every lab node's attachments in bridge-name order, and the hosts-file bodies by the reader's bridge set. */
interface HostsIndex {
  /** Every lab node (this host's and, in a multi-host projection, other hosts' bridge members), sorted. */
  nodes: string[];
  /** Node -> [bridge name, the node's first attachment on it] for each bridge it is on, bridges in name order. */
  on: Map<string, { bridge: string; ip?: string; ip6?: string }[]>;
  /** Reader's bridge set (names joined by "\n") -> the file's lines after the header. */
  bodies: Map<string, string>;
}

function indexOf(t: Topology): HostsIndex {
  const bridges = Object.values(t.bridges).sort((a, b) => (a.name < b.name ? -1 : 1));
  const on = new Map<string, { bridge: string; ip?: string; ip6?: string }[]>();
  for (const n of Object.keys(t.nodes)) on.set(n, []);
  for (const b of bridges) {
    const seen = new Set<string>();
    for (const a of b.attach) {
      if (seen.has(a.node)) continue; // the first attachment of a node on a bridge gives its address
      seen.add(a.node);
      let l = on.get(a.node);
      if (!l) on.set(a.node, (l = []));
      l.push({ bridge: b.name, ip: a.ip, ip6: a.ip6 });
    }
  }
  return { nodes: [...on.keys()].sort(), on, bodies: new Map() };
}

/** The hosts file of netns node `node` (see the module comment). */
export function hostsFile(t: Topology, node: string): string {
  return hostsFiles(t)(node);
}

/**
 * A function giving the hosts file of any netns node of `t` (as hostsFile), for writing
 * every node's file: linear in the lab's attachments per file, because the lines after the
 * header depend only on the set of bridges the reader is on and are computed once per such
 * set. `t` must not change while the function is used.
 */
export function hostsFiles(t: Topology): (node: string) => string {
  const ix = indexOf(t);
  return (node) => fileOf(ix, t, node);
}

function fileOf(ix: HostsIndex, t: Topology, node: string): string {
  const mineList = (ix.on.get(node) ?? []).map((e) => e.bridge);
  const key = mineList.join('\n');
  let body = ix.bodies.get(key);
  if (body === undefined) {
    const mine = new Set(mineList);
    const lines: string[] = [];
    for (const other of ix.nodes) {
      const on = ix.on.get(other)!;
      // The bridge whose address the short name takes: shared with `node` first.
      const short = (fam: 'ip' | 'ip6') => (on.find((e) => mine.has(e.bridge) && e[fam]) ?? on.find((e) => e[fam]))?.bridge;
      const s4 = short('ip');
      const s6 = short('ip6');
      for (const e of on) {
        if (e.ip) lines.push(`${e.ip.split('/')[0]}\t${other}.${e.bridge}${s4 === e.bridge ? ` ${other}` : ''}`);
        if (e.ip6) lines.push(`${e.ip6.split('/')[0]}\t${other}.${e.bridge}${s6 === e.bridge ? ` ${other}` : ''}`);
      }
    }
    body = lines.length ? lines.join('\n') + '\n' : '';
    ix.bodies.set(key, body);
  }
  return `# ${nodeAlias(t.lab, node, t.placement)} (written by provium; changes are drift)\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n` + body;
}

/**
 * Lines of a hosts file that name lab nodes: not empty, not a comment, not a localhost
 * line (whitespace, then the word "localhost"). Counted in place: a 1,000-node lab's
 * hosts files are ~28 MB, which split into lines cost ~190 MB of allocation.
 */
export function hostsEntries(text: string): number {
  // Where "localhost" occurs, found once (a search per line would rescan the rest of the text).
  const at: number[] = [];
  for (let k = text.indexOf('localhost'); k >= 0; k = text.indexOf('localhost', k + 1)) at.push(k);
  let n = 0;
  let next = 0;
  for (let i = 0; i < text.length; ) {
    let end = text.indexOf('\n', i);
    if (end < 0) end = text.length;
    while (next < at.length && at[next] < i) next++;
    let local = false;
    for (let j = next; j < at.length && at[j] + 9 <= end; j++) {
      const k = at[j];
      if (k > i && /\s/.test(text[k - 1]) && (k + 9 >= end || !/\w/.test(text[k + 9]))) {
        local = true;
        break;
      }
    }
    if (end > i && text.charCodeAt(i) !== 35 /* # */ && !local) n++;
    i = end + 1;
  }
  return n;
}
