/**
 * Reconciliation: a one-field change touches exactly one thing, hand-made drift is
 * detected and repaired, objects provium does not own are never touched, the lab lock
 * works, and apply-then-destroy leaves the host exactly as it was.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { hostname } from 'node:os';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  labTest, must, udpCount, udpProbe, iperf, ping, report, mbit, isReadOnly, listNetns, snapshotDir, ensureDir, makeUpstream, type Lab,
} from './helpers.js';
import { nicMac } from '../../src/model/names.js';

/** JSON printed by ip, tc and nft, read loosely. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

/** Identity of every qdisc (dev kind handle parent) and the class lines of every HTB device in the lab's host namespace. */
async function tcSnapshot(lab: Lab): Promise<{ qdiscs: string[]; classes: Record<string, string> }> {
  const q = JSON.parse((await must(['tc', '-n', lab.hostNs, '-j', 'qdisc', 'show'])).stdout) as Json[];
  const qdiscs = q.map((x) => `${x.dev} ${x.kind} ${x.handle} ${x.root ? 'root' : x.parent}`).sort();
  const classes: Record<string, string> = {};
  for (const dev of [...new Set(q.filter((x) => x.kind === 'htb').map((x) => x.dev as string))]) {
    classes[dev] = (await must(['tc', '-n', lab.hostNs, 'class', 'show', 'dev', dev])).stdout.split('\n').filter((l) => l.trim()).sort().join('\n');
  }
  return { qdiscs, classes };
}

async function nftRuleset(lab: Lab): Promise<Json[]> {
  return (JSON.parse((await must(['ip', 'netns', 'exec', lab.hostNs, 'nft', '-j', 'list', 'ruleset'])).stdout) as { nftables: Json[] }).nftables;
}

/** Handles of every nft object (tables, sets, maps, chains, rules) by identity. */
function nftHandles(rs: Json[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const o of rs) {
    const [kind, v] = Object.entries(o)[0] as [string, Json];
    if (kind === 'metainfo') continue;
    const id = kind === 'rule' ? `${v.family} ${v.table} ${v.chain} rule ${v.comment ?? JSON.stringify(v.expr)}` : `${kind} ${v.family} ${v.table ?? ''} ${v.name}`;
    out[id] = v.handle;
  }
  return out;
}

/** Elements of every set/map, by set: each element as canonical JSON, sorted (nft lists them in no fixed order). */
function nftElems(rs: Json[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const o of rs) {
    const v = o.set ?? o.map;
    if (v) out[`${v.family} ${v.name}`] = ((v.elem ?? []) as Json[]).map((e) => JSON.stringify(e)).sort();
  }
  return out;
}

/** ifindex of every link in the host namespace, by name. */
async function ifindexes(lab: Lab): Promise<Record<string, number>> {
  const l = JSON.parse((await must(['ip', '-n', lab.hostNs, '-j', 'link', 'show'])).stdout) as Json[];
  return Object.fromEntries(l.map((x) => [x.ifname, x.ifindex]));
}

