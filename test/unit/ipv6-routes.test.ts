/**
 * The planner's IPv6 routing items (pure, no host): routes inside nodes to routed
 * bridges' subnet6 and the IPv6 default route via the host side's ::1,
 * net.ipv6.conf.all.forwarding (set while the lab routes IPv6, restored to the value
 * found before), the `masq6`/`wan6` elements of the inet table, and the reader of
 * `ip -j route show table all`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkTopology } from '../../src/load/index.js';
import { needsForwarding6, nodeRoutes, realize } from '../../src/plan/realize.js';
import { computePlan } from '../../src/plan/index.js';
import { emptyState, type HostFacts } from '../../src/model/state.js';
import { defaultRouteDevs, toNamespaceState, type IpRoute } from '../../src/observe/parse.js';

const FILE = `lab: v6
nodes: { a: { kind: netns }, c: { kind: netns }, p: { kind: netns } }
bridges:
  lan:
    subnet: 10.40.0.0/24
    subnet6: "fd00:40::/64"
    attach: [a]
    routes: [data, plain]
    uplink: true
  data: { subnet: 10.41.0.0/24, subnet6: "fd00:41::/64", attach: [c] }
  plain: { subnet: 10.42.0.0/24, attach: [p] }
`;
const load = (text: string) => {
  const r = checkTopology('/tmp/v6.yaml', text);
  assert.deepEqual(r.diagnostics.filter((d) => d.severity === 'error'), [], 'valid');
  return r.topology!;
};
const t = load(FILE);
const facts = (over: Partial<HostFacts> = {}): HostFacts => ({
  features: { netem: true, htb: true, nftBridge: true, tun: true }, featureSource: {}, conflicts: [], missingFiles: [], defaultRouteDev: 'eth0', defaultRouteDev6: 'eth1', ...over,
});
const ctx = { hostNetns: 'h', stateDir: '/st/v6' };

test('node routes: IPv6 only between bridges that both have subnet6, default via the uplink bridge\'s ::1; a bridge without subnet6 is routed over IPv4 only', () => {
  assert.deepEqual(nodeRoutes(t, 'a').map((r) => `${r.dst} via ${r.via}`), [
    '10.41.0.0/24 via 10.40.0.1', '10.42.0.0/24 via 10.40.0.1', 'default via 10.40.0.1', 'default via fd00:40::1', 'fd00:41::/64 via fd00:40::1',
  ]);
  assert.deepEqual(nodeRoutes(t, 'c').map((r) => `${r.dst} via ${r.via}`), ['10.40.0.0/24 via 10.41.0.1', 'fd00:40::/64 via fd00:41::1']);
  assert.deepEqual(nodeRoutes(t, 'p').map((r) => `${r.dst} via ${r.via}`), ['10.40.0.0/24 via 10.42.0.1'], 'plain has no subnet6: no IPv6 route to or from it');
});

test('IPv6 forwarding is needed only when a bridge with subnet6 routes to another with subnet6 or has uplink', () => {
  assert.equal(needsForwarding6(t), true);
  const v4only = load(`lab: v4
nodes: { a: { kind: netns }, p: { kind: netns } }
bridges:
  lan: { subnet: 10.40.0.0/24, subnet6: "fd00:40::/64", attach: [a], routes: [plain] }
  plain: { subnet: 10.42.0.0/24, attach: [p] }
`);
  assert.equal(needsForwarding6(v4only), false, 'subnet6 routed to a bridge without subnet6: IPv4 only, no error');
  const s = realize(v4only, { defaultRouteDev: 'eth0' });
  assert.equal(s.ipForward, true);
  assert.equal(s.ip6Forward, undefined, 'IPv6 forwarding left alone');
  assert.deepEqual(s.namespaces['pv-v4-a'].routes, [{ dst: '10.42.0.0/24', via: '10.40.0.1' }]);
});

test('plan from an empty host: IPv6 routes in the node batches, both forwarding sysctls in one process, masq6/wan6 elements in the nft transaction', () => {
  const plan = computePlan(t, emptyState(), facts(), ctx);
  assert.deepEqual(plan.errors, []);
  const addrs = plan.changes.map((c) => `${c.action} ${c.address}`);
  for (const a of ['create host.ipv6_forwarding', 'create host.uplink_interface_ipv6', 'create bridge.lan.uplink', 'create node.a.routes']) assert.ok(addrs.includes(a), `${a} in ${addrs.join(', ')}`);
  const items = plan.changes.flatMap((c) => c.items.map((i) => i.key));
  for (const k of ['sysctl:ip6_forward', 'elem:inet:masq6:fd00:40::/64', 'elem:inet:wan6:eth1', 'elem:inet:wan:eth0', 'elem:inet:masq:10.40.0.0/24']) assert.ok(items.includes(k), k);
  assert.ok(!items.some((k) => k.startsWith('elem:inet:masq6:') && k !== 'elem:inet:masq6:fd00:40::/64'), 'only the uplinked bridge\'s subnet6 is masqueraded');
  const labels = plan.invocations.map((i) => i.label);
  assert.equal(labels.filter((l) => l === 'sysctl').length, 1);
  const sysctl = plan.invocations.find((i) => i.label === 'sysctl')!;
  assert.deepEqual(sysctl.argv, ['ip', 'netns', 'exec', 'h', 'sysctl', '-q', '-w', 'net.ipv6.conf.all.forwarding=1', 'net.ipv4.ip_forward=1']);
  const a = plan.invocations.find((i) => i.label === 'namespace pv-v6-a')!.stdin!.split('\n');
  assert.ok(a.includes('route replace default via fd00:40::1') && a.includes('route replace fd00:41::/64 via fd00:40::1'), a.join('\n'));
  assert.ok(a.indexOf('route replace default via fd00:40::1') > a.findIndex((l) => l.startsWith('addr add fd00:40::')), 'routes after the addresses they need');
  assert.deepEqual(a.slice(-3), ['addr show', 'route show table all', ''], 'the read-back sees both families');
  const nft = plan.invocations.find((i) => i.label === 'nftables transaction')!.stdin!;
  assert.match(nft, /set masq6 \{ type ipv6_addr; flags interval;/);
  assert.match(nft, /^add element inet provium_v6 masq6 \{ fd00:40::\/64 comment "bridge\.lan\.uplink" \}$/m);
  assert.match(nft, /^add element inet provium_v6 wan6 \{ "eth1" comment "host\.uplink_interface_ipv6" \}$/m);
});

test('without an IPv6 default route, IPv6 is masqueraded out of the IPv4 default-route interface; no error', () => {
  const plan = computePlan(t, emptyState(), facts({ defaultRouteDev6: undefined }), ctx);
  assert.deepEqual(plan.errors, []);
  const items = plan.changes.flatMap((c) => c.items.map((i) => i.key));
  assert.ok(items.includes('elem:inet:wan6:eth0'), items.filter((k) => k.includes('wan')).join());
});

test('a host that has what the file wants plans nothing (IPv6 routes, forwarding and masquerade compare equal)', () => {
  const have = realize(t, { defaultRouteDev: 'eth0', defaultRouteDev6: 'eth1', stateDir: ctx.stateDir });
  const plan = computePlan(t, have, facts(), ctx);
  assert.deepEqual(plan.changes.map((c) => `${c.action} ${c.address}`), []);
});

test('IPv6 forwarding goes back to the value found before once the lab stops routing IPv6; untouched without a recorded value', () => {
  const v4only = load(FILE.replace('subnet6: "fd00:41::/64", ', '').replace('    uplink: true\n', ''));
  assert.equal(needsForwarding6(v4only), false);
  const have = { ...realize(t, { defaultRouteDev: 'eth0', defaultRouteDev6: 'eth1' }), ip6Forward: true };
  const restore = computePlan(v4only, have, facts(), ctx, undefined, false);
  const c = restore.changes.find((x) => x.address === 'host.ipv6_forwarding');
  assert.equal(c?.action, 'update');
  assert.deepEqual(c!.items[0].fields, [{ field: 'value', before: 1, after: 0 }]);
  assert.ok(restore.invocations.find((i) => i.label === 'sysctl')!.argv.includes('net.ipv6.conf.all.forwarding=0'));
  assert.ok(restore.changes.some((x) => x.address === 'node.a.routes'), 'the IPv6 routes go');
  const keep = computePlan(v4only, { ...have, ip6Forward: undefined }, facts(), ctx);
  assert.ok(!keep.changes.some((x) => x.address === 'host.ipv6_forwarding'), 'nothing recorded, not read: left alone');
});

test('reader: `route show table all` keeps main-table routes with a gateway of both families, not the kernel\'s, router advertisements\' or other tables\'', () => {
  // Trimmed from `ip -j -n NS route show table all` on a node of a bridge with subnet6 and dhcp (iproute2 6.1).
  const routes: IpRoute[] = [
    { dst: 'default', gateway: '10.77.0.1', dev: 'eth0' },
    { dst: '10.77.0.0/24', dev: 'eth0', protocol: 'kernel' },
    { dst: '10.78.0.0/24', gateway: '10.77.0.1', dev: 'eth0' },
    { dst: '10.77.0.108', dev: 'eth0', table: 'local', protocol: 'kernel' },
    { dst: 'fd00:78::/64', gateway: 'fd00:77::1', dev: 'eth0', pref: 'medium' },
    { dst: 'fd00:77::/64', dev: 'eth0', protocol: 'kernel', pref: 'medium' },
    { dst: 'default', gateway: 'fe80::a438:4eff:fe3f:cd69', dev: 'eth0', protocol: 'ra', pref: 'medium' },
    { dst: 'default', gateway: 'fd00:77::1', dev: 'eth0', pref: 'medium' },
    { dst: 'default', gateway: '10.77.0.254', dev: 'eth0', table: '100' },
    { dst: 'fe80::1', dev: 'eth0', table: 'local', protocol: 'kernel', pref: 'medium' },
  ];
  const ns = toNamespaceState('pv-x-a', 'a', [], routes);
  assert.deepEqual(ns.routes.map((r) => `${r.dst} via ${r.via}`), ['10.78.0.0/24 via 10.77.0.1', 'default via 10.77.0.1', 'default via fd00:77::1', 'fd00:78::/64 via fd00:77::1']);
  assert.deepEqual(defaultRouteDevs([
    { dst: 'default', gateway: '10.0.0.1', dev: 'vpn0', table: '100' },
    { dst: 'default', dev: 'ppp0', pref: 'medium' },
    { dst: 'default', gateway: '192.0.2.1', dev: 'eth0' },
  ]), { v4: 'eth0', v6: 'ppp0' }, 'a dev-only IPv6 default route is told by "pref"; other tables are ignored');
  assert.deepEqual(defaultRouteDevs([{ dst: 'default', gateway: '192.0.2.1', dev: 'eth0' }]), { v4: 'eth0', v6: undefined });
});
