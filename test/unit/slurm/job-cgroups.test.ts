/**
 * The job cgroup watch (agent/slurm/job-cgroups.ts) over a real directory tree laid out as slurmstepd makes
 * it, with real inotify: what it reports when job directories are made and removed, and when the scope
 * comes after the agent. The cgroup file system itself is watched in the VM (test/kernel/perjob.spec.ts).
 */
import { expect } from 'chai';
import { mkdirSync, mkdtempSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { memoryLogger } from '../../../agent/log/logger.js';
import { NodeJobCgroups } from '../../../agent/slurm/job-cgroups.js';
import { waitFor } from '../../vm/pace.js';

describe('job cgroups watched with inotify', () => {
  let root: string;
  let watcher: NodeJobCgroups;
  const seen: string[] = [];
  const appeared = (jobId: string, id: bigint, level: number): void => void seen.push(`+${jobId} ${id} level ${level}`);
  const gone = (jobId: string): void => void seen.push(`-${jobId}`);

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'krsi-cgroups-'));
    seen.length = 0;
    watcher = new NodeJobCgroups(memoryLogger(), root);
  });
  afterEach(() => {
    watcher.close();
    rmSync(root, { recursive: true, force: true });
  });

  const ino = (path: string): bigint => statSync(path, { bigint: true }).ino;

  it('reports the job cgroups there are, then each one made and removed, with its id and level; ignores other directories', async () => {
    writeFileSync(join(root, 'cgroup.controllers'), 'cpu memory pids\n');
    const scope = join(root, 'system.slice', 'node1_slurmstepd.scope');
    mkdirSync(join(scope, 'job_7', 'step_extern'), { recursive: true });
    mkdirSync(join(scope, 'system'));
    expect(watcher.watch(appeared, gone)).to.equal(null);
    expect(seen).to.deep.equal([`+7 ${ino(join(scope, 'job_7'))} level 3`]);
    expect(watcher.idOf('7')).to.equal(ino(join(scope, 'job_7')));
    expect(watcher.idOf('8')).to.equal(null);

    mkdirSync(join(scope, 'job_8'));
    mkdirSync(join(scope, 'job_x'));
    await waitFor('job_8 reported', () => seen.includes(`+8 ${ino(join(scope, 'job_8'))} level 3`), { timeoutMs: 5_000 });
    rmdirSync(join(scope, 'job_8'));
    await waitFor('job_8 reported gone', () => seen.includes('-8'), { timeoutMs: 5_000 });
    expect(seen.filter((s) => s.includes('x'))).to.deep.equal([]);
  });

  it('no cgroup v2 hierarchy (no cgroup.controllers at the root): unavailable, saying why', () => {
    expect(watcher.watch(appeared, gone)).to.match(/no cgroup v2 hierarchy at .*cgroup v1/);
  });

  it('slurmstepd\'s scope made after the watch started: found, and its job cgroups reported', async () => {
    writeFileSync(join(root, 'cgroup.controllers'), 'cpu\n');
    mkdirSync(join(root, 'system.slice'));
    expect(watcher.watch(appeared, gone)).to.equal(null);
    const scope = join(root, 'system.slice', 'slurmstepd.scope');
    mkdirSync(scope);
    // made before or after the scope's watch starts: listed, or reported by inotify, either way once
    mkdirSync(join(scope, 'job_9'));
    await waitFor('job_9 reported', () => seen.includes(`+9 ${ino(join(scope, 'job_9'))} level 3`), { timeoutMs: 5_000 });
    expect(watcher.idOf('9')).to.equal(ino(join(scope, 'job_9')));
  });
});
