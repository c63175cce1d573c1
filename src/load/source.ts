/**
 * YAML parsing and source positions: text -> yaml Document + plain data, and
 * data paths (["bridges", "lan", "attach", 2]) -> SourcePos in the file.
 */
import { LineCounter, isAlias, isMap, isPair, isScalar, isSeq, parseDocument, visit } from 'yaml';
import type { Document, Node as YamlNode, Pair, YAMLError } from 'yaml';
import type { Diagnostic } from '../model/diagnostics.js';
import type { SourcePos } from '../model/topology.js';
import { RESET_TAGS } from './tree.js';

/** A path into the parsed data: mapping keys (strings) and sequence indexes (numbers). */
export type DataPath = readonly (string | number)[];

/** Result of parsing: the document, its locator, the plain data and syntax diagnostics. */
export interface ParsedSource {
  doc: Document;
  locator: Locator;
  /** The plain data (doc.toJS()); meaningful only when usable. */
  data: unknown;
  /** False when the YAML had errors: its data cannot be trusted and is not checked further. */
  usable: boolean;
  /** YAML syntax errors (including duplicate keys) and yaml warnings (e.g. unresolved tags). */
  diagnostics: Diagnostic[];
}

/** yaml error codes -> short summaries for humans. */
const YAML_SUMMARIES: Record<string, string> = {
  DUPLICATE_KEY: 'duplicate key',
  TAB_AS_INDENT: 'invalid YAML: tab used for indentation',
  BAD_INDENT: 'invalid YAML: bad indentation',
  MISSING_CHAR: 'invalid YAML: unclosed quote or bracket',
  MULTIPLE_DOCS: 'invalid YAML: more than one document',
};

/** yaml error codes whose message speaks to programmers -> a message for users. */
const YAML_DETAILS: Record<string, string> = {
  MULTIPLE_DOCS: "a topology file holds one YAML document; remove the '---' and what follows, or split the file",
};

/**
 * Parses YAML text. `file` is the path as the user gave it (used in positions).
 * Never throws: syntax errors, duplicate keys and alias problems become
 * diagnostics located at line:col (1-based); `usable` is false when any error
 * was found, since the data of a broken document cannot be trusted.
 */
export function parseSource(file: string, text: string): ParsedSource {
  const lineCounter = new LineCounter();
  // Duplicate keys are found below in linear time: yaml's own check (uniqueKeys) compares
  // each key with every earlier one of its mapping, quadratic in the mapping's size.
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: false, customTags: RESET_TAGS });
  const locator = new Locator(file, doc, lineCounter);
  const openers = new Openers(doc, text);
  const duplicates = duplicateKeys(doc, locator);
  const diagnostics: Diagnostic[] = [
    ...doc.errors.map((e) => syntaxError(e, text, locator, openers)),
    ...duplicates,
    ...doc.warnings.map((w) => yamlDiagnostic('warning', w.code, w.message, locator.offsetPos(w.pos[0]))),
  ];
  if (doc.errors.length > 0 || duplicates.length > 0) return { doc, locator, data: undefined, usable: false, diagnostics };
  try {
    return { doc, locator, data: doc.toJS({ maxAliasCount: 100 }), usable: true, diagnostics };
  } catch (e) {
    const detail = e instanceof Error ? e.message : String(e);
    diagnostics.push({ severity: 'error', summary: 'invalid YAML', detail, pos: locator.offsetPos(badAliasOffset(doc) ?? 0) });
    return { doc, locator, data: undefined, usable: false, diagnostics };
  }
}

/**
 * A key used twice in one mapping (compared as toJS() names keys: `1` and "1" are the
 * same key), located at the second one; one pass over the document with a Map per
 * mapping.
 */
function duplicateKeys(doc: Document, locator: Locator): Diagnostic[] {
  const out: Diagnostic[] = [];
  // A plain walk over maps and sequences (yaml's visit() costs several times more on large files).
  const stack: unknown[] = [doc.contents];
  while (stack.length > 0) {
    const node = stack.pop();
    if (isMap(node)) {
      const seen = new Set<string>();
      for (const pair of node.items) {
        const k = keyString(pair);
        if (k !== undefined) {
          if (seen.has(k)) {
            out.push({ severity: 'error', summary: 'duplicate key', detail: `key ${JSON.stringify(k)} is already defined in this mapping`, pos: locator.offsetPos((pair.key as YamlNode | null)?.range?.[0] ?? 0) });
          } else seen.add(k);
        }
        stack.push(pair.key, pair.value);
      }
    } else if (isSeq(node)) {
      for (const item of node.items) stack.push(item);
    }
  }
  return out.sort((a, b) => a.pos!.line - b.pos!.line || a.pos!.col - b.pos!.col);
}

