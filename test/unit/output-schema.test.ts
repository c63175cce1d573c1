import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { planJson } from '../../src/render/json.js';
import { showJson } from '../../src/render/show.js';
import { loadTopology } from '../../src/load/index.js';
import { runCli } from './cli-capture.js';
import { planFixture, FIXTURES } from './replay.js';

process.env.PROVIUM_STATE_DIR = '/nonexistent/provium-unit';
const schema = JSON.parse(readFileSync(new URL('../../../schemas/output.schema.json', import.meta.url), 'utf8'));
const ajv = new Ajv({ allErrors: true, strict: false });
ajv.addSchema(schema);
const check = (def: string, doc: unknown) => {
  const v = ajv.getSchema(`${schema.$id}#/definitions/${def}`)!;
  assert.ok(v(doc), `${def}: ${ajv.errorsText(v.errors)}`);
};

test('plan --json documents (create, update, replace, delete, errors) match the output schema', async () => {
  for (const f of ['empty', 'applied', 'one-field', 'drifted']) check('plan', planJson((await planFixture(f)).plan));
  const { plan } = await planFixture('applied', new URL('applied/topology.yaml', FIXTURES).pathname, { netem: false, htb: false });
  check('plan', planJson(plan));
});

test('apply --json and show --json documents match the output schema', async () => {
  const planned = await planFixture('drifted');
  check('apply', { ...planJson(planned.plan), applied: true, host_commands: 5, seconds: 0.2 });
  const t = loadTopology(new URL('drifted/topology.yaml', FIXTURES).pathname);
  check('show', JSON.parse(JSON.stringify(showJson(t, planned))));
});

test('validate --json (valid and invalid files) matches the output schema', async () => {
  for (const file of [new URL('../../../examples/basic.yaml', import.meta.url).pathname, new URL('../../../test/invalid/attach-twice.yaml', import.meta.url).pathname]) {
    const { out } = await runCli(['validate', '--json', file]);
    check('validate', JSON.parse(out));
  }
});

test('plan --json on an invalid file prints the validate document', async () => {
  const file = new URL('../../../test/invalid/attach-twice.yaml', import.meta.url).pathname;
  const { code, out } = await runCli(['plan', '--json', file]);
  assert.equal(code, 1);
  const doc = JSON.parse(out);
  check('validate', doc);
  assert.equal(doc.valid, false);
});

test('the schema rejects what it should (the checks above can fail)', async () => {
  const doc = planJson((await planFixture('drifted')).plan) as Record<string, unknown>;
  const v = ajv.getSchema(`${schema.$id}#/definitions/plan`)!;
  assert.equal(v({ ...doc, format_version: '2' }), false);
  assert.equal(v({ ...doc, changes: [{ address: 'x', action: 'move', items: [] }] }), false);
  assert.equal(v({ ...doc, commands: [{ argv: 'ip link', label: 'x' }] }), false);
});

test('probe --json and ls --json documents match the output schema', async () => {
  const { probeJson } = await import('../../src/probe/render.js');
  const { lsJson } = await import('../../src/labs.js');
  check('probe', probeJson({
    lab: 'x', ok: false, seconds: 1.5, drift: ['bridge.lan.impairment[a>b]'],
    results: [
      { property: 'drop', subject: 'lan a -> b', bridge: 'lan', from: 'a', to: 'b', declared: '5 %', measured: '0 %', status: 'FAIL', values: { declaredPct: 5, measuredPct: 0 } },
      { property: 'uplink', subject: 'lan', declared: 'reachable', measured: 'not measured', status: 'skip' },
    ],
  }));
  check('ls', lsJson([{ lab: 'demo', file: '/x/lab.yaml', hostNetns: null, appliedAt: '2026-12-02T00:00:00.000Z', objects: { nodes: 3 }, namespaces: 3, recorded: true }, { lab: 'old', namespaces: 2, recorded: false }]));
});

test('a multi-host plan --json document (changes and commands with their host, per-host plans) matches the output schema', async () => {
  const { multiPlanJson } = await import('../../src/hosts/render.js');
  const { plan, observation } = await planFixture('drifted');
  const t = loadTopology(new URL('drifted/topology.yaml', FIXTURES).pathname);
  const doc = multiPlanJson({ lab: t.lab, errors: [], hosts: [{ host: 'h1', topology: t, ctx: {}, plan, observation, record: {} }, { host: 'h2', topology: t, ctx: {}, plan, observation, record: {} }] });
  assert.ok(doc.changes.every((c) => c.host === 'h1' || c.host === 'h2'));
  check('plan', JSON.parse(JSON.stringify(doc)));
});
