/**
 * `provium probe` on this kernel (no netem): a lab with every property it can realize
 * passes; the same lab broken by hand (one drop element deleted with nft, one class rate
 * changed with tc) FAILs exactly those two properties; --quick and --only; exit codes;
 * no agent process is left. netem (latency, jitter, queue sizing) is probed in the QEMU
 * test guest: probe-netem.test.ts. Durations are reported in the test output.
 */
import assert from 'node:assert/strict';
import { labTest, makeUpstream, report, run, type Lab } from './helpers.js';
import { GUEST, CTL, vmSkip, waitVm } from './guest.js';

interface Res {
  property: string;
  subject: string;
  status: 'ok' | 'FAIL' | 'skip';
  declared: string;
  measured: string;
}

async function probe(lab: Lab, args: string[] = []): Promise<{ code: number; results: Res[]; seconds: number; ms: number }> {
  const r = await lab.provium(['probe', '--json', ...args], { timeoutMs: 120_000 });
  let doc: { results: Res[]; seconds: number; ok: boolean };
  try {
    doc = JSON.parse(r.stdout);
  } catch {
    throw new Error(`probe --json printed no JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
  assert.equal(doc.ok, r.code === 0, 'ok and the exit code agree');
  return { code: r.code, results: doc.results, seconds: doc.seconds, ms: r.ms };
}

const key = (x: Res) => `${x.property} ${x.subject}`;
const line = (x: Res) => `${x.status} ${key(x)}: declared ${x.declared}, measured ${x.measured}`;

/** Agents still running (there must be none after a probe). */
async function agents(): Promise<string[]> {
  const r = await run(['pgrep', '-a', '-f', 'dist/src/probe/agent.js']);
  return r.stdout.split('\n').filter(Boolean);
}

const LAB = `
  nodes: { a: { kind: netns }, b: { kind: netns }, c: { kind: netns }, d: { kind: netns }, e: { kind: netns }, x: { kind: netns } }
  bridges:
    lan:
      subnet: 10.87.0.0/24
      attach: [a, b, c, d, { node: e, link: down }]
      partitions:
        - { from: a, to: c }
        - [b, d]
      isolate: [e]
      impairments:
        - { drop_pct: 3 }
        - { from: a, to: b, drop_pct: 10, bandwidth_bps: 2000000 }
        - { from: c, to: b, bandwidth_bps: 4000000 }
        - { from: b, to: a, drop_pct: 100 }
      routes: [data]
      uplink: true
    data:
      subnet: 10.88.0.0/24
      attach: [x]
      impairments:
        - { bandwidth_bps: 8000000 }
`;

labTest('probe: a lab with every property this kernel realizes passes (partitions both ways, isolation, link down, drop, bandwidth, routes, uplink); broken by hand, it FAILs exactly what was broken', async (lab, t) => {
  lab.write(LAB);
  await makeUpstream(lab);
  await lab.apply();
  const before = await agents();

  const p = await probe(lab);
  for (const x of p.results) report(t, line(x));
  report(t, `full probe: ${p.seconds} s (wall with provium's start-up ${(p.ms / 1000).toFixed(1)} s), ${p.results.length} properties`);
  assert.deepEqual(p.results.filter((x) => x.status !== 'ok').map(line), [], 'every property ok');
  assert.equal(p.code, 0);
  const has = (k: string) => p.results.some((x) => key(x) === k);
  for (const k of [
    'reach lan a -> b', 'reach lan a -> c', 'reach lan c -> a', 'reach lan b -> d', 'reach lan d -> b', 'reach lan a -> e', 'reach lan e -> a', 'reach lan b -> a',
    'drop lan a -> b', 'drop lan c -> a', 'drop lan a -> d', 'rate lan a -> b', 'rate lan c -> b',
    'route data -> lan', 'route lan -> data', 'uplink lan',
  ]) assert.ok(has(k), `property ${k} was measured`);
  const cut = (k: string) => p.results.find((x) => key(x) === k)!.declared;
  assert.match(cut('reach lan a -> c'), /partition a -> c/);
  assert.match(cut('reach lan d -> b'), /partition b <-> d/);
  assert.match(cut('reach lan e -> a'), /e link down/);
  assert.match(cut('reach lan b -> a'), /drop 100 %/);
  assert.deepEqual(await agents(), before, 'no agent left running');

  // Quick: reachability only.
  const q = await probe(lab, ['--quick']);
  report(t, `--quick: ${q.seconds} s (wall ${(q.ms / 1000).toFixed(1)} s), ${q.results.length} properties`);
  assert.equal(q.code, 0);
  assert.deepEqual([...new Set(q.results.map((x) => x.property))].sort(), ['reach', 'route', 'uplink']);

  // Broken by hand: the whole-bridge drop element towards a deleted (one per receiving port:
  // c -> a and d -> a lose their 3 %; b -> a has its own 100 %), and a -> b's class at 1 Mbit/s instead of 2.
  const nft = JSON.parse((await lab.inHost(['nft', '-j', 'list', 'set', 'bridge', `provium_${lab.name}`, 'loss_port'])).stdout) as { nftables: { set?: { elem?: { elem: { val: { concat: [string, { range: [number, number] }] } } }[] } }[] };
  const el = nft.nftables.find((o) => o.set)!.set!.elem!.find((e) => e.elem.val.concat[0] === lab.port('a'))!;
  const [, r] = el.elem.val.concat;
  const del = await lab.inHost(['nft', 'delete', 'element', 'bridge', `provium_${lab.name}`, 'loss_port', `{ "${lab.port('a')}" . ${r.range[0]}-${r.range[1]} }`]);
  assert.equal(del.code, 0, del.stderr);
  const classes = (await lab.inHost(['tc', 'class', 'show', 'dev', lab.port('b')])).stdout;
  const m = /class htb (\S+) parent (\S+) .*rate 2Mbit/.exec(classes);
  assert.ok(m, `a->b's 2 Mbit/s class on b's port:\n${classes}`);
  const chg = await lab.inHost(['tc', 'class', 'change', 'dev', lab.port('b'), 'parent', m[2], 'classid', m[1], 'htb', 'rate', '1mbit', 'ceil', '1mbit']);
  assert.equal(chg.code, 0, chg.stderr);

  const broken = await probe(lab);
  for (const x of broken.results.filter((y) => y.status !== 'ok')) report(t, `broken: ${line(x)}`);
  assert.equal(broken.code, 1, 'probe exits 1');
  assert.deepEqual(broken.results.filter((x) => x.status !== 'ok').map(key).sort(), ['drop lan c -> a', 'drop lan d -> a', 'rate lan a -> b'], 'exactly the broken properties FAIL, nothing else');

  // --only: just the pairs named.
  const only = await probe(lab, ['--only', 'c>a']);
  assert.deepEqual(only.results.map(key).sort(), ['drop lan c -> a', 'reach lan c -> a']);
  assert.equal(only.code, 1);
  assert.deepEqual(await agents(), before, 'no agent left running');
}, { timeoutMs: 240_000 });

labTest('probe through routers: router pairs measured, inbound on a NAT router\'s upstream reported as not measured, a path through each router (NAT: reachable; firewall limiting outbound UDP: cut); forwarding turned off by hand FAILs that path only', async (lab, t) => {
  lab.write(`
  nodes:
    h: { kind: router, nat: home }
    k: { kind: router, nat: corporate, firewall: corporate }
    al: { kind: netns }
    ca: { kind: netns }
    st: { kind: netns }
  bridges:
    wan: { subnet: 198.51.100.0/24, attach: [h, k, st], impairments: [{ drop_pct: 2 }] }
    hl: { subnet: 192.168.1.0/24, gateway: h, attach: [h, al] }
    cl: { subnet: 10.20.0.0/24, gateway: k, attach: [k, ca] }
`);
  await lab.apply();
  const p = await probe(lab);
  for (const x of p.results) report(t, line(x));
  report(t, `probe through routers: ${p.seconds} s, ${p.results.length} properties`);
  assert.deepEqual(p.results.filter((x) => x.status === 'FAIL').map(line), [], 'nothing FAILs');
  const get = (k: string) => p.results.find((x) => key(x) === k);
  assert.equal(get('gateway h: hl -> wan')?.status, 'ok');
  assert.match(get('gateway h: hl -> wan')!.declared, /reachable \(mapping endpoint-independent/);
  assert.equal(get('gateway k: cl -> wan')?.status, 'ok');
  assert.match(get('gateway k: cl -> wan')!.declared, /cut \(k's firewall allows outbound UDP to port 53 only\)/);
  assert.equal(get('reach wan st -> h')?.status, 'skip');
  assert.match(get('reach wan st -> h')!.measured, /h's NAT drops unsolicited UDP/);
  for (const k of ['reach wan h -> st', 'reach hl al -> h', 'reach hl h -> al', 'drop wan h -> st', 'drop wan k -> st']) assert.equal(get(k)?.status, 'ok', `${k} measured ok`);

  // Broken by hand: h forwards nothing.
  assert.equal((await run(['ip', 'netns', 'exec', lab.ns('h'), 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=0'])).code, 0);
  const broken = await probe(lab, ['--quick']);
  for (const x of broken.results.filter((y) => y.status === 'FAIL')) report(t, `broken: ${line(x)}`);
  assert.equal(broken.code, 1);
  assert.deepEqual(broken.results.filter((x) => x.status === 'FAIL').map(key), ['gateway h: hl -> wan'], 'only the path through h FAILs');
}, { timeoutMs: 120_000 });

labTest('probe: 10 nodes with whole-bridge drop and bandwidth: 90 pairs and 10 queues measured (durations reported; the goals are in npm run bench); a lab that is not applied is an error naming apply', async (lab, t) => {
  const nodes = Array.from({ length: 10 }, (_, i) => `n${i}`);
  lab.write(`
    nodes: { ${nodes.map((n) => `${n}: { kind: netns }`).join(', ')} }
    bridges:
      lan:
        subnet: 10.89.0.0/24
        attach: [${nodes.join(', ')}]
        impairments:
          - { drop_pct: 2, bandwidth_bps: 20000000 }
  `);
  const none = await lab.provium(['probe']);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /not applied[\s\S]*provium .*apply/);
  await lab.apply();
  const q = await probe(lab, ['--quick']);
  report(t, `10 nodes, --quick: ${q.seconds} s (wall ${(q.ms / 1000).toFixed(1)} s), ${q.results.length} properties`);
  assert.equal(q.code, 0, q.results.filter((x) => x.status !== 'ok').map(line).join('\n'));
  const p = await probe(lab);
  report(t, `10 nodes, full: ${p.seconds} s (wall ${(p.ms / 1000).toFixed(1)} s), ${p.results.length} properties: ${['reach', 'drop', 'rate'].map((k) => `${p.results.filter((x) => x.property === k).length} ${k}`).join(', ')}`);
  for (const x of p.results.filter((y) => y.status !== 'ok')) report(t, line(x));
  assert.equal(p.code, 0);
  assert.equal(p.results.filter((x) => x.property === 'drop').length, 90, 'drop measured on all 90 directed pairs');
  assert.equal(p.results.filter((x) => x.property === 'rate').length, 10, 'bandwidth measured into each member');
}, { timeoutMs: 240_000 });

labTest('probe: pairs with a VM are measured by ping round trip (the guest answers); a partition on either direction cuts the round trip; VM-to-VM pairs are reported as not measured', async (lab, t) => {
  const vm = (ip: string) => `{ kind: qemu, kernel: ${GUEST}vmlinux, initrd: ${GUEST}initrd.gz, append: "console=ttyS0 quiet pv.ip=${ip}/24 pv.ctl=${CTL}", memory_mb: 160 }`;
  lab.write(`
    nodes:
      a: { kind: netns }
      b: { kind: netns }
      v: ${vm('10.93.0.11')}
      w: ${vm('10.93.0.12')}
    bridges:
      lan:
        subnet: 10.93.0.0/24
        attach: [a, b, { node: v, ip: 10.93.0.11/24 }, { node: w, ip: 10.93.0.12/24 }]
        partitions: [{ from: v, to: b }]
  `);
  await lab.apply();
  await waitVm(lab.hostNs, '10.93.0.11', 90_000);
  await waitVm(lab.hostNs, '10.93.0.12', 90_000);
  const p = await probe(lab);
  for (const x of p.results) report(t, line(x));
  report(t, `probe with 2 VMs: ${p.seconds} s`);
  const st = (k: string) => p.results.find((x) => key(x) === k);
  assert.equal(st('reach lan a <-> v (round trip)')?.status, 'ok');
  assert.equal(st('reach lan a <-> v (round trip)')?.declared, 'reachable');
  assert.equal(st('reach lan b <-> v (round trip)')?.status, 'ok');
  assert.match(st('reach lan b <-> v (round trip)')!.declared, /partition v -> b/);
  assert.equal(st('reach lan v -> w')?.status, 'skip');
  assert.equal(p.code, 0);
}, { skip: vmSkip(), timeoutMs: 240_000 });
