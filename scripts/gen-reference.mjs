#!/usr/bin/env node
// Renders the file reference of docs/reference.md from schemas/topology.schema.json, so the
// two cannot disagree: every property (its path in the file, type, allowed values or range,
// default, which node kinds take it, and the schema's description), one section per mapping.
//
//   node scripts/gen-reference.mjs           rewrite the part of docs/reference.md between
//                                            <!-- generated:start --> and <!-- generated:end -->
//   node scripts/gen-reference.mjs --check   exit 1 when docs/reference.md is out of date
//
// test/unit/docs.test.ts fails when docs/reference.md differs from what this prints.
// The walker throws on a schema construct it does not know, so a new kind of property
// cannot be left out silently. No dependencies: Node's own modules only.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

export const START = '<!-- generated:start (scripts/gen-reference.mjs from schemas/topology.schema.json; do not edit by hand) -->';
export const END = '<!-- generated:end -->';
export const REGENERATE = 'node scripts/gen-reference.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const SCHEMA_FILE = join(ROOT, 'schemas', 'topology.schema.json');
export const DOC_FILE = join(ROOT, 'docs', 'reference.md');

// How a value of a named definition is called in the reference (instead of its JSON type).
const REF_NAMES = {
  name: 'name',
  nodeRef: 'node name',
  bridgeRef: 'bridge name',
  nodeSet: 'node name, `others`, or list of node names',
  groups: 'list of groups (each a node name, `others`, or list of node names)',
  ipv4Cidr: 'IPv4 network (CIDR)',
  ipv4AddrOrCidr: 'IPv4 address (bare or CIDR)',
  mac: 'MAC address',
  portOrRange: 'port or range `LOW-HIGH`',
};

// Keywords that only annotate or that this script renders; anything else is an error.
const KNOWN = new Set([
  '$ref', '$schema', 'title', 'description', 'errorMessage', 'type', 'enum', 'const', 'default',
  'properties', 'additionalProperties', 'propertyNames', 'required', 'items', 'minItems', 'maxItems',
  'uniqueItems', 'minProperties', 'minimum', 'maximum', 'minLength', 'maxLength', 'pattern', 'not',
  'if', 'then', 'else', 'allOf', 'anyOf', 'dependencies', 'definitions',
]);

/** GitHub's anchor for a heading's text (lower case; punctuation other than - and _ dropped; spaces to -). */
export function slug(text) {
  return text.replace(/`/g, '').trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
}

/** Markdown text with < and > outside code spans escaped (a bare <node> would be read as HTML). */
function md(text) {
  return text.split(/(`[^`]*`)/).map((part, i) => (i % 2 ? part : part.replace(/</g, '&lt;').replace(/>/g, '&gt;'))).join('');
}

const code = (v) => `\`${typeof v === 'string' ? v : JSON.stringify(v)}\``;

/**
 * The reference's generated Markdown for a parsed topology schema (JSON Schema draft-07 as
 * provium writes it). Throws Error naming the schema path of a construct it cannot render.
 */
