/**
 * The hosts of a multi-host lab as provium reaches them: the local one (this machine,
 * with --netns when given) through the local runner, the others through one SSH
 * connection each (SshRunner). Each LabHost gives the single-host engine what it needs
 * there: a Runner, a HostContext (host namespace, the lab's state folder on that host,
 * the placement name that marks node namespaces), observe's file view, the actions for
 * files/processes/VMs, a QMP connector, the lock, and the lab record.
 */
import { hostname } from 'node:os';
import { HostRunner, type Runner } from '../host/runner.js';
import { localFs, type SyncFs } from '../host/fs.js';
import { QmpClient } from '../host/qmp.js';
import { processAlive } from '../host/proc.js';
import type { HostSpec, Topology } from '../model/topology.js';
import type { HostContext } from '../plan/commands.js';
import { realFiles, kvmUsable, listNetns, type HostFiles, type Wanted } from '../observe/index.js';
import { detectFeature, FEATURE_SPECS, kernelProbePaths } from '../observe/features.js';
import { observeServices } from '../observe/services.js';
import { observeVms } from '../observe/vms.js';
import { localActions, endProcessesIn as localEndProcesses, type InvocationActions } from '../apply/index.js';
import { stateRoot, type LabRecord } from '../apply/statedir.js';
import { ProviumError } from '../model/diagnostics.js';
import { SshRunner } from './ssh.js';
import { endProcessesIn, releaseLock, remoteActions, snapshot, takeLock, writeFile, removeFiles, type LockHolder, type QmpConnector, type SnapOp } from './remote.js';

/** One host of the lab, connected. */
export interface LabHost {
  name: string;
  spec: HostSpec;
  runner: Runner;
  /** Context for the engine on this host (hostNetns, stateDir = <root>/<lab>, placement = name). */
  ctx: HostContext;
  /** The host's state folder (its lock is <root>/<lab>.lock). */
  root: string;
  /** Observe's file view of this host, for a topology's wanted names (one SSH round trip for a remote host). */
  files(wanted: Wanted): Promise<{ files: HostFiles; record: LabRecord }>;
  actions: InvocationActions;
  connectQmp: QmpConnector;
  /** Ends processes in namespaces about to be deleted; reports them. */
  endProcesses(namespaces: string[], report?: (ns: string, pids: number[]) => void): Promise<void>;
  writeFile(path: string, content: string): Promise<void>;
  removeFiles(files: string[], dirs: string[]): Promise<void>;
  close(): Promise<void>;
}

/** Paths the snapshot of a remote host reads for observe (features, KVM, binaries, state folder, /etc/netns). */
function snapOps(ctx: HostContext, wanted: Wanted): SnapOp[] {
  const k = kernelProbePaths(FEATURE_SPECS, '%R');
  const bins = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'].flatMap((d) => [`${d}/qemu-system-x86_64`, `${d}/dnsmasq`]);
  return [
    ['L', '/run/netns'],
    ...k.exists.map((p): SnapOp => ['E', p]),
    ['F', '/proc/config.gz'], ['F', '/boot/config-%R'],
    ...k.list.map((p): SnapOp => ['L', p]),
    ['E', '/dev/kvm'], ['E', '/sys/module/kvm_intel'], ['E', '/sys/module/kvm_amd'],
    ...bins.map((p): SnapOp => ['E', p]),
    ...(wanted.files ?? []).map((p): SnapOp => ['E', p]),
    ['T', ctx.stateDir!],
    ['T', '/etc/netns'],
  ];
}

function readRecord(fs: SyncFs, stateDir: string): LabRecord {
  try {
    return JSON.parse(fs.readText(`${stateDir}/state.json`) ?? '{}') as LabRecord;
  } catch {
    return {};
  }
}

/** Observe's HostFiles over a host's file view; QMP through `connect`. PATH lookups use the usual system folders. */
function filesOver(fs: SyncFs, release: string, connect: QmpConnector): HostFiles {
  return {
    listNetns: () => fs.list('/run/netns') ?? [],
    detectFeature: (f) => detectFeature(f, fs, release),
    kvmUsable: () => fs.exists('/dev/kvm') && (fs.exists('/sys/module/kvm_intel') || fs.exists('/sys/module/kvm_amd')),
    observeVms: (ctx) => observeVms(ctx, { fs, connect }),
    exists: (p) => fs.exists(p),
    observeServices: (stateDir, lab, wantedResolv, _fs, host) => observeServices(stateDir, lab, wantedResolv, fs, host),
    pendingNetns: (ctx) => {
      try {
        const j = JSON.parse(fs.readText(`${ctx.stateDir}/pending-netns.json`) ?? '[]') as unknown;
        return new Set(Array.isArray(j) ? j.filter((x): x is string => typeof x === 'string') : []);
      } catch {
        return new Set();
      }
    },
    vmFolderConflicts: () => [],
  };
}

const me = (command: string): LockHolder => ({ pid: process.pid, command, host: hostname(), since: new Date().toISOString() });

