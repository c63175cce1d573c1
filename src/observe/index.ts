/**
 * observe: reads what the host has for one lab and lifts it into a HostState of the
 * same shape as the desired one, plus HostFacts (features, default route, conflicts).
 * Read-only: runs only reader commands (ip/tc/nft show, sysctl -n).
 * Reads: the host namespace's links with their addresses and every node namespace's
 * links, addresses and routes (both families) through the runner's NamespaceIO (the
 * netlink helper: requests to one process; or iproute2: `ip -j -d addr show` plus one
 * `ip -j -d -n NS -batch -` per namespace, 8 at a time), + 1 `tc -j qdisc show` (+1
 * `tc -batch` class show when shaped ports exist) + 1 `nft -j list ruleset` (on the
 * netlink path skipped while the host namespace's ruleset generation is unchanged:
 * nft-cache.ts); with VXLAN ports 1 `bridge -j -batch -` (their FDB peers); per router 2
 * (its table and sysctls: routers.ts); with uplink 1 `ip -j route show table all default`
 * (the IPv4 and IPv6 default routes), while the lab routes 1 `sysctl -n` (ip_forward and
 * IPv6 forwarding in one process).
 */
import { readdirSync, existsSync } from 'node:fs';
import { observeVms, vmFolderConflicts } from './vms.js';
import type { SyncFs } from '../host/fs.js';
import { observeServices, type Services } from './services.js';
import type { Conflict, HostFacts, HostState, LinkState, VmState } from '../model/state.js';
import { emptyState } from '../model/state.js';
import { netnsPrefix, nftTable, nodeNetns, ownerPrefix, parseAlias } from '../model/names.js';
import type { Runner } from '../host/runner.js';
import { ipArgv, nftArgv, sysctlArgv, tcArgv, type HostContext } from '../plan/commands.js';
import { addressMtus, defaultRouteDevs, forwardingFrom, otherLabsInet, splitJsonDocs, toLinkState, toNamespaceState, toNft, toShaping, tcClassesFromText, vxlanPeers, type FdbEntry, type IpRoute, type TcClass, type TcQdisc } from './parse.js';
import { namespaceIO, type NamespaceIO, type NsDump } from '../host/namespaces.js';
import { readNftCache, writeNftCache, type NftReading } from './nft-cache.js';
import { readJournal } from '../apply/statedir.js';
import { detectFeature, type Feature } from './features.js';
import { observePartial, type Part } from './partial.js';
import { observeRouters } from './routers.js';

/** Names the desired state will create: same-named objects without the lab's mark are conflicts. */
export interface Wanted {
  links: string[];
  namespaces: string[];
  /** Read the IPv4 and IPv6 default routes (uplink). */
  defaultRoute: boolean;
  /** Read net.ipv4.ip_forward. */
  ipForward: boolean;
  /** Read net.ipv6.conf.all.forwarding (in the same `sysctl -n` process as ip_forward). */
  ip6Forward?: boolean;
  /** Files the topology needs (VM kernels, initrds, disks; absolute). */
  files?: string[];
  /** The topology boots VMs: look for qemu-system-x86_64. */
  qemu?: boolean;
  /** Nodes whose VM the topology boots (their state folders must be the lab's). */
  vms?: string[];
  /** Forwarded host ports ("tcp/8080"): look for listening sockets on them. */
  forwardPorts?: string[];
  /** Namespaces whose resolv.conf the file wants. */
  resolv?: string[];
  /** Namespaces whose hosts file the file wants (every netns node's). */
  hosts?: string[];
  /** The topology serves DHCP/DNS: look for dnsmasq. */
  dnsmasq?: boolean;
  /** Namespaces of the file's routers (read as routers even before they carry a router mark); look for conntrack. */
  routers?: string[];
}

export interface Observation {
  state: HostState;
  facts: HostFacts;
}

/**
 * Namespaces an apply was about to create (journal written before `netns add`, removed
 * when the apply finished): an unmarked namespace listed here was made by provium and
 * is still the lab's, even if that apply was killed before marking it.
 */
export function pendingNetns(ctx: HostContext): Set<string> {
  return ctx.stateDir ? new Set(readJournal(ctx.stateDir, ctx.warn)) : new Set();
}

