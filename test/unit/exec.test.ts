/**
 * `provium exec`'s lean path without root: how a command is looked up (127/126 as a
 * shell), how the file is peeked (lab and node kinds), the cache keyed by the file's
 * bytes, and when it hands over to the full CLI. `provium --version`.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync, mkdirSync, symlinkSync } from 'node:fs';
import { removeLabDir } from '../../src/apply/statedir.js';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { cachedPeek, commandMissing, execFast, fileHash, rememberPeek } from '../../src/exec-run.js';
import { peekFile } from '../../src/exec-fast.js';
import { runCli } from './cli-capture.js';
import { tempDir } from './helpers.js';

const dir = tempDir('pv-unit-exec-');

describe('exec: command lookup as a shell does it', () => {
  test('found on PATH, missing (127), not executable (126), with a slash', () => {
    const bin = join(dir, 'bin');
    mkdirSync(bin, { recursive: true });
    writeFileSync(join(bin, 'tool'), '#!/bin/sh\n');
    chmodSync(join(bin, 'tool'), 0o755);
    writeFileSync(join(bin, 'data'), 'x');
    chmodSync(join(bin, 'data'), 0o644);
    assert.equal(commandMissing('tool', bin), undefined);
    assert.equal(commandMissing('nope', bin), 127);
    assert.equal(commandMissing(join(bin, 'tool'), bin), undefined);
    assert.equal(commandMissing(join(bin, 'nope'), bin), 127);
    if (process.getuid?.() !== 0) assert.equal(commandMissing('data', bin), 126, 'a file without x is not runnable');
    assert.equal(commandMissing('sh'), undefined, 'sh is on the default PATH');
  });
});

describe('exec: reading the file', () => {
  test('lab and every node kind; anything unusual hands over to the full CLI', () => {
    assert.deepEqual(peekFile('lab: demo\nnodes:\n  a: { kind: netns }\n  v: { kind: qemu }\n'), { lab: 'demo', nodes: { a: 'netns', v: 'qemu' } });
    assert.equal(peekFile('lab: demo\nnodes: [a]\n'), undefined);
    assert.equal(peekFile('lab: Demo\nnodes: { a: { kind: netns } }\n'), undefined, 'a lab name the loader rejects');
    assert.equal(peekFile('lab: demo\nlab: other\nnodes: { a: { kind: netns } }\n'), undefined, 'duplicate keys');
    assert.equal(peekFile('lab: demo\nnodes: { "a;b": { kind: netns } }\n'), undefined, 'a node name the loader rejects');
    assert.equal(peekFile('{ unclosed'), undefined);
    assert.equal(peekFile('lab: demo\nhosts: { h1: { local: true, underlay: 192.0.2.1 } }\nnodes: { a: { kind: netns, host: h1 } }\n'), undefined, 'a multi-host file: the full CLI checks where the node runs');
    assert.deepEqual(peekFile('lab: demo\nnodes: { r: { kind: router } }\n'), { lab: 'demo', nodes: { r: 'router' } });
    assert.equal(peekFile('extends: lab.yaml\nlab: demo\nnodes: { a: { kind: netns } }\n'), undefined, 'an overlay: the full loader merges it');
    assert.equal(peekFile('lab: demo\nnodes: { a: { kind: "${KIND}" } }\n'), undefined, 'variables: the full loader substitutes them');
    assert.equal(peekFile('lab: demo\nnodes: { a: { kind: netns } }\nsteps: []\n'), undefined, 'a scenario');
  });

  test('the cache: keyed by the bytes, in the state root only, never through a symlink', () => {
    const root = join(dir, 'state');
    process.env.PROVIUM_STATE_DIR = root;
    const text = 'lab: demo\nnodes: { a: { kind: netns } }\n';
    const h = fileHash(text);
    rememberPeek(h, { lab: 'demo', nodes: { a: 'netns' } });
    assert.equal(cachedPeek(h), undefined, 'no state root: nothing written');
    mkdirSync(root, { mode: 0o700 });
    rememberPeek(h, { lab: 'demo', nodes: { a: 'netns' } });
    assert.deepEqual(cachedPeek(h), { lab: 'demo', nodes: { a: 'netns' } });
    assert.equal(statSync(join(root, 'exec-cache.json')).mode & 0o777, 0o600);
    assert.equal(cachedPeek(fileHash(text + ' ')), undefined, 'other bytes, no entry');
    for (let i = 0; i < 70; i++) rememberPeek(`k${i}`, { lab: 'x', nodes: {} });
    assert.equal(Object.keys(JSON.parse(readFileSync(join(root, 'exec-cache.json'), 'utf8')).entries).length, 64, 'at most 64 entries');
    // A symlink in place of the cache is not read.
    const other = join(dir, 'state2');
    mkdirSync(other, { mode: 0o700 });
    writeFileSync(join(dir, 'evil.json'), JSON.stringify({ v: 1, entries: { [h]: { lab: 'evil', nodes: { a: 'netns' } } } }));
    symlinkSync(join(dir, 'evil.json'), join(other, 'exec-cache.json'));
    process.env.PROVIUM_STATE_DIR = other;
    assert.equal(cachedPeek(h), undefined);
    // The cache goes with the last lab: destroy removes the root when only the cache is left.
    process.env.PROVIUM_STATE_DIR = root;
    mkdirSync(join(root, 'lab1'), { mode: 0o700 });
    removeLabDir('lab1');
    assert.equal(existsSync(root), false, 'the state root is removed with the cache');
    delete process.env.PROVIUM_STATE_DIR;
  });

  test('hands over to the full CLI: other commands, options without --, unknown nodes, VM nodes, labs not applied', async () => {
    const file = join(dir, 'lab.yaml');
    writeFileSync(file, 'lab: zzunit\nnodes: { a: { kind: netns }, v: { kind: qemu } }\nbridges: {}\n');
    process.env.PROVIUM_STATE_DIR = join(dir, 'state3');
    assert.equal(await execFast(['plan', file]), undefined);
    assert.equal(await execFast(['exec', file, 'a', 'ping', '-c1', 'b']), undefined, 'options without -- are the CLI\'s');
    assert.equal(await execFast(['exec', file, 'zz', '--', 'true']), undefined);
    assert.equal(await execFast(['exec', file, 'v', '--', 'true']), undefined);
    assert.equal(await execFast(['exec', file, 'a', '--', 'true']), undefined, 'no namespace pv-zzunit-a: not applied');
    assert.equal(await execFast(['exec', join(dir, 'missing.yaml'), 'a', '--', 'true']), undefined);
    delete process.env.PROVIUM_STATE_DIR;
  });
});

test('provium --version prints package.json\'s version (bin fast path and the CLI)', async () => {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  const bin = fileURLToPath(new URL('../../../bin/provium', import.meta.url));
  assert.equal(execFileSync(process.execPath, [bin, '--version'], { encoding: 'utf8' }).trim(), pkg.version);
  const r = await runCli(['--version']);
  assert.equal(r.code, 0);
  assert.equal(r.out.trim(), pkg.version);
});
