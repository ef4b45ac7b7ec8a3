import { expect } from 'chai';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../../agent/config/errors.js';
import { leaveRemovalNote, notesDir } from '../../../agent/slurm/notes.js';
import { JobFile } from '../../../agent/service/job-store.js';
import { ERR, KrsiError } from '../../../agent/service/types.js';
import { CONFIG_TEXT, FakeClock, FakeKernel, MemoryStore, config, rig } from './fakes.js';
import { rejection } from '../rejection.js';

const STRICT = { job_id: '100', uid: 1000, comment: 'policy:strict' };

describe('KrsiAgent: the order of writes and their failures', () => {
  it('add: a failed save changes nothing, in memory or in the kernel', async () => {
    const { agent, kernel, store } = rig();
    await agent.start();
    store.failSave = true;
    const err = await rejection(agent.addJob(STRICT), KrsiError);
    expect(err).to.include({ code: ERR.STATE, statusCode: 503 });
    expect(err.message).to.match(/cannot register job 100: the job table .* cannot be saved: ENOSPC/);
    expect(agent.listJobs()).to.deep.equal([]);
    expect(kernel.policies.size).to.equal(0);
  });

  it('add: a failed kernel write saves the table back without the job and leaves the uid as it was', async () => {
    const { agent, kernel, store } = rig();
    await agent.start();
    kernel.failSet.add(1000);
    const err = await rejection(agent.addJob(STRICT), KrsiError);
    expect(err).to.include({ code: ERR.ENFORCEMENT, statusCode: 503 });
    expect(err.details).to.deep.equal({ job: '100', uid: 1000 });
    expect(store.ids()).to.deep.equal([]);
    expect(agent.listJobs()).to.deep.equal([]);
    expect(kernel.mode(1000, 'fileperms')).to.equal('none');
  });

  it('a crash between the save and the kernel write of an add: the next start writes the entry', async () => {
    const store = new MemoryStore();
    const first = rig({ store });
    await first.agent.start();
    await first.agent.addJob(STRICT);
    const kernel = new FakeKernel(); // the entry never reached the kernel
    const second = rig({ store, kernel });
    await second.agent.start();
    expect(kernel.mode(1000, 'suidexec')).to.equal('enforce');
  });

  it('remove: a failed kernel write keeps the job, in the table and on disk', async () => {
    const { agent, kernel, store } = rig();
    await agent.start();
    await agent.addJob(STRICT);
    kernel.failClear.add(1000);
    const err = await rejection(agent.removeJob('100'), KrsiError);
    expect(err).to.include({ code: ERR.ENFORCEMENT, statusCode: 503 });
    expect(store.ids()).to.deep.equal(['100']);
    expect(agent.getJob('100')).to.not.equal(null);
    expect(kernel.mode(1000, 'suidexec')).to.equal('enforce');
  });

  it('remove: the kernel is cleared before the save; a failed save keeps the job listed, and the next start holds the uid again (the safe side)', async () => {
    const { agent, kernel, store, clock } = rig();
    await agent.start();
    await agent.addJob(STRICT);
    store.failSave = true;
    const err = await rejection(agent.removeJob('100'), KrsiError);
    expect(err).to.include({ code: ERR.STATE, statusCode: 503 });
    expect(kernel.mode(1000, 'suidexec')).to.equal('none');
    expect(store.ids()).to.deep.equal(['100']);
    store.failSave = false;
    const restarted = rig({ store, kernel, clock });
    await restarted.agent.start();
    expect(kernel.mode(1000, 'suidexec')).to.equal('enforce');
    expect((await restarted.agent.removeJob('100')).removed).to.equal(true);
    expect(kernel.mode(1000, 'suidexec')).to.equal('none');
  });

  it('the last job of a uid clears its entry; a remaining job keeps the union', async () => {
    const { agent, kernel } = rig();
    await agent.start();
    await agent.addJob(STRICT);
    await agent.addJob({ job_id: '101', uid: 1000 });
    expect((await agent.removeJob('100')).removed).to.equal(true);
    expect(kernel.mode(1000, 'suidexec')).to.equal('off');
    expect(kernel.mode(1000, 'fileperms')).to.equal('audit');
    await agent.removeJob('101');
    expect(kernel.policies.has(1000)).to.equal(false);
    expect((await agent.removeJob('101')).removed).to.equal(false);
  });

  it('start clears kernel entries of uids without a job', async () => {
    const kernel = new FakeKernel();
    kernel.setUidPolicy(4242, { modes: { fileperms: 'enforce', suidexec: 'off', sshlisteners: 'off', skconnections: 'off', killtasks: 'off' }, connectDefault: 'allow', connectRules: [], suidAllow: [], sshClients: [] });
    const { agent } = rig({ kernel });
    await agent.start();
    expect(kernel.policies.has(4242)).to.equal(false);
  });
});

