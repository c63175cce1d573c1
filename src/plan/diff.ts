/**
 * diff: desired items x observed items -> item changes, grouped into Changes by
 * owner address. Pure. A field that is undefined on the desired side is unmanaged
 * and never differs. Replace when an identity field changes (a link's kind, a
 * qdisc's handle, an nft table's structure). An item whose dependency is created or
 * replaced is re-created too (its host object goes with the old one).
 */
import type { Item } from './items.js';
import type { Action, Change, FieldDiff, ItemChange } from './types.js';

/** Fields whose change cannot be done in place. */
const IDENTITY: Record<string, string[]> = {
  link: ['kind', 'vxlan'],
  qdisc: ['major', 'defaultMinor'],
  'nft-table': ['skeleton'],
  vm: ['kernel', 'initrd', 'append', 'disk', 'memoryMb', 'cpus', 'accel', 'alive'],
  'vm-nic': ['mac', 'slot', 'mtu'],
  dnsmasq: ['config', 'alive'],
};

/**
 * Fields whose change cannot be done in place when the host has a value: a namespace's
 * mark (a netns node turned router or back is a new namespace; an unmarked namespace
 * left by an interrupted apply is marked in place).
 */
const IDENTITY_IF_SET: Record<string, string[]> = {
  netns: ['owner'],
};

/**
 * Deep equality as JSON would see it. Primitives and arrays of primitives (nearly every
 * field) are compared directly; other objects through JSON.stringify (a no-op plan of a
 * big lab compares hundreds of thousands of fields).
 */
function same(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return JSON.stringify(a) === JSON.stringify(b);
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!same(a[i], b[i])) return false;
    return true;
  }
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Fields of `want` that differ in `have` (fields undefined in `want` are skipped). */
export function fieldDiffs(want: Record<string, unknown>, have: Record<string, unknown> | undefined): FieldDiff[] {
  const out: FieldDiff[] = [];
  for (const k in want) {
    const v = want[k];
    if (v === undefined) continue;
    if (!have || !same(v, have[k])) out.push({ field: k, before: have?.[k], after: v });
  }
  return out;
}

function replaceReason(kind: string, fields: string[]): string {
  if (kind === 'vm' && fields.includes('alive')) return 'its process is not running: restart';
  if (kind === 'vm') return `${fields.join(', ')} changed: restart the VM`;
  if (kind === 'netns') return 'the node changed kind (netns <-> router): a new namespace';
  return `${fields.join(', ')} cannot change in place`;
}

/**
 * Item changes from desired and observed items. `forceReplace(item)` names desired
 * items to re-create even when unchanged (`--replace ADDR`).
 */
export function diffItems(desired: Item[], observed: Item[], forceReplace: (i: Item) => boolean = () => false): ItemChange[] {
  const obs = new Map(observed.map((i) => [i.key, i]));
  const des = new Map(desired.map((i) => [i.key, i]));
  const changes = new Map<string, ItemChange>();

  for (const d of desired) {
    const o = obs.get(d.key);
    if (!o) {
      changes.set(d.key, { action: 'create', key: d.key, after: d, fields: fieldDiffs(d.value, undefined) });
      continue;
    }
    if (forceReplace(d)) {
      changes.set(d.key, { action: 'replace', key: d.key, before: o, after: d, fields: fieldDiffs(d.value, o.value), reason: 'forced by --replace' });
      continue;
    }
    const fields = fieldDiffs(d.value, o.value);
    if (fields.length === 0) continue;
    const ident = IDENTITY[d.ref.kind] ?? [];
    const forced = fields.filter((f) => ident.includes(f.field) || ((IDENTITY_IF_SET[d.ref.kind] ?? []).includes(f.field) && f.before !== undefined));
    changes.set(d.key, {
      action: forced.length > 0 ? 'replace' : 'update', key: d.key, before: o, after: d, fields,
      ...(forced.length > 0 ? { reason: replaceReason(d.ref.kind, forced.map((f) => f.field)) } : {}),
    });
  }
  for (const o of observed) {
    if (!des.has(o.key)) changes.set(o.key, { action: 'delete', key: o.key, before: o, fields: fieldDiffs(o.value, undefined).map((f) => ({ field: f.field, before: f.after, after: undefined })) });
  }

  // Propagate re-creation to dependents that exist on both sides (fixpoint over deps).
  let moved = true;
  while (moved) {
    moved = false;
    for (const d of desired) {
      const c = changes.get(d.key);
      if (c && (c.action === 'create' || c.action === 'replace')) continue;
      const o = obs.get(d.key);
      if (!o) continue;
      const cause = d.deps.find((k) => {
        const dc = changes.get(k);
        // A node's routes survive a NIC that is only added (they go through its other
        // NICs): updated in place, so that the routes it no longer needs are deleted.
        if (dc?.action === 'create' && d.ref.kind === 'routes') return false;
        return dc && (dc.action === 'create' || dc.action === 'replace');
      });
      if (!cause) continue;
      changes.set(d.key, { action: 'replace', key: d.key, before: o, after: d, fields: c?.fields ?? [], reason: `re-created with ${cause}` });
      moved = true;
    }
  }

  // Deletions implied by a parent's deletion or replacement need no command.
  for (const c of changes.values()) {
    if (c.action !== 'delete' || !c.before?.parent) continue;
    const p = changes.get(c.before.parent);
    if (p && (p.action === 'delete' || p.action === 'replace')) c.implied = true;
  }
  return [...changes.values()];
}

