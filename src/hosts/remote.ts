/**
 * What provium does on a host besides ip/tc/nft/bridge commands, done through that host's
 * Runner (over SSH for a remote host), with nothing of provium installed there: a few
 * FIXED POSIX sh scripts (constants below; never assembled from input), run as
 * `sh -c SCRIPT sh ARG...`, every argument quoted by the SSH runner's one quoting
 * function, file contents on stdin. They need only sh, coreutils, findutils and
 * iproute2 (`ip netns pids`).
 *
 * - snapshot: one round trip that reads what observe reads from files (namespaces in
 *   /run/netns, kernel modules and config, the lab's state folder, /etc/netns, pidfiles'
 *   /proc entries), never following symlinks; answers a SyncFs.
 * - writes: atomic (a temporary file in the same folder, then rename), mode 0600 in 0700
 *   folders, refused when a folder on the path is a symlink; removes; process ends;
 *   VM state folders; the lab lock.
 */
import type { Runner } from '../host/runner.js';
import type { SyncFs } from '../host/fs.js';
import type { VmState } from '../model/state.js';
import type { Invocation } from '../plan/types.js';
import type { InvocationActions } from '../apply/index.js';
import { runQmp, type QmpIo } from '../apply/vm.js';
import { QmpClient } from '../host/qmp.js';
import { ProviumError } from '../model/diagnostics.js';

/** One snapshot request: E exists, F read a file, L list a folder, T a folder tree (3 levels; files but *.log; pidfiles' /proc entries). "%R" in a path is the kernel release. */
export type SnapOp = ['E' | 'F' | 'L' | 'T', string];

const SNAPSHOT = `
set -u
rel=$(uname -r)
printf 'R %s\\n' "$rel"
# F-type answer: "<tag> <key> <base64 content>" for a regular file that is not a symlink.
emitf() {
  [ -f "$3" ] && [ ! -L "$3" ] || return 0
  printf '%s %s ' "$1" "$2"; base64 -w0 < "$3" 2>/dev/null; printf '\\n'
  case $3 in *.pid)
    pid=$(tr -dc 0-9 < "$3" 2>/dev/null)
    if [ -n "$pid" ]; then for x in stat cmdline; do [ -r "/proc/$pid/$x" ] && emitf PF "/proc/$pid/$x" "/proc/$pid/$x"; done; fi;;
  esac
  return 0
}
i=0
while [ $# -ge 2 ]; do
  op=$1; p=$2; shift 2
  case $p in *%R*) p=$(printf %s "$p" | sed "s|%R|$rel|g");; esac
  case $op in
    E) if [ -e "$p" ] || [ -L "$p" ]; then echo "E $i 1"; else echo "E $i 0"; fi ;;
    F) emitf F "$i" "$p" ;;
    L) if [ -d "$p" ] && [ ! -L "$p" ]; then printf 'L %s ' "$i"; find "$p" -mindepth 1 -maxdepth 1 -printf '%f\\0' | base64 -w0; printf '\\n'; fi ;;
    T) if [ -d "$p" ] && [ ! -L "$p" ]; then
         echo "TD $i ."
         find "$p" -mindepth 1 -maxdepth 3 \\( -type d -printf "TD $i %P\\n" \\) -o \\( -type s -printf "TS $i %P\\n" \\)
         set -f; IFS='
'
         for f in $(find "$p" -mindepth 1 -maxdepth 3 -type f ! -name '*.log' -printf '%P\\n'); do emitf TF "$i $f" "$p/$f"; done
         set +f; unset IFS
       fi ;;
  esac
  i=$((i+1))
done
`;

/** Atomic write of stdin to $1 (mode 0600, folders 0700); refused when a folder on the path is a symlink. */
const WRITE = `
set -eu
p=$1; d=$(dirname -- "$p")
q=$d
while [ "$q" != / ] && [ "$q" != . ]; do
  if [ -L "$q" ]; then echo "refusing to write $p: $q is a symbolic link" >&2; exit 41; fi
  q=$(dirname -- "$q")
done
umask 077
mkdir -p -- "$d"
t=$(mktemp -- "$d/.pv-XXXXXX")
cat > "$t"
mv -f -- "$t" "$p"
`;

