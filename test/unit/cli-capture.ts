/**
 * Runs provium's CLI in-process, as the unit tests do: main() with the arguments, stdout
 * and stderr captured (not shown). In a file of its own so that only the tests that run
 * the CLI load its module graph.
 */
import { main } from '../../src/cli.js';

/**
 * Runs `provium ARGS...` through main() (in `cwd` when given, then back); returns the exit
 * code and everything written to stdout and stderr meanwhile. Restores both streams and
 * the working folder even when main() throws (the error then propagates).
 */
export async function runCli(args: string[], cwd?: string): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const ow = process.stdout.write.bind(process.stdout);
  const ew = process.stderr.write.bind(process.stderr);
  const was = process.cwd();
  process.stdout.write = ((s: string | Uint8Array) => ((out += String(s)), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string | Uint8Array) => ((err += String(s)), true)) as typeof process.stderr.write;
  if (cwd) process.chdir(cwd);
  try {
    const code = await main(['node', 'provium', ...args]);
    return { code, out, err };
  } finally {
    if (cwd) process.chdir(was);
    process.stdout.write = ow;
    process.stderr.write = ew;
  }
}
