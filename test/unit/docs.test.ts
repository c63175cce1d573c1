/**
 * The documentation stays true to the repository:
 * - docs/reference.md is exactly what scripts/gen-reference.mjs renders from
 *   schemas/topology.schema.json, and names every property of the schema;
 * - README.md, docs/*.md and the other READMEs speak about this repository only: no path
 *   outside it, and every relative link (and #anchor) resolves to a file of the repository;
 *   file paths written in `code` exist;
 * - README links every example and every docs page.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Ajv } from 'ajv';
import { repoDir } from './helpers.js';

const ROOT = resolve(repoDir(''));
const rel = (abs: string) => relative(ROOT, abs) || '.';

/** The Markdown files users read: README.md, docs/*.md, and the READMEs of folders. */
function userDocs(): string[] {
  const docs = readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => join(ROOT, 'docs', f));
  const sub = readdirSync(join(ROOT, 'examples'), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => `examples/${e.name}/README.md`);
  const readmes = ['examples/README.md', ...sub.sort(), 'guest/README.md'].map((f) => join(ROOT, f)).filter((f) => existsSync(f));
  return [join(ROOT, 'README.md'), ...docs, ...readmes];
}

interface Line {
  n: number;
  text: string;
}

/** The lines of a Markdown text outside fenced code blocks (``` or ~~~), with their numbers. */
function proseLines(text: string): Line[] {
  const out: Line[] = [];
  let fence: string | undefined;
  text.split('\n').forEach((line, i) => {
    const m = /^\s*(`{3,}|~{3,})/.exec(line);
    if (m) {
      if (!fence) fence = m[1][0];
      else if (m[1][0] === fence) fence = undefined;
      return;
    }
    if (!fence) out.push({ n: i + 1, text: line });
  });
  return out;
}

/** GitHub's anchor of a heading: Markdown removed, lower case, punctuation other than - and _ dropped, spaces to -. */
function slug(heading: string): string {
  // Code spans keep their text; outside them, links become their text and HTML tags vanish.
  const plain = heading
    .split(/(`[^`]*`)/)
    .map((part, i) => (i % 2 ? part.slice(1, -1) : part.replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1').replace(/<[^>]+>/g, '')))
    .join('');
  return plain.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
}

/** The anchors a Markdown file offers: one per heading (duplicates get -1, -2, ...), and HTML ids. */
function anchors(file: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const { text } of proseLines(readFileSync(file, 'utf8'))) {
    const h = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(text);
    if (h) {
      const base = slug(h[1]);
      const k = seen.get(base) ?? 0;
      seen.set(base, k + 1);
      out.add(k ? `${base}-${k}` : base);
    }
    for (const m of text.matchAll(/<a\s+(?:name|id)="([^"]+)"/g)) out.add(m[1]);
  }
  return out;
}

interface Link {
  line: number;
  target: string;
}

/** Links of a Markdown file outside code: [text](target), ![alt](target), [ref]: target, href/src="...". */
function links(file: string): Link[] {
  const out: Link[] = [];
  for (const { n, text } of proseLines(readFileSync(file, 'utf8'))) {
    const prose = text.replace(/(`+)[^`]*?\1/g, '');
    for (const m of prose.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) out.push({ line: n, target: m[1] });
    const def = /^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/.exec(prose);
    if (def) out.push({ line: n, target: def[1] });
    for (const m of prose.matchAll(/\b(?:href|src)="([^"]+)"/g)) out.push({ line: n, target: m[1] });
  }
  return out;
}

/** Where a relative link of file points (absolute path, anchor), or why it does not resolve. */
function resolveLink(file: string, target: string): { path: string; anchor?: string } | { error: string } {
  const [rawPath, rawAnchor] = target.split('#', 2) as [string, string | undefined];
  const anchor = rawAnchor === undefined ? undefined : decodeURIComponent(rawAnchor);
  if (rawPath.startsWith('/')) return { error: 'an absolute path (use a path relative to this file)' };
  const path = rawPath ? resolve(dirname(file), decodeURIComponent(rawPath)) : file;
  if (path !== ROOT && !path.startsWith(ROOT + sep)) return { error: 'outside this repository' };
  if (!existsSync(path)) return { error: `${rel(path)} does not exist` };
  return { path, anchor };
}

const EXTERNAL = /^[a-z][a-z0-9+.-]*:/i;

describe('docs', () => {
  it('docs/reference.md is what scripts/gen-reference.mjs renders from schemas/topology.schema.json', async () => {
    const gen = await import(pathToFileURL(join(ROOT, 'scripts', 'gen-reference.mjs')).href);
    const schema = JSON.parse(readFileSync(join(ROOT, 'schemas', 'topology.schema.json'), 'utf8'));
    const doc = readFileSync(join(ROOT, 'docs', 'reference.md'), 'utf8');
    const part = gen.generatedPart(doc);
    assert.ok(part !== undefined, `docs/reference.md has no generated part (markers ${gen.START} ... ${gen.END}): run npm run docs`);
    const want = gen.renderReference(schema);
    if (part !== want) {
      const a = part.split('\n');
      const b = want.split('\n');
      const i = a.findIndex((l: string, k: number) => l !== b[k]);
      assert.fail(
        `docs/reference.md is out of date with schemas/topology.schema.json: run \`npm run docs\` (${gen.REGENERATE}) and commit the result.\n` +
          `first difference at generated line ${i + 1}:\n  doc:    ${a[i]}\n  schema: ${b[i]}`,
      );
    }
  });

  it('docs/reference.md names every property of the schema, with its default', async () => {
    const schema = JSON.parse(readFileSync(join(ROOT, 'schemas', 'topology.schema.json'), 'utf8'));
    const doc = readFileSync(join(ROOT, 'docs', 'reference.md'), 'utf8');
    const paths = [...doc.matchAll(/^- \*\*`([^`]+)`\*\*: (.*)$/gm)];
    const last = new Set(paths.map((m) => m[1].split('.').pop()!.replace(/\[\]$/, '')));
    const missing: string[] = [];
    const defaults: string[] = [];
    const walk = (s: unknown, where: string) => {
      if (!s || typeof s !== 'object') return;
      const o = s as Record<string, unknown>;
      if (o.properties && typeof o.properties === 'object' && !Array.isArray(o.properties)) {
        for (const [k, v] of Object.entries(o.properties as Record<string, unknown>)) {
          const isRule = v && typeof v === 'object' && Object.keys(v).length === 1 && '$ref' in v; // allOf kind rules
          if (!last.has(k) && !isRule) missing.push(`${where}.properties.${k}`);
          if (v && typeof v === 'object' && 'default' in v) {
            const dv = (v as { default: unknown }).default;
            const d = typeof dv === 'string' ? dv : JSON.stringify(dv);
            if (!paths.some((m) => m[1].split('.').pop() === k && m[2].includes(`default \`${d}\``))) defaults.push(`${k} (default ${d})`);
          }
        }
      }
      for (const [k, v] of Object.entries(o)) if (typeof v === 'object') walk(v, `${where}.${k}`);
    };
    walk(schema, '#');
    assert.deepEqual(missing, [], 'schema properties missing from docs/reference.md');
    assert.deepEqual(defaults, [], 'schema defaults missing from docs/reference.md');
  });

  it('every default in the schema is a valid value of its property', () => {
    const schema = JSON.parse(readFileSync(join(ROOT, 'schemas', 'topology.schema.json'), 'utf8'));
    const ajv = new Ajv({ strict: false });
    const bad: string[] = [];
    const walk = (s: unknown, where: string) => {
      if (!s || typeof s !== 'object') return;
      const o = s as Record<string, unknown>;
      if ('default' in o && where.includes('.properties.')) {
        const validate = ajv.compile({ definitions: schema.definitions, ...o });
        if (!validate(o.default)) bad.push(`${where}: ${JSON.stringify(o.default)}: ${ajv.errorsText(validate.errors)}`);
      }
      for (const [k, v] of Object.entries(o)) if (typeof v === 'object' && k !== 'default') walk(v, `${where}.${k}`);
    };
    walk(schema, '#');
    assert.deepEqual(bad, []);
  });

  it('README and docs speak about this repository only', () => {
    const forbidden: [RegExp, string][] = [
      [/\.\.\/shared\b|shared\/notes/, 'a file outside this repository (../shared)'],
      [/(^|[\s(`'"])\/work\//, 'an absolute path of the workspace (/work/...)'],
      [/HELPERS-GUIDE/i, 'the helpers guide, which is not part of this repository'],
      [/\bfile:\/\//, 'a file:// link'],
    ];
    const found: string[] = [];
    for (const file of userDocs()) {
      readFileSync(file, 'utf8').split('\n').forEach((line, i) => {
        for (const [re, what] of forbidden) if (re.test(line)) found.push(`${rel(file)}:${i + 1}: ${what}: ${line.trim()}`);
      });
    }
    assert.deepEqual(found, []);
  });

  it('every relative link in README and docs resolves to a file of this repository, and its #anchor to a heading', () => {
    const broken: string[] = [];
    let checked = 0;
    for (const file of userDocs()) {
      for (const { line, target } of links(file)) {
        if (EXTERNAL.test(target)) continue;
        checked++;
        const r = resolveLink(file, target);
        if ('error' in r) {
          broken.push(`${rel(file)}:${line}: ${target}: ${r.error}`);
          continue;
        }
        if (r.anchor !== undefined && r.path.endsWith('.md') && !anchors(r.path).has(r.anchor.toLowerCase())) {
          broken.push(`${rel(file)}:${line}: ${target}: no heading with anchor #${r.anchor} in ${rel(r.path)}`);
        }
      }
    }
    assert.ok(checked > 30, `only ${checked} relative links found: the link parser is broken`);
    assert.deepEqual(broken, []);
  });

  it('repository paths written as `code` in README and docs exist', () => {
    const missing: string[] = [];
    const top = /^(?:src|test|scripts|docs|examples|schemas|bench|guest|native|bin|\.ci)\/[A-Za-z0-9_./-]*$/;
    for (const file of userDocs()) {
      for (const { n, text } of proseLines(readFileSync(file, 'utf8'))) {
        for (const m of text.matchAll(/`([^`\s]+)`/g)) {
          const p = m[1].replace(/[.,:;]$/, '');
          if (top.test(p) && !existsSync(join(ROOT, p))) missing.push(`${rel(file)}:${n}: \`${p}\` does not exist`);
        }
      }
    }
    assert.deepEqual(missing, []);
  });

  it('README links every example and every docs page', () => {
    const readme = join(ROOT, 'README.md');
    const targets = new Set<string>();
    for (const { target } of links(readme)) {
      if (EXTERNAL.test(target)) continue;
      const r = resolveLink(readme, target);
      if (!('error' in r)) targets.add(r.path.replace(/\/$/, ''));
    }
    const want = [
      ...readdirSync(join(ROOT, 'examples')).filter((f) => f !== 'README.md').map((f) => join(ROOT, 'examples', f)),
      join(ROOT, 'examples', 'README.md'),
      ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => join(ROOT, 'docs', f)),
    ];
    const unlinked = want.filter((p) => !targets.has(p)).map((p) => rel(p) + (statSync(p).isDirectory() ? '/' : ''));
    assert.deepEqual(unlinked, [], 'not linked from README.md');
  });

  it('README opens with the two set-up commands: npm run demo, then npm test', () => {
    const text = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const block = /```sh\n([\s\S]*?)```/.exec(text);
    assert.ok(block, 'README.md has a sh code block');
    const cmds = block[1].split('\n').filter((l) => l.trim()).map((l) => l.replace(/\s*#.*$/, '').trim());
    assert.deepEqual(cmds, ['npm run demo', 'npm test']);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    assert.ok(pkg.scripts.demo && pkg.scripts.test, 'package.json defines the demo and test scripts');
  });
});
