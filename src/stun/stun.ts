/**
 * A STUN-style probe for NAT labs, run inside namespaces (`provium exec FILE NODE --
 * node dist/src/stun/stun.js ...`). Node built-ins only; every command prints JSON
 * lines on stdout and exits by itself (bounded by --ms).
 *
 *   reflect --udp P[,P] --tcp P[,P]              answer each UDP datagram, and each TCP
 *                                                connection, with the source address:port
 *                                                seen ({"seen":"ip:port"}); also a rendezvous
 *                                                for `punch` (UDP and TCP)
 *   map --proto udp|tcp --bind P T [T...]        from one local port, ask each reflector
 *                                                T (ip:port) what it sees: {"mapped":{T: seen}}
 *   listen --bind P --first T --ms N             send one datagram to reflector T, print the
 *                                                mapping it saw, then every datagram received
 *                                                ({"from","data"}) for N ms
 *   send --bind P T [--data X]                   one UDP datagram from local port P to T
 *   hold --bind P T --ms N                       a TCP connection from P to reflector T, kept
 *                                                open N ms: {"mapped": seen}
 *   connect T [--bind P] [--ms N]                a TCP connection attempt:
 *                                                {"result":"connected|refused|timeout"}
 *   punch --proto udp|tcp --bind P --rendezvous T --id A --peer B --ms N
 *                                                hole punching through rendezvous T:
 *                                                {"result":"success|failure","peer":..}
 *
 * UDP hole punching follows ICE's connectivity checks in miniature: each side sends
 * probes to the peer's address the rendezvous saw (its server-reflexive address) and to
 * every address it has heard the peer from (peer-reflexive), answers each probe with an
 * ack, and succeeds once an ack arrives (both directions worked); it then sends three
 * more acks so the peer's last probes are answered. TCP hole punching is a simultaneous
 * open: both sides connect from the port the rendezvous saw to each other's address,
 * retrying every 200 ms. It needs the first SYN to be dropped on the way (by the peer's
 * NAT) or to meet a connecting socket: a SYN that reaches a peer not yet connecting is
 * answered with RST (Node 20 cannot listen and connect on one port: no SO_REUSEPORT).
 */
import dgram from 'node:dgram';
import net from 'node:net';

/** Parsed command line: positional arguments and --key value options. */
export interface Args {
  cmd: string;
  pos: string[];
  opt: Record<string, string>;
}

/** Parses `CMD [--key value]... [positional]...`. */
export function parseArgs(argv: string[]): Args {
  const [cmd = '', ...rest] = argv;
  const pos: string[] = [];
  const opt: Record<string, string> = {};
  for (let i = 0; i < rest.length; i++) {
    if (rest[i].startsWith('--')) opt[rest[i].slice(2)] = rest[++i] ?? '';
    else pos.push(rest[i]);
  }
  return { cmd, pos, opt };
}

/** "ip:port" -> [ip, port] (IPv6 addresses as "[::1]:3478" or "::1:3478": the last colon separates). */
export function hostPort(s: string): [string, number] {
  const i = s.lastIndexOf(':');
  return [s.slice(0, i).replace(/^\[|\]$/g, ''), Number(s.slice(i + 1))];
}

/** Formats an address seen on a socket: "ip:port" (IPv4-mapped IPv6 shown as IPv4). */
export function endpoint(address: string, port: number): string {
  return `${address.replace(/^::ffff:/, '')}:${port}`;
}

const out = (o: unknown): void => {
  process.stdout.write(JSON.stringify(o) + '\n');
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const family = (ip: string): 'udp4' | 'udp6' => (ip.includes(':') ? 'udp6' : 'udp4');

/** Binds a UDP socket of the target's family to a local port (0: any). */
function udpSocket(target: string, port: number): Promise<dgram.Socket> {
  const s = dgram.createSocket({ type: family(hostPort(target)[0]), reuseAddr: true });
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    s.bind(port, () => resolve(s));
  });
}

