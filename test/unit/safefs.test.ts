/**
 * The safe tree (src/host/safefs.ts), the state directory's records (src/apply/statedir.ts),
 * saved-plan checks (src/apply/planfile.ts) and the reader of other labs' forwarding
 * (observe/parse.ts forwardingLabs). Every test works in a temporary folder.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { LocalSafeFs, UnsafePathError, writeFileAtomic } from '../../src/host/safefs.js';
import { readJournal, readRecord, treeOf, updateRecord, writeRecord } from '../../src/apply/statedir.js';
import { firstDifference, PLAN_FORMAT, PLAN_KIND, planSource, readPlanFile, type PlanFile } from '../../src/apply/planfile.js';
import { forwardingLabs } from '../../src/observe/parse.js';
import type { Invocation } from '../../src/plan/types.js';

const isRoot = process.getuid?.() === 0;
const needsRoot = isRoot ? false : 'needs root to give files to another user';

function tree(t: { after: (fn: () => void) => void }): { base: string; root: string; fs: LocalSafeFs; outside: string } {
  const base = mkdtempSync(join(tmpdir(), 'pv-safe-'));
  t.after(() => {
    chmodSync(base, 0o700);
    rmSync(base, { recursive: true, force: true });
  });
  const root = join(base, 'root');
  const outside = join(base, 'outside');
  mkdirSync(outside);
  return { base, root, outside, fs: new LocalSafeFs(root, { dirMode: 0o700, fileMode: 0o600, what: 'test tree' }) };
}

test('safe tree: folders are created 0700 and files written atomically with the tree\'s mode; reads give back the text', (t) => {
  const w = tree(t);
  w.fs.write('lab/state.json', '{"a":1}\n');
  assert.equal(statSync(w.root).mode & 0o777, 0o700);
  assert.equal(statSync(join(w.root, 'lab')).mode & 0o777, 0o700);
  assert.equal(statSync(join(w.root, 'lab', 'state.json')).mode & 0o777, 0o600);
  assert.equal(w.fs.read('lab/state.json'), '{"a":1}\n');
  assert.equal(w.fs.read('lab/absent.json'), undefined);
  assert.equal(w.fs.read('nolab/x'), undefined);
  assert.deepEqual(readdirSync(join(w.root, 'lab')), ['state.json'], 'no temporary file left');
});

test('safe tree: a symbolic link is never followed: reading it is refused with the path and the fix; writing replaces the link', (t) => {
  const w = tree(t);
  w.fs.ensureDir('lab');
  const victim = join(w.outside, 'victim');
  writeFileSync(victim, 'precious\n');
  symlinkSync(victim, join(w.root, 'lab', 'f'));
  assert.throws(() => w.fs.read('lab/f'), (e: unknown) => e instanceof UnsafePathError && e.message.includes(join(w.root, 'lab', 'f')) && /symbolic link/.test(e.message) && /rm /.test(e.hint ?? ''));
  w.fs.write('lab/f', 'mine\n');
  assert.equal(readFileSync(victim, 'utf8'), 'precious\n');
  assert.ok(lstatSync(join(w.root, 'lab', 'f')).isFile());
  // A link in place of a folder on the way: refused, nothing created behind it.
  symlinkSync(w.outside, join(w.root, 'sub'));
  assert.throws(() => w.fs.write('sub/x', 'y'), (e: unknown) => e instanceof UnsafePathError && /symbolic link/.test(e.message));
  assert.throws(() => w.fs.read('sub/x'), UnsafePathError);
  assert.deepEqual(readdirSync(w.outside), ['victim']);
  // removeTree unlinks links inside, never what they point to.
  mkdirSync(join(w.root, 'lab', 'd'), { mode: 0o700 });
  symlinkSync(w.outside, join(w.root, 'lab', 'd', 'link'));
  w.fs.removeTree('lab');
  assert.deepEqual(readdirSync(w.outside), ['victim']);
});

test('safe tree: readFolder gives the folder and the asked files that are there (not other names); a symbolic link (folder or file) is refused as read and list refuse it', (t) => {
  const w = tree(t);
  w.fs.write('ns/hosts', 'h\n');
  w.fs.write('ns/other', 'o\n');
  const r = w.fs.readFolder('ns', ['hosts', 'resolv.conf'])!;
  assert.ok(r.dir.isDirectory());
  assert.deepEqual([...r.files.keys()], ['hosts'], 'only asked files that are there');
  assert.equal(r.files.get('hosts')!.text, 'h\n');
  assert.equal(r.files.get('hosts')!.st.mode & 0o777, 0o600);
  assert.equal(w.fs.readFolder('absent', ['hosts']), undefined);
  symlinkSync(join(w.outside), join(w.root, 'link'));
  assert.throws(() => w.fs.readFolder('link', ['hosts']), (e: unknown) => e instanceof UnsafePathError && /symbolic link/.test(e.message));
  writeFileSync(join(w.outside, 'secret'), 'x');
  symlinkSync(join(w.outside, 'secret'), join(w.root, 'ns', 'resolv.conf'));
  assert.throws(() => w.fs.readFolder('ns', ['resolv.conf']), (e: unknown) => e instanceof UnsafePathError && /symbolic link/.test(e.message));
});

test('safe tree: a FIFO is refused at once (never blocks); a hard link to another file is replaced before a program opens it by name', (t) => {
  const w = tree(t);
  w.fs.ensureDir('lab');
  execFileSync('mkfifo', [join(w.root, 'lab', 'fifo')]);
  assert.throws(() => w.fs.read('lab/fifo'), /not a regular file \(a FIFO\)/);
  const victim = join(w.outside, 'victim');
  writeFileSync(victim, 'precious\n');
  linkSync(victim, join(w.root, 'lab', 'log'));
  w.fs.ensureFile('lab/log');
  const st = lstatSync(join(w.root, 'lab', 'log'));
  assert.ok(st.isFile() && st.nlink === 1 && st.size === 0);
  assert.equal(readFileSync(victim, 'utf8'), 'precious\n');
  writeFileSync(join(w.root, 'lab', 'log'), 'kept\n');
  w.fs.ensureFile('lab/log');
  assert.equal(readFileSync(join(w.root, 'lab', 'log'), 'utf8'), 'kept\n', 'a file of its own is kept');
});

test('safe tree: a root or folder writable by group/others, or a parent anyone can write (not sticky), is refused with the fix', (t) => {
  const w = tree(t);
  w.fs.ensureDir('lab');
  chmodSync(join(w.root, 'lab'), 0o770);
  assert.throws(() => w.fs.write('lab/x', 'y'), (e: unknown) => e instanceof UnsafePathError && /writable by group\/others \(mode 0770\)/.test(e.message) && /chmod go-w/.test(e.hint ?? ''));
  chmodSync(join(w.root, 'lab'), 0o700);
  chmodSync(w.root, 0o777);
  assert.throws(() => w.fs.read('lab/x'), (e: unknown) => e instanceof UnsafePathError && e.message.startsWith(w.root));
  chmodSync(w.root, 0o700);
  chmodSync(w.base, 0o777); // a parent anyone can write, not sticky
  // The root's parents are checked once per object (only root could change them after
  // they passed), so a new object sees the change.
  const again = () => new LocalSafeFs(w.root, { dirMode: 0o700, fileMode: 0o600, what: 'test tree' });
  assert.throws(() => again().read('lab/x'), (e: unknown) => e instanceof UnsafePathError && /a parent of/.test(e.message) && e.message.startsWith(w.base));
  chmodSync(w.base, 0o1777); // sticky, like /tmp: fine
  assert.equal(again().read('lab/x'), undefined);
  chmodSync(w.base, 0o700);
});

test('safe tree: a folder owned by another user is refused', { skip: needsRoot }, (t) => {
  const w = tree(t);
  w.fs.ensureDir('lab');
  chownSync(join(w.root, 'lab'), 65534, 65534);
  assert.throws(() => w.fs.write('lab/x', 'y'), (e: unknown) => e instanceof UnsafePathError && /owned by uid 65534/.test(e.message));
  chownSync(join(w.root, 'lab'), 0, 0);
  w.fs.write('lab/x', 'y');
  chownSync(join(w.root, 'lab', 'x'), 65534, 65534);
  assert.throws(() => w.fs.read('lab/x'), /owned by uid 65534/);
});

test('safe tree: a readable tree (/etc/netns) makes folders 0755 and widens one of its own made 0700; files 0644', (t) => {
  const w = tree(t);
  const fs = new LocalSafeFs(w.root, { dirMode: 0o755, fileMode: 0o644, readable: true, what: 'test tree' });
  mkdirSync(w.root, { mode: 0o700 });
  mkdirSync(join(w.root, 'ns1'), { mode: 0o700 });
  chmodSync(w.root, 0o700);
  chmodSync(join(w.root, 'ns1'), 0o700);
  fs.read('ns1/resolv.conf');
  assert.equal(statSync(join(w.root, 'ns1')).mode & 0o777, 0o700, 'reading changes nothing');
  fs.write('ns1/resolv.conf', 'nameserver 10.0.0.1\n');
  assert.equal(statSync(w.root).mode & 0o777, 0o755);
  assert.equal(statSync(join(w.root, 'ns1')).mode & 0o777, 0o755);
  assert.equal(statSync(join(w.root, 'ns1', 'resolv.conf')).mode & 0o777, 0o644);
});

test('safe tree: createExclusive creates a complete file only when no entry exists (a symbolic link counts)', (t) => {
  const w = tree(t);
  assert.equal(w.fs.createExclusive('l.lock', 'a\n'), true);
  assert.equal(w.fs.createExclusive('l.lock', 'b\n'), false);
  assert.equal(w.fs.read('l.lock'), 'a\n');
  symlinkSync(join(w.outside, 'x'), join(w.root, 'm.lock'));
  assert.equal(w.fs.createExclusive('m.lock', 'c\n'), false);
  assert.deepEqual(readdirSync(w.outside), []);
  assert.throws(() => w.fs.write('../escape', 'x'), /bad path/);
});

test('writeFileAtomic (plan --out): replaces a symbolic link at the path instead of writing through it', (t) => {
  const w = tree(t);
  const victim = join(w.outside, 'victim');
  writeFileSync(victim, 'precious\n');
  symlinkSync(victim, join(w.base, 'plan.json'));
  writeFileAtomic(join(w.base, 'plan.json'), '{}\n', 0o600);
  assert.equal(readFileSync(victim, 'utf8'), 'precious\n');
  assert.equal(readFileSync(join(w.base, 'plan.json'), 'utf8'), '{}\n');
  assert.equal(statSync(join(w.base, 'plan.json')).mode & 0o777, 0o600);
});

test('records: an empty or corrupt state.json / journal is reported with the file and what happens, and read as empty; fields provium does not know are kept', (t) => {
  const w = tree(t);
  process.env.PROVIUM_STATE_DIR = w.root;
  const warnings: string[] = [];
  writeRecord('lab1', { hostNetns: 'x', listedBy: 'provium ls' });
  updateRecord('lab1', (r) => (r.forwards = true));
  assert.deepEqual(readRecord('lab1'), { hostNetns: 'x', listedBy: 'provium ls', forwards: true });
  writeFileSync(join(w.root, 'lab1', 'state.json'), '');
  assert.deepEqual(readRecord('lab1', (m) => warnings.push(m)), {});
  writeFileSync(join(w.root, 'lab1', 'pending-netns.json'), '["pv-lab1-a", ');
  assert.deepEqual(readJournal(join(w.root, 'lab1'), (m) => warnings.push(m)), []);
  assert.equal(warnings.length, 2);
  assert.match(warnings[0], new RegExp(`^${join(w.root, 'lab1', 'state.json')} is empty: ignored`));
  assert.match(warnings[1], new RegExp(`^${join(w.root, 'lab1', 'pending-netns.json')} is not valid JSON .*: ignored; .*ip netns del`));
  assert.throws(() => treeOf('/etc/passwd'), /refusing to touch \/etc\/passwd/);
  delete process.env.PROVIUM_STATE_DIR;
});

/** A saved plan as `plan --out` writes it. */
function savedPlan(over: Partial<PlanFile> = {}): PlanFile {
  const text = 'lab: sp\nnodes: { a: { kind: netns } }\nbridges: { lan: { attach: [a] } }\n';
  return {
    format_version: PLAN_FORMAT, kind: PLAN_KIND, created: '2026-01-01T00:00:00Z', lab: 'sp', sources: [planSource('/x/sp.yaml', text)], variables: {},
    options: { targets: [], replace: [] }, host_netns: null, fingerprint: 'sha256:0', plan: {} as PlanFile['plan'], invocations: [], ...over,
  };
}

