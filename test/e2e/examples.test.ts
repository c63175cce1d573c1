/**
 * The files in examples/, applied as users apply them and proven with traffic. Each
 * test loads an example, gives it the test's unique lab name (the `lab:` line is
 * replaced; relative VM paths are made absolute, since the test's copy lives in a
 * temporary directory), applies it, checks the pattern's point (UDP datagram counts
 * each way, iperf3 rates, loss rates, pings), and then does the pattern's second step
 * (heal, rejoin, change) where it has one, by editing the file and applying again.
 *
 * Node addresses are read from the written file with the real loader (Lab.ips), so they
 * are the ones provium allocates; test/unit/addresses.test.ts checks that the examples'
 * comments and examples/README.md state the same ones.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readFileSync, readdirSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDocument, type Document } from 'yaml';
import { labTest, udpCount, udpProbe, ping, iperf, run, report, mbit, makeUpstream, pool, PROVIUM_BIN, type Lab } from './helpers.js';
import { vmSkip, waitVm, vmPing } from './guest.js';

const EXAMPLES = fileURLToPath(new URL('../../../examples/', import.meta.url));

/** Datagrams per direction for partition checks. */
const N = 20;

/** An example file, editable as a YAML document (comments kept), written into a lab. */
class Example {
  readonly doc: Document;

  constructor(
    readonly lab: Lab,
    readonly name: string,
  ) {
    this.doc = parseDocument(readFileSync(`${EXAMPLES}${name}`, 'utf8'));
    // VM files are relative to the example; the lab's copy is elsewhere.
    const nodes = (this.doc.toJS() as { nodes: Record<string, { kind: string; kernel?: string; initrd?: string; disk?: string }> }).nodes;
    for (const [n, spec] of Object.entries(nodes)) {
      for (const key of ['kernel', 'initrd', 'disk'] as const) {
        const p = spec[key];
        if (p && !isAbsolute(p)) this.doc.setIn(['nodes', n, key], resolve(EXAMPLES, p));
      }
    }
  }

  /** Writes the (edited) example into the lab's file under the lab's unique name. */
  write(): string {
    const text = this.doc.toString();
    assert.match(text, /^lab:/m, `${this.name} has a lab: line`);
    return this.lab.write(text.replace(/^lab:.*\n/m, ''));
  }

  /** Writes and applies. */
  async apply(): Promise<void> {
    this.write();
    await this.lab.apply();
  }
}

/** UDP counts (out of N) for every directed pair of the given nodes, as "x->y": n. */
async function udpMatrix(lab: Lab, ip: Record<string, string>): Promise<Record<string, number>> {
  const pairs: [string, string][] = [];
  for (const x of Object.keys(ip)) for (const y of Object.keys(ip)) if (x !== y) pairs.push([x, y]);
  // Four at once: the machine has 2 cores, and each probe is two node processes.
  const counts = await pool(pairs.map(([x, y]) => () => udpCount(lab.ns(x), lab.ns(y), ip[y], N)), 4);
  return Object.fromEntries(pairs.map(([x, y], i) => [`${x}->${y}`, counts[i]]));
}

/** Asserts every pair of the matrix: `blocked(x, y)` ones received 0, the others all N. */
function expectMatrix(m: Record<string, number>, blocked: (x: string, y: string) => boolean, what: string): void {
  const wrong = Object.entries(m).filter(([pair, n]) => {
    const [x, y] = pair.split('->');
    return n !== (blocked(x, y) ? 0 : N);
  });
  assert.deepEqual(wrong, [], `${what}: pairs with an unexpected count (want 0 if blocked, ${N} otherwise): ${JSON.stringify(m)}`);
}

// ---------------------------------------------------------------------------

