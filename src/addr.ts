/**
 * `provium addr FILE NODE [BRIDGE]`: a node's address for scripts, from the file alone
 * (no host access, no root): the IPv4 address (bare, or with --cidr its prefix too) of the
 * node on BRIDGE, or on its first bridge in name order (its eth0); --6 for the IPv6 one.
 * Errors name the valid choices.
 */
import type { Topology } from './model/topology.js';
import { ProviumError } from './model/diagnostics.js';

export interface AddrOptions {
  six?: boolean;
  cidr?: boolean;
}

/** The address; throws ProviumError naming the valid nodes, bridges, or why there is none. */
export function nodeAddress(t: Topology, node: string, bridge: string | undefined, o: AddrOptions = {}): string {
  if (!t.nodes[node]) throw new ProviumError(`unknown node ${JSON.stringify(node)} in lab ${t.lab}`, `nodes: ${Object.keys(t.nodes).sort().join(', ')}`);
  const on = Object.values(t.bridges).filter((b) => b.attach.some((a) => a.node === node)).sort((a, b) => (a.name < b.name ? -1 : 1));
  if (on.length === 0) throw new ProviumError(`node ${node} is on no bridge: it has no address`);
  let b = on[0];
  if (bridge !== undefined) {
    const found = on.find((x) => x.name === bridge);
    if (!found) {
      throw new ProviumError(
        t.bridges[bridge] ? `node ${node} is not attached to bridge ${bridge}` : `unknown bridge ${JSON.stringify(bridge)} in lab ${t.lab}`,
        `node ${node} is on: ${on.map((x) => x.name).join(', ')}`,
      );
    }
    b = found;
  }
  const a = b.attach.find((x) => x.node === node)!;
  const cidr = o.six ? a.ip6 : a.ip;
  if (!cidr) {
    const why = o.six ? `bridge ${b.name} has no subnet6` : `bridge ${b.name} has no subnet and the attachment no ip`;
    throw new ProviumError(`node ${node} has no ${o.six ? 'IPv6' : 'IPv4'} address on bridge ${b.name}: ${why}`);
  }
  return o.cidr ? cidr : cidr.split('/')[0];
}
