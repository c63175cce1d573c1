/**
 * commands: item changes -> host command invocations (pure). `plan` prints these and
 * `apply` runs exactly these. Batched per tool and namespace, in dependency order:
 *   1 root `ip -batch`: netns add        2 host `ip -batch`: links (deletes first)
 *   3 per node `ip -n NS -batch`: lo, NICs, routes     4 sysctl (ip_forward, IPv6 forwarding)
 *   5 host `tc -batch`: qdiscs/classes   6 `nft -f -`: one transaction
 *   7 root `ip -batch`: netns del (before 2 when the host links are only deleted; in a
 *     pure teardown such as destroy, together with 4 and 6, which wait for no link)
 * Argument arrays only; every name in them was validated by load/ (names.ts rules).
 */
import type { Item, ItemRef } from './items.js';
import type { Invocation, ItemChange, QmpStep } from './types.js';
import type { VmNic, VmState } from '../model/state.js';
import { bridgeSkeleton, inetSkeleton, skeletonText } from './nft-skeleton.js';
import { dnsmasqPaths, resolvPath } from './realize.js';
import { hostsPath } from './hosts.js';
import { nftTable, vmDeviceId, vmNetdevId } from '../model/names.js';
import { hex, parseTcRate, ROOT_MINOR, UNSHAPED_BPS } from './ids.js';

/**
 * Where the lab's host side lives: the root namespace or an existing named one (--netns).
 * `stateDir` is <state directory>/<lab> (see apply/statedir.ts): files are written and
 * removed only there and under /etc/netns.
 */
export interface HostContext {
  hostNetns?: string;
  /** The lab's state directory (VM files live in <stateDir>/vm/<node>/). */
  stateDir?: string;
  /**
   * Multi-host labs: the name of the host this context is for. Node namespaces and
   * resolv.conf files carry it in their mark, and observe takes only this host's.
   */
  placement?: string;
  /** Re-send every VM NIC's link state (apply --refresh-links). */
  refreshLinks?: boolean;
  /** Limit the plan to these nodes or bridges and what they depend on / what depends on them (--target). */
  targets?: string[];
  /** Re-create the objects at these plan addresses even if unchanged (--replace). */
  replace?: string[];
  /** Receives warnings about the state directory (a corrupt record): the CLI prints them; default: ignored. */
  warn?: (message: string) => void;
}

/** Files of one VM: state directory, QMP socket, pidfile, console log, record. */
export function vmPaths(ctx: HostContext, node: string) {
  const dir = `${ctx.stateDir ?? '/var/lib/provium/unknown'}/vm/${node}`;
  return { dir, socket: `${dir}/qmp.sock`, pidfile: `${dir}/qemu.pid`, console: `${dir}/console.log`, record: `${dir}/vm.json` };
}

/**
 * A value inside a QEMU option list (`-drive file=VALUE,if=...`, `-netdev`, `-device`,
 * `-qmp unix:VALUE,server=on`): QEMU's option parser ends a value at a comma and reads
 * ",," as one literal comma (QEMU's docs, "Options"), so commas are doubled; otherwise a
 * path such as "disk.img,readonly=on" would add an option. Not for -kernel, -initrd,
 * -append, -pidfile or `-serial file:`, whose values QEMU takes literally (measured with
 * QEMU 7.2: a doubled comma in -kernel names another file).
 */
export function qemuOptValue(value: string): string {
  return value.replaceAll(',', ',,');
}

/**
 * The QEMU command line of a VM (daemonized, owned by the lab): TCG or KVM, memory in
 * MiB, one `-netdev tap` + `virtio-net-pci` per NIC at PCI slot 0x10+i (guest eth<i>),
 * `romfile=` skips the iPXE ROM, QMP on a unix socket, pidfile, serial console to a file.
 * User strings in option lists are escaped with qemuOptValue; the loader refuses control
 * characters in every path and the kernel command line, and commas in initrd paths.
 */
