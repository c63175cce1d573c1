/**
 * `provium ls`: the labs on this host, from their records in the state directory
 * (<state root>/<lab>/state.json, written by apply: file, host namespace, when, object
 * counts), plus labs whose node namespaces exist without a record (applied by an older
 * provium, or with another PROVIUM_STATE_DIR). Reads files only.
 */
import { readdirSync } from 'node:fs';
import { Chalk } from 'chalk';
import { readRecord, stateFs, stateRoot, type Warn } from './apply/statedir.js';
import { LAB_RE } from './model/names.js';

export interface LabListing {
  lab: string;
  file?: string;
  hostNetns?: string | null;
  appliedAt?: string;
  objects?: Record<string, number>;
  /** Node namespaces of the lab that exist now (/run/netns/pv-<lab>-*). */
  namespaces: number;
  /** Whether the lab has a record (else it was found by its namespaces only). */
  recorded: boolean;
}

export function listLabs(warn?: Warn): LabListing[] {
  const out = new Map<string, LabListing>();
  let netns: string[] = [];
  try {
    netns = readdirSync('/run/netns');
  } catch {
    /* none */
  }
  const nsCount = (lab: string) => netns.filter((n) => n.startsWith(`pv-${lab}-`)).length;
  const fs = stateFs();
  const dirs = fs.list('').filter((d) => LAB_RE.test(d) && fs.lstat(d)?.isDirectory());
  for (const lab of dirs) {
    if (!fs.exists(`${lab}/state.json`)) continue;
    const r = readRecord(lab, warn);
    out.set(lab, { lab, file: typeof r.file === 'string' ? r.file : undefined, hostNetns: r.hostNetns, appliedAt: typeof r.appliedAt === 'string' ? r.appliedAt : undefined, objects: r.objects, namespaces: nsCount(lab), recorded: true });
  }
  for (const n of netns) {
    const m = /^pv-([a-z][a-z0-9]{0,7})-/.exec(n);
    if (m && !out.has(m[1])) out.set(m[1], { lab: m[1], namespaces: nsCount(m[1]), recorded: false });
  }
  return [...out.values()].sort((a, b) => (a.lab < b.lab ? -1 : 1));
}

export function lsJson(labs: LabListing[]) {
  return {
    format_version: '1',
    labs: labs.map((l) => ({
      lab: l.lab, file: l.file ?? null, host_netns: l.hostNetns ?? null, applied_at: l.appliedAt ?? null, objects: l.objects ?? null, namespaces: l.namespaces, recorded: l.recorded,
    })),
  };
}

export function renderLs(labs: LabListing[], opts: { color: boolean }): string {
  const c = new Chalk({ level: opts.color ? 1 : 0 });
  if (labs.length === 0) return `no labs on this host (state directory ${stateRoot()})\n`;
  const rows = labs.map((l) => [
    l.lab, l.file ?? (l.recorded ? '?' : '(no record)'), l.recorded ? l.hostNetns ?? '(root)' : '?', l.appliedAt ? l.appliedAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '?',
    l.objects ? `${l.objects.nodes} nodes, ${l.objects.bridges} bridges${l.objects.partitions ? `, ${l.objects.partitions} partition${l.objects.partitions === 1 ? "" : "s"}` : ''}${l.objects.impairments ? `, ${l.objects.impairments} impairment${l.objects.impairments === 1 ? "" : "s"}` : ''}` : '',
    `${l.namespaces} namespace${l.namespaces === 1 ? '' : 's'}`,
  ]);
  const head = ['LAB', 'FILE', 'HOST NETNS', 'APPLIED', 'OBJECTS', 'NOW'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((x, i) => x.padEnd(w[i])).join('  ').trimEnd();
  return [c.bold(line(head)), ...rows.map(line)].join('\n') + '\n';
}
