/**
 * fileperms on the real kernel: no S_ISUID, S_ISGID or S_IWOTH created or added by a restricted uid,
 * through any syscall that creates an inode or changes its mode, including POSIX ACLs and O_TMPFILE.
 */
import { expect } from 'chai';
import { chownSync, existsSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import {
  OTHER, USER, checkAccounting, eventsSince, events, getEnforcer, modes, policy, probe, shellAs, userDir,
} from './fixture.js';

describe('fileperms (kernel)', function () {
  checkAccounting('fileperms');
  let dir: string;

  beforeEach(async () => {
    dir = await userDir(USER, 'fileperms');
    getEnforcer().setUidPolicy(USER, policy({ modes: modes({ fileperms: 'enforce' }) }));
  });
  afterEach(() => {
    getEnforcer().clearUidPolicy(USER);
  });

  describe('the paper (figure 8)', () => {
    it('denies touch of a world-writable file under umask 0000, and logs it as creat', async () => {
      const from = events.length;
      const path = join(dir, 'writable-by-others');
      const r = await shellAs(USER, '0000', `touch ${path}`);
      expect(r.exitCode).to.not.equal(0);
      expect(existsSync(path)).to.equal(false);
      const [e] = await eventsSince(from, (x) => x.type === 'creat');
      expect(e, 'creat event').to.not.equal(undefined);
      expect(e).to.include({ policy: 'fileperms', decision: 'deny', uid: USER, gid: USER, comm: 'touch', name: 'writable-by-others' });
      expect(e!.reqMode & 0o7777).to.equal(0o666);
      expect(e!.umask).to.equal(0);
      expect(e!.newMode & 0o7777).to.equal(0o666);
    });

    it('denies chmod u+s by the owner, logging old and new modes and the inode', async () => {
      const path = join(dir, 'suidfile');
      expect((await shellAs(USER, '0022', `touch ${path}`)).exitCode).to.equal(0);
      const from = events.length;
      const r = await shellAs(USER, '0022', `chmod u+s ${path}`);
      expect(r.exitCode).to.not.equal(0);
      expect(r.stderr).to.match(/Operation not permitted/);
      expect(statSync(path).mode & 0o7777).to.equal(0o644);
      const [e] = await eventsSince(from, (x) => x.type === 'chmod');
      expect(e).to.include({ decision: 'deny', uid: USER, comm: 'chmod', name: 'suidfile' });
      expect(e!.oldMode).to.equal(0o100644);
      expect(e!.newMode).to.equal(0o104644);
      expect(e!.ino).to.equal(statSync(path, { bigint: true }).ino);
    });

    it('allows the same actions for another uid and for root, with no event', async () => {
      const otherDir = await userDir(OTHER, 'fileperms');
      const from = events.length;
      expect((await shellAs(OTHER, '0000', `touch ${otherDir}/w && chmod u+s ${otherDir}/w`)).exitCode).to.equal(0);
      expect(statSync(join(otherDir, 'w')).mode & 0o7777).to.equal(0o4666);
      expect((await shellAs(0, '0000', `touch ${dir}/root-w && chmod u+s ${dir}/root-w`)).exitCode).to.equal(0);
      expect(events.slice(from).filter((e) => e.policy === 'fileperms')).to.have.length(0);
    });
  });

  describe('every way to create an inode', () => {
    const cases: [string, string[], string][] = [
      ['open(O_CREAT) with 04755', ['create', 'f-suid', '04755', '022'], 'creat'],
      ['open(O_CREAT) with 02755', ['create', 'f-sgid', '02755', '022'], 'creat'],
      ['open(O_CREAT) 0666 under umask 0', ['create', 'f-woth', '0666', '0'], 'creat'],
      ['mknod(S_IFREG) 0666 under umask 0', ['mknod-reg', 'f-mknod', '0666', '0'], 'creat'],
      ['mkdir 0777 under umask 0', ['mkdir', 'd-woth', '0777', '0'], 'mkdir'],
      ['mkdir 01777 (a sticky shared dir)', ['mkdir', 'd-sticky', '01777', '0'], 'mkdir'],
      ['mkfifo 0666 under umask 0', ['mkfifo', 'fifo-woth', '0666', '0'], 'mknod'],
      ['mkfifo 04644', ['mkfifo', 'fifo-suid', '04644', '022'], 'mknod'],
      ['bind() of a unix socket under umask 0', ['bind-unix', 'sock-woth', '0'], 'mknod'],
    ];
    for (const [title, args, type] of cases) {
      it(`denies ${title}`, async () => {
        const [cmd, name, ...rest] = args as [string, string, ...string[]];
        const from = events.length;
        expect(await probe(USER, cmd, join(dir, name), ...rest)).to.equal('ERR EPERM');
        expect(existsSync(join(dir, name))).to.equal(false);
        const [e] = await eventsSince(from, (x) => x.type === type && x.name === name);
        expect(e, `${type} event for ${name}`).to.include({ decision: 'deny', uid: USER, comm: 'krsi-probe' });
      });
    }

    it('allows ordinary modes: 0644 files, 0755 dirs, 0600 fifos and 0700 sockets under umask 022', async () => {
      const from = events.length;
      expect(await probe(USER, 'create', join(dir, 'plain'), '0666', '022')).to.equal('OK');
      expect(statSync(join(dir, 'plain')).mode & 0o7777).to.equal(0o644);
      expect(await probe(USER, 'mkdir', join(dir, 'plain-dir'), '0777', '022')).to.equal('OK');
      expect(await probe(USER, 'mkfifo', join(dir, 'plain-fifo'), '0600', '022')).to.equal('OK');
      expect(await probe(USER, 'bind-unix', join(dir, 'plain-sock'), '077')).to.equal('OK');
      expect(events.slice(from).filter((e) => e.policy === 'fileperms')).to.have.length(0);
    });

    it('honours the umask: 0666 requested under umask 002 is allowed (o+w masked off)', async () => {
      expect(await probe(USER, 'create', join(dir, 'masked'), '0666', '002')).to.equal('OK');
      expect(statSync(join(dir, 'masked')).mode & 0o7777).to.equal(0o664);
    });

    it('denies linking an O_TMPFILE created 0666 under umask 0 into the tree', async () => {
      const from = events.length;
      expect(await probe(USER, 'tmpfile-link', dir, '0666', join(dir, 'from-tmpfile'), '0')).to.equal('ERR EPERM');
      expect(existsSync(join(dir, 'from-tmpfile'))).to.equal(false);
      const [e] = await eventsSince(from, (x) => x.type === 'link');
      expect(e).to.include({ decision: 'deny', uid: USER, name: 'from-tmpfile' });
      expect(e!.oldMode & 0o7777).to.equal(0o666);
    });

    it('allows linking an O_TMPFILE with an ordinary mode', async () => {
      expect(await probe(USER, 'tmpfile-link', dir, '0644', join(dir, 'tmpfile-ok'), '022')).to.equal('OK');
    });
  });

  describe('every way to change a mode', () => {
    let path: string;
    beforeEach(async () => {
      path = join(dir, 'target');
      expect(await probe(USER, 'create', path, '0644', '022')).to.equal('OK');
    });

    for (const syscall of ['chmod', 'fchmod', 'fchmodat']) {
      for (const [bit, mode] of [['S_ISUID', '04644'], ['S_ISGID', '02644'], ['S_IWOTH', '0646']] as const) {
        it(`denies ${syscall} adding ${bit}`, async () => {
          const from = events.length;
          expect(await probe(USER, syscall, path, mode)).to.equal('ERR EPERM');
          expect(statSync(path).mode & 0o7777).to.equal(0o644);
          const [e] = await eventsSince(from, (x) => x.type === 'chmod');
          expect(e!.reqMode).to.equal(parseInt(mode, 8));
        });
      }
    }

    it('denies chmod 1777 on a directory (a world-writable sticky shared dir)', async () => {
      const d = join(dir, 'shared');
      expect(await probe(USER, 'mkdir', d, '0755', '022')).to.equal('OK');
      expect((await shellAs(USER, '022', `chmod 1777 ${d}`)).exitCode).to.not.equal(0);
      expect(statSync(d).mode & 0o7777).to.equal(0o755);
    });

    it('denies chmod g+s on a directory', async () => {
      const d = join(dir, 'group-dir');
      expect(await probe(USER, 'mkdir', d, '0755', '022')).to.equal('OK');
      expect(await probe(USER, 'chmod', d, '02755')).to.equal('ERR EPERM');
    });

    it('allows removing bits and ordinary changes', async () => {
      const from = events.length;
      expect(await probe(USER, 'chmod', path, '0600')).to.equal('OK');
      expect(await probe(USER, 'chmod', path, '0755')).to.equal('OK');
      expect(events.slice(from).filter((e) => e.policy === 'fileperms')).to.have.length(0);
    });

    it('allows a chmod that keeps a forbidden bit the file already has, and one that removes it', async () => {
      const legacy = join(dir, 'legacy');
      writeFileSync(legacy, '');
      chownSync(legacy, USER, USER); // before chmod: chown clears S_ISUID
      chmodSync(legacy, 0o4666);
      expect(await probe(USER, 'chmod', legacy, '04666')).to.equal('OK');
      expect(await probe(USER, 'chmod', legacy, '04664')).to.equal('OK');
      expect(await probe(USER, 'chmod', legacy, '0644')).to.equal('OK');
      expect(await probe(USER, 'chmod', legacy, '0646')).to.equal('ERR EPERM');
    });
  });

  describe('POSIX ACLs', () => {
    let path: string;
    beforeEach(async () => {
      path = join(dir, 'acl-target');
      expect(await probe(USER, 'create', path, '0644', '022')).to.equal('OK');
    });

    it('denies setfacl -m o::rw (an access ACL granting other write)', async () => {
      const from = events.length;
      const r = await shellAs(USER, '022', `setfacl -m o::rw ${path}`);
      expect(r.exitCode).to.not.equal(0);
      expect(statSync(path).mode & 0o7777).to.equal(0o644);
      const [e] = await eventsSince(from, (x) => x.type === 'setacl');
      expect(e).to.include({ decision: 'deny', uid: USER, comm: 'setfacl', name: 'acl-target' });
    });

    it('denies a default ACL granting other write on a directory, the raw xattr too', async () => {
      expect((await shellAs(USER, '022', `setfacl -d -m o::rwx ${dir}`)).exitCode).to.not.equal(0);
      expect(await probe(USER, 'setacl', dir, '7', 'default')).to.equal('ERR EPERM');
      expect(await probe(USER, 'setacl', path, '2')).to.equal('ERR EPERM');
    });

    it('allows ACLs that grant no other write', async () => {
      expect((await shellAs(USER, '022', `setfacl -m u:${OTHER}:rw,o::r ${path}`)).exitCode).to.equal(0);
      expect(await probe(USER, 'setacl', path, '4')).to.equal('OK');
    });
  });

  describe('modes and lifetimes', () => {
    it('audit mode allows the action and logs it as audit', async () => {
      getEnforcer().setUidPolicy(USER, policy({ modes: modes({ fileperms: 'audit' }) }));
      const from = events.length;
      expect(await probe(USER, 'create', join(dir, 'audited'), '04755', '022')).to.equal('OK');
      expect(statSync(join(dir, 'audited')).mode & 0o7777).to.equal(0o4755);
      const [e] = await eventsSince(from, (x) => x.type === 'creat' && x.name === 'audited');
      expect(e).to.include({ decision: 'audit', uid: USER });
    });

    it('clearing the uid policy restores access', async () => {
      expect(await probe(USER, 'create', join(dir, 'before-clear'), '0666', '0')).to.equal('ERR EPERM');
      expect(getEnforcer().clearUidPolicy(USER)).to.equal(true);
      expect(await probe(USER, 'create', join(dir, 'after-clear'), '0666', '0')).to.equal('OK');
    });

    it('a uid with fileperms off but another policy on is not restricted by fileperms', async () => {
      getEnforcer().setUidPolicy(USER, policy({ modes: modes({ suidexec: 'enforce' }) }));
      expect(await probe(USER, 'create', join(dir, 'other-policy'), '0666', '0')).to.equal('OK');
    });
  });
});
