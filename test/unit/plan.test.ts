import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { planFixture, FIXTURES } from './replay.js';
import { tempDir } from './helpers.js';
import { nicMac } from '../../src/model/names.js';

process.env.PROVIUM_STATE_DIR = '/nonexistent/provium-unit';

/** The recorded lab's file with latency fields added to its a->d impairment; returns the new file's path. */
function withLatency(fields: string): string {
  const file = `${tempDir('pv-unit-')}/lat.yaml`;
  writeFileSync(file, readFileSync(new URL('applied/topology.yaml', FIXTURES), 'utf8').replace('drop_pct: 2.5,', `drop_pct: 2.5, ${fields}`));
  return file;
}

describe('plan on recorded host output', () => {
  test('a host that matches the file plans no changes', async () => {
    const { plan } = await planFixture('applied');
    assert.deepEqual(plan.errors, []);
    assert.deepEqual(plan.changes.map((c) => c.address), []);
    assert.equal(plan.invocations.length, 0);
  });

  test('changing one field of one impairment plans exactly one update and one tc command', async () => {
    const { plan } = await planFixture('one-field');
    assert.equal(plan.changes.length, 1);
    const [c] = plan.changes;
    assert.equal(c.address, 'bridge.lan.impairment[a>d]');
    assert.equal(c.action, 'update');
    assert.deepEqual(c.items.map((i) => [i.action, i.fields.map((f) => [f.field, f.before, f.after])]), [
      ['update', [['rate', '1Mbit', '2Mbit']]],
    ]);
    assert.equal(plan.invocations.length, 1);
    assert.match(plan.invocations[0].stdin!, /^class change dev fx-d-0 parent [0-9a-f]+:1 classid [0-9a-f]+:[0-9a-f]+ htb rate 2000000bit ceil 2000000bit quantum 25000\n$/);
  });

  test('drift by hand (port deleted, partition element removed, route removed) is planned and nothing else', async () => {
    const { plan } = await planFixture('drifted');
    assert.deepEqual(plan.changes.map((c) => `${c.action} ${c.address}`), [
      'create bridge.lan.attach.c', // port deleted: its NIC went with it
      'update bridge.lan.impairment[*]', // partly present: c's default class went with the port
      'update bridge.lan.partition[a<>b]', // one of its two elements removed
      'create bridge.lan.shaping.c',
      'create node.a.routes', // a's only route (default via the uplink) removed
      'create node.c.routes', // c's routes went with its NIC
    ]);
    const cmds = plan.invocations.map((i) => i.label);
    assert.deepEqual(cmds, ['host links', 'namespace pv-fx-a', 'namespace pv-fx-c', 'traffic control', 'nftables transaction']);
    const nft = plan.invocations.find((i) => i.label === 'nftables transaction')!.stdin!;
    // The sender by its NIC's MAC, the receiver by its port.
    assert.equal(nft.trim(), `add element bridge provium_fx blocked { ${nicMac('fx', 'a', 'lan')} . "fx-b-1" comment "bridge.lan.partition[a<>b]" }`);
    const host = plan.invocations.find((i) => i.label === 'host links')!.stdin!;
    // The re-created NIC gets its deterministic MAC back, so peers' ARP caches stay valid.
    assert.match(host, new RegExp(`link add fx-c-0 type veth peer name eth0 address ${nicMac('fx', 'c', 'lan')} netns pv-fx-c`));
    assert.match(host, /link set fx-c-0 down/);
  });

  test('an empty host plans every object, in dependency order', async () => {
    const { plan } = await planFixture('empty');
    assert.deepEqual(plan.errors, []);
    assert.ok(plan.changes.every((c) => c.action === 'create' || c.address === 'host.ip_forward' || c.address === 'host.ipv6_forwarding'), plan.changes.map((c) => c.action + c.address).join());
    assert.deepEqual(plan.invocations.map((i) => i.label), [
      'node namespaces', 'host links', 'namespace pv-fx-a', 'namespace pv-fx-b', 'namespace pv-fx-c', 'namespace pv-fx-d',
      'sysctl', 'traffic control', 'nftables transaction',
      'hosts of pv-fx-a', 'hosts of pv-fx-b', 'hosts of pv-fx-c', 'hosts of pv-fx-d',
    ]);
    const tc = plan.invocations.find((i) => i.label === 'traffic control')!.stdin!.split('\n');
    // Each port's root qdisc precedes its classes.
    for (const [i, line] of tc.entries()) {
      const m = /class add dev (\S+)/.exec(line);
      if (m) assert.ok(tc.slice(0, i).some((l) => l.startsWith(`qdisc add dev ${m[1]} root`)), `class before qdisc: ${line}`);
    }
  });

  test('IPv6 on the recorded host: routes via ::1, IPv6 forwarding, masquerade of subnet6 out of the IPv6 default-route interface (up1, not up0)', async () => {
    const { plan, observation } = await planFixture('empty');
    assert.equal(observation.facts.defaultRouteDev, 'up0');
    assert.equal(observation.facts.defaultRouteDev6, 'up1');
    const sysctl = plan.invocations.find((i) => i.label === 'sysctl')!;
    assert.ok(sysctl.argv.includes('net.ipv6.conf.all.forwarding=1') && sysctl.argv.includes('net.ipv4.ip_forward=1'), sysctl.argv.join(' '));
    const nft = plan.invocations.find((i) => i.label === 'nftables transaction')!.stdin!;
    assert.match(nft, /ip6 saddr @masq6 oifname @wan6 masquerade/);
    assert.match(nft, /^add element inet provium_fx masq6 \{ fd00:40::\/64 comment "bridge\.lan\.uplink" \}$/m);
    assert.match(nft, /^add element inet provium_fx wan6 \{ "up1" comment "host\.uplink_interface_ipv6" \}$/m);
    assert.match(nft, /^add element inet provium_fx wan \{ "up0" comment "host\.uplink_interface" \}$/m);
    // c is only on lan (uplink, routes to data, where c is not): both families' routes.
    const c = plan.invocations.find((i) => i.label === 'namespace pv-fx-c')!.stdin!.split('\n').filter((l) => l.startsWith('route'));
    assert.deepEqual(c, [
      'route replace 10.41.0.0/24 via 10.40.0.1', 'route replace default via 10.40.0.1',
      'route replace default via fd00:40::1', 'route replace fd00:41::/64 via fd00:40::1', 'route show table all',
    ]);
    // The recorded applied host reads its IPv6 routes back, router advertisement and kernel routes aside.
    const applied = await planFixture('applied');
    assert.deepEqual(applied.observation.state.namespaces['pv-fx-c'].routes.map((r) => `${r.dst} via ${r.via}`), [
      '10.41.0.0/24 via 10.40.0.1', 'default via 10.40.0.1', 'default via fd00:40::1', 'fd00:41::/64 via fd00:40::1',
    ]);
    assert.equal(applied.observation.state.ip6Forward, true);
  });

  test('latency without sch_netem fails the plan naming the module and the fix, with no commands', async () => {
    const file = withLatency('latency_ms: 20,');
    const { plan } = await planFixture('applied', file, { netem: false });
    assert.equal(plan.invocations.length, 0);
    assert.equal(plan.errors.length, 1);
    assert.match(plan.errors[0].summary, /missing kernel feature: sch_netem/);
    assert.match(plan.errors[0].detail!, /modprobe sch_netem/);
    assert.equal(plan.errors[0].pos?.file, file);
    assert.ok(plan.errors[0].pos!.line > 1);
  });

  test('with sch_netem present the same latency plans a netem leaf under the pair class', async () => {
    const { plan } = await planFixture('applied', withLatency('latency_ms: 20, jitter_ms: 4,'), { netem: true });
    assert.equal(plan.changes.length, 1);
    assert.equal(plan.changes[0].address, 'bridge.lan.impairment[a>d]');
    assert.equal(plan.invocations.length, 1);
    assert.match(plan.invocations[0].stdin!, /^qdisc add dev fx-d-0 parent [0-9a-f]+:[0-9a-f]+ handle [0-9a-f]+: netem delay 20ms 4ms limit 1000\n$/);
  });
});
