/**
 * Runs the VM actions of a plan: start (prepare the state directory, mode 0700,
 * then qemu -daemonize via the runner; socket made 0600), stop (QMP quit, then
 * SIGTERM, then SIGKILL, each bounded; then remove the VM's files) and QMP steps
 * (hotplug, unplug, set_link, cont), keeping the VM's record (vm.json) in step
 * with what QEMU was told, since QEMU cannot report link state back.
 */
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { VmState } from '../model/state.js';
import type { Invocation } from '../plan/types.js';
import type { Runner } from '../host/runner.js';
import { QmpClient, QmpError } from '../host/qmp.js';
import { ProviumError } from '../model/diagnostics.js';
import { livePid, terminate, waitGone } from '../host/proc.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function writeRecord(dir: string, rec: VmState): void {
  writeFileSync(`${dir}/vm.json`, JSON.stringify(rec, null, 2) + '\n', { mode: 0o600 });
}

export async function startVm(inv: Invocation, runner: Runner): Promise<void> {
  const { dir, record } = inv.vmStart!;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  for (const f of ['qmp.sock', 'qemu.pid', 'console.log']) rmSync(`${dir}/${f}`, { force: true });
  writeRecord(dir, { ...record, pid: undefined });
  const old = process.umask(0o077);
  try {
    await runner.run(inv.argv, { timeoutMs: 30_000 });
  } finally {
    process.umask(old);
  }
  chmodSync(`${dir}/qmp.sock`, 0o600);
}

/** Ends a VM: QMP quit (2 s), SIGTERM (3 s), SIGKILL; then removes its directory. */
export async function stopVm(inv: Invocation): Promise<void> {
  const { dir, socket } = inv.vmStop!;
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
  rmSync(dir, { recursive: true, force: true });
}

/** Where runQmp reaches a VM and its record: this machine by default; a remote host over SSH. */
export interface QmpIo {
  connect(socket: string, timeoutMs: number): Promise<QmpClient>;
  readRecord(dir: string): Promise<VmState>;
  writeRecord(dir: string, rec: VmState): Promise<void>;
}

const localQmpIo: QmpIo = {
  connect: (socket, ms) => QmpClient.connect(socket, ms),
  readRecord: async (dir) => JSON.parse(readFileSync(`${dir}/vm.json`, 'utf8')) as VmState,
  writeRecord: async (dir, rec) => writeRecord(dir, rec),
};

/** Runs QMP steps over one connection, updating the VM's record after each one that succeeds. */
export async function runQmp(inv: Invocation, io: QmpIo = localQmpIo): Promise<void> {
  const { dir, socket, steps } = inv.qmp!;
  const q = await io.connect(socket, 3000);
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
        const rec = await io.readRecord(dir);
        if (st.record.op === 'nic-add') {
          rec.nics[st.record.nic.tap] = st.record.nic;
          rec.links[st.record.nic.tap] = 'up';
        } else if (st.record.op === 'nic-del') {
          delete rec.nics[st.record.tap];
          delete rec.links[st.record.tap];
        } else rec.links[st.record.tap] = st.record.link;
        await io.writeRecord(dir, rec);
      }
    }
  } finally {
    q.close();
  }
}
