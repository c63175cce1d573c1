/**
 * An apply you can trust (issue 4): saved plans refuse a changed host; a failed apply
 * rolls the host back (or keeps the partial state with --no-rollback); an apply killed
 * after any of its host commands leaves a state that the next plan shows exactly and
 * the next apply converges from, to the same host state as an uninterrupted apply.
 * Failures are injected with provium's test hooks (PROVIUM_TEST_FAIL_AT,
 * PROVIUM_TEST_KILL_AFTER); the host objects involved are real.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { labTest, run, report, isReadOnly, listNetns, udpCount, ipOf, type Lab } from './helpers.js';
import { nicMac } from '../../src/model/names.js';

const BODY = (drop: number) => `
  nodes: { a: { kind: netns }, b: { kind: netns }, c: { kind: netns } }
  bridges:
    lan:
      subnet: 10.83.0.0/24
      attach: [a, b, c]
      partitions: [{ from: a, to: c }]
      impairments: [{ from: a, to: b, drop_pct: ${drop}, bandwidth_bps: 4000000 }]
      routes: [data]
    data: { subnet: 10.84.0.0/24, attach: [a] }
`;

/** c's address on lan (every variant of the file below attaches the same nodes to lan). */
const C_IP = ipOf(BODY(5), 'c', 'lan');

/**
 * The lab's host state, normalized from the kernel's own reports: links in the host
 * namespace (name, kind, alias, master, up, addresses), node namespaces (NICs with MAC
 * and addresses, routes), qdiscs and HTB classes, nft tables with set elements, ip_forward.
 */
async function snapshot(lab: Lab): Promise<unknown> {
  const j = async (argv: string[]) => JSON.parse((await run(argv)).stdout || '[]');
  const links = (await j(['ip', '-n', lab.hostNs, '-j', '-d', 'addr', 'show'])) as any[];
  const ns: Record<string, unknown> = {};
  for (const n of listNetns().filter((x) => x.startsWith(`pv-${lab.name}-`)).sort()) {
    const a = (await j(['ip', '-n', n, '-j', 'addr', 'show'])) as any[];
    const r = (await j(['ip', '-n', n, '-j', 'route', 'show'])) as any[];
    ns[n] = { nics: a.map((l) => [l.ifname, l.address, (l.flags ?? []).includes('UP'), (l.addr_info ?? []).filter((x: any) => x.family === 'inet').map((x: any) => `${x.local}/${x.prefixlen}`)]), routes: r.map((x) => `${x.dst} ${x.gateway ?? ''}`).sort() };
  }
  const qd = ((await j(['tc', '-n', lab.hostNs, '-j', 'qdisc', 'show'])) as any[]).map((q) => `${q.dev} ${q.kind} ${q.handle}`).sort();
  const classes = (await run(['tc', '-n', lab.hostNs, 'class', 'show', 'dev', lab.port('b', 0)])).stdout.split('\n').map((l) => l.replace(/burst \S+ cburst \S+/, '').trim()).filter(Boolean).sort();
  const nft = JSON.parse((await run(['ip', 'netns', 'exec', lab.hostNs, 'nft', '-j', 'list', 'ruleset'])).stdout || '{"nftables":[]}').nftables
    .filter((o: any) => o.set || o.map)
    .map((o: any) => { const s = o.set ?? o.map; return `${s.family} ${s.name} ${JSON.stringify(s.elem ?? [])}`; }).sort();
  const fwd = (await run(['ip', 'netns', 'exec', lab.hostNs, 'sysctl', '-n', 'net.ipv4.ip_forward'])).stdout.trim();
  return {
    links: links.filter((l) => l.ifname !== 'lo').map((l) => [l.ifname, l.linkinfo?.info_kind, l.ifalias, l.master, (l.flags ?? []).includes('UP'), (l.addr_info ?? []).filter((x: any) => x.family === 'inet').map((x: any) => x.local)]).sort(),
    ns, qd, classes, nft, fwd,
  };
}

const changing = (lab: Lab) => lab.trace(true).filter((l) => !isReadOnly(l));

