/**
 * The control API of krsi-agent: HTTP/JSON over the unix socket /run/slurm-krsi/agent.sock, a thin layer
 * over AgentService. buildApp() returns the fastify instance; server.ts listens.
 *
 *   POST   /v1/jobs           add a job (prolog)            write   201 created, 200 already known
 *   DELETE /v1/jobs/:job_id   remove a job (epilog)         write   200 (removed:false when unknown)
 *   GET    /v1/jobs           { jobs: JobRecord[] }         read
 *   GET    /v1/jobs/:job_id   JobRecord, 404 when unknown   read
 *   GET    /v1/status         AgentStatus                   read
 *   GET    /v1/events         ?since=N&limit=N -> EventsPage read
 *   GET    /v1/profiles       { profiles: ProfileView[] }   read
 *   POST   /v1/reload         ReloadResult; 422 bad config  write
 *
 * Who may do what is decided from the peer's SO_PEERCRED (peercred.ts), never from anything in the
 * request: "write" needs uid 0 or the SlurmdUser; "read" needs a writer, or the admin_group as primary or
 * supplementary group. Everyone else, and a caller whose credentials cannot be read, gets 403 before the
 * body is even parsed.
 *
 * Every error is `{ "error": { "code": "KRSI_ERR_...", "message": "..." } }` (reload adds `problems`).
 * Request bodies are validated strictly: no type coercion, no silently dropped properties.
 */
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Socket } from 'node:net';
import { ERR, KrsiError, type AgentService, type JobRequest } from '../service/types.js';
import { peerCredOfSocket, type PeerCred } from './peercred.js';
import {
  addJobResultSchema,
  eventsPageSchema,
  eventsQuerySchema,
  jobIdParamsSchema,
  jobRecordSchema,
  jobRequestSchema,
  jobsListSchema,
  profilesSchema,
  reloadResultSchema,
  removeJobResultSchema,
  statusSchema,
} from './schemas.js';

/** codes the API adds to agent/service's ERR */
export const API_ERR = { ...ERR, UNSUPPORTED_MEDIA_TYPE: 'KRSI_ERR_UNSUPPORTED_MEDIA_TYPE' } as const;

export interface AccessPolicy {
  /** may add/remove jobs and reload: 0 and the SlurmdUser's uid (uid 0 is always a writer) */
  writerUids: Set<number>;
  /** members (primary or supplementary) may read: admin_group's gid; empty when admin_group is not set */
  readerGids: Set<number>;
  /** names for messages only */
  slurmdUser?: string;
  adminGroup?: string | null;
}

export type Right = 'read' | 'write';

export interface BuildAppOptions {
  service: AgentService;
  access: AccessPolicy;
  /** false (default), true, pino options, or a pino-compatible logger instance */
  logger?: boolean | object;
  /** request body limit in bytes, default 64 KiB */
  bodyLimit?: number;
  /** where credentials come from; default: SO_PEERCRED of the request's socket. Tests play any uid with it. */
  credentials?: (request: FastifyRequest) => PeerCred | null;
  /** open connections allowed per uid that is not a writer (default 16); extra ones are closed at once */
  maxConnectionsPerUid?: number;
}

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
  if (access.readerGids.has(cred.gid)) return true;
  return cred.groups.some((g) => access.readerGids.has(g));
}

/** null when allowed, else the 403 message */
export function denial(access: AccessPolicy, cred: PeerCred | null, right: Right, action: string): string | null {
  if (cred === null) {
    return `cannot ${action}: the caller's credentials could not be read (SO_PEERCRED); refusing`;
  }
  if (right === 'write' ? isWriter(access, cred) : isReader(access, cred)) return null;
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

  // A local user who may not use the API at all must not be able to exhaust the agent's connections (and so
  // block the prolog): connections beyond the cap per non-writer uid are closed on accept. Only with real
  // sockets and the default credential source.
  if (opts.credentials === undefined) {
    const cap = opts.maxConnectionsPerUid ?? 16;
    const open = new Map<number, number>();
    app.server.on('connection', (socket: Socket) => {
      const cred = peerCredOfSocket(socket);
      if (cred !== null && isWriter(access, cred)) return;
      const key = cred?.uid ?? -1;
      const count = open.get(key) ?? 0;
      if (count >= cap) {
        socket.destroy();
        return;
      }
      open.set(key, count + 1);
      socket.once('close', () => {
        const left = (open.get(key) ?? 1) - 1;
        if (left <= 0) open.delete(key);
        else open.set(key, left);
      });
    });
  }

  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    const rule = request.routeOptions.config.access;
    if (rule === undefined) return; // unknown route: the 404 handler answers
    let cred: PeerCred | null;
    try {
      cred = credentials(request);
    } catch {
      cred = null;
    }
    const message = denial(access, cred, rule.right, rule.action);
    if (message !== null) {
      request.log.warn({ uid: cred?.uid ?? null, pid: cred?.pid ?? null, url: request.url }, 'krsi-api: forbidden');
      await reply.code(403).send(errorBody(ERR.FORBIDDEN, message));
    }
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

  app.delete<{ Params: { job_id: string } }>(
    '/v1/jobs/:job_id',
    {
      config: { access: { right: 'write', action: 'remove jobs' } },
      schema: { params: jobIdParamsSchema, response: { 200: removeJobResultSchema } },
    },
    async (request) => service.removeJob(request.params.job_id),
  );

  app.get(
    '/v1/jobs',
    { config: { access: { right: 'read', action: 'list jobs' } }, schema: { response: { 200: jobsListSchema } } },
    async () => ({ jobs: service.listJobs() }),
  );

  app.get<{ Params: { job_id: string } }>(
    '/v1/jobs/:job_id',
    {
      config: { access: { right: 'read', action: 'read jobs' } },
      schema: { params: jobIdParamsSchema, response: { 200: jobRecordSchema } },
    },
    async (request) => {
      const job = service.getJob(request.params.job_id);
      if (job === null) throw new KrsiError(ERR.NOT_FOUND, 404, `no job ${request.params.job_id} on this node`);
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
      config: { access: { right: 'read', action: 'read events' } },
      schema: { querystring: eventsQuerySchema, response: { 200: eventsPageSchema } },
    },
    async (request) => {
      const since = parseQueryInt(request.query.since, 'since', 0, 0, Number.MAX_SAFE_INTEGER);
      const limit = parseQueryInt(request.query.limit, 'limit', EVENTS_DEFAULT_LIMIT, 1, EVENTS_MAX_LIMIT);
      return service.events(since, limit);
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
