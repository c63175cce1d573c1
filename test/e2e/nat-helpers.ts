/**
 * Driving the STUN-style probe (src/stun/stun.ts) inside a lab's namespaces for the
 * NAT tests: one-shot commands (map, send, connect, punch) and background ones
 * (reflect, listen, hold) whose JSON lines are read as they come. Every background
 * process is bounded (--ms and a kill timeout) and stopped by stopAll().
 */
import { execa, type ResultPromise } from 'execa';
import { fileURLToPath } from 'node:url';
import { killEach, run } from './helpers.js';

/** The compiled probe (dist/test/e2e/nat-helpers.js -> dist/src/stun/stun.js). */
export const STUN = fileURLToPath(new URL('../../src/stun/stun.js', import.meta.url));

type Line = Record<string, any>;

const parse = (text: string): Line[] =>
  text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Line);

/** Runs one probe command in a namespace; its JSON lines. Throws with the output when it fails. */
export async function stun(ns: string, args: string[], timeoutMs = 20_000): Promise<Line[]> {
  const r = await run(['ip', 'netns', 'exec', ns, 'node', STUN, ...args], { timeoutMs });
  if (r.code !== 0) throw new Error(`stun ${args.join(' ')} in ${ns} failed (exit ${r.code}): ${r.stdout}${r.stderr}`);
  return parse(r.stdout);
}

/** The last JSON line of a probe command. */
export async function stun1(ns: string, args: string[], timeoutMs?: number): Promise<Line> {
  const lines = await stun(ns, args, timeoutMs);
  if (!lines.length) throw new Error(`stun ${args.join(' ')} in ${ns} printed nothing`);
  return lines[lines.length - 1];
}

const running = new Set<ResultPromise>();

/** A probe running in the background: its lines so far, a wait for a line, and its end. */
export class Bg {
  readonly lines: Line[] = [];
  private buf = '';
  private readonly waiters: { pred: (l: Line) => boolean; resolve: (l: Line) => void }[] = [];
  readonly done: Promise<Line[]>;

  constructor(
    readonly ns: string,
    readonly args: string[],
    maxMs: number,
  ) {
    const p = execa('ip', ['netns', 'exec', ns, 'node', STUN, ...args], { reject: false, timeout: maxMs, killSignal: 'SIGKILL', stdin: 'ignore' });
    running.add(p);
    p.stdout?.on('data', (d: Buffer) => {
      this.buf += d.toString();
      const cut = this.buf.lastIndexOf('\n');
      if (cut < 0) return;
      for (const l of parse(this.buf.slice(0, cut))) {
        this.lines.push(l);
        for (const w of [...this.waiters]) {
          if (w.pred(l)) {
            this.waiters.splice(this.waiters.indexOf(w), 1);
            w.resolve(l);
          }
        }
      }
      this.buf = this.buf.slice(cut + 1);
    });
    this.done = p.then(() => {
      running.delete(p);
      return this.lines;
    });
  }

  /** The first line (already printed or still to come) for which pred holds; rejects after timeoutMs. */
  wait(pred: (l: Line) => boolean, timeoutMs = 10_000): Promise<Line> {
    const hit = this.lines.find(pred);
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve };
      this.waiters.push(w);
      setTimeout(() => reject(new Error(`stun ${this.args.join(' ')} in ${this.ns}: no expected line within ${timeoutMs} ms; lines: ${JSON.stringify(this.lines)}`)), timeoutMs).unref();
      void this.done.then(() => setTimeout(() => reject(new Error(`stun ${this.args.join(' ')} in ${this.ns} ended without the expected line; lines: ${JSON.stringify(this.lines)}`)), 0));
    });
  }
}

/** Starts a probe command in the background (bounded by maxMs). */
export function bg(ns: string, args: string[], maxMs = 30_000): Bg {
  return new Bg(ns, args, maxMs);
}

/** Starts a reflector (and rendezvous) and waits until it listens. */
export async function reflector(ns: string, udp: number[], tcp: number[], maxMs = 120_000): Promise<Bg> {
  const r = bg(ns, ['reflect', '--udp', udp.join(','), '--tcp', tcp.join(','), '--ms', String(maxMs)], maxMs + 5000);
  await r.wait((l) => l.ready === true);
  return r;
}

/** Kills every background probe still running. */
export function stopAll(): void {
  killEach(running);
}

/** A one-at-a-time lock (for probes that must bind the same TCP port in turn). */
export class Mutex {
  private tail = Promise.resolve();
  async run<T>(fn: () => Promise<T>): Promise<T> {
    const prev = this.tail;
    let release!: () => void;
    this.tail = new Promise((r) => (release = r));
    await prev;
    try {
      return await fn();
    } finally {
      release();
    }
  }
}

/** "ip:port" -> port number. */
export const portOf = (ep: string): number => Number(ep.slice(ep.lastIndexOf(':') + 1));
/** "ip:port" -> ip. */
export const ipOfEp = (ep: string): string => ep.slice(0, ep.lastIndexOf(':'));
