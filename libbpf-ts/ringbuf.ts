// RingBuffer: reads a BPF_MAP_TYPE_RINGBUF map into JS without blocking the event loop.
//
// Node has no public fd watcher, so a koffi async call of epoll_wait(2) on an epoll set holding the map's
// fd waits on a koffi worker thread; when it reports readiness, a consume pass runs synchronously on the
// main thread. The pass reads the ring itself, in JavaScript, through an mmap of the map (the consumer
// page read-write, the producer page and the data area read-only) and copies each record into a Buffer:
// no native call and no C-to-JS callback per record (libbpf's ring_buffer__consume with a koffi callback
// cost about ten times as much per record). The data area is mapped once, not twice as libbpf does: a
// record that wraps around the end is copied in two pieces, and the mapping costs half the resident
// memory (the kernel maps every page of a ring buffer at mmap time). It follows libbpf's
// ringbuf_process_ring: acquire-load the
// producer position, stop at a record still BUSY, skip DISCARDed ones, release-store the consumer
// position (every few hundred records and at the end of the pass, so that the kernel can reuse the
// space). A pass stops after `budget` records and the loop continues from setImmediate, so a flood of
// records cannot stall the event loop (the ring stays readable until drained). An eventfd in the same epoll set lets close() wake the
// waiting thread at once; the mappings and the epoll fd are released only once no epoll_wait is in flight.
import { getNative, type Native, type Ptr } from './ffi.js';
import { libbpfError, lastErrno } from './errors.js';
import { MapType, type BpfMap } from './map.js';

export interface RingBufferOptions {
  /** Records per consume pass before yielding to the event loop. Default 4096. */
  budget?: number;
  /**
   * epoll_wait timeout in ms: how often the waiting thread comes back with nothing to read. Default:
   * never. The kernel wakes the reader for every record it may have missed (epoll is level-triggered on
   * the ring's unread bytes) and close() wakes it through the eventfd, so a timeout only costs wakeups:
   * an agent that waits on every compute node should not take the CPU from a job for nothing.
   */
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
  /**
   * Hand onRecord a view of the record in the ring (or, for one that wraps around the end, in a scratch
   * buffer) instead of a copy. The view is valid only during the call: the kernel reuses the space once
   * the pass moves on. Saves an allocation and a copy per record for a consumer that decodes at once.
   * Default false.
   */
  borrow?: boolean;
}

export const DEFAULT_BUDGET = 4096;
/** epoll_wait's timeout for "none" */
export const DEFAULT_POLL_TIMEOUT_MS = -1;

const EPOLL_CTL_ADD = 1;
const EPOLLIN = 0x1;
const EFD_NONBLOCK = 0o4000;
const EFD_CLOEXEC = 0o2000000;
const EPOLL_CLOEXEC = 0o2000000;
const MAX_EVENTS = 4;
const EPOLL_EVENT_MAX_SIZE = 16; // 12 on x86_64 (packed), 16 elsewhere
const MAX_WAIT_FAILURES = 10;
const PROT_READ = 0x1;
const PROT_WRITE = 0x2;
const MAP_SHARED = 0x1;
const MAP_FAILED = 0xffffffffffffffffn;
const RINGBUF_BUSY_BIT = 1 << 31;
const RINGBUF_DISCARD_BIT = 1 << 30;
const RINGBUF_HDR_SZ = 8;
/** release-store the consumer position at least this often within a pass */
const CONSUMER_STORE_EVERY = 256;

/** the ring's memory as this process maps it */
interface RingMapping {
  consPtr: Ptr;
  consLen: number;
  prodPtr: Ptr;
  prodLen: number;
  /** consumer_pos (u64), the only word we write */
  cons: BigUint64Array;
  /** producer_pos (u64) */
  prod: BigUint64Array;
  /** the data area (mapped once: a record may wrap around its end) */
  data: Buffer;
  /** the same bytes as 32-bit words, for atomic loads of record headers (8-byte aligned, never wrapped) */
  words: Int32Array;
  /** data area size (max_entries, a power of two) */
  size: number;
}

type State = 'idle' | 'running' | 'stopped' | 'closing' | 'closed';

export class RingBuffer {
  readonly #n: Native;
  readonly #mapName: string;
  readonly #onRecord: (data: Buffer) => void;
  readonly #onError: ((err: unknown) => void) | null;
  readonly #budget: number;
  readonly #timeoutMs: number;
  readonly #batchDelayMs: number;
  readonly #borrow: boolean;
  /** borrow mode: where a record that wraps around the end of the data area is put together */
  #scratch: Buffer = Buffer.alloc(0);

