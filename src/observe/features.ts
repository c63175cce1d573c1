/**
 * Kernel feature detection from files (no commands, nothing changed):
 * a loaded module (/sys/module/NAME), the kernel config (/proc/config.gz or
 * /boot/config-RELEASE: =y built in, =m module), or the module file under
 * /lib/modules/RELEASE. The first source that answers wins.
 */
import { gunzipSync } from 'node:zlib';
import { release as localRelease } from 'node:os';
import { localFs, type SyncFs } from '../host/fs.js';

export type Feature = 'netem' | 'htb' | 'nftBridge' | 'tun';

const SPEC: Record<Feature, { module: string; config: string; dir: string }> = {
  netem: { module: 'sch_netem', config: 'CONFIG_NET_SCH_NETEM', dir: 'kernel/net/sched' },
  htb: { module: 'sch_htb', config: 'CONFIG_NET_SCH_HTB', dir: 'kernel/net/sched' },
  nftBridge: { module: 'nf_tables_bridge', config: 'CONFIG_NF_TABLES_BRIDGE', dir: 'kernel/net/bridge/netfilter' },
  tun: { module: 'tun', config: 'CONFIG_TUN', dir: 'kernel/drivers/net' },
};

/** The kernel config per file view (null: none readable). */
const configCache = new WeakMap<SyncFs, string | null>();
function kernelConfig(fs: SyncFs, release: string): string | null {
  const cached = configCache.get(fs);
  if (cached !== undefined) return cached;
  let cfg: string | null = null;
  const gz = fs.readBytes('/proc/config.gz');
  if (gz) {
    try {
      cfg = gunzipSync(gz).toString('utf8');
    } catch {
      /* damaged */
    }
  }
  cfg ??= fs.readText(`/boot/config-${release}`) ?? null;
  configCache.set(fs, cfg);
  return cfg;
}

/** A kernel piece to look for: module name, kernel config option, module folder under /lib/modules/RELEASE. */
export interface ModuleSpec {
  module: string;
  config: string;
  dir: string;
}

/**
 * Whether the kernel has a feature, and how that was decided. `fs` and `release` (uname -r)
 * are the host's: this machine's by default, a remote host's file snapshot otherwise.
 */
export function detectFeature(f: Feature, fs: SyncFs = localFs, release = localRelease()): { present: boolean; source: string } {
  return detectKernelModule(SPEC[f], fs, release);
}

/** Every file detectKernelModule may read for a module spec (what a remote snapshot must fetch). */
export function kernelProbePaths(specs: ModuleSpec[], release: string): { exists: string[]; read: string[]; list: string[] } {
  return {
    exists: specs.map((s) => `/sys/module/${s.module}`),
    read: ['/proc/config.gz', `/boot/config-${release}`],
    list: [...new Set(specs.map((s) => `/lib/modules/${release}/${s.dir}`))],
  };
}

/** The module specs of plan's features (for kernelProbePaths). */
export const FEATURE_SPECS: ModuleSpec[] = Object.values(SPEC);

/**
 * Whether the kernel has a module or built-in option: loaded (/sys/module/NAME), else
 * the kernel config (=y or =m), else a module file under /lib/modules/RELEASE. Reads files only.
 */
export function detectKernelModule(s: ModuleSpec, fs: SyncFs = localFs, release = localRelease()): { present: boolean; source: string } {
  if (fs.exists(`/sys/module/${s.module}`)) return { present: true, source: `/sys/module/${s.module}` };
  const cfg = kernelConfig(fs, release);
  if (cfg) {
    const m = new RegExp(`^${s.config}=([ym])$`, 'm').exec(cfg);
    if (m) return { present: true, source: `${s.config}=${m[1]}` };
    return { present: false, source: `${s.config} is not set in the kernel config` };
  }
  const dir = `/lib/modules/${release}/${s.dir}`;
  if ((fs.list(dir) ?? []).some((n) => n.startsWith(`${s.module}.ko`))) return { present: true, source: `${dir}/${s.module}.ko` };
  return { present: false, source: `no /sys/module/${s.module}, no kernel config, no module file` };
}

/** How to get each feature, for error messages and `provium doctor`. */
export const FEATURE_FIX: Record<Feature, string> = {
  netem: 'load it with `modprobe sch_netem` (Debian/Ubuntu: package linux-modules-extra for the running kernel on some distributions), or run on a kernel built with CONFIG_NET_SCH_NETEM',
  htb: 'load it with `modprobe sch_htb`, or use a kernel built with CONFIG_NET_SCH_HTB',
  nftBridge: 'load it with `modprobe nf_tables_bridge` (kernel option CONFIG_NF_TABLES_BRIDGE)',
  tun: 'load it with `modprobe tun` (kernel option CONFIG_TUN)',
};

/** Kernel module name of a feature. */
export function featureModule(f: Feature): string {
  return SPEC[f].module;
}
