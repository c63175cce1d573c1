/**
 * Test hosts for multi-host labs on one machine: "host" network namespaces joined by an
 * underlay (a bridge in its own namespace, one veth per host, MTU 1500), each running a
 * real OpenSSH server (Debian openssh-server) started by the test with a generated host
 * key and an authorized key in a temporary folder, listening on that namespace's
 * underlay address only; plus a controller namespace on the same underlay from which
 * provium runs (nsenter --net, which keeps the root mount namespace) and reaches the
 * hosts only through SSH. The client settings come from a generated ssh_config file
 * (identity, known_hosts with the generated host keys, strict checking), so the
 * machine's own ~/.ssh is never read. Each host has its own state folder (state_dir).
 * `close` destroys the lab through provium, stops every sshd, deletes every namespace
 * and the folder, whether the test passed or not.
 */
import { execa, type ResultPromise } from 'execa';
import { test, type TestContext } from 'node:test';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROVIUM_BIN, dedent, listNetns, must, rand, run, suiteSkip, type Result } from './helpers.js';

/** Underlay subnet of the test hosts (TEST-NET-2); host i gets .(10+i), the controller .2. */
const UNDERLAY = '198.51.100';

export interface TestHost {
  name: string;
  ns: string;
  underlay: string;
  stateDir: string;
}

/** Pids of processes whose command line contains `needle` (a test's own temporary folder). */
export function pidsWith(needle: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    const pid = Number(e);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(needle)) out.push(pid);
    } catch {
      /* gone */
    }
  }
  return out;
}

