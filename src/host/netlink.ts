/**
 * The client of `provium-nl`, provium's netlink helper (native/provium-nl.c, built at
 * install time on libmnl): one process, started on first use and kept for the whole
 * plan/apply, that does every per-namespace read and write over NETLINK_ROUTE instead
 * of one `ip -n NS -batch` process per namespace.
 *
 * Protocol (native/provium-nl.c has the full description): each request is a u32
 * little-endian length and NUL-terminated fields (an argv array: ID, NAMESPACE, then
 * operations with their arguments); each response one JSON line
 * `{"id", "ok", "us", "links"?, "routes"?}` or `{"id", "ok": false, "op", "errno",
 * "error", "ext"?}`, in request order. Requests are pipelined: observe sends every
 * namespace's dump at once and the helper answers as it goes.
 *
 * Selection (PROVIUM_NETLINK): "auto" (default) uses the helper when it was built,
 * else the iproute2 path; "off" always the iproute2 path; "on" requires the helper.
 * PROVIUM_RECORD (fixture recording) implies the iproute2 path: the unit tests replay
 * iproute2 output.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { IpLink, TcClass, TcQdisc } from '../observe/parse.js';
import { batchError, batchToOps, IprouteIO, opToLine, type NamespaceIO, type NsDump } from './namespaces.js';
import { traceCommand, type Runner } from './runner.js';

/** Protocol version the client speaks; `provium-nl --version` prints "provium-nl <version>". */
export const NETLINK_PROTOCOL = '5';

/** Largest request the helper accepts (bytes). */
const MAX_REQUEST = 1 << 20;

/** One response line of the helper. */
export interface HelperResponse {
  id: number;
  ok: boolean;
  /** The helper's own time for the request, microseconds. */
  us?: number;
  links?: IpLink[];
  routes?: NsDump['routes'];
  /** Failing operation (0-based), -1 when the namespace could not be entered or the request was malformed. */
  op?: number;
  errno?: number;
  error?: string;
  /** The kernel's extended-ack message, or the helper's detail. */
  ext?: string;
  /** tc: the HTB and netem qdiscs (`tc -j qdisc show` keys) and the HTB classes (ceil in bits/s). */
  qdiscs?: TcQdisc[];
  classes?: TcClass[];
  /** nft-gen: the nftables ruleset generation and the namespace cookie (hex), and the tables ("FAMILY NAME", read after the generation). */
  gen?: number;
  cookie?: string;
  tables?: unknown;
  /** sysctl-get NAME: the value as the kernel prints it, under "sysctl:NAME". */
  [sysctl: `sysctl:${string}`]: string | undefined;
}

/**
 * Encodes one request: u32 LE length, then every field NUL-terminated. Throws Error on
 * a field holding a NUL byte (it would split the field) or a request over 1 MiB.
 */
export function encodeRequest(id: number, ns: string, ops: string[][]): Buffer {
  const fields = [String(id), ns, ...ops.flat()];
  const parts = fields.map((f) => {
    if (f.includes('\0')) throw new Error(`netlink: a request field holds a NUL byte: ${JSON.stringify(f)}`);
    return Buffer.from(`${f}\0`, 'utf8');
  });
  const len = parts.reduce((a, p) => a + p.length, 0);
  if (len > MAX_REQUEST) throw new Error(`netlink: request of ${len} bytes (at most ${MAX_REQUEST})`);
  const head = Buffer.alloc(4);
  head.writeUInt32LE(len);
  return Buffer.concat([head, ...parts], 4 + len);
}

/** The message of a failed request, iproute2-style ("RTNETLINK answers: File exists"), naming the failing line. */
export function describeFailure(ns: string, ops: string[][], r: HelperResponse): string {
  const what = r.op !== undefined && r.op >= 0 && ops[r.op] ? `\`${opToLine(ops[r.op])}\` (line ${r.op + 1})` : 'the request';
  const ext = r.ext ? ` (${r.ext})` : '';
  return `netlink: namespace ${ns || '(own)'}: ${what} failed: RTNETLINK answers: ${r.error ?? 'unknown error'}${ext}`;
}

