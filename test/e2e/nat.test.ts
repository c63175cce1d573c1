/**
 * Routers and NAT, proven with the STUN-style probe (src/stun/stun.ts) in throwaway
 * labs: the 3 x 3 mapping x filtering matrix (UDP and TCP, port preservation), every
 * preset (mapping, filtering, hairpinning on and off, `none` routed), hole punching for
 * every pair of presets against the known matrix (test/e2e/nat-model.ts; the table in
 * docs/nat.md must be the measured one), double NAT (CGNAT behind a home router),
 * firewalls for IPv4 and IPv6 (routed, not translated), a default-route switch and a
 * replug (each in place, the reflector sees the new external address), mapping
 * timeouts, and an in-place NAT change that holds at once (conntrack flushed).
 *
 * Matrix cells run in parallel inside one lab (one router and client per cell);
 * `PROVIUM_WRITE_DOCS=1` rewrites docs/nat.md's hole-punching table from the results.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { labTest, pool, report, topologyOf, type Lab } from './helpers.js';
import { bg, portOf, ipOfEp, reflector, stopAll, stun, stun1, Mutex } from './nat-helpers.js';
import { predictPunch, predictTcpPunch, type Behaviour } from './nat-model.js';
import { NAT_PRESETS, type Rfc4787Behaviour } from '../../src/model/router.js';

const EI: Rfc4787Behaviour = 'endpoint-independent';
const AD: Rfc4787Behaviour = 'address-dependent';
const APD: Rfc4787Behaviour = 'address-and-port-dependent';
const BEHAVIOURS = [EI, AD, APD];
const SHORT: Record<Rfc4787Behaviour, string> = { [EI]: 'EI', [AD]: 'AD', [APD]: 'APD' };
const PRESETS = ['none', 'full-cone', 'home', 'port-restricted', 'corporate', 'cloud', 'cgnat'];
const DOCS = fileURLToPath(new URL('../../../docs/nat.md', import.meta.url));

/** What one NAT cell is declared to do. */
interface Declared {
  mapping: Rfc4787Behaviour;
  filtering: Rfc4787Behaviour;
  portPreservation: boolean;
}

/** What the probe measured for one router and client. */
interface Measured {
  udp: string[];
  tcp: string[];
  udpFilter: { Ap: boolean; Aq: boolean; Bp: boolean };
  tcpFilter: { Aq: string; Bp: string };
}

/**
 * Measures a router's mapping and filtering from client `c` against reflectors A (sa,
 * ports 3478 and 3479) and B (sb, port 3479): mapping = what A:3478, A:3479 and B:3479
 * see for one local port (UDP, then TCP); filtering = after an outbound packet to
 * A:3478, which of A:3478 (its answer), A:4000 (A:q) and B:3478 (B:p) reach the client
 * (UDP), and whether a TCP SYN from A:4001+ / B:3478 to the mapping reaches the client
 * (refused: the client's kernel answered with RST; timeout: dropped on the way).
 */
async function measure(lab: Lab, c: string, ports: number, tcpLock: Mutex): Promise<Measured> {
  const sa = lab.ip('sa', 'wan');
  const sb = lab.ip('sb', 'wan');
  const targets = [`${sa}:3478`, `${sa}:3479`, `${sb}:3479`];
  const udp = (await stun1(lab.ns(c), ['map', '--proto', 'udp', '--bind', String(ports), ...targets])).mapped;
  const tcp = (await stun1(lab.ns(c), ['map', '--proto', 'tcp', '--bind', String(ports + 1), ...targets])).mapped;

  const listen = bg(lab.ns(c), ['listen', '--bind', String(ports + 2), '--first', `${sa}:3478`, '--ms', '2500']);
  const m = (await listen.wait((l) => typeof l.data === 'string' && l.data.startsWith('mapped '))).data.slice(7) as string;
  await Promise.all([stun(lab.ns('sa'), ['send', '--bind', '4000', m, '--data', 'A:q']), stun(lab.ns('sb'), ['send', '--bind', '3478', m, '--data', 'B:p'])]);
  const lines = await listen.done;

  const hold = bg(lab.ns(c), ['hold', '--bind', String(ports + 3), `${sa}:3478`, '--ms', '30000']);
  const tm = (await hold.wait((l) => typeof l.mapped === 'string')).mapped as string;
  // A:q from a port of its own per cell; B:p from B's port 3478, one cell at a time (a TCP port binds once).
  const [aq, bp] = await Promise.all([
    stun1(lab.ns('sa'), ['connect', tm, '--bind', String(4001 + (ports % 1000)), '--ms', '500']),
    tcpLock.run(() => stun1(lab.ns('sb'), ['connect', tm, '--bind', '3478', '--ms', '500'])),
  ]);
  return {
    udp: targets.map((t) => udp[t]),
    tcp: targets.map((t) => tcp[t]),
    udpFilter: { Ap: lines.some((l) => l.from === `${sa}:3478`), Aq: lines.some((l) => l.data === 'A:q'), Bp: lines.some((l) => l.data === 'B:p') },
    tcpFilter: { Aq: aq.result, Bp: bp.result },
  };
}

