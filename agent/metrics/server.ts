/**
 * The metrics endpoint: GET /metrics over plain HTTP on metrics_listen (default 127.0.0.1:9817), for the
 * peers metrics_allow lists (default loopback, where every local user can reach it). It shares the agent's
 * one event loop with the control socket, so what a flood of scrapes can cost is bounded, cheapest
 * refusals first:
 *   - peers: a connection from an address outside metrics_allow is closed as it is accepted, before a byte
 *     of it is read; the list is read again at every connection and request, so that a reload applies at
 *     once, to the scrapers' kept-alive connections too;
 *   - connections: at most MAX_CONNECTIONS open, MAX_PER_ADDRESS from one remote address; more are closed on
 *     accept, before a byte is read;
 *   - requests: at most REQUESTS_PER_SECOND answered a second (a token bucket, burst of one second); beyond,
 *     the connection is closed unanswered;
 *   - rendering: the text is rendered at most once per RENDER_EVERY_MS and served from that copy meanwhile
 *     (concurrent scrapes wait for the one render in flight), so scrapes never add work in the agent or
 *     the kernel's maps; Prometheus scrapes every 15 s or more.
 * Slow senders are cut off by short header and request timeouts.
 */
import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { TokenBucket } from '../api/limits.js';
import type { ListenAddress } from '../config/values.js';
import { inCidrs, type Cidr } from '../enforcement/cidr.js';

export interface MetricsServerOptions {
  listen: ListenAddress;
  /** who may scrape (metrics_allow), asked at every connection and request */
  allowed: () => readonly Cidr[];
  render: () => Promise<string>;
  contentType: string;
  log: { info(msg: string, fields?: object): void; error(msg: string, fields?: object): void };
  /** counts what was refused, by reason */
  onRefused?: (reason: RefusalReason) => void;
  limits?: Partial<MetricsLimits>;
}

export type RefusalReason = 'peer' | 'connections' | 'rate';

export interface MetricsLimits {
  maxConnections: number;
  maxPerAddress: number;
  requestsPerSecond: number;
  renderEveryMs: number;
}

export const METRICS_LIMITS: MetricsLimits = { maxConnections: 32, maxPerAddress: 8, requestsPerSecond: 50, renderEveryMs: 1000 };

/** the rendered text, at most once per `everyMs`; concurrent callers share the render in flight */
export function cachedRender(render: () => Promise<string>, everyMs: number): () => Promise<string> {
  let text: string | null = null;
  let renderedAt = -Infinity;
  let inFlight: Promise<string> | null = null;
  return () => {
    if (text !== null && performance.now() - renderedAt < everyMs) return Promise.resolve(text);
    inFlight ??= render()
      .then((t) => {
        text = t;
        renderedAt = performance.now();
        return t;
      })
      .finally(() => {
        inFlight = null;
      });
    return inFlight;
  };
}

export function startMetricsServer(opts: MetricsServerOptions): Server {
  const limits = { ...METRICS_LIMITS, ...opts.limits };
  const render = cachedRender(opts.render, limits.renderEveryMs);
  const requests = new TokenBucket(limits.requestsPerSecond, limits.requestsPerSecond);
  const perAddress = new Map<string, number>();
  const refuse = (socket: Socket, reason: RefusalReason) => {
    opts.onRefused?.(reason);
    socket.destroy();
  };

  const allowedPeer = (socket: Socket): boolean => inCidrs(socket.remoteAddress ?? '', opts.allowed());

  const server = createServer((req, res) => {
    if (!allowedPeer(req.socket)) {
      refuse(req.socket, 'peer');
      return;
    }
    if (!requests.take()) {
      refuse(req.socket, 'rate');
      return;
    }
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: GET /metrics\n');
      return;
    }
    render()
      .then((body) => res.writeHead(200, { 'content-type': opts.contentType }).end(body))
      .catch((err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`));
  });
  server.headersTimeout = 5_000;
  server.requestTimeout = 10_000;
  server.keepAliveTimeout = 5_000;
  // beyond maxConnections, node closes a connection as it accepts it, before any JavaScript runs for it
  server.maxConnections = limits.maxConnections;
  server.on('drop', () => opts.onRefused?.('connections'));
  server.on('connection', (socket: Socket) => {
    if (!allowedPeer(socket)) {
      refuse(socket, 'peer');
      return;
    }
    const address = socket.remoteAddress ?? '';
    const fromAddress = perAddress.get(address) ?? 0;
    if (fromAddress >= limits.maxPerAddress) {
      refuse(socket, 'connections');
      return;
    }
    perAddress.set(address, fromAddress + 1);
    socket.once('close', () => {
      const left = (perAddress.get(address) ?? 1) - 1;
      if (left <= 0) perAddress.delete(address);
      else perAddress.set(address, left);
    });
  });
  const { host, port } = opts.listen;
  const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  server.on('error', (err) => opts.log.error('metrics endpoint failed', { listen: where, error: err.message }));
  server.listen(port, host, () => opts.log.info('metrics endpoint listening', { listen: where, ...limits }));
  return server;
}