/**
 * Action of a group: create when the address exists only in the file, delete when
 * only on the host; otherwise replace when any item is replaced, else update (an
 * object partly missing on the host is updated, not created).
 */
function groupAction(items: ItemChange[], inDesired: boolean, inObserved: boolean): Action {
  const acts = new Set(items.map((i) => i.action));
  if (!inObserved) return 'create';
  if (!inDesired) return 'delete';
  if (acts.has('replace')) return 'replace';
  return 'update';
}

/**
 * Groups item changes by owner address, in a stable order (address, then item key).
 * `desired`/`observed` are all items of each side (to know which addresses exist where).
 */
export function groupChanges(items: ItemChange[], desired: Item[], observed: Item[]): Change[] {
  const dOwners = new Set(desired.map((i) => i.owner));
  const oOwners = new Set(observed.map((i) => i.owner));
  const by = new Map<string, ItemChange[]>();
  for (const c of items) {
    const owner = (c.after ?? c.before)!.owner;
    const list = by.get(owner) ?? [];
    list.push(c);
    by.set(owner, list);
  }
  return [...by.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([address, list]) => {
      // Host objects that exist and only change owner (a port moved to another bridge):
      // an update of the new address, not a creation.
      const befores = [...new Set(list.map((c) => c.before?.owner).filter((o): o is string => !!o && o !== address))];
      if (!oOwners.has(address) && list.every((c) => c.action === 'update') && befores.length === 1) {
        return { address, action: 'update' as const, items: list.sort((a, b) => (a.key < b.key ? -1 : 1)), movedFrom: befores[0] };
      }
      return { address, action: groupAction(list, dOwners.has(address), oOwners.has(address)), items: list.sort((a, b) => (a.key < b.key ? -1 : 1)) };
    });
}

/**
 * Keeps the changes of the targeted objects (`--target NODE|BRIDGE`): those whose
 * address names a targeted node or bridge, what they depend on (so they can be
 * applied), and what depends on them (re-created with them). `matches(address)`
 * decides the first set.
 */
export function targetChanges(items: ItemChange[], matches: (address: string) => boolean): ItemChange[] {
  const byKey = new Map(items.map((c) => [c.key, c]));
  const keep = new Set(items.filter((c) => matches((c.after ?? c.before)!.owner)).map((c) => c.key));
  let grew = true;
  while (grew) {
    grew = false;
    for (const c of items) {
      const it = (c.after ?? c.before)!;
      const deps = [...it.deps, ...(it.parent ? [it.parent] : [])];
      if (keep.has(c.key)) {
        for (const d of deps) if (byKey.has(d) && !keep.has(d)) (keep.add(d), (grew = true));
      } else if (deps.some((d) => keep.has(d))) {
        keep.add(c.key);
        grew = true;
      }
    }
  }
  return items.filter((c) => keep.has(c.key));
}
