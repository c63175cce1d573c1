/**
 * Tests of src/load: the broken-file corpus (test/invalid/*.yaml, each with its
 * `# expect: LINE:COL SUBSTRING` header), the examples, and normalization.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { checkTopology, loadTopology } from '../../src/load/index.js';
import { loadSchema } from '../../src/load/schema.js';
import { ADDR_OR_CIDR_SHAPE, CIDR_SHAPE, formatAddr, overlaps, parseAddr, parseCidr } from '../../src/load/ipv4.js';
import { InputError, formatDiagnostic, type Diagnostic } from '../../src/model/diagnostics.js';
import { LAB_RE, NAME_RE } from '../../src/model/names.js';
import type { Topology } from '../../src/model/topology.js';
import { readExpectation, repoDir, yaml, yamlFiles } from './helpers.js';

const invalidFiles = yamlFiles(repoDir('test/invalid/'));
const exampleFiles = yamlFiles(repoDir('examples/'));

const errors = (ds: Diagnostic[]): Diagnostic[] => ds.filter((d) => d.severity === 'error');

/** Loads inline YAML, failing the test with every message when it does not load. */
function load(text: string, file = 'inline.yaml'): Topology {
  const { topology, diagnostics } = checkTopology(file, text);
  assert.ok(topology, `expected a topology, got:\n${diagnostics.map(formatDiagnostic).join('\n')}`);
  return topology;
}

/** The error diagnostics of inline YAML, formatted. */
function problems(text: string): string[] {
  return errors(checkTopology('inline.yaml', text).diagnostics).map(formatDiagnostic);
}

describe('broken-file corpus (test/invalid)', () => {
  it('has at least 36 files', () => {
    assert.ok(invalidFiles.length >= 36, `only ${invalidFiles.length} files`);
  });

  for (const file of invalidFiles) {
    const name = file.slice(file.lastIndexOf('/') + 1);
    it(`${name}: reports the expected error at the expected position`, () => {
      const expected = readExpectation(readFileSync(file, 'utf8'));
      const { topology, diagnostics } = checkTopology(file);
      const errs = errors(diagnostics);
      assert.equal(topology, undefined);
      assert.ok(errs.length > 0, 'no error reported');
      const shown = errs.map(formatDiagnostic).join('\n');
      const hit = errs.find(
        (d) =>
          d.pos?.line === expected.line &&
          d.pos.col === expected.col &&
          formatDiagnostic(d).toLowerCase().includes(expected.substring.toLowerCase()),
      );
      assert.ok(hit, `expected ${expected.line}:${expected.col} ${JSON.stringify(expected.substring)}, got:\n${shown}`);
      for (const d of errs) assert.equal(d.pos?.file, file, 'positions name the file as given');
    });
  }

  it('loadTopology throws an InputError carrying every diagnostic', () => {
    const file = invalidFiles.find((f) => f.endsWith('/attach-unknown-node.yaml'))!;
    assert.throws(
      () => loadTopology(file),
      (e: unknown) => e instanceof InputError && e.diagnostics.length > 0 && e.message.includes('unknown node'),
    );
  });
});

