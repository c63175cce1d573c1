/**
 * The library API (src/api/, `import { Lab } from 'provium'`) without root: argument
 * checks and the overlays each call makes, the error types, and a Lab driven over a
 * fake engine (what it asks the engine to apply, in what order, what it keeps after a
 * failure, down twice, nothing written to stdout). Lab.up's refusals before any host
 * command (invalid file, lock held, missing namespace).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import * as api from '../../src/index.js';
import { Lab, InputError, ConflictError, CommandError, LockError, ProviumError, ApplyError, reset } from '../../src/index.js';
import { labFromParts, type LabEngine } from '../../src/api/lab.js';
import { overlayTree, partitionOverlay, impairOverlay, linkOverlay, addressOf } from '../../src/api/overlay.js';
import { checkSources } from '../../src/load/index.js';
import { toData } from '../../src/load/tree.js';
import { acquireLock } from '../../src/apply/statedir.js';
import type { Topology } from '../../src/model/topology.js';
import type { Plan } from '../../src/plan/types.js';
import type { RunResult } from '../../src/host/runner.js';
import { yaml } from './helpers.js';

const LAB = yaml`
  lab: ap
  nodes:
    a: { kind: netns }
    b: { kind: netns }
    c: { kind: netns }
    r: { kind: router }
    v: { kind: qemu }
  bridges:
    lan:
      subnet: 10.81.0.0/24
      attach: [a, b, c, v]
      partitions: [[b, c]]
    wan:
      subnet: 10.82.0.0/24
      gateway: r
      attach: [r, a, b]
    up:
      subnet: 10.83.0.0/24
      attach: [r]
`;

function loaded(text = LAB) {
  const r = checkSources([{ name: 'lab.yaml', text }], { env: {} });
  assert.ok(r.topology && r.merged, r.diagnostics.map((d) => d.summary).join('; '));
  return { t: r.topology, tree: r.merged };
}

const BASE = loaded();

/** Partition pairs of a bridge as "a-b" (symmetric) or "a>b" (one way), sorted. */
function partitions(t: Topology, bridge = 'lan'): string[] {
  return t.bridges[bridge].partitions.map((p) => (p.kind === 'symmetric' ? [p.a, p.b].sort().join('-') : `${p.a}>${p.b}`)).sort();
}

/** A fake engine: records what it is asked, answers with canned results. */
class FakeEngine implements LabEngine {
  applied: Topology[] = [];
  planned: Topology[] = [];
  execs: string[][] = [];
  destroyed = 0;
  closed = 0;
  /** Thrown by the next apply (then cleared). */
  failNext?: Error;
  /** Exit codes of the next execs, in order (then 0). */
  exitCodes: number[] = [];
  /** Concurrent applies seen at once (must stay 1). */
  running = 0;
  maxRunning = 0;

  private mkPlan(t: Topology, changes = 1): Plan {
    return { lab: t.lab, changes: Array.from({ length: changes }, (_, i) => ({ address: `x${i}`, action: 'update' as const, items: [] })), errors: [], invocations: [] };
  }

  async apply(t: Topology) {
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    await new Promise((r) => setTimeout(r, 5));
    this.running--;
    if (this.failNext) {
      const e = this.failNext;
      this.failNext = undefined;
      throw e;
    }
    this.applied.push(t);
    return { plan: this.mkPlan(t), hostCommands: 1, committedMs: 3, totalMs: 5, observedFully: false };
  }

  async plan(t: Topology) {
    this.planned.push(t);
    return this.mkPlan(t);
  }

  async destroy() {
    this.destroyed++;
    if (this.failNext) {
      const e = this.failNext;
      this.failNext = undefined;
      throw e;
    }
    return { plan: this.mkPlan(BASE.t), hostCommands: 1, committedMs: 1, totalMs: 2, observedFully: false };
  }

