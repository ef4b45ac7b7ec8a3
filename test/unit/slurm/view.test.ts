import { expect } from 'chai';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeSlurmView, SlurmViewError, jobRecordsFromShow, jobsFromListpids, slurmConfFacts } from '../../../agent/slurm/view.js';

describe('Slurm\'s view of this node', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'krsi-view-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** a cgroup tree laid out as slurmstepd makes it (the real one is read in the VM's lifecycle spec) */
  function cgroups(jobs: Record<string, string[]>): string {
    const root = join(dir, 'cgroup');
    const scope = join(root, 'system.slice', 'slurmstepd.scope');
    mkdirSync(join(scope, 'system'), { recursive: true });
    for (const [id, steps] of Object.entries(jobs)) for (const s of ['user', ...steps.map((x) => `step_${x}`)]) mkdirSync(join(scope, `job_${id}`, s), { recursive: true });
    return root;
  }

  function script(body: string): string {
    const path = join(dir, 'scontrol');
    writeFileSync(path, `#!/bin/sh\n${body}\n`);
    chmodSync(path, 0o755);
    return path;
  }

  it('reads the job cgroups and scontrol listpids; a batch or extern step marks a job seen for its whole life', async () => {
    const root = cgroups({ 11: ['batch', '0'], 12: ['0'] });
    const scontrol = script('printf "PID      JOBID    STEPID   LOCALID GLOBALID\\n4242     13       extern   0       0\\n4243     14       2        0       0\\n"');
    const conf = join(dir, 'slurm.conf');
    writeFileSync(conf, 'ClusterName=x\nPrologFlags = Alloc,contain # comment\n');
    const view = await new NodeSlurmView({ cgroupRoot: root, scontrol, slurmConf: [join(dir, 'none'), conf] }).running();
    expect(Object.fromEntries(view.jobs)).to.deep.equal({
      11: { lifetimeStep: true }, 12: { lifetimeStep: false }, 13: { lifetimeStep: true }, 14: { lifetimeStep: false },
    });
    expect(view.allocationsVisible).to.equal(true);
    expect(view.rebootEndsJobs, 'ReturnToService: Slurm\'s default, 0').to.equal(true);
    expect(view.sources).to.deep.equal([`cgroup ${join(root, 'system.slice', 'slurmstepd.scope')}`, `${scontrol} listpids`]);
  });

  it('a hanging scontrol makes the view unreadable within the timeout (nothing is then removed)', async () => {
    const scontrol = script('sleep 30');
    const t0 = Date.now();
    const err = await new NodeSlurmView({ cgroupRoot: cgroups({}), scontrol, timeoutMs: 300 }).running().catch((e: unknown) => e);
    expect(err).to.be.instanceOf(SlurmViewError);
    expect((err as Error).message).to.match(/listpids did not answer within 300 ms/);
    expect(Date.now() - t0).to.be.below(3000);
  });

  it('a failing scontrol is unreadable too; a missing one is only a missing source', async () => {
    const failing = script('echo "slurm_load_ctl_conf error" >&2; exit 1');
    const err = await new NodeSlurmView({ cgroupRoot: cgroups({}), scontrol: failing }).running().catch((e: unknown) => e);
    expect((err as Error).message).to.match(/listpids failed: slurm_load_ctl_conf error/);
    const view = await new NodeSlurmView({ cgroupRoot: cgroups({ 5: ['extern'] }), scontrol: join(dir, 'no-scontrol') }).running();
    expect([...view.jobs.keys()]).to.deep.equal(['5']);
  });

  it('scontrol\'s "no job steps" and "connection refused" (exit status 1) are answers: no step, a dead step', async () => {
    // what Slurm 22.05's scontrol listpids printed in the VM on a node that runs no step
    const none = script('echo "No job steps exist on this node." >&2; echo "PID      JOBID    STEPID   LOCALID GLOBALID"; exit 1');
    const view = await new NodeSlurmView({ cgroupRoot: cgroups({}), scontrol: none }).running();
    expect(view.jobs.size).to.equal(0);
    expect(view.sources).to.include(`${none} listpids`);
    // ... and with the socket of a crashed slurmstepd left in the spool directory beside a live step
    const stale = script([
      'echo "Unable to connect to slurmstepd: Connection refused" >&2',
      'printf "PID      JOBID    STEPID   LOCALID GLOBALID\\n-1       2        extern   0       0\\n752      2        extern   -       -\\n"',
      'exit 1',
    ].join('\n'));
    const withStale = await new NodeSlurmView({ cgroupRoot: cgroups({}), scontrol: stale }).running();
    expect(Object.fromEntries(withStale.jobs)).to.deep.equal({ 2: { lifetimeStep: true } });
    for (const stderr of ['Unable to connect to slurmstepd: Permission denied', 'No job steps exist on this node.\nsomething else failed']) {
      const other = script(`printf '${stderr}\\n' >&2; exit 1`);
      const err = await new NodeSlurmView({ cgroupRoot: cgroups({}), scontrol: other }).running().catch((e: unknown) => e);
      expect(err, stderr).to.be.instanceOf(SlurmViewError);
    }
  });

  it('a slurm.conf whose read blocks (a hung NFS mount) is given up after the timeout; the next candidate decides', async () => {
    const stuck = join(dir, 'stuck.conf');
    execFileSync('mkfifo', [stuck]); // reading a fifo without a writer blocks in open(2), as a hung mount does
    const conf = join(dir, 'slurm.conf');
    writeFileSync(conf, 'PrologFlags=Alloc,Contain\n');
    const scontrol = script('exit 0');
    const t0 = Date.now();
    const view = await new NodeSlurmView({ cgroupRoot: cgroups({}), scontrol, slurmConf: [stuck, conf], timeoutMs: 300 }).running();
    expect(view.allocationsVisible).to.equal(true);
    expect(Date.now() - t0).to.be.below(3000);
    const none = await new NodeSlurmView({ cgroupRoot: cgroups({}), scontrol, slurmConf: [stuck, join(dir, 'missing.conf')], timeoutMs: 300 }).running();
    expect(none, 'no slurm.conf read: neither Contain nor a reboot that ends jobs is assumed').to.deep.include({ allocationsVisible: false, rebootEndsJobs: false });
  });

  it('no source at all is unreadable, not "no jobs"', async () => {
    const err = await new NodeSlurmView({ cgroupRoot: join(dir, 'empty'), scontrol: null }).running().catch((e: unknown) => e);
    expect(err).to.be.instanceOf(SlurmViewError);
  });

  it('reads PrologFlags and ReturnToService; parses listpids lines strictly', () => {
    expect(slurmConfFacts('PrologFlags=Alloc')).to.deep.equal({ contain: false, returnToService: 0 });
    expect(slurmConfFacts('#PrologFlags=Contain\nPrologFlags=Alloc\n# ReturnToService=2')).to.deep.equal({ contain: false, returnToService: 0 });
    expect(slurmConfFacts('prologflags=X11,Contain\nReturnToService = 2  # comment')).to.deep.equal({ contain: true, returnToService: 2 });
    expect(slurmConfFacts('ReturnToService=1')).to.deep.equal({ contain: false, returnToService: 1 });
    const jobs = new Map();
    jobsFromListpids('PID JOBID STEPID LOCALID GLOBALID\ngarbage line\n77 9 batch 0 0\n', jobs);
    expect(Object.fromEntries(jobs)).to.deep.equal({ 9: { lifetimeStep: true } });
  });
});

