import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QmpClient, QmpError } from '../../src/host/qmp.js';

/**
 * A fake QMP server: sends the greeting QEMU 7.2 sends, answers qmp_capabilities,
 * and then lets each test script its answers. Spec followed: qemu docs/interop/qmp-spec.
 */
function fakeQmp(handler: (cmd: { execute: string; arguments?: any; id?: string }, sock: Socket) => void, greeting = true) {
  const dir = mkdtempSync(join(tmpdir(), 'pv-qmp-'));
  const path = `${dir}/qmp.sock`;
  const server: Server = createServer((sock) => {
    if (greeting) sock.write(JSON.stringify({ QMP: { version: { qemu: { micro: 0, minor: 2, major: 7 }, package: 'Debian 1:7.2+dfsg-7' }, capabilities: ['oob'] } }) + '\r\n');
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const cmd = JSON.parse(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        if (cmd.execute === 'qmp_capabilities') sock.write(JSON.stringify({ return: {}, id: cmd.id }) + '\r\n');
        else handler(cmd, sock);
      }
    });
    sock.on('error', () => {});
  });
  server.listen(path);
  return { path, close: () => { server.close(); rmSync(dir, { recursive: true, force: true }); } };
}

const reply = (sock: Socket, o: unknown) => sock.write(JSON.stringify(o) + '\r\n');

describe('QMP client', () => {
  const servers: { close(): void }[] = [];
  after(() => servers.forEach((s) => s.close()));

  test('negotiates, runs a command and reads the greeting version', async () => {
    const s = fakeQmp((cmd, sock) => reply(sock, { return: { status: 'running', running: true }, id: cmd.id }));
    servers.push(s);
    const c = await QmpClient.connect(s.path);
    assert.deepEqual(c.version, { major: 7, minor: 2, micro: 0 });
    assert.deepEqual(await c.execute('query-status'), { status: 'running', running: true });
    c.close();
  });

  test('events interleaved between a command and its answer are kept, the answer still matched by id', async () => {
    const s = fakeQmp((cmd, sock) => {
      reply(sock, { event: 'NIC_RX_FILTER_CHANGED', data: { path: '/machine/peripheral/n0' }, timestamp: { seconds: 1, microseconds: 2 } });
      setTimeout(() => {
        reply(sock, { event: 'STOP', timestamp: { seconds: 1, microseconds: 3 } });
        reply(sock, { return: {}, id: cmd.id });
      }, 10);
    });
    servers.push(s);
    const c = await QmpClient.connect(s.path);
    assert.deepEqual(await c.execute('set_link', { name: 'n0', up: false }), {});
    assert.deepEqual(c.events.map((e) => e.event), ['NIC_RX_FILTER_CHANGED', 'STOP']);
    assert.equal((await c.waitEvent('STOP')).event, 'STOP');
    c.close();
  });

  test('an error answer becomes a QmpError with its class and description', async () => {
    const s = fakeQmp((cmd, sock) => reply(sock, { error: { class: 'DeviceNotFound', desc: "Device 'n9' not found" }, id: cmd.id }));
    servers.push(s);
    const c = await QmpClient.connect(s.path);
    await assert.rejects(c.execute('set_link', { name: 'n9', up: true }), (e: unknown) => e instanceof QmpError && e.errorClass === 'DeviceNotFound' && /n9/.test(e.desc));
    c.close();
  });

  test('a VM that never answers times out instead of hanging', async () => {
    const s = fakeQmp(() => {});
    servers.push(s);
    const c = await QmpClient.connect(s.path);
    const t0 = Date.now();
    await assert.rejects(c.execute('query-status', undefined, 200), (e: unknown) => e instanceof QmpError && e.errorClass === 'Timeout');
    assert.ok(Date.now() - t0 < 2000);
    c.close();
  });

  test('no greeting times out; a missing socket fails at once', async () => {
    const s = fakeQmp(() => {}, false);
    servers.push(s);
    await assert.rejects(QmpClient.connect(s.path, 200), (e: unknown) => e instanceof QmpError && e.errorClass === 'Timeout');
    await assert.rejects(QmpClient.connect('/nonexistent/qmp.sock', 200), (e: unknown) => e instanceof QmpError && e.errorClass === 'ProtocolError');
  });

  test('a connection closed by QEMU (quit) rejects pending commands', async () => {
    const s = fakeQmp((cmd, sock) => {
      reply(sock, { return: {}, id: cmd.id });
      reply(sock, { event: 'SHUTDOWN', data: { guest: false, reason: 'host-qmp-quit' } });
      sock.end();
    });
    servers.push(s);
    const c = await QmpClient.connect(s.path);
    await c.execute('quit');
    await assert.rejects(c.execute('query-status', undefined, 1000), (e: unknown) => e instanceof QmpError);
    assert.equal(c.events[0]?.event, 'SHUTDOWN');
  });
});
