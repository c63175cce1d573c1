/**
 * Checks of multi-host labs (`hosts:`, node `host:`, bridge `home:`/`vni:`, `vxlan:`):
 * every host is local or ssh (exactly one), at most one is local, underlay addresses are
 * distinct; with hosts every node names one; a bridge whose members are on several hosts
 * names its home when it has host-side features (an address, DHCP/DNS, routes, uplink,
 * forwards); routed bridges share a home; VXLAN device names fit and VNIs are distinct.
 * Without `hosts:` none of these keys is allowed. Each problem is reported where it is written.
 */
import { IFNAMSIZ_MAX, LAB_RE, NAME_RE, bridgeDev, deriveVni, vxlanDev } from '../model/names.js';
import type { InBridge, Input } from './input.js';
import { q, type Reporter } from './report.js';

/**
 * The hosts a bridge lives on: its members' hosts plus its home (given, or the one host
 * of its members, or else the local host / first host). Sorted. Only for files with hosts.
 */
export function bridgeHosts(input: Input, b: InBridge): { hosts: string[]; home: string | undefined } {
  const members = [...new Set(b.attach.map((a) => input.nodes?.get(a.node)?.host).filter((h): h is string => !!h))].sort();
  const home = b.home ?? (members.length === 1 ? members[0] : members.length === 0 ? defaultHost(input) : undefined);
  return { hosts: [...new Set([...members, ...(home ? [home] : [])])].sort(), home };
}

/** The host of a bridge without members and without home: the local host, else the first host in the file. */
function defaultHost(input: Input): string | undefined {
  const hs = [...(input.hosts?.values() ?? [])];
  return (hs.find((h) => h.local) ?? hs[0])?.name;
}

/** Whether the bridge has anything that lives on its home host. */
function hostSide(b: InBridge): string | undefined {
  if (b.subnet) return 'subnet (its host address)';
  if (b.subnet6) return 'subnet6 (its host address)';
  if (b.dhcp || b.dns) return 'dhcp/dns';
  if (b.uplink) return 'uplink';
  if (b.routes.length) return 'routes';
  if (b.forwards.length) return 'forwards';
  return undefined;
}

export function checkHosts(input: Input, r: Reporter): void {
  const hosts = input.hosts;
  if (!hosts) {
    for (const n of input.nodes?.values() ?? []) if (n.host !== undefined) r.error([...n.path, 'host'], 'host without hosts', `node ${q(n.name)} names host ${q(n.host)}, but the file has no hosts: section`, { key: true });
    for (const b of input.bridges?.values() ?? []) {
      for (const k of ['home', 'vni'] as const) if (b[k] !== undefined) r.error([...b.path, k], `${k} without hosts`, `bridge ${q(b.name)} sets ${k}, which only a file with a hosts: section uses`, { key: true });
    }
    if (input.vxlanGiven) r.error(['vxlan'], 'vxlan without hosts', 'vxlan: settings only apply to a file with a hosts: section', { key: true });
    return;
  }
  const locals = [...hosts.values()].filter((h) => h.local);
  if (locals.length > 1) r.error(locals[1].path, 'two local hosts', `hosts ${q(locals[0].name)} and ${q(locals[1].name)} both say local: true; at most one host is the machine provium runs on`, { key: true });
  const underlays = new Map<string, string>();
  for (const h of hosts.values()) {
    if (h.local === (h.ssh !== undefined)) r.error(h.path, 'local or ssh', `host ${q(h.name)} needs exactly one of local: true and ssh:`, { key: true });
    if (h.local) {
      for (const k of ['port', 'identity', 'sshConfig'] as const) {
        if (h[k] !== undefined) r.error([...h.path, k === 'sshConfig' ? 'ssh_config' : k], 'ssh setting on the local host', `host ${q(h.name)} is local: ${k === 'sshConfig' ? 'ssh_config' : k} applies to ssh hosts only`, { key: true });
      }
    }
    if (h.underlay) {
      const first = underlays.get(h.underlay);
      if (first) r.error([...h.path, 'underlay'], 'duplicate underlay', `host ${q(h.name)} has underlay ${h.underlay}, like host ${q(first)}`);
      else underlays.set(h.underlay, h.name);
    }
  }
  for (const n of input.nodes?.values() ?? []) {
    if (n.host === undefined) r.error(n.path, 'missing host', `node ${q(n.name)} needs host: (the file has hosts: ${[...hosts.keys()].join(', ')})`, { key: true });
    else if (!hosts.has(n.host)) r.error([...n.path, 'host'], 'unknown host', `node ${q(n.name)} names host ${q(n.host)}, which is not defined under hosts`);
    if (n.kind === 'router') r.error([...n.path, 'kind'], 'router in a multi-host lab', `node ${q(n.name)} is a router: routers (kind: router, gateway:, nat:) are not supported in labs with hosts: yet; use a single-host lab for NAT tests`);
  }
  const lab = input.lab;
  const vnis = new Map<number, string>();
  const homes = new Map<string, string | undefined>();
  for (const b of input.bridges?.values() ?? []) {
    if (b.home !== undefined && !hosts.has(b.home)) {
      r.error([...b.path, 'home'], 'unknown host', `bridge ${q(b.name)} names home ${q(b.home)}, which is not defined under hosts`);
      continue;
    }
    const { hosts: on, home } = bridgeHosts(input, b);
    homes.set(b.name, home);
    const side = hostSide(b);
    if (!home && side) {
      r.error(b.path, 'missing home', `bridge ${q(b.name)} has members on hosts ${on.join(', ')} and ${side}: name the host that holds them with home:`, { key: true });
    }
    if (on.length < 2 || !lab || !LAB_RE.test(lab) || !NAME_RE.test(b.name)) continue;
    const dev = vxlanDev(lab, b.name);
    if (Buffer.byteLength(dev) > IFNAMSIZ_MAX) r.error(b.path, 'name too long for an interface', `bridge ${q(b.name)} spans hosts: its VXLAN port '${dev}' is ${Buffer.byteLength(dev)} bytes, at most ${IFNAMSIZ_MAX}; shorten the lab or bridge name`, { key: true });
    for (const other of input.bridges?.values() ?? []) {
      if (bridgeDev(lab, other.name) === dev) r.error(other.path, 'device name collision', `'${dev}' would be both the device of bridge ${q(other.name)} and the VXLAN port of bridge ${q(b.name)}; rename one of them`, { key: true });
    }
    const vni = b.vni ?? deriveVni(lab, b.name);
    const first = vnis.get(vni);
    if (first) r.error(b.vni !== undefined ? [...b.path, 'vni'] : b.path, 'duplicate VNI', `bridge ${q(b.name)} would use VNI ${vni}, like bridge ${q(first)}; give one of them another vni:`, { key: b.vni === undefined });
    else vnis.set(vni, b.name);
  }
  for (const b of input.bridges?.values() ?? []) {
    for (const ref of b.routes) {
      const other = homes.get(ref.name);
      const mine = homes.get(b.name);
      if (input.bridges?.has(ref.name) && mine && other && mine !== other) {
        r.error(ref.path, 'routes across homes', `bridge ${q(b.name)} (home ${q(mine)}) routes to bridge ${q(ref.name)} (home ${q(other)}): routed bridges must share a home host, which forwards between them`);
      }
    }
  }
}
