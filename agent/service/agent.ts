/**
 * The agent's core: job lifetimes to kernel entries. A job's policy is the floor united with the
 * profile it asks for; a uid's kernel entry is the union over its live jobs, rewritten atomically on
 * every change and removed with the uid's last job.
 *
 * Everything it touches comes in as an interface (ports.ts): the job store, the identity resolver, the
 * kernel writer, Slurm's view of this node, the clock. The order of writes is chosen so that what a crash
 * between two steps leaves is repaired by the next start, which re-applies every uid of the saved table
 * and clears the kernel entries of uids without a job:
 * - add: save the table with the job, then write the uid's entry. A crash in between: the next start
 *   writes the entry. A failed write: the table is saved back without the job.
 * - remove: rewrite (or clear) the uid's entry, then save the table without the job. A crash in between:
 *   the next start holds the uid again (the safe side) until the epilog's note or the reconciliation
 *   removes the job once more. A failed write changes nothing.
 * - reload: every uid's new policy is compiled before anything changes, then written; a failed write puts
 *   back the uids already written, a failed save too, and the running configuration stays.
 * The table in memory is always what the store last saved (job-table.ts).
 *
 * Mutations are serialized: Slurm runs the prologs of different jobs concurrently.
 */
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { release } from 'node:os';
import { loadConfig, strictestProfile, type KrsiConfig, type ProfileConfig } from '../config/config.js';
import { ConfigError } from '../config/errors.js';
import { AGENT_KEYS, changedAgentKeys } from '../config/keys.js';
import type { UidPolicy } from '../enforcement/enforcer.js';
import { POLICIES, type KrsiEvent, type PolicyName } from '../enforcement/layout.js';
import { EventPipeline } from '../events/pipeline.js';
import type { Logger } from '../log/logger.js';
import { noteMatches, notesDir, readRemovalNotes } from '../slurm/notes.js';
import { FileWatcher, compilePolicy } from './compile.js';
import { JobTable } from './job-table.js';
import { mergeProfiles } from './merge.js';
import { chooseProfile } from './profile-choice.js';
import { systemClock, type Clock, type IdentityResolver, type JobCgroups, type JobStore, type KernelWriter, type SlurmView } from './ports.js';
import {
  ERR,
  KrsiError,
  type AddJobResult,
  type AgentService,
  type AgentStatus,
  type EffectivePolicy,
  type EventsPage,
  type JobBinding,
  type JobRecord,
  type JobRequest,
  type JobView,
  type PolicyCounters,
  type ProfileView,
  type ReconcileStatus,
  type ReloadResult,
  type RemoveJobResult,
} from './types.js';

/** what status shows of the kernel side besides the uid entries; Enforcer implements it */
export interface KernelStatus {
  /** the BPF build whose programs enforce (bpf/build-id.sh) */
  readonly buildId: string;
  /** other builds' programs and maps still pinned: an upgrade not finished (build id null: 0.1.0's) */
  readonly previous: readonly { dir: string; buildId: string | null }[];
  readonly pinDir: string;
  readonly programs: string[];
  readonly adopted: boolean;
  pinned(): string[];
  counters(): Record<PolicyName, { deny: bigint; audit: bigint; dropped: bigint; folded: bigint }>;
  /** entries in the per-set maps (status; only the agent and init may open the maps while it runs) */
  setEntryCounts(): AgentStatus['setEntries'];
}

/** why the reconciliation removed a job (a metric label: a fixed set) */
export const RECONCILE_REASONS = ['earlier_boot', 'not_running', 'ended'] as const;
export type ReconcileReason = (typeof RECONCILE_REASONS)[number];

const REASON_TEXT: Record<ReconcileReason, string> = {
  earlier_boot: 'registered before this node last booted, and slurmctld no longer holds it (ReturnToService 0 or 1: slurmctld ends or requeues the jobs of a rebooted node)',
  not_running: 'Slurm does not run it on this node (PrologFlags=Contain: every allocation would show)',
  ended: 'its batch or extern step was seen and is gone: the job ended without its epilog reaching the agent',
};

export interface AgentOptions {
  config: KrsiConfig;
  store: JobStore;
  kernel: KernelWriter;
  kernelStatus: KernelStatus;
  identities: IdentityResolver;
  slurm: SlurmView;
  /** the job cgroups Slurm makes on this node: each job is bound to its own as soon as both exist */
  jobCgroups: JobCgroups;
  clock?: Clock;
  log: Logger;
  version: string;
  lsm: string[];
  /** builds the event pipeline once the agent can attribute events to jobs */
  makePipeline: (jobOf: (e: KrsiEvent) => string) => EventPipeline;
  /** called with the duration of every uid policy write, in seconds (metrics) */
  onApply?: (seconds: number) => void;
  /** reads the config on reload (default: loadConfig) */
  loadConfig?: (path: string) => KrsiConfig;
  /**
   * Live [agent] keys that act outside the agent's core (access rights, the event log file): called after
   * a reload succeeded, with the new and the previous configuration.
   */
  onReload?: (next: KrsiConfig, previous: KrsiConfig) => Promise<void> | void;
  /** the uid (uid_t)-1 write path is primed at start (default true; tests that count writes turn it off) */
  prime?: boolean;
}

