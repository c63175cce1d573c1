/**
 * The two ways provium reads and writes namespaces give the same results: the netlink
 * helper (provium-nl) and the iproute2 path (one `ip -n NS -batch` per namespace).
 *
 * On a lab with two routed bridges (IPv4 and IPv6 addresses and routes, a NIC down), and
 * again after drift made by hand with `ip` (an extra address, a deleted route, a link
 * down, another MTU and MAC, a changed mark), both paths read every node namespace and
 * the host namespace field for field alike (the iproute2 JSON fields provium reads) and
 * give the planner the same NamespaceState and LinkState; `plan` prints the same changes
 * on both paths; a lab applied on one path is planned as unchanged on the other; and
 * traffic flows after an apply on either. Routers (their namespaces, NAT and default
 * routes) and VXLAN ports in the host namespace (id, port, local) read alike too, and a
 * namespace batch with a line the helper has no operation for runs through `ip` instead.
 */
import assert from 'node:assert/strict';
import { kernelHasNetem, labTest, must, ping, report, run, type Lab } from './helpers.js';
import { helperPath, NetlinkIO } from '../../src/host/netlink.js';
import { IprouteIO, type NsDump } from '../../src/host/namespaces.js';
import { HostRunner } from '../../src/host/runner.js';
import { toLinkState, toNamespaceState, toShaping, type IpLink, type IpRoute, type TcQdisc } from '../../src/observe/parse.js';
import { readTc } from '../../src/observe/index.js';
import { tcRateString } from '../../src/plan/ids.js';

const helper = helperPath();
const skip = helper ? undefined : 'the netlink helper is not built (dist/native/provium-nl: needs gcc, make and libmnl-dev, then npm run build)';

const LAB = `
  nodes: { a: { kind: netns }, b: { kind: netns }, c: { kind: netns } }
  bridges:
    lan:
      subnet: 10.61.0.0/24
      subnet6: "fd00:61::/64"
      attach: [a, b, { node: c, link: down }]
      routes: [data]
    data:
      subnet: 10.62.0.0/24
      subnet6: "fd00:62::/64"
      attach: [a, c]
`;

/** The fields of a link that both paths print (iproute2 `ip -j -d addr show` keys provium reads, and a few more). */
function linkFields(l: IpLink) {
  const d = l.linkinfo?.info_data as { id?: number; port?: number; local?: string; local6?: string } | undefined;
  return {
    ifname: l.ifname, flags: l.flags, mtu: l.mtu, master: l.master, address: l.address, ifalias: l.ifalias, kind: l.linkinfo?.info_kind,
    ...(l.linkinfo?.info_kind === 'vxlan' ? { vxlan: { id: d?.id, port: d?.port, local: d?.local, local6: d?.local6 } } : {}),
    addrs: (l.addr_info ?? []).map((a) => ({ family: a.family, local: a.local, prefixlen: a.prefixlen, scope: a.scope, dynamic: a.dynamic, tentative: a.tentative })),
  };
}

/** The fields of a route that both paths print (iproute2 `ip -j route show table all`). */
function routeFields(r: IpRoute & { type?: string; scope?: string }) {
  return { type: r.type, dst: r.dst, gateway: r.gateway, dev: r.dev, protocol: r.protocol, scope: r.scope, table: r.table, pref: r.pref };
}

const byKey = <T>(xs: T[], key: (x: T) => string) => [...xs].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));

