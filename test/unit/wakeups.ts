/**
 * Counts how often this process's main thread wakes up (its voluntary context switches, from
 * /proc/self/task/<pid>/status): what an idle agent must keep near zero, since on a compute node every
 * wakeup is time taken from the job. Returns a function that reads the count since the call.
 */
import { readFileSync } from 'node:fs';

export function mainThreadWakeups(): () => number {
  const read = (): number => {
    const m = /^voluntary_ctxt_switches:\s+(\d+)$/m.exec(readFileSync(`/proc/self/task/${process.pid}/status`, 'utf8'));
    if (!m) throw new Error(`no voluntary_ctxt_switches in /proc/self/task/${process.pid}/status`);
    return Number(m[1]);
  };
  const start = read();
  return () => read() - start;
}
