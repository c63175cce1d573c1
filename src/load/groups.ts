/**
 * Group entries of partitions and impairments: `{ groups: [[a], [b, c]] }` stands for
 * every pair across different groups, both ways; `{ from: [a, b], to: [c, d] }` for
 * every directed pair from the first set to the second; `others` (as a group, or as
 * from/to) is every member of the bridge not named in another group of the entry.
 * This module checks them (located errors) and expands them into the pairs they stand
 * for, each carrying the entry's GroupRef, so they realize into exactly the kernel
 * objects of the same pairs written one by one, owned by the entry's plan address.
 *
 * Overlapping definitions of one directed pair (the rule realize applies; see
 * docs/scenarios.md): an entry naming exactly one pair (`[a, b]`, `{ from: a, to: b }`)
 * beats any group entry; among group entries, the one covering fewer directed pairs
 * wins, and among equally many the later entry in the list; for impairments a field
 * the winner does not set comes from the next entry in that order that sets it, and
 * last from the whole-bridge entry.
 */
import { createHash } from 'node:crypto';
import type { GroupRef, ImpairmentSpec, PartitionSpec } from '../model/topology.js';
import { OTHERS, type InBridge, type InGroupEntry, type InGroupSet, type Input } from './input.js';
import { q, type Reporter } from './report.js';
import type { PathLocator } from './tree.js';
import { impairmentKeyPos } from './normalize.js';

/** Longest readable address key: a plan address is stored as an nft element comment, at most 128 bytes. */
const MAX_KEY = 80;

/** Canonical text of an entry: sorted names per group, groups sorted, joined by '|' (groups) or '>' (from/to). */
export function groupKey(e: InGroupEntry): string {
  const set = (s: InGroupSet) => (s.others && s.names.length === 0 ? OTHERS : [...new Set(s.names.map((n) => n.name)), ...(s.others ? [OTHERS] : [])].sort().join(','));
  const text = e.kind === 'groups' ? e.sets.map(set).sort().join('|') : `${set(e.sets[0])}>${set(e.sets[1])}`;
  return text.length <= MAX_KEY ? text : `#${createHash('sha256').update(text).digest('hex').slice(0, 12)}`;
}

/** The members of a bridge, in attach order. */
const members = (b: InBridge): string[] => [...new Set(b.attach.map((a) => a.node))];

/** Checks every group entry of every bridge: names, empty groups, disjointness, duplicates, settings. */
export function checkGroups(input: Input, r: Reporter): void {
  for (const b of input.bridges?.values() ?? []) {
    const seen = new Map<string, number>();
    for (const e of b.groupEntries) {
      checkEntry(e, b, input, r);
      if (e.list === 'impairments') {
        const key = groupKey(e);
        const first = seen.get(key);
        if (first !== undefined) r.error(e.path, 'duplicate impairment', `bridge ${q(b.name)} already has an impairment for the same groups (${key}) at line ${first}; merge them into one entry`);
        else seen.set(key, r.line(e.path));
      }
    }
  }
}

