/**
 * Per-NIC counters for `provium show`, from the node's side: `ip -j -s link show`
 * ("stats64": rx/tx bytes, packets, errors, dropped) inside each node namespace, and
 * for VM NICs the TAP's counters in the lab's host namespace with rx and tx swapped
 * (what the TAP transmits, the guest receives). Read-only; one command per namespace.
 */
import type { HostState } from '../model/state.js';
import { mapLimit, type Runner } from '../host/runner.js';
import { ipArgv, type HostContext } from '../plan/commands.js';

/** Counters of one direction: bytes, packets, errors, dropped (iproute2 stats64 fields). */
export interface Dir {
  bytes: number;
  packets: number;
  errors: number;
  dropped: number;
}

export interface NicCounters {
  rx: Dir;
  tx: Dir;
}

interface IpStats {
  ifname: string;
  stats64?: { rx?: Partial<Dir>; tx?: Partial<Dir> };
}

const dir = (d: Partial<Dir> | undefined): Dir => ({ bytes: d?.bytes ?? 0, packets: d?.packets ?? 0, errors: d?.errors ?? 0, dropped: d?.dropped ?? 0 });

/** Counters keyed "node.ethN". */
export async function readCounters(state: HostState, ctx: HostContext, runner: Runner): Promise<Record<string, NicCounters>> {
  const out: Record<string, NicCounters> = {};
  const nss = Object.values(state.namespaces);
  const results = await mapLimit(nss, 8, (ns) => runner.run(['ip', '-j', '-s', '-n', ns.name, 'link', 'show'], { allowFail: true }));
  nss.forEach((ns, i) => {
    if (results[i].exitCode !== 0) return;
    for (const l of JSON.parse(results[i].stdout || '[]') as IpStats[]) {
      if (l.ifname === 'lo') continue;
      out[`${ns.node}.${l.ifname}`] = { rx: dir(l.stats64?.rx), tx: dir(l.stats64?.tx) };
    }
  });
  const taps = Object.values(state.vms).flatMap((vm) => Object.keys(vm.nics).map((tap) => ({ vm: vm.node, tap })));
  if (taps.length > 0) {
    const r = await runner.run([...ipArgv(ctx), '-j', '-s', 'link', 'show'], { allowFail: true });
    const byName = new Map((JSON.parse(r.stdout || '[]') as IpStats[]).map((l) => [l.ifname, l]));
    for (const { vm, tap } of taps) {
      const l = byName.get(tap);
      if (l) out[`${vm}.eth${tap.slice(tap.lastIndexOf('-') + 1)}`] = { rx: dir(l.stats64?.tx), tx: dir(l.stats64?.rx) };
    }
  }
  return out;
}
