/**
 * `provium capture FILE BRIDGE|NODE.NIC`: tcpdump on a lab's bridge device or on the
 * host-side port of one node NIC, in the lab's host namespace.
 *
 * tcpdump always writes to a pipe (`-w -` for pcap, decoded text otherwise), never to
 * the user's file itself: provium writes the pcap to a temporary file next to the
 * destination and renames it into place only when the capture ended well, so an
 * error leaves no partial file (and an older file of that name stays as it was). It
 * also keeps the file owned by the caller, and clear of tcpdump's privilege drop and
 * of AppArmor's rule that tcpdump may only write files named *.pcap.
 *
 * tcpdump is the one long-running, streaming host command, which HostRunner (it
 * collects output and returns at exit) cannot carry: it is spawned here, as an
 * argument array, in a session of its own (a terminal's Ctrl-C reaches provium only,
 * which forwards one SIGINT: tcpdump flushes, prints its counts and exits 0). The
 * invocation is traced to $PROVIUM_TRACE like the runner's. Every other command
 * (the device check) goes through the runner.
 */
import { spawn } from 'node:child_process';
import { appendFileSync, closeSync, existsSync, openSync, renameSync, statSync, unlinkSync, createWriteStream } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { readFileSync } from 'node:fs';
import { ProviumError } from './model/diagnostics.js';
import type { Topology } from './model/topology.js';
import { bridgeDev, portDev } from './model/names.js';
import { HostRunner, type Runner } from './host/runner.js';

export interface CaptureOptions {
  /** pcap output file; '-' writes the pcap to stdout. Absent: decoded lines on stdout. */
  write?: string;
  /** "5s", "500ms", "2m", or plain seconds. */
  duration?: string;
  /** Stop after this many packets. */
  count?: string;
  /** BPF expression (tcpdump filter syntax). */
  filter?: string;
}

/** What a capture target names: the device, and a description for messages. */
export interface CaptureTarget {
  kind: 'bridge' | 'port';
  dev: string;
  /** "bridge lan" or "node a's eth0 (on bridge lan)". */
  what: string;
}

/** ms to wait after SIGINT before SIGKILL; ms to wait for tcpdump's "listening on". */
const STOP_GRACE_MS = 5000;
const START_TIMEOUT_MS = 15_000;

/** Every valid target of a topology: its bridges, and node.nic for every attachment. */
export function captureTargets(t: Topology): { bridges: string[]; nics: string[] } {
  const nics: string[] = [];
  for (const b of Object.values(t.bridges)) for (const a of b.attach) nics.push(`${a.node}.${a.nic}`);
  return { bridges: Object.keys(t.bridges).sort(), nics: [...new Set(nics)].sort() };
}

function targetsHint(t: Topology): string {
  const { bridges, nics } = captureTargets(t);
  return `valid targets: bridges: ${bridges.join(', ') || '(none)'}; NICs: ${nics.join(', ') || '(none)'}`;
}

/** Resolves `lan` or `a.eth0` against the file. Pure; throws ProviumError naming the valid targets. */
export function resolveTarget(t: Topology, target: string): CaptureTarget {
  const dot = target.indexOf('.');
  if (dot < 0) {
    const b = t.bridges[target];
    if (b) return { kind: 'bridge', dev: bridgeDev(t.lab, target), what: `bridge ${target}` };
    if (t.nodes[target]) {
      throw new ProviumError(`${JSON.stringify(target)} is a node, not a bridge: name one of its NICs (NODE.NIC, e.g. ${target}.eth0)`, targetsHint(t));
    }
    throw new ProviumError(`unknown capture target ${JSON.stringify(target)}: no bridge of that name in lab ${t.lab}`, targetsHint(t));
  }
  const node = target.slice(0, dot);
  const nic = target.slice(dot + 1);
  if (!t.nodes[node]) throw new ProviumError(`unknown capture target ${JSON.stringify(target)}: no node ${JSON.stringify(node)} in lab ${t.lab}`, targetsHint(t));
  for (const b of Object.values(t.bridges)) {
    const a = b.attach.find((x) => x.node === node && x.nic === nic);
    if (a) return { kind: 'port', dev: portDev(t.lab, node, a.nicIndex), what: `node ${node}'s ${nic} on bridge ${b.name}` };
  }
  const own = captureTargets(t).nics.filter((n) => n.startsWith(`${node}.`));
  throw new ProviumError(
    `node ${node} has no NIC ${JSON.stringify(nic)} in lab ${t.lab}${own.length ? `: its NICs are ${own.join(', ')}` : ' (it is on no bridge)'}`,
    targetsHint(t),
  );
}

