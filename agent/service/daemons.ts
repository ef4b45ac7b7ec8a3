/**
 * killtasks for listed daemons (protect_daemons: slurmd, munged, ...): their processes are found by
 * executable identity (/proc/<pid>/exe resolves to the configured path) and protected with scope
 * "policy", i.e. from uids whose policy has killtasks on. Daemons restart, so the scan repeats.
 */
import { readdirSync, readlinkSync } from 'node:fs';
import type { Enforcer } from '../enforcement/enforcer.js';
import type { Logger } from '../log/logger.js';

const RESCAN_MS = 30_000;

export function pidsRunning(paths: readonly string[]): number[] {
  if (paths.length === 0) return [];
  const wanted = new Set(paths);
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (wanted.has(readlinkSync(`/proc/${entry}/exe`))) pids.push(Number(entry));
    } catch {
      // kernel threads and processes that just exited have no readable exe
    }
  }
  return pids;
}

export class DaemonProtector {
  private timer: NodeJS.Timeout | undefined;
  private protectedNow = new Set<number>();

  constructor(
    private readonly enforcer: Enforcer,
    private readonly paths: () => readonly string[],
    private readonly log: Logger,
  ) {}

  start(): void {
    this.scan();
    this.timer = setInterval(() => this.scan(), RESCAN_MS);
    this.timer.unref();
  }

  scan(): void {
    const pids = new Set(pidsRunning(this.paths()));
    for (const pid of pids) {
      if (this.protectedNow.has(pid)) continue;
      try {
        this.enforcer.protect(pid, 'policy');
        this.log.info('daemon protected from uids under killtasks', { pid });
      } catch (err) {
        this.log.warn('cannot protect daemon', { pid, error: (err as Error).message });
        pids.delete(pid);
      }
    }
    for (const pid of this.protectedNow) if (!pids.has(pid)) this.enforcer.unprotect(pid);
    this.protectedNow = pids;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
