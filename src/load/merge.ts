/**
 * Overlay merge rules (docker compose's `-f` idiom, later files win), on positioned
 * trees so every merged value keeps the file it came from:
 * - mappings merge key by key, deeply;
 * - a key set to null (`key: null`, `key: ~` or `key:` with nothing) is removed;
 * - a list or mapping tagged `!reset` replaces the base's value instead of merging;
 * - lists whose items have an identity merge item by item on it (a matching item is
 *   merged deeply, a new one appended): `attach` by node, `partitions` by their
 *   endpoints (a pair, from/to, or groups), `impairments` by from/to (or whole-bridge),
 *   `forwards` by host port and protocol; any other list replaces the base's;
 * - a scalar, or a value of another type, replaces the base's.
 * Pure; never throws.
 */
import type { PEntry, PMap, PNode, PSeq } from './tree.js';

/** Canonical text of a node set (a name, `others`, or a list of names): sorted names joined by ','. */
function nodeSet(n: PNode | undefined): string | undefined {
  if (!n) return undefined;
  if (n.kind === 'scalar') return typeof n.value === 'string' ? n.value : undefined;
  if (n.kind !== 'seq') return undefined;
  const names = n.items.map((i) => (i.kind === 'scalar' && typeof i.value === 'string' ? i.value : undefined));
  if (names.some((x) => x === undefined)) return undefined;
  return [...new Set(names as string[])].sort().join(',');
}

/** Canonical text of `groups: [...]`: each group's canonical text, sorted, joined by '|'. */
function groupsKey(n: PNode | undefined): string | undefined {
  if (n?.kind !== 'seq') return undefined;
  const gs = n.items.map(nodeSet);
  if (gs.some((g) => g === undefined)) return undefined;
  return (gs as string[]).sort().join('|');
}

const field = (n: PNode, key: string): PNode | undefined => (n.kind === 'map' ? n.entries.get(key)?.value : undefined);
const str = (n: PNode | undefined): string | undefined => (n?.kind === 'scalar' && typeof n.value === 'string' ? n.value : undefined);

/**
 * Identity of a partition or impairment entry: "sym:a,b" ([a, b]), "dir:a,b>c" (from/to,
 * a name being a one-name list), "groups:a|b,c", "whole" (an impairment without
 * from/to/groups). undefined when the entry is malformed (then it is appended).
 */
export function endpointKey(n: PNode, list: 'partitions' | 'impairments'): string | undefined {
  if (n.kind === 'seq' && list === 'partitions') {
    const s = nodeSet(n);
    return s === undefined ? undefined : `sym:${s}`;
  }
  if (n.kind !== 'map') return undefined;
  const from = field(n, 'from');
  const to = field(n, 'to');
  const groups = field(n, 'groups');
  if (groups && !from && !to) {
    const g = groupsKey(groups);
    return g === undefined ? undefined : `groups:${g}`;
  }
  if (from && to && !groups) {
    const f = nodeSet(from);
    const t = nodeSet(to);
    return f === undefined || t === undefined ? undefined : `dir:${f}>${t}`;
  }
  if (!from && !to && !groups && list === 'impairments') return 'whole';
  return undefined;
}

/** Identity of an item of the list at `path`, when that list merges by identity; undefined otherwise. */
type Identity = (item: PNode) => string | undefined;

/** The identity function of the list at path (bridges.<b>.attach|partitions|impairments|forwards), or undefined (the list replaces). */
function identityOf(path: string[]): Identity | undefined {
  if (path.length !== 3 || path[0] !== 'bridges') return undefined;
  switch (path[2]) {
    case 'attach':
      return (i) => str(i) ?? str(field(i, 'node'));
    case 'partitions':
      return (i) => endpointKey(i, 'partitions');
    case 'impairments':
      return (i) => endpointKey(i, 'impairments');
    case 'forwards':
      return (i) => {
        const port = field(i, 'host_port');
        const proto = str(field(i, 'proto')) ?? 'tcp';
        return port?.kind === 'scalar' && typeof port.value === 'number' ? `${proto}/${port.value}` : undefined;
      };
    default:
      return undefined;
  }
}

const isNull = (n: PNode): boolean => n.kind === 'scalar' && n.value === null;

/** An overlay value taken as it is: null-valued keys removed (at every depth). */
export function clean(n: PNode): PNode {
  if (n.kind === 'scalar') return n;
  if (n.kind === 'seq') return n.items.some((i) => i.kind !== 'scalar') ? { ...n, items: n.items.map(clean) } : n;
  const entries = new Map<string, PEntry>();
  for (const [k, e] of n.entries) if (!isNull(e.value)) entries.set(k, { keyPos: e.keyPos, value: clean(e.value) });
  return { ...n, entries };
}

/** A short-form attachment ("a") as the mapping it stands for ({ node: a }), to merge an overlay's fields into. */
function asAttachMap(n: PNode): PNode {
  if (n.kind !== 'scalar' || typeof n.value !== 'string') return n;
  return { kind: 'map', pos: n.pos, entries: new Map([['node', { keyPos: n.pos, value: n }]]) };
}

/**
 * Merges `over` onto `base` (either may come from any file). `path` is the data path
 * of the value (mapping keys and list indexes), used to find the merge rule of a list.
 */
export function merge(base: PNode | undefined, over: PNode, path: string[] = []): PNode {
  if (base === undefined || over.reset) return clean(over);
  if (base.kind === 'map' && over.kind === 'map') return mergeMaps(base, over, path);
  if (base.kind === 'seq' && over.kind === 'seq') {
    const id = identityOf(path);
    return id ? mergeKeyed(base, over, id, path) : clean(over);
  }
  return clean(over);
}

function mergeMaps(base: PMap, over: PMap, path: string[]): PMap {
  const entries = new Map(base.entries);
  for (const [k, e] of over.entries) {
    if (isNull(e.value)) {
      entries.delete(k);
      continue;
    }
    const b = entries.get(k);
    const value = merge(b?.value, e.value, [...path, k]);
    // The key's position follows its value: the base's when merged into, the overlay's when replaced.
    const deep = b !== undefined && !e.value.reset && b.value.kind === e.value.kind && (b.value.kind === 'map' || identityOf([...path, k]) !== undefined);
    entries.set(k, { keyPos: deep ? b.keyPos : e.keyPos, value });
  }
  return { ...base, entries };
}

function mergeKeyed(base: PSeq, over: PSeq, id: Identity, path: string[]): PSeq {
  const items = [...base.items];
  const index = new Map<string, number>();
  items.forEach((it, i) => {
    const k = id(it);
    if (k !== undefined && !index.has(k)) index.set(k, i);
  });
  const attach = path[2] === 'attach';
  for (const it of over.items) {
    const k = id(it);
    const at = k === undefined ? undefined : index.get(k);
    if (at === undefined) {
      items.push(clean(it));
      if (k !== undefined) index.set(k, items.length - 1);
      continue;
    }
    const b = items[at];
    if (attach) {
      // "a" over { node: a, ... } adds nothing; { node: a, link: down } over "a" or a mapping merges.
      items[at] = it.kind === 'scalar' ? b : merge(asAttachMap(b), it, [...path, String(at)]);
    } else if (b.kind === 'map' && it.kind === 'map') {
      items[at] = merge(b, it, [...path, String(at)]);
    }
    // Same endpoints and nothing else to merge (a partition): the base's entry stays.
  }
  return { ...base, items };
}
