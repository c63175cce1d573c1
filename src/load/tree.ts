/**
 * Positioned data: a YAML document as a tree of maps, lists and scalars in which every
 * value and every mapping key carries the file, line and column it was written at.
 * Overlays merge such trees (merge.ts), so after merging each value still knows which
 * file holds it; `toData` gives the plain data the schema and the checks read, and
 * `TreeLocator` maps a data path back to a position, so every diagnostic names the
 * file of the offending text.
 */
import { isAlias, isMap, isPair, isScalar, isSeq, Scalar, YAMLMap, YAMLSeq } from 'yaml';
import type { Document, Node as YamlNode } from 'yaml';
import type { SourcePos } from '../model/topology.js';
import type { DataPath, Locator } from './source.js';

interface Base {
  /** Where the value starts. */
  pos: SourcePos;
  /** Tagged `!reset`: replaces the value it is merged onto instead of merging into it. */
  reset?: boolean;
}

/** A mapping: keys in file order. */
export interface PMap extends Base {
  kind: 'map';
  entries: Map<string, PEntry>;
}

/** One key of a mapping: where the key is written, and its value. */
export interface PEntry {
  keyPos: SourcePos;
  value: PNode;
}

/** A list. */
export interface PSeq extends Base {
  kind: 'seq';
  items: PNode[];
}

/** A scalar: string, number, boolean or null. */
export interface PScalar extends Base {
  kind: 'scalar';
  value: string | number | boolean | null;
  /** No text at all (`key:` followed by nothing): diagnostics point at the key instead. */
  empty?: boolean;
  /** A string written without quotes: after variable substitution its text is read again as a YAML scalar (a number, true, null). */
  plain?: boolean;
  /** Source text of a string scalar that contains `$` (to locate a variable reference inside it), or of a plain non-string scalar. */
  src?: string;
}

export type PNode = PMap | PSeq | PScalar;

/** The YAML tag that makes an overlay's list or mapping replace the base's value. */
export const RESET_TAG = '!reset';

/** yaml custom tags for `!reset` on a mapping, a list and a scalar (the tag is read from the node). */
export const RESET_TAGS = [
  { tag: RESET_TAG, collection: 'map' as const, nodeClass: YAMLMap, identify: () => false, resolve: (v: unknown) => v },
  { tag: RESET_TAG, collection: 'seq' as const, nodeClass: YAMLSeq, identify: () => false, resolve: (v: unknown) => v },
  { tag: RESET_TAG, identify: () => false, resolve: (s: string) => s },
];

/** Problems found while building a tree (a `!reset` on a scalar). */
export interface TreeProblem {
  pos: SourcePos;
  summary: string;
  detail: string;
}

/**
 * Builds the positioned tree of a parsed, error-free document. Aliases are followed to
 * their anchored node (shared, not copied; the parser already bounded alias expansion).
 * Keys are written as toJS() writes them (scalars stringified).
 */
