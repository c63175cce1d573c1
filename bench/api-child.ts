/**
 * The process bench/api.ts measures: a test suite's process using the library. Loads
 * provium from the bench's copy of the build (argv[2]: its dist/src/index.js), brings up
 * the already applied lab (argv[3]: file, argv[4]: host namespace), then `rounds`
 * (argv[6]) times changes one field with `lab.impair(argv[5] as JSON)` and goes back with
 * `lab.heal()`; prints one JSON line with each call's times, and leaves the lab applied
 * (close(), not down()).
 */
const [index, file, host, impairJson, roundsArg] = process.argv.slice(2);
const { Lab } = (await import(index)) as typeof import('../src/index.js');
const t0 = performance.now();
const lab = await Lab.up(file, { netns: host });
const upMs = performance.now() - t0;
const impair: { committedMs?: number; totalMs: number; changes: number; hostCommands: number }[] = [];
const heal: typeof impair = [];
const pick = (r: { committedMs?: number; totalMs: number; changes: number; hostCommands: number }) => ({ committedMs: r.committedMs, totalMs: r.totalMs, changes: r.changes, hostCommands: r.hostCommands });
try {
  for (let i = 0; i < Number(roundsArg); i++) {
    impair.push(pick(await lab.impair(JSON.parse(impairJson))));
    heal.push(pick(await lab.heal()));
  }
} finally {
  await lab.close();
}
process.stdout.write(JSON.stringify({ upMs, impair, heal }) + '\n');
