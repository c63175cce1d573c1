/**
 * `provium probe` on a 10-node lab (issue 12: under 30 s by default, --quick in a few
 * seconds): one bridge, every directed pair with drop 2 % and each member's bandwidth
 * 20 Mbit/s (90 pairs: reachability and drop each; 10 rate tests). Applied in a
 * throwaway host namespace, probed (--quick 3 times, full twice), destroyed.
 * Run alone: `node dist/bench/probe.js` (as root).
 */
import { run, median, secs } from './util.js';
import { withBenchLab } from './lab.js';

export interface ProbeBenchResult {
  ok: boolean;
  why?: string;
  quickMs: number[];
  fullMs: number[];
  properties?: number;
  fails?: number;
}

export async function probeBench(provBin: string, log: (m: string) => void): Promise<ProbeBenchResult> {
  const tag = Math.random().toString(36).slice(2, 6);
  const host = `pvb-pr-${tag}`;
  const nodes = Array.from({ length: 10 }, (_, i) => `n${i}`);
  const text = `lab: p${tag}\nnodes: { ${nodes.map((n) => `${n}: { kind: netns }`).join(', ')} }\nbridges:\n  lan:\n    subnet: 10.251.0.0/24\n    attach: [${nodes.join(', ')}]\n    impairments:\n      - { drop_pct: 2, bandwidth_bps: 20000000 }\n`;
  const out: ProbeBenchResult = { ok: false, quickMs: [], fullMs: [] };
  out.why = await withBenchLab(provBin, { host, dirPrefix: 'pvb-probe-', text }, async ({ file, env }) => {
    for (let i = 0; i < 3; i++) out.quickMs.push((await run([process.execPath, provBin, '--netns', host, 'probe', '--quick', file], { env, check: false })).ms);
    for (let i = 0; i < 2; i++) {
      const r = await run([process.execPath, provBin, '--netns', host, 'probe', '--json', file], { env, check: false, timeoutMs: 300_000 });
      out.fullMs.push(r.ms);
      const doc = JSON.parse(r.stdout) as { results: unknown[]; summary: { fail: number } };
      out.properties = doc.results.length;
      out.fails = (out.fails ?? 0) + doc.summary.fail;
    }
    out.ok = true;
    log(`probe, 10 nodes: --quick ${out.quickMs.map(secs).join(', ')} s; full ${out.fullMs.map(secs).join(', ')} s (${out.properties} properties, ${out.fails} FAIL)`);
  });
  return out;
}

export function probeRows(r: ProbeBenchResult) {
  if (!r.ok) return [{ metric: 'provium probe, 10 nodes', value: 'skipped', reference: r.why ?? '', ratio: '', target: '< 30 s', ok: undefined }];
  const q = median(r.quickMs);
  const f = median(r.fullMs);
  return [
    { metric: 'provium probe --quick, 10 nodes (90 pairs)', value: `${secs(q)} s`, reference: '', ratio: '', target: '< 5 s', ok: q < 5000 },
    { metric: `provium probe, 10 nodes (${r.properties} properties: reach, drop on 90 pairs, rate into 10)`, value: `${secs(f)} s`, reference: `${r.fails} FAIL in 2 runs`, ratio: '', target: '< 30 s', ok: f < 30_000 && r.fails === 0 },
  ];
}

if (process.argv[1]?.endsWith('/bench/probe.js')) {
  const { fileURLToPath } = await import('node:url');
  const bin = fileURLToPath(new URL('../../bin/provium', import.meta.url));
  const r = await probeBench(bin, (m) => process.stderr.write(`[bench] ${m}\n`));
  for (const row of probeRows(r)) process.stdout.write(`${row.metric}: ${row.value} (${row.reference}; target ${row.target}: ${row.ok ? 'ok' : 'MISSED'})\n`);
}
