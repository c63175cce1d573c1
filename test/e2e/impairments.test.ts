/**
 * Impairments measured with traffic: drop rates with 2,000 UDP datagrams per
 * direction, bandwidth with iperf3 (TCP, receiver rate over 3 s), latency with ping
 * when the kernel has netem; and the error path when it has not.
 */
import assert from 'node:assert/strict';
import { labTest, udpProbe, iperf, ping, report, mbit, kernelHasNetem, listNetns, isReadOnly, type Lab } from './helpers.js';

const LOSS_N = 2000;

/** Loss in percent of LOSS_N datagrams from -> to (ip of to). */
async function udpLoss(lab: Lab, from: string, to: string, ip: string): Promise<number> {
  const r = await udpProbe(lab.ns(from), lab.ns(to), ip, LOSS_N, { burst: 20, gapMs: 1 });
  assert.equal(r.sent, LOSS_N, `all ${LOSS_N} datagrams ${from}->${to} were sent`);
  return (100 * (LOSS_N - r.received)) / LOSS_N;
}

labTest('drop rate: per-pair drop_pct 20 on a->b loses ~20 % (other pairs ~0); a whole-bridge drop_pct 10 applies to the other pairs', async (lab, t) => {
  const file = (whole: string) => `
    nodes: { a: { kind: netns }, b: { kind: netns }, c: { kind: netns } }
    bridges:
      lan:
        subnet: 10.55.0.0/24
        attach: [a, b, c]
        impairments:
          ${whole}
          - { from: a, to: b, drop_pct: 20 }
  `;
  lab.write(file(''));
  const ip = lab.ips('lan');
  await lab.apply();
  const ab = await udpLoss(lab, 'a', 'b', ip.b);
  const cb = await udpLoss(lab, 'c', 'b', ip.b);
  const ba = await udpLoss(lab, 'b', 'a', ip.a);
  report(t, `pair only: a->b ${ab.toFixed(2)} % loss, c->b ${cb.toFixed(2)} %, b->a ${ba.toFixed(2)} % (n=${LOSS_N} UDP datagrams each)`);
  assert.ok(ab >= 15 && ab <= 25, `a->b loss ${ab} % within 15-25 %`);
  assert.ok(cb <= 1, `c->b loss ${cb} % ~0`);
  assert.ok(ba <= 1, `b->a loss ${ba} % ~0 (the drop is directional)`);

  lab.write(file('- { drop_pct: 10 }'));
  await lab.apply();
  const ab2 = await udpLoss(lab, 'a', 'b', ip.b);
  const cb2 = await udpLoss(lab, 'c', 'b', ip.b);
  const ba2 = await udpLoss(lab, 'b', 'a', ip.a);
  report(t, `with whole-bridge 10 %: a->b ${ab2.toFixed(2)} % loss, c->b ${cb2.toFixed(2)} %, b->a ${ba2.toFixed(2)} %`);
  assert.ok(ab2 >= 15 && ab2 <= 25, `a->b loss ${ab2} % still 15-25 % (the pair's own drop_pct overrides the whole-bridge one)`);
  assert.ok(cb2 >= 6 && cb2 <= 14, `c->b loss ${cb2} % within 6-14 % (whole-bridge 10 %)`);
  assert.ok(ba2 >= 6 && ba2 <= 14, `b->a loss ${ba2} % within 6-14 % (whole-bridge 10 %)`);
});

labTest('bandwidth: per-pair a->b 1 Mbit/s and a->c 5 Mbit/s at once, whole-bridge 8 Mbit/s on other pairs, unshaped bridge fast', async (lab, t) => {
  // b and d are also on "raw" (no impairments): eth0 = lan, eth1 = raw (bridges in name order).
  lab.write(`
    nodes: { a: { kind: netns }, b: { kind: netns }, c: { kind: netns }, d: { kind: netns } }
    bridges:
      lan:
        subnet: 10.60.0.0/24
        attach: [a, b, c, d]
        impairments:
          - { bandwidth_bps: 8000000 }
          - { from: a, to: b, bandwidth_bps: 1000000 }
          - { from: a, to: c, bandwidth_bps: 5000000 }
      raw:
        subnet: 10.61.0.0/24
        attach: [b, d]
  `);
  const lan = lab.ips('lan');
  await lab.apply();
  const [ab, ac] = await Promise.all([iperf(lab.ns('a'), lab.ns('b'), lan.b), iperf(lab.ns('a'), lab.ns('c'), lan.c)]);
  const bd = await iperf(lab.ns('b'), lab.ns('d'), lan.d);
  const raw = await iperf(lab.ns('b'), lab.ns('d'), lab.ip('d', 'raw'));
  report(t, `a->b ${mbit(ab)} (1 Mbit/s), a->c ${mbit(ac)} (5 Mbit/s) concurrently; b->d ${mbit(bd)} (whole-bridge 8 Mbit/s); b->d on unshaped bridge ${mbit(raw)}`);
  const within = (got: number, want: number) => Math.abs(got - want) / want <= 0.15;
  assert.ok(within(ab, 1e6), `a->b ${mbit(ab)} within 15 % of 1 Mbit/s`);
  assert.ok(within(ac, 5e6), `a->c ${mbit(ac)} within 15 % of 5 Mbit/s`);
  assert.ok(within(bd, 8e6), `b->d ${mbit(bd)} within 15 % of 8 Mbit/s (whole bridge)`);
  assert.ok(raw > 100e6, `b->d on the unshaped bridge ${mbit(raw)} > 100 Mbit/s`);
}, { timeoutMs: 180_000 });

