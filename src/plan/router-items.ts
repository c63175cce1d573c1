/**
 * A router's items, the unit the planner compares (see items.ts): its own settings
 * under the node's address (`node.R`: forwarding, interfaces, the table's base), its
 * NAT under `node.R.nat` and its firewall under `node.R.firewall`. Each router always
 * has the three (nat/firewall "none" when off), so a change of either is an update
 * whose desired side carries what the table is rewritten from (meta). All go with the
 * router's namespace (parent).
 */
import type { HostState, RouterState } from '../model/state.js';
import type { Item } from './items.js';
import { addr } from './owners.js';
import { firewallFields, inputFromTable, parseNatCode, routerTableText } from './router-nft.js';
import { routerSysctls } from './routers.js';

const bit = (b: boolean | undefined) => (b === undefined ? undefined : b ? 1 : 0);

/** NAT fields as the plan shows them; timeouts from the conntrack sysctls ("30/120" when unreplied and stream timeouts differ). */
function natFields(r: RouterState): Record<string, unknown> {
  const t = r.table;
  if (!t) return { nat: undefined };
  const nat = parseNatCode(t.nat);
  if (!nat) return { nat: t.nat === 'none' ? 'none' : `unreadable (${t.nat})` };
  const udp = r.ctUdp === undefined ? undefined : r.ctUdp === r.ctUdpStream ? r.ctUdp : `${r.ctUdp}/${r.ctUdpStream}`;
  return {
    mapping: nat.mapping,
    filtering: nat.filtering,
    hairpin: nat.hairpin,
    port_preservation: nat.portPreservation,
    udp_timeout_s: udp,
    tcp_established_timeout_s: r.ctTcpEstablished,
    rules: t.natRules,
  };
}

/** Items of every router in a state. */
export function routerItems(s: HostState): Item[] {
  const out: Item[] = [];
  for (const r of Object.values(s.routers ?? {})) {
    const nsKey = `netns:${r.ns}`;
    // An observed router (a rollback's target) is rewritten from what was read.
    const input = r.nftText === undefined && r.table ? inputFromTable(r.ns.split('-')[1] ?? '', r.node, r.table) : undefined;
    const meta = { nftText: r.nftText ?? (input ? routerTableText(input) : undefined), sysctls: routerSysctls(r), hadTable: r.tableExists ?? r.table !== undefined };
    const t = r.table;
    out.push({
      key: `router:${r.ns}`, ref: { kind: 'router', ns: r.ns }, owner: addr.node(r.node),
      value: {
        ip_forward: bit(r.ipForward), ipv6_forwarding: bit(r.ip6Forward),
        upstream: t?.wan.join(','), downstream: t?.lan.join(','), public_address: t?.public4.join(','),
        table: t?.base,
      },
      meta, parent: nsKey, deps: [nsKey],
    });
    out.push({ key: `router-nat:${r.ns}`, ref: { kind: 'router-nat', ns: r.ns }, owner: addr.routerNat(r.node), value: natFields(r), meta, parent: nsKey, deps: [nsKey] });
    out.push({ key: `router-fw:${r.ns}`, ref: { kind: 'router-fw', ns: r.ns }, owner: addr.routerFirewall(r.node), value: firewallFields(t), meta, parent: nsKey, deps: [nsKey] });
  }
  return out;
}
