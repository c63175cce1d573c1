/**
 * Plan -> text at the level of the file (what `provium plan` prints by default): each
 * change at its plan address, described with the file's own fields and units
 * (`drop 5 % -> 7 %`, `bandwidth 2 Mbit/s`, `partition a -> c`, `a.eth0 link up -> down`),
 * why a replace happens, and which processes a deletion ends. Host internals (HTB
 * classes, class ids, qdisc handles, nft elements, unset fields) stay out; `--verbose`
 * (render/text.ts) and `--json` keep them.
 *
 * Lines come from the kinds of the items in a change, never from how an address is
 * spelled, so addresses of objects this renderer does not know (groups, routers) render
 * too. Device names and MACs (a directed pair's sender is its NIC's MAC) are turned back
 * into nodes and bridges through PlanNames; a name it cannot resolve is shown as it is.
 */
import type { Change, ItemChange, Plan } from '../plan/types.js';
import type { Item } from '../plan/items.js';
import type { HostState } from '../model/state.js';
import type { Topology } from '../model/topology.js';
import { bridgeDev, parseAlias, portDev } from '../model/names.js';
import { parseTcRate, UNSHAPED_BPS } from '../plan/ids.js';
import { hostsEntries } from '../plan/hosts.js';
import { nicMacOf } from '../plan/realize.js';
import { renderPlanFrame, SYMBOL, VERB, type RenderOptions } from './text.js';

/** A process a deletion ends (a node namespace's, a VM's, a dnsmasq's). */
export interface ProcessInfo {
  pid: number;
  /** Its command line, shortened. */
  cmd: string;
}

/** What the renderer knows about names: host devices back to the file's nodes and bridges. */
export interface PlanNames {
  /** Port device -> node, bridge and NIC ("eth0"). */
  ports: Map<string, { node: string; bridge: string; nic: string }>;
  /** Bridge device -> bridge name. */
  bridges: Map<string, string>;
  /** Node namespace -> node name. */
  namespaces: Map<string, string>;
  /** NIC MAC (lower case) -> node name: the senders of partition, drop and queue elements. */
  macs: Map<string, string>;
  /** IPv4 address (bare) -> node name. */
  addresses: Map<string, string>;
  /** Processes running in a node namespace (what deleting it ends). */
  processes?: Map<string, ProcessInfo[]>;
}

/**
 * Names from the file (what the plan creates) and from the host states (what exists: the
 * ownership marks on links and namespaces tell node and bridge back).
 */
export function planNames(t: Topology, states: HostState[], processes?: Map<string, ProcessInfo[]>): PlanNames {
  const n: PlanNames = { ports: new Map(), bridges: new Map(), namespaces: new Map(), addresses: new Map(), macs: new Map(), ...(processes ? { processes } : {}) };
  for (const b of Object.values(t.bridges)) {
    n.bridges.set(bridgeDev(t.lab, b.name), b.name);
    for (const a of b.attach) {
      n.macs.set(nicMacOf(t, a.node, b.name).toLowerCase(), a.node);
      n.ports.set(portDev(t.lab, a.node, a.nicIndex), { node: a.node, bridge: b.name, nic: a.nic });
      if (a.ip) n.addresses.set(a.ip.split('/')[0], a.node);
    }
  }
  for (const s of states) {
    for (const l of Object.values(s.links)) {
      const a = parseAlias(l.alias);
      if (a?.kind === 'bridge' && !n.bridges.has(l.name)) n.bridges.set(l.name, a.bridge);
      if (a?.kind === 'port' && !n.ports.has(l.name)) n.ports.set(l.name, { node: a.node, bridge: a.bridge, nic: `eth${l.name.slice(l.name.lastIndexOf('-') + 1)}` });
    }
    for (const vm of Object.values(s.vms)) for (const nic of Object.values(vm.nics)) if (!n.macs.has(nic.mac.toLowerCase())) n.macs.set(nic.mac.toLowerCase(), vm.node);
    for (const ns of Object.values(s.namespaces)) {
      n.namespaces.set(ns.name, ns.node);
      for (const nic of Object.values(ns.nics)) if (nic.mac && !n.macs.has(nic.mac.toLowerCase())) n.macs.set(nic.mac.toLowerCase(), ns.node);
      for (const nic of Object.values(ns.nics)) for (const a of nic.addrs) if (!n.addresses.has(a.split('/')[0])) n.addresses.set(a.split('/')[0], ns.node);
    }
  }
  for (const node of Object.values(t.nodes)) n.namespaces.set(`pv-${t.lab}-${node.name}`, node.name);
  return n;
}

