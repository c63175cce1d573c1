/**
 * Tests of `provium graph` (src/render/graph.ts): for the examples, the Mermaid and
 * DOT pictures hold every bridge, node, attachment, partition and impairment; ids
 * are safe; output is deterministic; a syntax sanity check of both formats; Graphviz
 * itself validates the DOT when `dot` is installed (skipped, with the reason, when not).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { checkTopology, loadTopology } from '../../src/load/index.js';
import { formatDiagnostic } from '../../src/model/diagnostics.js';
import type { Topology } from '../../src/model/topology.js';
import {
  bridgeId, escapeDot, escapeMermaid, formatBandwidth, impairmentLabel, nodeId, renderDot, renderMermaid, safeId, UPLINK_ID,
} from '../../src/render/graph.js';
import { repoDir, yaml, yamlFiles } from './helpers.js';

const full = loadTopology(repoDir('examples/full.yaml'));
const basic = loadTopology(repoDir('examples/basic.yaml'));
/** The address (CIDR) the loader gave node on bridge. */
const ipOf = (t: typeof full, node: string, bridge: string): string => t.bridges[bridge].attach.find((a) => a.node === node)!.ip!;
const exampleFiles = yamlFiles(repoDir('examples/'));

function load(text: string): Topology {
  const { topology, diagnostics } = checkTopology('inline.yaml', text);
  assert.ok(topology, diagnostics.map(formatDiagnostic).join('\n'));
  return topology;
}

const SAFE_ID = /^[A-Za-z][A-Za-z0-9_]*$/;
/** Words Mermaid's flowchart grammar reserves (an id equal to one breaks parsing). */
const MERMAID_KEYWORDS = new Set(['end', 'graph', 'flowchart', 'subgraph', 'style', 'linkStyle', 'classDef', 'class', 'click', 'call', 'direction', 'default']);

/** Removes double-quoted strings (Mermaid labels never contain a raw quote). */
const unquote = (line: string): string => line.replace(/"[^"]*"/g, '""');

interface MermaidDoc {
  ids: Map<string, string>;
  edges: { from: string; arrow: string; label: string; to: string }[];
}

/**
 * Checks Mermaid flowchart syntax the way provium writes it, failing the test on any
 * problem: header, one statement per line of a known form, quotes and brackets
 * balanced, safe ids, edges/linkStyle/class referring to declared ids and edges.
 */
