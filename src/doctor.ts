/**
 * `provium doctor`: what this host can run, and what each missing piece disables.
 *
 * Reading only: files under /proc, /sys, /run, /dev and the kernel config, plus
 * version commands (`ip -V`, `nft --version`, ...) through the runner. Nothing is
 * loaded or changed (no modprobe, no sysctl -w). Kernel features use the same
 * detection as `plan` (observe/features.ts); the extra modules (bridge, veth, ifb,
 * nft_masq, br_netfilter) use the same style here: /sys/module, then the kernel
 * config, then module files.
 *
 * Each check has a status: `ok`; `missing` (a piece the basic job needs: root,
 * ip, tc, nft, namespaces, kernel bridge/veth, nftables bridge family; doctor
 * exits 1); `warn` (an optional piece is absent, or something works in a degraded
 * way: netem, KVM, br_netfilter, IPv6 forwarding vs router advertisements; exit 0).
 * Every check that is not ok carries a fix.
 */
import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { Chalk } from 'chalk';
import { detectFeature, detectKernelModule, FEATURE_FIX, featureModule, type Feature, type ModuleSpec } from './observe/features.js';
import { HostRunner, mapLimit } from './host/runner.js';
import { checkHelper, helperPath, netlinkMode } from './host/netlink.js';

export const DOCTOR_FORMAT_VERSION = '1';

export type CheckStatus = 'ok' | 'missing' | 'warn';

/** One thing doctor looked at. */
export interface Check {
  /** Stable name: "root", "tool:ip", "kernel:netem", "netns", "kvm", "br_netfilter". */
  name: string;
  status: CheckStatus;
  /** Whether the basic job (bridges, netns nodes, partitions) needs it: a failed required check is `missing` and makes doctor exit 1. */
  required: boolean;
  /** What was found, and how it was decided. */
  detail: string;
  /** Topology features and commands this piece enables (disables, when it is not ok). */
  enables: string[];
  /** How to get it; set whenever status is not ok. */
  fix?: string;
}

export interface DoctorReport {
  format_version: typeof DOCTOR_FORMAT_VERSION;
  checks: Check[];
}

/** The extra kernel pieces doctor detects itself (besides observe/features.ts's Feature). */
export type ExtraModule = 'bridge' | 'veth' | 'ifb' | 'nftMasq' | 'brNetfilter';

/** What doctor reads from the host; the real one reads files and runs version commands, tests substitute a fake. */
export interface DoctorProbe {
  /** Effective user id (undefined where the platform has none). */
  uid(): number | undefined;
  /** A text file's contents, or undefined when it cannot be read. */
  read(path: string): string | undefined;
  exists(path: string): boolean;
  /** The path exists and this process may write to it. */
  writable(path: string): boolean;
  /** Absolute path of a program on $PATH, or undefined. */
  which(program: string): string | undefined;
  /** Runs a version command; exit code 127 when it cannot be started. */
  run(argv: string[]): Promise<{ exitCode: number; stdout: string; stderr: string }>;
  /** A kernel feature, as `plan` detects it. */
  feature(f: Feature): { present: boolean; source: string };
  /** An extra kernel module or built-in option. */
  module(m: ExtraModule): { present: boolean; source: string };
  /**
   * The netlink helper (host/netlink.ts): its path when built, whether it runs and
   * speaks this provium's protocol (`provium-nl --version`), and PROVIUM_NETLINK.
   */
  netlink(): { path?: string; ok: boolean; detail: string; mode: 'auto' | 'on' | 'off' | 'invalid' | 'remote' };
}

/** Module name, kernel option and module directory of the extra pieces (same layout as features.ts). */
const EXTRA: Record<ExtraModule, ModuleSpec> = {
  bridge: { module: 'bridge', config: 'CONFIG_BRIDGE', dir: 'kernel/net/bridge' },
  veth: { module: 'veth', config: 'CONFIG_VETH', dir: 'kernel/drivers/net' },
  ifb: { module: 'ifb', config: 'CONFIG_IFB', dir: 'kernel/drivers/net' },
  nftMasq: { module: 'nft_masq', config: 'CONFIG_NFT_MASQ', dir: 'kernel/net/netfilter' },
  brNetfilter: { module: 'br_netfilter', config: 'CONFIG_BRIDGE_NETFILTER', dir: 'kernel/net/bridge' },
};