type V = Record<string, any>;
const val = (i: Item | undefined): V => (i?.value ?? {}) as V;

/** "5Mbit" -> "5 Mbit/s"; the unshaped rate -> "none". */
function bw(rate: unknown): string {
  if (typeof rate !== 'string') return String(rate);
  const bps = parseTcRate(rate);
  if (bps >= UNSHAPED_BPS) return 'none';
  if (bps >= 1e9 && bps % 1e7 === 0) return `${bps / 1e9} Gbit/s`;
  if (bps >= 1e6 && bps % 1e4 === 0) return `${bps / 1e6} Mbit/s`;
  if (bps >= 1e3 && bps % 10 === 0) return `${bps / 1e3} kbit/s`;
  return `${bps} bit/s`;
}
const ms = (x: unknown) => (x === undefined || x === 0 ? 'none' : `${x} ms`);
const pct = (hundredths: unknown) => `${Number(hundredths) / 100} %`;
const list = (x: unknown) => (Array.isArray(x) && x.length ? x.join(', ') : 'none');

/** A described line; lines with the same text and different subjects are merged. */
interface Fact {
  text: string;
  subject?: string;
}

class Describer {
  constructor(private readonly names: PlanNames) {}

  /** A port device or a NIC's MAC -> its node. */
  port(dev: string): string {
    const p = this.names.ports.get(dev);
    return p ? p.node : this.names.macs.get(dev.toLowerCase()) ?? dev;
  }
  nicOf(dev: string): string {
    const p = this.names.ports.get(dev);
    return p ? `${p.node}.${p.nic}` : dev;
  }
  bridge(dev: string): string {
    return this.names.bridges.get(dev) ?? dev;
  }
  node(ns: string): string {
    return this.names.namespaces.get(ns) ?? ns;
  }
  pair(key: string, sep = ' -> '): string {
    return key.split('>').map((d) => this.port(d)).join(sep);
  }

  /** An item key in file terms (for replace reasons). */
  key(k: string): string {
    const [kind, rest] = [k.slice(0, k.indexOf(':')), k.slice(k.indexOf(':') + 1)];
    switch (kind) {
      case 'link':
        return this.names.bridges.has(rest) ? `bridge ${this.bridge(rest)}` : this.names.ports.has(rest) ? `${this.nicOf(rest)}` : rest;
      case 'netns':
        return `node ${this.node(rest)}`;
      case 'nic': {
        const [ns, ifname] = rest.split('/');
        return `${this.node(ns)}.${ifname}`;
      }
      case 'qdisc':
        return `the queue into ${this.port(rest)}`;
      case 'nft-table':
        return `the lab's ${rest} filter table`;
      case 'vm':
        return `VM ${rest}`;
      case 'vm-nic':
        return `the NIC of VM ${rest.split(':')[0]}`;
      default:
        return k;
    }
  }

  reason(r: string): string {
    const m = /^re-created with (.+)$/.exec(r);
    if (m) return `re-created with ${this.key(m[1])}`;
    return r.replace(/^skeleton cannot change in place$/, 'its structure (sets, chains, rules) differs from what provium writes')
      .replace(/^kind cannot change in place$/, 'its device kind changed')
      .replace(/^config, alive cannot change in place$|^alive cannot change in place$/, 'its process is not running')
      .replace(/^config cannot change in place$/, 'its configuration changed');
  }

