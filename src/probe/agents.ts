/**
 * Starting and talking to the traffic agents (agent.ts) of `provium probe`: one
 * `ip netns exec <ns> node agent.js` per netns node, spoken to with JSON lines over its
 * stdin/stdout. Every agent ends when its stdin closes (close()), and by itself after
 * its maximum lifetime: a probe leaves no process behind, even when it is killed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { appendFileSync } from 'node:fs';
import type { FlowStats } from './agent.js';

/** dist/src/probe/agent.js of this installation (found from the package root, bundled or not). */
export function agentPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`provium's package.json not found above ${fileURLToPath(import.meta.url)} (a broken install)`);
    dir = up;
  }
  const p = join(dir, 'dist', 'src', 'probe', 'agent.js');
  if (!existsSync(p)) throw new Error(`provium's traffic agent is missing (${p}): run npm run build`);
  return p;
}

export interface SendResult {
  sent: number;
  errors: number;
  ms: number;
}

export interface StatsResult {
  stats: Record<string, FlowStats>;
  /** Datagrams the agent received so far, all flows. */
  total: number;
  udpErrors: { inErrors: number; rcvbufErrors: number };
}

/** One running agent. */
export class Agent {
  port = 0;
  private next = 0;
  private waiters = new Map<number, (m: any) => void>();
  private exited = false;
  private ready: Promise<void>;
  startErrors: { inErrors: number; rcvbufErrors: number } = { inErrors: 0, rcvbufErrors: 0 };

  constructor(readonly node: string, readonly ns: string, private readonly child: ChildProcess) {
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    this.ready = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the traffic agent in ${ns} (node ${node}) did not start within 15 s${stderr ? `: ${stderr.trim()}` : ''}`)), 15_000);
      createInterface({ input: child.stdout! }).on('line', (line) => {
        let m: any;
        try {
          m = JSON.parse(line);
        } catch {
          return;
        }
        if (m.ready) {
          this.port = m.port;
          this.startErrors = m.udpErrors;
          clearTimeout(timer);
          resolve();
        } else if (typeof m.id === 'number') {
          this.waiters.get(m.id)?.(m);
          this.waiters.delete(m.id);
        }
      });
      child.on('exit', (code) => {
        this.exited = true;
        clearTimeout(timer);
        reject(new Error(`the traffic agent in ${ns} (node ${node}) exited (code ${code})${stderr ? `: ${stderr.trim()}` : ''}`));
        for (const w of this.waiters.values()) w({ error: `agent in ${ns} exited` });
        this.waiters.clear();
      });
    });
    this.ready.catch(() => {});
  }

  started(): Promise<void> {
    return this.ready;
  }

  private cmd<T>(o: Record<string, unknown>, timeoutMs: number): Promise<T> {
    if (this.exited) return Promise.reject(new Error(`the traffic agent in ${this.ns} is not running`));
    const id = ++this.next;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(id);
        reject(new Error(`the traffic agent in ${this.ns} did not answer ${o.op} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.set(id, (m) => {
        clearTimeout(timer);
        if (m.error) reject(new Error(m.error));
        else resolve(m as T);
      });
      this.child.stdin!.write(JSON.stringify({ ...o, id }) + '\n');
    });
  }

  /** Sends `count` datagrams of `size` bytes to ip:port at `pps`; resolves once all left. */
  send(flow: number, ip: string, port: number, count: number, size: number, pps: number): Promise<SendResult> {
    const expectedMs = (count / Math.max(1, pps)) * 1000;
    return this.cmd({ op: 'send', flow, ip, port, count, size, pps }, expectedMs * 3 + 10_000);
  }

  stats(flows: number[], warmupMs = 0): Promise<StatsResult> {
    return this.cmd({ op: 'stats', flows, warmupMs }, 10_000);
  }

  /** Ends the agent: closes its stdin, and kills it if it is still there after 1 s. */
  async close(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((r) => this.child.once('exit', () => r()));
    this.child.stdin?.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 1000);
    await gone;
    clearTimeout(timer);
  }
}

/**
 * Starts one agent in each namespace (node -> namespace), at most `maxLifetimeMs` each.
 * The agents run the same node binary as provium. Traced to $PROVIUM_TRACE like host commands.
 */
export async function startAgents(nodes: Map<string, string>, maxLifetimeMs: number): Promise<Map<string, Agent>> {
  const path = agentPath();
  const out = new Map<string, Agent>();
  for (const [node, ns] of nodes) {
    const argv = ['ip', 'netns', 'exec', ns, process.execPath, path, String(Math.round(maxLifetimeMs))];
    const trace = process.env.PROVIUM_TRACE;
    if (trace) appendFileSync(trace, JSON.stringify({ argv, exitCode: 0, ms: 0, probe: true }) + '\n');
    const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    child.stdin.on('error', () => {});
    out.set(node, new Agent(node, ns, child));
  }
  try {
    await Promise.all([...out.values()].map((a) => a.started()));
  } catch (e) {
    await Promise.all([...out.values()].map((a) => a.close()));
    throw e;
  }
  return out;
}
