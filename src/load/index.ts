/**
 * Loading topology files: YAML text -> validated, normalized Topology.
 *
 * Pipeline: read and parse every file (a base and its `extends:` chain, `-f`
 * overlays, standard input; syntax errors and duplicate keys stop here), substitute
 * variables, merge into one positioned tree (sources.ts, merge.ts) -> JSON Schema
 * validation (schemas/topology.schema.json) -> semantic checks (references, groups,
 * addresses, derived device names) -> normalization. Every stage reports all of its
 * problems, each located as file:line:col in the file that holds the offending text,
 * `file` being the path as the caller gave it.
 */
import { dirname, isAbsolute, resolve } from 'node:path';
import { InputError, type Diagnostic } from '../model/diagnostics.js';
import type { Topology } from '../model/topology.js';
import { assignAddresses } from './addresses.js';
import { checkReferences } from './checks.js';
import { checkDevices, numberNics } from './devices.js';
import { checkGroups } from './groups.js';
import { checkHosts } from './hosts.js';
import { checkLimits } from './limits.js';
import { readInput } from './input.js';
import { normalize } from './normalize.js';
import { Reporter } from './report.js';
import { validateSchema } from './schema.js';
import { mergeSources, type LoadOptions, type LoadedFile, type SourceInput } from './sources.js';
import { TreeLocator, toData, withoutKeys, type PEntry, type PNode } from './tree.js';
import { checkRouting, normalizeRouting, readRouting } from './routers.js';

export { schemaPath } from './schema.js';
export type { LoadOptions, LoadedFile, SourceInput } from './sources.js';

/** Outcome of checking files: the topology when there is no error, and every diagnostic (errors and warnings). */
export interface CheckResult {
  topology?: Topology;
  diagnostics: Diagnostic[];
  /** Every file read, in merge order (bases before what extends them, then each overlay). */
  files: LoadedFile[];
  /** Variables substituted, with their values. */
  vars: Record<string, string>;
  /** The merged tree (with a scenario's `steps`, without `extends`), when every file could be read and parsed. */
  merged?: PNode;
  /** Absolute path of the base-most file (Topology.file). */
  rootPath?: string;
}

/**
 * Checks a set of sources without throwing (for `provium validate` and everything
 * that loads): `sources[0]` is the base (with its extends chain), the others
 * overlays merged in order. Returns every diagnostic sorted by file (merge order),
 * line, column; `topology` is set only when no diagnostic is an error (warnings
 * allowed). A scenario's top-level `steps` are not part of the topology and are not
 * checked here (see scenario/compile.ts).
 */
export function checkSources(sources: SourceInput[], opts: LoadOptions = {}): CheckResult {
  const m = mergeSources(sources, opts);
  const base = { files: m.files, vars: m.vars, rootPath: m.rootPath };
  if (!m.tree) return { ...base, diagnostics: sortDiagnostics(m.diagnostics, m.files) };
  const tree = resolveFilePaths(m.tree, m.files, m.rootPath, opts.cwd ?? process.cwd());
  const r = checkTree(tree, rootFile(m.rootPath, opts.cwd));
  return { ...base, merged: tree, topology: r.topology, diagnostics: sortDiagnostics([...m.diagnostics, ...r.diagnostics], m.files) };
}

/**
 * Checks a merged tree (any meta keys are ignored): schema, references, groups,
 * addresses, devices, then normalization. `absFile` becomes Topology.file.
 * Diagnostics unsorted.
 */
export function checkTree(tree: PNode, absFile: string): { topology?: Topology; diagnostics: Diagnostic[] } {
  const t = withoutKeys(tree, ['steps', 'extends']);
  const data = toData(t);
  const locator = new TreeLocator(t);
  const r = new Reporter(locator);
  const schemaDiagnostics = validateSchema(data, locator);
  const input = readInput(data);
  checkReferences(input, r);
  checkGroups(input, r);
  checkHosts(input, r);
  checkLimits(input, r);
  const routing = readRouting(data);
  checkRouting(input, routing, r);
  const addressing = assignAddresses(input, r);
  const nics = numberNics(input);
  checkDevices(input, nics, r);
  const diagnostics = [...schemaDiagnostics, ...r.diagnostics];
  if (diagnostics.some((d) => d.severity === 'error')) return { diagnostics };
  const topology = normalize(absFile, { input, addressing, nics, locator });
  normalizeRouting(topology, input, routing);
  return { topology, diagnostics };
}

