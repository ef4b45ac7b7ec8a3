/**
 * JSON schemas of the control API (/v1/*): request validation and response serialization. They mirror
 * the wire shapes of agent/service/types.ts; a field added there must be added here too, or the
 * response serializer drops it (test/unit/api checks the full shapes round-trip).
 */
import { POLICIES } from '../enforcement/layout.js';
import { JOB_ID_PATTERN, MAX_JOB_ID_LENGTH, MAX_NODE_NAME_LENGTH, NODE_NAME_PATTERN } from '../slurm/names.js';

export const MAX_UID = 4294967294; // (uid_t)-1 is "no uid"

const jobId = { type: 'string', minLength: 1, maxLength: MAX_JOB_ID_LENGTH, pattern: JOB_ID_PATTERN } as const;

export const jobRequestSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['job_id', 'uid'],
  properties: {
    job_id: jobId,
    uid: { type: 'integer', minimum: 0, maximum: MAX_UID },
    user: { type: 'string', maxLength: 256 },
    comment: { type: 'string', maxLength: 8192 },
    profile: { type: 'string', maxLength: 64 },
    node: { type: 'string', minLength: 1, maxLength: MAX_NODE_NAME_LENGTH, pattern: NODE_NAME_PATTERN },
  },
} as const;

export const jobIdParamsSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['job_id'],
  properties: { job_id: jobId },
} as const;

/** query values arrive as strings; the API does not coerce types (see app.ts), so they are digits here */
export const eventsQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    since: { type: 'string', pattern: '^[0-9]{1,15}$' },
    limit: { type: 'string', pattern: '^[0-9]{1,5}$' },
  },
} as const;

const nullableString = { type: ['string', 'null'] } as const;
const stringArray = { type: 'array', items: { type: 'string' } } as const;

const modesSchema = {
  type: 'object',
  properties: Object.fromEntries(POLICIES.map((p) => [p, { type: 'string' }])),
} as const;

const effectivePolicySchema = {
  type: 'object',
  properties: {
    modes: modesSchema,
    suidexecAllow: stringArray,
    sshClients: stringArray,
    connectDefault: { type: 'string' },
    connectRules: {
      type: 'array',
      items: { type: 'object', properties: { cidr: { type: 'string' }, verdict: { type: 'string' } } },
    },
  },
} as const;

export const jobRecordSchema = {
  type: 'object',
  properties: {
    jobId: { type: 'string' },
    uid: { type: 'integer' },
    user: nullableString,
    requested: nullableString,
    profiles: stringArray,
    unknownProfile: nullableString,
    addedAt: { type: 'string' },
    registration: { type: 'string' },
    bootId: nullableString,
    node: nullableString,
  },
} as const;

/** a job as GET /v1/jobs shows it: the record and its cgroup binding */
export const jobViewSchema = {
  type: 'object',
  properties: {
    ...jobRecordSchema.properties,
    binding: {
      type: 'object',
      properties: { state: { type: 'string' }, cgroupId: nullableString, detail: nullableString },
    },
  },
} as const;

export const addJobResultSchema = {
  type: 'object',
  properties: {
    job: jobRecordSchema,
    created: { type: 'boolean' },
    jobPolicy: effectivePolicySchema,
    uidPolicy: effectivePolicySchema,
  },
} as const;

export const removeJobResultSchema = {
  type: 'object',
  properties: {
    removed: { type: 'boolean' },
    uidPolicy: { anyOf: [effectivePolicySchema, { type: 'null' }] },
    laterRun: { type: 'boolean' },
  },
} as const;

/** DELETE /v1/jobs/:job_id?registration=: the registration the epilog saw as it started, or none */
export const removeJobQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: { registration: { type: 'string', pattern: '^(none|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$' } },
} as const;

export const jobsListSchema = {
  type: 'object',
  properties: { jobs: { type: 'array', items: jobViewSchema } },
} as const;

const countersSchema = {
  type: 'object',
  properties: { deny: { type: 'number' }, audit: { type: 'number' }, dropped: { type: 'number' }, folded: { type: 'number' } },
} as const;

export const statusSchema = {
  type: 'object',
  properties: {
    version: { type: 'string' },
    buildId: { type: 'string' },
    kernel: { type: 'string' },
    lsm: stringArray,
    configPath: { type: 'string' },
    pinDir: { type: 'string' },
    programs: stringArray,
    pinned: stringArray,
    adopted: { type: 'boolean' },
    jobs: { type: 'integer' },
    jobCgroups: {
      type: 'object',
      properties: { usable: { type: 'boolean' }, problem: nullableString, level: { type: 'integer' }, bound: { type: 'integer' } },
    },
    uidsUnderPolicy: { type: 'array', items: { type: 'integer' } },
    setEntries: {
      type: 'object',
      properties: { suid_allow: { type: 'integer' }, ssh_clients: { type: 'integer' }, connect_cidrs: { type: 'integer' } },
    },
    counters: { type: 'object', properties: Object.fromEntries(POLICIES.map((p) => [p, countersSchema])) },
    events: {
      type: 'object',
      properties: { logged: { type: 'number' }, dropped: { type: 'number' }, folded: { type: 'number' }, repeatsLogged: { type: 'number' } },
    },
    reconcile: {
      type: 'object',
      properties: {
        lastAt: nullableString,
        slurmView: { type: 'string' },
        problem: nullableString,
        sources: stringArray,
        allocationsVisible: { type: 'boolean' },
        rebootEndsJobs: { type: 'boolean' },
        unverified: stringArray,
        controllerProblem: nullableString,
      },
    },
    uptimeSeconds: { type: 'number' },
    startedAt: { type: 'string' },
    warnings: stringArray,
  },
} as const;

const eventRecordSchema = {
  type: 'object',
  properties: {
    seq: { type: 'integer' },
    time: { type: 'string' },
    type: { type: 'string' },
    policy: { type: 'string' },
    decision: { type: 'string' },
    uid: { type: 'integer' },
    gid: { type: 'integer' },
    pid: { type: 'integer' },
    comm: { type: 'string' },
    repeats: { type: 'integer' },
    job: { type: 'string' },
    line: { type: 'string' },
  },
} as const;

export const eventsPageSchema = {
  type: 'object',
  properties: {
    events: { type: 'array', items: eventRecordSchema },
    next: { type: 'integer' },
    missed: { type: 'integer' },
  },
} as const;

export const profilesSchema = {
  type: 'object',
  properties: {
    profiles: {
      type: 'array',
      items: {
        type: 'object',
        properties: { name: { type: 'string' }, isDefault: { type: 'boolean' }, policy: effectivePolicySchema },
      },
    },
  },
} as const;

export const reloadResultSchema = {
  type: 'object',
  properties: { configPath: { type: 'string' }, warnings: stringArray, uidsUpdated: { type: 'integer' } },
} as const;
