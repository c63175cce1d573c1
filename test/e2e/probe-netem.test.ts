/**
 * netem under `provium probe`, where the kernel has sch_netem (on CI: inside the QEMU test
 * guest, run by guest-netem.test.ts): latency and jitter measured against the file, and
 * netem's queue sized from bandwidth and latency (plan/realize.ts netemLimit), proven by
 * traffic: at 90 % of its bandwidth a long link (2 s, 3 Mbit/s) loses only its declared drop, and the same
 * link with netem's default queue of 1000 packets (set by hand) loses far more; the probe
 * FAILs exactly that property. The satellite-geo profile (300 ms +- 20 ms, 25 Mbit/s) is
 * checked with iperf3 and netem's own drop counter, at the highest rate the machine
 * reaches (the guest under TCG sends 10-20 Mbit/s of 458-byte datagrams).
 */
import assert from 'node:assert/strict';
import { labTest, kernelHasNetem, report, run, type Lab } from './helpers.js';

const SKIP = kernelHasNetem() ? undefined : 'kernel has no sch_netem: these tests run inside the QEMU test guest (guest-netem.test.ts)';

const FILE = `
  nodes: { a: { kind: netns }, b: { kind: netns }, c: { kind: netns } }
  bridges:
    lan:
      subnet: 10.82.0.0/24
      attach: [a, b, c]
      impairments:
        - { from: a, to: b, profile: satellite-geo }
        - { from: b, to: a, latency_ms: 20, jitter_ms: 5 }
        - { from: a, to: c, latency_ms: 2000, bandwidth_bps: 3000000, drop_pct: 1 }
`;

interface Res {
  property: string;
  subject: string;
  status: string;
  measured: string;
}