  async exec(node: string, argv: string[]): Promise<RunResult> {
    this.execs.push([node, ...argv]);
    const exitCode = this.exitCodes.shift() ?? 0;
    return { argv: ['ip', 'netns', 'exec', `pv-ap-${node}`, ...argv], exitCode, stdout: `out${this.execs.length}\n`, stderr: exitCode ? 'boom' : '', ms: 1 };
  }

  close() {
    this.closed++;
  }
}

function fakeLab(engine = new FakeEngine(), reopen?: () => Promise<LabEngine>, cwd?: string) {
  const lab = labFromParts({ baseTree: BASE.tree, base: BASE.t, files: ['lab.yaml'], engine, reopen: reopen ?? (async () => engine), load: { env: {}, cwd } });
  return { lab, engine };
}

const isInput = (re: RegExp) => (e: unknown) => {
  assert.ok(e instanceof InputError, `expected InputError, got ${(e as Error)?.name}: ${(e as Error)?.message}`);
  assert.match(e.message, re);
  assert.ok(e.diagnostics.length > 0 && e.diagnostics.every((d) => d.severity === 'error' || d.severity === 'warning'));
  return true;
};

describe('the package entry', () => {
  it('exports Lab, reset and every error type; the errors are related as documented', () => {
    for (const k of ['Lab', 'reset', 'InputError', 'ProviumError', 'LockError', 'ConflictError', 'CommandError', 'ApplyError', 'formatDiagnostic']) {
      assert.ok(k in api, `provium does not export ${k}`);
    }
    assert.ok(new LockError('x', 'm') instanceof ProviumError);
    assert.ok(new ConflictError({ lab: 'x', changes: [], errors: [], invocations: [] }) instanceof ProviumError);
    assert.ok(new ApplyError(new Error('e'), true) instanceof ProviumError);
    const c = new CommandError({ argv: ['ip', 'link'], exitCode: 2, stdout: 'o', stderr: 'e', ms: 1 });
    assert.deepEqual([c.argv, c.exitCode, c.stderr, c.stdout, c.name], [['ip', 'link'], 2, 'e', 'o', 'CommandError']);
  });

  it('nothing the package entry loads writes to stdout or stderr (no console, no process.stdout/stderr)', () => {
    const root = new URL('../../../src/', import.meta.url);
    const seen = new Set<string>();
    const offenders: string[] = [];
    const walk = (rel: string) => {
      if (seen.has(rel)) return;
      seen.add(rel);
      const text = readFileSync(new URL(rel, root), 'utf8');
      const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
      if (/process\.(stdout|stderr)|console\.(log|info|warn|error|debug)\(/.test(code)) offenders.push(rel);
      for (const m of code.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)\.js'/g)) {
        const dir = rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/') + 1) : '';
        walk(new URL(`${m[1]}.ts`, new URL(dir, `file:///x/`)).pathname.slice(3));
      }
    };
    walk('index.ts');
    assert.ok(seen.has('api/lab.ts') && seen.has('engine/session.ts') && seen.size > 30, `walked ${seen.size} modules`);
    assert.deepEqual(offenders, []);
  });

  it('package.json: exports with types, files, a build on prepare and prepack, the CLI in bin', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'));
    assert.equal(pkg.exports['.'].types, './dist/src/index.d.ts');
    assert.equal(pkg.exports['.'].import, './dist/src/index.js');
    assert.equal(pkg.types, './dist/src/index.d.ts');
    assert.equal(pkg.bin.provium, 'bin/provium');
    assert.ok(pkg.files.includes('bin/') && pkg.files.includes('schemas/') && pkg.files.includes('dist/schema-validator.cjs'));
    assert.match(pkg.scripts.prepare, /build/);
    assert.match(pkg.scripts.prepack, /build/);
  });
});

