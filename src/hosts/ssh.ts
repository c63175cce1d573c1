/**
 * A Runner over OpenSSH: every host command of a remote host goes through ONE SSH
 * connection per host for the whole run (OpenSSH connection multiplexing: a master
 * started with ControlMaster=yes on a control socket in a private 0700 directory), and
 * over long-lived sessions on it (SESSIONS, opened on demand; the master's own first): each
 * session runs `sh` once and then executes requests written to its stdin, so neither a
 * handshake nor the login shell's start-up (a ~/.bashrc can take 0.5 s) is paid per
 * command. Measured on one machine: a session per command 520 ms; a request on a
 * long-lived session a few ms.
 *
 * Commands stay argument arrays end to end: a request is `pv_run ID ARG...` where each
 * argument is quoted by `shellQuote` (the one quoting function; POSIX single quotes, NUL
 * refused), followed by the command's stdin as base64 in a here-document with a random
 * delimiter; the session runs "$@" with that input and answers one line
 * `PV ID EXIT BASE64(stdout) BASE64(stderr)`. Nothing is assembled from user input by
 * concatenation, and the remote login shell only runs the fixed `exec sh`. Files are
 * written on the remote side through the same channel (remote.ts). QMP reaches a remote
 * VM's unix socket through the same connection (`forwardUnix`: a stream-local forward
 * on the master, `ssh -O forward -L LOCAL:REMOTE`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { capture, CommandError, traceRun, type RunOptions, type RunResult, type Runner } from '../host/runner.js';
import { ProviumError } from '../model/diagnostics.js';

/**
 * Quotes one argument for a POSIX shell: the whole string in single quotes, each `'`
 * written as `'\''`. Every byte but NUL survives (quotes, newlines, `$(...)`, globs,
 * backslashes, non-ASCII). Throws on a NUL character, which no argument can carry.
 */
