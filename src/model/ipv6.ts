/**
 * IPv6 helpers (pure): parse and format (RFC 5952: lower case, no leading zeros, the
 * longest run of two or more zero groups as "::", as iproute2 prints addresses),
 * prefix containment, and EUI-64 interface identifiers from MAC addresses (RFC 4291
 * appendix A: flip the universal/local bit, insert ff:fe), which is what a Linux
 * guest configures by SLAAC on a /64.
 */

/** Eight 16-bit groups, or undefined when the text is not an IPv6 address. */
export function parseIpv6(text: string): number[] | undefined {
  if (!/^[0-9a-fA-F:]+$/.test(text) || text.split('::').length > 2) return undefined;
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const hs = head ? head.split(':') : [];
  const ts = tail !== undefined && tail !== '' ? tail.split(':') : [];
  if ([...hs, ...ts].some((g) => !/^[0-9a-fA-F]{1,4}$/.test(g))) return undefined;
  const missing = 8 - hs.length - ts.length;
  if (tail === undefined ? missing !== 0 : missing < 1) return undefined;
  return [...hs.map((g) => parseInt(g, 16)), ...Array(tail === undefined ? 0 : missing).fill(0), ...ts.map((g) => parseInt(g, 16))];
}

export function formatIpv6(g: number[]): string {
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** The first 64 bits of `net` with an EUI-64 interface id from `mac`. */
export function eui64(net: number[], mac: string): number[] {
  const b = mac.split(':').map((x) => parseInt(x, 16));
  const id = [b[0] ^ 0x02, b[1], b[2], 0xff, 0xfe, b[3], b[4], b[5]];
  return [...net.slice(0, 4), (id[0] << 8) | id[1], (id[2] << 8) | id[3], (id[4] << 8) | id[5], (id[6] << 8) | id[7]];
}

/** Whether addr is inside net/prefix. */
export function inPrefix(addr: number[], net: number[], prefix: number): boolean {
  for (let bit = 0; bit < prefix; bit++) {
    const g = Math.floor(bit / 16);
    const mask = 1 << (15 - (bit % 16));
    if ((addr[g] & mask) !== (net[g] & mask)) return false;
  }
  return true;
}
