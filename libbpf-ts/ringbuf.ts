// RingBuffer: reads a BPF_MAP_TYPE_RINGBUF map into JS without blocking the event loop.
//
// Node has no public fd watcher, so a koffi async call of epoll_wait(2) on ring_buffer__epoll_fd() waits on a
// koffi worker thread; when it reports readiness, ring_buffer__consume() runs synchronously on the main
// thread and the sample callback copies each record into a Buffer. The callback stops consume after
// `budget` records and the loop continues from setImmediate, so a flood of records cannot stall the event
// loop (the ring stays readable until drained). An eventfd in the same epoll set lets close() wake the
// waiting thread at once; ring_buffer__free only runs once no epoll_wait is in flight.
import { getNative, type Native, type Ptr } from './ffi.js';
import { libbpfError, lastErrno } from './errors.js';
import { MapType, type BpfMap } from './map.js';
import { withLogCapture } from './log.js';

export interface RingBufferOptions {
  /** Records per consume pass before yielding to the event loop. Default 4096. */
  budget?: number;
  /** epoll_wait timeout in ms: how often the waiting thread comes back. Default 500. */
  pollTimeoutMs?: number;
  /**
   * Wait this long after the ring becomes readable before consuming. The kernel wakes the reader only
   * for a record written while the reader had caught up, so records arriving during the wait cost no
   * wakeup: under a flood, one wakeup then carries a batch instead of one record. Adds at most this much
   * latency. Default 0 (consume at once).
   */
  batchDelayMs?: number;
  /**
   * Called when onRecord throws (or consume fails). The reader stops; start() resumes it. Without this
   * option the error is rethrown from the event loop (an uncaught exception).
   */
  onError?: (err: unknown) => void;
}

export const DEFAULT_BUDGET = 4096;
export const DEFAULT_POLL_TIMEOUT_MS = 500;

const EPOLL_CTL_ADD = 1;
const EPOLLIN = 0x1;
const EFD_NONBLOCK = 0o4000;
const EFD_CLOEXEC = 0o2000000;
const MAX_EVENTS = 4;
const EPOLL_EVENT_MAX_SIZE = 16; // 12 on x86_64 (packed), 16 elsewhere
const MAX_WAIT_FAILURES = 10;

type State = 'idle' | 'running' | 'stopped' | 'closing' | 'closed';

export class RingBuffer {
  readonly #n: Native;
  readonly #mapName: string;
  readonly #onRecord: (data: Buffer) => void;
  readonly #onError: ((err: unknown) => void) | null;
  readonly #budget: number;
  readonly #timeoutMs: number;
  readonly #batchDelayMs: number;

  // owned native resources; null / -1 once released
  #cb: Ptr | null = null;
  #rb: Ptr | null = null;
  #events: Ptr | null = null;
  #wakeFd = -1;
  #epollFd = -1;

  #state: State = 'idle';
  #waiting = false; // an async epoll_wait is in flight
  #inPass = false; // inside ring_buffer__consume
  #immediate: NodeJS.Immediate | null = null;
  #retry: NodeJS.Timeout | null = null;
  #waitFailures = 0;
  #closed: Promise<void> | null = null;
  #resolveClosed: (() => void) | null = null;

  // per-pass state, set by the sample callback
  #batch = 0;
  #budgetHit = false;
  #stoppedPass = false; // the callback returned a negative value: consume's negative return is ours
  #failed = false;
  #error: unknown = undefined;

  #records = 0;
  #wakeups = 0;

