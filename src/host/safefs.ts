/**
 * Safe file access under a folder tree provium owns: the state directory
 * ($PROVIUM_STATE_DIR, default /var/lib/provium) and /etc/netns (files that
 * `ip netns exec` binds into node namespaces). provium runs as root, so a folder
 * another user can write, or a symbolic link planted in one, would make it write,
 * chmod or delete files outside the tree. Rules, checked on every call:
 *
 * - The root's ancestors (after realpath) are folders owned by root (or the user
 *   provium runs as) and not writable by group/others unless sticky (like /tmp):
 *   OpenSSH's StrictModes rule for the folders above a trusted file.
 * - The root and every folder under it is a real folder (never a symbolic link),
 *   owned by the user provium runs as (root), and not writable by group/others.
 *   Folders provium creates get `dirMode` (0700; 0755 for trees every user must
 *   read, such as /etc/netns). Anything else is refused with the path and the fix.
 * - Each path is walked one component at a time with lstat; files are opened with
 *   O_NOFOLLOW (and O_NONBLOCK, so a FIFO never blocks), must be regular files, and
 *   are written atomically: a temporary file in the same folder created with
 *   O_CREAT|O_EXCL|O_NOFOLLOW, written, fsynced, then renamed over the name (a
 *   rename replaces a symbolic link, it never writes through one), then the folder
 *   is fsynced (both fsyncs are skipped in a tree made with `durable: false`: still
 *   atomic, not durable). Removals use lstat and unlink (never following a link).
 *
 * Paths given to the methods are relative to the root ("lab/state.json"): no "..",
 * no ".", no empty component. The interface is small on purpose: a remote
 * implementation (over SSH) needs only these operations.
 */
import { constants as C, closeSync, fchmodSync, fstatSync, fsyncSync, linkSync, lstatSync, mkdirSync, openSync, readdirSync, readSync, realpathSync, renameSync, rmdirSync, unlinkSync, writeSync, type Stats } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join, sep } from 'node:path';
import { ProviumError } from '../model/diagnostics.js';

/** A path under (or above) a provium tree that provium must not use: names the path and the fix. */
export class UnsafePathError extends ProviumError {
  constructor(public readonly path: string, problem: string, fix: string) {
    super(`${path} ${problem}`, fix);
    this.name = 'UnsafePathError';
  }
}

/** What SafeFs.readFolder returns: the folder's lstat and the files asked for that are there. */
export interface FolderRead {
  dir: Stats;
  files: Map<string, { text: string; st: Stats }>;
}

/** What provium does with a tree it owns. Paths are relative to the root; see the module comment for the rules. */
export interface SafeFs {
  /** Absolute path of the root. */
  readonly root: string;
  /** Absolute path of rel (validated; nothing is touched). */
  path(rel: string): string;
  /** Whether rel exists (as anything; never followed). False when the root is absent. */
  exists(rel: string): boolean;
  /** Makes sure folder rel and every folder above it up to the root exist and are safe; returns its absolute path. */
  ensureDir(rel: string): string;
  /** The text of regular file rel (at most maxBytes), or undefined when it (or the root) does not exist. */
  read(rel: string, maxBytes?: number, onStat?: (st: Stats) => void): string | undefined;
  /** Writes file rel atomically with `mode` (default: the tree's file mode), creating its folders. */
  write(rel: string, content: string, mode?: number): void;
  /** Creates rel with `content` only if no entry of that name exists (atomic: a complete file or none). False when one exists. */
  createExclusive(rel: string, content: string, mode?: number): boolean;
  /**
   * Makes sure rel is a regular file made by provium (owned by us, one link), for a
   * program that opens it by name (dnsmasq's log and lease file): kept when it is
   * one, else the entry is removed and an empty file created.
   */
  ensureFile(rel: string, mode?: number): void;
  /** Removes the entry rel (a file, a socket or a symbolic link, never followed); absent is fine. Refuses a folder. */
  remove(rel: string): void;
  /** Removes folder rel when it is empty; true when it is gone. */
  removeDirIfEmpty(rel: string): boolean;
  /** Removes folder rel and everything in it, never following a symbolic link; absent is fine. */
  removeTree(rel: string): void;
  /** Names in folder rel (sorted); [] when it does not exist. */
  list(rel: string): string[];
  /** lstat of rel, undefined when absent. */
  lstat(rel: string): Stats | undefined;
  /**
   * Folder rel at once: its lstat, and the text and stat of those of `names` that are in
   * it (regular files owned by us, at most maxBytes each), through one check of the root
   * and one walk (what lstat and read do one by one). Undefined
   * when the folder (or the root) does not exist; throws UnsafePathError where they would.
   */
  readFolder(rel: string, names: string[], maxBytes?: number): FolderRead | undefined;
  /** Renames entry `from` to `to` (both in the tree; never follows). */
  rename(from: string, to: string): void;
}

