/**
 * The known hole-punching outcome of two NATs, from RFC 4787's definitions alone (no
 * host): a small simulation of two peers behind NATs that register with a rendezvous
 * and then probe each other as src/stun/stun.ts does (server-reflexive address first,
 * then every address a peer was heard from, an ack for every probe). Mappings and
 * filters follow the RFC: endpoint-independent / address-dependent /
 * address-and-port-dependent. The end-to-end test compares measured outcomes with it.
 */
import type { Rfc4787Behaviour } from '../../src/model/router.js';

/** A NAT's RFC 4787 behaviour; null: no NAT (a public, unfiltered address). */
export type Behaviour = { mapping: Rfc4787Behaviour; filtering: Rfc4787Behaviour } | null;

const addrOf = (ep: string) => ep.split(':')[0];

class SimNat {
  private next = 40000;
  private readonly maps = new Map<string, string>();
  private readonly owner = new Map<string, string>();
  private readonly sent = new Map<string, Set<string>>();
  constructor(
    readonly pub: string,
    readonly b: Behaviour,
  ) {}

  /** The external endpoint a packet from internal `src` to `dst` leaves with. */
  outbound(src: string, dst: string): string {
    if (!this.b) return src;
    const key = this.b.mapping === 'endpoint-independent' ? src : this.b.mapping === 'address-dependent' ? `${src}|${addrOf(dst)}` : `${src}|${dst}`;
    let ext = this.maps.get(key);
    if (!ext) {
      ext = `${this.pub}:${this.next++}`;
      this.maps.set(key, ext);
      this.owner.set(ext, src);
    }
    const s = this.sent.get(ext) ?? new Set<string>();
    s.add(dst);
    this.sent.set(ext, s);
    return ext;
  }

  /** The internal endpoint a packet from `from` to external `to` reaches, or undefined when filtered. */
  inbound(from: string, to: string): string | undefined {
    if (!this.b) return to;
    const internal = this.owner.get(to);
    if (!internal) return undefined;
    const sent = this.sent.get(to)!;
    if (this.b.filtering === 'endpoint-independent') return internal;
    if (this.b.filtering === 'address-dependent') return [...sent].some((d) => addrOf(d) === addrOf(from)) ? internal : undefined;
    return sent.has(from) ? internal : undefined;
  }
}

interface Peer {
  ep: string;
  nat: SimNat;
  targets: Set<string>;
  ok: boolean;
}

/** Whether two peers behind NATs of behaviours a and b both complete the exchange (rounds of simultaneous probing). */
export function predictPunch(a: Behaviour, b: Behaviour, rounds = 6): boolean {
  const A: Peer = { ep: 'a:5000', nat: new SimNat('A', a), targets: new Set(), ok: false };
  const B: Peer = { ep: 'b:5000', nat: new SimNat('B', b), targets: new Set(), ok: false };
  // Without NAT the peer's own address is public.
  if (!a) A.ep = 'A:5000';
  if (!b) B.ep = 'B:5000';
  const S = 'S:3478';
  const srflxA = A.nat.outbound(A.ep, S);
  const srflxB = B.nat.outbound(B.ep, S);
  A.targets.add(srflxB);
  B.targets.add(srflxA);
  const send = (x: Peer, y: Peer, kind: 'probe' | 'ack', dst: string): void => {
    const ext = x.nat.outbound(x.ep, dst);
    if (addrOf(dst) !== y.nat.pub) return;
    if (!y.nat.inbound(ext, dst)) return;
    y.targets.add(ext);
    if (kind === 'probe') send(y, x, 'ack', ext);
    else y.ok = true;
  };
  for (let i = 0; i < rounds; i++) {
    for (const [x, y] of [[A, B], [B, A]] as const) for (const t of [...x.targets]) send(x, y, 'probe', t);
  }
  return A.ok && B.ok;
}

/**
 * The known outcome of TCP hole punching by simultaneous open (stun.ts punch --proto
 * tcp): each side connects from the port the rendezvous saw to the peer's
 * server-reflexive address, again and again. A connection forms only when a SYN
 * arrives from exactly the endpoint the receiving side is connecting to, so the NATs
 * must map both sides' connections toward the peer to their server-reflexive ports
 * (no peer-reflexive candidates in TCP), and let the SYN through.
 */
export function predictTcpPunch(a: Behaviour, b: Behaviour, rounds = 6): boolean {
  const natA = new SimNat('A', a);
  const natB = new SimNat('B', b);
  const epA = a ? 'a:5000' : 'A:5000';
  const epB = b ? 'b:5000' : 'B:5000';
  const srflxA = natA.outbound(epA, 'S:3478');
  const srflxB = natB.outbound(epB, 'S:3478');
  for (let i = 0; i < rounds; i++) {
    for (const [nx, ex, ny, target, expect] of [[natA, epA, natB, srflxB, srflxA], [natB, epB, natA, srflxA, srflxB]] as const) {
      const src = nx.outbound(ex, target);
      if (ny.inbound(src, target) && src === expect) return true;
    }
  }
  return false;
}
