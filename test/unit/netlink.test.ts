/**
 * The netlink path's own tests, without root: the batch lines the planner writes for
 * node namespaces as structured operations, the request framing, error messages, and
 * the helper binary itself (when built) on requests that change nothing: a dump of its
 * own namespace, malformed and truncated requests, a namespace that does not exist.
 * The comparison of helper and iproute2 reads on real namespaces is an e2e test
 * (test/e2e/netlink.test.ts).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { batchToOps, opToLine, toDump } from '../../src/host/namespaces.js';
import { checkHelper, describeFailure, encodeRequest, helperPath, NetlinkHelper, netlinkMode, chooseNamespaceIO } from '../../src/host/netlink.js';
import { buildInvocations } from '../../src/plan/commands.js';
import type { ItemChange } from '../../src/plan/types.js';
import { toNamespaceState } from '../../src/observe/parse.js';
import { planFixture } from './replay.js';
import type { Runner } from '../../src/host/runner.js';

process.env.PROVIUM_STATE_DIR = '/nonexistent/provium-unit';

describe('namespace batch lines as netlink operations', () => {
  test('every form the planner writes maps to one operation, reads to a trailing dump', () => {
    const batch = [
      'link set lo up',
      'link set lo alias provium:fx:node:a',
      'addr del 10.40.0.9/24 dev eth0',
      'addr add 10.40.0.2/24 dev eth0',
      'addr add fd00:40::2/64 dev eth0 nodad',
      'addr del fd00:40::9/64 dev eth0',
      'link set eth0 mtu 1400',
      'link set eth0 address 02:aa:bb:cc:dd:ee',
      'link set eth1 down',
      'route del 10.42.0.0/24 via 10.40.0.1',
      'route replace default via 10.40.0.1',
      'route replace fd00:41::/64 via fd00:40::1',
      'addr show',
      'route show table all',
    ].join('\n') + '\n';
    const ops = batchToOps(batch);
    assert.deepEqual(ops, [
      ['up', 'lo'],
      ['alias', 'lo', 'provium:fx:node:a'],
      ['addr-del', 'eth0', '10.40.0.9/24'],
      ['addr-add', 'eth0', '10.40.0.2/24'],
      ['addr-add-nodad', 'eth0', 'fd00:40::2/64'],
      ['addr-del', 'eth0', 'fd00:40::9/64'],
      ['mtu', 'eth0', '1400'],
      ['address', 'eth0', '02:aa:bb:cc:dd:ee'],
      ['down', 'eth1'],
      ['route-del', '10.42.0.0/24', '10.40.0.1'],
      ['route-replace', 'default', '10.40.0.1'],
      ['route-replace', 'fd00:41::/64', 'fd00:40::1'],
      ['dump'],
    ]);
    // opToLine gives the batch line back (messages name the failing line).
    assert.deepEqual(ops.slice(0, -1).map(opToLine), batch.trim().split('\n').slice(0, -2));
  });

  test('anything else is refused, not passed on', () => {
    for (const line of ['link del eth0', 'link set eth0 up extra', 'addr add 10.0.0.1/24 dev eth0 label x', 'route add 10.0.0.0/24 via 10.0.0.1', 'route replace 10.0.0.0/24 dev eth0', 'netns exec x sh', 'link set eth0 mtu big', 'addr flush dev eth0']) {
      assert.throws(() => batchToOps(`${line}\n`), /does not write/, line);
    }
    assert.throws(() => batchToOps('addr show\nlink set lo up\n'), /does not write/, 'writes after the reads');
  });

  test("the planner's namespace batches of a whole lab and of in-place changes all parse", async () => {
    const { plan } = await planFixture('empty');
    const ns = plan.invocations.filter((i) => i.readsBack);
    assert.ok(ns.length >= 3, 'the empty fixture creates node namespaces');
    for (const inv of ns) {
      const ops = batchToOps(inv.stdin!);
      assert.deepEqual(ops[ops.length - 1], ['dump']);
      assert.equal(ops.length - 1, inv.stdin!.trim().split('\n').length - 2, `one operation per write line of ${inv.label}`);
    }
    // In-place changes: addresses (both families) removed and added, MTU, MAC, link down, routes replaced and removed.
    const ref = { kind: 'nic' as const, ns: 'pv-fx-a', ifname: 'eth0' };
    const rref = { kind: 'routes' as const, ns: 'pv-fx-a' };
    const changes: ItemChange[] = [
      {
        action: 'update', key: 'nic:pv-fx-a:eth0', fields: [],
        before: { key: 'nic:pv-fx-a:eth0', ref, owner: 'x', deps: [], value: { addrs: ['10.40.0.9/24'], addrs6: ['fd00:40::9/64'], mtu: 1500, mac: '02:00:00:00:00:01', up: true } },
        after: { key: 'nic:pv-fx-a:eth0', ref, owner: 'x', deps: [], value: { addrs: ['10.40.0.2/24'], addrs6: ['fd00:40::2/64'], mtu: 1400, mac: '02:00:00:00:00:02', up: false } },
      },
      {
        action: 'update', key: 'routes:pv-fx-a', fields: [],
        before: { key: 'routes:pv-fx-a', ref: rref, owner: 'x', deps: [], value: { routes: ['10.42.0.0/24 via 10.40.0.1'] } },
        after: { key: 'routes:pv-fx-a', ref: rref, owner: 'x', deps: [], value: { routes: ['default via 10.40.0.1', 'fd00:41::/64 via fd00:40::1'] } },
      },
    ];
    const [inv] = buildInvocations('fx', changes, {});
    const ops = batchToOps(inv.stdin!);
    assert.deepEqual(ops.map((o) => o[0]).sort(), ['addr-add', 'addr-add-nodad', 'addr-del', 'addr-del', 'address', 'down', 'dump', 'mtu', 'route-del', 'route-replace', 'route-replace'].sort());
  });
});

describe('helper protocol (client side)', () => {
  test('a request is a little-endian length and NUL-terminated fields', () => {
    const b = encodeRequest(7, 'pv-x-a', [['up', 'lo'], ['dump']]);
    const body = '7\0pv-x-a\0up\0lo\0dump\0';
    assert.equal(b.readUInt32LE(0), Buffer.byteLength(body));
    assert.equal(b.subarray(4).toString('utf8'), body);
  });

  test('a field with a NUL byte or a request over 1 MiB is refused', () => {
    assert.throws(() => encodeRequest(1, 'ns', [['alias', 'lo', 'a\0b']]), /NUL byte/);
    assert.throws(() => encodeRequest(1, 'ns', [['alias', 'lo', 'x'.repeat(1 << 20)]]), /at most/);
  });

  test('a failure names the namespace, the failing line and the kernel message', () => {
    const ops = [['up', 'lo'], ['addr-add', 'eth0', '10.0.0.1/24']];
    const msg = describeFailure('pv-x-a', ops, { id: 1, ok: false, op: 1, errno: 17, error: 'File exists', ext: 'ipv4: Address already assigned' });
    assert.equal(msg, 'netlink: namespace pv-x-a: `addr add 10.0.0.1/24 dev eth0` (line 2) failed: RTNETLINK answers: File exists (ipv4: Address already assigned)');
  });

  test('PROVIUM_NETLINK chooses the path: off and fixture recording use iproute2, bad values are refused', () => {
    const runner: Runner = { count: 0, run: async () => ({ argv: [], exitCode: 0, stdout: '', stderr: '', ms: 0 }) };
    assert.equal(chooseNamespaceIO(runner, { PROVIUM_NETLINK: 'off' }).mechanism, 'iproute2');
    assert.equal(chooseNamespaceIO(runner, { PROVIUM_RECORD: '/tmp/x.jsonl' }).mechanism, 'iproute2');
    assert.equal(chooseNamespaceIO(runner, {}).mechanism, helperPath() ? 'netlink' : 'iproute2');
    assert.throws(() => netlinkMode({ PROVIUM_NETLINK: 'yes' }), /auto, on or off/);
  });

  test("iproute2's batch output becomes the same dump shape", () => {
    const out = '[{"ifname":"lo","flags":["UP"],"ifalias":"provium:fx:node:a","addr_info":[]}]\n[{"dst":"default","gateway":"10.0.0.1","dev":"eth0","flags":[]}]\n';
    const d = toDump(out);
    assert.equal(d.links[0].ifname, 'lo');
    assert.deepEqual(d.routes, [{ dst: 'default', gateway: '10.0.0.1', dev: 'eth0', flags: [] }]);
  });
});

const built = helperPath();
const skipHelper = built ? undefined : 'the netlink helper is not built (dist/native/provium-nl: needs gcc, make and libmnl-dev, then npm run build)';

/** Runs the helper on raw stdin bytes; returns its exit code and output lines. */
function runRaw(input: Buffer): { code: number | null; lines: Record<string, unknown>[]; stderr: string } {
  const r = spawnSync(built!, [], { input, encoding: 'utf8', timeout: 10_000 });
  return { code: r.status, lines: r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l)), stderr: r.stderr };
}

