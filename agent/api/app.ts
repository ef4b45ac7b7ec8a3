/**
 * The control API of krsi-agent: HTTP/JSON over the unix socket /run/slurm-krsi/agent.sock, a thin layer
 * over AgentService. buildApp() returns the fastify instance; server.ts listens.
 *
 *   POST   /v1/jobs           add a job (prolog)            write   201 created, 200 already known
 *   DELETE /v1/jobs/:job_id   remove a job (epilog)         write   200 (removed:false when unknown;
 *          ?registration=ID|none: only that run, laterRun:true when the id is registered again since)
 *   GET    /v1/jobs           { jobs: JobView[] }           own
 *   GET    /v1/jobs/:job_id   JobView, 404 when unknown     own
 *   GET    /v1/status         AgentStatus                   read
 *   GET    /v1/events         ?since=N&limit=N -> EventsPage own
 *   GET    /v1/profiles       { profiles: ProfileView[] }   read
 *   POST   /v1/reload         ReloadResult; 422 bad config  write
 *
 * Who may do what is decided from the peer's SO_PEERCRED (peercred.ts), never from anything in the
 * request: "write" needs uid 0 or the SlurmdUser; "read" needs a writer, or the admin_group as primary or
 * supplementary group; "own" is anyone's, and shows a caller who may not read only what is its own uid's
 * (its jobs, the events of its processes): a job of another uid is as unknown as one that does not exist.
 * A caller whose credentials cannot be read gets 403 before the body is even parsed, and so does one
 * without the right a route needs.
 *
 * Any local user can connect, and the prolog must never wait behind them (DoS). Writers (root, the
 * SlurmdUser) are never limited. Everyone else is, cheapest refusals first (ApiLimits):
 *   - on accept, from SO_PEERCRED alone (no /proc read, nothing parsed): at most `connectionsPerUid` open
 *     connections per uid and `readerConnections` for all of them together, and none for a uid that has
 *     used up its request rate; a refused connection is closed at once;
 *   - per request: `requestsPerSecondPerUid` (a token bucket, burst of two seconds), beyond which the
 *     answer is 429 and the connection is closed;
 *   - requests that pass (readers) are handled `readerConcurrency` at a time, `readerQueue` more waiting,
 *     beyond which 503: a costly read (a page of 10,000 events) cannot pile up in the event loop.
 * So non-writers together get a bounded share of the agent's event loop, however many processes they run.
 *
 * Every error is `{ "error": { "code": "KRSI_ERR_...", "message": "..." } }` (reload adds `problems`).
 * Request bodies are validated strictly: no type coercion, no silently dropped properties.
 */
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Socket } from 'node:net';
import { ERR, KrsiError, type AgentService, type JobRequest } from '../service/types.js';
import { ConnectionCount, Lane, TokenBucket } from './limits.js';
import { peerCredOfSocket, type PeerCred } from './peercred.js';
import {
  addJobResultSchema,
  eventsPageSchema,
  eventsQuerySchema,
  jobIdParamsSchema,
  jobViewSchema,
  jobRequestSchema,
  jobsListSchema,
  profilesSchema,
  reloadResultSchema,
  removeJobQuerySchema,
  removeJobResultSchema,
  statusSchema,
} from './schemas.js';

/** codes the API adds to agent/service's ERR */
export const API_ERR = {
  ...ERR, UNSUPPORTED_MEDIA_TYPE: 'KRSI_ERR_UNSUPPORTED_MEDIA_TYPE', RATE_LIMITED: 'KRSI_ERR_RATE_LIMITED', BUSY: 'KRSI_ERR_BUSY',
} as const;

export interface AccessPolicy {
  /** may add/remove jobs and reload: 0 and the SlurmdUser's uid (uid 0 is always a writer) */
  writerUids: Set<number>;
  /** members (primary or supplementary) may read: admin_group's gid; empty when admin_group is not set */
  readerGids: Set<number>;
  /** names for messages only */
  slurmdUser?: string;
  adminGroup?: string | null;
}

