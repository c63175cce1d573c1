/**
 * Saved plans (`provium plan FILE --out PLANFILE`, `provium apply PLANFILE`). A plan
 * file holds the topology text it was made from, the exact invocations, and a
 * fingerprint of the observed host state the plan was computed from: SHA-256 of the
 * normalized HostState (the same objects `ip -j`, `tc -j`, `tc class show`, `nft -j`
 * and QMP were lifted into) plus the host facts the plan depends on. Applying a saved
 * plan re-observes and refuses when the fingerprint differs (drift by hand, another
 * apply), instead of applying a stale plan.
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import type { Observation } from '../observe/index.js';
import type { Plan } from '../plan/types.js';
import { planJson } from '../render/json.js';
import { ProviumError } from '../model/diagnostics.js';

export const PLAN_KIND = 'provium-plan';

export interface PlanFile {
  format_version: '1';
  kind: typeof PLAN_KIND;
  created: string;
  lab: string;
  topology: { file: string; text: string; sha256: string };
  host_netns: string | null;
  /** "sha256:<hex>" of the observed state the plan was computed from. */
  fingerprint: string;
  /** The plan as `plan --json` prints it, for people and tools. */
  plan: ReturnType<typeof planJson>;
  /** The exact invocations apply runs (including VM and QMP actions). */
  invocations: Plan['invocations'];
  /**
   * Every file the topology was merged from (`inputs`: FILE and each -f overlay, absolute;
   * `files`: the text of each file read, extends bases included; `-` is standard input)
   * and the variables substituted: what load/sources.ts needs to load it again.
   */
  sources?: { inputs: string[]; files: { path: string; text: string }[]; vars: Record<string, string> };
}

/** JSON with object keys sorted at every level (a canonical form to hash). */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** Fingerprint of an observation: the lab's host state and the facts planning reads. */
export function fingerprint(o: Observation): string {
  const f = o.facts;
  const doc = { state: o.state, facts: { features: f.features, kvm: f.kvmUsable, defaultRouteDev: f.defaultRouteDev, defaultRouteDev6: f.defaultRouteDev6, conflicts: f.conflicts, missingFiles: f.missingFiles, qemu: f.qemuBinary } };
  return `sha256:${createHash('sha256').update(canonicalJson(doc)).digest('hex')}`;
}

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export function writePlanFile(path: string, p: PlanFile): void {
  writeFileSync(path, JSON.stringify(p, null, 2) + '\n', { mode: 0o600 });
}

/** The plan file at path, or undefined when the file is not a plan file (a topology). Throws ProviumError on a damaged plan file. */
export function readPlanFile(path: string): PlanFile | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  if (!text.trimStart().startsWith('{')) return undefined;
  let doc: Partial<PlanFile>;
  try {
    doc = JSON.parse(text) as Partial<PlanFile>;
  } catch {
    return undefined; // a YAML flow mapping, for example
  }
  if (doc.kind !== PLAN_KIND) return undefined;
  if (doc.format_version !== '1' || !doc.topology?.text || !doc.fingerprint || !Array.isArray(doc.invocations)) {
    throw new ProviumError(`${path}: not a usable provium plan file (format_version ${JSON.stringify(doc.format_version)})`);
  }
  return doc as PlanFile;
}