/**
 * What a bridge capture sees: frames as they enter the bridge from its ports, before the
 * lab's bridge filter (partitions, isolation, drop) decides; a frame the filter drops
 * still shows here. A node's NIC shows what is delivered.
 */
export function bridgeCaptureNote(t: Topology, dev: string): string {
  const b = Object.values(t.bridges).find((x) => bridgeDev(t.lab, x.name) === dev);
  const nic = b?.attach[0] ? `${b.attach[0].node}.${b.attach[0].nic}` : 'NODE.NIC';
  return `note: a bridge capture sees every frame entering the bridge, also those its partitions, isolation and drop then discard; capture a node's NIC (e.g. ${nic}) to see what is delivered\n`;
}

/** "5s" -> 5000, "250ms" -> 250, "2m" -> 120000, "3" -> 3000 (seconds). Throws on anything else or on 0. */
export function parseDuration(s: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$/.exec(s);
  if (!m) throw new ProviumError(`--duration: invalid duration ${JSON.stringify(s)}`, 'use a number with ms, s or m, e.g. 500ms, 5s, 2m (a plain number is seconds)');
  const ms = Number(m[1]) * ({ ms: 1, s: 1000, m: 60_000 } as const)[(m[2] ?? 's') as 'ms' | 's' | 'm'];
  if (!(ms >= 1) || !Number.isFinite(ms)) throw new ProviumError(`--duration: must be at least 1 ms, got ${JSON.stringify(s)}`);
  return Math.round(ms);
}

/** "--count 10" -> 10; a positive integer. */
export function parseCount(s: string): number {
  if (!/^\s*\d+\s*$/.test(s) || Number(s) < 1 || !Number.isSafeInteger(Number(s))) throw new ProviumError(`--count: expected a positive whole number of packets, got ${JSON.stringify(s)}`);
  return Number(s);
}

/**
 * The filter as argv words. tcpdump joins its trailing words with spaces, so splitting
 * on whitespace changes nothing; the words go after `--`, so none is ever read as a
 * tcpdump option (e.g. a filter "-w /etc/x" is a filter syntax error, not a file).
 */
export function filterWords(filter: string | undefined): string[] {
  if (filter === undefined) return [];
  const words = filter.split(/\s+/).filter((w) => w.length > 0);
  if (words.length === 0) throw new ProviumError('--filter: empty expression', 'give a tcpdump (pcap-filter) expression, e.g. --filter "icmp or arp"');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(filter.replace(/[\t\n\r]/g, ' '))) throw new ProviumError('--filter: control characters are not allowed in the expression');
  return words;
}

/**
 * tcpdump's argv (after the program and the netns prefix). Pure. `--immediate-mode`:
 * without it libpcap hands packets over a ring block at a time (up to 1 s late), and a
 * stop by SIGINT (Ctrl-C, --duration) loses what is still in the unfinished block
 * (measured: 2 of 4 pings' packets captured, "4 received by filter").
 */
export function tcpdumpArgs(dev: string, o: { pcap: boolean; count?: number; filter: string[] }): string[] {
  return ['-i', dev, '-U', '-n', '--immediate-mode', ...(o.pcap ? ['-w', '-'] : []), ...(o.count !== undefined ? ['-c', String(o.count)] : []), ...(o.filter.length ? ['--', ...o.filter] : [])];
}

