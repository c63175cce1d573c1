/**
 * A router's nftables table (`table inet provium_<lab>` inside the router's
 * namespace): NAT with RFC 4787 mapping and filtering behaviours, hairpinning, port
 * preservation, and the firewall. Pure: configuration in, nft text and the state
 * observe will read back out. Recipes measured in docs/nat.md.
 *
 * How each behaviour is realized (IPv4, TCP and UDP alike):
 * - mappings live in two dynamic maps: `nat_out4` (internal address . protocol . port
 *   [. destination address for address-dependent mapping] -> external address . port)
 *   and `nat_in4` (protocol . external port -> internal address . port). They are filled
 *   after the kernel chose the mapping (a filter chain at postrouting priority srcnat+1
 *   reads `ct reply proto-dst`), refreshed by outbound packets, and expire after the
 *   UDP / TCP timeout;
 * - endpoint-independent and address-dependent mapping: a new connection whose key is
 *   in `nat_out4` is SNATed to that external endpoint; otherwise the kernel picks:
 *   `masquerade` keeps the port (port preservation) unless another mapping holds it,
 *   `masquerade random` picks a random one. Address-and-port-dependent mapping is the
 *   kernel's own per-connection mapping with `random`;
 * - filtering: replies of a connection pass by conntrack (ct state established). New
 *   inbound packets to a mapped external port are DNATed through `nat_in4` for
 *   endpoint-independent and address-dependent filtering; address-dependent filtering
 *   drops them first (prerouting, priority -150) unless their source address is in
 *   `nat_contacted` (remote address . protocol . external port, filled like the maps).
 *   Address-and-port-dependent filtering installs no inbound DNAT: only conntrack
 *   replies come in;
 * - hairpin: packets from downstream to the public address and a mapped port are DNATed
 *   through `nat_in4` and SNATed to the sender's own mapping; they are not filtered;
 * - the router itself answers no TCP/UDP from upstream (input drop), so an unmapped
 *   port is silent (like a NAT, not a host that refuses).
 * IPv6 is routed, never translated; the firewall applies to both families.
 */
import type { FirewallSpec, NatSpec, PortRange } from '../model/router.js';
import { BEHAVIOUR_CODE, RFC4787_BEHAVIOURS } from '../model/router.js';
import { nftTable } from '../model/names.js';
import type { RouterTableState } from '../model/state.js';

/** What a router's table is generated from. Interfaces are names inside the router's namespace. */
export interface RouterNftInput {
  lab: string;
  node: string;
  /** The upstream interface (eth<i> on the upstream bridge). */
  wan: string;
  /** Interfaces on the bridges it is the gateway of. */
  lan: string[];
  /** Its IPv4 address on the upstream bridge (bare), when it has one. */
  public4?: string;
  nat?: NatSpec;
  firewall?: FirewallSpec;
}

/** Chains of a router table: name -> declaration (hook and priority as nft -j reports them). */
const CHAINS: { name: string; type: string; hook: string; prio: number }[] = [
  { name: 'prefilter', type: 'filter', hook: 'prerouting', prio: -150 },
  { name: 'prerouting', type: 'nat', hook: 'prerouting', prio: -100 },
  { name: 'postrouting', type: 'nat', hook: 'postrouting', prio: 100 },
  { name: 'record', type: 'filter', hook: 'postrouting', prio: 101 },
  { name: 'forward', type: 'filter', hook: 'forward', prio: 0 },
  { name: 'input', type: 'filter', hook: 'input', prio: 0 },
];

/** Set names by group (base sets hold configuration; nat_* are the dynamic mapping tables). */
const BASE_SETS = ['config', 'wan', 'lan', 'public4'];

/**
 * Canonical code of a NAT configuration, stored in the `config` set's comment:
 * "none", or "m=ei f=apd h=1 p=1 u=300 t=7440" (mapping, filtering, hairpin, port
 * preservation, UDP and TCP timeouts in seconds).
 */
export function natCode(nat: NatSpec | undefined): string {
  if (!nat) return 'none';
  return `m=${BEHAVIOUR_CODE[nat.mapping]} f=${BEHAVIOUR_CODE[nat.filtering]} h=${nat.hairpin ? 1 : 0} p=${nat.portPreservation ? 1 : 0} u=${nat.udpTimeoutS} t=${nat.tcpEstablishedTimeoutS}`;
}