export function qemuArgv(vm: VmState, ctx: HostContext): string[] {
  const p = vmPaths(ctx, vm.node);
  const s = vm.spec;
  // QEMU opens its TAPs by name in its own network namespace: run it in the lab's host namespace.
  const argv = [
    ...(ctx.hostNetns ? ['ip', 'netns', 'exec', ctx.hostNetns] : []),
    'qemu-system-x86_64', '-name', `${vm.node},process=qemu-${vm.node}`, '-accel', s.accel, '-m', String(s.memoryMb), '-smp', String(s.cpus),
    '-display', 'none', '-vga', 'none', '-monitor', 'none', '-serial', `file:${p.console}`, '-no-reboot',
  ];
  if (s.kernel) argv.push('-kernel', s.kernel);
  if (s.initrd) argv.push('-initrd', s.initrd);
  if (s.append !== undefined) argv.push('-append', s.append);
  const o = qemuOptValue;
  if (s.disk) argv.push('-drive', `file=${o(s.disk)},if=virtio,format=${s.disk.endsWith('.qcow2') ? 'qcow2' : 'raw'}`);
  for (const nic of Object.values(vm.nics).sort((a, b) => a.slot - b.slot)) {
    argv.push('-netdev', `tap,id=${o(vmNetdevId(nic.tap))},ifname=${o(nic.tap)},script=no,downscript=no`);
    argv.push('-device', `virtio-net-pci,netdev=${o(vmNetdevId(nic.tap))},id=${o(vmDeviceId(nic.tap))},mac=${o(nic.mac)},addr=0x${nic.slot.toString(16)},romfile=${nic.mtu ? `,host_mtu=${nic.mtu}` : ''}`);
  }
  argv.push('-qmp', `unix:${o(p.socket)},server=on,wait=off`, '-pidfile', p.pidfile, '-daemonize');
  return argv;
}

function hotplugSteps(nic: VmNic): QmpStep[] {
  return [
    { execute: 'netdev_add', arguments: { type: 'tap', id: vmNetdevId(nic.tap), ifname: nic.tap, script: 'no', downscript: 'no' } },
    {
      execute: 'device_add',
      arguments: { driver: 'virtio-net-pci', netdev: vmNetdevId(nic.tap), id: vmDeviceId(nic.tap), mac: nic.mac, addr: `0x${nic.slot.toString(16)}`, romfile: '', ...(nic.mtu ? { host_mtu: nic.mtu } : {}) },
      record: { op: 'nic-add', nic },
    },
  ];
}

function unplugSteps(tap: string): QmpStep[] {
  return [
    { execute: 'set_link', arguments: { name: vmDeviceId(tap), up: false }, record: { op: 'link', tap, link: 'down' } },
    { execute: 'device_del', arguments: { id: vmDeviceId(tap) }, awaitDeleted: vmDeviceId(tap) },
    { execute: 'netdev_del', arguments: { id: vmNetdevId(tap) }, record: { op: 'nic-del', tap } },
  ];
}

/** argv prefix to run `ip` in the lab's host namespace. */
export function ipArgv(ctx: HostContext): string[] {
  return ctx.hostNetns ? ['ip', '-n', ctx.hostNetns] : ['ip'];
}
export function tcArgv(ctx: HostContext): string[] {
  return ctx.hostNetns ? ['tc', '-n', ctx.hostNetns] : ['tc'];
}
/** nft has no -n: `ip netns exec NS nft` (which mounts nothing that nft needs). */
export function nftArgv(ctx: HostContext): string[] {
  return ctx.hostNetns ? ['ip', 'netns', 'exec', ctx.hostNetns, 'nft'] : ['nft'];
}
export function sysctlArgv(ctx: HostContext): string[] {
  return ctx.hostNetns ? ['ip', 'netns', 'exec', ctx.hostNetns, 'sysctl'] : ['sysctl'];
}

type V = Record<string, any>;
const val = (i: Item | undefined): V => (i?.value ?? {}) as V;

/** HTB quantum in bytes: rate/10 clamped to [1600, 60000] (avoids the kernel's "quantum is big/small" warnings). */
export function htbQuantum(bps: number): number {
  return Math.max(1600, Math.min(60000, Math.floor(bps / 8 / 10)));
}

function htbClassArgs(bps: number): string[] {
  return ['htb', 'rate', `${bps}bit`, 'ceil', `${bps}bit`, 'quantum', String(htbQuantum(bps))];
}

