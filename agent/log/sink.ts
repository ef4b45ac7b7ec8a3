/**
 * Text to a file descriptor with write(2): the agent's stdout (journald's stream under systemd) and the
 * event log file. Not through process.stdout: a Node.js stream whose write fails once (ENOSPC on a full
 * file system, EPIPE once the journal's end of the stream is gone) emits 'error', which ends the process
 * when nobody listens, and leaves the stream destroyed, silent for good, when somebody does. A user who
 * can fill the file system under the agent's stdout (a flood of denied actions is a line per event there,
 * where stdout is a file) or get its journal stream closed would so end the agent.
 * Here a write that fails loses its text, the failure is reported once per spell of failures, and the
 * next write tries again.
 */
import { writeSync } from 'node:fs';

/** write(2) as node:fs gives it: bytes written, or throws an errno error */
export type WriteFn = (fd: number, buffer: Buffer, offset: number) => number;

/**
 * How long a write waits on a descriptor that would block (a non-blocking pipe or socket whose reader is
 * slow: EAGAIN) before its text is given up: as long as a blocking write would wait for a reader that is
 * busy, not for one that is stuck, which must not stall the agent's event loop.
 */
const WOULD_BLOCK_PATIENCE_MS = 1000;
const WOULD_BLOCK_PAUSE_MS = 1;
const pause = new Int32Array(new SharedArrayBuffer(4));

export class FdSink {
  private failing = false;

  constructor(
    private readonly fd: number,
    private readonly onError: (err: Error) => void,
    private readonly write: WriteFn = writeSync,
  ) {}

  /** write all of `text`; false when it was lost (the failure reported if it starts a spell) */
  put(text: string): boolean {
    try {
      const bytes = Buffer.from(text);
      let waitedMs = 0;
      // write(2) may take less than it was given (a disk filling up): go on until all of it is written
      for (let done = 0; done < bytes.length; ) {
        let n: number;
        try {
          n = this.write(this.fd, bytes, done);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EAGAIN' || waitedMs >= WOULD_BLOCK_PATIENCE_MS) throw err;
          Atomics.wait(pause, 0, 0, WOULD_BLOCK_PAUSE_MS);
          waitedMs += WOULD_BLOCK_PAUSE_MS;
          continue;
        }
        if (n === 0) throw new Error(`write to fd ${this.fd} made no progress`);
        done += n;
      }
      this.failing = false;
      return true;
    } catch (err) {
      if (!this.failing) this.onError(err as Error);
      this.failing = true;
      return false;
    }
  }
}

/** the agent's stdout; a failure is told on stderr, which journald also takes (and may be lost with it) */
export const stdoutSink = new FdSink(1, (err) => {
  try {
    writeSync(2, `krsi-agent: cannot write to stdout (${err.message}): lines meant for it are lost until it works again (events still go to the event log file)\n`);
  } catch {
    // nowhere left to say it
  }
});
