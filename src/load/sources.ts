/**
 * Loading many files into one positioned tree: each given source (a path, or `-` for
 * standard input) with its `extends:` chain (the base's path is relative to the file
 * that names it; chains allowed, a cycle is a located error), then the sources merged
 * in order, later ones winning (merge.ts). Variables are substituted in each file
 * before merging (vars.ts), except under a scenario's `steps:`, which are substituted
 * when the scenario is compiled. Files are read by read.ts (regular files only, 4 MiB).
 *
 * This is the one entry point for reading input: a saved plan can store every file's
 * text (`files`) and the variables used (`vars`) and feed them back through
 * `readFile` and `vars` to get the same topology.
 */
import { realpathSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import type { Diagnostic } from '../model/diagnostics.js';
import { ReadError, readInputFile, readStdin } from './read.js';
import { merge } from './merge.js';
import { parseSource } from './source.js';
import { buildTree, withoutKeys, type PNode, type TreeProblem } from './tree.js';
import { interpolate, makeScope, maskRefs, unmaskRefs, type Scope, type VarProblem } from './vars.js';

/** A file to load: `name` is the path as the user gave it (`-`: standard input); `text` when already read. */
export interface SourceInput {
  name: string;
  text?: string;
}

/** Where input comes from; every field has a default (the real file system, process.env, fd 0). */
export interface LoadOptions {
  /** `--var NAME=VALUE` values; they win over `env`. */
  vars?: Record<string, string>;
  /** Environment variables (default process.env). Pass {} to use only `vars`. */
  env?: Record<string, string | undefined>;
  /** Reads a file by absolute path (default: read.ts's readInputFile); throws ReadError or Error. */
  readFile?: (path: string, name: string) => string;
  /** Reads standard input (default: read.ts's readStdin). */
  readStdin?: () => string;
  /** Folder relative paths are resolved against (default process.cwd()). */
  cwd?: string;
  /**
   * The real path of an existing path (default fs.realpathSync; the path itself when it
   * does not exist). The topology cache (cache.ts) records what it answered.
   */
  realpath?: (path: string) => string;
}

/** A file that was read: its name as shown in diagnostics, absolute path (`-` for standard input), and text. */
export interface LoadedFile {
  name: string;
  path: string;
  text: string;
}

/** The merged tree of all sources, every file read (in merge order) and the variables used. */
export interface Merged {
  /** Undefined when a file could not be read or parsed (see diagnostics). */
  tree?: PNode;
  /** Every file read, bases before what extends them, in merge order. */
  files: LoadedFile[];
  /** Absolute path of the first source's base-most file (`-` for standard input): relative paths in the topology resolve against its folder. */
  rootPath: string;
  diagnostics: Diagnostic[];
  /** Variables substituted, with their values (only those the files reference). */
  vars: Record<string, string>;
  /** The scope substitution used (a scenario's steps are substituted later with it). */
  scope: Scope;
}

/** At most this many files in one extends chain (a guard against pathological chains). */
export const MAX_CHAIN = 32;

/** Top-level keys that are not topology: `extends` (consumed here) and `steps` (scenario files, see scenario/). */
export const META_KEYS = ['extends', 'steps'] as const;

const skipSteps = (path: (string | number)[]) => path.length === 1 && path[0] === 'steps';

/**
 * Loads and merges sources. Never throws: unreadable files, YAML errors, bad
 * `extends`, cycles and variable problems become diagnostics (located where the text
 * is known). At most one source may be `-`.
 */
export function mergeSources(sources: SourceInput[], opts: LoadOptions = {}): Merged {
  const cwd = opts.cwd ?? process.cwd();
  const scope = makeScope(opts.vars, opts.env ?? process.env);
  const read = opts.readFile ?? ((p: string, name: string) => readInputFile(p, name));
  const files: LoadedFile[] = [];
  const diagnostics: Diagnostic[] = [];
  const err = (summary: string, detail: string, pos?: Diagnostic['pos']) => diagnostics.push({ severity: 'error', summary, detail, ...(pos ? { pos } : {}) });
  let stdinText: string | undefined;
  let rootPath = '';

  if (sources.filter((s) => s.name === '-').length > 1) err('standard input given twice', 'at most one file can be - (standard input)');

  /**
   * Loads one file and its extends chain; returns its merged tree, or undefined when it
   * (or a base) cannot be used. `chain`: absolute paths of the files that extend it.
   */
  const loadFile = (name: string, path: string, given: string | undefined, chain: string[], from?: { pos: Diagnostic['pos'] }): PNode | undefined => {
    let text = given;
    if (text === undefined) {
      try {
        if (path === '-') text = stdinText ??= (opts.readStdin ?? readStdin)();
        else text = read(path, name);
      } catch (e) {
        err('cannot read topology file', e instanceof ReadError || e instanceof Error ? e.message : String(e), from?.pos);
        return undefined;
      }
    }
    // Listed after its bases (merge order): pushed once this file's chain is loaded.
    const me: LoadedFile = { name, path, text };
    const tree = withFile(me, () => parseAndExtend(name, path, text!, chain));
    return tree;
  };

  /** Runs load, then records the file (after the files its load read). */
  const withFile = (f: LoadedFile, load: () => PNode | undefined): PNode | undefined => {
    const t = load();
    files.push(f);
    return t;
  };

  const parseAndExtend = (name: string, path: string, text: string, chain: string[]): PNode | undefined => {
    // ${...} braces masked while parsing, so plain references work in flow collections too.
    const parsed = parseSource(name, maskRefs(text));
    diagnostics.push(...parsed.diagnostics);
    if (!parsed.usable) return undefined;
    const problems: TreeProblem[] = [];
    const built = buildTree(parsed.doc, parsed.locator, text, problems, unmaskRefs);
    const varProblems: VarProblem[] = [];
    const tree = interpolate(built, scope, varProblems, skipSteps);
    for (const p of [...problems, ...varProblems]) err(p.summary, p.detail, p.pos);
    if (problems.length || varProblems.length) return undefined;
    const ext = tree.kind === 'map' ? tree.entries.get('extends') : undefined;
    if (!ext) {
      if (chain.length === 0 || rootPath === '') rootPath ||= path;
      return tree;
    }
    const v = ext.value;
    if (v.kind !== 'scalar' || typeof v.value !== 'string' || v.value === '') {
      err('invalid extends', 'extends names one base file: a path relative to this file, e.g. extends: lab.yaml', v.pos);
      return undefined;
    }
    const baseAbs = canonical(resolve(path === '-' ? cwd : dirname(path), v.value), opts.realpath);
    const here = [...chain, canonical(path, opts.realpath)];
    if (here.includes(baseAbs)) {
      const names = [...here.slice(here.indexOf(baseAbs)), baseAbs].map((p) => shown(p, cwd));
      err('extends cycle', `${names.join(' -> ')}: a file cannot extend itself, directly or through its bases`, v.pos);
      return undefined;
    }
    // A base already merged by an earlier source (`lab.yaml -f cut.yaml` where cut.yaml
    // extends lab.yaml) is not merged again: the overlay goes onto what is merged so far.
    if (done.has(baseAbs)) return withoutKeys(tree, ['extends']);
    if (here.length >= MAX_CHAIN) {
      err('extends chain too long', `more than ${MAX_CHAIN} files in one extends chain`, v.pos);
      return undefined;
    }
    const baseName = isAbsolute(v.value) || isAbsolute(name) ? baseAbs : shown(baseAbs, cwd);
    const base = loadFile(baseName, baseAbs, undefined, here, { pos: v.pos });
    if (!base) return undefined;
    return merge(base, withoutKeys(tree, ['extends']));
  };

  let tree: PNode | undefined;
  let ok = true;
  /** Canonical paths of the files merged by the sources processed so far. */
  const done = new Set<string>();
  sources.forEach((s, i) => {
    if (i > 0) for (const f of files) done.add(canonical(f.path, opts.realpath));
    const path = s.name === '-' ? '-' : resolve(cwd, s.name);
    const t = loadFile(s.name === '-' ? '<stdin>' : s.name, path, s.text, []);
    if (!t) {
      ok = false;
      return;
    }
    if (i === 0) {
      tree = t;
      return;
    }
    if (t.kind === 'scalar' && t.value === null) return; // an empty overlay changes nothing
    if (t.kind !== 'map') {
      err('invalid overlay', `${s.name === '-' ? '<stdin>' : s.name}: an overlay is a mapping of the keys it changes (e.g. bridges: { lan: { ... } })`, t.pos);
      ok = false;
      return;
    }
    if (tree) tree = merge(tree, t);
  });
  return { tree: ok ? tree : undefined, files, rootPath, diagnostics, vars: Object.fromEntries(scope.used), scope };
}

/** The real path when it exists (so a symlinked file in a cycle is recognised), else the path itself. */
function canonical(p: string, realpath: (p: string) => string = realpathSync): string {
  if (p === '-') return p;
  try {
    return realpath(p);
  } catch {
    return p;
  }
}

/** A path as shown to users: relative to the working folder when below it, else absolute. */
export function shown(abs: string, cwd: string): string {
  const r = relative(cwd, abs);
  return r && !r.startsWith('..') && !isAbsolute(r) ? r : abs;
}
