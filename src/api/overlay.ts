/**
 * The pure half of the `Lab` API: argument checks, and each call turned into an overlay
 * (the same data a scenario step or a `-f` file holds) or an edit of the desired
 * topology tree, merged by the loader's own rules (src/load/merge.ts). No host access.
 *
 * An overlay object from code becomes a positioned tree (src/load/tree.ts) whose every
 * value is placed in a pseudo-file named after the call (`<lab.impair()>`), so the
 * loader's diagnostics name the call that wrote the offending value.
 */
import { InputError } from '../model/diagnostics.js';
import { hasNamespace, type SourcePos, type Topology } from '../model/topology.js';
import { endpointKey } from '../load/merge.js';
import type { PEntry, PMap, PNode } from '../load/tree.js';

/**
 * A group of nodes of one bridge: one node name, a list of names, or `'others'` (every
 * member of the bridge not named in another group of the same entry).
 */
export type Group = string | readonly string[];

/**
 * A partition, as `Lab.partition` takes it:
 * - a list of groups, `[['r1'], ['r2', 'r3']]` or `['a', 'b']`: every pair across
 *   different groups is cut, both ways (YAML `{ groups: [...] }`);
 * - `{ groups: [...], bridge? }`: the same with the bridge named;
 * - `{ from, to, bridge? }`: one way only, every directed pair from `from` to `to`
 *   (YAML `{ from: ..., to: ... }`).
 * Without `bridge`, the bridge is the one every named node is a member of (an error
 * when there is none or more than one).
 */
export type PartitionSpec = readonly Group[] | { groups: readonly Group[]; bridge?: string } | { from: Group; to: Group; bridge?: string };

/**
 * An impairment, as `Lab.impair` takes it. Endpoints: `from`/`to` (directed pairs),
 * `groups` (every pair across groups, both ways), or none (the whole bridge; `bridge`
 * required). Fields (at least one): `latencyMs` one-way delay in milliseconds,
 * `jitterMs` in milliseconds (with latencyMs), `dropPct` percent of packets dropped
 * (0-100, fractions allowed), `bandwidthBps` bits per second. `null` removes a field
 * the entry had (the overlay merge rule). Latency and jitter need netem in the kernel.
 */
export interface ImpairSpec {
  bridge?: string;
  from?: Group;
  to?: Group;
  groups?: readonly Group[];
  latencyMs?: number | null;
  jitterMs?: number | null;
  dropPct?: number | null;
  bandwidthBps?: number | null;
}

/** A topology overlay as plain data: the keys it changes (`{ bridges: { lan: { ... } } }`), merged by the overlay rules of docs/scenarios.md. */
export type Overlay = { readonly [key: string]: unknown };

/** Objects and lists marked by `reset()`: they replace the value they are merged onto. */
const RESET = new WeakSet<object>();

/**
 * Marks a list or mapping of an overlay object so that it replaces the base's value
 * instead of being merged into it (YAML's `!reset` tag), e.g.
 * `{ bridges: { lan: { partitions: reset([]) } } }` removes every partition of lan.
 * Returns its argument.
 */
export function reset<T extends object>(value: T): T {
  RESET.add(value);
  return value;
}

/** An InputError for a bad argument of a Lab call: `call` is e.g. "lab.impair". */
export function argError(call: string, detail: string, summary = 'invalid argument'): InputError {
  return new InputError([{ severity: 'error', summary, detail: `${call}(): ${detail}` }]);
}

const show = (v: unknown): string => {
  if (typeof v === 'string') return JSON.stringify(v);
  if (v === undefined || v === null || typeof v === 'number' || typeof v === 'boolean') return String(v);
  return Array.isArray(v) ? 'a list' : typeof v === 'object' ? 'an object' : typeof v;
};

/** Most nesting an overlay object may have (a topology is 6 levels deep). */
const MAX_DEPTH = 32;

/**
 * An overlay object as a positioned tree, every value placed at `<label>`:1:1.
 * Keys with the value `undefined` are left out (JavaScript's optional fields); `null`
 * removes a key when merged. Throws InputError for what YAML cannot hold (functions,
 * symbols, bigints, non-finite numbers, class instances, cycles).
 */