/** Absolute path of tcpdump in PATH (plus the sbin directories), or undefined. */
export function findTcpdump(): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/bin', '/sbin', '/bin'].filter((d) => d.startsWith('/'));
  for (const d of dirs) {
    const p = join(d, 'tcpdump');
    try {
      if (statSync(p).isFile()) return p;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

/** Effective capabilities of this process (bit n = capability n), from /proc/self/status. */
function effectiveCaps(): bigint | undefined {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? BigInt(`0x${m[1]}`) : undefined;
  } catch {
    return undefined;
  }
}

const CAP_NET_RAW = 13n;
const CAP_SYS_ADMIN = 21n;

function checkPrivileges(hostNetns: string | undefined): void {
  const caps = effectiveCaps();
  const has = (c: bigint) => (caps !== undefined ? ((caps >> c) & 1n) === 1n : process.getuid?.() === 0);
  const missing = [...(has(CAP_NET_RAW) ? [] : ['CAP_NET_RAW (to open a packet socket)']), ...(hostNetns !== undefined && !has(CAP_SYS_ADMIN) ? ['CAP_SYS_ADMIN (to enter namespace ' + hostNetns + ')'] : [])];
  if (missing.length) {
    throw new ProviumError(`capture needs root: missing ${missing.join(' and ')} (running as uid ${process.getuid?.() ?? '?'})`, 'run it as root, e.g. with sudo');
  }
}

/** Checks the device with one `ip -j link show dev X` read in the lab's host namespace. */
async function checkDevice(runner: Runner, target: CaptureTarget, hostNetns: string | undefined): Promise<void> {
  const r = await runner.run(['ip', ...(hostNetns !== undefined ? ['-n', hostNetns] : []), '-j', 'link', 'show', 'dev', target.dev], { allowFail: true, timeoutMs: 15_000 });
  const noun = target.kind === 'bridge' ? 'bridge' : 'port';
  const where = hostNetns !== undefined ? ` in namespace ${hostNetns}` : '';
  if (r.exitCode !== 0) {
    if (/does not exist|cannot find device/i.test(r.stderr)) {
      throw new ProviumError(`${noun} ${target.dev} does not exist${where}: run provium apply first`, `${target.dev} is ${target.what}`);
    }
    throw new ProviumError(`cannot read ${noun} ${target.dev}${where}: ip exited ${r.exitCode}: ${r.stderr.trim()}`);
  }
  let link: { flags?: string[] } | undefined;
  try {
    link = (JSON.parse(r.stdout) as { flags?: string[] }[])[0];
  } catch {
    link = undefined;
  }
  if (!link) throw new ProviumError(`${noun} ${target.dev} does not exist${where}: run provium apply first`, `${target.dev} is ${target.what}`);
  if (!(link.flags ?? []).includes('UP')) {
    throw new ProviumError(
      `${noun} ${target.dev}${where} is down: tcpdump cannot capture on it`,
      target.kind === 'port' ? `${target.what} has link: down in the file, or the lab drifted (provium plan shows it)` : 'provium apply brings it back up',
    );
  }
}

/** What tcpdump printed on stderr: its counts, and any other line (warnings, errors). */
interface TcpdumpReport {
  listening: boolean;
  captured?: number;
  received?: number;
  dropped?: number;
  other: string[];
}

function readStderrLine(line: string, rep: TcpdumpReport): 'listening' | undefined {
  let m: RegExpExecArray | null;
  if (/listening on /.test(line)) {
    rep.listening = true;
    return 'listening';
  }
  if (/verbose output suppressed/.test(line)) return undefined;
  if ((m = /^(\d+) packets? captured/.exec(line))) rep.captured = Number(m[1]);
  else if ((m = /^(\d+) packets? received by filter/.exec(line))) rep.received = Number(m[1]);
  else if ((m = /^(\d+) packets? dropped by kernel/.exec(line))) rep.dropped = Number(m[1]);
  else if (line.trim()) rep.other.push(line);
  return undefined;
}

/** A ProviumError from tcpdump's failure output. */
function tcpdumpError(code: number | null, signal: string | null, rep: TcpdumpReport, target: CaptureTarget, hostNetns: string | undefined, filter: string | undefined): ProviumError {
  const text = rep.other.join('\n');
  const noun = target.kind === 'bridge' ? 'bridge' : 'port';
  if (/No such device exists|doesn't exist|Cannot find device/i.test(text)) return new ProviumError(`${noun} ${target.dev} does not exist: run provium apply first`, text);
  if (/not up/i.test(text)) return new ProviumError(`${noun} ${target.dev} is down: tcpdump cannot capture on it`, text);
  if (/can't parse filter expression|syntax error|illegal token|unknown host/i.test(text)) return new ProviumError(`--filter: tcpdump rejected the expression ${JSON.stringify(filter ?? '')}: ${text.replace(/^tcpdump:\s*/, '')}`, 'see man pcap-filter for the syntax');
  if (/permission|not permitted/i.test(text)) return new ProviumError(`tcpdump may not capture on ${target.dev}: ${text}`, 'run provium as root (tcpdump needs CAP_NET_RAW)');
  const how = signal ? `was killed by ${signal}` : `exited ${code}`;
  return new ProviumError(`tcpdump on ${target.dev}${hostNetns !== undefined ? ` (namespace ${hostNetns})` : ''} ${how}${text ? `: ${text}` : ''}`);
}

function trace(argv: string[], exitCode: number, ms: number): void {
  const f = process.env.PROVIUM_TRACE;
  if (f) appendFileSync(f, JSON.stringify({ argv, exitCode, ms: Math.round(ms * 10) / 10 }) + '\n');
}

export interface CaptureSummary {
  dev: string;
  what: string;
  captured?: number;
  received?: number;
  dropped?: number;
  seconds: number;
  /** Absolute path of the pcap written ('-' for stdout); absent for decoded output. */
  file?: string;
  bytes?: number;
  /** Why it stopped: count reached, duration over, interrupted (SIGINT/SIGTERM/SIGHUP), or tcpdump ended by itself. */
  stoppedBy: 'count' | 'duration' | 'signal' | 'exit';
}

/**
 * Runs the capture to its end and returns what it did; throws ProviumError (with no
 * output file left behind) on every failure. Decoded packets (or, with write '-', the
 * pcap) go to stdout; provium's own messages to stderr.
 */
export async function capture(t: Topology, targetName: string, o: CaptureOptions, hostNetns: string | undefined, runner: Runner = new HostRunner()): Promise<CaptureSummary> {
  const durationMs = o.duration !== undefined ? parseDuration(o.duration) : undefined;
  const count = o.count !== undefined ? parseCount(o.count) : undefined;
  const filter = filterWords(o.filter);
  if (o.write !== undefined && o.write.trim() === '') throw new ProviumError('-w: empty file name');
  const target = resolveTarget(t, targetName);

  const tcpdump = findTcpdump();
  if (!tcpdump) throw new ProviumError('tcpdump not found: install it (Debian: apt-get install tcpdump)');
  checkPrivileges(hostNetns);
  await checkDevice(runner, target, hostNetns);

  // The output: a temporary file next to the destination (same filesystem: rename is atomic).
  const toFile = o.write !== undefined && o.write !== '-';
  const outPath = toFile ? resolve(o.write!) : undefined;
  let tmpPath: string | undefined;
  let fd: number | undefined;
  if (outPath) {
    if (!existsSync(dirname(outPath))) throw new ProviumError(`-w ${o.write}: directory ${dirname(outPath)} does not exist`);
    if (existsSync(outPath) && statSync(outPath).isDirectory()) throw new ProviumError(`-w ${o.write}: is a directory`);
    tmpPath = join(dirname(outPath), `.${basename(outPath)}.provium-${process.pid}.part`);
    try {
      fd = openSync(tmpPath, 'wx', 0o644);
    } catch (e) {
      throw new ProviumError(`-w ${o.write}: cannot write in ${dirname(outPath)}: ${(e as Error).message}`);
    }
  }
  const removeTmp = () => {
    if (tmpPath) {
      try {
        unlinkSync(tmpPath);
      } catch {
        /* already gone */
      }
    }
  };

  const argv = [...(hostNetns !== undefined ? ['ip', 'netns', 'exec', hostNetns] : []), tcpdump, ...tcpdumpArgs(target.dev, { pcap: o.write !== undefined, count, filter })];
  const t0 = performance.now();
  const rep: TcpdumpReport = { listening: false, other: [] };
  let stoppedBy: CaptureSummary['stoppedBy'] | undefined;
  let killedHard = false;
  let startTimedOut = false;
  const timers: NodeJS.Timeout[] = [];
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  const onSignal = () => stop('signal');
  let child: ReturnType<typeof spawn>;

  function stop(why: 'duration' | 'signal' | 'error'): void {
    if (stoppedBy === undefined) {
      stoppedBy = why === 'error' ? 'exit' : why;
      if (why === 'signal') process.stderr.write('\nstopping the capture...\n');
      child.kill('SIGINT');
      timers.push(
        setTimeout(() => {
          killedHard = true;
          child.kill('SIGKILL');
        }, STOP_GRACE_MS),
      );
    } else if (why === 'signal') {
      // A second Ctrl-C: do not wait for tcpdump.
      killedHard = true;
      child.kill('SIGKILL');
    }
  }

  try {
    child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, LC_ALL: 'C' } });
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    removeTmp();
    throw new ProviumError(`cannot start tcpdump: ${(e as Error).message}`);
  }
  for (const s of signals) process.on(s, onSignal);

  let spawnError: Error | undefined;
  child.on('error', (e) => (spawnError = e));

  // stdout: into the temporary file, or through to provium's stdout.
  const stdoutDone = new Promise<void>((res, rej) => {
    if (fd !== undefined) {
      const ws = createWriteStream('', { fd, autoClose: true });
      child.stdout!.pipe(ws);
      ws.on('close', () => res());
      ws.on('error', (e) => {
        stop('error');
        rej(new ProviumError(`-w ${o.write}: writing failed: ${e.message}`));
      });
    } else {
      const onErr = () => stop('signal'); // e.g. EPIPE: the reader of our stdout went away
      process.stdout.on('error', onErr);
      child.stdout!.on('data', (d: Buffer) => {
        if (!process.stdout.write(d)) {
          child.stdout!.pause();
          process.stdout.once('drain', () => child.stdout!.resume());
        }
      });
      child.stdout!.on('end', () => {
        process.stdout.off('error', onErr);
        res();
      });
    }
  });
  stdoutDone.catch(() => {}); // awaited below, after tcpdump exits

  // stderr: tcpdump's readiness, counts and messages.
  let pending = '';
  child.stderr!.on('data', (d: Buffer) => {
    pending += d.toString('utf8');
    let i: number;
    while ((i = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, i);
      pending = pending.slice(i + 1);
      if (readStderrLine(line, rep) === 'listening') {
        const bounds = [count !== undefined ? `${count} packets` : '', durationMs !== undefined ? `${durationMs / 1000} s` : ''].filter(Boolean).join(' or ');
        process.stderr.write(
          `capturing on ${target.dev} (${target.what})${hostNetns !== undefined ? ` in namespace ${hostNetns}` : ''}${filter.length ? `, filter: ${filter.join(' ')}` : ''}; ` +
            `${bounds ? `stops after ${bounds}` : 'Ctrl-C stops it'}\n`,
        );
        if (target.kind === 'bridge') process.stderr.write(bridgeCaptureNote(t, target.dev));
        if (durationMs !== undefined) timers.push(setTimeout(() => stop('duration'), durationMs));
      }
    }
  });
  timers.push(
    setTimeout(() => {
      if (!rep.listening) {
        startTimedOut = true;
        stop('error');
      }
    }, START_TIMEOUT_MS),
  );

  const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => child.on('close', (code, signal) => res({ code, signal })));
  if (pending.trim()) readStderrLine(pending, rep);
  for (const s of signals) process.off(s, onSignal);
  for (const tm of timers) clearTimeout(tm);
  const ms = performance.now() - t0;
  trace(argv, exit.code ?? 128, ms);

  try {
    await stdoutDone;
    if (spawnError) throw new ProviumError(`cannot start tcpdump: ${spawnError.message}`);
    if (startTimedOut) throw new ProviumError(`tcpdump on ${target.dev} did not start listening within ${START_TIMEOUT_MS / 1000} s`);
    if (killedHard) throw new ProviumError(`tcpdump on ${target.dev} did not stop ${stoppedBy === 'signal' ? 'when asked to' : `within ${STOP_GRACE_MS / 1000} s of SIGINT`}; it was killed and its output discarded`);
    if (exit.code !== 0) throw tcpdumpError(exit.code, exit.signal, rep, target, hostNetns, o.filter);
  } catch (e) {
    removeTmp();
    throw e;
  }
  for (const line of rep.other) process.stderr.write(`${line}\n`);

  let bytes: number | undefined;
  if (outPath && tmpPath) {
    try {
      renameSync(tmpPath, outPath);
    } catch (e) {
      removeTmp();
      throw new ProviumError(`-w ${o.write}: cannot rename the capture into place: ${(e as Error).message}`);
    }
    bytes = statSync(outPath).size;
  }
  return {
    dev: target.dev,
    what: target.what,
    captured: rep.captured,
    received: rep.received,
    dropped: rep.dropped,
    seconds: Math.round(ms) / 1000,
    file: outPath ?? (o.write === '-' ? '-' : undefined),
    bytes,
    stoppedBy: stoppedBy ?? (count !== undefined ? 'count' : 'exit'),
  };
}

/** The closing line: packets, why it stopped, where the file is. */
export function formatSummary(s: CaptureSummary): string {
  const n = s.captured !== undefined ? `${s.captured} packet${s.captured === 1 ? '' : 's'}` : 'an unknown number of packets';
  const extra = [s.received !== undefined ? `${s.received} received by filter` : '', s.dropped !== undefined ? `${s.dropped} dropped by kernel` : ''].filter(Boolean).join(', ');
  const why = { count: 'count reached', duration: 'duration over', signal: 'interrupted', exit: 'tcpdump ended' }[s.stoppedBy];
  const file = s.file === '-' ? '; pcap written to stdout' : s.file ? `; wrote ${s.file} (${s.bytes} bytes, pcap)` : '';
  return `captured ${n} on ${s.dev} in ${s.seconds.toFixed(2)} s (${why}${extra ? `; ${extra}` : ''})${file}\n`;
}

/** The CLI command: capture, then the summary on stderr (stdout carries only packets). */
export async function captureCommand(t: Topology, target: string, o: CaptureOptions, hostNetns: string | undefined): Promise<void> {
  const s = await capture(t, target, o, hostNetns);
  process.stderr.write(formatSummary(s));
}