/**
 * A YAML syntax error as a diagnostic. yaml reports an unclosed quote or flow
 * collection where it gave up (often the end of the file); such errors are
 * located at the opening quote or bracket instead, which is where to look.
 */
function syntaxError(e: YAMLError, text: string, locator: Locator, openers: Openers): Diagnostic {
  const opener = unclosedOpener(e, openers);
  if (opener === undefined) return yamlDiagnostic('error', e.code, e.message, locator.offsetPos(e.pos[0]));
  const pos = locator.offsetPos(opener);
  const ch = text[opener];
  const detail = `the ${ch} at line ${pos.line}, column ${pos.col} is never closed (${e.message})`;
  return { severity: 'error', summary: `invalid YAML: unclosed ${ch}`, detail, pos };
}

/** Offset of the innermost unclosed quote/bracket that error e complains about, if any. */
function unclosedOpener(e: YAMLError, openers: Openers): number | undefined {
  const closer =
    e.code === 'MISSING_CHAR' ? (e.message.includes('"quote') ? '"' : e.message.includes("'quote") ? "'" : undefined)
    : /end with an? ([\]}])$/.exec(e.message)?.[1];
  if (!closer) return undefined;
  const opener = closer === ']' ? '[' : closer === '}' ? '{' : closer;
  return openers.before(opener, e.pos[0]);
}

/**
 * The document's unclosed quoted scalars and flow collections, indexed once (lazily)
 * so that each syntax error finds its opener by binary search: for an opener character
 * and an error offset, the largest start among unclosed nodes ending at or before it.
 */
class Openers {
  private index?: Map<string, { ends: number[]; maxStart: number[] }>;

  constructor(private readonly doc: Document, private readonly text: string) {}

  before(opener: string, offset: number): number | undefined {
    const idx = (this.index ??= this.build()).get(opener);
    if (!idx) return undefined;
    let lo = 0;
    let hi = idx.ends.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (idx.ends[mid] <= offset) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found < 0 ? undefined : idx.maxStart[found];
  }

  private build(): Map<string, { ends: number[]; maxStart: number[] }> {
    const nodes = new Map<string, { start: number; end: number }[]>();
    const text = this.text;
    visit(this.doc, {
      Node(_key, node) {
        const [start, end] = node.range ?? [0, 0];
        const opener = text[start];
        if (opener !== '"' && opener !== "'" && opener !== '[' && opener !== '{') return;
        const src = text.slice(start, end).trimEnd();
        const closed = opener === '"' || opener === "'" ? src.length > 1 && src.endsWith(opener) : flowBalanced(src);
        if (closed) return;
        const list = nodes.get(opener) ?? [];
        list.push({ start, end });
        nodes.set(opener, list);
      },
    });
    const out = new Map<string, { ends: number[]; maxStart: number[] }>();
    for (const [opener, list] of nodes) {
      list.sort((a, b) => a.end - b.end);
      const maxStart: number[] = [];
      list.forEach((n, i) => maxStart.push(Math.max(n.start, i > 0 ? maxStart[i - 1] : -1)));
      out.set(opener, { ends: list.map((n) => n.end), maxStart });
    }
    return out;
  }
}

/**
 * True when the flow collection text src ("[a, {b: c}]") closes every bracket it
 * opens. Skips quoted strings and comments; plain scalars cannot hold brackets
 * in flow context.
 */
function flowBalanced(src: string): boolean {
  let depth = 0;
  for (let i = 0; i < src.length; i++) {
    const ch = src[i];
    if (ch === '"' || ch === "'") {
      for (i++; i < src.length && src[i] !== ch; i++) if (ch === '"' && src[i] === '\\') i++;
    } else if (ch === '#' && /\s/.test(src[i - 1] ?? ' ')) {
      while (i < src.length && src[i] !== '\n') i++;
    } else if (ch === '[' || ch === '{') {
      depth++;
    } else if (ch === ']' || ch === '}') {
      depth--;
    }
  }
  return depth <= 0;
}

