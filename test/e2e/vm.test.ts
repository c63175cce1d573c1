/**
 * QEMU VMs on the lab's bridges (issue 3), proven with traffic. The guest is built by
 * scripts/build-guest.sh (the test command builds it when missing): it takes its
 * address from the kernel command line (pv.ip) and serves a command port (pv.ctl)
 * that these tests use to run ping and read counters inside the VM. One-way
 * checks read the kernel's ICMP counters (/proc/net/snmp InEchos) on each side.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { labTest, ping, run, report, type Lab } from './helpers.js';



const vmNode = (ip: string, mem = 160) =>
  `{ kind: qemu, kernel: ${GUEST}vmlinux, initrd: ${GUEST}initrd.gz, append: "console=ttyS0 quiet pv.ip=${ip}/24 pv.ctl=${CTL}", memory_mb: ${mem} }`;



/** ICMP InEchos (echo requests received) from /proc/net/snmp text. */
function inEchos(snmp: string): number {
  const lines = snmp.split('\n').filter((l) => l.startsWith('Icmp:'));
  const [head, vals] = [lines[0].split(/\s+/), lines[1].split(/\s+/)];
  return Number(vals[head.indexOf('InEchos')]);
}

async function nodeInEchos(ns: string): Promise<number> {
  return inEchos((await run(['ip', 'netns', 'exec', ns, 'cat', '/proc/net/snmp'])).stdout);
}


function labVmPids(lab: Lab): string[] {
  const out: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = require_('fs').readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmd.includes('qemu-system') && cmd.includes(lab.stateDir)) out.push(pid);
    } catch {
      /* gone */
    }
  }
  return out;
}
import { createRequire } from 'node:module';
import { GUEST, CTL, vmSkip, inVm, waitVm, vmPing } from './guest.js';
const require_ = createRequire(import.meta.url);

// The VMs' static addresses, which their kernel command lines (pv.ip) repeat: provium
// configures nothing inside a VM. The netns node n takes the address allocated to it.
const V1 = '10.60.0.11';
const V2 = '10.60.0.12';

labTest('vm: two VMs and a netns node on one bridge reach each other; a symmetric partition stops VM-to-VM traffic and lifting it restores it; a directional VM->node partition drops one direction only', async (lab, t) => {
  const body = (parts: string) => `
    nodes:
      n: { kind: netns }
      v1: ${vmNode(V1)}
      v2: ${vmNode(V2)}
    bridges:
      lan:
        subnet: 10.60.0.0/24
        attach: [n, { node: v1, ip: ${V1}/24 }, { node: v2, ip: ${V2}/24 }]
        partitions: [${parts}]
  `;
  lab.write(body(''));
  const N = lab.ip('n', 'lan');
  const t0 = Date.now();
  await lab.apply();
  const ns = lab.ns('n');
  const ctl = lab.hostNs;
  await Promise.all([waitVm(ctl, V1), waitVm(ctl, V2)]);
  report(t, `2 VMs applied and answering after ${Date.now() - t0} ms`);

  assert.equal((await ping(ns, V1, 3)).received, 3, 'n -> v1');
  assert.equal((await ping(ns, V2, 3)).received, 3, 'n -> v2');
  assert.equal(await vmPing(ctl, V1, V2), 3, 'v1 -> v2');
  assert.equal(await vmPing(ctl, V2, N), 3, 'v2 -> n');
  assert.equal((await lab.planCode()).code, 0, 'plan after apply is empty');

  lab.write(body('[v1, v2]'));
  await lab.apply();
  assert.equal(await vmPing(ctl, V1, V2), 0, 'v1 -> v2 partitioned');
  assert.equal(await vmPing(ctl, V2, V1), 0, 'v2 -> v1 partitioned');
  assert.equal(await vmPing(ctl, V1, N), 3, 'v1 -> n still flows');
  lab.write(body(''));
  await lab.apply();
  assert.equal(await vmPing(ctl, V1, V2), 3, 'v1 -> v2 restored');

  // Directional v1 -> n: echo requests from v1 never reach n; n's reach v1 (its replies are dropped).
  lab.write(body('{ from: v1, to: n }'));
  await lab.apply();
  const n0 = await nodeInEchos(ns);
  const v0 = inEchos(await inVm(ctl, V1, 'cat /proc/net/snmp'));
  await vmPing(ctl, V1, N, 10);
  await ping(ns, V1, 10, 0.1);
  const n1 = await nodeInEchos(ns);
  const v1 = inEchos(await inVm(ctl, V1, 'cat /proc/net/snmp'));
  report(t, `directional v1->n: n received ${n1 - n0} echo requests from v1; v1 received ${v1 - v0} from n`);
  assert.equal(n1 - n0, 0, 'v1 -> n dropped');
  assert.ok(v1 - v0 >= 10, `n -> v1 delivered (${v1 - v0} echo requests)`);
  assert.equal((await lab.planCode()).code, 0, 'plan after apply is empty');
}, { skip: vmSkip(), timeoutMs: 240_000 });

