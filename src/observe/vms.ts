/**
 * Observes a lab's VMs from their state directories (<stateDir>/vm/<node>/): the
 * record written at launch and after each QMP change (vm.json), the pidfile and
 * /proc/<pid>/cmdline (a live qemu using this VM's QMP socket), then QMP
 * `query-status` and `qom-list /machine/peripheral` (which NIC devices exist).
 * Link state comes from the record: QEMU cannot report it (host-facts.md).
 */
import type { VmState } from '../model/state.js';
import { localFs, type SyncFs } from '../host/fs.js';
import { vmDeviceId } from '../model/names.js';
import { QmpClient } from '../host/qmp.js';
import { livePid } from '../host/proc.js';
import { vmPaths, type HostContext } from '../plan/commands.js';

/**
 * How observeVms reaches a host: its files (a remote snapshot too) and a QMP connection
 * to a VM's socket on it (for a remote host, through the SSH connection).
 */
export interface VmIo {
  fs: SyncFs;
  connect(socket: string, timeoutMs: number): Promise<QmpClient>;
}

const localVmIo: VmIo = { fs: localFs, connect: (socket, ms) => QmpClient.connect(socket, ms) };

export async function observeVms(ctx: HostContext, io: VmIo = localVmIo): Promise<Record<string, VmState>> {
  const out: Record<string, VmState> = {};
  const nodes = io.fs.list(`${ctx.stateDir}/vm`);
  if (!nodes) return out;
  await Promise.all(
    nodes.map(async (node) => {
      const p = vmPaths(ctx, node);
      let rec: VmState | undefined;
      try {
        rec = JSON.parse(io.fs.readText(p.record) ?? '') as VmState;
      } catch {
        /* no record: a half-made directory */
      }
      const pid = livePid(p.pidfile, p.socket, io.fs);
      const base: VmState = { node, spec: rec?.spec ?? { memoryMb: 0, cpus: 0, accel: 'tcg' }, alive: false, status: 'dead', nics: {}, links: {} };
      if (!rec || pid === undefined) {
        out[node] = { ...base, ...(pid ? { pid } : {}) };
        return;
      }
      let status = 'unresponsive';
      let devices: Set<string> | undefined;
      try {
        const q = await io.connect(p.socket, 2000);
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
