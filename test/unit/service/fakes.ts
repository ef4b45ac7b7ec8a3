/**
 * Stand-ins for what KrsiAgent works through (agent/service/ports.ts), each able to fail on request, so
 * that the agent's failure paths run on the host. The kernel, Slurm and the identity iterator are
 * tested for real in the VM.
 */
import { parseConfig, type KrsiConfig } from '../../../agent/config/config.js';
import type { UidPolicy } from '../../../agent/enforcement/enforcer.js';
import type { ResolvedFile } from '../../../agent/enforcement/identity.js';
import type { JobBindingValue, PolicyValue } from '../../../agent/enforcement/layout.js';
import { BootClock } from '../../../agent/events/clock.js';
import { EventPipeline } from '../../../agent/events/pipeline.js';
import { memoryLogger } from '../../../agent/log/logger.js';
import { KrsiAgent, type AgentOptions, type KernelStatus } from '../../../agent/service/agent.js';
import type { Clock, ControllerJob, IdentityResolver, JobCgroups, JobStore, KernelWriter, SlurmJobs, SlurmView } from '../../../agent/service/ports.js';
import type { JobRecord } from '../../../agent/service/types.js';

export class FakeKernel implements KernelWriter {
  readonly policies = new Map<number, UidPolicy>();
  /** uids whose next setUidPolicy / clearUidPolicy throws */
  readonly failSet = new Set<number>();
  readonly failClear = new Set<number>();
  writes = 0;

  setUidPolicy(uid: number, policy: UidPolicy): void {
    if (this.failSet.has(uid)) throw new Error(`map update failed for uid ${uid} (E2BIG)`);
    this.writes++;
    this.policies.set(uid, policy);
  }
  clearUidPolicy(uid: number): boolean {
    if (this.failClear.has(uid)) throw new Error(`map delete failed for uid ${uid}`);
    return this.policies.delete(uid);
  }
  uidPolicies(): Map<number, PolicyValue> {
    return new Map([...this.policies].map(([uid, p]) => [uid, { modes: p.modes, connectDefaultDeny: p.connectDefault === 'deny', set: 1 }]));
  }
  async settle(): Promise<void> {}
  collectGarbage(): number {
    return 0;
  }
  /** bound job cgroups: cgroup id -> job id and policy */
  readonly jobs = new Map<bigint, { jobId: number; policy: UidPolicy }>();
  jobLevel = 0;
  /** cgroup ids whose next bindJob throws */
  readonly failBind = new Set<bigint>();
  setJobLevel(level: number): void {
    this.jobLevel = level;
  }
  bindJob(cgroupId: bigint, jobId: number, policy: UidPolicy): void {
    if (this.jobLevel === 0) throw new Error('bindJob before setJobLevel');
    if (this.failBind.has(cgroupId)) throw new Error(`map update failed for cgroup ${cgroupId} (E2BIG)`);
    this.jobs.set(cgroupId, { jobId, policy });
  }
  unbindJob(cgroupId: bigint): boolean {
    return this.jobs.delete(cgroupId);
  }
  jobBindings(): Map<bigint, JobBindingValue> {
    return new Map([...this.jobs].map(([id, b]) => [id, {
      jobId: b.jobId, policy: { modes: b.policy.modes, connectDefaultDeny: b.policy.connectDefault === 'deny', set: 1 },
    }]));
  }
  /** the mode of a policy of a uid in the kernel, or 'none' */
  mode(uid: number, policy: 'fileperms' | 'suidexec'): string {
    return this.policies.get(uid)?.modes[policy] ?? 'none';
  }
}

export class MemoryStore implements JobStore {
  readonly path = '/var/lib/slurm-krsi/jobs.json (in memory)';
  saved: JobRecord[] = [];
  failSave = false;
  saves = 0;
  load(): JobRecord[] {
    return [...this.saved];
  }
  save(jobs: readonly JobRecord[]): void {
    if (this.failSave) throw new Error('ENOSPC: no space left on device, write');
    this.saves++;
    this.saved = [...jobs];
  }
  ids(): string[] {
    return this.saved.map((j) => j.jobId).sort();
  }
}

export class FakeIdentities implements IdentityResolver {
  async resolve(paths: readonly string[]): Promise<ResolvedFile[]> {
    return paths.map((path, i) => ({ path, dev: 1, ino: BigInt(i + 1), mode: 0o104755 }));
  }
  forget(): void {}
}

export class FakeSlurm implements SlurmView {
  jobs: Record<string, { lifetimeStep: boolean }> = {};
  allocationsVisible = true;
  rebootEndsJobs = true;
  failWith: Error | null = null;
  /** runs while the view is being read (to interleave a registration) */
  during: (() => Promise<void>) | null = null;
  /** what slurmctld says of a job id (absent: it does not know the id) */
  controller: Record<string, ControllerJob> = {};
  controllerFailWith: Error | null = null;
  /** the job ids slurmctld was asked about, in order */
  asked: string[] = [];
  async running(): Promise<SlurmJobs> {
    if (this.failWith) throw this.failWith;
    await this.during?.();
    return { jobs: new Map(Object.entries(this.jobs)), allocationsVisible: this.allocationsVisible, rebootEndsJobs: this.rebootEndsJobs, sources: ['fake'] };
  }
  async controllerJob(jobId: string): Promise<ControllerJob> {
    this.asked.push(jobId);
    if (this.controllerFailWith) throw this.controllerFailWith;
    return this.controller[jobId] ?? { known: false };
  }
}

