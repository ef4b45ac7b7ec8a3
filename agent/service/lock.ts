/**
 * One agent per node. A second krsi-agent (an admin starting one by hand while the unit runs, a unit
 * started twice) would otherwise replace the live socket and, at its stop, lift the first one's
 * protection. The lock is flock(2) on a file in the state directory, taken before anything else is
 * touched and held for the life of the process (the kernel drops it when the process dies, however it
 * dies, so a crashed agent never leaves a stale lock). The file holds the holder's pid, for the message.
 */
import { closeSync, ftruncateSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import koffi from 'koffi';

const LOCK_EX = 2;
const LOCK_NB = 4;
const EWOULDBLOCK = 11;

let flock: ((fd: number, op: number) => number) | undefined;

function flockFn(): (fd: number, op: number) => number {
  flock ??= koffi.load('libc.so.6').func('int flock(int fd, int op)') as (fd: number, op: number) => number;
  return flock;
}

export class AlreadyRunning extends Error {
  constructor(
    readonly lockPath: string,
    readonly holder: string,
  ) {
    super(`another krsi-agent (pid ${holder}) holds ${lockPath}: this one exits without touching anything`);
    this.name = 'AlreadyRunning';
  }
}

export function lockPath(stateDir: string): string {
  return join(stateDir, 'agent.lock');
}

/** Take the lock or throw AlreadyRunning; returns the release (the process's exit releases it too). */
export function takeInstanceLock(stateDir: string): () => void {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const path = lockPath(stateDir);
  const fd = openSync(path, 'a+', 0o600);
  if (flockFn()(fd, LOCK_EX | LOCK_NB) !== 0) {
    const errno = koffi.errno();
    let holder = '?';
    try {
      holder = readFileSync(path, 'utf8').trim() || '?';
    } catch {
      // the pid is only for the message
    }
    closeSync(fd);
    if (errno === EWOULDBLOCK) throw new AlreadyRunning(path, holder);
    throw new Error(`cannot lock ${path}: flock failed with errno ${errno}`);
  }
  ftruncateSync(fd, 0);
  writeSync(fd, `${process.pid}\n`, 0);
  return () => closeSync(fd);
}
