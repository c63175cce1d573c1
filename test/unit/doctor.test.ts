/**
 * Tests of `provium doctor` (src/doctor.ts): the report's structure, fixes on every
 * check that is not ok, exit-code rules on fake hosts (a DoctorProbe that answers from
 * tables), and the real run on this machine (read-only: only version commands run).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import {
  doctorJson, doctorReady, hasNetAdmin, renderDoctor, runDoctor, versionLine, type DoctorProbe, type ExtraModule,
} from '../../src/doctor.js';
import type { Feature } from '../../src/observe/features.js';
import { repoDir, tempDir } from './helpers.js';

type Fake = {
  uid: number;
  capEff: string;
  files: Record<string, string>;
  writable: string[];
  tools: string[];
  features: Partial<Record<Feature, boolean>>;
  modules: Partial<Record<ExtraModule, boolean>>;
  /** The netlink helper: built (and answering --version), and PROVIUM_NETLINK. */
  netlink?: { built: boolean; mode?: 'auto' | 'on' | 'off' };
};

/** A host where everything is there (KVM with kvm_intel, br_netfilter not loaded). */
function healthy(): Fake {
  return {
    uid: 0,
    capEff: '000001ffffffffff',
    files: { '/proc/self/ns/net': '', '/run/netns': '', '/dev/kvm': '', '/sys/module/kvm_intel': '', '/proc/cpuinfo': 'flags\t\t: fpu vmx sse\n' },
    writable: ['/run/netns', '/run', '/dev/kvm'],
    tools: ['ip', 'tc', 'nft', 'bridge', 'sysctl', 'conntrack', 'dnsmasq', 'qemu-system-x86_64', 'tcpdump', 'iperf3', 'socat'],
    features: { netem: true, htb: true, nftBridge: true, tun: true },
    modules: { bridge: true, veth: true, ifb: true, nftMasq: true, brNetfilter: false },
  };
}

function probe(f: Fake, ran: string[][] = []): DoctorProbe {
  const files: Record<string, string> = { ...f.files, '/proc/self/status': `Name:\tnode\nCapEff:\t${f.capEff}\n` };
  return {
    uid: () => f.uid,
    read: (p) => files[p],
    exists: (p) => p in files,
    writable: (p) => f.writable.includes(p) && p in files,
    which: (p) => (f.tools.includes(p) ? `/usr/bin/${p}` : undefined),
    run: async (argv) => {
      ran.push(argv);
      return { exitCode: 0, stdout: `${argv[0].split('/').pop()} utility, version 1.0\n`, stderr: '' };
    },
    feature: (x) => ({ present: f.features[x] === true, source: f.features[x] ? `CONFIG_${x}=y` : `CONFIG_${x} is not set in the kernel config` }),
    module: (m) => ({ present: f.modules[m] === true, source: f.modules[m] ? `/sys/module/${m}` : `CONFIG_${m} is not set in the kernel config` }),
    netlink: () => {
      const n = f.netlink ?? { built: true };
      return n.built ? { path: '/x/dist/native/provium-nl', ok: true, detail: '/x/dist/native/provium-nl (protocol 1)', mode: n.mode ?? 'auto' } : { ok: false, detail: 'not built (dist/native/provium-nl is missing)', mode: n.mode ?? 'auto' };
    },
  };
}

const byName = (r: Awaited<ReturnType<typeof runDoctor>>, name: string) => {
  const c = r.checks.find((x) => x.name === name);
  assert.ok(c, `no check ${name}: ${r.checks.map((x) => x.name).join(', ')}`);
  return c;
};