/** Reads every namespace of the lab and its host links on both paths; asserts they agree. Returns the number of namespaces compared. */
async function compareReads(lab: Lab, what: string, nodes = ['a', 'b', 'c']): Promise<number> {
  // Both paths read at the same time, but the kernel may change a field in between: a
  // link-local IPv6 address of a link that just came up leaves duplicate address detection
  // ("tentative") after 1-2 s. So a difference is read again, for up to 5 s, before it fails.
  const t0 = Date.now();
  for (;;) {
    try {
      return await compareOnce(lab, what, nodes);
    } catch (e) {
      if (Date.now() - t0 > 5000) throw e;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

async function compareOnce(lab: Lab, what: string, nodes: string[]): Promise<number> {
  const nl = new NetlinkIO(helper!);
  const ip = new IprouteIO(new HostRunner());
  const names = nodes.map((n) => lab.ns(n));
  const [dn, di] = await Promise.all([nl.readNamespaces(names), ip.readNamespaces(names)]).finally(() => nl.helper.close());
  names.forEach((ns, i) => {
    const a = dn[i] as NsDump;
    const b = di[i] as NsDump;
    assert.ok(a && b, `${what}: both paths read ${ns}`);
    assert.deepEqual(a.links.map(linkFields), b.links.map(linkFields), `${what}: links of ${ns} (helper vs iproute2)`);
    const rk = (r: ReturnType<typeof routeFields>) => JSON.stringify(r);
    // The helper leaves out the local table (the kernel's local and broadcast routes).
    assert.ok(a.routes.every((r) => r.table !== 'local'), `${what}: the helper reads no route of the local table in ${ns}`);
    assert.ok(b.routes.some((r) => r.table === 'local'), `${what}: iproute2 reads the local table of ${ns}`);
    const notLocal = b.routes.filter((r) => r.table !== 'local');
    assert.deepEqual(byKey(a.routes.map(routeFields), rk), byKey(notLocal.map(routeFields), rk), `${what}: routes of ${ns} but the local table's (helper vs iproute2)`);
    assert.deepEqual(toNamespaceState(ns, 'x', a.links, a.routes), toNamespaceState(ns, 'x', b.links, b.routes), `${what}: NamespaceState of ${ns}`);
  });
  const nh = new NetlinkIO(helper!);
  const [hn, hi] = await Promise.all([nh.hostLinks(lab.hostNs), ip.hostLinks(lab.hostNs)]).finally(() => nh.helper.close());
  assert.deepEqual(hn.map(linkFields), hi.map(linkFields), `${what}: links of the host namespace ${lab.hostNs}`);
  assert.deepEqual(hn.map(toLinkState), hi.map(toLinkState), `${what}: LinkState of the host namespace`);
  return names.length;
}

/** The changes `plan --json` prints, on one path. */
async function planChanges(lab: Lab, netlink: 'on' | 'off'): Promise<string[]> {
  const r = await lab.provium(['plan', '--json'], { env: { PROVIUM_NETLINK: netlink } });
  assert.equal(r.code, 0, `plan (PROVIUM_NETLINK=${netlink}) exits 0: ${r.stderr}`);
  const j = JSON.parse(r.stdout) as { changes: { action: string; address: string; items: { key: string; action: string }[] }[] };
  return j.changes.map((c) => `${c.action} ${c.address}: ${c.items.map((i) => `${i.action} ${i.key}`).join(', ')}`);
}

async function applyOn(lab: Lab, netlink: 'on' | 'off'): Promise<void> {
  const r = await lab.provium(['apply', '--auto-approve', '--json'], { env: { PROVIUM_NETLINK: netlink } });
  assert.equal(r.code, 0, `apply (PROVIUM_NETLINK=${netlink}) exits 0:\n${r.stdout}\n${r.stderr}`);
}

labTest('netlink helper and iproute2 read and write namespaces alike', async (lab, t) => {
  lab.write(LAB);
  const t0 = performance.now();
  // The helper lists the host namespace's nftables tables: with no provium table there, a
  // plan needs no `nft -j list ruleset`.
  lab.clearTrace();
  assert.ok((await planChanges(lab, 'on')).length > 0, 'the plan of the new lab creates it');
  assert.ok(!lab.trace(true).some((l) => l.argv.includes('nft')), 'a plan on a host namespace without any provium table runs no nft');
  await applyOn(lab, 'on');
  const trace = lab.trace(true);
  assert.ok(trace.some((l) => l.argv[0] === 'provium-nl' && l.argv.includes(lab.ns('a'))), 'apply (PROVIUM_NETLINK=on) wrote node namespaces through the helper');
  assert.ok(!trace.some((l) => l.argv[0] === 'ip' && l.argv.includes(lab.ns('a'))), 'and ran no ip process in them');
  const n = await compareReads(lab, 'after apply through the helper');

  // Traffic on the helper-built lab: across the bridge, across the route (IPv4 and IPv6).
  const ipA = lab.ip('a', 'lan');
  assert.equal((await ping(lab.ns('b'), ipA, 2, 0.1)).received, 2, 'b -> a on lan');
  // b reaches a's data address through its route via lan's host side (c's lan NIC is down, so c could not answer b).
  assert.equal((await ping(lab.ns('b'), lab.ip('a', 'data'), 2, 0.1)).received, 2, 'b -> a across the route lan -> data');

  // Planned as unchanged on the other path.
  assert.deepEqual(await planChanges(lab, 'off'), [], 'the iproute2 path plans no change on the helper-built lab');

  // The nftables reading is kept while the ruleset generation stays: a plan runs no nft;
  // a change by hand (one element) bumps the generation, so the next plan reads and sees it.
  lab.clearTrace();
  assert.deepEqual(await planChanges(lab, 'on'), []);
  assert.ok(!lab.trace(true).some((l) => l.argv.includes('nft')), 'a plan with the ruleset unchanged runs no nft');
  await must(['ip', 'netns', 'exec', lab.hostNs, 'nft', 'delete', 'element', 'inet', `provium_${lab.name}`, 'routed', `{ "${lab.bridge('lan')}" . "${lab.bridge('data')}" }`]);
  const afterNft = await planChanges(lab, 'on');
  assert.ok(lab.trace(true).some((l) => l.argv.includes('nft') && l.argv.includes('list')), 'after a change by hand, plan reads the ruleset');
  assert.ok(afterNft.some((c) => c.includes('routed')), `the element deleted by hand is planned: ${afterNft.join('; ')}`);
  await applyOn(lab, 'on');

  // Drift by hand, then both paths read the same and plan the same.
  const a = lab.ns('a');
  const b = lab.ns('b');
  await must(['ip', '-n', a, 'addr', 'add', '10.61.0.250/24', 'dev', 'eth1']);
  await must(['ip', '-n', a, 'addr', 'add', 'fd00:61::250/64', 'dev', 'eth1', 'nodad']);
  await must(['ip', '-n', b, 'route', 'del', '10.62.0.0/24']);
  await must(['ip', '-n', b, 'link', 'set', 'eth0', 'mtu', '1400']);
  await must(['ip', '-n', b, 'link', 'set', 'eth0', 'address', '02:00:00:00:61:02']);
  await must(['ip', '-n', lab.ns('c'), 'link', 'set', 'eth1', 'down']);
  await must(['ip', '-n', lab.ns('c'), 'link', 'set', 'lo', 'alias', `provium:${lab.name}:node:c`]);
  await must(['ip', '-n', lab.hostNs, 'link', 'set', lab.port('b'), 'down']);
  await compareReads(lab, 'after drift by hand');
  const viaHelper = await planChanges(lab, 'on');
  assert.ok(viaHelper.length >= 4, `the drift is planned (${viaHelper.length} changes)`);
  assert.deepEqual(viaHelper, await planChanges(lab, 'off'), 'both paths plan the same changes');

  // Repaired on the iproute2 path: unchanged on the helper path, and the other way round.
  await applyOn(lab, 'off');
  assert.deepEqual(await planChanges(lab, 'on'), [], 'the helper path plans no change after an iproute2 apply');
  await must(['ip', '-n', b, 'addr', 'flush', 'dev', 'eth0']);
  await must(['ip', '-n', lab.ns('c'), 'route', 'flush', 'proto', 'boot']);
  await applyOn(lab, 'on');
  assert.deepEqual(await planChanges(lab, 'off'), [], 'the iproute2 path plans no change after a helper repair');
  await compareReads(lab, 'after both repairs');
  assert.equal((await ping(lab.ns('b'), lab.ip('a', 'data'), 2, 0.1)).received, 2, 'b -> a across the route after the repairs');

  // destroy --json: the tables go in the teardown group, and its verification lists no ruleset
  // (the helper sees no provium table left); the document is whole (made while the kernel works).
  lab.clearTrace();
  const d = await lab.provium(['destroy', '--auto-approve', '--json'], { env: { PROVIUM_NETLINK: 'on' } });
  assert.equal(d.code, 0, `destroy: ${d.stderr}`);
  const dt = lab.trace(true);
  assert.ok(dt.some((l) => l.argv.includes('nft') && l.argv.includes('-f')), 'destroy deleted the nft tables');
  assert.ok(!dt.some((l) => l.argv.includes('nft') && l.argv.includes('list')), 'its verification ran no nft -j list ruleset');
  assert.ok(dt.some((l) => l.argv[0] === 'provium-nl' && /^netns del /.test(l.stdin ?? '')), 'the helper deleted the node namespaces');
  assert.ok(dt.some((l) => l.argv[0] === 'provium-nl' && /^link del /.test(l.stdin ?? '')), 'and the bridges');
  assert.ok(!dt.some((l) => l.argv[0] === 'ip' && /(netns|link) del /.test(l.stdin ?? '')), 'no ip process for the teardown batches');
  assert.deepEqual((await run(['ip', 'netns', 'list'])).stdout.split('\n').filter((l) => l.startsWith(`pv-${lab.name}-`)), [], 'no node namespace left');
  const doc = JSON.parse(d.stdout) as Record<string, unknown> & { summary: { destroy: number }; commands: { label: string }[] };
  assert.deepEqual(Object.keys(doc), ['format_version', 'lab', 'changes', 'errors', 'commands', 'summary', 'files', 'applied', 'host_commands', 'seconds']);
  assert.equal(doc.applied, true);
  assert.ok(doc.summary.destroy > 0 && doc.host_commands === doc.commands.length, `summary ${JSON.stringify(doc.summary)}, ${String(doc.host_commands)} host commands`);
  assert.equal((await run(['ip', 'netns', 'exec', lab.hostNs, 'nft', 'list', 'tables'])).stdout.trim(), '', 'no table left');
  report(t, `${n} node namespaces + the host namespace compared 4 times; ${viaHelper.length} drift changes planned alike; ${Math.round(performance.now() - t0)} ms`);
}, { skip });

labTest('teardown batches on the helper: netns del and link del without a process, a failure names its line, other lines are left to ip', async (lab) => {
  const io = new NetlinkIO(helper!);
  try {
    const ns = `pvt-${lab.name}-del`;
    await must(['ip', 'netns', 'add', ns]);
    await must(['ip', '-n', lab.hostNs, 'link', 'add', `${lab.name}-br`, 'type', 'bridge']);
    assert.equal(await io.runIpBatch('', `netns del ${ns}\n`), true);
    assert.ok(!(await run(['ip', 'netns', 'list'])).stdout.includes(ns), 'the namespace is gone');
    assert.equal(await io.runIpBatch(lab.hostNs, `link del ${lab.name}-br\n`), true);
    assert.notEqual((await run(['ip', '-n', lab.hostNs, 'link', 'show', `${lab.name}-br`])).code, 0, 'the bridge is gone');
    await assert.rejects(io.runIpBatch('', `netns del ${ns}\n`), /`netns del pvt-[a-z0-9]+-del` \(line 1\) failed: RTNETLINK answers: No such file or directory/, 'a missing namespace fails naming the line');
    await assert.rejects(io.runIpBatch(lab.hostNs, `link del ${lab.name}-br\n`), /`link del [a-z0-9]+-br` \(line 1\) failed: RTNETLINK answers: No such device/);
    // Lines the helper does not do, and netns del with -n, are left to ip (false: nothing done).
    assert.equal(await io.runIpBatch('', `netns add ${ns}\n`), false);
    assert.equal(await io.runIpBatch(lab.hostNs, `netns del ${ns}\n`), false);
    assert.equal(await io.runIpBatch(lab.hostNs, `link del x\nlink add y type bridge\n`), false);
    assert.ok(!(await run(['ip', 'netns', 'list'])).stdout.includes(ns), 'netns add was not run');
  } finally {
    io.helper.close();
  }
}, { skip });

labTest('a namespace batch that fails on the helper path is reported with its line and rolled back', async (lab) => {
  lab.write(`
    nodes: { a: { kind: netns }, b: { kind: netns } }
    bridges:
      lan: { subnet: 10.63.0.0/24, subnet6: "fd00:63::/64", attach: [a, b] }
  `);
  await applyOn(lab, 'on');
  // a loses its IPv6 address, and IPv6 is disabled on its NIC: re-adding the address fails in the kernel.
  const a = lab.ns('a');
  await must(['ip', '-n', a, '-6', 'addr', 'flush', 'dev', 'eth0', 'scope', 'global']);
  await must(['ip', 'netns', 'exec', a, 'sysctl', '-q', '-w', 'net.ipv6.conf.eth0.disable_ipv6=1']);
  const r = await lab.provium(['apply', '--auto-approve'], { env: { PROVIUM_NETLINK: 'on' } });
  assert.equal(r.code, 1, `apply fails: ${r.stdout}${r.stderr}`);
  assert.match(r.stderr, new RegExp(`netlink: namespace ${a}: \`addr add fd00:63::[0-9a-f:]+/64 dev eth0 nodad\` \\(line 1\\) failed: RTNETLINK answers: Permission denied`), 'the failing line and the kernel error are named');
  assert.match(r.stderr, /rolled back/);
  // Nothing else changed: a still has its IPv4 address and no global IPv6 one.
  const links = JSON.parse((await must(['ip', '-j', '-n', a, 'addr', 'show', 'dev', 'eth0'])).stdout) as IpLink[];
  assert.deepEqual(links[0].addr_info!.filter((x) => x.scope === 'global').map((x) => x.family), ['inet']);
  await must(['ip', 'netns', 'exec', a, 'sysctl', '-q', '-w', 'net.ipv6.conf.eth0.disable_ipv6=0']);
}, { skip });

labTest('routers and VXLAN ports read alike on both paths; a line the helper does not know runs through ip', async (lab, t) => {
  const t0 = performance.now();
  lab.write(`
    nodes:
      isp: { kind: router, nat: cgnat }
      home: { kind: router, nat: home }
      alice: { kind: netns }
      stun: { kind: netns }
    bridges:
      wan: { subnet: 198.51.100.0/24, attach: [isp, stun] }
      cell: { subnet: 100.64.0.0/24, gateway: isp, attach: [isp, home] }
      lan: { subnet: 192.168.7.0/24, subnet6: "fd00:67::/64", gateway: home, attach: [home, alice] }
  `);
  await applyOn(lab, 'on');
  // A VXLAN port (as a multi-host lab's) in the host namespace, made by hand: both paths read its details.
  await must(['ip', '-n', lab.hostNs, 'link', 'add', 'pvt-vx0', 'type', 'vxlan', 'id', '4242', 'dstport', '4789', 'local', '192.0.2.9']);
  await must(['ip', '-n', lab.hostNs, 'link', 'add', 'pvt-vx6', 'type', 'vxlan', 'id', '4243', 'dstport', '4790', 'local', 'fd00:99::9']);
  const nodes = ['isp', 'home', 'alice', 'stun'];
  await compareReads(lab, 'routers after apply through the helper', nodes);
  const vx = (await new NetlinkIO(helper!).hostLinks(lab.hostNs)).filter((l) => l.ifname.startsWith('pvt-vx')).map(toLinkState);
  assert.deepEqual(vx.map((l) => l.vxlan), [{ vni: 4242, port: 4789, local: '192.0.2.9', peers: [] }, { vni: 4243, port: 4790, local: '', peers: [] }], 'VXLAN details through the helper');
  await must(['ip', '-n', lab.hostNs, 'link', 'del', 'pvt-vx0']);
  await must(['ip', '-n', lab.hostNs, 'link', 'del', 'pvt-vx6']);
  assert.deepEqual(await planChanges(lab, 'off'), [], 'the iproute2 path plans no change on the helper-built router lab');
  // alice reaches the STUN-side node through two NATs (traffic through router namespaces the helper wrote).
  assert.equal((await ping(lab.ns('alice'), lab.ip('stun', 'wan'), 2, 0.1)).received, 2, 'alice -> stun through home and isp');

  // Drift in a router's namespace: both paths read and plan it alike, and repair it.
  await must(['ip', '-n', lab.ns('home'), 'route', 'del', 'default']);
  await must(['ip', '-n', lab.ns('home'), 'addr', 'add', '192.168.7.250/24', 'dev', 'eth1']);
  await compareReads(lab, 'routers after drift by hand', nodes);
  const drift = await planChanges(lab, 'on');
  assert.ok(drift.length >= 1, `the router drift is planned: ${drift.join('; ')}`);
  assert.deepEqual(drift, await planChanges(lab, 'off'), 'both paths plan the same router changes');
  await applyOn(lab, 'on');
  assert.deepEqual(await planChanges(lab, 'off'), [], 'repaired through the helper');

  // A batch line the helper has no operation for goes through \`ip -batch\` (the whole batch, in order).
  const io = new NetlinkIO(helper!, new IprouteIO(new HostRunner()));
  lab.clearTrace();
  const back = await io.applyNamespace(lab.ns('alice'), 'link set eth0 up\nlink set eth0 txqueuelen 500\naddr show\nroute show table all\n');
  assert.equal(back.links.find((l) => l.ifname === 'eth0')?.flags?.includes('UP'), true, 'the batch ran and read back');
  const q = JSON.parse((await must(['ip', '-j', '-n', lab.ns('alice'), 'link', 'show', 'eth0'])).stdout) as { txqlen?: number }[];
  assert.equal(q[0].txqlen, 500, 'the line the helper does not know was run by ip');
  await assert.rejects(new NetlinkIO(helper!).applyNamespace(lab.ns('alice'), 'link set eth0 txqueuelen 1000\n'), /a namespace batch line provium does not write/, 'without a fallback such a line is refused');
  io.helper.close();
  report(t, `4 router and node namespaces and 2 VXLAN ports compared on both paths; ${Math.round(performance.now() - t0)} ms`);
}, { skip });

labTest('tc qdiscs and HTB classes read alike on both paths (one helper request, no tc process), also after drift by hand', async (lab, t) => {
  const t0 = performance.now();
  lab.write(`
    nodes: { a: { kind: netns }, b: { kind: netns }, c: { kind: netns } }
    bridges:
      lan:
        subnet: 10.63.0.0/24
        attach: [a, b, c]
        impairments:
          - { bandwidth_bps: 8000000 }
          - { from: a, to: b, bandwidth_bps: 1000000 }
          - { from: c, to: b, bandwidth_bps: 123456789 }
          - { from: b, to: c, bandwidth_bps: 40000000000 }
  `);
  await applyOn(lab, 'on');
  // A device that is not the lab's, with an HTB tree whose major equals a lab port's: its classes are never the port's.
  const ports = new Set(['a', 'b', 'c'].map((n) => lab.port(n)));
  const major = (JSON.parse((await must(['tc', '-n', lab.hostNs, '-j', 'qdisc', 'show', 'dev', lab.port('b')])).stdout) as { handle: string }[])[0].handle;
  await must(['ip', '-n', lab.hostNs, 'link', 'add', 'pvt-other', 'type', 'veth', 'peer', 'name', 'pvt-other2']);
  await must(['tc', '-n', lab.hostNs, 'qdisc', 'add', 'dev', 'pvt-other', 'root', 'handle', major, 'htb', 'default', '7']);
  await must(['tc', '-n', lab.hostNs, 'class', 'add', 'dev', 'pvt-other', 'parent', major, 'classid', `${major}7`, 'htb', 'rate', '5mbit']);
  await must(['tc', '-n', lab.hostNs, 'class', 'add', 'dev', 'pvt-other', 'parent', major, 'classid', `${major}3`, 'htb', 'rate', '3mbit']);

  const compare = (what: string) => compareTc(lab, ports, what);
  const before = await compare('after apply');
  const rates = Object.values(before[lab.port('b')].classes).map((c) => c.rateBps).sort((x, y) => x - y);
  assert.deepEqual(rates, [1000000, 8000000, 123456784], 'b receives a -> b at 1 Mbit/s, c -> b at 123456789 bit/s (whole bytes), the rest at 8 Mbit/s');
  assert.ok(Object.values(before[lab.port('c')].classes).some((c) => c.rateBps === 40000000000), 'a rate above 32 bits of bytes/s (40 Gbit/s) is read whole');
  assert.deepEqual(await planChanges(lab, 'off'), [], 'the iproute2 path plans no change');
  lab.clearTrace();
  assert.deepEqual(await planChanges(lab, 'on'), [], 'the helper path plans no change');
  assert.ok(!lab.trace(true).some((l) => l.argv[0] === 'tc'), 'and runs no tc process');

  // Drift by hand: a class's rate, a class added, a netem leaf (when the kernel has sch_netem).
  const b = lab.port('b');
  const sh = before[b];
  const minor = Object.values(sh.classes).find((c) => c.rateBps === 1000000)!.minor;
  const cid = `${sh.major.toString(16)}:${minor.toString(16)}`;
  await must(['tc', '-n', lab.hostNs, 'class', 'change', 'dev', b, 'classid', cid, 'htb', 'rate', '2mbit', 'ceil', '2mbit']);
  await must(['tc', '-n', lab.hostNs, 'class', 'add', 'dev', b, 'parent', `${sh.major.toString(16)}:1`, 'classid', `${sh.major.toString(16)}:77`, 'htb', 'rate', '3mbit']);
  const netem = await run(['tc', '-n', lab.hostNs, 'qdisc', 'add', 'dev', b, 'parent', cid, 'handle', '99:', 'netem', 'delay', '20ms', '5ms', 'limit', '1234']);
  const drifted = await compare('after drift by hand');
  assert.equal(drifted[b].classes[minor].rateBps, 2000000, 'the rate changed by hand is read on both paths');
  assert.equal(drifted[b].classes[0x77]?.rateBps, 3000000, 'the class added by hand is read');
  if (netem.code === 0) assert.deepEqual(drifted[b].classes[minor].netem, { delayMs: 20, jitterMs: 5, limit: 1234 }, 'the netem leaf added by hand: delay, jitter, limit');
  const drift = await planChanges(lab, 'on');
  assert.ok(drift.length >= 1, `the drift is planned: ${drift.join('; ')}`);
  assert.deepEqual(drift, await planChanges(lab, 'off'), 'both paths plan the same tc changes');
  await applyOn(lab, 'on');
  assert.deepEqual(await planChanges(lab, 'off'), [], 'repaired through the helper');
  await must(['ip', '-n', lab.hostNs, 'link', 'del', 'pvt-other']);
  report(t, `3 shaped ports compared 2 times; netem leaf ${netem.code === 0 ? 'compared' : `not compared (no sch_netem here: ${netem.stderr.trim().split('\n')[0]})`}; ${drift.length} drift change(s) planned alike; ${Math.round(performance.now() - t0)} ms`);
}, { skip });

/** Reads the host namespace's tc state on both paths; asserts the qdiscs and the ports' HTB trees agree. Returns the helper's. */
async function compareTc(lab: Lab, ports: Set<string>, what: string): Promise<ReturnType<typeof toShaping>> {
  const nl = new NetlinkIO(helper!);
  const runner = new HostRunner();
  const ctx = { hostNetns: lab.hostNs };
  const [viaHelper, viaTc] = await Promise.all([readTc(ctx, runner, ports, nl), readTc(ctx, runner, ports, new IprouteIO(runner))]).finally(() => nl.helper.close());
  const fields = (q: TcQdisc) => ({ kind: q.kind, handle: q.handle, dev: q.dev, root: q.root ?? false, parent: q.parent, default: q.options?.default, delay: q.options?.delay?.delay ?? 0, jitter: q.options?.delay?.jitter ?? 0, limit: q.kind === 'netem' ? q.options?.limit : undefined });
  const mine = (qs: TcQdisc[]) => qs.filter((q) => q.kind === 'htb' || q.kind === 'netem').map(fields).sort((x, y) => (`${x.dev} ${x.handle}` < `${y.dev} ${y.handle}` ? -1 : 1));
  assert.deepEqual(mine(viaHelper.qdiscs), mine(viaTc.qdiscs), `${what}: HTB and netem qdiscs (helper vs tc -j qdisc show)`);
  const shaping = toShaping(viaHelper.qdiscs, viaHelper.classes, ports);
  // tc prints rates rounded ("123456Kbit"); the helper reads the kernel's bytes/s. The planner compares rates as tc prints them.
  const printed = (x: ReturnType<typeof toShaping>) => JSON.parse(JSON.stringify(x, (k, v) => (k === 'rateBps' ? tcRateString(v) : v)));
  assert.deepEqual(printed(shaping), printed(toShaping(viaTc.qdiscs, viaTc.classes, ports)), `${what}: the ports' HTB trees (helper vs tc)`);
  assert.equal(Object.keys(shaping).length, ports.size, `${what}: every port of the lab is shaped`);
  return shaping;
}

labTest('netem read alike on both paths: delay, jitter and queue limit of the netem leaves', async (lab, t) => {
  lab.write(`
    nodes: { a: { kind: netns }, b: { kind: netns } }
    bridges:
      lan:
        subnet: 10.64.0.0/24
        attach: [a, b]
        impairments:
          - { latency_ms: 7 }
          - { from: a, to: b, latency_ms: 20, jitter_ms: 5, bandwidth_bps: 2000000 }
  `);
  await applyOn(lab, 'on');
  const ports = new Set(['a', 'b'].map((n) => lab.port(n)));
  const sh = await compareTc(lab, ports, 'after apply');
  const leaves = Object.values(sh).flatMap((p) => Object.values(p.classes)).map((c) => c.netem).filter(Boolean);
  assert.ok(leaves.some((n) => n!.delayMs === 20 && n!.jitterMs === 5), `the pair's netem leaf: ${JSON.stringify(leaves)}`);
  assert.ok(leaves.some((n) => n!.delayMs === 7 && n!.jitterMs === 0), `the whole bridge's: ${JSON.stringify(leaves)}`);
  assert.deepEqual(await planChanges(lab, 'off'), [], 'the iproute2 path plans no change on the helper-built lab');
  assert.deepEqual(await planChanges(lab, 'on'), [], 'nor does the helper path');
  report(t, `${leaves.length} netem leaves compared on both paths`);
}, { skip: skip ?? (kernelHasNetem() ? undefined : 'this kernel has no sch_netem (the guest run of guest-netem.test.ts runs this test)') });