/** job cgroups made and removed on request, as the watch would report them */
export class FakeJobCgroups implements JobCgroups {
  /** why job cgroups cannot be used (cgroup v1); null: they can */
  problem: string | null = null;
  /** job id -> its cgroups' ids (one per slurmd of the host that runs it) */
  readonly cgroups = new Map<string, bigint[]>();
  private appeared: ((jobId: string, cgroupId: bigint, level: number) => void) | undefined;
  private gone: ((jobId: string, cgroupId: bigint) => void) | undefined;
  watch(appeared: (jobId: string, cgroupId: bigint, level: number) => void, gone: (jobId: string, cgroupId: bigint) => void): string | null {
    if (this.problem !== null) return this.problem;
    this.appeared = appeared;
    this.gone = gone;
    for (const [jobId, ids] of this.cgroups) for (const id of ids) appeared(jobId, id, 3);
    return null;
  }
  idsOf(jobId: string): bigint[] {
    return this.problem === null ? [...(this.cgroups.get(jobId) ?? [])] : [];
  }
  close(): void {
    this.appeared = undefined;
    this.gone = undefined;
  }
  /** slurmstepd makes job_<id> (under one more slurmd's scope when the job has one already) */
  make(jobId: string, id: bigint): void {
    this.cgroups.set(jobId, [...(this.cgroups.get(jobId) ?? []), id]);
    this.appeared?.(jobId, id, 3);
  }
  /** the job's last step ended: job_<id> is removed (only the one given; default: every one) */
  remove(jobId: string, only?: bigint): void {
    const ids = this.cgroups.get(jobId) ?? [];
    const going = only === undefined ? ids : ids.filter((id) => id === only);
    const left = ids.filter((id) => !going.includes(id));
    if (left.length > 0) this.cgroups.set(jobId, left);
    else this.cgroups.delete(jobId);
    for (const id of going) this.gone?.(jobId, id);
  }
}

export class FakeClock implements Clock {
  ms = Date.parse('2026-11-30T10:00:00Z');
  boot = 'boot-1';
  now(): number {
    return this.ms;
  }
  bootId(): string {
    return this.boot;
  }
  advance(seconds: number): void {
    this.ms += seconds * 1000;
  }
}

export const CONFIG_TEXT = `[agent]
state_dir = /nonexistent/krsi-test-state
event_log = off
reconcile_grace = 300
[profile default]
fileperms = audit
[profile strict]
fileperms = enforce
suidexec = enforce
suidexec_allow = /usr/bin/passwd
`;

export function config(text = CONFIG_TEXT): KrsiConfig {
  return parseConfig(text, '/etc/slurm-krsi/krsi.ini', { fileExists: () => true });
}

export interface Rig {
  agent: KrsiAgent;
  kernel: FakeKernel;
  store: MemoryStore;
  slurm: FakeSlurm;
  clock: FakeClock;
  cgroups: FakeJobCgroups;
  log: ReturnType<typeof memoryLogger>;
}

/** what status shows of the kernel side: one build, nothing counted */
export function fakeKernelStatus(overrides: Partial<KernelStatus> = {}): KernelStatus {
  return {
    buildId: 'e2f8852b-ae1364784ce6', previous: [], pinDir: '/sys/fs/bpf/slurm-krsi', programs: [], adopted: false, pinned: () => [],
    counters: () => Object.fromEntries(['fileperms', 'suidexec', 'sshlisteners', 'skconnections', 'killtasks']
      .map((p) => [p, { deny: 0n, audit: 0n, dropped: 0n, folded: 0n }])) as never,
    setEntryCounts: () => ({ suid_allow: 0, ssh_clients: 0, connect_cidrs: 0 }),
    ...overrides,
  };
}

/** an agent over fakes; pieces given in `parts` are shared (a restart is a second rig over the same ones) */
export function rig(parts: Partial<Rig> & { options?: Partial<AgentOptions> } = {}): Rig {
  const kernel = parts.kernel ?? new FakeKernel();
  const store = parts.store ?? new MemoryStore();
  const slurm = parts.slurm ?? new FakeSlurm();
  const clock = parts.clock ?? new FakeClock();
  const cgroups = parts.cgroups ?? new FakeJobCgroups();
  const log = memoryLogger();
  const agent = new KrsiAgent({
    config: config(),
    store,
    kernel,
    kernelStatus: fakeKernelStatus(),
    identities: new FakeIdentities(),
    slurm,
    jobCgroups: cgroups,
    clock,
    log,
    version: 'test',
    lsm: ['bpf'],
    makePipeline: (jobOf) => new EventPipeline({ clock: new BootClock(() => 0n), jobOf, windowSize: 4, logPath: null, writeStdout: () => {} }),
    prime: false,
    ...parts.options,
  });
  return { agent, kernel, store, slurm, clock, cgroups, log };
}
