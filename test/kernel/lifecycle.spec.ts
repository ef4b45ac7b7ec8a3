/**
 * A node's enforcement matches what Slurm runs (real Slurm 22.05 in the VM, PrologFlags=Alloc,Contain,
 * proctrack/cgroup): ghosts of lost epilogs are reconciled away, a ghost's job id given to another
 * user's job runs under that job's own profile, a config push with a typo drains nothing, and prologs
 * issued while the agent is still starting wait for it (agent_wait).
 */
import { expect } from 'chai';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { request, type ClientResponse } from '../../agent/client/client.js';
import { Enforcer } from '../../agent/enforcement/enforcer.js';
import type { AgentStatus } from '../../agent/service/types.js';
import {
  HOLD, WORK, asUser, nodeInfo, releaseJob, saveLogs, sbatch, slurmLogTails, startCluster, stopCluster, waitJobEnded, waitJobRunning,
} from '../slurm/cluster.js';
import {
  AGENT_LOG, CONFIG, EPILOG, KRSICTL, PIN_DIR, PROLOG, SOCKET, agentJobs, api, ensureUser, installOnNode, shutdownAgent, startAgent, stopAgent,
  tail, uidsUnderPolicy,
} from '../slurm/node.js';
import { scaled, waitFor } from '../vm/pace.js';
import { OTHER, USER, evidence, suidExec } from './fixture.js';

/** small enough to wait out in a test, large enough that a job's prolog-to-step gap in the VM fits in it */
const GRACE = 20;

let original = '';

function withAgentKeys(text: string, keys: string): string {
  return text.replace(/^\[agent\]\s*$/m, `[agent]\n${keys}`);
}

const METRICS = 'http://127.0.0.1:9817/metrics';

async function agentStatus(): Promise<AgentStatus> {
  return (await api<AgentStatus>('GET', '/v1/status')).body;
}

/** the agent's side of a failed wait: its reconciliation status and the end of its log, and Slurm's logs */
async function agentSide(): Promise<string> {
  const reconcile = await agentStatus().then((st) => JSON.stringify(st.reconcile), (e: Error) => e.message);
  return `reconcile: ${reconcile}\n${tail(AGENT_LOG, 40)}\n${slurmLogTails(15)}`;
}

/** a registration as a prolog would send it, for a job Slurm does not run (a ghost) */
function register(jobId: string, uid: number): Promise<ClientResponse> {
  return request(SOCKET, 'POST', '/v1/jobs', { job_id: jobId, uid, comment: 'policy:strict' }, { timeoutMs: scaled(30_000) });
}