/** Offset of the first alias (*name) that cannot be resolved, else of the first alias; undefined without aliases. */
function badAliasOffset(doc: Document): number | undefined {
  let first: number | undefined;
  let bad: number | undefined;
  visit(doc, {
    Alias(_key, alias) {
      const at = alias.range?.[0];
      first ??= at;
      if (bad === undefined && alias.resolve(doc) === undefined) bad = at;
    },
  });
  return bad ?? first;
}

/** A yaml error or warning with a human summary (by yaml's error code). */
function yamlDiagnostic(severity: 'error' | 'warning', code: string, message: string, pos: SourcePos): Diagnostic {
  const summary = YAML_SUMMARIES[code] ?? (severity === 'error' ? 'invalid YAML' : 'YAML warning');
  return { severity, summary, detail: YAML_DETAILS[code] ?? message, pos };
}

/**
 * Maps data paths to positions in the file. Paths follow the plain data
 * (doc.toJS()): string keys for mappings, numeric indexes for sequences.
 * When a path cannot be followed to the end, the deepest node found is used,
 * so every diagnostic gets some position.
 */
export class Locator {
  /** Per mapping, its pairs by key (first one wins, as a linear search would find), built on first use. */
  private readonly pairs = new WeakMap<object, Map<string, Pair<unknown, unknown>>>();

  constructor(
    readonly file: string,
    private readonly doc: Document,
    private readonly lineCounter: LineCounter,
  ) {}

  /** 1-based line/col of a character offset in the text. */
  offsetPos(offset: number): SourcePos {
    const { line, col } = this.lineCounter.linePos(offset);
    return { file: this.file, line, col };
  }

  /**
   * Position of the value at `path` (its first character); for an empty value
   * (`lab:` with nothing after it) the position of its key. With `key: true`,
   * the position of the mapping key naming the last path segment.
   */
  pos(path: DataPath, opts: { key?: boolean } = {}): SourcePos {
    const { node, keyNode } = this.walk(path);
    const target = opts.key && keyNode ? keyNode : isEmpty(node) && keyNode ? keyNode : node;
    return this.offsetPos(target?.range?.[0] ?? 0);
  }

  /** Follows path through the document; returns the deepest value node reached and its key node. */
  private walk(path: DataPath): { node?: YamlNode; keyNode?: YamlNode } {
    let node = this.resolve(this.doc.contents ?? undefined);
    let keyNode: YamlNode | undefined;
    for (const seg of path) {
      const next = this.child(node, seg);
      if (!next) break;
      node = next.value;
      keyNode = next.key;
      if (!node) break;
    }
    return { node, keyNode };
  }

  /** One step: the pair for key `seg` in a mapping, or item `seg` in a sequence. */
  private child(node: YamlNode | undefined, seg: string | number): { key?: YamlNode; value?: YamlNode } | undefined {
    if (isMap(node)) {
      let byKey = this.pairs.get(node);
      if (!byKey) {
        byKey = new Map();
        for (const p of node.items) {
          const k = keyString(p);
          if (k !== undefined && !byKey.has(k)) byKey.set(k, p);
        }
        this.pairs.set(node, byKey);
      }
      const pair = byKey.get(String(seg));
      if (!pair) return undefined;
      const key = isScalar(pair.key) || isMap(pair.key) || isSeq(pair.key) ? (pair.key as YamlNode) : undefined;
      return { key, value: this.resolve(pair.value as YamlNode | null) ?? key };
    }
    if (isSeq(node)) {
      const item = node.items[Number(seg)];
      return item === undefined ? undefined : { value: this.resolve(item as YamlNode | null) };
    }
    return undefined;
  }

  /** Follows an alias (*x) to its anchored node; other nodes are returned as they are. */
  private resolve(node: YamlNode | null | undefined): YamlNode | undefined {
    if (isAlias(node)) return (node.resolve(this.doc) as YamlNode | undefined) ?? node;
    return node ?? undefined;
  }
}

/** The key of a pair as toJS() would write it (strings as they are, other scalars stringified). */
function keyString(pair: Pair<unknown, unknown>): string | undefined {
  if (!isPair(pair)) return undefined;
  const key = pair.key;
  if (isScalar(key)) return String(key.value);
  return typeof key === 'string' ? key : undefined;
}

/** True for a null scalar with no text (`key:` followed by nothing). */
function isEmpty(node: YamlNode | undefined): boolean {
  return isScalar(node) && node.value === null && !!node.range && node.range[0] === node.range[1];
}