/**
 * Checks one topology file (`file` as the user gave it; read unless `text` is given).
 * The single-file form of checkSources; `-` reads standard input.
 */
export function checkTopology(file: string, text?: string, opts: LoadOptions = {}): CheckResult {
  return checkSources([{ name: file, text }], opts);
}

/**
 * Loads sources: the normalized Topology (Topology.file: absolute path of the base
 * file). Throws InputError carrying every diagnostic (errors and warnings) when any
 * error is found. Warnings of valid files are not returned: use checkSources to show them.
 */
export function loadSources(sources: SourceInput[], opts: LoadOptions = {}): Topology {
  const { topology, diagnostics } = checkSources(sources, opts);
  if (!topology) throw new InputError(diagnostics);
  return topology;
}

/** loadSources for one file. */
export function loadTopology(file: string, text?: string, opts: LoadOptions = {}): Topology {
  return loadSources([{ name: file, text }], opts);
}

/** Topology.file for a root path (standard input: a name in the working folder, so relative paths resolve there). */
function rootFile(rootPath: string, cwd = process.cwd()): string {
  return rootPath === '-' || rootPath === '' ? resolve(cwd, '<stdin>') : rootPath;
}

/**
 * VM files (nodes.*.kernel, initrd, disk) are relative to the file that writes them:
 * a relative path from a file in another folder than the base file is made absolute.
 */
function resolveFilePaths(tree: PNode, files: LoadedFile[], rootPath: string, cwd: string): PNode {
  const nodes = tree.kind === 'map' ? tree.entries.get('nodes')?.value : undefined;
  if (nodes?.kind !== 'map') return tree;
  const dirOf = new Map(files.map((f) => [f.name, f.path === '-' ? cwd : dirname(f.path)]));
  const rootDir = rootPath === '-' || rootPath === '' ? cwd : dirname(rootPath);
  let changed = false;
  const nodeEntries = new Map<string, PEntry>();
  for (const [name, e] of nodes.entries) {
    let v = e.value;
    if (v.kind === 'map') {
      for (const k of ['kernel', 'initrd', 'disk']) {
        const f = v.entries.get(k);
        const s = f?.value;
        if (!f || s?.kind !== 'scalar' || typeof s.value !== 'string' || isAbsolute(s.value)) continue;
        const dir = dirOf.get(s.pos.file) ?? rootDir;
        if (dir === rootDir) continue;
        const entries: Map<string, PEntry> = new Map(v.entries);
        entries.set(k, { keyPos: f.keyPos, value: { ...s, value: resolve(dir, s.value) } });
        v = { ...v, entries };
        changed = true;
      }
    }
    nodeEntries.set(name, v === e.value ? e : { keyPos: e.keyPos, value: v });
  }
  if (!changed || tree.kind !== 'map') return tree;
  const entries = new Map(tree.entries);
  entries.set('nodes', { keyPos: tree.entries.get('nodes')!.keyPos, value: { ...nodes, entries: nodeEntries } });
  return { ...tree, entries };
}

/** Sorts by file (merge order), then line, then column (position-less first), dropping exact duplicates; stable otherwise. */
export function sortDiagnostics(diagnostics: Diagnostic[], files: { name: string }[] = []): Diagnostic[] {
  const seen = new Set<string>();
  const unique = diagnostics.filter((d) => {
    const key = JSON.stringify([d.severity, d.summary, d.detail, d.pos]);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  const order = new Map<string, number>();
  files.forEach((f, i) => {
    if (!order.has(f.name)) order.set(f.name, i);
  });
  const rank = (d: Diagnostic): number => (d.pos ? (order.get(d.pos.file) ?? files.length) * 1e12 + d.pos.line * 1e6 + d.pos.col : -1);
  return unique
    .map((d, i) => ({ d, i }))
    .sort((x, y) => rank(x.d) - rank(y.d) || x.i - y.i)
    .map(({ d }) => d);
}
