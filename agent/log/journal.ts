/**
 * Events into the systemd journal with fields of their own (KRSI_JOB, KRSI_UID, KRSI_POLICY, KRSI_ACTION,
 * ...), so that `journalctl KRSI_JOB=1234` finds a job's decisions on the node and sites forward them with
 * their usual tools. The event log file keeps every line regardless.
 *
 * journald's native protocol (systemd's "Native Journal Protocol"): one datagram per entry on the unix
 * socket /run/systemd/journal/socket; each field is `NAME=value\n`, or, when the value holds a newline,
 * `NAME\n`, the value's length as a 64-bit little-endian integer, the value, `\n`. journald adds what it
 * knows of the sender itself (_PID, _UID, _SYSTEMD_UNIT, ...), from the socket. Node has no unix datagram
 * sockets: socket(2), connect(2) and send(2) are libc's, called through koffi (as peercred.ts calls
 * getsockopt), no library of systemd's.
 *
 * The agent never waits on journald: a send is non-blocking, and an entry journald has no room for (its
 * queue full under a flood) is counted as unsent and not retried. journald restarting makes a new socket
 * at the same path: a send that finds the old one gone connects again once.
 */
import { fstatSync } from 'node:fs';
import { lastErrno, libc } from '../libc.js';

export const JOURNAL_SOCKET = '/run/systemd/journal/socket';

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
/** struct sockaddr_un: sa_family_t, then sun_path[108] */
const SUN_PATH_MAX = 108;

interface SocketCalls {
  socket: (domain: number, type: number, protocol: number) => number;
  connect: (fd: number, addr: Buffer, len: number) => number;
  send: (fd: number, buf: Buffer, len: number, flags: number) => number;
  close: (fd: number) => number;
}

let calls: SocketCalls | undefined;

function getLibc(): SocketCalls {
  if (calls) return calls;
  const { lib } = libc();
  calls = {
    socket: lib.func('int socket(int domain, int type, int protocol)') as SocketCalls['socket'],
    connect: lib.func('int connect(int fd, const void *addr, uint32_t len)') as SocketCalls['connect'],
    send: lib.func('intptr_t send(int fd, const void *buf, size_t len, int flags)') as SocketCalls['send'],
    close: lib.func('int close(int fd)') as SocketCalls['close'],
  };
  return calls;
}

export class JournalError extends Error {
  override name = 'JournalError';
  constructor(message: string, readonly code: string) {
    super(message);
  }
}

/** field names journald accepts from a client: upper case, digits and _, not starting with _ (its own) */
const FIELD_NAME = /^[A-Z0-9][A-Z0-9_]{0,63}$/;

/** one journal entry in the native protocol's wire format */
export function journalEntry(fields: readonly (readonly [string, string])[]): Buffer {
  const parts: Buffer[] = [];
  let text = '';
  for (const [name, value] of fields) {
    if (!FIELD_NAME.test(name)) throw new JournalError(`journal field name ${JSON.stringify(name)} is not valid (A-Z, 0-9 and _, not first)`, 'EINVAL');
    if (!value.includes('\n')) {
      text += `${name}=${value}\n`;
      continue;
    }
    // a value with a newline: its length, then the bytes as they are
    const bytes = Buffer.from(value);
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(bytes.length));
    parts.push(Buffer.from(`${text}${name}\n`), length, bytes, Buffer.from('\n'));
    text = '';
  }
  if (parts.length === 0) return Buffer.from(text);
  parts.push(Buffer.from(text));
  return Buffer.concat(parts);
}

/** A connected datagram socket to journald (or to what stands in for it in tests). */
export class JournalSocket {
  private fd: number | null = null;
  private unsentCount = 0;

  constructor(readonly path: string = JOURNAL_SOCKET) {
    if (Buffer.byteLength(path) >= SUN_PATH_MAX) throw new JournalError(`journal socket path ${path} is longer than a unix socket path may be`, 'ENAMETOOLONG');
  }

  /** connect, throwing a JournalError naming the socket and errno when nothing listens there */
  open(): void {
    this.closeFd();
    const c = getLibc();
    const fd = c.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      const code = lastErrno().code;
      throw new JournalError(`cannot make a unix datagram socket for the journal: ${code}`, code);
    }
    const addr = Buffer.alloc(2 + SUN_PATH_MAX);
    addr.writeUInt16LE(AF_UNIX, 0);
    addr.write(this.path, 2);
    if (c.connect(fd, addr, addr.length) !== 0) {
      const code = lastErrno().code;
      c.close(fd);
      throw new JournalError(`cannot connect to the journal at ${this.path}: ${code}`, code);
    }
    this.fd = fd;
  }

  /**
   * Send one entry without waiting. false when it was not sent (journald's queue full, the entry too
   * large, journald gone): counted, not retried.
   */
  send(entry: Buffer): boolean {
    if (this.fd !== null && this.trySend(entry)) return true;
    // journald restarted (its socket is a new one at the same path): connect again, once
    const code = this.fd === null ? 'ENOTCONN' : lastErrno().code;
    if (code === 'ECONNREFUSED' || code === 'ENOTCONN') {
      try {
        this.open();
        if (this.trySend(entry)) return true;
      } catch {
        // still nobody there: counted below
      }
    }
    this.unsentCount++;
    return false;
  }

  private trySend(entry: Buffer): boolean {
    return getLibc().send(this.fd!, entry, entry.length, MSG_DONTWAIT | MSG_NOSIGNAL) === entry.length;
  }

  /** entries that could not be sent */
  unsent(): number {
    return this.unsentCount;
  }

  close(): void {
    this.closeFd();
  }

  private closeFd(): void {
    if (this.fd !== null) getLibc().close(this.fd);
    this.fd = null;
  }
}

/**
 * Whether stdout is a stream to journald (systemd sets $JOURNAL_STREAM to its device and inode): then the
 * events go to the journal natively, with their fields, instead of as lines on stdout, so that none is
 * in the journal twice.
 */
export function stdoutIsJournal(env: NodeJS.ProcessEnv = process.env, fd = 1): boolean {
  const m = /^(\d+):(\d+)$/.exec(env['JOURNAL_STREAM'] ?? '');
  if (m === null) return false;
  try {
    const st = fstatSync(fd, { bigint: true });
    return st.dev === BigInt(m[1]!) && st.ino === BigInt(m[2]!);
  } catch {
    return false;
  }
}
