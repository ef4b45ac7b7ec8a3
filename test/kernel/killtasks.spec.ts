/**
 * killtasks on the real kernel: fatal and stop signals, and ptrace attach, aimed at any thread of a
 * protected process are denied from everyone (root included) but init and the process itself.
 * The target runs as the restricted uid, so ordinary permission checks would let it be signalled:
 * any EPERM seen here comes from the LSM.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { execa } from 'execa';
import { processStartTicks } from '../../agent/enforcement/enforcer.js';
import { waitFor } from '../vm/pace.js';
import {
  OTHER, USER, alive, checkAccounting, eventsSince, events, getEnforcer, modes, policy, probe, startTarget, type Target,
} from './fixture.js';

describe('killtasks (kernel)', function () {
  checkAccounting('killtasks');
  let target: Target;

  beforeEach(async () => {
    target = await startTarget(USER);
    getEnforcer().protect(target.tgid, 'all', 'enforce');
  });
  afterEach(async () => {
    getEnforcer().unprotect(target.tgid);
    target.proc.kill('SIGKILL');
    await target.proc;
    getEnforcer().clearUidPolicy(USER);
  });

  it('denies SIGTERM and SIGKILL from root and from the owner, and logs them (figure 12)', async () => {
    const from = events.length;
    expect(await probe(0, 'kill', String(target.tgid), '15')).to.equal('ERR EPERM');
    expect(await probe(0, 'kill', String(target.tgid), '9')).to.equal('ERR EPERM');
    expect(await probe(USER, 'kill', String(target.tgid), '9')).to.equal('ERR EPERM');
    expect(alive(target.tgid)).to.equal(true);
    const seen = await eventsSince(from, (x) => x.type === 'sgkill', 3);
    expect(seen.map((e) => [e.uid, e.signal])).to.deep.equal([[0, 15], [0, 9], [USER, 9]]);
    expect(seen[0]).to.include({ policy: 'killtasks', decision: 'deny', targetTgid: target.tgid, targetPid: target.tgid, targetUid: USER, name: 'krsi-probe' });
  });

  it('denies every fatal and stop signal: INT, QUIT, HUP, STOP, TSTP, USR1, SEGV, ALRM, SIGRTMAX', async () => {
    for (const sig of [2, 3, 1, 19, 20, 10, 11, 14, 64]) {
      expect(await probe(0, 'kill', String(target.tgid), String(sig)), `signal ${sig}`).to.equal('ERR EPERM');
    }
    expect(alive(target.tgid)).to.equal(true);
  });

  it('lets harmless signals through: 0 (existence), SIGCONT, SIGWINCH, SIGCHLD, SIGURG', async () => {
    for (const sig of [0, 18, 28, 17, 23]) {
      expect(await probe(0, 'kill', String(target.tgid), String(sig)), `signal ${sig}`).to.equal('OK');
    }
  });

  it('denies signals aimed at a non-leader thread (tgkill) and through a pidfd', async () => {
    const from = events.length;
    const thread = target.tids[0]!;
    expect(thread).to.be.a('number').and.not.equal(target.tgid);
    expect(await probe(0, 'tgkill', String(target.tgid), String(thread), '9')).to.equal('ERR EPERM');
    expect(await probe(USER, 'pidfd-kill', String(target.tgid), '15')).to.equal('ERR EPERM');
    const [e] = await eventsSince(from, (x) => x.type === 'sgkill');
    expect(e).to.include({ targetPid: thread, targetTgid: target.tgid, signal: 9 });
  });

  it('denies a signal sent through F_SETOWN/F_SETSIG (SIGIO path), which bypasses task_kill', async () => {
    const from = events.length;
    expect(await probe(0, 'sigio', String(target.tgid), '9')).to.equal('OK'); // the write itself succeeds
    const [e] = await eventsSince(from, (x) => x.type === 'sigio');
    expect(e).to.include({ policy: 'killtasks', decision: 'deny', targetTgid: target.tgid, signal: 9 });
    expect(alive(target.tgid)).to.equal(true);
    // the attack is real: unprotected, the same write kills it
    getEnforcer().unprotect(target.tgid);
    expect(await probe(0, 'sigio', String(target.tgid), '9')).to.equal('OK');
    expect((await target.proc).signal).to.equal('SIGKILL');
  });

  it('denies ptrace attach and seize, but not reading /proc/<pid>/status', async () => {
    const from = events.length;
    expect(await probe(0, 'ptrace-attach', String(target.tgid))).to.equal('ERR EPERM');
    expect(await probe(USER, 'ptrace-seize', String(target.tids[0]))).to.equal('ERR EPERM');
    expect((await execa('cat', [`/proc/${target.tgid}/status`], { uid: USER, gid: USER })).exitCode).to.equal(0);
    const [e] = await eventsSince(from, (x) => x.type === 'ptrace');
    expect(e).to.include({ decision: 'deny', uid: 0, targetTgid: target.tgid });
  });

  it('lets the protected process signal itself', async () => {
    const self = execa('/bin/sh', ['-c', 'read x; kill -TERM $$; sleep 5'], { uid: USER, gid: USER, reject: false });
    await waitFor('the shell to be running', () => readFileSync(`/proc/${self.pid}/comm`, 'utf8').trim() === 'sh');
    getEnforcer().protect(self.pid!, 'all', 'enforce');
    try {
      expect(await probe(0, 'kill', String(self.pid), '15')).to.equal('ERR EPERM');
      self.stdin!.end('go\n');
      const r = await self;
      expect(r.signal).to.equal('SIGTERM');
    } finally {
      getEnforcer().unprotect(self.pid!);
    }
  });

  it('an entry whose start time is not the live process\'s (pid reuse) protects nothing', async () => {
    getEnforcer().protect(target.tgid, 'all', 'enforce', processStartTicks(target.tgid) + 1n);
    expect(await probe(USER, 'kill', String(target.tgid), '0')).to.equal('OK');
    expect(await probe(USER, 'kill', String(target.tgid), '19')).to.equal('OK');
    await probe(USER, 'kill', String(target.tgid), '18');
  });

  it('audit mode delivers the signal and logs audit', async () => {
    getEnforcer().protect(target.tgid, 'all', 'audit');
    const from = events.length;
    expect(await probe(0, 'kill', String(target.tgid), '15')).to.equal('OK');
    const r = await target.proc;
    expect(r.signal).to.equal('SIGTERM');
    const [e] = await eventsSince(from, (x) => x.type === 'sgkill');
    expect(e).to.include({ decision: 'audit', uid: 0, signal: 15 });
  });

  describe('scope "policy" (listed daemons): only uids with killtasks on are held', () => {
    beforeEach(() => {
      getEnforcer().protect(target.tgid, 'policy');
    });

    it('denies a uid whose policy has killtasks enforce, until the policy is cleared', async () => {
      getEnforcer().setUidPolicy(USER, policy({ modes: modes({ killtasks: 'enforce' }) }));
      expect(await probe(USER, 'kill', String(target.tgid), '15')).to.equal('ERR EPERM');
      getEnforcer().clearUidPolicy(USER);
      expect(await probe(USER, 'kill', String(target.tgid), '19')).to.equal('OK');
      await probe(USER, 'kill', String(target.tgid), '18');
    });

    it('does not hold root, nor the target\'s own uid while it has no policy', async () => {
      expect(await probe(0, 'kill', String(target.tgid), '19')).to.equal('OK');
      await probe(0, 'kill', String(target.tgid), '18');
      getEnforcer().setUidPolicy(OTHER, policy({ modes: modes({ killtasks: 'enforce' }) }));
      try {
        expect(await probe(USER, 'kill', String(target.tgid), '19')).to.equal('OK');
        await probe(USER, 'kill', String(target.tgid), '18');
      } finally {
        getEnforcer().clearUidPolicy(OTHER);
      }
    });
  });
});
