/**
 * provium capture: tcpdump on a lab bridge or on a node NIC's host-side port, in the
 * lab's host namespace. Proven with real traffic (ping a -> b while capturing): the
 * pcap file is a real pcap that tcpdump reads back, decoded lines reach stdout,
 * --duration and Ctrl-C (SIGINT to provium) stop it cleanly with no tcpdump left
 * running, and every error exits 1 with no file left behind.
 *
 * The first tests need no root: target resolution and option parsing are pure.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { execa, type ResultPromise } from 'execa';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { labTest, ping, run, report, ipOf, PROVIUM_BIN, type Lab } from './helpers.js';
import { loadTopology } from '../../src/load/index.js';
import { parseDuration, resolveTarget, tcpdumpArgs, filterWords } from '../../src/capture.js';

const LAB = `
  nodes: { a: { kind: netns }, b: { kind: netns } }
  bridges:
    lan: { subnet: 10.40.0.0/24, attach: [a, b] }
`;
const A = ipOf(LAB, 'a', 'lan');
const B = ipOf(LAB, 'b', 'lan');

// ---------------------------------------------------------------------------
// Pure parts (no root)

test('capture: targets resolve to the bridge device or the NIC port; bad ones name the valid targets', () => {
  const t = loadTopology('/virtual/lab.yaml', 'lab: demo\nnodes: { a: { kind: netns }, b: { kind: netns } }\nbridges:\n  lan: { attach: [a, b] }\n  data: { attach: [a] }\n');
  assert.deepEqual(resolveTarget(t, 'lan'), { kind: 'bridge', dev: 'demo-lan', what: 'bridge lan' });
  // a's NICs in order of bridge name: data = eth0, lan = eth1.
  assert.equal(resolveTarget(t, 'a.eth0').dev, 'demo-a-0');
  assert.equal(resolveTarget(t, 'a.eth1').dev, 'demo-a-1');
  assert.match(resolveTarget(t, 'a.eth1').what, /on bridge lan/);
  assert.equal(resolveTarget(t, 'b.eth0').dev, 'demo-b-0');
  assert.throws(() => resolveTarget(t, 'wan'), (e: Error & { hint?: string }) => /unknown capture target "wan"/.test(e.message) && /lan/.test(e.hint!) && /a\.eth0/.test(e.hint!));
  assert.throws(() => resolveTarget(t, 'a.eth5'), (e: Error) => /node a has no NIC "eth5".*a\.eth0, a\.eth1/.test(e.message));
  assert.throws(() => resolveTarget(t, 'zz.eth0'), /no node "zz"/);
  assert.throws(() => resolveTarget(t, 'a'), /is a node, not a bridge/);
});

test('capture: durations, counts, filters and the tcpdump argv', () => {
  assert.equal(parseDuration('5s'), 5000);
  assert.equal(parseDuration('250ms'), 250);
  assert.equal(parseDuration('2m'), 120_000);
  assert.equal(parseDuration('1.5'), 1500);
  for (const bad of ['', 's', '5h', '-1s', '0', '1e3']) assert.throws(() => parseDuration(bad), /--duration/, bad);
  assert.deepEqual(filterWords(' icmp  and host 10.0.0.1 '), ['icmp', 'and', 'host', '10.0.0.1']);
  assert.throws(() => filterWords('  '), /empty/);
  // The filter always follows `--`: a word like "-w" is never read as an option.
  assert.deepEqual(tcpdumpArgs('demo-lan', { pcap: true, count: 10, filter: ['-w', '/etc/x'] }), ['-i', 'demo-lan', '-U', '-n', '--immediate-mode', '-w', '-', '-c', '10', '--', '-w', '/etc/x']);
  assert.deepEqual(tcpdumpArgs('demo-a-0', { pcap: false, filter: [] }), ['-i', 'demo-a-0', '-U', '-n', '--immediate-mode']);
});

// ---------------------------------------------------------------------------
// Helpers

interface Bg {
  proc: ResultPromise;
  stdout: () => string;
  stderr: () => string;
  /** Resolves when provium reports that tcpdump is listening. */
  ready: Promise<void>;
  done: Promise<{ code: number; ms: number }>;
}

