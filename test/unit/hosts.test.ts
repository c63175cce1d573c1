/** hosts files of netns nodes (plan/hosts.ts): every node, <node>.<bridge>, and <node> on the bridge shared with the reader. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadTopology } from '../../src/load/index.js';
import { hostsFile } from '../../src/plan/hosts.js';
import { realize } from '../../src/plan/realize.js';

const t = loadTopology('/virtual/hosts.yaml', `
lab: hs
nodes: { a: { kind: netns }, b: { kind: netns }, c: { kind: netns }, v: { kind: qemu } }
bridges:
  lan: { subnet: 10.30.0.0/24, subnet6: "fd00:30::/64", attach: [a, b, v] }
  wan: { subnet: 10.31.0.0/24, attach: [b, c] }
  raw: { attach: [a, c] }
`);

test('hosts: marked first line, localhost, <node>.<bridge> for every address, <node> on the bridge shared with the reader', () => {
  const a = hostsFile(t, 'a').split('\n');
  assert.equal(a[0], '# provium:hs:node:a (written by provium; changes are drift)');
  assert.deepEqual(a.slice(1, 3), ['127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost ip6-loopback']);
  const ip = (n: string, b: string) => t.bridges[b].attach.find((x) => x.node === n)!.ip!.split('/')[0];
  assert.ok(a.includes(`${ip('b', 'lan')}\tb.lan b`), 'a shares lan with b: b is its lan address');
  assert.ok(a.includes(`${ip('b', 'wan')}\tb.wan`));
  assert.ok(a.includes(`${ip('c', 'wan')}\tc.wan c`), 'no address shared with c (raw has no subnet): its first bridge with one');
  assert.ok(a.includes(`${ip('v', 'lan')}\tv.lan v`), 'VMs are listed too');
  assert.ok(a.some((l) => /^fd00:30::\S+\tb\.lan b$/.test(l)), 'IPv6 addresses too');
  const c = hostsFile(t, 'c').split('\n');
  assert.ok(c.includes(`${ip('b', 'wan')}\tb.wan b`), 'c shares wan with b');
  assert.ok(c.includes(`${ip('b', 'lan')}\tb.lan`));
});

test('hosts: every netns node of a realized lab gets one, VMs none', () => {
  const s = realize(t);
  assert.deepEqual(Object.keys(s.hosts).sort(), ['pv-hs-a', 'pv-hs-b', 'pv-hs-c']);
});