function netemArgs(delayMs: number, jitterMs: number, limit: number | undefined): string[] {
  return ['netem', 'delay', `${delayMs}ms`, ...(jitterMs > 0 ? [`${jitterMs}ms`] : []), ...(limit !== undefined ? ['limit', String(limit)] : [])];
}

/**
 * nft element literal for a set element key: "a>b" -> "a" . "b"; a MAC (the sender of
 * blocked/loss/loss_own/prio: "02:..>port") and a CIDR (IPv4 or IPv6) stay bare. A drop
 * element (`loss`: pair, `loss_port`: receiving port) ends with its numgen range 0-(n-1)
 * for a rate of n hundredths of a percent.
 */
function nftKey(set: string, key: string, value: unknown): string {
  if (set === 'masq' || set === 'masq6') return key;
  if (set === 'forwards') return key.replace('/', ' . ');
  const parts = key.split('>').map((p) => (/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(p) ? p : `"${p}"`));
  if (set === 'loss' || set === 'loss_port') {
    const n = Number(value);
    parts.push(n <= 1 ? '0' : `0-${n - 1}`);
  }
  return parts.join(' . ');
}

function nftElemLine(op: 'add' | 'delete', lab: string, ref: Extract<ItemRef, { kind: 'elem' }>, v: V): string {
  const key = nftKey(ref.set, ref.key, v.value);
  const comment = op === 'add' ? ` comment "${v.owner}"` : '';
  const data = ref.set === 'prio' ? ` : ${v.value}` : ref.set === 'forwards' ? ` : ${String(v.value).replace(':', ' . ')}` : '';
  return `${op} element ${ref.family} ${nftTable(lab)} ${ref.set} { ${key}${comment}${op === 'add' ? data : ''} }`;
}