const started: ResultPromise[] = [];

/** provium capture in the background (bounded: SIGKILL after timeoutMs). */
function bgCapture(lab: Lab, args: string[], timeoutMs = 30_000): Bg {
  const t0 = performance.now();
  const proc = execa('node', [PROVIUM_BIN, '--netns', lab.hostNs, 'capture', lab.file, ...args], {
    reject: false,
    timeout: timeoutMs,
    killSignal: 'SIGKILL',
    stdin: 'ignore',
    env: { PROVIUM_STATE_DIR: lab.stateDir, PROVIUM_CACHE_DIR: lab.cacheDir, PROVIUM_TRACE: lab.tracePath, NO_COLOR: '1' },
  });
  started.push(proc);
  let out = '';
  let err = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`capture did not start listening within 10 s: ${err}`)), 10_000);
    proc.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
      if (/capturing on /.test(err)) {
        clearTimeout(timer);
        resolve();
      }
    });
    proc.then((r) => {
      clearTimeout(timer);
      reject(new Error(`capture exited (code ${r.exitCode}) before listening: ${err}`));
    });
  });
  ready.catch(() => {}); // awaited by the test; a late rejection after exit is expected
  const done = proc.then((r) => ({ code: r.timedOut ? 124 : (r.exitCode ?? (r.signal ? 128 : 1)), ms: performance.now() - t0 }));
  return { proc, stdout: () => out, stderr: () => err, ready, done };
}

/** Pids of tcpdump processes capturing on one of this lab's devices. */
function labTcpdumps(lab: Lab): number[] {
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (argv.some((a) => a.endsWith('tcpdump')) && argv.some((a) => a.startsWith(`${lab.name}-`))) pids.push(Number(p));
  }
  return pids;
}

/** Kills what the test started (by pid), and fails when a tcpdump of the lab is left running. */
async function finish(lab: Lab): Promise<void> {
  for (const p of started.splice(0)) p.kill('SIGKILL');
  const left = labTcpdumps(lab);
  for (const pid of left) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  assert.deepEqual(left, [], `no tcpdump of lab ${lab.name} is left running`);
}

/** Host-side files in the lab's directory other than the lab's own (state, trace, yaml). */
function strayFiles(lab: Lab): string[] {
  return readdirSync(lab.dir).filter((f) => !['state', 'cache', 'trace.jsonl', 'lab.yaml'].includes(f) && !f.endsWith('.keep'));
}

/** The pcap magic of a file: 'pcap' (either byte order, µs or ns), 'pcapng', or the hex. */
function magic(file: string): string {
  const b = readFileSync(file).subarray(0, 4);
  const m = b.readUInt32LE(0);
  if ([0xa1b2c3d4, 0xd4c3b2a1, 0xa1b23c4d, 0x4d3cb2a1].includes(m)) return 'pcap';
  if (m === 0x0a0d0d0a) return 'pcapng';
  return b.toString('hex');
}

// ---------------------------------------------------------------------------
// End to end (root)

