/** provium show: drop per pair expanded from the per-port whole-bridge elements (render/show.ts dropPerPair). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dropPerPair } from '../../src/render/show.js';
import type { NftBridgeTable } from '../../src/model/state.js';

test('a pair gets its own drop, else its receiver port\'s whole-bridge drop unless exempt; never from the receiver itself', () => {
  const bt: NftBridgeTable = {
    skeleton: '', blocked: {}, isolated: {}, prio: {},
    loss: { 'ma>pb': { owner: 'bridge.lan.impairment[a>b]', value: 2000 } },
    lossPort: { pa: { owner: 'bridge.lan.impairment[*]', value: 100 }, pb: { owner: 'bridge.lan.impairment[*]', value: 100 }, pc: { owner: 'bridge.lan.impairment[*]', value: 100 } },
    lossOwn: { 'ma>pb': { owner: 'bridge.lan.impairment[a>b]', value: true }, 'mc>pa': { owner: 'bridge.lan.impairment[c>a]', value: true } },
  };
  const senders = [{ mac: 'ma', node: 'a' }, { mac: 'mb', node: 'b' }, { mac: 'mc', node: 'c' }];
  const nodeOf = (p: string) => ({ pa: 'a', pb: 'b', pc: 'c' })[p];
  const got = Object.fromEntries(dropPerPair(bt, new Set(['pa', 'pb', 'pc']), senders, nodeOf));
  assert.deepEqual(got, {
    'ma>pb': 2000, // its own drop
    'mb>pa': 100, // c -> a is exempt (its own entry sets drop 0): not listed
    'mc>pb': 100,
    'ma>pc': 100,
    'mb>pc': 100,
  });
  // Only the given ports (another bridge's are left out).
  assert.deepEqual(dropPerPair(bt, new Set(['pc']), senders, nodeOf).map(([k]) => k).sort(), ['ma>pc', 'mb>pc']);
});
