/**
 * Scenario compilation (provium run's checks before it touches the host): steps,
 * durations, repeats with ${i}, apply overlays (inline and files) compiled to full
 * topologies, and located errors in the file holding the offending text; and the CLI's
 * handling of scenario files (validate checks the steps, other commands ignore them).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkScenario, parseStepDuration, type ExecStep } from '../../src/scenario/compile.js';
import { renderEvent, type RunEvent } from '../../src/scenario/run.js';
import { formatDiagnostic } from '../../src/model/diagnostics.js';
import { runCli } from './cli-capture.js';
import { tempDir, yaml } from './helpers.js';

process.env.PROVIUM_STATE_DIR = '/nonexistent/provium-unit';

const LAB = yaml`
  lab: sc
  nodes:
    r1: { kind: netns }
    r2: { kind: netns }
    r3: { kind: netns }
    v: { kind: qemu }
  bridges:
    lan:
      subnet: 10.71.0.0/24
      attach: [r1, r2, r3, v]
`;

/** A fresh folder with these files (name -> text), removed when the test ends; returns its path. */
function folder(files: Record<string, string>): string {
  const dir = tempDir('pv-sc-');
  for (const [n, t] of Object.entries(files)) writeFileSync(join(dir, n), t);
  return dir;
}

function compile(dir: string, vars: Record<string, string> = {}, names = ['scen.yaml']) {
  return checkScenario(names.map((name) => ({ name })), { cwd: dir, env: {}, vars });
}

const errs = (r: ReturnType<typeof compile>) => r.diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic);

