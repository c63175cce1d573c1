/**
 * provium as a package, the way a project outside this repository uses it:
 * - `npm pack` (from the build the suite made) gives a tarball with the library, its
 *   type declarations, the CLI and the schemas, and nothing of the tests; a scratch
 *   project in a temporary folder installs it (npm's cache first), type-checks a test
 *   against it (`tsc --noEmit`, declarations checked too), rejects a wrongly typed call,
 *   runs the test with node:test as root in a throwaway namespace (a real lab: ping,
 *   partition, heal, down), and the installed `provium` CLI validates the same file;
 * - examples/api/partition.test.ts (compiled by the build) runs with node --test from
 *   its folder, as README shows.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { labTest, listNetns, report, run, dedent } from './helpers.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const TSC = join(REPO, 'node_modules', 'typescript', 'bin', 'tsc');
const TYPES_NODE = JSON.parse(readFileSync(join(REPO, 'node_modules', '@types', 'node', 'package.json'), 'utf8')).version as string;

/** node --test as a user runs it (this file runs under node --test, whose NODE_TEST_CONTEXT would make a nested run report to it instead). */
const NODE_TEST = ['env', '-u', 'NODE_TEST_CONTEXT', 'node', '--test'];

/** A scratch project's test: what a user writes. */
const USER_TEST = `
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Lab, InputError, type LabChange } from 'provium';

test('provium from a tarball', async () => {
  const lab = await Lab.up('lab.yaml', { netns: process.env.PROVIUM_NETNS });
  try {
    const ping = (from: string, to: string) => lab.exec(from, ['ping', '-c', '1', '-W', '1', lab.address(to, 'lan')]);
    assert.equal((await ping('a', 'b')).exitCode, 0);
    const cut: LabChange = await lab.partition(['a', 'b']);
    assert.ok(cut.changes >= 1);
    assert.notEqual((await ping('a', 'b')).exitCode, 0);
    await assert.rejects(lab.impair({ from: 'a', to: 'b', dropPct: 101 }), InputError);
    await lab.heal();
    assert.equal((await ping('a', 'b')).exitCode, 0);
  } finally {
    await lab.down();
  }
});
`;

/** Calls that must not type-check. */
const BAD_TYPES = `
import { Lab } from 'provium';
const lab = await Lab.up('lab.yaml');
await lab.impair({ from: 'a', to: 'b', dropPct: '5' });
await lab.link('a', 'lan', 'sideways');
`;

const LAB_YAML = `
lab: \${LAB}
nodes:
  a: { kind: netns }
  b: { kind: netns }
bridges:
  lan:
    subnet: 10.96.0.0/24
    attach: [a, b]
`;

