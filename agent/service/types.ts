/**
 * The agent's operations as the control API (agent/api/) and krsictl see them. The JSON shapes here are
 * the wire format of /v1/*: snake_case where they are request bodies Slurm's prolog sends, camelCase in
 * responses. Nothing here knows about HTTP.
 */
import type { Mode, PolicyName } from '../enforcement/layout.js';

/** POST /v1/jobs body (what the prolog sends) */
export interface JobRequest {
  /** Slurm job id (SLURM_JOB_ID; array/het jobs: the id slurmd gives the prolog) */
  job_id: string;
  uid: number;
  /** SLURM_JOB_USER, for logs only */
  user?: string;
  /** SLURM_JOB_COMMENT, verbatim; `policy:NAME` anywhere in it names the profile */
  comment?: string;
  /** a profile name given directly; wins over the comment */
  profile?: string;
  /** SLURMD_NODENAME: the Slurm node the prolog ran for (a host may run several slurmd) */
  node?: string;
}

export interface JobRecord {
  jobId: string;
  uid: number;
  user: string | null;
  /** the profile the job asked for (from `profile` or the comment), null when none */
  requested: string | null;
  /** the profiles applied: the floor (default_profile), plus the requested one or, if that is unknown, the strictest */
  profiles: string[];
  /** set when the requested profile does not exist (or is malformed) on this node */
  unknownProfile: string | null;
  /** ISO time the agent registered the job */
  addedAt: string;
  /**
   * This registration of the job id (a UUID). A job id comes back (requeue, MaxJobId wrapping): removal
   * notes and the reconciliation name the registration they mean, and never touch a later one.
   */
  registration: string;
  /** /proc/sys/kernel/random/boot_id when the job was registered; null for records of an older table format */
  bootId: string | null;
  /**
   * The Slurm node the registration is for (the prolog's SLURMD_NODENAME): after a reboot, a job
   * slurmctld runs is kept only while this node is one of its nodes (a requeued run may run elsewhere).
   * null when the registration did not say (older prologs and table formats, registrations by hand).
   */
  node: string | null;
}

/** a job's cgroup binding (runtime state, not saved: the watch finds the cgroups again at start) */
export interface JobBinding {
  /** bound: its tasks are held to the job's own policy; waiting: no cgroup yet; unavailable: no job cgroups on this node */
  state: 'bound' | 'waiting' | 'unavailable';
  /** the job cgroup's id (decimal), when bound; ids joined by commas when the host's several slurmd each run a part of it */
  cgroupId: string | null;
  detail: string | null;
}

/** a job as GET /v1/jobs shows it */
export interface JobView extends JobRecord {
  binding: JobBinding;
}

export type CidrVerdict = 'allow' | 'deny';

/** a policy as configured (paths, CIDR text), before file identities are resolved */
export interface EffectivePolicy {
  modes: Record<PolicyName, Mode>;
  suidexecAllow: string[];
  sshClients: string[];
  connectDefault: CidrVerdict;
  connectRules: { cidr: string; verdict: CidrVerdict }[];
}

export interface AddJobResult {
  job: JobRecord;
  /** false when the job id was already known (the call is idempotent) */
  created: boolean;
  /** the job's own policy (floor ∪ requested) */
  jobPolicy: EffectivePolicy;
  /** what the uid is now held to: the union over all its jobs on this node */
  uidPolicy: EffectivePolicy;
}

export interface RemoveJobResult {
  /** false when the job was unknown (still a success) */
  removed: boolean;
  /** the uid's policy after removal; null when its last job ended and its entries are gone */
  uidPolicy: EffectivePolicy | null;
  /**
   * true when the removal named a registration (the epilog's, as it started) and the job id is now
   * registered again, by a later run: that run is left in place
   */
  laterRun?: boolean;
}

/** the kernel's counters of one policy: deny + audit (decisions) = events + folded + dropped */
export interface PolicyCounters {
  deny: number;
  audit: number;
  dropped: number;
  folded: number;
}