/** Reflector and rendezvous. Runs until killed or --ms ends. */
async function reflect(a: Args): Promise<void> {
  const ports = (s: string | undefined) => (s ? s.split(',').map(Number) : []);
  const regs = new Map<string, { addr: string; peer: string; reply: (o: unknown) => void }>();
  const register = (id: string, peer: string, addr: string, reply: (o: unknown) => void) => {
    regs.set(id, { addr, peer, reply });
    const other = regs.get(peer);
    if (other && other.peer === id) {
      reply({ op: 'peer', addr: other.addr });
      other.reply({ op: 'peer', addr });
    }
  };
  for (const p of ports(a.opt.udp)) {
    for (const type of ['udp4', 'udp6'] as const) {
      const s = dgram.createSocket({ type, ipv6Only: type === 'udp6' });
      s.on('error', () => {});
      s.on('message', (m, r) => {
        const seen = endpoint(r.address, r.port);
        const send = (o: unknown) => s.send(JSON.stringify(o), r.port, r.address);
        let req: { op?: string; id?: string; peer?: string } = {};
        try {
          req = JSON.parse(String(m));
        } catch {
          /* a plain probe */
        }
        if (req.op === 'register' && req.id && req.peer) register(`udp/${req.id}`, `udp/${req.peer}`, seen, send);
        else send({ seen, at: p });
      });
      s.bind(p);
    }
  }
  for (const p of ports(a.opt.tcp)) {
    net
      .createServer((c) => {
        const seen = endpoint(c.remoteAddress ?? '', c.remotePort ?? 0);
        let buf = '';
        let registered = false;
        c.on('error', () => {});
        c.setTimeout(10_000, () => c.destroy());
        c.on('data', (d) => {
          buf += d;
          const line = buf.split('\n')[0];
          if (!buf.includes('\n') || registered) return;
          registered = true;
          try {
            const req = JSON.parse(line) as { op?: string; id?: string; peer?: string };
            if (req.op === 'register' && req.id && req.peer) {
              // The rendezvous closes first, so the client's port is free at once (no TIME_WAIT on its side).
              register(`tcp/${req.id}`, `tcp/${req.peer}`, seen, (o) => c.end(JSON.stringify(o) + '\n'));
              return;
            }
          } catch {
            /* not a registration */
          }
          c.end(JSON.stringify({ seen, at: p }) + '\n');
        });
        // A client that sends nothing gets the answer at once.
        setTimeout(() => {
          if (!registered && buf === '') {
            registered = true;
            c.end(JSON.stringify({ seen, at: p }) + '\n');
          }
        }, 50);
      })
      .on('error', () => {})
      .listen(p);
  }
  out({ ready: true, udp: ports(a.opt.udp), tcp: ports(a.opt.tcp) });
  if (a.opt.ms) setTimeout(() => process.exit(0), Number(a.opt.ms));
}

/**
 * One TCP exchange from a fixed local port: the peer's first line, or an error word
 * (timeout, closed, error ECODE). With `untilEnd` it waits for the peer to close first,
 * so the local port is free again at once (no TIME_WAIT on this side).
 */
function tcpAsk(target: string, localPort: number, timeoutMs: number, send?: string, untilEnd = true): Promise<string> {
  const [host, port] = hostPort(target);
  return new Promise((resolve) => {
    const c = net.connect({ host, port, ...(localPort ? { localPort } : {}) });
    let buf = '';
    let done = false;
    const finish = (v: string) => {
      if (done) return;
      done = true;
      c.destroy();
      resolve(v);
    };
    c.on('connect', () => {
      if (send) c.write(send + '\n');
    });
    c.on('data', (d) => {
      buf += d;
      if (!untilEnd && buf.includes('\n')) finish(buf.split('\n')[0]);
    });
    c.on('end', () => {
      c.end();
      finish(buf.split('\n')[0] || 'closed');
    });
    c.on('error', (e: NodeJS.ErrnoException) => finish(`error ${e.code}`));
    c.setTimeout(timeoutMs, () => finish('timeout'));
  });
}