labTest('capture lan -w F --count 10 while a pings b: a pcap with the ICMP echo exchange', async (lab, t) => {
  lab.write(LAB);
  await lab.apply();
  try {
    const f = join(lab.dir, 'lan.pcap');
    const c = bgCapture(lab, ['lan', '-w', f, '--count', '10']);
    await c.ready;
    const p = await ping(lab.ns('a'), B, 30, 0.05);
    assert.ok(p.received > 0, `a reaches b: ${p.received}/${p.transmitted}`);
    const r = await c.done;
    assert.equal(r.code, 0, `capture exits 0: ${c.stderr()}`);
    assert.match(c.stderr(), /captured 10 packets on \S+-lan/, 'the summary counts 10 packets');
    assert.ok(c.stderr().includes(`wrote ${f}`), `the summary names the file: ${c.stderr()}`);
    assert.ok(existsSync(f), 'the pcap file exists');
    assert.equal(magic(f), 'pcap', 'the file starts with a pcap magic number');
    const rd = await run(['tcpdump', '-r', f, '-n'], { timeoutMs: 15_000 });
    assert.equal(rd.code, 0, `tcpdump reads the file back: ${rd.stderr}`);
    const lines = rd.stdout.trim().split('\n');
    assert.equal(lines.length, 10, `10 packets in the file:\n${rd.stdout}`);
    assert.ok(lines.some((l) => l.includes(`IP ${A} > ${B}: ICMP echo request`)), `an echo request a -> b:\n${rd.stdout}`);
    assert.ok(lines.some((l) => l.includes(`IP ${B} > ${A}: ICMP echo reply`)), `an echo reply b -> a:\n${rd.stdout}`);
    assert.deepEqual(strayFiles(lab), ['lan.pcap'], 'no temporary file is left next to it');
    report(t, `capture lan --count 10: ${r.ms.toFixed(0)} ms, ${readFileSync(f).length} bytes, ${lines.filter((l) => l.includes('ICMP echo')).length} ICMP echo packets of 10`);
  } finally {
    await finish(lab);
  }
});

labTest('capture a.eth0 --count 4 prints decoded ICMP lines on stdout', async (lab, t) => {
  lab.write(LAB);
  await lab.apply();
  try {
    assert.equal((await ping(lab.ns('a'), B, 1, 0.1)).received, 1, 'warm-up ping (ARP resolved)');
    const c = bgCapture(lab, ['a.eth0', '--count', '4']);
    await c.ready;
    await ping(lab.ns('a'), B, 20, 0.05);
    const r = await c.done;
    assert.equal(r.code, 0, `capture exits 0: ${c.stderr()}`);
    const lines = c.stdout().trim().split('\n');
    assert.equal(lines.length, 4, `4 decoded packets on stdout:\n${c.stdout()}`);
    assert.ok(lines.some((l) => l.includes(`IP ${A} > ${B}: ICMP echo request`)), `a decoded echo request:\n${c.stdout()}`);
    assert.ok(lines.some((l) => l.includes(`IP ${B} > ${A}: ICMP echo reply`)), `a decoded echo reply:\n${c.stdout()}`);
    assert.match(c.stderr(), new RegExp(`capturing on ${lab.port('a', 0)} \\(node a's eth0 on bridge lan\\)`), 'it names the port');
    assert.match(c.stderr(), /captured 4 packets/, 'summary on stderr');
    assert.doesNotMatch(c.stdout(), /captured|capturing/, 'stdout carries packets only');
    report(t, `capture a.eth0 --count 4: ${r.ms.toFixed(0)} ms; ${lines.filter((l) => /ICMP echo/.test(l)).length} of 4 lines ICMP echo`);
  } finally {
    await finish(lab);
  }
});