/** Creates $1 empty (0600, folders 0700) when it does not exist; refused under a symlinked folder. */
const ENSURE = `
set -eu
[ -e "$1" ] && exit 0
d=$(dirname -- "$1"); q=$d
while [ "$q" != / ] && [ "$q" != . ]; do
  if [ -L "$q" ]; then echo "refusing to create $1: $q is a symbolic link" >&2; exit 41; fi
  q=$(dirname -- "$q")
done
umask 077; mkdir -p -- "$d"; : > "$1"
`;

/** Removes the files before "--", then the folders after it when empty. */
const REMOVE = `
f=1
for a; do
  if [ "$a" = -- ]; then f=0; continue; fi
  if [ $f = 1 ]; then rm -f -- "$a"; else rmdir -- "$a" 2>/dev/null || true; fi
done
`;

/** Ends the process of pidfile $1 if its command line contains $2: SIGTERM, then SIGKILL after ~2 s. */
const STOP_PIDFILE = `
pid=$(tr -dc 0-9 < "$1" 2>/dev/null) || exit 0
[ -n "$pid" ] || exit 0
tr '\\0' ' ' < /proc/$pid/cmdline 2>/dev/null | grep -qF -- "$2" || exit 0
kill -TERM "$pid" 2>/dev/null || exit 0
i=0; while [ -e /proc/$pid ] && ! grep -q '^[0-9]* ([^)]*) Z' /proc/$pid/stat 2>/dev/null && [ $i -lt 30 ]; do sleep 0.1; i=$((i+1)); done
kill -KILL "$pid" 2>/dev/null || true
`;

/** Ends every process in the named network namespaces (SIGTERM, then SIGKILL after ~2 s); prints their pids. */
const END_NETNS = `
pids=$(for ns; do ip netns pids "$ns" 2>/dev/null; done)
[ -n "$pids" ] || exit 0
echo $pids
kill -TERM $pids 2>/dev/null
i=0; while [ $i -lt 20 ]; do left=; for p in $pids; do [ -e /proc/$p ] && left=1; done; [ -z "$left" ] && exit 0; sleep 0.1; i=$((i+1)); done
kill -KILL $pids 2>/dev/null
exit 0
`;

/** A VM's folder $1 before launch: made 0700, old socket/pidfile/console removed, stdin written to vm.json. */
const VM_PREPARE = `
set -eu
d=$1
if [ -L "$d" ]; then echo "refusing: $d is a symbolic link" >&2; exit 41; fi
umask 077
mkdir -p -- "$d"; chmod 700 -- "$d"
rm -f -- "$d/qmp.sock" "$d/qemu.pid" "$d/console.log"
cat > "$d/.vm.json.tmp"; mv -f -- "$d/.vm.json.tmp" "$d/vm.json"
`;

/** Ends the VM of folder $1 (its qemu names socket $2): SIGTERM, SIGKILL after ~3 s; then removes the folder. */
const VM_STOP = `
d=$1
pid=$(tr -dc 0-9 < "$d/qemu.pid" 2>/dev/null)
if [ -n "$pid" ] && tr '\\0' ' ' < /proc/$pid/cmdline 2>/dev/null | grep -qF -- "$2"; then
  kill -TERM "$pid" 2>/dev/null
  i=0; while [ -e /proc/$pid ] && [ $i -lt 30 ]; do sleep 0.1; i=$((i+1)); done
  kill -KILL "$pid" 2>/dev/null
  i=0; while [ -e /proc/$pid ] && [ $i -lt 30 ]; do sleep 0.1; i=$((i+1)); done
fi
[ -L "$d" ] || rm -rf -- "$d"
`;

