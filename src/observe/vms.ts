/**
 * Observes a lab's VMs from their state directories (<stateDir>/vm/<node>/): the
 * record written at launch and after each QMP change (vm.json), the pidfile and
 * /proc/<pid>/cmdline (a live qemu using this VM's QMP socket), then QMP
 * `query-status` and `qom-list /machine/peripheral` (which NIC devices exist).
 * Link state comes from the record: QEMU cannot report it (host-facts.md).
 */
import { readdirSync, readFileSync } from 'node:fs';
import type { VmState } from '../model/state.js';
import { vmDeviceId } from '../model/names.js';
import { QmpClient } from '../host/qmp.js';
import { livePid } from '../host/proc.js';
import { vmPaths, type HostContext } from '../plan/commands.js';

export async function observeVms(ctx: HostContext): Promise<Record<string, VmState>> {
  const out: Record<string, VmState> = {};
  let nodes: string[] = [];
  try {
    nodes = readdirSync(`${ctx.stateDir}/vm`);
  } catch {
    return out;
  }
  await Promise.all(
    nodes.map(async (node) => {
      const p = vmPaths(ctx, node);
      let rec: VmState | undefined;
      try {
        rec = JSON.parse(readFileSync(p.record, 'utf8')) as VmState;
      } catch {
        /* no record: a half-made directory */
      }
      const pid = livePid(p.pidfile, p.socket);
      const base: VmState = { node, spec: rec?.spec ?? { memoryMb: 0, cpus: 0, accel: 'tcg' }, alive: false, status: 'dead', nics: {}, links: {} };
      if (!rec || pid === undefined) {
        out[node] = { ...base, ...(pid ? { pid } : {}) };
        return;
      }
      let status = 'unresponsive';
      let devices: Set<string> | undefined;
      try {
        const q = await QmpClient.connect(p.socket, 2000);
        try {
          status = (await q.execute<{ status: string }>('query-status', undefined, 2000)).status;
          const kids = await q.execute<{ name: string }[]>('qom-list', { path: '/machine/peripheral' }, 2000);
          devices = new Set(kids.map((k) => k.name));
        } finally {
          q.close();
        }
      } catch {
        /* a hung VM: unresponsive; plan restarts it */
      }
      const nics = Object.fromEntries(Object.entries(rec.nics).filter(([tap]) => !devices || devices.has(vmDeviceId(tap))));
      const links = Object.fromEntries(Object.entries(rec.links).filter(([tap]) => tap in nics));
      out[node] = { node, spec: rec.spec, alive: status !== 'unresponsive', status, pid, nics, links };
    }),
  );
  return out;
}