/** The JSON document's structure, for fake and real runs alike. */
function assertStructure(doc: unknown): void {
  const d = doc as { format_version: unknown; checks: Record<string, unknown>[] };
  assert.equal(d.format_version, '1');
  assert.ok(Array.isArray(d.checks) && d.checks.length >= 15, 'checks');
  const names = new Set<string>();
  for (const c of d.checks) {
    assert.equal(typeof c.name, 'string');
    assert.ok(!names.has(c.name as string), `duplicate check ${c.name}`);
    names.add(c.name as string);
    assert.ok(['ok', 'missing', 'warn'].includes(c.status as string), `${c.name}: status ${c.status}`);
    assert.equal(typeof c.required, 'boolean');
    assert.ok(typeof c.detail === 'string' && c.detail.length > 0, `${c.name}: detail`);
    assert.ok(Array.isArray(c.enables) && c.enables.length > 0 && c.enables.every((e) => typeof e === 'string' && e), `${c.name}: enables`);
    if (c.status !== 'ok') assert.ok(typeof c.fix === 'string' && c.fix.length > 0, `${c.name} is ${c.status} without a fix`);
    if (c.status === 'missing') assert.equal(c.required, true, `${c.name}: only required checks are missing`);
    assert.deepEqual(Object.keys(c).filter((k) => !['name', 'status', 'required', 'detail', 'enables', 'fix'].includes(k)), []);
  }
  for (const n of ['root', 'tool:ip', 'tool:tc', 'tool:nft', 'tool:bridge', 'tool:iperf3', 'tool:tcpdump', 'tool:qemu-system-x86_64', 'tool:socat', 'tool:dnsmasq',
    'kernel:sch_netem', 'kernel:sch_htb', 'kernel:nf_tables_bridge', 'kernel:tun', 'kernel:ifb', 'kernel:veth', 'kernel:bridge', 'netns', 'kvm', 'br_netfilter']) {
    assert.ok(names.has(n), `no check ${n}`);
  }
}

