/**
 * Pure parsers of host command output into HostState parts. Inputs are the exact
 * text of: `ip -j -d addr show` (iproute2 6.1), `ip -j route show table all`,
 * `tc -j qdisc show`, `tc class show` (plain text: iproute2 6.1 prints no JSON for HTB
 * classes), `nft -j list ruleset` (libnftables JSON schema 1). Tested on recorded real
 * output in test/fixtures/.
 */
import type { LinkState, NamespaceState, NicState, PortShaping, RouteState, NftBridgeTable, NftInetTable, Owned } from '../model/state.js';
import { routeOrder } from '../model/state.js';
import { parseTcRate } from '../plan/ids.js';
import { skeletonFingerprint } from '../plan/nft-skeleton.js';

/** Splits concatenated JSON documents (`ip -j -batch` prints one array per command). */
export function splitJsonDocs(text: string): unknown[] {
  const docs: unknown[] = [];
  let depth = 0;
  let start = -1;
  let inStr = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (inStr) {
      if (ch === '\\') i++;
      else if (ch === '"') inStr = false;
      continue;
    }
    if (ch === '"') inStr = true;
    else if (ch === '[' || ch === '{') {
      if (depth === 0) start = i;
      depth++;
    } else if (ch === ']' || ch === '}') {
      depth--;
      if (depth === 0) docs.push(JSON.parse(text.slice(start, i + 1)));
    }
  }
  return docs;
}

/** One entry of `ip -j -d addr show` (fields used). */
export interface IpLink {
  ifname: string;
  address?: string;
  flags?: string[];
  mtu?: number;
  master?: string;
  ifalias?: string;
  linkinfo?: { info_kind?: string; info_data?: { type?: string; id?: number; port?: number; local?: string } };
  /** Addresses; "dynamic": not permanent (SLAAC), "tentative": IPv6 duplicate address detection not done yet. */
  addr_info?: { family: string; local: string; prefixlen: number; scope?: string; dynamic?: boolean; tentative?: boolean }[];
}

