/**
 * Reading input files safely. provium runs as root and reads whatever path it is
 * given, so a path must never make it hang or grow without bound: only regular files
 * are read (a FIFO, a device such as /dev/zero, a socket or a directory is refused),
 * at most MAX_INPUT_BYTES each, and standard input (`-`) under the same limit.
 *
 * The file is opened first (O_NONBLOCK, so opening a FIFO cannot block waiting for a
 * writer), then fstat'ed on the open descriptor (no race between a check and the
 * read), then read up to the limit plus one byte.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';

/** Largest topology, overlay or scenario file provium reads: 4 MiB (4,194,304 bytes). Standard input too. */
export const MAX_INPUT_BYTES = 4 * 1024 * 1024;

/** A file that could not be read: `message` names the file and the reason (for a diagnostic). */
export class ReadError extends Error {
  constructor(readonly file: string, message: string) {
    super(message);
    this.name = 'ReadError';
  }
}

/** What an fstat mode is, in words ("a FIFO", "a directory", ...). */
function kindOf(st: { isFIFO(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean; isSocket(): boolean; isDirectory(): boolean }): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/** Reads from fd until EOF or more than `limit` bytes; retries EAGAIN (a non-blocking pipe) with a short sleep. */
function readAll(fd: number, limit: number, name: string): string {
  const chunks: Buffer[] = [];
  let total = 0;
  const buf = Buffer.alloc(64 * 1024);
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    let n: number;
    try {
      n = readSync(fd, buf, 0, buf.length, null);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN' || code === 'EWOULDBLOCK') {
        Atomics.wait(pause, 0, 0, 5);
        continue;
      }
      if (code === 'EOF') break;
      throw new ReadError(name, `${name}: ${(e as Error).message}`);
    }
    if (n === 0) break;
    total += n;
    if (total > limit) throw new ReadError(name, `${name}: larger than ${limit} bytes (${limit / 1024 / 1024} MiB), the most provium reads from one input`);
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * The text (UTF-8) of a regular file of at most `limit` bytes. `name` is how the user
 * gave the path (used in messages). Throws ReadError naming the file when it cannot be
 * opened, is not a regular file, or is too large.
 */
export function readInputFile(path: string, name = path, limit = MAX_INPUT_BYTES): string {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (e) {
    // "ENOENT: no such file or directory" (Node's message without the repeated path).
    throw new ReadError(name, `${name}: ${(e as Error).message.replace(/, open .*$/s, '')}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new ReadError(name, `${name}: ${kindOf(st)}, not a regular file; provium reads only regular files (or - for standard input)`);
    if (st.size > limit) throw new ReadError(name, `${name}: ${st.size} bytes, larger than ${limit} bytes (${limit / 1024 / 1024} MiB), the most provium reads from one file`);
    return readAll(fd, limit, name);
  } finally {
    closeSync(fd);
  }
}

/**
 * Standard input as text, at most `limit` bytes (whatever it is: a pipe, a file, a
 * terminal, /dev/zero). Throws ReadError when it is larger or cannot be read.
 */
export function readStdin(limit = MAX_INPUT_BYTES, fd = 0): string {
  return readAll(fd, limit, '<stdin>');
}
