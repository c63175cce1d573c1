/**
 * FNV-1a 32-bit hash of a string (UTF-16 code units), as an unsigned integer.
 * Used wherever provium derives a stable number from a name: tc handles
 * (plan/ids.ts) and allocated IPv4 addresses (load/addresses.ts).
 */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/**
 * MurmurHash3's 32-bit finalizer (fmix32): spreads every input bit over the whole
 * word. FNV-1a alone maps names that differ in their last character ("node1",
 * "node2", ...) to evenly spaced values, which collide often modulo a small pool.
 */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Hash of a node name for address allocation: fmix32(FNV-1a(name)), an unsigned 32-bit integer. */
export function nameHash(name: string): number {
  return fmix32(fnv1a(name));
}