function v4addrs(l: IpLink): string[] {
  return (l.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`).sort();
}

/**
 * Global, permanent IPv6 addresses: the ones provium adds. Link-local and SLAAC
 * ("dynamic": router advertisements on a bridge with subnet6 and dhcp reach netns nodes
 * too) addresses are the kernel's, not drift.
 */
function v6addrs(l: IpLink): string[] {
  return (l.addr_info ?? []).filter((a) => a.family === 'inet6' && a.scope === 'global' && a.dynamic !== true).map((a) => `${a.local}/${a.prefixlen}`).sort();
}

/** A link as LinkState (kind from linkinfo.info_kind; "tun" for TAP). */
export function toLinkState(l: IpLink): LinkState {
  return {
    name: l.ifname,
    kind: l.linkinfo?.info_kind ?? 'unknown',
    ...(l.ifalias ? { alias: l.ifalias } : {}),
    ...(l.master ? { master: l.master } : {}),
    mtu: l.mtu,
    up: (l.flags ?? []).includes('UP'),
    addrs: v4addrs(l),
    addrs6: v6addrs(l),
    ...(l.linkinfo?.info_kind === 'vxlan'
      ? { vxlan: { vni: l.linkinfo.info_data?.id ?? 0, port: l.linkinfo.info_data?.port ?? 0, local: l.linkinfo.info_data?.local ?? '', peers: [] } }
      : {}),
  };
}

/** One entry of `bridge -j fdb show dev X` (iproute2 6.1). */
export interface FdbEntry {
  mac: string;
  dst?: string;
  flags?: string[];
}

/** Underlay addresses of a VXLAN port's all-zeros (default destination) FDB entries, sorted. */
export function vxlanPeers(entries: FdbEntry[]): string[] {
  return [...new Set(entries.filter((e) => e.mac === '00:00:00:00:00:00' && e.dst).map((e) => e.dst!))].sort();
}

/** Address (IPv4 or IPv6, without prefix) -> MTU of the link that has it, from `ip -j addr show`. */
export function addressMtus(links: IpLink[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const l of links) for (const a of l.addr_info ?? []) if (l.mtu !== undefined) out[a.local] = l.mtu;
  return out;
}

/**
 * One entry of `ip -j route show table all` (both families). "table" is absent for the
 * main table; "pref" (router preference) is printed for every IPv6 route and for no
 * IPv4 one (the kernel always sends RTA_PREF for IPv6), so it tells the family when
 * there is no gateway.
 */
export interface IpRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  table?: string;
  pref?: string;
}

/** Whether a route of `ip -j route show table all` is in the main table. */
function inMain(r: IpRoute): boolean {
  return r.table === undefined || r.table === 'main';
}

/** Whether a route of `ip -j route show table all` is IPv6. */
export function isIpv6Route(r: IpRoute): boolean {
  return r.pref !== undefined || (r.gateway ?? r.dst).includes(':');
}

/** Devices of the main table's IPv4 and IPv6 default routes, from `ip -j route show table all default`. */
export function defaultRouteDevs(routes: IpRoute[]): { v4?: string; v6?: string } {
  const main = routes.filter((r) => r.dst === 'default' && inMain(r));
  return { v4: main.find((r) => !isIpv6Route(r))?.dev, v6: main.find(isIpv6Route)?.dev };
}

/**
 * Node namespace from its `addr show` and `route show table all` JSON. Routes: those of
 * the main table with a gateway, except the kernel's and those learned from router
 * advertisements (protocol "ra": dnsmasq advertises the host side on bridges with dhcp
 * and subnet6), which are not drift.
 */
export function toNamespaceState(name: string, node: string, links: IpLink[], routes: IpRoute[]): NamespaceState {
  const lo = links.find((l) => l.ifname === 'lo');
  const nics: Record<string, NicState> = {};
  for (const l of links) {
    if (l.ifname === 'lo') continue;
    nics[l.ifname] = { ifname: l.ifname, ...(l.address ? { mac: l.address.toLowerCase() } : {}), addrs: v4addrs(l), addrs6: v6addrs(l), up: (l.flags ?? []).includes('UP'), mtu: l.mtu };
  }
  const rs: RouteState[] = routes
    .filter((r) => r.gateway && r.protocol !== 'kernel' && r.protocol !== 'ra' && inMain(r))
    .map((r) => ({ dst: r.dst, via: r.gateway! }))
    .sort(routeOrder);
  return { name, node, ...(lo?.ifalias ? { owner: lo.ifalias } : {}), loUp: (lo?.flags ?? []).includes('UP'), nics, routes: rs };
}

/** One entry of `tc -j qdisc show`. */
export interface TcQdisc {
  kind: string;
  handle: string;
  dev: string;
  root?: boolean;
  parent?: string;
  options?: { default?: string; delay?: { delay?: number; jitter?: number }; limit?: number };
}

/**
 * One HTB class: `dev` (when known: the netlink helper reads every device's), its class id
 * "<major hex>:<minor hex>", and its ceil in bits/s.
 */
export interface TcClass {
  dev?: string;
  class: string;
  ceil: number;
}

/**
 * The HTB classes in the text of `tc class show dev P` (iproute2 prints no JSON rates it
 * can read back exactly: "class htb 86e0:2 parent 86e0:1 prio 0 rate 10Gbit ceil 10Gbit ...";
 * rates as tc prints them, parsed by parseTcRate). Lines of other kinds are skipped.
 */
export function tcClassesFromText(classText: string): TcClass[] {
  const out: TcClass[] = [];
  for (const line of classText.split('\n')) {
    const m = /^class htb ([0-9a-f]+:[0-9a-f]+) (?:root|parent [0-9a-f]+:[0-9a-f]*)\b.*?\brate (\S+) ceil (\S+)/.exec(line.trim());
    if (m) out.push({ class: m[1], ceil: parseTcRate(m[3]) });
  }
  return out;
}

/**
 * HTB trees of the given ports from `tc -j qdisc show` (or the helper's `tc` read, same
 * keys) and their classes (tcClassesFromText, or the helper's, which name their device:
 * a class is then taken only from its own port). Each port has its own major.
 * netem "delay" is in seconds in iproute2's JSON; stored as milliseconds.
 */
export function toShaping(qdiscs: TcQdisc[], classes: TcClass[], ports: Set<string>): Record<string, PortShaping> {
  const out: Record<string, PortShaping> = {};
  const byMajor = new Map<number, PortShaping>();
  for (const q of qdiscs) {
    if (!ports.has(q.dev) || q.kind !== 'htb' || !q.root) continue;
    const major = parseInt(q.handle, 16);
    const sh: PortShaping = { dev: q.dev, major, defaultMinor: parseInt(q.options?.default ?? '0', 16), classes: {} };
    out[q.dev] = sh;
    byMajor.set(major, sh);
  }
  for (const c of classes) {
    const [maj, min] = c.class.split(':').map((x) => parseInt(x, 16));
    const sh = byMajor.get(maj);
    if (!sh || min === 1 || (c.dev !== undefined && c.dev !== sh.dev)) continue;
    sh.classes[min] = { minor: min, rateBps: c.ceil };
  }
  for (const q of qdiscs) {
    if (q.kind !== 'netem' || !q.parent || !out[q.dev]) continue;
    const [maj, min] = q.parent.split(':').map((x) => parseInt(x, 16));
    const sh = out[q.dev];
    const c = sh.classes[min];
    if (maj !== sh.major || !c) continue;
    const ms = (s: number | undefined) => Math.round((s ?? 0) * 1e6) / 1e3;
    c.netem = { delayMs: ms(q.options?.delay?.delay), jitterMs: ms(q.options?.delay?.jitter), ...(typeof q.options?.limit === 'number' ? { limit: q.options.limit } : {}) };
  }
  return out;
}

type NftObj = Record<string, any>;

/**
 * A set element as [key string, value, comment]. Keys: "a>b" for concatenations, "10.40.0.0/24" for prefixes.
 * Drop elements (`set` "loss": saddr . oif . range, "loss_port": oif . range) give the rate as value: the
 * numgen range 0..n-1 (or the single number 0) -> n hundredths of a percent.
 */
export function nftElem(e: unknown, isMap: boolean, set?: string): { key: string; value: unknown; comment?: string } {
  let k: any = e;
  let value: unknown = true;
  if (isMap && Array.isArray(e)) {
    k = e[0];
    value = e[1];
  }
  let comment: string | undefined;
  if (k && typeof k === 'object' && 'elem' in k) {
    comment = k.elem.comment;
    k = k.elem.val;
  }
  const atom = (x: any): string => {
    if (typeof x === 'string' || typeof x === 'number') return String(x);
    if (x?.prefix) return `${x.prefix.addr}/${x.prefix.len}`;
    if (x?.range) return `${x.range[0]}-${x.range[1]}`;
    return JSON.stringify(x);
  };
  if (k && typeof k === 'object' && 'concat' in k) {
    const parts: any[] = k.concat;
    const last = parts[parts.length - 1];
    if (parts.length === 3 || (set === 'loss_port' && parts.length === 2)) {
      // drop element: [saddr .] oif . numgen range 0..n-1 -> n
      const hi = typeof last === 'number' ? last : last?.range ? last.range[1] : NaN;
      return { key: parts.slice(0, -1).join('>'), value: hi + 1, comment };
    }
    return { key: parts.map(atom).join('>'), value, comment };
  }
  return { key: atom(k), value, comment };
}

/** The lab's tables from `nft -j list ruleset`. `owned` false when a table has the name but no set carries the lab's mark. */
export function toNft(json: { nftables: NftObj[] }, table: string, ownerPrefix: string) {
  type Found = { owned: boolean; sets: Map<string, NftObj>; chains: NftObj[]; rules: NftObj[] };
  const found: Record<'bridge' | 'inet', Found | undefined> = { bridge: undefined, inet: undefined };
  for (const o of json.nftables ?? []) {
    const [kind, body] = Object.entries(o)[0] as [string, NftObj];
    const fam = body.family as 'bridge' | 'inet';
    if ((fam !== 'bridge' && fam !== 'inet') || (kind === 'table' ? body.name : body.table) !== table) continue;
    const t: Found = (found[fam] ??= { owned: false, sets: new Map(), chains: [], rules: [] });
    if (kind === 'set' || kind === 'map') {
      t.sets.set(body.name, { ...body, isMap: kind === 'map' });
      if (typeof body.comment === 'string' && body.comment.startsWith(ownerPrefix)) t.owned = true;
    } else if (kind === 'chain') t.chains.push(body);
    else if (kind === 'rule') t.rules.push(body);
  }
  const elems = (t: Found, set: string): Record<string, Owned<any>> => {
    const s = t.sets.get(set);
    const out: Record<string, Owned<any>> = {};
    for (const e of s?.elem ?? []) {
      const x = nftElem(e, s!.isMap, set);
      out[x.key] = { owner: x.comment ?? `nft.${set}[${x.key}]`, value: x.value };
    }
    return out;
  };
  const fingerprint = (t: Found) =>
    skeletonFingerprint({
      sets: [...t.sets.values()].map((s) => ({
        name: s.name,
        jsonType: (Array.isArray(s.type) ? s.type.join('.') : s.type) + (s.isMap ? `:${s.map}` : ''),
      })),
      chains: t.chains.map((c) => ({
        name: c.name,
        hook: `${c.hook}/${c.prio}`,
        rules: t.rules.filter((r) => r.chain === c.name).sort((a, b) => a.handle - b.handle).map((r) => r.comment ?? '?'),
      })),
    });
  let bridge: NftBridgeTable | undefined;
  let inet: NftInetTable | undefined;
  const b = found.bridge;
  if (b?.owned) {
    bridge = { skeleton: fingerprint(b), blocked: elems(b, 'blocked'), isolated: elems(b, 'isolated'), loss: elems(b, 'loss'), lossPort: elems(b, 'loss_port'), lossOwn: elems(b, 'loss_own'), prio: elems(b, 'prio') };
  }
  const i = found.inet;
  if (i?.owned) {
    // forwards: key {"concat": ["tcp", 8080]} -> "tcp/8080", data {"concat": ["10.40.0.2", 80]} -> "10.40.0.2:80"
    const fw: Record<string, Owned<string>> = {};
    for (const [k, v] of Object.entries(elems(i, 'forwards'))) {
      const data = v.value as { concat?: unknown[] } | string;
      fw[k.replace('>', '/')] = { owner: v.owner, value: typeof data === 'object' && data.concat ? data.concat.join(':') : String(data) };
    }
    inet = {
      skeleton: fingerprint(i), bridges: elems(i, 'bridges'), forward: elems(i, 'routed'), uplinkBridges: elems(i, 'uplinked'),
      masqSources: elems(i, 'masq'), uplinkOifs: elems(i, 'wan'), masqSources6: elems(i, 'masq6'), uplinkOifs6: elems(i, 'wan6'), forwards: fw,
    };
  }
  return {
    bridge, inet,
    conflicts: (['bridge', 'inet'] as const).filter((f) => found[f] && !found[f]!.owned),
  };
}

/**
 * The other labs' `table inet provium_<lab>` in this host namespace, as far as their
 * forwarding goes: the lab, its `routed` pairs ("in>out" bridge devices) and whether it
 * masquerades an IPv6 prefix (set masq6). Only tables marked as a lab's (their sets carry
 * its comments) count. `exclude` is the lab being planned. Input: `nft -j list ruleset`.
 */
export interface OtherLabInet {
  lab: string;
  forward: string[];
  masq6: boolean;
}

export function otherLabsInet(json: { nftables: NftObj[] }, exclude: string): OtherLabInet[] {
  const labs = new Set<string>();
  for (const o of json.nftables ?? []) {
    const t = o.table as NftObj | undefined;
    const m = t && t.family === 'inet' ? /^provium_([a-z][a-z0-9]{0,7})$/.exec(String(t.name)) : null;
    if (m && m[1] !== exclude) labs.add(m[1]);
  }
  const out: OtherLabInet[] = [];
  for (const lab of [...labs].sort()) {
    const { inet } = toNft(json, `provium_${lab}`, `provium:${lab}:`);
    if (!inet) continue; // not marked as a lab's: not provium's
    out.push({ lab, forward: Object.keys(inet.forward), masq6: Object.keys(inet.masqSources6).length > 0 });
  }
  return out;
}

/**
 * The other labs in this host namespace that still need forwarding, read from the host
 * (the source of truth): a lab forwards IPv4 while its `table inet provium_<lab>`
 * (marked with its comments) exists; it forwards IPv6 while that table masquerades an
 * IPv6 prefix (set masq6) or routes between two of its bridges that both have a global
 * IPv6 address (the host side ::1 of subnet6). `others`: otherLabsInet of the ruleset;
 * `links`: `ip -j -d addr show` of the host namespace.
 */
export function forwardingFrom(others: OtherLabInet[], links: IpLink[]): { v4: string[]; v6: string[] } {
  const has6 = new Set(links.filter((l) => v6addrs(l).length > 0).map((l) => l.ifname));
  const v4: string[] = [];
  const v6: string[] = [];
  for (const o of others) {
    v4.push(o.lab);
    const routed6 = o.forward.some((k) => {
      const [a, b] = k.split('>');
      return a !== b && has6.has(a) && has6.has(b);
    });
    if (o.masq6 || routed6) v6.push(o.lab);
  }
  return { v4, v6 };
}

/** forwardingFrom(otherLabsInet(json, exclude), links). Input: `nft -j list ruleset` and `ip -j -d addr show` of the host namespace. */
export function forwardingLabs(json: { nftables: NftObj[] }, links: IpLink[], exclude: string): { v4: string[]; v6: string[] } {
  return forwardingFrom(otherLabsInet(json, exclude), links);
}
