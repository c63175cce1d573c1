/**
 * Group partitions and impairments: they expand to exactly the kernel objects of the
 * pairs they stand for, a plan shows each as one change at its entry's address, the
 * override rule for overlapping definitions, located errors, and overlay identity.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { checkTopology, loadTopology, checkSources } from '../../src/load/index.js';
import { formatDiagnostic } from '../../src/model/diagnostics.js';
import { emptyState, type HostFacts, type HostState } from '../../src/model/state.js';
import type { Topology } from '../../src/model/topology.js';
import { computePlan } from '../../src/plan/index.js';
import { nicMacOf, realize } from '../../src/plan/realize.js';

/** The nft element key of a directed pair on bridge lan: the sender's NIC MAC, then the receiver's port (plan/realize.ts). */
const key = (t: Topology, x: string, y: string): string => `${nicMacOf(t, x, 'lan')}>gr-${y}-0`;
import { yaml } from './helpers.js';

process.env.PROVIUM_STATE_DIR = '/nonexistent/provium-unit';

/** A lab of nodes r1..r5 (and x, on another bridge) with the given partitions/impairments lines under lan. */
function lab(body: string): string {
  return yaml`
    lab: gr
    nodes:
      r1: { kind: netns }
      r2: { kind: netns }
      r3: { kind: netns }
      r4: { kind: netns }
      r5: { kind: netns }
      x: { kind: netns }
    bridges:
      wan: { attach: [x, r1] }
      lan:
        subnet: 10.70.0.0/24
        attach: [r1, r2, r3, r4, r5]
  ` + body.split('\n').map((l) => (l.trim() ? `    ${l}` : l)).join('\n') + '\n';
}

const load = (text: string): Topology => loadTopology('groups.yaml', text);
const problems = (text: string): string[] => checkTopology('groups.yaml', text).diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic);

const FACTS: HostFacts = { features: { netem: true, htb: true, nftBridge: true, tun: true }, featureSource: {}, conflicts: [] };

/** The bridge nft table and shaping of a topology, with owners removed (the kernel objects as such). */
function kernelObjects(t: Topology) {
  const s = realize(t);
  const strip = (m: Record<string, { owner: string; value: unknown }> = {}) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, v.value]).sort());
  const b = s.nft.bridge;
  return { blocked: strip(b?.blocked), loss: strip(b?.loss), prio: strip(b?.prio), shaping: s.shaping };
}

/** Owner address of each nft element key of a set. */
function owners(t: Topology, set: 'blocked' | 'loss' | 'prio'): Record<string, string> {
  const m = realize(t).nft.bridge?.[set] ?? {};
  return Object.fromEntries(Object.entries(m).map(([k, v]) => [k, v.owner]));
}

/** The plan of t against an empty host. */
function planFromEmpty(t: Topology, observed: HostState = emptyState()) {
  return computePlan(t, observed, FACTS, { stateDir: '/tmp/pv-unit-state' });
}

