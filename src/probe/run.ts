/**
 * `provium probe`: sends real traffic between the lab's nodes and compares what
 * arrives with what the file declares (expect.ts), property by property.
 *
 * Phases (each bounded; all timings below are the defaults):
 * 1. reachability: every selected directed pair on every bridge, all at once: 10 small
 *    UDP datagrams (more for a pair with drop: enough that a reachable pair loses them
 *    all with probability < 1e-6); reachable when at least one arrives. Routes between
 *    bridges the same way; uplinks by ping to the host namespace's default gateway.
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
import type { Topology } from '../model/topology.js';
import { nodeNetns } from '../model/names.js';
import { HostRunner, mapLimit, type Runner } from '../host/runner.js';
import { ipArgv, type HostContext } from '../plan/commands.js';
import { existsSync } from 'node:fs';
import { expectations, type PairSpec, type RouteSpec, type UplinkSpec } from './expect.js';
import { startAgents, type Agent, type SendResult } from './agents.js';
import type { FlowStats } from './agent.js';
import { dropOk, dropSamples, jitterEstimate, jitterOk, latencyBounds, rateOk, reachSamples, RATE_TOLERANCE, DROP_Z } from './stats.js';

export type PropertyKind = 'reach' | 'drop' | 'latency' | 'jitter' | 'rate' | 'queue' | 'route' | 'uplink';

/** One measured property: declared, measured, verdict. Units in `values`: percent, bits/s, ms. */
export interface ProbeResult {
  property: PropertyKind;
  /** "lan a -> b", "lan a <-> v (round trip)", "route lan -> data", "uplink lan". */
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
async function ping(runner: Runner, ns: string, ip: string, count: number, intervalS: number): Promise<{ sent: number; received: number; avgMs?: number }> {
  const deadline = Math.ceil(count * intervalS + 3);
  const r = await runner.run(['ip', 'netns', 'exec', ns, 'ping', '-n', '-q', '-c', String(count), '-i', String(intervalS), '-W', '1', '-w', String(deadline), ip], { allowFail: true, timeoutMs: (deadline + 5) * 1000 });
  const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
  const rtt = /= [\d.]+\/([\d.]+)\//.exec(r.stdout);
  return { sent: m ? Number(m[1]) : count, received: m ? Number(m[2]) : 0, ...(rtt ? { avgMs: Number(rtt[1]) } : {}) };
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
  const running = (node: string) => t.nodes[node].kind !== 'netns' || existsSync(`/run/netns/${nodeNetns(t.lab, node)}`);

  // Which pairs can be measured, and how.
  const agentPairs: PairSpec[] = [];
  const vmPairs: PairSpec[] = [];
  for (const p of pairs) {
    const skip = (why: string) => results.push({ property: 'reach', subject: pairSubject(p), bridge: p.bridge, from: p.from, to: p.to, declared: p.reachable ? 'reachable' : `cut (${p.why})`, measured: why, status: 'skip' });
    if (p.fromKind === 'qemu' || p.toKind === 'qemu') skip('not measured: a qemu node without a VM (no kernel or disk) has no network stack');
    else if (!p.fromIp || !p.toIp) skip('not measured: no IPv4 address on this bridge (no subnet)');
    else if (!running(p.from) || !running(p.to)) skip(`not measured: node ${running(p.from) ? p.to : p.from} is not running (run provium apply)`);
    else if (p.fromKind === 'netns' && p.toKind === 'netns') agentPairs.push(p);
    else if (p.fromKind === 'netns' && p.toKind === 'vm') vmPairs.push(p);
    else if (p.fromKind === 'vm' && p.toKind === 'vm') skip('not measured: both ends are VMs (the probe runs no agent inside VMs)');
    // vm -> netns pairs are covered by the round trip of their netns -> vm pair.
  }
  const routes: RouteSpec[] = opts.only ? [] : exp.routes;
  const uplinks: UplinkSpec[] = opts.only ? [] : exp.uplinks;

  const needed = new Set<string>();
  for (const p of agentPairs) (needed.add(p.from), needed.add(p.to));
  for (const r of routes) if (r.src && r.dst && running(r.src.node) && running(r.dst.node)) (needed.add(r.src.node), needed.add(r.dst.node));
  const maxLatency = Math.max(0, ...pairs.map((p) => (p.latencyMs ?? 0) + (p.jitterMs ?? 0)));
  const graceMs = 300 + maxLatency * 1.2;
  progress(`starting ${needed.size} traffic agent(s)`);
  const agents = await startAgents(new Map([...needed].map((n) => [n, nodeNetns(t.lab, n)])), opts.quick ? 60_000 : 300_000);
  try {
    // --- 1. reachability ------------------------------------------------------------------
    progress(`reachability: ${agentPairs.length} pair(s), ${routes.length} route(s), ${uplinks.length} uplink(s), ${vmPairs.length} VM pair(s)`);
    const reachFlows: FlowPlan[] = agentPairs.map((p) => {
      const count = p.reachable ? reachSamples(p.dropPct) : 10;
      const pps = Math.min(500, ppsUnder(p, SMALL, 0.5));
      return { src: p.from, dst: p.to, ip: p.toIp!, count, size: SMALL, pps };
    });
    const routeList = routes.filter((r) => r.src && r.dst && agents.has(r.src.node) && agents.has(r.dst.node));
    const routeFlows: FlowPlan[] = routeList.map((r) => ({ src: r.src!.node, dst: r.dst!.node, ip: r.dst!.ip, count: 10, size: SMALL, pps: 500 }));
    const gateway = uplinks.length ? await defaultGateway(runner, opts.ctx) : undefined;
    const [reachOut, routeOut, uplinkOut, vmReach] = await Promise.all([
      runFlows(agents, reachFlows, graceMs),
      runFlows(agents, routeFlows, graceMs),
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
    uplinks.forEach((u, i) => {
      const subject = u.bridge;
      const r = uplinkOut[i];
      if (!u.node) results.push({ property: 'uplink', subject, declared: 'reachable', measured: 'not measured: no running netns node with an address and link up takes its default route through this bridge', status: 'skip' });
      else if (!gateway) results.push({ property: 'uplink', subject, declared: 'reachable', measured: "not measured: the lab's host namespace has no IPv4 default gateway to ping", status: 'skip' });
      else if (!r) results.push({ property: 'uplink', subject, declared: 'reachable', measured: `not measured: node ${u.node} is not running`, status: 'skip' });
      else results.push({ property: 'uplink', subject, declared: 'reachable', measured: `${r.received}/${r.sent} ping replies from the default gateway ${gateway} (from ${u.node})`, status: r.received > 0 ? 'ok' : 'FAIL', values: { reachable: r.received > 0, sent: r.sent, received: r.received } });
    });
    if (opts.quick) return finish();

    // --- 2. light tests: drop, latency, jitter ------------------------------------------
    const open = agentPairs.filter((p) => p.reachable);
    const dropPairs = open.filter((p) => p.dropPct > 0);
    const latPairs = open.filter((p) => p.latencyMs !== undefined);
    const lightCount = dropPairs.length + latPairs.length;
    progress(`drop: ${dropPairs.length} pair(s); latency and jitter: ${latPairs.length} pair(s)`);
    const share = lightCount ? MAX_TOTAL_PPS / lightCount : MAX_TOTAL_PPS;
    const dropFlows: FlowPlan[] = dropPairs.map((p) => {
      const want = dropSamples(p.dropPct);
      const pps = Math.max(1, Math.min(want / 2.5, share, ppsUnder(p, SMALL, 0.5)));
      return { src: p.from, dst: p.to, ip: p.toIp!, count: Math.max(50, Math.min(want, Math.floor(pps * 4))), size: SMALL, pps };
    });
    const latFlows: FlowPlan[] = latPairs.map((p) => {
      const pps = Math.max(1, Math.min(200, share, ppsUnder(p, SMALL, 0.25)));
      return { src: p.from, dst: p.to, ip: p.toIp!, count: Math.max(20, Math.min(200, Math.floor(pps * 2))), size: SMALL, pps };
    });
    const light = await runFlows(agents, [...dropFlows, ...latFlows], graceMs);
    dropPairs.forEach((p, i) => {
      const o = light[i];
      const lost = o.send.sent - o.stats.received;
      const d = dropOk(lost, o.send.sent, p.dropPct);
      const noisy = o.rcvbuf > 0 && !d.ok;
      results.push({
        property: 'drop', subject: pairSubject(p), bridge: p.bridge, from: p.from, to: p.to, declared: `${fmtPct(p.dropPct)} %`,
        measured: `${fmtPct(d.measuredPct)} % (${lost}/${o.send.sent} lost; 99.99 % CI ${fmtPct(d.lowPct)}-${fmtPct(d.highPct)} %)${noisy ? `; the receiver overflowed (${o.rcvbuf} datagrams): not trustworthy` : ''}`,
        status: noisy ? 'skip' : d.ok ? 'ok' : 'FAIL', values: { declaredPct: p.dropPct, measuredPct: d.measuredPct, lowPct: d.lowPct, highPct: d.highPct, sent: o.send.sent, lost },
      });
    });
    latPairs.forEach((p, i) => {
      const o = light[dropPairs.length + i];
      const dl = o.stats.delay;
      const [lo, hi] = latencyBounds(p.latencyMs!);
      if (!dl) {
        results.push({ property: 'latency', subject: pairSubject(p), bridge: p.bridge, from: p.from, to: p.to, declared: fmtMs(p.latencyMs!), measured: 'nothing arrived', status: 'FAIL' });
        return;
      }
      results.push({
        property: 'latency', subject: pairSubject(p), bridge: p.bridge, from: p.from, to: p.to, declared: fmtMs(p.latencyMs!),
        measured: `${fmtMs(dl.median)} one-way median (${o.stats.received} samples, ${fmtMs(dl.min)}-${fmtMs(dl.max)}; ok within ${fmtMs(lo)}-${fmtMs(hi)})`,
        status: dl.median >= lo && dl.median <= hi ? 'ok' : 'FAIL', values: { declaredMs: p.latencyMs!, medianMs: dl.median, minMs: dl.min, maxMs: dl.max },
      });
      const j = jitterEstimate(dl.stdev);
      results.push({
        property: 'jitter', subject: pairSubject(p), bridge: p.bridge, from: p.from, to: p.to, declared: fmtMs(p.jitterMs ?? 0),
        measured: `${fmtMs(j)} (sqrt(3) x standard deviation ${fmtMs(dl.stdev)}; p5-p95 ${fmtMs(dl.p5)}-${fmtMs(dl.p95)})`,
        status: jitterOk(j, p.jitterMs ?? 0) ? 'ok' : 'FAIL', values: { declaredMs: p.jitterMs ?? 0, estimateMs: j, stdevMs: dl.stdev },
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
              results.push({
                ...base, measured: `${fmtRate(o.stats.rateBps)} (frames of ${size + FRAME} bytes, offered ${fmtRate(reached)}; ok within ${RATE_TOLERANCE * 100} %)`,
                status: rateOk(o.stats.rateBps, bw) ? 'ok' : 'FAIL', values: { declaredBps: bw, measuredBps: o.stats.rateBps, offeredBps: reached },
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
              ...base, measured: `${fmtPct(d.measuredPct)} % lost (${lost}/${o.send.sent} datagrams of ${s} bytes at ${fmtRate(reached)}; 99.99 % CI ${fmtPct(d.lowPct)}-${fmtPct(d.highPct)} %)`,
              status: d.ok ? 'ok' : 'FAIL', values: { declaredPct: p.dropPct, measuredPct: d.measuredPct, sent: o.send.sent, lost, offeredBps: reached },
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
    const order: PropertyKind[] = ['reach', 'drop', 'latency', 'jitter', 'rate', 'queue', 'route', 'uplink'];
    const key = (r: ProbeResult) => [r.bridge ?? '~', r.from ?? '', r.to ?? '', String(order.indexOf(r.property)).padStart(2, '0'), r.subject].join('\u0000');
    results.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
    return { lab: t.lab, ok: results.every((r) => r.status !== 'FAIL'), seconds: Math.round(performance.now() - t0) / 1000, results };
  }
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

export { DROP_Z };
