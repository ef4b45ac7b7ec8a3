/**
 * An in-memory AgentService for route and CLI tests: it records every call and can be told to throw.
 * The kernel-backed service is tested in the VM.
 */
import type {
  AddJobResult,
  AgentService,
  AgentStatus,
  EffectivePolicy,
  EventRecord,
  EventsPage,
  JobRecord,
  JobRequest,
  JobView,
  ProfileView,
  ReloadResult,
  RemoveJobResult,
} from '../../../agent/service/types.js';
import type { PeerCred } from '../../../agent/api/peercred.js';
import type { AccessPolicy } from '../../../agent/api/app.js';

export function policy(overrides: Partial<EffectivePolicy> = {}): EffectivePolicy {
  return {
    modes: { fileperms: 'audit', suidexec: 'off', sshlisteners: 'off', skconnections: 'off', killtasks: 'off' },
    suidexecAllow: [],
    sshClients: [],
    connectDefault: 'allow',
    connectRules: [],
    ...overrides,
  };
}

export const STRICT = policy({
  modes: { fileperms: 'enforce', suidexec: 'enforce', sshlisteners: 'enforce', skconnections: 'enforce', killtasks: 'enforce' },
  suidexecAllow: ['/usr/bin/passwd'],
  sshClients: ['/usr/bin/ssh'],
  connectRules: [{ cidr: '192.0.2.0/24', verdict: 'deny' }],
});

type Method = keyof AgentService;

export class FakeService implements AgentService {
  readonly jobs = new Map<string, JobRecord>();
  readonly calls: { method: Method; args: unknown[] }[] = [];
  /** errors to throw, by method */
  readonly failWith = new Map<Method, unknown>();
  eventLog: EventRecord[] = [];
  reloadResult: ReloadResult = { configPath: '/etc/slurm-krsi/krsi.ini', warnings: [], uidsUpdated: 0 };

  private record(method: Method, args: unknown[]): void {
    this.calls.push({ method, args });
    if (this.failWith.has(method)) throw this.failWith.get(method);
  }

  async addJob(req: JobRequest): Promise<AddJobResult> {
    this.record('addJob', [req]);
    const existing = this.jobs.get(req.job_id);
    if (existing) return { job: existing, created: false, jobPolicy: policy(), uidPolicy: policy() };
    const match = /policy:([A-Za-z0-9_.-]+)/.exec(req.comment ?? '');
    const requested = req.profile ?? match?.[1] ?? null;
    const unknown = requested !== null && !['default', 'strict'].includes(requested) ? requested : null;
    const job: JobRecord = {
      jobId: req.job_id,
      uid: req.uid,
      user: req.user ?? null,
      requested,
      profiles: requested === null ? ['default'] : ['default', unknown !== null ? 'strict' : requested],
      unknownProfile: unknown,
      addedAt: '2026-11-26T10:00:00.000Z',
      registration: `registration-${this.jobs.size + 1}`,
      bootId: 'boot-1',
      node: req.node ?? null,
    };
    this.jobs.set(req.job_id, job);
    return { job, created: true, jobPolicy: requested ? STRICT : policy(), uidPolicy: requested ? STRICT : policy() };
  }

  async removeJob(jobId: string, registration?: string | null): Promise<RemoveJobResult> {
    this.record('removeJob', registration === undefined ? [jobId] : [jobId, registration]);
    const job = this.jobs.get(jobId);
    if (!job) return { removed: false, uidPolicy: null };
    if (registration !== undefined && registration !== job.registration) return { removed: false, uidPolicy: policy(), laterRun: true };
    this.jobs.delete(jobId);
    const others = [...this.jobs.values()].some((j) => j.uid === job.uid);
    return { removed: true, uidPolicy: others ? policy() : null };
  }

  listJobs(): JobView[] {
    this.record('listJobs', []);
    return [...this.jobs.values()].map((job) => this.view(job));
  }

  getJob(jobId: string): JobView | null {
    this.record('getJob', [jobId]);
    const job = this.jobs.get(jobId);
    return job === undefined ? null : this.view(job);
  }

  /** the first job is shown bound, the others waiting for their cgroup */
  private view(job: JobRecord): JobView {
    const first = [...this.jobs.keys()][0] === job.jobId;
    return {
      ...job,
      binding: first ? { state: 'bound', cgroupId: '4242', detail: null } : { state: 'waiting', cgroupId: null, detail: 'no job cgroup yet' },
    };
  }

