/**
 * provium's traffic agent: one process per node namespace during `provium probe`, run as
 * `ip netns exec <ns> node agent.js <max-lifetime-ms>`. It imports node builtins only, so
 * it starts fast and runs unbundled (dist/src/probe/agent.js).
 *
 * It binds one IPv4 UDP socket on an ephemeral port (0.0.0.0:0) and prints
 * `{"ready":true,"port":N}`. Then it reads commands, one JSON object a line, on stdin,
 * and answers each (same `id`) with one JSON line on stdout:
 * - `{"id","op":"send","flow","ip","port","count","size","pps"}`: sends `count` datagrams
 *   of `size` bytes (UDP payload, at least HEADER bytes) to ip:port, paced at `pps`
 *   datagrams per second; answers `{"id","sent","errors","ms"}` once the last one left.
 * - `{"id","op":"stats","flows":[...],"warmupMs"}`: per flow what arrived so far (see
 *   FlowStats), computed here so the answer stays small, and `total` (datagrams of every
 *   flow so far) and `udpErrors` (this namespace's UDP receive errors).
 * - `{"id","op":"ping"}`: answers `{"id"}` (liveness).
 * It exits when stdin ends (the probe ended or died), on `{"op":"exit"}`, and at the
 * latest after its maximum lifetime, so it never outlives a probe.
 *
 * Datagram layout (big-endian): 0 magic "PV" | 2 version 1 | 3 flags 0 | 4 flow u32 |
 * 8 seq u32 | 12 send time u64 (ns, process.hrtime.bigint()) | padding to `size`.
 * Nodes of one host share CLOCK_MONOTONIC (network namespaces do not change clocks), so
 * arrival time minus send time is the one-way delay.
 */