export function renderReference(schema) {
  const defs = schema.definitions ?? {};

  /** s with its $ref resolved (the referring schema's own keywords win), and the definition's name. */
  function resolve(s, where) {
    let refName;
    let out = s;
    for (let depth = 0; out && out.$ref; depth++) {
      if (depth > 16) throw new Error(`${where}: $ref chain too deep`);
      const m = /^#\/definitions\/(.+)$/.exec(out.$ref);
      if (!m || !defs[m[1]]) throw new Error(`${where}: unknown $ref ${out.$ref}`);
      refName ??= m[1];
      const { $ref, ...own } = out;
      out = { ...defs[m[1]], ...own };
    }
    for (const k of Object.keys(out)) if (!KNOWN.has(k)) throw new Error(`${where}: keyword ${k} is not rendered by scripts/gen-reference.mjs`);
    return { s: out, refName };
  }

  /**
   * The alternatives of a value, each { s, refName }: then and else of an `if: {type}` switch,
   * else the value itself.
   */
  function alternatives(s, where, refName) {
    if (!s.if) return [{ s, refName }];
    if (!s.if.type || !s.then || !s.else || Object.keys(s.if).length !== 1) throw new Error(`${where}: only if: {type} with then and else is rendered`);
    const t = resolve(s.then, where);
    return [{ s: { type: s.if.type, ...t.s }, refName: t.refName }, resolve(s.else, where)];
  }

  /** A mapping with named properties (a section of its own). */
  const isSection = (s) => s.type === 'object' && s.properties && !s.if;

  function typeText(s, refName, where) {
    if (refName && REF_NAMES[refName]) return REF_NAMES[refName];
    if (s.if) return alternatives(s, where).map((a) => typeText(a.s, a.refName, where)).join(', or ');
    if ('const' in s) return code(s.const);
    if (s.enum) return `one of ${s.enum.map(code).join(', ')}`;
    if (s.type === 'array') {
      if (!s.items) return 'list';
      const it = resolve(s.items, where);
      const t = typeText(it.s, it.refName, where);
      return it.s.if && !REF_NAMES[it.refName] ? `list of (${t})` : `list of ${t}`;
    }
    if (s.type === 'object') {
      if (s.properties) return 'mapping';
      if (s.additionalProperties && typeof s.additionalProperties === 'object') {
        const v = resolve(s.additionalProperties, where);
        return `mapping of name to ${v.refName ?? typeText(v.s, undefined, where)}`;
      }
      return 'mapping';
    }
    if (!s.type) throw new Error(`${where}: no type`);
    return Array.isArray(s.type) ? s.type.join(' or ') : s.type;
  }

  /** Allowed values and ranges as a list of short phrases. */
  function constraints(s, where) {
    const out = [];
    if (s.propertyNames) {
      const n = resolve(s.propertyNames, where).s;
      if (n.pattern) out.push(`names match ${code(n.pattern)}`);
    }
    for (const { s: a, refName } of alternatives(s, where)) {
      if (REF_NAMES[refName]) continue;
      if (a.type === 'array' && a.items) {
        const it = resolve(a.items, where);
        const each = REF_NAMES[it.refName] ? [] : constraints(it.s, where);
        if (each.length) out.push(`each entry: ${each.join(', ')}`);
      }
      if ('minimum' in a || 'maximum' in a) out.push(`range ${a.minimum ?? '-∞'} to ${a.maximum ?? '∞'}`);
      if ('minLength' in a || 'maxLength' in a) out.push(!a.minLength ? `at most ${a.maxLength} characters` : 'maxLength' in a ? `${a.minLength} to ${a.maxLength} characters` : `at least ${a.minLength} character${a.minLength === 1 ? '' : 's'}`);
      if (a.pattern) out.push(`matches ${code(a.pattern)}`);
      if (a.not && a.not.pattern) out.push(`does not match ${code(a.not.pattern)}`);
      else if (a.not && Object.keys(a.not).length) throw new Error(`${where}: not: is rendered only with a pattern`);
      if ('minItems' in a || 'maxItems' in a) out.push(a.minItems === a.maxItems ? `exactly ${a.minItems} items` : `${a.minItems ?? 0} to ${a.maxItems ?? '∞'} items`);
      if (a.uniqueItems) out.push('no duplicates');
      if (a.minProperties) out.push(`at least ${a.minProperties} ${a.minProperties === 1 ? 'entry' : 'entries'}`);
    }
    return out;
  }

  /** For node properties: the kinds that may not carry each (from the allOf if kind / then not: {}). */
  function kindRules(s) {
    const forbidden = new Map();
    for (const rule of s.allOf ?? []) {
      const kind = rule.if?.properties?.kind?.const;
      if (!kind) continue;
      for (const [prop, sub] of Object.entries(rule.then?.properties ?? {})) {
        const r = resolve(sub, `kind ${kind}`).s;
        if (r.not && Object.keys(r.not).length === 0) forbidden.set(prop, [...(forbidden.get(prop) ?? []), kind]);
      }
    }
    return forbidden;
  }

  /** Object-level rules: at-least-one-of (anyOf of required) and allOf groups of them. */
  function objectRules(s) {
    const out = [];
    const anyOfs = [...(s.anyOf ? [s.anyOf] : []), ...(s.allOf ?? []).filter((r) => r.anyOf).map((r) => r.anyOf)];
    for (const any of anyOfs) {
      if (!any.every((r) => r.required && Object.keys(r).length === 1)) continue;
      out.push(`Needs ${any.map((r) => r.required.map(code).join(' and ')).join(', or ')}.`);
    }
    return out;
  }

  const sections = [];
  const anchorOf = (path) => `#${slug(path)}`;

  /** Adds the section for mapping s at path (and, after it, the sections of its children). */
  function section(path, s, title, intro) {
    const sec = { path, title, intro, rows: [] };
    sections.push(sec);
    const kinds = kindRules(s);
    const kindEnum = s.properties?.kind ? resolve(s.properties.kind, path).s.enum : undefined;
    const required = new Set(s.required ?? []);
    const children = [];
    for (const [key, raw] of Object.entries(s.properties)) {
      const p = path ? `${path}.${key}` : key;
      const { s: ps, refName } = resolve(raw, p);
      let type = typeText(ps, refName, p);
      const facts = [];
      if (required.has(key)) facts.push('required');
      const dep = s.dependencies?.[key];
      if (dep) facts.push(`needs ${dep.map(code).join(', ')}`);
      const notOn = kinds.get(key);
      if (notOn && kindEnum) facts.push(`kind ${kindEnum.filter((k) => !notOn.includes(k)).map(code).join(', ')} only`);
      if (!REF_NAMES[refName]) facts.push(...constraints(ps, p));
      if ('default' in ps) facts.push(`default ${code(ps.default)}`);
      // Children: a mapping, a map of named mappings, a list of mappings (each maybe one
      // alternative of a string-or-mapping switch).
      const nested = [];
      const addNested = (subPath, sub, what) => {
        for (const { s: alt } of alternatives(sub, subPath)) if (isSection(alt)) nested.push([subPath, alt, what]);
      };
      const forms = alternatives(ps, p);
      for (const { s: alt } of forms) {
        if (isSection(alt)) nested.push([p, alt, forms.length > 1 ? ' (mapping form)' : '']);
        if (alt.type === 'object' && alt.additionalProperties && typeof alt.additionalProperties === 'object') {
          const v = resolve(alt.additionalProperties, `${p}.<name>`);
          addNested(`${p}.<name>`, v.s, '');
        }
        if (alt.type === 'array' && alt.items) {
          const it = resolve(alt.items, `${p}[]`);
          addNested(`${p}[]`, it.s, alternatives(it.s, `${p}[]`).length > 1 ? ' (mapping form)' : '');
        }
      }
      const see = nested.map(([np, , what]) => `[\`${np}\`${what}](${anchorOf(`${np}${what}`)})`);
      sec.rows.push({ path: p, type, facts, description: ps.description ?? '', see });
      for (const [np, ns, what] of nested) children.push([np, ns, `\`${np}\`${what}`, ns.description ?? '']);
    }
    sec.rules = objectRules(s);
    for (const [np, ns, t, d] of children) section(np, ns, t, d);
  }

  for (const k of Object.keys(schema)) if (!KNOWN.has(k)) throw new Error(`schema root: keyword ${k} is not rendered by scripts/gen-reference.mjs`);
  section('', schema, 'Top level', schema.description ?? '');

  const lines = [];
  for (const sec of sections) {
    lines.push(`## ${sec.title}`, '');
    if (sec.intro) lines.push(md(sec.intro), '');
    for (const row of sec.rows) {
      const head = [`**\`${row.path}\`**: ${row.type}`, ...row.facts].join('; ');
      const see = row.see.length ? ` See ${row.see.join(', ')}.` : '';
      lines.push(`- ${head}. ${md(row.description)}${see}`.trimEnd());
    }
    if (sec.rules.length) lines.push('', ...sec.rules);
    lines.push('');
  }
  return lines.join('\n').trimEnd() + '\n';
}

