/**
 * Harness of the end-to-end tests. Every test builds its own throwaway world:
 * a host network namespace (pvt-<rand>) given to provium with --netns, a unique lab
 * name (t<6 random>), a temporary PROVIUM_STATE_DIR and PROVIUM_TRACE file; cleanup
 * destroys the lab and deletes every namespace the test made, even on failure.
 * Behaviour is proven with traffic: UDP datagram counts (a small node sender and
 * receiver run with `ip netns exec`), ping, and iperf3. Every command is bounded in
 * time, and every background process is killed.
 *
 * Nothing here touches the root namespace's interfaces, routes or nftables: the
 * lab's host side lives in the test's host namespace, and the node namespaces are
 * named pv-<lab>-<node> with a lab name that is unique per test.
 */
import { execa, type ResultPromise } from 'execa';
import { test, type TestContext } from 'node:test';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadTopology } from '../../src/load/index.js';
import type { Topology } from '../../src/model/topology.js';

/** bin/provium of this repository (dist/test/e2e/helpers.js -> repo root three levels up). */
export const PROVIUM_BIN = fileURLToPath(new URL('../../../bin/provium', import.meta.url));

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

const TOOLS = ['ip', 'tc', 'nft', 'iperf3', 'ping', 'socat', 'sysctl', 'timeout'];

function which(tool: string): boolean {
  return (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').some((d) => d && existsSync(join(d, tool)));
}

/**
 * Why the suite cannot run here, or undefined when it can. Synchronous, so that
 * `test(name, { skip: suiteSkip() })` decides at registration time and prints the reason.
 */
export function suiteSkip(): string | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    return `needs root: the e2e tests create network namespaces, bridges, qdiscs and nftables tables (running as uid ${process.getuid?.() ?? '?'})`;
  }
  const missing = TOOLS.filter((t) => !which(t));
  if (missing.length) return `needs host tools that are not installed: ${missing.join(', ')}`;
  if (!existsSync(PROVIUM_BIN)) return `provium CLI not found at ${PROVIUM_BIN}`;
  if (!existsSync(fileURLToPath(new URL('../../src/cli.js', import.meta.url)))) return 'provium is not built (dist/src/cli.js missing): run npx tsc -p tsconfig.json';
  return undefined;
}

let netemCache: boolean | undefined;
/**
 * Whether the kernel can make a netem qdisc: /sys/module/sch_netem, `modprobe -n
 * sch_netem`, or (decisive) adding one to lo in a scratch namespace. Synchronous.
 */
export function kernelHasNetem(): boolean {
  if (netemCache !== undefined) return netemCache;
  if (existsSync('/sys/module/sch_netem')) return (netemCache = true);
  if (which('modprobe')) {
    try {
      execFileSync('modprobe', ['-n', 'sch_netem'], { stdio: 'ignore', timeout: 5000 });
      return (netemCache = true);
    } catch {
      /* not available as a module */
    }
  }
  if (process.getuid?.() !== 0) return (netemCache = false);
  const ns = `pvt-nq-${rand(6)}`;
  try {
    execFileSync('ip', ['netns', 'add', ns], { stdio: 'ignore', timeout: 5000 });
    execFileSync('tc', ['-n', ns, 'qdisc', 'add', 'dev', 'lo', 'root', 'netem', 'delay', '1ms'], { stdio: 'ignore', timeout: 5000 });
    netemCache = true;
  } catch {
    netemCache = false;
  } finally {
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore', timeout: 5000 });
    } catch {
      /* never created */
    }
  }
  return netemCache;
}

/** n random characters of [a-z0-9]. */
export function rand(n: number): string {
  const abc = 'abcdefghijklmnopqrstuvwxyz0123456789';
  let s = '';
  for (let i = 0; i < n; i++) s += abc[Math.floor(Math.random() * abc.length)];
  return s;
}

/** Every background process started by the harness, killed by killAll() at cleanup. */
const background = new Set<ResultPromise>();

function track<T extends ResultPromise>(p: T): T {
  background.add(p);
  const drop = () => background.delete(p);
  p.then(drop, drop);
  return p;
}