  /** Facts for one item change; [] hides it. */
  facts(c: ItemChange, group: ItemChange[]): Fact[] {
    const it = (c.after ?? c.before)!;
    const ref = it.ref;
    const before = val(c.before);
    const after = val(c.after);
    const fields = c.fields.filter((f) => f.field !== 'owner');
    const changed = (f: string) => fields.some((x) => x.field === f);
    const del = c.action === 'delete';
    // A replace re-creates the object: described as what it will be.
    const add = c.action === 'create' || c.action === 'replace';
    // Goes with its parent (a node's routes with the node): nothing of its own to say.
    if (c.implied) return [];
    switch (ref.kind) {
      case 'netns': {
        if (del) {
          const procs = this.names.processes?.get(ref.ns) ?? [];
          return procs.length ? [{ text: `ends ${procs.length} process${procs.length === 1 ? '' : 'es'} still running in node ${this.node(ref.ns)}: ${procs.map((p) => `${p.pid} (${p.cmd})`).join(', ')}` }] : [];
        }
        if (add) return [{ text: `${group.some((g) => (g.after ?? g.before)?.ref.kind === 'router') ? 'router' : 'node'} ${this.node(ref.ns)} (network namespace)` }];
        return changed('loUp') ? [{ text: 'loopback up (was down)' }] : [];
      }
      case 'nic': {
        const nic = `${this.node(ref.ns)}.${ref.ifname}`;
        if (del) return [];
        if (add) {
          const addrs = [...(after.addrs ?? []), ...(after.addrs6 ?? [])];
          return [{ text: `${nic} ${addrs.length ? addrs.join(' ') : '(no address)'}${after.mtu !== undefined && group.some((g) => (g.after?.value as V | undefined)?.mtu !== undefined && g.after?.ref.kind === 'link') ? `, mtu ${after.mtu}` : ''}` }];
        }
        const out: Fact[] = [];
        if (changed('addrs')) out.push({ text: `${nic} address ${list(before.addrs)} -> ${list(after.addrs)}` });
        if (changed('addrs6') && (before.addrs6?.length || after.addrs6?.length)) out.push({ text: `${nic} IPv6 address ${list(before.addrs6)} -> ${list(after.addrs6)}` });
        if (changed('up')) out.push({ text: `${nic} up inside the node (was ${before.up ? 'up' : 'down'})` });
        if (changed('mtu')) out.push({ text: `${nic} mtu ${before.mtu ?? 'default'} -> ${after.mtu}` });
        if (changed('mac')) out.push({ text: `${nic} mac ${before.mac} -> ${after.mac}` });
        return out;
      }
      case 'routes': {
        const have: string[] = c.action === 'replace' ? [] : before.routes ?? [];
        const want: string[] = after.routes ?? [];
        const node = this.node(ref.ns);
        const gone = have.filter((r) => !want.includes(r));
        const fresh = want.filter((r) => !have.includes(r));
        void node;
        return [...fresh.map((r) => ({ text: `route ${r}` })), ...(del ? gone.map((r) => ({ text: `no route ${r}` })) : gone.map((r) => ({ text: `no route ${r}` })))];
      }
      case 'link': {
        const isBridge = (after.kind ?? before.kind) === 'bridge';
        if (isBridge) {
          const b = this.bridge(ref.name);
          if (del) return [];
          if (add) {
            const addrs = [...(after.addrs ?? []), ...(after.addrs6 ?? [])];
            return [{ text: `bridge ${b}${addrs.length ? `, host ${addrs.join(' ')}` : ''}${after.mtu !== undefined ? `, mtu ${after.mtu}` : ''}` }];
          }
          const out: Fact[] = [];
          if (changed('addrs')) out.push({ text: `host address ${list(before.addrs)} -> ${list(after.addrs)}` });
          if (changed('addrs6') && (before.addrs6?.length || after.addrs6?.length)) out.push({ text: `host IPv6 address ${list(before.addrs6)} -> ${list(after.addrs6)}` });
          if (changed('mtu')) out.push({ text: `mtu ${before.mtu ?? 'default'} -> ${after.mtu}` });
          if (changed('up')) out.push({ text: `bridge ${b} up (was down)` });
          if (changed('alias')) out.push({ text: 'ownership mark restored' });
          return out;
        }
        if ((after.kind ?? before.kind) === 'vxlan') {
          const b = this.bridge(String(after.master ?? before.master ?? ''));
          if (del) return [];
          if (add) return [{ text: `VXLAN port of bridge ${b} (${after.vxlan})${after.mtu !== undefined ? `, mtu ${after.mtu}` : ''}` }];
          const out: Fact[] = [];
          if (changed('vxlan')) out.push({ text: `VXLAN ${before.vxlan} -> ${after.vxlan}` });
          if (changed('up')) out.push({ text: `VXLAN port of bridge ${b} up (was down)` });
          if (changed('master')) out.push({ text: `VXLAN port moves to bridge ${b}` });
          if (changed('mtu')) out.push({ text: `VXLAN port mtu ${before.mtu ?? 'default'} -> ${after.mtu}` });
          if (changed('alias')) out.push({ text: 'VXLAN port ownership mark restored' });
          return out;
        }
        const nic = this.nicOf(ref.name);
        if (del) return [];
        if (add) {
          const out: Fact[] = [];
          if (after.kind === 'tun' && !group.some((g) => g.after?.ref.kind === 'nic')) out.push({ text: `${nic} (TAP on bridge ${this.bridge(after.master)})` });
          if (after.up === false) out.push({ text: `${nic} link down` });
          return out;
        }
        const out: Fact[] = [];
        if (changed('up')) out.push({ text: `${nic} link ${before.up ? 'up' : 'down'} -> ${after.up ? 'up' : 'down'}` });
        if (changed('master')) out.push({ text: `${nic} moves from bridge ${before.master ? this.bridge(before.master) : '(none)'} to ${this.bridge(after.master)}` });
        if (changed('mtu')) out.push({ text: `${nic} mtu ${before.mtu ?? 'default'} -> ${after.mtu}` });
        if (changed('alias')) out.push({ text: `${nic} ownership mark restored` });
        return out;
      }
      case 'fdb': {
        if (del) return [];
        return [{ text: `VXLAN peers (other hosts' underlay addresses): ${add ? '' : `${list(before.peers)} -> `}${list(after.peers)}` }];
      }
      case 'router': {
        if (del) return [];
        const node = this.node(ref.ns);
        // The router's NICs ("eth1,eth2") as the bridges they are on ("inet (eth1)").
        const onBridges = (nics: unknown) => (typeof nics === 'string' && nics ? nics.split(',').map((nic) => {
          const p = [...this.names.ports.values()].find((x) => x.node === node && x.nic === nic);
          return p ? `${p.bridge} (${nic})` : nic;
        }).join(', ') : 'none');
        if (add) {
          return [{
            text: `upstream ${onBridges(after.upstream)}, downstream ${onBridges(after.downstream)}${after.public_address ? `, public address ${after.public_address}` : ''}, forwarding${after.ipv6_forwarding ? ' IPv4 and IPv6' : ' IPv4'}`,
          }];
        }
        const out: Fact[] = [];
        const onoff = (x: unknown) => (x === 1 ? 'on' : x === 0 ? 'off' : 'unknown');
        if (changed('ip_forward')) out.push({ text: `IPv4 forwarding ${onoff(before.ip_forward)} -> ${onoff(after.ip_forward)}` });
        if (changed('ipv6_forwarding')) out.push({ text: `IPv6 forwarding ${onoff(before.ipv6_forwarding)} -> ${onoff(after.ipv6_forwarding)}` });
        if (changed('upstream')) out.push({ text: `upstream ${onBridges(before.upstream)} -> ${onBridges(after.upstream)}` });
        if (changed('downstream')) out.push({ text: `downstream ${onBridges(before.downstream)} -> ${onBridges(after.downstream)}` });
        if (changed('public_address')) out.push({ text: `public address ${before.public_address || 'none'} -> ${after.public_address || 'none'}` });
        if (changed('table')) out.push({ text: before.table === undefined ? 'its nft table is written again (missing)' : 'its nft table is rewritten (it differs from what provium writes)' });
        return out;
      }
      case 'router-nat': {
        if (del) return [];
        const natLine = (v: V) => (v.nat === 'none' ? 'none' : v.nat ?? [
          `mapping ${v.mapping}`, `filtering ${v.filtering}`, v.hairpin ? 'hairpin' : 'no hairpin', v.port_preservation ? 'port preservation' : '',
          v.udp_timeout_s !== undefined ? `UDP timeout ${v.udp_timeout_s} s` : '', v.tcp_established_timeout_s !== undefined ? `TCP established timeout ${v.tcp_established_timeout_s} s` : '',
        ].filter(Boolean).join(', '));
        if (add) return [{ text: `NAT ${natLine(after)}` }];
        const out: Fact[] = [];
        if (changed('nat') || (before.nat === undefined) !== (after.nat === undefined)) return [{ text: `NAT ${before.nat === undefined && before.mapping === undefined ? 'unknown' : natLine(before)} -> ${natLine(after)}` }];
        for (const f of ['mapping', 'filtering']) if (changed(f)) out.push({ text: `NAT ${f} ${before[f]} -> ${after[f]}` });
        if (changed('hairpin')) out.push({ text: `NAT hairpin ${before.hairpin ? 'on' : 'off'} -> ${after.hairpin ? 'on' : 'off'}` });
        if (changed('port_preservation')) out.push({ text: `NAT port preservation ${before.port_preservation ? 'on' : 'off'} -> ${after.port_preservation ? 'on' : 'off'}` });
        if (changed('udp_timeout_s')) out.push({ text: `NAT UDP timeout ${before.udp_timeout_s ?? '?'} s -> ${after.udp_timeout_s} s` });
        if (changed('tcp_established_timeout_s')) out.push({ text: `NAT TCP established timeout ${before.tcp_established_timeout_s ?? '?'} s -> ${after.tcp_established_timeout_s} s` });
        if (changed('rules') && out.length === 0) out.push({ text: 'NAT rules rewritten (they differ from what provium writes)' });
        return out;
      }
      case 'router-fw': {
        if (del) return [];
        const fwLine = (v: V) => (v.firewall === 'none' || v.firewall === undefined ? String(v.firewall ?? 'unknown') : `${v.firewall} (outbound tcp ${v.outbound_tcp}, udp ${v.outbound_udp}; inbound tcp ${v.inbound_tcp}, udp ${v.inbound_udp})`);
        if (add) return [{ text: `firewall ${fwLine(after)}` }];
        if (fields.some((f) => f.field !== 'rules')) return [{ text: `firewall ${fwLine(before)} -> ${fwLine(after)}` }];
        return fields.length ? [{ text: 'firewall rules rewritten (they differ from what provium writes)' }] : [];
      }
      case 'qdisc': {
        if (add) return [{ text: `queueing of what ${this.port(ref.dev)} receives (for its bandwidth and latency)` }];
        if (del) return [];
        return [];
      }
      case 'class': {
        const into = it.ref.kind === 'class' && ref.minor === 2 ? `into ${this.port(ref.dev)}` : undefined;
        if (del) {
          const what = [before.rate && bw(before.rate) !== 'none' ? 'bandwidth' : '', before.delayMs ? 'latency' : ''].filter(Boolean).join(' and ');
          return what ? [{ text: `no ${what} any more`, ...(into ? { subject: into } : {}) }] : [];
        }
        if (add) {
          const parts = [
            bw(after.rate) !== 'none' ? `bandwidth ${bw(after.rate)}` : '',
            after.delayMs ? `latency ${after.delayMs} ms` : '',
            after.jitterMs ? `jitter ${after.jitterMs} ms` : '',
          ].filter(Boolean);
          return parts.length ? [{ text: parts.join(', '), ...(into ? { subject: into } : {}) }] : [];
        }
        const out: Fact[] = [];
        const subj = into ? { subject: into } : {};
        if (changed('rate')) out.push({ text: `bandwidth ${bw(before.rate)} -> ${bw(after.rate)}`, ...subj });
        if (changed('delayMs')) out.push({ text: `latency ${ms(before.delayMs)} -> ${ms(after.delayMs)}`, ...subj });
        if (changed('jitterMs')) out.push({ text: `jitter ${ms(before.jitterMs)} -> ${ms(after.jitterMs)}`, ...subj });
        if (changed('limit') && !changed('delayMs') && !changed('rate') && !changed('jitterMs')) out.push({ text: `netem queue ${before.limit ?? 1000} -> ${after.limit} packets (sized from bandwidth and latency)`, ...subj });
        return out;
      }
      case 'nft-table': {
        const what = ref.family === 'bridge' ? 'partitions, isolation, drop and shaping' : 'routes, uplink and port forwards';
        if (add) return [{ text: `the lab's ${ref.family} filter table (${what})` }];
        return [];
      }
      case 'elem':
        return this.elem(c, group);
      case 'sysctl': {
        if (del) return [];
        return [{ text: `${ref.name} ${before.value ?? '(unknown)'} -> ${after.value}` }];
      }
      case 'vm': {
        if (del) {
          const pid = ((c.before?.meta as V | undefined)?.vm as { pid?: number } | undefined)?.pid;
          return [{ text: `VM ${ref.node} stops${pid ? ` (qemu pid ${pid})` : ''}` }];
        }
        if (add) return [{ text: `VM ${ref.node}: ${[after.kernel && `kernel ${after.kernel}`, after.disk && `disk ${after.disk}`, `${after.memoryMb} MiB`, `${after.cpus} CPU`, after.accel].filter(Boolean).join(', ')}` }];
        const out: Fact[] = [];
        for (const f of fields) {
          if (f.field === 'alive' || f.field === 'status') continue;
          out.push({ text: `${f.field === 'memoryMb' ? 'memory' : f.field} ${f.field === 'memoryMb' ? `${f.before} MiB -> ${f.after} MiB` : `${f.before ?? '(none)'} -> ${f.after ?? '(none)'}`}` });
        }
        if (changed('status') && !changed('alive')) out.push({ text: `VM ${ref.node} resumes (was ${before.status})` });
        return out;
      }
      case 'vm-nic': {
        const nic = this.nicOf(ref.tap);
        if (del) return c.implied ? [] : [{ text: `${nic} unplugged from VM ${ref.node}` }];
        if (add) return [{ text: `${nic} (virtio NIC, mac ${after.mac})` }];
        return fields.map((f) => ({ text: `${nic} ${f.field} ${f.before} -> ${f.after}` }));
      }
      case 'vm-link': {
        if (del) return [];
        const nic = this.nicOf(ref.tap);
        if (add && after.link === 'up') return [];
        return [{ text: `${nic} link ${before.link ?? 'up'} -> ${after.link} (recorded: QEMU cannot report it)` }];
      }
      case 'dnsmasq': {
        if (del) {
          const pid = (c.before?.meta as V | undefined)?.pid;
          return [{ text: `DHCP/DNS server of bridge ${ref.bridge} stops${pid ? ` (dnsmasq pid ${pid})` : ''}` }];
        }
        if (add) return [{ text: `DHCP/DNS server of bridge ${ref.bridge} (dnsmasq)` }];
        return [];
      }
      case 'hosts': {
        if (del) return [];
        const names = hostsEntries(String(after.content ?? ''));
        return [{ text: `${add ? '' : 'rewritten: '}${this.node(ref.ns)} resolves the lab's node names without DNS (${names} entries in its /etc/hosts)` }];
      }
      case 'resolv': {
        if (del) return [];
        const ns = /^nameserver (\S+)$/m.exec(String(after.content ?? ''))?.[1];
        const search = /^search (.+)$/m.exec(String(after.content ?? ''))?.[1];
        return [{ text: `${this.node(ref.ns)} resolves names through ${ns ?? '?'}${search ? ` (search ${search})` : ''}` }];
      }
      default: {
        // An item kind this renderer does not know (yet): its fields, as they are.
        if (del) return [{ text: `${(ref as { kind: string }).kind} removed` }];
        return fields.map((f) => ({ text: `${f.field} ${JSON.stringify(f.before ?? null)} -> ${JSON.stringify(f.after ?? null)}` }));
      }
    }
  }