/** Every way a measurement differs from the declaration (empty: exactly as declared). */
function mismatches(d: Declared, m: Measured, pub: string, bind: number): string[] {
  const out: string[] = [];
  for (const [proto, eps, port] of [['udp', m.udp, bind], ['tcp', m.tcp, bind + 1]] as const) {
    if (eps.some((e) => ipOfEp(e) !== pub)) out.push(`${proto}: reflectors saw ${eps.join(', ')}, not the router's address ${pub}`);
    const [a1, a2, b] = eps.map(portOf);
    const ok = d.mapping === EI ? a1 === a2 && a1 === b : d.mapping === AD ? a1 === a2 && a1 !== b : a1 !== a2 && a1 !== b && a2 !== b;
    if (!ok) out.push(`${proto} mapping ${SHORT[d.mapping]}: A:3478 ${a1}, A:3479 ${a2}, B:3479 ${b}`);
    if (d.portPreservation && a1 !== port) out.push(`${proto}: port preservation asked, local port ${port} mapped to ${a1}`);
  }
  if (!d.portPreservation && portOf(m.udp[0]) === bind && portOf(m.tcp[0]) === bind + 1) out.push('no port preservation asked, but both UDP and TCP kept their ports');
  const want = { Aq: d.filtering !== APD, Bp: d.filtering === EI };
  const f = m.udpFilter;
  if (!f.Ap || f.Aq !== want.Aq || f.Bp !== want.Bp) out.push(`udp filtering ${SHORT[d.filtering]}: A:p ${f.Ap}, A:q ${f.Aq}, B:p ${f.Bp}`);
  const arrived = (r: string) => r === 'refused';
  if (arrived(m.tcpFilter.Aq) !== want.Aq || arrived(m.tcpFilter.Bp) !== want.Bp) out.push(`tcp filtering ${SHORT[d.filtering]}: A:q ${m.tcpFilter.Aq}, B:p ${m.tcpFilter.Bp}`);
  return out;
}

/** A topology body from lines (no common indentation to strip). */
const yamlLines = (lines: string[]): string => lines.join('\n') + '\n';

/** `nat:` of a preset, or of explicit RFC 4787 terms. */
const natYaml = (d: Declared & { hairpin?: boolean }) =>
  `{ mapping: ${d.mapping}, filtering: ${d.filtering}, hairpin: ${d.hairpin ?? false}, port_preservation: ${d.portPreservation} }`;

labTest('NAT matrix: each of the 3 x 3 RFC 4787 mapping x filtering combinations maps and filters UDP and TCP exactly as declared; port preservation when asked', async (lab, t) => {
  const cells = BEHAVIOURS.flatMap((mapping) => BEHAVIOURS.map((filtering) => ({ mapping, filtering, portPreservation: mapping !== APD })));
  lab.write(yamlLines([
    'nodes:', '  sa: { kind: netns }', '  sb: { kind: netns }',
    ...cells.flatMap((c, i) => [`  r${i}: { kind: router, nat: ${natYaml(c)} }`, `  c${i}: { kind: netns }`]),
    'bridges:', `  wan: { subnet: 198.51.100.0/24, attach: [sa, sb, ${cells.map((_, i) => `r${i}`).join(', ')}] }`,
    ...cells.map((_, i) => `  l${i}: { subnet: 10.9.${i}.0/24, gateway: r${i}, attach: [r${i}, c${i}] }`),
  ]));
  const t0 = Date.now();
  await lab.apply();
  const tApply = Date.now() - t0;
  try {
    await reflector(lab.ns('sa'), [3478, 3479], [3478, 3479]);
    await reflector(lab.ns('sb'), [3479], [3479]);
    const tcpLock = new Mutex();
    const results = await pool(cells.map((d, i) => async () => ({ i, d, m: await measure(lab, `c${i}`, 30000 + 10 * i, tcpLock) })), 5);
    const bad: string[] = [];
    for (const { i, d, m } of results) {
      const mm = mismatches(d, m, lab.ip(`r${i}`, 'wan'), 30000 + 10 * i);
      report(t, `${SHORT[d.mapping]}M/${SHORT[d.filtering]}F pp=${d.portPreservation}: udp ${m.udp.map(portOf).join('/')} tcp ${m.tcp.map(portOf).join('/')}; udp A:p ${m.udpFilter.Ap} A:q ${m.udpFilter.Aq} B:p ${m.udpFilter.Bp}; tcp A:q ${m.tcpFilter.Aq} B:p ${m.tcpFilter.Bp}${mm.length ? `  MISMATCH: ${mm.join('; ')}` : ''}`);
      bad.push(...mm.map((x) => `${SHORT[d.mapping]}M/${SHORT[d.filtering]}F: ${x}`));
    }
    report(t, `apply ${tApply} ms (9 routers, 11 netns nodes); probes ${Date.now() - t0 - tApply} ms`);
    assert.deepEqual(bad, [], 'every cell behaves as declared');
  } finally {
    stopAll();
  }
}, { timeoutMs: 180_000 });

