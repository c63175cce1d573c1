/** nicMac: FNV-1a 64 in 16-bit limbs gives the MACs the BigInt definition gives (applied labs keep their MACs). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nicMac } from '../../src/model/names.js';

/** The definition: FNV-1a 64 over the first UTF-16 unit of each code point, in BigInt. */
function reference(lab: string, node: string, bridge: string, prefix = ''): string {
  let h = 0xcbf29ce484222325n;
  for (const ch of `${lab}/${node}/${bridge}`) {
    h ^= BigInt(ch.charCodeAt(0));
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  const bytes = prefix ? prefix.split(':').map((x) => parseInt(x, 16)) : [0x02];
  for (let i = 0; bytes.length < 6; i++) bytes.push(Number((h >> BigInt(8 * i)) & 0xffn));
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

test('nicMac equals the BigInt FNV-1a definition on names of every length and alphabet, with and without a prefix', () => {
  let seed = 12345;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
  // Letters, non-ASCII, an astral code point (a surrogate pair) and lone surrogates.
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789-_.ÄéΩ漢\u{1F600}\u{1F600}';
  const chars = [...alphabet];
  chars.push('\ud800', '\udc00');
  const word = () => Array.from({ length: 1 + rnd(24) }, () => chars[rnd(chars.length)]).join('');
  for (let i = 0; i < 3000; i++) {
    const [lab, node, bridge] = [word(), word(), word()];
    const prefix = ['', '52:54:00', '02', 'aa:bb'][i % 4];
    assert.equal(nicMac(lab, node, bridge, prefix), reference(lab, node, bridge, prefix), `${lab}/${node}/${bridge} ${prefix}`);
  }
  assert.equal(nicMac('b200', 'n0', 'lan0'), reference('b200', 'n0', 'lan0'));
});
