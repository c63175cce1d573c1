/**
 * NIC numbering and host device names. Each node gets one NIC per bridge it is
 * attached to, numbered eth0, eth1, ... in order of bridge name; the derived
 * host devices (bridgeDev, portDev from model/names.ts) must fit IFNAMSIZ and
 * be unique across the lab.
 */
import { IFNAMSIZ_MAX, LAB_RE, NAME_RE, bridgeDev, nicName, portDev } from '../model/names.js';
import type { DataPath } from './source.js';
import type { Input } from './input.js';
import { q, type Reporter } from './report.js';

/** Node name -> the bridges it is attached to, sorted by name (plain string order); index = nicIndex. */
export type NicTable = Map<string, string[]>;

/** Numbers every node's NICs: for each node, its bridges sorted by name (duplicates counted once). */
export function numberNics(input: Input): NicTable {
  const table: NicTable = new Map();
  for (const bridge of input.bridges?.values() ?? []) {
    for (const a of bridge.attach) {
      const list = table.get(a.node) ?? [];
      if (!list.includes(bridge.name)) list.push(bridge.name);
      table.set(a.node, list);
    }
  }
  for (const list of table.values()) list.sort();
  return table;
}

/**
 * Checks the derived device names: each at most IFNAMSIZ_MAX bytes, no two equal.
 * Skipped for an invalid lab name, and per object for invalid node/bridge names
 * (the schema reports those), so one bad name does not cascade.
 */
export function checkDevices(input: Input, nics: NicTable, r: Reporter): void {
  const lab = input.lab;
  if (lab === undefined || !LAB_RE.test(lab)) return;
  const owners = new Map<string, string>();
  const claim = (dev: string, owner: string, path: DataPath, key: boolean): void => {
    const bytes = Buffer.byteLength(dev, 'utf8');
    if (bytes > IFNAMSIZ_MAX) {
      r.error(path, 'name too long for an interface', `'${dev}' is ${bytes} bytes, at most ${IFNAMSIZ_MAX} (${owner}); shorten the names`, { key });
      return;
    }
    const first = owners.get(dev);
    if (first !== undefined) {
      r.error(path, 'device name collision', `'${dev}' would be both ${first} and ${owner}; rename one of them`, { key });
    } else {
      owners.set(dev, owner);
    }
  };
  for (const bridge of input.bridges?.values() ?? []) {
    if (!NAME_RE.test(bridge.name)) continue;
    claim(bridgeDev(lab, bridge.name), `the device of bridge ${q(bridge.name)}`, bridge.path, true);
    const seen = new Set<string>();
    for (const a of bridge.attach) {
      if (seen.has(a.node) || !NAME_RE.test(a.node) || (input.nodes && !input.nodes.has(a.node))) continue;
      seen.add(a.node);
      const index = nics.get(a.node)!.indexOf(bridge.name);
      claim(portDev(lab, a.node, index), `the port of node ${q(a.node)} ${nicName(index)} on bridge ${q(bridge.name)}`, a.path, false);
    }
  }
}
