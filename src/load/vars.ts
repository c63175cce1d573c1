/**
 * Variables in any input file, docker compose's syntax: `${NAME}` is replaced by the
 * value of NAME (from `--var NAME=VALUE`, else the environment), `${NAME:-default}` by
 * the default when NAME is unset or empty, and `$$` is a literal `$` (so `$${` writes
 * a literal `${`). A `$` followed by anything else stays as it is. Names are
 * [A-Za-z_][A-Za-z0-9_]*; a default runs to the first `}` (no nesting).
 *
 * Substitution happens in string values and mapping keys after YAML parsing, so it can
 * never change the file's structure. A value written without quotes is read again as
 * a YAML scalar after substitution (`drop_pct: ${DROP}` with DROP=5 is the number 5);
 * a quoted one stays a string. Each reference to an undefined variable without a
 * default is a located error.
 */
import type { SourcePos } from '../model/topology.js';
import type { PEntry, PNode, PScalar } from './tree.js';

/** Where variable values come from, and which were used (name -> value). */
export interface Scope {
  /** Value of a variable, or undefined when it is not set. */
  lookup(name: string): string | undefined;
  /** Variables read so far with their values (for saved plans: what the files were read with). */
  used: Map<string, string>;
}

/** A problem in a variable reference, located at the reference. */
export interface VarProblem {
  pos: SourcePos;
  summary: string;
  detail: string;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The scope of `--var` values over an environment: `vars` win over `env`. Throws nothing;
 * `vars` names must be valid (see parseVarFlags).
 */
export function makeScope(vars: Record<string, string> = {}, env: Record<string, string | undefined> = {}): Scope {
  return {
    lookup: (name) => (Object.prototype.hasOwnProperty.call(vars, name) ? vars[name] : env[name]),
    used: new Map(),
  };
}

/** A scope with extra bindings (e.g. `i`, the round of a repeat) over another one; records the outer variables it reads into the same `used`. */
export function bind(scope: Scope, extra: Record<string, string>): Scope {
  const own = (name: string) => Object.prototype.hasOwnProperty.call(extra, name);
  const used = new (class extends Map<string, string> {
    override set(k: string, v: string): this {
      if (!own(k)) scope.used.set(k, v);
      return this;
    }
  })();
  return { lookup: (name) => (own(name) ? extra[name] : scope.lookup(name)), used };
}

/**
 * Parses `--var NAME=VALUE` flags into a map (later wins). Returns the problems (bad
 * shape or name) as messages.
 */
export function parseVarFlags(flags: string[]): { vars: Record<string, string>; errors: string[] } {
  const vars: Record<string, string> = {};
  const errors: string[] = [];
  for (const f of flags) {
    const i = f.indexOf('=');
    const name = i < 0 ? f : f.slice(0, i);
    if (i < 0) errors.push(`--var ${JSON.stringify(f)}: expected NAME=VALUE`);
    else if (!NAME.test(name)) errors.push(`--var ${JSON.stringify(f)}: ${JSON.stringify(name)} is not a variable name ([A-Za-z_][A-Za-z0-9_]*)`);
    else vars[name] = f.slice(i + 1);
  }
  return { vars, errors };
}

/** True when a string has something to substitute or unescape (`${` or `$$`). */
function needs(s: string): boolean {
  return s.includes('${') || s.includes('$$');
}

/**
 * Substitutes one string. `where(ref)` locates a reference's text (for errors).
 * Returns the new string, or undefined when a problem was reported.
 */
export function substitute(s: string, scope: Scope, where: (ref: string) => SourcePos, problems: VarProblem[]): string | undefined {
  let out = '';
  let ok = true;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (ch !== '$') {
      out += ch;
      continue;
    }
    const next = s[i + 1];
    if (next === '$') {
      out += '$';
      i++;
      continue;
    }
    if (next !== '{') {
      out += '$';
      continue;
    }
    const close = s.indexOf('}', i + 2);
    if (close < 0) {
      problems.push({ pos: where(s.slice(i)), summary: 'invalid variable reference', detail: `${JSON.stringify(s.slice(i, i + 40))} has no closing }; write $\${ for a literal \${` });
      ok = false;
      break;
    }
    const body = s.slice(i + 2, close);
    const ref = s.slice(i, close + 1);
    const m = /^([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$/s.exec(body);
    if (!m) {
      problems.push({ pos: where(ref), summary: 'invalid variable reference', detail: `${JSON.stringify(ref)}: expected \${NAME} or \${NAME:-default} (NAME is letters, digits and _, not starting with a digit); write $\${ for a literal \${` });
      ok = false;
    } else {
      const value = scope.lookup(m[1]);
      if (value !== undefined && value !== '') {
        out += value;
        scope.used.set(m[1], value);
      } else if (m[2] !== undefined) {
        out += m[2];
        if (value !== undefined) scope.used.set(m[1], value);
      } else if (value === '') {
        out += '';
        scope.used.set(m[1], value);
      } else {
        problems.push({ pos: where(ref), summary: 'undefined variable', detail: `${ref}: ${m[1]} is not set; give it with --var ${m[1]}=VALUE or in the environment, or write \${${m[1]}:-default}` });
        ok = false;
      }
    }
    i = close;
  }
  return ok ? out : undefined;
}

/** YAML 1.2 core schema resolution of a plain scalar's text: null, booleans, numbers; else the string. */
export function resolvePlain(s: string): string | number | boolean | null {
  if (/^(~|null|Null|NULL|)$/.test(s)) return null;
  if (/^(true|True|TRUE)$/.test(s)) return true;
  if (/^(false|False|FALSE)$/.test(s)) return false;
  if (/^[-+]?[0-9]+$/.test(s)) return Number(s);
  if (/^0o[0-7]+$/.test(s)) return parseInt(s.slice(2), 8);
  if (/^0x[0-9a-fA-F]+$/.test(s)) return parseInt(s.slice(2), 16);
  if (/^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$/.test(s)) return Number(s);
  if (/^[-+]?\.(inf|Inf|INF)$/.test(s)) return s.startsWith('-') ? -Infinity : Infinity;
  if (/^\.(nan|NaN|NAN)$/.test(s)) return NaN;
  return s;
}

/** Locates a reference's text inside a scalar: its own column when the scalar is one line and holds the text verbatim. */
function locate(n: { pos: SourcePos; src?: string }, ref: string): SourcePos {
  const src = n.src;
  if (!src || src.includes('\n')) return n.pos;
  const k = src.indexOf(ref);
  return k < 0 ? n.pos : { ...n.pos, col: n.pos.col + k };
}

/**
 * Substitutes variables in every string value and mapping key of a tree. Returns a new
 * tree (unchanged subtrees shared). `skip(path)` leaves subtrees alone (a scenario's
 * steps, interpolated later with the round of each repeat).
 */
export function interpolate(n: PNode, scope: Scope, problems: VarProblem[], skip: (path: (string | number)[]) => boolean = () => false, path: (string | number)[] = []): PNode {
  if (path.length > 0 && skip(path)) return n;
  if (n.kind === 'scalar') {
    if (typeof n.value !== 'string' || !needs(n.value)) return n;
    const s = substitute(n.value, scope, (ref) => locate(n, ref), problems);
    if (s === undefined || s === n.value) return n;
    const out: PScalar = { ...n, value: n.plain ? resolvePlain(s) : s };
    delete out.src;
    return out;
  }
  if (n.kind === 'seq') {
    let changed = false;
    const items = n.items.map((it, i) => {
      const x = interpolate(it, scope, problems, skip, [...path, i]);
      if (x !== it) changed = true;
      return x;
    });
    return changed ? { ...n, items } : n;
  }
  let changed = false;
  const entries = new Map<string, PEntry>();
  for (const [k, e] of n.entries) {
    let key = k;
    if (needs(k)) {
      const s = substitute(k, scope, () => e.keyPos, problems);
      if (s !== undefined && s !== k) {
        key = s;
        changed = true;
      }
    }
    const value = interpolate(e.value, scope, problems, skip, [...path, key]);
    if (value !== e.value) changed = true;
    entries.set(key, value === e.value ? e : { keyPos: e.keyPos, value });
  }
  return changed ? { ...n, entries } : n;
}

/** Stand-ins for the braces of `${...}` while YAML parses (same length, so offsets and columns stay). */
const OPEN = '\uE002';
const CLOSE = '\uE001';

/**
 * Masks the braces of every `${...}` (closed on the same line) so that a plain
 * reference is valid YAML in flow collections too (`{ drop_pct: ${DROP} }`): `{` and
 * `}` are flow indicators. One character for one, so positions do not move; unmask
 * restores them in parsed values. A text that already holds the stand-ins is left alone.
 */
export function maskRefs(text: string): string {
  if (!text.includes('${') || text.includes(OPEN) || text.includes(CLOSE)) return text;
  return text.replace(/\$\{([^}\n]*)\}/g, (_m, body: string) => `$${OPEN}${body}${CLOSE}`);
}

/** Restores what maskRefs masked. */
export function unmaskRefs(s: string): string {
  return s.includes(OPEN) ? s.replaceAll(OPEN, '{').replaceAll(CLOSE, '}') : s;
}
