/**
 * Cost of diagnostics on large broken files (issue 10): `provium validate` of generated
 * topologies with one unknown key per node, timed as a CLI run (Node start-up included),
 * best of 3. Needs no root and touches no host.
 *
 * - "4 MB": 18,330 qemu nodes of ~230 bytes (kernel, initrd, append, memory_mb and one
 *   unknown key each), the file of the issue (provium before the fix: 19.9 s); target < 2 s.
 * - the same topology at 2 MB: the ratio 4 MB / 2 MB shows the growth (2 = linear,
 *   4 = quadratic); target <= 2.5.
 * - the same 4 MB with a known key (cpus: 1) in place of the unknown one: what parsing
 *   and checking a file of that size costs (the floor the errors add to; both files
 *   warn that their unattached nodes are attached to no bridge).
 * - info: a dense 4 MB file (91,422 three-line netns nodes, two diagnostics each).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, secs } from './util.js';

export interface DiagnosticsResult {
  /** Best of 3 wall times (ms) and the number of diagnostics printed, per case. */
  cases: { name: string; bytes: number; nodes: number; ms: number[]; diagnostics: number }[];
}

/** Room left for the closing `bridges:` part, so a file never exceeds `bytes` (4 MiB is the most provium reads from one file). */
const TAIL = 64;

/** qemu nodes with one unknown key each, up to `bytes` bytes. */
function qemuFile(bytes: number, unknown: boolean): { text: string; nodes: number } {
  const parts = ['lab: big\nnodes:\n'];
  let size = parts[0].length;
  let i = 0;
  while (size < bytes) {
    const node = `  vm${i}:\n    kind: qemu\n    kernel: guest/vmlinuz-6.1.0-28-cloud-amd64\n    initrd: guest/initrd.img-6.1.0-28-cloud-amd64\n    append: "console=ttyS0 quiet root=/dev/vda1 pv.ip=10.${(i >> 8) & 255}.${i & 255}.10/16"\n    memory_mb: 256\n${unknown ? '    colour: blue\n' : '    cpus: 1\n'}`;
    if (size + node.length + TAIL > bytes) break; // stays within provium's 4 MiB input limit
    parts.push(node);
    size += node.length;
    i++;
  }
  parts.push('bridges:\n  lan:\n    attach: [vm0]\n');
  return { text: parts.join(''), nodes: i };
}

/** netns nodes of three lines, one unknown key each. */
function denseFile(bytes: number): { text: string; nodes: number } {
  const parts = ['lab: big\nnodes:\n'];
  let size = parts[0].length;
  let i = 0;
  while (size < bytes) {
    const node = `  node${i}:\n    kind: netns\n    colour: blue\n`;
    if (size + node.length + TAIL > bytes) break;
    parts.push(node);
    size += node.length;
    i++;
  }
  parts.push('bridges:\n  lan:\n    attach: [node0]\n');
  return { text: parts.join(''), nodes: i };
}

export async function diagnosticsBench(provBin: string, log: (m: string) => void): Promise<DiagnosticsResult> {
  const dir = mkdtempSync(join(tmpdir(), 'pvb-diag-'));
  const MB = 1024 * 1024;
  const cases = [
    { name: '4 MB, one unknown key per node', ...qemuFile(4 * MB, true) },
    { name: '2 MB, one unknown key per node', ...qemuFile(2 * MB, true) },
    { name: '4 MB, a known key in place of the unknown one', ...qemuFile(4 * MB, false) },
    { name: '4 MB dense, one unknown key per node', ...denseFile(4 * MB) },
  ];
  const out: DiagnosticsResult = { cases: [] };
  try {
    for (const [i, c] of cases.entries()) {
      const file = join(dir, `d${i}.yaml`);
      writeFileSync(file, c.text);
      const ms: number[] = [];
      let diagnostics = 0;
      for (let k = 0; k < 3; k++) {
        const r = await run([process.execPath, provBin, 'validate', file], { check: false, timeoutMs: 600_000, env: { NO_COLOR: '1' } });
        ms.push(r.ms);
        diagnostics = r.stderr.split('\n').filter((l) => / (error|warning): /.test(l)).length;
      }
      out.cases.push({ name: c.name, bytes: c.text.length, nodes: c.nodes, ms, diagnostics });
      log(`diagnostics: ${c.name} (${c.nodes} nodes, ${c.text.length} bytes): ${ms.map(secs).join(', ')} s; ${diagnostics} diagnostics`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

/** Best (smallest) of a case's runs, in ms. */
export function best(c: DiagnosticsResult['cases'][number]): number {
  return Math.min(...c.ms);
}

// `node dist/bench/diagnostics.js`: this part alone, printed (BENCHMARKS.md untouched).
if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const bin = new URL('../../bin/provium', import.meta.url).pathname;
  const r = await diagnosticsBench(bin, (m) => process.stderr.write(`[bench] ${m}\n`));
  for (const c of r.cases) process.stdout.write(`${c.name}: best ${secs(best(c))} s (${c.nodes} nodes, ${c.diagnostics} diagnostics)\n`);
}
