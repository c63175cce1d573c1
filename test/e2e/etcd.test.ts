/**
 * A real distributed system in a lab, run the way users run it: a 3-member etcd cluster
 * in the three netns nodes of examples/etcd.yaml. The leader is partitioned away from
 * both followers by editing the file and applying; the majority must elect a new
 * leader (another member, a higher raft term) and keep taking writes while the old
 * leader's endpoint refuses them. Removing the partitions must let the cluster
 * converge on one leader, with the partition-time write readable through the old
 * leader's endpoint.
 *
 * etcdctl runs in the lab's host namespace (10.89.0.1 on the bridge): the bridge
 * delivers host traffic locally, so partitions between members never cut the client
 * off from any member. Every wait is bounded; every etcd process is killed and every
 * data dir removed in a finally (and at process exit, should the runner give up).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';
import { parseDocument } from 'yaml';
import { labTest, run, report, type Lab, type Result } from './helpers.js';

const EXAMPLE = fileURLToPath(new URL('../../../examples/etcd.yaml', import.meta.url));
const HEARTBEAT_MS = 100;
const ELECTION_MS = 1000;

function which(tool: string): boolean {
  return (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').some((d) => d && existsSync(join(d, tool)));
}

function etcdSkip(): string | undefined {
  const missing = ['etcd', 'etcdctl'].filter((t) => !which(t));
  if (missing.length) return `needs ${missing.join(' and ')} (Debian packages etcd-server, etcd-client; scripts/setup.sh installs them)`;
  return undefined;
}

/** etcd processes still running, killed at cleanup and, as a last resort, at process exit. */
const members = new Set<ResultPromise>();
process.on('exit', () => {
  for (const p of members) {
    try {
      p.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
});

async function killMembers(): Promise<void> {
  const all = [...members];
  for (const p of all) p.kill('SIGKILL');
  // Bounded: SIGKILL ends them at once; never wait forever on one.
  await Promise.race([Promise.allSettled(all), new Promise((r) => setTimeout(r, 5000))]);
  members.clear();
}

/**
 * Aborts the TCP connections the killed members left in the node namespaces (`ss -K`).
 * Orphaned sockets still retransmitting (FIN-WAIT-1, LAST-ACK) keep a namespace alive
 * after `ip netns del`, with its veth; provium destroy then fails after waiting 15 s
 * for the ports to go (see examples/README.md). Bounded; returns what is left.
 */
async function dropSockets(lab: Lab, nodes: string[]): Promise<string> {
  const t0 = Date.now();
  let left = '';
  do {
    left = '';
    for (const n of nodes) {
      await run(['ip', 'netns', 'exec', lab.ns(n), 'ss', '-K', '-tn'], { timeoutMs: 5000 });
      // Default state filter: every connected state but TIME-WAIT (which holds nothing).
      const r = await run(['ip', 'netns', 'exec', lab.ns(n), 'ss', '-tnH'], { timeoutMs: 5000 });
      if (r.stdout.trim()) left += `${n}: ${r.stdout.trim()}\n`;
    }
    if (!left) return '';
    await new Promise((r) => setTimeout(r, 200));
  } while (Date.now() - t0 < 10_000);
  return left;
}

interface Status {
  endpoint: string;
  memberId: string;
  leader: string;
  raftTerm: number;
}

/** The member's endpoint status, or the error text. uint64 ids are kept as strings (JSON numbers would lose precision). */
async function status(lab: Lab, endpoint: string): Promise<Status | string> {
  const r = await etcdctl(lab, [endpoint], ['endpoint', 'status', '-w', 'json'], 4000);
  if (r.code !== 0) return (r.stderr || r.stdout).trim();
  const text = r.stdout.replace(/("(?:cluster_id|member_id|leader)"\s*:\s*)(\d+)/g, '$1"$2"');
  const [j] = JSON.parse(text) as { Endpoint: string; Status: { header: { member_id: string; raft_term: number }; leader?: string; raftTerm: number } }[];
  // A member without a leader omits the field (omitempty): '0' is raft's "no leader".
  return { endpoint: j.Endpoint, memberId: j.Status.header.member_id, leader: j.Status.leader ?? '0', raftTerm: j.Status.raftTerm };
}

function etcdctl(lab: Lab, endpoints: string[], args: string[], timeoutMs = 8000): Promise<Result> {
  return run(['ip', 'netns', 'exec', lab.hostNs, 'etcdctl', `--endpoints=${endpoints.join(',')}`, '--dial-timeout=2s', '--command-timeout=3s', ...args], {
    timeoutMs,
    env: { ETCDCTL_API: '3' },
  });
}

/** Polls `check` every intervalMs until it returns a value, for at most timeoutMs; returns the value and the time it took. */
async function until<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>, last: () => string, intervalMs = 100): Promise<{ value: T; ms: number }> {
  const t0 = performance.now();
  for (;;) {
    const v = await check();
    if (v !== undefined) return { value: v, ms: performance.now() - t0 };
    if (performance.now() - t0 > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms; last seen: ${last()}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

labTest(
  'etcd: a 3-member cluster forms; partitioning the leader away makes the majority elect a new leader and refuse writes on the old one; healing converges',
  async (lab, t) => {
    // The example, under the lab's unique name.
    const doc = parseDocument(readFileSync(EXAMPLE, 'utf8'));
    const attach = (doc.toJS() as { bridges: { lan: { attach: { node: string; ip: string }[] } } }).bridges.lan.attach;
    const ip: Record<string, string> = Object.fromEntries(attach.map((a) => [a.node, a.ip.split('/')[0]]));
    const names = Object.keys(ip).sort();
    assert.deepEqual(names, ['e1', 'e2', 'e3'], 'examples/etcd.yaml has e1, e2, e3 with fixed addresses');
    const write = () => lab.write(doc.toString().replace(/^lab:.*\n/m, ''));
    write();
    await lab.apply();

    const client = (n: string) => `http://${ip[n]}:2379`;
    const peer = (n: string) => `http://${ip[n]}:2380`;
    const initialCluster = names.map((n) => `${n}=${peer(n)}`).join(',');
    const dataRoot = mkdtempSync(join(tmpdir(), `pvt-etcd-${lab.name}-`));
    const logs: Record<string, string> = {};
    const tail = (n: string) => {
      try {
        return readFileSync(logs[n], 'utf8').split('\n').slice(-15).join('\n');
      } catch {
        return '(no log)';
      }
    };

    try {
      // --- start the members -------------------------------------------------
      const t0 = performance.now();
      for (const n of names) {
        logs[n] = join(dataRoot, `${n}.log`);
        const p = execa(
          'ip',
          [
            'netns', 'exec', lab.ns(n), 'etcd',
            '--name', n,
            '--data-dir', join(dataRoot, n),
            '--listen-peer-urls', peer(n),
            '--initial-advertise-peer-urls', peer(n),
            '--listen-client-urls', client(n),
            '--advertise-client-urls', client(n),
            '--initial-cluster', initialCluster,
            '--initial-cluster-state', 'new',
            '--initial-cluster-token', `pvt-${lab.name}`,
            '--heartbeat-interval', String(HEARTBEAT_MS),
            '--election-timeout', String(ELECTION_MS),
          ],
          { reject: false, stdin: 'ignore', stdout: 'ignore', stderr: { file: logs[n] }, timeout: 180_000, killSignal: 'SIGKILL' },
        );
        members.add(p);
        p.then(() => members.delete(p), () => members.delete(p));
      }

      // --- a. one leader, a write ---------------------------------------------
      let seen: (Status | string)[] = [];
      const formed = await until(
        'cluster formation (all three report the same non-zero leader)',
        30_000,
        async () => {
          seen = await Promise.all(names.map((n) => status(lab, client(n))));
          const ok = seen.filter((s): s is Status => typeof s !== 'string');
          if (ok.length === 3 && ok[0].leader !== '0' && ok.every((s) => s.leader === ok[0].leader)) return ok;
          return undefined;
        },
        () => `${JSON.stringify(seen)}\n${names.map((n) => `--- ${n}\n${tail(n)}`).join('\n')}`,
        200,
      );
      const byId = Object.fromEntries(formed.value.map((s, i) => [s.memberId, names[i]]));
      const leaderId = formed.value[0].leader;
      const leader = byId[leaderId];
      assert.ok(leader, `the leader ${leaderId} is one of the members ${JSON.stringify(byId)}`);
      const term0 = Math.max(...formed.value.map((s) => s.raftTerm));
      const followers = names.filter((n) => n !== leader);
      const put0 = await etcdctl(lab, [client(leader)], ['put', '/pv/before', 'v0']);
      assert.equal(put0.code, 0, `write before the partition: ${put0.stdout}${put0.stderr}`);
      report(t, `formed in ${Math.round(performance.now() - t0)} ms: leader ${leader} (${leaderId}), raft term ${term0}; put /pv/before ok`);

      // --- b. partition the leader away from both followers ---------------------
      doc.setIn(['bridges', 'lan', 'partitions'], doc.createNode(followers.map((f) => [leader, f]), { flow: true }));
      write();
      const tp = performance.now();
      await lab.apply();
      const applyMs = performance.now() - tp;
      let last: (Status | string)[] = [];
      const elected = await until(
        'a new leader on the majority side',
        15_000,
        async () => {
          last = await Promise.all(followers.map((f) => status(lab, client(f))));
          const ok = last.filter((s): s is Status => typeof s !== 'string');
          if (ok.length === 2 && ok[0].leader !== '0' && ok[0].leader !== leaderId && ok.every((s) => s.leader === ok[0].leader)) return ok;
          return undefined;
        },
        () => JSON.stringify(last),
      );
      const newLeaderId = elected.value[0].leader;
      const newLeader = byId[newLeaderId];
      const term1 = Math.max(...elected.value.map((s) => s.raftTerm));
      report(t, `partition [${followers.map((f) => `[${leader}, ${f}]`).join(', ')}] applied in ${Math.round(applyMs)} ms; new leader ${newLeader} (${newLeaderId}) at raft term ${term1} seen ${Math.round(elected.ms)} ms after apply returned (${Math.round(applyMs + elected.ms)} ms after apply started; election timeout ${ELECTION_MS} ms)`);
      assert.ok(followers.includes(newLeader), `the new leader ${newLeader} is on the majority side`);
      assert.notEqual(newLeaderId, leaderId, 'a different member leads');
      assert.ok(term1 > term0, `raft term went up: ${term0} -> ${term1}`);
      assert.ok(applyMs + elected.ms <= 6 * ELECTION_MS, `new leader within a few election timeouts: ${Math.round(applyMs + elected.ms)} ms`);

      for (const f of followers) {
        const w = await etcdctl(lab, [client(f)], ['put', `/pv/during/${f}`, `via-${f}`]);
        assert.equal(w.code, 0, `write through majority member ${f}: ${w.stdout}${w.stderr}`);
      }
      const tw = performance.now();
      const stale = await etcdctl(lab, [client(leader)], ['put', '/pv/stale', 'x']);
      const staleMs = performance.now() - tw;
      const oldStatus = await status(lab, client(leader));
      report(t, `writes through ${followers.join(' and ')} succeeded; write through old leader ${leader}: exit ${stale.code} after ${Math.round(staleMs)} ms: ${stale.stderr.trim().split('\n').pop()}; its status: ${JSON.stringify(oldStatus)}`);
      assert.notEqual(stale.code, 0, `a write through the old leader's endpoint fails: ${stale.stdout}`);
      assert.match(stale.stderr, /deadline exceeded|no leader|timed out|leader changed/i, 'it fails for lack of a quorum');
      // The majority never saw it.
      const g = await etcdctl(lab, [client(newLeader)], ['get', '/pv/stale', '--print-value-only']);
      assert.equal(g.code, 0, g.stderr);
      assert.equal(g.stdout.trim(), '', 'the refused write is not in the majority');

      // --- c. heal -----------------------------------------------------------
      doc.deleteIn(['bridges', 'lan', 'partitions']);
      write();
      const th = performance.now();
      await lab.apply();
      const healApplyMs = performance.now() - th;
      let healed: (Status | string)[] = [];
      let read = '';
      const converged = await until(
        'convergence after the heal (one leader on all three; the partition-time key readable through the old leader)',
        30_000,
        async () => {
          healed = await Promise.all(names.map((n) => status(lab, client(n))));
          const ok = healed.filter((s): s is Status => typeof s !== 'string');
          if (!(ok.length === 3 && ok[0].leader !== '0' && ok.every((s) => s.leader === ok[0].leader && s.raftTerm === ok[0].raftTerm))) return undefined;
          const r = await etcdctl(lab, [client(leader)], ['get', `/pv/during/${followers[0]}`, '--print-value-only']);
          read = `exit ${r.code}: ${r.stdout.trim()}${r.stderr.trim()}`;
          return r.code === 0 && r.stdout.trim() === `via-${followers[0]}` ? ok : undefined;
        },
        () => `${JSON.stringify(healed)}; get via ${leader}: ${read}`,
        200,
      );
      const finalLeader = byId[converged.value[0].leader];
      report(t, `heal applied in ${Math.round(healApplyMs)} ms; converged ${Math.round(converged.ms)} ms after apply returned: leader ${finalLeader} at raft term ${converged.value[0].raftTerm} on all three; /pv/during/${followers[0]} read through ${leader}`);
      const other = await etcdctl(lab, [client(leader)], ['get', `/pv/during/${followers[1]}`, '--print-value-only']);
      assert.equal(other.stdout.trim(), `via-${followers[1]}`, `the other partition-time write, read through ${leader}`);
      const w2 = await etcdctl(lab, [client(leader)], ['put', '/pv/after', 'v2']);
      assert.equal(w2.code, 0, `a write through the old leader after the heal: ${w2.stderr}`);
      assert.equal((await lab.planCode()).code, 0, 'plan is empty after the heal');
    } finally {
      await killMembers();
      const left = await dropSockets(lab, names);
      if (left) process.stderr.write(`[etcd cleanup] TCP sockets still open in the nodes after ss -K:\n${left}`);
      rmSync(dataRoot, { recursive: true, force: true });
    }
  },
  { skip: etcdSkip(), timeoutMs: 150_000 },
);
