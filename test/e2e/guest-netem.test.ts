/**
 * Latency and jitter need sch_netem, which the CI kernel lacks. This test boots the
 * project's test guest (a Debian kernel that has netem) with the host's file system
 * shared read-only over 9p (pv.hostroot=1, writes go to a tmpfs overlay in the
 * guest) and runs the latency end-to-end tests there, with this very checkout's
 * provium: real netem qdiscs, real pings. It asserts those tests ran and passed
 * there (not skipped). Where the host itself has netem they run directly instead.
 * The same boot runs probe-netem.test.ts: `provium probe` against netem, and netem's
 * queue sized from bandwidth and latency (about 2.5 minutes more in the guest), and the
 * netem read of netlink.test.ts (the helper reads netem leaves as tc does).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { kernelHasNetem, run, suiteSkip } from './helpers.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url)).replace(/\/$/, '');
const GUEST = `${REPO}/.cache/guest/`;

function skipReason(): string | undefined {
  const s = suiteSkip();
  if (s) return s;
  if (kernelHasNetem()) return 'the host kernel has sch_netem: the latency tests run directly on the host';
  if (!existsSync(`${GUEST}vmlinux`)) return `no test guest in ${GUEST}: run scripts/build-guest.sh (npm test does)`;
  if (!existsSync('/usr/bin/qemu-system-x86_64')) return 'qemu-system-x86_64 is not installed';
  return undefined;
}

test('latency tests pass inside a netem-capable guest running this checkout', { skip: skipReason() ?? false, timeout: 900_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pv-guest-'));
  const consoleLog = `${dir}/console.log`;
  const cmd = `cd ${REPO} && node --test --test-reporter=tap --test-concurrency=1 --test-name-pattern='^(latency|netem (probe|queue|read))' dist/test/e2e/impairments.test.js dist/test/e2e/scenarios.test.js dist/test/e2e/probe-netem.test.js dist/test/e2e/netlink.test.js 2>&1`;
  const t0 = Date.now();
  try {
    const r = await run([
      'timeout', '840', 'qemu-system-x86_64', '-accel', 'tcg', '-m', '1024', '-smp', '2', '-display', 'none', '-vga', 'none', '-monitor', 'none',
      '-no-reboot', '-nic', 'none', '-serial', `file:${consoleLog}`,
      '-kernel', `${GUEST}vmlinux`, '-initrd', `${GUEST}initrd.gz`,
      '-append', `console=ttyS0 quiet pv.hostroot=1 pv.timeout=780 pv.cmd=${Buffer.from(cmd).toString('base64')}`,
      '-virtfs', 'local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap',
    ], { timeoutMs: 870_000 });
    const out = existsSync(consoleLog) ? readFileSync(consoleLog, 'utf8') : '';
    const body = out.split('PV-CMD-BEGIN')[1]?.split('PV-CMD-END')[0] ?? '';
    const rc = /PV-CMD-END rc=(\d+)/.exec(out)?.[1];
    for (const l of body.split('\n').filter((x) => /^# (RTT|after|netem|machine|limit|probe took|ok |FAIL |skip |\d+ netem)|^(not )?ok \d+ - (latency|netem)/.test(x.trim()))) t.diagnostic(`guest: ${l.trim()}`);
    t.diagnostic(`guest run took ${Math.round((Date.now() - t0) / 1000)} s (qemu exit ${r.code})`);
    assert.match(out, /PV-BOOT \S+ netem=yes/, `the guest kernel has netem:\n${out.slice(-3000)}`);
    assert.equal(rc, '0', `the latency tests failed in the guest:\n${body.slice(-6000)}`);
    const ran = body.split('\n').filter((l) => /^ok \d+ - latency/.test(l.trim()));
    assert.ok(ran.length >= 3, `the latency tests of impairments.test.js and the latency-region scenario reported:\n${body.slice(-4000)}`);
    for (const l of ran) assert.doesNotMatch(l, /# SKIP/, `a latency test was skipped in the guest: ${l}`);
    const probes = body.split('\n').filter((l) => /^ok \d+ - netem (probe|queue)/.test(l.trim()));
    assert.equal(probes.length, 3, `the three netem probe/queue tests passed in the guest:\n${body.slice(-6000)}`);
    for (const l of probes) assert.doesNotMatch(l, /# SKIP/, `skipped in the guest: ${l}`);
    const reads = body.split('\n').filter((l) => /^ok \d+ - netem read/.test(l.trim()));
    assert.equal(reads.length, 1, `the netem read test (helper vs tc) passed in the guest:\n${body.slice(-6000)}`);
    for (const l of reads) assert.doesNotMatch(l, /# SKIP/, `skipped in the guest: ${l}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
