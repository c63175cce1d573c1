/**
 * Multi-host labs without hosts: loading (hosts, node host, bridge home/vni, vxlan) and
 * its errors, the per-host projection, and what the single-host engine realizes from
 * it: local ports only, a VXLAN port with unicast peers on spanning bridges, the host
 * side on the home host only, pair elements at the receiver's host keyed by the
 * sender's MAC, the spanning MTU (underlay minus 50) or an error naming the bridge.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { checkTopology, loadTopology } from '../../src/load/index.js';
import { project, spanningMtus } from '../../src/hosts/project.js';
import { realize } from '../../src/plan/realize.js';
import { itemize } from '../../src/plan/items.js';
import { buildInvocations } from '../../src/plan/commands.js';
import { diffItems } from '../../src/plan/diff.js';
import { emptyState } from '../../src/model/state.js';
import { deriveVni, nicMac } from '../../src/model/names.js';
import { portOfNic } from '../../src/plan/index.js';
import { yaml } from './helpers.js';

const LAB = yaml`
  lab: mh
  hosts:
    h1: { local: true, underlay: 192.0.2.11 }
    h2: { ssh: root@192.0.2.12, underlay: 192.0.2.12, port: 2222, identity: keys/lab, ssh_config: ~/cfg, state_dir: /srv/pv/ }
    h3: { ssh: h3, underlay: 192.0.2.13 }
  vxlan: { port: 14789 }
  nodes:
    a: { kind: netns, host: h1 }
    b: { kind: netns, host: h2 }
    c: { kind: netns, host: h3 }
    v: { kind: qemu, host: h2, kernel: k, initrd: i }
  bridges:
    lan:
      subnet: 10.40.0.0/24
      home: h1
      dns: true
      attach: [a, b, c, v]
      partitions: [{ from: a, to: b }, [b, c]]
      impairments:
        - { drop_pct: 1 }
        - { from: a, to: c, bandwidth_bps: 2000000 }
      isolate: [c]
      uplink: true
    solo: { subnet: 10.41.0.0/24, attach: [b], vni: 77 }
`;

function load(text: string) {
  return loadTopology('/lab/mh.yaml', text);
}

function errors(text: string): string[] {
  return checkTopology('/lab/mh.yaml', text).diagnostics.filter((d) => d.severity === 'error').map((d) => `${d.pos?.line}: ${d.summary}: ${d.detail}`);
}

describe('loading a multi-host file', () => {
  test('hosts, placement, home, VNIs and paths are normalized', () => {
    const t = load(LAB);
    assert.deepEqual(Object.keys(t.hosts!), ['h1', 'h2', 'h3']);
    assert.equal(t.hosts!.h2.identity, '/lab/keys/lab');
    assert.match(t.hosts!.h2.sshConfig!, /^\/.+\/cfg$/);
    assert.equal(t.hosts!.h2.stateDir, '/srv/pv');
    assert.equal(t.vxlanPort, 14789);
    assert.equal(t.nodes.b.host, 'h2');
    assert.equal(t.bridges.lan.home, 'h1');
    assert.equal(t.bridges.solo.home, 'h2', 'home defaults to the host of all members');
    assert.equal(t.bridges.solo.vni, 77);
    assert.equal(t.bridges.lan.vni, deriveVni('mh', 'lan'));
    assert.ok(t.bridges.lan.vni! >= 1 && t.bridges.lan.vni! <= 0xffffff);
  });

  test('without hosts: the multi-host keys are errors, and nothing else changes', () => {
    const e = errors(yaml`
      lab: one
      vxlan: { port: 4789 }
      nodes: { a: { kind: netns, host: h1 } }
      bridges: { lan: { attach: [a], home: h1, vni: 5 } }
    `);
    assert.equal(e.length, 4, e.join('\n'));
    assert.ok(e.some((x) => /host without hosts/.test(x)) && e.some((x) => /home without hosts/.test(x)) && e.some((x) => /vni without hosts/.test(x)) && e.some((x) => /vxlan without hosts/.test(x)));
    const t = load(yaml`
      lab: one
      nodes: { a: { kind: netns } }
      bridges: { lan: { attach: [a] } }
    `);
    assert.equal(t.hosts, undefined);
    assert.equal(t.bridges.lan.home, undefined);
    assert.equal(t.bridges.lan.vni, undefined);
  });

  test('every mistake is reported where it is written', () => {
    const e = errors(yaml`
      lab: mh
      hosts:
        h1: { local: true, underlay: 192.0.2.11 }
        h2: { local: true, ssh: root@x, underlay: 192.0.2.11 }
        h3: { ssh: "-oProxyCommand=sh", underlay: 192.0.2.13 }
        h4: { underlay: 192.0.2.14 }
      nodes:
        a: { kind: netns, host: h1 }
        b: { kind: netns, host: h9 }
        c: { kind: netns }
        d: { kind: netns, host: h4 }
      bridges:
        lan: { subnet: 10.40.0.0/24, attach: [a, d] }
        x: { subnet: 10.41.0.0/24, home: h1, attach: [a], routes: [y] }
        y: { subnet: 10.42.0.0/24, home: h4, attach: [d] }
    `);
    const want = [
      /4: .*local or ssh/, /4: .*two local hosts/, /4: .*duplicate underlay/, /5: .*ssh is a destination/, /6: .*local or ssh/,
      /9: unknown host/, /10: missing host/, /13: missing home.*h1, h4/, /14: routes across homes/,
    ];
    for (const w of want) assert.ok(e.some((x) => w.test(x)), `expected ${w} in:\n${e.join('\n')}`);
  });

  test('a spanning bridge whose VXLAN device name would not fit is refused, naming it', () => {
    const e = errors(yaml`
      lab: longlab1
      hosts: { h1: { local: true, underlay: 192.0.2.1 }, h2: { ssh: h2, underlay: 192.0.2.2 } }
      nodes: { a: { kind: netns, host: h1 }, b: { kind: netns, host: h2 } }
      bridges: { lanlan: { attach: [a, b] } }
    `);
    assert.ok(e.some((x) => /VXLAN port 'longlab1-lanlan-vx'/.test(x)), e.join('\n'));
  });
});

describe('per-host projection', () => {
  const t = load(LAB);

  test('each host gets its nodes, remote members as senders, a VXLAN port with the other hosts as peers, the host side on the home only', () => {
    const p2 = project(t, 'h2');
    assert.deepEqual(Object.keys(p2.nodes).sort(), ['b', 'v']);
    assert.equal(p2.placement, 'h2');
    const lan = p2.bridges.lan;
    assert.deepEqual(lan.attach.map((a) => [a.node, a.remote ?? 'here']), [['a', 'h1'], ['b', 'here'], ['c', 'h3'], ['v', 'here']]);
    assert.deepEqual(lan.placement, { home: false, vxlan: { vni: t.bridges.lan.vni, port: 14789, local: '192.0.2.12', peers: ['192.0.2.11', '192.0.2.13'] } });
    assert.deepEqual(lan.impairments.map((i) => i.to ?? '*'), ['*'], 'the a->c impairment is enforced on h3 (c receives there)');
    assert.deepEqual(lan.isolate, [], 'c is isolated at its own port, on h3');
    assert.deepEqual(p2.bridges.solo.placement, { home: true }, 'solo lives on h2 only: no VXLAN');
    assert.deepEqual(project(t, 'h1').bridges.solo.placement, { home: false, absent: true });
  });

  test('realized on h2: b and v ports, VXLAN port and peers, no host address, no dnsmasq, partitions only towards b keyed by the sender MAC', () => {
    const s = realize(project(t, 'h2'), { stateDir: '/srv/pv/mh', defaultRouteDev: 'eth0' });
    const links = Object.keys(s.links).sort();
    assert.deepEqual(links, ['mh-b-0', 'mh-b-1', 'mh-lan', 'mh-lan-vx', 'mh-solo', 'mh-v-0']);
    assert.deepEqual(s.links['mh-lan'].addrs, [], 'the host address lives on h1 (home)');
    assert.deepEqual(s.links['mh-solo'].addrs, ['10.41.0.1/24']);
    assert.deepEqual(s.links['mh-lan-vx'].vxlan, { vni: t.bridges.lan.vni, port: 14789, local: '192.0.2.12', peers: ['192.0.2.11', '192.0.2.13'] });
    assert.equal(s.links['mh-lan-vx'].master, 'mh-lan');
    assert.deepEqual(Object.keys(s.dnsmasq), []);
    assert.ok(s.resolv['pv-mh-b'].startsWith('# provium:mh:node:b:h2\nnameserver 10.40.0.1\n'), s.resolv['pv-mh-b']);
    assert.equal(s.namespaces['pv-mh-b'].owner, 'provium:mh:node:b:h2');
    const blocked = Object.keys(s.nft.bridge!.blocked).sort();
    assert.deepEqual(blocked, [`${nicMac('mh', 'a', 'lan')}>mh-b-0`, `${nicMac('mh', 'c', 'lan')}>mh-b-0`].sort(), 'a->b and c->b, enforced at b\'s port');
    assert.equal(s.nft.inet, undefined, 'no uplink here: h1 is home');
    assert.equal(s.ipForward, undefined);
    // b routes through the home's host address (default route for the uplink).
    assert.deepEqual(s.namespaces['pv-mh-b'].routes, [{ dst: 'default', via: '10.40.0.1' }]);
  });

  test('realized on h1 (home): host address, uplink, dnsmasq with every member (leases for remote VMs too)', () => {
    const s = realize(project(t, 'h1'), { stateDir: '/var/lib/provium/mh', defaultRouteDev: 'eth0' });
    assert.deepEqual(s.links['mh-lan'].addrs, ['10.40.0.1/24']);
    assert.equal(s.links['mh-solo'], undefined);
    assert.match(s.dnsmasq.lan.config, /host-record=v\.lan,/);
    assert.ok(s.nft.inet?.uplinkBridges['mh-lan']);
    assert.equal(s.ipForward, true);
    const lossTo = Object.keys(s.nft.bridge!.loss);
    assert.ok(lossTo.every((k) => k.endsWith('>mh-a-0')), `drop only towards a here: ${lossTo}`);
  });

  test('the commands create the VXLAN port with VNI, port and local address, and append one all-zeros FDB entry per peer', () => {
    const proj = project(t, 'h2');
    const s = realize(proj, { stateDir: '/srv/pv/mh' });
    const items = itemize(s, portOfNic('mh', s));
    const inv = buildInvocations('mh', diffItems(items, []), { stateDir: '/srv/pv/mh' });
    const host = inv.find((i) => i.label === 'host links')!.stdin!;
    assert.match(host, new RegExp(`^link add mh-lan-vx type vxlan id ${t.bridges.lan.vni} dstport 14789 local 192.0.2.12$`, 'm'));
    assert.match(host, /^link set mh-lan-vx master mh-lan$/m);
    const fdb = inv.find((i) => i.label === 'VXLAN peers')!;
    assert.deepEqual(fdb.argv, ['bridge', '-batch', '-']);
    assert.equal(fdb.stdin, 'fdb append 00:00:00:00:00:00 dev mh-lan-vx dst 192.0.2.11\nfdb append 00:00:00:00:00:00 dev mh-lan-vx dst 192.0.2.13\n');
    const vm = inv.find((i) => i.vmStart)!;
    assert.ok(vm.argv.some((a) => a.includes('host_mtu=')) === false, 'no mtu known yet: the guest keeps its default');
    // A changed peer set is one in-place FDB change.
    const before = itemize(s, portOfNic('mh', s));
    const s2 = structuredClone(s);
    s2.links['mh-lan-vx'].vxlan!.peers = ['192.0.2.11'];
    const ch = diffItems(itemize(s2, portOfNic('mh', s2)), before);
    assert.deepEqual(ch.map((c) => `${c.action} ${c.key}`), ['update fdb:mh-lan-vx']);
    assert.equal(buildInvocations('mh', ch, {})[0].stdin, 'fdb del 00:00:00:00:00:00 dev mh-lan-vx dst 192.0.2.13\n');
  });

  test('MTU: spanning members get the smallest underlay MTU minus 50; a declared mtu that cannot fit is an error naming the bridge', () => {
    const fit = spanningMtus(t, { h1: 1500, h2: 9000, h3: 1500 });
    assert.deepEqual(fit.errors, []);
    assert.equal(fit.mtus.lan, 1450);
    assert.equal(fit.mtus.solo, undefined, 'one host: no tunnel, no constraint');
    const s = realize(project(t, 'h2', fit.mtus), { stateDir: '/s' });
    assert.equal(s.links['mh-b-0'].mtu, 1450);
    assert.equal(s.namespaces['pv-mh-b'].nics.eth0.mtu, 1450);
    assert.equal(s.vms.v.nics['mh-v-0'].mtu, 1450, 'the guest is told the MTU (virtio-net host_mtu)');
    const t2 = load(LAB.replace('home: h1', 'home: h1\n    mtu: 1480'));
    const bad = spanningMtus(t2, { h1: 1500, h2: 1500, h3: 1500 });
    assert.equal(bad.errors.length, 1);
    assert.match(bad.errors[0].summary, /bridge lan: mtu 1480 cannot fit/);
    assert.match(bad.errors[0].detail!, /at most 1450/);
    assert.ok(bad.errors[0].pos!.line > 1);
    assert.deepEqual(spanningMtus(load(LAB.replace('home: h1', 'home: h1\n    mtu: 1400')), { h1: 1500, h2: 1500, h3: 1500 }).mtus.lan, 1400);
  });

  test('an empty host state plans a full projection without errors', () => {
    const proj = project(t, 'h3');
    const s = realize(proj, {});
    const items = itemize(s, portOfNic('mh', s));
    assert.ok(diffItems(items, itemize(emptyState(), () => '')).length > 0);
  });
});
