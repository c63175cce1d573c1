/**
 * Observes the lab's dnsmasq instances (one per bridge with dhcp/dns: config file in
 * <state dir>/dnsmasq/<bridge>.conf, process from <bridge>.pid whose command line
 * names that config) and the resolv.conf files of its node namespaces
 * (/etc/netns/<ns>/resolv.conf, owned when its first line is "# provium:<lab>:node:...")
 * and hosts files (/etc/netns/<ns>/hosts, the same mark).
 * Reads files only, through the safe trees of apply/statedir.ts (no symbolic link
 * followed).
 */
import type { Conflict, DnsmasqState } from '../model/state.js';
import { localFs, type SyncFs } from '../host/fs.js';
import { dnsmasqPaths, resolvPath } from '../plan/realize.js';
import { hostsPath } from '../plan/hosts.js';
import { netnsPrefix, parseAlias } from '../model/names.js';
import { livePid } from '../host/proc.js';
import { etcNetnsFs, treeOf } from '../apply/statedir.js';

export interface Services {
  dnsmasq: Record<string, DnsmasqState>;
  resolv: Record<string, string>;
  /** Owned hosts files of node namespaces (/etc/netns/<ns>/hosts, first line "# provium:<lab>:..."). */
  hosts?: Record<string, string>;
  conflicts: Conflict[];
}

/**
 * Appended to an observed resolv.conf that not every user of the node can read (a
 * folder or file without r for group/others, as provium made them before 0.2): the plan
 * shows it as drift and apply rewrites the file (0644, folder 0755).
 */
export const UNREADABLE_MARK = '# (not readable by every user in the node)\n';

/** Whether a resolv.conf's or hosts file's first-line mark is another host's (multi-host labs whose hosts share /etc, as test hosts do). */
function otherHosts(text: string, host: string | undefined): boolean {
  const nl = text.indexOf('\n');
  const mark = parseAlias(text.slice(2, nl < 0 ? undefined : nl).trim().split(' ')[0]);
  return mark?.kind === 'node' && mark.host !== host;
}

/**
 * `wantedResolv`, `wantedHosts`: namespaces whose resolv.conf and hosts file the file
 * wants (an unmarked file there is a conflict). `fs`: a remote host's file snapshot
 * (this machine's files, through the state directory's safe trees, when absent).
 * `host`: in a multi-host lab, this host's name: a file marked for another host of the
 * lab is not this host's and is left alone.
 */
export function observeServices(stateDir: string | undefined, lab: string, wantedResolv: string[], fs?: SyncFs, host?: string, wantedHosts: string[] = []): Services {
  if (fs && fs !== localFs) return observeSnapshot(stateDir, lab, wantedResolv, fs, host, wantedHosts);
  const out: Services = { dnsmasq: {}, resolv: {}, hosts: {}, conflicts: [] };
  if (stateDir) {
    const { fs, rel } = treeOf(`${stateDir}/dnsmasq`);
    for (const f of fs.list(rel).filter((x) => x.endsWith('.conf'))) {
      const bridge = f.slice(0, -5);
      const p = dnsmasqPaths(stateDir, bridge);
      const pid = livePid(p.pid, p.conf);
      out.dnsmasq[bridge] = { bridge, config: fs.read(`${rel}/${f}`) ?? '', alive: pid !== undefined, ...(pid ? { pid } : {}) };
    }
  }
  const etc = etcNetnsFs();
  const prefix = netnsPrefix(lab);
  const dirs = new Set(etc.list('').filter((d) => d.startsWith(prefix)));
  // Per namespace folder: its mode and names once, then only the files that are there
  // (a 200-node lab: ~1,400 file system calls, one check of the root per folder).
  const files: { name: string; path: (ns: string) => string; wanted: Set<string>; into: Record<string, string>; what: string }[] = [
    { name: 'resolv.conf', path: resolvPath, wanted: new Set(wantedResolv), into: out.resolv, what: 'a resolv.conf' },
    { name: 'hosts', path: hostsPath, wanted: new Set(wantedHosts), into: out.hosts!, what: 'a hosts file' },
  ];
  for (const ns of new Set([...dirs, ...wantedResolv, ...wantedHosts])) {
    // One walk per folder: refuses a symbolic link or a folder that is not safe.
    const folder = etc.readFolder(ns, files.filter((f) => dirs.has(ns) || f.wanted.has(ns)).map((f) => f.name));
    if (!folder) continue;
    const dir = folder.dir;
    for (const f of files) {
      const got = folder.files.get(f.name);
      if (!got) continue;
      const { text } = got;
      const mode = got.st.mode;
      if (text.startsWith(`# provium:${lab}:`)) {
        if (otherHosts(text, host)) continue;
        const readable = (mode & 0o044) === 0o044 && (dir.mode & 0o055) === 0o055;
        f.into[ns] = readable ? text : text + UNREADABLE_MARK;
      } else if (f.wanted.has(ns)) out.conflicts.push({ kind: 'file', name: f.path(ns), found: `${f.what} without provium's first-line mark` });
    }
  }
  return out;
}

/** observeServices on a remote host's file snapshot (which never follows a symlink). */
function observeSnapshot(stateDir: string | undefined, lab: string, wantedResolv: string[], fs: SyncFs, host: string | undefined, wantedHosts: string[]): Services {
  const out: Services = { dnsmasq: {}, resolv: {}, hosts: {}, conflicts: [] };
  if (stateDir) {
    for (const f of (fs.list(`${stateDir}/dnsmasq`) ?? []).filter((x) => x.endsWith('.conf'))) {
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
      if (!otherHosts(text, host)) out.resolv[ns] = text;
    } else if (wantedResolv.includes(ns)) out.conflicts.push({ kind: 'file', name: path, found: 'a resolv.conf without provium\'s first-line mark' });
  }
  for (const ns of new Set([...dirs, ...wantedHosts])) {
    const path = hostsPath(ns);
    const text = fs.readText(path);
    if (text === undefined) continue;
    if (text.startsWith(`# provium:${lab}:`)) {
      if (!otherHosts(text, host)) out.hosts![ns] = text;
    } else if (wantedHosts.includes(ns)) out.conflicts.push({ kind: 'file', name: path, found: 'a hosts file without provium\'s first-line mark' });
  }
  return out;
}