labTest('vm: link down on a VM NIC stops its traffic and link up restores it; hotplug adds a NIC without a reboot; a killed VM is restarted; destroy leaves no process, TAP, socket or file', async (lab, t) => {
  const body = (link: string, extra = '') => `
    nodes:
      n: { kind: netns }
      v1: ${vmNode(V1)}
    bridges:
      lan:
        subnet: 10.60.0.0/24
        attach: [n, { node: v1, ip: ${V1}/24, link: ${link} }]
      ${extra}
  `;
  lab.write(body('up'));
  await lab.apply();
  const ns = lab.ns('n');
  const ctl = lab.hostNs;
  await waitVm(ctl, V1);
  assert.equal((await ping(ns, V1, 3)).received, 3, 'v1 reachable');

  lab.write(body('down'));
  const plan = await lab.planJson();
  assert.deepEqual(plan.changes.map((c) => c.address), ['bridge.lan.attach.v1']);
  assert.deepEqual(plan.commands.map((c) => c.label), ['QMP configure VM v1'], 'link state is one QMP exchange');
  await lab.apply();
  assert.equal((await ping(ns, V1, 3)).received, 0, 'v1 unreachable with its link down');
  assert.equal((await lab.planCode()).code, 0, 'plan is empty: the link state is recorded');
  lab.write(body('up'));
  await lab.apply();
  assert.equal((await ping(ns, V1, 3)).received, 3, 'v1 reachable again');
  assert.equal((await lab.planCode()).code, 0, 'plan empty after link up');

  // Hotplug: v1 joins bridge "mgmt" (sorted after lan: guest eth1) while running.
  const up0 = Number((await inVm(ctl, V1, 'cut -d. -f1 /proc/uptime')).trim());
  lab.write(body('up', 'mgmt: { attach: [v1] }'));
  const hp = await lab.planJson();
  assert.ok(hp.commands.some((c) => c.label === 'QMP configure VM v1' && (c.stdin ?? '').includes('device_add')), 'planned as hotplug');
  assert.ok(!hp.commands.some((c) => /start VM|stop VM/.test(c.label)), 'no restart planned');
  await lab.apply();
  const links = await inVm(ctl, V1, 'sleep 1; ls /sys/class/net; cut -d. -f1 /proc/uptime');
  assert.match(links, /eth1/, `guest sees the hot-plugged NIC: ${links}`);
  const up1 = Number(links.trim().split('\n').pop());
  assert.ok(up1 >= up0, `no reboot (uptime ${up0} -> ${up1})`);
  lab.write(body('up'));
  await lab.apply(); // unplug
  assert.doesNotMatch(await inVm(ctl, V1, 'sleep 1; ls /sys/class/net'), /eth1/, 'guest lost the unplugged NIC');

  // A VM whose process died is drift; apply restarts it.
  const [pid] = labVmPids(lab);
  process.kill(Number(pid), 'SIGKILL');
  await new Promise((r) => setTimeout(r, 300));
  const drift = await lab.planJson();
  assert.ok(drift.changes.some((c) => c.address === 'node.v1' && c.action === 'replace'), JSON.stringify(drift.changes.map((c) => `${c.action} ${c.address}`)));
  await lab.apply();
  await waitVm(ctl, V1);
  assert.equal((await ping(ns, V1, 3)).received, 3, 'restarted v1 reachable');

  const d = await lab.provium(['destroy', '--auto-approve']);
  assert.equal(d.code, 0, d.stderr);
  assert.deepEqual(labVmPids(lab), [], 'no QEMU process left');
  const taps = (await run(['ip', '-n', lab.hostNs, '-br', 'link'])).stdout;
  assert.doesNotMatch(taps, new RegExp(lab.port('v1')), 'no TAP left');
  assert.equal(existsSync(`${lab.stateDir}/${lab.name}`), false, 'no VM files (socket, pidfile, console log) left');
  report(t, 'destroy: no process, TAP or file');
}, { skip: vmSkip(), timeoutMs: 240_000 });