async function probe(lab: Lab, extra: string[] = []): Promise<{ code: number; results: Res[]; seconds: number; raw: string }> {
  const r = await lab.provium(['probe', '--json', ...extra], { timeoutMs: 300_000 });
  let doc: { results: Res[]; seconds: number };
  try {
    doc = JSON.parse(r.stdout);
  } catch {
    throw new Error(`probe --json printed no JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
  return { code: r.code, results: doc.results, seconds: doc.seconds, raw: r.stdout };
}

const line = (x: Res) => `${x.status} ${x.property} ${x.subject}: ${x.measured}`;

/** Properties whose measurement needs a machine that keeps time: netem's timers and HTB fire late on a starved one. */
const TIMING = new Set(['jitter', 'rate']);

/**
 * Whether the machine keeps time well enough for the timing properties: 100 loopback
 * echoes in a node's namespace, p95 RTT under 2 ms. The QEMU guest under TCG on a busy
 * host does not (its timers fire tens of ms late): then jitter and rate are reported,
 * not asserted, and the reason is printed.
 */
async function responsive(lab: Lab, t: { diagnostic: (m: string) => void }): Promise<boolean> {
  const r = await run(['ip', 'netns', 'exec', lab.ns('a'), 'ping', '-n', '-c', '100', '-i', '0.01', '127.0.0.1'], { timeoutMs: 30_000 });
  const rtts = [...r.stdout.matchAll(/ time=([\d.]+) ms/g)].map((m) => Number(m[1])).sort((x, y) => x - y);
  const p95 = rtts[Math.floor(0.95 * (rtts.length - 1))] ?? Infinity;
  const ok = p95 < 2;
  report(t, `machine timing: loopback RTT p95 ${p95} ms: ${ok ? 'timing properties asserted' : 'too slow to assert jitter and rate (reported only)'}`);
  return ok;
}

/** netem qdisc of a port: handle, parent, limit, and packets dropped so far. */
async function netemOf(lab: Lab, dev: string): Promise<{ handle: string; parent: string; limit: number; dropped: number; options: string }> {
  const r = await lab.inHost(['tc', '-s', 'qdisc', 'show', 'dev', dev]);
  const m = /qdisc netem (\S+) parent (\S+) limit (\d+) (.*)\n\s*Sent \d+ bytes \d+ pkt \(dropped (\d+)/.exec(r.stdout);
  assert.ok(m, `a netem qdisc on ${dev}:\n${r.stdout}`);
  return { handle: m[1], parent: m[2], limit: Number(m[3]), options: m[4].trim(), dropped: Number(m[5]) };
}

labTest('netem probe: a lab with latency, jitter, drop and bandwidth passes; netem queues are sized (satellite-geo: 2200 packets)', async (lab, t) => {
  lab.write(FILE);
  await lab.apply();
  const geo = await netemOf(lab, lab.port('b'));
  const long = await netemOf(lab, lab.port('c'));
  report(t, `netem limits: satellite-geo a->b ${geo.limit}, 2 s at 3 Mbit/s a->c ${long.limit}`);
  assert.equal(geo.limit, 2200);
  assert.equal(long.limit, 1650);
  const strict = await responsive(lab, t);
  const p = await probe(lab);
  for (const x of p.results) report(t, line(x));
  report(t, `probe took ${p.seconds} s`);
  const fails = p.results.filter((x) => x.status === 'FAIL' && (strict || !TIMING.has(x.property)));
  assert.deepEqual(fails.map(line), [], 'no property FAILs');
  const ok = (prop: string, subject: string) => p.results.some((x) => x.property === prop && x.subject === subject && x.status === 'ok');
  for (const [prop, subject] of [['latency', 'lan a -> b'], ['latency', 'lan b -> a'], ['latency', 'lan a -> c'], ['drop', 'lan a -> b'], ['drop', 'lan a -> c'], ...(strict ? [['jitter', 'lan a -> b'], ['queue', 'lan a -> c']] : [])]) {
    assert.ok(ok(prop, subject), `${prop} ${subject} was measured and is ok`);
  }
  if (strict) assert.equal(p.code, 0);
}, { skip: SKIP, timeoutMs: 400_000 });

labTest('netem probe: netem\'s default queue (1000 packets, set by hand) on a 2 s link FAILs the queue property, and only it', async (lab, t) => {
  lab.write(FILE);
  await lab.apply();
  const q = await netemOf(lab, lab.port('c'));
  const set = await lab.inHost(['tc', 'qdisc', 'change', 'dev', lab.port('c'), 'parent', q.parent, 'handle', q.handle, 'netem', ...q.options.split(/\s+/), 'limit', '1000']);
  assert.equal(set.code, 0, set.stderr);
  await responsive(lab, t);
  const p = await probe(lab, ['--only', 'a>c']);
  for (const x of p.results) report(t, line(x));
  assert.equal(p.code, 1, 'probe exits 1');
  // Timing properties (jitter, rate) are asserted on the unbroken lab above; here a stalled
  // guest timer on a 2 s link can fail jitter next to the queue (seen once: jitter a -> c
  // with the host busy), which says nothing about the broken queue.
  const fails = p.results.filter((x) => x.status === 'FAIL' && !TIMING.has(x.property));
  assert.deepEqual(fails.map((x) => `${x.property} ${x.subject}`), ['queue lan a -> c']);
  const after = await netemOf(lab, lab.port('c'));
  report(t, `netem on a->c dropped ${after.dropped} packets with limit 1000`);
  assert.ok(after.dropped > 0);
}, { skip: SKIP, timeoutMs: 300_000 });

labTest('netem queue: satellite-geo at the highest rate iperf3 reaches with 458-byte datagrams: netem drops nothing with provium\'s limit, and drops with 1000', async (lab, t) => {
  lab.write(FILE);
  await lab.apply();
  const strict = await responsive(lab, t);
  const ip = lab.ip('b', 'lan');
  const blast = async (port: number) => {
    const srv = run(['ip', 'netns', 'exec', lab.ns('b'), 'iperf3', '-s', '-1', '-p', String(port)], { timeoutMs: 60_000 });
    await new Promise((r) => setTimeout(r, 1000));
    const c = await run(['ip', 'netns', 'exec', lab.ns('a'), 'iperf3', '-u', '-c', ip, '-p', String(port), '-b', '22.5M', '-l', '458', '-t', '4', '-J'], { timeoutMs: 60_000 });
    await srv;
    const j = JSON.parse(c.stdout) as { end: { sum: { packets: number; seconds: number } } };
    return { pps: j.end.sum.packets / j.end.sum.seconds, packets: j.end.sum.packets };
  };
  const before = await netemOf(lab, lab.port('b'));
  const { pps, packets } = await blast(5301);
  const sized = await netemOf(lab, lab.port('b'));
  const lost = sized.dropped - before.dropped;
  report(t, `limit ${sized.limit}: ${pps.toFixed(0)} datagrams/s (${((pps * 500 * 8) / 1e6).toFixed(1)} Mbit/s of frames) into 300 +- 20 ms: netem dropped ${lost} of ${packets}`);
  // The sized queue holds the link: nothing is dropped on a quiet machine (measured: 0 of
  // ~22,500). A guest whose virtual CPU stalls (a busy host) dequeues late and can overflow
  // it by a little (measured once: 193, 0.9 %); netem's default queue drops about half.
  await lab.inHost(['tc', 'qdisc', 'change', 'dev', lab.port('b'), 'parent', sized.parent, 'handle', sized.handle, 'netem', ...sized.options.split(/\s+/), 'limit', '1000']);
  const { pps: pps2, packets: packets2 } = await blast(5302);
  const small = await netemOf(lab, lab.port('b'));
  const lost2 = small.dropped - sized.dropped;
  report(t, `limit 1000: ${pps2.toFixed(0)} datagrams/s: netem dropped ${lost2} of ${packets2}`);
  // When the host is so busy that even the sized queue overflows (measured: 1927 of 23,396,
  // 8 %, with other builds running; 3479 of 24,236, 14 %, against the default queue's 46 %),
  // the default queue still loses far more. A stalled guest adds loss to both queues, so
  // the sizing must cut the loss to a quarter, or avoid at least half of what a 1000-packet
  // queue loses by its size alone at this rate (1 - 1000 / the packets held for ~300 ms): a
  // queue left at 1000 (or sized at half) cannot do either.
  if (strict) {
    const bySize = Math.max(0, 1 - 1000 / (pps2 * 0.3));
    const [rate, rate2] = [lost / packets, lost2 / packets2];
    assert.ok(rate <= 0.02 || (lost2 > 0 && (rate <= rate2 / 4 || rate <= rate2 - bySize / 2)),
      `netem dropped ${lost} of ${packets} datagrams with the sized queue (at most 2 %, a quarter of the default queue's ${lost2} of ${packets2}, or ${(100 * (rate2 - bySize / 2)).toFixed(1)} %: half of the ${(100 * bySize).toFixed(1)} % a 1000-packet queue loses by its size below its ${(100 * rate2).toFixed(1)} %)`);
  }
  if (pps2 * 0.3 > 1200) assert.ok(small.dropped - sized.dropped > 0, 'netem\'s default queue drops at this rate');
  else report(t, `the machine reached only ${pps2.toFixed(0)} datagrams/s: 1000 packets are not exceeded in 300 ms, nothing to show`);
}, { skip: SKIP, timeoutMs: 200_000 });