labTest('one-field change: changing one pair drop_pct is one change, at most 2 host commands, and nothing else is touched', async (lab, t) => {
  const file = (pct: number) => `
    nodes: { a: { kind: netns }, b: { kind: netns }, c: { kind: netns } }
    bridges:
      lan:
        subnet: 10.80.0.0/24
        attach: [a, b, c]
        partitions: [{ from: c, to: a }]
        isolate: []
        impairments:
          - { drop_pct: 1 }
          - { from: a, to: b, drop_pct: ${pct}, bandwidth_bps: 20000000 }
          - { from: b, to: c, bandwidth_bps: 30000000 }
        routes: [data]
      data: { subnet: 10.81.0.0/24, attach: [a] }
  `;
  lab.write(file(5));
  await lab.apply();
  const tc0 = await tcSnapshot(lab);
  const rs0 = await nftRuleset(lab);
  const if0 = await ifindexes(lab);

  lab.write(file(15));
  const plan = await lab.planJson();
  report(t, `plan changes: ${JSON.stringify(plan.changes.map((c) => `${c.action} ${c.address}`))}; commands: ${JSON.stringify(plan.commands.map((c) => c.argv.join(' ')))}`);
  assert.equal(plan.changes.length, 1, `exactly one change: ${JSON.stringify(plan.changes.map((c) => c.address))}`);
  assert.equal(plan.changes[0].address, 'bridge.lan.impairment[a>b]');

  lab.clearTrace();
  const r = await lab.apply();
  const writes = lab.trace().filter((l) => !isReadOnly(l));
  report(t, `apply: host_commands ${r.host_commands}; changing invocations traced: ${writes.length} (${writes.map((w) => w.argv.join(' ')).join('; ')})`);
  assert.ok(r.host_commands >= 1 && r.host_commands <= 2, `apply ran ${r.host_commands} host command invocations (<= 2)`);
  assert.ok(writes.length >= 1 && writes.length <= 2, `traced changing invocations: ${writes.length} (<= 2)`);

  const tc1 = await tcSnapshot(lab);
  const rs1 = await nftRuleset(lab);
  assert.deepEqual(tc1, tc0, 'tc qdiscs and classes unchanged');
  assert.deepEqual(nftHandles(rs1), nftHandles(rs0), 'nft table/set/chain/rule handles unchanged');
  const e0 = nftElems(rs0);
  const e1 = nftElems(rs1);
  for (const k of Object.keys({ ...e0, ...e1 })) if (k !== 'bridge loss') assert.deepEqual(e1[k], e0[k], `elements of ${k} unchanged`);
  // A pair element is the sender's NIC MAC (a on lan) and the receiver's port (b's).
  const ab = `"concat":${JSON.stringify([nicMac(lab.name, 'a', 'lan'), lab.port('b')])}`.slice(0, -1);
  const isAb = (e: string) => e.includes(ab);
  assert.deepEqual(e1['bridge loss'].filter((e) => !isAb(e)), e0['bridge loss'].filter((e) => !isAb(e)), 'the other loss elements are unchanged');
  const ab0 = e0['bridge loss'].filter(isAb);
  const ab1 = e1['bridge loss'].filter(isAb);
  report(t, `a->b loss element before ${ab0.join(' ')} after ${ab1.join(' ')}`);
  assert.equal(ab0.length, 1, 'one a->b loss element before');
  assert.equal(ab1.length, 1, 'one a->b loss element after');
  assert.notEqual(ab1[0], ab0[0], 'the a->b loss element changed');
  assert.deepEqual(await ifindexes(lab), if0, 'no link was re-created');

  // And the new rate holds: a->b ~15 %, the whole-bridge 1 % elsewhere.
  const n = 2000;
  const got = await udpProbe(lab.ns('a'), lab.ns('b'), lab.ip('b', 'lan'), n, { burst: 20, gapMs: 1 });
  const lossAb = (100 * (n - got.received)) / n;
  report(t, `after the change: a->b loss ${lossAb.toFixed(2)} % (want 15 %)`);
  assert.ok(lossAb >= 10 && lossAb <= 20, `a->b loss ${lossAb} % within 10-20 %`);
});

