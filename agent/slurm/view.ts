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
 * an ended one. PrologFlags and ReturnToService are read from slurm.conf (by a child process too: it may
 * be on NFS): with Contain every allocation has an extern step (and cgroup) from its start to its end;
 * ReturnToService says whether slurmctld ends the jobs of a node that rebooted.
 *
 * The one question for the controller is about a job of an earlier boot that the node does not show:
 * whether slurmctld still holds it (controllerJob, a single-job request, asked only after a reboot and only
 * while such jobs remain). slurmctld can miss a reboot, and then a later step of the job runs on this node
 * without a prolog.
 *
 * A job cgroup or a slurmstepd socket left behind by a crashed slurmstepd is not removed by slurmd: such
 * a job cgroup counts as running (the safe side: the allocation itself may live on, and its next step
 * would run without a prolog), such a socket does not (scontrol reports it refused).
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ControllerJob, SlurmJob, SlurmJobs, SlurmView } from '../service/ports.js';

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

/** what the reconciliation needs of slurm.conf */
export interface SlurmConfFacts {
  /** PrologFlags has Contain */
  contain: boolean;
  /** ReturnToService (Slurm's default: 0) */
  returnToService: number;
}

/** PrologFlags and ReturnToService of slurm.conf text (keys are case-insensitive, the last one wins) */
export function slurmConfFacts(slurmConfText: string): SlurmConfFacts {
  const facts: SlurmConfFacts = { contain: false, returnToService: 0 };
  for (const raw of slurmConfText.split('\n')) {
    const m = /^(\w+)\s*=\s*(\S+)/.exec(raw.replace(/#.*/, '').trim());
    if (m === null) continue;
    const [, key, value] = m as unknown as [string, string, string];
    if (/^PrologFlags$/i.test(key)) facts.contain = value.split(',').some((f) => f.trim().toLowerCase() === 'contain');
    else if (/^ReturnToService$/i.test(key) && /^\d+$/.test(value)) facts.returnToService = Number(value);
  }
  return facts;
}

/**
 * What `scontrol listpids` (Slurm 22.05) prints on stderr, with exit status 1, that is still an answer:
 * no step runs on the node; or a step's socket refuses connections, i.e. its slurmstepd is dead (a
 * crash leaves the socket behind, and slurmd does not remove it): that step does not run. Any other
 * message makes the view unreadable.
 */
const NOT_RUNNING = [/^No job steps exist on this node\.$/, /^Unable to connect to slurmstepd: Connection refused$/];

function onlyNotRunning(stderr: string): boolean {
  const lines = stderr.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  return lines.length > 0 && lines.every((l) => NOT_RUNNING.some((re) => re.test(l)));
}

/**
 * A command's output, from a child process killed after `timeoutMs`: the command may block on what it
 * reads (a stuck slurmstepd, a configuration on a hung NFS mount), the agent must not. Resolves
 * {missing} when the command does not exist; `answered(stderr)`: an exit status 1 that is an answer.
 */
function output(file: string, args: string[], timeoutMs: number, answered: (stderr: string) => boolean = () => false): Promise<{ stdout: string } | { missing: true }> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: timeoutMs, killSignal: 'SIGKILL', encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err === null) resolve({ stdout });
      else if ((err as NodeJS.ErrnoException).code === 'ENOENT') resolve({ missing: true });
      else if (err.code === 1 && !err.killed && answered(stderr)) resolve({ stdout });
      else if (err.killed) reject(new SlurmViewError(`${file} ${args.join(' ')} did not answer within ${timeoutMs} ms`));
      else reject(new SlurmViewError(`${file} ${args.join(' ')} failed: ${(stderr || err.message).trim().split('\n')[0]}`));
    });
  });
}

/**
 * The job states in which slurmctld holds a job's nodes (Slurm 22.05's job_state_string): the job's
 * processes may run there now or again (a suspended or stopped job resumes; a completing job's epilog is
 * still to come). Every other state (PENDING, a requeue, an end) holds no node.
 */
const LIVE_STATES = new Set(['RUNNING', 'SUSPENDED', 'STOPPED', 'COMPLETING', 'CONFIGURING', 'RESIZING', 'SIGNALING', 'STAGE_OUT']);

/** what `scontrol show job` prints, with exit status 1, for a job id slurmctld does not know */
const UNKNOWN_JOB = /Invalid job id specified/;

/**
 * A job's records as `scontrol -o show job <id>` prints them: its state, and its NodeList (a hostlist
 * expression; null: none). `ambiguous`: the line holds `JobState=` or `NodeList=` more than once. The
 * user sets fields of the same line (JobName before JobState, Comment and WorkDir after NodeList), and
 * `sbatch -J 'x JobState=COMPLETED'` must not pass for the job's state: such a record is not read.
 */
export interface ShownJob {
  state: string;
  nodeList: string | null;
  ambiguous: boolean;
}

