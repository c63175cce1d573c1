/**
 * IPv6 across bridges: `routes` between two bridges with subnet6 (ip -6 routes in the
 * nodes via the host side's ::1, net.ipv6.conf.all.forwarding=1 in the lab's host
 * namespace while the lab routes IPv6, restored by destroy) and the IPv6 `uplink`
 * (subnet6 masqueraded out of the host namespace's IPv6 default-route interface)
 * against a fake upstream, proven with ping -6 and UDP; and what a VM gets (the router
 * advertisements of the bridge's dnsmasq make the host side its IPv6 default router).
 *
 * DAD: the lab's bridges get their link-local addresses from the kernel, tentative for
 * 1-2 s after they come up, and until then the host cannot resolve neighbours for the
 * packets it forwards (a router's neighbour solicitation needs a usable link-local
 * source). apply waits for that, so traffic is checked right after apply returns, and
 * the tests assert that nothing in the host namespace is still tentative then.
 */
import assert from 'node:assert/strict';
import { labTest, must, ping, udpProbe, report, makeUpstream, listNetns, type Lab } from './helpers.js';
import { GUEST, CTL, vmSkip, inVm, waitVm } from './guest.js';

/**
 * Asserts that apply returned only after DAD of the lab's bridges (the devices that
 * forward IPv6): none of them has a tentative IPv6 address. Their member ports' own
 * link-local addresses do not matter (they switch, they do not route).
 */
async function assertSettled(lab: Lab, bridges: string[]): Promise<void> {
  for (const b of bridges) {
    const out = (await must(['ip', '-n', lab.hostNs, '-6', 'addr', 'show', 'dev', lab.bridge(b), 'tentative'])).stdout.trim();
    assert.equal(out, '', `apply returned while bridge ${b} still had a tentative IPv6 address`);
  }
}

/** net.ipv6.conf.all.forwarding of the lab's host namespace ("0" or "1"). */
async function forwarding6(lab: Lab): Promise<string> {
  return (await must(['ip', 'netns', 'exec', lab.hostNs, 'sysctl', '-n', 'net.ipv6.conf.all.forwarding'])).stdout.trim();
}

/** `ip -6 route show` inside a namespace, as text. */
async function routes6(ns: string): Promise<string> {
  return (await must(['ip', '-n', ns, '-6', 'route', 'show'])).stdout;
}

/** Packets counted by the inet table's rule with this comment suffix (e.g. "no-route"). */
async function ruleCounter(lab: Lab, comment: string): Promise<number> {
  const r = await must(['ip', 'netns', 'exec', lab.hostNs, 'nft', '-j', 'list', 'table', 'inet', `provium_${lab.name}`]);
  const rule = (JSON.parse(r.stdout).nftables as { rule?: { comment?: string; expr: { counter?: { packets: number } }[] } }[])
    .map((o) => o.rule)
    .find((x) => x?.comment === `provium:${lab.name}:${comment}`);
  return rule?.expr.find((e) => e.counter)?.counter?.packets ?? -1;
}

/** Elements of a set of the lab's inet table, as nft -j prints them. */
async function setElems(lab: Lab, set: string): Promise<unknown[]> {
  const r = await must(['ip', 'netns', 'exec', lab.hostNs, 'nft', '-j', 'list', 'set', 'inet', `provium_${lab.name}`, set]);
  const s = (JSON.parse(r.stdout).nftables as { set?: { elem?: unknown[] } }[]).find((o) => o.set)?.set;
  return (s?.elem ?? []).map((e) => ((e as { elem?: { val: unknown } }).elem ? (e as { elem: { val: unknown } }).elem.val : e));
}

