/**
 * A multi-host plan as text (one section per host: the host's plan as `provium plan`
 * prints it for one host, indented) and as JSON (format_version 1: every change and
 * command with its `host`, plus the per-host documents under `hosts`). Reads a plan,
 * returns a value; writes nothing.
 */
import { Chalk } from 'chalk';
import type { Topology } from '../model/topology.js';
import { formatDiagnostic } from '../model/diagnostics.js';
import { renderPlan, summary, type RenderOptions } from '../render/text.js';
import { diagnosticJson, FORMAT_VERSION, planJson } from '../render/json.js';
import { allErrors, type MultiPlan } from './lab.js';

/** Summed counts over hosts. */
export function multiSummary(mp: MultiPlan): { add: number; change: number; destroy: number } {
  const s = { add: 0, change: 0, destroy: 0 };
  for (const h of mp.hosts) {
    const x = summary(h.plan);
    s.add += x.add;
    s.change += x.change;
    s.destroy += x.destroy;
  }
  return s;
}

/** How a host is reached, for headers: "local" or "ssh root@192.0.2.12 port 2222". */
function reach(t: Topology, host: string): string {
  const h = t.hosts?.[host];
  if (!h) return '';
  return `${h.local ? 'local' : `ssh ${h.ssh}${h.port ? ` port ${h.port}` : ''}`}, underlay ${h.underlay}`;
}

export function renderMultiPlan(t: Topology, mp: MultiPlan, opts: RenderOptions): string {
  const c = new Chalk({ level: opts.color ? 1 : 0 });
  const errors = allErrors(mp);
  if (errors.length) return errors.map((e) => c.red(formatDiagnostic(e))).join('\n') + '\n';
  const busy = mp.hosts.filter((h) => h.plan.changes.length > 0);
  if (busy.length === 0) return c.green('No changes.') + ` Every host (${mp.hosts.map((h) => h.host).join(', ')}) matches the file for lab ${mp.lab}.\n`;
  const out = [`provium will perform the following actions on lab ${c.bold(mp.lab)}, on ${busy.length} of ${mp.hosts.length} hosts:`, ''];
  for (const h of mp.hosts) {
    if (h.plan.changes.length === 0) {
      out.push(c.bold(`host ${h.host}`) + ` (${reach(t, h.host)}): no changes`, '');
      continue;
    }
    out.push(c.bold(`host ${h.host}`) + ` (${reach(t, h.host)}):`);
    const body = renderPlan(h.plan, opts).trimEnd().split('\n').slice(2); // without the one-host header line
    out.push(...body.map((l) => (l ? `  ${l}` : l)), '');
  }
  const s = multiSummary(mp);
  out.push(c.bold(`Plan: ${s.add} to add, ${s.change} to change, ${s.destroy} to destroy, on ${busy.map((h) => h.host).join(', ')}.`));
  return out.join('\n') + '\n';
}

/** `plan --json` of a multi-host lab. */
export function multiPlanJson(mp: MultiPlan) {
  const per = Object.fromEntries(mp.hosts.map((h) => [h.host, planJson(h.plan)]));
  return {
    format_version: FORMAT_VERSION,
    lab: mp.lab,
    changes: mp.hosts.flatMap((h) => per[h.host].changes.map((c) => ({ host: h.host, ...c }))),
    errors: allErrors(mp).map(diagnosticJson),
    commands: mp.hosts.flatMap((h) => per[h.host].commands.map((c) => ({ host: h.host, ...c }))),
    summary: multiSummary(mp),
    hosts: per,
  };
}
