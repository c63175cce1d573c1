/**
 * Port forwards (issue 5): host ports to node ports, TCP and UDP, realized with nft
 * DNAT in the lab's host namespace (no proxy process). Proven with traffic from the
 * host itself and from another host (a fake upstream namespace) to the host's address;
 * removing a forward removes exactly its element; a port in use is reported by plan.
 */
import assert from 'node:assert/strict';
import { labTest, makeUpstream, run, startBackground, report, isReadOnly } from './helpers.js';

const FILE = (tcp: boolean) => `
  nodes: { a: { kind: netns }, b: { kind: netns } }
  bridges:
    lan:
      subnet: 10.90.0.0/24
      attach: [a, b]
      forwards:
${tcp ? '        - { host_port: 8080, node: a, port: 80 }\n' : ''}        - { host_port: 5353, node: b, port: 53, proto: udp }
`;

/** Up to 3 tries of a probe that should answer (the first contact may wait on ARP or a server still starting). */
async function answer(probe: () => Promise<string>): Promise<string> {
  let last = '';
  for (let i = 0; i < 3 && !last; i++) last = await probe();
  return last;
}

/** One TCP request/answer through socat from namespace ns; the answer text, or '' on failure. */
async function tcpGet(ns: string, ip: string, port: number): Promise<string> {
  const r = await run(['ip', 'netns', 'exec', ns, 'timeout', '5', 'socat', '-T', '3', '-', `TCP:${ip}:${port},connect-timeout=2`], { input: 'GET\n', timeoutMs: 8000 });
  return r.code === 0 ? r.stdout.trim() : '';
}

async function udpAsk(ns: string, ip: string, port: number): Promise<string> {
  const r = await run(['ip', 'netns', 'exec', ns, 'timeout', '4', 'socat', '-T', '2', '-', `UDP:${ip}:${port}`], { input: 'ping\n', timeoutMs: 8000 });
  return r.stdout.trim();
}

labTest('forwards: TCP and UDP from the host and from another host reach the nodes; removing one removes exactly that rule; a port in use is reported', async (lab, t) => {
  const up = await makeUpstream(lab);
  lab.write(FILE(true));
  await lab.apply();
  startBackground(['ip', 'netns', 'exec', lab.ns('a'), 'socat', 'TCP-LISTEN:80,reuseaddr,fork', 'EXEC:/bin/echo hello-from-a']);
  startBackground(['ip', 'netns', 'exec', lab.ns('b'), 'socat', 'UDP-LISTEN:53,reuseaddr,fork', 'EXEC:/bin/echo pong-from-b']);
  await new Promise((r) => setTimeout(r, 500));

  assert.equal(await answer(() => tcpGet(up, '192.0.2.2', 8080)), 'hello-from-a', 'TCP from another host through the host address');
  assert.equal(await answer(() => tcpGet(lab.hostNs, '192.0.2.2', 8080)), 'hello-from-a', 'TCP from the host itself');
  assert.equal(await answer(() => udpAsk(up, '192.0.2.2', 5353)), 'pong-from-b', 'UDP from another host');
  assert.equal(await answer(() => udpAsk(lab.hostNs, '192.0.2.2', 5353)), 'pong-from-b', 'UDP from the host itself');
  const conntrack = (await run(['ip', 'netns', 'exec', lab.hostNs, 'nft', 'list', 'ruleset'])).stdout;
  assert.match(conntrack, /dnat ip to meta l4proto \. th dport map @forwards/, 'realized as nft DNAT');

  // Link down on a: the forward behaves as the network would (no answer).
  lab.write(FILE(true).replace('attach: [a, b]', 'attach: [{ node: a, link: down }, b]'));
  await lab.apply();
  assert.equal(await tcpGet(up, '192.0.2.2', 8080), '', 'no answer while a\'s NIC is down');
  lab.write(FILE(true));
  await lab.apply();
  assert.equal(await answer(() => tcpGet(up, '192.0.2.2', 8080)), 'hello-from-a', 'answers again with the link up');

  lab.write(FILE(false));
  const plan = await lab.planJson();
  assert.deepEqual(plan.changes.map((c) => `${c.action} ${c.address}`), ['delete bridge.lan.forward[tcp/8080]']);
  lab.clearTrace();
  await lab.apply();
  const writes = lab.trace(true).filter((l) => !isReadOnly(l));
  assert.equal(writes.length, 1, 'one nft transaction');
  assert.equal(writes[0].stdin?.trim(), `delete element inet provium_${lab.name} forwards { tcp . 8080 }`);
  assert.equal(await tcpGet(up, '192.0.2.2', 8080), '', 'the removed forward no longer answers');
  assert.equal(await answer(() => udpAsk(up, '192.0.2.2', 5353)), 'pong-from-b', 'the other forward still works');

  // A host port a local socket listens on is a plan error.
  startBackground(['ip', 'netns', 'exec', lab.hostNs, 'socat', 'TCP-LISTEN:8080,reuseaddr,fork', 'EXEC:/bin/true']);
  await new Promise((r) => setTimeout(r, 300));
  lab.write(FILE(true));
  const p2 = await lab.provium(['plan']);
  assert.equal(p2.code, 1);
  assert.match(p2.stdout + p2.stderr, /host port 8080\/tcp is in use/);
  // Destroy ends the servers still running inside the node namespaces (else the
  // namespaces, and their veth pairs, would outlive ip netns del).
  lab.write(FILE(false));
  const t0 = Date.now();
  const d = await lab.provium(['destroy', '--auto-approve']);
  assert.equal(d.code, 0, d.stderr);
  assert.match(d.stderr, /ending 1 process\(es\) still running in pv-\S+-a/);
  assert.ok(Date.now() - t0 < 8000, `destroy took ${Date.now() - t0} ms`);
  assert.equal((await run(['ip', '-n', lab.hostNs, '-br', 'link'])).stdout.includes(lab.port('a', 0)), false, 'a\'s port is gone');
  report(t, `TCP and UDP forwards answered from the upstream host and from the host itself; removal was one nft element; destroy with servers running took ${Date.now() - t0} ms`);
});