/** Whether the kernel has an extra module: the same detection as plan's (observe/features.ts). */
export function detectModule(m: ExtraModule): { present: boolean; source: string } {
  return detectKernelModule(EXTRA[m]);
}

/** The real host, read-only. Version commands go through HostRunner (5 s timeout each). */
export function hostProbe(): DoctorProbe {
  const runner = new HostRunner();
  return {
    uid: () => process.getuid?.(),
    read: (path) => {
      try {
        return readFileSync(path, 'utf8');
      } catch {
        return undefined;
      }
    },
    exists: existsSync,
    writable: (path) => {
      try {
        accessSync(path, constants.W_OK);
        return true;
      } catch {
        return false;
      }
    },
    which: (program) => {
      for (const dir of (process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin').split(':')) {
        if (!dir) continue;
        const p = `${dir}/${program}`;
        try {
          if (statSync(p).isFile()) {
            accessSync(p, constants.X_OK);
            return p;
          }
        } catch {
          /* not here */
        }
      }
      return undefined;
    },
    run: (argv) => runner.run(argv, { allowFail: true, timeoutMs: 5_000 }),
    feature: detectFeature,
    module: detectModule,
    netlink: () => {
      let mode: 'auto' | 'on' | 'off' | 'invalid';
      try {
        mode = netlinkMode();
      } catch {
        mode = 'invalid';
      }
      const path = helperPath();
      if (!path) return { ok: false, detail: 'not built (dist/native/provium-nl is missing)', mode };
      return { path, ...checkHelper(path), mode };
    },
  };
}

/** A program doctor looks for. */
interface ToolSpec {
  program: string;
  versionArgs: string[];
  required: boolean;
  /** Debian package that has it. */
  pkg: string;
  enables: string[];
}

const TOOLS: ToolSpec[] = [
  { program: 'ip', versionArgs: ['-V'], required: true, pkg: 'iproute2', enables: ['bridges', 'netns nodes', 'NIC addresses', 'link: down', 'routes', 'plan/show (reads links and namespaces)'] },
  { program: 'tc', versionArgs: ['-V'], required: true, pkg: 'iproute2', enables: ['bandwidth_bps', 'latency_ms', 'jitter_ms', 'plan/show (reads qdiscs)'] },
  { program: 'nft', versionArgs: ['--version'], required: true, pkg: 'nftables', enables: ['partitions', 'partition_all', 'isolate', 'drop_pct', 'per-pair shaping', 'uplink', 'routes', 'plan/show (reads the ruleset)'] },
  { program: 'bridge', versionArgs: ['-V'], required: false, pkg: 'iproute2', enables: ['inspecting bridge ports and FDB while debugging a lab (bridge link, bridge fdb)'] },
  { program: 'sysctl', versionArgs: ['--version'], required: false, pkg: 'procps', enables: ['uplink', 'routes (net.ipv4.ip_forward, net.ipv6.conf.all.forwarding)'] },
  { program: 'dnsmasq', versionArgs: ['--version'], required: false, pkg: 'dnsmasq-base', enables: ['dhcp: true and dns: true on bridges (names <node>.<bridge>, static leases for VMs)'] },
  { program: 'qemu-system-x86_64', versionArgs: ['--version'], required: false, pkg: 'qemu-system-x86', enables: ['qemu nodes (booting VMs)'] },
  { program: 'conntrack', versionArgs: ['--version'], required: false, pkg: 'conntrack', enables: ['changing a router\'s nat: or firewall: in place (its conntrack entries are flushed)'] },
  { program: 'tcpdump', versionArgs: ['--version'], required: false, pkg: 'tcpdump', enables: ['provium capture (packet capture on a bridge or NIC)'] },
  { program: 'iperf3', versionArgs: ['--version'], required: false, pkg: 'iperf3', enables: ['throughput checks (npm run demo, end-to-end tests)'] },
  { program: 'socat', versionArgs: ['-V'], required: false, pkg: 'socat', enables: ['UDP/TCP probes and VM control in the end-to-end tests'] },
];

/** The line of a version command's output that names the version (first line mentioning "version" or "utility", else the first line). */
export function versionLine(out: string): string {
  const lines = out.split('\n').map((l) => l.trim()).filter(Boolean);
  const line = lines.find((l) => /version|utility|iproute2/i.test(l)) ?? lines[0] ?? '';
  return line.length > 100 ? `${line.slice(0, 97)}...` : line;
}

/** CAP_NET_ADMIN (bit 12) in the CapEff line of /proc/self/status; undefined when unreadable. */
export function hasNetAdmin(status: string | undefined): boolean | undefined {
  const m = status && /^CapEff:\s*([0-9a-fA-F]+)$/m.exec(status);
  if (!m) return undefined;
  return ((BigInt(`0x${m[1]}`) >> 12n) & 1n) === 1n;
}

function checkRoot(p: DoctorProbe): Check {
  const base = { name: 'root', required: true, enables: ['plan', 'apply', 'destroy', 'show', 'exec', 'capture'] };
  const uid = p.uid();
  const cap = hasNetAdmin(p.read('/proc/self/status'));
  if (uid === 0 && cap !== false) return { ...base, status: 'ok', detail: `running as root (uid 0${cap ? ', CAP_NET_ADMIN effective' : ''})` };
  if (uid === 0) {
    return { ...base, status: 'missing', detail: 'uid 0 but CAP_NET_ADMIN is not effective (a restricted container?)', fix: 'run in a container with CAP_NET_ADMIN and CAP_SYS_ADMIN (e.g. docker run --privileged), or on the host' };
  }
  const capNote = cap ? ' (it has CAP_NET_ADMIN, but provium requires uid 0)' : '';
  return { ...base, status: 'missing', detail: `running as uid ${uid ?? 'unknown'}${capNote}`, fix: 'run provium as root: sudo provium ...' };
}

async function checkTools(p: DoctorProbe): Promise<Check[]> {
  return mapLimit(TOOLS, TOOLS.length, async (t): Promise<Check> => {
    const base = { name: `tool:${t.program}`, required: t.required, enables: t.enables };
    const path = p.which(t.program);
    const fix = `apt-get install ${t.pkg} (Debian/Ubuntu; package ${t.pkg})`;
    if (!path) return { ...base, status: t.required ? 'missing' : 'warn', detail: `${t.program} not found on PATH`, fix };
    const r = await p.run([path, ...t.versionArgs]);
    const version = versionLine(`${r.stdout}\n${r.stderr}`);
    if (r.exitCode !== 0 && !version) return { ...base, status: t.required ? 'missing' : 'warn', detail: `${path} does not run (\`${t.program} ${t.versionArgs.join(' ')}\` exit ${r.exitCode})`, fix: `reinstall it: ${fix}` };
    return { ...base, status: 'ok', detail: `${version || 'present'} (${path})` };
  });
}

/** The kernel checks: features as `plan` detects them, then the extra modules. */
function checkKernel(p: DoctorProbe): Check[] {
  const feature = (f: Feature, required: boolean, enables: string[]): Check => {
    const d = p.feature(f);
    const name = `kernel:${featureModule(f)}`;
    if (d.present) return { name, status: 'ok', required, detail: `${featureModule(f)} (${d.source})`, enables };
    return { name, status: required ? 'missing' : 'warn', required, detail: `${featureModule(f)} missing (${d.source})`, enables, fix: FEATURE_FIX[f] };
  };
  const extra = (m: ExtraModule, required: boolean, enables: string[], fix: string): Check => {
    const d = p.module(m);
    const mod = EXTRA[m].module;
    if (d.present) return { name: `kernel:${mod}`, status: 'ok', required, detail: `${mod} (${d.source})`, enables };
    return { name: `kernel:${mod}`, status: required ? 'missing' : 'warn', required, detail: `${mod} missing (${d.source})`, enables, fix };
  };
  return [
    extra('bridge', true, ['bridges'], 'load it with `modprobe bridge` (kernel option CONFIG_BRIDGE)'),
    extra('veth', true, ['netns nodes (their NICs are veth pairs)'], 'load it with `modprobe veth` (kernel option CONFIG_VETH)'),
    feature('nftBridge', true, ['partitions', 'partition_all', 'isolate', 'drop_pct', 'per-pair shaping (nft picks the HTB class)']),
    feature('htb', false, ['bandwidth_bps', 'latency_ms and jitter_ms (netem sits under an HTB class)']),
    feature('netem', false, ['latency_ms', 'jitter_ms']),
    feature('tun', false, ["qemu nodes (their NICs are TAPs)"]),
    extra('nftMasq', false, ['uplink (NAT masquerade)'], 'load it with `modprobe nft_masq` (kernel option CONFIG_NFT_MASQ)'),
    extra('ifb', false, ['source-side (ingress) shaping through an ifb device (not used by the current planner: it shapes at the destination port)'], 'load it with `modprobe ifb` (kernel option CONFIG_IFB)'),
  ];
}

function checkNetns(p: DoctorProbe): Check {
  const base = { name: 'netns', required: true, enables: ['netns nodes', 'provium exec', '--netns'] };
  if (!p.exists('/proc/self/ns/net')) {
    return { ...base, status: 'missing', detail: 'no /proc/self/ns/net: the kernel has no network namespaces', fix: 'use a kernel built with CONFIG_NET_NS' };
  }
  if (p.exists('/run/netns')) {
    if (p.writable('/run/netns')) return { ...base, status: 'ok', detail: '/run/netns is writable' };
    return { ...base, status: 'missing', detail: '/run/netns exists but is not writable', fix: 'run as root, on a writable /run (a read-only container /run cannot hold namespaces)' };
  }
  if (p.writable('/run')) return { ...base, status: 'ok', detail: '/run/netns absent; /run is writable, so `ip netns add` creates it' };
  return { ...base, status: 'missing', detail: 'no /run/netns and /run is not writable', fix: 'mount a writable tmpfs on /run, or create /run/netns as root' };
}

function checkKvm(p: DoctorProbe): Check {
  const base = { name: 'kvm', required: false, enables: ['qemu nodes at native speed (accel: auto picks kvm; accel: kvm)'] };
  const loaded = (m: string) => p.exists(`/sys/module/${m}`);
  const cpu = p.read('/proc/cpuinfo') ?? '';
  const flag = /^flags\s*:.*\bvmx\b/m.test(cpu) ? 'vmx' : /^flags\s*:.*\bsvm\b/m.test(cpu) ? 'svm' : undefined;
  if (!p.exists('/dev/kvm')) {
    return {
      ...base, status: 'warn', detail: `no /dev/kvm${flag ? ` (the CPU has ${flag})` : ''}: qemu nodes run under TCG (slower)`,
      fix: flag ? `load the KVM module: modprobe ${flag === 'vmx' ? 'kvm_intel' : 'kvm_amd'}` : 'enable hardware virtualization (VT-x/AMD-V) in the firmware, or nested virtualization on a cloud VM; TCG works without it, only slower',
    };
  }
  const vendor = ['kvm_intel', 'kvm_amd'].find(loaded);
  if (vendor) {
    if (!p.writable('/dev/kvm')) return { ...base, status: 'warn', detail: `/dev/kvm with ${vendor}, but not writable by this user`, fix: 'run as root (or add the user to group kvm)' };
    return { ...base, status: 'ok', detail: `/dev/kvm with ${vendor}: accel auto uses KVM` };
  }
  if (loaded('kvm_pvm')) {
    return {
      ...base, status: 'warn', detail: '/dev/kvm is a PVM host (kvm_pvm; no kvm_intel or kvm_amd): ordinary guest kernels cannot use it, so qemu nodes use TCG (slower)',
      fix: 'none needed for TCG; for KVM, run on a host with kvm_intel or kvm_amd (hardware or nested virtualization)',
    };
  }
  return {
    ...base, status: 'warn', detail: '/dev/kvm exists but neither kvm_intel nor kvm_amd is loaded: qemu nodes use TCG (slower)',
    fix: `load the vendor module: modprobe ${flag === 'svm' ? 'kvm_amd' : flag === 'vmx' ? 'kvm_intel' : 'kvm_intel (Intel) or kvm_amd (AMD)'}`,
  };
}

function checkBrNetfilter(p: DoctorProbe): Check {
  const base = { name: 'br_netfilter', required: false, enables: ['same-bridge traffic unaffected by the host firewall (ip/inet forward hooks)'] };
  const d = p.module('brNetfilter');
  const sysctl = p.read('/proc/sys/net/bridge/bridge-nf-call-iptables')?.trim();
  if (sysctl === undefined) return { ...base, status: 'ok', detail: `br_netfilter not active (${d.present ? `${d.source}, not loaded` : d.source}): bridged frames skip the ip/inet hooks` };
  if (sysctl === '0') return { ...base, status: 'ok', detail: 'br_netfilter loaded, net.bridge.bridge-nf-call-iptables = 0: bridged frames skip the ip/inet hooks' };
  return {
    ...base, status: 'warn',
    detail: `br_netfilter is active (net.bridge.bridge-nf-call-iptables = ${sysctl}): bridged IPv4 between nodes on one bridge also traverses the ip/inet forward hooks, so a host firewall that drops forwarded traffic drops it too`,
    fix: 'nothing if the host firewall accepts forwarded traffic; otherwise accept the lab\'s bridges in its forward chain, or `sysctl -w net.bridge.bridge-nf-call-iptables=0` (host-wide)',
  };
}

/** RTF_ADDRCONF in /proc/net/ipv6_route's flags (linux/ipv6_route.h): a route learned from a router advertisement. */
const RTF_ADDRCONF = 0x00040000;

/**
 * IPv6 forwarding versus router advertisements in the root namespace. A lab that routes
 * IPv6 (subnet6 with routes or uplink) sets net.ipv6.conf.all.forwarding=1 in its host
 * namespace; Linux then ignores router advertisements on every interface whose
 * accept_ra is 1 (2 accepts them anyway). Without --netns, an interface configured by
 * router advertisements then loses its learned default route and prefixes when their
 * lifetimes end. Reads /proc/sys/net/ipv6/conf/all/forwarding, /proc/net/ipv6_route
 * (columns: dst, dst len, src, src len, next hop, metric, refcnt, use, flags, device;
 * hex) and /proc/sys/net/ipv6/conf/<dev>/accept_ra.
 */
function checkIpv6Forwarding(p: DoctorProbe): Check {
  const base = {
    name: 'ipv6_forwarding', required: false,
    enables: ['subnet6 with routes or uplink in the root namespace (net.ipv6.conf.all.forwarding=1) without losing this host\'s router-advertised IPv6'],
  };
  const all = p.read('/proc/sys/net/ipv6/conf/all/forwarding')?.trim();
  if (all === undefined) return { ...base, status: 'ok', detail: 'no /proc/sys/net/ipv6 (IPv6 disabled): nothing here learns from router advertisements' };
  if (all !== '0') return { ...base, status: 'ok', detail: `net.ipv6.conf.all.forwarding = ${all} already: a lab routing IPv6 changes nothing here` };
  const learned = new Set<string>();
  for (const line of (p.read('/proc/net/ipv6_route') ?? '').split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 10 && (parseInt(f[8], 16) & RTF_ADDRCONF) !== 0) learned.add(f[9]);
  }
  const affected = [...learned].filter((d) => p.read(`/proc/sys/net/ipv6/conf/${d}/accept_ra`)?.trim() === '1').sort();
  if (affected.length === 0) {
    return { ...base, status: 'ok', detail: 'no interface uses routes from router advertisements with accept_ra = 1: setting net.ipv6.conf.all.forwarding=1 loses nothing' };
  }
  return {
    ...base, status: 'warn',
    detail: `${affected.join(', ')} ${affected.length === 1 ? 'has' : 'have'} routes from router advertisements (accept_ra = 1); a lab routing IPv6 in the root namespace sets net.ipv6.conf.all.forwarding=1, and then the kernel ignores router advertisements there: those routes and SLAAC addresses expire`,
    fix: `put the lab's host side in its own namespace (--netns NAME), or keep accepting router advertisements while forwarding: ${affected.map((d) => `sysctl -w net.ipv6.conf.${d}.accept_ra=2`).join('; ')}`,
  };
}