/** Parses natCode's output; undefined for "none" or anything unreadable. */
export function parseNatCode(code: string): Omit<NatSpec, 'preset'> | undefined {
  const m = /^m=(\w+) f=(\w+) h=([01]) p=([01]) u=(\d+) t=(\d+)$/.exec(code);
  if (!m) return undefined;
  const behaviour = (c: string) => RFC4787_BEHAVIOURS.find((b) => BEHAVIOUR_CODE[b] === c);
  const mapping = behaviour(m[1]);
  const filtering = behaviour(m[2]);
  if (!mapping || !filtering) return undefined;
  return { mapping, filtering, hairpin: m[3] === '1', portPreservation: m[4] === '1', udpTimeoutS: Number(m[5]), tcpEstablishedTimeoutS: Number(m[6]) };
}

/** Canonical code of a firewall: "none" or "on" (the port lists are set elements). */
export function firewallCode(fw: FirewallSpec | undefined): string {
  return fw ? 'on' : 'none';
}

/** nft element text of a port list: 80, 8000-8100. */
function portElems(ports: PortRange[]): string {
  return ports.map((p) => (p.lo === p.hi ? String(p.lo) : `${p.lo}-${p.hi}`)).join(', ');
}

/** The port list as set elements are read back: sorted "80", "8000-8100" strings. */
export function portStrings(ports: PortRange[] | undefined): string[] | undefined {
  if (!ports) return undefined;
  return [...ports].sort((a, b) => a.lo - b.lo).map((p) => (p.lo === p.hi ? String(p.lo) : `${p.lo}-${p.hi}`));
}

/** Which dynamic tables a NAT needs: `nat_out4` (EIM, ADM) and `nat_in4` (inbound EIF/ADF, hairpin, port preservation). */
function natTables(nat: NatSpec): { out: boolean; in: boolean } {
  return {
    out: nat.mapping !== 'address-and-port-dependent',
    in: nat.filtering !== 'address-and-port-dependent' || nat.hairpin || nat.portPreservation,
  };
}

interface Rule {
  chain: string;
  body: string;
  /** Role, written as comment "provium:<lab>:<role>"; "nat-" and "fw-" roles belong to the NAT and firewall. */
  role: string;
}

