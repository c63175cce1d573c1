/**
 * `provium run`: scenarios on real labs, proven with traffic.
 * - a flapping link: a steady UDP stream shows each down phase (no datagram between the
 *   down step's commit and the up step's commit) and each up phase (the stream is back);
 * - a failed `until` exits 1, names the step, and leaves the base lab in place (plan
 *   empty, traffic flows, lock released);
 * - SIGTERM in the middle of a run restores the base and exits 1;
 * - a SIGKILLed run leaves a lab (and a stale lock) that the next `provium apply` converges;
 * - the etcd example as a scenario (examples/etcd-scenario.yaml): cut the leader with a
 *   group partition, a new leader on the majority, writes to the old leader time out,
 *   heal, converged;
 * - the latency-region example (examples/latency-regions.yaml, needs netem: run in the
 *   netem test guest by guest-netem.test.ts, skipped here with the reason otherwise).
 * Every JSON event line is checked against schemas/output.schema.json (runEvent).
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';
import { Ajv } from 'ajv';
import { labTest, kernelHasNetem, ping, report, run, udpCount, dedent, PROVIUM_BIN, type Lab } from './helpers.js';

const EXAMPLES = fileURLToPath(new URL('../../../examples/', import.meta.url));
const OUTPUT_SCHEMA = JSON.parse(readFileSync(fileURLToPath(new URL('../../../schemas/output.schema.json', import.meta.url)), 'utf8'));
const ajv = new Ajv({ allErrors: true, strict: false });
ajv.addSchema(OUTPUT_SCHEMA);
const validEvent = ajv.getSchema(`${OUTPUT_SCHEMA.$id}#/definitions/runEvent`)!;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Event = any;

/** Parses `provium run --json` output into events, each checked against the output schema. */
function events(stdout: string): Event[] {
  return stdout.split('\n').filter((l) => l.trim()).map((l) => {
    const e = JSON.parse(l);
    assert.ok(validEvent(e), `event does not match the output schema: ${l}\n${ajv.errorsText(validEvent.errors)}`);
    return e;
  });
}

/** A two-node lab (a, b) on lan, the base of most scenarios here. */
const BASE = `
nodes:
  a: { kind: netns }
  b: { kind: netns }
bridges:
  lan:
    subnet: 10.92.0.0/24
    attach: [a, b]
`;

/** Writes a scenario next to the lab's file (extends: lab.yaml); returns its path. */
function scenario(lab: Lab, name: string, body: string): string {
  const path = join(lab.dir, name);
  writeFileSync(path, `extends: lab.yaml\n${dedent(body)}`);
  return path;
}

/** Runs `provium run --json FILE` to its end. */
async function runScenario(lab: Lab, file: string, extra: string[] = [], timeoutMs = 120_000) {
  const r = await lab.provium(['run', '--json', ...extra], { file, timeoutMs });
  return { ...r, events: events(r.stdout) };
}

/** Starts `provium run --json FILE` in the background; lines as they come, and the process. */
function startRun(lab: Lab, file: string, env: Record<string, string> = {}) {
  const p = execa('node', [PROVIUM_BIN, '--netns', lab.hostNs, 'run', '--json', file], {
    reject: false, timeout: 120_000, killSignal: 'SIGKILL', stdin: 'ignore',
    env: { PROVIUM_STATE_DIR: lab.stateDir, PROVIUM_CACHE_DIR: lab.cacheDir, PROVIUM_TRACE: lab.tracePath, NO_COLOR: '1', ...env },
  });
  const lines: Event[] = [];
  let buf = '';
  p.stdout?.on('data', (d: Buffer) => {
    buf += d.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const l = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (l.trim()) lines.push(JSON.parse(l));
    }
  });
  return { p, lines };
}

