/**
 * The one line a job's output starts with, saying which profiles the job runs under on this node and
 * why. The prolog writes it, once the agent has applied the policy, into NOTICE_DIR/<job id>, readable by
 * the job's user only; slurm/task-prolog (slurm.conf TaskProlog=, run as the user) prints it into the
 * job's output; the epilog removes it. A file and a shell script, not a request to the agent: the
 * TaskProlog runs for every task of every step, where a Node.js start would cost 50 ms each.
 */
import { chownSync, closeSync, mkdirSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { safe } from '../cli/format.js';

/** the same path is in slurm/task-prolog (a unit test compares them); /run: gone with a reboot, as the jobs are */
export const NOTICE_DIR = '/run/slurm-krsi/jobs';

/** Slurm job ids are numbers; anything else gets no notice (and never becomes a path) */
const NUMERIC_JOB_ID = /^[0-9]{1,20}$/;

export interface NoticeJob {
  jobId: string;
  profiles: string[];
  requested: string | null;
  unknownProfile: string | null;
}

/** the line, without control characters (a requested name is the user's input, and a newline would start a TaskProlog command) */
export function jobNotice(job: NoticeJob, node: string | undefined): string {
  const where = node ? ` on ${safe(node)}` : '';
  const profiles = job.profiles.length === 1 ? `profile ${job.profiles[0]}` : `profiles ${job.profiles.join(' + ')}`;
  const name = (n: string): string => safe(n.slice(0, 64));
  const why = job.unknownProfile !== null
    ? `its comment asks for policy:${name(job.unknownProfile)}, which this node does not know, so the strictest profile applies`
    : job.requested !== null
      ? `its comment asks for policy:${name(job.requested)}`
      : 'the floor every job gets (its comment names no policy)';
  return `slurm-krsi: job ${job.jobId} runs under ${profiles}${where}: ${why}`;
}

/**
 * Write the notice for the job's user (mode 0400, owned by the uid), whole or not at all: a new file
 * under a temporary name, renamed into place, in a directory only root may write to.
 */
export function writeJobNotice(jobId: string, uid: number, line: string, dir = NOTICE_DIR): void {
  if (!NUMERIC_JOB_ID.test(jobId)) throw new Error(`job id ${JSON.stringify(jobId)} is not a number: no notice`);
  mkdirSync(dir, { recursive: true, mode: 0o711 });
  const path = join(dir, jobId);
  const tmp = join(dir, `.${jobId}.${process.pid}`);
  const fd = openSync(tmp, 'wx', 0o400);
  try {
    writeSync(fd, `${line}\n`);
  } finally {
    closeSync(fd);
  }
  try {
    chownSync(tmp, uid, -1);
    renameSync(tmp, path);
  } catch (err) {
    unlinkSync(tmp);
    throw err;
  }
}

/** remove the job's notice; a job without one (never registered, an id that is not a number) is fine */
export function removeJobNotice(jobId: string, dir = NOTICE_DIR): void {
  if (!NUMERIC_JOB_ID.test(jobId)) return;
  try {
    unlinkSync(join(dir, jobId));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
