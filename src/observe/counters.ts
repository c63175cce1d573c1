/**
 * Per-NIC counters for `provium show`, from the node's side: `ip -j -s link show`
 * ("stats64": rx/tx bytes, packets, errors, dropped) inside each node namespace, and
 * for VM NICs the TAP's counters in the lab's host namespace with rx and tx swapped
 * (what the TAP transmits, the guest receives). Read-only; one command per namespace.
 */
import type { HostState } from '../model/state.js';
import { mapLimit, type Runner } from '../host/runner.js';
import { ipArgv, nftArgv, type HostContext } from '../plan/commands.js';
import { nftElem } from './parse.js';
import { nftTable } from '../model/names.js';

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

/** Packets one element of the lab's bridge table dropped (an nft set element's own counter). */
export interface DropCounter {
  /** The set: "blocked" (partitions), "isolated", "loss" (drop of a pair), "loss_port" (whole-bridge drop towards a port). */
  set: string;
  /** The element's key as the planner spells it ("<sender MAC>><receiver port>", or a port name for isolation and the whole-bridge drop). */
  key: string;
  /** Its owner: the plan address in the element's comment. */
  owner?: string;
  packets: number;
  bytes: number;
}

/**
 * Per-element drop counters of the lab's bridge table (`nft -j list table bridge
 * provium_<lab>`; libnftables JSON: set "elem" entries {"elem": {"val", "comment",
 * "counter": {"packets", "bytes"}}}). Read element by element, whatever its key looks
 * like. `rules` are the rules' own counters (partition, isolate-in/out, loss: totals),
 * for tables made before elements had counters. Read-only; one command.
 */
export async function readDropCounters(lab: string, ctx: HostContext, runner: Runner): Promise<{ elements: DropCounter[]; perElement: boolean; rules: Record<string, number> }> {
  const r = await runner.run([...nftArgv(ctx), '-j', 'list', 'table', 'bridge', nftTable(lab)], { allowFail: true });
  const out = { elements: [] as DropCounter[], perElement: false, rules: {} as Record<string, number> };
  if (r.exitCode !== 0) return out;
  let doc: { nftables?: Record<string, any>[] };
  try {
    doc = JSON.parse(r.stdout);
  } catch {
    return out;
  }
  for (const o of doc.nftables ?? []) {
    if (o.set && ['blocked', 'isolated', 'loss', 'loss_port'].includes(o.set.name)) {
      if ((o.set.stmt ?? []).some((s: Record<string, unknown>) => 'counter' in s)) out.perElement = true;
      for (const e of o.set.elem ?? []) {
        const c = e?.elem?.counter;
        if (!c) continue;
        const x = nftElem(e, false, o.set.name);
        out.elements.push({ set: o.set.name, key: x.key, ...(x.comment ? { owner: x.comment } : {}), packets: c.packets ?? 0, bytes: c.bytes ?? 0 });
      }
    }
    if (o.rule?.comment && Array.isArray(o.rule.expr)) {
      const c = o.rule.expr.find((x: Record<string, any>) => x.counter)?.counter;
      if (c) out.rules[String(o.rule.comment).split(':').pop()!] = c.packets ?? 0;
    }
  }
  return out;
}