/**
 * Path of the helper built with this provium (`dist/native/provium-nl` under the
 * package root), or undefined when it was not built.
 */
export function helperPath(): string | undefined {
  // dist/src/host/netlink.js (modules) or dist/provium.mjs (bundle): the package root is
  // the first folder above that holds package.json and dist/.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const p = join(dir, 'dist', 'native', 'provium-nl');
    if (existsSync(join(dir, 'package.json'))) return existsSync(p) ? p : undefined;
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return undefined;
}

/** Whether the helper at `path` runs and speaks this protocol; the reason when not. */
export function checkHelper(path: string): { ok: boolean; detail: string } {
  const r = spawnSync(path, ['--version'], { encoding: 'utf8', timeout: 5000 });
  const out = (r.stdout ?? '').trim();
  if (r.error || r.status !== 0) return { ok: false, detail: `${path} does not run (${r.error?.message ?? `exit ${r.status}`})` };
  if (out !== `provium-nl ${NETLINK_PROTOCOL}`) return { ok: false, detail: `${path} prints "${out}", expected "provium-nl ${NETLINK_PROTOCOL}" (rebuild: npm run build)` };
  return { ok: true, detail: `${path} (protocol ${NETLINK_PROTOCOL})` };
}

/** PROVIUM_NETLINK: "auto" (default), "on" or "off". Throws Error on another value. */
export function netlinkMode(env: NodeJS.ProcessEnv = process.env): 'auto' | 'on' | 'off' {
  const v = (env.PROVIUM_NETLINK ?? 'auto').toLowerCase();
  if (v === 'auto' || v === 'on' || v === 'off') return v;
  throw new Error(`PROVIUM_NETLINK must be auto, on or off (got ${JSON.stringify(env.PROVIUM_NETLINK)})`);
}

/**
 * The NamespaceIO a local runner uses: the helper (NetlinkIO) when PROVIUM_NETLINK is not
 * "off", no fixture is being recorded, and the helper is built; else the iproute2 path.
 * Throws Error when PROVIUM_NETLINK=on and the helper is missing.
 */
export function chooseNamespaceIO(runner: Runner, env: NodeJS.ProcessEnv = process.env): NamespaceIO {
  const mode = netlinkMode(env);
  if (mode === 'off' || (mode === 'auto' && env.PROVIUM_RECORD)) return new IprouteIO(runner);
  const path = helperPath();
  if (!path) {
    if (mode === 'on') throw new Error('PROVIUM_NETLINK=on but the netlink helper was not built (dist/native/provium-nl): install libmnl-dev, gcc and make, then npm run build');
    return new IprouteIO(runner);
  }
  return new NetlinkIO(path, new IprouteIO(runner));
}

interface Pending {
  resolve: (r: HelperResponse) => void;
  reject: (e: Error) => void;
}

/**
 * A running helper process. Requests are written as they come and answered in order;
 * the process is started on the first request and holds the event loop only while a
 * request is outstanding (it ends by itself when provium exits: its stdin closes).
 */
export class NetlinkHelper {
  private child?: ChildProcessWithoutNullStreams;
  private pending = new Map<number, Pending>();
  private nextId = 1;
  private buf = '';
  private stderr = '';
  private failed?: Error;

  constructor(private readonly path: string) {}

  private start(): ChildProcessWithoutNullStreams {
    if (this.child) return this.child;
    const child = spawn(this.path, [], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => this.onData(d));
    child.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
    child.stdin.on('error', () => {}); // reported through 'close'
    const fail = (why: string) => {
      this.failed = new Error(`netlink helper ${this.path} ${why}${this.stderr.trim() ? `: ${this.stderr.trim()}` : ''}`);
      for (const p of this.pending.values()) p.reject(this.failed);
      this.pending.clear();
    };
    child.on('error', (e) => fail(`could not run (${e.message})`));
    child.on('close', (code, sig) => {
      if (this.pending.size > 0) fail(`ended (${sig ?? `exit ${code}`}) with requests outstanding`);
    });
    this.idle();
    return child;
  }

