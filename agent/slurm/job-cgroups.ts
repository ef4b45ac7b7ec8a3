/**
 * The job cgroups of Slurm's cgroup/v2 plugin as they appear and go: inotify (fs.watch) on slurmstepd's
 * scopes, <cgroup root>/system.slice/<node>_slurmstepd.scope (view.ts), where slurmstepd makes job_<id> when
 * a job's first step (the extern step with PrologFlags=Contain, else the batch or first srun step) starts on
 * this node, and removes it when the job's last step has ended. A cgroup's id is its directory's inode
 * number (kernfs gives the node's 64-bit id as i_ino), the id bpf_get_current_ancestor_cgroup_id() returns.
 * mkdir and rmdir on cgroupfs go through the VFS, so inotify reports them as on any directory.
 *
 * A host normally runs one slurmd, so one scope. Every scope is watched all the same: a host that runs
 * several slurmd (NodeName= ... Port=, `slurmd -N`) has one scope per node name, each with the job cgroups
 * of its own node, and a job that spans two of those nodes has a job_<id> in each. All scopes must sit at
 * one cgroup level (the programs read one level from job_scope); a scope at another level is refused and
 * logged, and its jobs stay under their uid's union.
 *
 * slurmd makes its scope when it starts; scopes' parents are watched for scopes made after the agent.
 */
import { existsSync, readdirSync, statSync, watch, type FSWatcher } from 'node:fs';
import { join, relative, sep } from 'node:path';
import type { Logger } from '../log/logger.js';
import type { JobCgroups } from '../service/ports.js';
import { stepdScopes } from './view.js';

const JOB_DIR = /^job_(\d+)$/;
const SCOPE_SUFFIX = 'slurmstepd.scope';

/** a directory's inode number (a cgroup's id), or null when it does not exist */
function inodeOf(path: string): bigint | null {
  return statSync(path, { bigint: true, throwIfNoEntry: false })?.ino ?? null;
}

type Appeared = (jobId: string, cgroupId: bigint, level: number) => void;
type Gone = (jobId: string, cgroupId: bigint) => void;

export class NodeJobCgroups implements JobCgroups {
  private readonly watchers: FSWatcher[] = [];
  /** the scopes watched, each with its watch */
  private readonly scopes = new Map<string, FSWatcher>();
  /** the level of job cgroups, from the first scope watched */
  private level = 0;
  /** path of each job cgroup reported -> its id, to report which one went when it is removed */
  private readonly reported = new Map<string, bigint>();

  constructor(private readonly log: Logger, private readonly cgroupRoot = '/sys/fs/cgroup') {}

  watch(appeared: Appeared, gone: Gone): string | null {
    if (!existsSync(join(this.cgroupRoot, 'cgroup.controllers'))) {
      return `no cgroup v2 hierarchy at ${this.cgroupRoot} (cgroup v1, or none): every job stays under its uid's policy`;
    }
    // watch the parents first, then list them: a scope made in between is found twice, watched once
    const parents = [this.cgroupRoot, join(this.cgroupRoot, 'system.slice')].filter((p) => existsSync(p));
    for (const parent of parents) {
      const w = watch(parent, (_event, name) => {
        if (typeof name !== 'string' || !name.endsWith(SCOPE_SUFFIX)) return;
        const scope = join(parent, name);
        if (inodeOf(scope) !== null) this.watchScope(scope, appeared, gone);
        else this.forgetScope(scope); // removed (its job cgroups went first): a scope made again is watched anew
      });
      w.on('error', (err) => this.log.error('cannot watch for slurmstepd\'s scopes', { dir: parent, error: err.message }));
      this.watchers.push(w);
    }
    const found = stepdScopes(this.cgroupRoot);
    for (const scope of found) this.watchScope(scope, appeared, gone);
    if (found.length === 0) this.log.info('no slurmstepd scope yet: waiting for it', { under: this.cgroupRoot });
    return null;
  }

  idsOf(jobId: string): bigint[] {
    return [...this.scopes.keys()].map((scope) => inodeOf(join(scope, `job_${jobId}`))).filter((id): id is bigint => id !== null);
  }

  close(): void {
    for (const w of this.watchers.splice(0)) w.close();
    for (const w of this.scopes.values()) w.close();
    this.scopes.clear();
  }

  private forgetScope(scope: string): void {
    this.scopes.get(scope)?.close();
    if (this.scopes.delete(scope)) this.log.info('slurmstepd scope removed', { scope });
    for (const path of this.reported.keys()) if (path.startsWith(`${scope}${sep}`)) this.reported.delete(path);
  }

  private watchScope(scope: string, appeared: Appeared, gone: Gone): void {
    if (this.scopes.has(scope)) return;
    // the root is level 0; job_<id> is one level below the scope
    const level = relative(this.cgroupRoot, scope).split(sep).length + 1;
    if (this.level !== 0 && level !== this.level) {
      this.log.error('a slurmstepd scope at another cgroup level than the first: its jobs stay under their uid\'s policy', {
        scope, level, expected: this.level,
      });
      return;
    }
    this.level = level;
    const changed = (name: string): void => {
      const jobId = JOB_DIR.exec(name)?.[1];
      if (jobId === undefined) return;
      const path = join(scope, name);
      const id = inodeOf(path);
      const before = this.reported.get(path);
      if (before !== undefined && before !== id) {
        this.reported.delete(path);
        gone(jobId, before);
      }
      if (id !== null && before !== id) {
        this.reported.set(path, id);
        appeared(jobId, id, level);
      }
    };
    // watch first, then list: a job cgroup made in between is seen twice and reported once
    const w = watch(scope, (_event, name) => {
      if (typeof name === 'string') changed(name);
    });
    w.on('error', (err) => this.log.error('cannot watch the job cgroups: jobs made from now on stay under their uid\'s policy', { scope, error: err.message }));
    this.scopes.set(scope, w);
    for (const entry of readdirNames(scope)) changed(entry);
    this.log.info('watching job cgroups', { scope, level });
  }
}

function readdirNames(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
