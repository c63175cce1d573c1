/**
 * Saved plans (`provium plan FILE --out PLANFILE`, `provium apply PLANFILE`).
 *
 * A plan file (format_version "2") holds the topology sources it was made from (name,
 * text and SHA-256 of each file read, in load order: extends bases, FILE, -f overlays)
 * and the variables the files used, the plan options (--target, --replace), the host namespace, a
 * fingerprint of the observed host state the plan was computed from (SHA-256 of the
 * normalized HostState plus the host facts planning reads), the plan for people
 * (`plan --json`), and the invocations it will run.
 *
 * A plan file is its own approval, so it is trusted only as far as provium can check
 * it: `apply PLANFILE` reads it only when it is a regular file owned by root and not
 * writable by group/others (fstat of the descriptor opened with O_NOFOLLOW), checks
 * each source's SHA-256 and the lab name, re-loads the topology from the sources,
 * re-observes the host and refuses when the fingerprint differs (drift by hand,
 * another apply), then computes the invocations itself and refuses, naming the first
 * difference, unless they are identical to the stored ones. It runs what provium
 * computed: the stored invocations are never run as such.
 */
import { createHash } from 'node:crypto';
import { closeSync, constants as C, fstatSync, openSync, readSync } from 'node:fs';
import type { Observation } from '../observe/index.js';
import type { Plan } from '../plan/types.js';
import type { Invocation } from '../plan/types.js';
import type { Topology } from '../model/topology.js';
import { planJson } from '../render/json.js';
import { ProviumError } from '../model/diagnostics.js';
import { loadSources } from '../load/index.js';
import { writeFileAtomic } from '../host/safefs.js';

export const PLAN_KIND = 'provium-plan';
export const PLAN_FORMAT = '2';
/** Largest plan file read (bytes): a 200-node lab's plan is ~2 MB. */
export const PLAN_MAX_BYTES = 64 * 1024 * 1024;

/** One topology source: a file (name as loaded), its text and the SHA-256 (hex) of that text. */
export interface PlanSource {
  name: string;
  text: string;
  sha256: string;
}

export interface PlanFile {
  format_version: typeof PLAN_FORMAT;
  kind: typeof PLAN_KIND;
  created: string;
  lab: string;
  /** The topology's sources in load order (the base file first; overlays after it). */
  sources: PlanSource[];
  /** Variables given when planning (name -> value). */
  variables: Record<string, string>;
  /** The plan's options: --target and --replace. */
  options: { targets: string[]; replace: string[] };
  host_netns: string | null;
  /** "sha256:<hex>" of the observed state the plan was computed from. */
  fingerprint: string;
  /** The plan as `plan --json` prints it, for people and tools (not used by apply). */
  plan: ReturnType<typeof planJson>;
  /** The invocations apply runs (compared with what provium computes; see the module comment). */
  invocations: Plan['invocations'];
}

/** JSON with object keys sorted at every level (a canonical form to hash and compare). */
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
  const doc = { state: o.state, facts: { features: f.features, kvm: f.kvmUsable, defaultRouteDev: f.defaultRouteDev, defaultRouteDev6: f.defaultRouteDev6, conflicts: f.conflicts, missingFiles: f.missingFiles, qemu: f.qemuBinary, forwardingLabs: f.forwardingLabs } };
  return `sha256:${createHash('sha256').update(canonicalJson(doc)).digest('hex')}`;
}

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** A PlanSource for a text. */
export function planSource(name: string, text: string): PlanSource {
  return { name, text, sha256: sha256(text) };
}

/**
 * Writes a plan file atomically (a temporary file in the same folder, renamed over
 * the name), mode 0600: owned by root, as `apply PLANFILE` requires.
 */
export function writePlanFile(path: string, p: PlanFile): void {
  writeFileAtomic(path, JSON.stringify(p, null, 2) + '\n', 0o600);
}

/**
 * Whether the file at path is a plan file (JSON with kind "provium-plan") rather than a
 * topology. Reads at most 64 KiB; never throws.
 */
export function isPlanFile(path: string): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(path, C.O_RDONLY | C.O_NONBLOCK);
    if (!fstatSync(fd).isFile()) return false;
    const buf = Buffer.alloc(65536);
    const head = buf.subarray(0, readSync(fd, buf, 0, buf.length, 0)).toString('utf8').trimStart();
    return head.startsWith('{') && /"kind"\s*:\s*"provium-plan"/.test(head);
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Reads a plan file for `apply PLANFILE`: opened with O_NOFOLLOW; the descriptor must be
 * a regular file owned by root (uid 0) and not writable by group/others, at most
 * PLAN_MAX_BYTES; then parsed and its shape and every source's SHA-256 checked.
 * Throws ProviumError naming what is wrong.
 */
