/**
 * Slurm end to end, inside the VM: Debian's munge, slurmctld and slurmd (22.05) on one node, slurm-krsi
 * installed by deploy/install.sh, the installed agent started as the unit would start it, and jobs
 * submitted as real users. What each job's processes could or could not do is read from the jobs' own
 * output; what was decided is read from the agent's event log.
 */
import { expect } from 'chai';
import { chownSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { Enforcer } from '../../agent/enforcement/enforcer.js';
import { NOTICE_DIR } from '../../agent/slurm/notice.js';
import { NodeSlurmView, stepdScopes } from '../../agent/slurm/view.js';
import {
  HOLD, WORK, asUser, jobInfo, nodeInfo, resumeNode, runningArrayTasks, saveLogs, sbatch, releaseJob, sbatchRaw, slurmLogGrep, startCluster, stopCluster, until,
  waitJobEnded, waitJobRunning, type Cluster,
} from '../slurm/cluster.js';
import {
  AGENT_LOG, ATTACKS, CONFIG, EPILOG, EVENT_LOG, JOBS, KRSICTL, NOTES, PERJOB, PIN_DIR, PROLOG, agentHistory, agentJobs, agentPid, attacksExport, attempts, ensureUser, goWhenBound,
  installOnNode, jobEvents, namesOnly, shutdownAgent, startAgent, startSshd, stopAgent, stopSshd, tail, TASK_PROLOG, uidsUnderPolicy,
} from '../slurm/node.js';
import { scaled } from '../vm/pace.js';
import { OTHER, PROBE, ROOT, USER, evidence, probe, suidExec } from './fixture.js';

const LUA = join(ROOT, 'slurm/job_submit.lua');
/** the first subordinate uid of a user namespace mapped as newuidmap maps it: no policy of its own */
const SUBUID = 100000;

let cluster: Cluster;
let originalConfig = '';

function setOnError(value: 'fail' | 'allow'): void {
  const lines = originalConfig.split('\n').filter((l) => !/^\s*on_error\s*=/.test(l));
  const at = lines.findIndex((l) => l.trim() === '[agent]');
  lines.splice(at + 1, 0, `on_error = ${value}`);
  writeFileSync(CONFIG, lines.join('\n'));
}

describe('Slurm end to end', function () {
  this.timeout(scaled(300_000));

  before(async function () {
    this.timeout(scaled(600_000));
    const installSeconds = await installOnNode();
    originalConfig = readFileSync(CONFIG, 'utf8');
    console.log(`      install.sh: ${installSeconds.toFixed(1)} s`);

    // the attack jobs' ssh -D goes through a real sshd, logging in with each user's own key
    await ensureUser('krsiuser', USER);
    await ensureUser('krsiother', OTHER);
    await startSshd();
    cluster = await startCluster({
      prolog: PROLOG,
      epilog: EPILOG,
      extraConf: [`TaskProlog=${TASK_PROLOG}`],
      jobSubmitLua: LUA,
      users: { [USER]: 'krsiuser', [OTHER]: 'krsiother' },
    });
    console.log(`      cluster up in ${cluster.seconds.toFixed(1)} s on node ${cluster.node}; users ${JSON.stringify(cluster.users)}`);

    Enforcer.removePinned(PIN_DIR);
    const t1 = Date.now();
    await startAgent();
    const st = await execa(KRSICTL, ['status'], { reject: false });
    if (st.exitCode !== 0) throw new Error(`krsictl status exited ${st.exitCode}: ${st.stderr}`);
    console.log(`      agent ready in ${((Date.now() - t1) / 1000).toFixed(1)} s (krsictl status exit 0)`);
  });

  after(async function () {
    this.timeout(scaled(120_000));
    if (originalConfig) writeFileSync(CONFIG, originalConfig);
    if (process.env.KRSI_RESULTS_DIR) saveLogs(join(process.env.KRSI_RESULTS_DIR, 'slurm'), [AGENT_LOG, EVENT_LOG, CONFIG]);
    await stopCluster();
    await stopSshd();
    await shutdownAgent();
    Enforcer.removePinned(PIN_DIR);
  });

  it('a strict job of uid 1000: each of the paper\'s attacks and its variants is denied and logged with the job id; a job of uid 1001 without a policy is not stopped; after the job uid 1000 is free', async () => {
    const exportArg = attacksExport(agentPid()!);
    const strict = await sbatch(USER, ATTACKS, ['--comment=policy:strict', '-J', 'attacks-strict', `--output=${WORK}/out-%j.txt`, exportArg]);
    const plain = await sbatch(OTHER, ATTACKS, ['-J', 'attacks-plain', `--output=${WORK}/out-%j.txt`, exportArg]);
    const [si, pi] = await Promise.all([waitJobEnded(strict, 240_000), waitJobEnded(plain, 240_000)]);
    const strictOut = readFileSync(join(WORK, `out-${strict}.txt`), 'utf8');
    const plainOut = readFileSync(join(WORK, `out-${plain}.txt`), 'utf8');
    evidence(`job ${strict} (uid ${USER}, --comment=policy:strict) ${si.JobState} ExitCode=${si.ExitCode}`, strictOut);
    evidence(`job ${plain} (uid ${OTHER}, no comment) ${pi.JobState} ExitCode=${pi.ExitCode}`, plainOut);
    expect(strictOut).to.match(/^DONE$/m);
    expect(plainOut).to.match(/^DONE$/m);
    // the TaskProlog's one line, first in each job's output: the profiles and why
    const notices = (out: string) => out.split('\n').filter((l) => l.startsWith('slurm-krsi: '));
    expect(notices(strictOut)).to.deep.equal([`slurm-krsi: job ${strict} runs under profiles default + strict on ${cluster.node}: its comment asks for policy:strict`]);
    expect(strictOut.split('\n')[0]).to.equal(notices(strictOut)[0]);
    expect(notices(plainOut)).to.deep.equal([`slurm-krsi: job ${plain} runs under profile default on ${cluster.node}: the floor every job gets (its comment names no policy)`]);
    await until('the epilogs removed the jobs\' notices', async () => !existsSync(join(NOTICE_DIR, strict)) && !existsSync(join(NOTICE_DIR, plain)));

    const s = attempts(strictOut);
    const p = attempts(plainOut);
    const EPERM = /Operation not permitted|ERR EPERM/;
    const FILES = ['chmod_suid', 'chmod_sgid', 'chmod_o+w', 'umask_touch', 'umask_mkdir', 'acl_other_write'];
    const SSH = ['ssh_dynamic_forward', 'ssh_renamed_symlink', 'ssh_comm_listen'];
    const NETS = ['tcp_connect', 'udp_connect', 'tcp6_connect', 'v4mapped_connect', 'udp_sendto', 'udp_sendto_unspec', 'nat64_connect', 'routing_header'];
    for (const name of [...FILES, 'suid_exec', ...SSH, ...NETS, 'kill_agent']) {
      expect(s[name], `uid ${USER} ${name}`).to.match(EPERM);
      expect(s[name], `uid ${USER} ${name}`).to.not.match(/^rc=0 /);
    }
    expect(s.suid_allowlisted, 'passwd is allowlisted').to.match(/^rc=0 /);
    expect(s.loopback_connect, 'loopback is not a denied destination').to.match(/^rc=0 connected/);

    // the same attempts by uid 1001 reach the kernel and succeed: the denials above are the policy's
    for (const name of [...FILES, 'suid_exec', 'suid_allowlisted', ...SSH]) {
      expect(p[name], `uid ${OTHER} ${name}`).to.match(/^rc=0 /);
    }
    expect(p.ssh_dynamic_forward, 'the real proxy came up').to.match(/proxy was up/);
    for (const name of NETS) {
      expect(p[name], `uid ${OTHER} ${name}`).to.match(/Network is unreachable|ENETUNREACH/);
      expect(p[name], `uid ${OTHER} ${name}`).to.not.match(EPERM);
    }
    expect(p.loopback_connect).to.match(/^rc=0 connected/);
    // a user may never signal root's agent: the kernel's ordinary permission check answers before any LSM
    expect(p.kill_agent).to.match(EPERM);

    const expected: [string, RegExp, number][] = [
      ['chmod u+s, g+s, o+w', /type=chmod policy=fileperms comm=chmod uid=1000 .*act=deny/, 3],
      ['umask 0000 touch', /type=creat policy=fileperms comm=touch uid=1000 .*act=deny/, 1],
      ['umask 0000 mkdir', /type=mkdir policy=fileperms comm=mkdir uid=1000 .*act=deny/, 1],
      ['ACL granting other write', /type=setacl policy=fileperms comm=setfacl uid=1000 .*act=deny/, 1],
      ['set-uid exec', /type=exsuid policy=suidexec .*uid=1000 .*act=deny/, 1],
      ['ssh listeners (ssh, vim, comm ssh)', /type=listen policy=sshlisteners .*uid=1000 .*act=deny/, 3],
      ['connects to denied networks', /type=skconn policy=skconnections .*uid=1000 .*act=deny/, 4],
      ['unconnected sendto', /type=sksend policy=skconnections .*uid=1000 .*act=deny/, 1],
    ];
    const strictEvents = await jobEvents(strict, /type=sksend/, 1);
    evidence(`event log lines with job=${strict}`, strictEvents.join('\n'));
    for (const [what, re, n] of expected) {
      expect(strictEvents.filter((l) => re.test(l)), `${what} logged with job=${strict}`).to.have.length.of.at.least(n);
    }
    expect(strictEvents.filter((l) => /act=deny/.test(l) && /type=sk(conn|send)/.test(l)).map((l) => /daddr=(\S+)/.exec(l)?.[1]))
      .to.include.members(['192.0.2.10', '192.0.2.53', '2001:db8::10', '::ffff:192.0.2.10']);
    expect(strictEvents.filter((l) => /type=listen/.test(l)).map((l) => /comm=(\S+)/.exec(l)?.[1])).to.include.members(['ssh', 'vim']);
    // killtasks: the agent's own protection is not reached by a user's kill (DAC said no first): no event
    const kills = strictEvents.filter((l) => /type=sgkill/.test(l));
    console.log(`      kill -9 of the agent by uid ${USER}: ${kills.length} sgkill event(s) (the DAC check precedes the LSM hook)`);

    // uid 1001 ran under the floor only: fileperms audit, nothing else
    const plainEvents = await jobEvents(plain, /type=mkdir/); // the last audited attempt
    evidence(`event log lines with job=${plain}`, plainEvents.join('\n'));
    // u+s, g+s, o+w (the ACL then grants nothing new: the file is already o+w)
    expect(plainEvents.filter((l) => /type=chmod policy=fileperms comm=chmod uid=1001 .*act=audit/.test(l))).to.have.length(3);
    expect(plainEvents.filter((l) => /act=deny/.test(l))).to.deep.equal([]);
    expect(plainEvents.filter((l) => /policy=(suidexec|sshlisteners|skconnections)/.test(l))).to.deep.equal([]);

    // after both epilogs: nobody under policy, and uid 1000 can do it again
    expect(await uidsUnderPolicy()).to.not.include.members([USER, OTHER]);
    expect((await agentJobs()).map((j) => j.jobId)).to.not.include.members([strict, plain]);
    expect(await suidExec(USER)).to.equal('ran');
    expect((await asUser(USER, '/bin/sh', ['-c', `umask 0000 && touch ${WORK}/free-${USER} && chmod u+s ${WORK}/free-${USER} && echo ok`])).stdout).to.equal('ok');
    const ctl = await execa(KRSICTL, ['status'], { reject: false });
    evidence('krsictl status after the jobs', String(ctl.stdout));
  });

  it('two concurrent jobs of one uid (strict, default): the union holds until the strict one ends; a comment changed mid-job changes nothing', async () => {
    const a = await sbatch(USER, HOLD, ['--comment=policy:strict', '-J', 'hold-strict', `--output=${WORK}/out-%j.txt`]);
    const b = await sbatch(USER, HOLD, ['--comment=policy:default', '-J', 'hold-default', `--output=${WORK}/out-%j.txt`]);
    await Promise.all([waitJobRunning(a), waitJobRunning(b)]);
    await until(`the agent has jobs ${a} and ${b}`, async () => (await agentJobs()).filter((j) => j.jobId === a || j.jobId === b).length === 2);
    expect(await suidExec(USER), 'union of strict and default').to.equal('denied');

    // the user rewrites the strict job's comment while it runs
    const upd = await asUser(USER, 'scontrol', ['update', `JobId=${a}`, 'Comment=policy:default']);
    expect(upd.exitCode, upd.stderr).to.equal(0);
    expect((await jobInfo(a)).Comment).to.equal('policy:default');
    const rec = (await agentJobs()).find((j) => j.jobId === a)!;
    expect(rec).to.deep.include({ requested: 'strict', profiles: ['default', 'strict'] });
    expect(await suidExec(USER), 'still strict after the comment change').to.equal('denied');

    releaseJob(a);
    await waitJobEnded(a);
    expect((await agentJobs()).map((j) => j.jobId)).to.deep.equal([b]);
    expect(await uidsUnderPolicy()).to.include(USER);
    expect(await suidExec(USER), 'only the default profile left').to.equal('ran');
    expect(await probe(USER, 'create', join(WORK, `floor-${a}`), '0666', '0'), 'floor: fileperms audit').to.equal('OK');
    expect(await jobEvents(b, /type=creat .*act=audit/)).to.satisfy((ls: string[]) => ls.some((l) => /type=creat .*uid=1000 .*act=audit/.test(l)));

    releaseJob(b);
    await waitJobEnded(b);
    expect(await uidsUnderPolicy()).to.not.include(USER);
  });

  it('per job: a strict and a default job of one uid side by side, each judged by its own profile in its batch step, an srun step and a user namespace with a subordinate uid; the uid union outside them', async () => {
    const exportArg = attacksExport(agentPid()!);
    const strict = await sbatch(USER, PERJOB, ['--comment=policy:strict', '-J', 'perjob-strict', `--output=${WORK}/out-%j.txt`, exportArg]);
    const plain = await sbatch(USER, PERJOB, ['--comment=policy:default', '-J', 'perjob-default', `--output=${WORK}/out-%j.txt`, exportArg]);
    const both = [strict, plain];
    await Promise.all(both.map((id) => waitJobRunning(id)));
    await goWhenBound(both);
    const ctlJobs = await execa(KRSICTL, ['jobs'], { reject: false });
    evidence('krsictl jobs (both bound)', String(ctlJobs.stdout));
    expect(String(ctlJobs.stdout)).to.match(new RegExp(`^${strict} .*bound \\(cgroup \\d+\\)$`, 'm'));
    // outside every job cgroup, uid 1000 is held to the union of its jobs: the strict job's suidexec
    expect(await suidExec(USER), 'the uid union outside the jobs').to.equal('denied');

    // each job's user namespaces: mapped as newuidmap and newgidmap map them (0 -> 1000, 1.. -> 100000..)
    await Promise.all(both.map(async (id) => {
      const dir = join(WORK, `job-${id}`);
      for (const attempt of ['chmod', 'connect']) {
        const pidFile = join(dir, `userns-${attempt}.pid`);
        await until(`job ${id}'s user namespace (${attempt}) waiting for its map`, () => existsSync(pidFile), 120_000);
        const pid = readFileSync(pidFile, 'utf8').trim();
        for (const map of ['uid_map', 'gid_map']) writeFileSync(`/proc/${pid}/${map}`, `0 ${USER} 1\n1 ${SUBUID} 65536\n`);
        if (attempt === 'chmod') await execa('install', ['-m', '0644', '-o', String(SUBUID), '-g', String(SUBUID), '/dev/null', join(dir, 'ns-file')]);
        writeFileSync(join(dir, `userns-${attempt}.ready`), '');
      }
    }));
    const [si, pi] = await Promise.all(both.map((id) => waitJobEnded(id, 240_000)));
    const strictOut = readFileSync(join(WORK, `out-${strict}.txt`), 'utf8');
    const plainOut = readFileSync(join(WORK, `out-${plain}.txt`), 'utf8');
    evidence(`job ${strict} (uid ${USER}, policy:strict) ${si!.JobState}`, strictOut);
    evidence(`job ${plain} (uid ${USER}, policy:default) ${pi!.JobState}`, plainOut);
    expect(strictOut).to.match(/^DONE$/m);
    expect(plainOut).to.match(/^DONE$/m);
    const s = attempts(strictOut);
    const p = attempts(plainOut);
    const EPERM = /Operation not permitted|ERR EPERM/;
    // the subordinate uid in the strict job (userns_*) is still the strict job's task
    const ATTEMPTS = ['chmod_suid', 'step_chmod_suid', 'userns_chmod_suid', 'connect_denied', 'step_connect_denied', 'userns_connect_denied'];
    for (const name of ATTEMPTS) expect(s[name], `strict ${name}`).to.match(EPERM);
    // ... from the kernel, not from a namespace that could not be set up (krsi-probe exits 2 then)
    for (const name of ['userns_chmod_suid', 'userns_connect_denied']) expect(s[name], `strict ${name}`).to.match(/^rc=1 ERR EPERM$/);
    // the default job: fileperms audit only, so the same actions go through (the network has no route)
    for (const name of ATTEMPTS.filter((n) => n.includes('chmod'))) expect(p[name], `default ${name}`).to.match(/^rc=0 /);
    for (const name of ATTEMPTS.filter((n) => n.includes('connect'))) expect(p[name], `default ${name}`).to.match(/ERR ENETUNREACH/);
    expect(statSync(join(WORK, `job-${plain}`, 'ns-file')).mode & 0o7777, 'the default job\'s subordinate uid made its file set-uid').to.equal(0o4755);

    // each event names its own job only: the strict job's denials and the default job's audits, by uid
    // 1000 and by the subordinate uid 100000
    const strictEvents = await jobEvents(strict, new RegExp(`type=skconn .*uid=${SUBUID} .*act=deny`));
    const plainEvents = await jobEvents(plain, new RegExp(`type=chmod .*uid=${SUBUID} .*act=audit`));
    evidence(`event log lines naming job ${strict}`, strictEvents.join('\n'));
    evidence(`event log lines naming job ${plain}`, plainEvents.join('\n'));
    // the set-uid exec tried outside both jobs above is the uid's: its event names both jobs
    const ofBoth = (l: string) => new RegExp(`job=(?:${strict},${plain}|${plain},${strict})(?: |$)`).test(l);
    expect(strictEvents.filter(ofBoth).filter((l) => /type=exsuid .*act=deny/.test(l)), 'the exec outside the jobs').to.have.length(1);
    const own = (lines: string[]) => lines.filter((l) => !ofBoth(l));
    for (const line of [...own(strictEvents), ...own(plainEvents)]) expect(line, 'one job per event').to.match(/ job=\d+(?: |$)/);
    const count = (lines: string[], re: RegExp) => own(lines).filter((l) => re.test(l)).length;
    expect(count(strictEvents, /type=chmod .*uid=1000 .*act=deny/), 'strict chmod u+s, batch and srun step').to.equal(2);
    expect(count(strictEvents, /type=skconn .*uid=1000 .*act=deny/), 'strict connects, batch and srun step').to.equal(2);
    expect(count(strictEvents, new RegExp(`type=chmod .*uid=${SUBUID} .*act=deny`)), 'strict chmod u+s by the subordinate uid').to.equal(1);
    expect(count(strictEvents, new RegExp(`type=skconn .*uid=${SUBUID} .*act=deny`)), 'strict connect by the subordinate uid').to.equal(1);
    expect(count(strictEvents, /act=audit/)).to.equal(0);
    expect(count(plainEvents, /type=chmod .*uid=1000 .*act=audit/), 'default chmod u+s, batch and srun step').to.equal(2);
    expect(count(plainEvents, new RegExp(`type=chmod .*uid=${SUBUID} .*act=audit`)), 'default chmod u+s by the subordinate uid').to.equal(1);
    expect(count(plainEvents, /act=deny|policy=skconnections/)).to.equal(0);

    // the order of events on this node (PrologFlags=Alloc,Contain): registration and binding, from the agent's log
    const agentLines = readFileSync(AGENT_LOG, 'utf8').split('\n').filter((l) => both.some((id) => new RegExp(`job[=:"]+${id}\\b`).test(l)) && /job added|bound|unbound|job removed/.test(l));
    evidence('agent log: registration, binding, unbinding, removal', agentLines.join('\n'));
    expect(await uidsUnderPolicy()).to.not.include(USER);
  });

  it('salloc without srun: with PrologFlags=Alloc the prolog registers the allocation while it lives, the epilog ends it', async () => {
    const r = await asUser(USER, 'salloc', ['--no-shell', '--comment=policy:strict', '-J', 'salloc-nosrun', '--ntasks=1']);
    const id = /Granted job allocation (\d+)/.exec(r.stderr)?.[1];
    expect(id, `salloc: ${r.stderr}`).to.be.a('string');
    await until(`the agent has allocation ${id}`, async () => (await agentJobs()).some((j) => j.jobId === id && j.requested === 'strict'));
    expect(await suidExec(USER)).to.equal('denied');
    expect((await jobInfo(id!)).JobState).to.equal('RUNNING');
    const c = await asUser(USER, 'scancel', [id!]);
    expect(c.exitCode, c.stderr).to.equal(0);
    await waitJobEnded(id!);
    await until('the allocation is gone from the agent', async () => !(await agentJobs()).some((j) => j.jobId === id));
    expect(await uidsUnderPolicy()).to.not.include(USER);
    expect(await suidExec(USER)).to.equal('ran');
  });

  it('slurmctld asked about one job, as the agent asks about a job of an earlier boot after a reboot: a running job is live on this node (the node its prolog registered), an ended one is not, an id it never had is unknown', async () => {
    const view = new NodeSlurmView();
    const id = await sbatch(USER, HOLD, ['-J', 'ask-slurmctld', `--output=${WORK}/out-%j.txt`]);
    await waitJobRunning(id);
    await until(`the agent has job ${id}`, async () => (await agentJobs()).some((j) => j.jobId === id));
    expect((await agentJobs()).find((j) => j.jobId === id)?.node, 'the prolog registered its node (SLURMD_NODENAME)').to.equal(cluster.node);
    expect(await view.controllerJob(id)).to.deep.equal({ known: true, state: 'RUNNING', live: true, nodes: [cluster.node] });
    releaseJob(id);
    await waitJobEnded(id);
    expect(await view.controllerJob(id)).to.deep.equal({ known: true, state: 'COMPLETED', live: false, nodes: [] });
    expect(await view.controllerJob('4000000')).to.deep.equal({ known: false });
    // the attacker's way: a job name that forges the state and the nodes on scontrol's one line
    const forged = await sbatch(USER, HOLD, ['-J', 'x JobState=COMPLETED NodeList=elsewhere', `--output=${WORK}/out-%j.txt`]);
    await waitJobRunning(forged);
    expect(await view.controllerJob(forged), 'a forged job name is not taken for the state').to.deep.include({ known: true, live: true, nodes: null });
    releaseJob(forged);
    await waitJobEnded(forged);
  });

  it('an unknown or malformed policy is rejected at submission by job_submit.lua, listing the valid ones', async () => {
    const unknown = await sbatchRaw(USER, HOLD, ['--comment=policy:nosuch', `--output=${WORK}/out-%j.txt`]);
    evidence('sbatch --comment=policy:nosuch', `exit ${unknown.exitCode}\n${unknown.stderr}`);
    expect(unknown.exitCode).to.not.equal(0);
    expect(unknown.stderr).to.match(/unknown policy "nosuch".*Valid policies: default, strict/);
    const malformed = await sbatchRaw(USER, HOLD, ['--comment=run 3 policy:', `--output=${WORK}/out-%j.txt`]);
    expect(malformed.exitCode).to.not.equal(0);
    expect(malformed.stderr).to.match(/malformed policy name/);
    const fine = await sbatchRaw(USER, HOLD, ['--comment=run 3 policy:strict', '--hold']);
    expect(fine.exitCode, fine.stderr).to.equal(0);
    await asUser(USER, 'scancel', [fine.stdout.trim()]);
  });

  it('the agent down: the epilog leaves a note; on_error = fail drains the node naming slurm-krsi and requeues held; allow runs the job; the agent back frees the uid', async function () {
    this.timeout(scaled(480_000));
    const j1 = await sbatch(USER, HOLD, ['--comment=policy:strict', '-J', 'down-epilog', `--output=${WORK}/out-%j.txt`]);
    await waitJobRunning(j1);
    await until(`the agent has job ${j1}`, async () => (await agentJobs()).some((j) => j.jobId === j1));

    const deniedExecs = () => (existsSync(EVENT_LOG) ? readFileSync(EVENT_LOG, 'utf8') : '').split('\n')
      .filter((l) => /type=exsuid policy=suidexec comm=krsi-probe uid=1000 .*act=deny/.test(l)).length;
    await stopAgent('SIGKILL');
    const deniedBefore = deniedExecs();
    expect(await suidExec(USER), 'enforcement holds while the agent is down').to.equal('denied');

    // the epilog with the agent down: succeeds (the node is not drained), notes the removal
    releaseJob(j1);
    const e1 = await waitJobEnded(j1);
    expect(e1.JobState).to.equal('COMPLETED');
    const noteOf = (id: string) => (existsSync(NOTES) ? readdirSync(NOTES) : []).filter((n) => n.startsWith(`${id}@`));
    expect(noteOf(j1), `removal note of job ${j1} under ${NOTES}`).to.have.length(1);
    expect((await nodeInfo()).State).to.match(/^IDLE/);
    expect(await suidExec(USER), 'still restricted until the agent applies the note').to.equal('denied');

    // on_error = fail (the sample's default): the prolog fails, the node drains, the job is requeued held
    const j2 = await sbatch(OTHER, HOLD, ['--comment=policy:strict', '-J', 'down-fail', `--output=${WORK}/out-%j.txt`]);
    await until(`node drained after job ${j2}'s prolog`, async () => /DRAIN/.test((await nodeInfo()).State ?? ''), 120_000);
    await until(`job ${j2} requeued held`, async () => {
      const i = await jobInfo(j2);
      return i.JobState === 'PENDING' && /held|Held/.test(i.Reason ?? '');
    }, 120_000);
    const node = await nodeInfo();
    const j2info = await jobInfo(j2);
    evidence('scontrol show node (agent down, on_error = fail)', `State=${node.State} Reason=${node.Reason}`);
    evidence(`scontrol show job ${j2}`, `JobState=${j2info.JobState} Reason=${j2info.Reason} Restarts=${j2info.Restarts}`);
    evidence('slurmctld log about the prolog', slurmLogGrep(/[Pp]rolog|drain/i, 'slurmctld').slice(-8).join('\n'));
    evidence('slurmd log about the prolog', slurmLogGrep(/[Pp]rolog|slurm-krsi/i, 'slurmd').slice(-8).join('\n'));
    expect(node.Reason, 'drain reason').to.match(/slurm-krsi/);
    await asUser(OTHER, 'scancel', [j2]);
    await waitJobEnded(j2);

    // on_error = allow: the job runs, not under policy
    setOnError('allow');
    await resumeNode();
    const j3 = await sbatch(OTHER, ATTACKS, ['--comment=policy:strict', '-J', 'down-allow', `--output=${WORK}/out-%j.txt`, attacksExport(1)]);
    const e3 = await waitJobEnded(j3);
    const out3 = readFileSync(join(WORK, `out-${j3}.txt`), 'utf8');
    evidence(`job ${j3} (uid ${OTHER}, policy:strict, agent down, on_error = allow) ${e3.JobState}`, out3);
    expect(e3.JobState).to.equal('COMPLETED');
    const a3 = attempts(out3);
    expect(a3.suid_exec).to.match(/^rc=0 /);
    expect(a3.tcp_connect).to.match(/Network is unreachable/);
    expect((await nodeInfo()).State).to.match(/^IDLE/);
    writeFileSync(CONFIG, originalConfig);

    // the agent returns: it applies the notes, uid 1000 is free
    await startAgent();
    await until('uid 1000 freed by the noted removal', async () => !(await uidsUnderPolicy()).includes(USER));
    expect(noteOf(j1)).to.deep.equal([]);
    expect((await agentJobs()).map((j) => j.jobId)).to.not.include(j1);
    expect(await suidExec(USER)).to.equal('ran');
    // the two denials made while the agent was down waited in the ring buffer and are logged now
    await until('denials made while the agent was down are logged', () => deniedExecs() >= deniedBefore + 2, 30_000);
    // ... with the job that was in the table when they were made: the backlog is read before the notes apply
    const downTime = (existsSync(EVENT_LOG) ? readFileSync(EVENT_LOG, 'utf8') : '').split('\n')
      .filter((l) => /type=exsuid policy=suidexec comm=krsi-probe uid=1000 .*act=deny/.test(l)).slice(deniedBefore, deniedBefore + 2);
    evidence('denials made while the agent was down', downTime.join('\n'));
    for (const line of downTime) expect(line).to.match(new RegExp(`\\bjob=${j1}(?: |$)`));
    evidence('agent log (tail)', tail(AGENT_LOG, 12));
  });

  /**
   * Slurm's job shapes on this node (PrologFlags=Alloc,Contain, proctrack/cgroup, cgroup/v2): what runs
   * where, and which profile judges it. The order of events each shows is in docs/POLICIES.md.
   */
  describe('job shapes', () => {
    const EPERM = /^rc=1 .*Operation not permitted/;
    const CHMOD_DENIED = /type=chmod policy=fileperms comm=chmod uid=1000 .*act=deny/;
    const CHMOD_AUDITED = /type=chmod policy=fileperms comm=chmod uid=1000 .*act=audit/;
    const LIFE = ['job added', 'job bound to its cgroup', 'job cgroup removed: unbound', 'job removed'];
    /**
     * the cgroup an attempt printed (test/slurm/jobs/try.sh chmod_in_cgroup: the kernel's view), its first
     * word that is a path; the TaskProlog's notice may come before it in a step's output
     */
    const cgroupIn = (attempt: string | undefined): string => /(?:^rc=\d+|\s)(\/\S*)/.exec(attempt ?? '')?.[1] ?? `(no cgroup in "${attempt}")`;
    /**
     * a task cgroup of a job's step: user/task_special where proctrack/cgroup put the step's processes
     * (TaskPlugin=task/none, as here), user/task_<n> where task/cgroup puts each task; the same depth
     */
    const taskOf = (jobId: string, step: string) => new RegExp(`_slurmstepd\\.scope/job_${jobId}/step_${step}/user/task_[^/]+$`);
    const outputOf = (file: string) => readFileSync(join(WORK, file), 'utf8');
    /** the agent's log: registered, bound, unbound when its cgroup went, removed by the epilog, in that order */
    const expectLifecycle = async (jobId: string): Promise<void> => {
      await until(`the agent's log of job ${jobId} to show its removal`, () => agentHistory(jobId).some((h) => h.msg === 'job removed'));
      const history = agentHistory(jobId).filter((h) => LIFE.includes(h.msg));
      evidence(`agent log of job ${jobId}`, history.map((h) => `${h.ts} ${h.msg}`).join('\n'));
      expect(history.map((h) => h.msg), `agent log of job ${jobId}`).to.deep.equal(LIFE);
    };

    it('steps of one job: an srun step while the batch step acts and a second one after it are each held to the job\'s profile, each event naming that job', async () => {
      const exportArg = attacksExport(agentPid()!);
      const strict = await sbatch(USER, join(JOBS, 'steps.sh'), ['--comment=policy:strict', '-J', 'steps-strict', `--output=${WORK}/out-%j.txt`, exportArg]);
      const plain = await sbatch(USER, join(JOBS, 'steps.sh'), ['--comment=policy:default', '-J', 'steps-default', `--output=${WORK}/out-%j.txt`, exportArg]);
      await goWhenBound([strict, plain]);
      const ends = await Promise.all([strict, plain].map((id) => waitJobEnded(id, 240_000)));
      const [strictOut, plainOut] = [outputOf(`out-${strict}.txt`), outputOf(`out-${plain}.txt`)];
      evidence(`job ${strict} (uid ${USER}, policy:strict) ${ends[0]!.JobState}`, strictOut);
      evidence(`job ${plain} (uid ${USER}, policy:default) ${ends[1]!.JobState}`, plainOut);
      const s = attempts(strictOut);
      const p = attempts(plainOut);
      // the batch step, srun step 0 (started before the batch step acted, ended after) and srun step 1
      for (const [id, a] of [[strict, s], [plain, p]] as const) {
        expect(cgroupIn(a.batch_chmod_suid), `job ${id} batch step`).to.match(taskOf(id, 'batch'));
        expect(cgroupIn(a.step0_chmod_suid), `job ${id} step 0`).to.match(taskOf(id, '0'));
        expect(cgroupIn(a.step1_chmod_suid), `job ${id} step 1`).to.match(taskOf(id, '1'));
      }
      for (const who of ['batch', 'step0', 'step1']) {
        expect(s[`${who}_chmod_suid`], `strict ${who}`).to.match(EPERM);
        expect(p[`${who}_chmod_suid`], `default ${who}`).to.match(/^rc=0 /);
      }
      // krsi-probe's answer, then srun's report of the task's exit status
      expect(s.step1_connect_denied).to.match(/^rc=1 ERR EPERM(?: |$)/);
      expect(p.step1_connect_denied).to.match(/^rc=1 ERR ENETUNREACH(?: |$)/);

      const strictEvents = await jobEvents(strict, /type=skconn .*act=deny/);
      const plainEvents = await jobEvents(plain, CHMOD_AUDITED, 3);
      evidence(`event log lines naming job ${strict}`, strictEvents.join('\n'));
      evidence(`event log lines naming job ${plain}`, plainEvents.join('\n'));
      // nothing here acted outside the jobs: every event names one job, its own
      for (const [id, lines] of [[strict, strictEvents], [plain, plainEvents]] as const) {
        for (const line of lines) expect(namesOnly(line, id), `one job per event: ${line}`).to.equal(true);
      }
      expect(strictEvents.filter((l) => CHMOD_DENIED.test(l)), 'strict: batch, step 0, step 1').to.have.length(3);
      expect(strictEvents.filter((l) => /type=skconn .*uid=1000 .*act=deny/.test(l))).to.have.length(1);
      expect(plainEvents.filter((l) => CHMOD_AUDITED.test(l)), 'default: batch, step 0, step 1').to.have.length(3);
      expect(plainEvents.filter((l) => /act=deny/.test(l))).to.deep.equal([]);
      for (const id of [strict, plain]) await expectLifecycle(id);
    });

    it('a job array beside a default job of the same uid: each array task is a job of its own (its job id, its job_<id> cgroup), bound and held to the array\'s profile; the epilogs unbind and remove each', async () => {
      const exportArg = attacksExport(agentPid()!);
      const array = await sbatch(USER, join(JOBS, 'task.sh'), ['--array=0-2', '--comment=policy:strict', '-J', 'array-strict', `--output=${WORK}/out-%A_%a.txt`, exportArg]);
      const plain = await sbatch(USER, join(JOBS, 'task.sh'), ['--comment=policy:default', '-J', 'array-beside', `--output=${WORK}/out-%j.txt`, exportArg]);
      let tasks: [string, string][] = [];
      await until(`the 3 tasks of array job ${array} running`, async () => (tasks = await runningArrayTasks(array)).length === 3);
      const taskIds = tasks.map(([, id]) => id);
      evidence(`array job ${array}: running tasks (index, job id)`, tasks.map((t) => t.join(' ')).join('\n'));
      expect(new Set(taskIds).size, 'each task has its own job id').to.equal(3);
      const views = await goWhenBound([...taskIds, plain]);
      evidence('the agent\'s jobs (all bound)', views.map((v) => `${v.jobId} requested=${v.requested} ${v.binding.state} cgroup=${v.binding.cgroupId}`).join('\n'));
      expect(new Set(views.map((v) => v.binding.cgroupId)).size, 'each task bound to a cgroup of its own').to.equal(4);
      for (const v of views) expect(v.requested, `job ${v.jobId}`).to.equal(v.jobId === plain ? 'default' : 'strict');
      await Promise.all([...taskIds, plain].map((id) => waitJobEnded(id, 240_000)));

      for (const [index, id] of tasks) {
        const out = outputOf(`out-${array}_${index}.txt`);
        evidence(`array task ${array}_${index} = job ${id}`, out);
        expect(out).to.match(new RegExp(`^JOB ${id} array=${array}_${index} `, 'm'));
        const a = attempts(out);
        expect(cgroupIn(a.chmod_suid)).to.match(taskOf(id, 'batch'));
        expect(a.chmod_suid, `task ${index}`).to.match(EPERM);
        const lines = await jobEvents(id, CHMOD_DENIED);
        expect(lines.filter((l) => namesOnly(l, id) && CHMOD_DENIED.test(l)), `the denial in task ${index} names job ${id} alone`).to.have.length(1);
      }
      const plainOut = outputOf(`out-${plain}.txt`);
      evidence(`job ${plain} (policy:default)`, plainOut);
      expect(attempts(plainOut).chmod_suid).to.match(/^rc=0 /);
      expect((await jobEvents(plain, CHMOD_AUDITED)).filter((l) => namesOnly(l, plain) && CHMOD_AUDITED.test(l))).to.have.length(1);
      for (const id of [...taskIds, plain]) await expectLifecycle(id);
      expect((await agentJobs()).map((j) => j.jobId)).to.not.include.members([...taskIds, plain]);
      expect(await uidsUnderPolicy()).to.not.include(USER);
    });

    it('salloc with srun inside: the srun step is held to the allocation\'s profile alone; the command salloc runs (where salloc was called, outside every job cgroup) is held to the uid\'s union', async () => {
      const strict = await sbatch(USER, HOLD, ['--comment=policy:strict', '-J', 'salloc-beside', `--output=${WORK}/out-%j.txt`]);
      await goWhenBound([strict]);
      const salloc = asUser(USER, 'salloc', ['--comment=policy:default', '-J', 'salloc-srun', '--ntasks=1', '/bin/bash', join(JOBS, 'salloc.sh')], {
        env: { KRSI_JOBS: JOBS },
      });
      let alloc = '';
      await until('salloc\'s allocation running', async () => {
        alloc = String((await execa('squeue', ['-h', '-t', 'R', '-n', 'salloc-srun', '-o', '%A'], { reject: false })).stdout).trim();
        return /^\d+$/.test(alloc);
      });
      const [view] = await goWhenBound([alloc]);
      expect(view!.requested).to.equal('default');
      const r = await salloc;
      evidence(`salloc --comment=policy:default (uid ${USER}, job ${alloc}) exit ${r.exitCode}`, `${r.stdout}\n${r.stderr}`);
      expect(r.exitCode, r.stderr).to.equal(0);
      const a = attempts(r.stdout);
      expect(cgroupIn(a.step_chmod_suid), 'the srun step').to.match(taskOf(alloc, '0'));
      expect(a.step_chmod_suid, 'the allocation\'s profile: default, fileperms audit').to.match(/^rc=0 /);
      expect(cgroupIn(a.shell_chmod_suid), 'salloc\'s command').to.not.match(/slurmstepd\.scope/);
      expect(a.shell_chmod_suid, 'the uid\'s union: the strict job beside').to.match(EPERM);

      const allocEvents = await jobEvents(alloc, CHMOD_DENIED);
      evidence(`event log lines naming job ${alloc}`, allocEvents.join('\n'));
      const ofBoth = new RegExp(`\\bjob=(?:${strict},${alloc}|${alloc},${strict})(?: |$)`);
      expect(allocEvents.filter((l) => namesOnly(l, alloc) && CHMOD_AUDITED.test(l)), 'the step\'s chmod, the allocation\'s alone').to.have.length(1);
      expect(allocEvents.filter((l) => ofBoth.test(l) && CHMOD_DENIED.test(l)), 'the command\'s chmod, the uid\'s jobs').to.have.length(1);
      expect(allocEvents.filter((l) => namesOnly(l, alloc) && /act=deny/.test(l))).to.deep.equal([]);
      await waitJobEnded(alloc);
      releaseJob(strict);
      await waitJobEnded(strict);
      for (const id of [alloc, strict]) await expectLifecycle(id);
      expect(await uidsUnderPolicy()).to.not.include(USER);
    });

    it('PrologFlags=Contain: a login session moved into a job\'s extern step as pam_slurm_adopt moves it (step_extern/user/task_special) is held to that job\'s profile; before, to the uid\'s union', async () => {
      const strict = await sbatch(USER, HOLD, ['--comment=policy:strict', '-J', 'adopt-strict', `--output=${WORK}/out-%j.txt`]);
      const plain = await sbatch(USER, HOLD, ['--comment=policy:default', '-J', 'adopt-default', `--output=${WORK}/out-%j.txt`]);
      const views = await goWhenBound([strict, plain]);
      const scope = stepdScopes('/sys/fs/cgroup')[0]!;
      const tree = await execa('find', [join(scope, `job_${strict}`), '-type', 'd'], { reject: false });
      evidence(`the cgroups of job ${strict} (Contain: the extern step beside the batch step)`, String(tree.stdout).split(scope).join('<scope>'));
      // the extern step holds its own process (sleep) in task_special: where adopted processes go too
      const special = (id: string) => join(scope, `job_${id}`, 'step_extern/user/task_special');
      await until('both extern steps\' task_special cgroups', () => existsSync(special(strict)) && existsSync(special(plain)));
      for (const v of views) expect(v.binding.cgroupId, `job ${v.jobId} is bound to its job_<id>`).to.equal(String(statSync(join(scope, `job_${v.jobId}`), { bigint: true }).ino));
      // the step's own directory has controllers enabled for its children: cgroup v2's no-internal-process
      // rule refuses a process there, which is why pam_slurm_adopt (slurmstepd) uses the leaf task_special
      const bystander = execa('sleep', ['600'], { reject: false });
      const internal = (() => {
        try {
          writeFileSync(join(scope, `job_${strict}`, 'step_extern/cgroup.procs'), String(bystander.pid));
          return 'written';
        } catch (err) {
          return (err as NodeJS.ErrnoException).code;
        } finally {
          bystander.kill();
        }
      })();
      evidence(`a pid written into job_${strict}/step_extern/cgroup.procs`, String(internal));
      expect(internal).to.equal('EBUSY');

      const sessions = [strict, plain].map((id) => {
        const dir = join(WORK, `session-${id}`);
        mkdirSync(dir, { recursive: true });
        chownSync(dir, USER, USER);
        return { id, dir, run: asUser(USER, '/bin/bash', [join(JOBS, 'session.sh'), dir], { env: { KRSI_JOBS: JOBS, KRSI_PROBE: PROBE } }) };
      });
      for (const { id, dir } of sessions) {
        await until(`the session for job ${id} waiting to be adopted`, () => existsSync(join(dir, 'session.pid')));
        writeFileSync(join(special(id), 'cgroup.procs'), readFileSync(join(dir, 'session.pid'), 'utf8').trim());
        writeFileSync(join(dir, 'adopted'), '');
      }
      const results = await Promise.all(sessions.map((s) => s.run));
      for (const [i, { id }] of sessions.entries()) evidence(`session adopted into job ${id} (exit ${results[i]!.exitCode})`, `${results[i]!.stdout}\n${results[i]!.stderr}`);
      const [s, p] = results.map((r) => attempts(r.stdout));
      for (const a of [s!, p!]) {
        expect(cgroupIn(a.outside_chmod_suid), 'before: outside every job').to.not.match(/slurmstepd\.scope/);
        expect(a.outside_chmod_suid, 'before: the uid\'s union holds the strict job').to.match(EPERM);
      }
      expect(cgroupIn(s!.adopted_chmod_suid)).to.match(new RegExp(`/job_${strict}/step_extern/user/task_special$`));
      expect(cgroupIn(p!.adopted_chmod_suid)).to.match(new RegExp(`/job_${plain}/step_extern/user/task_special$`));
      expect(s!.adopted_chmod_suid, 'adopted by the strict job').to.match(EPERM);
      expect(s!.adopted_connect_denied).to.equal('rc=1 ERR EPERM');
      expect(p!.adopted_chmod_suid, 'adopted by the default job: audit').to.match(/^rc=0 /);
      expect(p!.adopted_connect_denied).to.equal('rc=1 ERR ENETUNREACH');

      const strictEvents = await jobEvents(strict, /type=skconn .*act=deny/);
      const plainEvents = await jobEvents(plain, CHMOD_AUDITED);
      evidence(`event log lines naming job ${strict}`, strictEvents.join('\n'));
      evidence(`event log lines naming job ${plain}`, plainEvents.join('\n'));
      const ofBoth = new RegExp(`\\bjob=(?:${strict},${plain}|${plain},${strict})(?: |$)`);
      expect(strictEvents.filter((l) => ofBoth.test(l) && CHMOD_DENIED.test(l)), 'the two sessions before adoption').to.have.length(2);
      expect(strictEvents.filter((l) => namesOnly(l, strict) && CHMOD_DENIED.test(l))).to.have.length(1);
      expect(strictEvents.filter((l) => namesOnly(l, strict) && /type=skconn .*act=deny/.test(l))).to.have.length(1);
      expect(plainEvents.filter((l) => namesOnly(l, plain) && CHMOD_AUDITED.test(l))).to.have.length(1);
      expect(plainEvents.filter((l) => namesOnly(l, plain) && /act=deny/.test(l))).to.deep.equal([]);
      for (const id of [strict, plain]) releaseJob(id);
      await Promise.all([strict, plain].map((id) => waitJobEnded(id)));
      for (const id of [strict, plain]) await expectLifecycle(id);
    });

    /**
     * Heterogeneous jobs start only under sched/backfill, which must be able to place each component on a
     * node of its own: a second node here is a second slurmd of this host (`slurmd -N`), as sites emulate
     * larger systems. Slurm makes each slurmd its own scope, <node>_slurmstepd.scope, so the agent watches
     * every scope, including one made after it started (this cluster's second node).
     */
    describe('heterogeneous jobs (two nodes: two slurmd on this host)', () => {
      before(async function () {
        this.timeout(scaled(600_000));
        await stopCluster();
        cluster = await startCluster({
          prolog: PROLOG,
          epilog: EPILOG,
          extraConf: [`TaskProlog=${TASK_PROLOG}`, 'SchedulerParameters=bf_interval=2'],
          jobSubmitLua: LUA,
          users: { [USER]: 'krsiuser', [OTHER]: 'krsiother' },
          nodes: 2,
          scheduler: 'backfill',
          // above every job id of the cluster before, whose lines are in the agent's log
          firstJobId: 1000,
        });
        console.log(`      two-node cluster up in ${cluster.seconds.toFixed(1)} s: nodes ${cluster.nodes.join(', ')}; slurmstepd scopes ${stepdScopes('/sys/fs/cgroup').join(', ')}`);
      });

      /** the job ids of a heterogeneous job's components, from its leader's HetJobIdSet ("1000-1001" or "1000,1001") */
      const componentsOf = async (leader: string): Promise<string[]> => {
        let set = '';
        await until(`job ${leader}'s components known`, async () => (set = (await jobInfo(leader)).HetJobIdSet ?? '') !== '');
        return set.split(',').flatMap((part) => {
          const [from, to] = part.split('-').map(Number);
          return Array.from({ length: (to ?? from!) - from! + 1 }, (_, i) => String(from! + i));
        });
      };

      it('a heterogeneous job whose components run on two nodes: each component is a job of its own (its id, its comment\'s profile, its job_<id> under its node\'s scope), bound and held to that profile alone; the epilogs unbind and remove each', async () => {
        const [first, second] = cluster.nodes as [string, string];
        const exportArg = attacksExport(agentPid()!);
        const leader = await sbatch(USER, join(JOBS, 'het.sh'), [
          '--comment=policy:strict', `--nodelist=${first}`, '-J', 'het', `--output=${WORK}/out-%j.txt`, exportArg,
          ':', '--ntasks=1', '--cpus-per-task=1', '--comment=policy:default', `--nodelist=${second}`,
        ]);
        const [c0, c1] = await componentsOf(leader) as [string, string];
        expect(c0, 'component 0 is the leader').to.equal(leader);
        const views = await goWhenBound([c0, c1]);
        const infos = [await jobInfo(c0), await jobInfo(c1)];
        evidence(`heterogeneous job ${leader}: its components`, infos.map((i) => `JobId=${i.JobId} HetJobId=${i.HetJobId} HetJobOffset=${i.HetJobOffset} NodeList=${i.NodeList} Comment=${i.Comment}`).join('\n'));
        expect(infos.map((i) => [i.JobId, i.HetJobOffset, i.NodeList])).to.deep.equal([[c0, '0', first], [c1, '1', second]]);
        evidence('the agent\'s jobs (both bound)', views.map((v) => `${v.jobId} requested=${v.requested} ${v.binding.state} cgroup=${v.binding.cgroupId}`).join('\n'));
        expect(views.find((v) => v.jobId === c0)!.requested).to.equal('strict');
        expect(views.find((v) => v.jobId === c1)!.requested).to.equal('default');
        expect(new Set(views.map((v) => v.binding.cgroupId)).size, 'each component bound to a cgroup of its own').to.equal(2);
        const [end] = await Promise.all([waitJobEnded(leader, 240_000), waitJobEnded(c1, 240_000)]);
        const out = outputOf(`out-${leader}.txt`);
        evidence(`job ${leader} (${end!.JobState})`, out);
        expect(out).to.match(new RegExp(`^JOB ${leader} het_size=2 components=${c0},${c1}$`, 'm'));
        expect(out).to.match(/^DONE$/m);
        const a = attempts(out);
        // each component's processes in its own job cgroup, under the scope of the node it runs on
        const underNode = (node: string, jobId: string, step: string) => new RegExp(`/${node}_slurmstepd\\.scope/job_${jobId}/step_${step}/user/task_[^/]+$`);
        expect(cgroupIn(a.batch_chmod_suid), 'the batch step: component 0').to.match(underNode(first, c0, 'batch'));
        expect(cgroupIn(a.comp0_chmod_suid), 'srun --het-group=0').to.match(underNode(first, c0, '0'));
        expect(cgroupIn(a.comp1_chmod_suid), 'srun --het-group=1').to.match(underNode(second, c1, '\\d+'));
        expect(a.batch_chmod_suid, 'component 0: strict').to.match(EPERM);
        expect(a.comp0_chmod_suid, 'component 0: strict').to.match(EPERM);
        expect(a.comp1_chmod_suid, 'component 1: default, fileperms audit').to.match(/^rc=0 /);
        expect(a.comp1_connect_denied, 'component 1: default, no network policy').to.match(/^rc=1 ERR ENETUNREACH(?: |$)/);

        const strictEvents = await jobEvents(c0, CHMOD_DENIED, 2);
        const plainEvents = await jobEvents(c1, CHMOD_AUDITED);
        evidence(`event log lines naming job ${c0}`, strictEvents.join('\n'));
        evidence(`event log lines naming job ${c1}`, plainEvents.join('\n'));
        for (const [id, lines] of [[c0, strictEvents], [c1, plainEvents]] as const) {
          for (const line of lines) expect(namesOnly(line, id), `one job per event: ${line}`).to.equal(true);
        }
        expect(strictEvents.filter((l) => CHMOD_DENIED.test(l)), 'component 0: the batch step and its srun step').to.have.length(2);
        expect(plainEvents.filter((l) => CHMOD_AUDITED.test(l)), 'component 1: its srun step').to.have.length(1);
        expect(plainEvents.filter((l) => /act=deny/.test(l))).to.deep.equal([]);
        for (const id of [c0, c1]) await expectLifecycle(id);
        expect(await uidsUnderPolicy()).to.not.include(USER);
      });
    });
  });
});
