/**
 * Tests of IPv4 allocation (src/load/addresses.ts), through the real loader: an
 * attachment without `ip:` takes the pool slot fmix32(FNV-1a(node name)) mod pool size (the pool
 * is the subnet minus its network, host .1 and broadcast addresses), or the next free
 * slot after it, wrapping, when that one is taken by a static address or an earlier
 * attachment. Properties are checked over generated files from a seeded generator, so
 * a failure names a case that can be replayed.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { checkTopology, loadTopology } from '../../src/load/index.js';
import { formatAddr, parseAddr, parseCidr } from '../../src/load/ipv4.js';
import { formatDiagnostic } from '../../src/model/diagnostics.js';
import { fnv1a, nameHash } from '../../src/model/hash.js';
import type { Topology } from '../../src/model/topology.js';
import { repoDir, yamlFiles } from './helpers.js';
import { prng } from '../../bench/topology.js';

/** An attachment: a node name (allocated) or [node, static address]. */
type Att = string | [string, string];

const nodeOf = (a: Att): string => (typeof a === 'string' ? a : a[0]);

/** YAML of one lab with the given bridges (name -> subnet and attach list). */
function labYaml(bridges: Record<string, { subnet: string; attach: Att[] }>): string {
  const nodes = [...new Set(Object.values(bridges).flatMap((b) => b.attach.map(nodeOf)))];
  const att = (a: Att) => (typeof a === 'string' ? a : `{ node: ${a[0]}, ip: ${a[1]} }`);
  return [
    'lab: t',
    `nodes: { ${nodes.map((n) => `${n}: { kind: netns }`).join(', ')} }`,
    'bridges:',
    ...Object.entries(bridges).map(([name, b]) => `  ${name}: { subnet: ${b.subnet}, attach: [${b.attach.map(att).join(', ')}] }`),
    '',
  ].join('\n');
}

function load(text: string): Topology {
  const { topology, diagnostics } = checkTopology('inline.yaml', text);
  assert.ok(topology, `expected a topology, got:\n${diagnostics.map(formatDiagnostic).join('\n')}\n--- file:\n${text}`);
  return topology;
}

/** Node -> bare address on `bridge`. */
function addrs(t: Topology, bridge: string): Map<string, string> {
  return new Map(t.bridges[bridge].attach.map((a) => [a.node, a.ip!.split('/')[0]]));
}

/** Addresses of one bridge "lan" with the given subnet and attach list. */
function lan(subnet: string, attach: Att[]): Map<string, string> {
  return addrs(load(labYaml({ lan: { subnet, attach } })), 'lan');
}

/** Pool of a subnet: first address (network + 2) and size (up to broadcast - 1). */
function pool(subnet: string): { first: number; size: number } {
  const c = parseCidr(subnet)!;
  return { first: c.addr + 2, size: 2 ** (32 - c.prefix) - 3 };
}

/** The address the rule gives `node` when its slot is free: network + 2 + nameHash(node) mod pool size. */
function home(subnet: string, node: string): string {
  const p = pool(subnet);
  return formatAddr(p.first + (nameHash(node) % p.size));
}

/** The first of n0, n1, ... whose slot in a pool of `size` is `slot`, skipping `not`. */
function nameWithSlot(slot: number, size: number, not: string[] = []): string {
  for (let i = 0; ; i++) if (nameHash(`n${i}`) % size === slot && !not.includes(`n${i}`)) return `n${i}`;
}

interface Case {
  seed: number;
  subnet: string;
  attach: Att[];
}

const SUBNETS = ['10.9.0.0/24', '10.9.0.0/26', '10.9.0.0/27', '10.9.0.0/28', '10.9.0.0/22'];

/**
 * A generated bridge: distinct random node names (some of one letter, so slots collide
 * often in small pools), at most 3/4 of the pool used, about one in eight static.
 */