labTest('capture --duration 2s stops on its own; Ctrl-C (SIGINT to provium) stops tcpdump cleanly and keeps the packets', async (lab, t) => {
  lab.write(LAB);
  await lab.apply();
  try {
    // --duration: no traffic matches the filter, so only the timer can end it.
    const f = join(lab.dir, 'quiet.pcap');
    const d = await lab.provium(['capture', lab.file, 'lan', '--duration', '2s', '--filter', 'icmp', '-w', f], { file: false, timeoutMs: 15_000 });
    assert.equal(d.code, 0, `capture --duration exits 0: ${d.stderr}`);
    assert.ok(d.ms >= 2000 && d.ms < 3500, `it stops after 2 s (whole provium run ${d.ms.toFixed(0)} ms)`);
    assert.match(d.stderr, /captured 0 packets .*duration over/, d.stderr);
    assert.equal(magic(f), 'pcap', 'an empty capture is still a valid pcap (header only)');
    assert.equal(readFileSync(f).length, 24, 'the pcap header and no packet');

    // SIGINT to provium (what Ctrl-C does): tcpdump is stopped, flushes, and the file holds the pings.
    const g = join(lab.dir, 'sigint.pcap');
    const c = bgCapture(lab, ['a.eth0', '-w', g]);
    await c.ready;
    assert.equal(labTcpdumps(lab).length, 1, 'one tcpdump runs for the capture');
    const p = await ping(lab.ns('a'), B, 3, 0.1);
    assert.equal(p.received, 3);
    const t0 = performance.now();
    c.proc.kill('SIGINT');
    const r = await c.done;
    const stopMs = performance.now() - t0;
    assert.equal(r.code, 0, `an interrupted capture exits 0: ${c.stderr()}`);
    assert.ok(stopMs < 2000, `it stops promptly (${stopMs.toFixed(0)} ms)`);
    assert.match(c.stderr(), /interrupted/, c.stderr());
    assert.deepEqual(labTcpdumps(lab), [], 'tcpdump is gone when provium returns');
    const rd = await run(['tcpdump', '-r', g, '-n'], { timeoutMs: 15_000 });
    const echoes = rd.stdout.split('\n').filter((l) => /ICMP echo (request|reply)/.test(l)).length;
    assert.equal(echoes, 6, `all 3 requests and 3 replies are in the file (nothing lost in the ring on SIGINT):\n${rd.stdout}`);
    report(t, `--duration 2s: provium ran ${d.ms.toFixed(0)} ms; SIGINT: stopped in ${stopMs.toFixed(0)} ms with ${echoes}/6 ICMP echo packets kept`);
  } finally {
    await finish(lab);
  }
});

labTest('capture errors: unknown target, unknown NIC, device not there yet, bad filter; exit 1 and no file left', async (lab) => {
  lab.write(LAB);
  try {
    const f = join(lab.dir, 'out.pcap');
    const cap = (args: string[]) => lab.provium(['capture', lab.file, ...args], { file: false, timeoutMs: 20_000 });

    const u = await cap(['wan', '-w', f]);
    assert.equal(u.code, 1, `unknown target exits 1: ${u.stderr}`);
    assert.match(u.stderr, /error: unknown capture target "wan"/);
    assert.match(u.stderr, /valid targets: bridges: lan; NICs: a\.eth0, b\.eth0/, 'it lists the valid targets');

    const n = await cap(['a.eth5', '-w', f]);
    assert.equal(n.code, 1, `unknown NIC exits 1: ${n.stderr}`);
    assert.match(n.stderr, /node a has no NIC "eth5".*a\.eth0/);

    // Before apply: neither the port nor the bridge exists in the host namespace.
    const port = await cap(['a.eth0', '-w', f]);
    assert.equal(port.code, 1, `capture before apply exits 1: ${port.stderr}`);
    assert.match(port.stderr, new RegExp(`error: port ${lab.port('a', 0)} does not exist in namespace ${lab.hostNs}: run provium apply first`));
    const br = await cap(['lan', '--count', '1']);
    assert.equal(br.code, 1);
    assert.match(br.stderr, new RegExp(`error: bridge ${lab.bridge('lan')} does not exist.*run provium apply first`));

    for (const [args, re] of [
      [['lan', '--duration', '5h'], /--duration: invalid duration "5h"/],
      [['lan', '--count', '0'], /--count: expected a positive whole number/],
    ] as const) {
      const r = await cap([...args, '-w', f]);
      assert.equal(r.code, 1, `${args.join(' ')} exits 1`);
      assert.match(r.stderr, re);
    }

    // After apply: a filter tcpdump rejects (here one that would be an option without `--`).
    await lab.apply();
    const bad = await cap(['lan', '-w', f, '--duration', '5s', '--filter', `-w ${join(lab.dir, 'evil.pcap')}`]);
    assert.equal(bad.code, 1, `a bad filter exits 1: ${bad.stderr}`);
    assert.match(bad.stderr, /--filter: tcpdump rejected the expression/);
    assert.ok(bad.ms < 4000, `it fails at once, not after --duration (${bad.ms.toFixed(0)} ms)`);

    assert.ok(!existsSync(f), 'no output file after any error');
    assert.deepEqual(strayFiles(lab), [], 'no partial or temporary file left behind');
  } finally {
    await finish(lab);
  }
});
