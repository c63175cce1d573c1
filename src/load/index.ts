/**
 * Loading a topology file: YAML text -> validated, normalized Topology.
 *
 * Pipeline: YAML parse (syntax errors and duplicate keys stop here) -> JSON
 * Schema validation (schemas/topology.schema.json) -> semantic checks
 * (references, addresses, derived device names) -> normalization. Every stage
 * reports all of its problems, each located as file:line:col, where `file` is
 * the path as the caller gave it.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { InputError, type Diagnostic } from '../model/diagnostics.js';
import type { Topology } from '../model/topology.js';
import { assignAddresses } from './addresses.js';
import { checkReferences } from './checks.js';
import { checkDevices, numberNics } from './devices.js';
import { checkHosts } from './hosts.js';
import { checkLimits } from './limits.js';
import { readInput } from './input.js';
import { normalize } from './normalize.js';
import { Reporter } from './report.js';
import { validateSchema } from './schema.js';
import { parseSource } from './source.js';
import { checkRouting, normalizeRouting, readRouting } from './routers.js';

export { schemaPath } from './schema.js';

/** Outcome of checking a file: the topology when there is no error, and every diagnostic (errors and warnings). */
export interface CheckResult {
  topology?: Topology;
  diagnostics: Diagnostic[];
}

/**
 * Checks a topology file without throwing (for `provium validate`).
 * `file`: path as the user gave it (used in positions; read unless `text` is given).
 * Returns every diagnostic sorted by position; `topology` is set only when no
 * diagnostic is an error (warnings allowed). An unreadable file gives one error
 * without position.
 */
export function checkTopology(file: string, text?: string): CheckResult {
  let source: string;
  try {
    source = text ?? readFileSync(file, 'utf8');
  } catch (e) {
    const detail = `${file}: ${e instanceof Error ? e.message : String(e)}`;
    return { diagnostics: [{ severity: 'error', summary: 'cannot read topology file', detail }] };
  }
  const parsed = parseSource(file, source);
  if (!parsed.usable) return { diagnostics: sortDiagnostics(parsed.diagnostics) };

  const r = new Reporter(parsed.locator);
  const schemaDiagnostics = validateSchema(parsed.data, parsed.locator);
  const input = readInput(parsed.data);
  checkReferences(input, r);
  checkHosts(input, r);
  checkLimits(input, r);
  const routing = readRouting(parsed.data);
  checkRouting(input, routing, r);
  const addressing = assignAddresses(input, r);
  const nics = numberNics(input);
  checkDevices(input, nics, r);

  const diagnostics = sortDiagnostics([...parsed.diagnostics, ...schemaDiagnostics, ...r.diagnostics]);
  if (diagnostics.some((d) => d.severity === 'error')) return { diagnostics };
  const topology = normalize(resolve(file), { input, addressing, nics, locator: parsed.locator });
  normalizeRouting(topology, input, routing);
  return { topology, diagnostics };
}

/**
 * Loads a topology file: the normalized Topology (Topology.file absolute).
 * Throws InputError carrying every diagnostic (errors and warnings) when any
 * error is found. Warnings of a valid file are not returned: use
 * checkTopology to show them.
 */
export function loadTopology(file: string, text?: string): Topology {
  const { topology, diagnostics } = checkTopology(file, text);
  if (!topology) throw new InputError(diagnostics);
  return topology;
}

/** Sorts by line, then column (position-less first), dropping exact duplicates; stable otherwise. */
function sortDiagnostics(diagnostics: Diagnostic[]): Diagnostic[] {
  const seen = new Set<string>();
  const unique = diagnostics.filter((d) => {
    const key = JSON.stringify([d.severity, d.summary, d.detail, d.pos]);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  const rank = (d: Diagnostic): number => (d.pos ? d.pos.line * 1e6 + d.pos.col : -1);
  return unique
    .map((d, i) => ({ d, i }))
    .sort((x, y) => rank(x.d) - rank(y.d) || x.i - y.i)
    .map(({ d }) => d);
}
