/**
 * `provium show`: the lab as the host has it (observed), by object, plus drift
 * against the file. Port devices are named back to nodes through their ifalias.
 */
import { Chalk } from 'chalk';
import { readFileSync } from 'node:fs';
import type { Topology } from '../model/topology.js';
import type { NftBridgeTable } from '../model/state.js';
import type { Planned } from '../apply/index.js';
import { parseAlias } from '../model/names.js';
import { nicMacOf } from '../plan/realize.js';
import { planJson } from './json.js';
import type { DropCounter, NicCounters } from '../observe/counters.js';
import { firewallFields, parseNatCode } from '../plan/router-nft.js';

/** Drop counters of the lab's bridge table (observe/counters.ts readDropCounters). */
export interface Drops {
  elements: DropCounter[];
  perElement: boolean;
  rules: Record<string, number>;
}

/** Leases dnsmasq handed out ("expiry mac ip hostname clientid" lines of its lease file, named in its config). */
function readLeases(config: string): { mac: string; ip: string; name: string; expires: string }[] {
  const file = /^dhcp-leasefile=(.+)$/m.exec(config)?.[1];
  if (!file) return [];
  try {
    return readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => {
      const [exp, mac, ip, name] = l.split(' ');
      return { mac, ip, name: name === '*' ? '' : name, expires: new Date(Number(exp) * 1000).toISOString() };
    });
  } catch {
    return [];
  }
}

interface PortView {
  mac?: string;
  node: string;
  bridge: string;
  port: string;
  kind: string;
  link: 'up' | 'down';
  /** "observed" (the port's state) or "recorded" (a VM NIC: what provium last set over QMP). */
  link_source: 'observed' | 'recorded';
  /** The NIC's counters as the node sees them. */
  counters?: NicCounters;
  nic?: string;
  addrs: string[];
}

