/**
 * The hand-written baseline: the minimum set of processes that creates the same host
 * objects as `provium apply` for a generated lab, written from the topology here
 * (it does not call provium or read its plan):
 *   1 `ip -batch -`              netns add for every node
 *   2 `ip -n HOST -batch -`      bridges (+alias, address, up), veth pairs straight into
 *                                the node namespaces (peer MAC given) with master and up on the same line
 *   3 `ip -n NS -batch -`        per node: lo up + owner alias, addresses, NICs up, routes
 *                                (8 namespaces at a time, like provium)
 *   4 `sysctl -w ip_forward=1`   in the host namespace (routes between bridges need it)
 *   5 `tc -n HOST -batch -`      HTB root qdisc, root/default class and one class per shaped pair
 *   6 `nft -f -`                 both tables; each set filled by one `add element` statement,
 *                                except the interval set `loss` (one line per element, see below)
 *   7 /etc/netns/NS/hosts        every node's hosts file, written by this process (no spawn,
 *                                no fsync: what provium writes, with provium's hostsFile)
 * Same names, ifalias/comment marks, HTB handles and element comments as provium uses,
 * so `provium plan` against a baseline-built lab reports no changes (the bench checks that).
 */
import { toYaml, type LabSpec, type BridgeDef } from './topology.js';
import { loadTopology } from '../src/load/index.js';
import { bridgeSkeleton, inetSkeleton, skeletonText } from '../src/plan/nft-skeleton.js';
import { mapLimit, run } from './util.js';
import { allocateMajors, allocateMinors, hex } from '../src/plan/ids.js';
import { nicMac } from '../src/model/names.js';
import { hostsFiles } from '../src/plan/hosts.js';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';

export interface Step {
  label: string;
  argv: string[];
  stdin?: string;
}

/** Phases run in order; the steps of one phase run concurrently, at most `limit` at once; `files` are written by this process. */
export interface Phase {
  steps: Step[];
  limit: number;
  files?: { label: string; writes: { path: string; content: string }[] };
}

const UNSHAPED = 10_000_000_000;

// ---- names (provium's naming rule for the host objects of a lab) ----
const nsName = (lab: string, node: string) => `pv-${lab}-${node}`;
const brDev = (lab: string, b: string) => `${lab}-${b}`;
const portDev = (lab: string, node: string, i: number) => `${lab}-${node}-${i}`;
const table = (lab: string) => `provium_${lab}`;

// Addresses, tc ids, NIC MACs and the nft tables' skeletons: provium's own derivations (imported, so the baseline builds exactly
// the objects provium would, and provium's plan against it is empty).
const quantum = (bps: number) => Math.max(1600, Math.min(60000, Math.floor(bps / 80)));
const htb = (bps: number) => `htb rate ${bps}bit ceil ${bps}bit quantum ${quantum(bps)}`;

/** Derived facts of a lab: NIC numbers, addresses, symmetric routes. */
interface Derived {
  nics: Map<string, string[]>;
  ip: Map<string, string>; // `${bridge}/${node}` -> CIDR
  hostAddr: Map<string, string>;
  routes: Map<string, string[]>;
  byName: Map<string, BridgeDef>;
  /** Each node's hosts file (provium's hostsFile of the loaded topology). */
  hosts: Map<string, string>;
}

function derive(s: LabSpec): Derived {
  // Addresses: provium's own allocation (the loader), like MACs and tc ids below.
  const t = loadTopology(`${s.lab}.yaml`, toYaml(s));
  const nics = new Map<string, string[]>();
  const ip = new Map<string, string>();
  const hostAddr = new Map<string, string>();
  const routes = new Map<string, Set<string>>();
  const byName = new Map(s.bridges.map((b) => [b.name, b]));
  for (const b of s.bridges) {
    hostAddr.set(b.name, t.bridges[b.name].hostAddr!);
    for (const a of t.bridges[b.name].attach) {
      ip.set(`${b.name}/${a.node}`, a.ip!);
      nics.set(a.node, [...(nics.get(a.node) ?? []), b.name]);
    }
    for (const r of b.routes) {
      if (!routes.has(b.name)) routes.set(b.name, new Set());
      if (!routes.has(r)) routes.set(r, new Set());
      routes.get(b.name)!.add(r);
      routes.get(r)!.add(b.name);
    }
  }
  for (const l of nics.values()) l.sort();
  const hostsOf = hostsFiles(t);
  const hosts = new Map(s.nodes.map((n) => [n, hostsOf(n)]));
  return { nics, ip, hostAddr, byName, hosts, routes: new Map([...routes].map(([k, v]) => [k, [...v].sort()])) };
}