  // owned native resources; null / -1 once released
  #events: Ptr | null = null;
  #wakeFd = -1;
  #epollFd = -1;
  #ring: RingMapping | null = null;

  #state: State = 'idle';
  #waiting = false; // an async epoll_wait is in flight
  #inPass = false; // inside a consume pass
  #immediate: NodeJS.Immediate | null = null;
  #retry: NodeJS.Timeout | null = null;
  #waitFailures = 0;
  #closed: Promise<void> | null = null;
  #resolveClosed: (() => void) | null = null;

  // per-pass state, set by the sample callback
  #batch = 0;
  #budgetHit = false;
  #failed = false;
  #error: unknown = undefined;

  #records = 0;
  #wakeups = 0;
  #waits = 0;

  /**
   * Set up a reader of `map` (a BPF_MAP_TYPE_RINGBUF map with an fd: after load). `onRecord` receives a copy
   * of each record (a view valid during the call with `borrow`). Nothing is read until start(). Keep the map open while the reader exists.
   */
  constructor(map: BpfMap, onRecord: (data: Buffer) => void, opts: RingBufferOptions = {}) {
    const n = getNative();
    this.#n = n;
    this.#mapName = map.name;
    this.#onRecord = onRecord;
    this.#onError = opts.onError ?? null;
    this.#budget = positiveInt(opts.budget ?? DEFAULT_BUDGET, 'budget');
    this.#timeoutMs = opts.pollTimeoutMs === undefined ? DEFAULT_POLL_TIMEOUT_MS : positiveInt(opts.pollTimeoutMs, 'pollTimeoutMs');
    this.#batchDelayMs = opts.batchDelayMs ?? 0;
    this.#borrow = opts.borrow ?? false;
    if (!Number.isInteger(this.#batchDelayMs) || this.#batchDelayMs < 0) {
      throw new RangeError(`RingBuffer: batchDelayMs must be a non-negative integer, got ${this.#batchDelayMs}`);
    }
    if (map.type !== MapType.RINGBUF) throw new TypeError(`RingBuffer: map '${this.#mapName}' is not a ring buffer map (type ${map.type})`);
    const mapFd = map.fd;
    if (mapFd < 0) throw new Error(`RingBuffer: map '${this.#mapName}' has no fd (load the object first)`);

    try {
      this.#epollFd = n.epoll_create1(EPOLL_CLOEXEC);
      if (this.#epollFd < 0) throw libbpfError(`epoll_create1 (ring buffer '${this.#mapName}')`, lastErrno());
      const mapEv = Buffer.alloc(EPOLL_EVENT_MAX_SIZE);
      mapEv.writeUInt32LE(EPOLLIN, 0);
      if (n.epoll_ctl(this.#epollFd, EPOLL_CTL_ADD, mapFd, mapEv) < 0) {
        throw libbpfError(`epoll_ctl(ADD map fd, ring buffer '${this.#mapName}')`, lastErrno());
      }
      this.#ring = mapRing(n, mapFd, map.maxEntries, this.#mapName);
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

  /**
   * epoll_wait calls made so far. While the ring stays empty one is in flight and no other is made: a
   * count that grows on an idle ring is a reader waking up for nothing.
   */
  get waits(): number {
    return this.#waits;
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
   * through the eventfd) before the ring is unmapped. Records still in the ring are not delivered: call
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
    this.#waits++;
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

  /** One consume pass over the ring; sets #batch and #budgetHit, throws onRecord's exception. */
  #pass(): void {
    const ring = this.#ring;
    if (ring === null) throw new Error(`RingBuffer: ring buffer '${this.#mapName}' is closed`);
    this.#batch = 0;
    this.#budgetHit = false;
    this.#failed = false;
    this.#error = undefined;
    this.#inPass = true;
    try {
      this.#readRing(ring);
    } finally {
      this.#inPass = false;
      // close() from inside onRecord was deferred until the pass ended
      this.#settle();
    }
    if (this.#failed) {
      const err = this.#error;
      this.#error = undefined;
      throw err;
    }
  }

  /** libbpf's ringbuf_process_ring, in JS: deliver committed records until caught up, the budget, or an error */
  #readRing(ring: RingMapping): void {
    const { data, words, size } = ring;
    let cons = Number(Atomics.load(ring.cons, 0));
    let stored = cons;
    let unstored = 0;
    let stop = false;
    try {
      while (!stop) {
        const prod = Number(Atomics.load(ring.prod, 0));
        if (cons >= prod) {
          if (cons === stored) break;
          // Caught up: publish the position, then look at the producer once more. The kernel wakes the
          // reader only for a record committed while the consumer position stood at it; one committed
          // before this store woke nobody, and the look after the store finds it (libbpf's order).
          Atomics.store(ring.cons, 0, BigInt(cons));
          stored = cons;
          unstored = 0;
          continue;
        }
        while (cons < prod) {
          const off = cons % size;
          const len = Atomics.load(words, off >> 2);
          if (len & RINGBUF_BUSY_BIT) {
            stop = true; // reserved, not committed yet: later records wait for it
            break;
          }
          const sampleLen = len & ~(RINGBUF_BUSY_BIT | RINGBUF_DISCARD_BIT);
          cons += (sampleLen + RINGBUF_HDR_SZ + 7) & ~7;
          if ((len & RINGBUF_DISCARD_BIT) === 0) {
            let start = off + RINGBUF_HDR_SZ;
            if (start >= size) start -= size;
            const first = Math.min(sampleLen, size - start);
            let record: Buffer;
            if (this.#borrow && first === sampleLen) {
              record = data.subarray(start, start + sampleLen);
            } else {
              if (this.#borrow) {
                if (this.#scratch.length < sampleLen) this.#scratch = Buffer.alloc(Math.max(sampleLen, 256));
                record = this.#scratch.subarray(0, sampleLen);
              } else {
                record = Buffer.allocUnsafe(sampleLen);
              }
              data.copy(record, 0, start, start + first);
              if (first < sampleLen) data.copy(record, first, 0, sampleLen - first); // wrapped around the end
            }
            this.#records++;
            this.#batch++;
            try {
              this.#onRecord(record);
            } catch (err) {
              this.#failed = true; // the record counts as consumed, as with libbpf
              this.#error = err;
              stop = true;
              break;
            }
            if (this.#state === 'closing' || this.#state === 'closed') {
              stop = true;
              break;
            }
            if (this.#batch >= this.#budget) {
              this.#budgetHit = true;
              stop = true;
              break;
            }
          }
          if (++unstored >= CONSUMER_STORE_EVERY) {
            Atomics.store(ring.cons, 0, BigInt(cons));
            stored = cons;
            unstored = 0;
          }
        }
      }
    } finally {
      if (cons !== stored) Atomics.store(ring.cons, 0, BigInt(cons));
    }
  }

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
    if (this.#ring !== null) {
      const ring = this.#ring;
      this.#ring = null;
      n.munmap(ring.prodPtr, ring.prodLen);
      n.munmap(ring.consPtr, ring.consLen);
    }
    if (this.#epollFd >= 0) {
      n.close(this.#epollFd);
      this.#epollFd = -1;
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

/** mmap a ring buffer map: consumer page read-write, producer page + data area (once) read-only */
function mapRing(n: Native, mapFd: number, size: number, mapName: string): RingMapping {
  if (size <= 0 || (size & (size - 1)) !== 0) throw new Error(`RingBuffer: map '${mapName}' size ${size} is not a power of two`);
  const page = n.getpagesize();
  const failed = (p: Ptr | null) => p === null || p === MAP_FAILED;
  const consPtr = n.mmap(null, page, PROT_READ | PROT_WRITE, MAP_SHARED, mapFd, 0);
  if (failed(consPtr)) throw libbpfError(`mmap(consumer page of ring buffer '${mapName}')`, lastErrno());
  const prodLen = page + size;
  const prodPtr = n.mmap(null, prodLen, PROT_READ, MAP_SHARED, mapFd, page);
  if (failed(prodPtr)) {
    const errno = lastErrno();
    n.munmap(consPtr!, page);
    throw libbpfError(`mmap(data of ring buffer '${mapName}')`, errno);
  }
  const consBuf = n.koffi.view(consPtr!, page);
  const prodBuf = n.koffi.view(prodPtr!, prodLen);
  return {
    consPtr: consPtr!,
    consLen: page,
    prodPtr: prodPtr!,
    prodLen,
    cons: new BigUint64Array(consBuf, 0, 1),
    prod: new BigUint64Array(prodBuf, 0, 1),
    data: Buffer.from(prodBuf, page, size),
    words: new Int32Array(prodBuf, page, size / 4),
    size,
  };
}