  status(): AgentStatus {
    this.record('status', []);
    return {
      version: '0.1.0',
      buildId: 'e2f8852b-ae1364784ce6',
      kernel: '6.1.0-test',
      lsm: ['lockdown', 'capability', 'bpf'],
      configPath: '/etc/slurm-krsi/krsi.ini',
      pinDir: '/sys/fs/bpf/slurm-krsi',
      programs: ['krsi_inode_create', 'krsi_bprm_check'],
      pinned: ['links/krsi_inode_create', 'maps/krsi_policy'],
      adopted: false,
      jobs: this.jobs.size,
      jobCgroups: { usable: true, problem: null, level: 3, bound: Math.min(1, this.jobs.size) },
      uidsUnderPolicy: [...new Set([...this.jobs.values()].map((j) => j.uid))],
      setEntries: { suid_allow: 2, ssh_clients: 0, connect_cidrs: 4 },
      counters: {
        fileperms: { deny: 3, audit: 7, dropped: 0, folded: 4 },
        suidexec: { deny: 1, audit: 0, dropped: 0, folded: 0 },
        sshlisteners: { deny: 0, audit: 0, dropped: 0, folded: 0 },
        skconnections: { deny: 0, audit: 2, dropped: 1, folded: 0 },
        killtasks: { deny: 0, audit: 0, dropped: 0, folded: 0 },
      },
      events: { logged: 9, dropped: 1, folded: 4, repeatsLogged: 3 },
      reconcile: {
        lastAt: '2026-11-26T10:01:00.000Z', slurmView: 'ok', problem: null, sources: ['scontrol listpids'], allocationsVisible: true, rebootEndsJobs: true, unverified: [], controllerProblem: null,
      },
      uptimeSeconds: 3725,
      startedAt: '2026-11-26T09:00:00.000Z',
      warnings: ['/etc/slurm-krsi/krsi.ini: [profile strict] suidexec_allow: "/usr/bin/nope" does not exist (yet)'],
    };
  }

  events(since: number, limit: number, uid?: number): EventsPage {
    this.record('events', uid === undefined ? [since, limit] : [since, limit, uid]);
    const after = this.eventLog.filter((e) => e.seq > since && (uid === undefined || e.uid === uid));
    const page = after.slice(0, limit);
    const last = page[page.length - 1];
    return { events: page, next: last ? last.seq : since, missed: 0 };
  }

  profiles(): ProfileView[] {
    this.record('profiles', []);
    return [
      { name: 'default', isDefault: true, policy: policy() },
      { name: 'strict', isDefault: false, policy: STRICT },
    ];
  }

  async reload(): Promise<ReloadResult> {
    this.record('reload', []);
    return this.reloadResult;
  }

  addEvent(overrides: Partial<EventRecord> = {}): EventRecord {
    const seq = (this.eventLog[this.eventLog.length - 1]?.seq ?? 0) + 1;
    const ev: EventRecord = {
      seq,
      time: '2026-11-26T10:00:00.000Z',
      type: 'chmod',
      policy: 'fileperms',
      decision: 'deny',
      uid: 1000,
      gid: 1000,
      pid: 4242,
      comm: 'chmod',
      repeats: 0,
      job: '123',
      line: `time=2026-11-26T10:00:00.000Z seq=${seq} type=chmod policy=fileperms decision=deny uid=1000 job=123 comm=chmod`,
      ...overrides,
    };
    this.eventLog.push(ev);
    return ev;
  }
}

export const ROOT: PeerCred = { pid: 1, uid: 0, gid: 0, groups: [] };
export const SLURM: PeerCred = { pid: 2, uid: 64030, gid: 64030, groups: [] };
export const USER: PeerCred = { pid: 3, uid: 1000, gid: 1000, groups: [100] };
/** reader through a supplementary group */
export const ADMIN: PeerCred = { pid: 4, uid: 1001, gid: 1001, groups: [100, 4242] };
/** reader through the primary group */
export const ADMIN_PRIMARY: PeerCred = { pid: 5, uid: 1002, gid: 4242, groups: [] };

export function accessPolicy(): AccessPolicy {
  return { writerUids: new Set([0, 64030]), readerGids: new Set([4242]), slurmdUser: 'slurm', adminGroup: 'hpcadmin' };
}