labTest('the packed tarball installs in a project outside the repository, type-checks, and runs a node:test test as root', async (h, t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pv-pkg-'));
  try {
    const repoPackage = readFileSync(join(REPO, 'package.json'), 'utf8');
    const t0 = performance.now();
    const pack = await run(['npm', 'pack', '--ignore-scripts', '--json', '--pack-destination', dir], { timeoutMs: 60_000, env: { npm_config_loglevel: 'error' } });
    assert.equal(pack.code, 0, pack.stderr);
    const packed = JSON.parse(pack.stdout.slice(pack.stdout.indexOf('['))) as { filename: string; size: number; files: { path: string }[] }[];
    const files = packed[0].files.map((f) => f.path);
    for (const f of ['dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/api/lab.d.ts', 'bin/provium', 'bin/cjs-loader.mjs', 'dist/provium.mjs', 'dist/provium.cjs', 'dist/provium.cjs.cache', 'dist/schema-validator.cjs', 'schemas/topology.schema.json', 'package.json', 'README.md']) {
      assert.ok(files.includes(f), `the tarball lacks ${f}`);
    }
    assert.deepEqual(files.filter((f) => /^dist\/(test|bench|examples)\/|^src\/|^test\/|\.map$|node_modules/.test(f)), [], 'nothing of the tests, sources or maps');
    report(t, `npm pack: ${packed[0].filename}, ${files.length} files, ${(packed[0].size / 1024).toFixed(0)} KiB`);

    const project = join(dir, 'project');
    await run(['mkdir', project]);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'scratch', private: true, type: 'module' }));
    writeFileSync(join(project, 'lab.yaml'), dedent(LAB_YAML));
    writeFileSync(join(project, 'lab.test.ts'), USER_TEST);
    writeFileSync(join(project, 'bad.ts'), BAD_TYPES);
    const options = { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', strict: true, types: ['node'], outDir: 'out' };
    writeFileSync(join(project, 'tsconfig.json'), JSON.stringify({ compilerOptions: { ...options, skipLibCheck: false }, include: ['lab.test.ts'] }));
    writeFileSync(join(project, 'tsconfig.bad.json'), JSON.stringify({ compilerOptions: { ...options, skipLibCheck: true }, include: ['bad.ts'] }));
    const install = await run(['npm', 'install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', join(dir, packed[0].filename), `@types/node@${TYPES_NODE}`], {
      timeoutMs: 180_000, cwd: project, env: { npm_config_update_notifier: 'false' },
    });
    assert.equal(install.code, 0, `npm install failed:\n${install.stdout}${install.stderr}`);
    // The package's install script builds the netlink helper where this repository's build could.
    if (existsSync(join(REPO, 'dist', 'native', 'provium-nl'))) {
      assert.ok(existsSync(join(project, 'node_modules', 'provium', 'dist', 'native', 'provium-nl')), 'the install built the netlink helper');
    }
    assert.equal(readFileSync(join(REPO, 'package.json'), 'utf8'), repoPackage, 'the install changed this repository');
    const t1 = performance.now();

    const tscIn = (args: string[]) => run(['node', TSC, ...args], { timeoutMs: 120_000, cwd: project });
    const check = await tscIn(['--noEmit', '-p', join(project, 'tsconfig.json')]);
    assert.equal(check.code, 0, `tsc --noEmit failed:\n${check.stdout}${check.stderr}`);
    const bad = await tscIn(['--noEmit', '-p', join(project, 'tsconfig.bad.json')]);
    assert.notEqual(bad.code, 0, 'a wrongly typed call type-checked');
    assert.match(bad.stdout, /bad\.ts\(4,\d+\): error TS2322: Type 'string' is not assignable to type 'number'/);
    assert.match(bad.stdout, /bad\.ts\(5,\d+\): error TS2345: Argument of type '"sideways"' is not assignable to parameter of type '"up" \| "down"'/);
    const emit = await tscIn(['-p', join(project, 'tsconfig.json'), '--skipLibCheck']);
    assert.equal(emit.code, 0, emit.stdout);
    const t2 = performance.now();

    const env = { PROVIUM_NETNS: h.hostNs, PROVIUM_STATE_DIR: h.stateDir, PROVIUM_CACHE_DIR: h.cacheDir, LAB: h.name };
    const test = await run([...NODE_TEST, join(project, 'out', 'lab.test.js')], { timeoutMs: 120_000, env, cwd: project });
    assert.equal(test.code, 0, `the scratch project's test failed:\n${test.stdout}${test.stderr}`);
    assert.match(test.stdout, /# pass 1\n/);
    const cli = await run([join(project, 'node_modules', '.bin', 'provium'), 'validate', 'lab.yaml'], { env, cwd: project });
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, new RegExp(`lab.yaml: valid \\(lab ${h.name}\\)`));
    assert.deepEqual(listNetns().filter((n) => n.startsWith(`pv-${h.name}-`)), []);
    report(t, `pack + install ${((t1 - t0) / 1000).toFixed(1)} s, tsc (check, wrong types, emit) ${((t2 - t1) / 1000).toFixed(1)} s, the test ${(test.ms / 1000).toFixed(1)} s`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, { timeoutMs: 300_000 });

labTest('examples/api/partition.test.ts runs with node --test from its folder', async (h, t) => {
  const file = join(REPO, 'dist', 'examples', 'api', 'partition.test.js');
  const r = await run([...NODE_TEST, file], {
    timeoutMs: 120_000, cwd: join(REPO, 'examples', 'api'),
    env: { PROVIUM_NETNS: h.hostNs, PROVIUM_STATE_DIR: h.stateDir, PROVIUM_CACHE_DIR: h.cacheDir, LAB: h.name },
  });
  assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
  assert.match(r.stdout, /# pass 1\n/);
  assert.deepEqual(listNetns().filter((n) => n.startsWith(`pv-${h.name}-`)), []);
  report(t, `examples/api: ${(r.ms / 1000).toFixed(1)} s`);
});