export function overlayTree(value: unknown, label: string): PNode {
  const pos: SourcePos = { file: label, line: 1, col: 1 };
  const seen = new Set<object>();
  const bad = (path: string, what: string) => argError(label.replace(/^<|\(\)>$/g, ''), `${path || 'the overlay'}: ${what}`, 'invalid overlay');
  const build = (v: unknown, path: string, depth: number): PNode => {
    if (depth > MAX_DEPTH) throw bad(path, `nested deeper than ${MAX_DEPTH} levels`);
    if (v === null || typeof v === 'string' || typeof v === 'boolean') return { kind: 'scalar', pos, value: v };
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw bad(path, `${v} is not a finite number`);
      return { kind: 'scalar', pos, value: v };
    }
    if (typeof v !== 'object') throw bad(path, `a ${typeof v} cannot be part of a topology (strings, numbers, booleans, null, lists and plain objects only)`);
    if (seen.has(v)) throw bad(path, 'refers to itself (a cycle)');
    seen.add(v);
    try {
      const reset = RESET.has(v) ? { reset: true } : {};
      if (Array.isArray(v)) return { kind: 'seq', pos, ...reset, items: v.map((x, i) => build(x, `${path}[${i}]`, depth + 1)) };
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) throw bad(path, `${proto?.constructor?.name ?? 'an object'} instances cannot be part of a topology (plain objects only)`);
      const entries = new Map<string, PEntry>();
      for (const [k, x] of Object.entries(v)) {
        if (x === undefined) continue;
        entries.set(k, { keyPos: pos, value: build(x, path ? `${path}.${k}` : k, depth + 1) });
      }
      return { kind: 'map', pos, ...reset, entries };
    } finally {
      seen.delete(v);
    }
  };
  const tree = build(value, '', 0);
  if (tree.kind !== 'map') throw bad('', `an overlay is an object of the keys it changes (e.g. { bridges: { lan: { ... } } }), not ${show(value)}`);
  return tree;
}

/** Checks a group: a non-empty name or a non-empty list of non-empty names. Returns it as plain data. */
function group(call: string, what: string, g: unknown): string | string[] {
  const name = (x: unknown) => typeof x === 'string' && x.length > 0;
  if (name(g)) return g as string;
  if (Array.isArray(g) && g.length > 0 && g.every(name)) return [...(g as string[])];
  throw argError(call, `${what} must be a node name, a non-empty list of node names, or 'others', not ${show(g)}`);
}

/** Checks a list of at least two groups. */
function groups(call: string, what: string, gs: unknown): (string | string[])[] {
  if (!Array.isArray(gs) || gs.length < 2) throw argError(call, `${what} must be a list of at least two groups (e.g. [['r1'], ['r2', 'r3']] or ['a', 'b']), not ${show(gs)}`);
  return gs.map((g, i) => group(call, `${what}[${i}]`, g));
}

/** Node names a group list mentions (without 'others'). */
function namesOf(gs: (string | string[])[]): string[] {
  return [...new Set(gs.flatMap((g) => (typeof g === 'string' ? [g] : g)).filter((n) => n !== 'others'))];
}

/** Bridges a node is attached to. */
function bridgesOf(t: Topology, node: string): string[] {
  return Object.values(t.bridges).filter((b) => b.attach.some((a) => a.node === node)).map((b) => b.name);
}

/** Throws InputError when `node` is not a node of t. */
export function checkNode(t: Topology, call: string, node: unknown): asserts node is string {
  if (typeof node !== 'string' || node === '') throw argError(call, `the node must be a node name, not ${show(node)}`);
  if (!Object.prototype.hasOwnProperty.call(t.nodes, node)) throw argError(call, `${JSON.stringify(node)} is not a node of lab ${t.lab} (nodes: ${Object.keys(t.nodes).join(', ') || 'none'})`, 'unknown node');
}

/** Throws InputError when `bridge` is not a bridge of t. */
export function checkBridge(t: Topology, call: string, bridge: unknown): asserts bridge is string {
  if (typeof bridge !== 'string' || bridge === '') throw argError(call, `the bridge must be a bridge name, not ${show(bridge)}`);
  if (!Object.prototype.hasOwnProperty.call(t.bridges, bridge)) throw argError(call, `${JSON.stringify(bridge)} is not a bridge of lab ${t.lab} (bridges: ${Object.keys(t.bridges).join(', ') || 'none'})`, 'unknown bridge');
}

