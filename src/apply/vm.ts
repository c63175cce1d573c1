/**
 * Runs the VM actions of a plan: start (prepare the VM's folder in the state
 * directory, mode 0700, with provium's record vm.json and a fresh console log, then
 * qemu -daemonize via the runner; socket made 0600), stop (QMP quit, then SIGTERM,
 * then SIGKILL, each bounded; then remove the VM's folder when provium's record says
 * it is the lab's) and QMP steps (hotplug, unplug, set_link, cont), keeping the
 * record in step with what QEMU was told, since QEMU cannot report link state back.
 * Every file goes through the state directory's safe tree (apply/statedir.ts).
 */
import { chmodSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Invocation } from '../plan/types.js';
import type { VmState } from '../model/state.js';
import type { Runner } from '../host/runner.js';
import { QmpClient, QmpError } from '../host/qmp.js';
import { ProviumError } from '../model/diagnostics.js';
import { livePid, terminate, waitGone } from '../host/proc.js';
import { treeOf } from './statedir.js';
import { vmFolder, vmOwner, type VmRecord } from '../observe/vms.js';
import type { SafeFs } from '../host/safefs.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The VM folder <stateDir>/vm/<node> in the state directory's tree, and the lab it belongs to. */
function vmTree(dir: string): { fs: SafeFs; rel: string; parent: string; node: string; lab: string } {
  const { fs, rel } = treeOf(dir);
  return { fs, rel, parent: dirname(rel), node: basename(rel), lab: basename(dirname(dirname(dir))) };
}

function writeRecord(fs: SafeFs, rel: string, rec: VmRecord): void {
  fs.write(`${rel}/vm.json`, JSON.stringify(rec, null, 2) + '\n');
}

export async function startVm(inv: Invocation, runner: Runner): Promise<void> {
  const { dir, record } = inv.vmStart!;
  const v = vmTree(dir);
  if (v.fs.exists(v.rel) && !vmFolder(v.fs, v.parent, v.lab, v.node).ours) {
    throw new ProviumError(`${v.fs.path(v.rel)} exists and provium's record does not say it is VM ${v.node} of lab ${v.lab}: it was left alone`, 'remove it by hand when no VM uses it, then apply again');
  }
  v.fs.ensureDir(v.rel);
  for (const f of ['qmp.sock', 'qemu.pid', 'console.log']) v.fs.remove(`${v.rel}/${f}`);
  writeRecord(v.fs, v.rel, { ...record, pid: undefined, owner: vmOwner(v.lab, v.node) });
  v.fs.ensureFile(`${v.rel}/console.log`); // QEMU opens it by name: a file provium made
  const old = process.umask(0o077);
  try {
    await runner.run(inv.argv, { timeoutMs: 30_000 });
  } finally {
    process.umask(old);
  }
  if (v.fs.lstat(`${v.rel}/qmp.sock`)?.isSocket()) chmodSync(v.fs.path(`${v.rel}/qmp.sock`), 0o600);
}

/** Ends a VM: QMP quit (2 s), SIGTERM (3 s), SIGKILL; then removes its folder when provium's record says it is the lab's. */
export async function stopVm(inv: Invocation): Promise<void> {
  const { dir, socket } = inv.vmStop!;
  const v = vmTree(dir);
  const pid = livePid(`${dir}/qemu.pid`, socket);
  if (pid !== undefined) {
    try {
      const q = await QmpClient.connect(socket, 2000);
      await q.execute('quit', undefined, 2000).catch(() => undefined);
      q.close();
    } catch {
      /* unresponsive: signals below */
    }
    if (!(await waitGone([pid], 3000)) && !(await terminate([pid], 3000))) {
      throw new ProviumError(`VM ${inv.vmStop!.node} (pid ${pid}) did not end after SIGKILL`);
    }
  }
  if (vmFolder(v.fs, v.parent, v.lab, v.node).ours) v.fs.removeTree(v.rel);
}

/** Where runQmp reaches a VM and its record: this machine by default; a remote host over SSH. */
export interface QmpIo {
  connect(socket: string, timeoutMs: number): Promise<QmpClient>;
  readRecord(dir: string): Promise<VmState>;
  writeRecord(dir: string, rec: VmState): Promise<void>;
}

/** Runs QMP steps over one connection, updating the VM's record after each one that succeeds. */
export async function runQmp(inv: Invocation, io?: QmpIo): Promise<void> {
  const { dir, socket, steps } = inv.qmp!;
  const v = io ? undefined : vmTree(dir);
  const q = io ? await io.connect(socket, 3000) : await QmpClient.connect(socket, 3000);
  try {
    for (const st of steps) {
      try {
        await q.execute(st.execute, st.arguments, 5000);
      } catch (e) {
        if (e instanceof QmpError) throw new ProviumError(`QMP ${st.execute} on VM ${inv.qmp!.node} failed: ${e.errorClass}: ${e.desc}`);
        throw e;
      }
      if (st.awaitDeleted) {
        const t0 = Date.now();
        while (!q.events.some((ev) => ev.event === 'DEVICE_DELETED' && (ev.data as { device?: string } | undefined)?.device === st.awaitDeleted)) {
          if (Date.now() - t0 > 10_000) throw new ProviumError(`VM ${inv.qmp!.node}: the guest did not release ${st.awaitDeleted} within 10 s (PCI hot-unplug needs guest support)`);
          await sleep(25);
        }
      }
      if (st.record) {
        const rec = io ? await io.readRecord(dir) : vmFolder(v!.fs, v!.parent, v!.lab, v!.node).record;
        if (!rec) throw new ProviumError(`VM ${inv.qmp!.node}: provium's record ${v!.fs.path(`${v!.rel}/vm.json`)} is missing or damaged, so the link state QEMU was told cannot be recorded`, `run provium apply --replace node.${inv.qmp!.node} to restart the VM with a fresh record`);
        if (st.record.op === 'nic-add') {
          rec.nics[st.record.nic.tap] = st.record.nic;
          rec.links[st.record.nic.tap] = 'up';
        } else if (st.record.op === 'nic-del') {
          delete rec.nics[st.record.tap];
          delete rec.links[st.record.tap];
        } else rec.links[st.record.tap] = st.record.link;
        if (io) await io.writeRecord(dir, rec);
        else writeRecord(v!.fs, v!.rel, rec);
      }
    }
  } finally {
    q.close();
  }
}
