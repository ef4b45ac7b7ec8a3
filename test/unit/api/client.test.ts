/**
 * agent/client: how each way of not getting an answer is reported, and that raw garbage on the socket
 * does not hurt the API.
 */
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApp } from '../../../agent/api/app.js';
import { listenUnix } from '../../../agent/api/server.js';
import { apiError, ClientError, request } from '../../../agent/client/client.js';
import { FakeService } from './fake-service.js';
import { rejection } from '../rejection.js';

describe('client', () => {
  let dir: string;
  let sock: string;
  let server: Server | null = null;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'krsi-client-'));
    sock = join(dir, 'agent.sock');
  });
  afterEach(async () => {
    if (server) await new Promise<void>((r) => server!.close(() => r()));
    server = null;
    rmSync(dir, { recursive: true, force: true });
  });

  function rawServer(onConnection: (s: import('node:net').Socket) => void): Promise<void> {
    server = createServer(onConnection);
    return new Promise((r) => server!.listen(sock, r));
  }

  it('no socket: unreachable, "agent is not running (no socket at ...)"', async () => {
    const err = await rejection(request(sock, 'GET', '/v1/status'), ClientError);
    expect(err.kind).to.equal('unreachable');
    expect(err.errno).to.equal('ENOENT');
    expect(err.message).to.equal(`slurm-krsi agent is not running (no socket at ${sock})`);
  });

  it('a path that is a directory: unreachable', async () => {
    const err = await rejection(request(dir, 'GET', '/v1/status'), ClientError);
    expect(err.kind).to.equal('unreachable');
    expect(err.message).to.include(dir);
  });

  it('no answer in time: timeout naming the socket and the limit', async () => {
    const held: import('node:net').Socket[] = [];
    await rawServer((s) => held.push(s));
    const err = await rejection(request(sock, 'GET', '/v1/status', undefined, { timeoutMs: 150 }), ClientError);
    expect(err.kind).to.equal('timeout');
    expect(err.message).to.equal(`the slurm-krsi agent at ${sock} did not answer GET /v1/status within 150 ms`);
    for (const s of held) s.destroy();
  });

  it('an answer that is not JSON, or a connection closed mid-way: protocol', async () => {
    await rawServer((s) => s.resume().end('HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 6\r\n\r\n<html>'));
    const err = await rejection(request(sock, 'GET', '/v1/status'), ClientError);
    expect(err.kind).to.equal('protocol');
    expect(err.message).to.include('not JSON');
    await new Promise<void>((r) => server!.close(() => r()));
    await rawServer((s) => s.once('data', () => s.resume().end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"a":')));
    const cut = await rejection(request(sock, 'GET', '/v1/status'), ClientError);
    expect(cut.kind).to.equal('protocol');
  });

  it('apiError extracts { error: { code, message } } and problems', () => {
    expect(apiError({ error: { code: 'KRSI_ERR_X', message: 'm' } })).to.deep.equal({ code: 'KRSI_ERR_X', message: 'm' });
    expect(apiError({ error: { code: 'C', message: 'm' }, problems: ['p'] })).to.deep.equal({ code: 'C', message: 'm', problems: ['p'] });
    expect(apiError({ error: 'x' })).to.equal(null);
    expect(apiError(null)).to.equal(null);
  });

  (process.getuid?.() === 0 ? it : it.skip)('raw garbage on the API socket does not hurt the agent', async () => {
    const app = buildApp({ service: new FakeService(), access: { writerUids: new Set([0]), readerGids: new Set() } });
    const close = await listenUnix(app, sock, { mode: 0o600, uid: 0, gid: 0 });
    try {
      for (const garbage of ['\x00\x01\x02 not http\r\n\r\n', 'GET /v1/status HTTP/1.1\r\nContent-Length: -5\r\n\r\n', 'POST /v1/jobs HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nzz\r\n']) {
        const answer = await new Promise<string>((resolve) => {
          let got = '';
          const c = createConnection(sock, () => c.write(garbage));
          c.on('data', (d) => (got += d.toString()));
          c.on('close', () => resolve(got));
          c.on('error', () => resolve(got));
          setTimeout(() => c.destroy(), 500);
        });
        expect(answer === '' || /^HTTP\/1\.1 4\d\d/.test(answer), answer).to.equal(true);
      }
      expect((await request(sock, 'GET', '/v1/status')).status).to.equal(200);
    } finally {
      await close();
    }
  });
});