labTest('IPv6 routes: nodes on two routed bridges with subnet6 reach each other over IPv6 (not masqueraded); unrouted, the no-route rule drops; destroy restores IPv6 forwarding', async (lab, t) => {
  const file = (lanRoutes: string) => `
    nodes: { a: { kind: netns }, b: { kind: netns }, c: { kind: netns }, x: { kind: netns } }
    bridges:
      lan:
        subnet: 10.73.0.0/24
        subnet6: "fd00:73::/64"
        attach: [a, { node: b, ip: 10.73.0.3/24, ip6: "fd00:73::3/64" }]
        routes: [${lanRoutes}]
      data:
        subnet: 10.74.0.0/24
        subnet6: "fd00:74::/64"
        attach: [{ node: c, ip: 10.74.0.2/24, ip6: "fd00:74::2/64" }]
      ext:
        subnet: 10.75.0.0/24
        subnet6: "fd00:75::/64"
        attach: [{ node: x, ip: 10.75.0.2/24, ip6: "fd00:75::2/64" }]
  `;
  assert.equal(await forwarding6(lab), '0', 'a fresh host namespace does not forward IPv6');
  lab.write(file('data'));
  await lab.apply();
  await assertSettled(lab, ['lan', 'data', 'ext']);
  assert.equal(await forwarding6(lab), '1', 'IPv6 forwarding is on while the lab routes IPv6');
  assert.match(await routes6(lab.ns('b')), /^fd00:74::\/64 via fd00:73::1 dev eth0/m, 'b routes data\'s subnet6 via lan\'s host ::1');
  assert.match(await routes6(lab.ns('c')), /^fd00:73::\/64 via fd00:74::1 dev eth0/m, 'c routes lan\'s subnet6 via data\'s host ::1');
  assert.doesNotMatch(await routes6(lab.ns('b')), /fd00:75::/, 'ext is not routed');
  assert.equal((await lab.planCode()).code, 0, 'the second plan after apply is empty');

  const bc = await ping(lab.ns('b'), 'fd00:74::2', 5, 0.1);
  const cb = await ping(lab.ns('c'), 'fd00:73::3', 5, 0.1);
  const u = await udpProbe(lab.ns('b'), lab.ns('c'), 'fd00:74::2', 20);
  report(t, `routes [data] (checked right after apply): ping -6 b(lan) -> c(data) ${bc.received}/5 avg ${bc.avgMs} ms, c -> b ${cb.received}/5 avg ${cb.avgMs} ms; UDP b -> c ${u.received}/20 from ${JSON.stringify(u.peers)}`);
  assert.equal(bc.received, 5, 'b (lan) -> c (data) over IPv6');
  assert.equal(cb.received, 5, 'c (data) -> b (lan) over IPv6');
  assert.equal(u.received, 20, `UDP over IPv6 b -> c: ${u.received}/20`);
  assert.deepEqual(Object.keys(u.peers), ['fd00:73::3'], 'routed, not masqueraded: c sees b\'s own address');

  // lan routes to ext only: IPv6 forwarding stays on, lan <-> data is not routed.
  lab.write(file('ext'));
  await lab.apply();
  assert.equal(await forwarding6(lab), '1');
  assert.doesNotMatch(await routes6(lab.ns('b')), /fd00:74::/, 'the route to data is gone');
  assert.match(await routes6(lab.ns('b')), /^fd00:75::\/64 via fd00:73::1/m);
  assert.equal((await lab.planCode()).code, 0, 'plan empty');
  await assertSettled(lab, ['lan', 'data', 'ext']);
  const bx = await ping(lab.ns('b'), 'fd00:75::2', 3, 0.1);
  // Routes by hand, so the packets reach the host: the inet table's no-route rule drops them.
  await must(['ip', '-n', lab.ns('b'), '-6', 'route', 'add', 'fd00:74::/64', 'via', 'fd00:73::1']);
  await must(['ip', '-n', lab.ns('c'), '-6', 'route', 'add', 'fd00:73::/64', 'via', 'fd00:74::1']);
  const dropsBefore = await ruleCounter(lab, 'no-route');
  const bc2 = await ping(lab.ns('b'), 'fd00:74::2', 5, 0.1);
  const cb2 = await ping(lab.ns('c'), 'fd00:73::3', 5, 0.1);
  const drops = (await ruleCounter(lab, 'no-route')) - dropsBefore;
  report(t, `routes [ext]: ping -6 b -> x(ext) ${bx.received}/3; with routes by hand b -> c ${bc2.received}/5, c -> b ${cb2.received}/5; no-route rule counted ${drops} packets`);
  assert.equal(bx.received, 3, 'b -> x over IPv6 (lan routes ext)');
  assert.equal(bc2.received, 0, 'b -> c over IPv6 without routes');
  assert.equal(cb2.received, 0, 'c -> b over IPv6 without routes');
  assert.ok(drops >= 10, `the no-route rule dropped them (${drops} packets)`);
  await must(['ip', '-n', lab.ns('b'), '-6', 'route', 'del', 'fd00:74::/64', 'via', 'fd00:73::1']);
  await must(['ip', '-n', lab.ns('c'), '-6', 'route', 'del', 'fd00:73::/64', 'via', 'fd00:74::1']);
  assert.equal((await lab.planCode()).code, 0, 'plan empty again');

  const d = await lab.provium(['destroy', '--auto-approve']);
  assert.equal(d.code, 0, d.stderr);
  assert.equal(await forwarding6(lab), '0', 'destroy restores net.ipv6.conf.all.forwarding to what the lab found');
  assert.equal((await must(['ip', 'netns', 'exec', lab.hostNs, 'sysctl', '-n', 'net.ipv4.ip_forward'])).stdout.trim(), '0', 'and ip_forward');
  assert.deepEqual(listNetns().filter((n) => n.startsWith(`pv-${lab.name}-`)), [], 'no node namespace left');
  assert.equal((await must(['ip', 'netns', 'exec', lab.hostNs, 'nft', 'list', 'ruleset'])).stdout.trim(), '', 'no nft table left');
  const links = JSON.parse((await must(['ip', '-n', lab.hostNs, '-j', 'link', 'show'])).stdout) as { ifname: string }[];
  assert.deepEqual(links.map((l) => l.ifname), ['lo'], 'no link left');
});

