/**
 * Job scoping in the kernel (bpf/krsi.bpf.c current_job): a cgroup tree laid out as slurmstepd makes it
 * (<scope>/job_<id>/step_<n>/{slurm,user/task_<k>}), processes placed in it by writing cgroup.procs and then
 * switching to a uid with setpriv. A task in a bound job's task subtree is judged by the job's policy alone,
 * whatever its uid; slurmstepd's level is not the job's; everything else is judged by its uid. Also the
 * cost of the test on the hottest path that always looks the policy up (socket_connect), from the kernel's
 * own program statistics. Real Slurm runs these jobs in test/kernel/slurm.spec.ts.
 */
import { expect } from 'chai';
import { mkdirSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { waitFor } from '../vm/pace.js';
import { asTaskIn } from '../vm/task-in-cgroup.js';
import { OTHER, PROBE, USER, checkAccounting, events, eventsSince, getEnforcer, modes, policy } from './fixture.js';

/** level 3, as slurmstepd's job cgroups: /sys/fs/cgroup (0) / system.slice (1) / scope (2) / job_<id> (3) */
const SCOPE = '/sys/fs/cgroup/system.slice/krsi-test-jobs.scope';
const JOB_ID = 901;
const JOB = join(SCOPE, `job_${JOB_ID}`);
const TASK = join(JOB, 'step_0/user/task_0');
const STEPD = join(JOB, 'step_0/slurm');
/** a subordinate uid, as a user namespace maps it: no policy of its own */
const SUBUID = 100000;

const STRICT_FILES = policy({ modes: modes({ fileperms: 'enforce', skconnections: 'enforce' }), connectDefault: 'deny' });
const AUDIT_FILES = policy({ modes: modes({ fileperms: 'audit' }) });

/** krsi-probe as `uid`, its process placed in cgroup `dir` first (null: left where the test runs) */
async function probeIn(dir: string | null, uid: number, ...args: string[]): Promise<string> {
  const r = await execa(...asTaskIn(dir, uid, PROBE, args), { reject: false });
  if (r.exitCode === 2) throw new Error(`krsi-probe usage error: ${r.stderr}`);
  if (r.exitCode !== 0 && r.stdout === '') throw new Error(`cannot run krsi-probe in ${dir} as uid ${uid}: ${r.stderr}`);
  return String(r.stdout).split('\n').pop() ?? '';
}

/** a fresh file of `uid` in /tmp for a chmod */
async function fileOf(uid: number, name: string): Promise<string> {
  const path = `/tmp/krsi-perjob-${name}-${uid}`;
  await execa('rm', ['-f', path]);
  await execa('install', ['-m', '0644', '-o', String(uid), '-g', String(uid), '/dev/null', path]);
  return path;
}

const cgroupId = (dir: string): bigint => statSync(dir, { bigint: true }).ino;

describe('per-job policy by job cgroup (kernel)', function () {
  checkAccounting('fileperms');

  before(() => {
    for (const dir of [TASK, STEPD]) mkdirSync(dir, { recursive: true });
    getEnforcer().setJobLevel(3);
  });
  afterEach(() => {
    getEnforcer().unbindJob(cgroupId(JOB));
    getEnforcer().clearUidPolicy(USER);
  });
  after(async () => {
    // a cgroup whose last process has just exited may still be busy for a moment
    for (const dir of [TASK, join(JOB, 'step_0/user'), STEPD, join(JOB, 'step_0'), JOB, SCOPE]) {
      await waitFor(`rmdir ${dir}`, () => {
        try {
          rmdirSync(dir);
          return true;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EBUSY') return false;
          throw err;
        }
      }, { timeoutMs: 10_000 });
    }
  });

  it('a bound job\'s task is held to the job\'s policy whatever its uid; the same uid outside it, and slurmstepd\'s level, are not', async () => {
    const from = events.length;
    getEnforcer().bindJob(cgroupId(JOB), JOB_ID, STRICT_FILES);
    expect(await probeIn(TASK, SUBUID, 'chmod', await fileOf(SUBUID, 'task'), '4755'), 'subordinate uid in the job').to.equal('ERR EPERM');
    expect(await probeIn(TASK, OTHER, 'chmod', await fileOf(OTHER, 'task'), '4755'), 'another uid in the job').to.equal('ERR EPERM');
    expect(await probeIn(TASK, SUBUID, 'connect4', '192.0.2.10', '22', 'udp'), 'skconnections of the job: deny-by-default').to.equal('ERR EPERM');
    expect(await probeIn(null, SUBUID, 'chmod', await fileOf(SUBUID, 'outside'), '4755'), 'the same uid outside every job').to.equal('OK');
    expect(await probeIn(STEPD, SUBUID, 'chmod', await fileOf(SUBUID, 'stepd'), '4755'), 'slurmstepd\'s own cgroup').to.equal('OK');
    const [chmodEvent] = await eventsSince(from, (e) => e.type === 'chmod' && e.uid === SUBUID);
    expect(chmodEvent).to.deep.include({ jobId: JOB_ID, decision: 'deny', cgroupId: cgroupId(TASK) });
    expect(events.slice(from).filter((e) => e.uid === SUBUID && e.type === 'chmod'), 'no event outside the job').to.have.length(1);

    expect(getEnforcer().unbindJob(cgroupId(JOB))).to.equal(true);
    expect(await probeIn(TASK, SUBUID, 'chmod', await fileOf(SUBUID, 'unbound'), '4755'), 'unbound: the uid decides again').to.equal('OK');
  });

  it('inside a bound job the job\'s policy replaces the uid\'s union: audit in the job, enforce outside it', async () => {
    const from = events.length;
    getEnforcer().setUidPolicy(USER, STRICT_FILES);
    getEnforcer().bindJob(cgroupId(JOB), JOB_ID, AUDIT_FILES);
    expect(await probeIn(TASK, USER, 'chmod', await fileOf(USER, 'job'), '4755')).to.equal('OK');
    expect(await probeIn(null, USER, 'chmod', await fileOf(USER, 'union'), '4755')).to.equal('ERR EPERM');
    const seen = await eventsSince(from, (e) => e.type === 'chmod' && e.uid === USER, 2);
    expect(seen.map((e) => [e.decision, e.jobId])).to.deep.equal([['audit', JOB_ID], ['deny', 0]]);
  });

  it('cost: socket_connect\'s run time per call, no job bound / a job bound and the task outside / the task in it (kernel.bpf_stats_enabled)', async function () {
    const enforcer = getEnforcer();
    const CALLS = 2000;
    const perCall = async (dir: string | null): Promise<number> => {
      const stat = () => enforcer.programStats().find((s) => s.program === 'krsi_socket_connect')!;
      const before = stat();
      expect(await probeIn(dir, SUBUID, '--repeat', String(CALLS), 'connect4', '127.0.0.1', '9', 'udp')).to.equal('OK');
      const after = stat();
      expect(Number(after.runs - before.runs), 'the program ran for each connect').to.be.at.least(CALLS);
      return Number(after.runTimeNs - before.runTimeNs) / Number(after.runs - before.runs);
    };
    await execa('sysctl', ['-qw', 'kernel.bpf_stats_enabled=1']);
    try {
      const none = await perCall(null);
      enforcer.bindJob(cgroupId(JOB), JOB_ID, AUDIT_FILES); // skconnections off: the policy is found, then the program returns
      const outside = await perCall(null);
      const inside = await perCall(TASK);
      console.log(`      krsi_socket_connect, ns per call (${CALLS} UDP connects to loopback, uid ${SUBUID}): no job bound ${none.toFixed(0)}, ` +
        `a job bound and the task outside it ${outside.toFixed(0)}, the task in the bound job ${inside.toFixed(0)}`);
    } finally {
      await execa('sysctl', ['-qw', 'kernel.bpf_stats_enabled=0']);
    }
  });
});
