/**
 * Routers without a host: loading (`kind: router`, `gateway:`, `nat:`, `firewall:`,
 * `default_route:`), the routes routing adds (defaults through gateways, return routes
 * of untranslated prefixes), the router's nft table (its text, and the state observe
 * reads back from real `nft -j` output recorded in test/fixtures/router/), and plans
 * of in-place changes: NAT change (table rewritten in one transaction, conntrack
 * flushed), default-route switch (routes only), replug (a port moved, not re-created).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { checkTopology } from '../../src/load/index.js';
import { nodeRoutes, realize } from '../../src/plan/realize.js';
import { computePlan } from '../../src/plan/index.js';
import type { HostFacts } from '../../src/model/state.js';
import { NAT_PRESETS } from '../../src/model/router.js';
import { desiredRouterTable, natCode, parseNatCode, parseRouterTable, routerTableText } from '../../src/plan/router-nft.js';
import { routerNftInput } from '../../src/plan/routers.js';
import { toRouterState } from '../../src/observe/routers.js';
import { repoDir } from './helpers.js';

const ISSUE = `lab: px13a
nodes:
  home:   { kind: router, nat: home }
  office: { kind: router, nat: { mapping: address-and-port-dependent, filtering: address-and-port-dependent, hairpin: false } }
  isp:    { kind: router, nat: cgnat }
  alice:  { kind: netns }
  bob:    { kind: netns, default_route: cell }
  stun1:  { kind: netns }
bridges:
  wan:      { subnet: 198.51.100.0/24, attach: [home, office, isp, stun1] }
  home-lan: { subnet: 192.168.1.0/24, gateway: home, attach: [home, alice] }
  cell:     { subnet: 100.64.0.0/24, gateway: isp, attach: [isp, bob] }
  wifi:     { subnet: 192.168.7.0/24, gateway: office, attach: [office, bob] }
`;

const load = (text: string) => {
  const r = checkTopology('/tmp/routers.yaml', text);
  assert.deepEqual(r.diagnostics.filter((d) => d.severity === 'error').map((d) => d.summary), [], 'valid');
  return r.topology!;
};
const routes = (t: ReturnType<typeof load>, n: string) => nodeRoutes(t, n).map((r) => `${r.dst} via ${r.via}`);
const facts = (over: Partial<HostFacts> = {}): HostFacts => ({
  features: { netem: true, htb: true, nftBridge: true, tun: true }, featureSource: {}, conflicts: [], missingFiles: [], conntrackBinary: '/usr/sbin/conntrack', ...over,
});
const ctx = { hostNetns: 'h', stateDir: '/st/px13a' };

test('a bridge with gateway: R gives R the first address (and ::1), the host side none; routers get upstream and downstream', () => {
  const t = load(ISSUE);
  const lan = t.bridges['home-lan'];
  assert.equal(lan.gateway, 'home');
  assert.equal(lan.gatewayAddr, '192.168.1.1/24');
  assert.equal(lan.hostAddr, undefined, 'a pure L2 segment on the host side');
  assert.equal(lan.attach.find((a) => a.node === 'home')!.ip, '192.168.1.1/24');
  assert.equal(t.bridges.wan.hostAddr, '198.51.100.1/24', 'a bridge without gateway keeps its host address');
  assert.deepEqual({ ...t.nodes.home.router, nat: undefined }, { upstream: 'wan', downstream: ['home-lan'], nat: undefined });
  assert.deepEqual(t.nodes.home.router!.nat, { ...NAT_PRESETS.home, preset: 'home' });
  assert.equal(t.nodes.office.router!.nat!.mapping, 'address-and-port-dependent');
  assert.equal(t.nodes.office.router!.nat!.hairpin, false);
  assert.equal(t.nodes.bob.defaultRoute, 'cell');
  const s = realize(t, {});
  assert.deepEqual(s.links['px13a-home-lan'].addrs, []);
  assert.equal(s.namespaces['pv-px13a-home'].owner, 'provium:px13a:router:home', 'a router namespace is marked as one');
  assert.deepEqual(Object.keys(s.routers!).sort(), ['pv-px13a-home', 'pv-px13a-isp', 'pv-px13a-office']);
  assert.equal(s.routers!['pv-px13a-home'].ctUdp, 300);
});

test('routes: members default through their gateway, default_route picks the bridge, chained routers default through the next one', () => {
  const t = load(ISSUE);
  assert.deepEqual(routes(t, 'alice'), ['default via 192.168.1.1']);
  assert.deepEqual(routes(t, 'bob'), ['default via 100.64.0.1'], 'default_route: cell');
  const t2 = load(ISSUE.replace('default_route: cell', 'default_route: wifi'));
  assert.deepEqual(routes(t2, 'bob'), ['default via 192.168.7.1']);
  const t3 = load(ISSUE.replace('bob:    { kind: netns, default_route: cell }', 'bob:    { kind: netns }'));
  assert.deepEqual(routes(t3, 'bob'), ['default via 100.64.0.1'], 'without default_route: the first gateway bridge by name (cell < wifi)');
  assert.deepEqual(routes(t, 'home'), [], 'the wan segment has no gateway: no default route');
  assert.deepEqual(routes(t, 'stun1'), [], 'every router translates: nothing to route back');
  // Double NAT: home behind the CGNAT.
  const chained = load(`lab: dbl
nodes:
  isp: { kind: router, nat: cgnat }
  home: { kind: router, nat: home }
  alice: { kind: netns }
  stun: { kind: netns }
bridges:
  wan: { subnet: 198.51.100.0/24, attach: [isp, stun] }
  cgn: { subnet: 100.64.0.0/24, gateway: isp, attach: [isp, home] }
  lan: { subnet: 192.168.1.0/24, gateway: home, attach: [home, alice] }
`);
  assert.deepEqual(chained.nodes.home.router!.upstream, 'cgn');
  assert.deepEqual(routes(chained, 'home'), ['default via 100.64.0.1']);
  assert.deepEqual(routes(chained, 'alice'), ['default via 192.168.1.1']);
});

test('return routes: untranslated prefixes (IPv6 always, IPv4 behind nat: none) are routed from the upstream members, recursively', () => {
  const t = load(`lab: rr
nodes:
  edge: { kind: router, nat: home }
  inner: { kind: router }
  h: { kind: netns }
  s: { kind: netns }
bridges:
  wan: { subnet: 198.51.100.0/24, subnet6: "2001:db8:1::/64", attach: [edge, s] }
  mid: { subnet: 10.1.0.0/24, subnet6: "2001:db8:2::/64", gateway: edge, attach: [edge, inner] }
  lan: { subnet: 10.2.0.0/24, subnet6: "2001:db8:3::/64", gateway: inner, attach: [inner, h] }
`);
  const edgeWan6 = t.bridges.wan.attach.find((a) => a.node === 'edge')!.ip6!.split('/')[0];
  const innerMid = t.bridges.mid.attach.find((a) => a.node === 'inner')!;
  assert.deepEqual(routes(t, 's'), [`2001:db8:2::/64 via ${edgeWan6}`, `2001:db8:3::/64 via ${edgeWan6}`], 'IPv6 routed, IPv4 translated by edge');
  assert.deepEqual(routes(t, 'edge'), [`10.2.0.0/24 via ${innerMid.ip!.split('/')[0]}`, `2001:db8:3::/64 via ${innerMid.ip6!.split('/')[0]}`], 'inner has nat: none: edge routes its IPv4 too');
  assert.deepEqual(routes(t, 'inner'), ['default via 10.1.0.1', 'default via 2001:db8:2::1']);
  assert.deepEqual(routes(t, 'h'), ['default via 10.2.0.1', 'default via 2001:db8:3::1']);
});

test('NAT codes round-trip for every preset; the text names each behaviour\'s rules', () => {
  for (const [name, p] of Object.entries(NAT_PRESETS)) {
    if (!p) continue;
    assert.deepEqual(parseNatCode(natCode(p)), p, name);
  }
  const t = load(ISSUE);
  const text = routerTableText(routerNftInput(t, t.nodes.isp));
  assert.match(text, /nat-filter-ad/, 'address-dependent filtering');
  assert.match(text, /update @nat_contacted/);
  assert.doesNotMatch(routerTableText(routerNftInput(t, t.nodes.office)), /nat_out4|dnat/, 'APDM/APDF, no hairpin: the kernel\'s own mappings, no inbound DNAT');
  assert.match(routerTableText(routerNftInput(t, t.nodes.office)), /masquerade random/);
});

test('observe reads back exactly what provium writes: recorded nft -j output of a home and a cgnat router', () => {
  const t = load(ISSUE);
  for (const node of ['home', 'isp']) {
    const json = readFileSync(repoDir(`test/fixtures/router/${node}.nft.json`), 'utf8');
    const observed = parseRouterTable(JSON.parse(json), 'px13a');
    const desired = desiredRouterTable(routerNftInput(t, t.nodes[node]));
    assert.deepEqual(observed, desired, node);
  }
  const sys = readFileSync(repoDir('test/fixtures/router/home.sysctl.txt'), 'utf8');
  const r = toRouterState('pv-px13a-home', 'home', 'px13a', readFileSync(repoDir('test/fixtures/router/home.nft.json'), 'utf8'), sys);
  assert.equal(r.ipForward, true);
  assert.equal(r.ctUdp, 300);
  assert.equal(r.ctTcpEstablished, 7440);
  assert.equal(parseRouterTable({ nftables: [] }, 'px13a'), undefined);
});

test('plan: a NAT change is one update at node.R.nat (table rewritten in one transaction, then sysctl and conntrack flush)', () => {
  const before = load(ISSUE);
  const after = load(ISSUE.replace('home:   { kind: router, nat: home }', 'home:   { kind: router, nat: corporate }'));
  const plan = computePlan(after, realize(before, {}), facts(), ctx);
  assert.deepEqual(plan.errors, []);
  assert.deepEqual(plan.changes.map((c) => `${c.action} ${c.address}`), ['update node.home.nat']);
  assert.deepEqual(plan.invocations.map((i) => i.label), ['router pv-px13a-home nft', 'router pv-px13a-home sysctl', 'router pv-px13a-home conntrack flush']);
  assert.match(plan.invocations[0].stdin!, /^delete table inet provium_px13a\ntable inet provium_px13a \{/, 'old table deleted in the same transaction');
  assert.deepEqual(plan.invocations[1].argv.slice(-3), ['net.netfilter.nf_conntrack_udp_timeout=120', 'net.netfilter.nf_conntrack_udp_timeout_stream=120', 'net.netfilter.nf_conntrack_tcp_timeout_established=3600']);
  const noTool = computePlan(after, realize(before, {}), facts({ conntrackBinary: undefined }), ctx);
  assert.match(noTool.errors.map((e) => e.summary).join('\n'), /conntrack not found/);
  // A firewall change likewise.
  const fw = computePlan(load(ISSUE.replace('isp:    { kind: router, nat: cgnat }', 'isp:    { kind: router, nat: cgnat, firewall: corporate }')), realize(before, {}), facts(), ctx);
  assert.deepEqual(fw.changes.map((c) => `${c.action} ${c.address}`), ['update node.isp.firewall']);
  assert.ok(fw.invocations.some((i) => i.label === 'router pv-px13a-isp conntrack flush'));
});

test('plan: a default-route switch is a route change; a replug moves the port in place', () => {
  const before = load(ISSUE);
  const sw = computePlan(load(ISSUE.replace('default_route: cell', 'default_route: wifi')), realize(before, {}), facts(), ctx);
  assert.deepEqual(sw.changes.map((c) => `${c.action} ${c.address}`), ['update node.bob.routes']);
  assert.deepEqual(sw.invocations.map((i) => i.label), ['namespace pv-px13a-bob']);
  const moved = ISSUE.replace('attach: [home, alice] }', 'attach: [home] }').replace('attach: [isp, bob] }', 'attach: [isp, bob, alice] }');
  const rp = computePlan(load(moved), realize(before, {}), facts(), ctx);
  assert.deepEqual(rp.changes.map((c) => `${c.action} ${c.address}${c.movedFrom ? ` <- ${c.movedFrom}` : ''}`), [
    'update bridge.cell.attach.alice <- bridge.home-lan.attach.alice', 'update node.alice.routes',
  ]);
  assert.ok(rp.invocations[0].stdin!.includes('link set px13a-alice-0 master px13a-cell'), 'the port moves to the other bridge');
  assert.ok(!rp.invocations.some((i) => /link del|netns (add|del)/.test(i.stdin ?? '')), 'nothing is re-created');
});

test('a netns node turned router is a new namespace (its mark changed)', () => {
  const before = load(ISSUE.replace('stun1:  { kind: netns }', 'stun1:  { kind: netns }\n  x: { kind: netns }').replace('attach: [home, office, isp, stun1]', 'attach: [home, office, isp, stun1, x]'));
  const after = load(ISSUE.replace('stun1:  { kind: netns }', 'stun1:  { kind: netns }\n  x: { kind: router }').replace('attach: [home, office, isp, stun1]', 'attach: [home, office, isp, stun1, x]'));
  const plan = computePlan(after, realize(before, {}), facts(), ctx);
  assert.ok(plan.changes.some((c) => c.address === 'node.x' && c.action === 'replace'), plan.changes.map((c) => `${c.action} ${c.address}`).join(', '));
});

test('the known hole-punching matrix (RFC 4787 model): EIM both sides succeeds, APDM both fails, APDM against APDF fails, APDM against EIF or ADF succeeds', async () => {
  const { predictPunch } = await import('../e2e/nat-model.js');
  const b = (m: string, f: string) => ({ mapping: m, filtering: f }) as Parameters<typeof predictPunch>[0];
  const EI = 'endpoint-independent', AD = 'address-dependent', APD = 'address-and-port-dependent';
  assert.equal(predictPunch(b(EI, APD), b(EI, APD)), true, 'home vs home');
  assert.equal(predictPunch(b(APD, APD), b(APD, APD)), false, 'symmetric vs symmetric');
  assert.equal(predictPunch(b(APD, APD), b(EI, APD)), false, 'symmetric vs port-restricted');
  assert.equal(predictPunch(b(EI, APD), b(APD, APD)), false, 'port-restricted vs symmetric');
  assert.equal(predictPunch(b(APD, APD), b(EI, EI)), true, 'symmetric vs full cone');
  assert.equal(predictPunch(b(APD, APD), b(EI, AD)), true, 'symmetric vs restricted cone');
  assert.equal(predictPunch(null, b(APD, APD)), true, 'public vs symmetric');
  assert.equal(predictPunch(b(AD, APD), b(AD, APD)), false, 'address-dependent mapping toward a new address is a new mapping');
});

test('the known TCP hole-punching matrix: simultaneous open needs endpoint-independent mapping (or no NAT) on both sides', async () => {
  const { predictTcpPunch } = await import('../e2e/nat-model.js');
  const b = (m: string, f: string) => ({ mapping: m, filtering: f }) as Parameters<typeof predictTcpPunch>[0];
  const EI = 'endpoint-independent', APD = 'address-and-port-dependent';
  assert.equal(predictTcpPunch(b(EI, APD), b(EI, APD)), true);
  assert.equal(predictTcpPunch(null, b(EI, APD)), true);
  assert.equal(predictTcpPunch(b(APD, APD), b(EI, 'endpoint-independent')), false);
  assert.equal(predictTcpPunch(null, b(APD, APD)), false);
});

test('rollback: a router read back from the host is rewritten exactly as provium wrote it', async () => {
  const { routerItems } = await import('../../src/plan/router-items.js');
  const t = load(ISSUE);
  const sys = readFileSync(repoDir('test/fixtures/router/home.sysctl.txt'), 'utf8');
  for (const node of ['home', 'isp']) {
    const observed = toRouterState(`pv-px13a-${node}`, node, 'px13a', readFileSync(repoDir(`test/fixtures/router/${node}.nft.json`), 'utf8'), sys);
    const items = routerItems({ dnsmasq: {}, resolv: {}, vms: {}, namespaces: {}, links: {}, shaping: {}, nft: {}, routers: { [observed.ns]: observed } });
    assert.equal((items[0].meta as { nftText: string }).nftText, routerTableText(routerNftInput(t, t.nodes[node])), node);
  }
});
