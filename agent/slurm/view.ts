/**
 * Which jobs Slurm runs on this node, read from the node itself, never from the controller (one query
 * per node per minute would load slurmctld on a large cluster):
 * - the job cgroups slurmstepd makes under cgroup v2 (proctrack/cgroup, task/cgroup):
 *   <cgroup root>/system.slice/<node>_slurmstepd.scope/job_<id>/step_<step> (the scope is
 *   "slurmstepd.scope" on a single-slurmd node);
 * - `scontrol listpids`, which asks the local slurmstepd sockets in SlurmdSpoolDir (every proctrack
 *   plugin), run as a child process with a timeout so that a stuck slurmstepd cannot hang the agent.
 * Each source that exists adds its jobs; a source that fails (scontrol timing out, a cgroup directory
 * that cannot be read) makes the whole view unreadable, because a missing job would then be taken for
 * an ended one. PrologFlags=Contain is read from slurm.conf (by a child process too: it may be on NFS):
 * with it every allocation has an extern step (and cgroup) from its start to its end.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { SlurmJob, SlurmJobs, SlurmView } from '../service/ports.js';

export interface NodeSlurmViewOptions {
  /** default /sys/fs/cgroup */
  cgroupRoot?: string;
  /** default /usr/bin/scontrol; null: do not ask it */
  scontrol?: string | null;
  /** slurm.conf candidates, first readable wins (default: $SLURM_CONF, /etc/slurm/slurm.conf, configless caches) */
  slurmConf?: readonly string[];
  timeoutMs?: number;
}

const LIFETIME_STEPS = new Set(['batch', 'extern']);
const CAT = '/bin/cat';
const JOB_DIR = /^job_(\d+)$/;

export class SlurmViewError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SlurmViewError';
  }
}

function addJob(jobs: Map<string, SlurmJob>, id: string, lifetimeStep: boolean): void {
  jobs.set(id, { lifetimeStep: (jobs.get(id)?.lifetimeStep ?? false) || lifetimeStep });
}

/** the slurmstepd scopes under a cgroup v2 root */
export function stepdScopes(cgroupRoot: string): string[] {
  const scopes: string[] = [];
  for (const parent of [cgroupRoot, join(cgroupRoot, 'system.slice')]) {
    if (!existsSync(parent)) continue;
    for (const name of readdirSync(parent)) if (name.endsWith('slurmstepd.scope')) scopes.push(join(parent, name));
  }
  return scopes;
}

/** job id -> job from the job cgroups of the scopes */
export function jobsFromCgroups(scopes: readonly string[], jobs: Map<string, SlurmJob>): void {
  for (const scope of scopes) {
    for (const name of readdirSync(scope)) {
      const id = JOB_DIR.exec(name)?.[1];
      if (id === undefined) continue;
      let steps: string[];
      try {
        steps = readdirSync(join(scope, name)).filter((s) => s.startsWith('step_')).map((s) => s.slice('step_'.length));
      } catch {
        continue; // removed while reading: the job is ending
      }
      addJob(jobs, id, steps.some((s) => LIFETIME_STEPS.has(s)));
    }
  }
}

/** `scontrol listpids` output: "PID JOBID STEPID LOCALID GLOBALID" then one line per process */
export function jobsFromListpids(output: string, jobs: Map<string, SlurmJob>): void {
  for (const line of output.split('\n')) {
    const [pid, job, step] = line.trim().split(/\s+/);
    if (pid === undefined || !/^\d+$/.test(pid) || job === undefined || !/^\d+$/.test(job)) continue;
    addJob(jobs, job, LIFETIME_STEPS.has(step ?? ''));
  }
}

/** whether slurm.conf's PrologFlags has Contain */
export function hasContain(slurmConfText: string): boolean {
  for (const raw of slurmConfText.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    const m = /^PrologFlags\s*=\s*(\S+)/i.exec(line);
    if (m && m[1]!.split(',').some((f) => f.trim().toLowerCase() === 'contain')) return true;
  }
  return false;
}

/**
 * What `scontrol listpids` says, exit status 1 included, when the node runs no step (Slurm 22.05's
 * scontrol, _list_pids_all_jobs): that is an answer, no jobs, not a failure.
 */
const NO_STEPS = /^No job steps exist on this node\.$/m;

/**
 * A command's output, from a child process killed after `timeoutMs`: the command may block on what it
 * reads (a stuck slurmstepd, a configuration on a hung NFS mount), the agent must not. Resolves
 * {missing} when the command does not exist; `empty(stderr)`: a failure that means "nothing".
 */
function output(file: string, args: string[], timeoutMs: number, empty: (stderr: string) => boolean = () => false): Promise<{ stdout: string } | { missing: true }> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: timeoutMs, killSignal: 'SIGKILL', encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err === null) resolve({ stdout });
      else if ((err as NodeJS.ErrnoException).code === 'ENOENT') resolve({ missing: true });
      else if (err.code === 1 && !err.killed && empty(stderr)) resolve({ stdout: '' });
      else if (err.killed) reject(new SlurmViewError(`${file} ${args.join(' ')} did not answer within ${timeoutMs} ms`));
      else reject(new SlurmViewError(`${file} ${args.join(' ')} failed: ${(stderr || err.message).trim().split('\n')[0]}`));
    });
  });
}

export class NodeSlurmView implements SlurmView {
  private readonly cgroupRoot: string;
  private readonly scontrol: string | null;
  private readonly slurmConf: readonly string[];
  private readonly timeoutMs: number;

  constructor(opts: NodeSlurmViewOptions = {}) {
    this.cgroupRoot = opts.cgroupRoot ?? '/sys/fs/cgroup';
    this.scontrol = opts.scontrol === undefined ? '/usr/bin/scontrol' : opts.scontrol;
    this.slurmConf = opts.slurmConf ?? [
      ...(process.env.SLURM_CONF ? [process.env.SLURM_CONF] : []),
      '/etc/slurm/slurm.conf',
      '/run/slurm/conf/slurm.conf',
      '/var/spool/slurmd/conf-cache/slurm.conf',
    ];
    this.timeoutMs = opts.timeoutMs ?? 10_000;
  }

  async running(): Promise<SlurmJobs> {
    const jobs = new Map<string, SlurmJob>();
    const sources: string[] = [];
    let scopes: string[];
    try {
      scopes = stepdScopes(this.cgroupRoot);
      jobsFromCgroups(scopes, jobs);
    } catch (err) {
      throw new SlurmViewError(`cannot read the job cgroups under ${this.cgroupRoot}: ${(err as Error).message}`);
    }
    sources.push(...scopes.map((s) => `cgroup ${s}`));
    if (this.scontrol !== null) {
      const r = await output(this.scontrol, ['listpids'], this.timeoutMs, (stderr) => NO_STEPS.test(stderr));
      if ('stdout' in r) {
        jobsFromListpids(r.stdout, jobs);
        sources.push(`${this.scontrol} listpids`);
      }
    }
    if (sources.length === 0) {
      throw new SlurmViewError(`no slurmstepd cgroup scope under ${this.cgroupRoot} and no ${this.scontrol ?? 'scontrol'}: nothing tells which jobs Slurm runs here`);
    }
    return { jobs, allocationsVisible: await this.containOn(), sources };
  }

  /** PrologFlags of the first slurm.conf that can be read (read by a child: it may sit on NFS) */
  private async containOn(): Promise<boolean> {
    for (const path of this.slurmConf) {
      const r = await output(CAT, [path], this.timeoutMs).catch(() => null);
      if (r !== null && 'stdout' in r) return hasContain(r.stdout);
    }
    return false;
  }

}