const NETEM_FILE = `
    nodes: { a: { kind: netns }, b: { kind: netns } }
    bridges:
      lan:
        subnet: 10.65.0.0/24
        attach: [a, b]
        impairments:
          - { from: a, to: b, latency_ms: 20 }
          - { from: b, to: a, latency_ms: 20 }
`;

labTest(
  'netem missing: a file with latency_ms fails plan and apply, names sch_netem and a fix, runs no changing command, leaves nothing',
  async (lab) => {
    lab.write(NETEM_FILE);
    const before = listNetns();
    const p = await lab.provium(['plan']);
    assert.equal(p.code, 1, `plan exits 1; got ${p.code}\n${p.stdout}${p.stderr}`);
    const out = p.stdout + p.stderr;
    assert.match(out, /sch_netem/, 'the message names sch_netem');
    assert.match(out, /modprobe sch_netem|CONFIG_NET_SCH_NETEM/, 'the message says how to fix it');

    const a = await lab.provium(['apply', '--auto-approve']);
    assert.equal(a.code, 1, `apply exits 1; got ${a.code}\n${a.stdout}${a.stderr}`);
    assert.match(a.stdout + a.stderr, /sch_netem/);

    const trace = lab.trace();
    assert.ok(trace.length > 0, 'plan and apply read the host (PROVIUM_TRACE has lines)');
    const writes = trace.filter((l) => !isReadOnly(l));
    assert.deepEqual(writes.map((w) => w.argv.join(' ')), [], 'only reading host commands ran (no -batch writes, no nft -f)');
    assert.deepEqual(listNetns().filter((n) => n.startsWith(`pv-${lab.name}-`)), [], 'no node namespace exists');
    assert.deepEqual(before.filter((n) => n.startsWith(`pv-${lab.name}-`)), []);
    const links = JSON.parse((await lab.inHost(['ip', '-j', 'link', 'show'])).stdout) as { ifname: string }[];
    assert.deepEqual(links.map((l) => l.ifname), ['lo'], 'the host namespace has only lo');
    const nft = JSON.parse((await lab.inHost(['nft', '-j', 'list', 'ruleset'])).stdout) as { nftables: object[] };
    assert.deepEqual(nft.nftables.filter((o) => !('metainfo' in o)), [], 'no nftables objects');
  },
  { skip: kernelHasNetem() ? 'kernel has sch_netem: the missing-netem error path cannot be exercised on this host' : undefined },
);

labTest(
  'latency: latency_ms 20 each way gives ~40 ms ping RTT',
  async (lab, t) => {
    lab.write(NETEM_FILE);
    await lab.apply();
    const p = await ping(lab.ns('a'), lab.ip('b', 'lan'), 10, 0.2);
    report(t, `RTT a<->b ${p.avgMs} ms with latency_ms 20 each way`);
    assert.equal(p.received, 10);
    assert.ok(p.avgMs >= 38 && p.avgMs <= 50, `average RTT ${p.avgMs} ms ~ 40 ms`);
  },
  { skip: kernelHasNetem() ? undefined : 'kernel has no sch_netem: latency is tested in a QEMU guest (issue 3)' },
);

labTest(
  'latency: whole-bridge latency_ms 10 plus per-pair a->b latency_ms 30 jitter_ms 5 (override), measured by RTT; changing it is one change',
  async (lab, t) => {
    const file = (ab: number) => `
      nodes: { a: { kind: netns }, b: { kind: netns }, c: { kind: netns } }
      bridges:
        lan:
          subnet: 10.66.0.0/24
          attach: [a, b, c]
          impairments:
            - { latency_ms: 10 }
            - { from: a, to: b, latency_ms: ${ab}, jitter_ms: 5, bandwidth_bps: 20000000 }
    `;
    lab.write(file(30));
    const ip = lab.ips('lan');
    await lab.apply();
    const ab = await ping(lab.ns('a'), ip.b, 20, 0.1);
    const ac = await ping(lab.ns('a'), ip.c, 20, 0.1);
    report(t, `RTT a<->b ${ab.avgMs} ms (want ~40: 30 a->b + 10 b->a), a<->c ${ac.avgMs} ms (want ~20)`);
    assert.equal(ab.received, 20);
    assert.equal(ac.received, 20);
    assert.ok(ab.avgMs >= 36 && ab.avgMs <= 48, `a<->b average RTT ${ab.avgMs} ms ~ 40 ms`);
    assert.ok(ac.avgMs >= 19 && ac.avgMs <= 27, `a<->c average RTT ${ac.avgMs} ms ~ 20 ms`);

    lab.write(file(50));
    const plan = await lab.planJson();
    assert.deepEqual(plan.changes.map((c) => c.address), ['bridge.lan.impairment[a>b]']);
    assert.equal(plan.commands.length, 1, 'one tc batch');
    assert.match(plan.commands[0].stdin ?? '', /^qdisc change dev \S+ parent \S+ handle \S+ netem delay 50ms 5ms limit 1000\n$/);
    await lab.apply();
    const ab2 = await ping(lab.ns('a'), ip.b, 20, 0.1);
    report(t, `after the change: RTT a<->b ${ab2.avgMs} ms (want ~60)`);
    assert.ok(ab2.avgMs >= 56 && ab2.avgMs <= 68, `a<->b average RTT ${ab2.avgMs} ms ~ 60 ms`);
    assert.equal((await lab.planCode()).code, 0, 'plan empty after apply');
  },
  { skip: kernelHasNetem() ? undefined : 'kernel has no sch_netem: latency is tested in a QEMU guest (issue 3)' },
);