/** Routes inside one node: each routed bridge's subnet (not attached) via the attached bridge's host address. */
function nodeRoutes(s: LabSpec, d: Derived, node: string): string[] {
  const mine = d.nics.get(node) ?? [];
  const out = new Map<string, string>();
  for (const b of mine) {
    const gw = d.hostAddr.get(b)!.split('/')[0];
    for (const r of d.routes.get(b) ?? []) {
      const sub = d.byName.get(r)!.subnet;
      if (!mine.includes(r) && !out.has(sub)) out.set(sub, gw);
    }
  }
  return [...out].sort(([a], [b]) => (a < b ? -1 : 1)).map(([dst, via]) => `route add ${dst} via ${via}`);
}

/** The baseline's phases for lab s with its host side in namespace host. */
export function baselinePhases(s: LabSpec, host: string): Phase[] {
  const d = derive(s);
  const lab = s.lab;
  const port = (node: string, b: string) => portDev(lab, node, d.nics.get(node)!.indexOf(b));
  const q = (x: string) => `"${x}"`;
  // Senders of pair elements are NIC MACs (provium's realization: ether saddr . oifname).
  const mac = (node: string, b: string) => nicMac(lab, node, b);

  // 1 node namespaces
  const netns = s.nodes.map((n) => `netns add ${nsName(lab, n)}`);

  // 2 host links
  const links: string[] = [];
  for (const b of s.bridges) {
    const dev = brDev(lab, b.name);
    links.push(`link add ${dev} up type bridge`, `link set ${dev} alias provium:${lab}:bridge:${b.name}`, `addr add ${d.hostAddr.get(b.name)} dev ${dev}`);
  }
  for (const b of s.bridges) {
    for (const n of b.attach) {
      const p = port(n, b.name);
      const nic = `eth${d.nics.get(n)!.indexOf(b.name)}`;
      links.push(`link add ${p} master ${brDev(lab, b.name)} up type veth peer name ${nic} address ${nicMac(lab, n, b.name)} netns ${nsName(lab, n)}`, `link set ${p} alias provium:${lab}:port:${n}:${b.name}`);
    }
  }

  // 3 per-node namespace batches
  const nodeSteps: Step[] = s.nodes.map((n) => {
    const l = [`link set lo up alias provium:${lab}:node:${n}`];
    (d.nics.get(n) ?? []).forEach((b, i) => l.push(`addr add ${d.ip.get(`${b}/${n}`)} dev eth${i}`, `link set eth${i} up`));
    l.push(...nodeRoutes(s, d, n));
    return { label: `namespace ${n}`, argv: ['ip', '-n', nsName(lab, n), '-batch', '-'], stdin: l.join('\n') + '\n' };
  });

  // 5 tc and 6 nft elements
  const blocked: string[] = [];
  const loss: string[] = [];
  const lossPort: string[] = [];
  const lossOwn: string[] = [];
  const prio: string[] = [];
  const shaped = new Map<string, { src: string; bps: number; owner: string }[]>();
  for (const b of s.bridges) {
    for (const p of b.partitions) {
      if ('sym' in p) {
        const [x, y] = [...p.sym].sort();
        const owner = `bridge.${b.name}.partition[${x}<>${y}]`;
        blocked.push(`${mac(p.sym[0], b.name)} . ${q(port(p.sym[1], b.name))} comment ${q(owner)}`);
        blocked.push(`${mac(p.sym[1], b.name)} . ${q(port(p.sym[0], b.name))} comment ${q(owner)}`);
      } else {
        blocked.push(`${mac(p.from, b.name)} . ${q(port(p.to, b.name))} comment ${q(`bridge.${b.name}.partition[${p.from}>${p.to}]`)}`);
      }
    }
    const whole = b.impairments.find((i) => !i.from);
    const pairs = new Map(b.impairments.filter((i) => i.from).map((i) => [`${i.from}>${i.to}`, i]));
    // The whole-bridge drop: one element per receiving port; pairs with a drop of their own are exempt from it.
    const range = (v: number) => (v <= 1 ? '0' : `0-${v - 1}`);
    const wholeV = whole?.drop_pct !== undefined ? Math.min(10000, Math.round(whole.drop_pct * 100)) : 0;
    if (wholeV > 0 && b.attach.length > 1) for (const y of b.attach) lossPort.push(`${q(port(y, b.name))} . ${range(wholeV)} comment ${q(`bridge.${b.name}.impairment[*]`)}`);
    for (const x of b.attach) {
      for (const y of b.attach) {
        if (x === y) continue;
        const pair = pairs.get(`${x}>${y}`);
        if (pair?.drop_pct !== undefined) {
          const owner = `bridge.${b.name}.impairment[${x}>${y}]`;
          const v = Math.min(10000, Math.round(pair.drop_pct * 100));
          if (wholeV > 0) lossOwn.push(`${mac(x, b.name)} . ${q(port(y, b.name))} comment ${q(owner)}`);
          if (v > 0) loss.push(`${mac(x, b.name)} . ${q(port(y, b.name))} . ${range(v)} comment ${q(owner)}`);
        }
        if (pair?.bandwidth_bps !== undefined) {
          const dst = port(y, b.name);
          shaped.set(dst, [...(shaped.get(dst) ?? []), { src: mac(x, b.name), bps: pair.bandwidth_bps, owner: `bridge.${b.name}.impairment[${x}>${y}]` }]);
        }
      }
    }
  }
  const tc: string[] = [];
  const tcClasses: string[] = [];
  const majors = allocateMajors([...shaped.keys()]);
  for (const [dev, srcs] of shaped) {
    const m = hex(majors.get(dev)!);
    tc.push(`qdisc add dev ${dev} root handle ${m}: htb default 2`);
    tc.push(`class add dev ${dev} parent ${m}: classid ${m}:1 ${htb(UNSHAPED)}`);
    tcClasses.push(`class add dev ${dev} parent ${m}:1 classid ${m}:2 ${htb(UNSHAPED)}`);
    const minors = allocateMinors(srcs.map((x) => x.src));
    for (const x of srcs) {
      const cid = `${m}:${hex(minors.get(x.src)!)}`;
      tcClasses.push(`class add dev ${dev} parent ${m}:1 classid ${cid} ${htb(x.bps)}`);
      prio.push(`${x.src} . ${q(dev)} comment ${q(x.owner)} : ${cid}`);
    }
  }
  // The qdiscs and root classes first, then the leaves.
  const tcText = [...tc.filter((l) => l.startsWith('qdisc')), ...tc.filter((l) => l.startsWith('class')), ...tcClasses];

  const t = table(lab);
  // The bridge-family table only when something uses it (as provium does).
  const nft: string[] = blocked.length + loss.length + lossPort.length + prio.length > 0 ? [skeletonText(bridgeSkeleton(lab))] : [];
  const routed = s.bridges.some((b) => b.routes.length > 0);
  const inetBridges: string[] = [];
  const inetRouted: string[] = [];
  if (routed) {
    nft.push(skeletonText(inetSkeleton(lab)));
    for (const b of s.bridges) {
      const dev = brDev(lab, b.name);
      inetBridges.push(`${q(dev)} comment ${q(`bridge.${b.name}`)}`);
      inetRouted.push(`${q(dev)} . ${q(dev)} comment ${q(`bridge.${b.name}`)}`);
      for (const r of d.routes.get(b.name) ?? []) {
        const [x, y] = [b.name, r].sort();
        inetRouted.push(`${q(dev)} . ${q(brDev(lab, r))} comment ${q(`route[${x}<>${y}]`)}`);
      }
    }
  }
  const addAll = (family: string, set: string, elems: string[]) => {
    if (elems.length) nft.push(`add element ${family} ${t} ${set} { ${elems.join(', ')} }`);
  };
  addAll('bridge', 'blocked', blocked);
  // The interval set gets one line per element: a single `add element` statement with
  // ~3,000 concatenated-range elements makes nft 1.0.6 store/print a few range ends
  // wrong (e.g. 0-1660944384 instead of 0-99; reproduced with a plain nft -f file).
  for (const e of loss) nft.push(`add element bridge ${t} loss { ${e} }`);
  for (const e of lossPort) nft.push(`add element bridge ${t} loss_port { ${e} }`);
  addAll('bridge', 'loss_own', lossOwn);
  addAll('bridge', 'prio', prio);
  addAll('inet', 'bridges', inetBridges);
  addAll('inet', 'routed', inetRouted);

  const nl = (l: string[]) => l.join('\n') + '\n';
  const phases: Phase[] = [
    { limit: 1, steps: [{ label: 'node namespaces', argv: ['ip', '-batch', '-'], stdin: nl(netns) }] },
    { limit: 1, steps: [{ label: 'host links', argv: ['ip', '-n', host, '-batch', '-'], stdin: nl(links) }] },
    { limit: 8, steps: nodeSteps },
  ];
  if (routed) phases.push({ limit: 1, steps: [{ label: 'sysctl', argv: ['ip', 'netns', 'exec', host, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1'] }] });
  if (tcText.length) phases.push({ limit: 1, steps: [{ label: 'traffic control', argv: ['tc', '-n', host, '-batch', '-'], stdin: nl(tcText) }] });
  if (nft.length) phases.push({ limit: 1, steps: [{ label: 'nftables', argv: ['ip', 'netns', 'exec', host, 'nft', '-f', '-'], stdin: nl(nft) }] });
  phases.push({ limit: 1, steps: [], files: { label: 'hosts files', writes: s.nodes.map((n) => ({ path: `/etc/netns/${nsName(lab, n)}/hosts`, content: d.hosts.get(n)! })) } });
  return phases;
}

/** Number of processes and batch lines of a baseline. */
export function baselineSize(phases: Phase[]): { processes: number; lines: number } {
  const steps = phases.flatMap((p) => p.steps);
  return { processes: steps.length, lines: steps.reduce((a, s) => a + (s.stdin ? s.stdin.split('\n').length - 1 : 1), 0) };
}

/** Runs the phases; returns the wall time in ms (first spawn to last exit) and each phase's. */
export async function runBaseline(phases: Phase[]): Promise<{ ms: number; phases: { label: string; ms: number }[] }> {
  const t0 = performance.now();
  const out: { label: string; ms: number }[] = [];
  for (const ph of phases) {
    const p0 = performance.now();
    await mapLimit(ph.steps, ph.limit, (st) => run(st.argv, { stdin: st.stdin }));
    for (const w of ph.files?.writes ?? []) {
      mkdirSync(w.path.slice(0, w.path.lastIndexOf('/')), { recursive: true, mode: 0o755 });
      writeFileSync(w.path, w.content, { mode: 0o644 });
    }
    out.push({ label: ph.files ? ph.files.label : ph.steps.length > 1 ? `${ph.steps.length} x ${ph.steps[0].label.split(' ')[0]}` : ph.steps[0].label, ms: performance.now() - p0 });
  }
  return { ms: performance.now() - t0, phases: out };
}

/**
 * The baseline's teardown: node namespaces deleted in one `ip -batch` (the kernel then
 * removes every veth pair in one batched, asynchronous namespace cleanup), bridges in
 * one `ip -n HOST -batch`, both nft tables in one transaction, ip_forward back to 0;
 * then polls until the host namespace holds nothing but lo. Returns the wall time in ms.
 */
export async function baselineTeardown(s: LabSpec, host: string): Promise<number> {
  const t0 = performance.now();
  const routed = s.bridges.some((b) => b.routes.length > 0);
  await run(['ip', '-batch', '-'], { stdin: s.nodes.map((n) => `netns del ${nsName(s.lab, n)}`).join('\n') + '\n' });
  for (const n of s.nodes) rmSync(`/etc/netns/${nsName(s.lab, n)}`, { recursive: true, force: true });
  await run(['ip', '-n', host, '-batch', '-'], { stdin: s.bridges.map((b) => `link del ${brDev(s.lab, b.name)}`).join('\n') + '\n' });
  const bridgeTable = s.bridges.some((b) => b.partitions.length + b.impairments.length > 0);
  const tables = [...(bridgeTable ? ['bridge'] : []), ...(routed ? ['inet'] : [])].map((f) => `delete table ${f} ${table(s.lab)}`);
  if (tables.length) await run(['ip', 'netns', 'exec', host, 'nft', '-f', '-'], { stdin: tables.join('\n') + '\n' });
  if (routed) await run(['ip', 'netns', 'exec', host, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=0']);
  while (performance.now() - t0 < 60_000) {
    const r = await run(['ip', '-n', host, '-o', 'link', 'show']);
    if (r.stdout.trim().split('\n').length <= 1) break;
    await new Promise((res) => setTimeout(res, 20));
  }
  return performance.now() - t0;
}
