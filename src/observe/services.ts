/**
 * Observes the lab's dnsmasq instances (one per bridge with dhcp/dns: config file in
 * <state dir>/dnsmasq/<bridge>.conf, process from <bridge>.pid whose command line
 * names that config) and the resolv.conf files of its node namespaces
 * (/etc/netns/<ns>/resolv.conf, owned when its first line is "# provium:<lab>:node:...").
 * Reads files only.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import type { Conflict, DnsmasqState } from '../model/state.js';
import { dnsmasqPaths, resolvPath } from '../plan/realize.js';
import { hostsPath } from '../plan/hosts.js';
import { netnsPrefix } from '../model/names.js';
import { livePid } from '../host/proc.js';

export interface Services {
  dnsmasq: Record<string, DnsmasqState>;
  resolv: Record<string, string>;
  /** Owned hosts files of node namespaces (/etc/netns/<ns>/hosts, first line "# provium:<lab>:..."). */
  hosts?: Record<string, string>;
  conflicts: Conflict[];
}

/** `wantedResolv`: namespaces whose resolv.conf the file wants (an unmarked file there is a conflict). */
export function observeServices(stateDir: string | undefined, lab: string, wantedResolv: string[], wantedHosts: string[] = []): Services {
  const out: Services = { dnsmasq: {}, resolv: {}, hosts: {}, conflicts: [] };
  if (stateDir) {
    let confs: string[] = [];
    try {
      confs = readdirSync(`${stateDir}/dnsmasq`).filter((f) => f.endsWith('.conf'));
    } catch {
      /* none */
    }
    for (const f of confs) {
      const bridge = f.slice(0, -5);
      const p = dnsmasqPaths(stateDir, bridge);
      const pid = livePid(p.pid, p.conf);
      out.dnsmasq[bridge] = { bridge, config: readFileSync(p.conf, 'utf8'), alive: pid !== undefined, ...(pid ? { pid } : {}) };
    }
  }
  const prefix = netnsPrefix(lab);
  let dirs: string[] = [];
  try {
    dirs = readdirSync('/etc/netns').filter((d) => d.startsWith(prefix));
  } catch {
    /* no /etc/netns */
  }
  for (const ns of new Set([...dirs, ...wantedResolv])) {
    const path = resolvPath(ns);
    if (!existsSync(path)) continue;
    const text = readFileSync(path, 'utf8');
    if (text.startsWith(`# provium:${lab}:`)) out.resolv[ns] = text;
    else if (wantedResolv.includes(ns)) out.conflicts.push({ kind: 'file', name: path, found: 'a resolv.conf without provium\'s first-line mark' });
  }
  for (const ns of new Set([...dirs, ...wantedHosts])) {
    const path = hostsPath(ns);
    if (!existsSync(path)) continue;
    const text = readFileSync(path, 'utf8');
    if (text.startsWith(`# provium:${lab}:`)) out.hosts![ns] = text;
    else if (wantedHosts.includes(ns)) out.conflicts.push({ kind: 'file', name: path, found: 'a hosts file without provium\'s first-line mark' });
  }
  return out;
}
