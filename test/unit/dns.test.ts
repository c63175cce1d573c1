import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkTopology } from '../../src/load/index.js';
import { realize } from '../../src/plan/realize.js';
import { computePlan } from '../../src/plan/index.js';
import { emptyState, type HostFacts } from '../../src/model/state.js';
import { nicMac } from '../../src/model/names.js';

const FILE = `lab: dn
nodes: { a: { kind: netns }, b: { kind: netns }, v: { kind: qemu, kernel: k, memory_mb: 128 } }
bridges:
  lan: { subnet: 10.97.0.0/24, dhcp: true, dns: true, attach: [a, b, { node: v, mac: "52:54:00:00:00:09" }] }
  data: { subnet: 10.98.0.0/24, dns: true, attach: [b] }
`;
const t = checkTopology('/tmp/dn.yaml', FILE).topology!;
/** Bare IPv4 address the loader gave node on bridge. */
const ipOf = (top: typeof t, node: string, bridge: string): string => top.bridges[bridge].attach.find((a) => a.node === node)!.ip!.split('/')[0];
const [A, V] = [ipOf(t, 'a', 'lan'), ipOf(t, 'v', 'lan')];
const facts: HostFacts = { features: { netem: true, htb: true, nftBridge: true, tun: true }, featureSource: {}, conflicts: [], qemuBinary: '/q', dnsmasqBinary: '/usr/sbin/dnsmasq', missingFiles: [] };

test('dnsmasq config: bound to the bridge, no upstream, names and static leases for every member', () => {
  const s = realize(t, { stateDir: '/st/dn' });
  const c = s.dnsmasq.lan.config.split('\n');
  for (const l of ['interface=dn-lan', 'bind-interfaces', 'listen-address=10.97.0.1', 'no-resolv', 'no-hosts', 'local=/lan/', 'pid-file=/st/dn/dnsmasq/lan.pid', 'dhcp-leasefile=/st/dn/dnsmasq/lan.leases']) assert.ok(c.includes(l), l);
  assert.ok(A.startsWith('10.97.0.') && V.startsWith('10.97.0.') && A !== V);
  assert.ok(c.includes(`host-record=a.lan,${A}`) && c.includes(`host-record=v.lan,${V}`));
  assert.ok(c.includes(`host-record=b.lan,${ipOf(t, 'b', 'lan')}`) && s.dnsmasq.data.config.split('\n').includes(`host-record=b.data,${ipOf(t, 'b', 'data')}`));
  assert.ok(c.includes(`dhcp-host=${nicMac('dn', 'a', 'lan')},${A},a`), 'derived MAC for a netns node');
  assert.ok(c.includes(`dhcp-host=52:54:00:00:00:09,${V},v`), 'given MAC for the VM');
  assert.ok(c.includes('dhcp-range=10.97.0.0,static,255.255.255.0,12h'));
  assert.ok(s.dnsmasq.data.config.includes('port=') === false && !s.dnsmasq.data.config.includes('dhcp-range'), 'DNS only on data');
});

test('resolv.conf of a netns node: the first DNS bridge in NIC order, every DNS bridge as search domain', () => {
  const s = realize(t, { stateDir: '/st/dn' });
  assert.equal(s.resolv['pv-dn-b'], '# provium:dn:node:b\nnameserver 10.98.0.1\nsearch data lan\noptions timeout:1 attempts:2\n');
  assert.equal(s.resolv['pv-dn-a'], '# provium:dn:node:a\nnameserver 10.97.0.1\nsearch lan\noptions timeout:1 attempts:2\n');
});

test('plan: dnsmasq starts after the bridges exist; a missing dnsmasq is a plan error', () => {
  const plan = computePlan(t, emptyState(), facts, { hostNetns: 'h', stateDir: '/st/dn' });
  const labels = plan.invocations.map((i) => i.label);
  assert.ok(labels.indexOf('host links') < labels.indexOf('start dnsmasq lan'));
  const start = plan.invocations.find((i) => i.label === 'start dnsmasq lan')!;
  assert.deepEqual(start.argv, ['ip', 'netns', 'exec', 'h', 'dnsmasq', '--conf-file=/st/dn/dnsmasq/lan.conf']);
  assert.equal(start.writeFiles![0].path, '/st/dn/dnsmasq/lan.conf');
  const bad = computePlan(t, emptyState(), { ...facts, dnsmasqBinary: undefined }, { stateDir: '/st/dn' });
  assert.match(bad.errors[0].summary, /dnsmasq not found/);
  assert.equal(bad.invocations.length, 0);
});

test('IPv6: host ::1, EUI-64 from the NIC MAC (the SLAAC address a guest takes), static ip6 wins; AAAA records; mac_prefix', () => {
  const t6 = checkTopology('/tmp/d6.yaml', `lab: d6
mac_prefix: "52:54:00"
nodes: { a: { kind: netns }, b: { kind: netns } }
bridges:
  lan: { subnet: 10.97.0.0/24, subnet6: "fd00:97:0:0::/64", dns: true, dhcp: true, attach: [a, { node: b, ip6: "fd00:97::0b" }] }
`).topology!;
  const lan = t6.bridges.lan;
  assert.equal(lan.subnet6, 'fd00:97::/64');
  assert.equal(lan.hostAddr6, 'fd00:97::1/64');
  const mac = nicMac('d6', 'a', 'lan', '52:54:00');
  assert.match(mac, /^52:54:00:/);
  const b = mac.split(':').map((x) => parseInt(x, 16));
  const want = `fd00:97::${((b[0] ^ 2) << 8 | b[1]).toString(16)}:${(b[2] << 8 | 0xff).toString(16)}:${(0xfe00 | b[3]).toString(16)}:${(b[4] << 8 | b[5]).toString(16)}/64`;
  assert.equal(lan.attach[0].ip6, want);
  assert.equal(lan.attach[1].ip6, 'fd00:97::b/64');
  const s = realize(t6, { stateDir: '/st/d6' });
  assert.ok(s.dnsmasq.lan.config.includes(`host-record=a.lan,${ipOf(t6, 'a', 'lan')},${want.split('/')[0]}`));
  assert.ok(s.dnsmasq.lan.config.includes('enable-ra'));
  assert.deepEqual(s.namespaces['pv-d6-a'].nics.eth0.addrs6, [want]);
  assert.equal(s.namespaces['pv-d6-a'].nics.eth0.mac, mac);
});
