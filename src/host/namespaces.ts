/**
 * Per-namespace reads and writes: what observe reads from every node namespace (and
 * from the lab's host namespace: its links and their addresses), and what apply writes
 * into node namespaces. Two implementations of one interface, NamespaceIO:
 *
 * - NetlinkIO (host/netlink.ts): the native helper `provium-nl`, one process for every
 *   namespace, speaking NETLINK_ROUTE (built at install time on libmnl);
 * - IprouteIO (here): one `ip -j -d -n NS -batch -` process per namespace, 8 at a time,
 *   through any Runner. It needs nothing of provium on the host, so hosts reached over
 *   SSH use it, and it is the fallback when the helper is missing or disabled.
 *
 * Both take the same input, the batch lines provium's planner writes for a node
 * namespace (`link set eth0 up`, `addr add 10.40.0.2/24 dev eth0`, `route replace
 * 10.41.0.0/24 via 10.40.0.1`, ..., then the READ_BACK lines), and return the same
 * data: links in the shape of iproute2's `ip -j -d addr show` and routes in that of
 * `ip -j route show table all` (iproute2 6.1; the fields observe/parse.ts reads), so the
 * planner sees the same NamespaceState from either.
 */
import type { IpLink, IpRoute, TcClass, TcQdisc } from '../observe/parse.js';
import { splitJsonDocs } from '../observe/parse.js';
import { CommandError, mapLimit, type Runner } from './runner.js';

/** One namespace as read: links with their addresses, and routes of every table (both families). */
export interface NsDump {
  links: IpLink[];
  routes: IpRoute[];
}

/** Per-namespace reads and writes; see the module comment. */
export interface NamespaceIO {
  /** "netlink" (the provium-nl helper) or "iproute2" (one `ip` process per namespace). */
  readonly mechanism: 'netlink' | 'iproute2';
  /**
   * Reads node namespaces (links, addresses, routes), in input order; undefined for a
   * namespace that could not be read (deleted between listing and reading).
   */
  readNamespaces(names: string[]): Promise<(NsDump | undefined)[]>;
  /**
   * Runs a node namespace's batch (the lines of a planner invocation labelled
   * `namespace NS`, ending with the READ_BACK lines) and returns the namespace as read
   * back after the writes. Lines run in order and stop at the first failure, like
   * `ip -batch`: throws CommandError naming the failing line.
   */
  applyNamespace(ns: string, batch: string): Promise<NsDump>;
  /** Links with their addresses in the lab's host namespace (`hostNetns`, or the root one when undefined). */
  hostLinks(hostNetns?: string): Promise<IpLink[]>;
  /**
   * The nftables ruleset generation of the lab's host namespace and that namespace's
   * cookie (netlink path only; undefined when the kernel cannot tell): equal values mean
   * no nftables transaction was committed there in between (observe/nft-cache.ts).
   */
  nftGeneration?(hostNetns?: string): Promise<{ gen: number; cookie: string; tables?: string[] } | undefined>;
  /**
   * Reads forwarding sysctls (net.ipv4.ip_forward, net.ipv6.conf.all.forwarding) of the
   * lab's host namespace, values in `names` order as the kernel prints them ("0", "1"),
   * without a process (netlink path only). Throws CommandError when one cannot be read.
   */
  sysctls?(hostNetns: string | undefined, names: string[]): Promise<string[]>;
  /** Sets forwarding sysctls ([name, "0" | "1"]) of the lab's host namespace, in order (netlink path only). Throws CommandError. */
  setSysctls?(hostNetns: string | undefined, values: [string, string][]): Promise<void>;
  /**
   * The HTB and netem qdiscs of the lab's host namespace (`tc -j qdisc show` keys) and the
   * HTB classes of every device with an HTB root qdisc, ceil in bits/s, in one request
   * without a process (netlink path only). Throws CommandError.
   */
  readTc?(hostNetns?: string): Promise<{ qdiscs: TcQdisc[]; classes: TcClass[] }>;
  /**
   * Runs an `ip -batch -` (netns "": no -n) or `ip -n NS -batch -` invocation's lines without
   * a process when every line is one it does: `netns del NAME` (netns "" only) and `link
   * del DEV` (netlink path only; a destroy's two teardown batches). Resolves false, having
   * done nothing, when a line is another: the caller then runs the process. Throws
   * CommandError naming the failing line, as `ip -batch` stops at it.
   */
  runIpBatch?(netns: string, batch: string): Promise<boolean>;
}

/**
 * Batch lines the planner writes for a node namespace, as structured operations: an
 * argv array (operation name, then its arguments) per line, in order. READ_BACK lines
 * (`addr show`, `route show table all`) become one trailing ["dump"]. Throws Error on
 * any other line: provium's planner writes only these forms, so anything else is a bug,
 * never something to pass on.
 */
