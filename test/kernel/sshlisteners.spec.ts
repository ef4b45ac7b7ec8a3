/**
 * sshlisteners on the real kernel: an ssh client may not listen on IPv4/IPv6 sockets, nor on AF_SMC
 * ones (whose listen() ends in a TCP listener). The client is
 * recognised by its executable's kernel identity (so a symlink, a hard link under another name, or a
 * changed comm do not help), and by the paper's comm check. The test's "ssh client" is a copy of the
 * probe registered by identity, so that listen() can be attempted directly.
 */
import { expect } from 'chai';
import { copyFileSync, chmodSync, linkSync, mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { openPath, resolveFileIdentities } from '../../agent/enforcement/identity.js';
import {
  IDENTITY_OBJECT, OTHER, PROBE, SCRATCH, USER, checkAccounting, eventsSince, events, getEnforcer, modes, policy, runAs,
} from './fixture.js';

describe('sshlisteners (kernel)', function () {
  checkAccounting('sshlisteners');
  const dir = join(SCRATCH, 'sshlisteners');
  const client = join(dir, 'ssh-client');
  let port = 20000;

  async function listen(uid: number, file: string, family: '4' | '6', pre: string[] = [], kind = 'listen'): Promise<string> {
    port++;
    const addr = family === '4' ? '127.0.0.1' : '::1';
    const r = await runAs(uid, file, [...pre, `${kind}${family}`, addr, String(port)]);
    return r.stdout;
  }

  before(() => {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { mode: 0o755 });
    copyFileSync(PROBE, client);
    chmodSync(client, 0o755);
  });
  beforeEach(async () => {
    const { files } = await resolveFileIdentities(IDENTITY_OBJECT, [client], openPath);
    expect(files).to.have.length(1);
    getEnforcer().setUidPolicy(USER, policy({ modes: modes({ sshlisteners: 'enforce' }), sshClients: files }));
  });
  afterEach(() => {
    getEnforcer().clearUidPolicy(USER);
  });

  it('denies an ssh client listening on IPv4 and on IPv6, logging proto, address and port (figure 10)', async () => {
    const from = events.length;
    expect(await listen(USER, client, '6')).to.equal('ERR EPERM');
    const [e6] = await eventsSince(from, (x) => x.type === 'listen');
    expect(e6).to.include({ policy: 'sshlisteners', decision: 'deny', uid: USER, family: 10, proto: 6, port, addr: '::1' });
    const from4 = events.length;
    expect(await listen(USER, client, '4')).to.equal('ERR EPERM');
    const [e4] = await eventsSince(from4, (x) => x.type === 'listen');
    expect(e4).to.include({ family: 2, proto: 6, port, addr: '127.0.0.1', comm: 'ssh-client' });
  });

  it('denies through a symlink and a hard link under another name (same inode)', async () => {
    const sym = join(dir, 'editor');
    const hard = join(dir, 'not-ssh');
    rmSync(sym, { force: true });
    rmSync(hard, { force: true });
    symlinkSync(client, sym);
    linkSync(client, hard);
    expect(await listen(USER, sym, '4')).to.equal('ERR EPERM');
    expect(await listen(USER, hard, '6')).to.equal('ERR EPERM');
  });

  it('denies a renamed comm of the registered client (prctl PR_SET_NAME)', async () => {
    expect(await listen(USER, client, '4', ['--comm', 'vim'])).to.equal('ERR EPERM');
  });

  it('denies any program whose comm is "ssh" (the paper\'s check)', async () => {
    expect(await listen(USER, PROBE, '4', ['--comm', 'ssh'])).to.equal('ERR EPERM');
  });

  it('denies listening through AF_SMC, which falls back to a TCP listener no hook sees', async () => {
    await execa('modprobe', ['smc']);
    const from = events.length;
    expect(await listen(USER, client, '4', [], 'smc-listen')).to.equal('ERR EPERM');
    const [e] = await eventsSince(from, (x) => x.type === 'listen');
    expect(e).to.include({ family: 2, addr: '127.0.0.1', port, name: 'AF_SMC' });
    expect(await listen(USER, client, '6', [], 'smc-listen')).to.equal('ERR EPERM');
    expect(await listen(USER, PROBE, '4', [], 'smc-listen')).to.equal('OK');
  });

  it('allows other programs, other uids and root to listen', async () => {
    const from = events.length;
    expect(await listen(USER, PROBE, '4')).to.equal('OK');
    expect(await listen(USER, PROBE, '6')).to.equal('OK');
    expect(await listen(OTHER, client, '4')).to.equal('OK');
    expect(await listen(0, client, '6')).to.equal('OK');
    expect(events.slice(from).filter((e) => e.policy === 'sshlisteners')).to.have.length(0);
  });

  it('audit mode lets the client listen and logs audit', async () => {
    const { files } = await resolveFileIdentities(IDENTITY_OBJECT, [client], openPath);
    getEnforcer().setUidPolicy(USER, policy({ modes: modes({ sshlisteners: 'audit' }), sshClients: files }));
    const from = events.length;
    expect(await listen(USER, client, '4')).to.equal('OK');
    const [e] = await eventsSince(from, (x) => x.type === 'listen');
    expect(e).to.include({ decision: 'audit', uid: USER, port });
  });

  it('clearing the policy restores listen', async () => {
    expect(await listen(USER, client, '4')).to.equal('ERR EPERM');
    getEnforcer().clearUidPolicy(USER);
    expect(await listen(USER, client, '4')).to.equal('OK');
  });
});
