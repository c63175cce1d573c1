import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { loadTopology } from '../../src/load/index.js';
import { computePlan } from '../../src/plan/index.js';
import { realize } from '../../src/plan/realize.js';
import { emptyState, type HostFacts, type HostState } from '../../src/model/state.js';
import { tempDir } from './helpers.js';

const facts = (over: Partial<HostFacts> = {}): HostFacts => ({
  features: { netem: true, htb: true, nftBridge: true, tun: true }, featureSource: {}, conflicts: [],
  qemuBinary: '/usr/bin/qemu-system-x86_64', missingFiles: [], ...over,
});
const ctx = { hostNetns: 'pvt-x', stateDir: '/var/lib/provium/tv' };

const DIR = tempDir('pv-vmplan-');
/** Loads a variant of the lab from the same folder, so relative VM paths resolve alike. */
function topo(text: string) {
  writeFileSync(`${DIR}/lab.yaml`, text);
  return loadTopology(`${DIR}/lab.yaml`);
}

const LAB = `lab: tv
nodes:
  v1: { kind: qemu, kernel: k/vmlinuz, initrd: k/initrd.gz, memory_mb: 192 }
  n: { kind: netns }
bridges:
  lan: { subnet: 10.50.0.0/24, attach: [v1, n] }
  mgmt: { attach: [v1] }
`;

/** The host exactly as the file wants it: what an apply leaves (VM links recorded as set). */
function applied(text: string): HostState {
  return realize(topo(text), { kvmUsable: false });
}