/**
 * A fake IPv6 upstream in namespace `up` (made by makeUpstream): veth wan6 (lab host
 * namespace, 2001:db8:6::2/64) to up6 (upstream, 2001:db8:6::1/64), and the host
 * namespace's IPv6 default route via 2001:db8:6::1 over wan6, a different interface than
 * the IPv4 default route's (wan0). DAD is off on both ends so the link is usable at once.
 * The upstream has no route back to any lab subnet6: only masqueraded traffic can return.
 */
async function makeUpstream6(lab: Lab, up: string): Promise<void> {
  await must(['ip', '-n', lab.hostNs, 'link', 'add', 'wan6', 'type', 'veth', 'peer', 'name', 'up6', 'netns', up]);
  await must(['ip', 'netns', 'exec', lab.hostNs, 'sysctl', '-q', '-w', 'net.ipv6.conf.wan6.accept_dad=0']);
  await must(['ip', 'netns', 'exec', up, 'sysctl', '-q', '-w', 'net.ipv6.conf.up6.accept_dad=0']);
  await must(['ip', '-n', up, 'addr', 'add', '2001:db8:6::1/64', 'dev', 'up6', 'nodad']);
  await must(['ip', '-n', up, 'link', 'set', 'up6', 'up']);
  await must(['ip', '-n', lab.hostNs, 'addr', 'add', '2001:db8:6::2/64', 'dev', 'wan6', 'nodad']);
  await must(['ip', '-n', lab.hostNs, 'link', 'set', 'wan6', 'up']);
  await must(['ip', '-n', lab.hostNs, '-6', 'route', 'add', 'default', 'via', '2001:db8:6::1', 'dev', 'wan6']);
}

