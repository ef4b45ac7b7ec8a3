/**
 * Listen on the control socket (/run/slurm-krsi/agent.sock).
 *
 * Socket mode: 0666 (DEFAULT_SOCKET_MODE), owned by root. The decision who may do what is made per
 * connection from SO_PEERCRED (app.ts), as munged does for its world-connectable socket: the mode cannot
 * express "root and the SlurmdUser write, admin_group reads", and a world-connectable socket lets an
 * ordinary user who runs `krsictl status` get a clear 403 ("uid 1000 may not read the agent status: only
 * root, ...") instead of a bare EACCES. What a connection costs an unprivileged user is bounded in app.ts:
 * 403 before the body is parsed, short request and idle timeouts, and a cap on open connections per
 * non-writer uid so that nobody can crowd out the prolog. Sites that want the file mode as a second wall
 * pass { mode: 0o660, gid: <admin_group> } (the SlurmdUser must then be root or in that group).
 *
 * The parent directory (/run/slurm-krsi, systemd's RuntimeDirectory=) is created 0755 if missing.
 */
import { chmodSync, chownSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import type { FastifyInstance } from 'fastify';

export const DEFAULT_SOCKET_MODE = 0o666;

export interface ListenUnixOptions {
  mode: number;
  uid: number;
  gid: number;
}

export class SocketPathError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(message);
    this.name = 'SocketPathError';
  }
}

/** Unlink a stale socket at `path`; refuse (SocketPathError) if something else is there. */
export function removeStaleSocket(path: string): void {
  let st;
  try {
    st = lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!st.isSocket()) {
    const kind = st.isFile() ? 'a regular file' : st.isDirectory() ? 'a directory' : st.isSymbolicLink() ? 'a symbolic link' : 'not a socket';
    throw new SocketPathError(
      path,
      `slurm-krsi: refusing to listen on ${path}: it is ${kind}, not a stale socket; remove it by hand if it is not needed`,
    );
  }
  unlinkSync(path);
}

/**
 * Listen on a unix socket at `path` (replacing a stale socket file), then set its mode and owner.
 * Returns a function that closes the server and removes the socket file.
 */
export async function listenUnix(app: FastifyInstance, path: string, opts: ListenUnixOptions): Promise<() => Promise<void>> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  removeStaleSocket(path);
  await app.listen({ path });
  try {
    chownSync(path, opts.uid, opts.gid);
    chmodSync(path, opts.mode);
  } catch (err) {
    await app.close();
    throw err;
  }
  let closed = false;
  return async () => {
    if (closed) return;
    closed = true;
    await app.close();
    // net.Server removes its own socket file on close; make sure, without touching anything else
    try {
      removeStaleSocket(path);
    } catch {
      /* something else now lives there: leave it */
    }
  };
}