  /** Only outstanding requests keep provium's event loop alive. */
  private idle(): void {
    const c = this.child;
    if (!c) return;
    if (this.pending.size === 0) {
      c.unref();
      (c.stdout as unknown as { unref(): void }).unref();
      (c.stderr as unknown as { unref(): void }).unref();
      (c.stdin as unknown as { unref?(): void }).unref?.();
    } else {
      c.ref();
      (c.stdout as unknown as { ref(): void }).ref();
    }
  }

  private onData(d: string): void {
    this.buf += d;
    let i: number;
    while ((i = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 1);
      let r: HelperResponse;
      try {
        r = JSON.parse(line) as HelperResponse;
      } catch {
        this.failed = new Error(`netlink helper ${this.path} wrote a line that is not JSON: ${line.slice(0, 200)}`);
        for (const p of this.pending.values()) p.reject(this.failed);
        this.pending.clear();
        this.child?.kill();
        return;
      }
      const p = this.pending.get(r.id);
      if (!p) continue;
      this.pending.delete(r.id);
      p.resolve(r);
    }
    this.idle();
  }

  /** Sends one request (namespace "" = the helper's own); resolves with its response. Rejects when the helper fails. */
  request(ns: string, ops: string[][]): Promise<HelperResponse> {
    if (this.failed) return Promise.reject(this.failed);
    const child = this.start();
    const id = this.nextId++;
    const msg = encodeRequest(id, ns, ops);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.idle();
      // Requests made in one turn of the event loop (observe's 200 namespace reads) leave in
      // one write (writev) instead of one system call each (~10 ms for 200).
      if (!this.corked) {
        this.corked = true;
        child.stdin.cork();
        process.nextTick(() => {
          this.corked = false;
          child.stdin.uncork();
        });
      }
      child.stdin.write(msg);
    });
  }
  private corked = false;

  /** Ends the helper (closing its input); outstanding requests are answered first. */
  close(): void {
    this.child?.stdin.end();
  }
}

/** The helper path of NamespaceIO; every request is traced like a command (PROVIUM_TRACE). */
export class NetlinkIO implements NamespaceIO {
  readonly mechanism = 'netlink' as const;
  readonly helper: NetlinkHelper;

  /**
   * `fallback`: the iproute2 path, used for what the helper does not handle (a batch
   * line batchToOps does not know, a link kind whose details it does not read); without
   * one, such a batch throws.
   */
  constructor(path: string, private readonly fallback?: NamespaceIO) {
    this.helper = new NetlinkHelper(path);
  }

  /**
   * One request, traced as `provium-nl -n NS -batch -` with the batch lines it stands
   * for on stdin, and the helper's own time as `ms`.
   */
  private async call(ns: string, ops: string[][], batch: string): Promise<HelperResponse> {
    const r = await this.helper.request(ns, ops);
    const ms = (r.us ?? 0) / 1000;
    traceCommand(['provium-nl', ...(ns ? ['-n', ns] : []), '-batch', '-'], r.ok ? 0 : 1, ms, batch);
    return r;
  }

  async readNamespaces(names: string[]): Promise<(NsDump | undefined)[]> {
    const read = 'addr show\nroute show table all\n';
    return Promise.all(
      names.map(async (ns) => {
        const r = await this.call(ns, [['dump']], read);
        return r.ok ? { links: r.links ?? [], routes: r.routes ?? [] } : undefined;
      }),
    );
  }

  async runIpBatch(netns: string, batch: string): Promise<boolean> {
    const ops: string[][] = [];
    for (const line of batch.split('\n').filter((l) => l.trim())) {
      const m = /^(netns|link) del (\S+)$/.exec(line.trim());
      if (!m || (m[1] === 'netns' && netns !== '')) return false;
      ops.push([m[1] === 'netns' ? 'netns-del' : 'link-del', m[2]]);
    }
    if (ops.length === 0) return false;
    const r = await this.call(netns, ops, batch);
    if (!r.ok) throw batchError(['provium-nl', ...(netns ? ['-n', netns] : []), '-batch', '-'], batch, describeFailure(netns, ops, r), (r.us ?? 0) / 1000);
    return true;
  }

