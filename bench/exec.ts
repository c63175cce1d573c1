/**
 * Start-up of `provium exec` (issue 12): users poll with it, so it must start fast. Applies
 * a one-node lab in a throwaway host namespace, then times (wall, spawn to exit, 15 runs
 * each, median) `node -e 0` (Node's own start), `ip netns exec NS true` (the namespace
 * switch), `provium exec lab.yaml a -- true` on its lean path (bin/provium -> dist/exec.mjs,
 * file known from the exec cache), the same on a cache miss (YAML parsed), and the full CLI
 * (`main()` of dist/provium.mjs: module graph, schema, whole file). Everything it creates is
 * removed at the end. Run alone: `node dist/bench/exec.js` (as root).
 */
import { rmSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { run, median, secs } from './util.js';
import { withBenchLab } from './lab.js';

export interface ExecResult {
  ok: boolean;
  why?: string;
  nodeMs: number[];
  nsExecMs: number[];
  leanMs: number[];
  missMs: number[];
  fullMs: number[];
}

export async function execBench(provBin: string, log: (m: string) => void, runs = 15): Promise<ExecResult> {
  const tag = Math.random().toString(36).slice(2, 7);
  const lab = `x${tag}`.slice(0, 8);
  const text = `lab: ${lab}\nnodes:\n  a: { kind: netns }\nbridges:\n  lan: { subnet: 10.250.0.0/24, attach: [a] }\n`;
  const out: ExecResult = { ok: false, nodeMs: [], nsExecMs: [], leanMs: [], missMs: [], fullMs: [] };
  const full = join(dirname(dirname(provBin)), 'dist', 'provium.mjs');
  out.why = await withBenchLab(provBin, { host: `pvb-ex-${tag}`, dirPrefix: 'pvb-exec-', text }, async ({ file, env }) => {
    const exec = [process.execPath, provBin, 'exec', file, 'a', '--', 'true'];
    await run(exec, { env }); // fills the cache
    for (let i = 0; i < runs; i++) {
      out.nodeMs.push((await run([process.execPath, '-e', '0'])).ms);
      out.nsExecMs.push((await run(['ip', 'netns', 'exec', `pv-${lab}-a`, 'true'])).ms);
      out.leanMs.push((await run(exec, { env })).ms);
      rmSync(join(env.PROVIUM_STATE_DIR, 'exec-cache.json'), { force: true });
      out.missMs.push((await run(exec, { env })).ms);
      out.fullMs.push((await run([process.execPath, '--input-type=module', '-e', `const m = await import(${JSON.stringify(full)}); process.exitCode = await m.main(['node', 'provium', 'exec', ${JSON.stringify(file)}, 'a', '--', 'true']);`], { env })).ms);
    }
    out.ok = true;
    log(`exec start-up: node -e 0 ${secs(median(out.nodeMs))} s, ip netns exec ${secs(median(out.nsExecMs))} s, provium exec lean ${secs(median(out.leanMs))} s (cache miss ${secs(median(out.missMs))} s), full CLI ${secs(median(out.fullMs))} s`);
  });
  return out;
}

/** Table rows: exec's median wall time against Node's own start, target 100 ms; its overhead over Node, target 50 ms. */
export function execRows(r: ExecResult) {
  if (!r.ok) return [{ metric: 'provium exec start-up', value: 'skipped', reference: r.why ?? '', ratio: '', target: '< 0.100 s', ok: undefined }];
  const lean = median(r.leanMs);
  const node = median(r.nodeMs);
  const ns = median(r.nsExecMs);
  const over = lean - node - ns;
  return [
    { metric: 'provium exec a -- true (lean path, median wall)', value: `${secs(lean)} s`, reference: `node -e 0 ${secs(node)} s; full CLI ${secs(median(r.fullMs))} s; cache miss ${secs(median(r.missMs))} s`, ratio: `${(lean / node).toFixed(2)}x node`, target: '< 0.100 s', ok: lean < 100 },
    { metric: 'provium exec overhead over node -e 0 and ip netns exec', value: `${secs(over)} s`, reference: `ip netns exec true ${secs(ns)} s`, ratio: '', target: '< 0.050 s', ok: over < 50 },
  ];
}

// Alone: node dist/bench/exec.js
if (process.argv[1]?.endsWith('/bench/exec.js')) {
  const { fileURLToPath } = await import('node:url');
  const bin = fileURLToPath(new URL('../../bin/provium', import.meta.url));
  const r = await execBench(bin, (m) => process.stderr.write(`[bench] ${m}\n`));
  for (const row of execRows(r)) process.stdout.write(`${row.metric}: ${row.value} (${row.reference}; ${row.ratio}; target ${row.target}: ${row.ok ? 'ok' : 'MISSED'})\n`);
}
