/**
 * The CLI's plan, apply, destroy and doctor for a file with `hosts:` (cli.ts hands over
 * when the loaded topology has hosts). Same options, output and exit codes as for one
 * host; the plan is grouped by host, the lock is taken on every host, saved plans carry
 * one fingerprint and the invocations per host.
 */
import { readFileSync } from 'node:fs';
import type { Topology } from '../model/topology.js';
import { ProviumError } from '../model/diagnostics.js';
import { fingerprint, firstDifference, PLAN_FORMAT, PLAN_KIND, planSource, sha256, writePlanFile, type PlanFile, type PlanSource } from '../apply/planfile.js';
import type { Invocation } from '../plan/types.js';
import { closeHosts, lockHosts, openHosts } from './hosts.js';
import { allErrors, applyHosts, emptyHostsTopology, planHosts, removeLabDirs, type MultiPlan } from './lab.js';
import { multiPlanJson, multiSummary, renderMultiPlan } from './render.js';

/** A saved multi-host plan's per-host part. */
export interface SavedHostPlan {
  name: string;
  fingerprint: string;
  invocations: Invocation[];
}

function hostFingerprints(mp: MultiPlan): SavedHostPlan[] {
  return mp.hosts.map((h) => ({ name: h.host, fingerprint: fingerprint(h.observation), invocations: h.plan.invocations }));
}

export interface Io {
  out(s: string): void;
  err(s: string): void;
  json(doc: unknown): void;
  color: boolean;
  /** Asks for "yes" (apply/destroy without --auto-approve). */
  confirm(question: string): Promise<boolean>;
  step(text: string): void;
  stopProgress(): void;
}

/** Exit code carrier (the CLI's ExitError is not imported here to avoid a cycle). */
export class HostsExit extends Error {
  constructor(public readonly code: number) {
    super('');
  }
}

/** `provium plan FILE` for a multi-host lab. */
export async function hostsPlan(t: Topology, hostNetns: string | undefined, o: { json?: boolean; commands?: boolean; detailedExitcode?: boolean; out?: string; replace?: string[]; sources?: PlanSource[]; variables?: Record<string, string> }, io: Io): Promise<void> {
  const hosts = await openHosts(t, hostNetns);
  try {
    const mp = await planHosts(t, hosts, { replace: o.replace });
    if (o.json) io.json(multiPlanJson(mp));
    else io.out(renderMultiPlan(t, mp, { color: io.color, commands: o.commands }));
    const errors = allErrors(mp);
    if (o.out && errors.length === 0) {
      const sources = o.sources ?? [planSource(t.file, readFileSync(t.file, 'utf8'))];
      const per = hostFingerprints(mp);
      const doc: PlanFile & { hosts: SavedHostPlan[] } = {
        format_version: PLAN_FORMAT, kind: PLAN_KIND, created: new Date().toISOString(), lab: t.lab,
        sources, variables: o.variables ?? {}, options: { targets: [], replace: o.replace ?? [] }, host_netns: hostNetns ?? null,
        fingerprint: `sha256:${sha256(per.map((p) => `${p.name}=${p.fingerprint}`).join('\n'))}`,
        plan: multiPlanJson(mp) as unknown as PlanFile['plan'], invocations: mp.hosts.flatMap((h) => h.plan.invocations), hosts: per,
      };
      writePlanFile(o.out, doc);
      if (!o.json) io.out(`\nSaved the plan to ${o.out}. To perform exactly these actions, run: provium${hostNetns ? ` --netns ${hostNetns}` : ''} apply ${o.out}\n`);
    }
    if (errors.length) throw new HostsExit(1);
    if (o.detailedExitcode && mp.hosts.some((h) => h.plan.changes.length > 0)) throw new HostsExit(2);
  } finally {
    await closeHosts(hosts);
  }
}