function genCase(seed: number): Case {
  const r = prng(seed);
  const subnet = SUBNETS[Math.floor(r() * SUBNETS.length)];
  const { first, size } = pool(subnet);
  const n = 1 + Math.floor(r() * Math.min(30, Math.floor((size * 3) / 4)));
  const names = new Set<string>();
  while (names.size < n) {
    const len = 1 + Math.floor(r() * 6);
    let s = 'abcdefghijklmnopqrstuvwxyz'[Math.floor(r() * 26)];
    for (let i = 1; i < len; i++) s += 'abcdefghijklmnopqrstuvwxyz0123456789-'[Math.floor(r() * 37)];
    if (!s.endsWith('-')) names.add(s);
  }
  const taken = new Set<number>();
  const attach = [...names].map((name): Att => {
    if (r() >= 0.125) return name;
    let x: number;
    do x = first + Math.floor(r() * size);
    while (taken.has(x));
    taken.add(x);
    return [name, formatAddr(x)];
  });
  return { seed, subnet, attach };
}

const CASES = Array.from({ length: 150 }, (_, i) => genCase(1000 + i));

/** A new node name not in the case. */
function newName(c: Case, r: () => number): string {
  for (;;) {
    const s = `x${Math.floor(r() * 1e6)}`;
    if (!c.attach.some((a) => nodeOf(a) === s)) return s;
  }
}

const show = (c: Case) => `seed ${c.seed}: ${c.subnet} [${c.attach.map((a) => (typeof a === 'string' ? a : `${a[0]}=${a[1]}`)).join(', ')}]`;

describe('IPv4 allocation: the rule', () => {
  it('FNV-1a is the standard 32-bit FNV-1a (reference vectors)', () => {
    assert.equal(fnv1a(''), 0x811c9dc5);
    assert.equal(fnv1a('a'), 0xe40c292c);
    assert.equal(fnv1a('foobar'), 0xbf9cf968);
  });

  it('a node takes network + 2 + fmix32(FNV-1a(name)) mod pool size: a, b, c in a /24 are .36, .54, .84', () => {
    const got = lan('10.9.0.0/24', ['a', 'b', 'c']);
    assert.deepEqual([...got], [['a', '10.9.0.36'], ['b', '10.9.0.54'], ['c', '10.9.0.84']]);
    for (const [n, ip] of got) assert.equal(ip, home('10.9.0.0/24', n));
    // A /22's pool has 1021 addresses: a's slot is 299, so 10.9.0.0 + 2 + 299.
    assert.equal(nameHash('a') % 1021, 299);
    assert.equal(lan('10.9.0.0/22', ['a']).get('a'), '10.9.1.45');
  });

  it('the same file gives the same addresses: loaded twice, under another file name, another lab name, nodes declared in another order', () => {
    for (const c of CASES.slice(0, 40)) {
      const text = labYaml({ lan: { subnet: c.subnet, attach: c.attach } });
      const one = addrs(load(text), 'lan');
      assert.deepEqual(addrs(load(text), 'lan'), one, show(c));
      assert.deepEqual(addrs(loadTopology('/elsewhere/other.yaml', text.replace('lab: t', 'lab: other')), 'lan'), one, show(c));
      const nodes = /^nodes: \{ (.*) \}$/m.exec(text)![1].split(', ').reverse().join(', ');
      assert.deepEqual(addrs(load(text.replace(/^nodes: .*$/m, `nodes: { ${nodes} }`)), 'lan'), one, show(c));
    }
  });

  it('every address is inside the pool, and no two attachments share one', () => {
    for (const c of CASES) {
      const { first, size } = pool(c.subnet);
      const got = [...lan(c.subnet, c.attach).values()];
      assert.equal(new Set(got).size, got.length, show(c));
      for (const ip of got) assert.ok(parseAddr(ip)! >= first && parseAddr(ip)! < first + size, `${ip} outside the pool: ${show(c)}`);
    }
  });

  it('a node on two bridges with subnets of equal size gets the same host part on both', () => {
    const t = load(labYaml({ lan: { subnet: '10.40.0.0/24', attach: ['a', 'b', 'web-1'] }, data: { subnet: '10.41.0.0/24', attach: ['web-1', 'a'] } }));
    const [l, d] = [addrs(t, 'lan'), addrs(t, 'data')];
    for (const n of ['a', 'web-1']) assert.equal(d.get(n)!.replace('10.41.', ''), l.get(n)!.replace('10.40.', ''), n);
    assert.equal(l.get('a'), '10.40.0.36');
    assert.equal(d.get('a'), '10.41.0.36');
    // Also for generated lists without collisions (same names, same attach order).
    for (const c of CASES.filter((c) => c.subnet === '10.9.0.0/24')) {
      const names = c.attach.map(nodeOf);
      if (new Set(names.map((n) => nameHash(n) % 253)).size !== names.length) continue;
      const t2 = load(labYaml({ p: { subnet: '10.9.0.0/24', attach: names }, q: { subnet: '192.168.7.0/24', attach: [...names].reverse() } }));
      for (const n of names) assert.equal(addrs(t2, 'q').get(n)!.split('.')[3], addrs(t2, 'p').get(n)!.split('.')[3], `${n}: ${show(c)}`);
    }
  });
});