describe('planning QEMU VMs', () => {
  test('a new VM is launched in the lab host namespace after its TAPs, with NICs in bridge order', () => {
    const t = topo(LAB);
    const plan = computePlan(t, emptyState(), facts(), ctx);
    assert.deepEqual(plan.errors, []);
    const start = plan.invocations.find((i) => i.vmStart)!;
    assert.ok(plan.invocations.findIndex((i) => i.label === 'host links') < plan.invocations.indexOf(start));
    assert.deepEqual(start.argv.slice(0, 5), ['ip', 'netns', 'exec', 'pvt-x', 'qemu-system-x86_64']);
    const a = start.argv.join(' ');
    assert.match(a, /-accel tcg -m 192 -smp 1 /);
    assert.match(a, new RegExp(`-kernel ${t.file.replace(/lab\.yaml$/, '')}k/vmlinuz`));
    // eth0 = lan (tv-v1-0, slot 0x10), eth1 = mgmt (tv-v1-1, slot 0x11): ordered by bridge name
    assert.match(a, /ifname=tv-v1-0,.*addr=0x10,romfile= .*ifname=tv-v1-1,.*addr=0x11,romfile=/);
    assert.match(a, /-qmp unix:\/var\/lib\/provium\/tv\/vm\/v1\/qmp.sock,server=on,wait=off -pidfile \/var\/lib\/provium\/tv\/vm\/v1\/qemu.pid -daemonize$/);
    // MACs are locally administered and stable
    const macs = [...a.matchAll(/mac=([0-9a-f:]+)/g)].map((m) => m[1]);
    assert.equal(macs.length, 2);
    for (const m of macs) assert.equal(parseInt(m.slice(0, 2), 16) & 0b11, 0b10);
    assert.deepEqual(macs, [...computePlan(t, emptyState(), facts(), ctx).invocations.find((i) => i.vmStart)!.argv.join(' ').matchAll(/mac=([0-9a-f:]+)/g)].map((m) => m[1]));
  });

  test('applied and unchanged: no changes', () => {
    const plan = computePlan(topo(LAB), applied(LAB), facts(), ctx);
    assert.deepEqual(plan.changes, []);
  });

  test('link: down is one QMP set_link, shown as recorded', () => {
    const down = LAB.replace('attach: [v1, n]', 'attach: [{ node: v1, link: down }, n]');
    const plan = computePlan(topo(down), applied(LAB), facts(), ctx);
    assert.deepEqual(plan.changes.map((c) => `${c.action} ${c.address}`), ['update bridge.lan.attach.v1']);
    assert.equal(plan.invocations.length, 1);
    assert.deepEqual(plan.invocations[0].qmp!.steps.map((s) => [s.execute, s.arguments]), [['set_link', { name: 'd-tv-v1-0', up: false }]]);
  });

  test('a dead VM is restarted (replace), a changed memory size restarts with the field named', () => {
    const s = applied(LAB);
    s.vms.v1 = { ...s.vms.v1, alive: false, status: 'dead', nics: {}, links: {} };
    const plan = computePlan(topo(LAB), s, facts(), ctx);
    const vm = plan.changes.find((c) => c.address === 'node.v1')!;
    assert.equal(vm.action, 'replace');
    assert.match(vm.items[0].reason!, /not running/);
    assert.deepEqual(plan.invocations.filter((i) => i.vmStop || i.vmStart).map((i) => (i.vmStop ? 'stop' : 'start')), ['stop', 'start']);
    const plan2 = computePlan(topo(LAB.replace('memory_mb: 192', 'memory_mb: 256')), applied(LAB), facts(), ctx);
    const c2 = plan2.changes.find((c) => c.address === 'node.v1')!;
    assert.equal(c2.action, 'replace');
    assert.deepEqual(c2.items[0].fields.map((f) => [f.field, f.before, f.after]), [['memoryMb', 192, 256]]);
  });

  test('attaching a running VM to another bridge hotplugs the NIC (no restart); detaching unplugs it before the TAP goes', () => {
    const more = LAB.replace('mgmt: { attach: [v1] }', 'mgmt: { attach: [v1] }\n  data: { attach: [v1] }');
    const plan = computePlan(topo(more), applied(LAB), facts(), ctx);
    assert.equal(plan.invocations.some((i) => i.vmStart || i.vmStop), false);
    // data sorts first: the new NIC is eth0? No: NIC numbers follow bridge names, so adding "data" renumbers
    // v1's NICs; renumbered TAPs are new TAPs, so they are hotplugged and the old ones unplugged.
    const q = plan.invocations.filter((i) => i.qmp);
    assert.ok(q.some((i) => i.qmp!.steps.some((s) => s.execute === 'device_add')));
    const less = LAB.replace('mgmt: { attach: [v1] }', 'mgmt: { attach: [] }');
    const p2 = computePlan(topo(less), applied(LAB), facts(), ctx);
    const unplug = p2.invocations.findIndex((i) => i.qmp?.steps.some((s) => s.execute === 'device_del'));
    const hostLinks = p2.invocations.findIndex((i) => i.label === 'host links');
    assert.ok(unplug >= 0 && unplug < hostLinks, p2.invocations.map((i) => i.label).join(', '));
    assert.deepEqual(p2.invocations[unplug].qmp!.steps.map((s) => s.execute), ['set_link', 'device_del', 'netdev_del']);
  });

  test('--refresh-links re-sends every recorded link state', () => {
    const plan = computePlan(topo(LAB), applied(LAB), facts(), { ...ctx, refreshLinks: true });
    const steps = plan.invocations.flatMap((i) => i.qmp?.steps ?? []);
    assert.deepEqual(steps.map((s) => [s.execute, s.arguments]), [
      ['set_link', { name: 'd-tv-v1-0', up: true }],
      ['set_link', { name: 'd-tv-v1-1', up: true }],
    ]);
  });

  test('missing kernel file and missing qemu binary are plan errors, with no commands', () => {
    const t = topo(LAB);
    const k = t.file.replace(/lab\.yaml$/, 'k/vmlinuz');
    const plan = computePlan(t, emptyState(), facts({ missingFiles: [k], qemuBinary: undefined }), ctx);
    assert.equal(plan.invocations.length, 0);
    assert.deepEqual(plan.errors.map((e) => e.summary), ['node v1: file not found: k/vmlinuz', 'qemu-system-x86_64 not found: the topology boots VMs']);
    assert.equal(plan.errors[0].pos?.line, 3);
  });

  test('accel auto picks kvm only where KVM runs ordinary guests', () => {
    assert.equal(realize(topo(LAB), { kvmUsable: true }).vms.v1.spec.accel, 'kvm');
    assert.equal(realize(topo(LAB), { kvmUsable: false }).vms.v1.spec.accel, 'tcg');
  });
});
