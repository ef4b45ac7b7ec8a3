// Errors from libbpf and the kernel, with errno, the operation, and the libbpf log captured while it ran.
import { constants } from 'node:os';
import { getNative } from './ffi.js';
import { flushLibbpfLog, type LogLine } from './log.js';

/** How many log lines (warn and info only) are appended to an error's message; the full log is in libbpfLog. */
export const MESSAGE_LOG_LINES = 20;

export class LibbpfError extends Error {
  /** Positive errno (or a libbpf-specific code, 4000 and up). */
  readonly errno: number;
  /** What failed, with the names of the objects involved. */
  readonly op: string;
  /** Every libbpf log line printed during the failed operation, including the verifier log. */
  readonly libbpfLog: string[];

  constructor(op: string, errno: number, log: readonly LogLine[] = [], detail?: string) {
    const code = Math.abs(errno);
    let msg = `${op}: ${describeErrno(code)} (errno ${code})`;
    if (detail) msg += `; ${detail}`;
    const shown = log.filter((l) => l.level !== 'debug' && l.line.trim() !== '').slice(-MESSAGE_LOG_LINES);
    if (shown.length > 0) msg += `\nlibbpf log (last ${shown.length} lines):\n${shown.map((l) => `  ${l.line}`).join('\n')}`;
    super(msg);
    this.name = 'LibbpfError';
    this.errno = code;
    this.op = op;
    this.libbpfLog = log.map((l) => l.line);
  }
}

/** libbpf_strerror's text for a positive errno; falls back to the errno name when libbpf is unavailable. */
export function describeErrno(errno: number): string {
  try {
    const n = getNative();
    const buf = Buffer.alloc(256);
    n.libbpf_strerror(errno, buf, buf.length);
    const end = buf.indexOf(0);
    const text = buf.toString('utf8', 0, end < 0 ? buf.length : end);
    if (text) return text;
  } catch {
    // fall through to the name
  }
  for (const [name, value] of Object.entries(constants.errno)) if (value === errno) return name;
  return `error ${errno}`;
}

/**
 * Build a LibbpfError from a libbpf 1.x return code (a negative errno) or, when `ret` is omitted, from
 * koffi.errno() (read it right after the NULL return, before any other native call).
 */
export function libbpfError(op: string, ret: number, log: readonly LogLine[] = [], detail?: string): LibbpfError {
  flushLibbpfLog();
  return new LibbpfError(op, ret === 0 ? constants.errno.EINVAL : ret, log, detail);
}

/** errno now, from koffi. Call immediately after the failing native call. */
export function lastErrno(): number {
  const e = getNative().koffi.errno();
  return e === 0 ? constants.errno.EINVAL : e;
}

export const ENOENT = constants.errno.ENOENT;
export const EEXIST = constants.errno.EEXIST;
