/**
 * The set-up and tear-down the lab benchmarks share: a lab file in a fresh folder, applied
 * by provium in a throwaway host namespace, destroyed and removed whatever the measurement did.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { run } from './util.js';

/** What a measurement gets: the applied lab's file and the environment to run provium with. */
export interface BenchLab {
  /** The lab file (lab.yaml in the folder). */
  file: string;
  /** PROVIUM_STATE_DIR (in the folder) and NO_COLOR. */
  env: Record<string, string>;
}

/**
 * Writes `text` to lab.yaml in a fresh folder `<os.tmpdir()>/<dirPrefix>XXXXXX`, creates the
 * host namespace `host`, applies the lab there (`provium --netns host apply --auto-approve`),
 * then runs `measure`. Afterwards, whether or not anything failed, destroys the lab, deletes
 * the namespace and removes the folder. Returns undefined when every step passed, else the
 * first line of the error (the reason a benchmark row says "skipped").
 */
export async function withBenchLab(provBin: string, o: { host: string; dirPrefix: string; text: string }, measure: (lab: BenchLab) => Promise<void>): Promise<string | undefined> {
  const dir = mkdtempSync(join(tmpdir(), o.dirPrefix));
  const lab: BenchLab = { file: join(dir, 'lab.yaml'), env: { PROVIUM_STATE_DIR: join(dir, 'state'), NO_COLOR: '1' } };
  writeFileSync(lab.file, o.text);
  try {
    await run(['ip', 'netns', 'add', o.host]);
    await run([process.execPath, provBin, '--netns', o.host, 'apply', '--auto-approve', lab.file], { env: lab.env });
    await measure(lab);
    return undefined;
  } catch (e) {
    return (e as Error).message.split('\n')[0];
  } finally {
    await run([process.execPath, provBin, '--netns', o.host, 'destroy', '--auto-approve', lab.file], { env: lab.env, check: false });
    await run(['ip', 'netns', 'del', o.host], { check: false });
    rmSync(dir, { recursive: true, force: true });
  }
}
