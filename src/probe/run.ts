/**
 * `provium probe`: sends real traffic between the lab's nodes and compares what
 * arrives with what the file declares (expect.ts), property by property.
 *
 * Phases (each bounded; all timings below are the defaults):
 * 1. reachability: every selected directed pair on every bridge, all at once: 10 small
 *    UDP datagrams (more for a pair with drop: enough that a reachable pair loses them
 *    all with probability < 1e-6); reachable when at least one arrives. Routes between
 *    bridges the same way, and each router's forwarding from a node behind it to a node
 *    on its upstream (through its NAT); uplinks by ping to the host namespace's default
 *    gateway. Routers carry an agent like netns nodes.
 *    Pairs between a netns node and a VM: ping (a round trip: both directions open).
 *    `--quick` stops here.
 * 2. light tests, all at once: drop per pair with 0 < drop < 100 % (1,000-5,000 small
 *    datagrams, see stats.dropSamples; below half the pair's bandwidth), one-way latency
 *    and jitter per pair with latency (200 datagrams at 200/s; one-way from the shared
 *    monotonic clock of the host).
 * 3. load tests, one at a time per queue (a pair's own bandwidth/latency class, or the
 *    shared one of a member that gets the whole-bridge bandwidth) and at most 4 at once:
 *    rate (1.5 s of full-size datagrams offered at 1.3 x the bandwidth, measured after
 *    0.3 s) and, for pairs with latency and bandwidth, loss at 90 % of the bandwidth
 *    (netem's queue must hold a full link: see plan/commands.ts netemLimit).
 * Every agent ends with the probe (stdin closed, and a maximum lifetime).
 */
import { hasNamespace, type Topology } from '../model/topology.js';
import { nodeNetns } from '../model/names.js';
import { HostRunner, mapLimit, type Runner } from '../host/runner.js';
import { ipArgv, type HostContext } from '../plan/commands.js';
import { existsSync } from 'node:fs';
import { expectations, type GatewaySpec, type PairSpec, type RouteSpec, type UplinkSpec } from './expect.js';
import { startAgents, type Agent, type SendResult } from './agents.js';
import type { FlowStats } from './agent.js';
import { netemLimit } from '../plan/realize.js';
import { dropOk, dropSamples, jitterEstimate, jitterFromMad, jitterFromPercentiles, jitterTolerance, latencyBounds, median, percentile, medianSlack, rateOk, reachSamples, RATE_TOLERANCE } from './stats.js';

export type PropertyKind = 'reach' | 'drop' | 'latency' | 'jitter' | 'rate' | 'queue' | 'route' | 'gateway' | 'uplink';

/** One measured property: declared, measured, verdict. Units in `values`: percent, bits/s, ms. */
export interface ProbeResult {
  property: PropertyKind;
  /** "lan a -> b", "lan a <-> v (round trip)", "lan -> data" (route), "home: homelan -> inet" (gateway), "lan" (uplink). */
  subject: string;
  bridge?: string;
  from?: string;
  to?: string;
  declared: string;
  measured: string;
  status: 'ok' | 'FAIL' | 'skip';
  values?: Record<string, number | boolean>;
}

export interface ProbeReport {
  lab: string;
  ok: boolean;
  seconds: number;
  results: ProbeResult[];
  /** Plan addresses where the host differs from the file (informational). */
  drift?: string[];
}

export interface ProbeOptions {
  ctx: HostContext;
  quick?: boolean;
  only?: (p: { bridge: string; from: string; to: string }) => boolean;
  runner?: Runner;
  /** Progress lines (phase names). */
  progress?: (s: string) => void;
}

const SMALL = 64;
/** UDP, IPv4 and Ethernet headers: a datagram of n bytes is a frame of n + 42. */
const FRAME = 42;
const MAX_TOTAL_PPS = 20_000;
const RATE_SECONDS = 1.5;
const RATE_WARMUP_MS = 300;
const QUEUE_SECONDS = 3;
/** Datagram size of the queue test: mid-size (a mix of full-size packets and ACKs). */
export const QUEUE_DATAGRAM = 458;

let flowSeq = 1;

interface FlowPlan {
  src: string;
  dst: string;
  ip: string;
  count: number;
  size: number;
  pps: number;
}

interface FlowOutcome {
  send: SendResult;
  stats: FlowStats;
  /** UDP receive-buffer overflows at the receiver during the flow (the measurement is then not trustworthy). */
  rcvbuf: number;
}

const fmtPct = (x: number) => (x >= 10 ? x.toFixed(1) : x >= 1 ? x.toFixed(2) : x.toFixed(3)).replace(/\.?0+$/, '') || '0';
const fmtRate = (bps: number) => (bps >= 1e9 ? `${(bps / 1e9).toFixed(2)} Gbit/s` : bps >= 1e6 ? `${(bps / 1e6).toFixed(2)} Mbit/s` : `${(bps / 1e3).toFixed(1)} kbit/s`);
const fmtMs = (x: number) => `${x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)} ms`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Runs flows at once and collects what arrived: each sender sends, then (after `graceMs`
 * past the last send) each receiver reports its flows.
 */
