/**
 * Limits the schema cannot express, checked at load with a location (the schema holds
 * the plain ranges: see schemas/topology.schema.json and docs/security.md):
 * - latency_ms and jitter_ms have a resolution of 0.001 ms: tc reads netem's delay back
 *   in microseconds, so a finer value could never be verified;
 * - a bridge's MTU is at most 65521 when a qemu node is attached (a TAP's largest MTU;
 *   bridges and veth pairs take 65535) and at least 1280 with subnet6 (the kernel
 *   disables IPv6 on a device whose MTU is below 1280, so its address cannot be added).
 */
import type { Input } from './input.js';
import { q, type Reporter } from './report.js';
import { describePath } from './schema.js';

/** TAP devices' largest MTU (measured: `ip link set TAP mtu 65522` fails with "mtu greater than device maximum"). */
export const TAP_MAX_MTU = 65521;
/** IPv6's minimum link MTU (RFC 8200); Linux removes IPv6 from a device below it. */
export const IPV6_MIN_MTU = 1280;

/** Whether v is a multiple of 0.001 (µs resolution), within float error. */
function microseconds(v: number): boolean {
  return Math.abs(v * 1000 - Math.round(v * 1000)) < 1e-6 * Math.max(1, v);
}

export function checkLimits(input: Input, r: Reporter): void {
  for (const b of input.bridges?.values() ?? []) {
    // Entries written with groups carry their settings in `fields` (same path as the entry).
    for (const imp of [...b.impairments, ...b.groupEntries.flatMap((e) => (e.fields ? [e.fields] : []))]) {
      for (const key of ['latency_ms', 'jitter_ms'] as const) {
        const v = imp[key];
        if (v !== undefined && v >= 0 && !microseconds(v)) {
          r.error([...imp.path, key], 'out of range', `${describePath([...imp.path, key])} is ${v}: netem delays have a resolution of 0.001 ms (1 µs); round it (e.g. ${Math.round(v * 1000) / 1000})`);
        }
      }
    }
    if (b.mtu === undefined) continue;
    const vm = b.attach.find((a) => input.nodes?.get(a.node)?.kind === 'qemu');
    if (vm && b.mtu > TAP_MAX_MTU) {
      r.error([...b.path, 'mtu'], 'out of range', `bridge ${q(b.name)} has qemu node ${q(vm.node)} attached, whose TAP takes an MTU of at most ${TAP_MAX_MTU}; mtu is ${b.mtu}`);
    }
    if (b.subnet6 !== undefined && b.mtu < IPV6_MIN_MTU) {
      r.error([...b.path, 'mtu'], 'out of range', `bridge ${q(b.name)} has subnet6, and IPv6 needs an MTU of at least ${IPV6_MIN_MTU} (the kernel disables IPv6 below it); mtu is ${b.mtu}`);
    }
  }
}