  private elem(c: ItemChange, group: ItemChange[]): Fact[] {
    const ref = (c.after ?? c.before)!.ref as Extract<Item['ref'], { kind: 'elem' }>;
    const before = val(c.before);
    const after = val(c.after);
    const del = c.action === 'delete';
    const add = c.action === 'create' || c.action === 'replace';
    const not = del ? 'no ' : '';
    switch (ref.set) {
      case 'blocked':
        return [{ text: `${not}partition ${this.pair(ref.key)}` }];
      case 'isolated':
        return [{ text: `${not}isolate ${this.port(ref.key)}` }];
      case 'loss': {
        if (del) {
          // Exempt from the whole-bridge drop no more: that one applies to the pair again.
          const back = group.some((g) => g.action === 'delete' && g.before?.ref.kind === 'elem' && g.before.ref.set === 'loss_own' && g.before.ref.key === ref.key);
          return [{ text: back ? `drop ${pct(before.value)} -> the whole bridge's` : 'no drop', subject: this.pair(ref.key) }];
        }
        if (add) return [{ text: `drop ${pct(after.value)}`, subject: this.pair(ref.key) }];
        if (before.value !== after.value) return [{ text: `drop ${pct(before.value)} -> ${pct(after.value)}`, subject: this.pair(ref.key) }];
        return [{ text: 'ownership mark restored', subject: this.pair(ref.key) }];
      }
      case 'loss_port': {
        // The whole-bridge drop towards one node, from every sender without a drop of its own.
        const subject = `* -> ${this.port(ref.key)}`;
        if (del) return [{ text: 'no drop', subject }];
        if (add) return [{ text: `drop ${pct(after.value)}`, subject }];
        if (before.value !== after.value) return [{ text: `drop ${pct(before.value)} -> ${pct(after.value)}`, subject }];
        return [{ text: 'ownership mark restored', subject }];
      }
      case 'loss_own': {
        // Shown only when the pair's own drop element does not change with it.
        if (group.some((g) => { const r = (g.after ?? g.before)!.ref; return r.kind === 'elem' && r.set === 'loss' && r.key === ref.key; })) return [];
        if (c.action === 'update') return [{ text: 'ownership mark restored', subject: this.pair(ref.key) }];
        return [{ text: del ? 'the whole-bridge drop applies again' : 'no drop (exempt from the whole-bridge drop)', subject: this.pair(ref.key) }];
      }
      case 'prio': {
        // Which queue a pair's frames take: shown only when its class does not change with it.
        if (group.some((g) => g.after?.ref.kind === 'class' || g.before?.ref.kind === 'class')) return [];
        if (c.action === 'update' && before.value !== after.value) return [];
        return [{ text: del ? 'no own queue any more' : 'sent through its own queue (restored)', subject: this.pair(ref.key) }];
      }
      case 'bridges':
        return [];
      case 'routed': {
        const [x, y] = ref.key.split('>');
        if (x === y) return [];
        return [{ text: `${not}route ${this.bridge(x)} -> ${this.bridge(y)}` }];
      }
      case 'uplinked':
        return [{ text: del ? 'no uplink' : `uplink from bridge ${this.bridge(ref.key)} (NAT masquerade)` }];
      case 'masq':
        return [{ text: `${del ? 'no ' : ''}masquerade of ${ref.key}` }];
      case 'masq6':
        return [{ text: `${del ? 'no ' : ''}IPv6 masquerade of ${ref.key}` }];
      case 'wan':
        return [{ text: `${del ? 'no ' : ''}uplink through ${ref.key}` }];
      case 'wan6':
        return [{ text: `${del ? 'no ' : ''}IPv6 uplink through ${ref.key}` }];
      case 'forwards': {
        const to = String((del ? before : after).value ?? '');
        const node = this.names.addresses.get(to.split(':')[0]);
        const text = `forward ${ref.key} -> ${to}${node ? ` (${node})` : ''}`;
        if (c.action === 'update') return [{ text: `forward ${ref.key} -> ${before.value} -> ${after.value}` }];
        return [{ text: del ? `no ${text}` : text }];
      }
      default:
        return [{ text: `${not}${ref.set} ${ref.key}` }];
    }
  }
}


