/**
 * `provium doctor FILE` for a multi-host lab: the same checks as `provium doctor`
 * (src/doctor.ts), on every host of the file, each through its own runner. A remote
 * host's answers are gathered in three round trips over its SSH connection (tools, uid
 * and writable folders; then the files and modules the checks read; then the accept_ra
 * of interfaces with router-advertised routes), and the checks run on them unchanged.
 */
import type { Runner } from '../host/runner.js';
import { detectFeature } from '../observe/features.js';
import { detectModule, hostProbe, runDoctor, type DoctorProbe, type DoctorReport } from '../doctor.js';
import { detectKernelModule, type ModuleSpec } from '../observe/features.js';
import { snapshot, type SnapOp } from './remote.js';
import type { LabHost } from './hosts.js';

const TOOLS = ['ip', 'tc', 'nft', 'bridge', 'sysctl', 'qemu-system-x86_64', 'tcpdump', 'iperf3', 'socat'];
const WRITABLE = ['/run/netns', '/run', '/dev/kvm'];
const READ = ['/proc/self/status', '/proc/cpuinfo', '/proc/sys/net/bridge/bridge-nf-call-iptables', '/proc/sys/net/ipv6/conf/all/forwarding', '/proc/net/ipv6_route', '/proc/config.gz', '/boot/config-%R'];
const EXISTS = ['/proc/self/ns/net', '/run/netns', '/dev/kvm', '/sys/module/kvm_intel', '/sys/module/kvm_amd', '/sys/module/kvm_pvm'];
const MODULES: ModuleSpec[] = [
  { module: 'bridge', config: 'CONFIG_BRIDGE', dir: 'kernel/net/bridge' },
  { module: 'veth', config: 'CONFIG_VETH', dir: 'kernel/drivers/net' },
  { module: 'ifb', config: 'CONFIG_IFB', dir: 'kernel/drivers/net' },
  { module: 'nft_masq', config: 'CONFIG_NFT_MASQ', dir: 'kernel/net/netfilter' },
  { module: 'br_netfilter', config: 'CONFIG_BRIDGE_NETFILTER', dir: 'kernel/net/bridge' },
  { module: 'sch_netem', config: 'CONFIG_NET_SCH_NETEM', dir: 'kernel/net/sched' },
  { module: 'sch_htb', config: 'CONFIG_NET_SCH_HTB', dir: 'kernel/net/sched' },
  { module: 'nf_tables_bridge', config: 'CONFIG_NF_TABLES_BRIDGE', dir: 'kernel/net/bridge/netfilter' },
  { module: 'tun', config: 'CONFIG_TUN', dir: 'kernel/drivers/net' },
];

/** uid, then `command -v` of each tool (empty line when absent), then 1/0 per writable folder. */
const FACTS = `
id -u
for t in ${TOOLS.join(' ')}; do command -v "$t" || PATH="$PATH:/usr/sbin:/sbin" command -v "$t" || echo; done
for p; do if [ -w "$p" ]; then echo 1; else echo 0; fi; done
`;

/** A DoctorProbe answering from a remote host (see the module comment). */
export async function remoteDoctorProbe(runner: Runner): Promise<DoctorProbe> {
  const f = (await runner.run(['sh', '-c', FACTS, 'sh', ...WRITABLE])).stdout.split('\n');
  const uid = Number(f[0]);
  const which = new Map(TOOLS.map((t, i) => [t, f[1 + i]?.trim() || undefined]));
  const writable = new Map(WRITABLE.map((p, i) => [p, f[1 + TOOLS.length + i]?.trim() === '1']));
  const ops: SnapOp[] = [
    ...READ.map((p): SnapOp => ['F', p]),
    ...EXISTS.map((p): SnapOp => ['E', p]),
    ...MODULES.map((m): SnapOp => ['E', `/sys/module/${m.module}`]),
    ...[...new Set(MODULES.map((m) => `/lib/modules/%R/${m.dir}`))].map((p): SnapOp => ['L', p]),
  ];
  const snap = await snapshot(runner, ops);
  // accept_ra of the interfaces that have router-advertised routes (checkIpv6Forwarding reads them).
  const devs = [...new Set((snap.readText('/proc/net/ipv6_route') ?? '').split('\n').map((l) => l.trim().split(/\s+/)[9]).filter((d): d is string => !!d && /^[\w.@-]+$/.test(d)))];
  if (devs.length) {
    const more = await snapshot(runner, devs.map((d): SnapOp => ['F', `/proc/sys/net/ipv6/conf/${d}/accept_ra`]));
    for (const [k, v] of more.files) snap.files.set(k, v);
  }
  const byName = new Map(MODULES.map((m) => [m.module, m]));
  const extra: Record<string, string> = { bridge: 'bridge', veth: 'veth', ifb: 'ifb', nftMasq: 'nft_masq', brNetfilter: 'br_netfilter' };
  return {
    uid: () => uid,
    read: (p) => snap.readText(p),
    exists: (p) => snap.exists(p),
    writable: (p) => writable.get(p) ?? false,
    which: (prog) => which.get(prog),
    run: (argv) => runner.run(argv, { allowFail: true, timeoutMs: 5000 }),
    feature: (ft) => detectFeature(ft, snap, snap.release),
    module: (m) => detectKernelModule(byName.get(extra[m])!, snap, snap.release),
    // Remote hosts keep the iproute2 path (host/namespaces.ts namespaceIO): no helper to check.
    netlink: () => ({ ok: true, detail: 'not used over SSH', mode: 'remote' }),
  };
}

/** Doctor reports of every host (in parallel): the local host with the local probe. */
export async function doctorHosts(hosts: LabHost[]): Promise<{ host: string; report: DoctorReport }[]> {
  return Promise.all(hosts.map(async (h) => ({ host: h.name, report: await runDoctor(h.spec.local ? hostProbe() : await remoteDoctorProbe(h.runner)) })));
}

void detectModule;
