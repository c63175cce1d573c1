/**
 * IPv4 arithmetic for the loader: addresses are unsigned 32-bit integers
 * (0 .. 2^32-1), prefixes are lengths 0..32. Pure, no I/O.
 */

/** Shape of a subnet (matches the schema's ipv4Cidr pattern); ranges are checked by parseCidr. */
export const CIDR_SHAPE = /^[0-9]{1,3}(\.[0-9]{1,3}){3}\/[0-9]{1,2}$/;
/** Shape of an attachment ip, bare or CIDR (matches the schema's ipv4AddrOrCidr pattern). */
export const ADDR_OR_CIDR_SHAPE = /^[0-9]{1,3}(\.[0-9]{1,3}){3}(\/[0-9]{1,2})?$/;

/** An address with a prefix length, e.g. 10.40.0.3/24 -> { addr: 0x0a280003, prefix: 24 }. */
export interface Cidr {
  addr: number;
  prefix: number;
}

/**
 * Parses a dotted-quad "a.b.c.d" into an unsigned 32-bit integer.
 * Returns undefined for anything else, including octets > 255 and octets with
 * leading zeros ("010"), which some tools would read as octal.
 */
export function parseAddr(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part)) return undefined;
    const octet = Number(part);
    if (octet > 255) return undefined;
    value = value * 256 + octet;
  }
  return value;
}

/**
 * Parses "a.b.c.d/p" (p 0..32), or a bare "a.b.c.d" when `bare` is given (then
 * prefix = bare). Returns undefined when the text is not a valid address/prefix.
 */
export function parseCidr(text: string, bare?: number): Cidr | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) {
    const addr = parseAddr(text);
    return addr === undefined || bare === undefined ? undefined : { addr, prefix: bare };
  }
  const addr = parseAddr(text.slice(0, slash));
  const p = text.slice(slash + 1);
  if (addr === undefined || !/^(0|[1-9][0-9]?)$/.test(p) || Number(p) > 32) return undefined;
  return { addr, prefix: Number(p) };
}

/** Formats an unsigned 32-bit integer as "a.b.c.d". */
export function formatAddr(addr: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(addr / 2 ** shift) % 256).join('.');
}

/** Formats a Cidr as "a.b.c.d/p". */
export function formatCidr(c: Cidr): string {
  return `${formatAddr(c.addr)}/${c.prefix}`;
}

/** Number of addresses in a prefix: 2^(32-prefix). */
export function blockSize(prefix: number): number {
  return 2 ** (32 - prefix);
}

/** The network address of addr/prefix (host bits cleared). */
export function networkOf(addr: number, prefix: number): number {
  const size = blockSize(prefix);
  return addr - (addr % size);
}

/** The broadcast address of addr/prefix (host bits set). */
export function broadcastOf(addr: number, prefix: number): number {
  return networkOf(addr, prefix) + blockSize(prefix) - 1;
}

/** True when addr lies inside the network net/prefix. */
export function contains(net: Cidr, addr: number): boolean {
  return networkOf(addr, net.prefix) === networkOf(net.addr, net.prefix);
}

/** True when the two networks share at least one address. */
export function overlaps(a: Cidr, b: Cidr): boolean {
  const shorter = a.prefix <= b.prefix ? a : b;
  const other = shorter === a ? b : a;
  return contains(shorter, other.addr);
}