/** Observed objects of the lab, keyed by user-level names. */
export function showJson(t: Topology, planned: Planned, counters: Record<string, NicCounters> = {}, drops?: Drops) {
  const s = planned.observation.state;
  const who = new Map<string, { node: string; bridge: string }>();
  for (const l of Object.values(s.links)) {
    const a = parseAlias(l.alias);
    if (a?.kind === 'port') who.set(l.name, { node: a.node, bridge: a.bridge });
  }
  // Senders of pair elements are MACs (the file's NICs): named back through the file.
  const macs = new Map<string, string>();
  for (const b of Object.values(t.bridges)) for (const a of b.attach) macs.set(nicMacOf(t, a.node, b.name), a.node);
  const name = (devOrMac: string) => who.get(devOrMac)?.node ?? macs.get(devOrMac) ?? devOrMac;
  const pair = (k: string) => k.split('>').map(name).join('->');
  const bridges: Record<string, unknown> = {};
  for (const l of Object.values(s.links)) {
    const a = parseAlias(l.alias);
    if (a?.kind !== 'bridge') continue;
    const ports: PortView[] = Object.values(s.links)
      .filter((p) => p.master === l.name)
      .map((p) => {
        const w = who.get(p.name);
        const nsName = Object.values(s.namespaces).find((n) => n.node === w?.node);
        const nicName = `eth${p.name.split('-').pop()}`;
        const nic = nsName?.nics[nicName];
        const vm = w ? s.vms[w.node] : undefined;
        const recorded = vm?.links[p.name];
        return {
          node: w?.node ?? '?', bridge: a.bridge, port: p.name, kind: p.kind === 'tun' ? 'tap' : p.kind,
          link: recorded ?? (p.up ? 'up' : 'down'), link_source: recorded ? 'recorded' : 'observed',
          ...(nic ? { nic: nicName, mac: nic.mac } : vm?.nics[p.name] ? { nic: nicName, mac: vm.nics[p.name].mac } : {}), addrs: [...(nic?.addrs ?? []), ...(nic?.addrs6 ?? [])],
          ...(w && counters[`${w.node}.${nicName}`] ? { counters: counters[`${w.node}.${nicName}`] } : {}),
        } as PortView;
      });
    const devs = new Set(ports.map((p) => p.port));
    const dm = s.dnsmasq[a.bridge];
    const names = dm ? [...dm.config.matchAll(/^host-record=([^,\n]+),(.+)$/gm)].map((m) => ({ name: m[1], addresses: m[2].split(',') })) : [];
    const leases = dm ? readLeases(dm.config) : [];
    const inBridge = (k: string) => devs.has(k.split('>')[1]);
    const bt = s.nft.bridge;
    const sortBy = <T,>(xs: T[], k: (x: T) => string) => [...xs].sort((a, b) => (k(a) < k(b) ? -1 : k(a) > k(b) ? 1 : 0));
    const counted = (set: string, key: string) => drops?.elements.find((e) => e.set === set && e.key === key);
    const dropped = drops
      ? {
        per_element: drops.perElement,
        partitions: sortBy(Object.entries(bt?.blocked ?? {}).filter(([k]) => inBridge(k)).map(([k, v]) => ({ pair: pair(k), address: v.owner, packets: counted('blocked', k)?.packets ?? null })), (x) => x.pair),
        isolated: sortBy(Object.entries(bt?.isolated ?? {}).filter(([d]) => devs.has(d)).map(([d, v]) => ({ node: name(d), address: v.owner, packets: counted('isolated', d)?.packets ?? null })), (x) => x.node),
        // A whole-bridge drop counts per receiving port: pair "* -> NODE" (every sender without a drop of its own).
        drop: sortBy([
          ...Object.entries(bt?.loss ?? {}).filter(([k]) => inBridge(k)).map(([k, v]) => ({ pair: pair(k), drop_pct: v.value / 100, address: v.owner, packets: counted('loss', k)?.packets ?? null })),
          ...Object.entries(bt?.lossPort ?? {}).filter(([d]) => devs.has(d)).map(([d, v]) => ({ pair: `*->${name(d)}`, drop_pct: v.value / 100, address: v.owner, packets: counted('loss_port', d)?.packets ?? null })),
        ], (x) => x.pair),
      }
      : undefined;
    bridges[a.bridge] = {
      device: l.name, up: l.up, host_addresses: [...l.addrs, ...(l.addrs6 ?? [])], mtu: l.mtu, ports,
      dns: dm ? { running: dm.alive, names } : null,
      dhcp_leases: leases,
      partitions: Object.keys(bt?.blocked ?? {}).filter(inBridge).map(pair).sort(),
      isolated: Object.keys(bt?.isolated ?? {}).filter((d) => devs.has(d)).map(name).sort(),
      drop_pct: Object.fromEntries(dropPerPair(bt, devs, (t.bridges[a.bridge]?.attach ?? []).map((m) => ({ mac: nicMacOf(t, m.node, a.bridge), node: m.node })), (d) => who.get(d)?.node).map(([k, v]) => [pair(k), v / 100]).sort(([a], [b]) => (a < b ? -1 : 1))),
      ...(dropped ? { dropped } : {}),
      shaping: Object.fromEntries(ports.filter((p) => s.shaping[p.port]).map((p) => {
        const sh = s.shaping[p.port];
        const bySrc: Record<string, { bandwidth_bps: number; latency_ms: number; jitter_ms: number }> = {};
        for (const [k, v] of Object.entries(bt?.prio ?? {})) {
          const [src, dst] = k.split('>');
          if (dst !== p.port) continue;
          const minor = parseInt(v.value.split(':')[1], 16);
          const c = sh.classes[minor];
          if (c) bySrc[name(src)] = { bandwidth_bps: c.rateBps, latency_ms: c.netem?.delayMs ?? 0, jitter_ms: c.netem?.jitterMs ?? 0 };
        }
        const d = sh.classes[sh.defaultMinor];
        const from = Object.fromEntries(Object.entries(bySrc).sort(([a], [b]) => (a < b ? -1 : 1)));
        return [p.node, { default: d ? { bandwidth_bps: d.rateBps, latency_ms: d.netem?.delayMs ?? 0, jitter_ms: d.netem?.jitterMs ?? 0 } : null, from }];
      })),
    };
  }
  const nodes = Object.fromEntries(Object.values(s.namespaces).map((n) => [n.node, { netns: n.name, nics: n.nics, routes: n.routes }]));
  const routers = Object.fromEntries(Object.values(s.routers ?? {}).sort((a, b) => (a.node < b.node ? -1 : 1)).map((r) => {
    const nat = r.table ? parseNatCode(r.table.nat) : undefined;
    return [r.node, {
      netns: r.ns, upstream: r.table?.wan ?? [], downstream: r.table?.lan ?? [], public_address: r.table?.public4[0] ?? null,
      nat: nat ? { mapping: nat.mapping, filtering: nat.filtering, hairpin: nat.hairpin, port_preservation: nat.portPreservation, udp_timeout_s: r.ctUdp ?? null, tcp_established_timeout_s: r.ctTcpEstablished ?? null } : null,
      firewall: firewallFields(r.table),
    }];
  }));
  const vms = Object.fromEntries(Object.values(s.vms).sort((a, b) => (a.node < b.node ? -1 : 1)).map((v) => [v.node, { status: v.status, pid: v.pid ?? null, accel: v.spec.accel, memory_mb: v.spec.memoryMb, cpus: v.spec.cpus, nics: v.nics, links_recorded: v.links }]));
  return { lab: t.lab, nodes, vms, bridges, routers, ip_forward: s.ipForward ?? null, ipv6_forwarding: s.ip6Forward ?? null, drift: planJson(planned.plan) };
}