/** Options of a local tree. */
export interface LocalTreeOptions {
  /** Mode of the folders provium creates (and, with `readable`, the least an existing one of ours gets). */
  dirMode: number;
  /** Default mode of files written. */
  fileMode: number;
  /** Every user must read this tree (/etc/netns: name resolution inside nodes): folders of ours without r-x for group/others get it. */
  readable?: boolean;
  /** How to name the tree in messages, e.g. "state directory". */
  what: string;
  /** How the user chooses the root, for hints, e.g. "PROVIUM_STATE_DIR". */
  chosenBy?: string;
  /**
   * false: writes stay atomic (temporary file renamed over the name) but are not fsynced.
   * For files provium derives from the topology and rewrites when they differ (/etc/netns:
   * hosts, resolv.conf), where a write lost in a crash is drift the next apply repairs;
   * two fsyncs per file cost ~1 ms each here (a 200-node lab's hosts files: ~0.2-0.3 s).
   * Default true (the state directory).
   */
  durable?: boolean;
}

const DEFAULT_MAX = 64 * 1024 * 1024;
const S_ISVTX = 0o1000;

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException)?.code;
}

function octal(mode: number): string {
  return `0${(mode & 0o7777).toString(8).padStart(3, '0')}`;
}

/** The user provium runs as (root in production; the test user in unit tests); asked once per process. */
function me(): number {
  return (euid ??= process.geteuid?.() ?? 0);
}
let euid: number | undefined;

/** A SafeFs on this machine's file system. */
export class LocalSafeFs implements SafeFs {
  readonly root: string;
  /**
   * The root's ancestors passed checkAncestors: they are then folders only root (or we)
   * can change, so the check is not repeated for this object (one observation reads
   * hundreds of files through one SafeFs; each check is a realpath and an lstat per level).
   */
  private ancestorsChecked = false;

  constructor(root: string, private readonly o: LocalTreeOptions) {
    if (!root.startsWith('/')) throw new ProviumError(`${o.what}: ${JSON.stringify(root)} is not an absolute path`, o.chosenBy ? `set ${o.chosenBy} to an absolute path` : undefined);
    this.root = root.length > 1 ? root.replace(/\/+$/, '') : root;
  }

  path(rel: string): string {
    return rel === '' ? this.root : join(this.root, ...this.parts(rel));
  }

  exists(rel: string): boolean {
    if (!this.checkRoot(false)) return false;
    try {
      this.walk(this.parts(rel).slice(0, -1), false);
      return this.lstatAbs(this.path(rel)) !== undefined;
    } catch (e) {
      if (e instanceof Absent) return false;
      throw e;
    }
  }

  ensureDir(rel: string): string {
    const parts = this.parts(rel);
    // A concurrent provium may remove the (empty) root or a folder between our steps: start over.
    for (let attempt = 0; ; attempt++) {
      try {
        this.checkRoot(true);
        return this.walk(parts, true);
      } catch (e) {
        if (!(e instanceof Absent) || attempt >= 20) throw e instanceof Absent ? new ProviumError(`${this.path(rel)} keeps disappearing while provium creates it`) : e;
      }
    }
  }

