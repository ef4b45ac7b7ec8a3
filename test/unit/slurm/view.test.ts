import { expect } from 'chai';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeSlurmView, SlurmViewError, jobsFromListpids, slurmConfFacts } from '../../../agent/slurm/view.js';

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
