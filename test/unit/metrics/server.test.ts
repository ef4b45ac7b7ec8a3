/**
 * The metrics endpoint over real sockets: who may scrape (metrics_allow, read at every connection), over
 * IPv4, IPv6 and an IPv6 socket's IPv4-mapped peers; and inCidrs, which decides.
 */
import { expect } from 'chai';
import { request } from 'node:http';
import type { AddressInfo, Server } from 'node:net';
import { Gauge, Registry } from 'prom-client';
import { parseCidrList } from '../../../agent/config/values.js';
import { inCidrs, type Cidr } from '../../../agent/enforcement/cidr.js';
import { createLogger } from '../../../agent/log/logger.js';
import { startMetricsServer, type RefusalReason } from '../../../agent/metrics/server.js';

/** GET path from host: the status and body, or the error that ended the connection */
function get(host: string, port: number, path = '/metrics'): Promise<{ status: number; body: string } | { error: string }> {
  return new Promise((resolve) => {
    const req = request({ host, port, path, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

describe('inCidrs', () => {
  const list = parseCidrList('10.0.0.0/8, 2001:db8::/32, 192.0.2.7');
  it('matches IPv4, IPv6 and IPv4-mapped IPv6 peers by prefix; anything else, or garbage, is outside', () => {
    for (const a of ['10.1.2.3', '::ffff:10.1.2.3', '2001:db8::1', '192.0.2.7']) expect(inCidrs(a, list), a).to.equal(true);
    for (const a of ['11.0.0.1', '192.0.2.8', '2001:db9::1', '::1', '127.0.0.1', '', 'not-an-address', '10.0.0.1%eth0']) expect(inCidrs(a, list), a).to.equal(false);
    expect(inCidrs('127.0.0.1', [])).to.equal(false);
  });
});

describe('the metrics endpoint', () => {
  const registry = new Registry();
  new Gauge({ name: 'krsi_test_gauge', help: 'a gauge', registers: [registry] }).set(7);
  const log = createLogger({ write: () => undefined });
  const servers: Server[] = [];
  after(() => Promise.all(servers.map((s) => new Promise((r) => s.close(r)))));

  const refused: RefusalReason[] = [];

  async function serve(host: string, allowed: () => readonly Cidr[]): Promise<number> {
    const server = startMetricsServer({
      listen: { host, port: 0 }, allowed, render: () => registry.metrics(), contentType: registry.contentType, log,
      onRefused: (reason) => refused.push(reason),
    });
    servers.push(server);
    await new Promise((r) => server.once('listening', r));
    return (server.address() as AddressInfo).port;
  }

  it('serves the peers metrics_allow lists and closes every other connection, the list read at every request (kept-alive connections too)', async () => {
    let allowed = parseCidrList('127.0.0.0/8, ::1');
    const port = await serve('127.0.0.1', () => allowed);
    const ok = await get('127.0.0.1', port);
    expect(ok).to.deep.include({ status: 200 });
    expect((ok as { body: string }).body).to.match(/^krsi_test_gauge 7$/m);
    expect(await get('127.0.0.1', port, '/other')).to.deep.include({ status: 404 });
    expect(refused).to.deep.equal([]);
    allowed = parseCidrList('192.0.2.0/24'); // a reload that leaves this host out
    expect(await get('127.0.0.1', port)).to.deep.equal({ error: 'ECONNRESET' });
    expect(refused, 'the refusal is counted (krsi_refused_total{reason="peer"})').to.deep.equal(['peer']);
    allowed = parseCidrList('127.0.0.1');
    expect(await get('127.0.0.1', port)).to.deep.include({ status: 200 });
  });

  it('over IPv6, and on a dual-stack socket, where IPv4 peers show as IPv4-mapped addresses', async () => {
    const v6 = await serve('::1', () => parseCidrList('::1'));
    expect(await get('::1', v6)).to.deep.include({ status: 200 });
    const v4only = await serve('::1', () => parseCidrList('127.0.0.0/8'));
    expect(await get('::1', v4only)).to.deep.equal({ error: 'ECONNRESET' });
    const dual = await serve('::', () => parseCidrList('127.0.0.0/8'));
    expect(await get('127.0.0.1', dual), 'an IPv4 peer of an IPv6 socket').to.deep.include({ status: 200 });
    expect(await get('::1', dual), '::1 is not in 127.0.0.0/8').to.deep.equal({ error: 'ECONNRESET' });
  });
});