describe('overlays from objects', () => {
  it('keeps values and shapes, skips undefined, marks reset(), places every value at the call', () => {
    const tree = overlayTree({ bridges: { lan: { partitions: reset([['a', 'b']]), mtu: 1400, dns: true, x: null, y: undefined } } }, '<lab.apply()>');
    assert.deepEqual(toData(tree), { bridges: { lan: { partitions: [['a', 'b']], mtu: 1400, dns: true, x: null } } });
    const lan = (tree as { entries: Map<string, { value: { entries: Map<string, { value: { reset?: boolean; pos: unknown } }> } }> }).entries.get('bridges')!.value.entries.get('lan')!.value;
    assert.equal((lan as unknown as { entries: Map<string, { value: { reset?: boolean } }> }).entries.get('partitions')!.value.reset, true);
    assert.deepEqual(tree.pos, { file: '<lab.apply()>', line: 1, col: 1 });
  });

  it('refuses what YAML cannot hold, naming the path', () => {
    const cyc: Record<string, unknown> = {};
    cyc.self = cyc;
    for (const [v, re] of [
      [{ bridges: { lan: { mtu: NaN } } }, /bridges\.lan\.mtu: NaN is not a finite number/],
      [{ bridges: { lan: { mtu: () => 1 } } }, /a function cannot be part/],
      [{ bridges: { lan: { when: new Date() } } }, /Date instances/],
      [{ n: 10n }, /a bigint/],
      [cyc, /cycle/],
      [['a'], /an overlay is an object/],
      ['x', /an overlay is an object/],
    ] as [unknown, RegExp][]) {
      assert.throws(() => overlayTree(v, '<lab.apply()>'), isInput(re));
    }
  });
});

