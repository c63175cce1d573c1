/**
 * Routers (`kind: router`): a network namespace with forwarding on, an upstream
 * bridge, and optionally NAT (RFC 4787 behaviours) and a firewall. Pure types and
 * the named presets with their values (docs/nat.md says why each value).
 *
 * RFC 4787 terms as provium realizes them (measured in docs/nat.md):
 * - mapping: how an internal endpoint (address:port) is given an external one:
 *   endpoint-independent (EIM: one external port for every destination),
 *   address-dependent (ADM: one per destination address), address-and-port-dependent
 *   (APDM: one per destination address and port);
 * - filtering: which inbound packets to an external endpoint reach the internal one:
 *   endpoint-independent (EIF: from anyone once the mapping exists), address-dependent
 *   (ADF: only from addresses the mapping has sent to), address-and-port-dependent
 *   (APDF: only from the exact address:port it has sent to);
 * - hairpin: internal hosts reach each other's mappings through the router's public address;
 * - port_preservation: an internal port keeps its number as the first mapping's external port when free.
 */

/** One of RFC 4787's three behaviours, for mapping (section 4.1) or filtering (section 5). */
export type Rfc4787Behaviour = 'endpoint-independent' | 'address-dependent' | 'address-and-port-dependent';

export const RFC4787_BEHAVIOURS: readonly Rfc4787Behaviour[] = ['endpoint-independent', 'address-dependent', 'address-and-port-dependent'];

/** Short codes of the behaviours (used in nft comments and tables): ei, ad, apd. */
export const BEHAVIOUR_CODE: Record<Rfc4787Behaviour, string> = {
  'endpoint-independent': 'ei',
  'address-dependent': 'ad',
  'address-and-port-dependent': 'apd',
};

/**
 * IPv4 NAT of a router (NAPT to its upstream address). Timeouts in seconds: how long
 * a UDP mapping (and its conntrack entries) lives without traffic, and an established
 * TCP connection's (and its mapping's) idle lifetime.
 */
export interface NatSpec {
  mapping: Rfc4787Behaviour;
  filtering: Rfc4787Behaviour;
  hairpin: boolean;
  portPreservation: boolean;
  udpTimeoutS: number;
  tcpEstablishedTimeoutS: number;
  /** The preset the values came from, when the file named one (fields given next to it override it). */
  preset?: string;
}

/** Named NAT presets; `none` is no translation (the router forwards, IPv4 routed like IPv6). */
export const NAT_PRESETS: Record<string, Omit<NatSpec, 'preset'> | null> = {
  none: null,
  'full-cone': { mapping: 'endpoint-independent', filtering: 'endpoint-independent', hairpin: true, portPreservation: true, udpTimeoutS: 300, tcpEstablishedTimeoutS: 7440 },
  home: { mapping: 'endpoint-independent', filtering: 'address-and-port-dependent', hairpin: true, portPreservation: true, udpTimeoutS: 300, tcpEstablishedTimeoutS: 7440 },
  'port-restricted': { mapping: 'endpoint-independent', filtering: 'address-and-port-dependent', hairpin: false, portPreservation: false, udpTimeoutS: 120, tcpEstablishedTimeoutS: 7440 },
  corporate: { mapping: 'address-and-port-dependent', filtering: 'address-and-port-dependent', hairpin: false, portPreservation: false, udpTimeoutS: 120, tcpEstablishedTimeoutS: 3600 },
  cloud: { mapping: 'address-and-port-dependent', filtering: 'address-and-port-dependent', hairpin: false, portPreservation: false, udpTimeoutS: 350, tcpEstablishedTimeoutS: 350 },
  cgnat: { mapping: 'endpoint-independent', filtering: 'address-dependent', hairpin: true, portPreservation: false, udpTimeoutS: 120, tcpEstablishedTimeoutS: 7440 },
};

/** A port or an inclusive port range, 1-65535 ("8000-8100" in the file). */
export interface PortRange {
  lo: number;
  hi: number;
}

/**
 * A router's firewall (IPv4 and IPv6 alike): unsolicited inbound traffic from the
 * upstream is dropped, except new connections to the `inboundTcp`/`inboundUdp` ports;
 * outbound traffic to the upstream is restricted to `outboundTcp`/`outboundUdp`
 * destination ports when those lists are given (undefined: every port).
 */
export interface FirewallSpec {
  /** The preset the values came from (block-inbound, corporate). */
  preset?: string;
  outboundTcp?: PortRange[];
  outboundUdp?: PortRange[];
  inboundTcp: PortRange[];
  inboundUdp: PortRange[];
}

/** Named firewall presets; `none` is no firewall. */
export const FIREWALL_PRESETS: Record<string, Omit<FirewallSpec, 'preset'> | null> = {
  none: null,
  'block-inbound': { inboundTcp: [], inboundUdp: [] },
  corporate: { outboundTcp: [{ lo: 80, hi: 80 }, { lo: 443, hi: 443 }], outboundUdp: [{ lo: 53, hi: 53 }], inboundTcp: [], inboundUdp: [] },
};

/** A `kind: router` node's routing settings (normalized). */
export interface RouterSpec {
  /** The bridge its default route and NAT face (a plain member there, not its gateway). */
  upstream: string;
  /** Bridges it is the gateway of (sorted). */
  downstream: string[];
  /** IPv4 NAT; undefined = none (routed). */
  nat?: NatSpec;
  firewall?: FirewallSpec;
}