import { createSocket, type Socket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

/** Bytes of the agent's header in every datagram. */
export const HEADER = 20;

/** What arrived of one flow. Times in ms; rate in bits/s of Ethernet frames (payload + 42 bytes of UDP, IPv4 and Ethernet headers). */
export interface FlowStats {
  /** Datagrams received (duplicates not counted twice). */
  received: number;
  duplicates: number;
  /** Datagrams that arrived after one with a higher sequence number. */
  reordered: number;
  /** One-way delay in ms: min, median, mean, max, standard deviation, 5th and 95th percentile (undefined without arrivals). */
  delay?: { min: number; median: number; mean: number; max: number; stdev: number; p5: number; p95: number };
  /** Frame rate after `warmupMs` from the first arrival, over at least 2 arrivals (undefined otherwise). */
  rateBps?: number;
  /** ms between the first and the last arrival. */
  spanMs: number;
}

interface Flow {
  seen: Uint8Array;
  count: number;
  dup: number;
  reord: number;
  maxSeq: number;
  arrivals: number[];
  delays: number[];
  bytes: number[];
}

const FRAME_OVERHEAD = 42;

/** Summary of one flow's arrivals (pure; exported for tests). */
export function summarize(f: { arrivals: number[]; delays: number[]; bytes: number[]; count: number; dup: number; reord: number }, warmupMs: number): FlowStats {
  const out: FlowStats = { received: f.count, duplicates: f.dup, reordered: f.reord, spanMs: 0 };
  if (f.count === 0) return out;
  const first = f.arrivals[0];
  out.spanMs = f.arrivals[f.arrivals.length - 1] - first;
  const d = [...f.delays].sort((a, b) => a - b);
  const q = (p: number) => d[Math.min(d.length - 1, Math.max(0, Math.round(p * (d.length - 1))))];
  const mean = d.reduce((s, x) => s + x, 0) / d.length;
  const variance = d.reduce((s, x) => s + (x - mean) ** 2, 0) / Math.max(1, d.length - 1);
  out.delay = { min: d[0], median: q(0.5), mean, max: d[d.length - 1], stdev: Math.sqrt(variance), p5: q(0.05), p95: q(0.95) };
  // Rate: bytes after the first arrival of the window, over the time from it to the last arrival.
  const start = f.arrivals.findIndex((t) => t >= first + warmupMs);
  if (start >= 0 && f.arrivals.length - start >= 2) {
    let bytes = 0;
    for (let i = start + 1; i < f.arrivals.length; i++) bytes += f.bytes[i] + FRAME_OVERHEAD;
    const ms = f.arrivals[f.arrivals.length - 1] - f.arrivals[start];
    if (ms > 0) out.rateBps = (bytes * 8 * 1000) / ms;
  }
  return out;
}

/** UDP receive errors of this namespace (/proc/net/snmp Udp: InErrors, RcvbufErrors). */
export function udpErrors(): { inErrors: number; rcvbufErrors: number } {
  try {
    const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'));
    const keys = lines[0].split(/\s+/);
    const vals = lines[1].split(/\s+/);
    const get = (k: string) => Number(vals[keys.indexOf(k)] ?? 0);
    return { inErrors: get('InErrors'), rcvbufErrors: get('RcvbufErrors') };
  } catch {
    return { inErrors: 0, rcvbufErrors: 0 };
  }
}

function main(): void {
  const maxLifetimeMs = Number(process.argv[2] ?? 120_000);
  const t0 = process.hrtime.bigint();
  const nowMs = () => Number(process.hrtime.bigint() - t0) / 1e6;
  const flows = new Map<number, Flow>();
  let total = 0;
  const sock: Socket = createSocket('udp4');
  const write = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');

  sock.on('message', (msg) => {
    if (msg.length < HEADER || msg[0] !== 0x50 || msg[1] !== 0x56) return;
    const at = process.hrtime.bigint();
    total++;
    const id = msg.readUInt32BE(4);
    const seq = msg.readUInt32BE(8);
    const sentNs = msg.readBigUInt64BE(12);
    let f = flows.get(id);
    if (!f) {
      f = { seen: new Uint8Array(1024), count: 0, dup: 0, reord: 0, maxSeq: -1, arrivals: [], delays: [], bytes: [] };
      flows.set(id, f);
    }
    if (seq >= f.seen.length * 8) {
      const grown = new Uint8Array(Math.max(f.seen.length * 2, (seq >> 3) + 1));
      grown.set(f.seen);
      f.seen = grown;
    }
    if (f.seen[seq >> 3] & (1 << (seq & 7))) {
      f.dup++;
      return;
    }
    f.seen[seq >> 3] |= 1 << (seq & 7);
    f.count++;
    if (seq < f.maxSeq) f.reord++;
    else f.maxSeq = seq;
    f.arrivals.push(Number(at - t0) / 1e6);
    f.delays.push(Number(at - sentNs) / 1e6);
    f.bytes.push(msg.length);
  });

  const send = (c: { id: number; flow: number; ip: string; port: number; count: number; size: number; pps: number }) => {
    const size = Math.max(HEADER, c.size);
    let sent = 0;
    let errors = 0;
    let acked = 0;
    const started = nowMs();
    const done = () => write({ id: c.id, sent, errors, ms: nowMs() - started });
    if (c.count === 0) return done();
    const one = () => {
      const b = Buffer.alloc(size);
      b.write('PV', 0, 'latin1');
      b[2] = 1;
      b.writeUInt32BE(c.flow, 4);
      b.writeUInt32BE(sent, 8);
      b.writeBigUInt64BE(process.hrtime.bigint(), 12);
      sent++;
      sock.send(b, c.port, c.ip, (e) => {
        if (e) errors++;
        if (++acked === c.count) done();
      });
    };
    const tick = () => {
      const due = Math.min(c.count, Math.floor(((nowMs() - started) * c.pps) / 1000) + 1);
      // Bounded bursts keep the event loop free for arrivals.
      for (let n = 0; sent < due && n < 256; n++) one();
      if (sent < c.count) setTimeout(tick, sent < due ? 0 : 1);
    };
    tick();
  };

  sock.bind(0, '0.0.0.0', () => {
    try {
      sock.setRecvBufferSize(8 << 20);
      sock.setSendBufferSize(4 << 20);
    } catch {
      /* capped by net.core.rmem_max/wmem_max */
    }
    write({ ready: true, port: sock.address().port, udpErrors: udpErrors() });
  });

  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    let c: Record<string, any>;
    try {
      c = JSON.parse(line) as Record<string, any>;
    } catch {
      return;
    }
    if (c.op === 'send') send(c as never);
    else if (c.op === 'stats') {
      const stats: Record<string, FlowStats> = {};
      for (const id of c.flows as number[]) {
        const f = flows.get(id) ?? { arrivals: [], delays: [], bytes: [], count: 0, dup: 0, reord: 0 };
        stats[id] = summarize(f, Number(c.warmupMs ?? 0));
      }
      write({ id: c.id, stats, total, udpErrors: udpErrors() });
    } else if (c.op === 'ping') write({ id: c.id });
    else if (c.op === 'exit') process.exit(0);
  });
  rl.on('close', () => process.exit(0));
  setTimeout(() => process.exit(3), maxLifetimeMs).unref();
}

// Run only as a program (`node agent.js`), not when imported (tests import summarize).
if (process.argv[1] && /agent\.js$/.test(process.argv[1])) main();