/** Merges facts: the same text with several subjects becomes one line; partitions both ways become `a <-> b`. */
function merge(facts: Fact[], limit = 8): string[] {
  const out: string[] = [];
  // Sets keep this linear: a whole-bridge change on a big bridge has tens of thousands of facts.
  const bySubject = new Map<string, Set<string>>();
  const plainSet = new Set<string>();
  for (const f of facts) {
    if (f.subject === undefined) plainSet.add(f.text);
    else {
      let l = bySubject.get(f.text);
      if (!l) bySubject.set(f.text, (l = new Set()));
      l.add(f.subject);
    }
  }
  const plain = [...plainSet];
  // "partition a -> b" and "partition b -> a" -> "partition a <-> b" (also routes).
  const done = new Set<string>();
  for (const p of plain) {
    if (done.has(p)) continue;
    const m = /^(no )?(partition|route) (\S+) -> (\S+)$/.exec(p);
    const rev = m ? `${m[1] ?? ''}${m[2]} ${m[4]} -> ${m[3]}` : undefined;
    if (m && rev && plainSet.has(rev)) {
      const [x, y] = [m[3], m[4]].sort();
      out.push(`${m[1] ?? ''}${m[2]} ${x} <-> ${y}`);
      done.add(rev);
    } else out.push(p);
    done.add(p);
  }
  // Partition lines by name (their elements are keyed by the sender's MAC, whose order means nothing).
  const isPart = (l: string) => /^(no )?partition /.test(l);
  const parts = out.filter(isPart).sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
  const first = out.findIndex(isPart);
  if (first >= 0) out.splice(0, out.length, ...out.slice(0, first).filter((l) => !isPart(l)), ...parts, ...out.slice(first).filter((l) => !isPart(l)));
  for (const [text, subjectSet] of bySubject) {
    const subjects = [...subjectSet];
    // "into a", "into b" -> "into a, b".
    const into = subjects.every((x) => x.startsWith('into '));
    // Sorted by name (pairs are keyed by the sender's MAC, whose order means nothing).
    const names = (into ? subjects.map((x) => x.slice(5)) : subjects).sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
    const shown = names.slice(0, limit).join(', ');
    const more = names.length > limit ? `, and ${names.length - limit} more (--verbose lists them)` : '';
    if (into) out.push(`${text} into ${shown}${more}`);
    else out.push(names.length === 1 ? `${names[0]}: ${text}` : `${text}: ${shown}${more}`);
  }
  return out;
}

