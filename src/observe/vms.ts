/**
 * Observes a lab's VMs from their state directories (<stateDir>/vm/<node>/): the
 * record written at launch and after each QMP change (vm.json), the pidfile and
 * /proc/<pid>/cmdline (a live qemu using this VM's QMP socket), then QMP
 * `query-status` and `qom-list /machine/peripheral` (which NIC devices exist).
 * Link state comes from the record: QEMU cannot report it (host-facts.md).
 *
 * A VM folder is the lab's only when provium's own record in it says so (vm.json with
 * owner "provium:<lab>:vm:<node>"), or when it is empty (a launch interrupted before the
 * record was written). Any other folder there is never observed, changed or removed;
 * when the file wants that VM, it is a conflict.
 */
import type { Conflict, VmState } from '../model/state.js';
import { localFs, type SyncFs } from '../host/fs.js';
import { vmDeviceId } from '../model/names.js';
import { QmpClient } from '../host/qmp.js';
import { livePid } from '../host/proc.js';
import { vmPaths, type HostContext } from '../plan/commands.js';
import { readJson, treeOf, type Warn } from '../apply/statedir.js';
import type { SafeFs } from '../host/safefs.js';

/** Ownership mark of a VM record. */
export function vmOwner(lab: string, node: string): string {
  return `provium:${lab}:vm:${node}`;
}

/** A VM record as written by apply/vm.ts: VmState plus its owner mark. */
export type VmRecord = VmState & { owner?: string };

const isRecord = (v: unknown): v is VmRecord => typeof v === 'object' && v !== null && typeof (v as VmRecord).node === 'string' && typeof (v as VmRecord).spec === 'object' && typeof (v as VmRecord).nics === 'object' && typeof (v as VmRecord).links === 'object';

/** The lab name of a state directory (<root>/<lab>). */
function labOf(ctx: HostContext): string {
  return ctx.stateDir!.slice(ctx.stateDir!.lastIndexOf('/') + 1);
}

/** How provium regards the folder vm/<node>: the lab's (with its record, if any) or not. */
export function vmFolder(fs: SafeFs, rel: string, lab: string, node: string, warn?: Warn): { ours: boolean; record?: VmRecord } {
  const entries = fs.list(`${rel}/${node}`);
  if (entries.length === 0) return { ours: fs.lstat(`${rel}/${node}`)?.isDirectory() === true };
  if (!entries.includes('vm.json')) return { ours: false };
  const rec = readJson(fs, `${rel}/${node}/vm.json`, isRecord, 'the folder is not taken as the lab\'s VM; remove it by hand when no VM uses it', warn);
  if (!rec || rec.node !== node || (rec.owner !== undefined && rec.owner !== vmOwner(lab, node))) return { ours: false };
  return { ours: true, record: rec };
}

/** Folders vm/<node> for the VM nodes the file wants that are not the lab's (see the module comment). */
export function vmFolderConflicts(ctx: HostContext, nodes: string[]): Conflict[] {
  if (!ctx.stateDir || nodes.length === 0) return [];
  const { fs, rel } = treeOf(`${ctx.stateDir}/vm`);
  const present = new Set(fs.list(rel));
  return nodes
    .filter((n) => present.has(n) && !vmFolder(fs, rel, labOf(ctx), n).ours)
    .map((n) => ({ kind: 'folder' as const, name: fs.path(`${rel}/${n}`), found: 'a folder without provium\'s record of this lab\'s VM (vm.json)' }));
}

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
  if (!ctx.stateDir) return out;
  const remote = io !== localVmIo;
  const local = remote ? undefined : treeOf(`${ctx.stateDir}/vm`);
  const lab = labOf(ctx);
  // A remote host: its VM folders from the file snapshot (the same ownership rule: the record's owner mark).
  const remoteFolder = (node: string): { ours: boolean; record?: VmRecord } => {
    let rec: VmRecord | undefined;
    try {
      const r = JSON.parse(io.fs.readText(`${ctx.stateDir}/vm/${node}/vm.json`) ?? 'null') as unknown;
      if (isRecord(r)) rec = r;
    } catch {
      /* damaged */
    }
    if (!rec) return { ours: (io.fs.list(`${ctx.stateDir}/vm/${node}`) ?? ['x']).length === 0 };
    return { ours: rec.node === node && (rec.owner === undefined || rec.owner === vmOwner(lab, node)), record: rec };
  };
  const names = remote ? io.fs.list(`${ctx.stateDir}/vm`) ?? [] : local!.fs.list(local!.rel);
  await Promise.all(
    names.map(async (node) => {
      if (node.startsWith('.')) return;
      const folder = remote ? remoteFolder(node) : vmFolder(local!.fs, local!.rel, lab, node, ctx.warn);
      if (!folder.ours) return; // not the lab's: never touched
      const rec = folder.record;
      const p = vmPaths(ctx, node);
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
