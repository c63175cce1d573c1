// A test written against provium's library API: run with `node --test` as root, from
// this folder (PROVIUM_NETNS: an existing namespace to keep the lab's host side in).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Lab } from 'provium';

test('a node cut off by a partition is back after heal', async () => {
  const lab = await Lab.up('lab.yaml', { netns: process.env.PROVIUM_NETNS });
  try {
    const ping = (from: string, to: string) => lab.exec(from, ['ping', '-c', '1', '-W', '1', lab.address(to, 'lan')]);
    assert.equal((await ping('a', 'b')).exitCode, 0);

    await lab.partition([['a'], 'others']); // a | b, c: both ways
    assert.notEqual((await ping('a', 'b')).exitCode, 0);
    assert.equal((await ping('b', 'c')).exitCode, 0);

    await lab.impair({ from: 'b', to: 'c', dropPct: 100 }); // b -> c loses everything
    assert.notEqual((await ping('b', 'c')).exitCode, 0);

    await lab.heal(); // back to lab.yaml
    await lab.until('a', ['ping', '-c', '1', '-W', '1', lab.address('c', 'lan')], { timeoutMs: 5000 });
  } finally {
    await lab.down();
  }
});