describe('KrsiAgent: job identity', () => {
  it('the same id, uid and profile again is the same registration (idempotent)', async () => {
    const { agent } = rig();
    await agent.start();
    const a = await agent.addJob(STRICT);
    const b = await agent.addJob(STRICT);
    expect(b.created).to.equal(false);
    expect(b.job.registration).to.equal(a.job.registration);
  });

  it('a job id registered again for another uid replaces the stale record (not 409); the stale uid is freed', async () => {
    const { agent, kernel, log } = rig();
    await agent.start();
    const stale = await agent.addJob({ job_id: '7', uid: 1001, comment: 'policy:strict' });
    const fresh = await agent.addJob({ job_id: '7', uid: 1000 });
    expect(fresh.created).to.equal(true);
    expect(fresh.job).to.deep.include({ uid: 1000, requested: null, profiles: ['default'] });
    expect(fresh.job.registration).to.not.equal(stale.job.registration);
    expect(kernel.policies.has(1001)).to.equal(false);
    expect(kernel.mode(1000, 'fileperms')).to.equal('audit');
    expect(log.lines.some((l) => /stale record is replaced" job=7 uid=1000 .*staleUid=1001/.test(l))).to.equal(true);
  });

  it('the same uid asking for another profile gets its own profile, not the old record', async () => {
    const { agent, kernel } = rig();
    await agent.start();
    await agent.addJob({ job_id: '8', uid: 1000 });
    const again = await agent.addJob({ job_id: '8', uid: 1000, comment: 'policy:strict' });
    expect(again.created).to.equal(true);
    expect(again.job.profiles).to.deep.equal(['default', 'strict']);
    expect(kernel.mode(1000, 'suidexec')).to.equal('enforce');
  });

  it('an epilog names the registration it saw as it started: a later run of the id keeps its own (requeue after a reboot)', async () => {
    const { agent, kernel, log } = rig();
    await agent.start();
    const first = await agent.addJob(STRICT);
    // the first run's epilog started while no registration existed, or with the first one; the job id
    // was registered again (the requeued run) before its removal arrived
    await agent.removeJob('100', first.job.registration);
    const rerun = await agent.addJob(STRICT);
    for (const seen of [first.job.registration, null]) {
      const stale = await agent.removeJob('100', seen);
      expect(stale, `epilog that saw ${seen}`).to.deep.include({ removed: false, laterRun: true });
      expect(stale.uidPolicy?.modes.suidexec).to.equal('enforce');
      expect(agent.getJob('100')?.registration).to.equal(rerun.job.registration);
      expect(kernel.mode(1000, 'suidexec')).to.equal('enforce');
    }
    expect(log.lines.filter((l) => /epilog of an earlier run of a job id/.test(l))).to.have.length(2);
    // the rerun's own epilog, and an admin's removal without a registration, do remove
    expect((await agent.removeJob('100', rerun.job.registration)).removed).to.equal(true);
    await agent.addJob(STRICT);
    expect((await agent.removeJob('100')).removed).to.equal(true);
    expect(kernel.policies.has(1000)).to.equal(false);
  });
});

describe('KrsiAgent: removal notes', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'krsi-notes-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** an agent whose state dir (notes, and the job file the epilog reads) is `dir` */
  function withState() {
    const store = new JobFile(dir);
    return rig({ store: store as unknown as MemoryStore, options: { config: config(CONFIG_TEXT.replace('/nonexistent/krsi-test-state', dir)) } });
  }

  it('a note names the registration it ends; it removes that one, then goes', async () => {
    const { agent, kernel } = withState();
    await agent.start();
    await agent.addJob(STRICT);
    const note = leaveRemovalNote(dir, '100', 1000);
    expect(note).to.match(new RegExp(`/100@${agent.getJob('100')!.registration}$`));
    await agent.applyRemovalNotes();
    expect(agent.getJob('100')).to.equal(null);
    expect(kernel.policies.has(1000)).to.equal(false);
    expect(readdirSync(notesDir(dir))).to.deep.equal([]);
  });

  it('a note of an earlier registration never removes a later one of the same id (requeue)', async () => {
    const { agent, kernel } = withState();
    await agent.start();
    await agent.addJob(STRICT);
    leaveRemovalNote(dir, '100', 1000); // the first run's epilog timed out
    await agent.removeJob('100'); // ... the removal got through after all, the job is requeued and runs again
    const rerun = await agent.addJob(STRICT);
    await agent.applyRemovalNotes();
    expect(agent.getJob('100')?.registration).to.equal(rerun.job.registration);
    expect(kernel.mode(1000, 'suidexec')).to.equal('enforce');
    expect(readdirSync(notesDir(dir)), 'an obsolete note goes').to.deep.equal([]);
  });

  it('a requeued run whose prolog comes before its earlier run\'s note is applied is a new registration: the note ends only the earlier one', async () => {
    const { agent, kernel, log } = withState();
    await agent.start();
    const first = await agent.addJob(STRICT);
    leaveRemovalNote(dir, '100', 1000); // the first run's epilog could not reach the agent
    const rerun = await agent.addJob(STRICT); // the requeued run (same uid, same profile), before the note is applied
    expect(rerun.created).to.equal(true);
    expect(rerun.job.registration).to.not.equal(first.job.registration);
    expect(log.lines.some((l) => /after its earlier registration ended .*: a new registration" job=100/.test(l))).to.equal(true);
    await agent.applyRemovalNotes();
    expect(agent.getJob('100')?.registration).to.equal(rerun.job.registration);
    expect(kernel.mode(1000, 'suidexec')).to.equal('enforce');
    expect(readdirSync(notesDir(dir)), 'the note of the ended registration goes').to.deep.equal([]);
  });

  it('a note whose removal fails is kept for the next try', async () => {
    const { agent, kernel } = withState();
    await agent.start();
    await agent.addJob(STRICT);
    leaveRemovalNote(dir, '100', 1000);
    kernel.failClear.add(1000);
    await agent.applyRemovalNotes();
    expect(agent.getJob('100')).to.not.equal(null);
    expect(readdirSync(notesDir(dir))).to.have.length(1);
    kernel.failClear.clear();
    await agent.applyRemovalNotes();
    expect(agent.getJob('100')).to.equal(null);
    expect(readdirSync(notesDir(dir))).to.deep.equal([]);
  });

  it('a note of the first format (named by the job id, holding the time) still applies to a registration made before it', async () => {
    const { agent } = withState();
    await agent.start();
    await agent.addJob(STRICT);
    mkdirSync(notesDir(dir), { recursive: true });
    writeFileSync(join(notesDir(dir), '100'), '2030-01-01T00:00:00.000Z\n');
    await agent.applyRemovalNotes();
    expect(agent.getJob('100')).to.equal(null);
  });
});


describe('KrsiAgent: reload', () => {
  const STRICTER = CONFIG_TEXT.replace('suidexec = enforce', 'suidexec = enforce\nkilltasks = enforce');

  it('a rejected config changes nothing and carries its problems with file and line', async () => {
    const { agent, kernel } = rig({ options: { loadConfig: () => { throw new ConfigError('/etc/slurm-krsi/krsi.ini', [{ section: 'profile strict', key: 'fileperms', line: 9, message: 'bad' }]); } } });
    await agent.start();
    await agent.addJob(STRICT);
    const before = agent.currentConfig;
    const err = await rejection(agent.reload(), KrsiError);
    expect(err).to.include({ code: ERR.CONFIG, statusCode: 422 });
    expect(agent.lastReloadSucceeded).to.equal(false);
    expect(err.details.problems).to.deep.equal(['/etc/slurm-krsi/krsi.ini:9: [profile strict] fileperms: bad']);
    expect(agent.currentConfig).to.equal(before);
    expect(kernel.mode(1000, 'suidexec')).to.equal('enforce');
  });

  it('a kernel write failing halfway puts back the uids already written and keeps the running config', async () => {
    const { agent, kernel, store } = rig({ options: { loadConfig: () => config(STRICTER) } });
    await agent.start();
    await agent.addJob(STRICT);
    await agent.addJob({ ...STRICT, job_id: '101', uid: 1001 });
    const before = agent.currentConfig;
    const saved = JSON.stringify(store.saved);
    kernel.failSet.add(1001);
    expect(agent.lastReloadSucceeded, 'before any reload').to.equal(true);
    const err = await rejection(agent.reload(), KrsiError);
    expect(agent.lastReloadSucceeded, 'after the failed reload').to.equal(false);
    expect(err).to.include({ code: ERR.ENFORCEMENT, statusCode: 503 });
    expect(err.message).to.match(/running configuration stays in force: cannot write the policy of uid 1001/);
    expect(kernel.policies.get(1000)?.modes.killtasks, 'uid 1000 put back').to.equal('off');
    expect(agent.currentConfig).to.equal(before);
    expect(JSON.stringify(store.saved)).to.equal(saved);
    kernel.failSet.clear();
    await agent.reload();
    expect(agent.lastReloadSucceeded, 'after the next reload succeeded').to.equal(true);
    expect(kernel.policies.get(1000)?.modes.killtasks).to.equal('enforce');
    expect(kernel.policies.get(1001)?.modes.killtasks).to.equal('enforce');
  });

  it('a failed save puts the kernel back too', async () => {
    const { agent, kernel, store } = rig({ options: { loadConfig: () => config(STRICTER) } });
    await agent.start();
    await agent.addJob(STRICT);
    store.failSave = true;
    const err = await rejection(agent.reload(), KrsiError);
    expect(err).to.include({ code: ERR.STATE });
    expect(kernel.policies.get(1000)?.modes.killtasks).to.equal('off');
  });

  it('keys that wait for a restart are named in the warnings; live ones take effect (admin_group, slurmd_user, event_log)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'krsi-reload-'));
    const eventLog = join(dir, 'events.log');
    try {
      const changed = CONFIG_TEXT
        .replace('event_log = off', `event_log = ${eventLog}`)
        .replace('[agent]', '[agent]\npin_dir = /sys/fs/bpf/other\nevents_window = 5\nadmin_group = hpcadmin\nslurmd_user = slurm2');
      const seen: string[] = [];
      const { agent } = rig({ options: { loadConfig: () => config(changed), onReload: (next) => void seen.push(`${next.agent.adminGroup} ${next.agent.slurmdUser}`) } });
      await agent.start();
      const result = await agent.reload();
      expect(result.warnings).to.deep.equal([
        '/etc/slurm-krsi/krsi.ini: [agent] pin_dir: changed, takes effect when the agent restarts',
        '/etc/slurm-krsi/krsi.ini: [agent] events_window: changed, takes effect when the agent restarts',
      ]);
      expect(seen, 'admin_group and slurmd_user reach the access rules (main.ts resolves them in onReload)').to.deep.equal(['hpcadmin slurm2']);
      expect(existsSync(eventLog), 'the event log is reopened at its new path').to.equal(true);
      await agent.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('KrsiAgent: reconciliation with Slurm', () => {
  it('a ghost (registered, never run by Slurm) goes once past the grace with PrologFlags=Contain, with a log line and a count', async () => {
    const { agent, kernel, clock, log, slurm } = rig();
    await agent.start();
    await agent.addJob(STRICT);
    clock.advance(299);
    await agent.reconcile();
    expect(agent.getJob('100'), 'within the grace').to.not.equal(null);
    clock.advance(2);
    await agent.reconcile();
    expect(agent.getJob('100')).to.equal(null);
    expect(kernel.policies.has(1000)).to.equal(false);
    expect(agent.reconciledCount('not_running')).to.equal(1);
    expect(log.lines.filter((l) => /job removed: Slurm does not run it on this node" job=100 uid=1000 /.test(l))).to.have.length(1);
    expect(slurm.asked, 'slurmctld is never asked about a job of this boot').to.deep.equal([]);
  });

  it('a job Slurm runs is kept, however old', async () => {
    const { agent, slurm, clock } = rig();
    await agent.start();
    await agent.addJob(STRICT);
    slurm.jobs = { 100: { lifetimeStep: true } };
    clock.advance(86_400);
    await agent.reconcile();
    expect(agent.getJob('100')).to.not.equal(null);
  });

  it('Slurm\'s view unreadable: nothing is removed, status and the warning say so', async () => {
    const { agent, slurm, clock } = rig();
    await agent.start();
    await agent.addJob(STRICT);
    slurm.failWith = new Error('/usr/bin/scontrol listpids did not answer within 10000 ms');
    clock.advance(3600);
    await agent.reconcile();
    expect(agent.getJob('100')).to.not.equal(null);
    const st = agent.status();
    expect(st.reconcile).to.include({ slurmView: 'unreadable', problem: '/usr/bin/scontrol listpids did not answer within 10000 ms' });
    expect(st.warnings.some((w) => /Slurm's view of this node cannot be read/.test(w))).to.equal(true);
  });

  it('after a reboot, jobs of the earlier boot that Slurm does not run go at once; those it runs stay', async () => {
    const store = new MemoryStore();
    const before = rig({ store });
    await before.agent.start();
    await before.agent.addJob(STRICT);
    await before.agent.addJob({ job_id: '200', uid: 1001 });
    const clock = new FakeClock();
    clock.boot = 'boot-2';
    const after = rig({ store, clock });
    after.slurm.jobs = { 200: { lifetimeStep: true } };
    await after.agent.start();
    await after.agent.reconcile();
    expect(after.agent.listJobs().map((j) => j.jobId)).to.deep.equal(['200']);
    expect(after.kernel.policies.has(1000)).to.equal(false);
    expect(after.agent.reconciledCount('earlier_boot')).to.equal(1);
    expect(after.slurm.asked, 'slurmctld asked about the job the node does not show, and only that one').to.deep.equal(['100']);
  });

  /** a job of boot 1 (job 100, uid 1000, strict, registered for node n1) and the agent of boot 2 that finds it, not started yet */
  async function rebooted(node: string | null = 'n1'): Promise<ReturnType<typeof rig> & { clock: FakeClock }> {
    const store = new MemoryStore();
    const before = rig({ store });
    await before.agent.start();
    await before.agent.addJob({ ...STRICT, ...(node === null ? {} : { node }) });
    const clock = new FakeClock();
    clock.boot = 'boot-2';
    return { ...rig({ store, clock }), clock };
  }

  it('after a reboot slurmctld missed, a job it still holds is kept under its policy, asked about again, and removed once slurmctld ends it', async () => {
    const { agent, slurm, kernel, log } = await rebooted();
    slurm.controller = { 100: { known: true, state: 'RUNNING', live: true, nodes: ['n0', 'n1'] } };
    await agent.start();
    await agent.reconcile();
    expect(agent.getJob('100'), 'kept: a later step of its allocation would run here without a prolog').to.not.equal(null);
    expect(kernel.mode(1000, 'suidexec')).to.equal('enforce');
    expect(agent.status().reconcile).to.deep.include({ unverified: ['100'], controllerProblem: null });
    expect(log.lines.filter((l) => /job of an earlier boot kept: slurmctld still holds it .* job=100 uid=1000 .*slurmctld=RUNNING/.test(l)), 'said once').to.have.length(1);
    slurm.controller = { 100: { known: true, state: 'NODE_FAIL', live: false, nodes: [] } };
    await agent.reconcile();
    expect(agent.getJob('100')).to.equal(null);
    expect(kernel.policies.has(1000)).to.equal(false);
    expect(agent.reconciledCount('earlier_boot')).to.equal(1);
    expect(log.lines.filter((l) => /job removed: Slurm does not run it on this node" job=100 .*slurmctld=NODE_FAIL/.test(l))).to.have.length(1);
  });

  it('after a reboot, a job slurmctld requeued (pending) or does not know goes at once; its requeued run registers anew through its prolog', async () => {
    const { agent, slurm, log } = await rebooted();
    slurm.controller = { 100: { known: true, state: 'PENDING', live: false, nodes: [] } };
    await agent.start();
    await agent.reconcile();
    expect(agent.getJob('100')).to.equal(null);
    expect(log.lines.some((l) => /job removed: .* job=100 .*slurmctld=PENDING/.test(l))).to.equal(true);
  });

  it('after a reboot, a requeued run slurmctld runs on other nodes ends the registration of the earlier boot here; one that did not say its node is kept while the job runs anywhere', async () => {
    const elsewhere = await rebooted('n1');
    elsewhere.slurm.controller = { 100: { known: true, state: 'RUNNING', live: true, nodes: ['n7'] } };
    await elsewhere.agent.start();
    await elsewhere.agent.reconcile();
    expect(elsewhere.agent.getJob('100')).to.equal(null);
    expect(elsewhere.kernel.policies.has(1000)).to.equal(false);
    expect(elsewhere.log.lines.some((l) => /job removed: .* job=100 .*slurmctld="RUNNING on n7"/.test(l)), elsewhere.log.lines.join('\n')).to.equal(true);
    const unreadable = await rebooted('n1');
    unreadable.slurm.controller = { 100: { known: true, state: 'unreadable (a field set by the user repeats JobState= or NodeList=)', live: true, nodes: null } };
    await unreadable.agent.start();
    await unreadable.agent.reconcile();
    expect(unreadable.agent.getJob('100'), 'an answer the user\'s own fields make unreadable keeps the job').to.not.equal(null);
    const unsaid = await rebooted(null);
    unsaid.slurm.controller = { 100: { known: true, state: 'RUNNING', live: true, nodes: ['n7'] } };
    await unsaid.agent.start();
    await unsaid.agent.reconcile();
    expect(unsaid.agent.getJob('100'), 'no node on record: the safe side').to.not.equal(null);
  });

  it('after a reboot, slurmctld unreachable: the jobs of the earlier boot are kept and status says why; they go once it answers', async () => {
    const { agent, slurm, kernel, log } = await rebooted();
    slurm.controllerFailWith = new Error('scontrol -o show job 100 failed: slurm_load_jobs error: Unable to contact slurm controller (connect failure)');
    await agent.start();
    await agent.reconcile();
    await agent.reconcile();
    expect(agent.getJob('100')).to.not.equal(null);
    expect(kernel.mode(1000, 'suidexec')).to.equal('enforce');
    const st = agent.status();
    expect(st.reconcile).to.deep.include({ slurmView: 'ok', unverified: ['100'], controllerProblem: slurm.controllerFailWith.message });
    expect(st.warnings.some((w) => /^slurmctld cannot be asked about the jobs of an earlier boot, they are kept: scontrol -o show job 100 failed/.test(w))).to.equal(true);
    expect(log.lines.filter((l) => /cannot ask slurmctld about the jobs of an earlier boot: they are kept/.test(l)), 'said once, not at every reconciliation').to.have.length(1);
    slurm.controllerFailWith = null;
    await agent.reconcile();
    expect(agent.getJob('100')).to.equal(null);
    expect(agent.status().reconcile.controllerProblem).to.equal(null);
    expect(log.lines.some((l) => /slurmctld answers again about the jobs of an earlier boot/.test(l))).to.equal(true);
  });

  it('after a reboot with ReturnToService=2, jobs of the earlier boot are kept and listed (their allocation may live on); the epilog removes them', async () => {
    const store = new MemoryStore();
    const before = rig({ store });
    await before.agent.start();
    await before.agent.addJob(STRICT);
    const clock = new FakeClock();
    clock.boot = 'boot-2';
    const after = rig({ store, clock });
    after.slurm.rebootEndsJobs = false;
    await after.agent.start();
    clock.advance(86_400);
    await after.agent.reconcile();
    expect(after.agent.getJob('100'), 'kept, PrologFlags=Contain or not').to.not.equal(null);
    expect(after.kernel.mode(1000, 'suidexec')).to.equal('enforce');
    expect(after.agent.status().reconcile).to.deep.include({ rebootEndsJobs: false, unverified: ['100'] });
    expect(after.agent.status().warnings.some((w) => /ReturnToService=2\): 100$/.test(w))).to.equal(true);
    expect(after.slurm.asked, 'slurmctld is not asked: it keeps such allocations by design').to.deep.equal([]);
    await after.agent.removeJob('100'); // slurmctld ends the allocation: the epilog runs on every node of it
    expect(after.kernel.policies.has(1000)).to.equal(false);
  });

  it('a prolog after a reboot for a job id the table holds from the earlier boot (a requeued job run here again) is a new registration of this boot', async () => {
    const store = new MemoryStore();
    const before = rig({ store });
    await before.agent.start();
    const old = await before.agent.addJob(STRICT);
    const clock = new FakeClock();
    clock.boot = 'boot-2';
    const after = rig({ store, clock });
    after.slurm.failWith = new Error('scontrol listpids: slurmd not up yet'); // the start's reconciliation removed nothing
    after.slurm.allocationsVisible = false;
    await after.agent.start();
    await after.agent.reconcile();
    const rerun = await after.agent.addJob(STRICT); // same id, uid and profile
    expect(rerun.created).to.equal(true);
    expect(rerun.job).to.deep.include({ bootId: 'boot-2' });
    expect(rerun.job.registration).to.not.equal(old.job.registration);
    after.slurm.failWith = null; // no step yet: without Contain, nothing on the node shows the job
    clock.advance(3600);
    await after.agent.reconcile();
    expect(after.agent.getJob('100')?.registration, 'the rerun is not taken for a job of the earlier boot').to.equal(rerun.job.registration);
    expect(after.kernel.mode(1000, 'suidexec')).to.equal('enforce');
  });

  it('a record of the first table format (no boot id) counts as of this boot: never removed at once for its boot', async () => {
    const store = new MemoryStore();
    const { agent, slurm, clock } = rig({ store });
    await agent.start();
    await agent.addJob(STRICT);
    store.saved = store.saved.map((j) => ({ ...j, bootId: null }));
    const after = rig({ store, slurm, clock });
    slurm.allocationsVisible = false;
    await after.agent.start();
    await after.agent.reconcile();
    expect(after.agent.getJob('100'), 'kept: it may be an salloc allocation of this boot').to.not.equal(null);
  });

  it('without PrologFlags=Contain a job never seen is kept and listed (it may be an salloc between steps); one whose batch step was seen and is gone is removed', async () => {
    const { agent, slurm, clock } = rig();
    slurm.allocationsVisible = false;
    await agent.start();
    await agent.addJob(STRICT);
    await agent.addJob({ job_id: '101', uid: 1001 });
    slurm.jobs = { 101: { lifetimeStep: true } };
    clock.advance(60);
    await agent.reconcile();
    slurm.jobs = {};
    clock.advance(600);
    await agent.reconcile();
    expect(agent.listJobs().map((j) => j.jobId)).to.deep.equal(['100']);
    expect(agent.reconciledCount('ended')).to.equal(1);
    expect(agent.status().reconcile.unverified).to.deep.equal(['100']);
    expect(agent.status().warnings.some((w) => /without PrologFlags=Contain, .*: 100$/.test(w))).to.equal(true);
  });

  it('a registration made while the view was being read is not taken for a ghost, even with no grace', async () => {
    const { agent, slurm, clock } = rig({ options: { config: config(CONFIG_TEXT.replace('reconcile_grace = 300', 'reconcile_grace = 0')) } });
    await agent.start();
    slurm.during = async () => {
      clock.advance(1);
      await agent.addJob(STRICT);
    };
    await agent.reconcile();
    expect(agent.getJob('100')).to.not.equal(null);
  });
});
