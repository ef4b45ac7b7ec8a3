/**
 * The job's notice (agent/slurm/notice.ts) and slurm/task-prolog, which prints it: the text, the file
 * only the job's user can read, and the TaskProlog printing once per job, run by sh as the job's user.
 */
import { expect } from 'chai';
import { execa } from 'execa';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jobNotice, NOTICE_DIR, removeJobNotice, writeJobNotice } from '../../../agent/slurm/notice.js';
import { PACKAGE_ROOT } from '../../../agent/paths.js';

const isRoot = process.getuid?.() === 0;
const TASK_PROLOG = join(PACKAGE_ROOT, 'slurm', 'task-prolog');
const JOB_USER = 1000;
const OTHER_USER = 1001;

describe('the job notice: which profiles, and why', () => {
  it('says the profiles and the reason, for a requested, an unknown and no profile', () => {
    expect(jobNotice({ jobId: '42', profiles: ['default', 'strict'], requested: 'strict', unknownProfile: null }, 'n1'))
      .to.equal('slurm-krsi: job 42 runs under profiles default + strict on n1: its comment asks for policy:strict');
    expect(jobNotice({ jobId: '42', profiles: ['default', 'strict'], requested: 'nosuch', unknownProfile: 'nosuch' }, 'n1'))
      .to.equal('slurm-krsi: job 42 runs under profiles default + strict on n1: its comment asks for policy:nosuch, which this node does not know, so the strictest profile applies');
    expect(jobNotice({ jobId: '42', profiles: ['default'], requested: null, unknownProfile: null }, undefined))
      .to.equal('slurm-krsi: job 42 runs under profile default: the floor every job gets (its comment names no policy)');
  });

  it('a requested name cannot start a TaskProlog command: control characters are escaped', () => {
    const line = jobNotice({ jobId: '7', profiles: ['default', 'strict'], requested: null, unknownProfile: 'x\nexport LD_PRELOAD=/tmp/evil.so' }, 'n1');
    expect(line).to.not.match(/[\n\r]/);
    expect(line).to.include('policy:x\\x0aexport');
  });
});

describe('the job notice file', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'krsi-notice-'));
    chmodSync(dir, 0o755); // the job's user must reach the notice directory, as under /run
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('is written whole, readable by nobody but its owner, and removed; an id that is not a number never becomes a path', function () {
    if (!isRoot) this.skip(); // chown to the job's uid
    const notices = join(dir, 'jobs');
    writeJobNotice('42', JOB_USER, 'the line', notices);
    const st = statSync(join(notices, '42'));
    expect({ uid: st.uid, mode: st.mode & 0o777 }).to.deep.equal({ uid: JOB_USER, mode: 0o400 });
    expect(statSync(notices).mode & 0o777).to.equal(0o711);
    expect(readFileSync(join(notices, '42'), 'utf8')).to.equal('the line\n');
    expect(readdirSync(notices)).to.deep.equal(['42']);
    writeJobNotice('42', JOB_USER, 'again', notices);
    expect(readFileSync(join(notices, '42'), 'utf8')).to.equal('again\n');
    for (const id of ['..', '../42', '4.2', '']) expect(() => writeJobNotice(id, JOB_USER, 'x', notices), id).to.throw(/is not a number/);
    removeJobNotice('42', notices);
    removeJobNotice('42', notices);
    removeJobNotice('..', notices);
    expect(existsSync(join(notices, '42'))).to.equal(false);
    expect(existsSync(notices)).to.equal(true);
  });

  describe('slurm/task-prolog', () => {
    let script: string;
    let notices: string;
    beforeEach(function () {
      if (!isRoot) this.skip(); // runs as the job's user
      notices = join(dir, 'jobs');
      const text = readFileSync(TASK_PROLOG, 'utf8');
      expect(text).to.include(`\nnotice_dir=${NOTICE_DIR}\n`);
      script = join(dir, 'task-prolog');
      writeFileSync(script, text.replace(`\nnotice_dir=${NOTICE_DIR}\n`, `\nnotice_dir=${notices}\n`), { mode: 0o755 });
      writeJobNotice('42', JOB_USER, 'slurm-krsi: job 42 runs under profiles default + strict on n1: its comment asks for policy:strict', notices);
    });

    /** what slurmstepd would read from the TaskProlog of a task with this environment */
    async function taskProlog(env: Record<string, string>, uid = JOB_USER): Promise<string> {
      const r = await execa('/bin/sh', [script], { env: { PATH: '/usr/bin:/bin', ...env }, extendEnv: false, uid, gid: uid, reject: false });
      expect(r.exitCode, r.stderr).to.equal(0);
      expect(r.stderr).to.equal('');
      return r.stdout;
    }
    const PRINTED = 'print slurm-krsi: job 42 runs under profiles default + strict on n1: its comment asks for policy:strict';

    it('prints the line once per job: task 0 of the batch script, or of step 0 of a job without one', async () => {
      expect(await taskProlog({ SLURM_JOB_ID: '42', SLURM_PROCID: '0', ENVIRONMENT: 'BATCH' }), 'batch script').to.equal(PRINTED);
      expect(await taskProlog({ SLURM_JOB_ID: '42', SLURM_STEP_ID: '4294967291', SLURM_PROCID: '0' }), 'batch step id').to.equal(PRINTED);
      expect(await taskProlog({ SLURM_JOB_ID: '42', SLURM_STEP_ID: '0', SLURM_PROCID: '0' }), 'step 0 of srun/salloc').to.equal(PRINTED);
      expect(await taskProlog({ SLURM_JOB_ID: '42', SLURM_STEP_ID: '0', SLURM_PROCID: '0', ENVIRONMENT: 'BATCH' }), 'step 0 in a batch job').to.equal('');
      expect(await taskProlog({ SLURM_JOB_ID: '42', SLURM_STEP_ID: '1', SLURM_PROCID: '0' }), 'step 1').to.equal('');
      expect(await taskProlog({ SLURM_JOB_ID: '42', SLURM_STEP_ID: '0', SLURM_PROCID: '3' }), 'task 3').to.equal('');
    });

    it('prints nothing, and succeeds, for another user, a job without a notice, or a job id that is a path', async () => {
      expect(await taskProlog({ SLURM_JOB_ID: '42', SLURM_PROCID: '0' }, OTHER_USER), 'another user').to.equal('');
      expect(await taskProlog({ SLURM_JOB_ID: '43', SLURM_PROCID: '0' }), 'no notice').to.equal('');
      expect(await taskProlog({ SLURM_JOB_ID: '../jobs/42', SLURM_PROCID: '0' }), 'a path').to.equal('');
      expect(await taskProlog({ SLURM_PROCID: '0' }), 'no job id').to.equal('');
    });
  });
});