describe('compiling a scenario', () => {
  it('compiles every step; repeats unroll with ${i}; apply steps become full topologies of the same lab', () => {
    const dir = folder({
      'lab.yaml': LAB,
      'cut.yaml': 'bridges: { lan: { partitions: [[r1, r2]] } }\n',
      'scen.yaml': yaml`
        extends: lab.yaml
        steps:
          - apply: {}
          - until: { node: r2, run: [ping, -c, 1, 10.71.0.1], timeout: 20s, interval: 200ms }
          - name: cut the leader
            apply: { bridges: { lan: { partitions: [{ groups: [["\${LEADER}"], others] }] } } }
          - wait: 1.5s
          - repeat:
              times: 2
              steps:
                - apply: { bridges: { lan: { impairments: [{ from: r1, to: r2, drop_pct: \${i} }] } } }
                - exec: { node: r1, run: [echo, "round \${i}", 0.50], expect: 0 }
          - apply: { file: cut.yaml }
          - exec: { node: r3, run: [true] }
      `,
    });
    const r = compile(dir, { LEADER: 'r3' });
    assert.deepEqual(errs(r), []);
    const sc = r.scenario!;
    assert.deepEqual(sc.steps.map((s) => `${s.id} ${s.kind}`), ['1 apply', '2 until', '3 apply', '4 wait', '5.1.1 apply', '5.1.2 exec', '5.2.1 apply', '5.2.2 exec', '6 apply', '7 exec']);
    assert.equal(sc.steps[2].name, 'cut the leader');
    const cut = sc.steps[2];
    assert.ok(cut.kind === 'apply' && cut.topology.bridges.lan.partitions.every((p) => p.group?.key === 'others|r3'));
    assert.equal((sc.steps[3] as { ms: number }).ms, 1500);
    const round2 = sc.steps[6];
    assert.ok(round2.kind === 'apply');
    assert.equal(round2.topology.bridges.lan.impairments[0].drop_pct, 2, '${i} is the round, read as a number');
    assert.deepEqual((sc.steps[7] as ExecStep).argv, ['echo', 'round 2', '0.50'], 'argv keeps numbers as written');
    const u = sc.steps[1] as ExecStep;
    assert.deepEqual([u.node, u.timeoutMs, u.intervalMs, u.expect], ['r2', 20000, 200, 0]);
    assert.deepEqual([(sc.steps[9] as ExecStep).timeoutMs, (sc.steps[9] as ExecStep).expect], [60000, 0]);
    const file = sc.steps[8];
    assert.ok(file.kind === 'apply' && file.topology.bridges.lan.partitions.length === 1 && file.what === 'apply cut.yaml');
    assert.equal(sc.steps[0].kind === 'apply' && sc.steps[0].topology.bridges.lan.partitions.length, 0, '{} is the base');
    assert.deepEqual(sc.vars, { LEADER: 'r3' });
    assert.deepEqual(sc.files.map((f) => f.name).sort(), ['cut.yaml', 'lab.yaml', 'scen.yaml']);
  });

  it('durations: ms, s, m, h, fractions, plain seconds; anything else is undefined', () => {
    assert.deepEqual(['500ms', '5s', '2m', '1h', '1.5s', 3, '0s'].map(parseStepDuration), [500, 5000, 120000, 3600000, 1500, 3000, 0]);
    assert.deepEqual(['5 sec', '-1s', 'soon', '', null, [1]].map(parseStepDuration), [undefined, undefined, undefined, undefined, undefined, undefined]);
  });

  it('reports every problem of the steps, located, before anything runs', () => {
    const dir = folder({
      'lab.yaml': LAB,
      'scen.yaml': yaml`
        extends: lab.yaml
        steps:
          - wait: 5 sec
          - until: { node: r1, run: [true] }
          - exec: { node: v, run: [true] }
          - exec: { node: r9, run: ping }
          - { wait: 1s, apply: {} }
          - { sleep: 1s }
          - exec: { node: r1, run: [true], expect: 300 }
          - apply: { bridges: { lan: { mtu: 20 } } }
          - apply: { lab: other }
          - repeat: { times: 0, steps: [] }
          - exec: { node: r1, run: [echo, "\${NOPE}"] }
      `,
    });
    assert.deepEqual(errs(compile(dir)), [
      'scen.yaml:3:11: error: invalid duration: wait takes a duration such as 500ms, 5s or 2m, not "5 sec"',
      'scen.yaml:4:12: error: missing timeout: until needs timeout: how long to keep trying, e.g. timeout: 30s',
      'scen.yaml:5:19: error: unknown node: "v" is a qemu node; commands run in netns nodes and routers (netns nodes and routers: r1, r2, r3)',
      'scen.yaml:6:19: error: unknown node: "r9" is not a node of the lab (netns nodes and routers: r1, r2, r3)',
      'scen.yaml:6:28: error: invalid run: run is the command as a list of arguments (no shell), e.g. run: [ping, -c, 1, b]; for a shell pipeline: run: [sh, -c, "..."]',
      'scen.yaml:7:5: error: invalid step: step 5 has apply and wait; a step has exactly one action (use two steps)',
      'scen.yaml:8:7: error: unknown key: "sleep" is not allowed in a step; expected one of: name, apply, wait, exec, until, repeat',
      'scen.yaml:8:5: error: invalid step: step 6 has no action; give one of apply, wait, exec, until, repeat',
      'scen.yaml:9:44: error: invalid expect: expect is the exit status that means success, 0 to 255, not 300',
      'scen.yaml:10:5: error: invalid apply: step 8: the topology this apply makes has 1 error(s), listed with the text that causes them',
      'scen.yaml:10:37: error: out of range: bridges.lan.mtu is the number 20, must be >= 68',
      'scen.yaml:11:5: error: lab changed: step 9 applies lab other; a scenario runs one lab (sc)',
      'scen.yaml:12:22: error: invalid repeat: repeat needs times: a whole number from 1 to 100000, not 0',
      'scen.yaml:13:36: error: undefined variable: ${NOPE}: NOPE is not set; give it with --var NOPE=VALUE or in the environment, or write ${NOPE:-default}',
    ].sort((a, b) => {
      const n = (s: string) => s.split(':').slice(1, 3).map(Number);
      const [x, y] = [n(a), n(b)];
      return x[0] - y[0] || x[1] - y[1];
    }));
  });

  it('an error in an apply step\'s overlay file is located in that file', () => {
    const dir = folder({ 'lab.yaml': LAB, 'bad.yaml': '\nbridges: { lan: { partitions: [[r1, zz]] } }\n', 'scen.yaml': 'extends: lab.yaml\nsteps:\n  - apply: { file: bad.yaml }\n  - apply: { file: none.yaml }\n' });
    const e = errs(compile(dir));
    assert.ok(e.some((m) => /^bad\.yaml:2:37: error: unknown node: partition names node "zz"/.test(m)), e.join('\n'));
    assert.ok(e.some((m) => /^scen\.yaml:3:5: error: invalid apply: step 1/.test(m)), e.join('\n'));
    assert.ok(e.some((m) => /^scen\.yaml:4:20: error: cannot read topology file: none\.yaml: ENOENT/.test(m)), e.join('\n'));
  });

  it('a file without steps is not a scenario', () => {
    const dir = folder({ 'scen.yaml': LAB });
    assert.match(errs(compile(dir))[0], /^scen\.yaml:1:1: error: no steps: provium run needs a scenario/);
  });

  it('renders events as one line each', () => {
    const ev: RunEvent[] = [
      { event: 'start', format_version: '1', epoch_ms: 0, lab: 'sc', files: ['lab.yaml', 'scen.yaml'], steps: 2 },
      { event: 'step', step: '1', kind: 'apply', what: 'apply {}', start: 0, committed: 0.042, end: 0.1, outcome: 'ok', changes: 1, host_commands: 1 },
      { event: 'step', step: '2', name: 'wait for it', kind: 'until', what: 'until r1: false', start: 0.1, end: 2.1, outcome: 'failed', reason: 'not within 2s (4 tries)', exit: 1, tries: 4 },
      { event: 'restore', start: 2.1, committed: 2.15, end: 2.2, outcome: 'ok', changes: 1 },
      { event: 'run', outcome: 'failed', steps: 2, passed: 1, failed_step: '2', reason: 'not within 2s (4 tries)', end: 2.2 },
    ];
    const text = ev.map(renderEvent).join('');
    assert.match(text, /step 1: apply \{\}: 1 change\(s\) committed at \+0\.042s \(42 ms\), verified at \+0\.100s {2}ok/);
    assert.match(text, /step 2 \(wait for it\): until r1: false {2}FAILED: not within 2s/);
    assert.match(text, /restoring the base lab: 1 change\(s\) committed at \+2\.150s/);
    assert.match(text, /run failed at step 2: not within 2s/);
    assert.equal(text.trimEnd().split('\n').length, ev.length);
  });
});

