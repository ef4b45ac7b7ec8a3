import { expect } from 'chai';
import type { FastifyRequest } from 'fastify';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { buildApp, type ApiRefusal } from '../../../agent/api/app.js';
import { ConnectionCount, Lane, TokenBucket } from '../../../agent/api/limits.js';
import { parseCidrList } from '../../../agent/config/values.js';
import { cachedRender, startMetricsServer, type MetricsLimits, type RefusalReason } from '../../../agent/metrics/server.js';
import { accessPolicy, FakeService, ROOT, USER } from './fake-service.js';

const quietLog = { info: () => {}, error: () => {} };
const LOOPBACK = parseCidrList('127.0.0.0/8, ::1');

describe('limits: building blocks', () => {
  it('TokenBucket: a burst, then nothing until time refills it', async () => {
    const b = new TokenBucket(100, 3);
    expect([b.take(), b.take(), b.take(), b.take()]).to.deep.equal([true, true, true, false]);
    expect(b.hasToken()).to.equal(false);
    await new Promise((r) => setTimeout(r, 30)); // 100 a second: 3 back after 30 ms, at most the burst
    expect(b.hasToken()).to.equal(true);
    expect([b.take(), b.take()]).to.deep.equal([true, true]);
  });

  it('TokenBucket: full only once the whole burst is back (a forgotten bucket must not hand out a fresh burst)', async () => {
    const b = new TokenBucket(100, 4);
    expect(b.isFull()).to.equal(true);
    expect([b.take(), b.take(), b.take()]).to.deep.equal([true, true, true]);
    expect(b.hasToken(), 'a token left').to.equal(true);
    expect(b.isFull(), 'but not full').to.equal(false);
    await new Promise((r) => setTimeout(r, 50)); // 100 a second: the 3 taken are back after 30 ms
    expect(b.isFull()).to.equal(true);
  });

  it('ConnectionCount: a cap per key and one for all keys; a closed connection frees its place', () => {
    const c = new ConnectionCount<number>(2, 3);
    const closers: (() => void)[] = [];
    const admit = (k: number) => c.admit(k, (release) => closers.push(release));
    expect([admit(1), admit(1), admit(1)]).to.deep.equal([true, true, false]);
    expect([admit(2), admit(3)]).to.deep.equal([true, false]);
    expect(c.count(1)).to.equal(2);
    closers[0]!();
    expect([admit(3), admit(3)]).to.deep.equal([true, false]);
    expect(c.count(1)).to.equal(1);
  });

  it('Lane: runs `concurrency` at a time in arrival order, queues `queue` more, refuses beyond', async () => {
    const lane = new Lane(1, 2);
    const first = await lane.acquire();
    const order: number[] = [];
    const second = lane.acquire().then((r) => { order.push(2); return r; });
    const third = lane.acquire().then((r) => { order.push(3); return r; });
    expect(await lane.acquire(), 'the queue is full').to.equal(null);
    first!();
    first!(); // a second release of the same slot changes nothing
    (await second)!();
    (await third)!();
    expect(order).to.deep.equal([2, 3]);
    const again = await lane.acquire();
    expect(again).to.be.a('function');
  });

  it('cachedRender: one render per period, shared by concurrent callers', async () => {
    let renders = 0;
    const render = cachedRender(async () => `text ${++renders}`, 60_000);
    const texts = await Promise.all(Array.from({ length: 20 }, () => render()));
    expect(new Set(texts)).to.deep.equal(new Set(['text 1']));
    expect(await render()).to.equal('text 1');
    expect(renders).to.equal(1);
    const fresh = cachedRender(async () => `text ${++renders}`, 0);
    await fresh();
    await fresh();
    expect(renders).to.equal(3);
  });
});

describe('limits: the control API (app.inject)', () => {
  it('a non-writer past its request rate gets 429 and the connection closes; a writer is never limited', async () => {
    const refused: ApiRefusal[] = [];
    const as = (req: FastifyRequest) => (req.headers['x-test-caller'] === 'user' ? USER : ROOT);
    const app = buildApp({ service: new FakeService(), access: accessPolicy(), credentials: as, limits: { requestsPerSecondPerUid: 2 }, onRefused: (r) => refused.push(r) });
    try {
      const user = await Promise.all(Array.from({ length: 6 }, () => app.inject({ url: '/v1/status', headers: { 'x-test-caller': 'user' } })));
      // a burst of two seconds' worth (4), then 429
      expect(user.map((r) => r.statusCode)).to.deep.equal([403, 403, 403, 403, 429, 429]);
      expect(user[4]!.headers.connection).to.equal('close');
      expect(user[4]!.json()).to.deep.include({ error: { code: 'KRSI_ERR_RATE_LIMITED', message: 'too many requests from uid 1000: at most 2 a second' } });
      expect(refused).to.deep.equal(['rate', 'rate']);
      const root = await Promise.all(Array.from({ length: 50 }, () => app.inject({ url: '/v1/status' })));
      expect(root.every((r) => r.statusCode === 200)).to.equal(true);
    } finally {
      await app.close();
    }
  });
});

describe('limits: the metrics endpoint (real TCP on 127.0.0.1)', () => {
  async function withServer(limits: Partial<MetricsLimits>, test: (port: number, refused: RefusalReason[], renders: () => number) => Promise<void>) {
    let renders = 0;
    const refused: RefusalReason[] = [];
    const server = startMetricsServer({
      listen: { host: '127.0.0.1', port: 0 }, allowed: () => LOOPBACK, render: async () => `krsi_test ${++renders}\n`, contentType: 'text/plain', log: quietLog,
      onRefused: (r) => refused.push(r), limits,
    });
    await once(server, 'listening');
    try {
      await test((server.address() as AddressInfo).port, refused, () => renders);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  }

  const get = (port: number) => fetch(`http://127.0.0.1:${port}/metrics`, { headers: { connection: 'close' } })
    .then(async (r) => ({ status: r.status, text: await r.text() }), () => ({ status: 0, text: '' }));

  it('renders at most once per period, whatever the number of scrapes', async () => {
    await withServer({ renderEveryMs: 60_000 }, async (port, _refused, renders) => {
      const got = await Promise.all(Array.from({ length: 10 }, () => get(port)));
      expect(got.map((g) => g.status)).to.deep.equal(Array(10).fill(200));
      expect(new Set(got.map((g) => g.text))).to.deep.equal(new Set(['krsi_test 1\n']));
      expect(renders()).to.equal(1);
      expect((await fetch(`http://127.0.0.1:${port}/other`)).status).to.equal(404);
    });
  });

  it('answers at most requestsPerSecond a second: beyond, the connection is closed unanswered', async () => {
    await withServer({ requestsPerSecond: 3 }, async (port, refused) => {
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) statuses.push((await get(port)).status);
      expect(statuses).to.deep.equal([200, 200, 200, 0, 0]);
      expect(refused).to.deep.equal(['rate', 'rate']);
    });
  });

  it('closes connections beyond the cap per address and the global cap as it accepts them', async () => {
    await withServer({ maxPerAddress: 2, maxConnections: 3 }, async (port, refused) => {
      const sockets = Array.from({ length: 5 }, () => connect(port, '127.0.0.1'));
      const closed = await Promise.all(sockets.map((s) => new Promise<boolean>((resolve) => {
        s.on('close', () => resolve(true));
        s.on('error', () => resolve(true));
        setTimeout(() => resolve(false), 500);
      })));
      expect(closed.filter((c) => c).length).to.equal(3);
      expect(refused).to.deep.equal(['connections', 'connections', 'connections']);
      for (const s of sockets) s.destroy();
    });
  });
});
