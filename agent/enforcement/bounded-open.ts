/**
 * open(2) with a deadline. An open() of a file on a stuck NFS mount blocks the calling thread in the
 * kernel, without a timeout and without a signal that would end it; in the agent's main thread that
 * would stop every prolog. So the opens happen in a worker thread (same process, so the file descriptor
 * is the agent's), and the caller waits for each at most `timeoutMs`. A worker that overruns is left
 * behind (the blocked thread cannot be killed) and a fresh one serves the next open; when its open
 * finally returns, the descriptor is closed and the worker ends.
 */
import { closeSync } from 'node:fs';
import { Worker } from 'node:worker_threads';

export const O_PATH = 0o10000000;

// CommonJS, evaluated: no file to find next to the compiled module (or the .ts one under tsx)
const WORKER_CODE = `
const { parentPort } = require('node:worker_threads');
const { openSync } = require('node:fs');
parentPort.on('message', ({ id, path, flags }) => {
  try {
    parentPort.postMessage({ id, fd: openSync(path, flags) });
  } catch (err) {
    parentPort.postMessage({ id, error: err.code || String(err) });
  }
});`;

interface Reply {
  id: number;
  fd?: number;
  error?: string;
}

export class OpenTimeout extends Error {
  constructor(
    readonly path: string,
    readonly timeoutMs: number,
  ) {
    super(`open of ${path} did not return within ${timeoutMs} ms (a stuck file system?)`);
    this.name = 'OpenTimeout';
  }
}

export class BoundedOpener {
  private worker: Worker | null = null;
  private nextId = 1;
  private readonly waiting = new Map<number, (reply: Reply) => void>();
  /** workers left behind with an open still running */
  private readonly stuck = new Set<Worker>();

  constructor(private readonly timeoutMs: number) {}

  private current(): Worker {
    if (this.worker) return this.worker;
    // trackUnmanagedFds off: a worker closes the fds it opened when it ends (Node's default), and these
    // are the agent's, closed by the agent and their numbers reused: an ending worker would close
    // whatever the agent holds under those numbers by then (a map, the socket)
    const worker = new Worker(WORKER_CODE, { eval: true, trackUnmanagedFds: false });
    worker.unref();
    worker.on('message', (reply: Reply) => {
      const resolve = this.waiting.get(reply.id);
      if (resolve) {
        this.waiting.delete(reply.id);
        resolve(reply);
      } else if (reply.fd !== undefined) {
        // the caller gave up on this open: close what it finally opened, and let the worker go
        closeSync(reply.fd);
      }
      if (!resolve && this.stuck.delete(worker)) void worker.terminate();
    });
    worker.on('error', () => {
      if (this.worker === worker) this.worker = null;
    });
    this.worker = worker;
    return worker;
  }

  /** the descriptor; rejects with the errno code (ENOENT, ...) as the error's code, or with OpenTimeout */
  open(path: string, flags = O_PATH): Promise<number> {
    const worker = this.current();
    const id = this.nextId++;
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        this.stuck.add(worker);
        if (this.worker === worker) this.worker = null;
        reject(new OpenTimeout(path, this.timeoutMs));
      }, this.timeoutMs);
      this.waiting.set(id, (reply) => {
        clearTimeout(timer);
        if (reply.fd !== undefined) resolve(reply.fd);
        else reject(Object.assign(new Error(`cannot open ${path}: ${reply.error ?? 'unknown error'}`), { code: reply.error }));
      });
      worker.postMessage({ id, path, flags });
    });
  }

  /** workers still blocked in an open the caller gave up on (tests, status) */
  get stuckWorkers(): number {
    return this.stuck.size;
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = null;
    await worker?.terminate();
  }
}