export interface AgentStatus {
  version: string;
  /** the BPF build the agent runs and has pinned (bpf/build-id.sh) */
  buildId: string;
  kernel: string;
  lsm: string[];
  configPath: string;
  pinDir: string;
  programs: string[];
  /** this build's pinned objects under pinDir/build-<buildId> (links/…, maps/…) */
  pinned: string[];
  /** true when this agent adopted programs a previous instance of the same build left pinned */
  adopted: boolean;
  jobs: number;
  /** job cgroups: whether they can be used, why not, their level, how many jobs are bound */
  jobCgroups: { usable: boolean; problem: string | null; level: number; bound: number };
  uidsUnderPolicy: number[];
  /** entries in the per-set maps (a set each per uid policy; what a crash leaves over is removed at start) */
  setEntries: { suid_allow: number; ssh_clients: number; connect_cidrs: number };
  counters: Record<PolicyName, PolicyCounters>;
  /**
   * logged: events this agent process logged; dropped, folded: the kernel's counters (since the programs
   * were loaded); repeatsLogged: folded decisions the logged lines reported as repeats=
   */
  events: { logged: number; dropped: number; folded: number; repeatsLogged: number };
  /** the last comparison of the job table with the jobs Slurm runs on this node */
  reconcile: ReconcileStatus;
  uptimeSeconds: number;
  startedAt: string;
  warnings: string[];
}

export interface ReconcileStatus {
  /** ISO time of the last reading of Slurm's view; null before the first */
  lastAt: string | null;
  slurmView: 'ok' | 'unreadable' | 'not read yet';
  /** why Slurm's view could not be read (nothing is removed then) */
  problem: string | null;
  /** what the view was read from */
  sources: string[];
  /** PrologFlags=Contain: every allocation shows while it lives, so any job not shown has ended */
  allocationsVisible: boolean;
  /** ReturnToService 0 or 1: slurmctld ends the jobs of a node that rebooted */
  rebootEndsJobs: boolean;
  /** jobs Slurm's view does not show, kept because Slurm may still run them (see rebootEndsJobs, allocationsVisible) */
  unverified: string[];
  /** why slurmctld could not be asked about the jobs of an earlier boot (they are kept meanwhile); null: it answered, or was not asked */
  controllerProblem: string | null;
}

/** one decoded kernel event as the API returns it */
export interface EventRecord {
  /** increasing sequence number, for `GET /v1/events?since=` */
  seq: number;
  time: string;
  type: string;
  policy: PolicyName;
  decision: 'deny' | 'audit';
  uid: number;
  gid: number;
  pid: number;
  comm: string;
  /** decisions of the same action folded into this event since its previous one */
  repeats: number;
  /** the bound job whose task acted; outside every bound job, the job id(s) of the uid on this node, comma separated; '' when none */
  job: string;
  /** the event log line, exactly as written to the log */
  line: string;
}

export interface EventsPage {
  events: EventRecord[];
  /** pass as `since` to get the events after these */
  next: number;
  /**
   * events older than the in-memory window that were asked for but are gone (0 if none); 0 in a view of
   * one uid's events, which must not tell how many events other users had
   */
  missed: number;
}

export interface ProfileView {
  name: string;
  isDefault: boolean;
  policy: EffectivePolicy;
}

export interface ReloadResult {
  configPath: string;
  warnings: string[];
  /** uids whose kernel entries were rewritten */
  uidsUpdated: number;
}

/** What the API calls. Implemented by agent/service/agent.ts; tests may pass a stand-in for route tests. */
export interface AgentService {
  addJob(req: JobRequest): Promise<AddJobResult>;
  /**
   * Remove a job. With `registration` (the epilog's), only that registration: null means the epilog saw
   * none, so whatever is registered now came later. Without it, whatever is registered (an admin's removal).
   */
  removeJob(jobId: string, registration?: string | null): Promise<RemoveJobResult>;
  listJobs(): JobView[];
  getJob(jobId: string): JobView | null;
  status(): AgentStatus;
  /** the events after `since`, at most `limit`; only those of `uid` when given (a user's own view) */
  events(since: number, limit: number, uid?: number): EventsPage;
  profiles(): ProfileView[];
  reload(): Promise<ReloadResult>;
}

/**
 * Errors with a stable code and an HTTP status; the message names the input that was wrong, and `details`
 * carries what a client may act on (a rejected reload's `problems`, the job, the file). The API sends
 * details as they are beside the error.
 */
export class KrsiError extends Error {
  constructor(
    readonly code: string,
    readonly statusCode: number,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'KrsiError';
  }
}

export const ERR = {
  BAD_REQUEST: 'KRSI_ERR_BAD_REQUEST',
  FORBIDDEN: 'KRSI_ERR_FORBIDDEN',
  NOT_FOUND: 'KRSI_ERR_NOT_FOUND',
  CONFIG: 'KRSI_ERR_CONFIG',
  ENFORCEMENT: 'KRSI_ERR_ENFORCEMENT',
  /** the job table cannot be saved (full or failing disk) */
  STATE: 'KRSI_ERR_STATE',
  PAYLOAD_TOO_LARGE: 'KRSI_ERR_PAYLOAD_TOO_LARGE',
  INTERNAL: 'KRSI_ERR_INTERNAL',
} as const;