labTest('NAT presets: each preset maps and filters as its values say, hairpins on and off as declared, and none routes the internal address untranslated', async (lab, t) => {
  const nats = PRESETS.map((p, i) => ({ p, i, spec: NAT_PRESETS[p] }));
  lab.write(yamlLines([
    'nodes:', '  sa: { kind: netns }', '  sb: { kind: netns }',
    ...nats.flatMap(({ p, i }) => [`  p${i}: { kind: router, nat: ${p} }`, `  x${i}: { kind: netns }`, `  y${i}: { kind: netns }`]),
    'bridges:', `  wan: { subnet: 198.51.100.0/24, attach: [sa, sb, ${nats.map(({ i }) => `p${i}`).join(', ')}] }`,
    ...nats.map(({ i }) => `  h${i}: { subnet: 10.8.${i}.0/24, gateway: p${i}, attach: [p${i}, x${i}, y${i}] }`),
  ]));
  await lab.apply();
  try {
    await reflector(lab.ns('sa'), [3478, 3479], [3478, 3479]);
    await reflector(lab.ns('sb'), [3479], [3479]);
    const sa = lab.ip('sa', 'wan');
    const tcpLock = new Mutex();
    const bad: string[] = [];
    await pool(
      nats.map(({ p, i, spec }) => async () => {
        const bind = 32000 + 10 * i;
        if (!spec) {
          // none: routed, not translated; anyone upstream reaches the node.
          const m = await measure(lab, `x${i}`, bind, tcpLock);
          const own = lab.ip(`x${i}`, `h${i}`);
          const mine = [...m.udp, ...m.tcp].every((e) => ipOfEp(e) === own);
          report(t, `${p}: reflectors see ${m.udp[0]} (node ${own}); inbound udp A:q ${m.udpFilter.Aq} B:p ${m.udpFilter.Bp}`);
          if (!mine || !m.udpFilter.Aq || !m.udpFilter.Bp) bad.push(`${p}: ${JSON.stringify(m)}`);
          return;
        }
        const m = await measure(lab, `x${i}`, bind, tcpLock);
        const mm = mismatches(spec, m, lab.ip(`p${i}`, 'wan'), bind);
        // Hairpin: y learns its mapping, x sends to it through the router's public address.
        const y = bg(lab.ns(`y${i}`), ['listen', '--bind', String(bind + 5), '--first', `${sa}:3478`, '--ms', '3000']);
        const my = (await y.wait((l) => typeof l.data === 'string' && l.data.startsWith('mapped '))).data.slice(7) as string;
        const mx = (await stun1(lab.ns(`x${i}`), ['map', '--proto', 'udp', '--bind', String(bind + 6), `${sa}:3478`])).mapped[`${sa}:3478`] as string;
        await stun(lab.ns(`x${i}`), ['send', '--bind', String(bind + 6), my, '--data', 'hairpin']);
        const got = (await y.done).find((l) => l.data === 'hairpin');
        const hairpinOk = spec.hairpin ? got?.from === mx : got === undefined;
        report(t, `${p}: udp ${m.udp.map(portOf).join('/')} tcp ${m.tcp.map(portOf).join('/')}; udp A:q ${m.udpFilter.Aq} B:p ${m.udpFilter.Bp}; tcp A:q ${m.tcpFilter.Aq} B:p ${m.tcpFilter.Bp}; hairpin ${got ? `arrived from ${got.from} (x's mapping ${mx})` : 'did not arrive'}`);
        if (!hairpinOk) mm.push(`hairpin ${spec.hairpin ? 'on' : 'off'}: ${got ? `arrived from ${got.from}, x's mapping ${mx}` : 'did not arrive'}`);
        bad.push(...mm.map((x) => `${p}: ${x}`));
      }),
      4,
    );
    assert.deepEqual(bad, [], 'every preset behaves as its values say');
  } finally {
    stopAll();
  }
}, { timeoutMs: 180_000 });

/** The hole-punching table of docs/nat.md (markdown), from results by preset pair. */
function punchTable(presets: string[], result: (a: string, b: string) => boolean): string {
  const rows = [`| behind \\ peer behind | ${presets.join(' | ')} |`, `| --- | ${presets.map(() => '---').join(' | ')} |`];
  for (const a of presets) rows.push(`| **${a}** | ${presets.map((b) => (result(a, b) ? 'yes' : 'no')).join(' | ')} |`);
  return rows.join('\n');
}

/**
 * Presets whose NAT drops an unsolicited SYN (filtering not endpoint-independent): TCP
 * simultaneous open is measured between these. Behind full-cone or no NAT the first SYN
 * reaches a peer whose socket is not connecting yet, its kernel answers RST, and the
 * attempt dies (a race of the probe, not a property of the NAT; docs/nat.md says so).
 */
const TCP_PRESETS = PRESETS.filter((p) => NAT_PRESETS[p] && NAT_PRESETS[p]!.filtering !== EI);

/** docs/nat.md's markers around the table of a protocol. */
const marks = (proto: string) => [`<!-- holepunch-${proto}:begin (generated by test/e2e/nat.test.ts) -->`, `<!-- holepunch-${proto}:end -->`];

labTest('hole punching: UDP and TCP between peers behind every pair of presets through a rendezvous succeed or fail as the known matrix says; docs/nat.md shows the measured tables', async (lab, t) => {
  const behaviour = (p: string): Behaviour => (NAT_PRESETS[p] ? { mapping: NAT_PRESETS[p]!.mapping, filtering: NAT_PRESETS[p]!.filtering } : null);
  lab.write(yamlLines([
    'nodes:', '  rv: { kind: netns }',
    ...PRESETS.flatMap((p, i) => [`  a${i}: { kind: router, nat: ${p} }`, `  b${i}: { kind: router, nat: ${p} }`, `  pa${i}: { kind: netns }`, `  pb${i}: { kind: netns }`]),
    'bridges:', `  wan: { subnet: 198.51.100.0/24, attach: [rv, ${PRESETS.map((_, i) => `a${i}, b${i}`).join(', ')}] }`,
    ...PRESETS.flatMap((_, i) => [`  la${i}: { subnet: 10.6.${i}.0/24, gateway: a${i}, attach: [a${i}, pa${i}] }`, `  lb${i}: { subnet: 10.7.${i}.0/24, gateway: b${i}, attach: [b${i}, pb${i}] }`]),
  ]));
  await lab.apply();
  try {
    await reflector(lab.ns('rv'), [3478], [3478]);
    const rv = `${lab.ip('rv', 'wan')}:3478`;
    const pairs: [number, number][] = [];
    for (let i = 0; i < PRESETS.length; i++) for (let j = i; j < PRESETS.length; j++) pairs.push([i, j]);
    const t0 = Date.now();
    const punch = async (proto: string, i: number, j: number, bind: number, k: number) => {
      const args = (id: string, peer: string) => ['punch', '--proto', proto, '--bind', String(bind), '--rendezvous', rv, '--id', id, '--peer', peer, '--ms', '2500'];
      const [x, y] = await Promise.all([stun1(lab.ns(`pa${i}`), args(`a${k}`, `b${k}`)), stun1(lab.ns(`pb${j}`), args(`b${k}`, `a${k}`))]);
      return { ok: x.result === 'success' && y.result === 'success', x, y };
    };
    const results = await pool(
      pairs.map(([i, j], k) => async () => {
        const tcpToo = TCP_PRESETS.includes(PRESETS[i]) && TCP_PRESETS.includes(PRESETS[j]);
        const [udp, tcp] = await Promise.all([punch('udp', i, j, 34000 + k, k), tcpToo ? punch('tcp', i, j, 35000 + k, k) : undefined]);
        return { i, j, udp, tcp };
      }),
      4,
    );
    const ms = Date.now() - t0;
    const bad: string[] = [];
    const docs0 = readFileSync(DOCS, 'utf8');
    let docs = docs0;
    for (const proto of ['udp', 'tcp'] as const) {
      const measured = new Map<string, boolean>();
      for (const r of results) {
        const [a, b] = [PRESETS[r.i], PRESETS[r.j]];
        const got = r[proto];
        if (!got) continue;
        measured.set(`${a}|${b}`, got.ok);
        measured.set(`${b}|${a}`, got.ok);
        const known = (proto === 'udp' ? predictPunch : predictTcpPunch)(behaviour(a), behaviour(b));
        if (got.ok !== known) bad.push(`${proto} ${a} x ${b}: measured ${got.ok ? 'success' : 'failure'}, known ${known ? 'success' : 'failure'} (${JSON.stringify(got.x)} ${JSON.stringify(got.y)})`);
      }
      const table = punchTable(proto === 'udp' ? PRESETS : TCP_PRESETS, (a, b) => measured.get(`${a}|${b}`)!);
      report(t, `${proto.toUpperCase()} hole punching:\n${table}`);
      const [mb, me] = marks(proto);
      const begin = docs.indexOf(mb);
      const end = docs.indexOf(me);
      assert.ok(begin >= 0 && end > begin, `docs/nat.md has the markers ${mb} ... ${me}`);
      docs = docs.slice(0, begin) + `${mb}\n${table}\n${me}` + docs.slice(end + me.length);
    }
    report(t, `${pairs.length} preset pairs, UDP and TCP, in ${ms} ms`);
    assert.deepEqual(bad, [], 'measured outcomes match the known matrix');
    if (process.env.PROVIUM_WRITE_DOCS === '1') writeFileSync(DOCS, docs);
    else assert.equal(docs0, docs, 'docs/nat.md shows the measured tables (PROVIUM_WRITE_DOCS=1 rewrites them)');
  } finally {
    stopAll();
  }
}, { timeoutMs: 180_000 });

labTest('double NAT: a home router behind a CGNAT; the reflector sees the CGNAT\'s public address, the home router sees its address in 100.64.0.0/10', async (lab, t) => {
  lab.write(yamlLines([
    'nodes:',
    '  isp: { kind: router, nat: cgnat }',
    '  home: { kind: router, nat: home }',
    '  alice: { kind: netns }',
    '  stun: { kind: netns }',
    'bridges:',
    '  wan: { subnet: 198.51.100.0/24, attach: [isp, stun] }',
    '  cgn: { subnet: 100.64.0.0/24, gateway: isp, attach: [isp, home] }',
    '  lan: { subnet: 192.168.1.0/24, gateway: home, attach: [home, alice] }',
  ]));
  await lab.apply();
  try {
    await reflector(lab.ns('stun'), [3478], [3478]);
    const s = `${lab.ip('stun', 'wan')}:3478`;
    const udp = (await stun1(lab.ns('alice'), ['map', '--proto', 'udp', '--bind', '40000', s])).mapped[s] as string;
    const tcp = (await stun1(lab.ns('alice'), ['map', '--proto', 'tcp', '--bind', '40001', s])).mapped[s] as string;
    const fromHome = (await stun1(lab.ns('home'), ['map', '--proto', 'udp', '--bind', '40002', s])).mapped[s] as string;
    report(t, `alice (192.168.1.x behind home behind isp) -> reflector sees udp ${udp}, tcp ${tcp}; home itself is seen as ${fromHome}; isp's public address ${lab.ip('isp', 'wan')}, home's ${lab.ip('home', 'cgn')}`);
    assert.equal(ipOfEp(udp), lab.ip('isp', 'wan'), 'UDP leaves with the CGNAT\'s public address');
    assert.equal(ipOfEp(tcp), lab.ip('isp', 'wan'), 'TCP too');
    assert.equal(ipOfEp(fromHome), lab.ip('isp', 'wan'), 'the home router itself is behind the CGNAT');
    const routes = await stun1(lab.ns('stun'), ['connect', `${lab.ip('home', 'cgn')}:22`, '--ms', '500']);
    assert.notEqual(routes.result, 'connected', 'the shared address space is not reachable from outside');
  } finally {
    stopAll();
  }
});

/** Bare IPv6 address of node on bridge in the lab's current file. */
function ip6(lab: Lab, node: string, bridge: string): string {
  const a = topologyOf(readFileSync(lab.file, 'utf8')).bridges[bridge].attach.find((x) => x.node === node);
  if (!a?.ip6) throw new Error(`no IPv6 address for ${node} on ${bridge}`);
  return a.ip6.split('/')[0];
}

labTest('firewalls, IPv4 and IPv6 (routed, not translated): block-inbound beats full-cone filtering, corporate allows only TCP 80/443 and UDP 53 out, an allow list opens exactly its ports', async (lab, t) => {
  lab.write(yamlLines([
    'nodes:',
    '  s: { kind: netns }',
    '  f1: { kind: router, nat: full-cone, firewall: block-inbound }',
    '  f2: { kind: router, nat: none, firewall: corporate }',
    '  f3: { kind: router, nat: full-cone, firewall: { outbound_udp: [3478], inbound_udp: [7000] } }',
    '  c1: { kind: netns }',
    '  c2: { kind: netns }',
    '  c3: { kind: netns }',
    'bridges:',
    '  wan: { subnet: 198.51.100.0/24, subnet6: "2001:db8:100::/64", attach: [s, f1, f2, f3] }',
    '  l1: { subnet: 10.5.1.0/24, subnet6: "2001:db8:1::/64", gateway: f1, attach: [f1, c1] }',
    '  l2: { subnet: 10.5.2.0/24, subnet6: "2001:db8:2::/64", gateway: f2, attach: [f2, c2] }',
    '  l3: { subnet: 10.5.3.0/24, subnet6: "2001:db8:3::/64", gateway: f3, attach: [f3, c3] }',
  ]));
  await lab.apply();
  try {
    await reflector(lab.ns('s'), [53, 3478, 3479], [443, 3478]);
    const s4 = lab.ip('s', 'wan');
    const s6 = ip6(lab, 's', 'wan');
    const results: Record<string, unknown> = {};
    /** Which of the sources (sent to the mapping after the client's first packet) reach a listening client. */
    const inbound = async (c: string, bind: number, first: string, srcPort: number, to?: (m: string) => string) => {
      const l = bg(lab.ns(c), ['listen', '--bind', String(bind), '--first', first, '--ms', '2500']);
      const m = (await l.wait((x) => typeof x.data === 'string' && x.data.startsWith('mapped '))).data.slice(7) as string;
      await stun(lab.ns('s'), ['send', '--bind', String(srcPort), to ? to(m) : m, '--data', 'unsolicited']);
      const lines = await l.done;
      return { mapped: m, answer: lines.some((x) => x.from === first), unsolicited: lines.some((x) => x.data === 'unsolicited') };
    };
    const seen = async (c: string, proto: string, bind: number, target: string) => (await stun1(lab.ns(c), ['map', '--proto', proto, '--bind', String(bind), '--timeout', '1000', target])).mapped[target] as string;

    const c2 = lab.ip('c2', 'l2');
    // The three routers are independent: checked at once (each client's steps in order).
    await Promise.all([
      (async () => {
        // f1: full-cone NAT (endpoint-independent filtering) under block-inbound.
        results.f1v4 = await inbound('c1', 7000, `${s4}:3478`, 3999);
        results.f1v6 = await inbound('c1', 7001, `${s6}:3478`, 3999);
        results.f1v6seen = await seen('c1', 'udp', 7002, `${s6}:3478`);
        results.f1tcp6 = (await stun1(lab.ns('s'), ['connect', `${ip6(lab, 'c1', 'l1')}:22`, '--ms', '800'])).result;
      })(),
      (async () => {
        // f2: no NAT, corporate firewall.
        results.f2 = {
          udp53: await seen('c2', 'udp', 7010, `${s4}:53`), udp3478: await seen('c2', 'udp', 7011, `${s4}:3478`),
          tcp443: await seen('c2', 'tcp', 7012, `${s4}:443`), tcp3478: await seen('c2', 'tcp', 7013, `${s4}:3478`),
          udp53v6: await seen('c2', 'udp', 7014, `${s6}:53`), udp3478v6: await seen('c2', 'udp', 7015, `${s6}:3478`),
          inboundTcp: (await stun1(lab.ns('s'), ['connect', `${c2}:22`, '--ms', '800'])).result,
        };
      })(),
      (async () => {
        // f3: full-cone NAT, outbound UDP only to 3478, inbound UDP only to 7000.
        results.f3 = {
          udp3478: await seen('c3', 'udp', 7020, `${s4}:3478`), udp3479: await seen('c3', 'udp', 7021, `${s4}:3479`), tcp443: await seen('c3', 'tcp', 7022, `${s4}:443`),
          in7000: await inbound('c3', 7000, `${s4}:3478`, 3997), in7001: await inbound('c3', 7001, `${s4}:3478`, 3997),
          in7000v6: await inbound('c3', 7000, `${s6}:3478`, 3998), in7001v6: await inbound('c3', 7001, `${s6}:3478`, 3998),
        };
      })(),
    ]);
    report(t, JSON.stringify(results, null, 1));
    const r = results as any;
    assert.deepEqual([r.f1v4.answer, r.f1v4.unsolicited], [true, false], 'f1 IPv4: the reflector\'s answer arrives, a packet from another port of the same host does not (full cone would let it in)');
    assert.deepEqual([r.f1v6.answer, r.f1v6.unsolicited], [true, false], 'f1 IPv6: likewise');
    assert.equal(r.f1v6seen, `${ip6(lab, 'c1', 'l1')}:7002`, 'IPv6 is routed, not translated: the reflector sees the node\'s own address and port');
    assert.equal(r.f1tcp6, 'timeout', 'f1: a TCP SYN from upstream to the node\'s IPv6 address is dropped');
    assert.equal(r.f2.udp53, `${c2}:7010`, 'f2: UDP 53 out, routed (own address)');
    assert.equal(r.f2.udp3478, 'none', 'f2: UDP 3478 out is blocked');
    assert.equal(r.f2.tcp443, `${c2}:7012`, 'f2: TCP 443 out');
    assert.match(r.f2.tcp3478, /timeout/, 'f2: TCP 3478 out is blocked');
    assert.equal(r.f2.udp53v6, `${ip6(lab, 'c2', 'l2')}:7014`, 'f2: UDP 53 out over IPv6');
    assert.equal(r.f2.udp3478v6, 'none', 'f2: UDP 3478 out over IPv6 is blocked');
    assert.equal(r.f2.inboundTcp, 'timeout', 'f2: unsolicited inbound to a routed address is dropped');
    assert.equal(ipOfEp(r.f3.udp3478), lab.ip('f3', 'wan'), 'f3: UDP 3478 out, translated');
    assert.equal(r.f3.udp3479, 'none', 'f3: UDP 3479 out is blocked');
    assert.equal(ipOfEp(r.f3.tcp443), lab.ip('f3', 'wan'), 'f3: TCP is not restricted');
    assert.deepEqual([r.f3.in7000.unsolicited, r.f3.in7001.unsolicited], [true, false], 'f3 IPv4: inbound to port 7000 only');
    assert.deepEqual([r.f3.in7000v6.unsolicited, r.f3.in7001v6.unsolicited], [true, false], 'f3 IPv6: inbound to port 7000 only');
  } finally {
    stopAll();
  }
}, { timeoutMs: 180_000 });

labTest('multi-homed: a default-route switch is one route change and a replug moves the port in place; the reflector sees the new external address after each', async (lab, t) => {
  const file = (bobRoute: string, carolOn: string) => yamlLines([
    'nodes:',
    '  ra: { kind: router, nat: home }',
    '  rb: { kind: router, nat: corporate }',
    `  bob: { kind: netns, default_route: ${bobRoute} }`,
    '  carol: { kind: netns }',
    '  s: { kind: netns }',
    'bridges:',
    '  wan: { subnet: 198.51.100.0/24, attach: [ra, rb, s] }',
    `  la: { subnet: 10.4.1.0/24, gateway: ra, attach: [ra, bob${carolOn === 'la' ? ', carol' : ''}] }`,
    `  lb: { subnet: 10.4.2.0/24, gateway: rb, attach: [rb, bob${carolOn === 'lb' ? ', carol' : ''}] }`,
  ]);
  lab.write(file('la', 'la'));
  await lab.apply();
  try {
    await reflector(lab.ns('s'), [3478], []);
    const s = `${lab.ip('s', 'wan')}:3478`;
    const seen = async (n: string, bind: number) => (await stun1(lab.ns(n), ['map', '--bind', String(bind), s])).mapped[s] as string;
    const [ra, rb] = [lab.ip('ra', 'wan'), lab.ip('rb', 'wan')];
    const bob1 = await seen('bob', 40000);
    const carol1 = await seen('carol', 40001);

    lab.write(file('lb', 'la'));
    const p1 = await lab.planJson();
    const c1 = p1.changes.map((c) => `${c.action} ${c.address}`);
    const t1 = Date.now();
    await lab.apply();
    const a1 = Date.now() - t1;
    const bob2 = await seen('bob', 40002);

    const port = `${lab.name}-carol-0`;
    const ifindex = async () => (JSON.parse((await lab.inHost(['ip', '-j', 'link', 'show', 'dev', port])).stdout) as { ifindex: number }[])[0].ifindex;
    const before = await ifindex();
    lab.write(file('lb', 'lb'));
    const p2 = await lab.planJson();
    const c2 = p2.changes.map((c) => `${c.action} ${c.address}${(c as { moved_from?: string }).moved_from ? ` (moved from ${(c as { moved_from?: string }).moved_from})` : ''}`);
    const t2 = Date.now();
    await lab.apply();
    const a2 = Date.now() - t2;
    const carol2 = await seen('carol', 40003);
    const after = await ifindex();
    report(t, `ra ${ra}, rb ${rb}; bob ${bob1} -> switch [${c1.join(', ')}] in ${a1} ms -> ${bob2}; carol ${carol1} -> replug [${c2.join(', ')}] in ${a2} ms -> ${carol2}; port ifindex ${before} -> ${after}`);
    assert.equal(ipOfEp(bob1), ra);
    assert.deepEqual(c1, ['update node.bob.routes'], 'the switch is one route change');
    assert.equal(ipOfEp(bob2), rb, 'after the switch the reflector sees rb');
    assert.equal(ipOfEp(carol1), ra);
    // carol's new address is also written into every node's hosts file (in place).
    assert.deepEqual(c2.filter((c) => !c.endsWith('.hosts')), ['update bridge.lb.attach.carol (moved from bridge.la.attach.carol)', 'update node.carol.routes'], 'the replug moves the port and changes the route, nothing is re-created');
    assert.ok(c2.filter((c) => c.endsWith('.hosts')).every((c) => c.startsWith('update ')), 'hosts files are rewritten in place');
    assert.equal(after, before, 'the same veth port, moved to the other bridge');
    assert.equal(ipOfEp(carol2), rb, 'after the replug the reflector sees rb');
    assert.equal((await lab.planCode()).code, 0);
  } finally {
    stopAll();
  }
});

labTest('mapping timeouts are honoured (udp_timeout_s: 3), and an in-place NAT change holds at once: the old mappings and conntrack entries are gone', async (lab, t) => {
  const file = (nat: string) => yamlLines([
    'nodes:',
    `  r: { kind: router, nat: ${nat} }`,
    '  c: { kind: netns }',
    '  s: { kind: netns }',
    '  s2: { kind: netns }',
    'bridges:',
    '  wan: { subnet: 198.51.100.0/24, attach: [r, s, s2] }',
    '  lan: { subnet: 192.168.1.0/24, gateway: r, attach: [r, c] }',
  ]);
  lab.write(file('{ preset: full-cone, udp_timeout_s: 3, port_preservation: false }'));
  await lab.apply();
  try {
    await reflector(lab.ns('s'), [3478], []);
    const s = `${lab.ip('s', 'wan')}:3478`;
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    // Mapping lifetime: inbound 1 s after the last outbound packet arrives, 4.5 s after it does not.
    const l = bg(lab.ns('c'), ['listen', '--bind', '7100', '--first', s, '--ms', '7000']);
    const m = (await l.wait((x) => typeof x.data === 'string' && x.data.startsWith('mapped '))).data.slice(7) as string;
    const t0 = Date.now();
    await sleep(1000);
    await stun(lab.ns('s2'), ['send', '--bind', '3478', m, '--data', 'early']);
    await sleep(Math.max(0, 4500 - (Date.now() - t0)));
    await stun(lab.ns('s2'), ['send', '--bind', '3478', m, '--data', 'late']);
    const lines = await l.done;
    const again = (await stun1(lab.ns('c'), ['map', '--bind', '7100', s])).mapped[s] as string;
    const early = lines.some((x) => x.data === 'early');
    const late = lines.some((x) => x.data === 'late');
    report(t, `udp_timeout_s 3: mapping ${m}; inbound after ~1 s ${early ? 'arrived' : 'lost'}, after ~4.5 s ${late ? 'arrived' : 'lost'}; the same local port maps to ${again} afterwards`);
    assert.equal(early, true, 'within the timeout the full-cone mapping takes inbound packets');
    assert.equal(late, false, 'after the timeout the mapping is gone');
    assert.notEqual(portOf(again), portOf(m), 'a new mapping (no port preservation: a new random port)');

    // In-place change full-cone -> corporate while a flow and its inbound conntrack entry exist.
    const l2 = bg(lab.ns('c'), ['listen', '--bind', '7200', '--first', s, '--ms', '6000']);
    const m2 = (await l2.wait((x) => typeof x.data === 'string' && x.data.startsWith('mapped '))).data.slice(7) as string;
    await stun(lab.ns('s2'), ['send', '--bind', '3478', m2, '--data', 'before']);
    lab.write(file('{ preset: corporate, udp_timeout_s: 30 }'));
    const plan = await lab.planJson();
    const t1 = Date.now();
    await lab.apply();
    const applyMs = Date.now() - t1;
    await stun(lab.ns('s2'), ['send', '--bind', '3478', m2, '--data', 'after']);
    const lines2 = await l2.done;
    const m3 = (await stun1(lab.ns('c'), ['map', '--bind', '7200', s])).mapped[s] as string;
    report(t, `change to corporate: [${plan.changes.map((c) => `${c.action} ${c.address}`).join(', ')}], commands [${plan.commands.map((c) => c.label).join(', ')}], applied in ${applyMs} ms; inbound before ${lines2.some((x) => x.data === 'before')}, after ${lines2.some((x) => x.data === 'after')}; mapping ${m2} -> ${m3}`);
    assert.deepEqual(plan.changes.map((c) => `${c.action} ${c.address}`), ['update node.r.nat']);
    assert.ok(plan.commands.some((c) => c.label.endsWith('conntrack flush')), 'conntrack is flushed');
    assert.equal(lines2.some((x) => x.data === 'before'), true, 'full cone: inbound from another host arrives');
    assert.equal(lines2.some((x) => x.data === 'after'), false, 'right after the change, the same sender is filtered (its conntrack entry was flushed)');
    assert.notEqual(portOf(m3), portOf(m2), 'the existing flow gets a new mapping at once');
  } finally {
    stopAll();
  }
});

labTest('example holepunch.yaml: alice (home) and bob (cgnat) punch through, alice and carol (corporate) do not; with corp on nat: home they do', async (lab, t) => {
  const example = readFileSync(fileURLToPath(new URL('../../../examples/holepunch.yaml', import.meta.url)), 'utf8');
  const write = (text: string) => lab.write(text.replace(/^lab:.*\n/m, ''));
  write(example);
  await lab.apply();
  try {
    await reflector(lab.ns('relay'), [3478], [3478]);
    const rv = `${lab.ip('relay', 'inet')}:3478`;
    assert.equal(rv, '198.51.100.197:3478', 'the address examples/README.md gives');
    const mapped = (await stun1(lab.ns('alice'), ['map', '--bind', '40000', rv])).mapped[rv];
    const punch = async (x: string, y: string, bind: number) => {
      const args = (id: string, peer: string) => ['punch', '--bind', String(bind), '--rendezvous', rv, '--id', id, '--peer', peer, '--ms', '2500'];
      const [a, b] = await Promise.all([stun1(lab.ns(x), args(`${x}${bind}`, `${y}${bind}`)), stun1(lab.ns(y), args(`${y}${bind}`, `${x}${bind}`))]);
      return a.result === 'success' && b.result === 'success';
    };
    const [ab, ac] = await Promise.all([punch('alice', 'bob', 40001), punch('alice', 'carol', 40002)]);
    write(example.replace('corp:  { kind: router, nat: corporate }', 'corp:  { kind: router, nat: home }'));
    const plan = await lab.planJson();
    await lab.apply();
    const ac2 = await punch('alice', 'carol', 40003);
    report(t, `alice mapped ${mapped}; alice<->bob ${ab}, alice<->carol ${ac}; after [${plan.changes.map((c) => `${c.action} ${c.address}`).join(', ')}] alice<->carol ${ac2}`);
    assert.equal(mapped, '198.51.100.192:40000', 'alice is seen at home\'s address with her own port (port preservation)');
    assert.equal(ab, true, 'home x cgnat: both endpoint-independent mappings');
    assert.equal(ac, false, 'home x corporate: symmetric mapping against port-restricted filtering');
    assert.deepEqual(plan.changes.map((c) => `${c.action} ${c.address}`), ['update node.corp.nat']);
    assert.equal(ac2, true, 'home x home');
  } finally {
    stopAll();
  }
});