/** 'own': any caller, who sees only its own uid's records unless it may read everything */
export type Right = 'read' | 'write' | 'own';

export interface BuildAppOptions {
  service: AgentService;
  access: AccessPolicy;
  /** false (default), true, pino options, or a pino-compatible logger instance */
  logger?: boolean | object;
  /** request body limit in bytes, default 64 KiB */
  bodyLimit?: number;
  /** where credentials come from; default: SO_PEERCRED of the request's socket. Tests play any uid with it. */
  credentials?: (request: FastifyRequest) => PeerCred | null;
  /** what non-writers may use (defaults: API_LIMITS) */
  limits?: Partial<ApiLimits>;
  /** counts what the limits refused, by reason */
  onRefused?: (reason: ApiRefusal) => void;
}

export interface ApiLimits {
  connectionsPerUid: number;
  readerConnections: number;
  requestsPerSecondPerUid: number;
  readerConcurrency: number;
  readerQueue: number;
}

export const API_LIMITS: ApiLimits = {
  connectionsPerUid: 8, readerConnections: 64, requestsPerSecondPerUid: 20, readerConcurrency: 2, readerQueue: 32,
};

export type ApiRefusal = 'connections' | 'rate' | 'busy';

export const DEFAULT_BODY_LIMIT = 64 * 1024;
export const EVENTS_DEFAULT_LIMIT = 100;
export const EVENTS_MAX_LIMIT = 10_000;

declare module 'fastify' {
  interface FastifyContextConfig {
    /** the right a route needs, and what the caller tries to do, for the 403 message */
    access?: { right: Right; action: string };
  }
}

/** SO_PEERCRED of the request's socket (cached per connection) */
export function credentialsOf(request: FastifyRequest): PeerCred | null {
  const socket = request.raw.socket as Socket | undefined;
  return socket ? peerCredOfSocket(socket) : null;
}

export function isWriter(access: AccessPolicy, cred: PeerCred): boolean {
  return cred.uid === 0 || access.writerUids.has(cred.uid);
}

export function isReader(access: AccessPolicy, cred: PeerCred): boolean {
  if (isWriter(access, cred)) return true;
  // no admin_group: nobody else reads, and the peer's groups (a /proc read) are not needed
  if (access.readerGids.size === 0) return false;
  if (access.readerGids.has(cred.gid)) return true;
  return cred.groups.some((g) => access.readerGids.has(g));
}

/** null when allowed, else the 403 message */
export function denial(access: AccessPolicy, cred: PeerCred | null, right: Right, action: string): string | null {
  if (cred === null) {
    return `cannot ${action}: the caller's credentials could not be read (SO_PEERCRED); refusing`;
  }
  if (right === 'own' || (right === 'write' ? isWriter(access, cred) : isReader(access, cred))) return null;
  const slurmd = access.slurmdUser !== undefined ? ` (${access.slurmdUser})` : '';
  const group =
    access.adminGroup !== undefined && access.adminGroup !== null ? ` (${access.adminGroup})` : '';
  const readers =
    access.readerGids.size > 0 ? `admin_group${group} members may read` : 'admin_group is not set in krsi.ini, so only they may read';
  if (right === 'write') {
    return `uid ${cred.uid} may not ${action}: only root and the SlurmdUser${slurmd} may; ${readers}`;
  }
  return `uid ${cred.uid} may not ${action}: only root, the SlurmdUser${slurmd} and admin_group${group} members may${
    access.readerGids.size > 0 ? '' : ' (admin_group is not set in krsi.ini)'
  }`;
}

interface ApiErrorBody {
  error: { code: string; message: string; details?: Record<string, unknown> };
  problems?: string[];
}

function errorBody(code: string, message: string): ApiErrorBody {
  return { error: { code, message } };
}

