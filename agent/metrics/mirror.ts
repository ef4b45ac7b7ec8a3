/** prom-client counters that follow a value kept elsewhere (the kernel's, the process's), read at the scrape */
import { Counter, type Registry } from 'prom-client';

/** A counter that mirrors a monotonically growing external value: collect() adds what it grew by. */
export function mirrorCounter<L extends string>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: readonly L[],
  read: () => { labels: Record<L, string>; value: number }[],
): void {
  const last = new Map<string, number>();
  new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      for (const { labels, value } of read()) {
        const key = JSON.stringify(labels);
        const delta = value - (last.get(key) ?? 0);
        // a value that went down was reset at its source (programs re-pinned): count it from zero
        this.inc(labels as never, delta >= 0 ? delta : value);
        last.set(key, value);
      }
    },
  });
}