async function runFlows(agents: Map<string, Agent>, flows: FlowPlan[], graceMs: number, warmupMs = 0): Promise<FlowOutcome[]> {
  if (flows.length === 0) return [];
  const ids = flows.map(() => flowSeq++);
  const before = new Map<string, number>();
  for (const f of flows) before.set(f.dst, agents.get(f.dst)!.startErrors.rcvbufErrors);
  const sends = await Promise.all(flows.map((f, i) => {
    const rcv = agents.get(f.dst)!;
    return agents.get(f.src)!.send(ids[i], f.ip, rcv.port, f.count, f.size, f.pps);
  }));
  await sleep(graceMs);
  const byDst = new Map<string, number[]>();
  flows.forEach((f, i) => byDst.set(f.dst, [...(byDst.get(f.dst) ?? []), i]));
  const out: FlowOutcome[] = new Array(flows.length);
  await Promise.all([...byDst].map(async ([dst, idx]) => {
    const a = agents.get(dst)!;
    const r = await a.stats(idx.map((i) => ids[i]), warmupMs);
    const overflow = r.udpErrors.rcvbufErrors - (before.get(dst) ?? 0);
    a.startErrors = r.udpErrors;
    for (const i of idx) out[i] = { send: sends[i], stats: r.stats[ids[i]], rcvbuf: overflow };
  }));
  return out;
}

/** Pings `ip` from namespace `ns`: replies out of sent, and the average RTT (ms). */
async function ping(runner: Runner, ns: string, ip: string, count: number, intervalS: number, waitS = 1): Promise<{ sent: number; received: number; avgMs?: number; rtts: number[] }> {
  // -c without -w: exactly `count` echoes, then -W for the last replies.
  const deadline = Math.ceil(count * intervalS + waitS + 2);
  const r = await runner.run(['ip', 'netns', 'exec', ns, 'ping', '-n', '-c', String(count), '-i', String(intervalS), '-W', String(Math.ceil(waitS)), ip], { allowFail: true, timeoutMs: (deadline + 10) * 1000 });
  const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
  const rtt = /= [\d.]+\/([\d.]+)\//.exec(r.stdout);
  const rtts = [...r.stdout.matchAll(/ time=([\d.]+) ms/g)].map((x) => Number(x[1]));
  return { sent: m ? Number(m[1]) : count, received: m ? Number(m[2]) : 0, ...(rtt ? { avgMs: Number(rtt[1]) } : {}), rtts };
}

function pairSubject(p: { bridge: string; from: string; to: string }): string {
  return `${p.bridge} ${p.from} -> ${p.to}`;
}

/** Largest pps that stays below `fraction` of a pair's bandwidth for frames of `size` bytes (Infinity when unshaped). */
function ppsUnder(p: PairSpec, size: number, fraction: number): number {
  return p.bandwidthBps ? (fraction * p.bandwidthBps) / (8 * (size + FRAME)) : Infinity;
}

/** Gateway of the host namespace's IPv4 default route, or undefined. */
async function defaultGateway(runner: Runner, ctx: HostContext): Promise<string | undefined> {
  const r = await runner.run([...ipArgv(ctx), '-j', '-4', 'route', 'show', 'default'], { allowFail: true });
  try {
    const routes = JSON.parse(r.stdout || '[]') as { gateway?: string }[];
    return routes.find((x) => x.gateway)?.gateway;
  } catch {
    return undefined;
  }
}