export function batchToOps(batch: string): string[][] {
  const ops: string[][] = [];
  let dump = false;
  for (const raw of batch.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    const w = line.split(/\s+/);
    const bad = () => new Error(`netlink: a namespace batch line provium does not write: ${JSON.stringify(line)}`);
    if (line === 'addr show' || line === 'route show table all') {
      dump = true;
      continue;
    }
    if (dump) throw bad(); // the reads come last
    if (w[0] === 'link' && w[1] === 'set' && w.length === 4 && (w[3] === 'up' || w[3] === 'down')) ops.push([w[3], w[2]]);
    else if (w[0] === 'link' && w[1] === 'set' && w.length === 5 && w[3] === 'mtu' && /^\d+$/.test(w[4])) ops.push(['mtu', w[2], w[4]]);
    else if (w[0] === 'link' && w[1] === 'set' && w.length === 5 && w[3] === 'address') ops.push(['address', w[2], w[4]]);
    else if (w[0] === 'link' && w[1] === 'set' && w.length === 5 && w[3] === 'alias') ops.push(['alias', w[2], w[4]]);
    else if (w[0] === 'addr' && (w[1] === 'add' || w[1] === 'del') && w[3] === 'dev' && (w.length === 5 || (w.length === 6 && w[1] === 'add' && w[5] === 'nodad'))) {
      ops.push([w.length === 6 ? 'addr-add-nodad' : `addr-${w[1]}`, w[4], w[2]]);
    } else if (w[0] === 'route' && (w[1] === 'replace' || w[1] === 'del') && w.length === 5 && w[3] === 'via') ops.push([`route-${w[1]}`, w[2], w[4]]);
    else throw bad();
  }
  if (dump) ops.push(['dump']);
  return ops;
}

/** The batch line of an operation (the inverse of batchToOps), for messages. */
export function opToLine(op: string[]): string {
  const [name, a, b] = op;
  switch (name) {
    case 'up':
    case 'down':
      return `link set ${a} ${name}`;
    case 'mtu':
    case 'address':
    case 'alias':
      return `link set ${a} ${name} ${b}`;
    case 'addr-add':
    case 'addr-del':
      return `addr ${name.slice(5)} ${b} dev ${a}`;
    case 'addr-add-nodad':
      return `addr add ${b} dev ${a} nodad`;
    case 'route-replace':
    case 'route-del':
      return `route ${name.slice(6)} ${a} via ${b}`;
    case 'dump':
      return 'addr show; route show table all';
    case 'links':
      return 'addr show';
    case 'link-del':
      return `link del ${a}`;
    case 'netns-del':
      return `netns del ${a}`;
  }
  return op.join(' ');
}

/** argv of iproute2's per-namespace batch (JSON output, details: linkinfo). */
export function ipNsBatchArgv(ns: string): string[] {
  return ['ip', '-j', '-d', '-n', ns, '-batch', '-'];
}

/** The iproute2 path: one process per namespace through a Runner (local or remote). */
export class IprouteIO implements NamespaceIO {
  readonly mechanism = 'iproute2' as const;
  constructor(private readonly runner: Runner) {}

  async readNamespaces(names: string[]): Promise<(NsDump | undefined)[]> {
    const read = 'addr show\nroute show table all\n';
    return mapLimit(names, 8, async (ns) => {
      const r = await this.runner.run(ipNsBatchArgv(ns), { stdin: read, allowFail: true });
      return r.exitCode === 0 ? toDump(r.stdout) : undefined;
    });
  }

  async applyNamespace(ns: string, batch: string): Promise<NsDump> {
    const r = await this.runner.run(ipNsBatchArgv(ns), { stdin: batch });
    return toDump(r.stdout);
  }

  async hostLinks(hostNetns?: string): Promise<IpLink[]> {
    const r = await this.runner.run(['ip', ...(hostNetns ? ['-n', hostNetns] : []), '-j', '-d', 'addr', 'show']);
    return JSON.parse(r.stdout || '[]') as IpLink[];
  }
}

/** The last two JSON documents of an `ip -j -batch` output: `addr show`, then `route show table all`. */
export function toDump(stdout: string): NsDump {
  const [links, routes] = splitJsonDocs(stdout).slice(-2) as [IpLink[] | undefined, IpRoute[] | undefined];
  return { links: links ?? [], routes: routes ?? [] };
}

const fallbacks = new WeakMap<Runner, NamespaceIO>();

/**
 * The NamespaceIO of a runner: its own (HostRunner: the netlink helper when it is
 * built and not disabled) or, for runners without one (recorded-output replayers,
 * remote runners), the iproute2 path through that runner.
 */
export function namespaceIO(runner: Runner): NamespaceIO {
  const own = runner.namespaceIO?.();
  if (own) return own;
  let io = fallbacks.get(runner);
  if (!io) fallbacks.set(runner, (io = new IprouteIO(runner)));
  return io;
}

/** A failed namespace batch as the CommandError apply reports and rolls back on. */
export function batchError(argv: string[], stdin: string, stderr: string, ms: number, exitCode = 1): CommandError {
  return new CommandError({ argv, exitCode, stdout: '', stderr, ms }, stdin);
}