/**
 * The bridge an entry naming `names` is on: `given` when set (it must exist), else the
 * one bridge every named node is a member of. Throws InputError for an unknown node,
 * no such bridge, or more than one.
 */
export function bridgeFor(t: Topology, call: string, names: string[], given: unknown): string {
  if (given !== undefined) {
    checkBridge(t, call, given);
    return given;
  }
  for (const n of names) checkNode(t, call, n);
  if (names.length === 0) throw argError(call, 'name at least one node, or give { bridge }');
  const shared = Object.values(t.bridges).filter((b) => names.every((n) => b.attach.some((a) => a.node === n))).map((b) => b.name);
  if (shared.length === 1) return shared[0];
  if (shared.length === 0) {
    throw argError(call, `no bridge has all of ${names.join(', ')} as members (${names.map((n) => `${n}: ${bridgesOf(t, n).join(', ') || 'none'}`).join('; ')})`, 'no common bridge');
  }
  throw argError(call, `${names.join(', ')} share more than one bridge (${shared.join(', ')}): give { bridge }`, 'ambiguous bridge');
}

/** `{ bridges: { <b>: { <list>: [entry] } } }`. */
function listOverlay(bridge: string, list: 'partitions' | 'impairments', entry: Record<string, unknown>): Overlay {
  return { bridges: { [bridge]: { [list]: [entry] } } };
}

/** A partition spec as a partitions entry (YAML shape) and its bridge. Throws InputError. */
export function partitionEntry(t: Topology, spec: unknown, bridge?: unknown): { bridge: string; entry: Record<string, unknown> } {
  const call = 'lab.partition';
  if (Array.isArray(spec)) {
    const gs = groups(call, 'the groups', spec);
    return { bridge: bridgeFor(t, call, namesOf(gs), bridge), entry: { groups: gs } };
  }
  if (!spec || typeof spec !== 'object') throw argError(call, `expected a list of groups, { groups, bridge? } or { from, to, bridge? }, not ${show(spec)}`);
  const o = spec as Record<string, unknown>;
  const unknown = Object.keys(o).filter((k) => !['groups', 'from', 'to', 'bridge'].includes(k) && o[k] !== undefined);
  if (unknown.length) throw argError(call, `unknown field(s) ${unknown.join(', ')}; a partition has groups, or from and to, and optionally bridge`);
  if (bridge !== undefined && o.bridge !== undefined && bridge !== o.bridge) throw argError(call, `two different bridges given (${show(o.bridge)} and ${show(bridge)})`);
  const b = o.bridge ?? bridge;
  if (o.groups !== undefined) {
    if (o.from !== undefined || o.to !== undefined) throw argError(call, 'a partition has groups, or from and to, not both');
    const gs = groups(call, 'groups', o.groups);
    return { bridge: bridgeFor(t, call, namesOf(gs), b), entry: { groups: gs } };
  }
  if (o.from === undefined || o.to === undefined) throw argError(call, 'a one-way partition needs both from and to');
  const from = group(call, 'from', o.from);
  const to = group(call, 'to', o.to);
  return { bridge: bridgeFor(t, call, namesOf([from, to]), b), entry: { from, to } };
}

/** Impairment fields: API name -> topology field. */
const IMPAIR_FIELDS = { latencyMs: 'latency_ms', jitterMs: 'jitter_ms', dropPct: 'drop_pct', bandwidthBps: 'bandwidth_bps' } as const;

/**
 * An impair spec as an impairments entry (YAML shape, with or without its fields) and
 * its bridge. Throws InputError. `fields: false` (lab.unimpair) takes endpoints only.
 */
