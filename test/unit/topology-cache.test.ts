/**
 * The topology cache (src/load/cache.ts): a cached topology is exactly the loaded one
 * (JSON round trip of every example and fixture), entries are found only by their own
 * key, never through a symlink, written atomically and pruned; a cached load is used
 * only while every file of the extends chain and the overlays, every real path, every
 * environment variable looked up and the --var values are the same; the bundled CLI
 * gives the same plan from a cold and a warm cache, and a changed file is loaded anew.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { checkSources, loadTopology } from '../../src/load/index.js';
import { cacheDir, cacheKey, checkSourcesCached, MAX_ENTRIES, readEntry, writeEntry, type CacheEntry } from '../../src/load/cache.js';
import { readNftCache, writeNftCache } from '../../src/observe/nft-cache.js';
import { repoDir, yamlFiles } from './helpers.js';

describe('topology cache', () => {
  test('a topology survives the JSON round trip unchanged (every example and fixture)', () => {
    const files = [...yamlFiles(repoDir('examples/')), ...['applied', 'drifted', 'empty', 'one-field'].map((f) => repoDir(`test/fixtures/${f}/topology.yaml`))];
    assert.ok(files.length >= 8);
    for (const f of files) {
      const t = loadTopology(f);
      assert.deepEqual(JSON.parse(JSON.stringify(t)), t, f);
    }
  });

  test('entries: found by their own key only, written atomically, never read through a symlink, pruned to MAX_ENTRIES', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'pv-cache-')), 'c');
    try {
      const t = loadTopology(repoDir('test/fixtures/applied/topology.yaml'));
      const entry = (key: string): CacheEntry => ({ key, topology: t, files: [], vars: {}, rootPath: '/x/lab.yaml', steps: false, realpaths: [], env: [] });
      const k = cacheKey('b', '/root', '/x', [{ name: 'lab.yaml' }]);
      assert.notEqual(k, cacheKey('b', '/root', '/x', [{ name: './lab.yaml' }]), 'the path as given is part of the key (positions name it)');
      assert.notEqual(k, cacheKey('c', '/root', '/x', [{ name: 'lab.yaml' }]), 'another build');
      assert.notEqual(k, cacheKey('b', '/home/u', '/x', [{ name: 'lab.yaml' }]), 'another home directory (hosts: identity ~/...)');
      assert.notEqual(k, cacheKey('b', '/root', '/y', [{ name: 'lab.yaml' }]), 'another working folder');
      assert.notEqual(k, cacheKey('b', '/root', '/x', [{ name: 'lab.yaml' }, { name: 'cut.yaml' }]), 'an overlay');
      assert.notEqual(k, cacheKey('b', '/root', '/x', [{ name: 'lab.yaml' }], { N: '1' }), 'a --var value');
      assert.equal(cacheKey('b', '/root', '/x', [{ name: 'l' }], { A: '1', B: '2' }), cacheKey('b', '/root', '/x', [{ name: 'l' }], { B: '2', A: '1' }), '--var order does not matter');
      assert.equal(readEntry(dir, k), undefined, 'no directory yet');
      writeEntry(dir, entry(k));
      assert.deepEqual(readEntry(dir, k)?.topology, t);
      assert.deepEqual(readdirSync(dir), [`topology-${k}.json`], 'no temporary file left');
      // An entry under another key's name is not used.
      const other = cacheKey('b', '/root', '/x', [{ name: 'other.yaml' }]);
      writeFileSync(join(dir, `topology-${other}.json`), JSON.stringify(entry(k)));
      assert.equal(readEntry(dir, other), undefined);
      // A symlinked entry or directory is never followed.
      const sym = cacheKey('b', '/s', '/s', [{ name: 's' }]);
      symlinkSync(join(dir, `topology-${k}.json`), join(dir, `topology-${sym}.json`));
      assert.equal(readEntry(dir, sym), undefined, 'symlinked entry');
      const link = `${dir}-link`;
      symlinkSync(dir, link);
      assert.equal(readEntry(link, k), undefined, 'symlinked directory');
      rmSync(link);
      // Pruning keeps the newest MAX_ENTRIES.
      rmSync(join(dir, `topology-${sym}.json`));
      rmSync(join(dir, `topology-${other}.json`));
      utimesSync(join(dir, `topology-${k}.json`), 500, 500);
      for (let i = 0; i < MAX_ENTRIES + 3; i++) {
        const key = cacheKey('p', '/p', '/p', [{ name: String(i) }]);
        writeEntry(dir, entry(key));
        utimesSync(join(dir, `topology-${key}.json`), 1000 + i, 1000 + i);
      }
      const left = readdirSync(dir).filter((f) => f.startsWith('topology-'));
      assert.equal(left.length, MAX_ENTRIES);
      assert.ok(!left.includes(`topology-${k}.json`), 'the oldest went first');
    } finally {
      rmSync(join(dir, '..'), { recursive: true, force: true });
    }
  });

  test('a cached load is used only while every input is the same: files of the extends chain and overlays, real paths, environment variables (set or not), --var values', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'pv-cache-inputs-'));
    const before = process.env.PV_CACHE_T_SUBNET;
    try {
      const cache = join(tmp, 'cache');
      const where = { dir: cache, build: 'test-build' };
      writeFileSync(join(tmp, 'v1.yaml'), 'lab: ci\nnodes: { a: { kind: netns }, b: { kind: netns } }\nbridges: { lan: { subnet: "${PV_CACHE_T_SUBNET:-10.9.0.0/24}", attach: [a, b] } }\n');
      writeFileSync(join(tmp, 'v2.yaml'), 'lab: ci\nnodes: { a: { kind: netns } }\nbridges: { lan: { subnet: 10.8.0.0/24, attach: [a] } }\n');
      symlinkSync(join(tmp, 'v1.yaml'), join(tmp, 'base.yaml'));
      writeFileSync(join(tmp, 'lab.yaml'), 'extends: base.yaml\nbridges: { lan: { mtu: 1400 } }\n');
      writeFileSync(join(tmp, 'cut.yaml'), 'bridges: { lan: { partitions: [[a, b]] } }\n');
      const sources = [{ name: join(tmp, 'lab.yaml') }, { name: join(tmp, 'cut.yaml') }];
      delete process.env.PV_CACHE_T_SUBNET;
      const load = (vars: Record<string, string> = {}) => checkSourcesCached(sources, { vars }, where);
      const fresh = (vars: Record<string, string> = {}) => checkSources(sources, { vars });
      const same = (c: ReturnType<typeof load>, vars: Record<string, string> = {}) => {
        const f = fresh(vars);
        assert.deepEqual(c.r.topology, f.topology);
        assert.deepEqual(c.r.files, f.files, 'files (names, paths, texts) as loaded');
        assert.deepEqual(c.r.vars, f.vars);
      };
      const cold = load();
      assert.equal(cold.hit, false);
      same(cold);
      const warm = load();
      assert.equal(warm.hit, true, 'unchanged inputs: from the cache');
      same(warm);
      assert.equal(warm.r.topology!.bridges.lan.subnet, '10.9.0.0/24');

      // An environment variable the file refers to (unset, so its default was used) is set.
      process.env.PV_CACHE_T_SUBNET = '10.7.0.0/24';
      const env = load();
      assert.equal(env.hit, false, 'an unset variable that is now set');
      assert.equal(env.r.topology!.bridges.lan.subnet, '10.7.0.0/24');
      assert.equal(load().hit, true);
      process.env.PV_CACHE_T_SUBNET = '10.6.0.0/24';
      assert.equal(load().r.topology!.bridges.lan.subnet, '10.6.0.0/24', 'a changed value');
      // --var wins and is part of the key.
      const v = load({ PV_CACHE_T_SUBNET: '10.5.0.0/24' });
      assert.equal(v.hit, false);
      assert.equal(v.r.topology!.bridges.lan.subnet, '10.5.0.0/24');
      assert.equal(load({ PV_CACHE_T_SUBNET: '10.5.0.0/24' }).hit, true);
      delete process.env.PV_CACHE_T_SUBNET;
      assert.equal(load().r.topology!.bridges.lan.subnet, '10.9.0.0/24', 'unset again: the default');

      // The extends base's symbolic link now points at another file (whose own text is unchanged).
      assert.equal(load().hit, true);
      rmSync(join(tmp, 'base.yaml'));
      symlinkSync(join(tmp, 'v2.yaml'), join(tmp, 'base.yaml'));
      const relinked = load();
      assert.equal(relinked.hit, false, 'a retargeted link in the extends chain');
      assert.equal(relinked.r.topology, undefined, 'and the overlay now names a node the new base lacks');
      rmSync(join(tmp, 'base.yaml'));
      symlinkSync(join(tmp, 'v1.yaml'), join(tmp, 'base.yaml'));
      assert.equal(load().r.topology!.bridges.lan.attach.length, 2);

      // A changed base (through the chain) and a changed overlay.
      assert.equal(load().hit, true);
      writeFileSync(join(tmp, 'v1.yaml'), 'lab: ci\nnodes: { a: { kind: netns }, b: { kind: netns } }\nbridges: { lan: { subnet: 10.4.0.0/24, attach: [a, b] } }\n');
      const base = load();
      assert.equal(base.hit, false, 'the base changed');
      assert.equal(base.r.topology!.bridges.lan.subnet, '10.4.0.0/24');
      writeFileSync(join(tmp, 'cut.yaml'), 'bridges: { lan: { isolate: [a] } }\n');
      const cut = load();
      assert.equal(cut.hit, false, 'the overlay changed');
      same(cut);
      assert.equal(load().hit, true);
      // A file that became something else than a regular file is not read from the cache.
      rmSync(join(tmp, 'cut.yaml'));
      mkdirSync(join(tmp, 'cut.yaml'));
      const dirNow = load();
      assert.equal(dirNow.hit, false);
      assert.equal(dirNow.r.topology, undefined, 'the loader reports it');
      // Standard input is never cached.
      assert.equal(checkSourcesCached([{ name: '-' }], { readStdin: () => 'lab: s\n' }, where).hit, false);
    } finally {
      if (before === undefined) delete process.env.PV_CACHE_T_SUBNET;
      else process.env.PV_CACHE_T_SUBNET = before;
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  test('PROVIUM_CACHE_DIR chooses the directory; "off" turns the cache off', () => {
    assert.equal(cacheDir({}), '/var/cache/provium');
    assert.equal(cacheDir({ PROVIUM_CACHE_DIR: '/tmp/x' }), '/tmp/x');
    assert.equal(cacheDir({ PROVIUM_CACHE_DIR: 'off' }), undefined);
  });

  test('the bundled CLI: the same plan with a cold and a warm cache; a changed file is loaded anew; invalid files still fail', { skip: existsSync(repoDir('dist/provium.mjs')) ? false : 'the CLI is not bundled (npm run build)' }, () => {
    const tmp = mkdtempSync(join(tmpdir(), 'pv-cache-cli-'));
    try {
      const cache = join(tmp, 'cache');
      // `graph` reads no host and does not use the cache; `plan --json` needs root, so the
      // CLI check uses a file that fails validation after a valid one was cached.
      const file = join(tmp, 'lab.yaml');
      writeFileSync(file, 'lab: cc\nnodes: { a: { kind: netns } }\nbridges: { lan: { subnet: 10.9.0.0/24, attach: [a] } }\n');
      const env = { ...process.env, PROVIUM_CACHE_DIR: cache, PROVIUM_STATE_DIR: join(tmp, 'state'), NO_COLOR: '1' };
      const run = (args: string[]) => spawnSync(process.execPath, [repoDir('bin/provium'), ...args], { encoding: 'utf8', env });
      const g = run(['graph', file]);
      assert.equal(g.status, 0, g.stderr);
      assert.equal(existsSync(cache), false, 'graph does not write the cache');
      if (process.getuid?.() !== 0) return; // plan needs root for the rest
      mkdirSync(join(tmp, 'state'), { recursive: true });
      const ns = `pv-cc-${process.pid}`;
      spawnSync('ip', ['netns', 'add', ns]);
      try {
        const cold = run(['--netns', ns, 'plan', '--json', file]);
        assert.equal(cold.status, 0, cold.stderr);
        assert.equal(readdirSync(cache).filter((f) => f.startsWith('topology-')).length, 1, 'one entry written');
        const warm = run(['--netns', ns, 'plan', '--json', file]);
        assert.equal(warm.stdout, cold.stdout, 'the same plan from the cache');
        writeFileSync(file, 'lab: cc\nnodes: { a: { kind: netns } }\nbridges: { lan: { subnet: 10.9.0.0/24, attach: [a, b] } }\n');
        const bad = run(['--netns', ns, 'plan', file]);
        assert.equal(bad.status, 1, 'the changed (now invalid) file is loaded anew, not taken from the cache');
        assert.match(bad.stderr, /lab\.yaml:3:\d+: error: unknown node/);
      } finally {
        spawnSync('ip', ['netns', 'del', ns]);
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});

describe('nftables observation cache', () => {
  test('a reading is used only under the same generation, cookie, table, owner mark and build, and only in an existing lab directory', () => {
    const root = mkdtempSync(join(tmpdir(), 'pv-nftc-'));
    const before = process.env.PROVIUM_STATE_DIR;
    process.env.PROVIUM_STATE_DIR = root; // the cache lives in the lab's folder under the state directory
    try {
      const stamp = { gen: 7, cookie: '2278', table: 'provium_x', owner: 'provium:x:' };
      const reading = { bridge: undefined, inet: undefined, conflicts: ['bridge' as const], others: [{ lab: 'z', forward: ['z-a>z-b'], masq6: true }] };
      const lab = join(root, 'x');
      writeNftCache(lab, stamp, reading, 'b1');
      assert.equal(existsSync(lab), false, 'plan does not create the lab directory');
      mkdirSync(lab);
      writeNftCache(lab, stamp, reading, 'b1');
      assert.deepEqual(readNftCache(lab, stamp, 'b1'), { conflicts: ['bridge'], others: [{ lab: 'z', forward: ['z-a>z-b'], masq6: true }] });
      for (const other of [{ ...stamp, gen: 8 }, { ...stamp, cookie: '1' }, { ...stamp, table: 'provium_y' }, { ...stamp, owner: 'provium:y:' }]) {
        assert.equal(readNftCache(lab, other, 'b1'), undefined, JSON.stringify(other));
      }
      assert.equal(readNftCache(lab, stamp, 'b2'), undefined, 'another build');
      assert.equal(readNftCache(lab, stamp, undefined), undefined, 'outside the bundle');
      assert.deepEqual(readdirSync(lab), ['nft-observed.json'], 'no temporary file left');
      // Never read through a symlink.
      const other = join(root, 'y');
      mkdirSync(other);
      symlinkSync(join(lab, 'nft-observed.json'), join(other, 'nft-observed.json'));
      assert.equal(readNftCache(other, stamp, 'b1'), undefined);
      assert.equal(readNftCache('/elsewhere/x', stamp, 'b1'), undefined, 'only under the state directory');
    } finally {
      if (before === undefined) delete process.env.PROVIUM_STATE_DIR;
      else process.env.PROVIUM_STATE_DIR = before;
      rmSync(root, { recursive: true, force: true });
    }
  });
});
