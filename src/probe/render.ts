/**
 * `provium probe` output: a table of properties (status, property, subject, declared,
 * measured) and a verdict line; or a JSON document (format_version "1"):
 * { format_version, lab, ok, seconds, drift: [address], results: [{ property, subject,
 *   bridge?, from?, to?, declared, measured, status: "ok"|"FAIL"|"skip", values? }],
 *   summary: { ok, fail, skip } }.
 */
import { Chalk } from 'chalk';
import type { ProbeReport } from './run.js';

export function probeSummary(r: ProbeReport): { ok: number; fail: number; skip: number } {
  return {
    ok: r.results.filter((x) => x.status === 'ok').length,
    fail: r.results.filter((x) => x.status === 'FAIL').length,
    skip: r.results.filter((x) => x.status === 'skip').length,
  };
}

export function probeJson(r: ProbeReport) {
  return { format_version: '1', lab: r.lab, ok: r.ok, seconds: r.seconds, drift: r.drift ?? [], results: r.results, summary: probeSummary(r) };
}

export function renderProbe(r: ProbeReport, opts: { color: boolean }): string {
  const c = new Chalk({ level: opts.color ? 1 : 0 });
  const out: string[] = [];
  if (r.drift?.length) {
    out.push(c.yellow(`note: the host differs from the file at ${r.drift.join(', ')} (provium plan shows how); the probe measures what the host does`), '');
  }
  const w = (f: (x: (typeof r.results)[number]) => string) => Math.max(0, ...r.results.map((x) => f(x).length));
  const wp = w((x) => x.property);
  const ws = w((x) => x.subject);
  const wd = Math.min(28, w((x) => x.declared));
  for (const x of r.results) {
    const st = x.status === 'ok' ? c.green('ok  ') : x.status === 'FAIL' ? c.red('FAIL') : c.dim('skip');
    out.push(`${st}  ${x.property.padEnd(wp)}  ${x.subject.padEnd(ws)}  declared ${x.declared.padEnd(wd)}  measured ${x.measured}`);
  }
  const s = probeSummary(r);
  const verdict = `${s.fail} FAIL, ${s.ok} ok${s.skip ? `, ${s.skip} not measured` : ''} (lab ${r.lab}, ${r.seconds.toFixed(1)} s)`;
  out.push('', s.fail ? c.red(verdict) : c.green(verdict));
  return out.join('\n') + '\n';
}