/** The mapping each reflector sees for one local port. */
async function map(a: Args): Promise<void> {
  const proto = a.opt.proto ?? 'udp';
  const bind = Number(a.opt.bind ?? 0);
  const mapped: Record<string, string> = {};
  if (proto === 'tcp') {
    for (const t of a.pos) {
      const r = await tcpAsk(t, bind, Number(a.opt.timeout ?? 2000));
      try {
        mapped[t] = (JSON.parse(r) as { seen: string }).seen;
      } catch {
        mapped[t] = r;
      }
      await sleep(50);
    }
  } else {
    const s = await udpSocket(a.pos[0], bind);
    s.on('message', (m, r) => {
      try {
        mapped[endpoint(r.address, r.port)] = (JSON.parse(String(m)) as { seen: string }).seen;
      } catch {
        /* not a reflector's answer */
      }
    });
    // Each target is asked until it answers (3 tries, 150 ms apart).
    for (let attempt = 0; attempt < 3 && a.pos.some((t) => !mapped[t]); attempt++) {
      for (const t of a.pos) {
        if (mapped[t]) continue;
        const [h, p] = hostPort(t);
        s.send('map', p, h);
        await sleep(30);
      }
      await sleep(150);
    }
    s.close();
  }
  for (const t of a.pos) mapped[t] ??= 'none';
  out({ proto, bind, mapped });
}

/** Learns its mapping from one reflector, then reports every datagram received for --ms. */
async function listen(a: Args): Promise<void> {
  const first = a.opt.first;
  const s = await udpSocket(first, Number(a.opt.bind ?? 0));
  s.on('message', (m, r) => {
    let data = String(m);
    try {
      const j = JSON.parse(data) as { seen?: string };
      if (j.seen) data = `mapped ${j.seen}`;
    } catch {
      /* plain */
    }
    out({ from: endpoint(r.address, r.port), data });
  });
  const [h, p] = hostPort(first);
  s.send('map', p, h);
  setTimeout(() => s.send('map', p, h), 100);
  await sleep(Number(a.opt.ms ?? 2000));
  s.close();
  out({ done: true });
}

/** One datagram from a fixed local port. */
async function send(a: Args): Promise<void> {
  const t = a.pos[0];
  const s = await udpSocket(t, Number(a.opt.bind ?? 0));
  const [h, p] = hostPort(t);
  await new Promise<void>((r) => s.send(a.opt.data ?? 'hello', p, h, () => r()));
  s.close();
  out({ sent: t });
}

/** Holds a TCP connection to a reflector open, printing the mapping it saw. */
async function hold(a: Args): Promise<void> {
  const [h, p] = hostPort(a.pos[0]);
  const c = net.connect({ host: h, port: p, localPort: Number(a.opt.bind ?? 0) });
  c.on('data', (d) => {
    try {
      out({ mapped: (JSON.parse(String(d).split('\n')[0]) as { seen: string }).seen });
    } catch {
      /* partial */
    }
  });
  c.on('error', (e: NodeJS.ErrnoException) => out({ error: e.code }));
  await sleep(Number(a.opt.ms ?? 2000));
  c.destroy();
  out({ done: true });
}

/** One TCP connection attempt: connected (a listener answered), refused (an RST came back), timeout (nothing came back). */
async function connect(a: Args): Promise<void> {
  const [h, p] = hostPort(a.pos[0]);
  const t0 = Date.now();
  const result = await new Promise<string>((resolve) => {
    const c = net.connect({ host: h, port: p, ...(a.opt.bind ? { localPort: Number(a.opt.bind) } : {}) });
    c.on('connect', () => {
      c.destroy();
      resolve('connected');
    });
    c.on('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNREFUSED' ? 'refused' : `error ${e.code}`));
    c.setTimeout(Number(a.opt.ms ?? 1000), () => {
      c.destroy();
      resolve('timeout');
    });
  });
  out({ result, ms: Date.now() - t0 });
}

