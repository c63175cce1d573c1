/**
 * Partial re-observation, for verifying a change that touched only some kinds of host
 * objects: the nft tables (`nft -j list ruleset`, through observe's readNft: the reading
 * is stored with the ruleset generation for the next run), the qdiscs and classes (`tc -j qdisc
 * show`, then `tc -batch` class show of the HTB ports), the forwarding sysctls
 * (`sysctl -n`). Everything else is taken from the observation the change was planned
 * against (the lab's links, namespaces, VMs, services and host facts), which is right
 * while the lab is locked and only provium changes its objects.
 *
 * `partialParts(plan)` says which parts a plan touches, or undefined when it touches
 * anything else (links, namespaces, NICs, routes, VMs, services: those are verified by
 * a full observation).
 */
import type { HostState } from '../model/state.js';
import { parseAlias } from '../model/names.js';
import type { Runner } from '../host/runner.js';
import type { HostContext } from '../plan/commands.js';
import type { Plan } from '../plan/types.js';
import { toShaping } from './parse.js';
import { readNft, readSysctls, readTc, type Observation, type Wanted } from './index.js';

/** Host-wide readers a partial observation can run. */
export type Part = 'nft' | 'tc' | 'sysctl';

/** The parts a plan's item changes touch, or undefined when some change needs a full observation. */
export function partialParts(plan: Plan): Part[] | undefined {
  const parts = new Set<Part>();
  for (const it of plan.changes.flatMap((c) => c.items)) {
    const kind = (it.after ?? it.before)!.ref.kind;
    if (kind === 'elem' || kind === 'nft-table') parts.add('nft');
    else if (kind === 'qdisc' || kind === 'class') parts.add('tc');
    else if (kind === 'sysctl') parts.add('sysctl');
    else return undefined;
  }
  return [...parts];
}

/**
 * Observes only `parts` again; the rest of the state and the facts are `previous`'s.
 * Runs the readers concurrently (the class read after the qdisc read). Throws
 * CommandError when a reader fails.
 */
export async function observePartial(lab: string, ctx: HostContext, runner: Runner, wanted: Wanted, previous: Observation, parts: Part[]): Promise<Observation> {
  const state: HostState = { ...previous.state, nft: { ...previous.state.nft } };
  const sysctls = (['ipForward', 'ip6Forward'] as const).filter((k) => wanted[k]);
  const names = { ipForward: 'net.ipv4.ip_forward', ip6Forward: 'net.ipv6.conf.all.forwarding' } as const;
  await Promise.all([
    parts.includes('nft') &&
      readNft(lab, ctx, runner).then((nft) => {
        if (nft.bridge) state.nft.bridge = nft.bridge;
        else delete state.nft.bridge;
        if (nft.inet) state.nft.inet = nft.inet;
        else delete state.nft.inet;
      }),
    parts.includes('tc') &&
      (async () => {
        const ports = new Set(Object.values(state.links).filter((l) => parseAlias(l.alias)?.kind === 'port').map((l) => l.name));
        const { qdiscs, classes } = await readTc(ctx, runner, ports);
        state.shaping = toShaping(qdiscs, classes, ports);
      })(),
    parts.includes('sysctl') &&
      sysctls.length > 0 &&
      readSysctls(ctx, runner, sysctls.map((k) => names[k])).then((values) => {
        sysctls.forEach((k, i) => (state[k] = values[i] === '1'));
      }),
  ]);
  return { state, facts: previous.facts };
}
