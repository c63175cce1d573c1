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

/** A lab of two hosts (h1 local, h2 over SSH) with node a on h1 and b on h2 on bridge lan; `lan` adds fields to lan's flow mapping. */
function twoHostLab(lan = '') {
  return loadTopology('/virtual/mh.yaml', `
lab: mh
hosts:
  h1: { local: true, underlay: 192.0.2.11 }
  h2: { ssh: root@192.0.2.12, underlay: 192.0.2.12 }
nodes: { a: { kind: netns, host: h1 }, b: { kind: netns, host: h2 } }
bridges:
  lan: { subnet: 10.40.0.0/24, home: h1, attach: [a, b]${lan} }
`);
}

test('hosts in a multi-host lab: the mark names the host, nodes of other hosts are listed too; observe leaves other hosts\' files alone', async () => {
  const { project } = await import('../../src/hosts/project.js');
  const { observeServices } = await import('../../src/observe/services.js');
  const mh = twoHostLab();
  const p2 = project(mh, 'h2');
  const s = realize(p2);
  assert.deepEqual(Object.keys(s.hosts), ['pv-mh-b'], 'only h2\'s node gets a hosts file on h2');
  const b = s.hosts['pv-mh-b'].split('\n');
  assert.equal(b[0], '# provium:mh:node:b:h2 (written by provium; changes are drift)');
  const ip = (n: string) => mh.bridges.lan.attach.find((x) => x.node === n)!.ip!.split('/')[0];
  assert.ok(b.includes(`${ip('a')}\ta.lan a`), 'a (on h1) is listed on h2');
  // Hosts sharing /etc (test hosts on one machine): each host reads only its own files.
  const files: Record<string, string> = {
    '/etc/netns/pv-mh-a/hosts': realize(project(mh, 'h1')).hosts['pv-mh-a'],
    '/etc/netns/pv-mh-b/hosts': s.hosts['pv-mh-b'],
  };
  const fs = {
    readText: (p: string) => files[p],
    readBytes: (p: string) => (files[p] === undefined ? undefined : Buffer.from(files[p])),
    list: (d: string) => (d === '/etc/netns' ? ['pv-mh-a', 'pv-mh-b'] : undefined),
    exists: (p: string) => p in files,
  };
  const seen = observeServices(undefined, 'mh', [], fs, 'h2', ['pv-mh-b']);
  assert.deepEqual(Object.keys(seen.hosts ?? {}), ['pv-mh-b']);
  assert.equal(seen.hosts!['pv-mh-b'], s.hosts['pv-mh-b']);
  assert.deepEqual(seen.conflicts, []);
  files['/etc/netns/pv-mh-b/hosts'] = '127.0.0.1 localhost\n';
  assert.deepEqual(observeServices(undefined, 'mh', [], fs, 'h2', ['pv-mh-b']).conflicts.map((c) => c.name), ['/etc/netns/pv-mh-b/hosts'], 'an unmarked file where one is wanted is a conflict');
});

test('a multi-host plan at the level of the file: per host, remote senders named, the VXLAN port and its peers described', async () => {
  const { project } = await import('../../src/hosts/project.js');
  const { computePlan } = await import('../../src/plan/index.js');
  const { emptyState } = await import('../../src/model/state.js');
  const { renderMultiPlan } = await import('../../src/hosts/render.js');
  const mh = twoHostLab(', partitions: [{ from: a, to: b }]');
  const facts = { features: { netem: true, htb: true, nftBridge: true, tun: true }, featureSource: {}, conflicts: [], missingFiles: [] };
  const hosts = ['h1', 'h2'].map((h) => {
    const topology = project(mh, h);
    const ctx = { stateDir: `/st/${h}/mh`, placement: h };
    const plan = computePlan(topology, emptyState(), facts, ctx);
    return { host: h, topology, ctx, plan, observation: { state: emptyState() }, record: {} };
  });
  const text = renderMultiPlan(mh, { lab: 'mh', errors: [], hosts } as never, { color: false });
  assert.match(text, /^host h2 \(ssh root@192\.0\.2\.12, underlay 192\.0\.2\.12\):$/m);
  assert.match(text, /partition a -> b/, 'the sender on h1 is named from its MAC');
  assert.match(text, /VXLAN port of bridge lan \(vni \d+ port 4789 local 192\.0\.2\.12\)/);
  assert.match(text, /VXLAN peers \(other hosts' underlay addresses\): 192\.0\.2\.11/);
  assert.doesNotMatch(text, /HTB|classid|null ->/);
  assert.match(renderMultiPlan(mh, { lab: 'mh', errors: [], hosts } as never, { color: false, verbose: true }), /VXLAN peers of mh-lan-vx/, '--verbose: host items');
});
