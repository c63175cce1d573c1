/**
 * Multi-host labs (issue 14), proven with traffic on one machine: "hosts" are network
 * namespaces on an underlay (MTU 1500), each running a real sshd; provium runs in a
 * separate controller namespace and reaches them only through SSH (hosts-harness.ts).
 * A bridge with members on several hosts is carried over VXLAN; partitions, isolation,
 * drop and bandwidth hold between nodes on different hosts; routes, uplink and names
 * live on the bridge's home host; a VM on one host talks to a node on another and its
 * link goes down over QMP through SSH; MTU fits the tunnel; a change on one host touches
 * only that host; drift is repaired; an unreachable host fails the plan with nothing
 * changed; destroy leaves nothing on any host. A lab with a local host (the controller's
 * own namespace) reads and writes its part through the netlink helper when it is built,
 * and the remote host's through ip over SSH, and both paths plan it alike.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { helperPath } from '../../src/host/netlink.js';
import { ping, udpCount, udpProbe, iperf, run, must, report, mbit, ipsOf, isReadOnly, kernelHasNetem, rand, PROVIUM_BIN, type TraceLine } from './helpers.js';
import { hostsTest, type TestHosts } from './hosts-harness.js';
import { GUEST, CTL, vmSkip, inVm, waitVm } from './guest.js';

const N = 20;

/** Changing host commands traced since the last clear, by host ("local" for the controller's own). */
function changingByHost(hs: TestHosts): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const l of hs.trace(true)) {
    const fdbShow = l.argv[0] === 'bridge' && (l.stdin ?? '').split('\n').filter(Boolean).every((x) => x.startsWith('fdb show'));
    if (isReadOnly(l as TraceLine) || isScript(l.argv) || fdbShow || l.argv[0] === 'cat' || l.argv[0] === 'printf') continue;
    (out[l.host ?? 'local'] ??= []).push(l.argv.join(' '));
  }
  return out;
}

