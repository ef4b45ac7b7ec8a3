/**
 * The job cgroups of Slurm's cgroup/v2 plugin as they appear and go: inotify (fs.watch) on slurmstepd's
 * scope, <cgroup root>/system.slice/<node>_slurmstepd.scope (view.ts), where slurmstepd makes job_<id> when
 * a job's first step (the extern step with PrologFlags=Contain, else the batch or first srun step) starts on
 * this node, and removes it when the job's last step has ended. A cgroup's id is its directory's inode
 * number (kernfs gives the node's 64-bit id as i_ino), the id bpf_get_current_ancestor_cgroup_id() returns.
 * mkdir and rmdir on cgroupfs go through the VFS, so inotify reports them as on any directory.
 *
 * slurmd makes the scope when it starts; an agent started before slurmd watches the scope's parents for it.
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

export class NodeJobCgroups implements JobCgroups {
  private readonly watchers: FSWatcher[] = [];
  private scope: string | null = null;

  constructor(private readonly log: Logger, private readonly cgroupRoot = '/sys/fs/cgroup') {}

  watch(appeared: (jobId: string, cgroupId: bigint, level: number) => void, gone: (jobId: string) => void): string | null {
    if (!existsSync(join(this.cgroupRoot, 'cgroup.controllers'))) {
      return `no cgroup v2 hierarchy at ${this.cgroupRoot} (cgroup v1, or none): every job stays under its uid's policy`;
    }
    const found = stepdScopes(this.cgroupRoot)[0];
    if (found !== undefined) {
      this.watchScope(found, appeared, gone);
      return null;
    }
    // slurmd has not made its scope yet: wait for it where view.ts looks for it
    for (const parent of [this.cgroupRoot, join(this.cgroupRoot, 'system.slice')].filter((p) => existsSync(p))) {
      const w = watch(parent, (_event, name) => {
        if (this.scope !== null || typeof name !== 'string' || !name.endsWith(SCOPE_SUFFIX)) return;
        if (inodeOf(join(parent, name)) === null) return;
        this.watchScope(join(parent, name), appeared, gone);
      });
      w.on('error', (err) => this.log.error('cannot watch for slurmstepd\'s scope', { dir: parent, error: err.message }));
      this.watchers.push(w);
    }
    this.log.info('no slurmstepd scope yet: waiting for it', { under: this.cgroupRoot });
    return null;
  }

  idOf(jobId: string): bigint | null {
    return this.scope === null ? null : inodeOf(join(this.scope, `job_${jobId}`));
  }

  close(): void {
    for (const w of this.watchers.splice(0)) w.close();
  }

  private watchScope(scope: string, appeared: (jobId: string, cgroupId: bigint, level: number) => void, gone: (jobId: string) => void): void {
    this.scope = scope;
    // the root is level 0; job_<id> is one level below the scope
    const level = relative(this.cgroupRoot, scope).split(sep).length + 1;
    const changed = (name: string): void => {
      const jobId = JOB_DIR.exec(name)?.[1];
      if (jobId === undefined) return;
      const id = inodeOf(join(scope, name));
      if (id === null) gone(jobId);
      else appeared(jobId, id, level);
    };
    // watch first, then list: a job cgroup made in between is reported twice, never missed
    const w = watch(scope, (_event, name) => {
      if (typeof name === 'string') changed(name);
    });
    w.on('error', (err) => this.log.error('cannot watch the job cgroups: jobs made from now on stay under their uid\'s policy', { scope, error: err.message }));
    this.watchers.push(w);
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