describe('IPv4 allocation: stable under edits', () => {
  it('appending a node to an attach list never changes any other node\'s address', () => {
    let checked = 0;
    for (const c of CASES) {
      const r = prng(c.seed ^ 0x5eed);
      const before = lan(c.subnet, c.attach);
      const extra = r() < 0.5 ? newName(c, r) : nameWithSlot(nameHash(nodeOf(c.attach[0])) % pool(c.subnet).size, pool(c.subnet).size, c.attach.map(nodeOf));
      const after = lan(c.subnet, [...c.attach, extra]);
      for (const [n, ip] of before) assert.equal(after.get(n), ip, `${n} moved when ${extra} was appended: ${show(c)}`);
      assert.ok(after.has(extra));
      checked++;
    }
    assert.equal(checked, CASES.length);
  });

  it('appending to one bridge never moves a node on another bridge', () => {
    for (const c of CASES.slice(0, 50)) {
      const other = { subnet: '172.20.0.0/24', attach: ['a', 'b', 'c'] };
      const before = load(labYaml({ lan: { subnet: c.subnet, attach: c.attach }, other }));
      const after = load(labYaml({ lan: { subnet: c.subnet, attach: [...c.attach, newName(c, prng(c.seed))] }, other }));
      assert.deepEqual(addrs(after, 'other'), addrs(before, 'other'), show(c));
    }
  });

  it('without slot collisions, removing or reordering nodes changes no other address', () => {
    let checked = 0;
    for (const c of CASES) {
      const { size, first } = pool(c.subnet);
      const statics = new Set(c.attach.filter((a) => typeof a !== 'string').map((a) => parseAddr((a as [string, string])[1])! - first));
      const slots = c.attach.filter((a) => typeof a === 'string').map((a) => nameHash(a as string) % size);
      if (new Set(slots).size !== slots.length || slots.some((s) => statics.has(s))) continue;
      const r = prng(c.seed);
      const before = lan(c.subnet, c.attach);
      const shuffled = [...c.attach].sort(() => r() - 0.5);
      const removed = c.attach.filter(() => r() < 0.7);
      const reordered = lan(c.subnet, shuffled);
      const fewer = lan(c.subnet, removed);
      for (const [n, ip] of before) {
        assert.equal(reordered.get(n), ip, `${n} moved on reorder: ${show(c)}`);
        if (fewer.has(n)) assert.equal(fewer.get(n), ip, `${n} moved on removal: ${show(c)}`);
      }
      checked++;
    }
    assert.ok(checked >= 40, `only ${checked} collision-free cases`);
  });

  it('with collisions, a node with no taken neighbour address keeps its address when others are removed or the list is reordered', () => {
    let alone = 0;
    for (const c of CASES) {
      const { first, size } = pool(c.subnet);
      const before = lan(c.subnet, c.attach);
      const taken = new Set([...before.values()].map((ip) => parseAddr(ip)! - first));
      const isAlone = (n: string) => {
        const k = parseAddr(before.get(n)!)! - first;
        return size > 2 && !taken.has((k + 1) % size) && !taken.has((k + size - 1) % size);
      };
      const r = prng(c.seed ^ 0xc011);
      const reordered = lan(c.subnet, [...c.attach].sort(() => r() - 0.5));
      const fewer = lan(c.subnet, c.attach.filter(() => r() < 0.6));
      for (const [n, ip] of before) {
        if (!isAlone(n)) continue;
        alone++;
        assert.equal(reordered.get(n), ip, `${n} moved on reorder: ${show(c)}`);
        if (fewer.has(n)) assert.equal(fewer.get(n), ip, `${n} moved on removal: ${show(c)}`);
      }
    }
    assert.ok(alone > 500, `only ${alone} nodes checked`);
  });

  it('colliding nodes: the earlier one in attach order keeps the slot; reordering swaps them, removing the first moves the second back', () => {
    // a and n146 share slot 34 of a /24 (.36); b and c collide with nobody here.
    assert.equal(nameHash('a') % 253, nameHash('n146') % 253);
    assert.deepEqual([...lan('10.9.0.0/24', ['a', 'b', 'n146', 'c'])], [['a', '10.9.0.36'], ['b', '10.9.0.54'], ['n146', '10.9.0.37'], ['c', '10.9.0.84']]);
    assert.deepEqual([...lan('10.9.0.0/24', ['n146', 'b', 'a', 'c'])], [['n146', '10.9.0.36'], ['b', '10.9.0.54'], ['a', '10.9.0.37'], ['c', '10.9.0.84']]);
    assert.deepEqual([...lan('10.9.0.0/24', ['b', 'n146', 'c'])], [['b', '10.9.0.54'], ['n146', '10.9.0.36'], ['c', '10.9.0.84']]);
    // The limit of the guarantee: inserting n146 before a (not appending) moves a.
    assert.equal(lan('10.9.0.0/24', ['n146', 'a', 'b']).get('a'), '10.9.0.37');
  });
});