export function shellQuote(arg: string): string {
  if (arg.includes('\0')) throw new ProviumError(`an argument contains a NUL character and cannot be passed to a remote host: ${JSON.stringify(arg.slice(0, 40))}`);
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** How to reach one host: ssh destination ([user@]host), and optional port, identity file and ssh_config file. */
export interface SshTarget {
  /** "root@192.0.2.12" or "h2" (an ssh_config Host). Validated at load: never starts with "-". */
  destination: string;
  port?: number;
  /** Absolute path of a private key (ssh -i). */
  identity?: string;
  /** Absolute path of an ssh_config file (ssh -F): then ~/.ssh/config is not read. */
  sshConfig?: string;
}

/** A probe string that a mis-quoting remote shell would mangle. */
const QUOTE_PROBE = `pv'"$x\`id\`\\ *?\n\u00e9`;

/**
 * Long-lived sessions per host (requests run one at a time in each): the master's own
 * only. Each session costs one start-up of the remote login shell (0.5 s with a heavy
 * ~/.bashrc, several seconds on a loaded machine), while a request costs a few ms: one
 * session is faster than two for provium's handful of commands per host.
 */
const SESSIONS = 1;

/**
 * What a session runs first (written to `sh` on its stdin): a private temporary folder
 * (removed when the session ends), and pv_run, which runs "$@" with the here-document's
 * base64-decoded input and prints one answer line. The folder is removed however the
 * shell ends: at the end of its input, and on SIGHUP, SIGINT, SIGPIPE or SIGTERM, which
 * the traps turn into an exit (a shell killed by a signal skips its EXIT trap). SIGPIPE
 * is the common case: a request that timed out ends its ssh client, and the remote shell,
 * when its command finishes, writes its answer to the closed channel.
 */
const SESSION_PRELUDE = `export LC_ALL=C
umask 022
T=$(mktemp -d) || exit 1
trap 'rm -rf "$T"' EXIT
trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 141' PIPE; trap 'exit 143' TERM
pv_run() { pv_id=$1; shift; base64 -d > "$T/in"; "$@" < "$T/in" > "$T/out" 2> "$T/err"; pv_rc=$?; printf 'PV %s %s %s %s\\n' "$pv_id" "$pv_rc" "$(base64 -w0 < "$T/out")" "$(base64 -w0 < "$T/err")"; }
printf 'PVREADY\\n'
`;

/** One long-lived session: an `ssh` client on the master running `exec sh`. */
interface Session {
  child: ChildProcess;
  busy: boolean;
  dead: boolean;
  buf: string;
  /** Resolves the answer line of the request in flight (undefined when the session ended). */
  waiter?: (line: string | undefined) => void;
}

let controlRoot: string | undefined;

/** The private directory (mode 0700, under $TMPDIR) holding this process's control sockets and forwarded QMP sockets. */
function controlDir(): string {
  if (!controlRoot) {
    controlRoot = mkdtempSync(join(tmpdir(), 'pv-ssh-'));
    process.once('exit', () => rmSync(controlRoot!, { recursive: true, force: true }));
  }
  return controlRoot;
}

let nextId = 0;

/**
 * Runs commands on one remote host over one multiplexed SSH connection. `name` is the
 * host's name in the lab file (for messages and traces). Call `connect` first; `close`
 * ends the master. Implements Runner: `run` has the local runner's semantics (exit code,
 * stdout, stderr, CommandError unless allowFail; 124 after a timeout).
 */
export class SshRunner implements Runner {
  count = 0;
  readonly log: RunResult[] = [];
  private master?: ChildProcess;
  private readonly control: string;
  private readonly id = nextId++;

  constructor(public readonly name: string, public readonly target: SshTarget) {
    this.control = join(controlDir(), `c${this.id}`);
  }

  /** ssh options every invocation shares: no prompts, bounded connect, the control socket. */
  private baseArgs(): string[] {
    const t = this.target;
    return [
      ...(t.sshConfig ? ['-F', t.sshConfig] : []),
      ...(t.port ? ['-p', String(t.port)] : []),
      ...(t.identity ? ['-i', t.identity] : []),
      '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=5', '-o', 'ServerAliveInterval=5', '-o', 'ServerAliveCountMax=3',
      '-o', `ControlPath=${this.control}`,
    ];
  }

  /**
   * Opens the master connection (authenticates once) and checks the remote shell quotes
   * as POSIX does. Throws ProviumError naming the host when it cannot be reached.
   */
  async connect(timeoutMs = 15_000): Promise<void> {
    if (this.master) return;
    // The master connection's own session is the first long-lived session: one login
    // shell start-up for both. When provium exits (even killed), its stdin closes, the
    // remote sh ends and the master with it, so no ssh process outlives the run.
    const argv = ['ssh', ...this.baseArgs(), '-o', 'ControlMaster=yes', '-o', 'ControlPersist=no', '-T', '--', this.target.destination, 'exec sh'];
    let first: Session;
    try {
      first = await this.openSession(argv, timeoutMs);
    } catch (e) {
      throw new ProviumError(
        `host ${this.name} is unreachable over SSH (${this.target.destination}${this.target.port ? ` port ${this.target.port}` : ''}): ${(e as Error).message}`,
        'check hosts.<name>.ssh, port, identity and ssh_config, and that sshd runs there; nothing was changed on any host',
      );
    }
    this.master = first.child;
    this.sessions.push(first);
    this.releaseSession(first);
    const r = await this.run(['printf', '%s', QUOTE_PROBE], { allowFail: true });
    if (r.exitCode !== 0 || r.stdout !== QUOTE_PROBE) {
      await this.close();
      throw new ProviumError(`host ${this.name}: a quoted probe string came back as ${JSON.stringify(r.stdout)} (exit ${r.exitCode}): the remote sh does not quote as POSIX says`);
    }
  }

  private sessions: Session[] = [];
  private waiting: ((s: Session) => void)[] = [];
  private seq = 0;

  /** The command that opens a session (tests run a local `sh` instead, see test/unit/ssh.test.ts). */
  protected sessionArgv(): string[] {
    return ['ssh', ...this.baseArgs(), '-o', 'ControlMaster=no', '-T', '--', this.target.destination, 'exec sh'];
  }

  /** Whether the master connection is up (tests without SSH say yes). */
  protected connected(): boolean {
    return this.master !== undefined;
  }

  /** Opens one long-lived session (argv: an ssh command running `exec sh`); resolves once its shell answered PVREADY. */
  private async openSession(argv: string[] = this.sessionArgv(), timeoutMs = 15_000): Promise<Session> {
    const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    const s: Session = { child, busy: true, dead: false, buf: '' };
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString('utf8')).slice(-2000)));
    child.stdin!.on('error', () => {});
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new ProviumError(`no session within ${timeoutMs} ms ${err.trim()}`.trim()));
      }, timeoutMs);
      s.waiter = (line) => {
        clearTimeout(timer);
        if (line === 'PVREADY') resolve();
        else {
          // ssh exits once its stderr is read to the end: give it a moment to arrive.
          setTimeout(() => reject(new ProviumError((err.trim().split('\n').pop() || `session ended: ${(line ?? '').slice(0, 200)}`).trim())), 50);
        }
      };
    });
    child.stdout!.on('data', (d: Buffer) => {
      s.buf += d.toString('utf8');
      let nl: number;
      while ((nl = s.buf.indexOf('\n')) >= 0) {
        const line = s.buf.slice(0, nl);
        s.buf = s.buf.slice(nl + 1);
        const w = s.waiter;
        s.waiter = undefined;
        w?.(line);
      }
    });
    child.once('exit', () => {
      s.dead = true;
      const w = s.waiter;
      s.waiter = undefined;
      w?.(undefined);
    });
    child.stdin!.write(SESSION_PRELUDE);
    await ready;
    return s;
  }

  /** An idle session (opening one while fewer than SESSIONS exist), marked busy. */
  private async acquire(): Promise<Session> {
    this.sessions = this.sessions.filter((s) => !s.dead);
    const idle = this.sessions.find((s) => !s.busy);
    if (idle) {
      idle.busy = true;
      return idle;
    }
    if (this.sessions.length < SESSIONS) {
      const placeholder: Session = { child: undefined as unknown as ChildProcess, busy: true, dead: false, buf: '' };
      this.sessions.push(placeholder);
      try {
        const s = await this.openSession();
        this.sessions[this.sessions.indexOf(placeholder)] = s;
        return s;
      } catch (e) {
        this.sessions.splice(this.sessions.indexOf(placeholder), 1);
        throw e;
      }
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private releaseSession(s: Session): void {
    s.busy = false;
    if (s.dead) return;
    const next = this.waiting.shift();
    if (next) {
      s.busy = true;
      next(s);
    }
  }

  /** Sends one request on a session and waits for its answer line (exit 124 after timeoutMs: the session is then closed). */
  private async request(argv: string[], stdin: string, timeoutMs: number): Promise<{ exitCode: number; stdout: string; stderr: string }> {
    const id = ++this.seq;
    const words = argv.map(shellQuote).join(' ');
    const input = Buffer.from(stdin, 'utf8').toString('base64').replace(/.{1,76}/g, '$&\n');
    const delim = `PVEOF_${randomBytes(12).toString('hex')}`;
    const s = await this.acquire();
    try {
      const line = await new Promise<string | undefined>((resolve) => {
        const timer = setTimeout(() => {
          s.waiter = undefined;
          s.dead = true;
          s.child.kill('SIGKILL');
          resolve('TIMEOUT');
        }, timeoutMs);
        s.waiter = (l) => {
          clearTimeout(timer);
          resolve(l);
        };
        s.child.stdin!.write(`pv_run ${id} ${words} <<'${delim}'\n${input}${delim}\n`);
      });
      if (line === 'TIMEOUT') return { exitCode: 124, stdout: '', stderr: `(timed out after ${timeoutMs} ms on host ${this.name})` };
      const m = line === undefined ? null : /^PV (\d+) (\d+) ?(\S*) ?(\S*)$/.exec(line);
      if (!m || Number(m[1]) !== id) {
        s.dead = true;
        s.child.kill('SIGKILL');
        return { exitCode: 255, stdout: '', stderr: `host ${this.name}: the session ended or answered out of order (${(line ?? 'connection closed').slice(0, 200)})` };
      }
      return { exitCode: Number(m[2]), stdout: Buffer.from(m[3], 'base64').toString('utf8'), stderr: Buffer.from(m[4], 'base64').toString('utf8') };
    } finally {
      this.releaseSession(s);
    }
  }

  async run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
    if (!this.connected()) throw new ProviumError(`host ${this.name}: not connected`);
    if (argv.length === 0) throw new ProviumError('empty command');
    const t0 = performance.now();
    this.count++;
    const p = await this.request(argv, opts.stdin ?? '', opts.timeoutMs ?? 60_000);
    const r: RunResult = { argv, ...p, ms: performance.now() - t0 };
    this.log.push(r);
    traceRun(r, opts.stdin, this.name);
    if (r.exitCode !== 0 && !opts.allowFail) {
      const e = new CommandError(r, opts.stdin);
      e.message = `on host ${this.name}: ${e.message}`;
      throw e;
    }
    return r;
  }

  /**
   * Forwards a local unix socket (created in the private control directory) to `remotePath`
   * on the host through the master connection. Returns the local path and a function that
   * cancels the forward. Throws ProviumError when ssh refuses (sshd AllowStreamLocalForwarding no).
   */
  async forwardUnix(remotePath: string): Promise<{ local: string; close: () => Promise<void> }> {
    const local = join(controlDir(), `q${this.id}-${nextId++}.sock`);
    const spec = `${local}:${remotePath}`;
    const r = await capture(['ssh', ...this.baseArgs(), '-o', 'StreamLocalBindUnlink=yes', '-O', 'forward', '-L', spec, '--', this.target.destination], '', 10_000);
    if (r.exitCode !== 0) throw new ProviumError(`host ${this.name}: cannot forward ${remotePath} over SSH: ${r.stderr.trim()}`, 'sshd must allow local forwarding (AllowStreamLocalForwarding and AllowTcpForwarding yes or local, the defaults are yes)');
    return {
      local,
      close: async () => {
        await capture(['ssh', ...this.baseArgs(), '-O', 'cancel', '-L', spec, '--', this.target.destination], '', 10_000);
        rmSync(local, { force: true });
      },
    };
  }

  /** Ends the sessions and the master connection. */
  async close(): Promise<void> {
    for (const s of this.sessions) if (s.child && !s.dead) s.child.stdin?.end();
    const m = this.master;
    if (!m) return;
    this.master = undefined;
    await capture(['ssh', ...this.baseArgs(), '-O', 'exit', '--', this.target.destination], '', 5000);
    m.stdin?.end();
    if (m.exitCode === null) {
      await Promise.race([new Promise((r) => m.once('exit', r)), new Promise((r) => setTimeout(r, 2000))]);
      if (m.exitCode === null) m.kill('SIGKILL');
    }
  }
}