describe('argument checks (InputError, nothing applied)', () => {
  const t = BASE.t;
  it('partition: groups on the one bridge the nodes share; from/to; an explicit bridge', () => {
    assert.deepEqual(partitionOverlay(t, [['c'], ['v']]), { bridges: { lan: { partitions: [{ groups: [['c'], ['v']] }] } } });
    assert.deepEqual(partitionOverlay(t, [['c'], 'others']), { bridges: { lan: { partitions: [{ groups: [['c'], 'others'] }] } } });
    assert.deepEqual(partitionOverlay(t, { from: 'a', to: ['b'], bridge: 'wan' }), { bridges: { wan: { partitions: [{ from: 'a', to: ['b'] }] } } });
    assert.deepEqual(partitionOverlay(t, ['a', 'r']), { bridges: { wan: { partitions: [{ groups: ['a', 'r'] }] } } });
    assert.deepEqual(partitionOverlay(t, ['a', 'b'], 'lan'), { bridges: { lan: { partitions: [{ groups: ['a', 'b'] }] } } });
  });

  it('partition: refusals name the problem', () => {
    for (const [spec, re] of [
      [['a', 'b'], /a, b share more than one bridge \(lan, wan\): give \{ bridge \}/],
      [['c', 'r'], /no bridge has all of c, r as members \(c: lan; r: wan, up\)/],
      [['a', 'zz'], /"zz" is not a node of lab ap \(nodes: a, b, c, r, v\)/],
      [['a'], /at least two groups/],
      [[['a'], []], /groups\[1\] must be a node name/],
      [[['a'], [3]], /groups\[1\] must be a node name/],
      [{ from: 'a' }, /needs both from and to/],
      [{ groups: ['a', 'b'], from: 'a', to: 'b' }, /groups, or from and to, not both/],
      [{ from: 'a', to: 'b', brige: 'lan' }, /unknown field\(s\) brige/],
      [{ from: 'a', to: 'b', bridge: 'nope' }, /"nope" is not a bridge of lab ap \(bridges: lan, wan, up\)/],
      ['a', /expected a list of groups/],
    ] as [unknown, RegExp][]) {
      assert.throws(() => partitionOverlay(t, spec), isInput(re), JSON.stringify(spec));
    }
  });

  it('impair: fields in the topology\'s units and names; null removes a field; whole bridge', () => {
    assert.deepEqual(impairOverlay(t, { from: 'a', to: 'c', latencyMs: 40, jitterMs: 5, dropPct: 1, bandwidthBps: 5e6 }), {
      bridges: { lan: { impairments: [{ from: 'a', to: 'c', latency_ms: 40, jitter_ms: 5, drop_pct: 1, bandwidth_bps: 5e6 }] } },
    });
    assert.deepEqual(impairOverlay(t, { groups: [['a'], 'others'], bridge: 'wan', dropPct: null }), { bridges: { wan: { impairments: [{ groups: [['a'], 'others'], drop_pct: null }] } } });
    assert.deepEqual(impairOverlay(t, { bridge: 'lan', dropPct: 2 }), { bridges: { lan: { impairments: [{ drop_pct: 2 }] } } });
    for (const [spec, re] of [
      [{ from: 'a', to: 'c' }, /give at least one of latencyMs, jitterMs, dropPct, bandwidthBps/],
      [{ from: 'a', to: 'c', dropPct: '5' }, /dropPct must be a finite number/],
      [{ from: 'a', to: 'c', dropPct: Infinity }, /dropPct must be a finite number/],
      [{ from: 'a', to: 'c', drop_pct: 5 }, /unknown field\(s\) drop_pct/],
      [{ dropPct: 5 }, /give from and to, groups, or \(for the whole bridge\) bridge/],
      [{ from: 'a', dropPct: 5 }, /needs both from and to/],
      [null, /expected an object/],
    ] as [unknown, RegExp][]) {
      assert.throws(() => impairOverlay(t, spec), isInput(re), JSON.stringify(spec));
    }
  });

  it('link: node, bridge, attachment and state checked', () => {
    assert.deepEqual(linkOverlay(t, 'c', 'lan', 'down'), { bridges: { lan: { attach: [{ node: 'c', link: 'down' }] } } });
    assert.throws(() => linkOverlay(t, 'c', 'wan', 'down'), isInput(/node c is not attached to bridge wan \(its bridges: lan\)/));
    assert.throws(() => linkOverlay(t, 'c', 'lan', 'off'), isInput(/'up' or 'down', not "off"/));
    assert.throws(() => linkOverlay(t, 'q', 'lan', 'up'), isInput(/"q" is not a node/));
  });

  it('address: from the topology; the gateway router has the gateway address; errors', () => {
    const lan = t.bridges.lan.attach.find((x) => x.node === 'b')!.ip!.split('/')[0];
    assert.equal(addressOf(t, 'b', 'lan'), lan);
    assert.match(lan, /^10\.81\.0\.\d+$/);
    assert.equal(addressOf(t, 'r', 'wan'), '10.82.0.1');
    assert.throws(() => addressOf(t, 'c', 'wan'), isInput(/not attached/));
    assert.throws(() => addressOf(t, 'b', 'lan', 6), isInput(/no IPv6 address on bridge lan/));
    assert.throws(() => addressOf(t, 'b', 'dmz'), isInput(/"dmz" is not a bridge/));
  });
});