describe('slurmctld asked about a job of an earlier boot (scontrol -o show job)', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'krsi-ctl-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /**
   * A fake scontrol (the real one is asked in the VM's Slurm spec): `show job` runs `body` and records its
   * arguments; `show hostnames LIST` expands "n[1-2],m" as Slurm would for these tests' lists.
   */
  function scontrol(body: string): string {
    const path = join(dir, 'scontrol');
    writeFileSync(path, `#!/bin/sh
if [ "$2" = hostnames ]; then
  case "$3" in 'n[1-2],m') printf 'n1\\nn2\\nm\\n' ;; *) echo "$3" ;; esac
  exit 0
fi
echo "$@" >> ${join(dir, 'args')}
${body}
`);
    chmodSync(path, 0o755);
    return path;
  }
  const line = (id: string, state: string, nodes = 'n1') => `JobId=${id} JobName=hold UserId=alice(1000) JobState=${state} Reason=None ReqNodeList=(null) ExcNodeList=(null) NodeList=${nodes} BatchHost=n1`;
  const view = (path: string, timeoutMs = 10_000) => new NodeSlurmView({ cgroupRoot: dir, scontrol: path, timeoutMs });

  it('a job slurmctld holds (running, suspended, completing) is live, with its nodes; a pending (requeued) or ended one is not', async () => {
    for (const [state, live] of [['RUNNING', true], ['SUSPENDED', true], ['COMPLETING', true], ['CONFIGURING', true], ['PENDING', false], ['COMPLETED', false], ['NODE_FAIL', false], ['CANCELLED', false]] as const) {
      const answer = await view(scontrol(`echo '${line('14', state, live ? 'n[1-2],m' : '(null)')}'`)).controllerJob('14');
      expect(answer, state).to.deep.equal({ known: true, state, live, nodes: live ? ['n1', 'n2', 'm'] : [] });
    }
    expect(readFileSync(join(dir, 'args'), 'utf8').split('\n')[0], 'one single-job request per question').to.equal('-o show job 14');
  });

  it('records of several components or tasks: live when any is, on the nodes of the live ones', async () => {
    const two = (a: string, b: string) => view(scontrol(`echo '${line('20', a, 'm')}'; echo '${line('21', b, 'n1')}'`)).controllerJob('20');
    expect(await two('COMPLETED', 'RUNNING')).to.deep.equal({ known: true, state: 'RUNNING', live: true, nodes: ['n1'] });
    expect(await two('COMPLETED', 'FAILED')).to.deep.equal({ known: true, state: 'COMPLETED', live: false, nodes: [] });
    expect(() => jobRecordsFromShow('No jobs in the system\n', '20')).to.throw(SlurmViewError, /a record without JobState/);
    expect(jobRecordsFromShow(`${line('20', 'RUNNING', '(null)')}\n`, '20')).to.deep.equal([{ state: 'RUNNING', nodeList: null, ambiguous: false }]);
  });

  it('a job name or comment that repeats JobState= or NodeList= (set by the user) is not read: live on unknown nodes, so the job is kept', async () => {
    const forged = (name: string, comment = '') => `JobId=14 JobName=${name} UserId=alice(1000) JobState=RUNNING Reason=None NodeList=n1 BatchHost=n1${comment}`;
    for (const text of [forged('x JobState=COMPLETED NodeList=m'), forged('x', ' Comment=y JobState=COMPLETED'), forged('x', ' WorkDir=/tmp/a NodeList=m')]) {
      const answer = await view(scontrol(`echo '${text}'`)).controllerJob('14');
      expect(answer, text).to.deep.include({ known: true, live: true, nodes: null });
    }
  });

  it('an id slurmctld does not know (exit status 1, "Invalid job id specified"), or one of no Slurm shape, is an answer: unknown', async () => {
    const path = scontrol('echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1');
    expect(await view(path).controllerJob('4000000')).to.deep.equal({ known: false });
    for (const odd of ['-v', '14; reboot', 'abc']) expect(await view(path).controllerJob(odd), odd).to.deep.equal({ known: false });
    expect(readFileSync(join(dir, 'args'), 'utf8').trim().split('\n'), 'odd ids never reach scontrol').to.deep.equal(['-o show job 4000000']);
  });

  it('slurmctld down, scontrol hanging or missing: rejected (the job is then kept)', async () => {
    const down = await view(scontrol('echo "slurm_load_jobs error: Unable to contact slurm controller (connect failure)" >&2; exit 1')).controllerJob('14_3').catch((e: unknown) => e);
    expect(down).to.be.instanceOf(SlurmViewError);
    expect((down as Error).message).to.match(/show job 14_3 failed: slurm_load_jobs error: Unable to contact slurm controller/);
    const t0 = Date.now();
    const hung = await view(scontrol('sleep 30'), 300).controllerJob('14').catch((e: unknown) => e);
    expect((hung as Error).message).to.match(/did not answer within 300 ms/);
    expect(Date.now() - t0).to.be.below(3000);
    const missing = await view(join(dir, 'no-scontrol')).controllerJob('14').catch((e: unknown) => e);
    expect((missing as Error).message).to.match(/not installed: slurmctld cannot be asked/);
  });
});
