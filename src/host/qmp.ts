/**
 * A QMP client (QEMU Machine Protocol, qemu/docs/interop/qmp-spec): the only module
 * besides the runner that talks to something outside the process. Line-delimited
 * JSON over a unix socket: the server sends a greeting {"QMP": {...}}, the client
 * negotiates with `qmp_capabilities`, then each command {"execute", "arguments", "id"}
 * is answered by {"return", "id"} or {"error": {"class", "desc"}, "id"}; asynchronous
 * {"event", "data", "timestamp"} messages may arrive at any time, also between a
 * command and its answer. Every wait is bounded: a hung VM never hangs provium.
 */
import { createConnection, type Socket } from 'node:net';

export interface QmpEvent {
  event: string;
  data?: unknown;
  timestamp?: { seconds: number; microseconds: number };
}

/** An error answer from QEMU ({"error": {"class", "desc"}}), or a protocol failure (class "ProtocolError"/"Timeout"). */
export class QmpError extends Error {
  constructor(public readonly errorClass: string, public readonly desc: string, public readonly command?: string) {
    super(`QMP ${command ? `${command}: ` : ''}${errorClass}: ${desc}`);
    this.name = 'QmpError';
  }
}

interface Pending {
  command: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export class QmpClient {
  /** Events received so far (oldest first). */
  readonly events: QmpEvent[] = [];
  /** The greeting's QMP.version.qemu, e.g. {major: 7, minor: 2, micro: 0}. */
  version?: { major: number; minor: number; micro: number };
  private buf = '';
  private nextId = 1;
  private pending = new Map<string, Pending>();
  private closed = false;
  private closeError?: Error;

  private constructor(private readonly sock: Socket, private readonly path: string) {}

  /**
   * Connects to a QMP socket, reads the greeting and negotiates capabilities.
   * Throws QmpError (class "Timeout" when nothing arrives within timeoutMs, default 3 s).
   */
  static async connect(path: string, timeoutMs = 3000): Promise<QmpClient> {
    const sock = createConnection({ path });
    const c = new QmpClient(sock, path);
    const greeting = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new QmpError('Timeout', `no QMP greeting from ${path} within ${timeoutMs} ms`));
      }, timeoutMs);
      const onData = (d: Buffer) => {
        c.buf += d.toString('utf8');
        const nl = c.buf.indexOf('\n');
        if (nl < 0) return;
        const line = c.buf.slice(0, nl);
        c.buf = c.buf.slice(nl + 1);
        sock.off('data', onData);
        clearTimeout(timer);
        try {
          const g = JSON.parse(line) as { QMP?: { version?: { qemu?: { major: number; minor: number; micro: number } } } };
          if (!g.QMP) throw new Error('first message is not a QMP greeting');
          c.version = g.QMP.version?.qemu;
        } catch (e) {
          sock.destroy();
          reject(new QmpError('ProtocolError', `${path}: ${(e as Error).message}: ${line.slice(0, 200)}`));
          return;
        }
        sock.on('data', (x: Buffer) => c.onData(x));
        if (c.buf) c.onData(Buffer.alloc(0));
        resolve();
      };
      sock.on('data', onData);
      sock.once('error', (e) => {
        clearTimeout(timer);
        reject(new QmpError('ProtocolError', `cannot connect to ${path}: ${e.message}`));
      });
    });
    sock.on('error', (e) => c.fail(new QmpError('ProtocolError', `${path}: ${e.message}`)));
    sock.on('close', () => c.fail(new QmpError('ProtocolError', `${path}: connection closed`)));
    await greeting;
    await c.execute('qmp_capabilities', undefined, timeoutMs);
    return c;
  }

  private onData(d: Buffer): void {
    this.buf += d.toString('utf8');
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (!line) continue;
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line);
      } catch {
        continue; // not JSON: ignore (QMP never sends this)
      }
      if (typeof msg.event === 'string') {
        this.events.push(msg as unknown as QmpEvent);
        continue;
      }
      const id = msg.id === undefined ? undefined : String(msg.id);
      const p = id !== undefined ? this.pending.get(id) : undefined;
      if (!p) continue;
      this.pending.delete(id!);
      clearTimeout(p.timer);
      if ('error' in msg) {
        const e = msg.error as { class?: string; desc?: string };
        p.reject(new QmpError(e.class ?? 'GenericError', e.desc ?? 'unknown error', p.command));
      } else p.resolve(msg.return);
    }
  }

  private fail(e: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.closeError = e;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(e);
    }
    this.pending.clear();
  }

  /**
   * Runs one command and returns its "return" value. Throws QmpError on an error
   * answer, on a closed connection, or after timeoutMs (default 5 s) without answer.
   */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, timeoutMs = 5000): Promise<T> {
    if (this.closed) return Promise.reject(this.closeError ?? new QmpError('ProtocolError', 'connection closed', command));
    const id = `pv${this.nextId++}`;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new QmpError('Timeout', `no answer from ${this.path} within ${timeoutMs} ms`, command));
      }, timeoutMs);
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject, timer });
      this.sock.write(JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id }) + '\n');
    });
  }

  /** Waits until an event named `name` has arrived (or already had), up to timeoutMs. */
  async waitEvent(name: string, timeoutMs = 5000): Promise<QmpEvent> {
    const t0 = Date.now();
    for (;;) {
      const e = this.events.find((x) => x.event === name);
      if (e) return e;
      if (this.closed) throw this.closeError ?? new QmpError('ProtocolError', 'connection closed');
      if (Date.now() - t0 > timeoutMs) throw new QmpError('Timeout', `no ${name} event within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  close(): void {
    this.closed = true;
    this.sock.destroy();
  }
}
