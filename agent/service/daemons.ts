/**
 * killtasks for listed daemons (protect_daemons: slurmd, munged, ...): their processes are found by
 * executable identity (/proc/<pid>/exe resolves to the configured path) and protected with scope
 * "policy", i.e. from uids whose policy has killtasks on. Daemons restart, so the scan repeats.
 *
 * The protected map is pinned and outlives the agent: entries of scope "policy" a previous agent left
 * are taken over at start and re-checked by the first scan like the agent's own, so an entry for a
 * daemon that is gone, or no longer listed, does not stay behind (a pid reused by another process is
 * already harmless, the entry's start time no longer matching, but the entry would leak).
 */
import { readdirSync, readlinkSync } from 'node:fs';
import type { ProtectScope, ProtectValue } from '../enforcement/layout.js';
import type { Logger } from '../log/logger.js';

/** the part of the Enforcer this uses */
export interface ProtectionMap {
  protect(pid: number, scope: ProtectScope): void;
  unprotect(pid: number): boolean;
  protectedPids(): Map<number, ProtectValue>;
}

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
    private readonly enforcer: ProtectionMap,
    private readonly paths: () => readonly string[],
    private readonly log: Logger,
    private readonly running: (paths: readonly string[]) => number[] = pidsRunning,
  ) {}

  start(): void {
    for (const [pid, entry] of this.enforcer.protectedPids()) if (entry.scope === 'policy') this.protectedNow.add(pid);
    // a previous agent's entry for a running daemon is written anew (its start time read again: the pid
    // may belong to a daemon restarted since, which an old entry would not protect)
    this.scan(true);
    this.timer = setInterval(() => this.scan(), RESCAN_MS);
    this.timer.unref();
  }

  /** protect the listed daemons running now and unprotect the others; `rewrite`: also those protected already */
  scan(rewrite = false): void {
    const pids = new Set(this.running(this.paths()));
    for (const pid of pids) {
      if (!rewrite && this.protectedNow.has(pid)) continue;
      try {
        this.enforcer.protect(pid, 'policy');
        this.log.info('daemon protected from uids under killtasks', { pid });
      } catch (err) {
        this.log.warn('cannot protect daemon', { pid, error: (err as Error).message });
        pids.delete(pid);
      }
    }
    for (const pid of this.protectedNow) {
      if (!pids.has(pid) && this.enforcer.unprotect(pid)) this.log.info('protection of a daemon process that is gone or no longer listed removed', { pid });
    }
    this.protectedNow = pids;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
