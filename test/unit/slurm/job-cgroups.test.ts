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
  const gone = (jobId: string, id: bigint): void => void seen.push(`-${jobId} ${id}`);

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
    expect(watcher.idsOf('7')).to.deep.equal([ino(join(scope, 'job_7'))]);
    expect(watcher.idsOf('8')).to.deep.equal([]);

    mkdirSync(join(scope, 'job_8'));
    mkdirSync(join(scope, 'job_x'));
    await waitFor('job_8 reported', () => seen.includes(`+8 ${ino(join(scope, 'job_8'))} level 3`), { timeoutMs: 5_000 });
    const job8 = ino(join(scope, 'job_8'));
    rmdirSync(join(scope, 'job_8'));
    await waitFor('job_8 reported gone', () => seen.includes(`-8 ${job8}`), { timeoutMs: 5_000 });
    expect(seen.filter((s) => s.startsWith('+8')), 'reported once though listed and watched').to.have.length(1);
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
    expect(watcher.idsOf('9')).to.deep.equal([ino(join(scope, 'job_9'))]);
  });

  it('a host with two slurmd (two scopes): both watched, also one made later; a job on both nodes has a cgroup in each, and one going reports only its own', async () => {
    writeFileSync(join(root, 'cgroup.controllers'), 'cpu\n');
    const a = join(root, 'system.slice', 'n1_slurmstepd.scope');
    const b = join(root, 'system.slice', 'n2_slurmstepd.scope');
    mkdirSync(join(a, 'job_4'), { recursive: true });
    expect(watcher.watch(appeared, gone)).to.equal(null);
    mkdirSync(join(b, 'job_4'), { recursive: true });
    mkdirSync(join(b, 'job_5'));
    const [a4, b4] = [ino(join(a, 'job_4')), ino(join(b, 'job_4'))];
    await waitFor('the later scope\'s jobs reported', () => seen.includes(`+4 ${b4} level 3`) && seen.some((s) => s.startsWith('+5 ')), { timeoutMs: 5_000 });
    expect(seen).to.include(`+4 ${a4} level 3`);
    expect(watcher.idsOf('4').sort()).to.deep.equal([a4, b4].sort());
    rmdirSync(join(b, 'job_4'));
    await waitFor('job_4 of the second node reported gone', () => seen.includes(`-4 ${b4}`), { timeoutMs: 5_000 });
    expect(seen).to.not.include(`-4 ${a4}`);
    expect(watcher.idsOf('4')).to.deep.equal([a4]);
  });

  it('a scope at another cgroup level than the first is refused (the programs know one level), and logged', async () => {
    writeFileSync(join(root, 'cgroup.controllers'), 'cpu\n');
    mkdirSync(join(root, 'system.slice', 'n1_slurmstepd.scope', 'job_1'), { recursive: true });
    const log = memoryLogger();
    watcher = new NodeJobCgroups(log, root);
    expect(watcher.watch(appeared, gone)).to.equal(null);
    mkdirSync(join(root, 'n2_slurmstepd.scope', 'job_2'), { recursive: true });
    await waitFor('the refusal logged', () => log.lines.some((l) => l.includes('another cgroup level')), { timeoutMs: 5_000 });
    expect(seen.filter((s) => s.startsWith('+2'))).to.deep.equal([]);
    expect(watcher.idsOf('2')).to.deep.equal([]);
  });
});