export function impairEntry(t: Topology, spec: unknown, fields = true): { bridge: string; entry: Record<string, unknown> } {
  const call = fields ? 'lab.impair' : 'lab.unimpair';
  if (!spec || typeof spec !== 'object' || Array.isArray(spec)) throw argError(call, `expected an object such as { from: 'a', to: 'b', dropPct: 5 }, not ${show(spec)}`);
  const o = spec as Record<string, unknown>;
  const allowed = ['bridge', 'from', 'to', 'groups', ...(fields ? Object.keys(IMPAIR_FIELDS) : [])];
  const unknown = Object.keys(o).filter((k) => !allowed.includes(k) && o[k] !== undefined);
  if (unknown.length) throw argError(call, `unknown field(s) ${unknown.join(', ')}; expected ${allowed.join(', ')}`);
  const entry: Record<string, unknown> = {};
  let names: string[] = [];
  if (o.groups !== undefined) {
    if (o.from !== undefined || o.to !== undefined) throw argError(call, 'an impairment has groups, or from and to, not both');
    const gs = groups(call, 'groups', o.groups);
    entry.groups = gs;
    names = namesOf(gs);
  } else if (o.from !== undefined || o.to !== undefined) {
    if (o.from === undefined || o.to === undefined) throw argError(call, 'a per-pair impairment needs both from and to (neither: the whole bridge)');
    entry.from = group(call, 'from', o.from);
    entry.to = group(call, 'to', o.to);
    names = namesOf([entry.from as string | string[], entry.to as string | string[]]);
  } else if (o.bridge === undefined) {
    throw argError(call, 'give from and to, groups, or (for the whole bridge) bridge');
  }
  if (fields) {
    let any = false;
    for (const [api, field] of Object.entries(IMPAIR_FIELDS)) {
      const v = o[api];
      if (v === undefined) continue;
      if (v !== null && (typeof v !== 'number' || !Number.isFinite(v))) throw argError(call, `${api} must be a finite number (or null to remove it), not ${show(v)}`);
      entry[field] = v;
      any = true;
    }
    if (!any) throw argError(call, `give at least one of ${Object.keys(IMPAIR_FIELDS).join(', ')}`);
  }
  return { bridge: o.groups === undefined && o.from === undefined ? bridgeFor(t, call, [], o.bridge) : bridgeFor(t, call, names, o.bridge), entry };
}

/** The overlay of lab.partition. */
export function partitionOverlay(t: Topology, spec: unknown, bridge?: unknown): Overlay {
  const p = partitionEntry(t, spec, bridge);
  return listOverlay(p.bridge, 'partitions', p.entry);
}

/** The overlay of lab.impair. */
export function impairOverlay(t: Topology, spec: unknown): Overlay {
  const p = impairEntry(t, spec);
  return listOverlay(p.bridge, 'impairments', p.entry);
}

/** The overlay of lab.link: the NIC of `node` on `bridge` up or down. Throws InputError. */
export function linkOverlay(t: Topology, node: unknown, bridge: unknown, state: unknown): Overlay {
  const call = 'lab.link';
  checkNode(t, call, node);
  checkBridge(t, call, bridge);
  if (!t.bridges[bridge].attach.some((a) => a.node === node)) throw argError(call, `node ${node} is not attached to bridge ${bridge} (its bridges: ${bridgesOf(t, node).join(', ') || 'none'})`, 'not attached');
  if (state !== 'up' && state !== 'down') throw argError(call, `the link state must be 'up' or 'down', not ${show(state)}`);
  return { bridges: { [bridge]: { attach: [{ node, link: state }] } } };
}

/**
 * The desired tree without the partitions (impairments) entry of `bridge` with the
 * identity of `entry` (the merge rules' identity: endpoints or groups, names in any
 * order). Throws InputError when the desired topology has no such entry.
 */
