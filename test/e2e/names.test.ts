/**
 * Addresses and names (issue 5): one dnsmasq per bridge in the lab's host namespace
 * serves static DHCP leases and <node>.<bridge> names. A VM takes its address by DHCP
 * (the lease provium planned), netns nodes resolve through /etc/netns/<ns>/resolv.conf
 * (which `ip netns exec`, and so `provium exec`, binds over /etc/resolv.conf), the VM
 * through the server DHCP gave it. Proven with lookups and pings by name.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { labTest, run, report } from './helpers.js';
import { GUEST, CTL, vmSkip, inVm, waitVm } from './guest.js';

labTest('names: a netns node and a DHCP VM reach each other by name over IPv4 and IPv6; unknown names fail; drift of the DNS server is repaired; destroy leaves no dnsmasq, lease file or resolv.conf', async (lab, t) => {
  lab.write(`
    nodes:
      a: { kind: netns }
      b: { kind: netns }
      v: { kind: qemu, kernel: ${GUEST}vmlinux, initrd: ${GUEST}initrd.gz, append: "console=ttyS0 quiet pv.dhcp=1 pv.ctl=${CTL}", memory_mb: 160 }
    bridges:
      lan:
        subnet: 10.97.0.0/24
        subnet6: "fd00:97::/64"
        dhcp: true
        dns: true
        attach: [a, b, v]
  `);
  // v's address is planned (allocated from its name, as a's and b's) and handed out by DHCP.
  const ip = lab.ips('lan');
  const re = (addr: string) => addr.replace(/\./g, '\\.');
  const t0 = Date.now();
  await lab.apply();
  await waitVm(lab.hostNs, ip.v, 90_000);
  report(t, `VM up with its DHCP lease after ${Date.now() - t0} ms`);

  // IPv4 records (getent hosts would prefer the IPv6 one).
  const getent = (ns: string, name: string) => run(['ip', 'netns', 'exec', ns, 'getent', 'ahostsv4', name]);
  assert.match((await getent(lab.ns('a'), 'v.lan')).stdout, new RegExp(`^${re(ip.v)}\\s+STREAM v\\.lan`));
  assert.match((await getent(lab.ns('a'), 'b')).stdout, new RegExp(`^${re(ip.b)}\\s+STREAM b\\.lan`), 'short names via the search domain');
  const nope = await getent(lab.ns('a'), 'nope.lan');
  assert.notEqual(nope.code, 0, 'an unknown name does not resolve');
  const p = await run(['ip', 'netns', 'exec', lab.ns('a'), 'ping', '-4', '-c', '3', '-i', '0.2', '-W', '2', 'v.lan']);
  assert.match(p.stdout, /3 received/, `a pings v by name:\n${p.stdout}${p.stderr}`);
  const fromVm = await inVm(lab.hostNs, ip.v, 'cat /etc/resolv.conf; nslookup a.lan 2>&1 | tail -2; ping -4 -c 3 -i 0.2 -W 2 a.lan 2>&1 | tail -2');
  assert.match(fromVm, /nameserver 10\.97\.0\.1/, `the VM got the lab's DNS server by DHCP:\n${fromVm}`);
  assert.match(fromVm, /3 packets received/, `v pings a by name:\n${fromVm}`);
  // IPv6: a's address is static EUI-64 from its MAC; v configures the same rule by SLAAC
  // from the bridge's router advertisements, so its planned address is known.
  // The guest configures its address when a router advertisement arrives (seconds after boot).
  const slaac = await inVm(lab.hostNs, ip.v, 'for i in $(seq 40); do ip -6 addr show dev eth0 scope global | grep -q fd00:97 && break; sleep 0.25; done; ip -6 addr show dev eth0 scope global');
  assert.match(slaac, /inet6 fd00:97::/, `the VM configured its address by SLAAC:\n${slaac}`);
  const plan6 = await lab.planJson();
  assert.equal(plan6.changes.length, 0);
  const v6 = (await run(['ip', 'netns', 'exec', lab.ns('a'), 'getent', 'ahostsv6', 'v.lan'])).stdout;
  const a6 = await run(['ip', 'netns', 'exec', lab.ns('a'), 'getent', 'ahostsv6', 'a.lan']);
  assert.match(a6.stdout, /^fd00:97::/, 'a.lan has an IPv6 record');
  const p6 = await run(['ip', 'netns', 'exec', lab.ns('a'), 'ping', '-6', '-c', '3', '-i', '0.2', '-W', '2', 'v.lan']);
  assert.match(p6.stdout, /3 received/, `a pings v by name over IPv6:\n${p6.stdout}${p6.stderr}\n${v6}`);
  const fromVm6 = await inVm(lab.hostNs, ip.v, 'ip -6 addr show dev eth0 scope global; ping -6 -c 3 -i 0.2 -W 2 a.lan 2>&1 | tail -2');
  assert.match(fromVm6, /inet6 fd00:97::/, `the VM configured its address by SLAAC:\n${fromVm6}`);
  assert.match(fromVm6, /3 packets received/, `v pings a by name over IPv6:\n${fromVm6}`);

  const ex = await lab.provium(['exec', lab.file, 'b', '--', 'getent', 'ahostsv4', 'a.lan'], { file: false });
  assert.match(ex.stdout, new RegExp(`^${re(ip.a)}\\s+STREAM a\\.lan`, 'm'), 'provium exec resolves lab names');
  assert.equal((await lab.planCode()).code, 0, 'plan empty');

  // Drift: the DNS server killed by hand is restarted by apply.
  const pidfile = `${lab.stateDir}/${lab.name}/dnsmasq/lan.pid`;
  await run(['pkill', '-F', pidfile]);
  await new Promise((r) => setTimeout(r, 200));
  const drift = await lab.planJson();
  assert.deepEqual(drift.changes.map((c) => `${c.action} ${c.address}`), ['replace bridge.lan.dhcp_dns']);
  await lab.apply();
  assert.match((await getent(lab.ns('a'), 'b.lan')).stdout, new RegExp(`^${re(ip.b)}\\s`), 'resolves again after repair');

  const d = await lab.provium(['destroy', '--auto-approve']);
  assert.equal(d.code, 0, d.stderr);
  assert.equal((await run(['pgrep', '-f', `${lab.stateDir}/${lab.name}/dnsmasq`])).code, 1, 'no dnsmasq left');
  assert.equal(existsSync(`${lab.stateDir}/${lab.name}`), false, 'no config, pid or lease file left');
  assert.equal(existsSync(`/etc/netns/${lab.ns('a')}`), false, 'no resolv.conf left');
}, { skip: vmSkip(), timeoutMs: 240_000 });