  read(rel: string, maxBytes = DEFAULT_MAX, onStat?: (st: Stats) => void): string | undefined {
    const parts = this.parts(rel);
    if (!this.checkRoot(false)) return undefined;
    try {
      this.walk(parts.slice(0, -1), false);
    } catch (e) {
      if (e instanceof Absent) return undefined;
      throw e;
    }
    const r = this.readAbs(this.path(rel), maxBytes);
    if (r) onStat?.(r.st);
    return r?.text;
  }

  readFolder(rel: string, names: string[], maxBytes = DEFAULT_MAX): FolderRead | undefined {
    if (!this.checkRoot(false)) return undefined;
    const parts = this.parts(rel);
    let cur = this.root;
    let dir = parts.length === 0 ? this.lstatAbs(cur) : undefined;
    for (const part of parts) {
      cur = join(cur, part);
      dir = this.lstatAbs(cur);
      if (!dir) return undefined;
      this.checkFolder(cur, dir, false);
    }
    if (!dir) return undefined;
    // Each name is looked up (one lstat; absent is no exception), not the folder listed:
    // a 200-node lab's observation reads 200 folders (listing each: ~2x the system calls).
    const files = new Map<string, { text: string; st: Stats }>();
    for (const name of names) {
      const p = join(cur, ...this.parts(name));
      if (!this.lstatAbs(p)) continue;
      const r = this.readAbs(p, maxBytes);
      if (r) files.set(name, r);
    }
    return { dir, files };
  }

