/**
 * The one quoting function of remote commands (shellQuote) and the session protocol of
 * the SSH runner, proven by real shells: hostile strings (quotes, newlines, $(...),
 * backticks, globs, backslashes, non-ASCII, empty) quoted and run by dash and bash come
 * back byte for byte; NUL is refused. The runner's request protocol (argv quoted, stdin
 * as base64 here-document, one answer line) runs against a local `sh` standing in for
 * the remote one. Deterministic: a seeded PRNG.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { shellQuote, SshRunner } from '../../src/hosts/ssh.js';
import { prng } from '../../bench/topology.js';
import { tempDir } from './helpers.js';

const HOSTILE = ["'", '"', '\\', '$', '`', '$(id)', '`id`', '${HOME}', '*', '?', '[a]', '~', '\n', '\t', ' ', ';', '&', '|', '<', '>', '#', '!', '-n', '--', 'é', '日本', '\u{1f600}', '\r', "'\\''", '%s', '{a,b}'];

/** n strings mixing hostile fragments and letters, from a seeded PRNG. */
function hostileStrings(n: number, seed: number): string[] {
  const rnd = prng(seed);
  const out: string[] = ['', ...HOSTILE];
  while (out.length < n) {
    let s = '';
    const parts = 1 + Math.floor(rnd() * 6);
    for (let i = 0; i < parts; i++) s += rnd() < 0.6 ? HOSTILE[Math.floor(rnd() * HOSTILE.length)] : String.fromCharCode(97 + Math.floor(rnd() * 26));
    out.push(s);
  }
  return out;
}

/** What a shell prints for `printf '%s\0' ARGS...` with the arguments quoted by shellQuote. */
function roundTrip(shell: string, args: string[]): string[] {
  const script = `printf '%s\\0' ${args.map(shellQuote).join(' ')}`;
  const out = execFileSync(shell, ['-c', script], { encoding: 'utf8', maxBuffer: 1 << 24 });
  return out.split('\0').slice(0, -1);
}

describe('shellQuote: one quoting function for remote shells', () => {
  for (const shell of ['/bin/sh', '/bin/bash']) {
    test(`500 hostile strings come back byte for byte from ${shell}`, { skip: existsSync(shell) ? false : `${shell} not installed` }, () => {
      const args = hostileStrings(500, 14);
      assert.deepEqual(roundTrip(shell, args), args);
    });
  }

  test('a command substitution, a glob or a second command in an argument is never run', () => {
    const out = roundTrip('/bin/sh', ['$(echo pwned)', '`echo pwned`', '*', '; echo pwned', "' ; echo pwned ; '"]);
    assert.deepEqual(out, ['$(echo pwned)', '`echo pwned`', '*', '; echo pwned', "' ; echo pwned ; '"]);
  });

  test('NUL is refused (no argument can carry it)', () => {
    assert.throws(() => shellQuote('a\0b'), /NUL/);
  });

  test('the quoted form is single quotes with embedded quotes closed, escaped and reopened', () => {
    assert.equal(shellQuote("it's"), `'it'\\''s'`);
    assert.equal(shellQuote(''), `''`);
  });
});

/**
 * Stands in for the ssh client: a process relaying its stdin, stdout and stderr to a `sh`
 * it starts (with TMPDIR set to tmp, when given). Killing it closes the shell's pipes, as
 * a killed ssh client closes the remote shell's channel; the shell itself is not signalled.
 */
const RELAY = `const c = require('node:child_process').spawn('sh', [], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...(process.argv[1] ? { TMPDIR: process.argv[1] } : {}) } });
process.stdin.pipe(c.stdin); c.stdout.pipe(process.stdout); c.stderr.pipe(process.stderr);
for (const s of [c.stdin, process.stdout, process.stderr]) s.on('error', () => {});`;

/** The SSH runner's session protocol over a local `sh` (no SSH): the same requests, the same answers. */
class LocalShellRunner extends SshRunner {
  /** tmp: the remote shell's TMPDIR (default: this process's). */
  constructor(private readonly tmp = '') {
    super('local-sh', { destination: 'unused' });
  }
  protected override sessionArgv(): string[] {
    return [process.execPath, '-e', RELAY, this.tmp];
  }
  protected override connected(): boolean {
    return true;
  }
}

describe('SshRunner sessions (against a local sh)', () => {
  test('argv with hostile strings, stdin with every byte pattern, exit codes and stderr come back exactly', async () => {
    const r = new LocalShellRunner();
    try {
      const args = hostileStrings(200, 7);
      const a = await r.run(['printf', '%s\\0', ...args]);
      assert.deepEqual(a.stdout.split('\0').slice(0, -1), args);
      const input = hostileStrings(50, 9).join('\n') + '\nPVEOF_x\n' + "'<<'EOF'\n"; // no trailing newline issue, heredoc-like text inside
      const b = await r.run(['cat'], { stdin: input });
      assert.equal(b.stdout, input);
      const c = await r.run(['sh', '-c', 'echo out; echo err >&2; exit 3'], { allowFail: true });
      assert.deepEqual([c.exitCode, c.stdout, c.stderr], [3, 'out\n', 'err\n']);
      const d = await r.run(['no-such-program-pv'], { allowFail: true });
      assert.equal(d.exitCode, 127);
      await assert.rejects(r.run(['false']), /exit 1/);
    } finally {
      await r.close();
    }
  });

  test('concurrent requests share the sessions and each gets its own answer', async () => {
    const r = new LocalShellRunner();
    try {
      const outs = await Promise.all(Array.from({ length: 20 }, (_, i) => r.run(['printf', '%s', `answer-${i}`])));
      assert.deepEqual(outs.map((o) => o.stdout), Array.from({ length: 20 }, (_, i) => `answer-${i}`));
    } finally {
      await r.close();
    }
  });

  test('a request that outlives its timeout exits 124, later requests still work, and no session leaves its temporary folder', async () => {
    const tmp = tempDir('pv-ssh-remote-');
    const r = new LocalShellRunner(tmp);
    try {
      const slow = await r.run(['sleep', '1'], { timeoutMs: 200, allowFail: true });
      assert.equal(slow.exitCode, 124);
      assert.equal((await r.run(['echo', 'ok'])).stdout, 'ok\n');
    } finally {
      await r.close();
    }
    // The timed-out session's shell answers into a closed channel once `sleep` ends (SIGPIPE);
    // the ended session's shell reads the end of its input. Both remove their folder.
    const t0 = Date.now();
    while (readdirSync(tmp).length > 0 && Date.now() - t0 < 5000) await new Promise((res) => setTimeout(res, 50));
    assert.deepEqual(readdirSync(tmp), [], 'the sessions\' temporary folders are removed');
  });
});
