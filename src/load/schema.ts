/**
 * Structural validation of topology data against schemas/topology.schema.json
 * (JSON Schema draft-07, ajv), with every ajv error turned into a located,
 * human-readable Diagnostic.
 *
 * The schema may carry a non-standard `errorMessage` string (a convention of
 * VS Code's JSON support; registered here as an annotation keyword): it replaces
 * ajv's message for value-shape errors (type, pattern, enum, not, anyOf, ...) of
 * the subschema it sits in.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import type { ErrorObject, ValidateFunction } from 'ajv';
import type { Diagnostic } from '../model/diagnostics.js';
import type { DataPath } from './source.js';
import type { PathLocator } from './tree.js';

/**
 * provium's own folder: the nearest folder above this module holding a package.json
 * (this module is dist/src/load/schema.js when compiled, src/load/schema.ts from
 * source, or part of the bundled CLI, dist/provium.mjs). Everything else is found
 * from there, so a file outside the package is never picked up.
 */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`provium's package.json not found above ${fileURLToPath(import.meta.url)} (a broken install)`);
    dir = up;
  }
  return dir;
}

/** Path of schemas/topology.schema.json. Throws Error when it cannot be found (a broken install). */
export function schemaPath(): string {
  const p = join(packageRoot(), 'schemas', 'topology.schema.json');
  if (!existsSync(p)) throw new Error(`topology schema not found at ${p}`);
  return p;
}

let compiled: ValidateFunction | undefined;

/** The parsed schema JSON (an object). Throws Error when missing or not valid JSON. */
export function loadSchema(): Record<string, unknown> {
  return JSON.parse(readFileSync(schemaPath(), 'utf8')) as Record<string, unknown>;
}

/**
 * The validator generated at build time (scripts/bundle.mjs writes
 * dist/schema-validator.cjs with ajv's standalone code); undefined when it was not built.
 */
function precompiled(): ValidateFunction | undefined {
  const p = join(packageRoot(), 'dist', 'schema-validator.cjs');
  return existsSync(p) ? (createRequire(import.meta.url)(p) as ValidateFunction) : undefined;
}

/**
 * The schema with every local `$ref` ("#/definitions/x") replaced by a copy of its
 * target (the topology schema is not recursive), for compiling. ajv compiles a
 * referenced definition as a function of its own whose errors the caller appends with
 * `vErrors.concat(...)`, copying every error found so far for each node or bridge:
 * quadratic in a file with an error per node (25,000 nodes: 9.4 s in that line alone).
 * Inlined, each error is pushed once. A `$ref`'s sibling keywords (only `description`
 * in this schema) are kept. Error schema paths follow the inlined form.
 */
export function inlineRefs(schema: Record<string, unknown>): Record<string, unknown> {
  const defs = (schema.definitions ?? {}) as Record<string, unknown>;
  const walk = (v: unknown, depth: number): unknown => {
    if (depth > 64) throw new Error('topology schema: $ref nesting deeper than 64 (a recursive schema?)');
    if (Array.isArray(v)) return v.map((x) => walk(x, depth));
    if (!v || typeof v !== 'object') return v;
    const o = v as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    if (typeof o.$ref === 'string') {
      const m = /^#\/definitions\/([^/]+)$/.exec(o.$ref);
      if (!m || !(m[1] in defs)) throw new Error(`topology schema: unsupported $ref ${o.$ref}`);
      Object.assign(out, walk(defs[m[1]], depth + 1));
    }
    for (const [k, x] of Object.entries(o)) {
      if (k === '$ref' || (k === 'definitions' && depth === 0)) continue;
      out[k] = walk(x, depth);
    }
    return out;
  };
  return walk(schema, 0) as Record<string, unknown>;
}

/** The validator: the build's generated one, else compiled once per process. */
function validator(): ValidateFunction {
  compiled ??= precompiled();
  if (!compiled) {
    // ajv itself only here (a build without the generated validator): required when needed,
    // so the bundled CLI neither carries nor starts it on every call (~120 KB with fast-uri).
    const { Ajv } = createRequire(import.meta.url)('ajv') as typeof import('ajv');
    const ajv = new Ajv({ allErrors: true, strict: true, strictRequired: false, verbose: true });
    ajv.addKeyword({ keyword: 'errorMessage', schemaType: 'string' });
    compiled = ajv.compile(inlineRefs(loadSchema()));
  }
  return compiled!;
}

/** Validates plain data (doc.toJS()) against the schema; one diagnostic per relevant ajv error. */
export function validateSchema(data: unknown, locator: PathLocator): Diagnostic[] {
  const validate = validator();
  if (validate(data)) return [];
  return relevantErrors(validate.errors ?? []).map((e) => toDiagnostic(e, locator));
}

/**
 * Drops ajv errors that only repeat others: `if` (its branch's errors are
 * reported), `propertyNames` (the inner error carries the name), and errors
 * inside a failed anyOf/oneOf (the anyOf error itself is reported).
 */
