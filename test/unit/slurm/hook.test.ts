import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HookInputError, MAX_COMMENT, commentForAgent, hookSettings, jobFromEnv, leaveRemovalNote } from '../../../agent/slurm/hook.js';
import { profileFromComment } from '../../../agent/service/profile-choice.js';

describe('Slurm hook input', () => {
  it('reads the job from slurmd\'s environment', () => {
    expect(jobFromEnv({ SLURM_JOB_ID: '123_4', SLURM_JOB_UID: '1000', SLURM_JOB_USER: 'billy', SLURM_JOB_COMMENT: 'policy:strict', SLURMD_NODENAME: 'n1' }))
      .to.deep.equal({ jobId: '123_4', uid: 1000, user: 'billy', comment: 'policy:strict', node: 'n1' });
    expect(jobFromEnv({ SLURM_JOB_ID: '77+1', SLURM_JOB_UID: '0' }).comment).to.equal(undefined);
  });

  it('refuses what slurmd would never send, naming the variable', () => {
    for (const [env, name] of [
      [{ SLURM_JOB_UID: '1000' }, 'SLURM_JOB_ID'],
      [{ SLURM_JOB_ID: '../../etc/passwd', SLURM_JOB_UID: '1000' }, 'SLURM_JOB_ID'],
      [{ SLURM_JOB_ID: '1', SLURM_JOB_UID: '-1' }, 'SLURM_JOB_UID'],
      [{ SLURM_JOB_ID: '1', SLURM_JOB_UID: '4294967295' }, 'SLURM_JOB_UID'],
      [{ SLURM_JOB_ID: '1', SLURM_JOB_UID: '1000 ' }, 'SLURM_JOB_UID'],
    ] as const) {
      expect(() => jobFromEnv(env), JSON.stringify(env)).to.throw(HookInputError, name);
    }
  });

  it('cuts a huge comment down to its policy marks without changing the choice', () => {
    const huge = `${'x'.repeat(MAX_COMMENT * 3)} policy:strict ${'y'.repeat(100)}`;
    const sent = commentForAgent(huge)!;
    expect(sent.length).to.be.below(100);
    expect(profileFromComment(sent)).to.deep.equal(profileFromComment(huge));
    const twoNames = `${'x'.repeat(MAX_COMMENT)} policy:a policy:b`;
    expect(profileFromComment(commentForAgent(twoNames)).problem).to.match(/several/);
    expect(commentForAgent('short policy:strict')).to.equal('short policy:strict');
  });
});

describe('Slurm hook settings and notes', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'krsi-hook-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('an unreadable config is a node fault with the safe default on_error = fail', () => {
    const s = hookSettings(join(dir, 'missing.ini'));
    expect(s.onError).to.equal('fail');
    expect(s.configProblem).to.match(/missing\.ini/);
  });

  it('reads socket, on_error and state dir from the config', () => {
    const path = join(dir, 'krsi.ini');
    writeFileSync(path, `[agent]\nsocket = /run/x.sock\non_error = allow\nstate_dir = ${dir}/state\n[profile default]\nfileperms = audit\n`);
    expect(hookSettings(path)).to.deep.equal({ socket: '/run/x.sock', onError: 'allow', stateDir: `${dir}/state` });
  });

  it('leaves a removal note named by the job id', () => {
    const note = leaveRemovalNote(join(dir, 'state'), '42_7');
    expect(note).to.equal(join(dir, 'state', 'pending-removals', '42_7'));
    expect(readFileSync(note, 'utf8')).to.match(/^\d{4}-/);
  });
});