describe('IPv4 allocation: static addresses and full pools', () => {
  it('a static ip always wins: a node whose slot is a static address moves to the next free one, wherever the static one is listed', () => {
    assert.equal(lan('10.9.0.0/24', ['a']).get('a'), '10.9.0.36');
    for (const attach of [['a', ['s', '10.9.0.36']], [['s', '10.9.0.36'], 'a']] as Att[][]) {
      const got = lan('10.9.0.0/24', attach);
      assert.equal(got.get('s'), '10.9.0.36');
      assert.equal(got.get('a'), '10.9.0.37');
    }
    // Static addresses at .37 and .38 too: a probes past all three.
    const got = lan('10.9.0.0/24', ['a', ['s', '10.9.0.36'], ['t', '10.9.0.37'], ['u', '10.9.0.38']]);
    assert.equal(got.get('a'), '10.9.0.39');
    // The old rule's first address (.2) is no longer special.
    assert.equal(lan('10.9.0.0/24', [['s', '10.9.0.2'], 'b']).get('b'), '10.9.0.54');
  });

  it('the host address (.1) is never given, and the probe wraps from the end of the pool to its start', () => {
    // A /29: pool .2-.6 (5 slots). x's slot is the last one (.6); with .6 taken it wraps to .2.
    const x = nameWithSlot(4, 5);
    assert.equal(lan('10.9.0.0/29', [x]).get(x), '10.9.0.6');
    assert.equal(lan('10.9.0.0/29', [x, ['s', '10.9.0.6']]).get(x), '10.9.0.2');
    assert.equal(lan('10.9.0.0/29', [x, ['s', '10.9.0.6'], ['t', '10.9.0.2']]).get(x), '10.9.0.3');
    // Two more nodes with the same last slot, after x: .2, then .3 (never .7, the broadcast, nor .1).
    const [y, z] = [nameWithSlot(4, 5, [x]), nameWithSlot(4, 5, [x, nameWithSlot(4, 5, [x])])];
    assert.deepEqual([...lan('10.9.0.0/29', [x, y, z])], [[x, '10.9.0.6'], [y, '10.9.0.2'], [z, '10.9.0.3']]);
    // A full /29: five nodes take all five pool addresses.
    const five = [x, y, z, 'a', 'b'];
    assert.deepEqual([...lan('10.9.0.0/29', five).values()].sort(), ['10.9.0.2', '10.9.0.3', '10.9.0.4', '10.9.0.5', '10.9.0.6']);
  });

  it('an exhausted pool is an error located at the first attachment that gets no address (/30 and /29)', () => {
    const text30 = 'lab: t\nnodes: { a: { kind: netns }, c: { kind: netns } }\nbridges:\n  lan:\n    subnet: 10.40.0.0/30\n    attach:\n      - a\n      - c\n';
    const r30 = checkTopology('p.yaml', text30);
    assert.equal(r30.topology, undefined);
    assert.deepEqual(r30.diagnostics.map(formatDiagnostic), [
      'p.yaml:8:9: error: address pool exhausted: subnet 10.40.0.0/30 of bridge "lan" has no free address left for node "c"; use a shorter prefix',
    ]);
    // /29 with two static addresses: the fourth allocated node is one too many.
    const nodes = ['a', 'b', 'c', 'd', 'e', 'f'];
    const text29 = `lab: t\nnodes: { ${nodes.map((n) => `${n}: { kind: netns }`).join(', ')} }\nbridges:\n  lan:\n    subnet: 10.40.0.0/29\n    attach:\n      - a\n      - { node: b, ip: 10.40.0.4 }\n      - c\n      - { node: d, ip: 10.40.0.2 }\n      - e\n      - f\n`;
    const r29 = checkTopology('p.yaml', text29);
    assert.equal(r29.topology, undefined);
    assert.deepEqual(r29.diagnostics.map(formatDiagnostic), [
      'p.yaml:12:9: error: address pool exhausted: subnet 10.40.0.0/29 of bridge "lan" has no free address left for node "f"; use a shorter prefix',
    ]);
    // One node fewer fits exactly.
    assert.ok(checkTopology('p.yaml', text29.replace('      - f\n', '')).topology);
  });
});