export function renderShow(t: Topology, planned: Planned, opts: { color: boolean }, counters: Record<string, NicCounters> = {}, drops?: Drops): string {
  const c = new Chalk({ level: opts.color ? 1 : 0 });
  const j = showJson(t, planned, counters, drops);
  const out: string[] = [c.bold(`lab ${t.lab}`)];
  for (const [b, v] of Object.entries(j.bridges) as [string, any][]) {
    out.push(`  bridge ${c.bold(b)} (${v.device}, ${v.up ? 'up' : 'down'}${v.host_addresses.length ? `, host ${v.host_addresses.join(' ')}` : ''})`);
    for (const p of v.ports as PortView[]) {
      const link = (p.link === 'up' ? c.green('up') : c.red('down')) + (p.link_source === 'recorded' ? c.dim(' (recorded)') : '');
      out.push(`    ${p.node.padEnd(10)} ${(p.nic ?? '').padEnd(5)} ${p.port.padEnd(16)} ${p.kind.padEnd(5)} link ${link}  ${p.addrs.join(' ')}${p.mac ? c.dim(`  ${p.mac}`) : ''}`);
      const k = p.counters;
      if (k) {
        out.push(c.dim(`      rx ${k.rx.packets} pkts ${k.rx.bytes} B ${k.rx.errors} err ${k.rx.dropped} drop | tx ${k.tx.packets} pkts ${k.tx.bytes} B ${k.tx.errors} err ${k.tx.dropped} drop`));
      }
    }
    if (v.dns) out.push(`    dns ${v.dns.running ? c.green('running') : c.red('not running')}: ${v.dns.names.map((n: { name: string; addresses: string[] }) => `${n.name} ${n.addresses.join(' ')}`).join(', ')}`);
    for (const l of v.dhcp_leases) out.push(`    dhcp lease ${l.ip} to ${l.mac}${l.name ? ` (${l.name})` : ''} until ${l.expires}`);
    const d = v.dropped as { per_element: boolean; partitions: { pair: string; packets: number | null }[]; isolated: { node: string; packets: number | null }[]; drop: { pair: string; drop_pct: number; packets: number | null }[] } | undefined;
    const n = (x: number | null | undefined) => (x === null || x === undefined ? '' : ` (${x} dropped)`);
    if (d) {
      if (d.partitions.length) out.push(`    partitions: ${d.partitions.map((x) => `${x.pair}${n(x.packets)}`).join(', ')}`);
      if (d.isolated.length) out.push(`    isolated: ${d.isolated.map((x) => `${x.node}${n(x.packets)}`).join(', ')}`);
      for (const x of d.drop) out.push(`    drop ${x.pair}: ${x.drop_pct} %${n(x.packets)}`);
      if (!d.per_element && (d.partitions.length || d.isolated.length || d.drop.length)) out.push(c.dim('    (no counters per element: the lab\'s bridge table predates them; provium apply --replace nft.bridge re-creates it)'));
    } else {
      if (v.partitions.length) out.push(`    partitions (dropped): ${v.partitions.join(', ')}`);
      if (v.isolated.length) out.push(`    isolated: ${v.isolated.join(', ')}`);
      for (const [k, pct] of Object.entries(v.drop_pct)) out.push(`    drop ${k}: ${pct} %`);
    }
    for (const [node, sh] of Object.entries(v.shaping) as [string, any][]) {
      if (sh.default && sh.default.bandwidth_bps < 10e9) out.push(`    into ${node}: ${sh.default.bandwidth_bps / 1e6} Mbit/s${sh.default.latency_ms ? `, ${sh.default.latency_ms} ms` : ''}`);
      for (const [src, x] of Object.entries(sh.from) as [string, any][]) out.push(`    ${src}->${node}: ${x.bandwidth_bps / 1e6} Mbit/s${x.latency_ms ? `, latency ${x.latency_ms} ms, jitter ${x.jitter_ms} ms` : ''}`);
    }
  }
  for (const [n, v] of Object.entries(j.routers) as [string, any][]) {
    const nat = v.nat ? `NAT ${v.nat.mapping} mapping, ${v.nat.filtering} filtering, hairpin ${v.nat.hairpin ? 'on' : 'off'}, port preservation ${v.nat.port_preservation ? 'on' : 'off'}, UDP ${v.nat.udp_timeout_s} s, TCP ${v.nat.tcp_established_timeout_s} s` : 'no NAT';
    out.push(`  router ${c.bold(n)}: upstream ${v.upstream.join(',')}${v.public_address ? ` (${v.public_address})` : ''}, downstream ${v.downstream.join(',') || '-'}; ${nat}; firewall ${v.firewall.firewall ?? 'none'}`);
  }
  for (const [n, v] of Object.entries(j.vms) as [string, any][]) {
    out.push(`  vm ${c.bold(n)}: ${v.status}${v.pid ? ` (pid ${v.pid})` : ''}, ${v.accel}, ${v.memory_mb} MiB, ${v.cpus} CPU`);
  }
  const drift = planned.plan.changes.length;
  out.push(drift === 0 ? c.green('  no drift: the host matches the file') : c.yellow(`  drift: ${drift} object(s) differ from the file (run provium plan)`));
  return out.join('\n') + '\n';
}

/**
 * The drop rate (hundredths of a percent) of every directed pair towards the given ports, as
 * "<sender MAC>><port>": the pair's own `loss` element, else its receiving port's whole-bridge
 * `loss_port` element for each sender (the bridge's members: MAC and node) that is not exempt
 * (`loss_own`) and is not the port's own node (`nodeOfPort`).
 */
export function dropPerPair(bt: NftBridgeTable | undefined, ports: Set<string>, senders: { mac: string; node: string }[], nodeOfPort: (port: string) => string | undefined): [string, number][] {
  const out = new Map<string, number>();
  for (const [k, v] of Object.entries(bt?.loss ?? {})) if (ports.has(k.split('>')[1])) out.set(k, v.value);
  const own = new Set(Object.keys(bt?.lossOwn ?? {}));
  for (const [port, v] of Object.entries(bt?.lossPort ?? {})) {
    if (!ports.has(port)) continue;
    const receiver = nodeOfPort(port);
    for (const x of senders) {
      const k = `${x.mac}>${port}`;
      if (x.node !== receiver && !own.has(k) && !out.has(k)) out.set(k, v.value);
    }
  }
  return [...out];
}