/** Takes lock file $1 (O_EXCL through noclobber) with content $2: prints "taken", or "held" and the holder's line. */
const LOCK = `
set -u
umask 077
mkdir -p -- "$(dirname -- "$1")"
set -C
if printf '%s\\n' "$2" > "$1" 2>/dev/null; then echo taken; else echo held; cat -- "$1" 2>/dev/null; fi
`;

/** Removes lock file $1 when it still holds $2. */
const UNLOCK = `
[ "$(cat -- "$1" 2>/dev/null)" = "$2" ] && rm -f -- "$1"
exit 0
`;

/** Runs one of the fixed scripts on the host. */
function sh(runner: Runner, script: string, args: string[], opts: { stdin?: string; allowFail?: boolean; timeoutMs?: number } = {}) {
  return runner.run(['sh', '-c', script, 'sh', ...args], opts);
}

/** A SyncFs over a snapshot's answers. */
export class SnapshotFs implements SyncFs {
  release = '';
  readonly files = new Map<string, Buffer>();
  readonly dirs = new Set<string>();
  readonly present = new Map<string, boolean>();
  readonly lists = new Map<string, string[]>();

  /** Parses the SNAPSHOT script's output for `ops` (answers refer to ops by index; tree entries are relative to their op's folder). */
  static parse(out: string, ops: SnapOp[]): SnapshotFs {
    const s = new SnapshotFs();
    const dec = (x: string | undefined) => Buffer.from(x ?? '', 'base64');
    const path = (i: string) => ops[Number(i)]?.[1].replace(/%R/g, s.release) ?? '';
    const under = (i: string, rel: string) => (rel === '.' ? path(i) : `${path(i)}/${rel}`);
    for (const line of out.split('\n')) {
      const f = line.split(' ');
      const tag = f[0];
      if (tag === 'R') s.release = f[1] ?? '';
      else if (tag === 'E') s.present.set(path(f[1]), f[2] === '1');
      else if (tag === 'F') s.files.set(path(f[1]), dec(f[2]));
      else if (tag === 'L') s.lists.set(path(f[1]), dec(f[2]).toString('utf8').split('\0').filter(Boolean));
      else if (tag === 'TD') s.dirs.add(under(f[1], f.slice(2).join(' ')));
      else if (tag === 'TS') s.present.set(under(f[1], f.slice(2).join(' ')), true);
      else if (tag === 'TF') s.files.set(under(f[1], f.slice(2, -1).join(' ')), dec(f[f.length - 1]));
      else if (tag === 'PF') s.files.set(f[1], dec(f[2]));
    }
    return s;
  }

  readText(p: string): string | undefined {
    return this.files.get(p)?.toString('utf8');
  }
  readBytes(p: string): Buffer | undefined {
    return this.files.get(p);
  }
  list(dir: string): string[] | undefined {
    const l = this.lists.get(dir);
    if (l) return l;
    if (!this.dirs.has(dir)) return undefined;
    const kids = new Set<string>();
    const add = (p: string) => {
      if (p.startsWith(`${dir}/`) && !p.slice(dir.length + 1).includes('/')) kids.add(p.slice(dir.length + 1));
    };
    for (const p of this.files.keys()) add(p);
    for (const p of this.dirs) add(p);
    for (const [p, e] of this.present) if (e) add(p);
    return [...kids].sort();
  }
  exists(p: string): boolean {
    return this.present.get(p) ?? (this.files.has(p) || this.dirs.has(p) || (this.lists.has(p)));
  }
}

/** Reads the requested paths on the host in one round trip. Throws CommandError when the script fails. */
export async function snapshot(runner: Runner, ops: SnapOp[]): Promise<SnapshotFs> {
  const r = await sh(runner, SNAPSHOT, ops.flat(), { timeoutMs: 30_000 });
  return SnapshotFs.parse(r.stdout, ops);
}

/** Writes a file atomically on the host (see WRITE). */
export async function writeFile(runner: Runner, path: string, content: string): Promise<void> {
  await sh(runner, WRITE, [path], { stdin: content });
}