labTest('drift: a port deleted and a class rate changed by hand are planned, repaired by apply, and traffic works again', async (lab, t) => {
  lab.write(`
    nodes: { a: { kind: netns }, b: { kind: netns }, c: { kind: netns } }
    bridges:
      lan:
        subnet: 10.82.0.0/24
        attach: [a, b, c]
        impairments:
          - { from: a, to: b, bandwidth_bps: 2000000 }
  `);
  const ip = lab.ips('lan');
  await lab.apply();
  assert.equal(await udpCount(lab.ns('a'), lab.ns('c'), ip.c), 20, 'a->c before the drift');

  // Drift 1: c's port is deleted (its peer eth0 in pv-<lab>-c goes with it).
  await must(['ip', '-n', lab.hostNs, 'link', 'del', lab.port('c')]);
  // Drift 2: the a->b class rate is changed to 6 Mbit/s.
  const bport = lab.port('b');
  const classes = (await must(['tc', '-n', lab.hostNs, 'class', 'show', 'dev', bport])).stdout;
  const m = /class htb (\w+):(\w+) parent (\w+:\w+) .*rate 2Mbit/.exec(classes);
  assert.ok(m, `a 2Mbit class on ${bport}:\n${classes}`);
  await must(['tc', '-n', lab.hostNs, 'class', 'change', 'dev', bport, 'parent', m[3], 'classid', `${m[1]}:${m[2]}`, 'htb', 'rate', '6mbit', 'ceil', '6mbit']);
  const drifted = await iperf(lab.ns('a'), lab.ns('b'), ip.b);
  assert.equal(await udpCount(lab.ns('a'), lab.ns('c'), ip.c), 0, 'a->c is broken by the drift');

  const p = await lab.planCode();
  assert.equal(p.code, 2, `plan --detailed-exitcode exits 2 on drift; got ${p.code}\n${p.stdout}${p.stderr}`);
  const pj = await lab.planJson();
  const addrs = pj.changes.map((c) => c.address);
  report(t, `drift plan: ${JSON.stringify(pj.changes.map((c) => `${c.action} ${c.address}`))}`);
  assert.ok(addrs.includes('bridge.lan.attach.c'), `the plan repairs c's attachment: ${addrs}`);
  assert.ok(addrs.some((a) => a.includes('impairment[a>b]')), `the plan repairs the a->b class: ${addrs}`);

  await lab.apply();
  // Measure everything first, so that one failure does not hide the others. a->c goes first:
  // any traffic from c to a (c's ARP request) would refresh a's neighbour entry for c.
  const neigh = (await must(['ip', '-n', lab.ns('a'), 'neigh', 'show', ip.c])).stdout.trim();
  const ac = await udpCount(lab.ns('a'), lab.ns('c'), ip.c);
  const ca = await udpCount(lab.ns('c'), lab.ns('a'), ip.a);
  const bc = await udpCount(lab.ns('b'), lab.ns('c'), ip.c);
  const ab = await iperf(lab.ns('a'), lab.ns('b'), ip.b);
  const rate = /rate 2Mbit/.test((await must(['tc', '-n', lab.hostNs, 'class', 'show', 'dev', bport])).stdout);
  const p2 = await lab.planCode();
  const cmac = (JSON.parse((await must(['ip', '-n', lab.ns('c'), '-j', 'link', 'show', 'eth0'])).stdout) as Json[])[0].address;
  report(t, `drifted a->b ${mbit(drifted)}; after apply: c->a ${ca}/20, b->c ${bc}/20, a->c ${ac}/20, a->b ${mbit(ab)} (2 Mbit/s); a's neighbour entry for c: "${neigh}", c's new eth0 MAC ${cmac}`);
  assert.equal(ca, 20, `c->a after repair ${ca}/20`);
  assert.equal(bc, 20, `b->c after repair ${bc}/20 (b had not talked to c before)`);
  assert.ok(Math.abs(ab - 2e6) / 2e6 <= 0.15, `a->b ${mbit(ab)} back within 15 % of 2 Mbit/s`);
  assert.ok(rate, 'the class is back at 2Mbit');
  assert.equal(p2.code, 0, `plan is empty after the repair; got ${p2.code}\n${p2.stdout}`);
  // a had talked to c before the drift; its ARP cache must not keep c's old MAC.
  assert.equal(ac, 20, `a->c right after the repair ${ac}/20 (a's neighbour entry for c: "${neigh}"; c's eth0 now has MAC ${cmac})`);
}, { timeoutMs: 180_000 });

