/**
 * The job table on disk (`<state_dir>/jobs.json`), so that a restarted agent resumes with the same jobs.
 * Written atomically: the whole text into a temporary file (every byte: write(2) may take less than it
 * is given, and a short file must never be renamed into place), fsync, rename over the old file, fsync
 * the directory. A crash leaves either the old table or the new one, never a torn one. The epilog reads
 * it too (a removal note names the registration it belongs to: agent/slurm/hook.ts).
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { dirname, join } from 'node:path';
import type { JobRecord } from './types.js';

/** what the agent keeps of its jobs; save() replaces the whole of it */
export interface JobStore {
  /** where it is kept, for messages */
  readonly path: string;
  /** the jobs as last saved; none when nothing was ever saved. Throws naming the file when it is unreadable. */
  load(): JobRecord[];
  /** replace what is kept; throws (and keeps the previous contents) when it cannot */
  save(jobs: readonly JobRecord[]): void;
}

/** version 1 had no registration and no boot id; version 2 records both for every job (and the Slurm node, added later: null when absent) */
const FORMAT_VERSION = 2;

interface TableFile {
  version: number;
  jobs: JobRecord[];
}

/** the file operations save() uses; tests give a writeSync that stops short */
export interface FileOps {
  writeSync: (fd: number, buffer: Buffer, offset: number) => number;
}

export function jobTablePath(stateDir: string): string {
  return join(stateDir, 'jobs.json');
}

/**
 * A version-1 record gets a registration of its own and no boot: the reconciliation then never takes it
 * for a job of an earlier boot (it may be a live job of this one, left by the agent before an upgrade).
 */
function upgrade(job: JobRecord & { registration?: string; bootId?: string | null; node?: string | null }): JobRecord {
  return { ...job, registration: job.registration ?? randomUUID(), bootId: job.bootId ?? null, node: job.node ?? null };
}

export class JobFile implements JobStore {
  readonly path: string;

  constructor(
    stateDir: string,
    private readonly ops: FileOps = { writeSync: (fd, buffer, offset) => writeSync(fd, buffer, offset) },
  ) {
    this.path = jobTablePath(stateDir);
  }

  load(): JobRecord[] {
    if (!existsSync(this.path)) return [];
    let parsed: TableFile;
    try {
      parsed = JSON.parse(readFileSync(this.path, 'utf8')) as TableFile;
    } catch (err) {
      throw new Error(`job table ${this.path} is unreadable: ${(err as Error).message}`);
    }
    if ((parsed.version !== 1 && parsed.version !== FORMAT_VERSION) || !Array.isArray(parsed.jobs)) {
      throw new Error(`job table ${this.path} has an unknown format (version ${String(parsed.version)})`);
    }
    return parsed.jobs.map(upgrade);
  }

  save(jobs: readonly JobRecord[]): void {
    mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
    const tmp = `${this.path}.tmp`;
    const body: TableFile = { version: FORMAT_VERSION, jobs: [...jobs] };
    const bytes = Buffer.from(`${JSON.stringify(body, null, 1)}\n`);
    const fd = openSync(tmp, 'w', 0o600);
    try {
      for (let done = 0; done < bytes.length; ) {
        const n = this.ops.writeSync(fd, bytes, done);
        if (n <= 0) throw new Error(`cannot write the job table ${tmp}: the write stopped after ${done} of ${bytes.length} bytes`);
        done += n;
      }
      fsyncSync(fd);
    } catch (err) {
      closeSync(fd);
      rmSync(tmp, { force: true });
      throw err;
    }
    closeSync(fd);
    renameSync(tmp, this.path);
    const dirFd = openSync(dirname(this.path), 'r');
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
  }
}
