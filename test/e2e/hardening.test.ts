/**
 * Trust boundaries (issue 10), end to end: a saved plan runs only what provium itself
 * computes; the state directory cannot be turned against the host; a corrupt record or
 * journal does not stop apply; two labs in one host namespace keep each other's
 * forwarding; a lab remembers its host namespace; names resolve for unprivileged users
 * inside a node. Each test fails on provium before the fix. Proven with traffic, the
 * files outside the state directory, and the trace of host commands.
 */
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { labTest, run, must, ping, report, isReadOnly, listNetns, rand, Lab } from './helpers.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

const TWO = (net: number) => `
  nodes: { a: { kind: netns }, b: { kind: netns } }
  bridges:
    lan: { subnet: 10.${net}.0.0/24, attach: [a, b] }
`;

labTest('saved plan: an edited argv, an appended invocation with files, a changed text, another lab, or a plan file others could write are refused before anything runs; the untouched plan applies', async (lab, t) => {
  lab.write(TWO(71));
  const planFile = join(lab.dir, 'p.json');
  const p = await lab.provium(['plan', '--out', planFile]);
  assert.equal(p.code, 0, p.stderr);
  const saved = JSON.parse(readFileSync(planFile, 'utf8'));
  const marker = join(lab.dir, `PWNED-${rand(6)}`);
  const variant = (name: string, edit: (doc: any) => void): string => {
    const doc = JSON.parse(JSON.stringify(saved));
    edit(doc);
    const f = join(lab.dir, `${name}.json`);
    writeFileSync(f, JSON.stringify(doc), { mode: 0o600 });
    return f;
  };
  const refused = async (f: string, why: RegExp, what: string) => {
    lab.clearTrace();
    const r = await lab.provium(['apply', f], { file: false });
    assert.equal(r.code, 1, `${what}: refused (exit 1):\n${r.stdout}${r.stderr}`);
    assert.match(r.stderr, why, `${what}: says why`);
    assert.deepEqual(lab.trace().filter((l) => !isReadOnly(l)).map((l) => l.argv.join(' ')), [], `${what}: no changing command ran`);
    assert.equal(existsSync(marker), false, `${what}: the injected command did not run`);
    report(t, `${what}: ${r.stderr.split('\n').filter((l) => /^(error|hint):/.test(l)).join(' / ').slice(0, 300)}`);
  };
  const k = saved.invocations.findIndex((i: { label: string }) => i.label.startsWith('namespace '));
  await refused(variant('argv', (d) => (d.invocations[k].argv = ['touch', marker])), /invocation \d+ differs in argv/, 'an edited argv');
  await refused(variant('appended', (d) => d.invocations.push({ argv: ['touch', marker], label: 'x', writeFiles: [{ path: marker, content: 'x' }] })), /which provium does not compute/, 'an appended invocation with files');
  await refused(variant('text', (d) => (d.sources[0].text += '# edited\n')), /does not match its sha256/, 'an edited topology text (stale sha256)');
  await refused(variant('text2', (d) => {
    d.sources[0].text = d.sources[0].text.replace('attach: [a, b] }', 'attach: [a, b], partitions: [[a, b]] }');
    d.sources[0].sha256 = sha(d.sources[0].text);
  }), /differs|provium computes/, 'an edited topology text with a matching sha256');
  await refused(variant('lab', (d) => (d.lab = 'other')), /the plan file says lab other/, 'another lab name');
  const loose = variant('loose', () => undefined);
  chmodSync(loose, 0o666);
  await refused(loose, /writable by group\/others/, 'a plan file mode 0666');
  chownSync(loose, 65534, 65534);
  chmodSync(loose, 0o600);
  await refused(loose, /owned by uid 65534, not by root/, 'a plan file owned by another user');

  const a = await lab.provium(['apply', planFile], { file: false });
  assert.equal(a.code, 0, `the untouched saved plan applies:\n${a.stdout}${a.stderr}`);
  assert.equal((await ping(lab.ns('a'), lab.ip('b', 'lan'))).received, 3, 'and the lab works');
});