describe('a Lab over a fake engine', () => {
  it('changes accumulate as overlays; heal goes back to the file; results carry the plan and times', async () => {
    const { lab, engine } = fakeLab();
    assert.equal(lab.name, 'ap');
    const r1 = await lab.partition([['a'], 'others'], { bridge: 'lan' });
    assert.equal(r1.changes, 1);
    assert.equal(r1.hostCommands, 1);
    assert.ok(r1.committedMs! >= 3 && r1.totalMs >= r1.committedMs!);
    assert.deepEqual(partitions(engine.applied[0]), ['a-b', 'a-c', 'a-v', 'b-c']);
    await lab.impair({ from: 'b', to: 'c', dropPct: 5, bandwidthBps: 1e6 });
    await lab.impair({ from: 'b', to: 'c', dropPct: null });
    const last = engine.applied[2];
    assert.deepEqual(partitions(last), ['a-b', 'a-c', 'a-v', 'b-c'], 'the partition stays');
    assert.deepEqual(last.bridges.lan.impairments.map((i) => [i.from, i.to, i.drop_pct, i.bandwidth_bps]), [['b', 'c', undefined, 1e6]]);
    await lab.link('c', 'lan', 'down');
    assert.equal(engine.applied[3].bridges.lan.attach.find((a) => a.node === 'c')!.link, 'down');
    assert.equal(lab.topology, engine.applied[3]);
    await lab.heal();
    assert.deepEqual(engine.applied[4], BASE.t);
    assert.deepEqual(partitions(lab.topology), ['b-c']);
  });

  it('unpartition and unimpair remove the entry with the same endpoints, also one written in the file', async () => {
    const { lab, engine } = fakeLab();
    await lab.partition({ from: 'a', to: 'c' });
    await lab.unpartition(['c', 'b']); // the file's [b, c]
    assert.deepEqual(partitions(engine.applied[1]), ['a>c']);
    await lab.unpartition({ to: 'c', from: 'a', bridge: 'lan' });
    assert.deepEqual(partitions(engine.applied[2]), []);
    await assert.rejects(lab.unpartition(['a', 'c']), isInput(/bridge lan of lab ap has no partition/));
    await lab.impair({ groups: [['a'], ['b', 'c']], dropPct: 3 });
    await lab.unimpair({ groups: [['c', 'b'], 'a'] });
    assert.deepEqual(engine.applied[4].bridges.lan.impairments, []);
    await assert.rejects(lab.unimpair({ bridge: 'lan' }), isInput(/no impairment/));
    assert.equal(engine.applied.length, 5);
  });

  it('an invalid change is an InputError located at the call, and nothing is applied', async () => {
    const { lab, engine } = fakeLab();
    await assert.rejects(lab.impair({ from: 'a', to: 'c', dropPct: 150 }), isInput(/<lab\.impair\(\)>:1:1: error: .*drop_pct/));
    await assert.rejects(lab.apply({ bridges: { lan: { attach: ['nobody'] } } }), isInput(/<lab\.apply\(\)>.*nobody/));
    await assert.rejects(lab.apply({ lab: 'other' }), isInput(/cannot change the lab's name/));
    await assert.rejects(lab.apply({ extends: 'x.yaml' }), isInput(/cannot hold extends/));
    await assert.rejects(lab.partition(['a', 'b']), isInput(/share more than one bridge/));
    await assert.rejects(lab.exec('v', ['true']), isInput(/node v is a qemu node/));
    await assert.rejects(lab.exec('a', []), isInput(/non-empty list of strings/));
    await assert.rejects(lab.exec('a', ['true'], { timeoutMs: -1 }), isInput(/timeoutMs must be/));
    await assert.rejects(lab.until('a', ['true'], {} as { timeoutMs: number }), isInput(/give \{ timeoutMs \}/));
    assert.equal(engine.applied.length, 0);
    assert.equal(engine.execs.length, 0);
  });

  it('apply takes an overlay file, relative to cwd', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pv-api-'));
    try {
      writeFileSync(join(dir, 'cut.yaml'), 'bridges:\n  lan:\n    partitions: !reset [{ from: a, to: v }]\n');
      const { lab, engine } = fakeLab(undefined, undefined, dir);
      await lab.apply({ file: 'cut.yaml' });
      assert.deepEqual(partitions(engine.applied[0]), ['a>v']);
      await assert.rejects(lab.apply({ file: 'missing.yaml' }), isInput(/cannot read/));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('plan() shows a change without applying it or keeping it', async () => {
    const { lab, engine } = fakeLab();
    const p = await lab.plan({ bridges: { lan: { partitions: reset([]) } } });
    assert.equal(p.lab, 'ap');
    assert.deepEqual(partitions(engine.planned[0]), []);
    assert.equal(engine.applied.length, 0);
    await lab.plan();
    assert.deepEqual(engine.planned[1], BASE.t);
  });

  it('a failed host command is a CommandError (argv, exit code, stderr, rolled back); the desired topology stays as before', async () => {
    const { lab, engine } = fakeLab();
    await lab.partition({ from: 'a', to: 'c' });
    const cmd = new CommandError({ argv: ['nft', '-f', '-'], exitCode: 1, stdout: '', stderr: 'Error: no such file', ms: 1 });
    engine.failNext = new ApplyError(cmd, true);
    await assert.rejects(lab.impair({ from: 'a', to: 'b', bridge: 'lan', dropPct: 5 }), (e: unknown) => {
      assert.ok(e instanceof CommandError);
      assert.deepEqual([e.argv, e.exitCode, e.stderr, e.rolledBack], [['nft', '-f', '-'], 1, 'Error: no such file', true]);
      assert.match(e.hint!, /rolled back/);
      return true;
    });
    const conflict = new ConflictError({ lab: 'ap', changes: [], errors: [{ severity: 'error', summary: 'netem missing', detail: 'no sch_netem' }], invocations: [] });
    engine.failNext = conflict;
    await assert.rejects(lab.impair({ from: 'a', to: 'b', bridge: 'lan', latencyMs: 5 }), (e: unknown) => e === conflict && /netem missing: no sch_netem/.test(conflict.message));
    await lab.link('a', 'lan', 'down');
    const t = engine.applied[1];
    assert.deepEqual(partitions(t), ['a>c', 'b-c']);
    assert.deepEqual(t.bridges.lan.impairments, [], 'the failed impairments were not kept');
  });

  it('calls that change the lab run one at a time, in call order', async () => {
    const { lab, engine } = fakeLab();
    await Promise.all([lab.partition({ from: 'a', to: 'c' }), lab.impair({ from: 'a', to: 'b', bridge: 'lan', dropPct: 1 }), lab.heal(), lab.link('b', 'wan', 'down')]);
    assert.equal(engine.maxRunning, 1);
    assert.equal(engine.applied.length, 4);
    assert.deepEqual(partitions(engine.applied[1]), ['a>c', 'b-c']);
    assert.deepEqual(engine.applied[2], BASE.t);
    assert.equal(engine.applied[3].bridges.wan.attach.find((a) => a.node === 'b')!.link, 'down');
  });

  it('exec returns any status unless expect is given; until retries; both go through the scenario step code', async () => {
    const { lab, engine } = fakeLab();
    engine.exitCodes = [3];
    const r = await lab.exec('a', ['false']);
    assert.deepEqual([r.exitCode, r.stderr], [3, 'boom']);
    engine.exitCodes = [3];
    await assert.rejects(lab.exec('a', ['false'], { expect: 0 }), (e: unknown) => e instanceof CommandError && e.exitCode === 3 && /exit 3 \(expected 0\): boom/.test(e.message));
    engine.exitCodes = [1, 1, 0];
    const u = await lab.until('r', ['ping', 'x'], { timeoutMs: 5000, intervalMs: 1 });
    assert.equal(u.tries, 3);
    engine.exitCodes = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1];
    await assert.rejects(lab.until('a', ['ping', 'x'], { timeoutMs: 30, intervalMs: 10 }), (e: unknown) => e instanceof CommandError && /not within 30ms \(\d+ tries\); last try: exit 1/.test(e.message));
    const ctl = new AbortController();
    ctl.abort(new Error('stop it'));
    await assert.rejects(lab.until('a', ['true'], { timeoutMs: 1000, signal: ctl.signal }), /stop it/);
    assert.equal(lab.namespace('r'), 'pv-ap-r');
  });

  it('down destroys once and releases the lock; a second down does nothing; the lab refuses changes afterwards', async () => {
    const { lab, engine } = fakeLab();
    await lab.down();
    await lab.down();
    assert.equal(engine.destroyed, 1);
    assert.equal(engine.closed, 1);
    await assert.rejects(lab.impair({ from: 'a', to: 'c', dropPct: 1 }), (e: unknown) => e instanceof ProviumError && /lab ap is down/.test(e.message));
    await assert.rejects(lab.exec('a', ['true']), /lab ap is down/);
  });

  it('a failed down releases the lock and is retried by the next down (a fresh engine); close() then down() works', async () => {
    const fresh = new FakeEngine();
    const { lab, engine } = fakeLab(new FakeEngine(), async () => fresh);
    engine.failNext = new ApplyError(new CommandError({ argv: ['ip', 'netns', 'del', 'x'], exitCode: 1, stdout: '', stderr: 'busy', ms: 1 }), undefined);
    await assert.rejects(lab.down(), (e: unknown) => e instanceof CommandError && e.rolledBack === undefined);
    assert.equal(engine.closed, 1);
    await assert.rejects(lab.heal(), /closed/);
    await lab.down();
    assert.deepEqual([fresh.destroyed, fresh.closed], [1, 1]);
    const b = fakeLab();
    await b.lab.close();
    assert.equal(b.engine.closed, 1);
    await b.lab.down();
    assert.equal(b.engine.destroyed, 1);
  });
});

describe('Lab.up refuses before touching the host', () => {
  let dir: string;
  const env = { ...process.env };
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'pv-api-up-'));
    process.env.PROVIUM_STATE_DIR = join(dir, 'state');
    // Belt and braces: no host tool can run in these tests.
    process.env.PATH = join(dir, 'no-tools');
    writeFileSync(join(dir, 'lab.yaml'), 'lab: apu\nnodes: { a: { kind: netns } }\nbridges: { lan: { attach: [a] } }\n');
  });
  after(() => {
    process.env.PATH = env.PATH;
    process.env.PROVIUM_STATE_DIR = env.PROVIUM_STATE_DIR;
    if (env.PROVIUM_STATE_DIR === undefined) delete process.env.PROVIUM_STATE_DIR;
    rmSync(dir, { recursive: true, force: true });
  });

  it('an invalid file: InputError with located diagnostics; variables and overlays go through the loader', async () => {
    writeFileSync(join(dir, 'bad.yaml'), 'lab: apu\nnodes: { a: { kind: netns } }\nbridges: { lan: { attach: [a, ghost] } }\n');
    await assert.rejects(Lab.up(join(dir, 'bad.yaml')), (e: unknown) => e instanceof InputError && /bad\.yaml:3:\d+: error: .*ghost/.test(e.message));
    await assert.rejects(Lab.up({ text: 'lab: ${NAME}\n' }, { env: {} }), isInput(/undefined variable: \$\{NAME\}/));
    await assert.rejects(Lab.up('lab.yaml', { cwd: dir, files: ['nope.yaml'] }), isInput(/nope\.yaml/));
    await assert.rejects(Lab.up(''), isInput(/give a file name or \{ text, name\? \}/));
  });

  it('a missing host namespace: ProviumError naming it', async () => {
    await assert.rejects(Lab.up('lab.yaml', { cwd: dir, netns: 'pv-api-unit-missing' }), (e: unknown) => e instanceof ProviumError && /network namespace pv-api-unit-missing does not exist/.test(e.message));
  });

  it('the lab locked by a live process: LockError naming the holder', async () => {
    const release = acquireLock('apu', 'provium apply (unit test)');
    try {
      await assert.rejects(Lab.up('lab.yaml', { cwd: dir }), (e: unknown) => {
        assert.ok(e instanceof LockError, String(e));
        assert.equal(e.lab, 'apu');
        assert.equal(e.holder?.pid, process.pid);
        assert.match(e.message, /lab apu is locked by pid \d+ \(provium apply \(unit test\)/);
        return true;
      });
    } finally {
      release();
    }
  });
});