/**
 * The netlink helper: with it, one process reads and writes every node namespace;
 * without it (or with PROVIUM_NETLINK=off) provium runs one `ip` process per namespace,
 * which works the same, only slower on labs with many nodes.
 */
function checkNetlink(p: DoctorProbe): Check {
  const base = { name: 'netlink', required: false, enables: ['reading and writing every node namespace from one process (fast plan, apply and destroy of labs with many nodes)'] };
  const n = p.netlink();
  const build = 'install gcc, make and libmnl-dev (apt-get install gcc make libmnl-dev), then npm run build (scripts/setup.sh does both)';
  // A host reached over SSH needs nothing of provium: it always takes the iproute2 path.
  if (n.mode === 'remote') return { ...base, status: 'ok', detail: 'not used on a host reached over SSH: one `ip` process per node namespace there (nothing of provium is installed on it)' };
  if (n.mode === 'invalid') return { ...base, status: 'warn', detail: 'PROVIUM_NETLINK is set to a value other than auto, on or off: plan and apply refuse to run', fix: 'set PROVIUM_NETLINK to auto (default), on or off' };
  if (!n.path || !n.ok) {
    return {
      ...base, status: 'warn',
      detail: `netlink helper ${n.detail}: node namespaces are read and written by one \`ip\` process each (slower)${n.mode === 'on' ? '; PROVIUM_NETLINK=on makes plan and apply fail' : ''}`,
      fix: build,
    };
  }
  if (n.mode === 'off') return { ...base, status: 'ok', detail: `netlink helper ${n.detail}, disabled by PROVIUM_NETLINK=off: one \`ip\` process per node namespace` };
  return { ...base, status: 'ok', detail: `netlink helper ${n.detail}: one process for every node namespace` };
}

