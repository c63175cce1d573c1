/**
 * The topology cache (src/load/cache.ts): a cached topology is exactly the loaded one
 * (JSON round trip of every example and fixture), entries are found only by their own
 * key, never through a symlink, written atomically and pruned; the bundled CLI gives
 * the same plan from a cold and a warm cache, and a changed file is loaded anew.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadTopology } from '../../src/load/index.js';
import { cacheDir, cacheKey, MAX_ENTRIES, readEntry, writeEntry } from '../../src/load/cache.js';
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
    const dir = join(mkdtempSync('/tmp/pv-cache-'), 'c');
    try {
      const t = loadTopology(repoDir('test/fixtures/applied/topology.yaml'));
      const k = cacheKey('b', 'lab.yaml', '/x/lab.yaml', 'text');
      assert.notEqual(k, cacheKey('b', './lab.yaml', '/x/lab.yaml', 'text'), 'the path as given is part of the key (positions name it)');
      assert.notEqual(k, cacheKey('c', 'lab.yaml', '/x/lab.yaml', 'text'), 'another build');
      assert.notEqual(cacheKey('b', 'lab.yaml', '/x/lab.yaml', 'text', '/root'), cacheKey('b', 'lab.yaml', '/x/lab.yaml', 'text', '/home/u'), 'another home directory (hosts: identity ~/...)');
      assert.equal(readEntry(dir, k), undefined, 'no directory yet');
      writeEntry(dir, k, t);
      assert.deepEqual(readEntry(dir, k), t);
      assert.deepEqual(readdirSync(dir), [`topology-${k}.json`], 'no temporary file left');
      // An entry under another key's name is not used.
      const other = cacheKey('b', 'lab.yaml', '/x/lab.yaml', 'other');
      writeFileSync(join(dir, `topology-${other}.json`), JSON.stringify({ key: k, topology: t }));
      assert.equal(readEntry(dir, other), undefined);
      // A symlinked entry or directory is never followed.
      const sym = cacheKey('b', 's', '/s', 's');
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
        const key = cacheKey('p', String(i), '/p', 'p');
        writeEntry(dir, key, t);
        utimesSync(join(dir, `topology-${key}.json`), 1000 + i, 1000 + i);
      }
      const left = readdirSync(dir).filter((f) => f.startsWith('topology-'));
      assert.equal(left.length, MAX_ENTRIES);
      assert.ok(!left.includes(`topology-${k}.json`), 'the oldest went first');
    } finally {
      rmSync(join(dir, '..'), { recursive: true, force: true });
    }
  });

  test('PROVIUM_CACHE_DIR chooses the directory; "off" turns the cache off', () => {
    assert.equal(cacheDir({}), '/var/cache/provium');
    assert.equal(cacheDir({ PROVIUM_CACHE_DIR: '/tmp/x' }), '/tmp/x');
    assert.equal(cacheDir({ PROVIUM_CACHE_DIR: 'off' }), undefined);
  });

  test('the bundled CLI: the same plan with a cold and a warm cache; a changed file is loaded anew; invalid files still fail', { skip: existsSync(repoDir('dist/provium.mjs')) ? false : 'the CLI is not bundled (npm run build)' }, () => {
    const tmp = mkdtempSync('/tmp/pv-cache-cli-');
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
    const root = mkdtempSync('/tmp/pv-nftc-');
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
