import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planFixture, fixtureFiles, fixtureHostNetns, Replayer, FIXTURES } from './replay.js';
import { loadTopology } from '../../src/load/index.js';
import { planFor } from '../../src/apply/index.js';
import { addressMentions } from '../../src/plan/index.js';
import { terraformFlags } from '../../src/cli.js';

process.env.PROVIUM_STATE_DIR = '/nonexistent/provium-unit';

async function planWith(fixture: string, extra: { targets?: string[]; replace?: string[] }) {
  const dir = new URL(`${fixture}/`, FIXTURES);
  const t = loadTopology(new URL('topology.yaml', dir).pathname);
  return (await planFor(t, { hostNetns: fixtureHostNetns(dir), ...extra }, new Replayer(new URL('calls.jsonl', dir)), fixtureFiles(dir))).plan;
}

test('addresses mention nodes and bridges as whole tokens', () => {
  assert.ok(addressMentions('bridge.lan.attach.c', 'c'));
  assert.ok(addressMentions('bridge.lan.impairment[a>d]', 'd'));
  assert.ok(addressMentions('route[data<>lan]', 'data'));
  assert.ok(!addressMentions('bridge.lan.attach.c', 'a'));
  assert.ok(!addressMentions('node.ab', 'a'));
});

test('--target limits the drift repair to one node and what it needs', async () => {
  const all = (await planFixture('drifted')).plan.changes.map((c) => c.address);
  const c = (await planWith('drifted', { targets: ['c'] })).changes.map((x) => x.address);
  assert.ok(c.length > 0 && c.length < all.length, `${c} vs ${all}`);
  assert.ok(c.includes('bridge.lan.attach.c') && c.includes('node.c.routes'));
  assert.ok(!c.includes('node.a.routes'), 'a is not targeted');
  assert.ok(!c.includes('bridge.lan.partition[a<>b]'), 'the a<>b partition is not targeted');
  const a = (await planWith('drifted', { targets: ['a'] })).changes.map((x) => x.address);
  assert.ok(a.includes('node.a.routes') && a.includes('bridge.lan.partition[a<>b]') && !a.includes('bridge.lan.attach.c'));
});

test('--replace re-creates an unchanged object and what goes with it; unknown addresses are errors', async () => {
  const p = await planWith('applied', { replace: ['bridge.lan.attach.b'] });
  assert.deepEqual(p.errors, []);
  const attach = p.changes.find((c) => c.address === 'bridge.lan.attach.b')!;
  assert.equal(attach.action, 'replace');
  assert.ok(attach.items.every((i) => i.action === 'replace'));
  assert.match(p.invocations.find((i) => i.label === 'host links')!.stdin!, /link del fx-b-1\nlink add fx-b-1 type veth/);
  const bad = await planWith('applied', { replace: ['node.zz'], targets: ['nope'] });
  assert.equal(bad.errors.length, 2);
  assert.equal(bad.invocations.length, 0);
});

test('terraform spellings -target/-replace are accepted', () => {
  assert.deepEqual(terraformFlags(['plan', '-target', 'a', '-replace=node.v1', 'f.yaml']), ['plan', '--target', 'a', '--replace=node.v1', 'f.yaml']);
});
