/**
 * Shared helpers of the unit tests: repo folders located from the compiled test
 * file (dist/test/unit/*.js -> repo root three levels up), the `# expect:`
 * header of the broken-file corpus, and temporary folders that are always removed.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { fileURLToPath } from 'node:url';

/** Absolute path of a folder of the repository, e.g. repoDir('test/invalid/'). */
export function repoDir(relative: string): string {
  return fileURLToPath(new URL(`../../../${relative}`, import.meta.url));
}

/**
 * A fresh folder `<os.tmpdir()>/<prefix>XXXXXX` (os.tmpdir() honours $TMPDIR, which
 * scripts/test.sh points at a folder of its own to catch leftovers). It is removed, with
 * everything in it, when the test that called this ends, pass or fail; called outside a
 * test (at a file's top level), when the file's last test has ended. Prefixes start with
 * `pv-`. Throws what mkdtempSync throws.
 */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Absolute paths of the *.yaml files of a folder, sorted. */
export function yamlFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => `${dir.replace(/\/$/, '')}/${f}`);
}

/** What a broken file's first line promises: `# expect: LINE:COL SUBSTRING`. */
export interface Expectation {
  line: number;
  col: number;
  /** Part of the primary error's message, compared case-insensitively. */
  substring: string;
}

/** Parses the `# expect:` header; throws Error when the first line is not one. */
export function readExpectation(text: string): Expectation {
  const m = /^# expect: (\d+):(\d+) (.+)$/.exec(text.split('\n')[0]);
  if (!m) throw new Error(`first line is not "# expect: LINE:COL SUBSTRING": ${JSON.stringify(text.split('\n')[0])}`);
  return { line: Number(m[1]), col: Number(m[2]), substring: m[3].trim() };
}

/** Strips the common leading indentation of a template literal, so tests can write YAML inline. */
export function yaml(strings: TemplateStringsArray, ...values: unknown[]): string {
  const text = String.raw({ raw: strings }, ...values).replace(/^\n/, '');
  const indent = Math.min(...text.split('\n').filter((l) => l.trim()).map((l) => l.length - l.trimStart().length));
  return text
    .split('\n')
    .map((l) => l.slice(indent))
    .join('\n');
}
