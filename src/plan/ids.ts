/**
 * Stable numeric ids for tc handles and classes, derived from names (pure).
 * HTB root majors live in [0x8000, 0xfff0], class minors in [0x10, 0x7ff0]; leaf
 * netem qdiscs use the class minor as their handle, so the two ranges never collide.
 */
import { fnv1a } from '../model/hash.js';

export const ROOT_MINOR = 1;
export const DEFAULT_MINOR = 2;
/** Rate of unshaped classes (the parent and any default class without a bandwidth): 10 Gbit/s. */
export const UNSHAPED_BPS = 10_000_000_000;

const MAJOR_LO = 0x8000;
const MAJOR_HI = 0xfff0;
const MINOR_LO = 0x10;
const MINOR_HI = 0x7ff0;


/**
 * Assigns each key a distinct id in [lo, hi] from its hash, probing linearly on a
 * collision. Keys are processed sorted, so the result depends only on the key set.
 */
function allocate(keys: string[], lo: number, hi: number): Map<string, number> {
  const span = hi - lo + 1;
  if (keys.length > span) throw new Error(`too many ids requested (${keys.length} > ${span})`);
  const used = new Set<number>();
  const out = new Map<string, number>();
  for (const k of [...new Set(keys)].sort()) {
    let id = lo + (fnv1a(k) % span);
    while (used.has(id)) id = id === hi ? lo : id + 1;
    used.add(id);
    out.set(k, id);
  }
  return out;
}

/** HTB root major per port device (unique across the lab). */
export function allocateMajors(ports: string[]): Map<string, number> {
  return allocate(ports, MAJOR_LO, MAJOR_HI);
}

/** Class minor per source port, for one destination port. */
export function allocateMinors(sources: string[]): Map<string, number> {
  return allocate(sources, MINOR_LO, MINOR_HI);
}

/** tc's hex form of a handle number: 0x1a -> "1a". */
export function hex(n: number): string {
  return n.toString(16);
}

/** classid string as nft and tc print it: "8a3c:1f". */
export function classid(major: number, minor: number): string {
  return `${hex(major)}:${hex(minor)}`;
}

/**
 * The rate as `tc class show` prints it (iproute2 6.1 print_rate): the kernel keeps
 * bytes/s, so bits are truncated to a multiple of 8, then divided by 1000 while the
 * value is exact or at least 1,000,000. E.g. 1234567 -> "1234Kbit", 7500000 -> "7500Kbit".
 */
export function tcRateString(bps: number): string {
  const units = ['', 'K', 'M', 'G', 'T'];
  let rate = Math.floor(bps / 8) * 8;
  let i = 0;
  for (; i < units.length - 1; i++) {
    if (rate < 1000) break;
    if (rate % 1000 !== 0 && rate < 1000 * 1000) break;
    rate = Math.floor(rate / 1000);
  }
  return `${rate}${units[i]}bit`;
}

/** Parses tc's rate text ("5Mbit", "1234Kbit", "10Gbit", "800bit", "1.5Mbit") into bits/s. */
export function parseTcRate(s: string): number {
  const m = /^([0-9.]+)([KMGT]?)(i?)bit$/.exec(s.trim());
  if (!m) throw new Error(`unrecognized tc rate ${JSON.stringify(s)}`);
  const base = m[3] ? 1024 : 1000;
  const pow = ['', 'K', 'M', 'G', 'T'].indexOf(m[2]);
  return Math.round(parseFloat(m[1]) * base ** pow);
}

/** True when tc would print the two rates the same way (how a configured rate is compared to a read-back one). */
export function sameTcRate(a: number, b: number): boolean {
  return tcRateString(a) === tcRateString(b);
}