describe('groups expand to the same kernel objects as the pairs they stand for', () => {
  it('partitions: { groups: [[r1], others] } = the pairs r1<>r2..r5', () => {
    const g = load(lab('partitions: [{ groups: [[r1], others] }]'));
    const p = load(lab('partitions: [[r1, r2], [r1, r3], [r1, r4], [r1, r5]]'));
    assert.deepEqual(kernelObjects(g), kernelObjects(p));
    assert.equal(Object.keys(kernelObjects(g).blocked).length, 8);
  });

  it('partitions: groups of several nodes cut every pair across groups both ways, and nothing inside a group', () => {
    const g = load(lab('partitions: [{ groups: [[r1, r2], [r3], r4] }]'));
    const pairs = ['r1 r3', 'r1 r4', 'r2 r3', 'r2 r4', 'r3 r4'].map((s) => `[${s.replace(' ', ', ')}]`).join(', ');
    assert.deepEqual(kernelObjects(g), kernelObjects(load(lab(`partitions: [${pairs}]`))));
  });

  it('partitions: { from: [r1, r2], to: [r3, r4] } = the four directed pairs; to: others', () => {
    const g = load(lab('partitions: [{ from: [r1, r2], to: [r3, r4] }]'));
    const p = load(lab('partitions: [{ from: r1, to: r3 }, { from: r1, to: r4 }, { from: r2, to: r3 }, { from: r2, to: r4 }]'));
    assert.deepEqual(kernelObjects(g), kernelObjects(p));
    const o = load(lab('partitions: [{ from: r5, to: others }]'));
    assert.deepEqual(kernelObjects(o), kernelObjects(load(lab('partitions: [{ from: r5, to: r1 }, { from: r5, to: r2 }, { from: r5, to: r3 }, { from: r5, to: r4 }]'))));
  });

  it('impairments: groups and from/to lists = the same per-pair entries (drop elements, HTB classes, prio map)', () => {
    const g = load(lab('impairments: [{ from: [r1], to: [r2, r3], drop_pct: 5, bandwidth_bps: 2000000 }, { groups: [[r4], [r5]], drop_pct: 1 }]'));
    const p = load(lab(yaml`
      impairments:
        - { from: r1, to: r2, drop_pct: 5, bandwidth_bps: 2000000 }
        - { from: r1, to: r3, drop_pct: 5, bandwidth_bps: 2000000 }
        - { from: r4, to: r5, drop_pct: 1 }
        - { from: r5, to: r4, drop_pct: 1 }
    `));
    assert.deepEqual(kernelObjects(g), kernelObjects(p));
  });

  it('others is every member of the bridge not named in another group (not nodes of other bridges)', () => {
    const t = load(lab('partitions: [{ groups: [[r1, r2], others] }]'));
    const named = t.bridges.lan.partitions.map((p) => `${p.a}-${p.b}`).sort();
    assert.deepEqual(named, ['r1-r3', 'r1-r4', 'r1-r5', 'r2-r3', 'r2-r4', 'r2-r5']);
  });
});