/** Waits until an event matching `pred` has been printed (bounded). */
async function waitEvent(lines: Event[], pred: (e: Event) => boolean, what: string, timeoutMs = 30_000): Promise<Event> {
  const t0 = Date.now();
  for (;;) {
    const e = lines.find(pred);
    if (e) return e;
    if (Date.now() - t0 > timeoutMs) throw new Error(`no ${what} within ${timeoutMs} ms; events: ${JSON.stringify(lines)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The base is in place: plan of lab.yaml empty, a <-> b flows. */
async function assertBase(lab: Lab, why: string): Promise<void> {
  const plan = await lab.planCode();
  assert.equal(plan.code, 0, `${why}: plan of the base is empty:\n${plan.stdout}${plan.stderr}`);
  const ips = lab.ips('lan');
  assert.equal(await udpCount(lab.ns('a'), lab.ns('b'), ips.b, 20), 20, `${why}: a -> b flows`);
  assert.equal(await udpCount(lab.ns('b'), lab.ns('a'), ips.a, 20), 20, `${why}: b -> a flows`);
}

/** UDP receiver that records the send time each arriving datagram carries (ms since the epoch, see STEADY_SEND); ends on stdin EOF. */
const STAMP_RECV = `
const s = require('dgram').createSocket('udp4'); const at = [];
s.on('message', (m) => at.push(Number(m.toString())));
s.bind(Number(process.argv[1]), () => process.stdout.write('ready\\n'));
process.stdin.on('end', () => { process.stdout.write(JSON.stringify(at) + '\\n'); process.exit(0); }); process.stdin.resume();
setTimeout(() => { process.stdout.write(JSON.stringify(at) + '\\n'); process.exit(0); }, 60000);
`;
/** UDP sender: one datagram every GAP ms for MS milliseconds, each carrying its send time (ms since the epoch; the receiver records that, so a busy receiver's event loop cannot move a datagram into another phase). */
const STEADY_SEND = `
const s = require('dgram').createSocket('udp4'); const [ip, port, gap, ms] = process.argv.slice(1);
const end = Date.now() + Number(ms); let n = 0;
const tick = () => { if (Date.now() > end) { s.close(); process.stdout.write(String(n) + '\\n'); return; } s.send(String(Date.now()), Number(port), ip, () => {}); n++; setTimeout(tick, Number(gap)); };
tick();
`;

labTest('run: a flapping link (3 rounds of link down 1 s, up 1 s): a steady UDP stream stops at each down commit and resumes after each up commit', async (lab, t) => {
  lab.write(BASE);
  await lab.apply();
  const file = scenario(lab, 'flap.yaml', `
    steps:
      - apply: {}
      - name: flap
        repeat:
          times: 3
          steps:
            - apply: { bridges: { lan: { attach: [{ node: a, link: down }] } } }
            - wait: 1s
            - apply: {}
            - wait: 1s
  `);
  const port = 24000 + Math.floor(Math.random() * 20000);
  const recv: ResultPromise = execa('ip', ['netns', 'exec', lab.ns('a'), 'node', '-e', STAMP_RECV, String(port)], { reject: false, timeout: 70_000, killSignal: 'SIGKILL', stdin: 'pipe' });
  try {
    await new Promise<void>((res, rej) => {
      const timer = setTimeout(() => rej(new Error('receiver not ready')), 10_000);
      recv.stdout?.on('data', (d: Buffer) => d.toString().includes('ready') && (clearTimeout(timer), res()));
    });
    const send = run(['ip', 'netns', 'exec', lab.ns('b'), 'node', '-e', STEADY_SEND, lab.ips('lan').a, String(port), '10', '9000'], { timeoutMs: 20_000 });
    await new Promise((r) => setTimeout(r, 500));
    const r = await runScenario(lab, file);
    const sent = Number((await send).stdout.trim());
    recv.stdin?.end();
    const at = JSON.parse(String((await recv).stdout).trim().split('\n').pop()!) as number[];
    assert.equal(r.code, 0, `run passed:\n${r.stdout}${r.stderr}`);
    const ev = r.events;
    const epoch = ev[0].epoch_ms as number;
    assert.equal(ev.at(-1).outcome, 'passed');
    const applies = ev.filter((e) => e.event === 'step' && e.kind === 'apply' && e.step.startsWith('2.'));
    assert.equal(applies.length, 6, 'three downs and three ups');
    for (const a of applies) assert.ok(a.committed !== undefined && a.changes === 1, `each flap step is one change, committed: ${JSON.stringify(a)}`);
    const lines: string[] = [];
    for (let round = 0; round < 3; round++) {
      const down = epoch + applies[2 * round].committed * 1000;
      const up = epoch + applies[2 * round + 1].committed * 1000;
      const next = round < 2 ? epoch + applies[2 * round + 2].committed * 1000 : up + 900;
      // 50 ms margins: the kernel takes the link down or up while the changing command runs, a
      // few ms before `committed` (the instant that command returned).
      const inDown = at.filter((x) => x > down + 50 && x < up - 50).length;
      const inUp = at.filter((x) => x > up + 300 && x < next).length;
      const expectUp = (next - up - 300) / 10;
      lines.push(`round ${round + 1}: down ${Math.round(up - down)} ms with ${inDown} datagrams, up window ${Math.round(next - up - 300)} ms with ${inUp} (about ${Math.round(expectUp)} sent)`);
      assert.equal(inDown, 0, `round ${round + 1}: nothing arrives while a's link is down (sent at ${at.filter((x) => x > down + 50 && x < up - 50).map((x) => `down+${Math.round(x - down)} ms`).join(', ')}; up at down+${Math.round(up - down)} ms)`);
      assert.ok(inUp >= expectUp * 0.5, `round ${round + 1}: traffic is back after the up commit (${inUp} of ~${Math.round(expectUp)})`);
    }
    const gaps = at.slice(1).map((x, i) => x - at[i]).filter((g) => g > 600);
    report(t, `${sent} sent, ${at.length} received; gaps over 600 ms: ${gaps.join(', ')} ms; ${lines.join('; ')}; step commit times: ${applies.map((a) => Math.round((a.committed - a.start) * 1000)).join(', ')} ms`);
    assert.equal(gaps.length, 3, 'exactly three outages');
  } finally {
    recv.kill('SIGKILL');
  }
  await assertBase(lab, 'after the flaps');
});