/** `provium apply|destroy FILE|PLANFILE` for a multi-host lab. */
export async function hostsApply(
  name: 'apply' | 'destroy', t: Topology, hostNetns: string | undefined,
  o: { autoApprove?: boolean; json?: boolean; commands?: boolean; refreshLinks?: boolean; rollback?: boolean; replace?: string[]; saved?: (PlanFile & { hosts?: SavedHostPlan[] }); savedPath?: string },
  io: Io,
): Promise<void> {
  const target = name === 'apply' ? t : emptyHostsTopology(t);
  const hosts = await openHosts(t, hostNetns);
  let release: (() => Promise<void>) | undefined;
  try {
    release = await lockHosts(hosts, t.lab, `provium ${name}`, (m) => io.err(`warning: ${m}\n`));
    io.step('reading the hosts');
    const mp = await planHosts(target, hosts, { refreshLinks: o.refreshLinks, replace: o.replace });
    io.stopProgress();
    if (o.saved) {
      if (!o.saved.hosts) throw new ProviumError(`${o.savedPath} was planned for a lab without hosts`);
      const now = new Map(hostFingerprints(mp).map((p) => [p.name, p.fingerprint]));
      const stale = o.saved.hosts.filter((p) => now.get(p.name) !== p.fingerprint).map((p) => p.name);
      if (stale.length || now.size !== o.saved.hosts.length) {
        throw new ProviumError(
          `the hosts changed since ${o.savedPath} was planned (${o.saved.created}): the saved plan is stale and was not applied`,
          `changed on host ${stale.join(', ') || '(the set of hosts)'}; run provium plan again`,
        );
      }
      // provium runs only what it computes itself: each host's saved invocations must be exactly those.
      for (const p of o.saved.hosts) {
        const diff = firstDifference(p.invocations, mp.hosts.find((h) => h.host === p.name)?.plan.invocations ?? []);
        if (diff) throw new ProviumError(`${o.savedPath}: host ${p.name}: the saved commands differ from what provium computes: ${diff}`, 'the plan file was changed after it was saved, or was made by another provium version: run provium plan again');
      }
    }
    if (!o.json) io.out(renderMultiPlan(t, mp, { color: io.color, commands: o.commands }));
    if (allErrors(mp).length) {
      if (o.json) io.json({ ...multiPlanJson(mp), applied: false });
      throw new HostsExit(1);
    }
    const changes = mp.hosts.reduce((n, h) => n + h.plan.changes.length, 0);
    if (changes > 0) {
      if (!o.autoApprove && !o.saved) {
        if (!process.stdin.isTTY) throw new ProviumError(`${name} needs --auto-approve when not run from a terminal`);
        if (!(await io.confirm(`\nDo you want to perform these actions on ${mp.hosts.filter((h) => h.plan.changes.length).map((h) => h.host).join(', ')}? Only 'yes' will be accepted: `))) {
          io.out(`${name} cancelled.\n`);
          throw new HostsExit(1);
        }
      }
      const t0 = performance.now();
      const ran = await applyHosts(target, hosts, mp, {
        rollback: name === 'apply' && o.rollback !== false,
        onStep: (host, inv) => io.step(`${host}: ${inv.label}: ${inv.argv.join(' ')}`),
        onProcesses: (host, ns, pids) => io.err(`host ${host}: ending ${pids.length} process(es) still running in ${ns} (pid ${pids.join(', ')}): SIGTERM, then SIGKILL after 2 s\n`),
      });
      io.stopProgress();
      const s = multiSummary(mp);
      const secs = Math.round(performance.now() - t0) / 1000;
      if (o.json) io.json({ ...multiPlanJson(mp), applied: true, host_commands: ran, seconds: secs });
      else io.out(`\n${name === 'apply' ? 'Apply' : 'Destroy'} complete! Resources: ${s.add} added, ${s.change} changed, ${s.destroy} destroyed on ${mp.hosts.filter((h) => h.plan.changes.length).map((h) => h.host).join(', ')} (${ran} host command invocations, ${secs.toFixed(2)} s, verified on every host).\n`);
    } else if (o.json) io.json({ ...multiPlanJson(mp), applied: true, host_commands: 0 });
    if (name === 'destroy') await removeLabDirs(t, hosts);
  } finally {
    io.stopProgress();
    await release?.();
    await closeHosts(hosts);
  }
}