/** "tcp/8080"-style ports of listening sockets from `ss -H -l -n -t -u` output (Netid State Recv-Q Send-Q Local Peer). */
export function listeningPorts(ssOut: string): string[] {
  const out = new Set<string>();
  for (const line of ssOut.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 5 || (f[0] !== 'tcp' && f[0] !== 'udp')) continue;
    const port = f[4].slice(f[4].lastIndexOf(':') + 1);
    if (/^\d+$/.test(port)) out.add(`${f[0]}/${port}`);
  }
  return [...out].sort();
}

/** Lists named network namespaces (/run/netns). */
export function listNetns(): string[] {
  try {
    return readdirSync('/run/netns');
  } catch {
    return [];
  }
}

/** What observe reads from files rather than commands; replaced in tests. */
export interface HostFiles {
  listNetns(): string[];
  detectFeature(f: Feature): { present: boolean; source: string };
  /** KVM can run ordinary guests: /dev/kvm plus kvm_intel or kvm_amd (a PVM-only host, kvm_pvm, cannot). */
  kvmUsable(): boolean;
  /** The lab's VMs (state directory + QMP). */
  observeVms(ctx: HostContext): Promise<Record<string, VmState>>;
  /** A file exists (VM kernels, initrds, disks; the qemu binary). */
  exists(path: string): boolean;
  /** dnsmasq instances and nodes' resolv.conf and hosts files (files and processes). */
  observeServices(stateDir: string | undefined, lab: string, wantedResolv: string[], fs?: SyncFs, host?: string, wantedHosts?: string[]): Services;
  /** The namespace journal (a remote host's from its snapshot; this machine's state directory by default). */
  pendingNetns?(ctx: HostContext): Set<string>;
  /** VM folders that are not the lab's (this machine's by default; a remote host's are checked by their records). */
  vmFolderConflicts?(ctx: HostContext, nodes: string[]): Conflict[];
}

export function kvmUsable(): boolean {
  return existsSync('/dev/kvm') && (existsSync('/sys/module/kvm_intel') || existsSync('/sys/module/kvm_amd'));
}

export const realFiles: HostFiles = { listNetns, detectFeature, kvmUsable, observeVms, exists: existsSync, observeServices };

/**
 * Re-use for verification: namespaces not in `touched` are taken from `previous`
 * (the observation the plan was computed from) instead of being read again.
 */
export interface Reuse {
  previous: HostState;
  touched: Set<string>;
  /** Namespaces as read back by apply's batches after their writes (NamespaceIO.applyNamespace). */
  readBack?: Map<string, NsDump>;
  /** Re-read only these host-wide parts (partial.ts); the rest of the state, and the facts, are `previous` and `facts`. */
  parts?: Part[];
  facts?: HostFacts;
}
const SYSCTL = { ipForward: 'net.ipv4.ip_forward', ip6Forward: 'net.ipv6.conf.all.forwarding' } as const;

/**
 * The lab's nftables tables from `nft -j list ruleset`, or, on the netlink path, the
 * stored reading when the ruleset generation and namespace cookie show that nothing
 * was committed since it was taken (observe/nft-cache.ts).
 */
/**
 * Sysctls of the lab's host namespace (`names`, e.g. net.ipv4.ip_forward), values in
 * order as the kernel prints them ("0", "1"): through the netlink helper when the
 * runner has it (no process), else `sysctl -n` (in `ip netns exec` for a lab with
 * --netns). Throws CommandError.
 */
export async function readSysctls(ctx: HostContext, runner: Runner, names: string[], io: NamespaceIO = namespaceIO(runner)): Promise<string[]> {
  if (io.sysctls) return io.sysctls(ctx.hostNetns, names);
  // `sysctl -n A B` prints one value per line, in order.
  const r = await runner.run([...sysctlArgv(ctx), '-n', ...names]);
  const lines = r.stdout.split('\n');
  return names.map((_, i) => lines[i]?.trim() ?? '');
}

