/**
 * Replays a recorded fixture (scripts/record-fixture.sh): answers each reader
 * command with the output recorded on a real host, so observe and plan run
 * without root. An unrecorded command fails the test (the planner must not ask
 * the host anything new without a new recording).
 */
import { readFileSync } from 'node:fs';
import type { Runner, RunOptions, RunResult } from '../../src/host/runner.js';
import type { HostFiles } from '../../src/observe/index.js';
import { loadTopology } from '../../src/load/index.js';
import { planFor } from '../../src/apply/index.js';
import { hostsFile } from '../../src/plan/hosts.js';
import { nodeNetns } from '../../src/model/names.js';

export const FIXTURES = new URL('../../../test/fixtures/', import.meta.url);

interface Call {
  argv: string[];
  stdin?: string;
  exitCode: number;
  stdout: string;
}

export class Replayer implements Runner {
  count = 0;
  private calls: Map<string, Call>;
  constructor(file: URL) {
    const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Call);
    this.calls = new Map(lines.map((c) => [this.key(c.argv, c.stdin), c]));
  }
  private key(argv: string[], stdin?: string): string {
    return JSON.stringify([argv, stdin ?? '']);
  }
  async run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
    this.count++;
    const c = this.calls.get(this.key(argv, opts.stdin));
    if (!c) throw new Error(`unrecorded command: ${argv.join(' ')} <<< ${JSON.stringify(opts.stdin ?? '')}`);
    return { argv, exitCode: c.exitCode, stdout: c.stdout, stderr: '', ms: 0 };
  }
}

/**
 * Host files as on the recording machine: its namespaces; netem absent, the rest present.
 * Fixtures were recorded before provium wrote hosts files: a recorded lab's node namespaces
 * have the hosts files its topology.yaml gives (as apply writes them).
 */
export function fixtureFiles(dir: URL, features: Partial<Record<string, boolean>> = {}): HostFiles {
  const ns = JSON.parse(readFileSync(new URL('netns.json', dir), 'utf8')) as string[];
  const recorded = loadTopology(new URL('topology.yaml', dir).pathname);
  const hosts = Object.fromEntries(Object.keys(recorded.nodes).map((n) => [nodeNetns(recorded.lab, n), n] as const).filter(([x]) => ns.includes(x)).map(([x, n]) => [x, hostsFile(recorded, n)]));
  return {
    listNetns: () => ns,
    detectFeature: (f) => ({ present: features[f] ?? f !== 'netem', source: 'fixture' }),
    kvmUsable: () => false,
    observeVms: async () => ({}),
    exists: () => true,
    observeServices: () => ({ dnsmasq: {}, resolv: {}, hosts, conflicts: [] }),
  };
}

/** The host namespace the fixture was recorded in (from the recorded argv). */
export function fixtureHostNetns(dir: URL): string {
  const first = readFileSync(new URL('calls.jsonl', dir), 'utf8').split('\n').find((l) => l.includes('"addr","show"'));
  const argv = (JSON.parse(first!) as Call).argv;
  return argv[argv.indexOf('-n') + 1];
}

/** Plans a fixture's topology (or another file) against its recording. */
export async function planFixture(name: string, topologyFile?: string, features?: Partial<Record<string, boolean>>) {
  const dir = new URL(`${name}/`, FIXTURES);
  const t = loadTopology(topologyFile ?? new URL('topology.yaml', dir).pathname);
  const runner = new Replayer(new URL('calls.jsonl', dir));
  return planFor(t, { hostNetns: fixtureHostNetns(dir) }, runner, fixtureFiles(dir, features));
}