describe('examples', () => {
  it('include full.yaml and basic.yaml', () => {
    const names = exampleFiles.map((f) => f.slice(f.lastIndexOf('/') + 1));
    assert.ok(names.includes('full.yaml') && names.includes('basic.yaml'));
  });

  for (const file of exampleFiles) {
    it(`${file.slice(file.lastIndexOf('/') + 1)} loads without diagnostics`, () => {
      const { topology, diagnostics } = checkTopology(file);
      assert.deepEqual(diagnostics.map(formatDiagnostic), []);
      assert.ok(topology);
      assert.equal(loadTopology(file).lab, topology.lab);
    });
  }

  it('full.yaml normalizes as documented', () => {
    const t = loadTopology(repoDir('examples/full.yaml'));
    const lan = t.bridges.lan;
    assert.equal(lan.subnet, '10.40.0.0/24');
    assert.equal(lan.hostAddr, '10.40.0.1/24');
    assert.equal(lan.mtu, 1500);
    assert.deepEqual(
      lan.attach.map((a) => [a.node, a.ip, a.link, a.nic]),
      [
        ['a', '10.40.0.36/24', 'up', 'eth1'], // allocated from the name (test/unit/addresses.test.ts)
        ['b', '10.40.0.3/24', 'up', 'eth0'], // static
        ['c', '10.40.0.84/24', 'down', 'eth0'],
        ['v', '10.40.0.225/24', 'up', 'eth0'],
      ],
    );
    assert.deepEqual(
      lan.partitions.map((p) => [p.kind, p.a, p.b]),
      [
        ['symmetric', 'a', 'b'],
        ['directional', 'a', 'c'],
      ],
    );
    assert.deepEqual(lan.impairments.map(({ pos: _pos, keyPos: _k, ...rest }) => rest), [
      { latency_ms: 20, drop_pct: 1, bandwidth_bps: 10000000 },
      { from: 'a', to: 'b', latency_ms: 25, jitter_ms: 5, drop_pct: 1, bandwidth_bps: 1000000 },
    ]);
    assert.deepEqual([lan.isolate, lan.uplink, lan.partitionAll, lan.routes], [['c'], true, false, ['data']]);
    assert.deepEqual(t.bridges.data.routes, ['lan']);
    assert.deepEqual(t.nodes.v.qemu, { kernel: 'guest/vmlinuz', initrd: 'guest/initrd.gz', memory_mb: 256, cpus: 1, accel: 'auto' });
    assert.equal(t.nodes.a.qemu, undefined);
  });
});

