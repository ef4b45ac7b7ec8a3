/**
 * The agent's core: job lifetimes to kernel entries. A job's policy is the floor united with the
 * profile it asks for; a uid's kernel entry is the union over its live jobs, rewritten atomically on
 * every change and removed with the uid's last job. The job table is persisted before the kernel is
 * changed, so a crash in between is repaired by the restarted agent, which re-applies every uid from
 * the table (and clears kernel entries of uids that have no job left).
 *
 * Mutations are serialized: Slurm runs the prologs of different jobs concurrently.
 */
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { loadConfig, strictestProfile, type KrsiConfig, type ProfileConfig } from '../config/config.js';
import { ConfigError } from '../config/errors.js';
import type { Enforcer } from '../enforcement/enforcer.js';
import { POLICIES, type KrsiEvent, type PolicyName } from '../enforcement/layout.js';
import { EventPipeline } from '../events/pipeline.js';
import type { Logger } from '../log/logger.js';
import { JOB_ID } from '../slurm/hook.js';
import { FileWatcher, IdentityCache, compilePolicy } from './compile.js';
import { JobTable } from './job-table.js';
import { mergeProfiles } from './merge.js';
import { chooseProfile } from './profile-choice.js';
import {
  ERR,
  KrsiError,
  type AddJobResult,
  type AgentService,
  type AgentStatus,
  type EffectivePolicy,
  type EventsPage,
  type JobRecord,
  type JobRequest,
  type PolicyCounters,
  type ProfileView,
  type ReloadResult,
  type RemoveJobResult,
} from './types.js';

export interface AgentOptions {
  config: KrsiConfig;
  enforcer: Enforcer;
  identityObject: string;
  log: Logger;
  version: string;
  lsm: string[];
  /** builds the event pipeline once the agent can attribute events to jobs */
  makePipeline: (jobOf: (e: KrsiEvent) => string) => EventPipeline;
  /** called with the duration of every uid policy write, in seconds (metrics) */
  onApply?: (seconds: number) => void;
}

/** milliseconds since a process.hrtime.bigint() reading, to the microsecond */
function msSince(started: bigint): number {
  return Math.round(Number(process.hrtime.bigint() - started) / 1e3) / 1e3;
}

export class KrsiAgent implements AgentService {
  private config: KrsiConfig;
  private readonly table: JobTable;
  private readonly identities: IdentityCache;
  private readonly watcher: FileWatcher;
  readonly pipeline: EventPipeline;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly startedAt = new Date();
  private readonly log: Logger;

  constructor(private readonly opts: AgentOptions) {
    this.config = opts.config;
    this.log = opts.log;
    this.table = new JobTable(opts.config.agent.stateDir);
    this.identities = new IdentityCache(opts.identityObject, opts.log.child('identity'));
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
   * applyRemovalNotes(), once the events recorded meanwhile have been read and attributed to their jobs), rewrite every uid with jobs (each write is an atomic swap, so a uid
   * that the previous agent left enforced stays enforced throughout), clear uids that have no job.
   */
  async start(): Promise<void> {
    await this.serialize(async () => {
      this.table.load();
      for (const job of this.table.all()) this.table.set(this.withProfiles(job, job.requested));
      const live = this.table.uids();
      for (const uid of live) this.applyUid(uid);
      for (const uid of this.opts.enforcer.uidPolicies().keys()) {
        if (!live.has(uid)) {
          this.opts.enforcer.clearUidPolicy(uid);
          this.log.info('cleared kernel entry of a uid with no job', { uid });
        }
      }
      await this.opts.enforcer.settle();
      const removed = this.opts.enforcer.collectGarbage();
      if (removed > 0) this.log.info('removed orphaned set entries', { entries: removed });
      this.table.save();
      this.watchAllowlists();
      this.primeApplyPath();
      this.log.info('resumed job table', { jobs: this.table.size, uids: live.size });
    });
  }

  /**
   * The first policy write after start took about 50 ms in the VM, the next ones about 0.5 ms, and the
   * tenth or so about 5 ms: code that runs for the first time, then V8 optimising it, and first allocations
   * in the kernel's maps. Pay that here rather than in jobs' prologs: run the whole write path a few times for
   * the union of every configured profile, for uid 4294967295, (uid_t)-1, which the kernel gives to no task
   * (so the entry can match nothing) and the API refuses (MAX_UID in api/schemas.ts), removing the entry each time.
   */
  private primeApplyPath(): void {
    const NO_TASK_UID = 0xffffffff;
    const names = [...this.config.profiles.keys()];
    try {
      for (let i = 0; i < 16; i++) {
        this.writeUidPolicy(NO_TASK_UID, mergeProfiles(this.profilesNamed(names)));
        this.opts.enforcer.clearUidPolicy(NO_TASK_UID);
      }
    } catch (err) {
      // only a warm-up: the prolog that needs the same write will report the real problem
      try {
        this.opts.enforcer.clearUidPolicy(NO_TASK_UID);
      } catch {
        // nothing was written, or the maps are unusable: start() has reported that already
      }
      this.log.warn('could not prime the policy write path', { error: (err as Error).message });
    }
  }

