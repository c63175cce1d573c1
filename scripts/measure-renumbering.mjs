#!/usr/bin/env node
// How often does inserting a node into the middle of an attach list renumber another node?
// For N nodes on one bridge (a /24 and a /22), inserts one new node at a uniformly random
// position before the last node (never appending: appending never renumbers), loads both
// files with the real loader (dist/, so run `npm run build` first) and counts the
// insertions after which at least one of the N original nodes has another address.
// Names: random (n + 5 letters/digits), and sequential (node1..node(N+1) with one nodeK,
// K <= N, missing and then inserted at its place).
// Usage: node scripts/measure-renumbering.mjs [TRIALS=2000] [SEED=1]
import { loadTopology } from '../dist/src/load/index.js';
import { prng } from '../dist/bench/topology.js';

const trials = Number(process.argv[2] ?? 2000);
/** Seeded (mulberry32, the bench's generator): the same numbers on every run. */
const rnd = prng(Number(process.argv[3] ?? 1));
const randomName = () => 'n' + Array.from({ length: 5 }, () => 'abcdefghijklmnopqrstuvwxyz0123456789'[Math.floor(rnd() * 36)]).join('');

function addresses(subnet, attach) {
  const text = `lab: m\nnodes: { ${attach.map((n) => `${n}: { kind: netns }`).join(', ')} }\nbridges:\n  lan: { subnet: ${subnet}, attach: [${attach.join(', ')}] }\n`;
  return new Map(loadTopology('measure.yaml', text).bridges.lan.attach.map((a) => [a.node, a.ip]));
}

function measure(n, subnet, naming) {
  let renumbered = 0;
  let moved = 0;
  for (let t = 0; t < trials; t++) {
    let names;
    let extra;
    let at;
    if (naming === 'random') {
      const set = new Set();
      while (set.size < n + 1) set.add(randomName());
      names = [...set];
      extra = names.pop();
      at = Math.floor(rnd() * n); // before names[at]: 0..n-1, never after the last
    } else {
      // node1..node(N+1) without nodeK, K in 1..N; nodeK goes back to its place (before node(K+1)).
      const k = 1 + Math.floor(rnd() * n);
      names = Array.from({ length: n + 1 }, (_, i) => `node${i + 1}`).filter((x) => x !== `node${k}`);
      extra = `node${k}`;
      at = k - 1;
    }
    const before = addresses(subnet, names);
    const after = addresses(subnet, [...names.slice(0, at), extra, ...names.slice(at)]);
    const m = names.filter((x) => before.get(x) !== after.get(x)).length;
    if (m > 0) renumbered++;
    moved += m;
  }
  return { renumbered: renumbered / trials, movedPerInsertion: moved / trials };
}

console.log(`mid-list insertions renumbering >= 1 other node (${trials} trials each)`);
console.log('names       N   subnet   renumbered  mean nodes moved');
for (const naming of ['random', 'sequential']) {
  for (const subnet of ['10.9.0.0/24', '10.9.0.0/22']) {
    for (const n of [10, 50, 100]) {
      const r = measure(n, subnet, naming);
      console.log(`${naming.padEnd(10)} ${String(n).padStart(3)}  ${subnet.slice(subnet.indexOf('/')).padEnd(6)}  ${(100 * r.renumbered).toFixed(1).padStart(8)} %  ${r.movedPerInsertion.toFixed(3).padStart(8)}`);
    }
  }
}