labTest('saved plan: apply PLANFILE runs exactly the saved plan; a plan made before the host changed is refused, with nothing run', async (lab, t) => {
  lab.write(BODY(5));
  const planFile = join(lab.dir, 'p1.json');
  const p = await lab.provium(['plan', '--out', planFile]);
  assert.equal(p.code, 0, p.stderr);
  lab.clearTrace();
  const a = await lab.provium(['apply', planFile], { file: false });
  assert.equal(a.code, 0, `apply PLANFILE: ${a.stdout}${a.stderr}`);
  assert.equal(changing(lab).length, 8, 'the saved invocations ran');
  assert.equal((await lab.planCode()).code, 0, 'plan empty after apply PLANFILE');
  assert.equal(await udpCount(lab.ns('a'), lab.ns('c'), C_IP), 0, 'a -> c partitioned');

  lab.write(BODY(9));
  const p2 = join(lab.dir, 'p2.json');
  assert.equal((await lab.provium(['plan', '--out', p2])).code, 0);
  await run(['ip', 'netns', 'exec', lab.hostNs, 'nft', 'delete', 'element', 'bridge', `provium_${lab.name}`, 'blocked', `{ ${nicMac(lab.name, 'a', 'lan')} . "${lab.port('c', 0)}" }`]);
  lab.clearTrace();
  const s = await lab.provium(['apply', p2], { file: false });
  assert.equal(s.code, 1, 'a stale plan is refused');
  assert.match(s.stderr, /host changed since .* planned/);
  assert.deepEqual(changing(lab), [], 'no changing command ran');
  report(t, `stale plan refused: ${s.stderr.split('\n').find((l) => l.startsWith('error:'))}`);
});

labTest('rollback: a command failing mid-apply restores the state before the apply and reports the command, exit code and stderr; --no-rollback keeps the partial state', async (lab, t) => {
  lab.write(BODY(5));
  await lab.apply();
  const before = await snapshot(lab);
  lab.write(BODY(5).replace('partitions: [{ from: a, to: c }]', 'partitions: [{ from: a, to: c }, [b, c]]').replace('bandwidth_bps: 4000000', 'bandwidth_bps: 3000000').replace('attach: [a] }', 'attach: [a, b] }'));
  const f = await lab.provium(['apply', '--auto-approve'], { env: { PROVIUM_TEST_FAIL_AT: 'nftables transaction' } });
  assert.equal(f.code, 1);
  assert.match(f.stderr, /apply failed/);
  assert.match(f.stderr, /command: ip netns exec \S+ nft -f -/);
  assert.match(f.stderr, /exit code: 1/);
  assert.match(f.stderr, /rolled back/);
  assert.deepEqual(await snapshot(lab), before, 'the host is as before the apply (links, namespaces, qdiscs, classes, nft, ip_forward)');
  assert.equal(await udpCount(lab.ns('b'), lab.ns('c'), C_IP), 20, 'b -> c flows as before');

  const k = await lab.provium(['apply', '--auto-approve', '--no-rollback'], { env: { PROVIUM_TEST_FAIL_AT: 'nftables transaction' } });
  assert.equal(k.code, 1);
  assert.match(k.stderr, /partial state was kept/);
  assert.notDeepEqual(await snapshot(lab), before, 'the partial state is kept');
  const plan = await lab.planJson();
  assert.ok(plan.changes.length > 0 && plan.changes.some((c) => c.address === 'bridge.lan.partition[b<>c]'), 'the next plan shows what is left');
  await lab.apply();
  assert.equal((await lab.planCode()).code, 0);
  report(t, 'rollback restored the snapshot; --no-rollback kept a partial state that the next apply completed');
});

labTest('crash consistency: apply killed after each of its host commands; the next plan shows what remains and the next apply converges to the uninterrupted state', async (lab, t) => {
  lab.write(BODY(5));
  await lab.apply();
  const want = await snapshot(lab);
  const total = lab.trace(true).filter((l) => !isReadOnly(l)).length;
  await lab.provium(['destroy', '--auto-approve']);
  const seen: string[] = [];
  for (let n = 1; n < total; n++) {
    const k = await lab.provium(['apply', '--auto-approve'], { env: { PROVIUM_TEST_KILL_AFTER: String(n) } });
    assert.notEqual(k.code, 0, `apply killed after ${n} command(s)`);
    const left = await lab.planJson();
    assert.ok(left.changes.length > 0, `after ${n}: the next plan shows what remains`);
    seen.push(`${n}:${left.changes.length}`);
    const r = await lab.provium(['apply', '--auto-approve']);
    assert.equal(r.code, 0, `after ${n}: the next apply converges:\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, /stale lock/, `after ${n}: the killed apply's lock is detected as stale`);
    assert.deepEqual(await snapshot(lab), want, `after ${n}: same host state as an uninterrupted apply`);
    await lab.provium(['destroy', '--auto-approve']);
  }
  report(t, `killed after each of ${total - 1} of ${total} commands; changes left per kill point: ${seen.join(' ')}`);
}, { timeoutMs: 300_000 });
