/**
 * VM rows of the benchmark (issue 3): boot time of the project's test guest (apply of a
 * one-VM lab until the guest answers ping, TCG) and a 4-VM lab (apply time, time until
 * all four answer, destroy). Runs in its own throwaway host namespace, removed at the end.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, secs } from './util.js';

export interface VmResult {
  ok: boolean;
  why?: string;
  /** apply of 1 VM until it answers ping (ms), per run. */
  boot1: number[];
  /** apply time of 4 VMs (ms): provium's own run, VMs launched, not yet booted. */
  apply4?: number;
  /** apply of 4 VMs until all answer ping (ms). */
  ready4?: number;
  destroy4?: number;
}

async function until(ns: string, ips: string[], timeoutMs: number): Promise<void> {
  const t0 = performance.now();
  const pending = new Set(ips);
  while (pending.size > 0) {
    for (const ip of [...pending]) {
      const r = await run(['ip', 'netns', 'exec', ns, 'ping', '-c', '1', '-W', '1', ip], { check: false, timeoutMs: 3000 });
      if (r.exitCode === 0) pending.delete(ip);
    }
    if (performance.now() - t0 > timeoutMs) throw new Error(`VMs ${[...pending].join(', ')} did not answer within ${timeoutMs} ms`);
  }
}

export async function vmBench(repo: string, provBin: string, log: (m: string) => void): Promise<VmResult> {
  const guest = join(repo, '.cache', 'guest');
  if (!existsSync(join(guest, 'vmlinux'))) {
    const b = await run(['bash', join(repo, 'scripts', 'build-guest.sh')], { check: false, timeoutMs: 600_000 });
    if (b.exitCode !== 0) return { ok: false, why: `scripts/build-guest.sh failed: ${b.stderr.trim().split('\n').pop()}`, boot1: [] };
  }
  const host = `pvb-vm-${Math.random().toString(36).slice(2, 8)}`;
  const dir = mkdtempSync('/tmp/pvb-vm-');
  const env = { PROVIUM_STATE_DIR: join(dir, 'state'), PROVIUM_CACHE_DIR: join(dir, 'cache'), NO_COLOR: '1' };
  const prov = (args: string[]) => run([process.execPath, provBin, '--netns', host, ...args], { env, timeoutMs: 180_000 });
  const lab = (name: string, n: number) => {
    const nodes = Array.from({ length: n }, (_, i) => `  v${i}: { kind: qemu, kernel: ${guest}/vmlinux, initrd: ${guest}/initrd.gz, append: "console=ttyS0 quiet pv.ip=10.77.0.${10 + i}/24", memory_mb: 160 }`);
    const attach = Array.from({ length: n }, (_, i) => `{ node: v${i}, ip: 10.77.0.${10 + i}/24 }`).join(', ');
    const file = join(dir, `${name}.yaml`);
    writeFileSync(file, `lab: ${name}\nnodes:\n${nodes.join('\n')}\nbridges:\n  lan: { subnet: 10.77.0.0/24, attach: [${attach}] }\n`);
    return { file, ips: Array.from({ length: n }, (_, i) => `10.77.0.${10 + i}`) };
  };
  const res: VmResult = { ok: true, boot1: [] };
  try {
    await run(['ip', 'netns', 'add', host]);
    const one = lab('vmb1', 1);
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      await prov(['apply', '--auto-approve', one.file]);
      await until(host, one.ips, 60_000);
      res.boot1.push(performance.now() - t0);
      log(`vm: 1 guest, apply until it answers ping: ${secs(res.boot1[i])} s`);
      await prov(['destroy', '--auto-approve', one.file]);
    }
    const four = lab('vmb4', 4);
    const t0 = performance.now();
    res.apply4 = (await prov(['apply', '--auto-approve', four.file])).ms;
    await until(host, four.ips, 120_000);
    res.ready4 = performance.now() - t0;
    res.destroy4 = (await prov(['destroy', '--auto-approve', four.file])).ms;
    log(`vm: 4 guests: apply ${secs(res.apply4)} s, all answering after ${secs(res.ready4)} s, destroy ${secs(res.destroy4)} s`);
  } catch (e) {
    res.ok = false;
    res.why = (e as Error).message.split('\n')[0];
  } finally {
    for (const f of ['vmb1', 'vmb4']) await prov(['destroy', '--auto-approve', join(dir, `${f}.yaml`)]).catch(() => undefined);
    await run(['ip', 'netns', 'del', host], { check: false });
    rmSync(dir, { recursive: true, force: true });
  }
  return res;
}