describe('helper binary on requests that change nothing', { skip: skipHelper }, () => {
  test('--version names the protocol the client speaks', () => {
    assert.equal(checkHelper(built!).ok, true, checkHelper(built!).detail);
  });

  test("a dump of its own namespace has lo with iproute2's fields, and routes", async () => {
    const h = new NetlinkHelper(built!);
    try {
      const r = await h.request('', [['dump']]);
      assert.equal(r.ok, true, JSON.stringify(r));
      assert.equal(typeof r.us, 'number');
      const lo = r.links!.find((l) => l.ifname === 'lo')!;
      assert.ok(lo, 'lo is listed');
      assert.ok(Array.isArray(lo.flags) && lo.flags.includes('LOOPBACK'));
      assert.equal(lo.address, '00:00:00:00:00:00');
      assert.ok(Array.isArray(r.routes));
      // The parser the planner uses takes it as it takes iproute2's output.
      const st = toNamespaceState('self', 'self', r.links!, r.routes!);
      assert.equal(st.name, 'self');
      // Pipelined requests are answered in order, each with its own id.
      const rs = await Promise.all([h.request('', [['links']]), h.request('', [['links']]), h.request('', [['links']])]);
      assert.deepEqual(rs.map((x) => x.ok), [true, true, true]);
      assert.ok(rs.every((x) => x.routes === undefined), 'links reads no routes');
    } finally {
      h.close();
    }
  });

  test('an unknown operation, a missing argument or a bad name is refused before anything runs', () => {
    const reqs = [
      encodeRequest(1, '', [['frobnicate']]),
      encodeRequest(2, '', [['up']]),
      encodeRequest(3, '', [['dump'], ['up', 'a/b']]),
      encodeRequest(4, '../etc', [['dump']]),
      encodeRequest(5, 'pv-does-not-exist-px', [['dump']]),
    ];
    const r = runRaw(Buffer.concat(reqs));
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.lines.map((l) => [l.id, l.ok, l.op]), [[1, false, -1], [2, false, -1], [3, false, -1], [4, false, -1], [5, false, -1]]);
    assert.match(String(r.lines[0].ext), /unknown operation/);
    assert.match(String(r.lines[2].ext), /bad interface name/);
    assert.equal(r.lines[3].errno, 22, 'a namespace name with a slash is not a path');
    assert.equal(r.lines[4].errno, 2, 'a namespace that does not exist: ENOENT');
    // Request 3's dump did not run: the whole request was refused.
    assert.equal(r.lines[2].links, undefined);
  });

  test('a truncated or oversized request ends the helper with an error, after answering the whole ones', () => {
    const whole = encodeRequest(1, '', [['links']]);
    const cut = encodeRequest(2, '', [['links']]).subarray(0, 6);
    const r = runRaw(Buffer.concat([whole, cut]));
    assert.equal(r.code, 1);
    assert.deepEqual(r.lines.map((l) => l.id), [1]);
    assert.match(r.stderr, /truncated/);
    const big = Buffer.alloc(4);
    big.writeUInt32LE((1 << 20) + 1);
    const r2 = runRaw(big);
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /at most/);
  });
});