/** Probes a lab. Throws Error when agents cannot start; a FAIL is a result, not an error. */
export async function probe(t: Topology, opts: ProbeOptions): Promise<ProbeReport> {
  const t0 = performance.now();
  const runner = opts.runner ?? new HostRunner();
  const progress = opts.progress ?? (() => {});
  const exp = expectations(t);
  const only = opts.only ?? (() => true);
  const pairs = exp.pairs.filter(only);
  const results: ProbeResult[] = [];
  const running = (node: string) => !hasNamespace(t.nodes[node].kind) || existsSync(`/run/netns/${nodeNetns(t.lab, node)}`);
  const inNs = (k: PairSpec['fromKind']) => k === 'netns' || k === 'router';

  // Which pairs can be measured, and how.
  const agentPairs: PairSpec[] = [];
  const vmPairs: PairSpec[] = [];
  for (const p of pairs) {
    const skip = (why: string) => results.push({ property: 'reach', subject: pairSubject(p), bridge: p.bridge, from: p.from, to: p.to, declared: p.reachable ? 'reachable' : `cut (${p.why})`, measured: why, status: 'skip' });
    if (p.fromKind === 'qemu' || p.toKind === 'qemu') skip('not measured: a qemu node without a VM (no kernel or disk) has no network stack');
    else if (!p.fromIp || !p.toIp) skip('not measured: no IPv4 address on this bridge (no subnet)');
    else if (!running(p.from) || !running(p.to)) skip(`not measured: node ${running(p.from) ? p.to : p.from} is not running (run provium apply)`);
    else if (p.unmeasurable) skip(`not measured: ${p.unmeasurable}`);
    else if (inNs(p.fromKind) && inNs(p.toKind)) agentPairs.push(p);
    else if (inNs(p.fromKind) && p.toKind === 'vm') vmPairs.push(p);
    else if (p.fromKind === 'vm' && p.toKind === 'vm') skip('not measured: both ends are VMs (the probe runs no agent inside VMs)');
    // vm -> netns pairs are covered by the round trip of their netns -> vm pair.
  }
  const routes: RouteSpec[] = opts.only ? [] : exp.routes;
  const uplinks: UplinkSpec[] = opts.only ? [] : exp.uplinks;
  const gateways: GatewaySpec[] = opts.only ? [] : exp.gateways;

  const needed = new Set<string>();
  for (const p of agentPairs) (needed.add(p.from), needed.add(p.to));
  for (const r of routes) if (r.src && r.dst && running(r.src.node) && running(r.dst.node)) (needed.add(r.src.node), needed.add(r.dst.node));
  for (const g of gateways) if (g.src && g.dst && running(g.src.node) && running(g.dst.node)) (needed.add(g.src.node), needed.add(g.dst.node));
  const maxLatency = Math.max(0, ...pairs.map((p) => (p.latencyMs ?? 0) + (p.jitterMs ?? 0)));
  const graceMs = 300 + maxLatency * 1.2;
  // The first datagrams of a pair wait for ARP, which crosses the pair's queues too (only
  // partitions exempt ARP): request one way, reply back, then the data.
  const reachGraceMs = 300 + maxLatency * 3.6;
  progress(`starting ${needed.size} traffic agent(s)`);
  const agents = await startAgents(new Map([...needed].map((n) => [n, nodeNetns(t.lab, n)])), opts.quick ? 60_000 : 300_000);
  try {
    // --- 1. reachability ------------------------------------------------------------------
    progress(`reachability: ${agentPairs.length} pair(s), ${routes.length} route(s), ${gateways.length} router path(s), ${uplinks.length} uplink(s), ${vmPairs.length} VM pair(s)`);
    const reachFlows: FlowPlan[] = agentPairs.map((p) => {
      const count = p.reachable ? reachSamples(p.dropPct) : 10;
      const pps = Math.min(500, ppsUnder(p, SMALL, 0.5));
      return { src: p.from, dst: p.to, ip: p.toIp!, count, size: SMALL, pps };
    });
    const routeList = routes.filter((r) => r.src && r.dst && agents.has(r.src.node) && agents.has(r.dst.node));
    const routeFlows: FlowPlan[] = routeList.map((r) => ({ src: r.src!.node, dst: r.dst!.node, ip: r.dst!.ip, count: 10, size: SMALL, pps: 500 }));
    const gwList = gateways.filter((g) => g.src && g.dst && agents.has(g.src.node) && agents.has(g.dst.node));
    const gwFlows: FlowPlan[] = gwList.map((g) => ({ src: g.src!.node, dst: g.dst!.node, ip: g.dst!.ip, count: g.reachable ? reachSamples(g.dropPct) : 10, size: SMALL, pps: 200 }));
    const gateway = uplinks.length ? await defaultGateway(runner, opts.ctx) : undefined;
    const [reachOut, routeOut, gwOut, uplinkOut, vmReach] = await Promise.all([
      runFlows(agents, reachFlows, reachGraceMs),
      runFlows(agents, routeFlows, reachGraceMs),
      runFlows(agents, gwFlows, reachGraceMs),
      mapLimit(uplinks, 8, async (u) => (u.node && gateway && running(u.node) ? ping(runner, nodeNetns(t.lab, u.node), gateway, 3, 0.2) : undefined)),
      mapLimit(vmPairs, 8, (p) => {
        const back = exp.pairs.find((q) => q.bridge === p.bridge && q.from === p.to && q.to === p.from)!;
        const drop = 1 - (1 - p.dropPct / 100) * (1 - back.dropPct / 100);
        return ping(runner, nodeNetns(t.lab, p.from), p.toIp!, Math.min(200, reachSamples(drop * 100)), 0.02);
      }),
    ]);
    agentPairs.forEach((p, i) => {
      const o = reachOut[i];
      const got = o.stats.received;
      const reached = got > 0;
      results.push({
        property: 'reach', subject: pairSubject(p), bridge: p.bridge, from: p.from, to: p.to,
        declared: p.reachable ? 'reachable' : `cut (${p.why})`,
        measured: `${got}/${o.send.sent} arrived${o.send.errors ? ` (${o.send.errors} send errors)` : ''}`,
        status: reached === p.reachable ? 'ok' : 'FAIL', values: { reachable: reached, sent: o.send.sent, received: got },
      });
    });
    vmPairs.forEach((p, i) => {
      const back = exp.pairs.find((q) => q.bridge === p.bridge && q.from === p.to && q.to === p.from)!;
      const want = p.reachable && back.reachable;
      const r = vmReach[i];
      const reached = r.received > 0;
      results.push({
        property: 'reach', subject: `${p.bridge} ${p.from} <-> ${p.to} (round trip)`, bridge: p.bridge, from: p.from, to: p.to,
        declared: want ? 'reachable' : `cut (${!p.reachable ? p.why : back.why})`,
        measured: `${r.received}/${r.sent} ping replies${r.avgMs !== undefined ? `, RTT ${fmtMs(r.avgMs)}` : ''}`,
        status: reached === want ? 'ok' : 'FAIL', values: { reachable: reached, sent: r.sent, received: r.received, ...(r.avgMs !== undefined ? { rttMs: r.avgMs } : {}) },
      });
    });
    for (const r of routes) {
      const i = routeList.indexOf(r);
      const subject = `${r.from} -> ${r.to}`;
      if (i < 0) {
        results.push({ property: 'route', subject, declared: 'reachable', measured: 'not measured: no running netns node with an address and link up on only one side', status: 'skip' });
        continue;
      }
      const o = routeOut[i];
      results.push({
        property: 'route', subject, declared: 'reachable', measured: `${o.stats.received}/${o.send.sent} arrived (${r.src!.node} -> ${r.dst!.node} ${r.dst!.ip})`,
        status: o.stats.received > 0 ? 'ok' : 'FAIL', values: { reachable: o.stats.received > 0, sent: o.send.sent, received: o.stats.received },
      });
    }
    for (const g of gateways) {
      const i = gwList.indexOf(g);
      const subject = `${g.router}: ${g.lan} -> ${g.upstream}`;
      const declared = g.reachable ? `reachable (${g.nat})` : `cut (${g.why})`;
      if (i < 0) {
        const why = !g.src ? `no running netns node with an address and link up on ${g.lan} takes its default route through ${g.router}`
          : !g.dst ? `no running netns node with an address and link up on ${g.upstream} (other than ${g.router})`
            : `node ${running(g.src.node) ? g.dst.node : g.src.node} is not running`;
        results.push({ property: 'gateway', subject, declared, measured: `not measured: ${why}`, status: 'skip' });
        continue;
      }
      const o = gwOut[i];
      const reached = o.stats.received > 0;
      results.push({
        property: 'gateway', subject, declared, measured: `${o.stats.received}/${o.send.sent} arrived (${g.src!.node} -> ${g.dst!.node} ${g.dst!.ip})`,
        status: reached === g.reachable ? 'ok' : 'FAIL', values: { reachable: reached, sent: o.send.sent, received: o.stats.received },
      });
    }
    uplinks.forEach((u, i) => {
      const subject = u.bridge;
      const r = uplinkOut[i];
      if (!u.node) results.push({ property: 'uplink', subject, declared: 'reachable', measured: 'not measured: no running netns node with an address and link up takes its default route through this bridge', status: 'skip' });
      else if (!gateway) results.push({ property: 'uplink', subject, declared: 'reachable', measured: "not measured: the lab's host namespace has no IPv4 default gateway to ping", status: 'skip' });
      else if (!r) results.push({ property: 'uplink', subject, declared: 'reachable', measured: `not measured: node ${u.node} is not running`, status: 'skip' });
      else results.push({ property: 'uplink', subject, declared: 'reachable', measured: `${r.received}/${r.sent} ping replies from the default gateway ${gateway} (from ${u.node})`, status: r.received > 0 ? 'ok' : 'FAIL', values: { reachable: r.received > 0, sent: r.sent, received: r.received } });
    });
    if (opts.quick) return finish();

    // --- 2. light tests: latency and jitter, then drop ------------------------------------
    const open = agentPairs.filter((p) => p.reachable);
    const dropPairs = open.filter((p) => p.dropPct > 0);
    const latPairs = open.filter((p) => p.latencyMs !== undefined);
    progress(`latency and jitter: ${latPairs.length} pair(s); drop: ${dropPairs.length} pair(s)`);
    // A pair with latency keeps its datagrams in netem for the latency: at most half of
    // netem's queue (sized by plan/realize.ts netemLimit) may be the probe's.
    const underQueue = (p: PairSpec) => (p.latencyMs !== undefined ? (0.5 * netemLimit(p.bandwidthBps ?? 10e9, p.latencyMs, p.jitterMs ?? 0)) / ((p.latencyMs + (p.jitterMs ?? 0)) / 1000) : Infinity);
    // Latency and jitter by ping where the reverse direction is open: the RTT's receive time
    // is the kernel's (SO_TIMESTAMP) and the peer answers in its kernel, so a slow machine
    // does not read as latency. One-way = RTT - the declared reverse latency. Where the
    // reverse is cut, one-way from the agents' shared clock, next to a loopback flow at the
    // receiver that measures the host's own reading delay.
    const reverse = (p: PairSpec) => exp.pairs.find((q) => q.bridge === p.bridge && q.from === p.to && q.to === p.from)!;
    const latVm = vmPairs.flatMap((p) => {
      const back = reverse(p);
      return p.reachable && back.reachable && (p.latencyMs !== undefined || back.latencyMs !== undefined) ? [p] : [];
    });
    const byPing = [...latPairs.filter((p) => reverse(p).reachable), ...latVm];
    const byAgent = latPairs.filter((p) => !reverse(p).reachable);
    const latShare = MAX_TOTAL_PPS / Math.max(1, byAgent.length);
    const latFlows: FlowPlan[] = byAgent.map((p) => {
      const pps = Math.max(1, Math.min(200, latShare, ppsUnder(p, SMALL, 0.25), underQueue(p)));
      return { src: p.from, dst: p.to, ip: p.toIp!, count: Math.max(20, Math.min(200, Math.floor(pps * 2))), size: SMALL, pps };
    });
    const receivers = [...new Set(byAgent.map((p) => p.to))];
    const calFlows: FlowPlan[] = receivers.map((n) => ({ src: n, dst: n, ip: '127.0.0.1', count: 200, size: SMALL, pps: 100 }));
    // Calibration of the pings: the same echoes to 127.0.0.1 from each source namespace, at
    // the same time: what they take is the host's own scheduling, not the lab's.
    const pingSources = [...new Set(byPing.map((p) => p.from))];
    const [latAll, pings, selfPings] = await Promise.all([
      runFlows(agents, [...latFlows, ...calFlows], graceMs),
      mapLimit(byPing, 32, (p) => {
        const back = reverse(p);
        // 100 echoes at 100/s; slower where a bandwidth is small (at most a quarter of it, 98-byte frames).
        const bw = Math.min(p.bandwidthBps ?? Infinity, back.bandwidthBps ?? Infinity);
        const interval = Math.max(0.01, (98 * 8 * 4) / bw);
        const wait = ((p.latencyMs ?? 0) + (p.jitterMs ?? 0) + (back.latencyMs ?? 0) + (back.jitterMs ?? 0)) / 1000 + 1;
        return ping(runner, nodeNetns(t.lab, p.from), p.toIp!, 100, Number(interval.toFixed(3)), wait);
      }),
      mapLimit(pingSources, 8, (n) => ping(runner, nodeNetns(t.lab, n), '127.0.0.1', 100, 0.01, 1)),
    ]);
    const selfRtt = new Map(pingSources.map((n, i) => {
      const x = selfPings[i].rtts;
      const m = x.length ? median(x) : 0;
      const mean = x.length ? x.reduce((a, b) => a + b, 0) / x.length : 0;
      const sd = x.length > 1 ? Math.sqrt(x.reduce((a, b) => a + (b - mean) ** 2, 0) / (x.length - 1)) : 0;
      const p95 = x.length ? [...x].sort((a, b) => a - b)[Math.floor(0.95 * (x.length - 1))] : 0;
      return [n, { median: m, p95, sd }];
    }));
    byPing.forEach((p, i) => {
      const back = reverse(p);
      const r = pings[i];
      const base = { subject: pairSubject(p), bridge: p.bridge, from: p.from, to: p.to };
      const rev = back.latencyMs ?? 0;
      const revJ = back.jitterMs ?? 0;
      // A VM pair with latency only on the way back is reported for that direction.
      const [dir, fwdL, fwdJ, revL, revJit] = p.latencyMs !== undefined || p.toKind !== 'vm'
        ? [base, p.latencyMs ?? 0, p.jitterMs ?? 0, rev, revJ]
        : [{ ...base, subject: `${p.bridge} ${p.to} -> ${p.from}`, from: p.to, to: p.from }, back.latencyMs!, back.jitterMs ?? 0, 0, 0];
      const how = `ping RTT median - declared reverse ${fmtMs(revL)}`;
      if (r.rtts.length < 5) {
        results.push({ ...dir, property: 'latency', declared: fmtMs(fwdL), measured: `${r.rtts.length}/${r.sent} ping replies: too few to measure`, status: 'FAIL' });
        return;
      }
      const own = selfRtt.get(p.from) ?? { median: 0, p95: 0, sd: 0 };
      const rtt = median(r.rtts);
      const est = rtt - revL - own.median;
      const n = r.rtts.length;
      const mean = r.rtts.reduce((x, y) => x + y, 0) / n;
      const v = r.rtts.reduce((x, y) => x + (y - mean) ** 2, 0) / (n - 1);
      // The median of n RTTs is itself uncertain by the spread of both directions' jitter.
      const slack = medianSlack(Math.sqrt(v), n);
      const [lo0, hi0] = latencyBounds(fwdL);
      const lo = lo0 - slack;
      const hi = hi0 + slack + (own.p95 - own.median);
      const hostNote = own.p95 >= 0.5 ? `; the host's own RTT ${fmtMs(own.median)} median, ${fmtMs(own.p95)} p95, subtracted` : '';
      results.push({
        ...dir, property: 'latency', declared: fmtMs(fwdL),
        measured: `${fmtMs(est)} one-way (${how}; ${r.rtts.length} replies; ok within ${fmtMs(lo)}-${fmtMs(hi)}${hostNote})`,
        status: est >= lo && est <= hi ? 'ok' : 'FAIL', values: { declaredMs: fwdL, oneWayMs: est, rttMedianMs: rtt, reverseMs: revL, hostRttMedianMs: own.median, hostRttP95Ms: own.p95 },
      });
      // Jitter: the RTT's variance is the sum of both directions' (netem's uniform delay: J^2 / 3).
      const vFwd = v - (revJit * revJit) / 3 - own.sd * own.sd;
      const j = jitterEstimate(Math.sqrt(Math.max(0, vFwd)));
      const se = v * Math.sqrt(2 / n);
      // ok: within max(2 ms, 30 %); or within 4 standard errors of the variance estimate
      // (a large reverse jitter hides a small forward one); plus the host's own spread.
      const tol = jitterTolerance(fwdJ) + jitterEstimate(own.sd);
      // Where the reverse has no declared jitter, also 2 x the RTTs' median absolute
      // deviation (stats.ts jitterFromMad): a few late timers of a busy virtual machine do
      // not move it; a jitter really left on the pair does.
      const jMad = revJit === 0 ? jitterFromMad(r.rtts) : NaN;
      const ok = Math.abs(j - fwdJ) <= tol || Math.abs(vFwd - (fwdJ * fwdJ) / 3) <= 4 * se || Math.abs(jMad - fwdJ) <= tol;
      const spread = `RTT p5-p95 ${fmtMs(percentile(r.rtts, 0.05))}-${fmtMs(percentile(r.rtts, 0.95))}, max ${fmtMs(Math.max(...r.rtts))}`;
      results.push({
        ...dir, property: 'jitter', declared: fmtMs(fwdJ),
        measured: `${fmtMs(j)} (sqrt(3) x the RTT's standard deviation ${fmtMs(Math.sqrt(v))}${revJit ? `, less the declared reverse jitter ${fmtMs(revJit)}` : ''}${own.sd >= 0.3 ? `, less the host's own ${fmtMs(own.sd)}` : ''}${Number.isNaN(jMad) ? '' : `; 2 x the RTTs' median absolute deviation: ${fmtMs(jMad)}`}; ${spread})`,
        status: ok ? 'ok' : 'FAIL', values: { declaredMs: fwdJ, estimateMs: j, ...(Number.isNaN(jMad) ? {} : { madEstimateMs: jMad }), rttStdevMs: Math.sqrt(v), hostRttStdevMs: own.sd },
      });
    });
    const lag = new Map(receivers.map((n, i) => [n, latAll[latFlows.length + i].stats.delay]));
    byAgent.forEach((p, i) => {
      const o = latAll[i];
      const dl = o.stats.delay;
      const own = lag.get(p.to);
      const ownP95 = own?.p95 ?? 0;
      const ownSd = own?.stdev ?? 0;
      const slack = dl ? medianSlack(dl.stdev, o.stats.received) : 0;
      const [lo0, hi0] = latencyBounds(p.latencyMs!);
      const lo = lo0 - slack;
      const hi = hi0 + slack + ownP95;
      const base = { subject: pairSubject(p), bridge: p.bridge, from: p.from, to: p.to };
      if (!dl) {
        results.push({ ...base, property: 'latency', declared: fmtMs(p.latencyMs!), measured: 'nothing arrived', status: 'FAIL' });
        return;
      }
      const hostNote = own ? `; the host's own delay ${fmtMs(own.median)} median, ${fmtMs(ownP95)} p95` : '';
      results.push({
        ...base, property: 'latency', declared: fmtMs(p.latencyMs!),
        measured: `${fmtMs(dl.median)} one-way median (${o.stats.received} samples, ${fmtMs(dl.min)}-${fmtMs(dl.max)}; ok within ${fmtMs(lo)}-${fmtMs(hi)}${hostNote})`,
        status: dl.median >= lo && dl.median <= hi ? 'ok' : 'FAIL', values: { declaredMs: p.latencyMs!, medianMs: dl.median, minMs: dl.min, maxMs: dl.max, hostDelayP95Ms: ownP95 },
      });
      // The host's own variation adds to the lab's: subtract its variance, allow its spread.
      const j = jitterEstimate(Math.sqrt(Math.max(0, dl.stdev ** 2 - ownSd ** 2)));
      // Also from the p5-p95 range (stats.ts jitterFromPercentiles), which the odd late
      // timer of a busy machine does not move.
      const jTol = jitterTolerance(p.jitterMs ?? 0) + jitterEstimate(ownSd);
      const jRange = jitterFromPercentiles(dl.p5, dl.p95);
      const ok = Math.abs(j - (p.jitterMs ?? 0)) <= jTol || Math.abs(jRange - (p.jitterMs ?? 0)) <= jTol;
      results.push({
        ...base, property: 'jitter', declared: fmtMs(p.jitterMs ?? 0),
        measured: `${fmtMs(j)} (sqrt(3) x standard deviation ${fmtMs(dl.stdev)}${ownSd > 0.05 ? ` less the host's own ${fmtMs(ownSd)}` : ''}; p5-p95 ${fmtMs(dl.p5)}-${fmtMs(dl.p95)}, (p95 - p5) / 1.8 = ${fmtMs(jRange)})`,
        status: ok ? 'ok' : 'FAIL', values: { declaredMs: p.jitterMs ?? 0, estimateMs: j, stdevMs: dl.stdev, hostStdevMs: ownSd },
      });
    });

    // Drop: ~30 expected losses per pair, within a budget of MAX_TOTAL_PPS for 8 s in all.
    const budget = Math.floor((MAX_TOTAL_PPS * 8) / Math.max(1, dropPairs.length));
    const dropPlan = (p: PairSpec, slow = 1): FlowPlan => {
      const want = Math.max(300, Math.min(dropSamples(p.dropPct), budget));
      const pps = Math.max(1, Math.min(want / 2.5, MAX_TOTAL_PPS / Math.max(1, dropPairs.length), ppsUnder(p, SMALL, 0.5), underQueue(p)) / slow);
      return { src: p.from, dst: p.to, ip: p.toIp!, count: Math.max(50, Math.min(want, Math.floor(pps * 4 * slow))), size: SMALL, pps };
    };
    let dropOut = await runFlows(agents, dropPairs.map((p) => dropPlan(p)), graceMs);
    // A receiver that overflowed (a slow machine) measured nothing: once more, 4 x slower.
    const again = dropPairs.map((p, i) => ({ p, i })).filter(({ p, i }) => dropOut[i].rcvbuf > 0 && !dropOk(dropOut[i].send.sent - dropOut[i].stats.received, dropOut[i].send.sent, p.dropPct).ok);
    if (again.length) {
      progress(`drop: ${again.length} pair(s) again at a quarter of the rate (a receiver could not keep up)`);
      const redo = await runFlows(agents, again.map(({ p }) => dropPlan(p, 4)), graceMs);
      dropOut = [...dropOut];
      again.forEach(({ i }, k) => (dropOut[i] = redo[k]));
    }
    dropPairs.forEach((p, i) => {
      const o = dropOut[i];
      const lost = o.send.sent - o.stats.received;
      const d = dropOk(lost, o.send.sent, p.dropPct);
      const noisy = !d.ok && o.rcvbuf > 0;
      results.push({
        property: 'drop', subject: pairSubject(p), bridge: p.bridge, from: p.from, to: p.to, declared: `${fmtPct(p.dropPct)} %`,
        measured: `${fmtPct(d.measuredPct)} % (${lost}/${o.send.sent} lost; 99.99 % CI ${fmtPct(d.lowPct)}-${fmtPct(d.highPct)} %)${overflowNote(o, d.ok)}`,
        status: noisy ? 'skip' : d.ok ? 'ok' : 'FAIL', values: { declaredPct: p.dropPct, measuredPct: d.measuredPct, lowPct: d.lowPct, highPct: d.highPct, sent: o.send.sent, lost },
      });
    });

    // --- 3. load tests, one at a time per queue ---------------------------------------------
    type Load = { queue: string; run: () => Promise<void> };
    const loads: Load[] = [];
    const seenRate = new Set<string>();
    const seenQueue = new Set<string>();
    for (const p of open.filter((x) => x.bandwidthBps !== undefined)) {
      const bw = p.bandwidthBps!;
      const size = Math.min(1472, p.mtu - 28);
      if (!seenRate.has(p.queue)) {
        seenRate.add(p.queue);
        loads.push({
          queue: p.queue,
          run: async () => {
            const offered = (1.3 * bw) / (1 - p.dropPct / 100);
            const pps = offered / (8 * (size + FRAME));
            const count = Math.max(20, Math.ceil(pps * RATE_SECONDS));
            const [o] = await runFlows(agents, [{ src: p.from, dst: p.to, ip: p.toIp!, count, size, pps }], graceMs, RATE_WARMUP_MS);
            await drained(agents.get(p.to)!);
            const reached = (o.send.sent * (size + FRAME) * 8 * 1000) / Math.max(1, o.send.ms);
            const subject = pairSubject(p) + (p.queue.endsWith('/*') ? ` (bandwidth into ${p.to})` : '');
            const base = { property: 'rate' as const, subject, bridge: p.bridge, from: p.from, to: p.to, declared: fmtRate(bw) };
            if (reached * (1 - p.dropPct / 100) < 1.05 * bw) {
              results.push({ ...base, measured: `not measured: the sender reached only ${fmtRate(reached)} (needs more than the bandwidth)`, status: 'skip' });
            } else if (o.stats.rateBps === undefined) {
              results.push({ ...base, measured: `${o.stats.received}/${o.send.sent} arrived: too few to measure a rate`, status: 'FAIL' });
            } else {
              const ok = rateOk(o.stats.rateBps, bw);
              results.push({
                ...base, measured: `${fmtRate(o.stats.rateBps)} (frames of ${size + FRAME} bytes, offered ${fmtRate(reached)}; ok within ${RATE_TOLERANCE * 100} %)${overflowNote(o, ok)}`,
                status: ok ? 'ok' : o.rcvbuf > 0 ? 'skip' : 'FAIL', values: { declaredBps: bw, measuredBps: o.stats.rateBps, offeredBps: reached },
              });
            }
          },
        });
      }
      if (p.latencyMs !== undefined && !seenQueue.has(p.queue)) {
        seenQueue.add(p.queue);
        loads.push({
          queue: p.queue,
          run: async () => {
            const s = QUEUE_DATAGRAM;
            const pps = (0.9 * bw) / (1 - p.dropPct / 100) / (8 * (s + FRAME));
            const count = Math.max(100, Math.ceil(pps * QUEUE_SECONDS));
            const [o] = await runFlows(agents, [{ src: p.from, dst: p.to, ip: p.toIp!, count, size: s, pps }], graceMs);
            await drained(agents.get(p.to)!);
            const lost = o.send.sent - o.stats.received;
            const d = dropOk(lost, o.send.sent, p.dropPct);
            const reached = (o.send.sent * (s + FRAME) * 8 * 1000) / Math.max(1, o.send.ms);
            const base = { property: 'queue' as const, subject: pairSubject(p), bridge: p.bridge, from: p.from, to: p.to, declared: `${fmtPct(p.dropPct)} % loss at 90 % of ${fmtRate(bw)} with ${fmtMs(p.latencyMs!)}` };
            if (reached < 0.8 * bw) {
              results.push({ ...base, measured: `not measured: the sender reached only ${fmtRate(reached)}`, status: 'skip' });
              return;
            }
            results.push({
              ...base, measured: `${fmtPct(d.measuredPct)} % lost (${lost}/${o.send.sent} datagrams of ${s} bytes at ${fmtRate(reached)}; 99.99 % CI ${fmtPct(d.lowPct)}-${fmtPct(d.highPct)} %)${overflowNote(o, d.ok)}`,
              status: d.ok ? 'ok' : o.rcvbuf > 0 ? 'skip' : 'FAIL', values: { declaredPct: p.dropPct, measuredPct: d.measuredPct, sent: o.send.sent, lost, offeredBps: reached },
            });
          },
        });
      }
    }
    if (loads.length) progress(`load: ${loads.length} test(s) (rate, and queue loss at 90 % of the bandwidth)`);
    await runExclusive(loads, 4);
    return finish();
  } finally {
    await Promise.all([...agents.values()].map((a) => a.close()));
  }

  function finish(): ProbeReport {
    const order: PropertyKind[] = ['reach', 'drop', 'latency', 'jitter', 'rate', 'queue', 'route', 'gateway', 'uplink'];
    const key = (r: ProbeResult) => [r.bridge ?? '~', r.from ?? '', r.to ?? '', String(order.indexOf(r.property)).padStart(2, '0'), r.subject].join('\u0000');
    results.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
    return { lab: t.lab, ok: results.every((r) => r.status !== 'FAIL'), seconds: Math.round(performance.now() - t0) / 1000, results };
  }
}