describe('doctor on fake hosts', () => {
  it('a healthy host: every check ok, ready, versions read with the version flags only', async () => {
    const ran: string[][] = [];
    const r = await runDoctor(probe(healthy(), ran));
    assertStructure(doctorJson(r));
    assert.deepEqual(r.checks.filter((c) => c.status !== 'ok').map((c) => c.name), []);
    assert.ok(doctorReady(r));
    assert.deepEqual(ran.map((a) => a.slice(1).join(' ')).sort(), ['--version', '--version', '--version', '--version', '--version', '--version', '--version', '-V', '-V', '-V', '-V'].sort());
    assert.match(byName(r, 'tool:ip').detail, /ip utility, version 1\.0 \(\/usr\/bin\/ip\)/);
    const text = renderDoctor(r);
    assert.equal(text.trimEnd().split('\n').length, r.checks.length + 1, 'one line per check plus the verdict');
    assert.match(text, /^ready: /m);
  });

  it('missing required pieces: not ready, each missing with what it disables and a fix', async () => {
    const f = healthy();
    f.uid = 1000;
    f.capEff = '0000000000000000';
    f.tools = f.tools.filter((t) => t !== 'nft' && t !== 'iperf3');
    f.features.nftBridge = false;
    f.modules.veth = false;
    const r = await runDoctor(probe(f));
    assertStructure(doctorJson(r));
    assert.deepEqual(r.checks.filter((c) => c.status === 'missing').map((c) => c.name).sort(), ['kernel:nf_tables_bridge', 'kernel:veth', 'root', 'tool:nft']);
    assert.equal(byName(r, 'tool:iperf3').status, 'warn', 'optional tools are warnings');
    assert.match(byName(r, 'tool:nft').fix!, /apt-get install nftables/);
    assert.match(byName(r, 'root').fix!, /sudo/);
    assert.match(byName(r, 'kernel:nf_tables_bridge').fix!, /modprobe nf_tables_bridge/);
    assert.ok(byName(r, 'kernel:nf_tables_bridge').enables.includes('partitions'));
    assert.ok(!doctorReady(r));
    const text = renderDoctor(r);
    assert.match(text, /^missing +tool:nft +nft not found on PATH; disables: .*partitions.*; fix: apt-get install nftables/m);
    assert.match(text, /^not ready: missing .*root/m);
  });

  it('root without CAP_NET_ADMIN is not enough', async () => {
    const f = healthy();
    f.capEff = '0000000000000000';
    const r = await runDoctor(probe(f));
    assert.equal(byName(r, 'root').status, 'missing');
    assert.match(byName(r, 'root').detail, /CAP_NET_ADMIN/);
  });

  it('missing netem is a warning naming latency_ms/jitter_ms and the modprobe fix; still ready', async () => {
    const f = healthy();
    f.features.netem = false;
    const r = await runDoctor(probe(f));
    const c = byName(r, 'kernel:sch_netem');
    assert.equal(c.status, 'warn');
    assert.deepEqual(c.enables, ['latency_ms', 'jitter_ms']);
    assert.match(c.fix!, /modprobe sch_netem/);
    assert.ok(doctorReady(r));
  });

  it('KVM: a PVM-only host and a host without /dev/kvm fall back to TCG (warnings)', async () => {
    const pvm = healthy();
    delete pvm.files['/sys/module/kvm_intel'];
    pvm.files['/sys/module/kvm_pvm'] = '';
    const c1 = byName(await runDoctor(probe(pvm)), 'kvm');
    assert.equal(c1.status, 'warn');
    assert.match(c1.detail, /kvm_pvm.*TCG/);
    const none = healthy();
    delete none.files['/dev/kvm'];
    const c2 = byName(await runDoctor(probe(none)), 'kvm');
    assert.equal(c2.status, 'warn');
    assert.match(c2.fix!, /modprobe kvm_intel/);
  });

  it('br_netfilter: active is a note about the inet hooks, off is ok', async () => {
    const on = healthy();
    on.modules.brNetfilter = true;
    on.files['/proc/sys/net/bridge/bridge-nf-call-iptables'] = '1\n';
    const c1 = byName(await runDoctor(probe(on)), 'br_netfilter');
    assert.equal(c1.status, 'warn');
    assert.match(c1.detail, /inet/);
    on.files['/proc/sys/net/bridge/bridge-nf-call-iptables'] = '0\n';
    assert.equal(byName(await runDoctor(probe(on)), 'br_netfilter').status, 'ok');
  });

  it('IPv6 forwarding: routes from router advertisements on an interface with accept_ra = 1 are a warning (a lab routing IPv6 would stop them); accept_ra = 2 or forwarding already on are ok', async () => {
    const f = healthy();
    f.files['/proc/sys/net/ipv6/conf/all/forwarding'] = '0\n';
    // /proc/net/ipv6_route as the kernel prints it: eth0's default route from a router
    // advertisement (flags 00450003: RTF_ADDRCONF | RTF_DEFAULT | RTF_EXPIRES | RTF_GATEWAY | RTF_UP), a static route on eth1.
    f.files['/proc/net/ipv6_route'] = [
      '00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe8000000000000008f78efffe57e5f4 00000400 00000001 00000000 00450003     eth0',
      '20010db8000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth1',
    ].join('\n') + '\n';
    f.files['/proc/sys/net/ipv6/conf/eth0/accept_ra'] = '1\n';
    f.files['/proc/sys/net/ipv6/conf/eth1/accept_ra'] = '1\n';
    const c = byName(await runDoctor(probe(f)), 'ipv6_forwarding');
    assert.equal(c.status, 'warn');
    assert.match(c.detail, /^eth0 has routes from router advertisements/);
    assert.match(c.fix!, /--netns/);
    assert.match(c.fix!, /net\.ipv6\.conf\.eth0\.accept_ra=2/);
    assert.ok(doctorReady(await runDoctor(probe(f))), 'a warning only');
    f.files['/proc/sys/net/ipv6/conf/eth0/accept_ra'] = '2\n';
    assert.equal(byName(await runDoctor(probe(f)), 'ipv6_forwarding').status, 'ok');
    f.files['/proc/sys/net/ipv6/conf/eth0/accept_ra'] = '1\n';
    f.files['/proc/sys/net/ipv6/conf/all/forwarding'] = '1\n';
    assert.equal(byName(await runDoctor(probe(f)), 'ipv6_forwarding').status, 'ok');
  });

  it('namespaces: /run/netns absent but /run writable is ok; nothing writable is missing', async () => {
    const f = healthy();
    delete f.files['/run/netns'];
    f.files['/run'] = '';
    assert.equal(byName(await runDoctor(probe(f)), 'netns').status, 'ok');
    f.writable = [];
    const c = byName(await runDoctor(probe(f)), 'netns');
    assert.equal(c.status, 'missing');
    assert.ok(c.fix);
  });

  it('the netlink helper: ok when built, a warning with the build fix when missing, ok but named when PROVIUM_NETLINK=off', async () => {
    assert.match(byName(await runDoctor(probe(healthy())), 'netlink').detail, /one process for every node namespace/);
    const missing = byName(await runDoctor(probe({ ...healthy(), netlink: { built: false } })), 'netlink');
    assert.equal(missing.status, 'warn');
    assert.match(missing.detail, /one `ip` process each/);
    assert.match(missing.fix!, /libmnl-dev/);
    assert.ok(doctorReady(await runDoctor(probe({ ...healthy(), netlink: { built: false } }))), 'the iproute2 path works: only a warning');
    const off = byName(await runDoctor(probe({ ...healthy(), netlink: { built: true, mode: 'off' } })), 'netlink');
    assert.equal(off.status, 'ok');
    assert.match(off.detail, /PROVIUM_NETLINK=off/);
  });

  it('parses CapEff and version lines', () => {
    assert.equal(hasNetAdmin('CapEff:\t000001fffeffffff\n'), true);
    assert.equal(hasNetAdmin('CapEff:\t0000000000000000\n'), false);
    assert.equal(hasNetAdmin('CapEff:\t0000000000001000\n'), true);
    assert.equal(hasNetAdmin(undefined), undefined);
    assert.equal(versionLine('Copyright x\nsocat by Gerhard\nsocat version 1.7.4.4 on 06 Nov 2022\n'), 'socat version 1.7.4.4 on 06 Nov 2022');
    assert.equal(versionLine('\nip utility, iproute2-6.1.0, libbpf 1.1.2\n'), 'ip utility, iproute2-6.1.0, libbpf 1.1.2');
  });
});

