/**
 * suidexec on the real kernel: an exec that would raise the process's credentials (set-uid, set-gid,
 * file capabilities) is denied unless the file is allowlisted, the allowlist keyed by the kernel's own
 * (s_dev, i_ino), checked on tmpfs and on a block-device-backed ext4. Where the kernel grants nothing
 * (nosuid, no_new_privs, a set-uid script, a file set-uid to the user), nothing is denied.
 */
import { expect } from 'chai';
import { chownSync, copyFileSync, chmodSync, mkdirSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { scaled } from '../vm/pace.js';
import { kernelDevFromStDev, openPath, resolveFileIdentities } from '../../agent/enforcement/identity.js';
import {
  IDENTITY_OBJECT, OTHER, SCRATCH, USER, checkAccounting, eventsSince, events, getEnforcer, modes, mountLoopExt4, policy, probe,
  runAs,
} from './fixture.js';

const SOURCE = '/usr/bin/id';

function suidCopy(path: string, mode = 0o4755): string {
  rmSync(path, { force: true });
  copyFileSync(SOURCE, path);
  chmodSync(path, mode);
  return path;
}

async function identities(...paths: string[]) {
  const { files, missing } = await resolveFileIdentities(IDENTITY_OBJECT, paths, openPath);
  expect(missing, 'allowlisted files must resolve').to.deep.equal([]);
  return files;
}

describe('suidexec (kernel)', function () {
  checkAccounting('suidexec');
  const dir = join(SCRATCH, 'suidexec');
  let denied: string;
  let allowed: string;

  before(() => {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { mode: 0o755 });
    denied = suidCopy(join(dir, 'suid-id'));
    allowed = suidCopy(join(dir, 'allowed-id'));
  });
  beforeEach(async () => {
    getEnforcer().setUidPolicy(USER, policy({ modes: modes({ suidexec: 'enforce' }), suidAllow: await identities(allowed) }));
  });
  afterEach(() => {
    getEnforcer().clearUidPolicy(USER);
  });

  it('denies exec of a set-uid file and logs its kernel dev, inode and mode (figure 9)', async () => {
    const from = events.length;
    expect(await probe(USER, 'exec', denied, '-u')).to.equal('ERR EPERM');
    const [e] = await eventsSince(from, (x) => x.type === 'exsuid');
    const [id] = await identities(denied);
    expect(e).to.include({ policy: 'suidexec', decision: 'deny', uid: USER, comm: 'krsi-probe', name: denied, dev: id!.dev });
    expect(e!.ino).to.equal(id!.ino);
    expect(e!.oldMode).to.equal(0o104755);
  });

  it('allows exec of an allowlisted set-uid file, which then runs with its owner\'s euid', async () => {
    expect(await probe(USER, 'exec', allowed, '-u')).to.equal('0');
  });

  it('denies exec of a set-gid (g+x) file', async () => {
    const sgid = suidCopy(join(dir, 'sgid-id'), 0o2755);
    expect(await probe(USER, 'exec', sgid, '-u')).to.equal('ERR EPERM');
  });

  it('denies exec of a file with file capabilities (setcap cap_net_raw+ep), unless allowlisted', async () => {
    const capped = suidCopy(join(dir, 'cap-id'), 0o755);
    await execa('setcap', ['cap_net_raw+ep', capped]);
    const from = events.length;
    expect(await probe(USER, 'exec', capped, '-u')).to.equal('ERR EPERM');
    const [e] = await eventsSince(from, (x) => x.type === 'exsuid' && x.name === capped);
    expect(e!.oldMode).to.equal(0o100755);
    getEnforcer().setUidPolicy(USER, policy({ modes: modes({ suidexec: 'enforce' }), suidAllow: await identities(allowed, capped) }));
    expect(await probe(USER, 'exec', capped, '-u')).to.equal(String(USER));
  });

  it('allows what raises nothing: set-gid without group execute, a file set-uid to the user, a set-uid script', async () => {
    const from = events.length;
    expect(await probe(USER, 'exec', suidCopy(join(dir, 'sgid-no-gx'), 0o2745), '-u')).to.equal(String(USER));
    const own = suidCopy(join(dir, 'own-suid'));
    chownSync(own, USER, USER);
    chmodSync(own, 0o4755); // chown cleared the bit
    expect(await probe(USER, 'exec', own, '-u')).to.equal(String(USER));
    const script = join(dir, 'suid-script');
    writeFileSync(script, '#!/bin/sh\nid -u\n');
    chmodSync(script, 0o4755);
    expect(await probe(USER, 'exec', script)).to.equal(String(USER));
    expect(events.slice(from).filter((e) => e.policy === 'suidexec')).to.have.length(0);
  });

  it('allows a set-uid file under no_new_privs, where the kernel grants nothing (it runs with the user\'s uid)', async () => {
    const r = await runAs(USER, 'setpriv', ['--no-new-privs', denied, '-u']);
    expect(r.stdout).to.equal(String(USER));
  });

  it('denies through a symlink, and through the shell', async () => {
    const link = join(dir, 'innocent-name');
    rmSync(link, { force: true });
    symlinkSync(denied, link);
    expect(await probe(USER, 'exec', link)).to.equal('ERR EPERM');
    const r = await execa('/bin/sh', ['-c', `${denied} -u`], { uid: USER, gid: USER, reject: false });
    expect(r.exitCode).to.not.equal(0);
    expect(String(r.stderr)).to.match(/Operation not permitted/);
  });

  it('allows ordinary executables and set-uid files on a nosuid mount (no privilege to gain)', async () => {
    expect(await probe(USER, 'exec', '/usr/bin/id', '-u')).to.equal(String(USER));
    const nosuid = join(dir, 'nosuid-mnt');
    mkdirSync(nosuid, { recursive: true });
    await execa('mount', ['-t', 'tmpfs', '-o', 'nosuid,mode=755', 'tmpfs', nosuid]);
    try {
      const copy = suidCopy(join(nosuid, 'suid-id'));
      expect(await probe(USER, 'exec', copy, '-u')).to.equal(String(USER));
    } finally {
      await execa('umount', [nosuid]);
    }
  });

  it('allows another uid and root, with no event', async () => {
    const from = events.length;
    expect(await probe(OTHER, 'exec', denied, '-u')).to.equal('0');
    expect(await probe(0, 'exec', denied, '-u')).to.equal('0');
    const seen = events.slice(from).filter((e) => e.policy === 'suidexec');
    expect(seen).to.have.length(0);
  });

  it('audit mode runs the file and logs audit', async () => {
    getEnforcer().setUidPolicy(USER, policy({ modes: modes({ suidexec: 'audit' }) }));
    const from = events.length;
    expect(await probe(USER, 'exec', denied, '-u')).to.equal('0');
    const [e] = await eventsSince(from, (x) => x.type === 'exsuid');
    expect(e).to.include({ decision: 'audit', uid: USER });
  });

  it('a replaced allowlisted file is denied until re-resolved, then allowed again', async () => {
    const fresh = join(dir, 'allowed-id.new');
    suidCopy(fresh);
    renameSync(fresh, allowed); // what a package upgrade does: new inode under the old name
    expect(await probe(USER, 'exec', allowed, '-u')).to.equal('ERR EPERM');
    getEnforcer().setUidPolicy(USER, policy({ modes: modes({ suidexec: 'enforce' }), suidAllow: await identities(allowed) }));
    expect(await probe(USER, 'exec', allowed, '-u')).to.equal('0');
  });

  it('clearing the policy restores exec', async () => {
    expect(await probe(USER, 'exec', denied, '-u')).to.equal('ERR EPERM');
    getEnforcer().clearUidPolicy(USER);
    expect(await probe(USER, 'exec', denied, '-u')).to.equal('0');
  });

  describe('on a block-device-backed ext4 (loop device)', () => {
    let mnt: string;
    let unmount: () => Promise<void>;

    before(async function () {
      this.timeout(scaled(120_000));
      ({ mnt, unmount } = await mountLoopExt4('suidexec'));
    });
    after(async () => {
      await unmount();
    });

    it('the kernel s_dev differs from stat\'s st_dev encoding, and the allowlist uses the kernel\'s', async () => {
      const ok = suidCopy(join(mnt, 'allowed-id'));
      const bad = suidCopy(join(mnt, 'suid-id'));
      const stDev = statSync(ok, { bigint: true }).dev;
      const [id] = await identities(ok);
      // loop devices have major 7: st_dev is 7 << 8 | minor, the kernel's dev_t is 7 << 20 | minor
      expect(Number(stDev >> 8n) & 0xfff).to.equal(7);
      expect(id!.dev).to.equal(kernelDevFromStDev(stDev));
      expect(BigInt(id!.dev)).to.not.equal(stDev);
      getEnforcer().setUidPolicy(USER, policy({ modes: modes({ suidexec: 'enforce' }), suidAllow: [id!] }));
      expect(await probe(USER, 'exec', ok, '-u')).to.equal('0');
      const from = events.length;
      expect(await probe(USER, 'exec', bad, '-u')).to.equal('ERR EPERM');
      const [e] = await eventsSince(from, (x) => x.type === 'exsuid');
      expect(e!.dev).to.equal(id!.dev);
    });
  });
});