  /**
   * Set up a reader of `map` (a BPF_MAP_TYPE_RINGBUF map with an fd: after load). `onRecord` receives a copy
   * of each record. Nothing is read until start(). Keep the map open while the reader exists.
   */
  constructor(map: BpfMap, onRecord: (data: Buffer) => void, opts: RingBufferOptions = {}) {
    const n = getNative();
    this.#n = n;
    this.#mapName = map.name;
    this.#onRecord = onRecord;
    this.#onError = opts.onError ?? null;
    this.#budget = positiveInt(opts.budget ?? DEFAULT_BUDGET, 'budget');
    this.#timeoutMs = positiveInt(opts.pollTimeoutMs ?? DEFAULT_POLL_TIMEOUT_MS, 'pollTimeoutMs');
    this.#batchDelayMs = opts.batchDelayMs ?? 0;
    if (!Number.isInteger(this.#batchDelayMs) || this.#batchDelayMs < 0) {
      throw new RangeError(`RingBuffer: batchDelayMs must be a non-negative integer, got ${this.#batchDelayMs}`);
    }
    if (map.type !== MapType.RINGBUF) throw new TypeError(`RingBuffer: map '${this.#mapName}' is not a ring buffer map (type ${map.type})`);
    const mapFd = map.fd;
    if (mapFd < 0) throw new Error(`RingBuffer: map '${this.#mapName}' has no fd (load the object first)`);

    try {
      // registered, not transient: libbpf calls it from every later ring_buffer__consume, until ring_buffer__free
      this.#cb = n.koffi.register(this.#sample, n.koffi.pointer(n.sampleFnType));
      const cb = this.#cb;
      this.#rb = withLogCapture((log) => {
        const rb = n.ring_buffer__new(mapFd, cb, null, null);
        if (rb === null) throw libbpfError(`ring_buffer__new(map '${this.#mapName}')`, lastErrno(), log);
        return rb;
      });
      this.#epollFd = n.ring_buffer__epoll_fd(this.#rb);
      this.#events = n.koffi.alloc('uint8_t', MAX_EVENTS * EPOLL_EVENT_MAX_SIZE) as Ptr;
      this.#wakeFd = n.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
      if (this.#wakeFd < 0) throw libbpfError(`eventfd (ring buffer '${this.#mapName}')`, lastErrno());
      const ev = Buffer.alloc(EPOLL_EVENT_MAX_SIZE);
      ev.writeUInt32LE(EPOLLIN, 0); // data stays 0: we never look at which fd was ready
      if (n.epoll_ctl(this.#epollFd, EPOLL_CTL_ADD, this.#wakeFd, ev) < 0) {
        throw libbpfError(`epoll_ctl(ADD eventfd, ring buffer '${this.#mapName}')`, lastErrno());
      }
    } catch (err) {
      this.#release();
      this.#state = 'closed';
      throw err;
    }
  }

  /** Records delivered to onRecord so far. */
  get records(): number {
    return this.#records;
  }

  /** Consume passes of the reader loop that delivered at least one record. */
  get wakeups(): number {
    return this.#wakeups;
  }

  get running(): boolean {
    return this.#state === 'running';
  }

  /** Start (or, after an error, resume) reading. */
  start(): void {
    if (this.#state === 'closing' || this.#state === 'closed') throw new Error(`RingBuffer.start: ring buffer '${this.#mapName}' is closed`);
    if (this.#state === 'running') return;
    this.#state = 'running';
    this.#waitFailures = 0;
    // a wait from before a stop may still be in flight: its completion continues the loop
    if (!this.#waiting && this.#retry === null) this.#drain();
  }

  /**
   * One synchronous consume pass of at most `budget` records; returns how many were delivered. Rethrows an
   * exception from onRecord. Usable without start(), e.g. to drain what is left before close().
   */
  consume(): number {
    if (this.#state === 'closing' || this.#state === 'closed') throw new Error(`RingBuffer.consume: ring buffer '${this.#mapName}' is closed`);
    if (this.#inPass) throw new Error(`RingBuffer.consume: called from inside onRecord of ring buffer '${this.#mapName}'`);
    this.#pass();
    return this.#batch;
  }

  /**
   * Stop reading and free the ring buffer. Waits for an in-flight epoll_wait to return (woken at once
   * through the eventfd) before ring_buffer__free. Records still in the ring are not delivered: call
   * consume() first to get them. Idempotent.
   */
  close(): Promise<void> {
    if (this.#closed) return this.#closed;
    this.#state = 'closing';
    if (this.#immediate) clearImmediate(this.#immediate);
    if (this.#retry) clearTimeout(this.#retry);
    this.#immediate = null;
    this.#retry = null;
    this.#closed = new Promise<void>((resolve) => {
      this.#resolveClosed = resolve;
    });
    if (this.#waiting) this.#wake();
    this.#settle();
    return this.#closed;
  }

  // --- the loop ---

  #poll(): void {
    if (this.#state !== 'running') return this.#settle();
    const events = this.#events;
    if (events === null) return;
    this.#waiting = true;
    this.#n.epoll_wait.async(this.#epollFd, events, MAX_EVENTS, this.#timeoutMs, (err: unknown, ready: number) => {
      this.#waiting = false;
      if (this.#state !== 'running') return this.#settle();
      if (err || ready < 0) {
        // EINTR and friends: retry a few times, then give up loudly
        if (++this.#waitFailures >= MAX_WAIT_FAILURES) {
          this.#state = 'stopped';
          this.#report(err ?? new Error(`RingBuffer: epoll_wait on ring buffer '${this.#mapName}' keeps failing`));
          return;
        }
        this.#retry = setTimeout(() => {
          this.#retry = null;
          this.#poll();
        }, 10);
        return;
      }
      this.#waitFailures = 0;
      if (ready === 0) this.#poll();
      else if (this.#batchDelayMs > 0) {
        this.#retry = setTimeout(() => {
          this.#retry = null;
          this.#drain();
        }, this.#batchDelayMs);
      } else this.#drain();
    });
  }

  #drain(): void {
    this.#immediate = null;
    if (this.#state !== 'running') return this.#settle();
    try {
      this.#pass();
    } catch (err) {
      if (this.#state === 'running') this.#state = 'stopped';
      this.#settle();
      this.#report(err);
      return;
    }
    if (this.#batch > 0) this.#wakeups++;
    if (this.#state !== 'running') return this.#settle();
    // budget used up: more may be waiting, but let the event loop breathe first
    if (this.#budgetHit) this.#immediate = setImmediate(() => this.#drain());
    else this.#poll();
  }

  /** One ring_buffer__consume; sets #batch and #budgetHit, throws onRecord's exception. */
  #pass(): void {
    const rb = this.#rb;
    if (rb === null) throw new Error(`RingBuffer: ring buffer '${this.#mapName}' is closed`);
    this.#batch = 0;
    this.#budgetHit = false;
    this.#stoppedPass = false;
    this.#failed = false;
    this.#error = undefined;
    this.#inPass = true;
    let ret: number;
    try {
      ret = this.#n.ring_buffer__consume(rb);
    } finally {
      this.#inPass = false;
      // close() from inside onRecord was deferred until consume returned
      this.#settle();
    }
    if (this.#failed) {
      const err = this.#error;
      this.#error = undefined;
      throw err;
    }
    if (ret < 0 && !this.#stoppedPass) throw libbpfError(`ring_buffer__consume(map '${this.#mapName}')`, ret);
  }

  // the libbpf sample callback: must not throw into C, and must copy (the ring memory is reused)
  #sample = (_ctx: Ptr | null, data: Ptr, size: number | bigint): number => {
    if (this.#state === 'closing' || this.#state === 'closed' || this.#failed) {
      this.#stoppedPass = true;
      return -1;
    }
    try {
      const len = Number(size);
      const record = Buffer.from(new Uint8Array(this.#n.koffi.view(data, len)));
      this.#records++;
      this.#batch++;
      this.#onRecord(record);
    } catch (err) {
      this.#failed = true;
      this.#error = err;
      this.#stoppedPass = true;
      return -1;
    }
    if (this.#batch >= this.#budget) {
      this.#budgetHit = true;
      this.#stoppedPass = true;
      return -1;
    }
    return 0;
  };

  #report(err: unknown): void {
    if (this.#onError) {
      this.#onError(err);
      return;
    }
    process.nextTick(() => {
      throw err;
    });
  }

  #wake(): void {
    if (this.#wakeFd < 0) return;
    const one = Buffer.alloc(8);
    one.writeBigUInt64LE(1n);
    this.#n.write(this.#wakeFd, one, 8);
  }

  /** When closing and nothing native is in use any more: free everything and resolve close(). */
  #settle(): void {
    if (this.#state !== 'closing' || this.#waiting || this.#inPass) return;
    this.#release();
    this.#state = 'closed';
    const resolve = this.#resolveClosed;
    this.#resolveClosed = null;
    resolve?.();
  }

  #release(): void {
    const n = this.#n;
    if (this.#rb !== null) {
      n.ring_buffer__free(this.#rb); // closes the epoll fd too
      this.#rb = null;
      this.#epollFd = -1;
    }
    if (this.#cb !== null) {
      n.koffi.unregister(this.#cb);
      this.#cb = null;
    }
    if (this.#wakeFd >= 0) {
      n.close(this.#wakeFd);
      this.#wakeFd = -1;
    }
    if (this.#events !== null) {
      n.koffi.free(this.#events);
      this.#events = null;
    }
  }
}

function positiveInt(v: number, what: string): number {
  if (!Number.isInteger(v) || v <= 0) throw new RangeError(`RingBuffer: ${what} must be a positive integer, got ${v}`);
  return v;
}