/** Removes files and then empty folders on the host. */
export async function removeFiles(runner: Runner, files: string[], dirs: string[] = []): Promise<void> {
  await sh(runner, REMOVE, [...files, '--', ...dirs]);
}

/** Ends every process in these network namespaces on the host; returns their pids. */
export async function endProcessesIn(runner: Runner, namespaces: string[]): Promise<number[]> {
  if (namespaces.length === 0) return [];
  const r = await sh(runner, END_NETNS, namespaces, { allowFail: true, timeoutMs: 15_000 });
  return r.stdout.split(/\s+/).filter(Boolean).map(Number);
}

/** Holder information of a lab lock (as the local lock writes it). */
export interface LockHolder {
  pid: number;
  command: string;
  host: string;
  since: string;
}

/** Takes a lock file on the host; returns undefined when taken, else the holder found there. */
export async function takeLock(runner: Runner, path: string, me: LockHolder): Promise<LockHolder | undefined> {
  const r = await sh(runner, LOCK, [path, JSON.stringify(me)]);
  const [state, line] = r.stdout.split('\n');
  if (state === 'taken') return undefined;
  try {
    return JSON.parse(line) as LockHolder;
  } catch {
    return { pid: 0, command: 'unknown', host: 'unknown', since: '' };
  }
}

/** Removes the lock file when it is still ours. */
export async function releaseLock(runner: Runner, path: string, me: LockHolder): Promise<void> {
  await sh(runner, UNLOCK, [path, JSON.stringify(me)], { allowFail: true });
}

/** Something that opens a QMP connection to a VM socket on the host (SSH: through a forward). */
export type QmpConnector = (socket: string, timeoutMs: number) => Promise<QmpClient>;

/** QMP IO for runQmp on the host: QMP through `connect`, the VM's record read and written over the runner. */
export function remoteQmpIo(runner: Runner, connect: QmpConnector): QmpIo {
  return {
    connect,
    readRecord: async (dir) => JSON.parse((await runner.run(['cat', '--', `${dir}/vm.json`])).stdout) as VmState,
    writeRecord: async (dir, rec) => writeFile(runner, `${dir}/vm.json`, JSON.stringify(rec, null, 2) + '\n'),
  };
}

/** The non-command invocations of a plan, done on the host through its runner (see InvocationActions). */
export function remoteActions(runner: Runner, connect: QmpConnector): InvocationActions {
  return {
    writeFiles: async (files) => {
      for (const f of files) {
        if (f.content !== undefined) await writeFile(runner, f.path, f.content);
        else await sh(runner, ENSURE, [f.path]);
      }
    },
    removeFiles: (files, dirs) => removeFiles(runner, files, dirs),
    stopPidfile: async (pidfile, match) => {
      await sh(runner, STOP_PIDFILE, [pidfile, match], { allowFail: true, timeoutMs: 15_000 });
    },
    startVm: async (inv: Invocation) => {
      const { dir, record } = inv.vmStart!;
      await sh(runner, VM_PREPARE, [dir], { stdin: JSON.stringify({ ...record, pid: undefined }, null, 2) + '\n' });
      // qemu -daemonize creates the QMP socket, pidfile and console with umask 077.
      await runner.run(['sh', '-c', 'umask 077; exec "$@"', 'sh', ...inv.argv], { timeoutMs: 30_000 });
      await runner.run(['chmod', '600', '--', `${dir}/qmp.sock`]);
    },
    stopVm: async (inv: Invocation) => {
      const { dir, socket } = inv.vmStop!;
      const r = await sh(runner, VM_STOP, [dir, socket], { allowFail: true, timeoutMs: 20_000 });
      if (r.exitCode !== 0) throw new ProviumError(`VM ${inv.vmStop!.node}: could not stop it: ${r.stderr.trim()}`);
    },
    runQmp: (inv: Invocation) => runQmp(inv, remoteQmpIo(runner, connect)),
  };
}