  /** removals the epilog noted down while it could not reach the agent (agent/slurm/hook.ts) */
  private takeRemovalNotes(): string[] {
    const dir = join(this.config.agent.stateDir, 'pending-removals');
    if (!existsSync(dir)) return [];
    const ids: string[] = [];
    for (const name of readdirSync(dir)) {
      rmSync(join(dir, name), { force: true });
      if (JOB_ID.test(name)) ids.push(name);
    }
    return ids;
  }

  /** apply the removal notes of epilogs that could not reach the agent (while it was down or timing out) */
  async applyRemovalNotes(): Promise<void> {
    const ids = await this.serialize(() => this.takeRemovalNotes());
    for (const id of ids) {
      if (this.table.get(id)) this.log.info('job removed by an epilog note left while the agent was unreachable', { job: id });
      await this.removeJob(id);
    }
  }

  async stop(): Promise<void> {
    await this.queue;
    this.watcher.close();
    await this.pipeline.close();
  }

  // ---------------------------------------------------------------- jobs

  addJob(req: JobRequest): Promise<AddJobResult> {
    return this.serialize(() => {
      const existing = this.table.get(req.job_id);
      if (existing) {
        if (existing.uid !== req.uid) {
          throw new KrsiError(ERR.BAD_REQUEST, 409, `job ${req.job_id} is already registered for uid ${existing.uid}, not uid ${req.uid}`);
        }
        return { job: existing, created: false, jobPolicy: this.policyOfJob(existing), uidPolicy: this.policyOfUid(req.uid) };
      }
      const choice = chooseProfile(req.profile, req.comment);
      const base: JobRecord = {
        jobId: req.job_id,
        uid: req.uid,
        user: req.user ?? null,
        requested: choice.name,
        profiles: [],
        unknownProfile: null,
        addedAt: new Date().toISOString(),
      };
      const job = this.withProfiles(base, choice.name, choice.problem);
      this.table.set(job);
      this.table.save();
      let applyMs: number;
      try {
        applyMs = this.applyUid(job.uid);
      } catch (err) {
        this.table.delete(job.jobId);
        this.table.save();
        throw new KrsiError(ERR.ENFORCEMENT, 503, `cannot write the policy of uid ${job.uid} into the kernel: ${(err as Error).message}`);
      }
      this.log.info('job added', {
        job: job.jobId, uid: job.uid, user: job.user, profiles: job.profiles.join(','), requested: job.requested, applyMs,
      });
      return { job, created: true, jobPolicy: this.policyOfJob(job), uidPolicy: this.policyOfUid(job.uid) };
    });
  }

  removeJob(jobId: string): Promise<RemoveJobResult> {
    return this.serialize(() => {
      const job = this.table.delete(jobId);
      if (!job) return { removed: false, uidPolicy: null };
      this.table.save();
      const remaining = this.table.ofUid(job.uid).length;
      const started = process.hrtime.bigint();
      if (remaining === 0) {
        this.opts.enforcer.clearUidPolicy(job.uid);
      } else {
        this.applyUid(job.uid);
      }
      const applyMs = msSince(started);
      this.log.info('job removed', { job: jobId, uid: job.uid, remainingJobsOfUid: remaining, applyMs });
      return { removed: true, uidPolicy: remaining === 0 ? null : this.policyOfUid(job.uid) };
    });
  }

  listJobs(): JobRecord[] {
    return this.table.all();
  }

  getJob(jobId: string): JobRecord | null {
    return this.table.get(jobId) ?? null;
  }

  /**
   * The profiles a job gets: the floor, plus the requested profile, or when that is unknown or
   * malformed, the strictest configured profile (logged: the user's mistake must not loosen anything).
   */
  private withProfiles(job: JobRecord, requested: string | null, problem: string | null = null): JobRecord {
    const floor = this.config.agent.defaultProfile;
    if (requested === null) return { ...job, profiles: [floor], unknownProfile: null };
    if (problem === null && this.config.profiles.has(requested)) {
      return { ...job, profiles: [...new Set([floor, requested])], unknownProfile: null };
    }
    const strictest = strictestProfile(this.config).name;
    this.log.warn('job asks for a profile this node does not have: applying the floor and the strictest profile', {
      job: job.jobId, uid: job.uid, requested, problem: problem ?? 'unknown profile', applied: strictest,
    });
    return { ...job, profiles: [...new Set([floor, strictest])], unknownProfile: requested };
  }

  private profilesNamed(names: readonly string[]): ProfileConfig[] {
    return names.map((n) => this.config.profiles.get(n)).filter((p): p is ProfileConfig => p !== undefined);
  }