describe('doctor on this machine', () => {
  const bin = repoDir('bin/provium');
  const root = process.getuid?.() === 0;

  it('--json: the structure, netem missing with the modprobe fix (or ok where the kernel has it), exit 0 as root; reads only', () => {
    const trace = `${tempDir('pv-doctor-')}/trace.jsonl`;
    const t0 = performance.now();
    const r = spawnSync(process.execPath, [bin, 'doctor', '--json'], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', PROVIUM_TRACE: trace } });
    const ms = performance.now() - t0;
    const doc = JSON.parse(r.stdout) as { checks: { name: string; status: string; required: boolean; fix?: string; detail: string }[] };
    assertStructure(doc);
    const netem = doc.checks.find((c) => c.name === 'kernel:sch_netem')!;
    if (netem.status !== 'ok') {
      assert.equal(netem.status, 'warn', 'netem is optional: a warning');
      assert.match(netem.detail, /missing/);
      assert.match(netem.fix!, /modprobe sch_netem/);
    }
    const missing = doc.checks.filter((c) => c.status === 'missing').map((c) => c.name);
    if (root) assert.equal(r.status, 0, `exit ${r.status}; missing: ${missing.join(', ')}\n${r.stderr}`);
    else {
      assert.equal(r.status, 1);
      assert.ok(missing.includes('root'));
    }
    // Read-only: the only commands run are version queries.
    const ran = readFileSync(trace, 'utf8').trim().split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { argv: string[] }).argv);
    for (const argv of ran) assert.ok(argv.length === 2 && ['-V', '--version'].includes(argv[1]), `doctor ran ${argv.join(' ')}`);
    assert.ok(ms < 10_000, `doctor took ${Math.round(ms)} ms`);
  });

  it('text: one line per check and a verdict, same exit code', () => {
    const r = spawnSync(process.execPath, [bin, 'doctor'], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
    assert.equal(r.status, root ? 0 : 1, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    for (const l of lines.slice(0, -1)) assert.match(l, /^(ok|missing|warn) +\S+ +.+; (enables|disables): /);
    assert.match(lines.at(-1)!, root ? /^ready: / : /^not ready: /);
    assert.match(r.stdout, /kernel:sch_netem/);
  });
});