function which(tool: string): boolean {
  return (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').concat(['/usr/sbin']).some((d) => d && existsSync(join(d, tool)));
}

/** Why multi-host tests cannot run here (besides the e2e suite's own reasons), or undefined. */
export function hostsSkip(): string | undefined {
  const s = suiteSkip();
  if (s) return s;
  const missing = ['sshd', 'ssh', 'ssh-keygen', 'nsenter', 'bridge'].filter((t) => !which(t));
  if (missing.length) return `needs ${missing.join(', ')} (Debian openssh-server, openssh-client, util-linux, iproute2; scripts/setup.sh installs them)`;
  return undefined;
}

/** A set of test hosts with their sshd, the controller namespace, and a lab file for them. */
export class TestHosts {
  readonly id = rand(5);
  readonly lab = `m${rand(6)}`;
  readonly dir: string;
  readonly underlayNs: string;
  readonly ctlNs: string;
  readonly hosts: TestHost[] = [];
  readonly sshConfig: string;
  readonly file: string;
  readonly tracePath: string;
  private sshd: ResultPromise[] = [];
  private written = false;

  constructor(n: number) {
    this.dir = mkdtempSync(join(tmpdir(), `pvt-mh-${this.id}-`));
    this.underlayNs = `pvt-${this.id}-ul`;
    this.ctlNs = `pvt-${this.id}-ctl`;
    for (let i = 1; i <= n; i++) this.hosts.push({ name: `h${i}`, ns: `pvt-${this.id}-h${i}`, underlay: `${UNDERLAY}.${10 + i}`, stateDir: join(this.dir, `state-h${i}`) });
    this.sshConfig = join(this.dir, 'ssh_config');
    this.file = join(this.dir, 'lab.yaml');
    this.tracePath = join(this.dir, 'trace.jsonl');
  }

  /** Builds the namespaces, the underlay and the keys, and starts every sshd; resolves once each accepts a login. */
  async start(): Promise<void> {
    mkdirSync('/run/sshd', { recursive: true, mode: 0o755 }); // sshd's privilege separation folder (the package's own)
    const key = join(this.dir, 'id_ed25519');
    await must(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'provium-test', '-f', key]);
    writeFileSync(join(this.dir, 'authorized_keys'), readFileSync(`${key}.pub`));
    await must(['ip', 'netns', 'add', this.underlayNs]);
    await must(['ip', '-n', this.underlayNs, 'link', 'add', 'ul', 'type', 'bridge']);
    await must(['ip', '-n', this.underlayNs, 'link', 'set', 'ul', 'up']);
    const attach = async (ns: string, addr: string, i: string) => {
      await must(['ip', 'netns', 'add', ns]);
      await must(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
      await must(['ip', '-n', this.underlayNs, 'link', 'add', `u${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      await must(['ip', '-n', this.underlayNs, 'link', 'set', `u${i}`, 'master', 'ul', 'up']);
      await must(['ip', 'netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.ipv6.conf.eth0.disable_ipv6=1']);
      await must(['ip', '-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'eth0']);
      await must(['ip', '-n', ns, 'link', 'set', 'eth0', 'up']);
    };
    await attach(this.ctlNs, `${UNDERLAY}.2`, 'c');
    const known: string[] = [];
    const cfg: string[] = [];
    for (const h of this.hosts) {
      await attach(h.ns, h.underlay, h.name);
      await must(['ip', 'netns', 'exec', h.ns, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=0']);
      const hk = join(this.dir, `hostkey-${h.name}`);
      await must(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', h.name, '-f', hk]);
      known.push(`${h.underlay} ${readFileSync(`${hk}.pub`, 'utf8').split(' ').slice(0, 2).join(' ')}`);
      const conf = join(this.dir, `sshd-${h.name}.conf`);
      writeFileSync(conf, [
        `ListenAddress ${h.underlay}`, 'Port 22', `HostKey ${hk}`, `PidFile ${join(this.dir, `sshd-${h.name}.pid`)}`,
        `AuthorizedKeysFile ${join(this.dir, 'authorized_keys')}`, 'PermitRootLogin prohibit-password', 'PasswordAuthentication no',
        'KbdInteractiveAuthentication no', 'UsePAM no', 'StrictModes no', 'AllowStreamLocalForwarding yes', 'AllowTcpForwarding local',
        'X11Forwarding no', 'MaxSessions 100', 'MaxStartups 100', 'LogLevel ERROR', 'PrintMotd no', 'AcceptEnv none', '',
      ].join('\n'));
      // nsenter --net keeps the root mount namespace: what sshd's sessions create in
      // /run/netns is visible to the test (ip netns exec would hide it).
      this.sshd.push(execa('nsenter', [`--net=/run/netns/${h.ns}`, '/usr/sbin/sshd', '-f', conf, '-D', '-E', join(this.dir, `sshd-${h.name}.log`)], { reject: false, stdin: 'ignore', stdout: 'ignore', stderr: 'ignore', timeout: 30 * 60_000 }));
      cfg.push(`Host ${h.name} ${h.underlay}`, `  HostName ${h.underlay}`, '  User root');
    }
    writeFileSync(join(this.dir, 'known_hosts'), known.join('\n') + '\n');
    cfg.push('Host *', `  IdentityFile ${key}`, '  IdentitiesOnly yes', `  UserKnownHostsFile ${join(this.dir, 'known_hosts')}`,
      '  GlobalKnownHostsFile /dev/null', '  StrictHostKeyChecking yes', '  LogLevel ERROR', '');
    writeFileSync(this.sshConfig, cfg.join('\n'));
    for (const h of this.hosts) {
      const t0 = Date.now();
      for (;;) {
        const r = await this.inCtl(['ssh', '-F', this.sshConfig, '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=2', h.name, 'true'], 5000);
        if (r.code === 0) break;
        if (Date.now() - t0 > 10_000) throw new Error(`sshd of ${h.name} does not accept logins: ${r.stderr}`);
        await new Promise((res) => setTimeout(res, 50));
      }
    }
  }

  /** Runs a command in the controller namespace (nsenter --net: root mount namespace kept). */
  inCtl(argv: string[], timeoutMs = 30_000, env?: Record<string, string>): Promise<Result> {
    return run(['nsenter', `--net=/run/netns/${this.ctlNs}`, ...argv], { timeoutMs, env });
  }

  /** Runs a command in a host's namespace. */
  inHost(host: string, argv: string[], timeoutMs = 15_000): Promise<Result> {
    return run(['ip', 'netns', 'exec', this.host(host).ns, ...argv], { timeoutMs });
  }

  host(name: string): TestHost {
    const h = this.hosts.find((x) => x.name === name);
    if (!h) throw new Error(`no test host ${name}`);
    return h;
  }

  /** Namespace of a netns node. */
  ns(node: string): string {
    return `pv-${this.lab}-${node}`;
  }

  /**
   * Writes the lab file: `lab:`, a hosts: section for every test host (ssh, underlay,
   * ssh_config, state_dir), then `body` (nodes, bridges; nodes name their host).
   */
  /** The body last written (without lab: and hosts:). */
  body = '';

  write(body: string, opts: { hosts?: string; extraHostFields?: Record<string, string> } = {}): string {
    this.body = body;
    const hosts = opts.hosts ?? this.hosts.map((h) => `  ${h.name}: { ssh: root@${h.underlay}, underlay: ${h.underlay}, ssh_config: ${this.sshConfig}, state_dir: ${h.stateDir}${opts.extraHostFields?.[h.name] ?? ''} }`).join('\n');
    writeFileSync(this.file, `lab: ${this.lab}\nhosts:\n${hosts}\n${dedent(body)}`);
    this.written = true;
    return this.file;
  }

  /** Runs provium in the controller namespace with the lab file appended (unless file: false). */
  provium(args: string[], opts: { file?: string | false; timeoutMs?: number } = {}): Promise<Result> {
    const file = opts.file === false ? [] : [opts.file ?? this.file];
    return this.inCtl(['node', PROVIUM_BIN, ...args, ...file], opts.timeoutMs ?? 120_000, { PROVIUM_STATE_DIR: join(this.dir, 'state-local'), PROVIUM_CACHE_DIR: join(this.dir, 'cache-local'), PROVIUM_TRACE: this.tracePath, NO_COLOR: '1' });
  }

  /** apply --auto-approve --json; throws with provium's output when it fails. */
  async apply(): Promise<{ host_commands: number; seconds: number; changes: { host: string; address: string; action: string }[] }> {
    const r = await this.provium(['apply', '--auto-approve', '--json']);
    if (r.code !== 0) throw new Error(`provium apply failed (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
    return JSON.parse(r.stdout);
  }

  /** plan --json, parsed. */
  async planJson(): Promise<{ changes: { host: string; address: string; action: string }[]; errors: { summary: string; detail?: string }[]; commands: { host: string; argv: string[]; stdin?: string; label: string }[] }> {
    const r = await this.provium(['plan', '--json']);
    try {
      return JSON.parse(r.stdout);
    } catch {
      throw new Error(`plan --json did not print JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
    }
  }

  /** The trace lines (host commands, with the host for remote ones); `clear` starts a new trace. */
  trace(clear = false): { host?: string; argv: string[]; stdin?: string; exitCode: number }[] {
    const lines = existsSync(this.tracePath) ? readFileSync(this.tracePath, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [];
    if (clear) rmSync(this.tracePath, { force: true });
    return lines;
  }

  /** Everything of the lab on every host: links in each host namespace, node namespaces, files in the state folders. */
  async leftovers(): Promise<string[]> {
    const out: string[] = [];
    for (const h of this.hosts) {
      const links = JSON.parse((await run(['ip', '-n', h.ns, '-j', 'link', 'show'])).stdout || '[]') as { ifname: string }[];
      out.push(...links.filter((l) => l.ifname.startsWith(`${this.lab}-`)).map((l) => `${h.name}: link ${l.ifname}`));
      const nft = (await run(['ip', 'netns', 'exec', h.ns, 'nft', 'list', 'tables'])).stdout;
      if (nft.includes(`provium_${this.lab}`)) out.push(`${h.name}: nft ${nft.trim()}`);
      if (existsSync(join(h.stateDir, this.lab))) out.push(`${h.name}: state folder ${join(h.stateDir, this.lab)}`);
    }
    out.push(...listNetns().filter((n) => n.startsWith(`pv-${this.lab}-`)).map((n) => `netns ${n}`));
    const procs = pidsWith(`${this.dir}/state-`);
    if (procs.length) out.push(`processes: ${procs.join(', ')}`);
    return out;
  }

  /** Destroys the lab (through provium), stops every sshd, deletes every namespace and the folder. Never throws. */
  async close(): Promise<void> {
    if (this.written) {
      const r = await this.provium(['destroy', '--auto-approve'], { timeoutMs: 90_000 }).catch((e) => ({ code: -1, stdout: '', stderr: String(e), ms: 0 }));
      if (r.code !== 0) process.stderr.write(`[hosts cleanup] destroy of lab ${this.lab} failed (exit ${r.code}): ${r.stderr.slice(0, 2000)}\n`);
    }
    for (const p of this.sshd) p.kill('SIGKILL');
    await Promise.all(this.sshd.map((p) => p.catch(() => undefined)));
    // Processes a failed destroy left (VMs, dnsmasq) name the state folders: ended by pid.
    for (const pid of pidsWith(`${this.dir}/state-`)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    for (const n of listNetns().filter((x) => x.startsWith(`pv-${this.lab}-`) || x.startsWith(`pvt-${this.id}-`))) await run(['ip', 'netns', 'del', n], { timeoutMs: 15_000 });
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Registers a multi-host test with n fresh test hosts; skipped with the reason when the
 * machine cannot run it; always cleaned up.
 */
export function hostsTest(name: string, n: number, fn: (hs: TestHosts, t: TestContext) => Promise<void>, opts: { skip?: string; timeoutMs?: number } = {}): void {
  const skip = hostsSkip() ?? opts.skip;
  test(name, { skip: skip ?? false, timeout: opts.timeoutMs ?? 240_000 }, async (t) => {
    const hs = new TestHosts(n);
    try {
      await hs.start();
      await fn(hs, t);
    } finally {
      await hs.close();
    }
  });
}