test('examples: every examples/*.yaml validates and has a paragraph in examples/README.md', async () => {
  const files = readdirSync(EXAMPLES).filter((f) => f.endsWith('.yaml')).sort();
  for (const want of ['split-brain', 'one-way', 'slow-link', 'lossy-link', 'isolated-node', 'uplink', 'routed', 'vm-lab', 'etcd', 'etcd-scenario', 'latency-regions']) {
    assert.ok(files.includes(`${want}.yaml`), `examples/${want}.yaml exists`);
  }
  const readme = readFileSync(`${EXAMPLES}README.md`, 'utf8');
  for (const f of files) {
    // A scenario that needs variables names them in its comments (`--var LEADER=e1`).
    const vars = [...readFileSync(`${EXAMPLES}${f}`, 'utf8').matchAll(/^#.*?((?:--var [A-Za-z_]\w*=\S+ ?)+)/gm)].flatMap((m) => m[1].trim().split(/\s+/));
    const r = await run(['node', PROVIUM_BIN, 'validate', `${EXAMPLES}${f}`, ...vars], { timeoutMs: 30_000, env: { NO_COLOR: '1' } });
    assert.equal(r.code, 0, `provium validate examples/${f}: exit ${r.code}\n${r.stdout}${r.stderr}`);
    if (f !== 'basic.yaml' && f !== 'full.yaml') assert.ok(readme.includes(f), `examples/README.md mentions ${f}`);
  }
});

labTest('example split-brain.yaml: {n1,n2} and {n3,n4,n5} are cut from each other both ways, each side flows; healing restores all 20 pairs', async (lab, t) => {
  const ex = new Example(lab, 'split-brain.yaml');
  const minority = new Set(['n1', 'n2']);
  await ex.apply();
  const ip = lab.ips('lan');
  assert.deepEqual(Object.keys(ip), ['n1', 'n2', 'n3', 'n4', 'n5']);
  const split = await udpMatrix(lab, ip);
  const isCross = (pair: string) => minority.has(pair.split('->')[0]) !== minority.has(pair.split('->')[1]);
  const list = (keep: (pair: string) => boolean) => Object.entries(split).filter(([p]) => keep(p)).map(([p, n]) => `${p} ${n}`).join(', ');
  report(t, `split: cross pairs ${list(isCross)}; same-side pairs ${list((p) => !isCross(p))} (of ${N})`);
  expectMatrix(split, (x, y) => minority.has(x) !== minority.has(y), 'split brain');

  // Heal: remove the partitions.
  ex.doc.deleteIn(['bridges', 'lan', 'partitions']);
  ex.write();
  const plan = await lab.planJson();
  assert.equal(plan.changes.filter((c) => c.address.startsWith('bridge.lan.partition[')).length, 6, `the heal removes the six partitions: ${JSON.stringify(plan.changes.map((c) => `${c.action} ${c.address}`))}`);
  assert.deepEqual(plan.commands.map((c) => c.label), ['nftables transaction'], 'the heal is one nftables transaction');
  await lab.apply();
  const healed = await udpMatrix(lab, ip);
  report(t, `healed: ${Object.values(healed).filter((n) => n === N).length}/20 directed pairs deliver ${N}/${N}`);
  expectMatrix(healed, () => false, 'after heal');
  assert.equal((await lab.planCode()).code, 0, 'plan is empty after the heal');
});

labTest('example one-way.yaml: a->b is dropped, b->a flows, c talks to both', async (lab, t) => {
  const ex = new Example(lab, 'one-way.yaml');
  await ex.apply();
  const ip = lab.ips('lan');
  assert.deepEqual(Object.keys(ip), ['a', 'b', 'c']);
  const m = await udpMatrix(lab, ip);
  report(t, `one-way a->b: ${JSON.stringify(m)}`);
  expectMatrix(m, (x, y) => x === 'a' && y === 'b', 'one-way');
  // A ping from b reaches a, but a's replies are dropped: nothing comes back either way.
  assert.equal((await ping(lab.ns('b'), ip.a, 3, 0.1)).received, 0, 'ping b -> a gets no reply (the reply travels a->b)');
});

labTest('example slow-link.yaml: a->b runs at 2 Mbit/s (within 15 %), b->a unshaped; changing the rate to 5 Mbit/s is one change', async (lab, t) => {
  const ex = new Example(lab, 'slow-link.yaml');
  await ex.apply();
  const ip = lab.ips('lan');
  const ab = await iperf(lab.ns('a'), lab.ns('b'), ip.b, 3);
  const ba = await iperf(lab.ns('b'), lab.ns('a'), ip.a, 2);
  report(t, `a->b ${mbit(ab)} (want 2 Mbit/s, ${((100 * (ab - 2e6)) / 2e6).toFixed(1)} %); b->a ${mbit(ba)} (unshaped)`);
  assert.ok(Math.abs(ab - 2e6) / 2e6 <= 0.15, `a->b ${mbit(ab)} within 15 % of 2 Mbit/s`);
  assert.ok(ba > 50e6, `b->a ${mbit(ba)} is unshaped (> 50 Mbit/s)`);

  ex.doc.setIn(['bridges', 'lan', 'impairments', 0, 'bandwidth_bps'], 5000000);
  ex.write();
  const plan = await lab.planJson();
  assert.deepEqual(plan.changes.map((c) => `${c.action} ${c.address}`), ['update bridge.lan.impairment[a>b]'], 'changing the rate is one in-place change');
  assert.equal(plan.commands.length, 1, `one host command (a tc class change): ${JSON.stringify(plan.commands)}`);
  await lab.apply();
  const ab5 = await iperf(lab.ns('a'), lab.ns('b'), ip.b, 3);
  report(t, `after the change: a->b ${mbit(ab5)} (want 5 Mbit/s)`);
  assert.ok(Math.abs(ab5 - 5e6) / 5e6 <= 0.15, `a->b ${mbit(ab5)} within 15 % of 5 Mbit/s`);
});

labTest('example lossy-link.yaml: a->b loses ~10 %, the other pairs ~1 % (2,000 UDP datagrams each, 4.5-sigma bounds)', async (lab, t) => {
  const ex = new Example(lab, 'lossy-link.yaml');
  await ex.apply();
  const ip = lab.ips('lan') as Record<'a' | 'b' | 'c', string>;
  const n = 2000;
  const loss = async (from: keyof typeof ip, to: keyof typeof ip) => {
    const r = await udpProbe(lab.ns(from), lab.ns(to), ip[to], n, { burst: 20, gapMs: 1 });
    assert.equal(r.sent, n, `all ${n} datagrams ${from}->${to} were sent`);
    return (100 * (n - r.received)) / n;
  };
  /** p in %, the 4.5-sigma binomial interval for n samples, in %. */
  const bounds = (p: number) => {
    const sd = 100 * Math.sqrt((p / 100) * (1 - p / 100) / n);
    return [Math.max(0, p - 4.5 * sd), p + 4.5 * sd] as const;
  };
  const ab = await loss('a', 'b');
  const ba = await loss('b', 'a');
  const ac = await loss('a', 'c');
  const cb = await loss('c', 'b');
  const [lo10, hi10] = bounds(10);
  const [lo1, hi1] = bounds(1);
  report(t, `loss a->b ${ab.toFixed(2)} % (want 10, bounds ${lo10.toFixed(2)}-${hi10.toFixed(2)}); b->a ${ba.toFixed(2)} %, a->c ${ac.toFixed(2)} %, c->b ${cb.toFixed(2)} % (want 1, bounds ${lo1.toFixed(2)}-${hi1.toFixed(2)}, and > 0)`);
  assert.ok(ab >= lo10 && ab <= hi10, `a->b loss ${ab} % within ${lo10.toFixed(2)}-${hi10.toFixed(2)} %`);
  for (const [pair, l] of [['b->a', ba], ['a->c', ac], ['c->b', cb]] as const) {
    // P(no loss at all in 2,000 at 1 %) = 0.99^2000 ~ 2e-9: a zero means the whole-bridge drop is missing.
    assert.ok(l > 0 && l >= lo1 && l <= hi1, `${pair} loss ${l} % within (0, ${hi1.toFixed(2)}] % (whole-bridge 1 %)`);
  }
});

labTest('example isolated-node.yaml: c is cut off from a and b both ways, a<->b flows; removing the isolation lets c rejoin', async (lab, t) => {
  const ex = new Example(lab, 'isolated-node.yaml');
  await ex.apply();
  const ip = lab.ips('lan');
  assert.deepEqual(Object.keys(ip), ['a', 'b', 'c']);
  const m = await udpMatrix(lab, ip);
  const pc = await ping(lab.ns('a'), ip.c, 3, 0.1);
  report(t, `isolate [c]: ${JSON.stringify(m)}; ping a -> c ${pc.received}/3`);
  expectMatrix(m, (x, y) => x === 'c' || y === 'c', 'isolated c');
  assert.equal(pc.received, 0, 'ping a -> c');

  ex.doc.deleteIn(['bridges', 'lan', 'isolate']);
  await ex.apply();
  const r = await udpMatrix(lab, ip);
  report(t, `rejoined: ${JSON.stringify(r)}`);
  expectMatrix(r, () => false, 'after rejoin');
});

labTest('example uplink.yaml: nodes reach a fake upstream through NAT (the upstream sees only the host side), with a default route in each node', async (lab, t) => {
  const up = await makeUpstream(lab); // the lab's host namespace needs a default route
  const ex = new Example(lab, 'uplink.yaml');
  await ex.apply();
  const route = await run(['ip', '-n', lab.ns('a'), 'route', 'show', 'default']);
  const p = await ping(lab.ns('a'), '192.0.2.1', 5, 0.1);
  const u = await udpProbe(lab.ns('b'), up, '192.0.2.1', N);
  report(t, `default route in a: ${route.stdout.trim()}; ping a -> upstream ${p.received}/5; UDP b -> upstream ${u.received}/${N} from ${JSON.stringify(u.peers)}`);
  assert.match(route.stdout, /default via 10\.85\.0\.1/, 'a has a default route via the bridge host address');
  assert.equal(p.received, 5, 'ping a -> upstream');
  assert.equal(u.received, N, 'UDP b -> upstream');
  assert.deepEqual(Object.keys(u.peers), ['192.0.2.2'], 'masqueraded: the upstream sees the host namespace address only');
  assert.equal((await ping(lab.ns('a'), lab.ip('b', 'lan'), 3, 0.1)).received, 3, 'a -> b on the bridge');
});

labTest('example routed.yaml: a and b on lan reach c on data and back, with their own addresses (routed, not NAT)', async (lab, t) => {
  const ex = new Example(lab, 'routed.yaml');
  await ex.apply();
  const [a, b, c] = [lab.ip('a', 'lan'), lab.ip('b', 'lan'), lab.ip('c', 'data')];
  const ac = await ping(lab.ns('a'), c, 3, 0.1);
  const ca = await ping(lab.ns('c'), a, 3, 0.1);
  const cb = await ping(lab.ns('c'), b, 3, 0.1);
  const u = await udpProbe(lab.ns('b'), lab.ns('c'), c, N);
  report(t, `ping a(lan) -> c(data) ${ac.received}/3, c -> a ${ca.received}/3, c -> b ${cb.received}/3; UDP b -> c ${u.received}/${N} from ${JSON.stringify(u.peers)}`);
  assert.equal(ac.received, 3, 'a -> c across bridges');
  assert.equal(ca.received, 3, 'c -> a across bridges');
  assert.equal(cb.received, 3, 'c -> b across bridges');
  assert.equal(u.received, N, 'UDP b -> c');
  assert.deepEqual(Object.keys(u.peers), [b], "routed: c sees b's own address");
});

// ---------------------------------------------------------------------------
// VMs: the guest's command port (pv.ctl) runs one shell command per connection.






labTest(
  'example vm-lab.yaml: two VMs and a netns node boot and reach each other',
  async (lab, t) => {
    const ex = new Example(lab, 'vm-lab.yaml');
    ex.write();
    // The VMs' static ips, which their kernel command lines must repeat (pv.ip); n's is allocated.
    const { v1: V1, v2: V2, n: N_IP } = lab.ips('lan');
    for (const [v, addr] of [['v1', V1], ['v2', V2]]) assert.match(String(ex.doc.getIn(['nodes', v, 'append'])), new RegExp(`pv\\.ip=${addr.replace(/\./g, '\\.')}/24 `), `${v}'s pv.ip is its ip`);
    const t0 = Date.now();
    await ex.apply();
    await Promise.all([waitVm(lab.hostNs, V1), waitVm(lab.hostNs, V2)]);
    const up = Date.now() - t0;
    const nv1 = await ping(lab.ns('n'), V1, 3, 0.2);
    const nv2 = await ping(lab.ns('n'), V2, 3, 0.2);
    const v1v2 = await vmPing(lab.hostNs, V1, V2);
    const v2n = await vmPing(lab.hostNs, V2, N_IP);
    report(t, `2 VMs applied and answering after ${up} ms; ping n->v1 ${nv1.received}/3, n->v2 ${nv2.received}/3, v1->v2 ${v1v2}/3, v2->n ${v2n}/3`);
    assert.equal(nv1.received, 3, 'n -> v1');
    assert.equal(nv2.received, 3, 'n -> v2');
    assert.equal(v1v2, 3, 'v1 -> v2');
    assert.equal(v2n, 3, 'v2 -> n');
    assert.equal((await lab.planCode()).code, 0, 'plan is empty with the VMs running');
  },
  { skip: vmSkip(), timeoutMs: 150_000 },
);