describe('lifecycle: the agent against what Slurm runs', function () {
  this.timeout(scaled(300_000));

  before(async function () {
    this.timeout(scaled(600_000));
    await installOnNode();
    original = readFileSync(CONFIG, 'utf8');
    writeFileSync(CONFIG, withAgentKeys(original, `reconcile_interval = 2\nreconcile_grace = ${GRACE}\nagent_wait = 25`));
    await ensureUser('krsiuser', USER);
    await ensureUser('krsiother', OTHER);
    await startCluster({ prolog: PROLOG, epilog: EPILOG, users: { [USER]: 'krsiuser', [OTHER]: 'krsiother' } });
    Enforcer.removePinned(PIN_DIR);
    await startAgent();
  });

  after(async function () {
    this.timeout(scaled(120_000));
    if (process.env.KRSI_RESULTS_DIR) saveLogs(join(process.env.KRSI_RESULTS_DIR, 'lifecycle'), [AGENT_LOG, CONFIG]);
    if (original) writeFileSync(CONFIG, original);
    await stopCluster();
    await shutdownAgent();
    Enforcer.removePinned(PIN_DIR);
  });

  it('a ghost (registered, never run by Slurm) is removed after the grace, and its uid freed', async () => {
    const r = await register('990001', OTHER);
    expect(r.status).to.equal(201);
    expect(await suidExec(OTHER)).to.equal('denied');
    const t0 = Date.now();
    await waitFor('the ghost 990001 is reconciled away', async () => !(await agentJobs()).some((j) => j.jobId === '990001'), {
      timeoutMs: (GRACE + 60) * 1000, intervalMs: 500, detail: agentSide,
    });
    const waited = (Date.now() - t0) / 1000;
    console.log(`      ghost removed ${waited.toFixed(1)} s after registration (grace ${GRACE} s)`);
    expect(waited).to.be.at.least(GRACE - 1);
    expect(await uidsUnderPolicy()).to.not.include(OTHER);
    expect(await suidExec(OTHER)).to.equal('ran');
    expect(tail(AGENT_LOG, 200)).to.match(/job removed: Slurm does not run it on this node" job=990001 uid=1001/);
    const metrics = await (await fetch(METRICS)).text();
    expect(metrics).to.match(/^krsi_jobs_reconciled_total\{reason="not_running"\} 1$/m);
    expect(metrics).to.match(/^krsi_slurm_view_unreadable 0$/m);
  });

  it('a ghost whose id Slurm then gives to another user\'s job: the job runs under its own profile and the node stays idle', async () => {
    // the id Slurm gives next: one more than the last job's
    const probeJob = await sbatch(USER, HOLD, ['--hold', `--output=${WORK}/out-%j.txt`]);
    await asUser(USER, 'scancel', [probeJob]);
    const next = String(Number(probeJob) + 1);
    const ghost = await register(next, OTHER);
    expect(ghost.status).to.equal(201);
    const id = await sbatch(USER, HOLD, ['--comment=policy:default', '-J', 'reused-id', `--output=${WORK}/out-%j.txt`]);
    expect(id).to.equal(next);
    try {
      await waitJobRunning(id);
      // RUNNING can come before the prolog has finished (PrologFlags=Alloc): wait for its registration
      const rec = await waitFor(`the prolog of job ${id} registers it for uid ${USER}`, async () => {
        const job = (await agentJobs()).find((j) => j.jobId === id);
        return job?.uid === USER ? job : undefined;
      }, { detail: agentSide });
      evidence(`the agent's record of job ${id}`, JSON.stringify(rec));
      expect(rec).to.deep.include({ uid: USER, requested: 'default', profiles: ['default'] });
      expect(await uidsUnderPolicy()).to.not.include(OTHER);
      expect(await suidExec(USER), 'the default profile: suidexec off').to.equal('ran');
      expect((await nodeInfo()).State).to.not.match(/DRAIN/);
      // and a job Slurm runs stays past the grace: the node's view shows it
      const graceEnd = Date.parse(rec.addedAt) + GRACE * 1000;
      const st = await waitFor('a reconciliation round that read Slurm\'s view after the grace', async () => {
        const { reconcile } = await agentStatus();
        return reconcile.lastAt !== null && Date.parse(reconcile.lastAt) > graceEnd ? reconcile : undefined;
      }, { timeoutMs: (GRACE + 60) * 1000, intervalMs: 500, detail: agentSide });
      evidence('the reconciliation after the grace', JSON.stringify(st));
      // the test cluster's slurm.conf: PrologFlags=Alloc,Contain, ReturnToService=2
      expect(st).to.deep.include({ slurmView: 'ok', allocationsVisible: true, rebootEndsJobs: false, unverified: [] });
      // Slurm 22.05 with cgroup/v2 and IgnoreSystemd=yes names the scope after the node
      expect(st.sources).to.include.members([`cgroup /sys/fs/cgroup/system.slice/${(await execa('hostname')).stdout.trim()}_slurmstepd.scope`, '/usr/bin/scontrol listpids']);
      expect((await agentJobs()).find((j) => j.jobId === id)?.registration, 'still registered').to.equal(rec.registration);
    } finally {
      releaseJob(id);
    }
    await waitJobEnded(id);
    expect((await nodeInfo()).State).to.match(/^IDLE/);
  });

  it('a typo pushed while jobs run: the next jobs run under the running config, the node is not drained, krsictl check names the line', async () => {
    const a = await sbatch(USER, HOLD, ['--comment=policy:strict', '-J', 'before-push', `--output=${WORK}/out-%j.txt`]);
    const jobs = [a];
    await waitJobRunning(a);
    const good = readFileSync(CONFIG, 'utf8');
    const typo = good.replace(/^\[profile strict\]\nfileperms = enforce$/m, '[profile strict]\nfileperms = enforc');
    expect(typo).to.not.equal(good);
    const line = typo.split('\n').indexOf('fileperms = enforc') + 1;
    writeFileSync(CONFIG, typo);
    try {
      const b = await sbatch(USER, HOLD, ['--comment=policy:strict', '-J', 'after-push', `--output=${WORK}/out-%j.txt`]);
      jobs.push(b);
      await waitJobRunning(b);
      await waitFor(`the agent has job ${b}`, async () => (await agentJobs()).some((j) => j.jobId === b), { detail: agentSide });
      expect((await agentJobs()).find((j) => j.jobId === b)).to.deep.include({ profiles: ['default', 'strict'] });
      expect(await suidExec(USER), 'strict, from the running config').to.equal('denied');
      expect((await nodeInfo()).State).to.not.match(/DRAIN/);

      const check = await execa(KRSICTL, ['check', '--config', CONFIG], { reject: false });
      evidence('krsictl check after the push', `exit ${check.exitCode}\n${check.stderr}`);
      expect(check.exitCode).to.equal(1);
      expect(check.stderr).to.include(`${CONFIG}:${line}: [profile strict] fileperms: "enforc" is not one of off | audit | enforce`);
      const reload = await execa(KRSICTL, ['reload'], { reject: false });
      expect(reload.exitCode).to.equal(1);
      expect(reload.stderr).to.include(`${CONFIG}:${line}: [profile strict] fileperms`);
      expect(await suidExec(USER), 'a rejected reload changes nothing').to.equal('denied');
    } finally {
      writeFileSync(CONFIG, good);
      for (const j of jobs) releaseJob(j);
    }
    await Promise.all(jobs.map((j) => waitJobEnded(j)));
    expect((await nodeInfo()).State).to.match(/^IDLE/);
  });

  it('prologs issued while the agent is still starting: all succeed once it answers (agent_wait)', async function () {
    this.timeout(scaled(240_000));
    await stopAgent('SIGTERM');
    expect(existsSync(SOCKET), 'a stopped agent leaves no socket').to.equal(false);
    const env = (id: string, uid: number) => ({
      PATH: '/usr/sbin:/usr/bin:/sbin:/bin', SLURM_JOB_ID: id, SLURM_JOB_UID: String(uid), SLURM_JOB_USER: `u${uid}`,
      SLURM_JOB_COMMENT: 'policy:strict', SLURM_SCRIPT_CONTEXT: 'prolog_slurmd',
    });
    // The prologs come once the new agent is on its way (its programs attached or adopted) and before it
    // serves. Loading Node.js modules over the VM's 9p root takes the agent tens of seconds on a busy
    // build machine, more than agent_wait may be (25 s at most); on a node it takes about a second.
    const logFrom = statSync(AGENT_LOG).size;
    const serving = startAgent();
    await waitFor('the new agent to attach or adopt its programs', () => /(adopted|attached and pinned) \d+ (pinned )?programs/.test(readFileSync(AGENT_LOG, 'utf8').slice(logFrom)), {
      timeoutMs: 180_000, detail: () => tail(AGENT_LOG),
    });
    const issued = Date.now();
    const socketThen = existsSync(SOCKET);
    const ids = ['880001', '880002', '880003', '880004', '880005'];
    const prologs = ids.map((id, i) => execa(PROLOG, [], { env: env(id, 3000 + i), extendEnv: false, reject: false, timeout: scaled(120_000) }));
    await serving;
    const servedAfter = (Date.now() - issued) / 1000;
    const results = await Promise.all(prologs);
    evidence(`prologs issued ${servedAfter.toFixed(1)} s before the agent served`, results.map((r, i) => `${ids[i]}: exit ${r.exitCode} ${r.stderr}`).join('\n'));
    expect(socketThen, 'the prologs were issued before the agent listened').to.equal(false);
    for (const r of results) expect(r.exitCode, r.stderr).to.equal(0);
    const jobs = (await agentJobs()).map((j) => j.jobId);
    expect(jobs).to.include.members(ids);
    for (const [i, id] of ids.entries()) {
      const r = await execa(EPILOG, [], { env: env(id, 3000 + i), extendEnv: false, reject: false });
      expect(r.exitCode, r.stderr).to.equal(0);
    }
  });
});
