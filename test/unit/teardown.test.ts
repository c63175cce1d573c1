/**
 * The invocations of a pure teardown (destroy): node namespaces first, then the host links,
 * the nft tables and the forwarding sysctl together (one `parallel` group: they wait for no
 * link, so they do not queue behind the kernel's namespace cleanup). A plan that also
 * changes something keeps its strict order.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkTopology } from '../../src/load/index.js';
import { realize } from '../../src/plan/realize.js';
import { computePlan, emptyTopology, prepareDesired } from '../../src/plan/index.js';
import type { HostFacts } from '../../src/model/state.js';

const FILE = `lab: td
nodes: { a: { kind: netns }, b: { kind: netns }, c: { kind: netns } }
bridges:
  lan:
    subnet: 10.60.0.0/24
    attach: [a, b]
    routes: [data]
    partitions: [[a, b]]
    impairments: [{ drop_pct: 5 }]
  data: { subnet: 10.61.0.0/24, attach: [c] }
`;
const load = (text: string) => {
  const r = checkTopology('/tmp/td.yaml', text);
  assert.deepEqual(r.diagnostics.filter((d) => d.severity === 'error'), [], 'valid');
  return r.topology!;
};
const facts: HostFacts = { features: { netem: true, htb: true, nftBridge: true, tun: true }, featureSource: {}, conflicts: [], missingFiles: [] };
const ctx = { hostNetns: 'h', stateDir: '/st/td' };

test('destroy: namespaces first, then host links, nft tables and ip_forward put back as one parallel group', () => {
  const t = load(FILE);
  const have = { ...realize(t, { stateDir: ctx.stateDir }), ipForward: true };
  const plan = computePlan(emptyTopology('td'), have, facts, ctx, false);
  const order = plan.invocations.filter((i) => !i.removeFiles).map((i) => `${i.label}${i.parallel ? ` [${i.parallel}]` : ''}`);
  assert.deepEqual(order, ['delete node namespaces', 'host links [teardown]', 'nftables transaction [teardown]', 'sysctl [teardown]']);
  const nft = plan.invocations.find((i) => i.label === 'nftables transaction')!;
  assert.deepEqual(nft.stdin!.trim().split('\n').sort(), ['delete table bridge provium_td', 'delete table inet provium_td']);
  assert.deepEqual(plan.invocations.find((i) => i.label === 'sysctl')!.sysctl!.values, [['net.ipv4.ip_forward', '0']]);
  assert.equal(plan.invocations.filter((i) => i.removeFiles).length, 3, 'the three hosts files go too');
});

test('a plan that removes a node but also changes the rest keeps the strict order (no parallel group)', () => {
  const t = load(FILE);
  const have = realize(t, { stateDir: ctx.stateDir });
  // Without b (and its partition), with a new impairment: links, tc and nft change in order.
  const next = load(FILE.replace('{ a: { kind: netns }, b: { kind: netns }, c: { kind: netns } }', '{ a: { kind: netns }, c: { kind: netns } }')
    .replace('attach: [a, b]', 'attach: [a]').replace('    partitions: [[a, b]]\n', '').replace('drop_pct: 5', 'drop_pct: 7'));
  const plan = computePlan(next, have, facts, ctx);
  assert.ok(plan.invocations.some((i) => i.label === 'delete node namespaces'), 'b goes');
  assert.deepEqual(plan.invocations.filter((i) => i.parallel), [], 'no parallel group');
  const labels = plan.invocations.filter((i) => !i.removeFiles && !i.writeFiles).map((i) => i.label);
  assert.ok(labels.indexOf('nftables transaction') > labels.indexOf('host links'), `nft after the links: ${labels.join(', ')}`);
});

test('prepareDesired leaves computePlan the same plan (memoized realization and items)', () => {
  const t = load(FILE);
  const fresh = load(FILE);
  const have = realize(t, { stateDir: ctx.stateDir });
  prepareDesired(t, { kvmUsable: undefined, stateDir: ctx.stateDir });
  const a = computePlan(t, have, facts, ctx);
  const b = computePlan(fresh, have, facts, ctx);
  assert.deepEqual(a, b);
  assert.equal(a.changes.length, 0, 'no-op');
});
