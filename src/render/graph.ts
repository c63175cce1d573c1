/**
 * A topology as a picture: Mermaid flowchart (renders on GitHub) or Graphviz DOT.
 * Pure: reads the loaded Topology only (no host access), writes a string; the
 * same topology always gives the same text (bridges, nodes and pairs sorted by name).
 *
 * What is drawn:
 * - bridges (label: name, subnet, host address, mtu, whole-bridge impairment,
 *   partition_all, isolated members) and lab nodes (label: name, kind);
 * - one edge per attachment (node NIC -> bridge) labelled "eth0 10.40.0.2/24";
 *   `link: down` is a dotted grey edge labelled "link down"; an isolated member's
 *   edge says "isolated" and the node is outlined in red;
 * - partitions as red cut edges between the two nodes: symmetric `a x--x b`
 *   labelled "partition", directional `from --x to` labelled "partition (one-way)";
 * - per-pair impairments as thick orange arrows from -> to labelled
 *   "25 ms ±5 ms, 1 %, 1 Mbit/s";
 * - one "uplink (NAT)" node connected to every bridge with `uplink: true`;
 * - routes between bridges as edges labelled "routed" (once per pair: routes are symmetric).
 * When two nodes share more than one bridge, pair edges name the bridge ("partition on lan").
 */
import type { AttachSpec, BridgeSpec, ImpairmentSpec, NodeSpec, Topology } from '../model/topology.js';

/** Graph id of the shared uplink node. */
export const UPLINK_ID = 'uplink_nat';

/**
 * A graph-safe identifier: `prefix` then the name with every character outside
 * [A-Za-z0-9] written as `_HH_` (its code in hex), so distinct names give distinct
 * ids and ids are valid in both Mermaid and DOT (e.g. "web-1" -> "n_web_2d_1").
 */
export function safeId(prefix: string, name: string): string {
  return prefix + name.replace(/[^A-Za-z0-9]/g, (ch) => `_${ch.codePointAt(0)!.toString(16)}_`);
}

/** Graph id of a lab node ("n_a"). */
export const nodeId = (name: string): string => safeId('n_', name);
/** Graph id of a bridge ("b_lan"). */
export const bridgeId = (name: string): string => safeId('b_', name);

/** A number without float noise: at most 3 decimals, trailing zeros dropped (1.5, 0.25, 10). */
function num(n: number): string {
  return String(Number(n.toFixed(3)));
}

/** Bits per second in human form: "1 Mbit/s", "1.5 Mbit/s", "64 kbit/s", "500 bit/s" (Mbit/s above 1 Mbit/s, never Gbit/s). */
export function formatBandwidth(bps: number): string {
  if (bps >= 1_000_000) return `${num(bps / 1_000_000)} Mbit/s`;
  if (bps >= 1_000) return `${num(bps / 1_000)} kbit/s`;
  return `${num(bps)} bit/s`;
}

/**
 * An impairment's values, e.g. "25 ms ±5 ms, 1 %, 1 Mbit/s": latency and jitter
 * (one-way ms), drop (percent), bandwidth; absent fields are left out.
 */
export function impairmentLabel(i: ImpairmentSpec): string {
  const delay = [i.latency_ms !== undefined ? `${num(i.latency_ms)} ms` : '', i.jitter_ms !== undefined ? `±${num(i.jitter_ms)} ms` : ''].filter(Boolean).join(' ');
  const parts = [delay, i.drop_pct !== undefined ? `${num(i.drop_pct)} %` : '', i.bandwidth_bps !== undefined ? formatBandwidth(i.bandwidth_bps) : ''].filter(Boolean);
  return parts.length ? parts.join(', ') : 'no impairment';
}

/**
 * Escapes text for a double-quoted Mermaid label: the characters Mermaid would
 * parse (`#`, `"`, `<`, `>`, `|`, `&`) become its numeric entity codes (`#34;`),
 * line breaks become spaces (callers join lines with `<br/>`).
 */