describe('normalization', () => {
  it('allocates addresses from node names (network + 2 + hash mod pool size), skipping .1 and static addresses', () => {
    const t = load(yaml`
      lab: t
      nodes: { a: { kind: netns }, b: { kind: netns }, c: { kind: netns }, d: { kind: netns } }
      bridges:
        lan:
          subnet: 10.9.0.0/24
          attach:
            - a
            - b
            - { node: c, ip: 10.9.0.3 }
            - { node: d, ip: 10.9.0.36/24 }
    `);
    // a's slot is .36, taken by d's static address (static wins): a takes the next free, .37.
    assert.deepEqual(
      t.bridges.lan.attach.map((a) => [a.node, a.ip]),
      [
        ['a', '10.9.0.37/24'],
        ['b', '10.9.0.54/24'],
        ['c', '10.9.0.3/24'],
        ['d', '10.9.0.36/24'],
      ],
    );
  });

  it('gives a bare static address the subnet prefix', () => {
    const t = load('lab: t\nnodes: { a: { kind: netns } }\nbridges:\n  lan: { subnet: 172.16.0.0/12, attach: [{ node: a, ip: 172.16.9.9 }] }\n');
    assert.equal(t.bridges.lan.attach[0].ip, '172.16.9.9/12');
    assert.equal(t.bridges.lan.hostAddr, '172.16.0.1/12');
  });

  it('numbers NICs by bridge name, in plain string order', () => {
    const t = load(yaml`
      lab: t
      nodes: { x: { kind: netns }, y: { kind: netns } }
      bridges:
        zeta: { attach: [x] }
        b1: { attach: [x, y] }
        b-1: { attach: [x] }
        alpha: { attach: [y] }
    `);
    const nics = (node: string): Record<string, [string, number]> =>
      Object.fromEntries(
        Object.values(t.bridges).flatMap((b) =>
          b.attach.filter((a) => a.node === node).map((a) => [b.name, [a.nic, a.nicIndex]]),
        ),
      );
    assert.deepEqual(nics('x'), { 'b-1': ['eth0', 0], b1: ['eth1', 1], zeta: ['eth2', 2] });
    assert.deepEqual(nics('y'), { alpha: ['eth0', 0], b1: ['eth1', 1] });
    assert.deepEqual(Object.keys(t.bridges), ['zeta', 'b1', 'b-1', 'alpha'], 'bridges keep file order');
  });

  it('makes routes symmetric, sorted and unique', () => {
    const t = load(yaml`
      lab: t
      nodes: {}
      bridges:
        lan: { subnet: 10.1.0.0/24, routes: [wan, data] }
        data: { subnet: 10.2.0.0/24, routes: [lan] }
        wan: { subnet: 10.3.0.0/24 }
        other: { subnet: 10.4.0.0/24 }
    `);
    assert.deepEqual(t.bridges.lan.routes, ['data', 'wan']);
    assert.deepEqual(t.bridges.data.routes, ['lan']);
    assert.deepEqual(t.bridges.wan.routes, ['lan']);
    assert.deepEqual(t.bridges.other.routes, []);
  });

  it('fills defaults and leaves absent optional fields absent', () => {
    const t = load(yaml`
      lab: t
      nodes:
        a: { kind: netns }
        v: { kind: qemu, cpus: 2, accel: tcg, disk: vm.img }
      bridges:
        lan: { attach: [a, { node: v, mac: "52:54:00:AB:CD:EF", link: up }] }
    `);
    const lan = t.bridges.lan;
    assert.deepEqual(
      [lan.subnet, lan.hostAddr, lan.mtu, lan.partitionAll, lan.uplink, lan.partitions, lan.impairments, lan.isolate, lan.routes],
      [undefined, undefined, undefined, false, false, [], [], [], []],
    );
    assert.ok(!('mtu' in lan) && !('subnet' in lan));
    const [a, v] = lan.attach;
    assert.deepEqual([a.ip, a.link, a.mac, v.mac, v.link], [undefined, 'up', undefined, '52:54:00:ab:cd:ef', 'up']);
    assert.deepEqual(t.nodes.v.qemu, { disk: 'vm.img', memory_mb: 256, cpus: 2, accel: 'tcg' });
  });

  it('keeps positions: file as given in every pos, absolute Topology.file', () => {
    const text = yaml`
      lab: t
      nodes:
        a: { kind: netns }
        b: { kind: netns }
      bridges:
        lan:
          attach:
            - a
            - { node: b }
          partitions:
            - [a, b]
          impairments:
            - { from: b, to: a, drop_pct: 0.5 }
    `;
    const t = load(text, 'labs/t.yaml');
    assert.ok(isAbsolute(t.file) && t.file.endsWith('/labs/t.yaml'));
    const lan = t.bridges.lan;
    const at = (p?: { file: string; line: number; col: number }): string => `${p?.file}:${p?.line}:${p?.col}`;
    assert.equal(at(t.pos), 'labs/t.yaml:1:1');
    assert.equal(at(t.nodes.b.pos), 'labs/t.yaml:4:3');
    assert.equal(at(lan.pos), 'labs/t.yaml:6:3');
    assert.deepEqual(lan.attach.map((a) => at(a.pos)), ['labs/t.yaml:8:9', 'labs/t.yaml:9:9']);
    assert.equal(at(lan.partitions[0].pos), 'labs/t.yaml:11:9');
    assert.equal(at(lan.impairments[0].pos), 'labs/t.yaml:13:9');
    assert.equal(lan.impairments[0].drop_pct, 0.5);
  });

  it('allows a node on no bridge, with a located warning', () => {
    const { topology, diagnostics } = checkTopology('w.yaml', 'lab: t\nnodes:\n  a: { kind: netns }\n  lone: { kind: netns }\nbridges:\n  lan: { attach: [a] }\n');
    assert.ok(topology);
    assert.deepEqual(diagnostics.map(formatDiagnostic), ['w.yaml:4:3: warning: unattached node: node "lone" is attached to no bridge']);
  });
});

