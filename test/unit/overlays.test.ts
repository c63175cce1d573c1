/**
 * Loading many files: extends chains and cycles, -f overlays, every merge rule (each
 * keyed list, null, !reset, replaced lists), positions in the right file, variables,
 * standard input, and the file-type and size limits of input reading.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { checkSources, type LoadOptions } from '../../src/load/index.js';
import { MAX_INPUT_BYTES, readInputFile, readStdin } from '../../src/load/read.js';
import { parseVarFlags } from '../../src/load/vars.js';
import { formatDiagnostic, type Diagnostic } from '../../src/model/diagnostics.js';
import type { Topology } from '../../src/model/topology.js';
import { tempDir, yaml } from './helpers.js';

const BASE = yaml`
  lab: ov
  nodes:
    a: { kind: netns }
    b: { kind: netns }
    c: { kind: netns }
  bridges:
    lan:
      subnet: 10.60.0.0/24
      mtu: 1500
      attach: [a, { node: b, ip: 10.60.0.5 }, c]
      partitions: [[a, b], { from: a, to: c }]
      impairments:
        - { drop_pct: 1, bandwidth_bps: 8000000 }
        - { from: a, to: b, drop_pct: 5, latency_ms: 10 }
      isolate: [c]
      forwards:
        - { host_port: 8080, node: a, port: 80 }
        - { host_port: 53, node: b, port: 53, proto: udp }
`;

/** A fresh folder with these files (name -> text), removed when the test ends; returns its path. */
function folder(files: Record<string, string>): string {
  const dir = tempDir('pv-ov-');
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

const errors = (ds: Diagnostic[]) => ds.filter((d) => d.severity === 'error');

/** Loads names in dir (the first the base, the others -f overlays); fails with every message when it does not load. */
function load(dir: string, names: string[], opts: LoadOptions = {}): Topology {
  const r = checkSources(names.map((name) => ({ name })), { cwd: dir, env: {}, ...opts });
  assert.ok(r.topology, `expected a topology, got:\n${r.diagnostics.map(formatDiagnostic).join('\n')}`);
  return r.topology;
}

/** The error messages of loading names in dir. */
function problems(dir: string, names: string[], opts: LoadOptions = {}): string[] {
  return errors(checkSources(names.map((name) => ({ name })), { cwd: dir, env: {}, ...opts }).diagnostics).map(formatDiagnostic);
}

const lan = (t: Topology) => t.bridges.lan;

describe('merge rules', () => {
  it('maps merge deeply; scalars replace; the base is untouched elsewhere', () => {
    const dir = folder({ 'lab.yaml': BASE, 'o.yaml': 'bridges: { lan: { mtu: 1400 } }\n' });
    const t = load(dir, ['lab.yaml', 'o.yaml']);
    assert.equal(lan(t).mtu, 1400);
    assert.equal(lan(t).subnet, '10.60.0.0/24');
    assert.equal(lan(t).attach.length, 3);
    assert.deepEqual(Object.keys(t.nodes), ['a', 'b', 'c']);
  });

  it('attach merges by node: fields merge into the base entry (short or long form), new nodes are appended', () => {
    const dir = folder({
      'lab.yaml': BASE,
      'o.yaml': yaml`
        nodes: { d: { kind: netns } }
        bridges: { lan: { attach: [{ node: b, link: down }, { node: a, mac: "02:00:00:00:00:0a" }, d] } }
      `,
    });
    const t = load(dir, ['lab.yaml', 'o.yaml']);
    assert.deepEqual(lan(t).attach.map((a) => [a.node, a.ip, a.link, a.mac ?? '-']), [
      ['a', '10.60.0.36/24', 'up', '02:00:00:00:00:0a'],
      ['b', '10.60.0.5/24', 'down', '-'], // the base's static ip stays
      ['c', '10.60.0.84/24', 'up', '-'],
      ['d', lan(t).attach[3].ip, 'up', '-'],
    ]);
  });

  it('partitions merge by endpoints: [a, b] = [b, a]; a new pair is appended; from/to is its own identity', () => {
    const dir = folder({ 'lab.yaml': BASE, 'o.yaml': 'bridges: { lan: { partitions: [[b, a], [b, c], { from: c, to: a }, { from: a, to: c }] } }\n' });
    const t = load(dir, ['lab.yaml', 'o.yaml']);
    assert.deepEqual(lan(t).partitions.map((p) => `${p.kind} ${p.a} ${p.b}`), ['symmetric a b', 'directional a c', 'symmetric b c', 'directional c a']);
  });

  it('impairments merge by from/to and whole-bridge: fields merge, null removes one', () => {
    const dir = folder({
      'lab.yaml': BASE,
      'o.yaml': yaml`
        bridges:
          lan:
            impairments:
              - { drop_pct: 2 }
              - { from: a, to: b, drop_pct: null, bandwidth_bps: 1000000 }
              - { from: b, to: a, drop_pct: 3 }
      `,
    });
    const t = load(dir, ['lab.yaml', 'o.yaml']);
    assert.deepEqual(lan(t).impairments.map(({ pos: _p, keyPos: _k, ...i }) => i), [
      { drop_pct: 2, bandwidth_bps: 8000000 },
      { from: 'a', to: 'b', latency_ms: 10, bandwidth_bps: 1000000 },
      { from: 'b', to: 'a', drop_pct: 3 },
    ]);
  });

  it('forwards merge by host port and protocol (tcp by default)', () => {
    const dir = folder({ 'lab.yaml': BASE, 'o.yaml': 'bridges: { lan: { forwards: [{ host_port: 8080, proto: tcp, node: c, port: 81 }, { host_port: 8080, node: b, port: 82, proto: udp }] } }\n' });
    const t = load(dir, ['lab.yaml', 'o.yaml']);
    assert.deepEqual(lan(t).forwards.map((f) => `${f.proto}/${f.hostPort}->${f.node}:${f.port}`), ['tcp/8080->c:81', 'udp/53->b:53', 'udp/8080->b:82']);
  });

  it('any other list replaces the base\'s (isolate)', () => {
    const dir = folder({ 'lab.yaml': BASE, 'o.yaml': 'bridges: { lan: { isolate: [a] } }\n' });
    assert.deepEqual(lan(load(dir, ['lab.yaml', 'o.yaml'])).isolate, ['a']);
  });

  it('null removes a key (a bridge setting, a whole list, a node)', () => {
    const dir = folder({ 'lab.yaml': BASE, 'o.yaml': 'bridges: { lan: { mtu: null, isolate: ~, partitions: } }\n' });
    const t = load(dir, ['lab.yaml', 'o.yaml']);
    assert.equal(lan(t).mtu, undefined);
    assert.deepEqual(lan(t).isolate, []);
    assert.deepEqual(lan(t).partitions, []);
  });

  it('!reset on a list or a mapping replaces the base\'s value instead of merging', () => {
    const dir = folder({
      'lab.yaml': BASE,
      'o.yaml': yaml`
        bridges:
          lan:
            partitions: !reset [[b, c]]
            impairments: !reset
              - { from: c, to: a, drop_pct: 7 }
      `,
      'm.yaml': 'nodes: !reset { a: { kind: netns }, b: { kind: netns } }\nbridges: { lan: { attach: !reset [a, b], partitions: !reset [], impairments: !reset [], isolate: !reset [], forwards: !reset [] } }\n',
    });
    const t = load(dir, ['lab.yaml', 'o.yaml']);
    assert.deepEqual(lan(t).partitions.map((p) => `${p.a}${p.b}`), ['bc']);
    assert.deepEqual(lan(t).impairments.map(({ pos: _p, keyPos: _k, ...i }) => i), [{ from: 'c', to: 'a', drop_pct: 7 }]);
    const m = load(dir, ['lab.yaml', 'm.yaml']);
    assert.deepEqual(Object.keys(m.nodes), ['a', 'b']);
    assert.deepEqual(lan(m).attach.map((a) => a.node), ['a', 'b']);
  });

  it('!reset on a scalar is an error located at it (null excepted)', () => {
    const dir = folder({ 'lab.yaml': BASE, 'o.yaml': 'bridges:\n  lan:\n    mtu: !reset 1400\n' });
    const p = problems(dir, ['lab.yaml', 'o.yaml']);
    assert.equal(p.length, 1);
    assert.match(p[0], /^o\.yaml:3:17: error: misplaced !reset/);
  });

  it('later overlays win over earlier ones', () => {
    const dir = folder({ 'lab.yaml': BASE, 'o1.yaml': 'bridges: { lan: { mtu: 1400 } }\n', 'o2.yaml': 'bridges: { lan: { mtu: 1300 } }\n' });
    assert.equal(lan(load(dir, ['lab.yaml', 'o1.yaml', 'o2.yaml'])).mtu, 1300);
    assert.equal(lan(load(dir, ['lab.yaml', 'o2.yaml', 'o1.yaml'])).mtu, 1400);
  });

  it('an empty overlay changes nothing; an overlay that is not a mapping is an error', () => {
    const dir = folder({ 'lab.yaml': BASE, 'e.yaml': '# nothing\n', 'l.yaml': '- a\n' });
    assert.equal(lan(load(dir, ['lab.yaml', 'e.yaml'])).mtu, 1500);
    assert.match(problems(dir, ['lab.yaml', 'l.yaml']).join('\n'), /l\.yaml:1:1: error: invalid overlay/);
  });
});

describe('extends', () => {
  it('names a base relative to the file that says it; chains merge in order', () => {
    const dir = folder({
      'base/lab.yaml': BASE,
      'mid/slow.yaml': 'extends: ../base/lab.yaml\nbridges: { lan: { mtu: 1400, impairments: [{ from: b, to: c, drop_pct: 9 }] } }\n',
      'scen/cut.yaml': 'extends: ../mid/slow.yaml\nbridges: { lan: { mtu: 1300 } }\n',
    });
    const r = checkSources([{ name: 'scen/cut.yaml' }], { cwd: dir, env: {} });
    assert.ok(r.topology, r.diagnostics.map(formatDiagnostic).join('\n'));
    assert.equal(lan(r.topology).mtu, 1300);
    assert.equal(lan(r.topology).impairments.length, 3);
    assert.deepEqual(r.files.map((f) => f.name), ['base/lab.yaml', 'mid/slow.yaml', 'scen/cut.yaml']);
    assert.equal(r.topology.file, join(dir, 'base/lab.yaml'), 'Topology.file is the base-most file');
  });

  it('a base already merged by FILE is not merged again by an overlay that extends it (null removals stay removed)', () => {
    const dir = folder({ 'lab.yaml': BASE, 'cut.yaml': 'extends: lab.yaml\nbridges: { lan: { impairments: [{ from: a, to: b, drop_pct: null }] } }\n' });
    const r = checkSources([{ name: 'lab.yaml' }, { name: 'cut.yaml' }], { cwd: dir, env: {} });
    assert.deepEqual(r.files.map((f) => f.name), ['lab.yaml', 'cut.yaml']);
    assert.equal(lan(r.topology!).impairments.find((i) => i.from === 'a')!.drop_pct, undefined);
  });

  it('a cycle is an error located at the extends that closes it, naming the chain', () => {
    const dir = folder({ 'a.yaml': 'extends: b.yaml\n', 'b.yaml': 'extends: c.yaml\nlab: x\n', 'c.yaml': 'lab: y\nextends: a.yaml\n' });
    const p = problems(dir, ['a.yaml']);
    assert.equal(p.length, 1, p.join('\n'));
    assert.match(p[0], /^c\.yaml:2:10: error: extends cycle: .*a\.yaml -> .*b\.yaml -> .*c\.yaml -> .*a\.yaml/);
    const self = folder({ 's.yaml': 'extends: ./s.yaml\n' });
    assert.match(problems(self, ['s.yaml'])[0], /^s\.yaml:1:10: error: extends cycle/);
  });

  it('a symlink to a file in the chain is the same file (cycle found)', () => {
    const dir = folder({ 'a.yaml': 'extends: link.yaml\n' });
    symlinkSync(join(dir, 'a.yaml'), join(dir, 'link.yaml'));
    assert.match(problems(dir, ['a.yaml'])[0], /extends cycle/);
  });

  it('a missing or unreadable base is an error located at the extends', () => {
    const dir = folder({ 'a.yaml': 'lab: x\nextends: nope.yaml\n', 'b.yaml': 'extends: [x]\n' });
    assert.match(problems(dir, ['a.yaml'])[0], /^a\.yaml:2:10: error: cannot read topology file: nope\.yaml: ENOENT/);
    assert.match(problems(dir, ['b.yaml'])[0], /^b\.yaml:1:10: error: invalid extends/);
  });
});

describe('positions name the file that holds the offending text', () => {
  it('schema, semantic and YAML errors from an overlay are located in the overlay; the base\'s in the base', () => {
    const dir = folder({
      'lab.yaml': BASE.replace('mtu: 1500', 'mtu: 1500\n    dhcp: yes'),
      'o.yaml': yaml`
        # an overlay
        bridges:
          lan:
            mtu: 20
            partitions: [[a, zz]]
            bogus: 1
      `,
    });
    const p = problems(dir, ['lab.yaml', 'o.yaml']).map((m) => m.split('; expected one of')[0]);
    assert.deepEqual(p, [
      'lab.yaml:10:11: error: wrong type: bridges.lan.dhcp must be true or false, not the string "yes"',
      'o.yaml:4:10: error: out of range: bridges.lan.mtu is the number 20, must be >= 68',
      'o.yaml:5:22: error: unknown node: partition names node "zz", which is not defined under nodes (bridge "lan"\'s members: a, b, c)',
      'o.yaml:6:5: error: unknown key: "bogus" is not allowed in bridges.lan',
    ]);
  });

  it('a field merged into a base entry is located where it is written', () => {
    const dir = folder({ 'lab.yaml': BASE, 'o.yaml': '\nbridges: { lan: { attach: [{ node: b, link: sideways }] } }\n' });
    assert.match(problems(dir, ['lab.yaml', 'o.yaml'])[0], /^o\.yaml:2:45: error: invalid value: bridges\.lan\.attach\[1\]\.link/);
  });

  it('plan-time errors (a missing kernel feature, no default route) point at the overlay text that needs it', async () => {
    const { computePlan } = await import('../../src/plan/index.js');
    const { emptyState } = await import('../../src/model/state.js');
    const dir = folder({ 'lab.yaml': BASE, 'o.yaml': '# lat\nbridges:\n  lan:\n    uplink: true\n    impairments: [{ from: a, to: b, latency_ms: 20 }]\n' });
    const t = load(dir, ['lab.yaml', 'o.yaml']);
    const facts = { features: { netem: false, htb: true, nftBridge: true, tun: true }, featureSource: { netem: 'test' }, conflicts: [] };
    const plan = computePlan(t, emptyState(), facts, { stateDir: '/tmp/pv-unit-state' });
    assert.deepEqual(plan.errors.map(formatDiagnostic).map((m) => m.split(': ').slice(0, 3).join(': ')), [
      'o.yaml:5:37: error: missing kernel feature',
      "o.yaml:4:5: error: uplink",
    ]);
  });

  it('a YAML syntax error in an overlay names the overlay; nothing is merged', () => {
    const dir = folder({ 'lab.yaml': BASE, 'o.yaml': 'bridges: { lan: { mtu: 1400 }\n' });
    const p = problems(dir, ['lab.yaml', 'o.yaml']);
    assert.equal(p.length, 1);
    assert.match(p[0], /^o\.yaml:1:1\d?: error: invalid YAML: unclosed \{/);
  });
});

describe('variables', () => {
  const dir = folder({
    'lab.yaml': BASE,
    'v.yaml': yaml`
      bridges:
        lan:
          mtu: \${MTU:-1400}
          partitions: [{ groups: [["\${LEADER}"], others] }]
          impairments: [{ from: a, to: b, drop_pct: \${DROP} }]
    `,
  });

  it('come from --var, else the environment; defaults apply when unset or empty; plain values are retyped', () => {
    const r = checkSources([{ name: 'lab.yaml' }, { name: 'v.yaml' }], { cwd: dir, vars: { LEADER: 'c', DROP: '2.5' }, env: { DROP: '99', LEADER: 'a' } });
    assert.ok(r.topology, r.diagnostics.map(formatDiagnostic).join('\n'));
    assert.equal(lan(r.topology).mtu, 1400);
    assert.equal(lan(r.topology).impairments.find((i) => i.from === 'a' && i.to === 'b')!.drop_pct, 2.5);
    assert.ok(lan(r.topology).partitions.some((p) => p.group?.key === 'c|others'));
    assert.deepEqual(r.vars, { DROP: '2.5', LEADER: 'c' });
    const env = checkSources([{ name: 'lab.yaml' }, { name: 'v.yaml' }], { cwd: dir, env: { DROP: '3', LEADER: 'a', MTU: '' } });
    assert.equal(lan(env.topology!).mtu, 1400, 'empty MTU takes the default');
    assert.equal(lan(env.topology!).impairments.find((i) => i.from === 'a' && i.to === 'b')!.drop_pct, 3);
  });

  it('an undefined variable without a default is an error located at the reference', () => {
    const p = problems(dir, ['lab.yaml', 'v.yaml'], { vars: { DROP: '1' } });
    assert.deepEqual(p, ['v.yaml:4:31: error: undefined variable: ${LEADER}: LEADER is not set; give it with --var LEADER=VALUE or in the environment, or write ${LEADER:-default}']);
  });

  it('$$ is a literal $ (so $${ writes ${); a quoted value stays a string; keys are substituted too', () => {
    const d = folder({
      'lab.yaml': BASE.replace('  c: { kind: netns }', () => '  c: { kind: qemu, append: "x=$${HOME} y=$$z $5" }\n  ${EXTRA}: { kind: netns }'),
    });
    const t = load(d, ['lab.yaml'], { vars: { EXTRA: 'e' } });
    assert.equal(t.nodes.c.qemu!.append, 'x=${HOME} y=$z $5');
    assert.ok(t.nodes.e);
    const q = folder({ 'lab.yaml': BASE, 'o.yaml': 'bridges: { lan: { mtu: "${MTU}" } }\n' });
    assert.match(problems(q, ['lab.yaml', 'o.yaml'], { vars: { MTU: '1400' } })[0], /bridges\.lan\.mtu must be an integer, not the string "1400"/);
  });

  it('a malformed reference is an error', () => {
    const d = folder({ 'lab.yaml': BASE.replace('lab: ov', 'lab: ${1x}') });
    assert.match(problems(d, ['lab.yaml'])[0], /^lab\.yaml:1:6: error: invalid variable reference: "\$\{1x\}"/);
  });

  it('--var flags are NAME=VALUE with a valid name', () => {
    assert.deepEqual(parseVarFlags(['A=1', 'B=x=y', 'A=2']), { vars: { A: '2', B: 'x=y' }, errors: [] });
    assert.equal(parseVarFlags(['A']).errors.length, 1);
    assert.equal(parseVarFlags(['1A=2']).errors.length, 1);
  });
});

describe('standard input and input limits', () => {
  it('- reads standard input (at most once), with extends relative to the working folder', () => {
    const dir = folder({ 'lab.yaml': BASE });
    const t = load(dir, ['lab.yaml', '-'], { readStdin: () => 'bridges: { lan: { mtu: 1400 } }\n' });
    assert.equal(lan(t).mtu, 1400);
    const s = load(dir, ['-'], { readStdin: () => 'extends: lab.yaml\nbridges: { lan: { mtu: 1300 } }\n' });
    assert.equal(lan(s).mtu, 1300);
    const bad = checkSources([{ name: 'lab.yaml' }, { name: '-' }], { cwd: dir, env: {}, readStdin: () => 'bridges: { lan: { mtu: 20 } }\n' });
    assert.match(errors(bad.diagnostics).map(formatDiagnostic)[0], /^<stdin>:1:24: error: out of range/);
    assert.match(problems(dir, ['-', '-'], { readStdin: () => BASE })[0], /standard input given twice/);
  });

  it('reads regular files only: a FIFO, a device and a directory are refused at once, naming the file', () => {
    const dir = folder({ 'lab.yaml': BASE });
    execFileSync('mkfifo', [join(dir, 'fifo')]);
    const t0 = Date.now();
    assert.match(problems(dir, ['fifo'])[0], /^error: cannot read topology file: fifo: a FIFO \(named pipe\), not a regular file/);
    assert.match(problems(dir, ['/dev/zero'])[0], /\/dev\/zero: a character device, not a regular file/);
    assert.match(problems(dir, ['lab.yaml', '.'])[0], /: a directory, not a regular file/);
    assert.ok(Date.now() - t0 < 2000, 'no read blocked');
  });

  it('at most 4 MiB per file and on standard input', () => {
    const dir = folder({ 'big.yaml': `# ${'x'.repeat(MAX_INPUT_BYTES)}\n`, 'ok.yaml': `lab: x\n# ${'x'.repeat(1000)}\n` });
    assert.equal(MAX_INPUT_BYTES, 4 * 1024 * 1024);
    assert.throws(() => readInputFile(join(dir, 'big.yaml'), 'big.yaml'), /big\.yaml: \d+ bytes, larger than 4194304 bytes \(4 MiB\)/);
    assert.match(readInputFile(join(dir, 'ok.yaml')), /^lab: x/);
    assert.match(problems(dir, ['big.yaml'])[0], /^error: cannot read topology file: big\.yaml: \d+ bytes, larger than/);
  });

  it('standard input larger than the limit is refused (read from /dev/zero, bounded)', async () => {
    const { openSync, closeSync } = await import('node:fs');
    const fd = openSync('/dev/zero', 'r');
    try {
      assert.throws(() => readStdin(MAX_INPUT_BYTES, fd), /<stdin>: larger than 4194304 bytes/);
    } finally {
      closeSync(fd);
    }
  });
});