labTest('run: a failed until exits 1, names the step, restores the base lab and releases the lock', async (lab) => {
  lab.write(BASE);
  const file = scenario(lab, 'fail.yaml', `
    steps:
      - apply: {}
      - name: cut
        apply: { bridges: { lan: { partitions: [{ groups: [[a], others] }] } } }
      - name: never
        until: { node: a, run: [ping, -c, 1, -W, 1, "\${B_IP}"], timeout: 2s, interval: 200ms }
      - wait: 1s
  `);
  const r = await runScenario(lab, file, ['--var', `B_IP=${lab.ips('lan').b}`]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  const failed = r.events.find((e) => e.event === 'step' && e.outcome === 'failed');
  assert.equal(failed?.step, '3');
  assert.equal(failed?.name, 'never');
  // The last try is cut at the step's timeout when it is still running.
  assert.match(failed.reason, /^not within 2s \(\d+ tries\); (last try: exit 1 \(expected 0\)|the last try was still running)/);
  assert.ok(!r.events.some((e) => e.event === 'step' && e.step === '4'), 'the steps after the failure do not run');
  const restore = r.events.find((e) => e.event === 'restore');
  // The partition, and the lab's nft bridge table that came with it.
  assert.ok(restore?.outcome === 'ok' && restore.changes >= 1, JSON.stringify(restore));
  assert.deepEqual([r.events.at(-1).outcome, r.events.at(-1).failed_step], ['failed', '3']);
  assert.ok(!existsSync(join(lab.stateDir, `${lab.name}.lock`)), 'lock released');
  // The text output says the same.
  const text = await lab.provium(['run', '--var', `B_IP=${lab.ips('lan').b}`], { file });
  assert.equal(text.code, 1);
  assert.match(text.stdout, /step 3 \(never\): until a: ping .* {2}FAILED: not within 2s/);
  assert.match(text.stdout, /restoring the base lab: \d+ change\(s\)/);
  assert.match(text.stdout, /run failed at step 3: not within 2s/);
  await assertBase(lab, 'after the failed run');
});

labTest('run: SIGTERM in the middle of a run restores the base and exits 1', async (lab, t) => {
  lab.write(BASE);
  const file = scenario(lab, 'long.yaml', `
    steps:
      - apply: {}
      - name: cut
        apply: { bridges: { lan: { partitions: [[a, b]] } } }
      - wait: 60s
  `);
  const { p, lines } = startRun(lab, file);
  const cut = await waitEvent(lines, (e) => e.event === 'step' && e.name === 'cut', 'the cut step');
  assert.equal(cut.outcome, 'ok');
  assert.equal(await udpCount(lab.ns('a'), lab.ns('b'), lab.ips('lan').b, 10), 0, 'the cut is in place while the run waits');
  const t0 = Date.now();
  p.kill('SIGTERM');
  const r = await p;
  report(t, `exit ${r.exitCode} ${Date.now() - t0} ms after SIGTERM; events: ${lines.map((e) => `${e.event}${e.step ? ` ${e.step}` : ''} ${e.outcome ?? ''}`).join(', ')}`);
  assert.equal(r.exitCode, 1, String(r.stderr));
  for (const e of lines) assert.ok(validEvent(e), JSON.stringify(e));
  assert.deepEqual(lines.filter((e) => e.event === 'step').map((e) => `${e.step} ${e.outcome}`), ['1 ok', '2 ok', '3 stopped']);
  assert.deepEqual([lines.find((e) => e.event === 'restore')?.outcome, lines.at(-1).outcome, lines.at(-1).reason], ['ok', 'stopped', 'stopped by SIGTERM']);
  assert.ok(Date.now() - t0 < 15_000, 'stops promptly');
  await assertBase(lab, 'after SIGTERM');
});

labTest('run: a SIGKILLed run leaves a lab (and a stale lock) that the next apply converges', async (lab) => {
  lab.write(BASE);
  const file = scenario(lab, 'kill.yaml', `
    steps:
      - apply: {}
      - name: degrade
        apply: { bridges: { lan: { partitions: [{ from: a, to: b }], impairments: [{ drop_pct: 30 }] } } }
      - wait: 60s
  `);
  const { p, lines } = startRun(lab, file);
  await waitEvent(lines, (e) => e.event === 'step' && e.name === 'degrade', 'the degrade step');
  p.kill('SIGKILL');
  await p;
  assert.ok(existsSync(join(lab.stateDir, `${lab.name}.lock`)), 'the killed run left its lock');
  assert.equal(await udpCount(lab.ns('a'), lab.ns('b'), lab.ips('lan').b, 10), 0, 'the overlay is still in place');
  const plan = await lab.planCode();
  assert.equal(plan.code, 2, 'plan of the base shows the left-over changes');
  const apply = await lab.provium(['apply', '--auto-approve']);
  assert.equal(apply.code, 0, apply.stdout + apply.stderr);
  assert.match(apply.stderr, /removing stale lock/);
  await assertBase(lab, 'after the SIGKILL and one apply');
  // A SIGKILL in the middle of an apply step's commands (the hook kills after the first changing invocation).
  const { p: p2, lines: l2 } = startRun(lab, file, { PROVIUM_TEST_KILL_AFTER: '1' });
  await p2;
  assert.ok(!l2.some((e) => e.event === 'step' && e.name === 'degrade' && e.outcome === 'ok'), 'killed inside the degrade step');
  const again = await lab.provium(['apply', '--auto-approve']);
  assert.equal(again.code, 0, again.stdout + again.stderr);
  await assertBase(lab, 'after a SIGKILL inside an apply step and one apply');
});

labTest('plan -f OVERLAY --var X --out PLANFILE: the saved plan holds every file and variable; apply PLANFILE applies the merged lab after the overlay file is gone', async (lab) => {
  lab.write(BASE);
  await lab.apply();
  const overlay = join(lab.dir, 'cut.yaml');
  writeFileSync(overlay, 'bridges: { lan: { partitions: [{ groups: [["${WHO}"], others] }] } }\n');
  const planFile = join(lab.dir, 'cut.plan.json');
  const p = await lab.provium(['plan', '-f', overlay, '--var', 'WHO=a', '--out', planFile]);
  assert.equal(p.code, 0, p.stdout + p.stderr);
  assert.match(p.stdout, /^Merged 2 files \(later wins\): .*lab\.yaml, .*cut\.yaml/);
  assert.match(p.stdout, /bridge\.lan\.partition\[a\|others\] will be created/);
  rmSync(overlay);
  const a = await lab.provium(['apply', planFile], { file: false });
  assert.equal(a.code, 0, a.stdout + a.stderr);
  assert.equal(await udpCount(lab.ns('b'), lab.ns('a'), lab.ips('lan').a, 10), 0, 'the group partition from the saved plan is in place');
  const back = await lab.provium(['apply', '--auto-approve']);
  assert.equal(back.code, 0, back.stdout + back.stderr);
  await assertBase(lab, 'after applying the base again');
});

// ---------------------------------------------------------------------------
// The etcd example as a scenario.

function which(tool: string): boolean {
  return (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').some((d) => d && existsSync(join(d, tool)));
}

const etcdMembers = new Set<ResultPromise>();
process.on('exit', () => {
  for (const m of etcdMembers) m.kill('SIGKILL');
});

/** etcd's view of one member, or an error text. */
async function etcdStatus(lab: Lab, ip: string): Promise<{ id: string; leader: string; term: number } | string> {
  const r = await run(['ip', 'netns', 'exec', lab.hostNs, 'etcdctl', `--endpoints=http://${ip}:2379`, '--dial-timeout=2s', '--command-timeout=3s', 'endpoint', 'status', '-w', 'json'], { timeoutMs: 8000, env: { ETCDCTL_API: '3' } });
  if (r.code !== 0) return (r.stderr || r.stdout).trim();
  const text = r.stdout.replace(/("(?:cluster_id|member_id|leader)"\s*:\s*)(\d+)/g, '$1"$2"');
  const [j] = JSON.parse(text) as { Status: { header: { member_id: string }; leader?: string; raftTerm: number } }[];
  return { id: j.Status.header.member_id, leader: j.Status.leader ?? '0', term: j.Status.raftTerm };
}

labTest(
  'run examples/etcd-scenario.yaml: cut the leader with a group partition, the majority elects a new leader and takes writes, writes to the old leader time out, heal, converged',
  async (lab, t) => {
    // The examples under the lab's unique name, side by side (the scenario extends etcd.yaml).
    const base = readFileSync(join(EXAMPLES, 'etcd.yaml'), 'utf8').replace(/^lab:.*$/m, `lab: ${lab.name}`);
    writeFileSync(join(lab.dir, 'etcd.yaml'), base);
    copyFileSync(join(EXAMPLES, 'etcd-scenario.yaml'), join(lab.dir, 'etcd-scenario.yaml'));
    lab.write(base.replace(/^lab:.*\n/m, ''));
    await lab.apply();
    const names = ['e1', 'e2', 'e3'];
    const ip = Object.fromEntries(names.map((n) => [n, lab.ip(n, 'lan')]));
    const data = mkdtempSync(join(tmpdir(), `pvt-etcd-${lab.name}-`));
    try {
      for (const n of names) {
        const m = execa('ip', ['netns', 'exec', lab.ns(n), 'etcd', '--name', n, '--data-dir', join(data, n),
          '--listen-peer-urls', `http://${ip[n]}:2380`, '--initial-advertise-peer-urls', `http://${ip[n]}:2380`,
          '--listen-client-urls', `http://${ip[n]}:2379,http://127.0.0.1:2379`, '--advertise-client-urls', `http://${ip[n]}:2379`,
          '--initial-cluster', names.map((x) => `${x}=http://${ip[x]}:2380`).join(','), '--initial-cluster-state', 'new',
          '--initial-cluster-token', `pvt-${lab.name}`, '--heartbeat-interval', '100', '--election-timeout', '1000'],
        { reject: false, stdin: 'ignore', stdout: 'ignore', stderr: { file: join(data, `${n}.log`) }, timeout: 180_000, killSignal: 'SIGKILL' });
        etcdMembers.add(m);
      }
      // Find the leader (what a user reads with etcdctl endpoint status before the run).
      let st: (Awaited<ReturnType<typeof etcdStatus>>)[] = [];
      const t0 = Date.now();
      for (;;) {
        st = await Promise.all(names.map((n) => etcdStatus(lab, ip[n])));
        const ok = st.filter((s): s is Exclude<typeof s, string> => typeof s !== 'string');
        if (ok.length === 3 && ok[0].leader !== '0' && ok.every((s) => s.leader === ok[0].leader)) break;
        if (Date.now() - t0 > 30_000) throw new Error(`the cluster did not form: ${JSON.stringify(st)}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      const ok0 = st as { id: string; leader: string; term: number }[];
      const leader = names[ok0.findIndex((s) => s.id === ok0[0].leader)];
      const follower = names.find((n) => n !== leader)!;
      const r = await runScenario(lab, join(lab.dir, 'etcd-scenario.yaml'), ['--var', `LEADER=${leader}`, '--var', `FOLLOWER=${follower}`], 150_000);
      const steps = r.events.filter((e) => e.event === 'step');
      report(t, `leader ${leader} (term ${ok0[0].term}); ${steps.map((e) => `${e.step} ${e.name ?? e.what}: ${e.outcome} ${e.end - e.start >= 0 ? `${Math.round((e.end - e.start) * 1000)} ms` : ''}${e.committed !== undefined ? ` (committed ${Math.round((e.committed - e.start) * 1000)} ms)` : ''}${e.tries ? `, ${e.tries} tries` : ''}`).join('; ')}`);
      assert.equal(r.code, 0, `the scenario passed:\n${r.stdout}${r.stderr}\n${names.map((n) => `--- ${n}\n${readFileSync(join(data, `${n}.log`), 'utf8').split('\n').slice(-8).join('\n')}`).join('\n')}`);
      const cut = steps.find((e) => e.name === 'cut the leader off');
      // The group partition is one change (with the lab's nft bridge table, created with its first element).
      assert.ok(cut?.committed !== undefined && cut.changes >= 1 && cut.changes <= 2, `the cut: ${JSON.stringify(cut)}`);
      assert.ok(steps.find((e) => e.name === 'the majority elects a new leader and takes writes')?.outcome === 'ok');
      assert.ok(steps.find((e) => e.name === 'writes to the old leader time out')?.outcome === 'ok');
      // After the heal: one leader on all three, at a higher raft term.
      const after = await Promise.all(names.map((n) => etcdStatus(lab, ip[n])));
      const ok = after.filter((s): s is Exclude<typeof s, string> => typeof s !== 'string');
      assert.equal(ok.length, 3, JSON.stringify(after));
      assert.ok(ok.every((s) => s.leader === ok[0].leader), `one leader: ${JSON.stringify(after)}`);
      assert.ok(ok[0].term > ok0[0].term, `raft term went up: ${ok0[0].term} -> ${ok[0].term}`);
      assert.equal((await lab.planCode()).code, 0, 'the base is in place');
    } finally {
      const all = [...etcdMembers];
      for (const m of all) m.kill('SIGKILL');
      await Promise.race([Promise.allSettled(all), new Promise((r) => setTimeout(r, 5000))]);
      etcdMembers.clear();
      // Abort the connections the killed members left (they would keep the namespaces alive).
      for (const n of names) await run(['ip', 'netns', 'exec', lab.ns(n), 'ss', '-K', '-tn'], { timeoutMs: 5000 });
      rmSync(data, { recursive: true, force: true });
    }
  },
  { skip: ['etcd', 'etcdctl'].some((x) => !which(x)) ? 'needs etcd and etcdctl (Debian packages etcd-server, etcd-client; scripts/setup.sh installs them)' : undefined, timeoutMs: 200_000 },
);

// ---------------------------------------------------------------------------
// The latency-region example (needs netem). Named "latency ..." so guest-netem.test.ts runs it in the guest.

labTest(
  'latency regions (examples/latency-regions.yaml): provium run passes its RTT checks; round trips between regions are twice the one-way latency of their group, within a region unshaped',
  async (lab, t) => {
    const text = readFileSync(join(EXAMPLES, 'latency-regions.yaml'), 'utf8').replace(/^lab:.*\n/m, '');
    lab.write(text);
    const r = await runScenario(lab, lab.file, [], 150_000);
    const steps = r.events.filter((e) => e.event === 'step');
    report(t, steps.map((e) => `${e.step} ${e.name ?? e.what}: ${e.outcome}${e.committed !== undefined ? ` (committed ${Math.round((e.committed - e.start) * 1000)} ms)` : ''}`).join('; '));
    assert.equal(r.code, 0, `the scenario passed:\n${r.stdout}${r.stderr}`);
    // The scenario ends on the base: measure it from outside too.
    const ips = lab.ips('wan');
    // One ping first: its ARP exchange crosses the same delay and would raise the average.
    const rtt = async (from: string, to: string) => (await ping(lab.ns(from), ips[to], 1, 0.2), (await ping(lab.ns(from), ips[to], 10, 0.2)).avgMs);
    const m = { euEu: await rtt('eu1', 'eu2'), euUs: await rtt('eu1', 'us1'), euAp: await rtt('eu2', 'ap1'), usAp: await rtt('us2', 'ap1') };
    report(t, `RTT ms: eu1-eu2 ${m.euEu.toFixed(1)}, eu1-us1 ${m.euUs.toFixed(1)}, eu2-ap1 ${m.euAp.toFixed(1)}, us2-ap1 ${m.usAp.toFixed(1)}`);
    assert.ok(m.euEu < 15, `within a region: ${m.euEu}`);
    assert.ok(m.euUs >= 80 && m.euUs < 110, `EU-US 2 x 40 ms: ${m.euUs}`);
    assert.ok(m.euAp >= 240 && m.euAp < 280, `EU-AP 2 x 120 ms: ${m.euAp}`);
    assert.ok(m.usAp >= 180 && m.usAp < 215, `US-AP 2 x 90 ms: ${m.usAp}`);
  },
  { skip: kernelHasNetem() ? undefined : 'needs the kernel\'s sch_netem (latency): runs in the netem test guest (test/e2e/guest-netem.test.ts)', timeoutMs: 200_000 },
);