labTest('ownership conflict: a hand-made bridge with the lab bridge name is reported, never changed, and survives destroy', async (lab) => {
  lab.write(`
    nodes: { a: { kind: netns }, b: { kind: netns } }
    bridges:
      lan: { subnet: 10.83.0.0/24, attach: [a, b] }
  `);
  const br = lab.bridge('lan');
  await must(['ip', '-n', lab.hostNs, 'link', 'add', br, 'type', 'bridge']);
  await must(['ip', '-n', lab.hostNs, 'link', 'set', br, 'up']);
  const before = JSON.parse((await must(['ip', '-n', lab.hostNs, '-j', '-d', 'link', 'show', 'dev', br])).stdout)[0];

  const p = await lab.provium(['plan']);
  assert.equal(p.code, 1, `plan exits 1 on a conflict; got ${p.code}\n${p.stdout}${p.stderr}`);
  assert.match(p.stdout + p.stderr, /conflict/i, 'the message says conflict');
  assert.ok((p.stdout + p.stderr).includes(br), `the message names ${br}`);

  lab.clearTrace();
  const a = await lab.provium(['apply', '--auto-approve']);
  assert.equal(a.code, 1, `apply exits 1 on a conflict; got ${a.code}`);
  assert.match(a.stdout + a.stderr, /conflict/i);
  const trace = lab.trace();
  assert.ok(trace.length > 0, 'apply read the host (PROVIUM_TRACE has lines)');
  const writes = trace.filter((l) => !isReadOnly(l));
  assert.deepEqual(writes.map((w) => w.argv.join(' ')), [], 'apply ran zero changing commands');
  assert.deepEqual(listNetns().filter((n) => n.startsWith(`pv-${lab.name}-`)), [], 'no node namespace was made');

  const d = await lab.provium(['destroy', '--auto-approve']);
  assert.equal(d.code, 0, `destroy exits 0: ${d.stdout}${d.stderr}`);
  const after = JSON.parse((await must(['ip', '-n', lab.hostNs, '-j', '-d', 'link', 'show', 'dev', br])).stdout)[0];
  assert.equal(after.ifindex, before.ifindex, 'the foreign bridge is still there (same ifindex)');
  assert.deepEqual(after.flags, before.flags, 'and unchanged');
  assert.equal(after.ifalias, undefined, 'no ifalias was put on it');
});

labTest('lock: a live holder makes apply exit 1 at once naming its pid; a dead holder\'s lock is taken over with a warning', async (lab, t) => {
  lab.write(`
    nodes: { a: { kind: netns }, b: { kind: netns } }
    bridges:
      lan: { subnet: 10.84.0.0/24, attach: [a, b] }
  `);
  ensureDir(lab.stateDir);
  const lockPath = join(lab.stateDir, `${lab.name}.lock`);
  const sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
  try {
    const lock = JSON.stringify({ pid: sleeper.pid, command: 'provium apply', host: hostname(), since: new Date().toISOString() }) + '\n';
    writeFileSync(lockPath, lock);
    lab.clearTrace();
    const r = await lab.provium(['apply', '--auto-approve']);
    report(t, `held lock: exit ${r.code} in ${Math.round(r.ms)} ms: ${r.stderr.trim()}`);
    assert.equal(r.code, 1, `apply exits 1 while the lock is held; got ${r.code}`);
    assert.ok(r.ms < 5000, `exits at once (${Math.round(r.ms)} ms)`);
    assert.ok((r.stdout + r.stderr).includes(String(sleeper.pid)), `the message names the holder pid ${sleeper.pid}`);
    assert.equal(readFileSync(lockPath, 'utf8'), lock, 'the holder\'s lock file is left alone');
    assert.deepEqual(lab.trace().filter((l) => !isReadOnly(l)), [], 'no changing command ran');
    assert.deepEqual(listNetns().filter((n) => n.startsWith(`pv-${lab.name}-`)), [], 'nothing was created');
  } finally {
    sleeper.kill('SIGKILL');
  }

  // A pid that has exited (and was reaped).
  const dead = spawn('true', [], { stdio: 'ignore' });
  await new Promise((res) => dead.on('exit', res));
  await new Promise((res) => setTimeout(res, 100));
  writeFileSync(lockPath, JSON.stringify({ pid: dead.pid, command: 'provium apply', host: hostname(), since: new Date().toISOString() }) + '\n');
  const s = await lab.provium(['apply', '--auto-approve']);
  report(t, `stale lock: exit ${s.code}: ${s.stderr.split('\n').filter((l) => /stale/i.test(l)).join(' ')}`);
  assert.equal(s.code, 0, `apply takes over a stale lock; got ${s.code}\n${s.stdout}${s.stderr}`);
  assert.match(s.stderr, /stale/i, 'and warns that the lock was stale');
  assert.equal(existsSync(lockPath), false, 'the lock is released after apply');
  assert.equal((await ping(lab.ns('a'), lab.ip('b', 'lan'), 2, 0.1)).received, 2, 'the lab is up');
});

