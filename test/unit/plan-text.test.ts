/**
 * The plan at the level of the file (render/plan-file.ts), one golden file per change
 * kind in test/fixtures/plan-text/. Plans are computed without root against the recorded
 * lab `fx` (test/fixtures/applied, empty, drifted, one-field) with the file changed one
 * way at a time. `UPDATE_GOLDEN=1` rewrites the golden files (review the diff).
 * Every golden file is also checked for host internals that must not show.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { planFixture, FIXTURES, Replayer, fixtureFiles, fixtureHostNetns } from './replay.js';
import { loadTopology } from '../../src/load/index.js';
import { planFor } from '../../src/apply/index.js';
import { emptyTopology } from '../../src/plan/index.js';
import { planNames, renderPlanFile, type ProcessInfo } from '../../src/render/plan-file.js';
import type { Topology } from '../../src/model/topology.js';
import type { HostFacts } from '../../src/model/state.js';
import { checkTopology } from '../../src/load/index.js';
import { computePlan } from '../../src/plan/index.js';
import { realize } from '../../src/plan/realize.js';
import { emptyState } from '../../src/model/state.js';
import { tempDir } from './helpers.js';

process.env.PROVIUM_STATE_DIR = '/nonexistent/provium-unit';
const GOLDEN = new URL('plan-text/', FIXTURES);
const APPLIED = readFileSync(new URL('applied/topology.yaml', FIXTURES), 'utf8');

/** The recorded lab's file with one change; returns its path. */
function variant(edit: (text: string) => string): string {
  const text = edit(APPLIED);
  assert.notEqual(text, APPLIED, 'the edit changed the file');
  const file = `${tempDir('pv-unit-')}/fx.yaml`;
  writeFileSync(file, text);
  return file;
}

async function render(fixture: string, opts: { file?: string; features?: Partial<Record<string, boolean>>; destroy?: boolean; replace?: string[]; processes?: Map<string, ProcessInfo[]> } = {}): Promise<string> {
  const dir = new URL(`${fixture}/`, FIXTURES);
  const t: Topology = loadTopology(opts.file ?? new URL('topology.yaml', dir).pathname);
  let planned;
  if (opts.destroy || opts.replace) {
    const target = opts.destroy ? emptyTopology(t.lab, t.file) : t;
    planned = await planFor(target, { hostNetns: fixtureHostNetns(dir), replace: opts.replace }, new Replayer(new URL('calls.jsonl', dir)), fixtureFiles(dir, opts.features));
  } else {
    planned = await planFixture(fixture, opts.file, opts.features);
  }
  assert.deepEqual(planned.plan.errors, []);
  return renderPlanFile(planned.plan, planNames(t, [planned.observation.state], opts.processes), { color: false });
}

function golden(name: string, text: string): void {
  const path = new URL(`${name}.txt`, GOLDEN);
  if (process.env.UPDATE_GOLDEN === '1' || !existsSync(path)) {
    mkdirSync(GOLDEN, { recursive: true });
    writeFileSync(path, text);
  }
  assert.equal(text, readFileSync(path, 'utf8'), `golden file test/fixtures/plan-text/${name}.txt (UPDATE_GOLDEN=1 rewrites it)`);
  // No host internals in the file-level text.
  for (const bad of [/HTB|classid|minor|major|qdisc/i, /\bloUp\b|addrs6: \[\]|latency: 0 ms/, /provium_fx|fx-[a-z]+-\d\b|pv-fx-/]) assert.doesNotMatch(text, bad, `${name}: no host internals`);
}

describe('plan text at the level of the file (golden files)', () => {
  test('create: a whole lab on an empty host', async () => golden('create-lab', await render('empty')));
  test('no changes', async () => golden('no-changes', await render('applied')));
  test('update: one bandwidth', async () => golden('update-bandwidth', await render('one-field')));
  test('drift by hand: a port deleted, a partition element removed, a route removed', async () => golden('drift', await render('drifted')));
  test('update: drop 2.5 % -> 5 %', async () => golden('update-drop', await render('applied', { file: variant((x) => x.replace('drop_pct: 2.5', 'drop_pct: 5')) })));
  test('create: a partition', async () => golden('add-partition', await render('applied', { file: variant((x) => x.replace('- { from: a, to: c }', '- { from: a, to: c }\n      - { from: d, to: b }')) })));
  test('update: a NIC link up -> down', async () => golden('link-down', await render('applied', { file: variant((x) => x.replace('- { node: b, ip: 10.40.0.20/24 }', '- { node: b, ip: 10.40.0.20/24, link: down }')) })));
  test('update: latency and jitter added to a pair (netem present)', async () => golden('add-latency', await render('applied', { file: variant((x) => x.replace('drop_pct: 2.5,', 'drop_pct: 2.5, latency_ms: 20, jitter_ms: 4,')), features: { netem: true } })));
  test('update: whole-bridge bandwidth and drop changed', async () => golden('update-whole-bridge', await render('applied', { file: variant((x) => x.replace('- { drop_pct: 1, bandwidth_bps: 10000000 }', '- { drop_pct: 2, bandwidth_bps: 20000000 }')) })));
  test('delete: a pair impairment removed', async () => golden('remove-impairment', await render('applied', { file: variant((x) => x.replace('      - { from: a, to: d, drop_pct: 2.5, bandwidth_bps: 1000000 }\n', '')) })));
  test('delete: isolation, uplink and a forward removed; an address changed', async () => golden('remove-l3', await render('applied', { file: variant((x) => x.replace('    isolate: [d]\n', '').replace('    uplink: true\n', '').replace("      - { host_port: 5353, node: b, port: 53, proto: udp }\n", '').replace('10.40.0.20/24', '10.40.0.21/24')) })));
  test('replace: forced with --replace', async () => golden('replace-forced', await render('applied', { replace: ['bridge.lan.attach.a'] })));
  test('destroy: everything, naming the processes it ends', async () => {
    const processes = new Map([['pv-fx-a', [{ pid: 4242, cmd: 'iperf3 -s' }, { pid: 4250, cmd: 'sleep 600' }]]]);
    golden('destroy', await render('applied', { destroy: true, processes }));
  });
});