/** Runs every check (read-only; the version commands run in parallel). */
export async function runDoctor(probe: DoctorProbe = hostProbe()): Promise<DoctorReport> {
  const tools = checkTools(probe);
  const checks = [checkRoot(probe), ...(await tools), ...checkKernel(probe), checkNetns(probe), checkKvm(probe), checkBrNetfilter(probe), checkIpv6Forwarding(probe), checkNetlink(probe)];
  return { format_version: DOCTOR_FORMAT_VERSION, checks };
}

/** Whether the basic job can run: no check is `missing`. doctor exits 0 then, 1 otherwise. */
export function doctorReady(r: DoctorReport): boolean {
  return r.checks.every((c) => c.status !== 'missing');
}

/** `doctor --json`: {format_version, checks: [{name, status, required, detail, enables, fix?}]}. */
export function doctorJson(r: DoctorReport) {
  return {
    format_version: r.format_version,
    checks: r.checks.map((c) => ({ name: c.name, status: c.status, required: c.required, detail: c.detail, enables: c.enables, ...(c.fix ? { fix: c.fix } : {}) })),
  };
}

/**
 * Human output: one line per check, `STATUS NAME  detail; enables: ...` (or
 * `disables: ...; fix: ...` when not ok), then a one-line verdict.
 */
export function renderDoctor(r: DoctorReport, opts: { color?: boolean } = {}): string {
  const c = new Chalk({ level: opts.color ? 1 : 0 });
  const paint = { ok: c.green, missing: c.red, warn: c.yellow } as const;
  const width = Math.max(...r.checks.map((x) => x.name.length));
  const lines = r.checks.map((x) => {
    const what = x.status === 'ok' ? `enables: ${x.enables.join(', ')}` : `disables: ${x.enables.join(', ')}${x.fix ? `; fix: ${x.fix}` : ''}`;
    return `${paint[x.status](x.status.padEnd(7))} ${x.name.padEnd(width)}  ${x.detail}; ${x.status === 'ok' ? c.dim(what) : what}`;
  });
  const missing = r.checks.filter((x) => x.status === 'missing');
  const warns = r.checks.filter((x) => x.status === 'warn').length;
  const note = warns ? ` (${warns} warning${warns === 1 ? '' : 's'} above)` : '';
  lines.push(
    missing.length
      ? c.red(`not ready: missing ${missing.map((x) => x.name).join(', ')}`)
      : c.green(`ready: this host has everything the basic job needs${note}`),
  );
  return lines.join('\n') + '\n';
}
