/**
 * The read-only file view observe works through: the local filesystem, or a snapshot
 * of a remote host's files fetched over SSH in one round trip (src/hosts/remote.ts).
 * Every method answers undefined/false for what is absent or unreadable; none throws.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';

export interface SyncFs {
  /** A file's text (UTF-8), or undefined. */
  readText(path: string): string | undefined;
  /** A file's bytes, or undefined. */
  readBytes(path: string): Buffer | undefined;
  /** The names in a directory, or undefined when it is absent. */
  list(dir: string): string[] | undefined;
  exists(path: string): boolean;
}

/** This machine's files. */
export const localFs: SyncFs = {
  readText: (p) => {
    try {
      return readFileSync(p, 'utf8');
    } catch {
      return undefined;
    }
  },
  readBytes: (p) => {
    try {
      return readFileSync(p);
    } catch {
      return undefined;
    }
  },
  list: (d) => {
    try {
      return readdirSync(d);
    } catch {
      return undefined;
    }
  },
  exists: existsSync,
};