  private policyOfJob(job: JobRecord): EffectivePolicy {
    return mergeProfiles(this.profilesNamed(job.profiles));
  }

  private policyOfUid(uid: number): EffectivePolicy {
    return mergeProfiles(this.profilesNamed(this.table.ofUid(uid).flatMap((j) => j.profiles)));
  }

  /** write a uid's union policy into the kernel (an atomic swap); returns the time it took, in ms */
  private applyUid(uid: number): number {
    const started = process.hrtime.bigint();
    this.writeUidPolicy(uid, this.policyOfUid(uid));
    const ms = msSince(started);
    this.opts.onApply?.(ms / 1e3);
    return ms;
  }

  /** the write itself, shared by applyUid and the start-up priming (which must not count as an apply) */
  private writeUidPolicy(uid: number, policy: EffectivePolicy): void {
    this.opts.enforcer.setUidPolicy(uid, compilePolicy(policy, this.identities));
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
    try {
      this.identities.resolve([...paths]);
    } catch (err) {
      this.log.warn('cannot resolve allowlisted files yet', { error: (err as Error).message });
    }
  }

  /** an allowlisted file was replaced, created or removed: re-resolve it and rewrite every uid */
  private filesChanged(paths: string[]): Promise<void> {
    return this.serialize(() => {
      for (const p of paths) this.identities.forget(p);
      for (const uid of this.table.uids()) this.applyUid(uid);
      this.log.info('allowlisted files changed: identities re-resolved', { paths: paths.join(','), uids: this.table.uids().size });
    });
  }

  // ---------------------------------------------------------------- config

  reload(): Promise<ReloadResult> {
    return this.serialize(() => {
      // a reload is also how logrotate's postrotate tells the agent to start a new event log file
      this.pipeline.reopen();
      let next: KrsiConfig;
      try {
        next = loadConfig(this.config.path);
      } catch (err) {
        if (err instanceof ConfigError) {
          this.log.error('reload rejected: the running configuration stays in force', { problems: err.problems.join(' | ') });
          throw Object.assign(new KrsiError(ERR.CONFIG, 422, `reload rejected, the running configuration stays in force:\n${err.message}`), {
            problems: err.problems,
          });
        }
        throw err;
      }
      for (const key of ['socket', 'pinDir', 'stateDir', 'ringBufferBytes', 'metricsListen'] as const) {
        if (JSON.stringify(next.agent[key]) !== JSON.stringify(this.config.agent[key])) {
          next.warnings.push(`${next.path}: [agent] ${key}: changed, takes effect when the agent restarts`);
        }
      }
      this.config = next;
      for (const job of this.table.all()) this.table.set(this.withProfiles(job, job.requested));
      this.table.save();
      const uids = this.table.uids();
      for (const uid of uids) this.applyUid(uid);
      this.watchAllowlists();
      for (const w of next.warnings) this.log.warn(w);
      this.log.info('configuration reloaded', { path: next.path, uidsUpdated: uids.size });
      return { configPath: next.path, warnings: next.warnings, uidsUpdated: uids.size };
    });
  }

  get currentConfig(): KrsiConfig {
    return this.config;
  }

  profiles(): ProfileView[] {
    return [...this.config.profiles.values()]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((p) => ({ name: p.name, isDefault: p.name === this.config.agent.defaultProfile, policy: mergeProfiles([p]) }));
  }

  // ---------------------------------------------------------------- events and status

  /** job id(s) an event is attributed to: the jobs its uid has on this node */
  private jobOf(e: KrsiEvent): string {
    return this.table.jobIdsOfUid(e.uid);
  }

  events(since: number, limit: number): EventsPage {
    return this.pipeline.page(since, limit);
  }

  status(): AgentStatus {
    const enforcer = this.opts.enforcer;
    const kernel = enforcer.counters();
    const counters = {} as Record<PolicyName, PolicyCounters>;
    let dropped = 0;
    for (const p of POLICIES) {
      counters[p] = { deny: Number(kernel[p].deny), audit: Number(kernel[p].audit), dropped: Number(kernel[p].dropped) };
      dropped += counters[p].dropped;
    }
    return {
      version: this.opts.version,
      kernel: release(),
      lsm: this.opts.lsm,
      configPath: this.config.path,
      pinDir: enforcer.pinDir,
      programs: enforcer.programs,
      pinned: enforcer.pinned(),
      adopted: enforcer.adopted,
      jobs: this.table.size,
      uidsUnderPolicy: [...enforcer.uidPolicies().keys()].sort((a, b) => a - b),
      setEntries: enforcer.setEntryCounts(),
      counters,
      events: { logged: this.pipeline.loggedCount(), dropped },
      uptimeSeconds: Math.round((Date.now() - this.startedAt.getTime()) / 1000),
      startedAt: this.startedAt.toISOString(),
      warnings: this.config.warnings,
    };
  }
}
