/**
 * Basics: a lab comes up and its nodes reach each other at the addresses the file
 * allocates (derived from each node's name, src/load/addresses.ts); a second apply and a plan right after apply find nothing to do; exec
 * runs commands inside a node.
 */
import assert from 'node:assert/strict';
import { labTest, addrsOf, ping, report } from './helpers.js';
import { nameHash } from '../../src/model/hash.js';

labTest('connectivity: 3 netns nodes on one bridge reach each other at the allocated addresses; apply is idempotent', async (lab, t) => {
  lab.write(`
    nodes: { a: { kind: netns }, b: { kind: netns }, c: { kind: netns } }
    bridges:
      lan:
        subnet: 10.40.0.0/24
        attach: [a, b, c]
  `);
  const first = await lab.apply();
  assert.ok(first.host_commands > 0, 'the first apply changes the host');

  // The loader's addresses are the documented rule: .2 + FNV-1a(name) mod 253 (the pool of a
  // /24 without network, host .1 and broadcast); a, b and c do not collide, so no probing.
  const ip = lab.ips('lan') as Record<'a' | 'b' | 'c', string>;
  for (const n of ['a', 'b', 'c'] as const) assert.equal(ip[n], `10.40.0.${2 + (nameHash(n) % 253)}`, `allocated address of ${n}`);
  for (const [n, a] of Object.entries(ip)) assert.deepEqual(await addrsOf(lab.ns(n), 'eth0'), [`${a}/24`], `address of ${n}`);

  for (const from of ['a', 'b', 'c'] as const) {
    for (const to of ['a', 'b', 'c'] as const) {
      if (from === to) continue;
      const p = await ping(lab.ns(from), ip[to], 3, 0.1);
      assert.equal(p.received, 3, `ping ${from} -> ${to} (${ip[to]}): ${p.received}/3`);
    }
  }
  // The bridge's host side answers too.
  assert.equal((await ping(lab.ns('a'), '10.40.0.1', 2, 0.1)).received, 2, 'ping a -> host side 10.40.0.1');

  const plan = await lab.planCode();
  assert.equal(plan.code, 0, `plan --detailed-exitcode right after apply exits 0 (no changes); got ${plan.code}:\n${plan.stdout}${plan.stderr}`);

  const second = await lab.apply();
  assert.equal(second.host_commands, 0, 'a second apply runs no changing host command');
  assert.equal(second.changes.length, 0, 'a second apply has no changes');
  report(t, `first apply: ${first.host_commands} host command invocations; second apply: ${second.host_commands}`);
});

labTest('exec: runs a command inside a node; an unknown node exits 1', async (lab) => {
  lab.write(`
    nodes: { a: { kind: netns }, b: { kind: netns } }
    bridges:
      lan: { subnet: 10.42.0.0/24, attach: [a, b] }
  `);
  await lab.apply();
  const a = lab.ip('a', 'lan');
  const r = await lab.provium(['exec', lab.file, 'a', '--', 'ip', '-j', 'addr', 'show', 'eth0'], { file: false });
  assert.equal(r.code, 0, `exec exits 0: ${r.stderr}`);
  const j = JSON.parse(r.stdout) as { ifname: string; addr_info: { family: string; local: string; prefixlen: number }[] }[];
  assert.equal(j[0]?.ifname, 'eth0');
  assert.deepEqual(
    j[0].addr_info.filter((x) => x.family === 'inet').map((x) => `${x.local}/${x.prefixlen}`),
    [`${a}/24`],
    "exec prints a's address",
  );

  // The command really runs in b's namespace, and its exit code is passed through.
  const b = await lab.provium(['exec', lab.file, 'b', '--', 'ping', '-c', '1', '-W', '2', a], { file: false });
  assert.equal(b.code, 0, `exec b -- ping a exits 0: ${b.stdout}${b.stderr}`);
  assert.match(b.stdout, /1 received/, 'b reaches a');
  const f = await lab.provium(['exec', lab.file, 'b', '--', 'sh', '-c', 'exit 3'], { file: false });
  assert.equal(f.code, 3, `the command's exit code (3) is passed through; got ${f.code}`);

  const u = await lab.provium(['exec', lab.file, 'nosuch', '--', 'true'], { file: false });
  assert.equal(u.code, 1, `exec for an unknown node exits 1; got ${u.code}`);
  assert.match(u.stderr, /nosuch/, 'the error names the unknown node');
});