/** Everything the lab could have changed in its host namespace, normalized (no ifindex-like counters, no nft handles). */
async function hostSnapshot(lab: Lab): Promise<Json> {
  const strip = (o: Json): Json => {
    if (Array.isArray(o)) return o.map(strip);
    if (o && typeof o === 'object') {
      const out: Json = {};
      for (const [k, v] of Object.entries(o)) {
        // ifindex-like counters, nft handles, address lifetimes and IPv6 DAD progress (tentative) are not state.
        if (['ifindex', 'link_index', 'link_netnsid', 'handle', 'valid_life_time', 'preferred_life_time', 'tentative'].includes(k)) continue;
        out[k] = strip(v);
      }
      return out;
    }
    return o;
  };
  const links = JSON.parse((await must(['ip', '-n', lab.hostNs, '-j', '-d', 'addr', 'show'])).stdout);
  const routes = JSON.parse((await must(['ip', '-n', lab.hostNs, '-j', 'route', 'show', 'table', 'all'])).stdout);
  const qdiscs = JSON.parse((await must(['tc', '-n', lab.hostNs, '-j', 'qdisc', 'show'])).stdout);
  const nft = (JSON.parse((await lab.inHost(['nft', '-j', 'list', 'ruleset'])).stdout) as { nftables: Json[] }).nftables.filter((o) => !('metainfo' in o));
  const fwd = (await lab.inHost(['sysctl', '-n', 'net.ipv4.ip_forward'])).stdout.trim();
  const mine = (n: string) => n.includes(lab.name) || n === lab.hostNs || lab.extraNs.includes(n);
  return {
    links: strip(links), routes: strip(routes), qdiscs: strip(qdiscs), nft: strip(nft), ip_forward: fwd,
    netns: listNetns().filter(mine), stateDir: snapshotDir(lab.stateDir) ?? null,
  };
}

/** hostSnapshot once IPv6 DAD is done and two consecutive readings agree (carrier and link-local addresses settle asynchronously). */
async function settledSnapshot(lab: Lab): Promise<Json> {
  let prev = await hostSnapshot(lab);
  for (let i = 0; i < 25; i++) {
    await new Promise((r) => setTimeout(r, 200));
    const cur = await hostSnapshot(lab);
    const tentative = (await must(['ip', '-n', lab.hostNs, '-6', 'addr', 'show', 'tentative'])).stdout.trim();
    if (!tentative && JSON.stringify(cur) === JSON.stringify(prev)) return cur;
    prev = cur;
  }
  return prev;
}

labTest('apply then destroy leaves the host exactly as before (uplink, routes, partitions, impairments, a qemu TAP)', async (lab, t) => {
  await makeUpstream(lab);
  lab.write(`
    nodes: { a: { kind: netns }, b: { kind: netns }, c: { kind: netns }, v: { kind: qemu } }
    bridges:
      lan:
        subnet: 10.85.0.0/24
        attach: [a, b, c, v]
        partitions: [[a, c], { from: b, to: c }]
        isolate: [v]
        impairments:
          - { drop_pct: 1, bandwidth_bps: 50000000 }
          - { from: a, to: b, drop_pct: 5, bandwidth_bps: 10000000 }
        uplink: true
        routes: [data]
      data: { subnet: 10.86.0.0/24, attach: [a, c] }
  `);
  const before = await settledSnapshot(lab);
  const nsBefore = listNetns();
  const r = await lab.apply();
  const during = await hostSnapshot(lab);
  assert.notDeepEqual(during, before, 'apply changed the host');
  assert.equal(during.ip_forward, '1', 'ip_forward is on while the lab routes');
  assert.ok(during.links.some((l: Json) => l.ifname === lab.port('v') && l.linkinfo?.info_kind === 'tun'), 'the qemu node has a TAP port');
  // The lab works: routed, NATed and shaped traffic.
  assert.equal((await ping(lab.ns('b'), '192.0.2.1', 3, 0.1)).received, 3, 'b reaches the upstream');
  report(t, `apply: ${r.host_commands} host command invocations, ${r.summary.add} added`);

  const d = await lab.provium(['destroy', '--auto-approve', '--json']);
  assert.equal(d.code, 0, `destroy exits 0: ${d.stdout}${d.stderr}`);
  const after = await settledSnapshot(lab);
  assert.deepEqual(after, before, 'the host namespace, node namespaces, ip_forward and the state dir are exactly as before');
  assert.deepEqual(listNetns().filter((n) => !nsBefore.includes(n) && n.includes(lab.name)), [], 'no namespace of the lab is left');
  const p = await lab.planCode();
  assert.equal(p.code, 2, 'a plan after destroy wants to create everything again');
});