function parseMermaid(text: string): MermaidDoc {
  const lines = text.trimEnd().split('\n');
  assert.equal(lines[0], 'flowchart LR');
  const ids = new Map<string, string>();
  const edges: MermaidDoc['edges'] = [];
  const pending: { line: string; check: () => void }[] = [];
  const SHAPES: [string, string][] = [['{{', '}}'], ['([', '])'], ['[[', ']]'], ['(', ')'], ['[', ']']];
  for (const line of lines.slice(1)) {
    assert.equal((line.match(/"/g) ?? []).length % 2, 0, `odd number of quotes: ${line}`);
    const bare = unquote(line);
    for (const [o, c] of [['(', ')'], ['[', ']'], ['{', '}']]) {
      assert.equal(bare.split(o).length, bare.split(c).length, `unbalanced ${o}${c} outside quotes: ${line}`);
    }
    assert.match(line, /^ {2}\S/, `statement not indented by two spaces: ${line}`);
    const s = line.trim();
    if (s.startsWith('%%')) continue;
    let m: RegExpExecArray | null;
    if ((m = /^([A-Za-z][A-Za-z0-9_]*)(\{\{|\(\[|\[\[|\(|\[)"([^"]*)"(\}\}|\]\)|\]\]|\)|\])$/.exec(s))) {
      const shape = SHAPES.find(([o]) => o === m![2]);
      assert.ok(shape && shape[1] === m[4], `mismatched shape brackets: ${line}`);
      assert.ok(!ids.has(m[1]), `id declared twice: ${m[1]}`);
      ids.set(m[1], m[3]);
    } else if ((m = /^(\S+) (---|-\.-|x--x|--x|==>|<-->)\|"([^"]*)"\| (\S+)$/.exec(s))) {
      const e = { from: m[1], arrow: m[2], label: m[3], to: m[4] };
      edges.push(e);
      pending.push({ line, check: () => assert.ok(ids.has(e.from) && ids.has(e.to), `edge refers to an undeclared id: ${line}`) });
    } else if ((m = /^linkStyle ([\d,]+) (\S+)$/.exec(s))) {
      const idx = m[1].split(',').map(Number);
      pending.push({ line, check: () => assert.ok(idx.every((i) => i >= 0 && i < edges.length), `linkStyle index out of range: ${line}`) });
    } else if ((m = /^classDef ([A-Za-z]\w*) ([\w#:.,% -]+)$/.exec(s))) {
      continue;
    } else if ((m = /^class ([\w,]+) ([A-Za-z]\w*)$/.exec(s))) {
      const list = m[1].split(',');
      pending.push({ line, check: () => assert.ok(list.every((id) => ids.has(id)), `class refers to an undeclared id: ${line}`) });
    } else {
      assert.fail(`not a statement provium writes: ${line}`);
    }
  }
  for (const p of pending) p.check();
  for (const id of ids.keys()) {
    assert.match(id, SAFE_ID);
    assert.ok(!MERMAID_KEYWORDS.has(id), `id is a Mermaid keyword: ${id}`);
  }
  return { ids, edges };
}

/** Checks DOT the way provium writes it: digraph header, declared ids, edges between them, balanced quotes and brackets. */
function parseDot(text: string): { ids: Map<string, string>; edges: { from: string; to: string; attrs: string }[] } {
  const lines = text.trimEnd().split('\n');
  assert.match(lines[0], /^digraph "[^"\\]*" \{$/);
  assert.equal(lines.at(-1), '}');
  const ids = new Map<string, string>();
  const edges: { from: string; to: string; attrs: string }[] = [];
  for (const line of lines.slice(1, -1)) {
    const bare = line.replace(/"(?:[^"\\]|\\.)*"/g, '""');
    assert.ok(!bare.replace(/""/g, '').includes('"'), `unbalanced quotes: ${line}`);
    assert.equal(bare.split('[').length, bare.split(']').length, `unbalanced []: ${line}`);
    assert.ok(bare.trimEnd().endsWith(';'), `statement without ;: ${line}`);
    let m: RegExpExecArray | null;
    if (/^ {2}(graph|node|edge) \[/.test(line)) continue;
    if ((m = /^ {2}(\S+) -> (\S+) \[(.*)\];$/.exec(line))) edges.push({ from: m[1], to: m[2], attrs: m[3] });
    else if ((m = /^ {2}(\S+) \[(.*)\];$/.exec(line))) {
      assert.ok(!ids.has(m[1]), `id declared twice: ${m[1]}`);
      ids.set(m[1], m[2]);
    } else assert.fail(`not a statement provium writes: ${line}`);
  }
  for (const id of ids.keys()) assert.match(id, SAFE_ID);
  for (const e of edges) assert.ok(ids.has(e.from) && ids.has(e.to), `edge refers to an undeclared id: ${e.from} -> ${e.to}`);
  return { ids, edges };
}

/** Asserts that a picture's parsed ids and edge labels hold everything a topology has. */
function assertComplete(t: Topology, ids: Map<string, string>, edgeLabels: { from: string; to: string; text: string }[]): void {
  for (const b of Object.values(t.bridges)) {
    const label = ids.get(bridgeId(b.name));
    assert.ok(label !== undefined, `bridge ${b.name} missing`);
    assert.ok(label.includes(b.name), `bridge ${b.name}: label ${label}`);
    if (b.subnet) assert.ok(label.includes(b.subnet), `bridge ${b.name}: no subnet in ${label}`);
    for (const a of b.attach) {
      const e = edgeLabels.find((x) => x.from === nodeId(a.node) && x.to === bridgeId(b.name));
      assert.ok(e, `no attachment edge ${a.node} -> ${b.name}`);
      assert.ok(e.text.startsWith(a.nic), `attachment ${a.node}@${b.name}: ${e.text}`);
      if (a.ip) assert.ok(e.text.includes(a.ip), `attachment ${a.node}@${b.name}: no address in ${e.text}`);
      if (a.link === 'down') assert.ok(e.text.includes('link down'), `attachment ${a.node}@${b.name}: link down not shown`);
    }
    for (const p of b.partitions) {
      const want = p.kind === 'symmetric' ? 'partition' : 'partition (one-way)';
      assert.ok(edgeLabels.some((x) => x.from === nodeId(p.a) && x.to === nodeId(p.b) && x.text.startsWith(want)), `partition ${p.a} ${p.b} (${p.kind}) missing`);
    }
    for (const i of b.impairments) {
      if (i.from && i.to) assert.ok(edgeLabels.some((x) => x.from === nodeId(i.from!) && x.to === nodeId(i.to!) && x.text.startsWith(impairmentLabel(i))), `impairment ${i.from} -> ${i.to} missing`);
      else assert.ok(ids.get(bridgeId(b.name))!.includes(impairmentLabel(i)), `whole-bridge impairment of ${b.name} missing`);
    }
    if (b.uplink) assert.ok(edgeLabels.some((x) => x.from === bridgeId(b.name) && x.to === UPLINK_ID), `uplink of ${b.name} missing`);
    for (const r of b.routes) {
      assert.ok(edgeLabels.some((x) => x.text === 'routed' && [x.from, x.to].sort().join() === [bridgeId(b.name), bridgeId(r)].sort().join()), `route ${b.name} <-> ${r} missing`);
    }
  }
  for (const n of Object.values(t.nodes)) {
    const label = ids.get(nodeId(n.name));
    assert.ok(label !== undefined, `node ${n.name} missing`);
    assert.ok(label.includes(n.name) && label.includes(n.kind), `node ${n.name}: label ${label}`);
  }
}

/** DOT attribute `label="..."` of an attribute list, unescaped enough for comparisons. */
const dotLabel = (attrs: string): string => (/label="((?:[^"\\]|\\.)*)"/.exec(attrs)?.[1] ?? '').replace(/\\n/g, '\n');

describe('graph: units and escaping', () => {
  it('formats bandwidth in Mbit/s, kbit/s or bit/s', () => {
    assert.equal(formatBandwidth(1_000_000), '1 Mbit/s');
    assert.equal(formatBandwidth(2_500_000), '2.5 Mbit/s');
    assert.equal(formatBandwidth(10_000_000_000), '10000 Mbit/s');
    assert.equal(formatBandwidth(64_000), '64 kbit/s');
    assert.equal(formatBandwidth(1_500), '1.5 kbit/s');
    assert.equal(formatBandwidth(300), '300 bit/s');
  });

  it('labels an impairment "25 ms ±5 ms, 1 %, 1 Mbit/s", leaving out absent fields', () => {
    assert.equal(impairmentLabel({ latency_ms: 25, jitter_ms: 5, drop_pct: 1, bandwidth_bps: 1_000_000 }), '25 ms ±5 ms, 1 %, 1 Mbit/s');
    assert.equal(impairmentLabel({ drop_pct: 0.25 }), '0.25 %');
    assert.equal(impairmentLabel({ latency_ms: 20, bandwidth_bps: 64_000 }), '20 ms, 64 kbit/s');
  });

  it('makes distinct names distinct safe ids', () => {
    assert.equal(nodeId('a'), 'n_a');
    assert.equal(bridgeId('lan'), 'b_lan');
    const names = ['web-1', 'web_1', 'web1', 'web-1-', 'wéb', 'a b'];
    const ids = names.map((n) => safeId('n_', n));
    assert.equal(new Set(ids).size, names.length);
    for (const id of ids) assert.match(id, SAFE_ID);
  });

  it('escapes label text for Mermaid and DOT', () => {
    assert.equal(escapeMermaid('a "b" <c> #d | e & f'), 'a #34;b#34; #60;c#62; #35;d #124; e #38; f');
    assert.equal(escapeDot('a "b" \\ c\nd'), 'a \\"b\\" \\\\ c\\nd');
  });
});

describe('graph: Mermaid', () => {
  for (const [name, t] of [['full.yaml', full], ['basic.yaml', basic]] as const) {
    it(`${name}: every bridge, node, attachment, partition, impairment, uplink and route is drawn`, () => {
      const doc = parseMermaid(renderMermaid(t));
      const labels = doc.edges.map((e) => ({ from: e.from, to: e.to, text: e.label }));
      const ids = new Map([...doc.ids].map(([k, v]) => [k, v.replace(/<br\/>/g, '\n').replace(/#(\d+);/g, (_, c: string) => String.fromCodePoint(Number(c)))]));
      assertComplete(t, ids, labels.map((l) => ({ ...l, text: l.text.replace(/#(\d+);/g, (_, c: string) => String.fromCodePoint(Number(c))) })));
    });
  }

  it('full.yaml: edge kinds (cut, one-way, impairment, link down, routed) and marks', () => {
    const text = renderMermaid(full);
    assert.ok(text.includes('  n_a x--x|"partition"| n_b\n'), text);
    assert.ok(text.includes('  n_a --x|"partition (one-way)"| n_c\n'), text);
    assert.ok(text.includes('  n_a ==>|"25 ms ±5 ms, 1 %, 1 Mbit/s"| n_b\n'), text);
    assert.ok(text.includes(`  n_c -.-|"eth0 ${ipOf(full, 'c', 'lan')}, link down, isolated"| b_lan\n`), text);
    assert.ok(text.includes('  b_data <-->|"routed"| b_lan\n'), text);
    assert.ok(text.includes('  b_lan ---|"NAT"| uplink_nat\n'), text);
    assert.ok(text.includes('whole bridge: 20 ms, 1 %, 10 Mbit/s'), text);
    assert.ok(text.includes('  uplink_nat(["uplink (NAT)'), text);
    assert.ok(text.includes('  n_v[["v<br/>qemu'), text);
    assert.ok(/^ {2}class n_c isolated$/m.test(text), 'isolated node not marked');
    assert.equal(text.match(/routed/g)?.length, 1, 'a symmetric route is drawn once');
  });

  it('basic.yaml: the one-way partition and the lossy, rate-limited pair', () => {
    const text = renderMermaid(basic);
    assert.ok(text.includes('  n_a --x|"partition (one-way)"| n_c\n'), text);
    assert.ok(text.includes('  n_a ==>|"5 %, 2 Mbit/s"| n_b\n'), text);
    assert.ok(text.includes(`  n_a ---|"eth0 ${ipOf(basic, 'a', 'data')}"| b_data\n`), text);
  });

  it('is deterministic, and independent of the order of nodes and bridges in the file', () => {
    assert.equal(renderMermaid(full), renderMermaid(loadTopology(repoDir('examples/full.yaml'))));
    const one = load(yaml`
      lab: ord
      nodes: { x: { kind: netns }, y: { kind: netns } }
      bridges:
        p: { subnet: 10.1.0.0/24, attach: [x, y] }
        q: { subnet: 10.2.0.0/24, attach: [y] }
    `);
    const two = load(yaml`
      lab: ord
      nodes: { y: { kind: netns }, x: { kind: netns } }
      bridges:
        q: { subnet: 10.2.0.0/24, attach: [y] }
        p: { subnet: 10.1.0.0/24, attach: [x, y] }
    `);
    assert.equal(renderMermaid(one), renderMermaid(two));
    assert.equal(renderDot(one), renderDot(two));
  });

  it('partition_all, isolation, dashed names, bridges without subnet, nodes without NIC, pairs on two bridges', () => {
    const t = load(yaml`
      lab: edge
      nodes:
        web-1: { kind: netns }
        db-1: { kind: netns }
        lone: { kind: netns }
      bridges:
        front:
          attach: [web-1, db-1]
          partition_all: true
          isolate: [db-1]
        back:
          subnet: 10.9.0.0/24
          attach: [web-1, db-1]
          partitions: [[web-1, db-1]]
          impairments:
            - { from: db-1, to: web-1, latency_ms: 5 }
    `);
    const text = renderMermaid(t);
    const doc = parseMermaid(text);
    assertComplete(t, doc.ids, doc.edges.map((e) => ({ from: e.from, to: e.to, text: e.label })));
    assert.ok(doc.ids.get(bridgeId('front'))!.includes('partition_all: every pair cut'), text);
    assert.ok(doc.ids.get(nodeId('db-1'))!.includes('isolated on front'), text);
    assert.ok(doc.ids.get(nodeId('lone'))!.includes('no NIC'), text);
    assert.ok(text.includes(`${nodeId('web-1')} x--x|"partition on back"| ${nodeId('db-1')}`), text);
    assert.ok(text.includes(`${nodeId('db-1')} ==>|"5 ms on back"| ${nodeId('web-1')}`), text);
    parseDot(renderDot(t));
  });

  it('every example file gives a well-formed picture in both formats', () => {
    assert.ok(exampleFiles.length >= 2);
    for (const f of exampleFiles) {
      const t = loadTopology(f);
      const m = parseMermaid(renderMermaid(t));
      assertComplete(t, m.ids, m.edges.map((e) => ({ from: e.from, to: e.to, text: e.label })));
      parseDot(renderDot(t));
    }
  });

  it('README shows the current picture of examples/basic.yaml', () => {
    const readme = readFileSync(repoDir('README.md'), 'utf8');
    const block = /```mermaid\n([\s\S]*?)```/.exec(readme);
    assert.ok(block, 'README has no ```mermaid block');
    assert.equal(block[1], renderMermaid(basic), 'regenerate it with: node bin/provium graph examples/basic.yaml');
    assert.ok(readme.includes('provium graph examples/basic.yaml'), 'README names the command that made the picture');
  });
});

describe('graph: DOT', () => {
  for (const [name, t] of [['full.yaml', full], ['basic.yaml', basic]] as const) {
    it(`${name}: every bridge, node, attachment, partition, impairment, uplink and route is drawn`, () => {
      const doc = parseDot(renderDot(t));
      const ids = new Map([...doc.ids].map(([k, v]) => [k, dotLabel(v)]));
      assertComplete(t, ids, doc.edges.map((e) => ({ from: e.from, to: e.to, text: dotLabel(e.attrs) })));
    });
  }

  it('full.yaml: directions and styles', () => {
    const doc = parseDot(renderDot(full));
    const edge = (from: string, to: string, label: string) => doc.edges.find((e) => e.from === from && e.to === to && dotLabel(e.attrs) === label);
    assert.match(edge('n_a', 'n_b', 'partition')!.attrs, /dir=both, arrowhead=tee, arrowtail=tee/);
    assert.match(edge('n_a', 'n_c', 'partition (one-way)')!.attrs, /dir=forward/);
    assert.match(edge('n_a', 'n_b', '25 ms ±5 ms, 1 %, 1 Mbit/s')!.attrs, /dir=forward/);
    assert.match(edge('n_c', 'b_lan', `eth0 ${ipOf(full, 'c', 'lan')}, link down, isolated`)!.attrs, /style=dotted/);
    assert.equal(renderDot(full), renderDot(loadTopology(repoDir('examples/full.yaml'))));
  });

  const dot = spawnSync('dot', ['-V'], { encoding: 'utf8' });
  const noDot = dot.error ? 'graphviz `dot` is not installed (apt-get install graphviz to run this check)' : false;
  if (noDot) process.stdout.write(`# skipping Graphviz validation: ${noDot}\n`);
  it('Graphviz accepts the DOT of every example (dot -Tsvg)', { skip: noDot }, () => {
    for (const f of exampleFiles) {
      const r = spawnSync('dot', ['-Tsvg'], { input: renderDot(loadTopology(f)), encoding: 'utf8' });
      assert.equal(r.status, 0, `${f}: dot failed:\n${r.stderr}`);
      assert.equal(r.stderr, '', `${f}: dot warned:\n${r.stderr}`);
      assert.ok(r.stdout.includes('<svg'), `${f}: no SVG`);
    }
  });
});

describe('graph: the command', () => {
  const bin = repoDir('bin/provium');
  const run = (args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });

  it('prints Mermaid by default and DOT with --format dot, from the file alone', () => {
    const m = run(['graph', repoDir('examples/basic.yaml')]);
    assert.equal(m.status, 0, m.stderr);
    assert.equal(m.stdout, renderMermaid(basic));
    const d = run(['graph', '--format', 'dot', repoDir('examples/full.yaml')]);
    assert.equal(d.status, 0, d.stderr);
    assert.equal(d.stdout, renderDot(full));
  });

  it('exits 1 on an unknown format and on a broken file', () => {
    const f = run(['graph', '--format', 'svg', repoDir('examples/basic.yaml')]);
    assert.equal(f.status, 1);
    assert.match(f.stderr, /unknown format "svg"/);
    const b = run(['graph', repoDir('test/invalid/attach-unknown-node.yaml')]);
    assert.equal(b.status, 1);
    assert.match(b.stderr, /attach-unknown-node\.yaml:\d+:\d+: error/);
  });
});
