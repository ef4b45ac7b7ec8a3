/**
 * What KrsiAgent works through, as interfaces, so that every failure path can be tested on the host with
 * fakes (a failing save, a failing map write, Slurm's view unreadable, a reboot) and the real pieces
 * stay what they are: the job file (job-store.ts), the kernel's identities of allowlisted files
 * (compile.ts), the Enforcer's pinned maps, the node's own view of Slurm's jobs (agent/slurm/view.ts).
 */
import { readFileSync } from 'node:fs';
import type { UidPolicy } from '../enforcement/enforcer.js';
import type { ResolvedFile } from '../enforcement/identity.js';
import type { JobBindingValue, PolicyValue } from '../enforcement/layout.js';

export type { JobStore } from './job-store.js';

/** the kernel side of a uid's policy; Enforcer implements it */
export interface KernelWriter {
  /** replace a uid's policy atomically; throws, leaving the old one in force, when it cannot */
  setUidPolicy(uid: number, policy: UidPolicy): void;
  /** remove a uid's policy; false if it had none */
  clearUidPolicy(uid: number): boolean;
  /** every uid with a policy in the kernel */
  uidPolicies(): Map<number, PolicyValue>;
  /** wait until retired sets are deleted */
  settle(): Promise<void>;
  /** delete set entries no uid or job refers to; returns how many */
  collectGarbage(): number;
  /** the cgroup level of job cgroups on this node, before the first bindJob */
  setJobLevel(level: number): void;
  /** hold a job cgroup's tasks to the job's own policy, whatever their uid (an atomic swap when bound already) */
  bindJob(cgroupId: bigint, jobId: number, policy: UidPolicy): void;
  /** the job cgroup's tasks fall back to their uid's policy; false if it was not bound */
  unbindJob(cgroupId: bigint): boolean;
  /** every bound job cgroup in the kernel */
  jobBindings(): Map<bigint, JobBindingValue>;
}

/**
 * The job cgroups Slurm's cgroup/v2 plugin makes on this node (job_<id> under slurmstepd's scope), watched
 * as they appear and go: agent/slurm/job-cgroups.ts.
 */
export interface JobCgroups {
  /**
   * Start watching. `appeared` is called for every job cgroup there is when watching starts and for each
   * one made later, with its cgroup id and level (the root is level 0), `gone` for each one removed, with
   * the id it had. A job has one job cgroup per slurmd of this host it runs on: one, unless the host runs
   * several slurmd. Returns null when job cgroups can be watched, otherwise why not (cgroup v1, no
   * cgroup/v2 plugin): every job then stays under its uid's union.
   */
  watch(appeared: (jobId: string, cgroupId: bigint, level: number) => void, gone: (jobId: string, cgroupId: bigint) => void): string | null;
  /** the cgroup ids of a job's cgroups that exist now (none, or one per slurmd of this host running it) */
  idsOf(jobId: string): bigint[];
  close(): void;
}

/** paths of allowlisted files to the kernel's identities, bounded in time */
export interface IdentityResolver {
  /** identities of the paths that exist now; missing (or stuck) ones are skipped and reported by the resolver */
  resolve(paths: readonly string[]): Promise<ResolvedFile[]>;
  /** the next resolve() asks the kernel again for this path (the file was replaced) */
  forget(path: string): void;
}

/** one job Slurm runs on this node, as the node sees it */
export interface SlurmJob {
  /**
   * a step that lives as long as the job was seen: the batch step, or the extern step that
   * PrologFlags=Contain starts with the allocation. Once seen, the job's absence means it ended.
   */
  lifetimeStep: boolean;
}

export interface SlurmJobs {
  jobs: Map<string, SlurmJob>;
  /**
   * true when every allocation on this node leaves a trace while it lives (PrologFlags=Contain): then a
   * job Slurm's view does not show has ended, even one that never ran a step. Without it, an salloc
   * allocation between its srun steps has no trace on the node at all.
   */
  allocationsVisible: boolean;
  /**
   * true when slurmctld ends every job of a node that rebooted on its own (ReturnToService 0 or 1: it sets
   * the node DOWN and ends or requeues its jobs). With ReturnToService=2 it does not: an allocation whose
   * batch script runs elsewhere, or an salloc, outlives the reboot, and its next step on this node runs
   * without a prolog (PrologFlags=Alloc), so its job must not be removed for the reboot alone.
   */
  rebootEndsJobs: boolean;
  /** where the view came from, for status ("cgroup /sys/fs/cgroup/system.slice/slurmstepd.scope, scontrol listpids") */
  sources: string[];
}

/** what slurmctld says of one job */
export type ControllerJob =
  /** slurmctld no longer knows the id (ended and purged, or never submitted) */
  | { known: false }
  /**
   * its state (JobState, e.g. RUNNING, PENDING, COMPLETED); `live`: it holds nodes (running, suspended,
   * completing...), and `nodes` are those (its NodeList, expanded; none when not live; null when the answer
   * cannot tell them: a field the user sets, such as the job name, repeats `NodeList=` or `JobState=`)
   */
  | { known: true; state: string; live: boolean; nodes: string[] | null };

/** the jobs Slurm runs on this node, from the node itself; rejects when that cannot be read */
export interface SlurmView {
  running(): Promise<SlurmJobs>;
  /**
   * What slurmctld says of one job: a single-job request, asked only about the jobs of an earlier boot
   * (slurmctld can miss a reboot and keep their allocations). Rejects when slurmctld cannot be asked.
   */
  controllerJob(jobId: string): Promise<ControllerJob>;
}

export interface Clock {
  /** wall-clock milliseconds */
  now(): number;
  /** this boot's id (/proc/sys/kernel/random/boot_id) */
  bootId(): string;
}

export const BOOT_ID_PATH = '/proc/sys/kernel/random/boot_id';

export const systemClock: Clock = {
  now: () => Date.now(),
  bootId: (() => {
    let id: string | undefined;
    return () => (id ??= readFileSync(BOOT_ID_PATH, 'utf8').trim());
  })(),
};
