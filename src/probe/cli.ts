/**
 * The `provium probe` command: plan first (drift is reported, not fatal), then measure.
 * Overlays (`-f`) come with the file loader; this module takes a loaded Topology.
 */
import { hasNamespace, type Topology } from '../model/topology.js';
import type { HostContext } from '../plan/commands.js';
import { HostRunner } from '../host/runner.js';
import { planFor } from '../apply/index.js';
import { ProviumError } from '../model/diagnostics.js';
import { nodeNetns } from '../model/names.js';
import { existsSync } from 'node:fs';
import { onlyFilter } from './expect.js';
import { probe } from './run.js';
import { probeJson, renderProbe } from './render.js';

export interface ProbeCliOptions {
  only?: string;
  quick?: boolean;
  json?: boolean;
}

/** Runs a probe and prints it; returns false when a property FAILed. Throws ProviumError when the lab is not applied. */
export async function probeCommand(t: Topology, o: ProbeCliOptions, ctx: HostContext, out: { color: boolean; json: (doc: unknown) => void }): Promise<boolean> {
  let only;
  try {
    only = o.only !== undefined ? onlyFilter(t, o.only) : undefined;
  } catch (e) {
    throw new ProviumError((e as Error).message);
  }
  const netns = Object.values(t.nodes).filter((n) => hasNamespace(n.kind));
  if (netns.length > 0 && !netns.some((n) => existsSync(`/run/netns/${nodeNetns(t.lab, n.name)}`))) {
    throw new ProviumError(`lab ${t.lab} is not applied: none of its node namespaces exists`, `run provium${ctx.hostNetns ? ` --netns ${ctx.hostNetns}` : ''} apply ${t.file} first`);
  }
  const runner = new HostRunner();
  const planned = await planFor(t, ctx, runner);
  const tty = process.stderr.isTTY === true && !o.json;
  const report = await probe(t, { ctx, quick: o.quick, only, runner, progress: tty ? (s) => process.stderr.write(`probe: ${s}\n`) : undefined });
  report.drift = planned.plan.changes.map((c) => c.address);
  if (o.json) out.json(probeJson(report));
  else process.stdout.write(renderProbe(report, { color: out.color }));
  return report.ok;
}