/** A note for a failed measurement whose receiver dropped datagrams itself (its socket buffer overflowed): then it proves nothing. */
function overflowNote(o: FlowOutcome, ok: boolean): string {
  return !ok && o.rcvbuf > 0 ? `; not trustworthy: the receiving agent could not keep up (${o.rcvbuf} datagrams overflowed its socket buffer)` : '';
}

/** Waits until nothing more arrives at an agent (a loaded queue drains): no new datagram for 200 ms, at most 5 s. */
async function drained(a: Agent): Promise<void> {
  let last = -1;
  for (let i = 0; i < 25; i++) {
    const { total } = await a.stats([]);
    if (total === last) return;
    last = total;
    await sleep(200);
  }
}

/** Runs tasks, at most `limit` at once and never two with the same queue at once. */
async function runExclusive(tasks: { queue: string; run: () => Promise<void> }[], limit: number): Promise<void> {
  const pending = [...tasks];
  const busy = new Set<string>();
  let active = 0;
  await new Promise<void>((resolve, reject) => {
    const pump = () => {
      if (pending.length === 0 && active === 0) return resolve();
      for (let i = 0; i < pending.length && active < limit; ) {
        const task = pending[i];
        if (busy.has(task.queue)) {
          i++;
          continue;
        }
        pending.splice(i, 1);
        busy.add(task.queue);
        active++;
        task.run().then(() => {
          busy.delete(task.queue);
          active--;
          pump();
        }, reject);
      }
    };
    pump();
  });
}