test('saved plan: refused unless a regular file owned by root, not writable by group/others, not a symbolic link, with every source matching its sha256', { skip: needsRoot }, (t) => {
  const w = tree(t);
  const p = join(w.base, 'p.json');
  writeFileSync(p, JSON.stringify(savedPlan()), { mode: 0o600 });
  assert.equal(readPlanFile(p).lab, 'sp');
  chmodSync(p, 0o666);
  assert.throws(() => readPlanFile(p), /writable by group\/others \(mode 0666\)/);
  chmodSync(p, 0o644);
  chownSync(p, 65534, 65534);
  assert.throws(() => readPlanFile(p), /owned by uid 65534, not by root/);
  chownSync(p, 0, 0);
  symlinkSync(p, join(w.base, 'link.json'));
  assert.throws(() => readPlanFile(join(w.base, 'link.json')), /symbolic link/);
  const bad = savedPlan();
  bad.sources[0].text = bad.sources[0].text.replace('a: { kind: netns }', 'a: { kind: netns }, b: { kind: netns }');
  writeFileSync(p, JSON.stringify(bad));
  assert.throws(() => readPlanFile(p), /does not match its sha256/);
  writeFileSync(p, JSON.stringify({ ...savedPlan(), format_version: '1' }));
  assert.throws(() => readPlanFile(p), /format_version "1"/);
});