labTest('state directory: a state root others can write is refused; planted symbolic links make provium stop, naming the path, instead of writing through them', async (lab, t) => {
  lab.write(`
    nodes: { a: { kind: netns }, b: { kind: netns } }
    bridges:
      lan: { subnet: 10.72.0.0/24, dns: true, attach: [a, b] }
  `);
  mkdirSync(lab.stateDir);
  chownSync(lab.stateDir, 65534, 65534);
  chmodSync(lab.stateDir, 0o777);
  const r = await lab.provium(['apply', '--auto-approve']);
  assert.equal(r.code, 1, `a state root owned by uid 65534, mode 0777, is refused:\n${r.stdout}${r.stderr}`);
  assert.ok(r.stderr.includes(lab.stateDir), 'naming it');
  assert.deepEqual(listNetns().filter((n) => n.startsWith(`pv-${lab.name}-`)), [], 'nothing was created');
  report(t, r.stderr.trim().split('\n').slice(0, 2).join(' / '));
  rmSync(lab.stateDir, { recursive: true });

  // Links planted where provium keeps dnsmasq's config and log.
  const dns = join(lab.stateDir, lab.name, 'dnsmasq');
  mkdirSync(dns, { recursive: true, mode: 0o700 });
  for (const d of [lab.stateDir, join(lab.stateDir, lab.name), dns]) chmodSync(d, 0o700);
  const victim = (n: string) => join(lab.dir, `victim-${n}`);
  for (const n of ['conf', 'log']) writeFileSync(victim(n), 'precious\n');
  symlinkSync(victim('conf'), join(dns, 'lan.conf'));
  symlinkSync(victim('log'), join(dns, 'lan.log'));
  const s = await lab.provium(['apply', '--auto-approve']);
  assert.equal(s.code, 1, `planted links stop provium:\n${s.stdout}${s.stderr}`);
  assert.match(s.stderr, new RegExp(`${join(dns, 'lan.conf')}.*symbolic link`), 'naming the link');
  for (const n of ['conf', 'log']) assert.equal(readFileSync(victim(n), 'utf8'), 'precious\n', `the ${n} file outside is untouched`);
  report(t, s.stderr.trim().split('\n').slice(0, 2).join(' / '));
  rmSync(join(dns, 'lan.conf'));
  await lab.apply();
  for (const n of ['conf', 'log']) assert.equal(readFileSync(victim(n), 'utf8'), 'precious\n', `the ${n} file outside is still untouched after apply`);
  const log = statSync(join(dns, 'lan.log'));
  assert.ok(log.isFile() && log.nlink === 1, 'dnsmasq logs to a file provium made');
});

