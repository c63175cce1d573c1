/**
 * Generated benchmark labs: N netns nodes spread over 4 bridges (each a /22), some
 * nodes on two bridges, hundreds of partitions (symmetric and directional), per-pair
 * impairments (drop_pct and/or bandwidth_bps), a whole-bridge drop on one bridge and
 * routes between two bridges. Deterministic for a given seed.
 */

export type Partition = { sym: [string, string] } | { from: string; to: string };

export interface Impairment {
  from?: string;
  to?: string;
  drop_pct?: number;
  bandwidth_bps?: number;
}

export interface BridgeDef {
  name: string;
  /** IPv4 network, e.g. 10.77.0.0/22. */
  subnet: string;
  /** Attached nodes in attach order. */
  attach: string[];
  partitions: Partition[];
  impairments: Impairment[];
  /** Bridges this one routes to (as written in the file; routing is symmetric). */
  routes: string[];
}

export interface LabSpec {
  lab: string;
  nodes: string[];
  bridges: BridgeDef[];
}

export interface GenOptions {
  nodes: number;
  partitions: number;
  impairments: number;
  seed: number;
}

/** mulberry32: a small deterministic PRNG; returns numbers in [0, 1), the same sequence for the same seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffle<T>(xs: T[], rnd: () => number): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

export const BRIDGES = 4;

export function generateLab(lab: string, o: GenOptions): LabSpec {
  const rnd = prng(o.seed);
  const nodes = Array.from({ length: o.nodes }, (_, i) => `n${i}`);
  const bridges: BridgeDef[] = Array.from({ length: BRIDGES }, (_, k) => ({
    name: `lan${k}`,
    subnet: `10.77.${k * 4}.0/22`,
    attach: [],
    partitions: [],
    impairments: [],
    routes: [],
  }));
  // Node i sits on bridge floor(4i/N); every tenth node (i % 10 == 5) also on the next bridge.
  nodes.forEach((n, i) => {
    const k = Math.floor((i * BRIDGES) / o.nodes);
    const second = i % 10 === 5 ? (k + 1) % BRIDGES : -1;
    for (let b = 0; b < BRIDGES; b++) if (b === k || b === second) bridges[b].attach.push(n);
  });
  // Re-sort every attach list by node index (second-bridge members were appended in index order already).
  for (const b of bridges) b.attach.sort((x, y) => Number(x.slice(1)) - Number(y.slice(1)));

  // Partitions: distinct unordered pairs over all bridges, alternating symmetric / directional.
  const pairs: { b: BridgeDef; x: string; y: string }[] = [];
  for (const b of bridges) {
    for (let i = 0; i < b.attach.length; i++) for (let j = i + 1; j < b.attach.length; j++) pairs.push({ b, x: b.attach[i], y: b.attach[j] });
  }
  const chosen = shuffle(pairs, rnd).slice(0, o.partitions);
  chosen.forEach((p, i) => {
    if (i % 2 === 0) p.b.partitions.push({ sym: [p.x, p.y] });
    else if (rnd() < 0.5) p.b.partitions.push({ from: p.x, to: p.y });
    else p.b.partitions.push({ from: p.y, to: p.x });
  });

  // Per-pair impairments on distinct directed pairs: 1/3 drop+bandwidth, 1/3 drop only, 1/3 bandwidth only.
  const directed: { b: BridgeDef; x: string; y: string }[] = [];
  for (const b of bridges) for (const x of b.attach) for (const y of b.attach) if (x !== y) directed.push({ b, x, y });
  shuffle(directed, rnd)
    .slice(0, o.impairments)
    .forEach((p, i) => {
      const drop = Math.round((0.5 + rnd() * 24.5) * 2) / 2; // 0.5 .. 25, step 0.5
      const bw = (1 + Math.floor(rnd() * 100)) * 1_000_000; // 1 .. 100 Mbit/s
      const imp: Impairment = { from: p.x, to: p.y };
      if (i % 3 !== 2) imp.drop_pct = drop;
      if (i % 3 !== 1) imp.bandwidth_bps = bw;
      p.b.impairments.push(imp);
    });
  // Whole-bridge drop on the last bridge; routes between the first two.
  bridges[BRIDGES - 1].impairments.unshift({ drop_pct: 1 });
  bridges[0].routes.push(bridges[1].name);
  return { lab, nodes, bridges };
}

/**
 * The lab Mininet's `--topo single,N` builds: N hosts h1..hN on one bridge (a /22,
 * addresses allocated), nothing else. Used for the like-for-like Mininet rows.
 */
export function plainLab(lab: string, n: number): LabSpec {
  const nodes = Array.from({ length: n }, (_, i) => `h${i + 1}`);
  return { lab, nodes, bridges: [{ name: 's1', subnet: '10.78.0.0/22', attach: [...nodes], partitions: [], impairments: [], routes: [] }] };
}

/** A copy of the lab under another name. */
export function renamed(s: LabSpec, lab: string): LabSpec {
  return { ...structuredClone(s), lab };
}

/**
 * A copy with exactly one field changed: the drop_pct of the first per-pair
 * impairment on the first bridge that has one (+1.5 percentage points).
 */
export function withOneDropChanged(s: LabSpec): { spec: LabSpec; what: string } {
  const c = structuredClone(s);
  for (const b of c.bridges) {
    const imp = b.impairments.find((i) => i.from && i.drop_pct !== undefined);
    if (imp) {
      const before = imp.drop_pct!;
      imp.drop_pct = before + 1.5;
      return { spec: c, what: `bridges.${b.name}.impairments[${imp.from}>${imp.to}].drop_pct ${before} -> ${imp.drop_pct}` };
    }
  }
  throw new Error('no per-pair drop_pct to change');
}

export function counts(s: LabSpec): { nodes: number; attachments: number; partitions: number; symmetric: number; impairments: number } {
  const parts = s.bridges.flatMap((b) => b.partitions);
  return {
    nodes: s.nodes.length,
    attachments: s.bridges.reduce((a, b) => a + b.attach.length, 0),
    partitions: parts.length,
    symmetric: parts.filter((p) => 'sym' in p).length,
    impairments: s.bridges.reduce((a, b) => a + b.impairments.filter((i) => i.from).length, 0),
  };
}

/** The topology file provium reads. */
export function toYaml(s: LabSpec): string {
  const out: string[] = [`# generated by provium bench/topology.ts`, `lab: ${s.lab}`, 'nodes:'];
  for (const n of s.nodes) out.push(`  ${n}: { kind: netns }`);
  out.push('bridges:');
  for (const b of s.bridges) {
    out.push(`  ${b.name}:`, `    subnet: ${b.subnet}`, `    attach: [${b.attach.join(', ')}]`);
    if (b.partitions.length) {
      out.push('    partitions:');
      for (const p of b.partitions) out.push('sym' in p ? `      - [${p.sym[0]}, ${p.sym[1]}]` : `      - { from: ${p.from}, to: ${p.to} }`);
    }
    if (b.impairments.length) {
      out.push('    impairments:');
      for (const i of b.impairments) {
        const f = Object.entries(i).map(([k, v]) => `${k}: ${v}`);
        out.push(`      - { ${f.join(', ')} }`);
      }
    }
    if (b.routes.length) out.push(`    routes: [${b.routes.join(', ')}]`);
  }
  return out.join('\n') + '\n';
}
