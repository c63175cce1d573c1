/**
 * Plan -> JSON document (format_version "1"): what `plan --json` prints.
 * Shape: { format_version, lab, changes: [{address, action, items: [{key, action,
 * object, before, after, fields: [{field, before, after}], reason?, implied?}]}],
 * errors: [{severity, summary, detail?, file?, line?, column?}], commands: [{argv, stdin?, label}],
 * summary: {add, change, destroy} }.
 */
import { createHash } from 'node:crypto';
import type { ItemChange, Plan } from '../plan/types.js';
import { hostsEntries } from '../plan/hosts.js';
import type { Diagnostic } from '../model/diagnostics.js';
import { describeItem, summary } from './text.js';

export const FORMAT_VERSION = '1';

export function diagnosticJson(d: Diagnostic) {
  return {
    severity: d.severity, summary: d.summary, ...(d.detail ? { detail: d.detail } : {}),
    ...(d.pos ? { file: d.pos.file, line: d.pos.line, column: d.pos.col } : {}),
  };
}

/**
 * An item's value as the document shows it. A hosts file (/etc/netns/NS/hosts) is shown by
 * its digest and its number of node lines, like dnsmasq's config: the files of a 200-node lab
 * are ~1.2 MB (~28 MB at 1,000 nodes), which a document would carry twice (value and fields).
 */
function shown(it: ItemChange, v: unknown): unknown {
  if ((it.after ?? it.before)!.ref.kind !== 'hosts' || typeof (v as { content?: unknown } | undefined)?.content !== 'string') return v;
  const content = (v as { content: string }).content;
  return { content: fileDigest(content), entries: hostsEntries(content) };
}

/** "sha256:" and the first 16 hex digits of a text's SHA-256. */
function fileDigest(text: string): string {
  return `sha256:${createHash('sha256').update(text).digest('hex').slice(0, 16)}`;
}

export function planJson(plan: Plan) {
  return {
    format_version: FORMAT_VERSION,
    lab: plan.lab,
    changes: plan.changes.map((ch) => ({
      address: ch.address,
      action: ch.action,
      ...(ch.movedFrom ? { moved_from: ch.movedFrom } : {}),
      items: ch.items.map((it) => ({
        key: it.key, action: it.action, object: describeItem(it),
        before: shown(it, it.before?.value) ?? null, after: shown(it, it.after?.value) ?? null,
        fields: it.fields.map((f) => (it.before ?? it.after)!.ref.kind === 'hosts' && f.field === 'content'
          ? { field: f.field, before: typeof f.before === 'string' ? fileDigest(f.before) : null, after: typeof f.after === 'string' ? fileDigest(f.after) : null }
          : { field: f.field, before: f.before ?? null, after: f.after ?? null }),
        ...(it.reason ? { reason: it.reason } : {}), ...(it.implied ? { implied: true } : {}),
      })),
    })),
    errors: plan.errors.map(diagnosticJson),
    commands: plan.invocations.map((i) => ({ argv: i.argv, ...(i.stdin ? { stdin: i.stdin } : {}), label: i.label })),
    summary: summary(plan),
  };
}
