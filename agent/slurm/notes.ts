/**
 * Removal notes: what an epilog that could not reach the agent leaves under `<state_dir>/pending-removals/`
 * for the agent to apply when it is back. A note names the job id, its uid and the registration it
 * belongs to (read from the job table on disk), so that it never removes a later registration of the
 * same id (a requeued run whose prolog came after the note). The agent deletes a note only once it
 * has been applied (or found to concern a registration that is gone).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { JobFile } from '../service/job-store.js';
import type { JobRecord } from '../service/types.js';
import { JOB_ID } from './names.js';

export interface RemovalNote {
  /** the note's file */
  file: string;
  jobId: string;
  /** null only in notes of an older format */
  uid: number | null;
  /** the registration the job table held for the id when the epilog ran; null when it held none */
  registration: string | null;
  /** ISO time the epilog wrote the note */
  writtenAt: string;
}

export function notesDir(stateDir: string): string {
  return join(stateDir, 'pending-removals');
}

/**
 * The registration the job table holds for this job id and uid, as the agent last saved it: null when it
 * holds none, undefined when the table cannot be read. The epilog reads it as it starts, so that what it
 * ends is the run Slurm ends, not a later run of the same id registered meanwhile (slurmctld requeues the
 * jobs of a node that rebooted and sends their epilogs while it already starts them again).
 */
export function registrationOnDisk(stateDir: string, jobId: string, uid: number): string | null | undefined {
  try {
    return new JobFile(stateDir).load().find((j) => j.jobId === jobId && j.uid === uid)?.registration ?? null;
  } catch {
    // the table is the agent's: an unreadable one is its problem to report
    return undefined;
  }
}

/**
 * Note down a removal the epilog could not deliver, for the registration the epilog saw as it started
 * (read now when not given). None known (no entry, or an unreadable table): the note matches only a
 * registration of the same uid made before the note.
 */
export function leaveRemovalNote(
  stateDir: string, jobId: string, uid: number,
  { registration = registrationOnDisk(stateDir, jobId, uid), now = new Date() }: { registration?: string | null | undefined; now?: Date } = {},
): string {
  const dir = notesDir(stateDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // '@' cannot occur in a job id: one note per epilog run, never overwriting another run's
  const name = `${jobId}@${registration ?? `unregistered-${now.getTime()}-${process.pid}`}`;
  const path = join(dir, name);
  const note = { jobId, uid, registration: registration ?? null, writtenAt: now.toISOString() };
  // written whole, then renamed into place: the agent must never read (and drop) a note half written.
  // '~' cannot occur in a job id either, so the agent skips the file while it is being written.
  const partial = join(dir, `~${name}`);
  writeFileSync(partial, `${JSON.stringify(note)}\n`, { mode: 0o600 });
  renameSync(partial, path);
  return path;
}

/** the notes waiting to be applied; files that are not notes are ignored */
export function readRemovalNotes(stateDir: string): RemovalNote[] {
  const dir = notesDir(stateDir);
  if (!existsSync(dir)) return [];
  const notes: RemovalNote[] = [];
  for (const name of readdirSync(dir).sort()) {
    const file = join(dir, name);
    const jobId = name.split('@')[0] ?? '';
    if (!JOB_ID.test(jobId)) continue;
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue; // removed meanwhile
    }
    try {
      const parsed = JSON.parse(text) as Partial<RemovalNote>;
      if (parsed.jobId !== jobId || typeof parsed.writtenAt !== 'string') continue;
      notes.push({ file, jobId, uid: typeof parsed.uid === 'number' ? parsed.uid : null, registration: parsed.registration ?? null, writtenAt: parsed.writtenAt });
    } catch {
      // the first format: the file is named by the job id and holds the time
      notes.push({ file, jobId, uid: null, registration: null, writtenAt: text.trim() });
    }
  }
  return notes;
}

/** whether a note is about this registration of its job id */
export function noteMatches(note: RemovalNote, job: JobRecord): boolean {
  if (note.jobId !== job.jobId) return false;
  if (note.registration !== null) return note.registration === job.registration;
  // no registration known to the epilog: a registration of the same uid made before the note
  return (note.uid === null || note.uid === job.uid) && Date.parse(job.addedAt) <= Date.parse(note.writtenAt);
}
