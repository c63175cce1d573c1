import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkTopology } from '../../src/load/index.js';
import { realize } from '../../src/plan/realize.js';

const lab = (imp: string) => `lab: prof
nodes: { a: { kind: netns }, b: { kind: netns } }
bridges:
  lan:
    attach: [a, b]
    impairments:
      - ${imp}
`;

test('a profile fills the impairment with its (patchbay, one-way) values', () => {
  const r = checkTopology('/tmp/prof.yaml', lab('{ from: a, to: b, profile: mobile-3g }'));
  assert.deepEqual(r.diagnostics, []);
  const i = r.topology!.bridges.lan.impairments[0];
  assert.deepEqual([i.profile, i.latency_ms, i.jitter_ms, i.drop_pct, i.bandwidth_bps], ['mobile-3g', 100, 30, 2, 2_000_000]);
});

test('explicit fields override the profile; a latency override drops the profile jitter only when jitter is not given', () => {
  const i = checkTopology('/tmp/prof.yaml', lab('{ profile: wifi-bad, drop_pct: 5, jitter_ms: 1 }')).topology!.bridges.lan.impairments[0];
  assert.deepEqual([i.latency_ms, i.jitter_ms, i.drop_pct, i.bandwidth_bps], [40, 1, 5, 20_000_000]);
  const j = checkTopology('/tmp/prof.yaml', lab('{ profile: satellite, latency_ms: 10 }')).topology!.bridges.lan.impairments[0];
  assert.deepEqual([j.latency_ms, j.jitter_ms, j.drop_pct], [10, undefined, 1]);
});

test('profile lan is no impairment at all', () => {
  const t = checkTopology('/tmp/prof.yaml', lab('{ profile: lan }')).topology!;
  const s = realize(t);
  assert.deepEqual(s.shaping, {});
  assert.equal(s.nft.bridge, undefined);
});

test('every named profile realizes its values', () => {
  for (const [name, want] of Object.entries({ wifi: [5, 2, 0.1], 'mobile-4g': [25, 8, 0.5], satellite: [40, 7, 1], 'satellite-geo': [300, 20, 0.5] })) {
    const i = checkTopology('/tmp/prof.yaml', lab(`{ from: a, to: b, profile: ${name} }`)).topology!.bridges.lan.impairments[0];
    assert.deepEqual([i.latency_ms, i.jitter_ms, i.drop_pct], want, name);
  }
});