/** The rules of a router table, in order per chain. */
export function routerRules(r: RouterNftInput): Rule[] {
  const rules: Rule[] = [];
  const add = (chain: string, role: string, body: string) => rules.push({ chain, role, body });
  const nat = r.nat;
  const fw = r.firewall;

  if (nat) {
    const m = nat.mapping;
    const f = nat.filtering;
    // nat_in4 is needed to deliver inbound (EIF/ADF), for hairpinning, and to keep a
    // preserved port from colliding with another endpoint's mapping.
    const { out: mapsOut, in: mapsIn } = natTables(nat);
    const adm = m === 'address-dependent';
    const key = `ip saddr . meta l4proto . th sport${adm ? ' . ip daddr' : ''}`;
    const recKey = `ct original ip saddr . meta l4proto . ct original proto-src${adm ? ' . ip daddr' : ''}`;

    if (f === 'address-dependent') {
      add('prefilter', 'nat-filter-ad', 'iifname @wan meta nfproto ipv4 ct state new meta l4proto . th dport @nat_in4 ip saddr . meta l4proto . th dport != @nat_contacted counter drop');
    }
    if (f !== 'address-and-port-dependent') {
      add('prerouting', 'nat-inbound', 'iifname @wan meta nfproto ipv4 meta l4proto { tcp, udp } dnat ip to meta l4proto . th dport map @nat_in4');
    }
    if (nat.hairpin) {
      add('prerouting', 'nat-hairpin-in', 'iifname @lan ip daddr @public4 meta l4proto { tcp, udp } dnat ip to meta l4proto . th dport map @nat_in4');
    }
    const outs: [string, string, string][] = [['wan', 'iifname @lan oifname @wan meta nfproto ipv4', 'masquerade']];
    if (nat.hairpin) outs.push(['hairpin', 'oifname @lan ct status dnat ct original ip daddr @public4', 'snat ip to ct original ip daddr']);
    for (const [tag, match, translate] of outs) {
      if (mapsOut) add('postrouting', `nat-${tag}-mapped`, `${match} meta l4proto { tcp, udp } snat ip to ${key} map @nat_out4`);
      if (nat.portPreservation) {
        add('postrouting', `nat-${tag}-port-taken`, `${match} meta l4proto . th sport @nat_in4 ${translate} random`);
        add('postrouting', `nat-${tag}-preserve`, `${match} ${translate}`);
      } else {
        add('postrouting', `nat-${tag}-random`, `${match} ${translate} random`);
      }
    }
    for (const [proto, t] of [['udp', nat.udpTimeoutS], ['tcp', nat.tcpEstablishedTimeoutS]] as const) {
      const match = `ct direction original ct status snat meta l4proto ${proto}`;
      if (mapsOut) add('record', `nat-record-out-${proto}-${t}`, `${match} update @nat_out4 { ${recKey} timeout ${t}s : ct reply ip daddr . ct reply proto-dst }`);
      if (mapsIn) add('record', `nat-record-in-${proto}-${t}`, `${match} update @nat_in4 { meta l4proto . ct reply proto-dst timeout ${t}s : ct original ip saddr . ct original proto-src }`);
      if (f === 'address-dependent') add('record', `nat-record-contacted-${proto}-${t}`, `${match} update @nat_contacted { ip daddr . meta l4proto . ct reply proto-dst timeout ${t}s }`);
    }
  }

  add('forward', 'router-established', 'ct state established,related accept');
  if (fw) {
    if (fw.outboundTcp) add('forward', 'fw-out-tcp', 'iifname @lan oifname @wan meta l4proto tcp tcp dport != @fw_out_tcp counter drop');
    if (fw.outboundUdp) add('forward', 'fw-out-udp', 'iifname @lan oifname @wan meta l4proto udp udp dport != @fw_out_udp counter drop');
    add('forward', 'fw-in-tcp', 'iifname @wan oifname @lan ct state new meta l4proto tcp tcp dport @fw_in_tcp accept');
    add('forward', 'fw-in-udp', 'iifname @wan oifname @lan ct state new meta l4proto udp udp dport @fw_in_udp accept');
    add('forward', 'fw-block-inbound', 'iifname @wan oifname @lan ct state new counter drop');
  }
  if (nat) {
    if (nat.filtering !== 'address-and-port-dependent') add('forward', 'nat-inbound-accept', 'iifname @wan oifname @lan ct status dnat accept');
    add('forward', 'nat-inbound-drop', 'iifname @wan oifname @lan meta nfproto ipv4 counter drop');
    add('input', 'nat-input-established', 'iifname @wan ct state established,related accept');
    add('input', 'nat-input-drop', 'iifname @wan meta nfproto ipv4 meta l4proto { tcp, udp } counter drop');
  }
  if (fw) {
    add('input', 'fw-input-established', 'iifname @wan ct state established,related accept');
    add('input', 'fw-input-drop', 'iifname @wan meta l4proto { tcp, udp } counter drop');
  }
  return rules;
}

/** Sets of the table: [name, declaration] (elements added by routerTableText). */
function routerSets(r: RouterNftInput): [string, string][] {
  const c = (x: string) => `comment "provium:${r.lab}:${x}"`;
  const sets: [string, string][] = [
    ['config', `type ifname; ${c(`router:${r.node} ${natCode(r.nat)} fw=${firewallCode(r.firewall)}`)};`],
    ['wan', `type ifname; ${c('router-upstream')};`],
    ['lan', `type ifname; ${c('router-downstream')};`],
    ['public4', `type ipv4_addr; ${c('router-public')};`],
  ];
  const nat = r.nat;
  if (nat) {
    const adm = nat.mapping === 'address-dependent';
    if (natTables(nat).out) {
      sets.push(['nat_out4', `type ipv4_addr . inet_proto . inet_service${adm ? ' . ipv4_addr' : ''} : ipv4_addr . inet_service; flags dynamic,timeout; ${c('nat-mappings')};`]);
    }
    if (natTables(nat).in) sets.push(['nat_in4', `type inet_proto . inet_service : ipv4_addr . inet_service; flags dynamic,timeout; ${c('nat-mappings-inbound')};`]);
    if (nat.filtering === 'address-dependent') sets.push(['nat_contacted', `type ipv4_addr . inet_proto . inet_service; flags dynamic,timeout; ${c('nat-contacted')};`]);
  }
  const fw = r.firewall;
  if (fw) {
    if (fw.outboundTcp) sets.push(['fw_out_tcp', `type inet_service; flags interval; ${c('fw-outbound-tcp')};`]);
    if (fw.outboundUdp) sets.push(['fw_out_udp', `type inet_service; flags interval; ${c('fw-outbound-udp')};`]);
    sets.push(['fw_in_tcp', `type inet_service; flags interval; ${c('fw-inbound-tcp')};`]);
    sets.push(['fw_in_udp', `type inet_service; flags interval; ${c('fw-inbound-udp')};`]);
  }
  return sets;
}

