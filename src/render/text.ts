/**
 * Plan -> text, in terraform's idiom: `+` create, `~` update, `-/+` replace,
 * `-` destroy, grouped by address, each changed field as `before -> after` with
 * units, then a summary line. Reads a plan, returns a string; writes nothing.
 */
import { Chalk } from 'chalk';
import type { Action, Change, ItemChange, Plan } from '../plan/types.js';
import type { Item } from '../plan/items.js';
import { formatDiagnostic } from '../model/diagnostics.js';

export interface RenderOptions {
  color: boolean;
  /** Also print the exact host commands. */
  commands?: boolean;
}

/** The mark of each action at the start of a change line: terraform's. */
export const SYMBOL: Record<Action, string> = { create: '+', update: '~', replace: '-/+', delete: '-' };
/** What each action does to an address, after it on a change line. */
export const VERB: Record<Action, string> = { create: 'will be created', update: 'will be updated in place', replace: 'must be replaced', delete: 'will be destroyed' };

/** A chalk instance: colours on or off (level 1 or 0). */
export type Colors = InstanceType<typeof Chalk>;

/** Human form of a field value, with units. */
function show(field: string, v: unknown, item: Item | undefined): string {
  if (v === undefined) return '(none)';
  if (item?.ref.kind === 'elem') {
    if ((item.ref.set === 'loss' || item.ref.set === 'loss_port') && field === 'value') return `${Number(v) / 100} %`;
    if (field === 'value' && v === true) return 'present';
  }
  if (item?.ref.kind === 'class') {
    if (field === 'rate') return String(v).replace(/bit$/, 'bit/s');
    if (field === 'delayMs' || field === 'jitterMs') return `${v} ms`;
  }
  if (field === 'mtu') return `${v} bytes`;
  if (field.endsWith('_timeout_s')) return `${v} s`;
  if (field === 'memoryMb') return `${v} MiB`;
  if (Array.isArray(v)) return v.length ? `[${v.join(', ')}]` : '[]';
  if (typeof v === 'string' && v.includes('\n')) return v.split('\n').filter(Boolean).join(' | ');
  return typeof v === 'string' ? v : JSON.stringify(v);
}

const FIELD_NAME: Record<string, string> = { delayMs: 'latency', jitterMs: 'jitter', rate: 'bandwidth', up: 'link up', memoryMb: 'memory', alive: 'process running' };

/** A line naming the host object an item change is about. */
export function describeItem(c: ItemChange): string {
  const ref = (c.after ?? c.before)!.ref;
  switch (ref.kind) {
    case 'netns': return `network namespace ${ref.ns}`;
    case 'nic': return `nic ${ref.ifname} in ${ref.ns}`;
    case 'routes': return `routes in ${ref.ns}`;
    case 'link': {
      const k = ((c.after ?? c.before)!.value as { kind?: string }).kind;
      return `${k === 'bridge' ? 'bridge' : k === 'tun' ? 'TAP port' : k === 'vxlan' ? 'VXLAN port' : 'veth port'} ${ref.name}`;
    }
    case 'fdb': return `VXLAN peers of ${ref.dev} (head-end replication)`;
    case 'qdisc': return `HTB qdisc on ${ref.dev}`;
    case 'class': return `HTB class on ${ref.dev} (minor ${ref.minor.toString(16)})`;
    case 'nft-table': return `nft table ${ref.family} (sets, chains, rules)`;
    case 'elem': {
      const what: Record<string, string> = {
        blocked: 'partition', isolated: 'isolation', loss: 'drop', loss_port: 'whole-bridge drop towards', loss_own: 'exempt from the whole-bridge drop:', prio: 'class selection',
        bridges: 'lab bridge', routed: 'forwarding', uplinked: 'uplink', masq: 'masquerade source', wan: 'uplink interface',
        masq6: 'IPv6 masquerade source', wan6: 'IPv6 uplink interface', forwards: 'port forward',
      };
      return `${what[ref.set] ?? ref.set} ${ref.key.replace('>', ' -> ')}`;
    }
    case 'sysctl': return `sysctl ${ref.name}`;
    case 'vm': return `QEMU VM ${ref.node}`;
    case 'vm-nic': return `VM NIC on ${ref.tap} (virtio-net)`;
    case 'vm-link': return `VM link state on ${ref.tap} (recorded: QEMU cannot report it)`;
    case 'dnsmasq': return `dnsmasq (DHCP/DNS) on bridge ${ref.bridge}`;
    case 'resolv': return `/etc/netns/${ref.ns}/resolv.conf`;
    case 'hosts': return `/etc/netns/${ref.ns}/hosts`;
    case 'router': return `router settings in ${ref.ns} (forwarding, nft table)`;
    case 'router-nat': return `NAT in ${ref.ns} (RFC 4787 behaviour)`;
    case 'router-fw': return `firewall in ${ref.ns}`;
  }
}

