import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostsEntries } from '../../src/plan/hosts.js';

/** The definition hostsEntries computes in place: node lines of a hosts file. */
const byLines = (text: string) => text.split('\n').filter((l) => l && !l.startsWith('#') && !/\slocalhost\b/.test(l)).length;

test('hostsEntries counts the node lines of a hosts file like splitting it into lines would', () => {
  const cases = [
    '',
    '\n',
    '# provium:lab:node:a (written by provium; changes are drift)\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.0.0.1\ta.lan a\n10.0.0.2\tb.lan b\n',
    'a localhostx\nb localhost\n',
    'x\tlocalhost\n#c\n\n\ny',
    'localhost\n 10 localhost.lan\n1.2.3.4 mylocalhost\n1 a\tlocalhost_x\n1 b localhost-y\n',
    'a\r\nb localhost\r\n',
    '1 x\u00a0localhost\n',
    'a localhost localhost\nb x localhostlocalhost\n c\tlocalhost',
    'localhost localhost\n#localhost\n',
  ];
  for (const c of cases) assert.equal(hostsEntries(c), byLines(c), JSON.stringify(c));
  // A big file (its speed is in npm run bench: the 1,000-node plan's text).
  const big = '127.0.0.1\tlocalhost\n' + Array.from({ length: 40_000 }, (_, i) => `10.0.${i >> 8}.${i & 255}\tn${i}.lan n${i}`).join('\n') + '\n';
  assert.equal(hostsEntries(big), byLines(big));
});