/** Elements of the configuration sets. */
function setElements(r: RouterNftInput): Record<string, string> {
  const q = (xs: string[]) => xs.map((x) => `"${x}"`).join(', ');
  const out: Record<string, string> = { wan: q([r.wan]) };
  if (r.lan.length) out.lan = q(r.lan);
  if (r.public4) out.public4 = r.public4;
  const fw = r.firewall;
  if (fw?.outboundTcp?.length) out.fw_out_tcp = portElems(fw.outboundTcp);
  if (fw?.outboundUdp?.length) out.fw_out_udp = portElems(fw.outboundUdp);
  if (fw?.inboundTcp.length) out.fw_in_tcp = portElems(fw.inboundTcp);
  if (fw?.inboundUdp.length) out.fw_in_udp = portElems(fw.inboundUdp);
  return out;
}

/**
 * nft text creating the router's table with its elements (for `nft -f` in the
 * router's namespace). With `replace`, the old table is deleted in the same
 * transaction (nft -f is all or nothing), so the router never forwards without rules.
 */
export function routerTableText(r: RouterNftInput, replace = false): string {
  const t = nftTable(r.lab);
  const elems = setElements(r);
  const lines = replace ? [`delete table inet ${t}`] : [];
  lines.push(`table inet ${t} {`);
  for (const [name, decl] of routerSets(r)) {
    const isMap = decl.includes(' : ');
    lines.push(`  ${isMap ? 'map' : 'set'} ${name} { ${decl}${elems[name] ? ` elements = { ${elems[name]} };` : ''} }`);
  }
  const rules = routerRules(r);
  for (const ch of CHAINS) {
    lines.push(`  chain ${ch.name} {`, `    type ${ch.type} hook ${ch.hook} priority ${ch.prio}; policy accept;`);
    for (const rule of rules.filter((x) => x.chain === ch.name)) lines.push(`    ${rule.body} comment "provium:${r.lab}:${rule.role}"`);
    lines.push('  }');
  }
  lines.push('}');
  return lines.join('\n') + '\n';
}

/** Fingerprints of a table's structure by group, from set names, chain hooks and rule comments (in order per chain). */
export function routerFingerprints(sets: string[], chains: { name: string; hook: string; prio: number; rules: string[] }[], lab: string): { base: string; natRules: string; fwRules: string } {
  const prefix = `provium:${lab}:`;
  const group = (g: 'base' | 'nat' | 'fw') => {
    const inGroup = (name: string) => (g === 'base' ? !name.startsWith('nat') && !name.startsWith('fw') : name.startsWith(g));
    const s = [...sets].filter(inGroup).sort();
    const c = [...chains]
      .sort((a, b) => (a.name < b.name ? -1 : 1))
      .map((ch) => {
        const roles = ch.rules.map((x) => (x.startsWith(prefix) ? x.slice(prefix.length) : `?${x}`)).filter(inGroup);
        return g === 'base' ? `${ch.name}(${ch.hook}/${ch.prio})[${roles.join(',')}]` : roles.length ? `${ch.name}[${roles.join(',')}]` : '';
      })
      .filter(Boolean);
    return `sets:${s.join(',')} chains:${c.join(';')}`;
  };
  return { base: group('base'), natRules: group('nat'), fwRules: group('fw') };
}

/** The state observe will read back for a table provium wrote from `r`. */
export function desiredRouterTable(r: RouterNftInput): RouterTableState {
  const rules = routerRules(r);
  const fp = routerFingerprints(
    routerSets(r).map(([n]) => n),
    CHAINS.map((c) => ({ name: c.name, hook: c.hook, prio: c.prio, rules: rules.filter((x) => x.chain === c.name).map((x) => `provium:${r.lab}:${x.role}`) })),
    r.lab,
  );
  const fw = r.firewall;
  return {
    nat: natCode(r.nat),
    firewall: firewallCode(fw),
    wan: [r.wan],
    lan: [...r.lan].sort(),
    public4: r.public4 ? [r.public4] : [],
    ...(fw
      ? { fwOutTcp: portStrings(fw.outboundTcp), fwOutUdp: portStrings(fw.outboundUdp), fwInTcp: portStrings(fw.inboundTcp), fwInUdp: portStrings(fw.inboundUdp) }
      : {}),
    ...fp,
  };
}

type NftObj = Record<string, any>;

/**
 * A router table from `nft -j list table inet provium_<lab>` (libnftables JSON schema 1);
 * undefined when the output has no such table or its `config` set lacks the lab's mark.
 * Dynamic sets' elements (the live mappings) are ignored.
 */
