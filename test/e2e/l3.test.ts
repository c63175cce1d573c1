/**
 * Layer 3: uplink (NAT masquerade to the host namespace's default-route interface)
 * against a fake upstream namespace, and routing between two bridges.
 */
import assert from 'node:assert/strict';
import { labTest, must, ping, udpProbe, report, makeUpstream } from './helpers.js';

labTest('uplink: a node reaches the upstream through NAT (the upstream sees the host-side address); without uplink it does not', async (lab, t) => {
  const up = await makeUpstream(lab);
  const file = (uplink: boolean) => `
    nodes: { a: { kind: netns }, b: { kind: netns } }
    bridges:
      lan:
        subnet: 10.70.0.0/24
        attach: [a, b]
        uplink: ${uplink}
  `;
  lab.write(file(true));
  const ip = lab.ips('lan');
  await lab.apply();
  const p = await ping(lab.ns('a'), '192.0.2.1', 5, 0.1);
  const u = await udpProbe(lab.ns('a'), up, '192.0.2.1', 20);
  report(t, `uplink: ping a -> 192.0.2.1 ${p.received}/5; UDP a -> upstream ${u.received}/20 from ${JSON.stringify(u.peers)}`);
  assert.equal(p.received, 5, `ping a -> upstream 192.0.2.1 with uplink: ${p.received}/5`);
  assert.equal(u.received, 20, `UDP a -> upstream: ${u.received}/20`);
  assert.deepEqual(Object.keys(u.peers), ['192.0.2.2'], `the upstream sees only the host side address (masquerade), never a's ${ip.a}`);
  // Nodes still reach each other on the bridge.
  assert.equal((await ping(lab.ns('a'), ip.b, 3, 0.1)).received, 3, 'a -> b on the uplinked bridge');

  lab.write(file(false));
  await lab.apply();
  const q = await ping(lab.ns('a'), '192.0.2.1', 5, 0.1);
  report(t, `without uplink: ping a -> 192.0.2.1 ${q.received}/5`);
  assert.equal(q.received, 0, `ping a -> upstream without uplink: ${q.received}/5`);
  assert.equal((await ping(lab.ns('a'), ip.b, 3, 0.1)).received, 3, 'a -> b still works without uplink');
  assert.equal((await lab.planCode()).code, 0, 'plan is empty');
  // Even with a default route added by hand in the node, nothing is forwarded or masqueraded.
  await must(['ip', '-n', lab.ns('a'), 'route', 'add', 'default', 'via', '10.70.0.1']);
  const h = await udpProbe(lab.ns('a'), up, '192.0.2.1', 20);
  report(t, `without uplink, hand-made default route in a: UDP a -> upstream ${h.received}/20`);
  assert.equal(h.received, 0, `UDP a -> upstream without uplink (default route by hand): ${h.received}/20`);
});

labTest('routes: a node only on lan reaches a node only on data both ways with routes: [data]; not without', async (lab, t) => {
  const file = (routes: boolean) => `
    nodes: { a: { kind: netns }, b: { kind: netns }, c: { kind: netns } }
    bridges:
      lan:
        subnet: 10.71.0.0/24
        attach: [a, b]
        ${routes ? 'routes: [data]' : ''}
      data:
        subnet: 10.72.0.0/24
        attach: [c]
  `;
  lab.write(file(true));
  const b = lab.ip('b', 'lan');
  const c = lab.ip('c', 'data');
  await lab.apply();
  const bc = await ping(lab.ns('b'), c, 3, 0.1);
  const cb = await ping(lab.ns('c'), b, 3, 0.1);
  const ab = await ping(lab.ns('a'), b, 3, 0.1);
  const uc = await udpProbe(lab.ns('b'), lab.ns('c'), c, 20);
  report(t, `routes: ping b(lan) -> c(data) ${bc.received}/3, c -> b ${cb.received}/3, a -> b ${ab.received}/3; UDP b -> c ${uc.received}/20 from ${JSON.stringify(uc.peers)}`);
  assert.equal(bc.received, 3, 'b (lan) -> c (data)');
  assert.equal(cb.received, 3, 'c (data) -> b (lan)');
  assert.equal(ab.received, 3, 'a -> b on lan');
  assert.equal(uc.received, 20);
  assert.deepEqual(Object.keys(uc.peers), [b], 'routed, not masqueraded: c sees b\'s own address');

  lab.write(file(false));
  await lab.apply();
  const bc2 = await ping(lab.ns('b'), c, 3, 0.1);
  const cb2 = await ping(lab.ns('c'), b, 3, 0.1);
  const ab2 = await ping(lab.ns('a'), b, 3, 0.1);
  report(t, `no routes: b -> c ${bc2.received}/3, c -> b ${cb2.received}/3, a -> b ${ab2.received}/3`);
  assert.equal(bc2.received, 0, 'b (lan) -> c (data) without routes');
  assert.equal(cb2.received, 0, 'c (data) -> b (lan) without routes');
  assert.equal(ab2.received, 3, 'a -> b on lan still works');
  assert.equal((await lab.planCode()).code, 0, 'plan is empty');
});