export function escapeMermaid(text: string): string {
  return text.replace(/[#"<>|&]/g, (ch) => `#${ch.codePointAt(0)};`).replace(/[\r\n]+/g, ' ');
}

/** Escapes text for a double-quoted DOT string (backslash, quote; newlines become DOT line breaks). */
export function escapeDot(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\r?\n/g, '\\n');
}

/** One picture element, independent of the output syntax. */
type EdgeKind = 'attach' | 'down' | 'partition' | 'oneway' | 'impair' | 'uplink' | 'routed';
interface Vertex {
  id: string;
  shape: 'bridge' | 'netns' | 'qemu' | 'uplink';
  lines: string[];
  isolated?: boolean;
}
interface Edge {
  from: string;
  to: string;
  kind: EdgeKind;
  label: string;
}
interface Picture {
  lab: string;
  vertices: Vertex[];
  edges: Edge[];
}

const byName = <T extends { name: string }>(xs: T[]): T[] => [...xs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

/** Lines of a bridge's label: name, subnet, host address, mtu, whole-bridge settings. */
function bridgeLines(b: BridgeSpec): string[] {
  const lines = [`bridge ${b.name}`];
  if (b.subnet) lines.push(b.subnet);
  if (b.hostAddr) lines.push(`host ${b.hostAddr}`);
  if (b.gateway) lines.push(`gateway ${b.gateway} ${b.gatewayAddr ?? ''}`.trim());
  if (b.mtu !== undefined) lines.push(`mtu ${b.mtu}`);
  for (const i of b.impairments) if (i.from === undefined && i.to === undefined) lines.push(`whole bridge: ${impairmentLabel(i)}`);
  if (b.partitionAll) lines.push('partition_all: every pair cut');
  if (b.isolate.length) lines.push(`isolated: ${[...b.isolate].sort().join(', ')}`);
  return lines;
}

/** Label of an attachment edge: "eth1 10.40.0.2/24", plus "link down" / "isolated". */
function attachLabel(a: AttachSpec, b: BridgeSpec): string {
  const parts = [[a.nic, a.ip].filter(Boolean).join(' ')];
  if (a.link === 'down') parts.push('link down');
  if (b.isolate.includes(a.node)) parts.push('isolated');
  return parts.join(', ');
}

/** The topology as vertices and edges, sorted (the one place that decides what is drawn). */
function picture(t: Topology): Picture {
  const bridges = byName(Object.values(t.bridges));
  const nodes = byName(Object.values(t.nodes));
  // Bridges each node is on, to tell pair edges apart when two nodes share more than one.
  const bridgesOf = new Map<string, Set<string>>();
  for (const b of bridges) for (const a of b.attach) (bridgesOf.get(a.node) ?? bridgesOf.set(a.node, new Set()).get(a.node)!).add(b.name);
  const shared = (x: string, y: string): number => [...(bridgesOf.get(x) ?? [])].filter((b) => bridgesOf.get(y)?.has(b)).length;
  const on = (label: string, x: string, y: string, b: BridgeSpec): string => (shared(x, y) > 1 ? `${label} on ${b.name}` : label);

  const isolatedOn = new Map<string, string[]>();
  for (const b of bridges) for (const n of b.isolate) (isolatedOn.get(n) ?? isolatedOn.set(n, []).get(n)!).push(b.name);

  const vertices: Vertex[] = [];
  for (const b of bridges) vertices.push({ id: bridgeId(b.name), shape: 'bridge', lines: bridgeLines(b) });
  for (const n of nodes) vertices.push(nodeVertex(n, isolatedOn.get(n.name), bridgesOf.has(n.name)));
  if (bridges.some((b) => b.uplink)) vertices.push({ id: UPLINK_ID, shape: 'uplink', lines: ['uplink (NAT)', 'host default route'] });

  const edges: Edge[] = [];
  for (const b of bridges) {
    for (const a of [...b.attach].sort((x, y) => (x.node < y.node ? -1 : x.node > y.node ? 1 : 0))) {
      edges.push({ from: nodeId(a.node), to: bridgeId(b.name), kind: a.link === 'down' ? 'down' : 'attach', label: attachLabel(a, b) });
    }
  }
  for (const b of bridges) {
    for (const p of b.partitions) {
      const kind = p.kind === 'symmetric' ? 'partition' : 'oneway';
      edges.push({ from: nodeId(p.a), to: nodeId(p.b), kind, label: on(kind === 'partition' ? 'partition' : 'partition (one-way)', p.a, p.b, b) });
    }
    for (const i of b.impairments) {
      if (i.from === undefined || i.to === undefined) continue;
      edges.push({ from: nodeId(i.from), to: nodeId(i.to), kind: 'impair', label: on(impairmentLabel(i), i.from, i.to, b) });
    }
  }
  for (const b of bridges) if (b.uplink) edges.push({ from: bridgeId(b.name), to: UPLINK_ID, kind: 'uplink', label: 'NAT' });
  for (const b of bridges) {
    for (const r of [...b.routes].sort()) if (b.name < r || !t.bridges[r]?.routes.includes(b.name)) edges.push({ from: bridgeId(b.name), to: bridgeId(r), kind: 'routed', label: 'routed' });
  }
  return { lab: t.lab, vertices, edges };
}

function nodeVertex(n: NodeSpec, isolatedOn: string[] | undefined, attached: boolean): Vertex {
  const lines = [n.name, n.kind === 'qemu' && n.qemu ? `qemu, ${n.qemu.memory_mb} MiB` : n.kind];
  if (n.router) {
    const nat = n.router.nat;
    lines.push(nat ? `NAT ${nat.preset ?? `${nat.mapping} / ${nat.filtering}`}` : 'no NAT');
    if (n.router.firewall) lines.push(`firewall ${n.router.firewall.preset ?? 'allow list'}`);
  }
  if (isolatedOn) lines.push(`isolated on ${isolatedOn.join(', ')}`);
  if (!attached) lines.push('no NIC');
  return { id: nodeId(n.name), shape: n.kind === 'qemu' ? 'qemu' : 'netns', lines, isolated: isolatedOn !== undefined };
}

const MERMAID_SHAPE: Record<Vertex['shape'], [string, string]> = {
  bridge: ['{{', '}}'],
  netns: ['(', ')'],
  qemu: ['[[', ']]'],
  uplink: ['([', '])'],
};

const MERMAID_ARROW: Record<EdgeKind, string> = {
  attach: '---',
  down: '-.-',
  partition: 'x--x',
  oneway: '--x',
  impair: '==>',
  uplink: '---',
  routed: '<-->',
};

const MERMAID_LINK_STYLE: Partial<Record<EdgeKind, string>> = {
  down: 'stroke:#888,color:#888',
  partition: 'stroke:#d00,stroke-width:2px,color:#d00',
  oneway: 'stroke:#d00,stroke-width:2px,color:#d00',
  impair: 'stroke:#e80,color:#b60',
  routed: 'stroke:#36c,color:#36c',
};

/**
 * The topology as a Mermaid flowchart (`flowchart LR`), valid syntax that GitHub
 * renders: node ids are safe identifiers (n_NODE, b_BRIDGE, uplink_nat), every
 * label is double-quoted and escaped, line breaks are `<br/>`. Edge styles are set
 * with `linkStyle` by edge index (red partitions, orange impairments, grey link down).
 */
export function renderMermaid(t: Topology): string {
  const p = picture(t);
  const out = ['flowchart LR', `  %% provium lab ${p.lab.replace(/[\r\n]/g, ' ')}: made by provium graph`];
  for (const v of p.vertices) {
    const [open, close] = MERMAID_SHAPE[v.shape];
    out.push(`  ${v.id}${open}"${v.lines.map(escapeMermaid).join('<br/>')}"${close}`);
  }
  p.edges.forEach((e) => out.push(`  ${e.from} ${MERMAID_ARROW[e.kind]}|"${escapeMermaid(e.label)}"| ${e.to}`));
  // One linkStyle line per style (partitions of both kinds share one), by edge index.
  for (const style of [...new Set(Object.values(MERMAID_LINK_STYLE))]) {
    const idx = p.edges.flatMap((e, i) => (MERMAID_LINK_STYLE[e.kind] === style ? [i] : []));
    if (idx.length) out.push(`  linkStyle ${idx.join(',')} ${style}`);
  }
  const cls = (shape: Vertex['shape']) => p.vertices.filter((v) => v.shape === shape).map((v) => v.id);
  const classes: [string, string, string[]][] = [
    ['bridge', 'fill:#e8f0fe,stroke:#36c', cls('bridge')],
    ['qemu', 'fill:#f3e8fd,stroke:#84c', cls('qemu')],
    ['uplink', 'fill:#e6f4ea,stroke:#393', cls('uplink')],
    ['isolated', 'stroke:#d00,stroke-width:2px,stroke-dasharray:4 3', p.vertices.filter((v) => v.isolated).map((v) => v.id)],
  ];
  for (const [name, style, ids] of classes) {
    if (!ids.length) continue;
    out.push(`  classDef ${name} ${style}`);
    out.push(`  class ${ids.join(',')} ${name}`);
  }
  return out.join('\n') + '\n';
}

const DOT_SHAPE: Record<Vertex['shape'], string> = {
  bridge: 'shape=box, style=filled, fillcolor="#e8f0fe", color="#3366cc", penwidth=2',
  netns: 'shape=box, style=rounded',
  qemu: 'shape=box3d, style=filled, fillcolor="#f3e8fd", color="#8844cc"',
  uplink: 'shape=ellipse, style=filled, fillcolor="#e6f4ea", color="#339933"',
};

const DOT_EDGE: Record<EdgeKind, string> = {
  attach: '',
  down: 'style=dotted, color="#888888", fontcolor="#888888"',
  partition: 'dir=both, arrowhead=tee, arrowtail=tee, color="#dd0000", fontcolor="#dd0000", penwidth=2',
  oneway: 'dir=forward, arrowhead=tee, color="#dd0000", fontcolor="#dd0000", penwidth=2, style=dashed',
  impair: 'dir=forward, color="#ee8800", fontcolor="#bb6600", penwidth=2',
  uplink: '',
  routed: 'dir=both, color="#3366cc", fontcolor="#3366cc"',
};

/**
 * The topology as a Graphviz `digraph` (left to right; `dot -Tsvg` renders it).
 * Undirected relations (attachments, uplink) are edges with `dir=none`; directed
 * ones (one-way partitions, pair impairments) are arrows from -> to. Strings are
 * double-quoted and escaped; ids are the same safe identifiers as in Mermaid.
 */
export function renderDot(t: Topology): string {
  const p = picture(t);
  const q = (s: string) => `"${escapeDot(s)}"`;
  const out = [
    `digraph ${q(`provium_${p.lab}`)} {`,
    `  graph [rankdir=LR, label=${q(`provium lab ${p.lab}`)}, labelloc=t, fontname="Helvetica"];`,
    '  node [fontname="Helvetica"];',
    '  edge [fontname="Helvetica", fontsize=10, dir=none];',
  ];
  for (const v of p.vertices) {
    const iso = v.isolated ? ', color="#dd0000", penwidth=2, style="rounded,dashed"' : '';
    out.push(`  ${v.id} [${DOT_SHAPE[v.shape]}${iso}, label=${q(v.lines.join('\n'))}];`);
  }
  for (const e of p.edges) {
    const attrs = [DOT_EDGE[e.kind], `label=${q(e.label)}`].filter(Boolean).join(', ');
    out.push(`  ${e.from} -> ${e.to} [${attrs}];`);
  }
  out.push('}');
  return out.join('\n') + '\n';
}
