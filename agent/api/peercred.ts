/**
 * Who is on the other end of a unix-socket connection: SO_PEERCRED (the pid, uid and gid the kernel
 * recorded when the peer called connect(2)), read with koffi over libc's getsockopt(2), plus the peer's
 * supplementary groups from /proc/<pid>/status.
 *
 * Reliance on a Node internal: Node has no public API for a socket's file descriptor. A net.Socket accepted
 * by a net.Server listening on a unix path wraps a `Pipe` handle whose `fd` property is the descriptor
 * (`(socket as any)._handle.fd`). If a Node release ever drops or renames it, `peerCredOfSocket` returns
 * null, and the API treats a caller without credentials as unprivileged (403): it fails closed, never open.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import type koffiDefault from 'koffi';

export interface PeerCred {
  pid: number;
  uid: number;
  /** the primary gid the peer had at connect(2) */
  gid: number;
  /** supplementary groups of the peer process (from /proc); [] when they cannot be read */
  groups: number[];
}

const SOL_SOCKET = 1;
const SO_PEERCRED = 17;
const UCRED_SIZE = 12; // struct ucred { pid_t pid; uid_t uid; gid_t gid; }

interface Ucred {
  pid: number;
  uid: number;
  gid: number;
}

type GetsockoptFn = (fd: number, level: number, optname: number, optval: Partial<Ucred>, optlen: [number]) => number;

let getsockopt: GetsockoptFn | null = null;
let loadError: Error | null = null;

function native(): GetsockoptFn {
  if (getsockopt) return getsockopt;
  if (loadError) throw loadError;
  try {
    const require = createRequire(import.meta.url);
    const koffi = require('koffi') as typeof koffiDefault;
    const libc = koffi.load('libc.so.6');
    koffi.struct('krsi_ucred', { pid: 'int', uid: 'uint32_t', gid: 'uint32_t' });
    getsockopt = libc.func(
      'int getsockopt(int fd, int level, int optname, _Out_ krsi_ucred *optval, _Inout_ uint32_t *optlen)',
    ) as unknown as GetsockoptFn;
    return getsockopt;
  } catch (err) {
    loadError = new Error(`slurm-krsi: cannot bind getsockopt(2) with koffi: ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
    });
    throw loadError;
  }
}

/** SO_PEERCRED of a connected unix-socket fd, without the groups; null when the call fails */
export function peerCredOfFd(fd: number): Omit<PeerCred, 'groups'> | null {
  if (!Number.isInteger(fd) || fd < 0) return null;
  const cred: Partial<Ucred> = {};
  const len: [number] = [UCRED_SIZE];
  if (native()(fd, SOL_SOCKET, SO_PEERCRED, cred, len) !== 0) return null;
  if (len[0] !== UCRED_SIZE || cred.pid === undefined || cred.uid === undefined || cred.gid === undefined) return null;
  return { pid: cred.pid, uid: cred.uid, gid: cred.gid };
}

/** the fd behind a net.Socket (Node internal, see the file comment); null when there is none */
export function socketFd(socket: Socket): number | null {
  const handle = (socket as unknown as { _handle?: { fd?: unknown } | null })._handle;
  const fd = handle?.fd;
  return typeof fd === 'number' && Number.isInteger(fd) && fd >= 0 ? fd : null;
}

/**
 * Parse the `Groups:` line of /proc/<pid>/status. When `expectUid` is given, the groups are only
 * trusted if the process's real uid still is that uid: the pid comes from connect(2) time, and the peer
 * may have exited since and its pid been reused. Returns [] when anything does not fit.
 */
export function supplementaryGroups(pid: number, expectUid?: number): number[] {
  if (!Number.isInteger(pid) || pid <= 0) return [];
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return [];
  }
  return parseStatusGroups(text, expectUid);
}

/** the parser behind supplementaryGroups, for tests */
export function parseStatusGroups(status: string, expectUid?: number): number[] {
  if (expectUid !== undefined) {
    const uidLine = /^Uid:\s+(\d+)/m.exec(status);
    if (uidLine === null || Number(uidLine[1]) !== expectUid) return [];
  }
  const line = /^Groups:[ \t]*([0-9 \t]*)$/m.exec(status);
  if (line === null) return [];
  return (line[1] ?? '')
    .split(/\s+/)
    .filter((g) => g !== '')
    .map(Number)
    .filter((g) => Number.isInteger(g) && g >= 0);
}

const cache = new WeakMap<Socket, PeerCred | null>();

/**
 * The peer credentials of a socket accepted on a unix path, computed once per connection and cached.
 * null (no credentials: the caller is unprivileged) when the fd is not reachable or getsockopt fails.
 * The supplementary groups are read from /proc only when something asks for them (once): refusing a
 * flood of connections costs one getsockopt(2) each, no file read.
 */
export function peerCredOfSocket(socket: Socket): PeerCred | null {
  if (cache.has(socket)) return cache.get(socket) ?? null;
  let cred: PeerCred | null = null;
  try {
    const fd = socketFd(socket);
    const base = fd === null ? null : peerCredOfFd(fd);
    if (base !== null) {
      let groups: number[] | undefined;
      cred = {
        ...base,
        get groups() {
          groups ??= supplementaryGroups(base.pid, base.uid);
          return groups;
        },
      };
    }
  } catch {
    cred = null; // koffi missing or the call failed: fail closed
  }
  cache.set(socket, cred);
  return cred;
}