function isConfigError(err: unknown): err is Error & { problems: string[]; path: string } {
  if (!(err instanceof Error) || err.name !== 'ConfigError') return false;
  const problems: unknown = (err as unknown as { problems?: unknown }).problems;
  return Array.isArray(problems) && problems.every((p) => typeof p === 'string');
}

function isKrsiError(err: unknown): err is KrsiError {
  if (err instanceof KrsiError) return true;
  // a KrsiError from another copy of the module
  const e = err as { name?: unknown; code?: unknown; statusCode?: unknown };
  return (
    err instanceof Error &&
    e.name === 'KrsiError' &&
    typeof e.code === 'string' &&
    e.code.startsWith('KRSI_ERR_') &&
    typeof e.statusCode === 'number' &&
    Number.isInteger(e.statusCode) &&
    e.statusCode >= 400 &&
    e.statusCode <= 599
  );
}

/** any error a route or fastify raised -> status and body; never leaks a stack */
export function toApiError(err: unknown): { status: number; body: ApiErrorBody; internal: boolean } {
  if (isConfigError(err)) {
    const body = errorBody(ERR.CONFIG, `config rejected, the agent keeps the previous one:\n${err.problems.join('\n')}`);
    body.problems = [...err.problems];
    return { status: 422, body, internal: false };
  }
  if (isKrsiError(err)) {
    const body = errorBody(err.code, err.message);
    const details = (err as { details?: unknown }).details;
    if (details !== null && typeof details === 'object' && Object.keys(details).length > 0) {
      body.error.details = details as Record<string, unknown>;
      const problems = (details as { problems?: unknown }).problems;
      // a rejected reload's problems, where ConfigError puts them too
      if (Array.isArray(problems) && problems.every((p) => typeof p === 'string')) body.problems = problems;
    }
    return { status: err.statusCode, body, internal: err.statusCode >= 500 };
  }
  const fe = err as Partial<FastifyError> & { validationContext?: string };
  if (err instanceof Error && fe.validation !== undefined) {
    return { status: 400, body: errorBody(ERR.BAD_REQUEST, `invalid request: ${err.message}`), internal: false };
  }
  switch (fe.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { status: 413, body: errorBody(ERR.PAYLOAD_TOO_LARGE, `request body too large: ${fe.message ?? ''}`), internal: false };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return {
        status: 415,
        body: errorBody(API_ERR.UNSUPPORTED_MEDIA_TYPE, `unsupported content type: send application/json (${fe.message ?? ''})`),
        internal: false,
      };
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return { status: 400, body: errorBody(ERR.BAD_REQUEST, `invalid request body: ${fe.message ?? ''}`), internal: false };
  }
  // other client errors fastify raises (bad JSON that is not FST-coded, prototype poisoning, bad URL)
  if (err instanceof Error && typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    const code = fe.statusCode === 413 ? ERR.PAYLOAD_TOO_LARGE : fe.statusCode === 404 ? ERR.NOT_FOUND : ERR.BAD_REQUEST;
    return { status: fe.statusCode, body: errorBody(code, `invalid request: ${err.message}`), internal: false };
  }
  return { status: 500, body: errorBody(ERR.INTERNAL, 'internal error in krsi-agent; see the agent log'), internal: true };
}

function isLoggerInstance(x: object): boolean {
  const l = x as Record<string, unknown>;
  return typeof l['child'] === 'function' && typeof l['info'] === 'function' && typeof l['error'] === 'function';
}

function loggerOptions(logger: boolean | object | undefined): Record<string, unknown> {
  if (logger === undefined || logger === false) return { logger: false };
  if (logger === true) return { logger: true };
  return isLoggerInstance(logger) ? { loggerInstance: logger } : { logger };
}

function parseQueryInt(value: string | undefined, name: string, def: number, min: number, max: number): number {
  if (value === undefined) return def;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new KrsiError(ERR.BAD_REQUEST, 400, `invalid request: querystring/${name} must be an integer from ${min} to ${max}`);
  }
  return n;
}

