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
