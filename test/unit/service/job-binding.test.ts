/**
 * Jobs bound to their cgroups (agent/service/agent.ts, job cgroups): when a binding is made, replaced and
 * dropped, what a failure leaves, and which job an event names. The kernel side runs in the VM.
 */
import { expect } from 'chai';
import { LAYOUT } from '../../../agent/enforcement/layout.js';
import { BootClock } from '../../../agent/events/clock.js';
import { EventPipeline } from '../../../agent/events/pipeline.js';
import { FakeJobCgroups, FakeKernel, MemoryStore, config, rig } from './fakes.js';

const STRICT = { job_id: '100', uid: 1000, comment: 'policy:strict' };
const PLAIN = { job_id: '101', uid: 1000 };

/** a raw ring-buffer record of a chmod by uid 1000, with the bound job the kernel found (0: none) */
function chmodRecord(jobId: number): Buffer {
  const F = LAYOUT.krsi_event.fields;
  const b = Buffer.alloc(LAYOUT.krsi_event.size);
  b.writeUInt32LE(4, F.type[0]);
  b.writeUInt32LE(1000, F.uid[0]);
  b.writeUInt32LE(jobId, F.job_id[0]);
  b.write('chmod', F.comm[0]);
  return b;
}

describe('KrsiAgent: jobs bound to their cgroups', () => {
  it('a job registered before its cgroup waits, is bound with its own policy when the cgroup appears, and unbound by its epilog', async () => {
    const { agent, kernel, cgroups } = rig();
    await agent.start();
    await agent.addJob(STRICT);
    await agent.addJob(PLAIN);
    expect(agent.getJob('100')!.binding).to.deep.include({ state: 'waiting', cgroupId: null });
    expect(kernel.jobs.size).to.equal(0);
    expect(kernel.mode(1000, 'suidexec'), 'the uid union covers the window').to.equal('enforce');

    cgroups.make('100', 7001n);
    cgroups.make('101', 7002n);
    await agent.removeJob('none'); // queued after the binds
    expect(kernel.jobLevel).to.equal(3);
    expect(kernel.jobs.get(7001n)!.jobId).to.equal(100);
    expect(kernel.jobs.get(7001n)!.policy.modes).to.include({ fileperms: 'enforce', suidexec: 'enforce' });
    expect(kernel.jobs.get(7002n)!.policy.modes, 'the default job alone, not the union').to.include({ fileperms: 'audit', suidexec: 'off' });
    expect(agent.getJob('100')!.binding).to.deep.equal({ state: 'bound', cgroupId: '7001', detail: null });
    expect(agent.status().jobCgroups).to.deep.equal({ usable: true, problem: null, level: 3, bound: 2 });

    await agent.removeJob('100');
    expect([...kernel.jobs.keys()]).to.deep.equal([7002n]);
    expect(kernel.mode(1000, 'suidexec'), 'the union without the strict job').to.equal('off');
  });

  it('a cgroup that exists before the prolog (PrologFlags=Contain) is bound by the registration itself', async () => {
    const { agent, kernel, cgroups } = rig();
    cgroups.make('200', 8001n);
    await agent.start();
    expect(kernel.jobs.size, 'a cgroup of no registered job is not bound').to.equal(0);
    await agent.addJob({ ...STRICT, job_id: '200' });
    expect(kernel.jobs.get(8001n)?.jobId).to.equal(200);
  });

  it('the cgroup removed before the epilog: unbound at once; the job stays registered under the uid union', async () => {
    const { agent, kernel, cgroups } = rig();
    await agent.start();
    await agent.addJob(STRICT);
    cgroups.make('100', 7001n);
    cgroups.remove('100');
    await agent.removeJob('none');
    expect(kernel.jobs.size).to.equal(0);
    expect(agent.getJob('100')!.binding.state).to.equal('waiting');
    expect(kernel.mode(1000, 'suidexec')).to.equal('enforce');
  });

  it('a job with a cgroup under each of two slurmd of the host: both bound to its policy; one going unbinds only that one; the epilog the rest', async () => {
    const { agent, kernel, cgroups } = rig();
    await agent.start();
    cgroups.make('100', 7001n); // the first node's part, before the prolog's registration
    await agent.addJob(STRICT);
    cgroups.make('100', 7101n); // the second node's part
    await agent.removeJob('none');
    expect([...kernel.jobs.keys()].sort()).to.deep.equal([7001n, 7101n]);
    for (const id of [7001n, 7101n]) expect(kernel.jobs.get(id)!.jobId).to.equal(100);
    expect(agent.getJob('100')!.binding).to.deep.equal({ state: 'bound', cgroupId: '7001,7101', detail: null });
    expect(agent.status().jobCgroups.bound).to.equal(1);

    cgroups.remove('100', 7101n);
    await agent.removeJob('none');
    expect([...kernel.jobs.keys()], 'the first node\'s part still held to the job').to.deep.equal([7001n]);
    expect(agent.getJob('100')!.binding).to.deep.equal({ state: 'bound', cgroupId: '7001', detail: null });
    await agent.removeJob('100');
    expect(kernel.jobs.size).to.equal(0);
  });

  it('a failed bind is logged and leaves the job waiting under the uid union', async () => {
    const { agent, kernel, cgroups, log } = rig();
    await agent.start();
    await agent.addJob(STRICT);
    kernel.failBind.add(7001n);
    cgroups.make('100', 7001n);
    await agent.removeJob('none');
    expect(agent.getJob('100')!.binding.state).to.equal('waiting');
    expect(log.lines.some((l) => /cannot bind a job to its cgroup/.test(l) && /E2BIG/.test(l))).to.equal(true);
    expect(kernel.mode(1000, 'suidexec')).to.equal('enforce');
  });

  it('a rebinding that fails (reload) unbinds the job: the uid union under the new configuration holds it', async () => {
    const { agent, kernel, cgroups, log } = rig({ options: { loadConfig: () => config() } });
    await agent.start();
    await agent.addJob(STRICT);
    cgroups.make('100', 7001n);
    await agent.removeJob('none');
    expect(kernel.jobs.size).to.equal(1);
    kernel.failBind.add(7001n);
    await agent.reload();
    expect(kernel.jobs.size).to.equal(0);
    expect(agent.getJob('100')!.binding.state).to.equal('waiting');
    expect(log.lines.some((l) => /cannot bind a job to its cgroup/.test(l))).to.equal(true);
    expect(kernel.mode(1000, 'suidexec')).to.equal('enforce');
  });

  it('a restart keeps the bindings of live jobs (rebound) and drops those of jobs that are gone', async () => {
    const store = new MemoryStore();
    const kernel = new FakeKernel();
    const cgroups = new FakeJobCgroups();
    const first = rig({ store, kernel, cgroups });
    await first.agent.start();
    await first.agent.addJob(STRICT);
    cgroups.make('100', 7001n);
    await first.agent.stop();
    kernel.setJobLevel(3);
    kernel.bindJob(9999n, 555, kernel.jobs.get(7001n)!.policy); // a job a crash left bound
    const second = rig({ store, kernel, cgroups });
    await second.agent.start();
    await second.agent.removeJob('none');
    expect([...kernel.jobs.keys()]).to.deep.equal([7001n]);
    expect(second.agent.getJob('100')!.binding.state).to.equal('bound');
  });

  it('cgroup v1: every job is shown unavailable, status warns, the uid union enforces', async () => {
    const cgroups = new FakeJobCgroups();
    cgroups.problem = 'no cgroup v2 hierarchy at /sys/fs/cgroup (cgroup v1, or none)';
    const { agent, kernel } = rig({ cgroups });
    await agent.start();
    await agent.addJob(STRICT);
    expect(agent.getJob('100')!.binding).to.deep.include({ state: 'unavailable', detail: cgroups.problem });
    expect(agent.status().jobCgroups.usable).to.equal(false);
    expect(agent.status().warnings.some((w) => w.includes('job cgroups cannot be used'))).to.equal(true);
    expect(kernel.mode(1000, 'suidexec')).to.equal('enforce');
  });

  it('an event names the bound job whose task acted; outside every bound job, the uid\'s jobs: in the window, the user\'s view and the journal', async () => {
    const entries: string[] = [];
    const journal = { send: (entry: Buffer) => entries.push(entry.toString()) > 0 };
    const { agent } = rig({
      options: {
        makePipeline: (jobOf) => new EventPipeline({ clock: new BootClock(() => 0n), jobOf, windowSize: 4, logPath: null, journal }),
      },
    });
    await agent.start();
    await agent.addJob(STRICT);
    await agent.addJob(PLAIN);
    agent.pipeline.handle(chmodRecord(101));
    agent.pipeline.handle(chmodRecord(0));
    expect(agent.events(0, 10).events.map((e) => e.job)).to.deep.equal(['101', '100,101']);
    expect(agent.events(0, 10, 1000).events.map((e) => e.job), 'the view of uid 1000, whose processes acted').to.deep.equal(['101', '100,101']);
    expect(agent.events(0, 10, 1001).events, 'the view of another uid').to.deep.equal([]);
    // journalctl KRSI_JOB=101 finds both; KRSI_JOB=100 only the one outside the bound job
    expect(entries.map((e) => [...e.matchAll(/^KRSI_JOB=(.*)$/gm)].map((m) => m[1]))).to.deep.equal([['101'], ['100', '101']]);
  });
});
