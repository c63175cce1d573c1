/**
 * Reads routers' own settings in their namespaces: `ip netns exec NS nft -j list table
 * inet provium_<lab>` (libnftables JSON; exit 1 when the table is absent) and
 * `ip netns exec NS sysctl KEY...` ("key = value" lines; keys of conntrack are absent
 * until the kernel's conntrack is loaded), two processes per router, 8 routers at a time.
 */
import type { RouterState } from '../model/state.js';
import { mapLimit, type Runner } from '../host/runner.js';
import { nftTable } from '../model/names.js';
import { parseRouterTable } from '../plan/router-nft.js';
import { ROUTER_SYSCTLS } from '../plan/routers.js';

/** "key = value" lines of `sysctl KEY...` -> key -> value. */
export function parseSysctlLines(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf(' = ');
    if (i > 0) out.set(line.slice(0, i).trim(), line.slice(i + 3).trim());
  }
  return out;
}

/** A router's state from its table's JSON and its sysctl lines (pure). */
export function toRouterState(ns: string, node: string, lab: string, nftJson: string | undefined, sysctlText: string): RouterState {
  const kv = parseSysctlLines(sysctlText);
  const num = (k: string) => (kv.has(k) && /^\d+$/.test(kv.get(k)!) ? Number(kv.get(k)) : undefined);
  const flag = (k: string) => (kv.has(k) ? kv.get(k) === '1' : undefined);
  let table;
  if (nftJson) {
    try {
      table = parseRouterTable(JSON.parse(nftJson), lab);
    } catch {
      table = undefined;
    }
  }
  const r: RouterState = {
    ns, node,
    ipForward: flag(ROUTER_SYSCTLS.ipForward),
    ip6Forward: flag(ROUTER_SYSCTLS.ip6Forward),
    ctUdp: num(ROUTER_SYSCTLS.ctUdp),
    ctUdpStream: num(ROUTER_SYSCTLS.ctUdpStream),
    ctTcpEstablished: num(ROUTER_SYSCTLS.ctTcpEstablished),
    ...(table ? { table } : {}),
    tableExists: nftJson !== undefined,
  };
  return r;
}

/** Observes the routers in the given namespaces (namespace -> node name). */
export async function observeRouters(lab: string, runner: Runner, routers: Map<string, string>): Promise<Record<string, RouterState>> {
  const list = [...routers];
  const states = await mapLimit(list, 8, async ([ns, node]) => {
    const [nft, sys] = await Promise.all([
      runner.run(['ip', 'netns', 'exec', ns, 'nft', '-j', 'list', 'table', 'inet', nftTable(lab)], { allowFail: true }),
      runner.run(['ip', 'netns', 'exec', ns, 'sysctl', ...Object.values(ROUTER_SYSCTLS)], { allowFail: true }),
    ]);
    return toRouterState(ns, node, lab, nft.exitCode === 0 ? nft.stdout : undefined, sys.stdout);
  });
  return Object.fromEntries(states.map((s) => [s.ns, s]));
}