/** UDP hole punching (see the module comment). */
async function punchUdp(a: Args): Promise<void> {
  const rv = a.opt.rendezvous;
  const s = await udpSocket(rv, Number(a.opt.bind ?? 0));
  const deadline = Date.now() + Number(a.opt.ms ?? 3000);
  const [rh, rp] = hostPort(rv);
  let peerAddr: string | undefined;
  const targets = new Set<string>();
  const heard: string[] = [];
  let acked: string | undefined;
  s.on('message', (m, r) => {
    const from = endpoint(r.address, r.port);
    let j: { op?: string; addr?: string } = {};
    try {
      j = JSON.parse(String(m));
    } catch {
      return;
    }
    if (from === `${rh}:${rp}` || (r.port === rp && r.address.replace(/^::ffff:/, '') === rh)) {
      if (j.op === 'peer' && j.addr) {
        peerAddr ??= j.addr;
        targets.add(j.addr);
      }
      return;
    }
    if (j.op !== 'probe' && j.op !== 'ack') return;
    if (!heard.includes(from)) heard.push(from);
    targets.add(from);
    if (j.op === 'probe') s.send(JSON.stringify({ op: 'ack', id: a.opt.id }), r.port, r.address);
    else acked ??= from;
  });
  while (Date.now() < deadline && acked === undefined) {
    if (!peerAddr) s.send(JSON.stringify({ op: 'register', id: a.opt.id, peer: a.opt.peer }), rp, rh);
    for (const t of targets) {
      const [h, p] = hostPort(t);
      s.send(JSON.stringify({ op: 'probe', id: a.opt.id }), p, h);
    }
    await sleep(100);
  }
  if (acked !== undefined) {
    // The peer may still be waiting for an answer to its probes.
    for (let i = 0; i < 3; i++) {
      for (const t of targets) {
        const [h, p] = hostPort(t);
        s.send(JSON.stringify({ op: 'ack', id: a.opt.id }), p, h);
      }
      await sleep(100);
    }
  }
  s.close();
  out({ proto: 'udp', result: acked !== undefined ? 'success' : 'failure', peer: peerAddr ?? null, via: acked ?? null, heard });
}

/** TCP hole punching by simultaneous open (see the module comment). */
async function punchTcp(a: Args): Promise<void> {
  const bind = Number(a.opt.bind);
  const deadline = Date.now() + Number(a.opt.ms ?? 3000);
  let peerAddr: string | undefined;
  while (!peerAddr && Date.now() < deadline) {
    const r = await tcpAsk(a.opt.rendezvous, bind, Math.max(100, deadline - Date.now()), JSON.stringify({ op: 'register', id: a.opt.id, peer: a.opt.peer }));
    try {
      peerAddr = (JSON.parse(r) as { addr?: string }).addr;
    } catch {
      await sleep(100);
    }
  }
  let result = 'failure';
  const attempts: string[] = [];
  while (peerAddr && Date.now() < deadline && result !== 'success') {
    const r = await tcpAsk(peerAddr, bind, 300, JSON.stringify({ op: 'hello', id: a.opt.id }), false);
    attempts.push(r.startsWith('{') ? 'data' : r);
    if (r.startsWith('{') || r === 'closed') result = 'success';
    else await sleep(r === 'timeout' ? 0 : 200);
  }
  out({ proto: 'tcp', result, peer: peerAddr ?? null, attempts: attempts.length, last: attempts[attempts.length - 1] ?? null });
}

const COMMANDS: Record<string, (a: Args) => Promise<void>> = {
  reflect, map, listen, send, hold, connect,
  punch: (a) => (a.opt.proto === 'tcp' ? punchTcp(a) : punchUdp(a)),
};

/** Runs a command; exit code 2 for an unknown one. */
export async function main(argv: string[]): Promise<void> {
  const a = parseArgs(argv);
  const fn = COMMANDS[a.cmd];
  if (!fn) {
    process.stderr.write(`usage: stun.js ${Object.keys(COMMANDS).join('|')} [options] (see the comment at the top of src/stun/stun.ts)\n`);
    process.exit(2);
  }
  await fn(a);
  if (a.cmd !== 'reflect') process.exit(0);
}

if (process.argv[1] && /stun\.js$/.test(process.argv[1])) void main(process.argv.slice(2));
