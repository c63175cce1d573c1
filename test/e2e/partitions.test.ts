/**
 * Partitions, isolation and link state, proven with UDP datagram counts (20 per
 * direction) between netns nodes a, b and c on one bridge (at the addresses the
 * loader gives them; every variant of the file attaches the same nodes).
 */
import assert from 'node:assert/strict';
import { labTest, udpCount, ping, report, must, ipsOf, type Lab } from './helpers.js';

const N = 20;
type Node = 'a' | 'b' | 'c';

function topo(extra = '', attach = '[a, b, c]'): string {
  return `
    nodes: { a: { kind: netns }, b: { kind: netns }, c: { kind: netns } }
    bridges:
      lan:
        subnet: 10.50.0.0/24
        attach: ${attach}
${extra
  .split('\n')
  .filter((l) => l.trim())
  .map((l) => `        ${l.trim()}`)
  .join('\n')}
  `;
}

/** Addresses of a, b and c on lan (partitions, isolation and link state do not change them). */
const IP = ipsOf(topo(), 'lan') as Record<Node, string>;

/** Datagrams received from -> to, out of N. */
function udp(lab: Lab, from: Node, to: Node): Promise<number> {
  return udpCount(lab.ns(from), lab.ns(to), IP[to], N);
}

/** Every directed pair's UDP count, as "a->b": n. */
async function matrix(lab: Lab): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const x of ['a', 'b', 'c'] as const) for (const y of ['a', 'b', 'c'] as const) if (x !== y) out[`${x}->${y}`] = await udp(lab, x, y);
  return out;
}

labTest('symmetric partition [a, b]: a<->b drop both ways, a->c flows; removing it restores a<->b', async (lab, t) => {
  lab.write(topo('partitions: [[a, b]]'));
  await lab.apply();
  const m = await matrix(lab);
  report(t, `with [a, b]: ${JSON.stringify(m)}`);
  assert.equal(m['a->b'], 0, `a->b ${m['a->b']}/${N}`);
  assert.equal(m['b->a'], 0, `b->a ${m['b->a']}/${N}`);
  assert.equal(m['a->c'], N, `a->c ${m['a->c']}/${N}`);
  assert.equal(m['c->a'], N, `c->a ${m['c->a']}/${N}`);
  assert.equal(m['b->c'], N, `b->c ${m['b->c']}/${N}`);
  assert.equal(m['c->b'], N, `c->b ${m['c->b']}/${N}`);

  lab.write(topo());
  await lab.apply();
  const ab = await udp(lab, 'a', 'b');
  const ba = await udp(lab, 'b', 'a');
  report(t, `after removing the partition: a->b ${ab}/${N}, b->a ${ba}/${N}`);
  assert.equal(ab, N, `a->b after removal ${ab}/${N}`);
  assert.equal(ba, N, `b->a after removal ${ba}/${N}`);
  assert.equal((await lab.planCode()).code, 0, 'plan is empty after the removal');
});

labTest('directional partition {from: a, to: c}: a->c drops, c->a flows (ARP still resolves)', async (lab, t) => {
  lab.write(topo('partitions: [{ from: a, to: c }]'));
  await lab.apply();
  const ac = await udp(lab, 'a', 'c');
  const ca = await udp(lab, 'c', 'a');
  const ab = await udp(lab, 'a', 'b');
  const cb = await udp(lab, 'c', 'b');
  report(t, `a->c ${ac}/${N}, c->a ${ca}/${N}, a->b ${ab}/${N}, c->b ${cb}/${N}`);
  assert.equal(ac, 0, `a->c ${ac}/${N}`);
  assert.equal(ca, N, `c->a ${ca}/${N}`);
  assert.equal(ab, N, `a->b ${ab}/${N}`);
  assert.equal(cb, N, `c->b ${cb}/${N}`);
  // a resolved c's MAC although a's IP traffic to c is dropped: ARP is exempt.
  const r = await must(['ip', '-n', lab.ns('a'), '-j', 'neigh', 'show', IP.c]);
  const entries = JSON.parse(r.stdout) as { state?: string[] }[];
  assert.ok(entries.length > 0 && !entries.some((e) => e.state?.includes('FAILED') || e.state?.includes('INCOMPLETE')), `a has a resolved neighbour entry for c: ${r.stdout}`);
});

labTest('partition_all: every pair drops both ways', async (lab, t) => {
  lab.write(topo('partition_all: true'));
  await lab.apply();
  const m = await matrix(lab);
  report(t, `partition_all: ${JSON.stringify(m)}`);
  for (const [pair, n] of Object.entries(m)) assert.equal(n, 0, `${pair} ${n}/${N}`);
});

labTest('isolation: isolate [c] cuts c off from a and b both ways; a<->b flows', async (lab, t) => {
  lab.write(topo('isolate: [c]'));
  await lab.apply();
  const m = await matrix(lab);
  report(t, `isolate [c]: ${JSON.stringify(m)}`);
  for (const pair of ['a->c', 'c->a', 'b->c', 'c->b']) assert.equal(m[pair], 0, `${pair} ${m[pair]}/${N}`);
  assert.equal(m['a->b'], N, `a->b ${m['a->b']}/${N}`);
  assert.equal(m['b->a'], N, `b->a ${m['b->a']}/${N}`);
});

labTest('link down: {node: c, link: down} cuts c off; link up in the file restores it; then plan is empty', async (lab, t) => {
  lab.write(topo('', '[a, b, { node: c, link: down }]'));
  await lab.apply();
  const down = { ac: await udp(lab, 'a', 'c'), ca: await udp(lab, 'c', 'a'), ab: await udp(lab, 'a', 'b'), ping: (await ping(lab.ns('b'), IP.c, 3, 0.1)).received };
  report(t, `c down: a->c ${down.ac}/${N}, c->a ${down.ca}/${N}, a->b ${down.ab}/${N}, ping b->c ${down.ping}/3`);
  assert.equal(down.ac, 0, `a->c with c down: ${down.ac}/${N}`);
  assert.equal(down.ca, 0, `c->a with c down: ${down.ca}/${N}`);
  assert.equal(down.ping, 0, 'ping b->c with c down');
  assert.equal(down.ab, N, `a->b unaffected: ${down.ab}/${N}`);

  lab.write(topo('', '[a, b, { node: c, link: up }]'));
  const r = await lab.apply();
  assert.ok(r.host_commands > 0, 'setting the link up changes the host');
  const up = { ac: await udp(lab, 'a', 'c'), ca: await udp(lab, 'c', 'a'), ping: (await ping(lab.ns('b'), IP.c, 3, 0.1)).received };
  report(t, `c up: a->c ${up.ac}/${N}, c->a ${up.ca}/${N}, ping b->c ${up.ping}/3`);
  assert.equal(up.ac, N, `a->c with c up: ${up.ac}/${N}`);
  assert.equal(up.ca, N, `c->a with c up: ${up.ca}/${N}`);
  assert.equal(up.ping, 3, 'ping b->c with c up');
  const p = await lab.planCode();
  assert.equal(p.code, 0, `second plan is empty: exit ${p.code}\n${p.stdout}${p.stderr}`);
});