/** Builds the invocations for a list of item changes. */
export function buildInvocations(lab: string, changes: ItemChange[], ctx: HostContext): Invocation[] {
  const rootAdd: string[] = [];
  const rootDel: string[] = [];
  const hostDel: string[] = [];
  const hostAdd: string[] = [];
  const hostPorts: string[] = [];
  const nsLines = new Map<string, string[]>();
  const sysctl: string[] = [];
  const fdb: string[] = [];
  const tcDel: string[] = [];
  const tcAdd: string[] = [];
  const nftDel: string[] = [];
  const nftAdd: string[] = [];
  const vmStops: Invocation[] = [];
  const services: Invocation[] = [];
  const serviceStarts: Invocation[] = [];
  const vmStarts: Invocation[] = [];
  /** Routers whose table is (re)written, whose sysctls are set, whose conntrack is flushed: by namespace. */
  const routerNft = new Map<string, { text: string; replace: boolean }>();
  const routerSysctl = new Map<string, string[]>();
  const routerFlush = new Set<string>();
  const qmpPre = new Map<string, QmpStep[]>();
  const qmpPost = new Map<string, QmpStep[]>();
  const steps = (m: Map<string, QmpStep[]>, node: string) => {
    const l = m.get(node) ?? [];
    m.set(node, l);
    return l;
  };
  const vmChange = (node: string) => changes.find((x) => x.key === `vm:${node}`);
  const launched = (node: string) => {
    const c = vmChange(node);
    return c !== undefined && (c.action === 'create' || c.action === 'replace');
  };
  const nsl = (ns: string) => {
    const l = nsLines.get(ns) ?? [];
    nsLines.set(ns, l);
    return l;
  };

  const ordered = [...changes].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (const c of ordered) {
    if (c.implied) continue;
    const ref = (c.after ?? c.before)!.ref;
    const before = c.action === 'create' || c.action === 'replace' ? undefined : val(c.before);
    const after = c.action === 'delete' ? undefined : val(c.after);
    const recreate = c.action === 'replace';
    switch (ref.kind) {
      case 'netns': {
        if (!after) { rootDel.push(`netns del ${ref.ns}`); break; }
        if (c.action === 'create') rootAdd.push(`netns add ${ref.ns}`);
        nsl(ref.ns).push('link set lo up', `link set lo alias ${after.owner}`);
        break;
      }
      case 'nic': {
        if (!after) break; // the NIC goes with its port
        const l = nsl(ref.ns);
        const have: string[] = before?.addrs ?? [];
        for (const a of have) if (!after.addrs.includes(a)) l.push(`addr del ${a} dev ${ref.ifname}`);
        for (const a of after.addrs as string[]) if (!have.includes(a)) l.push(`addr add ${a} dev ${ref.ifname}`);
        v6lines(before?.addrs6, after.addrs6, ref.ifname, l);
        if (after.mtu !== undefined && after.mtu !== before?.mtu) l.push(`link set ${ref.ifname} mtu ${after.mtu}`);
        if (before && after.mac !== undefined && after.mac !== before.mac) l.push(`link set ${ref.ifname} address ${after.mac}`);
        if (after.up !== before?.up) l.push(`link set ${ref.ifname} ${after.up ? 'up' : 'down'}`);
        break;
      }
      case 'routes': {
        const have: string[] = before?.routes ?? [];
        const want: string[] = after?.routes ?? [];
        if (!after && c.action === 'delete') { for (const r of have) nsl(ref.ns).push(`route del ${r}`); break; }
        const l = nsl(ref.ns);
        for (const r of have) if (!want.includes(r)) l.push(`route del ${r}`);
        for (const r of want) if (!have.includes(r)) l.push(`route replace ${r}`);
        break;
      }
      case 'link': {
        const name = ref.name;
        if (!after || recreate) {
          if (c.before) hostDel.push(`link del ${name}`);
          if (!after) break;
        }
        const isBridge = after.kind === 'bridge';
        const lines = isBridge ? hostAdd : hostPorts;
        if (!before) {
          if (isBridge) lines.push(`link add ${name} type bridge`);
          else if (after.kind === 'tun') lines.push(`tuntap add dev ${name} mode tap`);
          else if (after.kind === 'vxlan') {
            const x = (c.after!.meta as V).vxlan as { vni: number; port: number; local: string };
            lines.push(`link add ${name} type vxlan id ${x.vni} dstport ${x.port} local ${x.local}`);
          }
          else {
            const m = c.after!.meta as V;
            lines.push(`link add ${name} type veth peer name ${m.peerName}${m.peerMac ? ` address ${m.peerMac}` : ''} netns ${m.peerNetns}`);
          }
        }
        if (after.alias !== before?.alias) lines.push(`link set ${name} alias ${after.alias}`);
        if (after.master !== before?.master) lines.push(after.master ? `link set ${name} master ${after.master}` : `link set ${name} nomaster`);
        if (after.mtu !== undefined && after.mtu !== before?.mtu) lines.push(`link set ${name} mtu ${after.mtu}`);
        const have: string[] = before?.addrs ?? [];
        for (const a of have) if (!after.addrs.includes(a)) lines.push(`addr del ${a} dev ${name}`);
        for (const a of after.addrs as string[]) if (!have.includes(a)) lines.push(`addr add ${a} dev ${name}`);
        v6lines(before?.addrs6, after.addrs6, name, lines);
        if (after.up !== before?.up) lines.push(`link set ${name} ${after.up ? 'up' : 'down'}`);
        break;
      }
      case 'fdb': {
        // A re-created VXLAN port starts with no entries; a deleted one takes them along.
        if (!after) break;
        const have: string[] = before?.peers ?? [];
        for (const p of have) if (!after.peers.includes(p)) fdb.push(`fdb del 00:00:00:00:00:00 dev ${ref.dev} dst ${p}`);
        for (const p of after.peers as string[]) if (!have.includes(p)) fdb.push(`fdb append 00:00:00:00:00:00 dev ${ref.dev} dst ${p}`);
        break;
      }
      case 'qdisc': {
        if (!after || recreate) {
          if (c.before) tcDel.push(`qdisc del dev ${ref.dev} root`);
          if (!after) break;
        }
        const m = hex(after.major);
        tcAdd.push(`qdisc add dev ${ref.dev} root handle ${m}: htb default ${hex(after.defaultMinor)}`);
        tcAdd.push(`class add dev ${ref.dev} parent ${m}: classid ${m}:${hex(ROOT_MINOR)} ${htbClassArgs(UNSHAPED_BPS).join(' ')}`);
        break;
      }
      case 'class': {
        const m = hex((c.after ?? c.before)!.meta!.major as number);
        const cid = `${m}:${hex(ref.minor)}`;
        const leaf = `${hex(ref.minor)}:`;
        if (!after) { tcDel.push(`class del dev ${ref.dev} classid ${cid}`); break; }
        const bps = (c.after!.meta!.bps as number) ?? parseTcRate(after.rate);
        if (!before) {
          tcAdd.push(`class add dev ${ref.dev} parent ${m}:${hex(ROOT_MINOR)} classid ${cid} ${htbClassArgs(bps).join(' ')}`);
          if (after.delayMs > 0 || after.jitterMs > 0) tcAdd.push(`qdisc add dev ${ref.dev} parent ${cid} handle ${leaf} ${netemArgs(after.delayMs, after.jitterMs, after.limit).join(' ')}`);
          break;
        }
        if (after.rate !== before.rate) tcAdd.push(`class change dev ${ref.dev} parent ${m}:${hex(ROOT_MINOR)} classid ${cid} ${htbClassArgs(bps).join(' ')}`);
        const hadNetem = before.delayMs > 0 || before.jitterMs > 0;
        const wantNetem = after.delayMs > 0 || after.jitterMs > 0;
        if (wantNetem && !hadNetem) tcAdd.push(`qdisc add dev ${ref.dev} parent ${cid} handle ${leaf} ${netemArgs(after.delayMs, after.jitterMs, after.limit).join(' ')}`);
        else if (wantNetem && (after.delayMs !== before.delayMs || after.jitterMs !== before.jitterMs || (after.limit !== undefined && after.limit !== before.limit))) tcAdd.push(`qdisc change dev ${ref.dev} parent ${cid} handle ${leaf} ${netemArgs(after.delayMs, after.jitterMs, after.limit).join(' ')}`);
        else if (!wantNetem && hadNetem) tcAdd.push(`qdisc del dev ${ref.dev} parent ${cid} handle ${leaf}`);
        break;
      }
      case 'nft-table': {
        const sk = ref.family === 'bridge' ? bridgeSkeleton(lab) : inetSkeleton(lab);
        if (c.before && (!after || recreate)) nftDel.push(`delete table ${ref.family} ${nftTable(lab)}`);
        if (after) nftAdd.unshift(skeletonText(sk));
        break;
      }
      case 'elem': {
        // update: delete the old element and add the new one in the same transaction;
        // replace only happens when the table is re-created, which removed the old one.
        if (c.action === 'update' || c.action === 'delete') nftDel.push(nftElemLine('delete', lab, ref, val(c.before)));
        if (after) nftAdd.push(nftElemLine('add', lab, ref, after));
        break;
      }
      case 'sysctl': {
        if (after) sysctl.push(`${ref.name}=${after.value}`);
        break;
      }
      case 'dnsmasq': {
        const p = dnsmasqPaths(ctx.stateDir ?? '/var/lib/provium/unknown', ref.bridge);
        if (c.before && (!after || recreate)) {
          services.push({ argv: ['stop', `dnsmasq ${ref.bridge}`], label: `stop dnsmasq ${ref.bridge}`, stopPidfile: { pidfile: p.pid, match: p.conf } });
          if (!after) services.push({ argv: ['remove', p.conf, p.pid, p.leases, p.log], label: `remove dnsmasq ${ref.bridge} files`, removeFiles: { files: [p.conf, p.pid, p.leases, p.log], dirsIfEmpty: [p.dir] } });
        }
        if (after && (!before || recreate)) {
          const argv = [...(ctx.hostNetns ? ['ip', 'netns', 'exec', ctx.hostNetns] : []), 'dnsmasq', `--conf-file=${p.conf}`];
          // dnsmasq opens its lease file and log by name, as root: provium makes them first.
          serviceStarts.push({ argv, label: `start dnsmasq ${ref.bridge}`, writeFiles: [{ path: p.conf, content: String((c.after!.meta as V).config) }, { path: p.leases }, { path: p.log }] });
        }
        break;
      }
      case 'resolv': {
        const path = resolvPath(ref.ns);
        if (!after) {
          // Not implied by the namespace's deletion: the file lives in /etc/netns.
          serviceStarts.push({ argv: ['remove', path], label: `remove resolv.conf of ${ref.ns}`, removeFiles: { files: [path], dirsIfEmpty: [`/etc/netns/${ref.ns}`, '/etc/netns'] } });
          break;
        }
        serviceStarts.push({ argv: ['write', path], label: `resolv.conf of ${ref.ns}`, writeFiles: [{ path, content: after.content }] });
        break;
      }
      case 'hosts': {
        const path = hostsPath(ref.ns);
        if (!after) {
          serviceStarts.push({ argv: ['remove', path], label: `remove hosts of ${ref.ns}`, removeFiles: { files: [path], dirsIfEmpty: [`/etc/netns/${ref.ns}`, '/etc/netns'] } });
          break;
        }
        // Readable by every user of the node: /etc/netns is written 0644 in 0755 folders, atomically (apply's safe tree).
        serviceStarts.push({ argv: ['write', path], label: `hosts of ${ref.ns}`, writeFiles: [{ path, content: after.content }] });
        break;
      }
      case 'router':
      case 'router-nat':
      case 'router-fw': {
        if (!after) break; // goes with the router's namespace
        const m = c.after!.meta as V;
        // One nft transaction per router rewrites its whole table (deleting the old one in
        // the same transaction), whichever of its items changed.
        if (c.fields.some((f) => f.field !== 'ip_forward' && f.field !== 'ipv6_forwarding' && !f.field.endsWith('_timeout_s')) || !before) {
          routerNft.set(ref.ns, { text: String(m.nftText), replace: !!(c.before?.meta as V | undefined)?.hadTable && !recreate });
        }
        if (!before || c.fields.some((f) => f.field === 'ip_forward' || f.field === 'ipv6_forwarding' || f.field.endsWith('_timeout_s'))) {
          routerSysctl.set(ref.ns, m.sysctls as string[]);
        }
        // A changed NAT or firewall must hold at once: connections tracked under the old
        // rules keep their mappings and verdicts until flushed.
        if (ref.kind !== 'router' && c.action === 'update') routerFlush.add(ref.ns);
        break;
      }
      case 'vm': {
        const p = vmPaths(ctx, ref.node);
        if (c.before && (!after || recreate)) {
          const pid = ((c.before.meta as V).vm as VmState).pid;
          vmStops.push({ argv: ['provium-vm-stop', ref.node], label: `stop VM ${ref.node}`, vmStop: { node: ref.node, dir: p.dir, pid, socket: p.socket } });
        }
        if (!after) break;
        const vm = (c.after!.meta as V).vm as VmState;
        if (!before) {
          const record: VmState = { ...vm, links: Object.fromEntries(Object.keys(vm.nics).map((t) => [t, 'up' as const])) };
          vmStarts.push({ argv: qemuArgv(vm, ctx), label: `start VM ${ref.node}`, vmStart: { node: ref.node, dir: p.dir, record } });
        } else if (after.status !== before.status && after.status === 'running') {
          steps(qmpPost, ref.node).push({ execute: 'cont' });
        }
        break;
      }
      case 'vm-nic': {
        const nic = (c.after?.meta as V | undefined)?.nic as VmNic | undefined;
        const old = (c.before?.meta as V | undefined)?.nic as VmNic | undefined;
        if (old && (!after || recreate) && !launched(ref.node) && c.before) steps(qmpPre, ref.node).push(...unplugSteps(old.tap));
        if (nic && !launched(ref.node)) steps(qmpPost, ref.node).push(...hotplugSteps(nic));
        break;
      }
      case 'vm-link': {
        if (!after) break;
        const fresh = !before; // a new NIC starts with its link up
        if (fresh && after.link === 'up' && launched(ref.node)) break;
        steps(qmpPost, ref.node).push({ execute: 'set_link', arguments: { name: vmDeviceId(ref.tap), up: after.link === 'up' }, record: { op: 'link', tap: ref.tap, link: after.link } });
        break;
      }
    }
  }

  const inv: Invocation[] = [];
  const qmpInv = (node: string, st: QmpStep[], when: string): Invocation => {
    const p = vmPaths(ctx, node);
    return { argv: ['qmp', p.socket], stdin: st.map((x) => JSON.stringify({ execute: x.execute, ...(x.arguments ? { arguments: x.arguments } : {}) })).join('\n') + '\n', label: `QMP ${when} VM ${node}`, qmp: { node, dir: p.dir, socket: p.socket, steps: st } };
  };
  // VMs and NICs leaving go first, before their TAPs are deleted.
  for (const [node, st] of [...qmpPre].sort(([a], [b]) => (a < b ? -1 : 1))) inv.push(qmpInv(node, st, 'unplug from'));
  inv.push(...vmStops, ...services);
  const rootIp = ['ip', '-batch', '-'];
  if (rootAdd.length) inv.push({ argv: rootIp, stdin: lines(rootAdd), label: 'node namespaces' });
  const host = [...hostDel.filter((l) => !isBridgeDel(l, changes)), ...hostDel.filter((l) => isBridgeDel(l, changes)), ...hostAdd, ...hostPorts];
  // When host links are only deleted (destroy, nodes and bridges removed), node namespaces go
  // first: the kernel then removes their veth pairs in one batched cleanup instead of each
  // bridge releasing its ports one by one (200 nodes: 283 -> 212 ms for both steps and the
  // wait for the ports). A port deleted explicitly is never one of a deleted namespace's
  // (those deletions are implied), so nothing in the host batch can race the cleanup.
  const namespacesFirst = rootDel.length > 0 && hostAdd.length === 0 && hostPorts.length === 0;
  const sysctlInv: Invocation | undefined = sysctl.length
    ? { argv: [...sysctlArgv(ctx), '-q', '-w', ...sysctl], label: 'sysctl', sysctl: { ...(ctx.hostNetns ? { netns: ctx.hostNetns } : {}), values: sysctl.map((x) => x.split('=') as [string, string]) } }
    : undefined;
  const nft = [...nftDel, ...nftAdd];
  const nftInv: Invocation | undefined = nft.length ? { argv: [...nftArgv(ctx), '-f', '-'], stdin: lines(nft), label: 'nftables transaction' } : undefined;
  // A pure teardown (every change a deletion but for the forwarding sysctls put back, as in
  // destroy): the lab's nft tables and the sysctls depend on no link, so they go at the same
  // time as the namespaces (nothing waits for them behind the kernel's cleanup: 200 nodes, ~25 ms).
  const teardown = namespacesFirst && tcDel.length === 0 && fdb.length === 0 && changes.every((c) => c.action === 'delete' || (c.action === 'update' && (c.after ?? c.before)!.ref.kind === 'sysctl'));
  if (namespacesFirst) inv.push({ argv: rootIp, stdin: lines(rootDel), label: 'delete node namespaces' });
  const hostInv: Invocation | undefined = host.length ? { argv: [...ipArgv(ctx), '-batch', '-'], stdin: lines(host), label: 'host links' } : undefined;
  if (teardown) inv.push(...[hostInv, nftInv, sysctlInv].filter((x) => x !== undefined).map((x) => ({ ...x, parallel: 'teardown' })));
  else if (hostInv) inv.push(hostInv);
  if (fdb.length) inv.push({ argv: [...(ctx.hostNetns ? ['bridge', '-n', ctx.hostNetns] : ['bridge']), '-batch', '-'], stdin: lines(fdb), label: 'VXLAN peers' });
  for (const [ns, l] of [...nsLines].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (rootDel.includes(`netns del ${ns}`)) continue;
    // The last two lines read the namespace back (JSON) for apply's verification,
    // in the same process as the writes.
    inv.push({ argv: ['ip', '-j', '-d', '-n', ns, '-batch', '-'], stdin: lines([...nsOrder(l), ...READ_BACK]), label: `namespace ${ns}`, readsBack: ns });
  }
  if (sysctlInv && !teardown) inv.push(sysctlInv);
  // Deletes: leaf classes before root qdiscs. Adds: root qdisc, its root class, leaf classes, then netem leaves.
  const tcRank = (l: string) => (/^qdisc add .* root /.test(l) ? 0 : / classid [0-9a-f]+:1 /.test(l) ? 1 : l.startsWith('class') ? 2 : 3);
  const tc = [...tcDel.filter((l) => l.startsWith('class')), ...tcDel.filter((l) => !l.startsWith('class')), ...[...tcAdd].sort((a, b) => tcRank(a) - tcRank(b))];
  if (tc.length) inv.push({ argv: [...tcArgv(ctx), '-batch', '-'], stdin: lines(tc), label: 'traffic control' });
  if (nftInv && !teardown) inv.push(nftInv);
  // Routers: table first (it loads conntrack, whose sysctls exist only then), then sysctls, then the flush.
  const byNs = <T>(m: Map<string, T>) => [...m].sort(([a], [b]) => (a < b ? -1 : 1));
  for (const [ns, t] of byNs(routerNft)) {
    inv.push({ argv: ['ip', 'netns', 'exec', ns, 'nft', '-f', '-'], stdin: (t.replace ? `delete table inet ${nftTable(lab)}\n` : '') + t.text, label: `router ${ns} nft`, parallel: 'router-nft' });
  }
  for (const [ns, kv] of byNs(routerSysctl)) {
    if (kv.length) inv.push({ argv: ['ip', 'netns', 'exec', ns, 'sysctl', '-q', '-w', ...kv], label: `router ${ns} sysctl`, parallel: 'router-sysctl' });
  }
  for (const ns of [...routerFlush].sort()) {
    inv.push({ argv: ['ip', 'netns', 'exec', ns, 'conntrack', '-F'], label: `router ${ns} conntrack flush`, parallel: 'router-flush' });
  }
  // Services and VMs start once their bridges and TAPs exist; then hotplug, link state and resume.
  inv.push(...serviceStarts, ...vmStarts);
  // Per VM: hotplug first (the NIC must exist), then link state, then resume.
  const rank = (x: QmpStep) => (x.execute === 'netdev_add' || x.execute === 'device_add' ? 0 : x.execute === 'set_link' ? 1 : 2);
  for (const [node, st] of [...qmpPost].sort(([a], [b]) => (a < b ? -1 : 1))) {
    inv.push(qmpInv(node, [...st].sort((a, b) => rank(a) - rank(b)), 'configure'));
  }
  if (rootDel.length && !namespacesFirst) inv.push({ argv: rootIp, stdin: lines(rootDel), label: 'delete node namespaces' });
  return inv;
}