/**
 * `scontrol -o show job <id>`: one line per job record (a heterogeneous job's components, an array's
 * tasks), each with JobState=<state> and NodeList=<hostlist>.
 */
export function jobRecordsFromShow(output: string, jobId: string): ShownJob[] {
  const records = output.split('\n').filter((l) => l.trim() !== '').map((line) => {
    const states = [...line.matchAll(/(?:^|\s)JobState=(\S+)/g)].map((m) => m[1]!);
    const nodeLists = [...line.matchAll(/(?:^|\s)NodeList=(\S+)/g)].map((m) => m[1]!);
    const nodeList = nodeLists[0];
    return {
      state: states[0], nodeList: nodeList === undefined || nodeList === '(null)' ? null : nodeList, ambiguous: states.length > 1 || nodeLists.length > 1,
    };
  });
  if (records.length === 0 || records.some((r) => r.state === undefined)) {
    throw new SlurmViewError(`scontrol show job ${jobId} printed a record without JobState: ${JSON.stringify(output.slice(0, 200))}`);
  }
  return records as ShownJob[];
}

/** a Slurm job id as scontrol takes it: plain, an array task (123_4), a heterogeneous component (123+1) */
const SLURM_JOB_ID = /^\d+(?:_\d+)?(?:\+\d+)?$/;

export class NodeSlurmView implements SlurmView {
  private readonly cgroupRoot: string;
  private readonly scontrol: string | null;
  private readonly slurmConfPaths: readonly string[];
  private readonly timeoutMs: number;

  constructor(opts: NodeSlurmViewOptions = {}) {
    this.cgroupRoot = opts.cgroupRoot ?? '/sys/fs/cgroup';
    this.scontrol = opts.scontrol === undefined ? '/usr/bin/scontrol' : opts.scontrol;
    this.slurmConfPaths = opts.slurmConf ?? [
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
      const r = await output(this.scontrol, ['listpids'], this.timeoutMs, onlyNotRunning);
      if ('stdout' in r) {
        jobsFromListpids(r.stdout, jobs);
        sources.push(`${this.scontrol} listpids`);
      }
    }
    if (sources.length === 0) {
      throw new SlurmViewError(`no slurmstepd cgroup scope under ${this.cgroupRoot} and no ${this.scontrol ?? 'scontrol'}: nothing tells which jobs Slurm runs here`);
    }
    const conf = await this.slurmConf();
    return { jobs, allocationsVisible: conf?.contain ?? false, rebootEndsJobs: conf !== null && conf.returnToService !== 2, sources };
  }

  /**
   * Live when any of the job's records is (the safe side), with the nodes of the live ones: their
   * NodeList expanded by `scontrol show hostnames`, which slurmctld is not asked for.
   */
  async controllerJob(jobId: string): Promise<ControllerJob> {
    // an id of another shape is no Slurm job's (registered by hand): slurmctld cannot know it
    if (!SLURM_JOB_ID.test(jobId)) return { known: false };
    const scontrol = this.scontrol;
    if (scontrol === null) throw new SlurmViewError('no scontrol to ask slurmctld with');
    const shown = await output(scontrol, ['-o', 'show', 'job', jobId], this.timeoutMs, (stderr) => UNKNOWN_JOB.test(stderr));
    if (!('stdout' in shown)) throw new SlurmViewError(`${scontrol} is not installed: slurmctld cannot be asked`);
    // an exit status 1 that is an answer: the id is unknown (nothing on stdout)
    if (shown.stdout.trim() === '') return { known: false };
    const records = jobRecordsFromShow(shown.stdout, jobId);
    // a record the user's own fields make unreadable counts as live on unknown nodes: the job is kept
    if (records.some((r) => r.ambiguous)) return { known: true, state: 'unreadable (a field set by the user repeats JobState= or NodeList=)', live: true, nodes: null };
    const live = records.filter((r) => LIVE_STATES.has(r.state));
    if (live.length === 0) return { known: true, state: records[0]!.state, live: false, nodes: [] };
    const nodes = new Set<string>();
    for (const r of live) {
      if (r.nodeList === null) continue;
      const expanded = await output(scontrol, ['show', 'hostnames', r.nodeList], this.timeoutMs);
      if (!('stdout' in expanded)) throw new SlurmViewError(`${scontrol} is not installed`);
      for (const n of expanded.stdout.split('\n')) if (n.trim() !== '') nodes.add(n.trim());
    }
    return { known: true, state: live[0]!.state, live: true, nodes: [...nodes] };
  }

  /**
   * The first slurm.conf that can be read (by a child: it may sit on NFS); null when none can: then
   * neither Contain nor a ReturnToService that ends a rebooted node's jobs is assumed (fewer removals).
   */
  private async slurmConf(): Promise<SlurmConfFacts | null> {
    for (const path of this.slurmConfPaths) {
      const r = await output(CAT, [path], this.timeoutMs).catch(() => null);
      if (r !== null && 'stdout' in r) return slurmConfFacts(r.stdout);
    }
    return null;
  }

}