export function parseRouterTable(json: { nftables?: NftObj[] }, lab: string): RouterTableState | undefined {
  const table = nftTable(lab);
  const sets = new Map<string, NftObj>();
  const chains: NftObj[] = [];
  const rules: NftObj[] = [];
  for (const o of json.nftables ?? []) {
    const [kind, body] = Object.entries(o)[0] as [string, NftObj];
    if (body?.family !== 'inet' || (kind === 'table' ? body.name : body.table) !== table) continue;
    if (kind === 'set' || kind === 'map') sets.set(body.name, body);
    else if (kind === 'chain') chains.push(body);
    else if (kind === 'rule') rules.push(body);
  }
  const config = sets.get('config')?.comment;
  const mark = `provium:${lab}:router:`;
  if (typeof config !== 'string' || !config.startsWith(mark)) return undefined;
  // "provium:<lab>:router:<node> <nat code> fw=<firewall code>"
  const rest = config.slice(mark.length).split(' ').slice(1).join(' ');
  const fwAt = rest.lastIndexOf(' fw=');
  const atom = (x: any): string => {
    if (typeof x === 'string' || typeof x === 'number') return String(x);
    if (x?.range) return `${x.range[0]}-${x.range[1]}`;
    if (x?.prefix) return `${x.prefix.addr}/${x.prefix.len}`;
    if (x?.elem) return atom(x.elem.val);
    return JSON.stringify(x);
  };
  const elems = (name: string): string[] | undefined => {
    const s = sets.get(name);
    if (!s) return undefined;
    return (s.elem ?? []).map(atom);
  };
  const ports = (name: string) => {
    const e = elems(name);
    return e && e.sort((a, b) => parseInt(a, 10) - parseInt(b, 10));
  };
  const fp = routerFingerprints(
    [...sets.keys()],
    chains.map((c) => ({
      name: c.name, hook: c.hook, prio: c.prio,
      rules: rules.filter((r) => r.chain === c.name).sort((a, b) => a.handle - b.handle).map((r) => r.comment ?? '?'),
    })),
    lab,
  );
  const firewall = fwAt >= 0 ? rest.slice(fwAt + 4) : '?';
  return {
    nat: fwAt >= 0 ? rest.slice(0, fwAt) : rest,
    firewall,
    wan: (elems('wan') ?? []).sort(),
    lan: (elems('lan') ?? []).sort(),
    public4: (elems('public4') ?? []).sort(),
    ...(firewall !== 'none' ? { fwOutTcp: ports('fw_out_tcp'), fwOutUdp: ports('fw_out_udp'), fwInTcp: ports('fw_in_tcp'), fwInUdp: ports('fw_in_udp') } : {}),
    ...fp,
  };
}

/**
 * The generator's input back from a table's observed state (for rollback: the table as
 * it was is rewritten from what was read). undefined when the NAT code is unreadable.
 */
export function inputFromTable(lab: string, node: string, t: RouterTableState): RouterNftInput | undefined {
  const nat = t.nat === 'none' ? undefined : parseNatCode(t.nat);
  if (t.nat !== 'none' && !nat) return undefined;
  const ranges = (xs: string[] | undefined): PortRange[] | undefined =>
    xs?.map((x) => {
      const [lo, hi] = x.split('-').map(Number);
      return { lo, hi: hi ?? lo };
    });
  return {
    lab, node, wan: t.wan[0] ?? 'eth0', lan: t.lan, public4: t.public4[0],
    ...(nat ? { nat } : {}),
    ...(t.firewall === 'on' ? { firewall: { outboundTcp: ranges(t.fwOutTcp), outboundUdp: ranges(t.fwOutUdp), inboundTcp: ranges(t.fwInTcp) ?? [], inboundUdp: ranges(t.fwInUdp) ?? [] } } : {}),
  };
}

/** Fields of the firewall as the plan shows them. */
export function firewallFields(t: RouterTableState | undefined): Record<string, unknown> {
  if (!t || t.firewall === 'none') return { firewall: t ? 'none' : undefined };
  const list = (x: string[] | undefined) => (x === undefined ? 'any' : x.length ? x.join(',') : 'none');
  return {
    firewall: t.firewall === 'on' ? 'block-inbound' : t.firewall,
    outbound_tcp: list(t.fwOutTcp), outbound_udp: list(t.fwOutUdp), inbound_tcp: list(t.fwInTcp), inbound_udp: list(t.fwInUdp),
    rules: t.fwRules,
  };
}