/** Starts a background process (argument array), bounded by maxMs and killed by killAll() at cleanup. */
export function startBackground(argv: string[], maxMs = 60_000): void {
  track(execa(argv[0], argv.slice(1), { reject: false, timeout: maxMs, stdin: 'ignore', stdout: 'ignore', stderr: 'ignore' }));
}

/** Kills (SIGKILL) every process of the set that is still running, and empties the set. */
export function killEach(procs: Set<ResultPromise>): void {
  for (const p of procs) {
    try {
      p.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
  procs.clear();
}

/** Kills every process startBackground started. */
export function killAll(): void {
  killEach(background);
}

/** Runs tasks with at most `limit` at once; resolves to their results in the tasks' order, or rejects with the first failure. */
export async function pool<T>(tasks: (() => Promise<T>)[], limit: number): Promise<T[]> {
  const out: T[] = new Array(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const i = next++;
      out[i] = await tasks[i]();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  return out;
}

/** Runs a command (argument array, no shell), bounded in time; never throws on a non-zero exit. */
export async function run(argv: string[], opts: { timeoutMs?: number; input?: string; env?: Record<string, string>; cwd?: string } = {}): Promise<Result> {
  const t0 = performance.now();
  const p = await execa(argv[0], argv.slice(1), {
    reject: false,
    timeout: opts.timeoutMs ?? 30_000,
    killSignal: 'SIGKILL',
    input: opts.input ?? '',
    env: opts.env,
    cwd: opts.cwd,
    stripFinalNewline: false,
  });
  const code = p.timedOut ? 124 : (p.exitCode ?? 1);
  return { code, stdout: String(p.stdout ?? ''), stderr: String(p.stderr ?? '') + (p.timedOut ? `\n[harness: ${argv.join(' ')} timed out]` : ''), ms: performance.now() - t0 };
}

/** Like run, but throws when the command fails (for test setup steps). */
export async function must(argv: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<Result> {
  const r = await run(argv, opts);
  if (r.code !== 0) throw new Error(`command failed (exit ${r.code}): ${argv.join(' ')}\n${r.stdout}${r.stderr}`);
  return r;
}

/** Named network namespaces. */
export function listNetns(): string[] {
  try {
    return readdirSync('/run/netns').sort();
  } catch {
    return [];
  }
}

/** One JSON line of $PROVIUM_TRACE. */
export interface TraceLine {
  argv: string[];
  exitCode: number;
  ms: number;
  stdin?: string;
}

const READ_BATCH_LINE = /^\s*(addr|route|link|class|qdisc|filter|neigh)\s+show\b/;

/**
 * Whether a traced invocation only reads: `... show`, `nft ... list ...`, `sysctl -n`,
 * or an `-batch -` whose every stdin line is a `show`. Everything else (a `-batch -`
 * with changes, `nft -f`, `sysctl -w`) changes the host.
 */
export function isReadOnly(t: TraceLine): boolean {
  const a = t.argv;
  if (a.includes('ss')) return true; // listening-socket check (ss -H -l -n -t -u)
  const tool = a.includes('nft') ? 'nft' : a.includes('sysctl') ? 'sysctl' : a[0];
  if (tool === 'nft') return !a.includes('-f') && a.includes('list');
  if (tool === 'sysctl') return a.includes('-n') && !a.includes('-w');
  if (a.includes('-batch')) {
    const lines = (t.stdin ?? '').split('\n').filter((l) => l.trim());
    return lines.length > 0 && lines.every((l) => READ_BATCH_LINE.test(l));
  }
  return a.includes('show') || a.includes('list');
}

/** A lab under test: its host namespace, name, files, and the provium runner bound to them. */
export class Lab {
  readonly name: string;
  readonly hostNs: string;
  readonly dir: string;
  readonly stateDir: string;
  /** PROVIUM_CACHE_DIR of the lab's runs (the topology cache), inside `dir`. */
  readonly cacheDir: string;
  readonly tracePath: string;
  readonly file: string;
  /** Extra namespaces the test made (e.g. a fake upstream); deleted at cleanup. */
  readonly extraNs: string[] = [];
  private written = false;

  constructor() {
    this.name = `t${rand(6)}`;
    this.hostNs = `pvt-${rand(8)}`;
    this.dir = mkdtempSync(join(tmpdir(), `pvt-${this.name}-`));
    this.stateDir = join(this.dir, 'state');
    this.cacheDir = join(this.dir, 'cache');
    this.tracePath = join(this.dir, 'trace.jsonl');
    this.file = join(this.dir, 'lab.yaml');
  }

  /** Namespace of a netns node. */
  ns(node: string): string {
    return `pv-${this.name}-${node}`;
  }

  /** Host-side port of node's NIC number i. */
  port(node: string, i = 0): string {
    return `${this.name}-${node}-${i}`;
  }

  bridge(b: string): string {
    return `${this.name}-${b}`;
  }

  /** Bare IPv4 address of node on bridge in the lab's current file (see ipOf). */
  ip(node: string, bridge: string): string {
    return ipOf(readFileSync(this.file, 'utf8'), node, bridge);
  }

  /** Node -> bare IPv4 address of every member of bridge in the lab's current file (see ipsOf). */
  ips(bridge: string): Record<string, string> {
    return ipsOf(readFileSync(this.file, 'utf8'), bridge);
  }

  /** Writes the topology (`lab:` line first, then the rest) to the lab's file; returns its path. */
  write(body: string): string {
    writeFileSync(this.file, `lab: ${this.name}\n${dedent(body)}`);
    this.written = true;
    return this.file;
  }

  /**
   * Runs provium with --netns <host ns>, the lab's state dir and trace file.
   * args are the subcommand and its options; the file is appended unless `file: false`.
   */
  async provium(args: string[], opts: { file?: string | false; env?: Record<string, string>; timeoutMs?: number; netns?: boolean } = {}): Promise<Result> {
    const file = opts.file === false ? [] : [opts.file ?? this.file];
    const argv = ['node', PROVIUM_BIN, ...(opts.netns === false ? [] : ['--netns', this.hostNs]), ...args, ...file];
    return run(argv, {
      timeoutMs: opts.timeoutMs ?? 90_000,
      env: { PROVIUM_STATE_DIR: this.stateDir, PROVIUM_CACHE_DIR: this.cacheDir, PROVIUM_TRACE: this.tracePath, NO_COLOR: '1', ...(opts.env ?? {}) },
    });
  }

  /** apply --auto-approve --json; throws with provium's output when it fails. Returns the JSON result. */
  async apply(): Promise<{ host_commands: number; changes: unknown[]; summary: { add: number; change: number; destroy: number } }> {
    const r = await this.provium(['apply', '--auto-approve', '--json']);
    if (r.code !== 0) throw new Error(`provium apply failed (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
    return JSON.parse(r.stdout);
  }

  /** plan --detailed-exitcode: its exit code (0 none, 2 changes, 1 error) and output. */
  async planCode(): Promise<Result> {
    return this.provium(['plan', '--detailed-exitcode']);
  }

  /** plan --json, parsed. */
  async planJson(): Promise<{ changes: { address: string; action: string; items: unknown[] }[]; errors: { summary: string; detail?: string }[]; commands: { argv: string[]; stdin?: string; label: string }[] }> {
    const r = await this.provium(['plan', '--json']);
    try {
      return JSON.parse(r.stdout);
    } catch {
      throw new Error(`plan --json did not print JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
    }
  }

  /** The trace lines written so far (and, with `clear`, starts a new trace). */
  trace(clear = false): TraceLine[] {
    let lines: TraceLine[] = [];
    if (existsSync(this.tracePath)) {
      lines = readFileSync(this.tracePath, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as TraceLine);
    }
    if (clear) rmSync(this.tracePath, { force: true });
    return lines;
  }

  clearTrace(): void {
    rmSync(this.tracePath, { force: true });
  }

  /** Runs a command in the lab's host namespace (`ip netns exec`). */
  inHost(argv: string[], timeoutMs = 15_000): Promise<Result> {
    return run(['ip', 'netns', 'exec', this.hostNs, ...argv], { timeoutMs });
  }

  /** Destroys the lab, then deletes the host namespace, every pv-<lab>-* namespace and the extras. Never throws. */
  async cleanup(): Promise<void> {
    killAll();
    if (this.written && existsSync(`/run/netns/${this.hostNs}`)) {
      const r = await this.provium(['destroy', '--auto-approve'], { timeoutMs: 60_000 }).catch((e) => ({ code: -1, stdout: '', stderr: String(e), ms: 0 }));
      if (r.code !== 0) process.stderr.write(`[cleanup] provium destroy of lab ${this.name} failed (exit ${r.code}): ${r.stderr.trim().slice(0, 2000)}\n`);
    }
    const leftovers = listNetns().filter((n) => n.startsWith(`pv-${this.name}-`) || n === this.hostNs || this.extraNs.includes(n));
    for (const n of leftovers) await run(['ip', 'netns', 'del', n], { timeoutMs: 15_000 });
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Creates a lab with a fresh host namespace (lo up, ip_forward 0). */
export async function makeHost(): Promise<Lab> {
  const lab = new Lab();
  await must(['ip', 'netns', 'add', lab.hostNs]);
  await must(['ip', '-n', lab.hostNs, 'link', 'set', 'lo', 'up']);
  await must(['ip', 'netns', 'exec', lab.hostNs, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=0']);
  return lab;
}

// ---------------------------------------------------------------------------
// Addresses

/**
 * A topology from YAML text (a body without a `lab:` line, as given to Lab.write, gets
 * one) or a loaded Topology as it is. Uses the real loader, so tests follow provium's
 * rules instead of restating them.
 */
export function topologyOf(source: string | Topology): Topology {
  if (typeof source !== 'string') return source;
  const text = /^lab:/m.test(source) ? source : `lab: addr\n${dedent(source)}`;
  return loadTopology('/virtual/e2e-lab.yaml', text);
}

/**
 * Node -> bare IPv4 address (no prefix) of every member of `bridge`, as the file gives
 * them: a static `ip:`, or the address provium allocates from the node's name
 * (src/load/addresses.ts). Throws when the bridge is unknown or a member has no address.
 */
export function ipsOf(source: string | Topology, bridge: string): Record<string, string> {
  const t = topologyOf(source);
  const b = t.bridges[bridge];
  if (!b) throw new Error(`ipsOf: no bridge ${JSON.stringify(bridge)} (bridges: ${Object.keys(t.bridges).join(', ')})`);
  return Object.fromEntries(
    b.attach.map((a) => {
      if (!a.ip) throw new Error(`ipsOf: node ${JSON.stringify(a.node)} has no IPv4 address on bridge ${JSON.stringify(bridge)} (no subnet?)`);
      return [a.node, a.ip.split('/')[0]];
    }),
  );
}

/** The bare IPv4 address the file gives `node` on `bridge` (see ipsOf); throws when it is not a member. */
export function ipOf(source: string | Topology, node: string, bridge: string): string {
  const ip = ipsOf(source, bridge)[node];
  if (ip === undefined) throw new Error(`ipOf: node ${JSON.stringify(node)} is not attached to bridge ${JSON.stringify(bridge)}`);
  return ip;
}

/** Strips the common indentation of a template literal. */
export function dedent(text: string): string {
  const t = text.replace(/^\n/, '');
  const ls = t.split('\n');
  const indent = Math.min(...ls.filter((l) => l.trim()).map((l) => l.length - l.trimStart().length));
  return ls.map((l) => l.slice(Number.isFinite(indent) ? indent : 0)).join('\n') + (t.endsWith('\n') ? '' : '\n');
}

/**
 * A fake upstream: namespace pvt-up-<rand> with 192.0.2.1/24, linked by a veth to the
 * lab's host namespace (wan0, 192.0.2.2/24), which gets a default route via 192.0.2.1.
 * The upstream has no route back to any lab subnet: only masqueraded traffic can return.
 */
export async function makeUpstream(lab: Lab): Promise<string> {
  const up = `pvt-up-${rand(6)}`;
  lab.extraNs.push(up);
  await must(['ip', 'netns', 'add', up]);
  await must(['ip', '-n', up, 'link', 'set', 'lo', 'up']);
  await must(['ip', '-n', lab.hostNs, 'link', 'add', 'wan0', 'type', 'veth', 'peer', 'name', 'up0', 'netns', up]);
  await must(['ip', '-n', up, 'addr', 'add', '192.0.2.1/24', 'dev', 'up0']);
  await must(['ip', '-n', up, 'link', 'set', 'up0', 'up']);
  // No IPv6 on the fixture's link: its link-local address and DAD would settle at random times.
  await must(['ip', 'netns', 'exec', lab.hostNs, 'sysctl', '-q', '-w', 'net.ipv6.conf.wan0.disable_ipv6=1']);
  await must(['ip', '-n', lab.hostNs, 'addr', 'add', '192.0.2.2/24', 'dev', 'wan0']);
  await must(['ip', '-n', lab.hostNs, 'link', 'set', 'wan0', 'up']);
  await must(['ip', '-n', lab.hostNs, 'route', 'add', 'default', 'via', '192.0.2.1']);
  return up;
}

// ---------------------------------------------------------------------------
// Traffic

/** UDP receiver: binds PORT (FAMILY udp4 or udp6), prints "ready", counts datagrams by peer; ends on stdin EOF or after MAXMS. */
const UDP_RECV = `
const dgram = require('dgram');
const port = Number(process.argv[1]), maxMs = Number(process.argv[2]), family = process.argv[3] || 'udp4';
let count = 0; const peers = {};
const s = dgram.createSocket(family === 'udp6' ? { type: 'udp6', ipv6Only: true } : 'udp4');
s.on('message', (m, r) => { count++; peers[r.address] = (peers[r.address] || 0) + 1; });
let done = false;
const finish = () => { if (done) return; done = true; process.stdout.write(JSON.stringify({ count, peers }) + '\\n'); process.exit(0); };
s.bind(port, family === 'udp6' ? '::' : '0.0.0.0', () => { try { s.setRecvBufferSize(4 << 20); } catch {} process.stdout.write('ready\\n'); });
process.stdin.on('end', finish); process.stdin.on('error', finish); process.stdin.resume();
setTimeout(finish, maxMs);
`;

/** UDP sender: N datagrams to IP:PORT, in bursts of BURST with GAP ms between; prints {sent, errors}. */
const UDP_SEND = `
const dgram = require('dgram');
const [ip, port, n, burst, gap] = process.argv.slice(1).map((x, i) => i === 0 ? x : Number(x));
const s = dgram.createSocket(ip.includes(':') ? 'udp6' : 'udp4');
const buf = Buffer.from('provium-e2e-probe');
(async () => {
  let sent = 0, errors = 0;
  for (let i = 0; i < n; i++) {
    await new Promise((res) => s.send(buf, port, ip, (e) => { if (e) errors++; else sent++; res(); }));
    if ((i + 1) % burst === 0) await new Promise((r) => setTimeout(r, gap));
  }
  s.close();
  process.stdout.write(JSON.stringify({ sent, errors }) + '\\n');
})();
`;

let nextPort = 20000 + Math.floor(Math.random() * 20000);

/** Waits until a background process prints `marker` on stdout (or fails / times out). */
function waitFor(p: ResultPromise, marker: RegExp, timeoutMs: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`${what}: no ${marker} within ${timeoutMs} ms; output so far: ${buf}`)), timeoutMs);
    p.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      if (marker.test(buf)) {
        clearTimeout(timer);
        resolve();
      }
    });
    p.then(
      (r) => {
        clearTimeout(timer);
        reject(new Error(`${what} exited (code ${r.exitCode}) before ${marker}: ${buf}${String(r.stderr ?? '')}`));
      },
      (e) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

export interface UdpResult {
  received: number;
  sent: number;
  peers: Record<string, number>;
}

/**
 * Sends n UDP datagrams from namespace fromNs to toIp (IPv4 or IPv6; a receiver in toNs) and returns
 * how many arrived, and from which source addresses. Bounded: the receiver stops
 * 300 ms after the sender ends, 20 s at most.
 */
export async function udpProbe(fromNs: string, toNs: string, toIp: string, n = 20, opts: { burst?: number; gapMs?: number; graceMs?: number } = {}): Promise<UdpResult> {
  const port = nextPort++;
  if (nextPort > 60000) nextPort = 20000;
  const recv = track(
    execa('ip', ['netns', 'exec', toNs, 'node', '-e', UDP_RECV, String(port), '20000', toIp.includes(':') ? 'udp6' : 'udp4'], { reject: false, timeout: 25_000, killSignal: 'SIGKILL', stdin: 'pipe' }),
  );
  try {
    await waitFor(recv, /ready/, 10_000, `UDP receiver in ${toNs}`);
    const s = await run(['ip', 'netns', 'exec', fromNs, 'node', '-e', UDP_SEND, toIp, String(port), String(n), String(opts.burst ?? 10), String(opts.gapMs ?? 2)], {
      timeoutMs: 20_000,
    });
    if (s.code !== 0) throw new Error(`UDP sender in ${fromNs} failed (exit ${s.code}): ${s.stdout}${s.stderr}`);
    const sent = JSON.parse(s.stdout.trim().split('\n').pop()!) as { sent: number; errors: number };
    await new Promise((r) => setTimeout(r, opts.graceMs ?? 300));
    recv.stdin?.end();
    const r = await recv;
    const line = String(r.stdout ?? '').split('\n').filter((l) => l.startsWith('{')).pop();
    if (!line) throw new Error(`UDP receiver in ${toNs} printed no result (exit ${r.exitCode}): ${r.stdout}${r.stderr}`);
    const out = JSON.parse(line) as { count: number; peers: Record<string, number> };
    return { received: out.count, sent: sent.sent, peers: out.peers };
  } finally {
    recv.kill('SIGKILL');
  }
}

/** Datagrams received out of n sent (the common case of udpProbe). */
export async function udpCount(fromNs: string, toNs: string, toIp: string, n = 20): Promise<number> {
  return (await udpProbe(fromNs, toNs, toIp, n)).received;
}

export interface PingResult {
  transmitted: number;
  received: number;
  lossPct: number;
  /** Average RTT in ms (NaN when nothing came back). */
  avgMs: number;
}

/** Pings ip from namespace ns: count packets every intervalS seconds, bounded by a deadline. */
export async function ping(ns: string, ip: string, count = 3, intervalS = 0.2): Promise<PingResult> {
  const deadline = Math.ceil(count * intervalS + 2);
  const r = await run(['ip', 'netns', 'exec', ns, 'ping', '-n', '-q', '-c', String(count), '-i', String(intervalS), '-W', '1', '-w', String(deadline), ip], {
    timeoutMs: (deadline + 5) * 1000,
  });
  const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
  if (!m) {
    // e.g. "connect: Network is unreachable": nothing was sent, nothing came back.
    return { transmitted: 0, received: 0, lossPct: 100, avgMs: NaN };
  }
  const rtt = /= [\d.]+\/([\d.]+)\//.exec(r.stdout);
  const tx = Number(m[1]);
  const rx = Number(m[2]);
  return { transmitted: tx, received: rx, lossPct: tx ? (100 * (tx - rx)) / tx : 100, avgMs: rtt ? Number(rtt[1]) : NaN };
}

/** Loss in percent of pings from ns to ip. */
export async function pingLoss(ns: string, ip: string, count: number, intervalS: number): Promise<number> {
  return (await ping(ns, ip, count, intervalS)).lossPct;
}

/**
 * TCP throughput from clientNs to serverIp (iperf3 server in serverNs), in bit/s as the
 * receiver measured it (end.sum_received.bits_per_second). Bounded: server -1, client -t.
 */
export async function iperf(clientNs: string, serverNs: string, serverIp: string, seconds = 3): Promise<number> {
  const port = nextPort++;
  const server = track(
    execa('ip', ['netns', 'exec', serverNs, 'iperf3', '-s', '-1', '-p', String(port), '--forceflush'], { reject: false, timeout: (seconds + 30) * 1000, killSignal: 'SIGKILL' }),
  );
  try {
    await waitFor(server, /listening/i, 10_000, `iperf3 server in ${serverNs}`);
    const c = await run(['ip', 'netns', 'exec', clientNs, 'iperf3', '-c', serverIp, '-p', String(port), '-t', String(seconds), '-J', '--connect-timeout', '3000'], {
      timeoutMs: (seconds + 25) * 1000,
    });
    let j: { error?: string; end?: { sum_received?: { bits_per_second: number } } };
    try {
      j = JSON.parse(c.stdout);
    } catch {
      throw new Error(`iperf3 ${clientNs} -> ${serverIp} printed no JSON (exit ${c.code}): ${c.stdout.slice(0, 500)}${c.stderr}`);
    }
    if (j.error || !j.end?.sum_received) throw new Error(`iperf3 ${clientNs} -> ${serverIp} failed: ${j.error ?? 'no end.sum_received'}`);
    return j.end.sum_received.bits_per_second;
  } finally {
    server.kill('SIGKILL');
  }
}

/** IPv4 addresses (CIDR) of ifname inside namespace ns. */
export async function addrsOf(ns: string, ifname: string): Promise<string[]> {
  const r = await must(['ip', '-n', ns, '-j', 'addr', 'show', 'dev', ifname]);
  const j = JSON.parse(r.stdout) as { addr_info?: { family: string; local: string; prefixlen: number }[] }[];
  return (j[0]?.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`);
}

/** Mbit/s with two decimals, for messages. */
export function mbit(bps: number): string {
  return `${(bps / 1e6).toFixed(2)} Mbit/s`;
}

/** Prints a measurement into the test output (TAP diagnostic), so the report can quote it. */
export function report(t: { diagnostic: (m: string) => void }, msg: string): void {
  t.diagnostic(msg);
}

/**
 * A JSON value without nft's `counter` members: what sets, elements and rules counted
 * (packets the lab's filter dropped) is traffic, not state; a snapshot compares the rest.
 */
export function withoutCounters<T>(x: T): T {
  return JSON.parse(JSON.stringify(x, (k, v) => (k === 'counter' ? undefined : v))) as T;
}

/** A recursive listing of a directory: relative path -> 'dir' | file contents; undefined when absent. */
export function snapshotDir(dir: string): Record<string, string> | undefined {
  if (!existsSync(dir)) return undefined;
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    for (const e of readdirSync(join(dir, rel))) {
      const r = rel ? `${rel}/${e}` : e;
      const st = statSync(join(dir, r));
      if (st.isDirectory()) {
        out[r] = 'dir';
        walk(r);
      } else out[r] = readFileSync(join(dir, r), 'utf8');
    }
  };
  walk('');
  return out;
}

export function ensureDir(d: string): void {
  mkdirSync(d, { recursive: true });
}

// ---------------------------------------------------------------------------
// Test wrapper


/**
 * Registers one end-to-end test with its own host namespace and lab: skipped, with the
 * reason printed, when the suite cannot run here (not root, tools missing) or when
 * `skip` is given; cleaned up (destroy, delete namespaces, kill background processes)
 * whether it passes or fails.
 */
export function labTest(name: string, fn: (lab: Lab, t: TestContext) => Promise<void>, opts: { skip?: string; timeoutMs?: number } = {}): void {
  const skip = suiteSkip() ?? opts.skip;
  test(name, { skip: skip ?? false, timeout: opts.timeoutMs ?? 120_000 }, async (t) => {
    const lab = await makeHost();
    try {
      await fn(lab, t);
    } finally {
      await lab.cleanup();
    }
  });
}
