/**
 * The agent's job table, kept on disk so that a restarted agent resumes with the same jobs: written
 * atomically (write a temporary file, fsync it, rename it over the old one, fsync the directory), so a
 * crash leaves either the old table or the new one, never a torn one.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { JobRecord } from './types.js';

const FORMAT_VERSION = 1;

interface TableFile {
  version: number;
  jobs: JobRecord[];
}

export class JobTable {
  readonly path: string;
  private readonly jobs = new Map<string, JobRecord>();
  /** uid -> "id,id", for the event log: asked once per kernel event, so kept until the table changes */
  private readonly idsByUid = new Map<number, string>();

  constructor(stateDir: string) {
    this.path = join(stateDir, 'jobs.json');
  }

  /** Read the table; a missing file is an empty table, an unreadable one is an error naming the file. */
  load(): void {
    this.jobs.clear();
    this.idsByUid.clear();
    if (!existsSync(this.path)) return;
    let parsed: TableFile;
    try {
      parsed = JSON.parse(readFileSync(this.path, 'utf8')) as TableFile;
    } catch (err) {
      throw new Error(`job table ${this.path} is unreadable: ${(err as Error).message}`);
    }
    if (parsed.version !== FORMAT_VERSION || !Array.isArray(parsed.jobs)) {
      throw new Error(`job table ${this.path} has an unknown format (version ${String(parsed.version)})`);
    }
    for (const job of parsed.jobs) this.jobs.set(job.jobId, job);
  }

  save(): void {
    mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
    const tmp = `${this.path}.tmp`;
    const body: TableFile = { version: FORMAT_VERSION, jobs: [...this.jobs.values()] };
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, `${JSON.stringify(body, null, 1)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
    const dirFd = openSync(dirname(this.path), 'r');
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
  }

  get(jobId: string): JobRecord | undefined {
    return this.jobs.get(jobId);
  }

  set(job: JobRecord): void {
    this.jobs.set(job.jobId, job);
    this.idsByUid.clear();
  }

  delete(jobId: string): JobRecord | undefined {
    const job = this.jobs.get(jobId);
    this.jobs.delete(jobId);
    this.idsByUid.clear();
    return job;
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
