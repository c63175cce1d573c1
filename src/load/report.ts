/**
 * Collects located diagnostics during semantic checks (every problem at once).
 */
import type { Diagnostic } from '../model/diagnostics.js';
import type { DataPath } from './source.js';
import type { PathLocator } from './tree.js';

/** Accumulates diagnostics, locating each one at a data path through the Locator. */
export class Reporter {
  readonly diagnostics: Diagnostic[] = [];

  constructor(readonly locator: PathLocator) {}

  /** Records an error at path (at its key with `key: true`). */
  error(path: DataPath, summary: string, detail: string, opts: { key?: boolean } = {}): void {
    this.diagnostics.push({ severity: 'error', summary, detail, pos: this.locator.pos(path, opts) });
  }

  /** Records a warning (does not make loading fail) at path. */
  warning(path: DataPath, summary: string, detail: string, opts: { key?: boolean } = {}): void {
    this.diagnostics.push({ severity: 'warning', summary, detail, pos: this.locator.pos(path, opts) });
  }

  /** The 1-based line where path starts, for "first defined at line N" hints. */
  line(path: DataPath): number {
    return this.locator.pos(path).line;
  }
}

/** JSON-quotes a user-supplied name for messages, so control characters and quotes stay visible and inert. */
export function q(name: string): string {
  return JSON.stringify(name);
}