export function buildTree(doc: Document, locator: Locator, text: string, problems: TreeProblem[] = [], unmask: (s: string) => string = (s) => s): PNode {
  const memo = new Map<YamlNode, PNode>();
  const at = (n: YamlNode | null | undefined): SourcePos => locator.offsetPos(n?.range?.[0] ?? 0);
  const build = (node0: YamlNode | null | undefined, keyPos?: SourcePos): PNode => {
    let node = node0 ?? undefined;
    if (isAlias(node)) node = (node.resolve(doc) as YamlNode | undefined) ?? undefined;
    if (node && memo.has(node)) return memo.get(node)!;
    let out: PNode;
    if (isMap(node)) {
      const entries = new Map<string, PEntry>();
      for (const pair of node.items) {
        if (!isPair(pair)) continue;
        const k = pair.key as YamlNode | null;
        const key = unmask(isScalar(k) ? String(k.value) : typeof k === 'string' ? k : JSON.stringify((k as YamlNode | null)?.toJSON?.() ?? null));
        const kPos = at(k);
        entries.set(key, { keyPos: kPos, value: build(pair.value as YamlNode | null, kPos) });
      }
      out = { kind: 'map', pos: at(node), entries };
    } else if (isSeq(node)) {
      out = { kind: 'seq', pos: at(node), items: [] };
      memo.set(node, out);
      for (const item of node.items) out.items.push(build(item as YamlNode | null));
    } else if (isScalar(node)) {
      const s = node as Scalar;
      const range = s.range ?? [0, 0, 0];
      const empty = range[0] === range[1];
      let value = s.value as PScalar['value'];
      if (typeof value === 'bigint') value = Number(value);
      if (value !== null && typeof value === 'object') value = String(value);
      if (typeof value === 'string') value = unmask(value);
      out = { kind: 'scalar', pos: empty && keyPos ? keyPos : at(s), value: value ?? null };
      if (empty) out.empty = true;
      if (typeof value === 'string') {
        if (s.type === 'PLAIN') out.plain = true;
        if (value.includes('$')) out.src = unmask(text.slice(range[0], range[1]));
      } else if (!empty && s.type === 'PLAIN') {
        // A number, boolean or null as written (`3`, `0.50`, `yes`): argv items keep their text.
        out.src = text.slice(range[0], range[1]);
      }
      if (s.tag === RESET_TAG) {
        const t = typeof value === 'string' ? value.trim() : '';
        if (value === null || t === '' || t === '~' || /^null$/i.test(t)) {
          out.value = null;
        } else {
          problems.push({ pos: at(s), summary: 'misplaced !reset', detail: `${RESET_TAG} applies to a list or a mapping (it replaces the base's value instead of merging); to remove a key, set it to null` });
        }
      }
    } else {
      // No value at all (e.g. an empty document).
      out = { kind: 'scalar', pos: keyPos ?? at(node), value: null, empty: true };
    }
    if ((isMap(node) || isSeq(node)) && (node as YAMLMap | YAMLSeq).tag === RESET_TAG) out.reset = true;
    if (node) memo.set(node, out);
    return out;
  };
  return build(doc.contents as YamlNode | null);
}

/** Plain data (what doc.toJS() gives): maps as objects, lists as arrays. */
export function toData(n: PNode): unknown {
  if (n.kind === 'scalar') return n.value;
  if (n.kind === 'seq') return n.items.map(toData);
  const o: Record<string, unknown> = {};
  for (const [k, e] of n.entries) o[k] = toData(e.value);
  return o;
}

/** Maps data paths to source positions (the contract of source.ts's Locator.pos). */
export interface PathLocator {
  pos(path: DataPath, opts?: { key?: boolean }): SourcePos;
  /** Whether a value is written at path (optional: locators that cannot tell leave it out). */
  has?(path: DataPath): boolean;
}

/**
 * Positions in a (possibly merged) tree: each value's own file, line and column. When
 * a path cannot be followed to its end, the deepest value reached is used, so every
 * diagnostic gets a position. Lookups are map accesses (no scan per segment).
 */
export class TreeLocator implements PathLocator {
  constructor(private readonly root: PNode) {}

  /**
   * Position of the value at `path` (its first character); for an empty value its
   * key's. With `key: true`, the position of the mapping key naming the last segment.
   */
  pos(path: DataPath, opts: { key?: boolean } = {}): SourcePos {
    let node: PNode = this.root;
    let keyPos: SourcePos | undefined;
    for (const seg of path) {
      if (node.kind === 'map') {
        const e = node.entries.get(String(seg));
        if (!e) break;
        keyPos = e.keyPos;
        node = e.value;
      } else if (node.kind === 'seq') {
        const item = typeof seg === 'number' ? node.items[seg] : undefined;
        if (!item) break;
        keyPos = undefined;
        node = item;
      } else break;
    }
    if (opts.key && keyPos) return keyPos;
    return node.pos;
  }

  /** Whether a value is written at path. */
  has(path: DataPath): boolean {
    return this.node(path) !== undefined;
  }

  /** The node at path, or undefined. */
  node(path: DataPath): PNode | undefined {
    let node: PNode | undefined = this.root;
    for (const seg of path) {
      if (node?.kind === 'map') node = node.entries.get(String(seg))?.value;
      else if (node?.kind === 'seq') node = typeof seg === 'number' ? node.items[seg] : undefined;
      else return undefined;
    }
    return node;
  }
}

/** A map node's entry value by key, or undefined. */
export function entry(n: PNode | undefined, key: string): PNode | undefined {
  return n?.kind === 'map' ? n.entries.get(key)?.value : undefined;
}

/** A copy of a map without some keys (for meta keys such as extends and steps). */
export function withoutKeys(n: PNode, keys: string[]): PNode {
  if (n.kind !== 'map' || !keys.some((k) => n.entries.has(k))) return n;
  const entries = new Map([...n.entries].filter(([k]) => !keys.includes(k)));
  return { ...n, entries };
}