describe('the CLI with scenario files', () => {
  const dir = folder({ 'lab.yaml': LAB, 'scen.yaml': 'extends: lab.yaml\nsteps:\n  - wait: 1s\n  - exec: { node: r9, run: [true] }\n', 'ok.yaml': 'extends: lab.yaml\nsteps:\n  - wait: 1s\n' });

  it('validate checks the steps too', async () => {
    const bad = await runCli(['validate', 'scen.yaml'], dir);
    assert.equal(bad.code, 1);
    assert.match(bad.err, /scen\.yaml:4:19: error: unknown node/);
    const ok = await runCli(['validate', 'ok.yaml'], dir);
    assert.equal(ok.code, 0, ok.err);
    assert.match(ok.out, /ok\.yaml: valid \(lab sc, scenario of 1 step\(s\); files merged: lab\.yaml, ok\.yaml\)/);
  });

  it('other commands use the scenario\'s topology, ignore its steps and say so; run refuses an invalid scenario before touching the host', async () => {
    const g = await runCli(['graph', 'scen.yaml'], dir);
    assert.equal(g.code, 0, g.err);
    assert.match(g.err, /note: scen\.yaml has steps:, which provium run runs; graph uses its topology and ignores them/);
    const r = await runCli(['run', 'scen.yaml'], dir);
    assert.equal(r.code, 1);
    assert.match(r.err, /scen\.yaml:4:19: error: unknown node/);
    assert.equal(r.out, '');
  });

  it('render prints the merged topology, reloadable, with -f and --var', async () => {
    const d = folder({ 'lab.yaml': LAB, 'o.yaml': 'bridges: { lan: { mtu: ${MTU} } }\n' });
    const r = await runCli(['render', 'lab.yaml', '-f', 'o.yaml', '--var', 'MTU=1400'], d);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^# provium render: lab\.yaml \+ o\.yaml \(variables: MTU\)\n/);
    assert.match(r.out, /mtu: 1400/);
    writeFileSync(join(d, 'rendered.yaml'), r.out);
    const again = await runCli(['render', 'rendered.yaml', '--json'], d);
    const j = JSON.parse(again.out);
    assert.equal(j.bridges.lan.mtu, 1400);
    assert.equal((await runCli(['render', 'lab.yaml', '-f', 'o.yaml'], d)).code, 1, 'MTU undefined');
    assert.equal((await runCli(['render', 'lab.yaml', '--var', 'bad'], d)).code, 1);
  });
});
