/**
 * Kernel event times are CLOCK_BOOTTIME nanoseconds (bpf_ktime_get_boot_ns); the log wants wall-clock
 * time. The offset between the two clocks is read once and refreshed on demand (it moves only when the
 * wall clock is stepped).
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

export class BootClock {
  private offsetNs: bigint;

  constructor() {
    this.offsetNs = BootClock.measure();
  }

  private static measure(): bigint {
    return nowNs(CLOCK_REALTIME) - nowNs(CLOCK_BOOTTIME);
  }

  refresh(): void {
    this.offsetNs = BootClock.measure();
  }

  toDate(bootNs: bigint): Date {
    return new Date(this.toMs(bootNs));
  }

  /** wall-clock milliseconds since the epoch */
  toMs(bootNs: bigint): number {
    return Number((bootNs + this.offsetNs) / 1_000_000n);
  }
}
