/**
 * The YAML half of `provium exec`'s lean path (exec-run.ts): on a cache miss, the lab name
 * and the kind of every node, from the file's YAML (no schema, no other checks: anything
 * unusual returns undefined and the full CLI explains). Also undefined for what only the
 * full loader reads right: a file with `hosts:` (its nodes may run on another machine),
 * `extends:` (an overlay on a base), `steps:` (a scenario) or a `${VARIABLE}`.
 */
import { parse } from 'yaml';
import type { FilePeek } from './exec-run.js';

const LAB = /^[a-z][a-z0-9]{0,7}$/;
const NAME = /^[a-z][a-z0-9-]{0,30}$/;

export function peekFile(text: string): FilePeek | undefined {
  let doc: unknown;
  try {
    doc = parse(text, { uniqueKeys: true, merge: false, maxAliasCount: 0 });
  } catch {
    return undefined;
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) return undefined;
  const d = doc as Record<string, unknown>;
  const nodes = d.nodes;
  if ('hosts' in d || 'extends' in d || 'steps' in d || text.includes('${')) return undefined;
  if (typeof d.lab !== 'string' || !LAB.test(d.lab) || !nodes || typeof nodes !== 'object' || Array.isArray(nodes)) return undefined;
  const out: FilePeek = { lab: d.lab, nodes: {} };
  for (const [name, n] of Object.entries(nodes as Record<string, unknown>)) {
    if (!NAME.test(name) || !n || typeof n !== 'object' || typeof (n as { kind?: unknown }).kind !== 'string') return undefined;
    out.nodes[name] = (n as { kind: string }).kind;
  }
  return out;
}
