/**
 * Observes the lab's dnsmasq instances (one per bridge with dhcp/dns: config file in
 * <state dir>/dnsmasq/<bridge>.conf, process from <bridge>.pid whose command line
 * names that config) and the resolv.conf files of its node namespaces
 * (/etc/netns/<ns>/resolv.conf, owned when its first line is "# provium:<lab>:node:...").
 * Reads files only.
 */
import type { Conflict, DnsmasqState } from '../model/state.js';
import { localFs, type SyncFs } from '../host/fs.js';
import { dnsmasqPaths, resolvPath } from '../plan/realize.js';
import { netnsPrefix, parseAlias } from '../model/names.js';
import { livePid } from '../host/proc.js';

export interface Services {
  dnsmasq: Record<string, DnsmasqState>;
  resolv: Record<string, string>;
  conflicts: Conflict[];
}

/**
 * `wantedResolv`: namespaces whose resolv.conf the file wants (an unmarked file there is
 * a conflict). `fs`: the host's files (a remote snapshot too). `host`: in a multi-host lab,
 * this host's name: a resolv.conf marked for another host of the lab (hosts sharing one
 * /etc, as test hosts do) is not this host's and is left alone.
 */
export function observeServices(stateDir: string | undefined, lab: string, wantedResolv: string[], fs: SyncFs = localFs, host?: string): Services {
  const out: Services = { dnsmasq: {}, resolv: {}, conflicts: [] };
  if (stateDir) {
    const confs = (fs.list(`${stateDir}/dnsmasq`) ?? []).filter((f) => f.endsWith('.conf'));
    for (const f of confs) {
      const bridge = f.slice(0, -5);
      const p = dnsmasqPaths(stateDir, bridge);
      const pid = livePid(p.pid, p.conf, fs);
      const config = fs.readText(p.conf);
      if (config === undefined) continue;
      out.dnsmasq[bridge] = { bridge, config, alive: pid !== undefined, ...(pid ? { pid } : {}) };
    }
  }
  const prefix = netnsPrefix(lab);
  const dirs = (fs.list('/etc/netns') ?? []).filter((d) => d.startsWith(prefix));
  for (const ns of new Set([...dirs, ...wantedResolv])) {
    const path = resolvPath(ns);
    const text = fs.readText(path);
    if (text === undefined) continue;
    if (text.startsWith(`# provium:${lab}:`)) {
      const mark = parseAlias(text.slice(2, text.indexOf('\n') < 0 ? undefined : text.indexOf('\n')).trim());
      if (mark?.kind === 'node' && mark.host !== host) continue; // another host's (or not a multi-host lab's)
      out.resolv[ns] = text;
    } else if (wantedResolv.includes(ns)) out.conflicts.push({ kind: 'file', name: path, found: 'a resolv.conf without provium\'s first-line mark' });
  }
  return out;
}