  async applyNamespace(ns: string, batch: string): Promise<NsDump> {
    let ops: string[][];
    try {
      ops = batchToOps(batch);
    } catch (e) {
      // A line the helper has no operation for: the whole batch through `ip`, in order.
      if (this.fallback) return this.fallback.applyNamespace(ns, batch);
      throw e;
    }
    const r = await this.call(ns, ops, batch);
    if (!r.ok) throw batchError(['provium-nl', '-n', ns, '-batch', '-'], batch, describeFailure(ns, ops, r), (r.us ?? 0) / 1000);
    return { links: r.links ?? [], routes: r.routes ?? [] };
  }

  async nftGeneration(hostNetns?: string): Promise<{ gen: number; cookie: string; tables?: string[] } | undefined> {
    const ns = hostNetns ?? '';
    const r = await this.helper.request(ns, [['nft-gen']]);
    // Traced as a read ("show"), like the dumps.
    traceCommand(['provium-nl', ...(ns ? ['-n', ns] : []), 'show', 'nft-gen'], r.ok ? 0 : 1, (r.us ?? 0) / 1000);
    if (!r.ok || typeof r.gen !== 'number' || typeof r.cookie !== 'string') return undefined;
    const tables = Array.isArray(r.tables) && r.tables.every((x) => typeof x === 'string') ? (r.tables as string[]) : undefined;
    return { gen: r.gen, cookie: r.cookie, ...(tables ? { tables } : {}) };
  }

  async sysctls(hostNetns: string | undefined, names: string[]): Promise<string[]> {
    const ns = hostNetns ?? '';
    const ops = names.map((n) => ['sysctl-get', n]);
    const r = await this.helper.request(ns, ops);
    traceCommand(['provium-nl', ...(ns ? ['-n', ns] : []), 'sysctl', '-n', ...names], r.ok ? 0 : 1, (r.us ?? 0) / 1000);
    if (!r.ok) throw batchError(['provium-nl', ...(ns ? ['-n', ns] : []), 'sysctl', '-n', ...names], '', describeFailure(ns, ops, r), (r.us ?? 0) / 1000);
    return names.map((n) => r[`sysctl:${n}`] ?? '');
  }

  async setSysctls(hostNetns: string | undefined, values: [string, string][]): Promise<void> {
    const ns = hostNetns ?? '';
    const ops = values.map(([n, v]) => ['sysctl-set', n, v]);
    const argv = ['provium-nl', ...(ns ? ['-n', ns] : []), 'sysctl', '-w', ...values.map(([n, v]) => `${n}=${v}`)];
    const r = await this.helper.request(ns, ops);
    traceCommand(argv, r.ok ? 0 : 1, (r.us ?? 0) / 1000);
    if (!r.ok) throw batchError(argv, '', describeFailure(ns, ops, r), (r.us ?? 0) / 1000);
  }

  async readTc(hostNetns?: string): Promise<{ qdiscs: TcQdisc[]; classes: TcClass[] }> {
    const ns = hostNetns ?? '';
    const r = await this.helper.request(ns, [['tc']]);
    // Traced as a read ("show"), like the nftables generation.
    const argv = ['provium-nl', ...(ns ? ['-n', ns] : []), 'show', 'tc'];
    traceCommand(argv, r.ok ? 0 : 1, (r.us ?? 0) / 1000);
    if (!r.ok) throw batchError(argv, '', describeFailure(ns, [['tc']], r), (r.us ?? 0) / 1000);
    return { qdiscs: r.qdiscs ?? [], classes: r.classes ?? [] };
  }

  async hostLinks(hostNetns?: string): Promise<IpLink[]> {
    const ns = hostNetns ?? '';
    const r = await this.call(ns, [['links']], 'addr show\n');
    if (!r.ok) throw batchError(['provium-nl', ...(ns ? ['-n', ns] : []), '-batch', '-'], 'addr show\n', describeFailure(ns, [['links']], r), 0);
    const links = r.links ?? [];
    // The parser reads a VXLAN port's details (id, port, local): a helper that did not send
    // them (an older build) is not trusted with the host's links.
    if (this.fallback && links.some((l) => l.linkinfo?.info_kind === 'vxlan' && !l.linkinfo.info_data)) return this.fallback.hostLinks(hostNetns);
    return links;
  }
}
