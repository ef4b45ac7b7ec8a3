/**
 * What keeps local users from starving the agent's one event loop (the control socket and the metrics
 * endpoint share it with the prolog's requests): a token bucket per uid, counted connections, and a lane
 * that runs a bounded number of requests at a time. app.ts and metrics/server.ts apply them.
 */

/** A token bucket: `rate` tokens a second, holding at most `burst`. */
export class TokenBucket {
  private tokens: number;
  private last = performance.now();

  constructor(private readonly rate: number, private readonly burst: number) {
    this.tokens = burst;
  }

  private refill(): void {
    const now = performance.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.rate);
    this.last = now;
  }

  /** whether a token is left, without taking it */
  hasToken(): boolean {
    this.refill();
    return this.tokens >= 1;
  }

  /** whether the bucket is full again: forgetting it then gives its owner nothing it did not have */
  isFull(): boolean {
    this.refill();
    return this.tokens >= this.burst;
  }

  take(): boolean {
    if (!this.hasToken()) return false;
    this.tokens -= 1;
    return true;
  }
}

/** Open connections counted per key, with a cap per key and one for all keys together. */
export class ConnectionCount<K> {
  private readonly open = new Map<K, number>();
  private total = 0;

  constructor(private readonly perKey: number, private readonly all: number) {}

  /** count a connection in, or false when a cap is reached; `release` is called once it closes */
  admit(key: K, onClose: (release: () => void) => void): boolean {
    const n = this.open.get(key) ?? 0;
    if (n >= this.perKey || this.total >= this.all) return false;
    this.open.set(key, n + 1);
    this.total++;
    onClose(() => {
      this.total--;
      const left = (this.open.get(key) ?? 1) - 1;
      if (left <= 0) this.open.delete(key);
      else this.open.set(key, left);
    });
    return true;
  }

  /** connections open under a key (0 when none): a key's other state may go when this is 0 */
  count(key: K): number {
    return this.open.get(key) ?? 0;
  }
}

/**
 * At most `concurrency` holders at a time, `queue` more waiting in arrival order. acquire() resolves with
 * the release function once the caller's turn comes, or with null at once when the queue is full.
 */
export class Lane {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly concurrency: number, private readonly queue: number) {}

  acquire(): Promise<(() => void) | null> {
    if (this.running < this.concurrency) {
      this.running++;
      return Promise.resolve(this.releaser());
    }
    if (this.waiting.length >= this.queue) return Promise.resolve(null);
    return new Promise((resolve) => this.waiting.push(() => resolve(this.releaser())));
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next(); // the slot passes on: running stays the same
      else this.running--;
    };
  }
}