function checkEntry(e: InGroupEntry, b: InBridge, input: Input, r: Reporter): void {
  const what = e.list === 'partitions' ? 'partition' : 'impairment';
  const mine = members(b);
  const memberList = mine.length ? mine.join(', ') : '(none)';
  if (e.mixed) r.error(e.path, 'groups with from/to', `a ${what} is either { groups: [...] } or { from: ..., to: ... }, not both`);
  if (e.kind === 'groups' && e.sets.length < 2) {
    r.error([...e.path, 'groups'], 'too few groups', `groups needs at least two groups (every pair across different groups is ${e.list === 'partitions' ? 'cut' : 'impaired'}), e.g. groups: [[a], [b, c]] or [[a], others]`);
  }
  if (e.fields?.jitterAlone) r.error([...e.path, 'jitter_ms'], 'incomplete entry', '"jitter_ms" requires "latency_ms" (or a profile) in the same impairment', { key: true });
  const where = new Map<string, number>();
  let othersAt = -1;
  e.sets.forEach((s, i) => {
    const label = e.kind === 'groups' ? 'group' : i === 0 ? 'from' : 'to';
    if (s.others && s.names.length > 0) r.error(s.path, 'others in a list', `${OTHERS} is a group by itself (every member of bridge ${q(b.name)} not named in another group); write ${OTHERS}, not a list holding it`);
    if (s.others) {
      if (othersAt >= 0) r.error(s.path, 'others twice', `${OTHERS} can be used once per ${what}`);
      othersAt = i;
      if (mine.includes(OTHERS)) r.error(s.path, 'ambiguous others', `bridge ${q(b.name)} has a member named ${q(OTHERS)}; in a group that word means every member not named in another group. Rename the node`);
    }
    if (!s.others && s.names.length === 0) r.error(s.path, 'empty group', `this ${label} names no node; a group names at least one member of bridge ${q(b.name)} (members: ${memberList})`);
    for (const ref of s.names) {
      if (input.nodes && !input.nodes.has(ref.name)) {
        r.error(ref.path, 'unknown node', `${what} group names node ${q(ref.name)}, which is not defined under nodes (members of bridge ${q(b.name)}: ${memberList})`);
        continue;
      }
      if (!mine.includes(ref.name)) {
        r.error(ref.path, 'unknown node', `${what} group names node ${q(ref.name)}, which is not attached to bridge ${q(b.name)} (its members: ${memberList})`);
        continue;
      }
      const prev = where.get(ref.name);
      if (prev === undefined) where.set(ref.name, i);
      else if (prev === i) r.error(ref.path, 'node listed twice', `node ${q(ref.name)} is listed twice in this ${label}`);
      else r.error(ref.path, 'node in two groups', `node ${q(ref.name)} is in two groups of this ${what}; groups must not overlap (a node cannot be cut from or impaired towards itself)`);
    }
  });
  if (othersAt >= 0 && e.sets[othersAt].names.length === 0) {
    const rest = mine.filter((m) => !where.has(m));
    if (rest.length === 0 && mine.length > 0) r.error(e.sets[othersAt].path, 'empty group', `${OTHERS} is empty: every member of bridge ${q(b.name)} (${memberList}) is named in another group`);
  }
}

/** The groups of a checked entry as lists of node names (`others` resolved against the bridge's members). */
function resolveSets(e: InGroupEntry, b: InBridge): string[][] {
  const named = new Set(e.sets.flatMap((s) => s.names.map((n) => n.name)));
  const rest = members(b).filter((m) => !named.has(m));
  return e.sets.map((s) => (s.others ? rest : [...new Set(s.names.map((n) => n.name))]));
}

/** The directed pairs of an entry: groups both ways across different groups; from/to one way. */
function directedPairs(e: InGroupEntry, sets: string[][]): [string, string][] {
  const out: [string, string][] = [];
  if (e.kind === 'fromto') {
    for (const x of sets[0]) for (const y of sets[1]) if (x !== y) out.push([x, y]);
    return out;
  }
  for (let i = 0; i < sets.length; i++) for (let j = 0; j < sets.length; j++) if (i !== j) for (const x of sets[i]) for (const y of sets[j]) out.push([x, y]);
  return out;
}

/**
 * Expands a bridge's checked group entries into pairs: partitions (symmetric pairs for
 * groups, directional for from/to) and per-pair impairments, each with the entry's
 * GroupRef and position. Pure.
 */
export function expandGroups(b: InBridge, locator: PathLocator): { partitions: PartitionSpec[]; impairments: ImpairmentSpec[] } {
  const partitions: PartitionSpec[] = [];
  const impairments: ImpairmentSpec[] = [];
  const index = { partitions: 0, impairments: 0 };
  for (const e of b.groupEntries) {
    const sets = resolveSets(e, b);
    const pairs = directedPairs(e, sets);
    const group: GroupRef = { key: groupKey(e), pairs: pairs.length, index: index[e.list]++ };
    const pos = locator.pos(e.path);
    if (e.list === 'partitions') {
      if (e.kind === 'fromto') for (const [x, y] of pairs) partitions.push({ kind: 'directional', a: x, b: y, group, pos });
      else for (const [x, y] of pairs) if (x < y) partitions.push({ kind: 'symmetric', a: x, b: y, group, pos });
      continue;
    }
    const f = e.fields!;
    const keyPos = impairmentKeyPos(f, locator);
    for (const [x, y] of pairs) {
      const spec: ImpairmentSpec = { from: x, to: y, group, pos, ...(keyPos ? { keyPos } : {}) };
      if (f.latency_ms !== undefined) spec.latency_ms = f.latency_ms;
      if (f.jitter_ms !== undefined) spec.jitter_ms = f.jitter_ms;
      if (f.drop_pct !== undefined) spec.drop_pct = f.drop_pct;
      if (f.bandwidth_bps !== undefined) spec.bandwidth_bps = f.bandwidth_bps;
      if (f.profile !== undefined) spec.profile = f.profile;
      impairments.push(spec);
    }
  }
  return { partitions, impairments };
}
