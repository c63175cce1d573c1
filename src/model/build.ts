/**
 * The build id of the bundled CLI: a hash of dist/provium.mjs, its chunks, dist/provium.cjs
 * and the schema validator, written to dist/build-id by scripts/bundle.mjs. Caches of derived data (the
 * topology cache, the nftables observation cache) are keyed with it, so another build
 * never reads what an older one wrote. Undefined outside the bundle (the modules under
 * dist/src, tests): those caches are then off.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

let memo: string | null | undefined;

/** The build id (64 hex digits), or undefined when not running from the bundle. */
export function buildId(): string | undefined {
  if (memo !== undefined) return memo ?? undefined;
  memo = null;
  const self = fileURLToPath(import.meta.url);
  if (!self.endsWith('/provium.mjs') && !self.endsWith('/provium.cjs')) return undefined;
  try {
    const id = readFileSync(join(self, '..', 'build-id'), 'utf8').trim();
    if (/^[0-9a-f]{64}$/.test(id)) memo = id;
  } catch {
    /* not built by scripts/bundle.mjs */
  }
  return memo ?? undefined;
}
