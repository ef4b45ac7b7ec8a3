/**
 * Deadlines for tests that run inside the VM.
 *
 * The VM is software-emulated, so how long a step takes depends on the build machine and on whatever
 * else it runs: the same 64 prologs took 40 s on one machine and 84 s on another. A test asserts what
 * must hold (the prologs succeed), never how fast emulation ran; its deadline is only a safety net, and
 * when it fires the failure says what was being waited for.
 *
 * Every base deadline in the specs is several times what the step takes on an idle build machine, and
 * scaled() stretches it further by the run's pace: how much slower than the reference a Node.js start
 * was in this boot (run-kernel-specs.ts measures it before mocha starts and exports KRSI_VM_PACE; the
 * reference is REFERENCE_NODE_START_MS). Speed itself is measured by `npm run bench`, not here.
 */

/** `node -e 0` inside the VM on an idle 2-core build machine (2 vCPUs, TCG), in wall-clock ms: 390-660 seen */
export const REFERENCE_NODE_START_MS = 500;

export const PACE_ENV = 'KRSI_VM_PACE';

/** how much slower than the reference this run is (>= 1; 1 outside the VM or when not measured) */
export function pace(): number {
  const value = Number(process.env[PACE_ENV]);
  return Number.isFinite(value) && value >= 1 ? value : 1;
}

/** a base deadline stretched by the run's pace */
export function scaled(ms: number): number {
  return Math.round(ms * pace());
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class WaitTimeout extends Error {
  override name = 'WaitTimeout';
}

export interface WaitOptions {
  /** base deadline, stretched by scaled() (default 30 s) */
  timeoutMs?: number;
  /** poll interval (default 100 ms) */
  intervalMs?: number;
  /** what the failure message adds about the last state seen (job record, log tail...) */
  detail?: () => string | Promise<string>;
}

/**
 * Poll `check` until it returns something other than undefined or false, and return that. On timeout,
 * throws "timed out after N s waiting for: <what>" with the detail, so a failure names its condition.
 */
export async function waitFor<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, opts: WaitOptions = {}): Promise<T> {
  const timeoutMs = scaled(opts.timeoutMs ?? 30_000);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) {
      const detail = opts.detail ? `\n${await opts.detail()}` : '';
      throw new WaitTimeout(`timed out after ${(timeoutMs / 1000).toFixed(0)} s waiting for: ${what}${detail}`);
    }
    await sleep(opts.intervalMs ?? 100);
  }
}

/**
 * Await `work`, but fail after `timeoutMs` (not scaled: callers derive it from a measurement or pass
 * scaled()) with a message naming what was awaited and, from `progress`, how far it got.
 */
export async function withDeadline<T>(what: string, timeoutMs: number, work: Promise<T>, progress?: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const how = progress ? ` (${progress()})` : '';
      reject(new WaitTimeout(`timed out after ${(timeoutMs / 1000).toFixed(0)} s waiting for: ${what}${how}`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** run `fn` and return its result with the wall-clock milliseconds it took */
export async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = process.hrtime.bigint();
  const value = await fn();
  return { value, ms: Number(process.hrtime.bigint() - started) / 1e6 };
}
