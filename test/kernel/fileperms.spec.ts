/**
 * fileperms on the real kernel: no S_ISUID, S_ISGID or S_IWOTH created or added by a restricted uid,
 * through any syscall that creates an inode or changes its mode, judged on the mode the inode really
 * gets: the umask or a parent's default ACL, POSIX ACLs of any length, O_TMPFILE, and what overlayfs
 * does on the user's behalf when it copies up in a user namespace the user made.
 */
import { expect } from 'chai';
import { chownSync, existsSync, mkdirSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { scaled } from '../vm/pace.js';
import {
  OTHER, SCRATCH, USER, checkAccounting, eventsSince, events, getEnforcer, modes, mountLoopExt4, policy, probe, runAs,
  shellAs, userDir, type RunResult,
} from './fixture.js';

const mode = (path: string) => statSync(path).mode & 0o7777;

/** the uid's fileperms policy lifted for the duration of `prepare`: what the user did before the job */
async function beforeTheJob(prepare: () => Promise<void>): Promise<void> {
  getEnforcer().clearUidPolicy(USER);
  try {
    await prepare();
  } finally {
    getEnforcer().setUidPolicy(USER, policy({ modes: modes({ fileperms: 'enforce' }) }));
  }
}

/**
 * As `uid`, in a new user and mount namespace where it is root (unshare -Urm, as rootless containers
 * do), mount an overlay of `lower` with a fresh upper and work directory of its own under SCRATCH (a
 * node-local tmpfs, visible to every user outside the namespace), then run `command` in sh with $M the
 * merged directory and umask 022.
 */
async function inUserOverlay(uid: number, lower: string, command: string): Promise<RunResult & { upper: string }> {
  const base = join(SCRATCH, `ovl-${uid}`);
  rmSync(base, { recursive: true, force: true });
  const [upper, work, merged] = ['upper', 'work', 'merged'].map((d) => join(base, d)) as [string, string, string];
  for (const d of [base, upper, work, merged]) {
    mkdirSync(d);
    chownSync(d, uid, uid);
  }
  const mount = `mount -t overlay overlay -o lowerdir=${lower},upperdir=${upper},workdir=${work},userxattr ${merged}`;
  const r = await runAs(uid, 'unshare', ['-Urm', 'sh', '-c', `umask 022 && ${mount} && M=${merged} && ${command}`]);
  return { ...r, upper };
}

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
      expect(e!.umask).to.equal(0);
      expect(e!.newMode).to.equal(0o100666);
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

  describe('the mode the inode really gets: a default ACL instead of the umask', () => {
    /** a directory whose default ACL grants other rwx; the kernel then ignores the umask below it */
    async function openDefaultAcl(uid: number, path: string, dirMode: string): Promise<void> {
      expect((await shellAs(uid, '022', `mkdir -m ${dirMode} ${path} && setfacl -d -m o::rwx ${path}`)).exitCode).to.equal(0);
    }

    it('a directory the user prepared before the job: files, directories and fifos under it are denied under umask 022', async () => {
      const shared = join(dir, 'made-before');
      await beforeTheJob(async () => {
        await openDefaultAcl(USER, shared, '0755');
        // what the kernel does there: the umask does not apply, the new file is world-writable (the
        // default ACL's group entry, r-x from the directory's 0755, masks the group bits instead)
        expect(await probe(USER, 'create', join(shared, 'before'), '0666', '022')).to.equal('OK');
        expect(mode(join(shared, 'before'))).to.equal(0o646);
      });
      const from = events.length;
      expect(await probe(USER, 'create', join(shared, 'f'), '0666', '022')).to.equal('ERR EPERM');
      expect(existsSync(join(shared, 'f'))).to.equal(false);
      const [e] = await eventsSince(from, (x) => x.type === 'creat' && x.name === 'f');
      expect(e).to.include({ decision: 'deny', uid: USER, umask: 0o022, newMode: 0o100646 });
      expect(await probe(USER, 'mkdir', join(shared, 'd'), '0777', '022')).to.equal('ERR EPERM');
      expect(await probe(USER, 'mkfifo', join(shared, 'p'), '0666', '022')).to.equal('ERR EPERM');
      await eventsSince(from, (x) => x.policy === 'fileperms' && x.uid === USER, 3);
    });

    it('a directory someone else (root) prepared: denied the same way', async () => {
      const shared = join(SCRATCH, 'root-made-default-acl');
      rmSync(shared, { recursive: true, force: true });
      await openDefaultAcl(0, shared, '0777');
      expect(await probe(USER, 'create', join(shared, 'f'), '0644', '022')).to.equal('OK');
      expect(await probe(USER, 'create', join(shared, 'g'), '0666', '022')).to.equal('ERR EPERM');
      expect(await probe(USER, 'mkdir', join(shared, 'd'), '0777', '077')).to.equal('ERR EPERM');
    });

    it('modes the default ACL does not open are allowed, and one that narrows o+w allows 0666 under umask 0', async () => {
      const shared = join(dir, 'narrowing');
      await beforeTheJob(async () => {
        await openDefaultAcl(USER, join(dir, 'open'), '0755');
        expect((await shellAs(USER, '022', `mkdir ${shared} && setfacl -d -m o::r-x ${shared}`)).exitCode).to.equal(0);
      });
      const from = events.length;
      expect(await probe(USER, 'create', join(dir, 'open', 'private'), '0600', '022')).to.equal('OK');
      expect(await probe(USER, 'create', join(dir, 'open', 'readable'), '0644', '0')).to.equal('OK');
      expect(await probe(USER, 'mkdir', join(dir, 'open', 'sub'), '0755', '022')).to.equal('OK');
      // the paper's rule (0666 & ~0) would deny this; the inode really gets 0644
      expect(await probe(USER, 'create', join(shared, 'f'), '0666', '0')).to.equal('OK');
      expect(mode(join(shared, 'f'))).to.equal(0o644);
      expect(events.slice(from).filter((e) => e.policy === 'fileperms')).to.have.length(0);
    });

    it('O_TMPFILE under such a directory is denied when it is linked into place', async () => {
      const shared = join(dir, 'tmpfile-default-acl');
      await beforeTheJob(() => openDefaultAcl(USER, shared, '0755'));
      expect(await probe(USER, 'tmpfile-link', shared, '0666', join(shared, 'linked'), '022')).to.equal('ERR EPERM');
      expect(existsSync(join(shared, 'linked'))).to.equal(false);
      expect(await probe(USER, 'tmpfile-link', shared, '0640', join(shared, 'linked-ok'), '022')).to.equal('OK');
    });

    describe('on ext4 (a directory root prepared, ACLs kept in xattr blocks)', () => {
      let mnt: string;
      let unmount: () => Promise<void>;

      before(async function () {
        this.timeout(scaled(120_000));
        ({ mnt, unmount } = await mountLoopExt4('fileperms'));
        chmodSync(mnt, 0o755);
        await openDefaultAcl(0, join(mnt, 'shared'), '0777');
      });
      after(async () => {
        await unmount();
      });

      it('denies files and directories that would get other write from the default ACL, allows the rest', async () => {
        expect(await probe(USER, 'create', join(mnt, 'shared', 'f'), '0666', '022')).to.equal('ERR EPERM');
        expect(await probe(USER, 'mkdir', join(mnt, 'shared', 'd'), '0777', '022')).to.equal('ERR EPERM');
        expect(await probe(USER, 'create', join(mnt, 'shared', 'ok'), '0640', '022')).to.equal('OK');
        expect(mode(join(mnt, 'shared', 'ok'))).to.equal(0o640);
      });
    });
  });

  describe('set-gid directories', () => {
    let project: string;
    beforeEach(() => {
      project = join(dir, 'project');
      mkdirSync(project);
      chownSync(project, USER, USER);
      chmodSync(project, 0o2775); // a group project directory, made by the admin
    });

    it('a new directory inherits the set-gid bit from its parent: the kernel\'s doing, allowed', async () => {
      const from = events.length;
      expect(await probe(USER, 'mkdir', join(project, 'sub'), '0755', '022')).to.equal('OK');
      expect(mode(join(project, 'sub'))).to.equal(0o2755);
      expect(await probe(USER, 'create', join(project, 'data'), '0666', '022')).to.equal('OK');
      expect(mode(join(project, 'data'))).to.equal(0o644);
      expect(events.slice(from).filter((e) => e.policy === 'fileperms')).to.have.length(0);
    });

    it('what the user asks for is still denied there: a set-gid file, a world-writable subdirectory', async () => {
      expect(await probe(USER, 'create', join(project, 'sgid-file'), '02755', '022')).to.equal('ERR EPERM');
      expect(await probe(USER, 'mkdir', join(project, 'open'), '0777', '0')).to.equal('ERR EPERM');
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
      expect((await shellAs(USER, '022', `setfacl -b ${path}`)).exitCode).to.equal(0);
    });

    it('judges ACLs of any length: 200 named users, access and default, the "other" entry last', async () => {
      const from = events.length;
      expect(await probe(USER, 'setacl', path, '6', 'access', '200')).to.equal('ERR EPERM');
      expect(await probe(USER, 'setacl', dir, '7', 'default', '200')).to.equal('ERR EPERM');
      await eventsSince(from, (x) => x.type === 'setacl' && x.reqMode === 0o2, 2);
      expect(await probe(USER, 'setacl', path, '4', 'access', '200')).to.equal('OK');
      expect(await probe(USER, 'setacl', dir, '5', 'default', '200')).to.equal('OK');
      const r = await shellAs(USER, '022', `getfacl -p ${path} | grep -c '^user:[0-9]'`);
      expect(r.stdout).to.equal('200');
    });

    it('an access ACL keeping other write the inode already has is allowed, like chmod', async () => {
      const legacy = join(dir, 'legacy-acl');
      writeFileSync(legacy, '');
      chownSync(legacy, USER, USER);
      chmodSync(legacy, 0o666);
      expect(await probe(USER, 'setacl', legacy, '6', 'access', '3')).to.equal('OK');
    });

    it('refuses values it cannot judge, which the kernel would not take as an ACL either', async () => {
      // a header and three entries (user::rw-, group::r--, other::r--), one byte short; then the
      // entries out of order, "other" not last
      const header = '02000000';
      const entry = (tag: number, perm: number) => `${tag.toString(16).padStart(2, '0')}00${perm.toString(16).padStart(2, '0')}00ffffffff`;
      const short = header + entry(1, 6) + entry(4, 4) + entry(0x20, 4).slice(0, -2);
      const unordered = header + entry(1, 6) + entry(0x20, 4) + entry(4, 4);
      for (const value of [short, unordered]) {
        expect(await probe(USER, 'setxattr', path, 'system.posix_acl_access', value)).to.equal('ERR EPERM');
        expect(await probe(0, 'setxattr', path, 'system.posix_acl_access', value)).to.equal('ERR EINVAL');
      }
    });

    it('refuses NFSv4 and SMB ACLs, which it does not parse (EVERYONE@ may be granted write)', async () => {
      expect(await probe(USER, 'setxattr', path, 'system.nfs4_acl', '00000000')).to.equal('ERR EPERM');
      expect(await probe(USER, 'setxattr', path, 'system.cifs_acl', '00000000')).to.equal('ERR EPERM');
      // not an NFS file system: the kernel itself answers "not supported" to anyone else
      expect(await probe(0, 'setxattr', path, 'system.nfs4_acl', '00000000')).to.equal('ERR EOPNOTSUPP');
    });
  });

  describe('overlayfs copy-up in an unprivileged user namespace (the user\'s own overlay, upper layer on a node-local tmpfs)', () => {
    const lower = join(SCRATCH, 'ovl-lower');
    before(async () => {
      // prepared by root before the job, owned by the user (so that the user's namespace maps the owner)
      rmSync(lower, { recursive: true, force: true });
      for (const [name, m] of [['', 0o755], ['ww', 0o1777], ['sg', 0o2775], ['dacl', 0o755], ['plain', 0o755]] as const) {
        mkdirSync(join(lower, name), { recursive: true });
        chmodSync(join(lower, name), m);
      }
      await execa('setfacl', ['-d', '-m', 'o::rwx', join(lower, 'dacl')]);
      for (const [name, m] of [['f-ww', 0o666], ['f-plain', 0o644]] as const) {
        writeFileSync(join(lower, name), 'x');
        chmodSync(join(lower, name), m);
      }
      await execa('chown', ['-R', `${USER}:${USER}`, lower]);
    });

    it('without the policy, copy-up recreates the lower modes and ACLs in the user\'s upper layer (the attack works)', async () => {
      getEnforcer().clearUidPolicy(USER);
      const r = await inUserOverlay(USER, lower, 'touch $M/ww/x $M/sg/x $M/dacl/x && echo >> $M/f-ww');
      expect(r.exitCode, r.stderr).to.equal(0);
      expect(mode(join(r.upper, 'ww'))).to.equal(0o1777);
      expect(mode(join(r.upper, 'sg')) & 0o2000).to.equal(0o2000);
      expect(mode(join(r.upper, 'dacl', 'x'))).to.equal(0o646);
      expect(mode(join(r.upper, 'f-ww'))).to.equal(0o666);
    });

    const denied: [string, string, string][] = [
      ['a world-writable sticky (1777) directory', 'touch $M/ww/x', 'ww'],
      ['a set-gid directory', 'touch $M/sg/x', 'sg'],
      ['a directory whose default ACL grants other write (overlayfs copies the ACL xattr)', 'touch $M/dacl/x', 'dacl'],
      ['a world-writable file (overlayfs copies it through O_TMPFILE, then sets its mode)', 'echo >> $M/f-ww', 'f-ww'],
    ];
    for (const [title, command, name] of denied) {
      it(`denies copying up ${title}`, async () => {
        const from = events.length;
        const r = await inUserOverlay(USER, lower, command);
        expect(r.exitCode).to.not.equal(0);
        expect(r.stderr).to.match(/Operation not permitted/);
        expect(existsSync(join(r.upper, name))).to.equal(false);
        const [e] = await eventsSince(from, (x) => x.policy === 'fileperms');
        expect(e).to.include({ decision: 'deny', uid: USER });
      });
    }

    it('allows copying up ordinary directories and files', async () => {
      const r = await inUserOverlay(USER, lower, 'touch $M/plain/x && echo >> $M/f-plain');
      expect(r.exitCode, r.stderr).to.equal(0);
      expect(mode(join(r.upper, 'plain'))).to.equal(0o755);
      expect(mode(join(r.upper, 'f-plain'))).to.equal(0o644);
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