test('saved plan: the first difference between stored and computed invocations is named (a changed argv, an appended invocation with files)', () => {
  const computed: Invocation[] = [
    { argv: ['ip', '-batch', '-'], stdin: 'netns add pv-sp-a\n', label: 'node namespaces' },
    { argv: ['ip', '-j', '-d', '-n', 'pv-sp-a', '-batch', '-'], stdin: 'link set lo up\n', label: 'namespace pv-sp-a', readsBack: 'pv-sp-a' },
  ];
  const stored = JSON.parse(JSON.stringify(computed));
  assert.equal(firstDifference(stored, computed), undefined);
  stored[1].argv = ['touch', '/tmp/PWNED'];
  assert.match(firstDifference(stored, computed)!, /^invocation 2 differs in argv: the saved plan has "namespace pv-sp-a: touch \/tmp\/PWNED", provium computes "namespace pv-sp-a: ip -j -d -n pv-sp-a -batch -"/);
  const appended = [...JSON.parse(JSON.stringify(computed)), { argv: ['write', '/etc/cron.d/x'], label: 'x', writeFiles: [{ path: '/etc/cron.d/x', content: '* * * * * root touch /tmp/PWNED\n' }] }];
  assert.match(firstDifference(appended, computed)!, /^invocation 3: the saved plan has "x: write \/etc\/cron.d\/x", which provium does not compute \(it has 3 invocations, provium computes 2\)/);
});

