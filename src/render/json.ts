/**
 * Plan -> JSON document (format_version "1"): what `plan --json` prints.
 * Shape: { format_version, lab, changes: [{address, action, items: [{key, action,
 * object, before, after, fields: [{field, before, after}], reason?, implied?}]}],
 * errors: [{severity, summary, detail?, file?, line?, column?}], commands: [{argv, stdin?, label}],
 * summary: {add, change, destroy} }.
 */
import type { Plan } from '../plan/types.js';
import type { Diagnostic } from '../model/diagnostics.js';
import { describeItem, summary } from './text.js';

export const FORMAT_VERSION = '1';

export function diagnosticJson(d: Diagnostic) {
  return {
    severity: d.severity, summary: d.summary, ...(d.detail ? { detail: d.detail } : {}),
    ...(d.pos ? { file: d.pos.file, line: d.pos.line, column: d.pos.col } : {}),
  };
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
        before: it.before?.value ?? null, after: it.after?.value ?? null,
        fields: it.fields.map((f) => ({ field: f.field, before: f.before ?? null, after: f.after ?? null })),
        ...(it.reason ? { reason: it.reason } : {}), ...(it.implied ? { implied: true } : {}),
      })),
    })),
    errors: plan.errors.map(diagnosticJson),
    commands: plan.invocations.map((i) => ({ argv: i.argv, ...(i.stdin ? { stdin: i.stdin } : {}), label: i.label })),
    summary: summary(plan),
  };
}