labTest('IPv6 uplink: a node reaches an IPv6 upstream masqueraded out of the IPv6 default-route interface; without uplink it does not; IPv6 forwarding found on stays on', async (lab, t) => {
  const up = await makeUpstream(lab);
  await makeUpstream6(lab, up);
  // The host namespace forwards IPv6 already: the lab must leave it so.
  await must(['ip', 'netns', 'exec', lab.hostNs, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.forwarding=1']);
  const file = (uplink: boolean) => `
    nodes: { a: { kind: netns }, b: { kind: netns } }
    bridges:
      lan:
        subnet: 10.76.0.0/24
        subnet6: "fd00:76::/64"
        attach: [{ node: a, ip: 10.76.0.2/24, ip6: "fd00:76::2/64" }, b]
        uplink: ${uplink}
  `;
  lab.write(file(true));
  await lab.apply();
  await assertSettled(lab, ['lan']);
  assert.match(await routes6(lab.ns('a')), /^default via fd00:76::1 dev eth0/m, 'a\'s IPv6 default route is the host side ::1');
  assert.deepEqual(await setElems(lab, 'wan6'), ['wan6'], 'IPv6 is masqueraded on the IPv6 default route\'s interface');
  assert.deepEqual(await setElems(lab, 'wan'), ['wan0'], 'IPv4 on the IPv4 one');
  assert.deepEqual(await setElems(lab, 'masq6'), [{ prefix: { addr: 'fd00:76::', len: 64 } }], 'lan\'s subnet6 is the IPv6 masquerade source');
  assert.equal((await lab.planCode()).code, 0, 'the second plan after apply is empty');

  const p = await ping(lab.ns('a'), '2001:db8:6::1', 5, 0.1);
  const u = await udpProbe(lab.ns('a'), up, '2001:db8:6::1', 20);
  const p4 = await ping(lab.ns('a'), '192.0.2.1', 3, 0.1);
  report(t, `IPv6 uplink: ping -6 a -> 2001:db8:6::1 ${p.received}/5 avg ${p.avgMs} ms; UDP a -> upstream ${u.received}/20 from ${JSON.stringify(u.peers)}; IPv4 ping a -> 192.0.2.1 ${p4.received}/3`);
  assert.equal(p.received, 5, `ping -6 a -> upstream with uplink: ${p.received}/5`);
  assert.equal(u.received, 20, `UDP over IPv6 a -> upstream: ${u.received}/20`);
  assert.deepEqual(Object.keys(u.peers), ['2001:db8:6::2'], 'the upstream sees only the host side\'s address (masquerade), never fd00:76::2');
  assert.equal(p4.received, 3, 'IPv4 uplink still works');

  lab.write(file(false));
  await lab.apply();
  assert.doesNotMatch(await routes6(lab.ns('a')), /^default/m, 'no IPv6 default route without uplink');
  assert.equal((await lab.planCode()).code, 0, 'plan is empty');
  const q = await ping(lab.ns('a'), '2001:db8:6::1', 5, 0.1);
  report(t, `without uplink: ping -6 a -> upstream ${q.received}/5`);
  assert.equal(q.received, 0, `ping -6 a -> upstream without uplink: ${q.received}/5`);
  // (A default route by hand would now be forwarded unmasqueraded: this host namespace
  // forwarded IPv6 before the lab, and a lab without routes, uplink or forwards has no
  // inet table; the IPv4 uplink test shows the same with ip_forward on.)

  const d = await lab.provium(['destroy', '--auto-approve']);
  assert.equal(d.code, 0, d.stderr);
  assert.equal(await forwarding6(lab), '1', 'IPv6 forwarding was on before the lab: destroy leaves it on');
  assert.equal((await must(['ip', 'netns', 'exec', lab.hostNs, 'sysctl', '-n', 'net.ipv4.ip_forward'])).stdout.trim(), '0', 'ip_forward back to 0');
  assert.equal((await must(['ip', 'netns', 'exec', lab.hostNs, 'nft', 'list', 'ruleset'])).stdout.trim(), '', 'no nft table left');
});

labTest('IPv6 with a VM: the bridge\'s router advertisements make the host side the VM\'s IPv6 default router, so it reaches a routed bridge and the uplink over IPv6; a netns node keeps its route from ::1 beside the advertised one, and the plan stays empty', async (lab, t) => {
  const up = await makeUpstream(lab);
  await makeUpstream6(lab, up);
  lab.write(`
    nodes:
      a: { kind: netns }
      c: { kind: netns }
      v: { kind: qemu, kernel: ${GUEST}vmlinux, initrd: ${GUEST}initrd.gz, append: "console=ttyS0 quiet pv.dhcp=1 pv.ctl=${CTL}", memory_mb: 160 }
    bridges:
      lan:
        subnet: 10.79.0.0/24
        subnet6: "fd00:79::/64"
        dhcp: true
        uplink: true
        attach: [{ node: v, ip: 10.79.0.9/24, mac: "52:54:00:00:00:09" }, { node: a, ip: 10.79.0.2/24, ip6: "fd00:79::2/64" }]
        routes: [data]
      data:
        subnet: 10.80.0.0/24
        subnet6: "fd00:80::/64"
        attach: [{ node: c, ip: 10.80.0.2/24, ip6: "fd00:80::2/64" }]
  `);
  await lab.apply();
  await waitVm(lab.hostNs, '10.79.0.9', 90_000);
  // SLAAC and the default route come with the first router advertisement; the address is
  // usable once the guest's DAD is done (not tentative).
  const vm = await inVm(lab.hostNs, '10.79.0.9', 'for i in $(seq 60); do ip -6 route show default | grep -q via && ip -6 addr show dev eth0 scope global | grep -q fd00:79 && ! ip -6 addr show dev eth0 | grep -q tentative && break; sleep 0.25; done; ip -6 addr show dev eth0 scope global; ip -6 route show default');
  assert.match(vm, /inet6 fd00:79::5054:ff:fe00:9\/64/, `the VM's SLAAC address is the planned EUI-64 one:\n${vm}`);
  assert.match(vm, /default via fe80::\S+ dev eth0/, `the VM's IPv6 default route is the bridge's link-local address, from the router advertisement:\n${vm}`);
  // a takes the advertised default route too (the kernel's: not drift), beside provium's via ::1.
  let aDefault = '';
  for (let i = 0; i < 40 && !/proto ra/.test(aDefault); i++) {
    aDefault = (await must(['ip', '-n', lab.ns('a'), '-6', 'route', 'show', 'default'])).stdout;
    if (!/proto ra/.test(aDefault)) await new Promise((r) => setTimeout(r, 250));
  }
  assert.match(aDefault, /^default via fd00:79::1 dev eth0/m, `a's default route via ::1:\n${aDefault}`);
  assert.match(aDefault, /default via fe80::\S+ dev eth0 proto ra/, `and the advertised one:\n${aDefault}`);
  assert.equal((await lab.planCode()).code, 0, 'plan empty with the advertised routes present');
  await assertSettled(lab, ['lan', 'data']);

  const vc = await inVm(lab.hostNs, '10.79.0.9', 'ping -6 -c 3 -i 0.2 -W 2 fd00:80::2 2>&1 | tail -2');
  const cv = await ping(lab.ns('c'), 'fd00:79::5054:ff:fe00:9', 3, 0.2);
  const vu = await inVm(lab.hostNs, '10.79.0.9', 'ping -6 -c 3 -i 0.2 -W 2 2001:db8:6::1 2>&1 | tail -2');
  const au = await ping(lab.ns('a'), '2001:db8:6::1', 3, 0.2);
  const line = (out: string) => out.trim().split('\n')[0];
  report(t, `VM: ${vm.trim().split('\n').filter((l) => /inet6|default/.test(l)).map((l) => l.trim()).join('; ')}; a: ${aDefault.trim().split('\n').join('; ')}`);
  report(t, `ping -6 v -> c (routed): ${line(vc)}; c -> v ${cv.received}/3 avg ${cv.avgMs} ms; v -> upstream (uplink): ${line(vu)}; a -> upstream ${au.received}/3`);
  assert.match(vc, /3 packets received/, `v (lan) pings c (data) over IPv6:\n${vc}`);
  assert.equal(cv.received, 3, 'c (data) pings v (lan) over IPv6');
  assert.match(vu, /3 packets received/, `v reaches the IPv6 upstream through the uplink:\n${vu}`);
  assert.equal(au.received, 3, 'a reaches the IPv6 upstream');
  assert.equal((await lab.planCode()).code, 0, 'plan empty');
}, { skip: vmSkip(), timeoutMs: 240_000 });
