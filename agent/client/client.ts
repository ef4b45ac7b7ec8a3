/**
 * HTTP/JSON over the agent's unix socket, for krsictl and the Slurm prolog/epilog. Only node:http: the
 * prolog runs for every job, so this module must load fast and pull in nothing else.
 *
 * request() resolves with any HTTP status (the caller decides what a 403 or 422 means) and rejects with
 * a ClientError only when no usable answer came back:
 *   unreachable  no socket (ENOENT), nobody listening (ECONNREFUSED), not allowed to connect (EACCES), ...
 *   timeout      no complete answer within timeoutMs
 *   protocol     the answer was not JSON, was cut off, or too big
 */
import { request as httpRequest } from 'node:http';
import { createConnection } from 'node:net';

export const DEFAULT_SOCKET = '/run/slurm-krsi/agent.sock';
export const DEFAULT_TIMEOUT_MS = 10_000;
/** answers bigger than this are refused (an events page of 10000 lines is a few MB) */
export const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

export type ClientErrorKind = 'unreachable' | 'timeout' | 'protocol';

export class ClientError extends Error {
  constructor(
    readonly kind: ClientErrorKind,
    message: string,
    readonly socketPath: string,
    /** the errno code behind an unreachable agent (ENOENT, ECONNREFUSED, EACCES, ...) */
    readonly errno: string | null = null,
  ) {
    super(message);
    this.name = 'ClientError';
  }
}

export interface ClientResponse {
  status: number;
  body: unknown;
}

export interface RequestOptions {
  timeoutMs?: number;
}

export type Method = 'GET' | 'POST' | 'DELETE';

function unreachable(socketPath: string, err: NodeJS.ErrnoException): ClientError {
  const code = err.code ?? null;
  switch (code) {
    case 'ENOENT':
      return new ClientError('unreachable', `slurm-krsi agent is not running (no socket at ${socketPath})`, socketPath, code);
    case 'ECONNREFUSED':
      return new ClientError(
        'unreachable',
        `slurm-krsi agent is not running (nothing listens on ${socketPath}: a stale socket)`,
        socketPath,
        code,
      );
    case 'EACCES':
    case 'EPERM':
      return new ClientError(
        'unreachable',
        `permission denied connecting to the slurm-krsi agent at ${socketPath} (uid ${process.getuid?.() ?? '?'})`,
        socketPath,
        code,
      );
    case 'ENOTSOCK':
    case 'ENOTDIR':
      return new ClientError('unreachable', `${socketPath} is not the slurm-krsi agent's socket (${code})`, socketPath, code);
    default:
      return new ClientError(
        'unreachable',
        `cannot reach the slurm-krsi agent at ${socketPath}: ${err.message}`,
        socketPath,
        code,
      );
  }
}

/**
 * One request to the agent. `body` (if given) is sent as JSON. Resolves with the status and the parsed
 * JSON body (null for an empty body); rejects with a ClientError.
 */
export function request(
  socketPath: string,
  method: Method,
  path: string,
  body?: unknown,
  opts: RequestOptions = {},
): Promise<ClientResponse> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const payload = body === undefined ? null : Buffer.from(JSON.stringify(body), 'utf8');
  const headers: Record<string, string | number> = { accept: 'application/json', connection: 'close' };
  if (payload !== null) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = payload.length;
  }

  return new Promise<ClientResponse>((resolve, reject) => {
    let settled = false;
    const finish = (err: ClientError | null, value?: ClientResponse): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err !== null) {
        req.destroy();
        reject(err);
      } else if (value !== undefined) {
        resolve(value);
      }
    };

    // no http.Agent (one request per connection anyway): an agent calls net.isIP('localhost') for a TLS
    // server name, and the first isIP call compiles the IPv6 regular expression, several ms of every
    // prolog's and epilog's start
    const req = httpRequest({ socketPath, method, path, headers, createConnection: () => createConnection(socketPath) }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_RESPONSE_BYTES) {
          finish(new ClientError('protocol', `the agent's answer to ${method} ${path} is larger than ${MAX_RESPONSE_BYTES} bytes`, socketPath));
          return;
        }
        chunks.push(chunk);
      });
      res.on('aborted', () => {
        finish(new ClientError('protocol', `the agent closed the connection in the middle of its answer to ${method} ${path}`, socketPath));
      });
      res.on('error', (err) => {
        finish(new ClientError('protocol', `error reading the agent's answer to ${method} ${path}: ${err.message}`, socketPath));
      });
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const status = res.statusCode ?? 0;
        if (text.trim() === '') {
          finish(null, { status, body: null });
          return;
        }
        try {
          finish(null, { status, body: JSON.parse(text) as unknown });
        } catch {
          finish(
            new ClientError(
              'protocol',
              `the agent answered ${method} ${path} with HTTP ${status} and a body that is not JSON: ${JSON.stringify(text.slice(0, 200))}`,
              socketPath,
            ),
          );
        }
      });
    });

    const timer = setTimeout(() => {
      finish(
        new ClientError('timeout', `the slurm-krsi agent at ${socketPath} did not answer ${method} ${path} within ${timeoutMs} ms`, socketPath),
      );
    }, timeoutMs);

    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') {
        finish(new ClientError('protocol', `the agent at ${socketPath} closed the connection (${err.code}) during ${method} ${path}`, socketPath, err.code));
        return;
      }
      finish(unreachable(socketPath, err));
    });

    if (payload !== null) req.end(payload);
    else req.end();
  });
}

/** The `{ error: { code, message } }` body of an API error, or null when the body is not one. */
export function apiError(body: unknown): { code: string; message: string; problems?: string[] } | null {
  if (typeof body !== 'object' || body === null) return null;
  const e = (body as { error?: unknown }).error;
  if (typeof e !== 'object' || e === null) return null;
  const { code, message } = e as { code?: unknown; message?: unknown };
  if (typeof code !== 'string' || typeof message !== 'string') return null;
  const problems = (body as { problems?: unknown }).problems;
  if (Array.isArray(problems) && problems.every((p) => typeof p === 'string')) return { code, message, problems };
  return { code, message };
}