/** milliseconds since a process.hrtime.bigint() reading, to the microsecond */
function msSince(started: bigint): number {
  return Math.round(Number(process.hrtime.bigint() - started) / 1e3) / 1e3;
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class KrsiAgent implements AgentService {
  private config: KrsiConfig;
  private readonly table: JobTable;
  private readonly watcher: FileWatcher;
  private readonly clock: Clock;
  readonly pipeline: EventPipeline;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly startedAt: Date;
  private readonly log: Logger;
  /** registrations whose batch or extern step the reconciliation has seen */
  private readonly lifetimeSeen = new Set<string>();
  private readonly reconciled = new Map<ReconcileReason, number>(RECONCILE_REASONS.map((r) => [r, 0]));
  /** job id -> the cgroup ids its policy is bound to in the kernel (one per slurmd of this host running it) */
  private readonly bound = new Map<string, Set<bigint>>();
  /** why job cgroups cannot be used on this node (null: they can) */
  private jobCgroupsProblem: string | null = null;
  /** the cgroup level of job cgroups, as the watch reported it (0: not known yet) */
  private jobLevel = 0;
  /** the level last written to the kernel (0: none yet) */
  private kernelJobLevel = 0;
  private reconcileState: ReconcileStatus = {
    lastAt: null, slurmView: 'not read yet', problem: null, sources: [], allocationsVisible: false, rebootEndsJobs: false, unverified: [], controllerProblem: null,
  };
  /** registrations of an earlier boot kept because slurmctld still holds their job (logged once each) */
  private readonly heldByController = new Set<string>();

  constructor(private readonly opts: AgentOptions) {
    this.config = opts.config;
    this.log = opts.log;
    this.clock = opts.clock ?? systemClock;
    this.startedAt = new Date(this.clock.now());
    this.table = new JobTable(opts.store);
    this.watcher = new FileWatcher((paths) => void this.filesChanged(paths), opts.log.child('watch'));
    this.pipeline = opts.makePipeline((e) => this.jobOf(e));
  }

  /** run `fn` after every mutation queued before it */
  private serialize<T>(fn: () => T | Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Resume: read the job table as the previous agent left it (epilog notes are applied afterwards, by
   * applyRemovalNotes(), once the events recorded meanwhile have been read and attributed to their jobs),
   * rewrite every uid with jobs (each write is an atomic swap, so a uid that the previous agent left
   * enforced stays enforced throughout), clear uids that have no job.
   */
  async start(): Promise<void> {
    await this.serialize(async () => {
      this.table.load();
      const records = this.table.all().map((job) => this.withProfiles(this.config, job, job.requested));
      const live = new Set(records.map((j) => j.uid));
      for (const uid of live) await this.writeUid(uid, records);
      for (const uid of this.opts.kernel.uidPolicies().keys()) {
        if (!live.has(uid)) {
          this.opts.kernel.clearUidPolicy(uid);
          this.log.info('cleared kernel entry of a uid with no job', { uid });
        }
      }
      await this.opts.kernel.settle();
      const removed = this.opts.kernel.collectGarbage();
      if (removed > 0) this.log.info('removed orphaned set entries', { entries: removed });
      this.table.commit({ set: records });
      this.dropStaleBindings();
      this.jobCgroupsProblem = this.opts.jobCgroups.watch(
        (jobId, cgroupId, level) => void this.serialize(() => {
          this.jobLevel = level;
          return this.bindLocked(jobId, cgroupId);
        }),
        (jobId, cgroupId) => void this.serialize(() => this.cgroupGone(jobId, cgroupId)),
      );
      if (this.jobCgroupsProblem !== null) this.log.warn('job cgroups cannot be used: every job stays under its uid\'s policy', { why: this.jobCgroupsProblem });
      this.watchAllowlists();
      if (this.opts.prime !== false) await this.primeApplyPath();
      const earlier = records.filter((j) => this.ofEarlierBoot(j)).length;
      this.log.info('resumed job table', { jobs: this.table.size, uids: live.size, ofAnEarlierBoot: earlier });
    });
  }

  /**
   * The first policy write after start took about 50 ms in the VM, the next ones about 0.5 ms, and the
   * tenth or so about 5 ms: code that runs for the first time, then V8 optimising it, and first allocations
   * in the kernel's maps. Pay that here rather than in jobs' prologs: run the whole write path a few times for
   * the union of every configured profile, for uid 4294967295, (uid_t)-1, which the kernel gives to no task
   * (so the entry can match nothing) and the API refuses (MAX_UID in api/schemas.ts), removing the entry each time.
   */
  private async primeApplyPath(): Promise<void> {
    const NO_TASK_UID = 0xffffffff;
    const union = mergeProfiles(this.profilesNamed(this.config, [...this.config.profiles.keys()]));
    try {
      for (let i = 0; i < 16; i++) {
        this.opts.kernel.setUidPolicy(NO_TASK_UID, await compilePolicy(union, this.opts.identities));
        this.opts.kernel.clearUidPolicy(NO_TASK_UID);
      }
    } catch (err) {
      // only a warm-up: the prolog that needs the same write will report the real problem
      try {
        this.opts.kernel.clearUidPolicy(NO_TASK_UID);
      } catch {
        // nothing was written, or the maps are unusable: start() has reported that already
      }
      this.log.warn('could not prime the policy write path', { error: reason(err) });
    }
  }

  /**
   * Apply the removal notes of epilogs that could not reach the agent (while it was down or timing out).
   * A note is deleted only after it was applied, or when the registration it names is gone; a removal
   * that fails keeps its note for the next try.
   */
  async applyRemovalNotes(): Promise<void> {
    for (const note of readRemovalNotes(this.config.agent.stateDir)) {
      await this.serialize(async () => {
        const job = this.table.get(note.jobId);
        if (job !== undefined && noteMatches(note, job)) {
          await this.removeLocked(job.jobId, job.registration);
          this.log.info('job removed by an epilog note left while the agent was unreachable', {
            job: job.jobId, uid: job.uid, registration: job.registration, notedAt: note.writtenAt,
          });
        } else if (job !== undefined) {
          this.log.info('epilog note of an earlier registration: the job id is registered again, nothing removed', {
            job: note.jobId, notedRegistration: note.registration, registration: job.registration,
          });
        }
        rmSync(note.file, { force: true });
      }).catch((err: unknown) => {
        this.log.error('cannot apply an epilog note; it is kept for the next try', { job: note.jobId, note: note.file, error: reason(err) });
      });
    }
  }

  async stop(): Promise<void> {
    await this.queue;
    this.opts.jobCgroups.close();
    this.watcher.close();
    await this.pipeline.close();
  }

  // ---------------------------------------------------------------- jobs

  addJob(req: JobRequest): Promise<AddJobResult> {
    return this.serialize(async () => {
      const choice = chooseProfile(req.profile, req.comment);
      const existing = this.table.get(req.job_id);
      const ended = existing !== undefined && (this.ofEarlierBoot(existing) || this.endedByNote(existing));
      if (existing !== undefined && !ended && existing.uid === req.uid && existing.requested === choice.name) {
        return { job: existing, created: false, jobPolicy: this.policyOfJob(existing), uidPolicy: this.policyOfUid(req.uid) };
      }
      const job = this.withProfiles(this.config, {
        jobId: req.job_id,
        uid: req.uid,
        user: req.user ?? null,
        requested: choice.name,
        profiles: [],
        unknownProfile: null,
        addedAt: new Date(this.clock.now()).toISOString(),
        registration: randomUUID(),
        bootId: this.clock.bootId(),
        node: req.node ?? null,
      }, choice.name, choice.problem);
      if (ended) {
        // a run of this boot whose job id the table holds from an earlier boot (a requeued job back on
        // this node), or whose prolog came before the note of its earlier run's epilog was applied: the
        // earlier registration has ended, and the reconciliation or the note remove it, never this one
        this.log.info('job id registered again after its earlier registration ended (an earlier boot, or an epilog\'s removal note): a new registration', {
          job: job.jobId, uid: job.uid, requested: job.requested, endedRegistration: existing!.registration,
        });
      } else if (existing !== undefined) {
        // requeue, a ghost of a lost epilog, MaxJobId wrapping: Slurm runs this registration now
        this.log.warn('job id registered again for another uid or profile: the stale record is replaced', {
          job: job.jobId, uid: job.uid, requested: job.requested, staleUid: existing.uid, staleRequested: existing.requested,
          staleRegistration: existing.registration, staleAddedAt: existing.addedAt,
        });
      }
      this.saveOrFail({ set: [job] }, `register job ${job.jobId}`);
      const uids = new Set([job.uid, ...(existing ? [existing.uid] : [])]);
      let applyMs = 0;
      try {
        for (const uid of uids) applyMs += await this.syncUid(uid);
      } catch (err) {
        await this.revertAdd(job, existing, uids);
        throw new KrsiError(ERR.ENFORCEMENT, 503, `cannot write the policy of uid ${job.uid} into the kernel: ${reason(err)}`, {
          job: job.jobId, uid: job.uid,
        });
      }
      // with PrologFlags=Contain the job's cgroup may exist already; otherwise the watch binds it when it appears
      for (const cgroupId of this.opts.jobCgroups.idsOf(job.jobId)) await this.bindLocked(job.jobId, cgroupId);
      this.log.info('job added', {
        job: job.jobId, uid: job.uid, user: job.user, profiles: job.profiles.join(','), requested: job.requested, applyMs,
      });
      return { job, created: true, jobPolicy: this.policyOfJob(job), uidPolicy: this.policyOfUid(job.uid) };
    });
  }

  /** registered before this node last booted; a record of the first table format has no boot and is not */
  private ofEarlierBoot(job: JobRecord): boolean {
    return job.bootId !== null && job.bootId !== this.clock.bootId();
  }

  /**
   * Whether an epilog left a removal note for this registration (it could not reach the agent, and the
   * note is not applied yet): the registration has ended, so a prolog for its job id starts a new one.
   * Only asked when a job id is registered again, which is rare.
   */
  private endedByNote(job: JobRecord): boolean {
    try {
      return readRemovalNotes(this.config.agent.stateDir).some((note) => noteMatches(note, job));
    } catch (err) {
      this.log.warn('cannot read the epilogs\' removal notes', { dir: notesDir(this.config.agent.stateDir), error: reason(err) });
      return false;
    }
  }

  /** a registration whose kernel write failed: the table goes back to what it was, and so do the uids */
  private async revertAdd(job: JobRecord, existing: JobRecord | undefined, uids: Set<number>): Promise<void> {
    try {
      this.table.commit(existing ? { set: [existing] } : { remove: [job.jobId] });
    } catch (err) {
      // the table keeps the job: the next start writes it, the epilog (or the reconciliation) removes it
      this.log.error('cannot save the job table back after a failed kernel write', { job: job.jobId, error: reason(err) });
    }
    for (const uid of uids) {
      await this.syncUid(uid).catch((err: unknown) => {
        this.log.error('cannot put the kernel entry of a uid back after a failed write', { uid, error: reason(err) });
      });
    }
  }

  removeJob(jobId: string, registration?: string | null): Promise<RemoveJobResult> {
    return this.serialize(async () => {
      const result = await this.removeLocked(jobId, registration);
      if (result.laterRun) {
        const job = this.table.get(jobId);
        this.log.info('epilog of an earlier run of a job id: the later run\'s registration stays', {
          job: jobId, uid: job?.uid, registration: job?.registration, epilogRegistration: registration ?? 'none',
        });
      }
      return result;
    });
  }

  /**
   * Remove a job: only the given registration of it when one is given (null: none, so nothing registered
   * now is it); call inside serialize()
   */
  private async removeLocked(jobId: string, registration?: string | null): Promise<RemoveJobResult> {
    const job = this.table.get(jobId);
    if (job === undefined) return { removed: false, uidPolicy: null };
    if (registration !== undefined && job.registration !== registration) return { removed: false, uidPolicy: this.policyOfUid(job.uid), laterRun: true };
    const after = [...this.table.preview({ remove: [jobId] }).values()];
    const remaining = after.filter((j) => j.uid === job.uid).length;
    const started = process.hrtime.bigint();
    try {
      this.unbind(jobId);
      await this.writeUid(job.uid, after);
    } catch (err) {
      throw new KrsiError(ERR.ENFORCEMENT, 503, `cannot update the kernel entry of uid ${job.uid} to remove job ${jobId}: ${reason(err)}`, {
        job: jobId, uid: job.uid,
      });
    }
    const applyMs = msSince(started);
    this.saveOrFail({ remove: [jobId] }, `remove job ${jobId} (its kernel entry is already updated)`);
    this.log.info('job removed', { job: jobId, uid: job.uid, remainingJobsOfUid: remaining, applyMs });
    return { removed: true, uidPolicy: remaining === 0 ? null : this.policyOfUid(job.uid) };
  }

  private saveOrFail(change: Parameters<JobTable['commit']>[0], what: string): void {
    try {
      this.table.commit(change);
    } catch (err) {
      throw new KrsiError(ERR.STATE, 503, `cannot ${what}: the job table ${this.table.store.path} cannot be saved: ${reason(err)}`, {
        file: this.table.store.path,
      });
    }
  }

  listJobs(): JobView[] {
    return this.table.all().map((job) => ({ ...job, binding: this.bindingOf(job.jobId) }));
  }

  getJob(jobId: string): JobView | null {
    const job = this.table.get(jobId);
    return job === undefined ? null : { ...job, binding: this.bindingOf(jobId) };
  }

  // ---------------------------------------------------------------- job cgroups

  private bindingOf(jobId: string): JobBinding {
    const cgroupIds = this.bound.get(jobId);
    if (cgroupIds !== undefined) return { state: 'bound', cgroupId: [...cgroupIds].join(','), detail: null };
    if (this.jobCgroupsProblem !== null) return { state: 'unavailable', cgroupId: null, detail: this.jobCgroupsProblem };
    return { state: 'waiting', cgroupId: null, detail: 'no job cgroup yet: the uid\'s policy covers the job' };
  }

  /**
   * Bind a registered job to its cgroup (again: the policy is swapped atomically); call inside serialize().
   * A cgroup of a job not registered (yet) is left: the prolog's registration binds it. A failure leaves the
   * job under its uid's union, which always includes the job's policy.
   */
  private async bindLocked(jobId: string, cgroupId: bigint): Promise<void> {
    const job = this.table.get(jobId);
    // no job registered for it (yet), or its level not reported yet: the watch's report binds it
    if (job === undefined || this.jobLevel === 0) return;
    try {
      if (this.jobLevel !== this.kernelJobLevel) {
        this.opts.kernel.setJobLevel(this.jobLevel);
        this.kernelJobLevel = this.jobLevel;
      }
      const policy = await compilePolicy(this.policyOfJob(job), this.opts.identities);
      this.opts.kernel.bindJob(cgroupId, Number(jobId), policy);
      const cgroupIds = this.bound.get(jobId) ?? new Set<bigint>();
      if (!cgroupIds.has(cgroupId)) this.log.info('job bound to its cgroup', { job: jobId, uid: job.uid, cgroup: cgroupId.toString() });
      this.bound.set(jobId, cgroupIds.add(cgroupId));
    } catch (err) {
      this.log.error('cannot bind a job to its cgroup: its uid\'s policy covers it', { job: jobId, cgroup: cgroupId.toString(), error: reason(err) });
      // a rebinding (reload, allowlisted files) that failed must not leave the previous policy in force:
      // unbound, the job's tasks are held to the uid's union, which includes the job's current policy
      try {
        this.unbind(jobId, cgroupId);
      } catch (unbindErr) {
        this.log.error('cannot unbind a job whose rebinding failed: it keeps its previous policy', { job: jobId, error: reason(unbindErr) });
      }
    }
  }

  /**
   * Unbind a job's cgroups, or only the one given (its tasks fall back to their uid's union, which still
   * holds the job); call inside serialize()
   */
  private unbind(jobId: string, only?: bigint): void {
    const cgroupIds = this.bound.get(jobId);
    if (cgroupIds === undefined) return;
    for (const cgroupId of [...cgroupIds]) {
      if (only !== undefined && cgroupId !== only) continue;
      this.opts.kernel.unbindJob(cgroupId);
      cgroupIds.delete(cgroupId);
    }
    if (cgroupIds.size === 0) this.bound.delete(jobId);
  }

  /** one of the job's cgroups was removed: the job's last step on that slurmd ended; the epilog removes the job */
  private cgroupGone(jobId: string, cgroupId: bigint): void {
    if (!this.bound.get(jobId)?.has(cgroupId)) return;
    try {
      this.unbind(jobId, cgroupId);
      this.log.info('job cgroup removed: unbound', { job: jobId, cgroup: cgroupId.toString() });
    } catch (err) {
      this.log.error('cannot unbind a removed job cgroup', { job: jobId, cgroup: cgroupId.toString(), error: reason(err) });
    }
  }

  /** rebind every bound job after its policy may have changed (reload, allowlisted files); call inside serialize() */
  private async rebindAll(): Promise<void> {
    for (const [jobId, cgroupIds] of this.bound) {
      for (const cgroupId of [...cgroupIds]) await this.bindLocked(jobId, cgroupId);
    }
  }

  /**
   * At start: the kernel's bindings a previous agent left are dropped, except those of jobs in the table
   * whose cgroup is still the same (the watch rebinds them with the policy of this configuration at once).
   */
  private dropStaleBindings(): void {
    for (const [cgroupId, binding] of this.opts.kernel.jobBindings()) {
      const jobId = String(binding.jobId);
      if (this.table.get(jobId) !== undefined) continue;
      this.opts.kernel.unbindJob(cgroupId);
      this.log.info('removed the cgroup binding of a job that is gone', { job: jobId, cgroup: cgroupId.toString() });
    }
  }

  /**
   * The profiles a job gets under `config`: the floor, plus the requested profile, or when that is
   * unknown or malformed, the strictest configured profile (logged: the user's mistake must not loosen
   * anything).
   */
  private withProfiles(config: KrsiConfig, job: JobRecord, requested: string | null, problem: string | null = null): JobRecord {
    const floor = config.agent.defaultProfile;
    if (requested === null) return { ...job, profiles: [floor], unknownProfile: null };
    if (problem === null && config.profiles.has(requested)) {
      return { ...job, profiles: [...new Set([floor, requested])], unknownProfile: null };
    }
    const strictest = strictestProfile(config).name;
    this.log.warn('job asks for a profile this node does not have: applying the floor and the strictest profile', {
      job: job.jobId, uid: job.uid, requested, problem: problem ?? 'unknown profile', applied: strictest,
    });
    return { ...job, profiles: [...new Set([floor, strictest])], unknownProfile: requested };
  }

  private profilesNamed(config: KrsiConfig, names: readonly string[]): ProfileConfig[] {
    return names.map((n) => config.profiles.get(n)).filter((p): p is ProfileConfig => p !== undefined);
  }

  private policyOfJob(job: JobRecord): EffectivePolicy {
    return mergeProfiles(this.profilesNamed(this.config, job.profiles));
  }

  /** a uid's union policy over `jobs` (default: the table) under `config` */
  private policyOfUid(uid: number, jobs: readonly JobRecord[] = this.table.all(), config = this.config): EffectivePolicy {
    return mergeProfiles(this.profilesNamed(config, jobs.filter((j) => j.uid === uid).flatMap((j) => j.profiles)));
  }

  private compileUid(uid: number, jobs: readonly JobRecord[], config = this.config): Promise<UidPolicy> {
    return compilePolicy(this.policyOfUid(uid, jobs, config), this.opts.identities);
  }

  /**
   * Make a uid's kernel entry what `jobs` say: the union of its jobs' policies (an atomic swap), or no
   * entry when it has none. Returns the time it took, in ms.
   */
  private async writeUid(uid: number, jobs: readonly JobRecord[]): Promise<number> {
    const started = process.hrtime.bigint();
    if (!jobs.some((j) => j.uid === uid)) {
      this.opts.kernel.clearUidPolicy(uid);
    } else {
      this.opts.kernel.setUidPolicy(uid, await this.compileUid(uid, jobs));
    }
    const ms = msSince(started);
    this.opts.onApply?.(ms / 1e3);
    return ms;
  }

  /** a uid's kernel entry as the table says */
  private syncUid(uid: number): Promise<number> {
    return this.writeUid(uid, this.table.all());
  }

  // ---------------------------------------------------------------- allowlisted files

  private watchAllowlists(): void {
    const paths = new Set<string>();
    for (const p of this.config.profiles.values()) {
      for (const path of [...p.suidexecAllow, ...p.sshClients]) paths.add(path);
    }
    this.watcher.watchPaths(paths);
    // resolve them now, not in the first prolog that needs them (the identity iterator is the costly
    // part of an apply); a failure here is only reported: the apply that needs them will retry and fail
    // with the error where it matters
    this.opts.identities.resolve([...paths]).catch((err: unknown) => {
      this.log.warn('cannot resolve allowlisted files yet', { error: reason(err) });
    });
  }

  /** an allowlisted file was replaced, created or removed: re-resolve it and rewrite every uid */
  private filesChanged(paths: string[]): Promise<void> {
    return this.serialize(async () => {
      for (const p of paths) this.opts.identities.forget(p);
      for (const uid of this.table.uids()) await this.syncUid(uid);
      await this.rebindAll();
      this.log.info('allowlisted files changed: identities re-resolved', { paths: paths.join(','), uids: this.table.uids().size });
    }).catch((err: unknown) => this.log.error('cannot rewrite uids after allowlisted files changed', { error: reason(err) }));
  }

  // ---------------------------------------------------------------- config

  /** whether the last reload was applied (true until one fails, again once one succeeds): a metric */
  lastReloadSucceeded = true;

  reload(): Promise<ReloadResult> {
    const done = this.serialize(async () => {
      // a reload is also how logrotate's postrotate tells the agent to start a new event log file
      this.pipeline.reopen();
      let next: KrsiConfig;
      try {
        next = (this.opts.loadConfig ?? loadConfig)(this.config.path);
      } catch (err) {
        if (err instanceof ConfigError) {
          this.log.error('reload rejected: the running configuration stays in force', { problems: err.problems.join(' | ') });
          throw new KrsiError(ERR.CONFIG, 422, `reload rejected, the running configuration stays in force:\n${err.message}`, {
            problems: err.problems,
          });
        }
        throw err;
      }
      const records = this.table.all().map((job) => this.withProfiles(next, job, job.requested));
      const uids = [...new Set(records.map((j) => j.uid))];
      // everything the new configuration needs is worked out before anything changes
      const before = new Map<number, UidPolicy>();
      const after = new Map<number, UidPolicy>();
      for (const uid of uids) {
        before.set(uid, await this.compileUid(uid, this.table.all()));
        after.set(uid, await this.compileUid(uid, records, next));
      }
      const written: number[] = [];
      const putBack = (): void => {
        for (const uid of written) {
          try {
            this.opts.kernel.setUidPolicy(uid, before.get(uid)!);
          } catch (err) {
            this.log.error('cannot put a uid back to the running configuration after a failed reload', { uid, error: reason(err) });
          }
        }
      };
      try {
        for (const uid of uids) {
          this.opts.kernel.setUidPolicy(uid, after.get(uid)!);
          written.push(uid);
        }
      } catch (err) {
        putBack();
        const uid = uids[written.length];
        throw new KrsiError(ERR.ENFORCEMENT, 503, `reload failed, the running configuration stays in force: cannot write the policy of uid ${uid} into the kernel: ${reason(err)}`, {
          uid, uidsPutBack: written.length,
        });
      }
      try {
        this.table.commit({ set: records });
      } catch (err) {
        putBack();
        throw new KrsiError(ERR.STATE, 503, `reload failed, the running configuration stays in force: the job table ${this.table.store.path} cannot be saved: ${reason(err)}`, {
          file: this.table.store.path,
        });
      }
      const previous = this.config;
      this.config = next;
      if (next.agent.eventLog !== previous.agent.eventLog) this.pipeline.reopen(next.agent.eventLog);
      for (const field of changedAgentKeys(previous.agent, next.agent, 'restart')) {
        next.warnings.push(`${next.path}: [agent] ${AGENT_KEYS[field].name}: changed, takes effect when the agent restarts`);
      }
      try {
        await this.opts.onReload?.(next, previous);
      } catch (err) {
        next.warnings.push(`${next.path}: [agent]: ${reason(err)}`);
      }
      await this.rebindAll();
      this.watchAllowlists();
      for (const w of next.warnings) this.log.warn(w);
      this.log.info('configuration reloaded', { path: next.path, uidsUpdated: uids.length });
      return { configPath: next.path, warnings: next.warnings, uidsUpdated: uids.length };
    });
    done.then(() => (this.lastReloadSucceeded = true), () => (this.lastReloadSucceeded = false));
    return done;
  }

  get currentConfig(): KrsiConfig {
    return this.config;
  }

  profiles(): ProfileView[] {
    return [...this.config.profiles.values()]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((p) => ({ name: p.name, isDefault: p.name === this.config.agent.defaultProfile, policy: mergeProfiles([p]) }));
  }

  // ---------------------------------------------------------------- reconciliation with Slurm

  /**
   * Compare the job table with the jobs Slurm runs on this node, from the node's own view, and remove
   * the jobs Slurm does not run that can be told apart from a live job. Removing a live job is the
   * failure to avoid: with PrologFlags=Alloc, a later step of its allocation runs without a prolog, so
   * without the job's policy (seen on Slurm 22.05: a step started after slurmd and the job's slurmstepd
   * died ran without the prolog). So a job is removed only on evidence:
   * - registered in an earlier boot, when slurmctld ends the jobs of a node that rebooted (ReturnToService
   *   0, Slurm's default, or 1: the node goes DOWN, its jobs are ended or requeued, a requeued run
   *   registers anew) and says it no longer holds this one on this node (controllerJob: ended, pending
   *   again, unknown, or a requeued run on other nodes). slurmctld can miss a reboot (a node back within
   *   seconds, or one it held not responding) and keep the allocation: then a later step runs here
   *   without a prolog, so a job slurmctld still holds here is kept, and asked about again at the next
   *   reconciliation; so is one slurmctld cannot be asked about. These are the only questions to the
   *   controller, and only about the jobs of an earlier boot. With
   *   ReturnToService=2 an allocation whose batch script runs elsewhere, or an salloc, outlives the
   *   reboot: such jobs are kept, and their epilog removes them when Slurm ends them;
   * - of this boot, with PrologFlags=Contain (every allocation has an extern step while it lives):
   *   registered more than reconcile_grace seconds ago and not in the view;
   * - of this boot, without it: its batch or extern step was seen and is gone. A job never seen may be an
   *   salloc allocation between srun steps, which leaves no trace on the node.
   * Jobs kept for want of evidence are listed in status. If Slurm's view cannot be read, nothing is
   * removed, and status and metrics say so.
   */
  async reconcile(): Promise<void> {
    const takenAt = this.clock.now();
    let view;
    try {
      view = await this.opts.slurm.running();
    } catch (err) {
      if (this.reconcileState.problem === null) this.log.warn('cannot read which jobs Slurm runs on this node: no job is removed', { error: reason(err) });
      this.reconcileState = { ...this.reconcileState, lastAt: new Date(takenAt).toISOString(), slurmView: 'unreadable', problem: reason(err) };
      return;
    }
    if (this.reconcileState.problem !== null) this.log.info('Slurm\'s view of this node is readable again', { sources: view.sources.join(',') });
    const graceMs = this.config.agent.reconcileGrace * 1000;
    const unverified: string[] = [];
    let controllerProblem: string | null = null;
    for (const job of this.table.all()) {
      const seen = view.jobs.get(job.jobId);
      const addedAt = Date.parse(job.addedAt);
      if (seen !== undefined) {
        if (seen.lifetimeStep) this.lifetimeSeen.add(job.registration);
        continue;
      }
      let why: ReconcileReason | null;
      let controller: string | undefined;
      if (this.ofEarlierBoot(job)) {
        why = null;
        if (view.rebootEndsJobs && controllerProblem === null) {
          const said = await this.opts.slurm.controllerJob(job.jobId).catch((err: unknown) => reason(err));
          if (typeof said === 'string') {
            controllerProblem = said; // slurmctld is down or unreachable: ask about the others next time
          } else if (said.known && said.live && (job.node === null || said.nodes === null || said.nodes.includes(job.node))) {
            if (!this.heldByController.has(job.registration)) {
              this.heldByController.add(job.registration);
              this.log.warn('job of an earlier boot kept: slurmctld still holds it on this node (it missed the reboot, or has not seen it yet), and a later step of it here would run without a prolog', {
                job: job.jobId, uid: job.uid, registration: job.registration, slurmctld: said.state,
              });
            }
          } else {
            // ended, pending again (requeued), unknown, or a later run on other nodes (its run here would
            // have registered anew through its prolog)
            why = 'earlier_boot';
            controller = !said.known ? 'unknown job' : said.live ? `${said.state} on ${said.nodes?.join(',') || 'no node'}` : said.state;
          }
        }
      } else if (!(addedAt <= takenAt - graceMs)) continue; // young, or registered after the view was read
      else if (view.allocationsVisible) why = 'not_running';
      else if (this.lifetimeSeen.has(job.registration)) why = 'ended';
      else why = null;
      if (why === null) {
        unverified.push(job.jobId);
        continue;
      }
      const reasonWhy = why;
      await this.serialize(async () => {
        const { removed } = await this.removeLocked(job.jobId, job.registration);
        if (!removed) return;
        this.reconciled.set(reasonWhy, (this.reconciled.get(reasonWhy) ?? 0) + 1);
        this.log.warn('job removed: Slurm does not run it on this node', {
          job: job.jobId, uid: job.uid, registration: job.registration, registeredAt: job.addedAt, reason: REASON_TEXT[reasonWhy],
          ...(controller === undefined ? {} : { slurmctld: controller }),
        });
      }).catch((err: unknown) => this.log.error('cannot remove a job Slurm does not run; tried again next time', { job: job.jobId, error: reason(err) }));
    }
    const live = new Set(this.table.all().map((j) => j.registration));
    for (const r of this.lifetimeSeen) if (!live.has(r)) this.lifetimeSeen.delete(r);
    for (const r of this.heldByController) if (!live.has(r)) this.heldByController.delete(r);
    if (controllerProblem !== null && this.reconcileState.controllerProblem === null) {
      this.log.warn('cannot ask slurmctld about the jobs of an earlier boot: they are kept', { error: controllerProblem });
    } else if (controllerProblem === null && this.reconcileState.controllerProblem !== null) {
      this.log.info('slurmctld answers again about the jobs of an earlier boot');
    }
    this.reconcileState = {
      lastAt: new Date(takenAt).toISOString(), slurmView: 'ok', problem: null, sources: view.sources,
      allocationsVisible: view.allocationsVisible, rebootEndsJobs: view.rebootEndsJobs, unverified, controllerProblem,
    };
  }

  /** jobs removed by the reconciliation since start, by reason */
  reconciledCount(why: ReconcileReason): number {
    return this.reconciled.get(why) ?? 0;
  }

  get reconcileStatus(): ReconcileStatus {
    return this.reconcileState;
  }

  // ---------------------------------------------------------------- events and status

  /** the last bound job id an event named, as text: a flood from one job shares one string (the event window keeps it) */
  private lastBoundJob = { id: 0, text: '' };

  /** job id(s) an event is attributed to: the bound job whose task acted, else the jobs its uid has on this node */
  private jobOf(e: KrsiEvent): string {
    if (e.jobId === 0) return this.table.jobIdsOfUid(e.uid);
    if (e.jobId !== this.lastBoundJob.id) this.lastBoundJob = { id: e.jobId, text: String(e.jobId) };
    return this.lastBoundJob.text;
  }

  events(since: number, limit: number, uid?: number): EventsPage {
    return this.pipeline.page(since, limit, uid);
  }

  status(): AgentStatus {
    const kernelStatus = this.opts.kernelStatus;
    const kernel = kernelStatus.counters();
    const counters = {} as Record<PolicyName, PolicyCounters>;
    let dropped = 0;
    let folded = 0;
    for (const p of POLICIES) {
      const k = kernel[p];
      counters[p] = { deny: Number(k.deny), audit: Number(k.audit), dropped: Number(k.dropped), folded: Number(k.folded) };
      dropped += counters[p].dropped;
      folded += counters[p].folded;
    }
    const rec = this.reconcileState;
    const warnings = [...this.config.warnings];
    if (rec.slurmView === 'unreadable') warnings.push(`Slurm's view of this node cannot be read, no job is reconciled: ${rec.problem ?? ''}`);
    for (const g of kernelStatus.previous) {
      warnings.push(`the programs of build ${g.buildId ?? '0.1.0'} are still pinned under ${g.dir} beside this build's: the upgrade to ${kernelStatus.buildId} is not finished (see the agent's log; the next start tries again)`);
    }
    if (this.jobCgroupsProblem !== null) warnings.push(`job cgroups cannot be used, every job is held by its uid's policy (the union of the uid's jobs): ${this.jobCgroupsProblem}`);
    if (rec.controllerProblem !== null) warnings.push(`slurmctld cannot be asked about the jobs of an earlier boot, they are kept: ${rec.controllerProblem}`);
    if (rec.unverified.length > 0) {
      warnings.push(`jobs Slurm's view does not show, kept because Slurm may still run them (an allocation between steps without PrologFlags=Contain, or one of an earlier boot that slurmctld still holds, could not be asked about, or runs with ReturnToService=2): ${rec.unverified.join(', ')}`);
    }
    return {
      version: this.opts.version,
      buildId: kernelStatus.buildId,
      kernel: release(),
      lsm: this.opts.lsm,
      configPath: this.config.path,
      pinDir: kernelStatus.pinDir,
      programs: kernelStatus.programs,
      pinned: kernelStatus.pinned(),
      adopted: kernelStatus.adopted,
      jobs: this.table.size,
      jobCgroups: { usable: this.jobCgroupsProblem === null, problem: this.jobCgroupsProblem, level: this.jobLevel, bound: this.bound.size },
      uidsUnderPolicy: [...this.opts.kernel.uidPolicies().keys()].sort((a, b) => a - b),
      setEntries: kernelStatus.setEntryCounts(),
      counters,
      events: { logged: this.pipeline.loggedCount(), dropped, folded, repeatsLogged: this.pipeline.repeatsLogged() },
      reconcile: rec,
      uptimeSeconds: Math.round((this.clock.now() - this.startedAt.getTime()) / 1000),
      startedAt: this.startedAt.toISOString(),
      warnings,
    };
  }
}