/**
 * Connects every host of the lab in parallel (SSH masters). Throws ProviumError naming
 * each unreachable host; then no host was changed. `hostNetns`: --netns, for the local host.
 */
export async function openHosts(t: Topology, hostNetns?: string): Promise<LabHost[]> {
  const specs = Object.values(t.hosts ?? {}).sort((a, b) => (a.name < b.name ? -1 : 1));
  const made = specs.map((spec) => (spec.local ? localHost(t, spec, hostNetns) : sshHost(t, spec)));
  const results = await Promise.allSettled(made.map((h) => h.connect()));
  const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [{ name: specs[i].name, e: r.reason as Error }] : []));
  if (failed.length) {
    await Promise.all(made.map((h) => h.host.close()));
    throw new ProviumError(failed.map((f) => f.e.message).join('\n'), 'nothing was changed on any host');
  }
  return made.map((h) => h.host);
}

/** Closes every host's connection. */
export async function closeHosts(hosts: LabHost[]): Promise<void> {
  await Promise.all(hosts.map((h) => h.close()));
}

function localHost(t: Topology, spec: HostSpec, hostNetns?: string): { host: LabHost; connect: () => Promise<void> } {
  const runner = new HostRunner();
  // This machine's state directory is where its safe trees are (apply/statedir.ts): the
  // local host's state_dir, when given, becomes it for this run.
  if (spec.stateDir) process.env.PROVIUM_STATE_DIR = spec.stateDir;
  const root = stateRoot();
  const ctx: HostContext = { hostNetns, stateDir: `${root}/${t.lab}`, placement: spec.name };
  const connect: QmpConnector = (socket, ms) => QmpClient.connect(socket, ms);
  const host: LabHost = {
    name: spec.name, spec, runner, ctx, root,
    files: async () => ({ files: { ...realFiles, listNetns, kvmUsable }, record: readRecord(localFs, ctx.stateDir!) }),
    actions: localActions,
    connectQmp: connect,
    endProcesses: (ns, report) => localEndProcesses(ns, runner, report),
    writeFile: (path, content) => writeFile(runner, path, content),
    removeFiles: (files, dirs) => removeFiles(runner, files, dirs),
    close: async () => {},
  };
  return { host, connect: async () => {} };
}

function sshHost(t: Topology, spec: HostSpec): { host: LabHost; connect: () => Promise<void> } {
  const runner = new SshRunner(spec.name, { destination: spec.ssh!, port: spec.port, identity: spec.identity, sshConfig: spec.sshConfig });
  const root = spec.stateDir ?? '/var/lib/provium';
  const ctx: HostContext = { stateDir: `${root}/${t.lab}`, placement: spec.name };
  const connect: QmpConnector = async (socket, ms) => {
    const fwd = await runner.forwardUnix(socket);
    try {
      const q = await QmpClient.connect(fwd.local, ms);
      const close = q.close.bind(q);
      q.close = () => {
        close();
        void fwd.close();
      };
      return q;
    } catch (e) {
      await fwd.close();
      throw e;
    }
  };
  const host: LabHost = {
    name: spec.name, spec, runner, ctx, root,
    files: async (wanted) => {
      const snap = await snapshot(runner, snapOps(ctx, wanted));
      return { files: filesOver(snap, snap.release, connect), record: readRecord(snap, ctx.stateDir!) };
    },
    actions: remoteActions(runner, connect),
    connectQmp: connect,
    endProcesses: async (ns, report) => {
      const pids = await endProcessesIn(runner, ns);
      if (pids.length) report?.(ns.join(', '), pids);
    },
    writeFile: (path, content) => writeFile(runner, path, content),
    removeFiles: (files, dirs) => removeFiles(runner, files, dirs),
    close: () => runner.close(),
  };
  return { host, connect: () => runner.connect() };
}

/**
 * Takes the lab's lock on every host (in host-name order). A lock held by a live process
 * fails naming the host and the holder; one left by a dead process of this machine is
 * taken over. Returns the function that releases them all.
 */
export async function lockHosts(hosts: LabHost[], lab: string, command: string, warn: (m: string) => void = () => {}): Promise<() => Promise<void>> {
  const mine = me(command);
  const taken: LabHost[] = [];
  const release = async () => {
    await Promise.all(taken.map((h) => releaseLock(h.runner, `${h.root}/${lab}.lock`, mine)));
  };
  try {
    for (const h of hosts) {
      const path = `${h.root}/${lab}.lock`;
      let held = await takeLock(h.runner, path, mine);
      if (held && held.host === hostname() && !processAlive(held.pid)) {
        warn(`host ${h.name}: removing stale lock ${path} of pid ${held.pid} (${held.command}), which is no longer running`);
        await h.removeFiles([path], []);
        held = await takeLock(h.runner, path, mine);
      }
      if (held) throw new ProviumError(`lab ${lab} is locked on host ${h.name} by pid ${held.pid} on ${held.host} (${held.command}, since ${held.since})`, `wait for it to finish; the lock is ${path} on host ${h.name}`);
      taken.push(h);
    }
  } catch (e) {
    await release();
    throw e;
  }
  return release;
}