/** Build the API; does not listen (see server.ts). */
export function buildApp(opts: BuildAppOptions): FastifyInstance {
  const { service, access } = opts;
  const credentials = opts.credentials ?? credentialsOf;

  const app = Fastify({
    ...loggerOptions(opts.logger),
    bodyLimit: opts.bodyLimit ?? DEFAULT_BODY_LIMIT,
    // idle connections and slow senders cannot hold the socket: the prolog makes one short request
    connectionTimeout: 60_000,
    keepAliveTimeout: 5_000,
    requestTimeout: 10_000,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false, useDefaults: false } },
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    frameworkErrors: (err: Error, _request: FastifyRequest, reply: FastifyReply) => {
      void reply.code(400).send(errorBody(ERR.BAD_REQUEST, `invalid request: ${err.message}`));
    },
  }) as unknown as FastifyInstance;

  // Non-writers' share of the event loop (see the file comment). A caller without credentials counts as
  // uid -1, a non-writer.
  const limits = { ...API_LIMITS, ...opts.limits };
  const refused = (reason: ApiRefusal) => opts.onRefused?.(reason);
  const rates = new Map<number, TokenBucket>();
  const connections = new ConnectionCount<number>(limits.connectionsPerUid, limits.readerConnections);
  const readers = new Lane(limits.readerConcurrency, limits.readerQueue);
  const rateOf = (uid: number) => {
    let bucket = rates.get(uid);
    if (bucket === undefined) {
      bucket = new TokenBucket(limits.requestsPerSecondPerUid, 2 * limits.requestsPerSecondPerUid);
      rates.set(uid, bucket);
    }
    return bucket;
  };
  // connections are counted only with real sockets and the default credential source
  if (opts.credentials === undefined) {
    app.server.on('connection', (socket: Socket) => {
      const cred = peerCredOfSocket(socket);
      if (cred !== null && isWriter(access, cred)) return;
      const uid = cred?.uid ?? -1;
      // a uid out of requests gets no new connection either: refusing it here costs no parsing
      const admitted = rates.get(uid)?.hasToken() !== false &&
        connections.admit(uid, (release) => socket.once('close', () => {
          release();
          // a uid's bucket goes with its last connection once it is full again (nothing to remember)
          if (connections.count(uid) === 0 && rates.get(uid)?.isFull()) rates.delete(uid);
        }));
      if (!admitted) {
        refused('connections');
        socket.destroy();
      }
    });
  }

  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    let cred: PeerCred | null;
    try {
      cred = credentials(request);
    } catch {
      cred = null;
    }
    if (cred !== null && isWriter(access, cred)) return; // root and the SlurmdUser: never limited, never queued
    if (!rateOf(cred?.uid ?? -1).take()) {
      refused('rate');
      await reply.code(429).header('connection', 'close')
        .send(errorBody(API_ERR.RATE_LIMITED, `too many requests from uid ${cred?.uid ?? 'unknown'}: at most ${limits.requestsPerSecondPerUid} a second`));
      return reply;
    }
    const rule = request.routeOptions.config.access;
    if (rule === undefined) return; // unknown route: the 404 handler answers
    const message = denial(access, cred, rule.right, rule.action);
    if (message !== null) {
      request.log.warn({ uid: cred?.uid ?? null, pid: cred?.pid ?? null, url: request.url }, 'krsi-api: forbidden');
      await reply.code(403).send(errorBody(ERR.FORBIDDEN, message));
      return reply;
    }
    const release = await readers.acquire();
    if (release === null) {
      refused('busy');
      await reply.code(503).header('connection', 'close')
        .send(errorBody(API_ERR.BUSY, `the agent is busy with other readers' requests (${limits.readerQueue} waiting); try again`));
      return reply;
    }
    // the slot is held until the answer is written or the connection goes, whichever comes first
    reply.raw.once('close', release);
  });

  app.setErrorHandler((err: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const mapped = toApiError(err);
    if (mapped.internal) request.log.error({ err }, 'krsi-api: request failed');
    else request.log.info({ code: mapped.body.error.code }, mapped.body.error.message);
    void reply.code(mapped.status).send(mapped.body);
  });

  app.setNotFoundHandler((request: FastifyRequest, reply: FastifyReply) => {
    void reply
      .code(404)
      .send(errorBody(ERR.NOT_FOUND, `no such API route: ${request.method} ${request.url.split('?')[0] ?? ''}`));
  });

  /**
   * on an 'own' route, the uid whose records the caller sees: undefined (all of them) for a reader. The
   * onRequest hook refused a caller without credentials; this runs after it.
   */
  const ownUid = (request: FastifyRequest): number | undefined => {
    const cred = credentials(request);
    if (cred === null) throw new KrsiError(ERR.FORBIDDEN, 403, 'the caller\'s credentials could not be read (SO_PEERCRED); refusing');
    return isReader(access, cred) ? undefined : cred.uid;
  };

  app.post<{ Body: JobRequest }>(
    '/v1/jobs',
    {
      config: { access: { right: 'write', action: 'add jobs' } },
      schema: { body: jobRequestSchema, response: { 200: addJobResultSchema, 201: addJobResultSchema } },
    },
    async (request, reply) => {
      const result = await service.addJob(request.body);
      return reply.code(result.created ? 201 : 200).send(result);
    },
  );

  app.delete<{ Params: { job_id: string }; Querystring: { registration?: string } }>(
    '/v1/jobs/:job_id',
    {
      config: { access: { right: 'write', action: 'remove jobs' } },
      schema: { params: jobIdParamsSchema, querystring: removeJobQuerySchema, response: { 200: removeJobResultSchema } },
    },
    async (request) => {
      const { registration } = request.query;
      return service.removeJob(request.params.job_id, registration === undefined ? undefined : registration === 'none' ? null : registration);
    },
  );

  app.get(
    '/v1/jobs',
    { config: { access: { right: 'own', action: 'list jobs' } }, schema: { response: { 200: jobsListSchema } } },
    async (request) => {
      const uid = ownUid(request);
      const jobs = service.listJobs();
      return { jobs: uid === undefined ? jobs : jobs.filter((j) => j.uid === uid) };
    },
  );

  app.get<{ Params: { job_id: string } }>(
    '/v1/jobs/:job_id',
    {
      config: { access: { right: 'own', action: 'read jobs' } },
      schema: { params: jobIdParamsSchema, response: { 200: jobViewSchema } },
    },
    async (request) => {
      const uid = ownUid(request);
      const job = service.getJob(request.params.job_id);
      if (job === null || (uid !== undefined && job.uid !== uid)) throw new KrsiError(ERR.NOT_FOUND, 404, `no job ${request.params.job_id} on this node`);
      return job;
    },
  );

  app.get(
    '/v1/status',
    { config: { access: { right: 'read', action: 'read the agent status' } }, schema: { response: { 200: statusSchema } } },
    async () => service.status(),
  );

  app.get<{ Querystring: { since?: string; limit?: string } }>(
    '/v1/events',
    {
      config: { access: { right: 'own', action: 'read events' } },
      schema: { querystring: eventsQuerySchema, response: { 200: eventsPageSchema } },
    },
    async (request) => {
      const uid = ownUid(request);
      const since = parseQueryInt(request.query.since, 'since', 0, 0, Number.MAX_SAFE_INTEGER);
      const limit = parseQueryInt(request.query.limit, 'limit', EVENTS_DEFAULT_LIMIT, 1, EVENTS_MAX_LIMIT);
      return service.events(since, limit, uid);
    },
  );

  app.get(
    '/v1/profiles',
    { config: { access: { right: 'read', action: 'read profiles' } }, schema: { response: { 200: profilesSchema } } },
    async () => ({ profiles: service.profiles() }),
  );

  app.post(
    '/v1/reload',
    { config: { access: { right: 'write', action: 'reload the config' } }, schema: { response: { 200: reloadResultSchema } } },
    async () => service.reload(),
  );

  return app;
}