/** docText with the part between the markers replaced by generated. Throws Error when a marker is missing. */
export function spliceGenerated(docText, generated) {
  const a = docText.indexOf(START);
  const b = docText.indexOf(END);
  if (a < 0 || b < a) throw new Error(`docs/reference.md: the markers ${START} and ${END} are missing`);
  return `${docText.slice(0, a + START.length)}\n\n${generated}\n${docText.slice(b)}`;
}

/** The generated part of docText (between the markers), as spliceGenerated writes it. */
export function generatedPart(docText) {
  const a = docText.indexOf(START);
  const b = docText.indexOf(END);
  if (a < 0 || b < a) return undefined;
  return docText.slice(a + START.length, b).replace(/^\n\n/, '').replace(/\n$/, '');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const schema = JSON.parse(readFileSync(SCHEMA_FILE, 'utf8'));
  const doc = readFileSync(DOC_FILE, 'utf8');
  const next = spliceGenerated(doc, renderReference(schema));
  if (process.argv.includes('--check')) {
    if (next !== doc) {
      console.error(`docs/reference.md is out of date with schemas/topology.schema.json: run ${REGENERATE}`);
      process.exit(1);
    }
  } else if (next !== doc) {
    writeFileSync(DOC_FILE, next);
    console.log('docs/reference.md: regenerated from schemas/topology.schema.json');
  } else {
    console.log('docs/reference.md: up to date');
  }
}
