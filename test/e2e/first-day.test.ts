/**
 * The small things a first day trips over, end to end: names without DNS (hosts files,
 * also for an unprivileged user inside the node), `provium exec`'s exit status, `provium
 * addr`, `provium ls`, `show`'s drop counters, and a destroy plan naming the processes it
 * ends. (exec's start-up time is in npm run bench.)
 */
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { labTest, ping, report, run } from './helpers.js';

labTest('first day: nodes resolve each other by name with no DNS (also unprivileged); exec returns the command\'s status; addr, ls, show counters; destroy names the processes it ends and removes the hosts files', async (lab, t) => {
  lab.write(`
    nodes: { a: { kind: netns }, b: { kind: netns }, c: { kind: netns } }
    bridges:
      lan:
        subnet: 10.91.0.0/24
        attach: [a, b, c]
        partitions: [{ from: a, to: c }]
      data:
        subnet: 10.92.0.0/24
        attach: [b]
  `);
  await lab.apply();
  const ip = lab.ips('lan');

  // Hosts files: 0644 in 0755 folders, marked, names <node> and <node>.<bridge>.
  const hosts = `/etc/netns/${lab.ns('a')}/hosts`;
  assert.equal(statSync(hosts).mode & 0o777, 0o644);
  assert.equal(statSync(`/etc/netns/${lab.ns('a')}`).mode & 0o777, 0o755);
  const exec = (node: string, cmd: string[]) => lab.provium(['exec', lab.file, node, '--', ...cmd], { file: false });
  const byName = await exec('a', ['ping', '-n', '-c', '1', '-W', '2', 'b']);
  assert.equal(byName.code, 0, `a pings b by name through provium exec:\n${byName.stdout}${byName.stderr}`);
  assert.match(byName.stdout, new RegExp(`PING b(\\.lan)? \\(${ip.b.replace(/\./g, '\\.')}\\)`));
  const unpriv = await run(['ip', 'netns', 'exec', lab.ns('a'), 'setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', 'getent', 'hosts', 'b.data', 'c']);
  report(t, `getent as uid 65534 inside a: ${unpriv.stdout.trim().replace(/\n/g, ' | ')}`);
  assert.equal(unpriv.code, 0, unpriv.stderr);
  assert.match(unpriv.stdout, new RegExp(`^${lab.ip('b', 'data').replace(/\./g, '\\.')}\\s+b\\.data`, 'm'));
  assert.match(unpriv.stdout, new RegExp(`^${ip.c.replace(/\./g, '\\.')}\\s+c\\.lan c$`, 'm'));

  // exec: the command's own status; 127 for a missing command, as a shell.
  assert.equal((await exec('a', ['sh', '-c', 'exit 7'])).code, 7);
  const missing = await exec('a', ['no-such-command-here']);
  assert.equal(missing.code, 127);
  assert.match(missing.stderr, /no-such-command-here: command not found/);
  assert.equal((await exec('a', ['true'])).code, 0);
  const wrong = await lab.provium(['exec', lab.file, 'zz', '--', 'true'], { file: false });
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /unknown node "zz"[\s\S]*nodes: a, b, c/);

  // addr: from the file.
  const addr = await lab.provium(['addr', lab.file, 'b', 'data'], { file: false, netns: false });
  assert.equal(addr.stdout.trim(), lab.ip('b', 'data'));
  assert.equal((await lab.provium(['addr', lab.file, 'a'], { file: false, netns: false })).stdout.trim(), ip.a);

  // ls: the lab, its file and host namespace.
  const ls = JSON.parse((await lab.provium(['ls', '--json'], { file: false, netns: false })).stdout) as { labs: { lab: string; file: string; host_netns: string; namespaces: number }[] };
  const me = ls.labs.find((l) => l.lab === lab.name);
  assert.ok(me, `ls lists lab ${lab.name}`);
  assert.deepEqual([me.file, me.host_netns, me.namespaces], [lab.file, lab.hostNs, 3]);

  // show: packets each partition element dropped.
  await ping(lab.ns('a'), ip.c, 3, 0.1);
  const show = await lab.provium(['show', '--json']);
  const sj = JSON.parse(show.stdout) as { bridges: Record<string, { dropped?: { partitions: { pair: string; packets: number }[] } }> };
  const part = sj.bridges.lan.dropped!.partitions.find((x) => x.pair === 'a->c')!;
  report(t, `show: partition a->c dropped ${part.packets} packets after 3 pings`);
  assert.ok(part.packets >= 3, 'the partition element counted the pings it dropped');
  assert.match((await lab.provium(['show'])).stdout, /partitions: a->c \(\d+ dropped\)/);

  // A destroy plan names the processes it will end.
  await run(['ip', 'netns', 'exec', lab.ns('b'), 'sh', '-c', 'sleep 300 >/dev/null 2>&1 &']);
  const d = await lab.provium(['destroy', '--auto-approve']);
  assert.equal(d.code, 0, d.stderr);
  assert.match(d.stdout, /ends 1 process still running in node b: \d+ \(sleep 300\)/);
  assert.equal(existsSync(`/etc/netns/${lab.ns('a')}`), false, 'hosts files and their folders removed');
}, { timeoutMs: 120_000 });
