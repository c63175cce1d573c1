/**
 * Issue 10's defects that need no network: each test fails on provium before the fix
 * (they use only functions that existed then, so they run against it unchanged).
 * The state-directory tests work in a temporary PROVIUM_STATE_DIR under a folder made
 * here; "outside" files and folders they must not touch live next to it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { acquireLock, writeRecord } from '../../src/apply/statedir.js';
import { runInvocations } from '../../src/apply/index.js';
import { startVm, stopVm } from '../../src/apply/vm.js';
import { observeVms } from '../../src/observe/vms.js';
import { checkTopology } from '../../src/load/index.js';
import { computePlan } from '../../src/plan/index.js';
import { qemuArgv } from '../../src/plan/commands.js';
import { emptyState, type HostFacts } from '../../src/model/state.js';
import type { Invocation } from '../../src/plan/types.js';
import type { Runner } from '../../src/host/runner.js';
import { runCli } from './cli-capture.js';

const isRoot = process.getuid?.() === 0;

/** A fresh world: <base>/state as PROVIUM_STATE_DIR, <base>/outside for things provium must leave alone. */
function world(t: { after: (fn: () => void) => void }): { base: string; state: string; outside: string } {
  const base = mkdtempSync(join(tmpdir(), 'pv-hard-'));
  t.after(() => {
    chmodSync(base, 0o700);
    rmSync(base, { recursive: true, force: true });
  });
  const state = join(base, 'state');
  const outside = join(base, 'outside');
  mkdirSync(outside);
  process.env.PROVIUM_STATE_DIR = state;
  return { base, state, outside };
}

/** A runner that records argv and runs nothing. */
class NullRunner implements Runner {
  count = 0;
  readonly ran: string[][] = [];
  async run(argv: string[]) {
    this.count++;
    this.ran.push(argv);
    return { argv, exitCode: 0, stdout: '', stderr: '', ms: 0 };
  }
}

const facts: HostFacts = { features: { netem: true, htb: true, nftBridge: true, tun: true }, featureSource: {}, conflicts: [], qemuBinary: '/q', dnsmasqBinary: '/usr/sbin/dnsmasq', missingFiles: [] };

test('state directory: a symbolic link planted as state.json is not written through (the file outside keeps its content)', (t) => {
  const w = world(t);
  const victim = join(w.outside, 'victim');
  writeFileSync(victim, 'precious\n');
  mkdirSync(join(w.state, 'lab1'), { recursive: true, mode: 0o700 });
  chmodSync(w.state, 0o700);
  symlinkSync(victim, join(w.state, 'lab1', 'state.json'));
  try {
    writeRecord('lab1', { hostNetns: null } as never);
  } catch {
    /* refusing is fine too */
  }
  assert.equal(readFileSync(victim, 'utf8'), 'precious\n', 'the file the link points to is unchanged');
});

test('state directory: a state root owned by another user with mode 0777 is refused, naming it', { skip: isRoot ? false : 'needs root to chown the folder to another user' }, (t) => {
  const w = world(t);
  mkdirSync(w.state);
  chownSync(w.state, 65534, 65534);
  chmodSync(w.state, 0o777);
  assert.throws(() => writeRecord('lab1', {} as never), (e: Error) => e.message.includes(w.state), 'refused with the path');
  assert.deepEqual(readdirSync(w.state), [], 'nothing was written into it');
});

test('state directory: a planted symbolic link `vm` -> an outside folder: starting a VM neither creates nor chmods anything outside', async (t) => {
  const w = world(t);
  mkdirSync(join(w.state, 'lab1'), { recursive: true, mode: 0o700 });
  chmodSync(w.state, 0o700);
  chmodSync(w.outside, 0o755);
  symlinkSync(w.outside, join(w.state, 'lab1', 'vm'));
  const dir = join(w.state, 'lab1', 'vm', 'v1');
  const inv: Invocation = { argv: ['true'], label: 'start VM v1', vmStart: { node: 'v1', dir, record: { node: 'v1', spec: { memoryMb: 64, cpus: 1, accel: 'tcg' }, alive: true, status: 'running', nics: {}, links: {} } } };
  await startVm(inv, new NullRunner()).catch(() => undefined);
  assert.deepEqual(readdirSync(w.outside), [], 'nothing created in the outside folder');
  assert.equal(statSync(w.outside).mode & 0o777, 0o755, 'its mode is unchanged');
});