/** IPv6 address changes (nodad: no duplicate address detection delay; the lab plans unique addresses). Unmanaged when `want` is undefined. */
function v6lines(have: string[] | undefined, want: string[] | undefined, dev: string, out: string[]): void {
  if (want === undefined) return;
  for (const a of have ?? []) if (!want.includes(a)) out.push(`addr del ${a} dev ${dev}`);
  for (const a of want) if (!(have ?? []).includes(a)) out.push(`addr add ${a} dev ${dev} nodad`);
}

/**
 * Reader lines appended to a node namespace's batch: the same reads observe makes.
 * `route show table all` because a batch line cannot carry `-6` (iproute2 6.1: 'Object
 * "-6" is unknown') and `route show` alone lists IPv4 only: with every table, both
 * families come in the same process; the reader keeps the main table.
 */
export const READ_BACK = ['addr show', 'route show table all'];

function lines(l: string[]): string {
  return l.join('\n') + '\n';
}

/**
 * Inside a namespace: lo first; obsolete routes next (removing the address a route
 * depends on makes the kernel drop the route, and a later `route del` would fail);
 * then addresses and link state; new routes last (they need the addresses).
 */
function nsOrder(l: string[]): string[] {
  const rank = (s: string) => (s.startsWith('link set lo') ? 0 : s.startsWith('route del') ? 1 : s.startsWith('route') ? 3 : 2);
  return [...l].sort((a, b) => rank(a) - rank(b));
}

function isBridgeDel(line: string, changes: ItemChange[]): boolean {
  const name = line.split(' ')[2];
  const c = changes.find((x) => x.key === `link:${name}`);
  return (c?.before?.value as V | undefined)?.kind === 'bridge';
}