describe('every problem at once', () => {
  it('reports three independent errors as three diagnostics, in file order', () => {
    const found = problems(yaml`
      lab: t
      nodes:
        a: { kind: netns }
        b: { kind: netns }
      bridges:
        lan:
          subnet: 10.0.0.0/24
          mtu: tiny
          attach: [a, ghost, { node: b, ip: 10.1.0.5 }]
    `);
    assert.equal(found.length, 3, found.join('\n'));
    assert.match(found[0], /^inline\.yaml:8:10: error: wrong type: bridges\.lan\.mtu must be an integer/);
    assert.match(found[1], /^inline\.yaml:9:17: error: unknown node: bridge "lan" attaches node "ghost"/);
    assert.match(found[2], /^inline\.yaml:9:39: error: address outside subnet: 10\.1\.0\.5 is not inside subnet 10\.0\.0\.0\/24/);
  });

  it('reports every YAML syntax error', () => {
    const found = problems('lab: t\nlab: u\nnodes: {}\nnodes: {}\nbridges: {}\n');
    assert.deepEqual(found, [
      'inline.yaml:2:1: error: duplicate key: key "lab" is already defined in this mapping',
      'inline.yaml:4:1: error: duplicate key: key "nodes" is already defined in this mapping',
    ]);
  });

  it('does not cascade from one bad name', () => {
    const found = problems('lab: t\nnodes:\n  "bad name": { kind: netns }\nbridges:\n  lan: { attach: ["bad name"] }\n');
    assert.equal(found.length, 1, found.join('\n'));
  });

  it('reports an unreadable file without throwing', () => {
    const { topology, diagnostics } = checkTopology('/nonexistent/provium.yaml');
    assert.equal(topology, undefined);
    assert.equal(diagnostics.length, 1);
    assert.match(formatDiagnostic(diagnostics[0]), /^error: cannot read topology file: \/nonexistent\/provium\.yaml: ENOENT/);
  });
});

describe('schema', () => {
  const schema = loadSchema() as any;

  it('uses the name patterns of model/names.ts and the shapes of ipv4.ts', () => {
    assert.equal(schema.properties.lab.pattern, LAB_RE.source);
    assert.equal(schema.definitions.name.pattern, NAME_RE.source);
    assert.equal(schema.definitions.ipv4Cidr.pattern, CIDR_SHAPE.source.replace(/\\\//g, '/'));
    assert.equal(schema.definitions.ipv4AddrOrCidr.pattern, ADDR_OR_CIDR_SHAPE.source.replace(/\\\//g, '/'));
  });

  it('describes every property', () => {
    const missing: string[] = [];
    const walk = (node: unknown, path: string): void => {
      if (typeof node !== 'object' || node === null) return;
      const props = (node as { properties?: Record<string, any> }).properties;
      for (const [key, sub] of Object.entries(props ?? {})) {
        if (!path.includes('/then') && !path.includes('/if') && typeof sub.description !== 'string') missing.push(`${path}/${key}`);
      }
      for (const [key, sub] of Object.entries(node)) walk(sub, `${path}/${key}`);
    };
    walk(schema, '#');
    assert.deepEqual(missing, []);
  });
});

describe('ipv4', () => {
  it('parses strictly', () => {
    assert.equal(parseAddr('10.40.0.1'), 0x0a280001);
    assert.equal(parseAddr('255.255.255.255'), 0xffffffff);
    for (const bad of ['256.0.0.1', '10.040.0.1', '1.2.3', '1.2.3.4.5', '', 'a.b.c.d']) assert.equal(parseAddr(bad), undefined, bad);
    assert.deepEqual(parseCidr('10.0.0.0/8'), { addr: 0x0a000000, prefix: 8 });
    assert.equal(parseCidr('10.0.0.0/33'), undefined);
    assert.equal(parseCidr('10.0.0.1'), undefined);
    assert.deepEqual(parseCidr('10.0.0.1', 24), { addr: 0x0a000001, prefix: 24 });
    assert.equal(formatAddr(0xc0a80101), '192.168.1.1');
  });

  it('detects overlaps both ways', () => {
    const n = (s: string) => parseCidr(s)!;
    assert.ok(overlaps(n('10.40.0.0/16'), n('10.40.3.0/24')));
    assert.ok(overlaps(n('10.40.3.0/24'), n('10.40.0.0/16')));
    assert.ok(!overlaps(n('10.40.0.0/24'), n('10.41.0.0/24')));
  });
});