test('state directory: a folder vm/<node> that provium\'s record does not claim is neither observed as a VM nor removed by a VM stop', async (t) => {
  const w = world(t);
  const dir = join(w.state, 'lab1', 'vm', 'v1');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (const d of [w.state, join(w.state, 'lab1'), join(w.state, 'lab1', 'vm')]) chmodSync(d, 0o700);
  writeFileSync(join(dir, 'thesis.tex'), 'years of work\n');
  const ctx = { stateDir: join(w.state, 'lab1') };
  assert.deepEqual(Object.keys(await observeVms(ctx)), [], 'not observed as a (dead) VM of the lab');
  await stopVm({ argv: ['provium-vm-stop', 'v1'], label: 'stop VM v1', vmStop: { node: 'v1', dir, socket: join(dir, 'qmp.sock') } }).catch(() => undefined);
  assert.equal(readFileSync(join(dir, 'thesis.tex'), 'utf8'), 'years of work\n', 'not removed');
});

test('dnsmasq: its log and lease file are regular files made by provium before it starts (a planted symbolic link is replaced, not written through); its config is written without following a link', async (t) => {
  const w = world(t);
  const topo = checkTopology('/tmp/hd.yaml', 'lab: hd\nnodes: { a: { kind: netns } }\nbridges:\n  lan: { subnet: 10.97.0.0/24, dns: true, attach: [a] }\n').topology!;
  const stateDir = join(w.state, 'hd');
  const plan = computePlan(topo, emptyState(), facts, { hostNetns: 'h', stateDir });
  const start = plan.invocations.find((i) => i.label === 'start dnsmasq lan')!;
  const dns = join(stateDir, 'dnsmasq');
  mkdirSync(dns, { recursive: true, mode: 0o700 });
  for (const d of [w.state, stateDir, dns]) chmodSync(d, 0o700);
  const victims = ['conf', 'log', 'leases'].map((k) => join(w.outside, k));
  for (const v of victims) writeFileSync(v, 'precious\n');
  symlinkSync(victims[0], join(dns, 'lan.conf'));
  symlinkSync(victims[1], join(dns, 'lan.log'));
  symlinkSync(victims[2], join(dns, 'lan.leases'));
  const runner = new NullRunner();
  await runInvocations([{ ...start, argv: ['true'] }], runner);
  for (const v of victims) assert.equal(readFileSync(v, 'utf8'), 'precious\n', `${v} unchanged`);
  for (const f of ['lan.conf', 'lan.log', 'lan.leases']) {
    const st = lstatSync(join(dns, f));
    assert.ok(st.isFile() && st.nlink === 1, `${f} is a regular file of its own before dnsmasq opens it`);
    assert.equal(st.mode & 0o077, 0, `${f} is private`);
  }
  assert.match(readFileSync(join(dns, 'lan.conf'), 'utf8'), /^# provium:hd:dnsmasq:lan/);
});

test('lock: labs taking and releasing their locks concurrently in loops never fail (the empty state root removed by one release under another\'s feet)', async (t) => {
  const w = world(t);
  const statedir = fileURLToPath(new URL('../../src/apply/statedir.js', import.meta.url));
  // Each process takes and releases its own lab's lock 400 times; the root is empty (and
  // removed) between a release and the next take of any lab.
  const child = `
    const { acquireLock } = await import(${JSON.stringify(statedir)});
    const lab = process.argv[1];
    let failures = [];
    for (let i = 0; i < 400; i++) {
      try { const release = acquireLock(lab, 'test'); release(); }
      catch (e) { failures.push(String(e.code ?? '') + ' ' + e.message.split('\\n')[0]); }
    }
    process.stdout.write(JSON.stringify(failures));
  `;
  const runs = await Promise.all(['la', 'lb', 'lc', 'ld', 'le', 'lf'].map((lab) => new Promise<string[]>((resolve, reject) => {
    const p = spawn(process.execPath, ['--input-type=module', '-e', child, lab], { env: { ...process.env, PROVIUM_STATE_DIR: w.state }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d));
    p.on('error', reject);
    p.on('close', () => {
      try {
        resolve(JSON.parse(out) as string[]);
      } catch {
        reject(new Error(`lock child ${lab} printed: ${out}`));
      }
    });
  })));
  const failures = runs.flat();
  assert.deepEqual(failures.slice(0, 5), [], `${failures.length} of ${6 * 400} lock/release cycles failed`);
  // And the lock still excludes: a second holder of one lab is refused while the first holds it.
  const release = acquireLock('la', 'test');
  assert.throws(() => acquireLock('la', 'again'), /locked by pid/);
  release();
});

test('QEMU: commas in a disk path are doubled in -drive (no option injection), and in the QMP socket path; -kernel stays literal', () => {
  const vm = { node: 'v1', spec: { kernel: '/img/vmlinuz,x', disk: '/img/real.img,readonly=on', memoryMb: 64, cpus: 1, accel: 'tcg' as const }, alive: true, status: 'running', nics: {}, links: {} };
  const argv = qemuArgv(vm, { stateDir: '/var/lib/pro,vium/lab1' });
  const drive = argv[argv.indexOf('-drive') + 1];
  assert.equal(drive, 'file=/img/real.img,,readonly=on,if=virtio,format=raw');
  assert.equal(argv[argv.indexOf('-qmp') + 1], 'unix:/var/lib/pro,,vium/lab1/vm/v1/qmp.sock,server=on,wait=off');
  assert.equal(argv[argv.indexOf('-kernel') + 1], '/img/vmlinuz,x', 'QEMU takes -kernel literally (a doubled comma names another file)');
});

test('inputs: numbers the host would reject are refused at load with a location (memory_mb 1e308, bandwidth_bps 1e30 and 2^64+1)', () => {
  const r = checkTopology('/tmp/nums.yaml', [
    'lab: nums',
    'nodes:',
    '  v: { kind: qemu, kernel: k, memory_mb: 1e308 }',
    '  a: { kind: netns }',
    '  b: { kind: netns }',
    'bridges:',
    '  lan:',
    '    attach: [a, b, v]',
    '    impairments:',
    '      - { bandwidth_bps: 1e30 }',
    '      - { from: a, to: b, bandwidth_bps: 18446744073709551617 }',
    '',
  ].join('\n'));
  const errors = r.diagnostics.filter((d) => d.severity === 'error').map((d) => `${d.pos?.line}:${d.pos?.col} ${d.detail}`);
  assert.equal(r.topology, undefined, 'not loadable');
  assert.ok(errors.some((e) => e.startsWith('3:42') && /memory_mb/.test(e)), errors.join('\n'));
  assert.ok(errors.some((e) => e.startsWith('10:26') && /bandwidth_bps/.test(e)), errors.join('\n'));
  assert.ok(errors.some((e) => e.startsWith('11:42') && /bandwidth_bps/.test(e)), errors.join('\n'));
});

test('plan, apply and destroy --json on an invalid file print a JSON document with located diagnostics on stdout, exit 1', async (t) => {
  const w = world(t);
  const file = join(w.base, 'bad.yaml');
  writeFileSync(file, 'lab: bad\nnodes: { a: { kind: netns, colour: blue } }\nbridges: {}\n');
  for (const cmd of [['plan', '--json'], ['apply', '--json', '--auto-approve'], ['destroy', '--json', '--auto-approve']]) {
    const r = await runCli([cmd[0], file, ...cmd.slice(1)]);
    assert.equal(r.code, 1, `${cmd[0]}: exit 1`);
    let doc: { valid?: boolean; diagnostics?: { summary: string; file?: string; line?: number; column?: number }[] };
    try {
      doc = JSON.parse(r.out);
    } catch {
      assert.fail(`${cmd[0]} --json printed no JSON on stdout: ${JSON.stringify(r.out)}`);
    }
    assert.equal(doc.valid, false);
    assert.ok(doc.diagnostics!.some((d) => d.summary === 'unknown key' && d.file === file && d.line === 2 && d.column === 28), JSON.stringify(doc.diagnostics));
  }
  assert.ok(!existsSync(w.state), 'no state directory was made');
});

test('diagnostics stay linear: the schema validator appends each error once (no copy of all earlier errors per node, as ajv does for a $ref compiled apart)', () => {
  const code = readFileSync(fileURLToPath(new URL('../../schema-validator.cjs', import.meta.url)), 'utf8');
  assert.equal(/vErrors\.concat\(/.test(code), false, 'dist/schema-validator.cjs copies the error list (quadratic in a file with an error per node); the timing is in npm run bench (bench/diagnostics.ts)');
});
