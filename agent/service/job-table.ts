/**
 * The agent's jobs in memory, always what the store last saved: a change is saved first and only then
 * made in memory, so a failed save leaves no phantom job (and no lost one) behind.
 */
import type { JobStore } from './job-store.js';
import type { JobRecord } from './types.js';

export interface TableChange {
  /** records to add or replace (by job id) */
  set?: readonly JobRecord[];
  /** job ids to remove */
  remove?: readonly string[];
}

export class JobTable {
  private jobs = new Map<string, JobRecord>();
  /** uid -> "id,id", for the event log: asked once per kernel event, so kept until the table changes */
  private readonly idsByUid = new Map<number, string>();

  constructor(readonly store: JobStore) {}

  /** Read the table as last saved; an unreadable one is an error naming the file. */
  load(): void {
    this.replaceWith(new Map(this.store.load().map((j) => [j.jobId, j])));
  }

  /** the table a change would make, without making it */
  preview(change: TableChange): Map<string, JobRecord> {
    const next = new Map(this.jobs);
    for (const id of change.remove ?? []) next.delete(id);
    for (const job of change.set ?? []) next.set(job.jobId, job);
    return next;
  }

  /** save the change, then make it in memory; throws (changing nothing) when the save fails */
  commit(change: TableChange): void {
    const next = this.preview(change);
    this.store.save([...next.values()]);
    this.replaceWith(next);
  }

  private replaceWith(jobs: Map<string, JobRecord>): void {
    this.jobs = jobs;
    this.idsByUid.clear();
  }

  get(jobId: string): JobRecord | undefined {
    return this.jobs.get(jobId);
  }

  all(): JobRecord[] {
    return [...this.jobs.values()];
  }

  ofUid(uid: number): JobRecord[] {
    return this.all().filter((j) => j.uid === uid);
  }

  /** the ids of a uid's jobs, comma-separated ('' for none) */
  jobIdsOfUid(uid: number): string {
    let ids = this.idsByUid.get(uid);
    if (ids === undefined) {
      ids = this.ofUid(uid).map((j) => j.jobId).join(',');
      this.idsByUid.set(uid, ids);
    }
    return ids;
  }

  uids(): Set<number> {
    return new Set(this.all().map((j) => j.uid));
  }

  get size(): number {
    return this.jobs.size;
  }
}