labTest('a corrupt journal and an empty record: apply warns, naming each file and what it does instead, and succeeds', async (lab) => {
  lab.write(TWO(73));
  const dir = join(lab.stateDir, lab.name);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(lab.stateDir, 0o700);
  writeFileSync(join(dir, 'pending-netns.json'), '["pv-x', { mode: 0o600 });
  writeFileSync(join(dir, 'state.json'), '', { mode: 0o600 });
  const r = await lab.provium(['apply', '--auto-approve']);
  assert.equal(r.code, 0, `apply succeeds:\n${r.stdout}${r.stderr}`);
  assert.match(r.stderr, new RegExp(`warning: ${join(dir, 'pending-netns.json')} is not valid JSON .*ignored`));
  assert.match(r.stderr, new RegExp(`warning: ${join(dir, 'state.json')} is empty: ignored`));
  assert.equal((await ping(lab.ns('a'), lab.ip('b', 'lan'))).received, 3);
  assert.deepEqual(JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')).hostNetns, lab.hostNs, 'the record is written again');
  assert.equal((await lab.planCode()).code, 0, 'and the next plan is clean, without warnings');
});

const ROUTED = (n: number) => `
  nodes: { a: { kind: netns }, b: { kind: netns } }
  bridges:
    lan: { subnet: 10.${n}.0.0/24, subnet6: "fd00:${n}::/64", attach: [a], routes: [data] }
    data: { subnet: 10.${n + 1}.0.0/24, subnet6: "fd00:${n + 1}::/64", attach: [b] }
`;

labTest('two routed labs in one host namespace: destroying the first keeps IPv4 and IPv6 forwarding for the second (ping 3/3 before and after); the last one restores the values found', async (first, t) => {
  const second = new Lab();
  Object.assign(second, { hostNs: first.hostNs, stateDir: first.stateDir });
  const sysctl = async (k: string) => (await first.inHost(['sysctl', '-n', k])).stdout.trim();
  await must(['ip', 'netns', 'exec', first.hostNs, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.forwarding=0']);
  try {
    first.write(ROUTED(74));
    second.write(ROUTED(76));
    await first.apply();
    await second.apply();
    const b2 = second.ip('b', 'data');
    const b2v6 = 'fd00:77::' + (await must(['ip', '-n', second.ns('b'), '-j', '-6', 'addr', 'show', 'dev', 'eth0', 'scope', 'global'])).stdout.match(/"local":"fd00:77::([0-9a-f:]+)"/)![1];
    const before = [(await ping(second.ns('a'), b2)).received, (await ping(second.ns('a'), b2v6)).received];
    assert.deepEqual(before, [3, 3], 'the second lab routes IPv4 and IPv6');
    const d = await first.provium(['destroy', '--auto-approve']);
    assert.equal(d.code, 0, d.stderr);
    const after = [(await ping(second.ns('a'), b2)).received, (await ping(second.ns('a'), b2v6)).received];
    report(t, `second lab: ping IPv4/IPv6 ${before.join('/')} of 3 before, ${after.join('/')} of 3 after destroying the first; ip_forward ${await sysctl('net.ipv4.ip_forward')}, IPv6 forwarding ${await sysctl('net.ipv6.conf.all.forwarding')}`);
    assert.deepEqual(after, [3, 3], 'still routes after the first lab is destroyed');
    assert.equal((await second.provium(['plan', '--detailed-exitcode'])).code, 0, 'and its plan shows no drift');
    const e = await second.provium(['destroy', '--auto-approve']);
    assert.equal(e.code, 0, e.stderr);
    assert.equal(await sysctl('net.ipv4.ip_forward'), '0', 'the last lab restores ip_forward as found');
    assert.equal(await sysctl('net.ipv6.conf.all.forwarding'), '0', 'and IPv6 forwarding');
    assert.equal(existsSync(join(first.stateDir, '_hostns')), false, 'nothing left in the state directory about the namespace');
  } finally {
    await second.provium(['destroy', '--auto-approve']).catch(() => undefined);
    for (const n of listNetns().filter((x) => x.startsWith(`pv-${second.name}-`))) await run(['ip', 'netns', 'del', n]);
    rmSync(second.dir, { recursive: true, force: true });
  }
}, { timeoutMs: 180_000 });

labTest('a lab remembers its host namespace: plan, show and destroy without --netns use it (and say so); another --netns is refused, naming it', async (lab, t) => {
  lab.write(TWO(78));
  await lab.apply();
  const p = await lab.provium(['plan', '--detailed-exitcode'], { netns: false });
  assert.equal(p.code, 0, `plan without --netns finds the lab where it lives (no changes):\n${p.stdout}${p.stderr}`);
  assert.match(p.stderr, new RegExp(`lab ${lab.name} lives in namespace ${lab.hostNs}.*using --netns ${lab.hostNs}`));
  report(t, p.stderr.trim());
  const other = `pvt-${rand(8)}`;
  lab.extraNs.push(other);
  await must(['ip', 'netns', 'add', other]);
  lab.clearTrace();
  for (const cmd of [['plan'], ['apply', '--auto-approve'], ['show'], ['destroy', '--auto-approve']]) {
    const x = await lab.provium(['--netns', other, ...cmd], { netns: false });
    assert.equal(x.code, 1, `${cmd[0]} --netns ${other}: refused`);
    assert.match(x.stderr, new RegExp(`lab ${lab.name} lives in namespace ${lab.hostNs} \\(recorded when it was applied\\), not in namespace ${other}`));
  }
  assert.deepEqual(lab.trace().filter((l) => !isReadOnly(l)), [], 'nothing changed');
  assert.equal((await lab.provium(['show'], { netns: false })).code, 0, 'show without --netns');
  const d = await lab.provium(['destroy', '--auto-approve'], { netns: false });
  assert.equal(d.code, 0, `destroy without --netns:\n${d.stderr}`);
  assert.deepEqual(listNetns().filter((n) => n.startsWith(`pv-${lab.name}-`)), [], 'the lab is gone');
  assert.equal((await lab.inHost(['ip', '-j', 'link', 'show', 'dev', lab.bridge('lan')])).code, 1, 'its bridge too');
});

labTest('names inside nodes: /etc/netns/<ns> is 0755 and resolv.conf 0644, so an unprivileged user in a node resolves lab names', async (lab) => {
  lab.write(`
    nodes: { a: { kind: netns }, b: { kind: netns } }
    bridges:
      lan: { subnet: 10.79.0.0/24, dns: true, attach: [a, b] }
  `);
  await lab.apply();
  const dir = `/etc/netns/${lab.ns('a')}`;
  assert.equal(statSync(dir).mode & 0o777, 0o755);
  assert.equal(statSync(`${dir}/resolv.conf`).mode & 0o777, 0o644);
  const r = await run(['ip', 'netns', 'exec', lab.ns('a'), 'setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', 'getent', 'ahostsv4', 'b.lan']);
  assert.equal(r.code, 0, `nobody resolves b.lan inside a:\n${r.stdout}${r.stderr}`);
  assert.match(r.stdout, new RegExp(`^${lab.ip('b', 'lan').replace(/\./g, '\\.')}\\s`));
  // A folder made 0700 (as provium made them before) is drift that apply repairs.
  chmodSync(dir, 0o700);
  assert.equal((await lab.planCode()).code, 2, 'a resolv.conf not every user can read is drift');
  await lab.apply();
  assert.equal(statSync(dir).mode & 0o777, 0o755, 'apply makes the folder readable again');
  assert.equal((await run(['ip', 'netns', 'exec', lab.ns('a'), 'setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', 'getent', 'ahostsv4', 'b.lan'])).code, 0);
});