/**
 * The lab host namespace's qdiscs and the HTB classes of the root HTB qdiscs on `ports`.
 * On the netlink path one helper request reads both (no process; classes of every HTB
 * root, each naming its device); else `tc -j qdisc show`, then, as soon as the qdiscs are
 * known, one `tc -batch` of `class show dev P` (text). toShaping turns them into
 * PortShaping. Throws CommandError.
 */
export async function readTc(ctx: HostContext, runner: Runner, ports: Set<string> | Promise<Set<string>>, io: NamespaceIO = namespaceIO(runner)): Promise<{ qdiscs: TcQdisc[]; classes: TcClass[] }> {
  if (io.readTc) return io.readTc(ctx.hostNetns);
  const out = await runner.run([...tcArgv(ctx), '-j', 'qdisc', 'show']);
  const qdiscs = JSON.parse(out.stdout || '[]') as TcQdisc[];
  const on = await ports;
  const htb = qdiscs.filter((q) => q.kind === 'htb' && q.root && on.has(q.dev)).map((q) => q.dev).sort();
  const classText = htb.length > 0 ? (await runner.run([...tcArgv(ctx), '-batch', '-'], { stdin: htb.map((p) => `class show dev ${p}`).join('\n') + '\n' })).stdout : '';
  return { qdiscs, classes: tcClassesFromText(classText) };
}

export async function readNft(lab: string, ctx: HostContext, runner: Runner, io: NamespaceIO = namespaceIO(runner)): Promise<NftReading> {
  const gen = io.nftGeneration ? await io.nftGeneration(ctx.hostNetns).catch(() => undefined) : undefined;
  const stamp = gen && { gen: gen.gen, cookie: gen.cookie, table: nftTable(lab), owner: ownerPrefix(lab) };
  const kept = stamp ? readNftCache(ctx.stateDir, stamp) : undefined;
  if (kept) return kept;
  // No provium table at all (an empty host, a destroy's verification): the reading of an
  // empty ruleset, without `nft -j list ruleset` (~20 ms; more while the kernel is busy).
  if (gen?.tables && !gen.tables.some(isLabTableName)) return { ...toNft({ nftables: [] }, nftTable(lab), ownerPrefix(lab)), others: otherLabsInet({ nftables: [] }, lab) };
  const out = await runner.run([...nftArgv(ctx), '-j', 'list', 'ruleset']);
  const ruleset = JSON.parse(out.stdout || '{"nftables":[]}');
  const reading: NftReading = { ...toNft(ruleset, nftTable(lab), ownerPrefix(lab)), others: otherLabsInet(ruleset, lab) };
  if (stamp) writeNftCache(ctx.stateDir, stamp, reading);
  return reading;
}

/** Whether "FAMILY NAME" (the helper's table list) may be a lab's table: bridge or inet, named provium_<lab>. */
function isLabTableName(t: string): boolean {
  const [family, name] = t.split(' ');
  return (family === 'bridge' || family === 'inet') && (name ?? '').startsWith(nftTable(''));
}

