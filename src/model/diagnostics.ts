import type { SourcePos } from './topology.js';

/**
 * A problem found in user input or on the host, located where possible.
 * Collected into lists (every problem at once), never thrown one at a time.
 */
export interface Diagnostic {
  severity: 'error' | 'warning';
  /** Short summary, e.g. "unknown node". */
  summary: string;
  /** Longer explanation, optional. */
  detail?: string;
  pos?: SourcePos;
}

/** Thrown when input is invalid: carries every diagnostic. The CLI maps it to exit code 1. */
export class InputError extends Error {
  constructor(public readonly diagnostics: Diagnostic[]) {
    super(diagnostics.map(formatDiagnostic).join('\n'));
    this.name = 'InputError';
  }
}

/** Thrown for failures that are not the user's input (host conflicts, failed commands, locks). Exit code 1. */
export class ProviumError extends Error {
  constructor(message: string, public readonly hint?: string) {
    super(message);
    this.name = 'ProviumError';
  }
}

/** Who holds a lab's lock (the lock file's content): process id, command, host name, ISO time taken. */
export interface LockHolder {
  pid: number;
  command: string;
  host: string;
  since: string;
}

/**
 * Thrown when a lab's lock is held by another live process (another `provium apply`,
 * `provium run`, or a `Lab` of a test suite): nothing was changed. `holder` is the
 * lock's content when it could be read.
 */
export class LockError extends ProviumError {
  constructor(public readonly lab: string, message: string, hint?: string, public readonly holder?: LockHolder) {
    super(message, hint);
    this.name = 'LockError';
  }
}

/** "file:line:col: error: summary: detail" (the compiler idiom that editors and CI logs link). */
export function formatDiagnostic(d: Diagnostic): string {
  const where = d.pos ? `${d.pos.file}:${d.pos.line}:${d.pos.col}: ` : '';
  return `${where}${d.severity}: ${d.summary}${d.detail ? `: ${d.detail}` : ''}`;
}