describe('a plan shows a group as one change at its address', () => {
  it('every element of a group partition is owned by bridge.lan.partition[<groups>]', () => {
    const t = load(lab('partitions: [{ groups: [[r1], others] }, [r2, r3]]'));
    const plan = planFromEmpty(t);
    const group = plan.changes.find((c) => c.address === 'bridge.lan.partition[others|r1]');
    assert.ok(group, plan.changes.map((c) => c.address).join('\n'));
    assert.equal(group.action, 'create');
    assert.equal(group.items.length, 8, 'one change of 8 directed elements');
    assert.ok(plan.changes.some((c) => c.address === 'bridge.lan.partition[r2<>r3]'));
    assert.ok(!plan.changes.some((c) => /partition\[r1<>/.test(c.address)), 'no per-pair addresses for the group');
  });

  it('a group impairment: its drop elements, prio elements and HTB classes are all under bridge.lan.impairment[r1>r2,r3]', () => {
    const t = load(lab('impairments: [{ from: r1, to: [r2, r3], drop_pct: 5, bandwidth_bps: 2000000 }]'));
    const plan = planFromEmpty(t);
    const c = plan.changes.find((x) => x.address === 'bridge.lan.impairment[r1>r2,r3]');
    assert.ok(c, plan.changes.map((x) => x.address).join('\n'));
    const kinds = c.items.map((i) => (i.after!.ref.kind === 'elem' ? `elem:${(i.after!.ref as { set: string }).set}` : i.after!.ref.kind)).sort();
    assert.deepEqual(kinds, ['class', 'class', 'elem:loss', 'elem:loss', 'elem:prio', 'elem:prio']);
  });

  it('changing a field of a group is one update of that address (every pair in place), nothing else', () => {
    const before = load(lab('impairments: [{ groups: [[r1], others], drop_pct: 5 }]'));
    const after = load(lab('impairments: [{ groups: [[r1], others], drop_pct: 7 }]'));
    const plan = planFromEmpty(after, realize(before));
    assert.deepEqual(plan.changes.map((c) => `${c.action} ${c.address} ${c.items.length}`), ['update bridge.lan.impairment[others|r1] 8']);
  });

  it('--target r3 keeps a group that names r3; others does not name a node', async () => {
    const { addressMentions } = await import('../../src/plan/index.js');
    assert.ok(addressMentions('bridge.lan.partition[r1,r3|r2]', 'r3'));
    assert.ok(addressMentions('bridge.lan.impairment[r1>r2,r3]', 'r3'));
    assert.ok(!addressMentions('bridge.lan.partition[others|r1]', 'r3'));
  });

  it('very long groups get a short hashed address (an nft comment holds at most 128 bytes)', () => {
    const names = Array.from({ length: 25 }, (_, i) => `node${String(i).padStart(2, '0')}`);
    const text = yaml`
      lab: gr
      nodes: { ${names.map((n) => `${n}: { kind: netns }`).join(', ')} }
      bridges:
        lan: { attach: [${names.join(', ')}], partitions: [{ groups: [[${names.slice(0, 20).join(', ')}], others] }] }
    `;
    const t = loadTopology('long.yaml', text);
    const o = Object.values(owners(t, 'blocked'));
    assert.equal(o.length, 2 * 20 * 5);
    assert.equal(new Set(o).size, 1);
    assert.match(o[0], /^bridge\.lan\.partition\[#[0-9a-f]{12}\]$/);
  });
});

describe('overlapping definitions: the override rule', () => {
  it('an entry naming one pair beats any group; a field it does not set comes from the group, then the whole bridge', () => {
    const t = load(lab(yaml`
      impairments:
        - { drop_pct: 1, bandwidth_bps: 9000000 }
        - { groups: [[r1], others], latency_ms: 40, drop_pct: 10 }
        - { from: r1, to: r2, drop_pct: 2 }
    `));
    const s = realize(t);
    const port = (n: string) => `gr-${n}-0`; // NICs in bridge-name order: lan is eth0 for r1 too (wan is eth1)
    const loss = s.nft.bridge!.loss;
    assert.deepEqual(loss[key(t, 'r1', 'r2')], { owner: 'bridge.lan.impairment[r1>r2]', value: 200 });
    assert.deepEqual(loss[key(t, 'r1', 'r3')], { owner: 'bridge.lan.impairment[others|r1]', value: 1000 });
    assert.deepEqual(loss[key(t, 'r2', 'r1')], { owner: 'bridge.lan.impairment[others|r1]', value: 1000 });
    // r2 -> r3 has no entry of its own: the whole-bridge element of r3's port covers it (one per port, not per pair).
    assert.equal(loss[key(t, 'r2', 'r3')], undefined);
    assert.deepEqual(s.nft.bridge!.lossPort[port('r3')], { owner: 'bridge.lan.impairment[*]', value: 100 });
    assert.equal(s.nft.bridge!.lossOwn[key(t, 'r2', 'r3')], undefined);
    assert.deepEqual(s.nft.bridge!.lossOwn[key(t, 'r1', 'r2')], { owner: 'bridge.lan.impairment[r1>r2]', value: true }, 'a pair with its own drop is exempt from the whole-bridge one');
    // r1 -> r2: latency from the group (the pair entry sets none), rate from the whole bridge; the class is the group's.
    const prio = s.nft.bridge!.prio[key(t, 'r1', 'r2')];
    assert.equal(prio.owner, 'bridge.lan.impairment[others|r1]');
    const [, minor] = prio.value.split(':');
    const cls = s.shaping[port('r2')].classes[parseInt(minor, 16)];
    // netem's queue: 9 Mbit/s x 40 ms is far below netem's default of 1000 packets (plan/realize.ts netemLimit).
    assert.deepEqual([cls.rateBps, cls.netem], [9000000, { delayMs: 40, jitterMs: 0, limit: 1000 }]);
  });

  it('the whole-bridge drop is one element per receiving port; only pairs whose drop differs are exempt from it', () => {
    const t = load(lab(yaml`
      impairments:
        - { drop_pct: 1 }
        - { from: r1, to: r2, drop_pct: 0 }
        - { from: r1, to: r3, bandwidth_bps: 1000000 }
        - { from: r2, to: r3, drop_pct: 1 }
        - { from: r3, to: r1, drop_pct: 30 }
    `));
    const b = realize(t).nft.bridge!;
    const members = t.bridges.lan.attach.map((a) => a.node);
    assert.deepEqual(Object.keys(b.lossPort).sort(), members.map((n) => `gr-${n}-0`).sort(), 'one element per member port');
    assert.ok(Object.values(b.lossPort).every((v) => v.value === 100 && v.owner === 'bridge.lan.impairment[*]'));
    assert.deepEqual(b.lossOwn, {
      [key(t, 'r1', 'r2')]: { owner: 'bridge.lan.impairment[r1>r2]', value: true }, // 0 %: exempt, no drop element
      [key(t, 'r2', 'r3')]: { owner: 'bridge.lan.impairment[r2>r3]', value: true }, // same rate, its own owner
      [key(t, 'r3', 'r1')]: { owner: 'bridge.lan.impairment[r3>r1]', value: true },
    }, 'r1 -> r3 sets no drop: the whole-bridge one covers it through the port');
    assert.deepEqual(b.loss, {
      [key(t, 'r2', 'r3')]: { owner: 'bridge.lan.impairment[r2>r3]', value: 100 },
      [key(t, 'r3', 'r1')]: { owner: 'bridge.lan.impairment[r3>r1]', value: 3000 },
    });
    // Without a whole-bridge drop nothing is exempt and pairs keep their own elements.
    const t2 = load(lab(yaml`
      impairments:
        - { from: r1, to: r2, drop_pct: 5 }
    `));
    const b2 = realize(t2).nft.bridge!;
    assert.deepEqual([Object.keys(b2.lossPort).length, Object.keys(b2.lossOwn).length, Object.keys(b2.loss).length], [0, 0, 1]);
  });

  it('among groups, the one covering fewer pairs wins; among equally many, the later entry', () => {
    const t = load(lab(yaml`
      impairments:
        - { groups: [[r1], others], drop_pct: 10 }
        - { from: [r1, r2], to: [r3], drop_pct: 20 }
        - { from: [r1, r4], to: [r3], drop_pct: 30 }
        - { from: [r5], to: [r3, r4], drop_pct: 40 }
    `));
    const loss = realize(t).nft.bridge!.loss;
    const get = (x: string, y: string) => loss[key(t, x, y)];
    assert.deepEqual(get('r1', 'r3'), { owner: 'bridge.lan.impairment[r1,r4>r3]', value: 3000 }, 'two 2-pair entries cover r1>r3: the later wins');
    assert.deepEqual(get('r2', 'r3'), { owner: 'bridge.lan.impairment[r1,r2>r3]', value: 2000 });
    assert.deepEqual(get('r1', 'r2'), { owner: 'bridge.lan.impairment[others|r1]', value: 1000 }, 'only the 8-pair group covers r1>r2');
    assert.deepEqual(get('r5', 'r3'), { owner: 'bridge.lan.impairment[r5>r3,r4]', value: 4000 });
  });

  it('partitions: a pair entry owns its elements over a group; groups in the same order as impairments', () => {
    const t = load(lab('partitions: [{ groups: [[r1], others] }, [r1, r2], { from: [r1], to: [r3, r4] }]'));
    const o = owners(t, 'blocked');
    assert.equal(o[key(t, 'r1', 'r2')], 'bridge.lan.partition[r1<>r2]');
    assert.equal(o[key(t, 'r1', 'r3')], 'bridge.lan.partition[r1>r3,r4]');
    assert.equal(o[key(t, 'r3', 'r1')], 'bridge.lan.partition[others|r1]');
    assert.equal(Object.keys(o).length, 8, 'each directed pair once');
  });
});

describe('located errors in groups', () => {
  it('an unknown node names the bridge\'s members', () => {
    assert.deepEqual(problems(lab('partitions: [{ groups: [[r1], [r9]] }]')), [
      'groups.yaml:14:36: error: unknown node: partition group names node "r9", which is not defined under nodes (members of bridge "lan": r1, r2, r3, r4, r5)',
    ]);
    assert.deepEqual(problems(lab('impairments: [{ from: [x], to: others, drop_pct: 1 }]')), [
      'groups.yaml:14:28: error: unknown node: impairment group names node "x", which is not attached to bridge "lan" (its members: r1, r2, r3, r4, r5)',
    ]);
  });

  it('empty groups, others left empty, a node in two groups or twice, others in a list, too few groups, groups with from/to', () => {
    assert.match(problems(lab('partitions: [{ groups: [[r1], []] }]'))[0], /14:35: error: empty group: this group names no node/);
    assert.match(problems(lab('partitions: [{ groups: [[r1, r2, r3], [r4, r5], others] }]'))[0], /14:53: error: empty group: others is empty: every member of bridge "lan" \(r1, r2, r3, r4, r5\) is named in another group/);
    assert.match(problems(lab('partitions: [{ groups: [[r1, r2], [r2]] }]'))[0], /14:40: error: node in two groups: node "r2" is in two groups/);
    assert.match(problems(lab('partitions: [{ from: [r1], to: [r2, r1] }]'))[0], /14:41: error: node in two groups/);
    assert.match(problems(lab('partitions: [{ groups: [[r1, r1], others] }]'))[0], /error: node listed twice/);
    assert.match(problems(lab('partitions: [{ groups: [[r1, others], [r2]] }]'))[0], /error: others in a list/);
    assert.match(problems(lab('partitions: [{ groups: [[r1]] }]'))[0], /14:28: error: too few groups/);
    assert.match(problems(lab('partitions: [{ groups: [[r1], others], from: r2, to: r3 }]'))[0], /14:18: error: groups with from\/to/);
    assert.match(problems(lab('impairments: [{ groups: [[r1], others], drop_pct: 1 }, { groups: [others, [r1]], latency_ms: 1 }]'))[0], /error: duplicate impairment: bridge "lan" already has an impairment for the same groups \(others\|r1\)/);
    assert.match(problems(lab('impairments: [{ groups: [[r1], others], jitter_ms: 1 }]'))[0], /error: incomplete entry: "jitter_ms" requires "latency_ms"/);
    assert.match(problems(lab('partitions: [{ groups: [[r1], 3] }]'))[0], /error: wrong type: bridges\.lan\.partitions\[0\]\.groups\[1\]: must be a node name, others, or a list of node names/);
  });
});

describe('overlays merge group entries by their groups', () => {
  it('the same groups in another order merge into one entry; other groups are appended', () => {
    const r = checkSources([{ name: 'b.yaml', text: lab('impairments: [{ groups: [[r1], others], drop_pct: 1 }]') }, { name: 'o.yaml', text: 'bridges: { lan: { impairments: [{ groups: [others, [r1]], latency_ms: 5 }, { from: [r2, r3], to: r4, drop_pct: 2 }] } }\n' }], { env: {} });
    assert.ok(r.topology, r.diagnostics.map(formatDiagnostic).join('\n'));
    const imp = r.topology.bridges.lan.impairments;
    const g = imp.filter((i) => i.group?.key === 'others|r1');
    assert.equal(g.length, 8);
    assert.ok(g.every((i) => i.drop_pct === 1 && i.latency_ms === 5));
    assert.equal(imp.filter((i) => i.group?.key === 'r2,r3>r4').length, 2);
  });
});