export async function observe(lab: string, ctx: HostContext, runner: Runner, wanted: Wanted, files: HostFiles = realFiles, reuse?: Reuse): Promise<Observation> {
  if (reuse?.parts && reuse.facts) return observePartial(lab, ctx, runner, wanted, { state: reuse.previous, facts: reuse.facts }, reuse.parts);
  const state = emptyState();
  const facts: HostFacts = { features: { netem: false, htb: false, nftBridge: false, tun: false }, featureSource: {}, conflicts: [] };
  for (const f of ['netem', 'htb', 'nftBridge', 'tun'] as const) {
    const d = files.detectFeature(f);
    facts.features[f] = d.present;
    facts.featureSource[f] = d.source;
  }
  const mine = (alias: string | undefined) => parseAlias(alias)?.lab === lab;
  const wantLinks = new Set(wanted.links);

  // Host namespace links, then the lab's node namespaces, tc and nft: independent reads.
  const prefix = netnsPrefix(lab);
  const allNs = files.listNetns();
  const wantNs = new Set(wanted.namespaces);
  const all = allNs.filter((n) => n.startsWith(prefix) || wantNs.has(n));
  const kept = reuse ? all.filter((n) => !reuse.touched.has(n) && reuse.previous.namespaces[n]) : [];
  for (const n of kept) state.namespaces[n] = reuse!.previous.namespaces[n];
  const fresh = all.filter((n) => !kept.includes(n) && reuse?.readBack?.has(n));
  const candidates = all.filter((n) => !kept.includes(n) && !fresh.includes(n));

  facts.kvmUsable = files.kvmUsable();
  facts.missingFiles = (wanted.files ?? []).filter((f) => !files.exists(f));
  const inPath = (prog: string) => [...(process.env.PATH ?? '/usr/bin').split(':'), '/usr/sbin', '/sbin'].map((d) => `${d}/${prog}`).find((p) => files.exists(p));
  if (wanted.qemu) facts.qemuBinary = inPath('qemu-system-x86_64');
  if (wanted.dnsmasq) facts.dnsmasqBinary = inPath('dnsmasq');
  const sysctls = (['ipForward', 'ip6Forward'] as const).filter((k) => wanted[k]);
  const io = namespaceIO(runner);
  // The classes of the root HTB qdiscs are read as soon as the qdiscs are known (not after
  // every other read: `nft -j list ruleset` of a big lab takes ~0.15 s).
  const hostLinksP = io.hostLinks(ctx.hostNetns);
  // Ports are known from the links' marks only after hostLinks: the classes of every root HTB
  // qdisc on a port-marked link are read (filtered to the lab's ports below).
  const tcP = readTc(ctx, runner, hostLinksP.then((links) => new Set(links.filter((l) => parseAlias(l.ifalias)?.kind === 'port').map((l) => l.ifname))), io);
  const reads = Promise.all([
    hostLinksP,
    tcP,
    readNft(lab, ctx, runner, io),
    io.readNamespaces(candidates),
    wanted.defaultRoute ? runner.run([...ipArgv(ctx), '-j', 'route', 'show', 'table', 'all', 'default']) : Promise.resolve(undefined),
    sysctls.length ? readSysctls(ctx, runner, sysctls.map((k) => SYSCTL[k]), io) : Promise.resolve(undefined),
    files.observeVms(ctx),
  ]);
  // The node folders (/etc/netns) and the state directory are read while the host commands
  // and the helper run (synchronous file reads: ~50 ms for 200 nodes).
  let services: ReturnType<HostFiles['observeServices']>;
  try {
    services = files.observeServices(ctx.stateDir, lab, wanted.resolv ?? [], undefined, ctx.placement, wanted.hosts ?? []);
  } catch (e) {
    await reads.catch(() => undefined);
    throw e;
  }
  const [links, tcRead, nftRead, nsDumps, routeOut, fwdOut, vms] = await reads;
  if (wanted.forwardPorts?.length) {
    const ss = await runner.run([...(ctx.hostNetns ? ['ip', 'netns', 'exec', ctx.hostNetns] : []), 'ss', '-H', '-l', '-n', '-t', '-u'], { allowFail: true });
    facts.portsInUse = listeningPorts(ss.stdout).filter((p) => wanted.forwardPorts!.includes(p));
  }
  state.vms = vms;
  state.dnsmasq = services.dnsmasq;
  state.resolv = services.resolv;
  state.hosts = services.hosts ?? {};
  facts.conflicts.push(...services.conflicts, ...(files.vmFolderConflicts ?? vmFolderConflicts)(ctx, wanted.vms ?? []));

  facts.addressMtu = addressMtus(links);
  for (const l of links) {
    if (mine(l.ifalias)) state.links[l.ifname] = toLinkState(l);
    else if (wantLinks.has(l.ifname)) facts.conflicts.push({ kind: 'link', name: l.ifname, found: l.ifalias ? `ifalias "${l.ifalias}"` : 'no provium ifalias' });
  }
  // VXLAN ports (multi-host labs): their unicast peers, one `bridge -batch` for all.
  const vx = Object.values(state.links).filter((l) => l.vxlan).map((l) => l.name).sort();
  if (vx.length > 0) {
    const r = await runner.run([...(ctx.hostNetns ? ['bridge', '-n', ctx.hostNetns] : ['bridge']), '-j', '-batch', '-'], { stdin: vx.map((d) => `fdb show dev ${d}`).join('\n') + '\n' });
    const docs = splitJsonDocs(r.stdout) as FdbEntry[][];
    vx.forEach((d, i) => (state.links[d].vxlan!.peers = vxlanPeers(docs[i] ?? [])));
  }

  const pending = candidates.length + fresh.length > 0 ? (files.pendingNetns ?? pendingNetns)(ctx) : new Set<string>();
  const outs = [
    ...candidates.map((ns, i) => ({ ns, dump: nsDumps[i] })),
    ...fresh.map((ns) => ({ ns, dump: reuse!.readBack!.get(ns) })),
  ];
  outs.forEach(({ ns, dump }) => {
    if (!dump) return; // vanished between listing and reading
    const { links: addrs, routes } = dump;
    const lo = addrs.find((l) => l.ifname === 'lo');
    const a = parseAlias(lo?.ifalias);
    // In a multi-host lab the mark names the host: another host's namespace (hosts that
    // share /run/netns, as test hosts on one machine do) is neither ours nor a conflict.
    const ours = (a?.kind === 'node' || a?.kind === 'router') && a.lab === lab;
    if (ours && a.host === ctx.placement) state.namespaces[ns] = toNamespaceState(ns, a.node, addrs, routes);
    else if (ours && ctx.placement !== undefined && a.host !== undefined) return;
    else if (!lo?.ifalias && pending.has(ns)) {
      // Created by an apply that stopped before marking it (see apply's journal): ours, unmarked.
      state.namespaces[ns] = toNamespaceState(ns, ns.slice(prefix.length), addrs, routes);
    }
    else if (wantNs.has(ns)) facts.conflicts.push({ kind: 'netns', name: ns, found: lo?.ifalias ? `lo ifalias "${lo.ifalias}"` : 'no provium mark on its lo' });
  });

  // Routers: namespaces marked as routers, and unmarked ones the file wants as routers.
  const wantRouters = new Set(wanted.routers ?? []);
  const routerNs = new Map(Object.values(state.namespaces)
    .filter((n) => parseAlias(n.owner)?.kind === 'router' || (n.owner === undefined && wantRouters.has(n.name)))
    .map((n) => [n.name, n.node]));
  const reusedRouters = reuse ? [...routerNs.keys()].filter((n) => !reuse.touched.has(n) && reuse.previous.routers?.[n]) : [];
  for (const n of reusedRouters) routerNs.delete(n);
  state.routers = { ...Object.fromEntries(reusedRouters.map((n) => [n, reuse!.previous.routers![n]])), ...(await observeRouters(lab, runner, routerNs)) };
  if (wantRouters.size > 0) facts.conntrackBinary = inPath('conntrack');

  // A veth port's peer, from its mark and the node's namespace: what re-creating it needs (rollback).
  for (const l of Object.values(state.links)) {
    const a = parseAlias(l.alias);
    if (l.kind !== 'veth' || a?.kind !== 'port') continue;
    l.peerNetns = nodeNetns(lab, a.node);
    l.peerName = `eth${l.name.slice(l.name.lastIndexOf('-') + 1)}`;
    const mac = state.namespaces[l.peerNetns]?.nics[l.peerName]?.mac;
    if (mac) l.peerMac = mac;
  }
  const ports = new Set(Object.values(state.links).filter((l: LinkState) => parseAlias(l.alias)?.kind === 'port').map((l) => l.name));
  state.shaping = toShaping(tcRead.qdiscs, tcRead.classes, ports);

  const nft = nftRead;
  facts.forwardingLabs = forwardingFrom(nftRead.others, links);
  if (nft.bridge) state.nft.bridge = nft.bridge;
  if (nft.inet) state.nft.inet = nft.inet;
  for (const fam of nft.conflicts) facts.conflicts.push({ kind: 'nft-table', name: `${fam} ${nftTable(lab)}`, found: 'no set carries the lab\'s comment mark' });

  if (routeOut) {
    const devs = defaultRouteDevs(JSON.parse(routeOut.stdout || '[]') as IpRoute[]);
    facts.defaultRouteDev = devs.v4;
    if (devs.v6) facts.defaultRouteDev6 = devs.v6;
  }
  sysctls.forEach((k, i) => (state[k] = fwdOut?.[i] === '1'));
  return { state, facts };
}