/** The lines describing one change, in file terms. */
export function describeChange(ch: Change, names: PlanNames): { lines: string[]; reasons: string[] } {
  const d = new Describer(names);
  const rank = (it: ItemChange) => {
    const i = (it.after ?? it.before)!;
    if (i.ref.kind === 'link') return val(i).kind === 'bridge' ? 1 : 3;
    const order: Record<string, number> = { netns: 0, router: 1, nic: 2, routes: 4, vm: 5, 'vm-nic': 6, 'vm-link': 7, 'router-nat': 8, 'router-fw': 9 };
    return order[i.ref.kind] ?? 10;
  };
  const items = [...ch.items].sort((a, b) => rank(a) - rank(b));
  const facts = items.flatMap((it) => d.facts(it, ch.items));
  const reasons = [...new Set(ch.items.filter((it) => it.action === 'replace' && it.reason).map((it) => d.reason(it.reason!)))];
  return { lines: merge(facts), reasons };
}

/** The default plan text (see the module comment). */
export function renderPlanFile(plan: Plan, names: PlanNames, opts: RenderOptions): string {
  return renderPlanFrame(plan, opts, (out, c) => {
    const color = { create: c.green, update: c.yellow, replace: c.magenta, delete: c.red };
    for (const ch of plan.changes) {
      const { lines, reasons } = describeChange(ch, names);
      const why = ch.action === 'replace' && reasons.length ? `: ${reasons.join('; ')}` : '';
      out.push(`${color[ch.action](`  ${SYMBOL[ch.action]} ${ch.address}`)} ${c.dim(VERB[ch.action] + why)}`);
      for (const l of lines) out.push(`      ${l}`);
    }
    out.push('');
  });
}