describe('IPv4 allocation: the documentation states the loader\'s addresses', () => {
  const examples = yamlFiles(repoDir('examples/'));

  it('every "node=address" in a comment of an example is the address the loader gives that node', () => {
    let stated = 0;
    for (const f of examples) {
      const t = loadTopology(f);
      const given = new Set(Object.values(t.bridges).flatMap((b) => b.attach.map((a) => `${a.node}=${a.ip?.split('/')[0]}`)));
      for (const line of readFileSync(f, 'utf8').split('\n')) {
        const comment = line.slice(line.indexOf('#') + 1);
        if (!line.includes('#')) continue;
        for (const m of comment.matchAll(/\b([a-z][a-z0-9-]*)=(\d+\.\d+\.\d+\.\d+)\b/g)) {
          stated++;
          assert.ok(given.has(`${m[1]}=${m[2]}`), `${f}: comment says ${m[0]}, the loader gives ${[...given].filter((g) => g.startsWith(`${m[1]}=`)).join(', ')}`);
        }
      }
    }
    assert.ok(stated >= 15, `only ${stated} addresses stated in comments`);
  });

  it('every IPv4 address in examples/README.md is a subnet, host address or node address of an example', () => {
    const known = new Set<string>();
    for (const f of examples) {
      for (const b of Object.values(loadTopology(f).bridges)) {
        for (const x of [b.subnet, b.hostAddr, ...b.attach.map((a) => a.ip)]) if (x) known.add(x.split('/')[0]);
      }
    }
    const readme = readFileSync(repoDir('examples/README.md'), 'utf8');
    const unknown = [...readme.matchAll(/\b10\.\d+\.\d+\.\d+\b/g)].map((m) => m[0]).filter((a) => !known.has(a));
    assert.deepEqual(unknown, [], 'addresses in examples/README.md that no example gives');
  });
});
