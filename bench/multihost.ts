/**
 * Multi-host rows of the benchmark (issue 14): a lab of 2 x HALF netns nodes on two test
 * hosts (namespaces with their own sshd, reached over SSH from a controller namespace:
 * test/e2e/hosts-harness.ts), on two bridges spanning both hosts over VXLAN, with
 * partitions and per-pair drop and bandwidth. Its apply time is compared with the
 * single-host applies of its halves (each half alone, on its host, through the same SSH
 * path): hosts apply in parallel, so the two-host apply should take about the max of the
 * halves, well under their sum. Runs RUNS times; medians.
 */
import { TestHosts, hostsSkip } from '../test/e2e/hosts-harness.js';
import { median, secs } from './util.js';

export interface MultiHostResult {
  ok: boolean;
  why?: string;
  nodes: number;
  /** Wall time of `provium apply` (ms) of the two-host lab, per run. */
  both: number[];
  half1: number[];
  half2: number[];
  destroy: number[];
}

const HALF = 12;
const RUNS = 3;

/** The lab file body: nodes n1..nHALF on h1, m1..mHALF on h2; `which` keeps one half only. */
function body(which: 'both' | 'h1' | 'h2'): string {
  const a = Array.from({ length: HALF }, (_, i) => `n${i + 1}`);
  const b = Array.from({ length: HALF }, (_, i) => `m${i + 1}`);
  const nodes = [...(which !== 'h2' ? a.map((n) => `    ${n}: { kind: netns, host: h1 }`) : []), ...(which !== 'h1' ? b.map((n) => `    ${n}: { kind: netns, host: h2 }`) : [])];
  const mine = (xs: string[]) => xs.filter((x) => (which === 'both' ? true : which === 'h1' ? x.startsWith('n') : x.startsWith('m')));
  const lan = mine([...a, ...b]);
  const data = mine([...a.slice(0, HALF / 2), ...b.slice(0, HALF / 2)]);
  const parts = mine(a).slice(0, 4).map((x, i) => `[${x}, ${mine(b)[i] ?? mine(a)[i + 4]}]`);
  const imps = mine([...a, ...b]).slice(0, 6).map((x, i, all) => `{ from: ${x}, to: ${all[(i + 1) % all.length]}, drop_pct: 1, bandwidth_bps: ${(i + 1) * 1000000} }`);
  return [
    'nodes:', ...nodes, 'bridges:',
    `  lan: { subnet: 10.90.0.0/22, home: ${which === 'h2' ? 'h2' : 'h1'}, attach: [${lan.join(', ')}], partitions: [${parts.join(', ')}], impairments: [${imps.join(', ')}] }`,
    `  data: { subnet: 10.91.0.0/24, home: ${which === 'h2' ? 'h2' : 'h1'}, attach: [${data.join(', ')}] }`,
    '',
  ].join('\n');
}

export async function multiHostBench(log: (m: string) => void): Promise<MultiHostResult> {
  const res: MultiHostResult = { ok: false, nodes: 2 * HALF, both: [], half1: [], half2: [], destroy: [] };
  const why = hostsSkip();
  if (why) return { ...res, why };
  const hs = new TestHosts(2);
  const only = (h: string) => hs.hosts.filter((x) => x.name === h).map((x) => `  ${x.name}: { ssh: root@${x.underlay}, underlay: ${x.underlay}, ssh_config: ${hs.sshConfig}, state_dir: ${x.stateDir} }`).join('\n');
  const timed = async (args: string[]) => {
    const t0 = performance.now();
    const r = await hs.provium(args, { timeoutMs: 300_000 });
    if (r.code !== 0) throw new Error(`provium ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.slice(-1500)}`);
    return performance.now() - t0;
  };
  try {
    await hs.start();
    for (let run = 0; run < RUNS; run++) {
      hs.write(body('both'));
      res.both.push(await timed(['apply', '--auto-approve']));
      res.destroy.push(await timed(['destroy', '--auto-approve']));
      for (const h of ['h1', 'h2'] as const) {
        hs.write(body(h), { hosts: only(h) });
        (h === 'h1' ? res.half1 : res.half2).push(await timed(['apply', '--auto-approve']));
        await timed(['destroy', '--auto-approve']);
      }
      log(`multi-host run ${run + 1}: both ${secs(res.both[run])} s, halves ${secs(res.half1[run])} s + ${secs(res.half2[run])} s`);
    }
    res.ok = true;
  } catch (e) {
    res.why = (e as Error).message.split('\n')[0];
  } finally {
    hs.write(body('both'));
    await hs.close();
  }
  return res;
}

/** Table rows: the two-host apply against the max and the sum of its halves' applies. */
export function multiHostRows(r: MultiHostResult): { metric: string; value: string; reference: string; ratio: string; target: string; ok: boolean | undefined }[] {
  if (r.both.length === 0) return [{ metric: 'multi-host apply', value: '-', reference: `skipped: ${r.why}`, ratio: '-', target: '(info)', ok: undefined }];
  const both = median(r.both);
  const mx = median(r.half1.map((x, i) => Math.max(x, r.half2[i])));
  const sum = median(r.half1.map((x, i) => x + r.half2[i]));
  return [
    { metric: `2 hosts over SSH, ${r.nodes} nodes, apply vs the max of its halves' single-host applies`, value: `${secs(both)} s`, reference: `${secs(mx)} s max of halves`, ratio: `${(both / mx).toFixed(2)}x`, target: '<= 1.5x', ok: both / mx <= 1.5 },
    { metric: `2 hosts over SSH, ${r.nodes} nodes, apply vs the sum of its halves`, value: `${secs(both)} s`, reference: `${secs(sum)} s sum of halves`, ratio: `${(both / sum).toFixed(2)}x`, target: '< 1x (hosts in parallel)', ok: both < sum },
    { metric: `2 hosts over SSH, ${r.nodes} nodes, destroy`, value: `${secs(median(r.destroy))} s`, reference: `runs ${r.destroy.map(secs).join(', ')}`, ratio: '-', target: '(info)', ok: undefined },
    ...(r.ok ? [] : [{ metric: 'multi-host rows incomplete', value: '-', reference: r.why ?? '', ratio: '-', target: '(info)', ok: undefined }]),
  ];
}
