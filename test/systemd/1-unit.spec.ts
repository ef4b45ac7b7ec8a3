/**
 * deploy/krsi-agent.service under real systemd (the VM's PID 1), with slurmd's drop-in, as install.sh
 * installs them: at boot slurmd starts only once the agent said READY=1 (Type=notify), and
 * `systemctl restart krsi-agent` while jobs start fails none of them and drains nothing.
 */
import { expect } from 'chai';
import { WORK, jobInfo, nodeInfo, sbatch, waitJobEnded } from '../slurm/cluster.js';
import { agentJobs } from '../slurm/node.js';
import { scaled, waitFor, withDeadline } from '../vm/pace.js';
import { BOOT, onBoot } from './boot.js';
import { HOLD, chmodSuid, expectNodeServing, registeredCluster, release } from './jobs.js';
import { AGENT_UNIT } from './node.js';
import { journal, journalTail, logLineUs, systemctl, timestampUs, unitProps, waitActive } from './systemctl.js';

const STRICT_USER = 1000;

describe('krsi-agent.service under systemd', function () {
  before(async function () {
    this.timeout(scaled(300_000));
    await waitActive(AGENT_UNIT);
    await waitActive('slurmd.service');
    const cluster = await registeredCluster();
    console.log(`      boot ${BOOT}: node ${cluster.node} registered ${cluster.seconds.toFixed(1)} s after the specs started`);
  });

  it('boot: slurmd started only after the agent said READY=1, which it said once serving with its programs attached', async () => {
    const agent = await unitProps(AGENT_UNIT, ['Type', 'ActiveEnterTimestamp', 'ExecMainStartTimestamp', 'MainPID', 'NRestarts']);
    const slurmd = await unitProps('slurmd.service', ['ExecMainStartTimestamp', 'After', 'Wants']);
    expect(agent.Type).to.equal('notify');
    expect(slurmd.After?.split(' '), 'slurmd After= (drop-in)').to.include(AGENT_UNIT);
    const serving = (await journal(AGENT_UNIT)).filter((e) => e.pid === Number(agent.MainPID) && /msg="?krsi-agent serving/.test(e.message));
    expect(serving, 'the agent\'s "serving" line in this boot\'s journal').to.have.length(1);
    const t = {
      agentExec: timestampUs(agent.ExecMainStartTimestamp),
      serving: logLineUs(serving[0]!.message),
      ready: timestampUs(agent.ActiveEnterTimestamp),
      slurmdExec: timestampUs(slurmd.ExecMainStartTimestamp),
    };
    console.log(`      agent started, serving after ${((t.serving - t.agentExec) / 1e6).toFixed(2)} s, READY=1 after ${((t.ready - t.agentExec) / 1e6).toFixed(2)} s; ` +
      `slurmd started ${((t.slurmdExec - t.ready) / 1e6).toFixed(2)} s after READY=1`);
    // a Type=simple unit is "active" at its exec, before the socket listens: then ready < serving
    expect(t.serving, 'the agent served before systemd called it active').to.be.at.most(t.ready);
    expect(t.ready, 'slurmd started after the agent was active').to.be.at.most(t.slurmdExec);
    expect(Number(agent.NRestarts), 'the agent did not fail at boot').to.equal(0);
  });

  onBoot(1, 'restarts', () => {
    it('`systemctl restart krsi-agent` while 10 strict jobs start: none fails or is requeued, the node is not drained, every job is under policy', async function () {
      this.timeout(scaled(600_000));
      const before = await unitProps(AGENT_UNIT, ['MainPID']);
      const submitted = Array.from({ length: 10 }, (_, i) =>
        sbatch(STRICT_USER, HOLD, ['--comment=policy:strict', '-J', `restart-${i}`, `--output=${WORK}/out-%j.txt`]));
      // restart once the first of them is registered: the others' prologs meet the agent stopping and starting
      await waitFor('the first job registered before the restart', async () => (await agentJobs().catch(() => [])).length > 0, { timeoutMs: 120_000 });
      const restartStarted = Date.now();
      const restart = systemctl('restart', AGENT_UNIT).then(() => Date.now());
      const ids = await Promise.all(submitted);
      const restartDone = await withDeadline('systemctl restart krsi-agent', scaled(180_000), restart);
      const after = await unitProps(AGENT_UNIT, ['MainPID', 'ActiveState']);
      expect(after.MainPID).to.not.equal(before.MainPID);

      // RUNNING comes with the allocation (PrologFlags=Alloc); Reason=Prolog until its prolog is done, which
      // for the prologs that met the restart means waiting for the new agent (agent_wait)
      // a failed prolog requeues its job and drains the node: stop waiting at once and show the agent's side
      const prologsDone = async (): Promise<Record<string, string>[] | undefined> => {
        const now = await Promise.all(ids.map((id) => jobInfo(id)));
        const node = await nodeInfo();
        if (now.some((i) => i.Restarts !== '0') || /DRAIN|DOWN|FAIL/.test(node.State ?? '')) {
          throw new Error(`a prolog failed during the restart: node ${node.State} (${node.Reason ?? 'no reason'}); ` +
            `jobs ${now.map((i) => `${i.JobId}:${i.JobState}/${i.Reason}/restarts=${i.Restarts}`).join(' ')}\n${await journalTail(AGENT_UNIT, 80)}`);
        }
        return now.every((i) => i.JobState === 'RUNNING' && i.Reason !== 'Prolog') ? now : undefined;
      };
      const infos = await waitFor('every job running, its prolog done', prologsDone, { timeoutMs: 300_000, intervalMs: 500 });
      for (const info of infos) {
        expect(info.Restarts, `job ${info.JobId} was not requeued`).to.equal('0');
        expect(info.Reason, `job ${info.JobId}`).to.equal('None');
      }
      await expectNodeServing();
      const jobs = await agentJobs();
      for (const id of ids) expect(jobs.find((j) => j.jobId === id), `job ${id} in the agent's table`).to.deep.include({ uid: STRICT_USER, requested: 'strict' });
      expect(await chmodSuid(STRICT_USER, 'restart'), 'uid 1000 under strict').to.equal('ERR EPERM');

      // evidence that the restart overlapped the job starts: who registered which job
      const added = (await journal(AGENT_UNIT)).filter((e) => /msg="?job added/.test(e.message));
      const byNew = ids.filter((id) => added.some((e) => e.pid === Number(after.MainPID) && e.message.includes(`job=${id} `)));
      const byOld = ids.filter((id) => added.some((e) => e.pid === Number(before.MainPID) && e.message.includes(`job=${id} `)));
      console.log(`      restart took ${((restartDone - restartStarted) / 1000).toFixed(1)} s; jobs registered by the old agent: ${byOld.length}, by the new one: ${byNew.length}`);
      expect(byOld.length + byNew.length, 'every job registered by one agent or the other').to.equal(ids.length);
      expect(byNew.length, 'jobs whose prolog met the restart (else this test did not test a restart)').to.be.greaterThan(0);

      for (const id of ids) release(id);
      await Promise.all(ids.map((id) => waitJobEnded(id)));
      await waitFor('uid 1000 free after its jobs ended', async () => (await chmodSuid(STRICT_USER, 'restart-after')) === 'OK');
      expect((await jobInfo(ids[0]!)).JobState).to.equal('COMPLETED');
    });
  });
});