  /** A regular file of ours at absolute path p, opened without following; undefined when absent. */
  private readAbs(p: string, maxBytes: number): { text: string; st: Stats } | undefined {
    let fd: number;
    try {
      fd = openSync(p, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
    } catch (e) {
      if (errno(e) === 'ENOENT') return undefined;
      if (errno(e) === 'ELOOP') throw this.unsafe(p, 'is a symbolic link', `provium follows no symbolic link in its ${this.o.what}; remove it (rm ${p})`);
      throw e;
    }
    try {
      const st = fstatSync(fd);
      if (!st.isFile()) throw this.unsafe(p, `is not a regular file (${kind(st)})`, `remove it (rm ${p})`);
      if (st.uid !== me()) throw this.unsafe(p, `is owned by uid ${st.uid}, not by uid ${me()} (root)`, `remove it (rm ${p}); provium writes its own files`);
      if (st.size > maxBytes) throw this.unsafe(p, `is larger than ${maxBytes} bytes (${st.size})`, `remove it (rm ${p})`);
      const buf = Buffer.alloc(st.size);
      let off = 0;
      while (off < st.size) {
        const n = readSync(fd, buf, off, st.size - off, off);
        if (n === 0) break;
        off += n;
      }
      return { text: buf.subarray(0, off).toString('utf8'), st };
    } finally {
      closeSync(fd);
    }
  }

  write(rel: string, content: string, mode = this.o.fileMode): void {
    const parts = this.parts(rel);
    const dir = this.ensureDir(parts.slice(0, -1).join('/'));
    const target = join(dir, parts[parts.length - 1]);
    const durable = this.o.durable !== false;
    const tmp = writeTempFile(dir, parts[parts.length - 1], content, mode, durable);
    try {
      renameSync(tmp, target);
    } catch (e) {
      unlinkQuiet(tmp);
      if (errno(e) === 'EISDIR') throw this.unsafe(target, 'is a folder', `remove it (rm -r ${target})`);
      throw e;
    }
    if (durable) fsyncDir(dir);
  }

  createExclusive(rel: string, content: string, mode = this.o.fileMode): boolean {
    const parts = this.parts(rel);
    for (let attempt = 0; ; attempt++) {
      const dir = this.ensureDir(parts.slice(0, -1).join('/'));
      let tmp: string;
      try {
        tmp = writeTempFile(dir, parts[parts.length - 1], content, mode, this.o.durable !== false);
      } catch (e) {
        if (errno(e) === 'ENOENT' && attempt < 20) continue; // the folder was removed under us: again
        throw e;
      }
      try {
        // link() fails with EEXIST whatever the existing entry is (a symbolic link too), and
        // makes the complete file appear at once: a reader never sees a half-written one.
        linkSync(tmp, join(dir, parts[parts.length - 1]));
        if (this.o.durable !== false) fsyncDir(dir);
        return true;
      } catch (e) {
        if (errno(e) === 'EEXIST') return false;
        throw e;
      } finally {
        unlinkQuiet(tmp);
      }
    }
  }

  ensureFile(rel: string, mode = this.o.fileMode): void {
    const parts = this.parts(rel);
    const dir = this.ensureDir(parts.slice(0, -1).join('/'));
    const p = join(dir, parts[parts.length - 1]);
    const st = this.lstatAbs(p);
    if (st?.isDirectory()) throw this.unsafe(p, 'is a folder', `remove it (rm -r ${p})`);
    if (st && st.isFile() && st.uid === me() && st.nlink === 1 && (st.mode & 0o022) === 0) return;
    if (st) unlinkSync(p); // a symbolic link, a hard link to another file, a FIFO...: not ours
    const fd = openSync(p, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, mode);
    try {
      fchmodSync(fd, mode);
    } finally {
      closeSync(fd);
    }
  }

  remove(rel: string): void {
    if (!this.checkRoot(false)) return;
    try {
      this.walk(this.parts(rel).slice(0, -1), false);
    } catch (e) {
      if (e instanceof Absent) return;
      throw e;
    }
    const p = this.path(rel);
    const st = this.lstatAbs(p);
    if (!st) return;
    if (st.isDirectory()) throw this.unsafe(p, 'is a folder where provium expects a file', `remove it by hand if it is not needed (rm -r ${p})`);
    unlinkQuiet(p);
  }

  removeDirIfEmpty(rel: string): boolean {
    if (!this.checkRoot(false)) return true;
    try {
      this.walk(this.parts(rel), false);
    } catch (e) {
      if (e instanceof Absent) return true;
      throw e;
    }
    try {
      rmdirSync(this.path(rel));
      return true;
    } catch (e) {
      if (errno(e) === 'ENOENT') return true;
      if (errno(e) === 'ENOTEMPTY' || errno(e) === 'EEXIST' || errno(e) === 'EBUSY') return false;
      throw e;
    }
  }

  removeTree(rel: string): void {
    const parts = this.parts(rel);
    if (parts.length === 0) throw new ProviumError(`refusing to remove the whole ${this.o.what} ${this.root}`);
    if (!this.checkRoot(false)) return;
    try {
      this.walk(parts.slice(0, -1), false);
    } catch (e) {
      if (e instanceof Absent) return;
      throw e;
    }
    this.removeAbs(this.path(rel));
  }

  list(rel: string): string[] {
    if (!this.checkRoot(false)) return [];
    let dir: string;
    try {
      dir = this.walk(this.parts(rel), false);
    } catch (e) {
      if (e instanceof Absent) return [];
      throw e;
    }
    try {
      return readdirSync(dir).sort();
    } catch (e) {
      if (errno(e) === 'ENOENT') return [];
      throw e;
    }
  }

  lstat(rel: string): Stats | undefined {
    if (!this.checkRoot(false)) return undefined;
    try {
      this.walk(this.parts(rel).slice(0, -1), false);
    } catch (e) {
      if (e instanceof Absent) return undefined;
      throw e;
    }
    return this.lstatAbs(this.path(rel));
  }

  rename(from: string, to: string): void {
    const a = this.parts(from);
    const b = this.parts(to);
    this.checkRoot(true);
    const da = this.walk(a.slice(0, -1), false);
    const db = this.walk(b.slice(0, -1), true);
    renameSync(join(da, a[a.length - 1]), join(db, b[b.length - 1]));
  }

  // ---------------------------------------------------------------------------

  /** Splits and validates a relative path. */
  private parts(rel: string): string[] {
    if (rel === '') return [];
    const parts = rel.split('/');
    for (const p of parts) {
      if (p === '' || p === '.' || p === '..' || p.includes('\0')) throw new ProviumError(`internal error: bad path ${JSON.stringify(rel)} in the ${this.o.what}`);
    }
    return parts;
  }

  private unsafe(path: string, problem: string, fix: string): UnsafePathError {
    return new UnsafePathError(path, `(in provium's ${this.o.what}) ${problem}`, fix);
  }

  private lstatAbs(p: string): Stats | undefined {
    try {
      // An absent entry is the common case (absent files, folders not yet made): no exception for it.
      return lstatSync(p, { throwIfNoEntry: false });
    } catch (e) {
      if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') return undefined;
      throw e;
    }
  }

  /**
   * Checks the root and its ancestors; creates the root (and missing ancestors, 0755)
   * when `create`. Returns false when the root does not exist (and was not created).
   */
  private checkRoot(create: boolean): boolean {
    const root = this.root;
    let st = this.lstatAbs(root);
    if (!st) {
      if (!create) {
        // Still refuse a root whose parent is unsafe only when we are about to use it.
        return false;
      }
      // The folders that exist above it must be safe before anything is created in them.
      let existing = dirname(root);
      while (!this.lstatAbs(existing) && existing !== '/') existing = dirname(existing);
      this.checkAncestors(existing);
      this.ensureAncestors(dirname(root));
      try {
        mkdirSync(root, { mode: this.o.dirMode });
      } catch (e) {
        if (errno(e) !== 'EEXIST') throw e;
      }
      st = this.lstatAbs(root);
      if (!st) throw new Absent();
    }
    if (!this.ancestorsChecked) {
      this.checkAncestors(dirname(root));
      this.ancestorsChecked = true;
    }
    this.checkFolder(root, st, create, true);
    return true;
  }

  /** Creates the missing ancestors of the root (mode 0755). */
  private ensureAncestors(dir: string): void {
    if (this.lstatAbs(dir)) return;
    this.ensureAncestors(dirname(dir));
    try {
      mkdirSync(dir, { mode: 0o755 });
    } catch (e) {
      if (errno(e) !== 'EEXIST') throw e;
    }
  }

  /** Every folder from / down to realpath(dir): owned by root or us, not writable by group/others unless sticky. */
  private checkAncestors(dir: string): void {
    const real = realpathSync(dir);
    const parts = real.split(sep).filter(Boolean);
    let cur = '/';
    for (let i = 0; i <= parts.length; i++) {
      if (i > 0) cur = join(cur, parts[i - 1]);
      const st = lstatSync(cur);
      const fix = `choose a ${this.o.what} whose every parent folder only root can write${this.o.chosenBy ? ` (${this.o.chosenBy})` : ''}, or fix ${cur}: chown root ${cur}; chmod go-w ${cur}`;
      if (!st.isDirectory()) throw new UnsafePathError(cur, `(a parent of provium's ${this.o.what} ${this.root}) is not a folder`, fix);
      if (st.uid !== 0 && st.uid !== me()) throw new UnsafePathError(cur, `(a parent of provium's ${this.o.what} ${this.root}) is owned by uid ${st.uid}: that user could replace the ${this.o.what}`, fix);
      if ((st.mode & 0o022) !== 0 && (st.mode & S_ISVTX) === 0) {
        throw new UnsafePathError(cur, `(a parent of provium's ${this.o.what} ${this.root}) is writable by group/others (mode ${octal(st.mode)}) and not sticky: anyone could replace the ${this.o.what}`, fix);
      }
    }
  }

  /** A folder of the tree: a real folder, ours, not writable by group/others; in a readable tree, when `widen`, given r-x for all. */
  private checkFolder(p: string, st: Stats, widen: boolean, isRoot = false): void {
    const name = isRoot ? `provium's ${this.o.what}` : `a folder in provium's ${this.o.what}`;
    const fixRoot = isRoot && this.o.chosenBy ? `; or point ${this.o.chosenBy} at another folder` : '';
    if (st.isSymbolicLink()) throw new UnsafePathError(p, `(${name}) is a symbolic link; provium follows none`, `replace it with a real folder (rm ${p}; provium creates it)${fixRoot}`);
    if (!st.isDirectory()) throw new UnsafePathError(p, `(${name}) is not a folder (${kind(st)})`, `remove it (rm ${p}); provium creates the folder${fixRoot}`);
    if (st.uid !== me()) throw new UnsafePathError(p, `(${name}) is owned by uid ${st.uid}, not by root: provium uses only folders it created`, `remove it (rm -r ${p}) so provium creates it, or chown root ${p}; chmod go-w ${p}${fixRoot}`);
    if ((st.mode & 0o022) !== 0) throw new UnsafePathError(p, `(${name}) is writable by group/others (mode ${octal(st.mode)})`, `chmod go-w ${p}${fixRoot}`);
    if (widen && this.o.readable && (st.mode & 0o055) !== 0o055) {
      // Ours (checked above): give group/others r-x, through a descriptor opened without following.
      const fd = openSync(p, C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW);
      try {
        const again = fstatSync(fd);
        if (again.ino === st.ino && again.dev === st.dev) fchmodSync(fd, (again.mode & 0o7777) | 0o055);
      } finally {
        closeSync(fd);
      }
    }
  }

  /** Walks folders under the root (creating missing ones when `create`); returns the last one's absolute path. */
  private walk(parts: string[], create: boolean): string {
    let cur = this.root;
    for (const part of parts) {
      cur = join(cur, part);
      let st = this.lstatAbs(cur);
      if (!st) {
        if (!create) throw new Absent();
        try {
          mkdirSync(cur, { mode: this.o.dirMode });
        } catch (e) {
          if (errno(e) === 'ENOENT') throw new Absent(); // the parent was removed meanwhile
          if (errno(e) !== 'EEXIST') throw e;
        }
        st = this.lstatAbs(cur);
        if (!st) throw new Absent();
      }
      this.checkFolder(cur, st, create);
    }
    return cur;
  }

  /** rm -r without following: folders are checked as ours before anything in them is removed. */
  private removeAbs(p: string): void {
    const st = this.lstatAbs(p);
    if (!st) return;
    if (!st.isDirectory()) {
      unlinkQuiet(p);
      return;
    }
    this.checkFolder(p, st, false);
    for (const e of readdirSync(p)) this.removeAbs(join(p, e));
    try {
      rmdirSync(p);
    } catch (e) {
      if (errno(e) !== 'ENOENT') throw e;
    }
  }
}

/**
 * Creates `.<name>.<pid>.<random>.tmp` in dir (O_CREAT|O_EXCL|O_NOFOLLOW: never an existing
 * file or a link) holding content (UTF-8), with exactly `mode` whatever the umask, synced
 * unless `sync` is false; returns its path. On a failed write the file is removed and the
 * error thrown.
 */
function writeTempFile(dir: string, name: string, content: string, mode: number, sync = true): string {
  const tmp = join(dir, `.${name}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, mode);
  try {
    const buf = Buffer.from(content, 'utf8');
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fchmodSync(fd, mode); // whatever the umask
    if (sync) fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    unlinkQuiet(tmp);
    throw e;
  }
  closeSync(fd);
  return tmp;
}

/**
 * Writes a file at a path the user chose (outside provium's trees, e.g. `plan --out`):
 * a temporary file in the same folder (O_CREAT|O_EXCL|O_NOFOLLOW, `mode`, synced), renamed
 * over the name, so a symbolic link there is replaced, never written through, and a
 * reader never sees half a file.
 */
export function writeFileAtomic(path: string, content: string, mode: number): void {
  const dir = dirname(path.startsWith('/') ? path : join(process.cwd(), path));
  const tmp = writeTempFile(dir, basename(path), content, mode);
  try {
    renameSync(tmp, path);
  } catch (e) {
    unlinkQuiet(tmp);
    throw e;
  }
  fsyncDir(dir);
}

/** Internal: a folder on the way does not exist (reads: nothing there; creates: start over). */
class Absent extends Error {}

function unlinkQuiet(p: string): void {
  try {
    unlinkSync(p);
  } catch (e) {
    if (errno(e) !== 'ENOENT') throw e;
  }
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, C.O_RDONLY | C.O_DIRECTORY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function kind(st: Stats): string {
  return st.isSymbolicLink() ? 'a symbolic link' : st.isDirectory() ? 'a folder' : st.isFIFO() ? 'a FIFO' : st.isSocket() ? 'a socket' : st.isCharacterDevice() || st.isBlockDevice() ? 'a device' : st.isFile() ? 'a file' : 'an unknown kind of file';
}