function renderChange(ch: Change, c: Colors): string[] {
  const color = { create: c.green, update: c.yellow, replace: c.magenta, delete: c.red }[ch.action];
  const moved = ch.movedFrom ? ` (moved from ${ch.movedFrom})` : '';
  const out = [`  ${c.bold(`# ${ch.address}`)} ${VERB[ch.action]}${moved}`, color(`  ${SYMBOL[ch.action]} ${ch.address}`)];
  for (const it of ch.items) {
    const item = it.after ?? it.before;
    const ic = { create: c.green, update: c.yellow, replace: c.magenta, delete: c.red }[it.action];
    const note = it.reason ? c.dim(` (${it.reason})`) : it.implied ? c.dim(' (goes with its parent)') : '';
    out.push(ic(`      ${SYMBOL[it.action]} ${describeItem(it)}`) + note);
    const fields = it.fields.filter((f) => f.field !== 'owner' || it.action === 'update');
    if (it.action === 'update' || it.action === 'replace') {
      for (const f of fields) {
        if (f.field === 'skeleton' || f.field === 'table' || f.field === 'rules') {
          if (f.before !== undefined && f.after !== undefined && it.fields.length > 1) continue; // follows from the other fields
          out.push(`          ${f.before === undefined ? 'nft table missing' : 'structure (sets, chains, rules) differs from what provium writes'}`);
        } else out.push(`          ${FIELD_NAME[f.field] ?? f.field}: ${show(f.field, f.before, item)} -> ${show(f.field, f.after, item)}`);
      }
    } else if (it.action === 'create' && item?.ref.kind !== 'nft-table') {
      for (const f of fields) if (f.field !== 'owner' && f.field !== 'rules' && f.field !== 'table' && !(f.field === 'value' && f.after === true)) out.push(c.dim(`          ${FIELD_NAME[f.field] ?? f.field}: ${show(f.field, f.after, item)}`));
    }
  }
  return out;
}

/** Counts in terraform's way: a replace is one add and one destroy. */
export function summary(plan: Plan): { add: number; change: number; destroy: number } {
  const s = { add: 0, change: 0, destroy: 0 };
  for (const ch of plan.changes) {
    if (ch.action === 'create') s.add++;
    else if (ch.action === 'update') s.change++;
    else if (ch.action === 'delete') s.destroy++;
    else {
      s.add++;
      s.destroy++;
    }
  }
  return s;
}

/**
 * The frame every plan text shares: the plan's errors alone (located, one a line), or
 * "No changes.", or the header line, what `changes` pushes onto the lines (ending with a
 * blank line), the summary line and, with opts.commands, each host command with its stdin.
 * Returns the text, newline-terminated.
 */
export function renderPlanFrame(plan: Plan, opts: RenderOptions, changes: (out: string[], c: Colors) => void): string {
  const c = new Chalk({ level: opts.color ? 1 : 0 });
  const out: string[] = [];
  if (plan.errors.length) {
    for (const e of plan.errors) out.push(c.red(formatDiagnostic(e)));
    return out.join('\n') + '\n';
  }
  if (plan.changes.length === 0) return c.green('No changes.') + ` The host matches the file for lab ${plan.lab}.\n`;
  out.push(`provium will perform the following actions on lab ${c.bold(plan.lab)}:`, '');
  changes(out, c);
  const s = summary(plan);
  out.push(c.bold(`Plan: ${s.add} to add, ${s.change} to change, ${s.destroy} to destroy.`));
  if (opts.commands) {
    out.push('', c.bold(`Host commands (${plan.invocations.length} invocations):`));
    for (const inv of plan.invocations) {
      out.push(c.cyan(`  $ ${inv.argv.join(' ')}`) + c.dim(`   # ${inv.label}`));
      for (const l of (inv.stdin ?? '').split('\n').filter(Boolean)) out.push(`      ${l}`);
    }
  }
  return out.join('\n') + '\n';
}

/** The item-level plan text (`plan --verbose`): every host object of each change, with its fields. */
export function renderPlan(plan: Plan, opts: RenderOptions): string {
  return renderPlanFrame(plan, opts, (out, c) => {
    // One push per line: a change can hold tens of thousands of items (a whole-bridge drop on
    // a big bridge), too many for a spread's arguments.
    for (const ch of plan.changes) {
      for (const line of renderChange(ch, c)) out.push(line);
      out.push('');
    }
  });
}