/** provium's fixed sh scripts: lock, unlock and the read snapshot (only the snapshot reads; lock files are not lab state). */
function isScript(argv: string[]): boolean {
  return argv[0] === 'sh' && argv[1] === '-c' && /(^|\n)(set -u\nrel=|set -u\numask 077\nmkdir -p -- "\$\(dirname|\[ "\$\(cat -- "\$1")/.test(argv[2] ?? '');
}

/** An upstream namespace on h1 (the uplink's home): 192.0.2.1 behind h1's default route, no route back to the lab. */
async function upstreamOnH1(hs: TestHosts): Promise<string> {
  const up = `pvt-${hs.id}-up`;
  const h1 = hs.host('h1').ns;
  await must(['ip', 'netns', 'add', up]);
  await must(['ip', '-n', h1, 'link', 'add', 'wan0', 'type', 'veth', 'peer', 'name', 'up0', 'netns', up]);
  await must(['ip', '-n', up, 'addr', 'add', '192.0.2.1/24', 'dev', 'up0']);
  await must(['ip', '-n', up, 'link', 'set', 'up0', 'up']);
  await must(['ip', '-n', up, 'link', 'set', 'lo', 'up']);
  await must(['ip', '-n', h1, 'addr', 'add', '192.0.2.2/24', 'dev', 'wan0']);
  await must(['ip', '-n', h1, 'link', 'set', 'wan0', 'up']);
  await must(['ip', '-n', h1, 'route', 'add', 'default', 'via', '192.0.2.1']);
  return up;
}

const BASE = (lan: string, extra = '') => `
  nodes:
    a: { kind: netns, host: h1 }
    b: { kind: netns, host: h2 }
    c: { kind: netns, host: h3 }
    d: { kind: netns, host: h2 }
    e: { kind: netns, host: h3 }
  bridges:
    lan:
      subnet: 10.71.0.0/24
      home: h1
      dns: true
      uplink: true
      routes: [data]
      attach: [a, b, c, d]
${lan.split('\n').filter((l) => l.trim()).map((l) => `      ${l.trim()}`).join('\n')}
    data: { subnet: 10.72.0.0/24, home: h1, attach: [e] }
    solo: { subnet: 10.73.0.0/24, attach: [b, d] }
${extra}`;

hostsTest('multi-host: a bridge spanning 3 hosts over VXLAN: connectivity, MTU, partitions, isolation, drop, bandwidth, names, routes and uplink through the home host, a one-host change, drift, an unreachable host, destroy', 3, async (hs, t) => {
  const t0 = Date.now();
  await upstreamOnH1(hs);
  hs.write(BASE(''));
  const ip = ipsOf(readFileSync(hs.file, 'utf8'), 'lan');
  const e = ipsOf(readFileSync(hs.file, 'utf8'), 'data').e;
  const ns = (n: string) => hs.ns(n);
  const a0 = Date.now();
  const r0 = await hs.apply();
  report(t, `apply of 5 nodes on 3 hosts: ${Date.now() - a0} ms wall (provium: ${r0.seconds} s, ${r0.host_commands} invocations)`);

  // Connectivity: every pair, across hosts (a-b, a-c, b-c) and within one (b-d).
  const pairs = [['a', 'b'], ['b', 'a'], ['a', 'c'], ['c', 'b'], ['b', 'd'], ['d', 'c']];
  for (const [x, y] of pairs) assert.equal(await udpCount(ns(x), ns(y), ip[y], N), N, `${x}->${y}`);
  report(t, `connectivity: ${pairs.map(([x, y]) => `${x}->${y}`).join(', ')} all ${N}/${N}`);

  // doctor FILE checks every host, over SSH.
  const doc = await hs.provium(['doctor', '--json']);
  const dj = JSON.parse(doc.stdout) as { hosts: Record<string, { checks: { name: string; status: string }[] }> };
  assert.deepEqual(Object.keys(dj.hosts), ['h1', 'h2', 'h3']);
  for (const [h, r] of Object.entries(dj.hosts)) {
    assert.equal(r.checks.find((c) => c.name === 'tool:nft')?.status, 'ok', `${h}: nft found`);
    assert.equal(r.checks.find((c) => c.name === 'kernel:sch_netem')?.status, kernelHasNetem() ? 'ok' : 'warn', `${h}: netem detected as on this kernel`);
  }

  // MTU: the tunnel carries full 1450-byte frames; members were given 1450 (underlay 1500 - 50).
  const mtu = JSON.parse((await must(['ip', '-n', ns('b'), '-j', 'link', 'show', 'eth0'])).stdout)[0].mtu;
  assert.equal(mtu, 1450, 'b eth0 mtu');
  const df = async (from: string, to: string, size: number) => (await run(['ip', 'netns', 'exec', ns(from), 'ping', '-n', '-c', '2', '-i', '0.2', '-W', '1', '-M', 'do', '-s', String(size), to])).code === 0;
  assert.ok(await df('a', ip.c, 1422), '1422-byte DF ping a->c (1450-byte packets) crosses the tunnel');
  assert.ok(!(await df('a', ip.c, 1472)), 'a 1472-byte DF ping does not fit a 1450 MTU');
  const solo = ipsOf(readFileSync(hs.file, 'utf8'), 'solo');
  assert.ok(await df('b', solo.d, 1472), '1472-byte DF ping passes on a bridge within one host (MTU 1500)');
  const u = await run(['nsenter', `--net=/run/netns/${hs.host('h1').ns}`, 'ping', '-n', '-c', '1', '-W', '1', '-M', 'do', '-s', '1472', hs.host('h2').underlay]);
  assert.equal(u.code, 0, 'the underlay itself carries 1500-byte packets');

  // Names (dnsmasq on h1) from nodes on h2 and h3; routes and uplink through h1.
  const getent = (n: string, name: string) => run(['ip', 'netns', 'exec', ns(n), 'getent', 'ahostsv4', name]);
  assert.match((await getent('c', 'b.lan')).stdout, new RegExp(`^${ip.b.replace(/\./g, '\\.')}\\s`), 'c (h3) resolves b.lan at the home host');
  assert.match((await getent('b', 'a')).stdout, new RegExp(`^${ip.a.replace(/\./g, '\\.')}\\s`), 'b (h2) resolves the short name a');
  assert.equal((await ping(ns('b'), e, 3)).received, 3, 'b (h2, lan) reaches e (h3, data) routed by h1');
  assert.equal((await ping(ns('c'), '192.0.2.1', 3)).received, 3, 'c (h3) reaches the upstream through h1\'s uplink (NAT)');
  report(t, 'names, routes (lan h2 -> data h3 via h1) and the uplink (h3 -> upstream via h1) work');

  // Partitions (symmetric a<->b across h1/h2, directional c->d across h3/h2), isolation, drop, bandwidth.
  hs.write(BASE(`
    partitions: [[a, b], { from: c, to: d }]
    isolate: [e]
    impairments:
      - { from: a, to: c, drop_pct: 20 }
      - { from: d, to: a, bandwidth_bps: 5000000 }
  `).replace('attach: [e]', 'attach: [e]').replace('routes: [data]\n      attach: [a, b, c, d]', 'routes: [data]\n      attach: [a, b, c, d, e]'));
  const ip2 = ipsOf(readFileSync(hs.file, 'utf8'), 'lan');
  await hs.apply();
  const m: Record<string, number> = {};
  for (const [x, y] of [['a', 'b'], ['b', 'a'], ['c', 'd'], ['d', 'c'], ['a', 'd'], ['e', 'a'], ['b', 'e'], ['c', 'b']]) m[`${x}->${y}`] = await udpCount(ns(x), ns(y), ip2[y], N);
  report(t, `partitions/isolation across hosts: ${JSON.stringify(m)}`);
  assert.deepEqual(m, { 'a->b': 0, 'b->a': 0, 'c->d': 0, 'd->c': N, 'a->d': N, 'e->a': 0, 'b->e': 0, 'c->b': N });
  const LOSS = 2000;
  const lost = await udpProbe(ns('a'), ns('c'), ip2.c, LOSS, { burst: 20, gapMs: 1 });
  const pct = (100 * (LOSS - lost.received)) / LOSS;
  const other = await udpProbe(ns('b'), ns('c'), ip2.c, LOSS, { burst: 20, gapMs: 1 });
  const pctOther = (100 * (LOSS - other.received)) / LOSS;
  report(t, `drop a(h1)->c(h3) 20 %: ${pct.toFixed(2)} % of ${LOSS}; b->c (no drop): ${pctOther.toFixed(2)} %`);
  // 4.5 sigma of a binomial(2000, 0.2): +-4.0 points.
  assert.ok(Math.abs(pct - 20) <= 4, `a->c loss ${pct} % within 20 +- 4`);
  assert.ok(pctOther <= 1, `b->c loss ${pctOther} % ~0`);
  const bw = await iperf(ns('d'), ns('a'), ip2.a);
  const free = await iperf(ns('c'), ns('a'), ip2.a);
  report(t, `bandwidth d(h2)->a(h1) ${mbit(bw)} (5 Mbit/s), c(h3)->a(h1) unshaped ${mbit(free)}`);
  assert.ok(Math.abs(bw - 5e6) / 5e6 <= 0.15, `d->a ${mbit(bw)} within 15 % of 5 Mbit/s`);
  assert.ok(free > 50e6, `c->a unshaped ${mbit(free)}`);

  // A one-field change whose receiver is on h3 touches only h3.
  hs.write(hs.body.replace('drop_pct: 20', 'drop_pct: 10'));
  const plan = await hs.planJson();
  assert.deepEqual(plan.changes.map((c) => `${c.host} ${c.action} ${c.address}`), ['h3 update bridge.lan.impairment[a>c]']);
  hs.trace(true);
  await hs.apply();
  const touched = changingByHost(hs);
  report(t, `one-field change: changing commands by host ${JSON.stringify(touched)}`);
  assert.deepEqual(Object.keys(touched), ['h3'], 'only h3 ran changing commands');
  assert.equal(touched.h3.length, 1);

  // Drift on h2 (a port deleted, the VXLAN peers changed by hand) is planned there and repaired.
  await must(['ip', '-n', hs.host('h2').ns, 'link', 'del', `${hs.lab}-d-0`]);
  await must(['bridge', '-n', hs.host('h2').ns, 'fdb', 'del', '00:00:00:00:00:00', 'dev', `${hs.lab}-lan-vx`, 'dst', hs.host('h3').underlay]);
  const drift = await hs.planJson();
  report(t, `drift plan: ${JSON.stringify(drift.changes.map((c) => `${c.host} ${c.action} ${c.address}`))}`);
  assert.ok(drift.changes.length > 0 && drift.changes.every((c) => c.host === 'h2'), 'drift is planned on h2 only');
  assert.ok(drift.changes.some((c) => c.address === 'bridge.lan.vxlan'));
  await hs.apply();
  assert.equal(await udpCount(ns('c'), ns('d'), ip2.d, N), 0, 'c->d still partitioned after the repair');
  assert.equal(await udpCount(ns('d'), ns('c'), ip2.c, N), N, 'd->c flows again (port and peers repaired)');
  assert.equal((await hs.provium(['plan', '--detailed-exitcode'])).code, 0, 'plan empty after the repair');

  // A saved plan covers every host: applied exactly; refused when any host changed since.
  const good = hs.body;
  hs.write(good.replace('drop_pct: 10', 'drop_pct: 15'));
  const p1 = join(hs.dir, 'p1.json');
  assert.equal((await hs.provium(['plan', '--out', p1])).code, 0);
  const s1 = await hs.provium(['apply', p1], { file: false });
  assert.equal(s1.code, 0, s1.stderr);
  assert.equal((await hs.provium(['plan', '--detailed-exitcode'])).code, 0, 'plan empty after apply PLANFILE');
  hs.write(good);
  const p2 = join(hs.dir, 'p2.json');
  assert.equal((await hs.provium(['plan', '--out', p2])).code, 0);
  await must(['ip', '-n', hs.host('h2').ns, 'link', 'set', `${hs.lab}-b-0`, 'down']);
  hs.trace(true);
  const s2 = await hs.provium(['apply', p2], { file: false });
  report(t, `stale saved plan: exit ${s2.code}: ${s2.stderr.split('\n').filter((l) => /^(error|hint)/.test(l)).join(' ')}`);
  assert.equal(s2.code, 1);
  assert.match(s2.stderr, /hosts changed since .* planned[\s\S]*changed on host h2/);
  assert.deepEqual(changingByHost(hs), {}, 'nothing ran');
  await hs.apply();

  // MTU that cannot fit: refused, naming the bridge, nothing run.
  hs.write(good.replace('home: h1\n', 'home: h1\n      mtu: 1500\n'));
  hs.trace(true);
  const bad = await hs.provium(['plan']);
  assert.equal(bad.code, 1);
  assert.match(bad.stdout + bad.stderr, /bridge lan: mtu 1500 cannot fit the VXLAN underlay.*at most 1450/s);

  // An unreachable host: the plan fails naming it, nothing changes anywhere.
  hs.write(good.replace('drop_pct: 10', 'drop_pct: 30'), { extraHostFields: { h3: ', port: 2299' } });
  hs.trace(true);
  const un = await hs.provium(['apply', '--auto-approve']);
  report(t, `unreachable host: exit ${un.code}: ${un.stderr.split('\n').find((l) => l.startsWith('error'))}`);
  assert.equal(un.code, 1);
  assert.match(un.stderr, /host h3 is unreachable over SSH/);
  assert.deepEqual(changingByHost(hs), {}, 'no changing command ran on any host');
  assert.equal(await udpCount(ns('b'), ns('c'), ip2.c, N), N, 'the lab is as it was');

  // Destroy leaves nothing on any host.
  hs.write(good);
  const d = await hs.provium(['destroy', '--auto-approve']);
  assert.equal(d.code, 0, d.stderr);
  assert.deepEqual(await hs.leftovers(), [], 'nothing of the lab is left on any host');
  report(t, `whole test: ${Date.now() - t0} ms`);
}, { timeoutMs: 300_000 });

hostsTest('multi-host: a VM on one host and a netns node on another: DHCP lease and names from the home host, the tunnel MTU inside the guest, link down and up over QMP through SSH', 2, async (hs, t) => {
  const t0 = Date.now();
  const file = (link: string) => `
    nodes:
      n: { kind: netns, host: h1 }
      v: { kind: qemu, host: h2, kernel: ${GUEST}vmlinux, initrd: ${GUEST}initrd.gz, append: "console=ttyS0 quiet pv.dhcp=1 pv.ctl=${CTL}", memory_mb: 160 }
    bridges:
      lan:
        subnet: 10.74.0.0/24
        home: h1
        dhcp: true
        dns: true
        attach: [n, { node: v, link: ${link} }]
  `;
  hs.write(file('up'));
  const ip = ipsOf(readFileSync(hs.file, 'utf8'), 'lan');
  await hs.apply();
  const via = hs.host('h1').ns; // the home host holds the bridge's address: the VM's command port is reached from there
  await waitVm(via, ip.v, 90_000);
  report(t, `VM on h2 up with its DHCP lease from h1 after ${Date.now() - t0} ms`);
  assert.equal((await ping(hs.ns('n'), ip.v, 3)).received, 3, 'n (h1) -> v (h2)');
  assert.match(await inVm(via, ip.v, `ping -c 2 -W 1 ${ip.n} 2>&1 | tail -2`), /2 packets received/, 'v -> n');
  assert.match((await run(['ip', 'netns', 'exec', hs.ns('n'), 'getent', 'ahostsv4', 'v.lan'])).stdout, new RegExp(`^${ip.v.replace(/\./g, '\\.')}\\s`), 'n resolves v.lan');
  assert.match(await inVm(via, ip.v, 'cat /sys/class/net/eth0/mtu'), /^1450/m, 'the guest was told the tunnel MTU (virtio-net host_mtu)');

  hs.write(file('down'));
  const plan = await hs.planJson();
  assert.deepEqual(plan.changes.map((c) => `${c.host} ${c.address}`), ['h2 bridge.lan.attach.v']);
  assert.ok(plan.commands.every((c) => c.host === 'h2' && c.argv[0] === 'qmp'), JSON.stringify(plan.commands));
  await hs.apply();
  assert.equal((await ping(hs.ns('n'), ip.v, 3)).received, 0, 'link down over QMP: n cannot reach v');
  hs.write(file('up'));
  await hs.apply();
  assert.equal((await ping(hs.ns('n'), ip.v, 5)).received > 0, true, 'link up again');
  assert.equal((await hs.provium(['plan', '--detailed-exitcode'])).code, 0, 'plan empty');
  const d = await hs.provium(['destroy', '--auto-approve']);
  assert.equal(d.code, 0, d.stderr);
  assert.deepEqual(await hs.leftovers(), [], 'no VM process, TAP, dnsmasq or state file left on any host');
  report(t, `whole test: ${Date.now() - t0} ms`);
}, { skip: vmSkip(), timeoutMs: 240_000 });

hostsTest('multi-host: latency between nodes on different hosts (per-pair netem at the receiver\'s port)', 2, async (hs, t) => {
  hs.write(`
    nodes: { a: { kind: netns, host: h1 }, b: { kind: netns, host: h2 } }
    bridges:
      lan:
        attach: [{ node: a, ip: 10.75.0.2/24 }, { node: b, ip: 10.75.0.3/24 }]
        impairments: [{ from: a, to: b, latency_ms: 20 }, { from: b, to: a, latency_ms: 20 }]
  `);
  await hs.apply();
  const p = await ping(hs.ns('a'), '10.75.0.3', 10, 0.2);
  report(t, `RTT a(h1)<->b(h2) ${p.avgMs} ms with 20 ms each way`);
  assert.ok(p.avgMs >= 38 && p.avgMs <= 50);
}, { skip: kernelHasNetem() ? undefined : 'kernel has no sch_netem: latency across hosts uses the same per-receiver HTB class with a netem leaf as on one host (tested in the netem guest by test/e2e/guest-netem.test.ts); this machine cannot run it' });

void rand;

hostsTest('multi-host with a local host: the controller\'s own part (node namespaces, VXLAN port, bridge table) through the netlink helper when built, the remote host\'s through ip over SSH; plans agree on both paths and a change by hand on either host is seen', 1, async (hs, t) => {
  const t0 = Date.now();
  const h1 = hs.host('h1');
  const hosts = [
    '  me: { local: true, underlay: 198.51.100.2 }',
    `  h1: { ssh: root@${h1.underlay}, underlay: ${h1.underlay}, ssh_config: ${hs.sshConfig}, state_dir: ${h1.stateDir} }`,
  ].join('\n');
  const body = (parts: string) => `
    nodes:
      a: { kind: netns, host: me }
      b: { kind: netns, host: h1 }
      c: { kind: netns, host: me }
    bridges:
      lan:
        subnet: 10.74.0.0/24
        home: me
        attach: [a, b, c]
${parts}
  `;
  hs.write(body(''), { hosts });
  const ip = ipsOf(readFileSync(hs.file, 'utf8'), 'lan');
  const ns = (n: string) => hs.ns(n);
  hs.trace(true);
  await hs.apply();
  const helperOn = process.env.PROVIUM_NETLINK !== 'off' && helperPath() !== undefined;
  const tr = hs.trace(true);
  if (helperOn) {
    assert.ok(tr.some((l) => !l.host && l.argv[0] === 'provium-nl' && l.argv.includes(ns('a'))), 'the local host\'s node namespaces go through the helper');
    assert.ok(!tr.some((l) => !l.host && l.argv[0] === 'ip' && l.argv.includes(ns('a'))), 'and no ip process runs in them');
  }
  assert.ok(tr.some((l) => l.host === 'h1' && l.argv[0] === 'ip' && l.argv.includes(ns('b'))), 'the remote host\'s node namespace goes through ip over SSH');
  for (const [x, y] of [['a', 'b'], ['b', 'c'], ['a', 'c']]) assert.equal(await udpCount(ns(x), ns(y), ip[y], N), N, `${x}->${y}`);

  // Both paths read the local part (its VXLAN port's VNI, port, local address and peers included) as applied.
  const plan = async (netlink: 'on' | 'off') => {
    const r = await hs.inCtl(['node', PROVIUM_BIN, 'plan', '--json', hs.file], 60_000, { PROVIUM_STATE_DIR: join(hs.dir, 'state-local'), PROVIUM_CACHE_DIR: join(hs.dir, 'cache-local'), PROVIUM_NETLINK: netlink, NO_COLOR: '1' });
    return (JSON.parse(r.stdout) as { changes: { host: string; address: string; action: string }[] }).changes.map((c) => `${c.host} ${c.action} ${c.address}`);
  };
  if (helperOn) assert.deepEqual(await plan('on'), [], 'helper path: no change');
  assert.deepEqual(await plan('off'), [], 'iproute2 path: no change');

  // A partition a<->b: elements on both hosts (the receiver's). A change by hand in the local
  // bridge table (another nftables generation) and in the remote one are both planned.
  hs.write(body('        partitions: [[a, b]]'), { hosts });
  await hs.apply();
  assert.equal(await udpCount(ns('a'), ns('b'), ip.b, N), 0, 'a->b partitioned');
  assert.equal(await udpCount(ns('b'), ns('a'), ip.a, N), 0, 'b->a partitioned');
  await must(['nsenter', `--net=/run/netns/${hs.ctlNs}`, 'nft', 'flush', 'set', 'bridge', `provium_${hs.lab}`, 'blocked']);
  await must(['ip', 'netns', 'exec', h1.ns, 'nft', 'flush', 'set', 'bridge', `provium_${hs.lab}`, 'blocked']);
  const drift = await plan(helperOn ? 'on' : 'off');
  assert.deepEqual(drift.filter((c) => c.includes('partition')).map((c) => c.split(' ')[0]).sort(), ['h1', 'me'], `both hosts' flushed elements are planned: ${drift.join('; ')}`);
  await hs.apply();
  assert.equal(await udpCount(ns('b'), ns('a'), ip.a, N), 0, 'b->a partitioned again');
  assert.equal(await udpCount(ns('a'), ns('c'), ip.c, N), N, 'a->c flows');
  assert.deepEqual(await plan('off'), [], 'repaired');
  report(t, `local host (${helperOn ? 'netlink helper' : 'iproute2'}) + 1 SSH host: apply, traffic, plans on both paths, drift on both hosts: ${Date.now() - t0} ms`);
});