export function withoutEntry(tree: PNode, t: Topology, call: string, bridge: string, list: 'partitions' | 'impairments', entry: Record<string, unknown>): PNode {
  const keys = new Set([endpointKey(overlayTree(entry, `<${call}()>`), list)]);
  // Two single nodes also match a pair entry written [a, b].
  const gs = entry.groups;
  if (list === 'partitions' && Array.isArray(gs) && gs.length === 2) {
    const single = gs.map((g) => (typeof g === 'string' ? g : Array.isArray(g) && g.length === 1 ? g[0] : undefined));
    if (single.every((n) => typeof n === 'string' && n !== 'others')) keys.add(`sym:${[...new Set(single as string[])].sort().join(',')}`);
  }
  const bridges = tree.kind === 'map' ? tree.entries.get('bridges') : undefined;
  const b = bridges?.value.kind === 'map' ? bridges.value.entries.get(bridge) : undefined;
  const l = b?.value.kind === 'map' ? b.value.entries.get(list) : undefined;
  const items = l?.value.kind === 'seq' ? l.value.items : [];
  const kept = items.filter((i) => !keys.has(endpointKey(i, list)));
  if (kept.length === items.length) {
    const what = list === 'partitions' ? 'partition' : 'impairment';
    const have = items.map((i) => endpointKey(i, list)).filter(Boolean).join(', ');
    throw argError(call, `bridge ${bridge} of lab ${t.lab} has no ${what} ${JSON.stringify(entry)} now (${list}: ${have || 'none'})`, `no such ${what}`);
  }
  const set = (m: PMap, k: string, value: PNode): PMap => {
    const entries = new Map(m.entries);
    entries.set(k, { keyPos: m.entries.get(k)!.keyPos, value });
    return { ...m, entries };
  };
  const newList = { ...(l!.value as PNode & { kind: 'seq' }), items: kept };
  const newBridge = set(b!.value as PMap, list, newList);
  const newBridges = set(bridges!.value as PMap, bridge, newBridge);
  return set(tree as PMap, 'bridges', newBridges);
}

/**
 * The bare address (no prefix) the topology gives `node` on `bridge`: IPv4 (`family`
 * 4, default) or IPv6 (6). Throws InputError for an unknown node or bridge, a node not
 * attached there, or no address of that family (no subnet).
 */
export function addressOf(t: Topology, node: unknown, bridge: unknown, family: unknown = 4): string {
  const call = 'lab.address';
  checkNode(t, call, node);
  checkBridge(t, call, bridge);
  if (family !== 4 && family !== 6) throw argError(call, `family must be 4 or 6, not ${show(family)}`);
  const b = t.bridges[bridge];
  const a = b.attach.find((x) => x.node === node);
  if (!a) throw argError(call, `node ${node} is not attached to bridge ${bridge} (its bridges: ${bridgesOf(t, node).join(', ') || 'none'})`, 'not attached');
  if (b.gateway === node && family === 4 && b.gatewayAddr) return b.gatewayAddr.split('/')[0];
  if (b.gateway === node && family === 6 && b.gatewayAddr6) return b.gatewayAddr6.split('/')[0];
  const ip = family === 4 ? a.ip : a.ip6;
  if (!ip) throw argError(call, `node ${node} has no IPv${family} address on bridge ${bridge} (the bridge has no ${family === 4 ? 'subnet' : 'subnet6'} and no static ${family === 4 ? 'ip' : 'ip6'} is given)`, 'no address');
  return ip.split('/')[0];
}

/** Throws InputError unless `node` is a netns node or router of t (the nodes commands run in). */
export function checkCommandNode(t: Topology, call: string, node: unknown): asserts node is string {
  checkNode(t, call, node);
  const kind = t.nodes[node].kind;
  if (!hasNamespace(kind)) {
    const names = Object.values(t.nodes).filter((n) => hasNamespace(n.kind)).map((n) => n.name);
    throw argError(call, `node ${node} is a ${kind} node; commands run in netns nodes and routers (${names.join(', ') || 'none'})`, 'not a namespace node');
  }
}

/** Throws InputError unless argv is a non-empty list of strings. */
export function checkArgv(call: string, argv: unknown): asserts argv is string[] {
  if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a) => typeof a === 'string')) {
    throw argError(call, `the command is a non-empty list of strings (no shell; ['sh', '-c', '...'] for one), not ${show(argv)}`);
  }
}

/** Throws InputError unless v is undefined or a number of milliseconds in [min, max]. */
export function checkMs(call: string, what: string, v: unknown, min: number, max = 2 ** 31 - 1): void {
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) throw argError(call, `${what} must be a number of milliseconds from ${min} to ${max}, not ${show(v)}`);
}

/** Throws InputError unless v is undefined or an exit status 0-255. */
export function checkExpect(call: string, v: unknown): void {
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 255) throw argError(call, `expect is the exit status that means success, 0 to 255, not ${show(v)}`);
}