function relevantErrors(errors: ErrorObject[]): ErrorObject[] {
  // A set of the failed combinators' schema paths, looked up for each prefix of an
  // error's schema path: linear in the number of errors (times the schema's depth).
  const combinators = new Set(errors.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf').map((e) => e.schemaPath));
  const insideCombinator = (schemaPath: string): boolean => {
    if (combinators.size === 0) return false;
    for (let i = schemaPath.indexOf('/'); i >= 0; i = schemaPath.indexOf('/', i + 1)) {
      if (combinators.has(schemaPath.slice(0, i))) return true;
    }
    return false;
  };
  return errors.filter((e) => e.keyword !== 'if' && e.keyword !== 'propertyNames' && !insideCombinator(e.schemaPath));
}

/** Keywords whose message the subschema's errorMessage replaces. */
const SHAPE_KEYWORDS = new Set(['type', 'pattern', 'enum', 'const', 'not', 'anyOf', 'oneOf', 'minItems', 'maxItems', 'minLength', 'maxLength', 'false schema']);

/** Converts one ajv error into a located diagnostic. */
function toDiagnostic(e: ErrorObject, locator: PathLocator): Diagnostic {
  const path = pointerToPath(e.instancePath);
  const where = describePath(path);
  const custom = customMessage(e);
  const params = e.params as Record<string, unknown>;
  const error = (summary: string, detail: string, pos = locator.pos(path)): Diagnostic => ({ severity: 'error', summary, detail, pos });
  if (e.propertyName !== undefined) {
    const keyPath = [...path, e.propertyName];
    return error('invalid name', `${JSON.stringify(e.propertyName)} in ${where}: ${custom ?? e.message}`, locator.pos(keyPath, { key: true }));
  }
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      const allowed = Object.keys((e.parentSchema as { properties?: object })?.properties ?? {});
      return error('unknown key', `${JSON.stringify(key)} is not allowed in ${where}; expected one of: ${allowed.join(', ')}`, locator.pos([...path, key], { key: true }));
    }
    case 'required':
      return error('missing key', `${where} needs ${JSON.stringify(params.missingProperty)}`);
    case 'dependencies': {
      const present = String(params.property);
      return error('missing key', `${JSON.stringify(present)} requires ${JSON.stringify(params.missingProperty)} in the same entry (${where})`, locator.pos([...path, present], { key: true }));
    }
    case 'type':
      return custom
        ? error('wrong type', `${where}: ${custom} (got ${describeValue(e.data)})`)
        : error('wrong type', `${where} must be ${article(String(params.type))}, not ${describeValue(e.data)}`);
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return error('out of range', `${where} is ${describeValue(e.data)}, must be ${params.comparison} ${params.limit}`);
    case 'enum':
      return error('invalid value', `${where} is ${describeValue(e.data)}; ${custom ?? `must be one of: ${(params.allowedValues as unknown[]).join(', ')}`}`);
    case 'uniqueItems':
      return error('duplicate item', `${where} lists ${describeValue(e.data instanceof Array ? e.data[Number(params.i)] : undefined)} twice`, locator.pos([...path, Math.max(Number(params.i), Number(params.j))]));
    case 'not':
      return error('not allowed here', `${where}: ${custom ?? e.message}`, locator.pos(path, { key: true }));
    case 'anyOf':
      return error(custom ? 'incomplete entry' : 'invalid value', `${where}: ${custom ?? e.message}`);
    default:
      return error('invalid value', `${where} is ${describeValue(e.data)}: ${custom ?? e.message}`);
  }
}

/** The subschema's errorMessage, when the error is a value-shape error and one is given. */
function customMessage(e: ErrorObject): string | undefined {
  const parent = e.parentSchema as { errorMessage?: unknown } | undefined;
  if (!SHAPE_KEYWORDS.has(e.keyword) || typeof parent?.errorMessage !== 'string') return undefined;
  return parent.errorMessage;
}

/** "/bridges/lan/attach/0" -> ["bridges", "lan", "attach", 0] (JSON pointer, ~0 and ~1 unescaped). */
export function pointerToPath(pointer: string): DataPath {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^(0|[1-9][0-9]*)$/.test(s) ? Number(s) : s));
}

/** ["bridges", "lan", "attach", 0] -> "bridges.lan.attach[0]"; odd keys are quoted; [] -> "the file". */
export function describePath(path: DataPath): string {
  if (path.length === 0) return 'the file';
  return path
    .map((seg, i) => {
      if (typeof seg === 'number') return `[${seg}]`;
      if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(seg)) return i === 0 ? seg : `.${seg}`;
      return `[${JSON.stringify(seg)}]`;
    })
    .join('');
}

/** A short, escaped rendering of a value for messages: the string "x", the number 3, a list, a mapping, nothing. */
export function describeValue(v: unknown): string {
  if (v === null || v === undefined) return 'empty';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 60 ? v.slice(0, 57) + '...' : v)}`;
  if (typeof v === 'number' || typeof v === 'boolean') return `${typeof v === 'number' ? 'the number' : 'the boolean'} ${v}`;
  if (Array.isArray(v)) return 'a list';
  return 'a mapping';
}

/** "object" -> "a mapping", "integer" -> "an integer", ... (JSON Schema type names in YAML words). */
function article(type: string): string {
  const words: Record<string, string> = {
    object: 'a mapping',
    array: 'a list',
    string: 'a string',
    integer: 'an integer',
    number: 'a number',
    boolean: 'true or false',
    null: 'empty',
  };
  return type
    .split(',')
    .map((t) => words[t] ?? t)
    .join(' or ');
}
