/**
 * Kernel feature detection from files (no commands, nothing changed):
 * a loaded module (/sys/module/NAME), the kernel config (/proc/config.gz or
 * /boot/config-RELEASE: =y built in, =m module), or the module file under
 * /lib/modules/RELEASE. The first source that answers wins.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { release } from 'node:os';

export type Feature = 'netem' | 'htb' | 'nftBridge' | 'tun';

const SPEC: Record<Feature, { module: string; config: string; dir: string }> = {
  netem: { module: 'sch_netem', config: 'CONFIG_NET_SCH_NETEM', dir: 'kernel/net/sched' },
  htb: { module: 'sch_htb', config: 'CONFIG_NET_SCH_HTB', dir: 'kernel/net/sched' },
  nftBridge: { module: 'nf_tables_bridge', config: 'CONFIG_NF_TABLES_BRIDGE', dir: 'kernel/net/bridge/netfilter' },
  tun: { module: 'tun', config: 'CONFIG_TUN', dir: 'kernel/drivers/net' },
};

let configCache: string | null | undefined;
function kernelConfig(): string | null {
  if (configCache !== undefined) return configCache;
  configCache = null;
  try {
    configCache = gunzipSync(readFileSync('/proc/config.gz')).toString('utf8');
  } catch {
    try {
      configCache = readFileSync(`/boot/config-${release()}`, 'utf8');
    } catch {
      /* no config available */
    }
  }
  return configCache;
}

/** A kernel piece to look for: module name, kernel config option, module folder under /lib/modules/RELEASE. */
export interface ModuleSpec {
  module: string;
  config: string;
  dir: string;
}

/** Whether the kernel has a feature, and how that was decided. */
export function detectFeature(f: Feature): { present: boolean; source: string } {
  return detectKernelModule(SPEC[f]);
}

/**
 * Whether the kernel has a module or built-in option: loaded (/sys/module/NAME), else
 * the kernel config (=y or =m), else a module file under /lib/modules/RELEASE. Reads files only.
 */
export function detectKernelModule(s: ModuleSpec): { present: boolean; source: string } {
  if (existsSync(`/sys/module/${s.module}`)) return { present: true, source: `/sys/module/${s.module}` };
  const cfg = kernelConfig();
  if (cfg) {
    const m = new RegExp(`^${s.config}=([ym])$`, 'm').exec(cfg);
    if (m) return { present: true, source: `${s.config}=${m[1]}` };
    return { present: false, source: `${s.config} is not set in the kernel config` };
  }
  try {
    const dir = `/lib/modules/${release()}/${s.dir}`;
    if (readdirSync(dir).some((n) => n.startsWith(`${s.module}.ko`))) return { present: true, source: `${dir}/${s.module}.ko` };
  } catch {
    /* no module tree */
  }
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