/** Routers (kind: router), planned without a host: the lab realized one way, then the file changed another. */
const ROUTERS = `lab: rt
nodes:
  home:  { kind: router, nat: home }
  isp:   { kind: router, nat: cgnat }
  alice: { kind: netns }
  bob:   { kind: netns }
  stun:  { kind: netns }
bridges:
  wan:      { subnet: 198.51.100.0/24, attach: [home, isp, stun] }
  home-lan: { subnet: 192.168.1.0/24, gateway: home, attach: [home, alice] }
  cell:     { subnet: 100.64.0.0/24, gateway: isp, attach: [isp, bob] }
`;

function routerPlanText(before: string | undefined, after: string): string {
  const load = (text: string) => {
    const r = checkTopology('/tmp/rt.yaml', text);
    assert.deepEqual(r.diagnostics.filter((d) => d.severity === 'error').map((d) => d.summary), []);
    return r.topology!;
  };
  const facts: HostFacts = { features: { netem: true, htb: true, nftBridge: true, tun: true }, featureSource: {}, conflicts: [], missingFiles: [], conntrackBinary: '/usr/sbin/conntrack' };
  const t = load(after);
  const observed = before === undefined ? emptyState() : realize(load(before), {});
  const plan = computePlan(t, observed, facts, { hostNetns: 'h', stateDir: '/st/rt' });
  assert.deepEqual(plan.errors, []);
  const text = renderPlanFile(plan, planNames(t, [observed]), { color: false });
  assert.doesNotMatch(text, /provium_rt|pv-rt-|null ->|sets:|chains:/, 'no host internals');
  return text;
}

describe('plan text of routers (golden files)', () => {
  test('create: routers with NAT, their LANs and nodes', () => golden('router-create', routerPlanText(undefined, ROUTERS)));
  test('update: a NAT preset changed (home -> corporate)', () => golden('router-nat', routerPlanText(ROUTERS, ROUTERS.replace('home:  { kind: router, nat: home }', 'home:  { kind: router, nat: corporate }'))));
  test('update: a firewall added', () => golden('router-firewall', routerPlanText(ROUTERS, ROUTERS.replace('isp:   { kind: router, nat: cgnat }', 'isp:   { kind: router, nat: cgnat, firewall: corporate }'))));
  test('delete: a router and its LAN', () => {
    const without = ROUTERS.replace('  isp:   { kind: router, nat: cgnat }\n', '').replace('  bob:   { kind: netns }\n', '').replace('  cell:     { subnet: 100.64.0.0/24, gateway: isp, attach: [isp, bob] }\n', '').replace('[home, isp, stun]', '[home, stun]');
    golden('router-delete', routerPlanText(ROUTERS, without));
  });
});

describe('plan text: addresses it does not know', () => {
  test('a group-owned partition (senders by MAC) and a future item kind render from their items', () => {
    const names = { ports: new Map([['fx-a-1', { node: 'a', bridge: 'lan', nic: 'eth1' }], ['fx-c-0', { node: 'c', bridge: 'lan', nic: 'eth0' }]]), bridges: new Map([['fx-lan', 'lan']]), namespaces: new Map(), addresses: new Map(), macs: new Map([['02:00:00:00:00:0a', 'a'], ['02:00:00:00:00:0c', 'c']]) };
    const elem = (k: string) => ({ key: `elem:bridge:blocked:${k}`, ref: { kind: 'elem' as const, family: 'bridge' as const, set: 'blocked', key: k }, owner: 'bridge.lan.partition[@leaders>@followers]', value: { value: true, owner: 'x' }, deps: [] });
    const future = { key: 'tunnel:r1', ref: { kind: 'tunnel', name: 'r1' } as never, owner: 'tunnel.r1', value: { nat: 'eim' }, deps: [] };
    const plan = {
      lab: 'fx', errors: [], invocations: [],
      changes: [
        { address: 'bridge.lan.partition[@leaders>@followers]', action: 'create' as const, items: [{ action: 'create' as const, key: 'k1', after: elem('02:00:00:00:00:0a>fx-c-0'), fields: [] }, { action: 'create' as const, key: 'k2', after: elem('02:00:00:00:00:0c>fx-a-1'), fields: [] }] },
        { address: 'tunnel.r1', action: 'update' as const, items: [{ action: 'update' as const, key: 'tunnel:r1', before: { ...future, value: { nat: 'edm' } }, after: future, fields: [{ field: 'nat', before: 'edm', after: 'eim' }] }] },
      ],
    };
    const text = renderPlanFile(plan, names, { color: false });
    assert.match(text, /\+ bridge\.lan\.partition\[@leaders>@followers\] will be created\n\s+partition a <-> c\n/);
    assert.match(text, /~ tunnel\.r1 will be updated in place\n\s+nat "edm" -> "eim"\n/);
  });
});
