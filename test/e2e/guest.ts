/**
 * The project's test guest in e2e tests: where it is (.cache/guest, built by
 * scripts/build-guest.sh, which npm test runs), why a VM test must skip, and its
 * command port (pv.ctl) for running commands inside a VM.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { run } from './helpers.js';

export const GUEST = fileURLToPath(new URL('../../../.cache/guest/', import.meta.url));
/** TCP port of the guest's command port (kernel command line pv.ctl=7000). */
export const CTL = 7000;

/** Why VM tests cannot run here, or undefined. */
export function vmSkip(): string | undefined {
  if (!existsSync(`${GUEST}vmlinux`) || !existsSync(`${GUEST}initrd.gz`)) return `no test guest in ${GUEST}: run scripts/build-guest.sh (npm test does)`;
  if (!existsSync('/usr/bin/qemu-system-x86_64')) return 'qemu-system-x86_64 is not installed (scripts/build-guest.sh installs it)';
  return undefined;
}

/**
 * Runs a shell command inside a VM through its command port, from `viaNs` (use the lab's
 * host namespace: its traffic to a VM is delivered locally by the bridge, so partitions
 * between members never affect it). Throws when the command port does not answer.
 */
export async function inVm(viaNs: string, vmIp: string, cmd: string, timeoutMs = 20_000): Promise<string> {
  const r = await run(['ip', 'netns', 'exec', viaNs, 'timeout', String(Math.ceil(timeoutMs / 1000)), 'socat', '-t', '5', '-', `TCP:${vmIp}:${CTL},connect-timeout=2`], {
    input: `${cmd}\nexit\n`,
    timeoutMs: timeoutMs + 2000,
  });
  if (r.code !== 0) throw new Error(`command in VM ${vmIp} failed (exit ${r.code}): ${cmd}\n${r.stderr}`);
  return r.stdout;
}

/** Waits until a VM answers on its command port (boot under TCG takes ~4 s, more when several boot at once). */
export async function waitVm(viaNs: string, vmIp: string, timeoutMs = 60_000): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    try {
      if ((await inVm(viaNs, vmIp, 'echo up', 5000)).includes('up')) return;
    } catch {
      /* not yet */
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`VM ${vmIp} did not come up within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Pings from inside a VM; returns packets received. */
export async function vmPing(viaNs: string, vmIp: string, to: string, count = 3): Promise<number> {
  const out = await inVm(viaNs, vmIp, `ping -c ${count} -i 0.2 -W 1 ${to} 2>&1 | tail -2`);
  const m = /(\d+) packets received/.exec(out);
  return m ? Number(m[1]) : 0;
}