export function readPlanFile(path: string): PlanFile {
  let fd: number;
  try {
    fd = openSync(path, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw new ProviumError(`${path}: a saved plan is not read through a symbolic link`, 'give the path of the plan file itself');
    throw new ProviumError(`${path}: cannot read the saved plan (${(e as Error).message})`);
  }
  let text: string;
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new ProviumError(`${path}: a saved plan must be a regular file`);
    if (st.uid !== 0) throw new ProviumError(`${path}: refusing a saved plan owned by uid ${st.uid}, not by root: a plan file runs as root without asking`, `plan again as root (provium plan FILE --out ${path}), or check who wrote it and chown root ${path}`);
    if ((st.mode & 0o022) !== 0) throw new ProviumError(`${path}: refusing a saved plan writable by group/others (mode 0${(st.mode & 0o777).toString(8)}): anyone could have changed it`, `check it, then chmod go-w ${path}; or plan again`);
    if (st.size > PLAN_MAX_BYTES) throw new ProviumError(`${path}: a saved plan is at most ${PLAN_MAX_BYTES} bytes (this one has ${st.size})`);
    const buf = Buffer.alloc(st.size);
    let off = 0;
    while (off < st.size) {
      const n = readSync(fd, buf, off, st.size - off, off);
      if (n === 0) break;
      off += n;
    }
    text = buf.subarray(0, off).toString('utf8');
  } finally {
    closeSync(fd);
  }
  let doc: Partial<PlanFile> & { format_version?: unknown; topology?: unknown };
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new ProviumError(`${path}: not a usable provium plan file (${(e as Error).message})`);
  }
  if (doc?.kind !== PLAN_KIND) throw new ProviumError(`${path}: not a provium plan file`);
  if (doc.format_version !== PLAN_FORMAT) {
    throw new ProviumError(`${path}: a plan file of format_version ${JSON.stringify(doc.format_version)}; this provium reads format_version "${PLAN_FORMAT}"`, 'plan again with this provium (provium plan FILE --out PLANFILE)');
  }
  const str = (v: unknown) => typeof v === 'string';
  const strings = (v: unknown) => Array.isArray(v) && v.every(str);
  const ok =
    str(doc.lab) && str(doc.created) && str(doc.fingerprint) && (doc.host_netns === null || str(doc.host_netns)) &&
    Array.isArray(doc.sources) && doc.sources.length > 0 && doc.sources.every((s) => s && str(s.name) && str(s.text) && str(s.sha256)) &&
    doc.variables !== null && typeof doc.variables === 'object' && !Array.isArray(doc.variables) && Object.values(doc.variables).every(str) &&
    doc.options !== null && typeof doc.options === 'object' && strings(doc.options.targets) && strings(doc.options.replace) &&
    Array.isArray(doc.invocations);
  if (!ok) throw new ProviumError(`${path}: not a usable provium plan file (fields missing or of the wrong type)`);
  for (const s of doc.sources!) {
    const actual = sha256(s.text);
    if (actual !== s.sha256) throw new ProviumError(`${path}: the stored text of ${s.name} does not match its sha256 (${s.sha256.slice(0, 12)}… stored, ${actual.slice(0, 12)}… computed): the plan file was changed after it was saved`, 'plan again');
  }
  return doc as PlanFile;
}

/**
 * Loads the topology of a saved plan from its stored sources and variables, through
 * the same loader as files given on the command line: every stored file in load order
 * (extends bases first, then FILE, then each -f overlay; a base already loaded is not
 * merged again, so the order reproduces the merge), each from its stored text (nothing
 * is read from the disk, nor from the environment); checks that it is lab `saved.lab`.
 * Throws InputError (the stored text is invalid) or ProviumError.
 */
export function loadPlanTopology(saved: PlanFile, path: string): Topology {
  const texts = new Map(saved.sources.map((s) => [s.name, s.text]));
  const stored = (name: string): string => {
    const text = texts.get(name);
    if (text === undefined) throw new ProviumError(`${path}: the saved plan does not hold ${name}, which its files name`, 'plan again');
    return text;
  };
  const t = loadSources(saved.sources.map((s) => ({ name: s.name, text: s.text })), { vars: saved.variables, env: {}, readFile: stored, readStdin: () => stored('-') });
  if (t.lab !== saved.lab) throw new ProviumError(`${path}: the stored topology is lab ${t.lab}, but the plan file says lab ${saved.lab}: the plan file was changed after it was saved`, 'plan again');
  return t;
}

/** One invocation in a line for messages: its label and argv (shortened). */
function describe(inv: Invocation | undefined): string {
  if (!inv) return 'nothing';
  const argv = (inv.argv ?? []).join(' ');
  return `"${inv.label}: ${argv.length > 120 ? `${argv.slice(0, 117)}...` : argv}"`;
}

/**
 * Compares a saved plan's invocations with the ones provium computes now (canonical
 * JSON of each: argv, stdin, files, VM and QMP actions). Returns undefined when they
 * are identical, else the first difference, for a message.
 */
export function firstDifference(stored: unknown[], computed: Invocation[]): string | undefined {
  const n = Math.max(stored.length, computed.length);
  for (let i = 0; i < n; i++) {
    const a = stored[i] === undefined ? undefined : canonicalJson(stored[i]);
    const b = computed[i] === undefined ? undefined : canonicalJson(JSON.parse(JSON.stringify(computed[i])));
    if (a === b) continue;
    const s = stored[i] as Invocation | undefined;
    if (s === undefined) return `invocation ${i + 1}: provium computes ${describe(computed[i])}, which the saved plan lacks (it has ${stored.length} invocations, provium computes ${computed.length})`;
    if (computed[i] === undefined) return `invocation ${i + 1}: the saved plan has ${describe(s)}, which provium does not compute (it has ${stored.length} invocations, provium computes ${computed.length})`;
    const fields = [...new Set([...Object.keys(s), ...Object.keys(computed[i])])].filter((k) => canonicalJson((s as unknown as Record<string, unknown>)[k] ?? null) !== canonicalJson(JSON.parse(JSON.stringify((computed[i] as unknown as Record<string, unknown>)[k] ?? null))));
    return `invocation ${i + 1} differs in ${fields.join(', ')}: the saved plan has ${describe(s)}, provium computes ${describe(computed[i])}`;
  }
  return undefined;
}