test('other labs\' forwarding is read from their nft tables: IPv4 while the table exists, IPv6 when it masquerades an IPv6 prefix or routes between bridges with global IPv6 addresses', () => {
  const set = (table: string, name: string, lab: string, elem?: unknown[]) => ({ set: { family: 'inet', table, name, type: 'ifname', comment: `provium:${lab}:skeleton`, ...(elem ? { elem } : {}) } });
  const concat = (a: string, b: string) => ({ concat: [a, b] });
  const ruleset = {
    nftables: [
      { table: { family: 'inet', name: 'provium_me' } }, set('provium_me', 'bridges', 'me'),
      { table: { family: 'inet', name: 'provium_four' } }, set('provium_four', 'routed', 'four', [concat('four-a', 'four-b')]),
      { table: { family: 'inet', name: 'provium_six' } }, set('provium_six', 'routed', 'six', [concat('six-a', 'six-b')]),
      { table: { family: 'inet', name: 'provium_up6' } }, set('provium_up6', 'masq6', 'up6', ['fd00:1::/64']),
      { table: { family: 'inet', name: 'provium_fake' } }, { set: { family: 'inet', table: 'provium_fake', name: 'x', type: 'ifname' } },
      { table: { family: 'bridge', name: 'provium_br' } },
    ],
  };
  const g6 = (ifname: string) => ({ ifname, addr_info: [{ family: 'inet6', local: 'fd00::1', prefixlen: 64, scope: 'global' }] });
  const links = [g6('six-a'), g6('six-b'), g6('four-a'), { ifname: 'four-b', addr_info: [{ family: 'inet', local: '10.0.0.1', prefixlen: 24 }] }];
  assert.deepEqual(forwardingLabs(ruleset, links, 'me'), { v4: ['four', 'six', 'up6'], v6: ['six', 'up6'] });
});
