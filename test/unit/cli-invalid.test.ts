import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { runCli } from './cli-capture.js';
import { tempDir } from './helpers.js';

const DIR = new URL('../../../test/invalid/', import.meta.url);

test('every broken file: plan, apply and destroy exit 1 with a located message and run no host command', async () => {
  const trace = `${tempDir('pv-trace-')}/trace.jsonl`;
  process.env.PROVIUM_TRACE = trace;
  process.env.NO_COLOR = '1';
  const files = readdirSync(DIR).filter((f) => f.endsWith('.yaml')).sort();
  assert.ok(files.length >= 30, `only ${files.length} broken files`);
  try {
    for (const f of files) {
      const path = fileURLToPath(new URL(f, DIR));
      const m = /^# expect: (\d+):(\d+) (.*)$/m.exec(readFileSync(path, 'utf8'));
      assert.ok(m, `${f} has no expect line`);
      for (const cmd of [['plan'], ['apply', '--auto-approve'], ['destroy', '--auto-approve'], ['validate']]) {
        const r = await runCli([cmd[0], path, ...cmd.slice(1)]);
        assert.equal(r.code, 1, `${cmd[0]} ${f}: exit ${r.code}`);
        assert.ok(r.err.includes(`${path}:${m[1]}:${m[2]}: error:`), `${cmd[0]} ${f}: no message at ${m[1]}:${m[2]} in:\n${r.err}`);
        assert.ok(r.err.toLowerCase().includes(m[3].toLowerCase()), `${cmd[0]} ${f}: message lacks "${m[3]}":\n${r.err}`);
      }
    }
    assert.equal(existsSync(trace), false, `host commands ran: ${existsSync(trace) ? readFileSync(trace, 'utf8') : ''}`);
  } finally {
    delete process.env.PROVIUM_TRACE;
  }
});
