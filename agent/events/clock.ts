/**
 * Kernel event times are CLOCK_BOOTTIME nanoseconds (bpf_ktime_get_boot_ns); the log wants wall-clock
 * time. The offset between the two clocks moves when the wall clock is stepped (NTP at boot, an admin's
 * date) and drifts while NTP slews it: the agent refreshes it periodically (refresh()), and a step shows
 * in the log.
 */
import koffi from 'koffi';

const CLOCK_REALTIME = 0;
const CLOCK_BOOTTIME = 7;

let clockGettime: ((clock: number, ts: { tv_sec: number | bigint; tv_nsec: number | bigint }) => number) | undefined;

function nowNs(clock: number): bigint {
  if (!clockGettime) {
    const timespec = koffi.struct('krsi_timespec', { tv_sec: 'int64_t', tv_nsec: 'int64_t' });
    clockGettime = koffi.load('libc.so.6').func('int clock_gettime(int clk, _Out_ krsi_timespec *ts)') as never;
    void timespec;
  }
  const ts = { tv_sec: 0, tv_nsec: 0 };
  if (clockGettime!(clock, ts) !== 0) throw new Error(`clock_gettime(${clock}) failed`);
  return BigInt(ts.tv_sec) * 1_000_000_000n + BigInt(ts.tv_nsec);
}

/** the wall clock minus the boot clock, in ns, now */
export function measureBootOffset(): bigint {
  return nowNs(CLOCK_REALTIME) - nowNs(CLOCK_BOOTTIME);
}

/**
 * A change of the offset larger than this between two refreshes is reported as a step of the wall clock.
 * Slewing moves it far less: ntpd slews at most 500 ppm, 5 ms in the agent's 10 s between refreshes.
 */
export const STEP_NS = 100_000_000n;

export class BootClock {
  private offsetNs: bigint;

  constructor(private readonly measure: () => bigint = measureBootOffset) {
    this.offsetNs = measure();
  }

  /** read the offset again; returns by how many ns it moved when that is a step (else 0n) */
  refresh(): bigint {
    const next = this.measure();
    const moved = next - this.offsetNs;
    this.offsetNs = next;
    return moved > STEP_NS || moved < -STEP_NS ? moved : 0n;
  }

  toDate(bootNs: bigint): Date {
    return new Date(this.toMs(bootNs));
  }

  /** wall-clock milliseconds since the epoch */
  toMs(bootNs: bigint): number {
    return Number((bootNs + this.offsetNs) / 1_000_000n);
  }
}
