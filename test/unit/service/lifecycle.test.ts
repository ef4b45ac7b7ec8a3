/** The smaller pieces of the agent's lifecycle: one instance, bounded opens, the boot clock, bad ring records, daemons' entries. */
import { expect } from 'chai';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { chmodSync, closeSync, copyFileSync, existsSync, mkdtempSync, openSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BoundedOpener, OpenTimeout } from '../../../agent/enforcement/bounded-open.js';
import { LAYOUT, type ProtectValue } from '../../../agent/enforcement/layout.js';
import { BootClock } from '../../../agent/events/clock.js';
import { EventPipeline } from '../../../agent/events/pipeline.js';
import { memoryLogger } from '../../../agent/log/logger.js';
import { PACKAGE_ROOT } from '../../../agent/paths.js';
import { AccountLookupError, accountGid, accountUid } from '../../../agent/service/accounts.js';
import { DaemonProtector, type ProtectionMap } from '../../../agent/service/daemons.js';
import { AlreadyRunning, lockPath, takeInstanceLock } from '../../../agent/service/lock.js';

describe('single instance: the lock in the state directory', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'krsi-lock-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('a second holder is refused, naming the first; released, it can be taken again', () => {
    const release = takeInstanceLock(dir);
    expect(() => takeInstanceLock(dir)).to.throw(AlreadyRunning, `another krsi-agent (pid ${process.pid}) holds ${lockPath(dir)}`);
    release();
    takeInstanceLock(dir)();
  });

  it('a second krsi-agent exits 5 before touching anything: no socket, no state', async () => {
    const release = takeInstanceLock(dir);
    const socket = join(dir, 'agent.sock');
    const ini = join(dir, 'krsi.ini');
    writeFileSync(ini, `[agent]\nstate_dir = ${dir}\nsocket = ${socket}\nevent_log = off\n[profile default]\nfileperms = audit\n`);
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      execFile(process.execPath, ['--import', 'tsx/esm', join(PACKAGE_ROOT, 'agent/main.ts'), '--config', ini], { cwd: PACKAGE_ROOT }, (err, _out, stderr) =>
        resolve({ code: err ? (err as { code?: number }).code ?? null : 0, stderr }));
    });
    release();
    expect(r.code).to.equal(5);
    expect(r.stderr).to.include(`krsi-agent: another krsi-agent (pid ${process.pid}) holds ${lockPath(dir)}: this one exits without touching anything`);
    expect(existsSync(socket)).to.equal(false);
    expect(readdirSync(dir).sort()).to.deep.equal(['agent.lock', 'krsi.ini']);
  });
});

describe('bounded open (a stuck file system cannot hang the agent)', () => {
  let dir: string;
  let opener: BoundedOpener;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'krsi-open-'));
    // the deadline covers a worker's start too: on a loaded machine that alone can take a few hundred ms
    opener = new BoundedOpener(1500);
  });
  afterEach(async () => {
    await opener.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('opens, and reports a missing file by its errno', async () => {
    writeFileSync(join(dir, 'f'), 'x');
    const fd = await opener.open(join(dir, 'f'));
    expect(readlinkSync(`/proc/self/fd/${fd}`)).to.equal(join(dir, 'f'));
    closeSync(fd);
    const err = await opener.open(join(dir, 'missing')).catch((e: unknown) => e);
    expect((err as NodeJS.ErrnoException).code).to.equal('ENOENT');
  });

  it('a descriptor it returned stays the caller\'s when the worker ends (Node closes a worker\'s own fds at its exit)', async () => {
    writeFileSync(join(dir, 'f'), 'x');
    const fd = await opener.open(join(dir, 'f'));
    await opener.close();
    expect(readlinkSync(`/proc/self/fd/${fd}`), 'still open after the worker ended').to.equal(join(dir, 'f'));
    closeSync(fd);
  });

  it('an open that blocks in the kernel is given up after the deadline; the next open works, and the late descriptor is closed', async () => {
    // opening a fifo for reading blocks until a writer comes: a real blocking open(2)
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const t0 = Date.now();
    const err = await opener.open(fifo, 0 /* O_RDONLY */).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(OpenTimeout);
    expect(Date.now() - t0).to.be.below(5000);
    expect(opener.stuckWorkers).to.equal(1);
    writeFileSync(join(dir, 'g'), 'x');
    closeSync(await opener.open(join(dir, 'g')));
    const fdsBefore = readdirSync('/proc/self/fd').length;
    const writer = openSync(fifo, 'w'); // unblocks the stuck open
    closeSync(writer);
    const deadline = Date.now() + 5000;
    while (opener.stuckWorkers > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(opener.stuckWorkers).to.equal(0);
    expect(readdirSync('/proc/self/fd').length).to.be.at.most(fdsBefore);
  });
});

describe('boot clock', () => {
  it('refresh() follows a step of the wall clock and says by how much', () => {
    let offset = 1_000_000_000_000n;
    const clock = new BootClock(() => offset);
    expect(clock.toMs(5_000_000n)).to.equal(1_000_005);
    offset += 5_000_000n; // NTP slewing at 500 ppm for 10 s: followed, but not a step
    expect(clock.refresh()).to.equal(0n);
    expect(clock.toMs(5_000_000n)).to.equal(1_000_010);
    offset += 3_600_000_000_000n; // an hour forward
    expect(clock.refresh()).to.equal(3_600_000_000_000n);
    expect(clock.toMs(5_000_000n)).to.equal(4_600_010);
  });
});

describe('event pipeline: a record that cannot be read', () => {
  it('is counted and skipped, reported once, and the next record is handled', () => {
    const errors: string[] = [];
    const lines: string[] = [];
    const p = new EventPipeline({ clock: new BootClock(() => 0n), jobOf: () => '', windowSize: 4, logPath: null, writeStdout: (l) => lines.push(l), onBadRecord: (e) => errors.push(e.message) });
    expect(p.handle(Buffer.alloc(8))).to.equal(0);
    expect(p.handle(Buffer.alloc(3))).to.equal(0);
    const good = Buffer.alloc(LAYOUT.krsi_event.size);
    expect(p.handle(good)).to.equal(1);
    p.flush();
    expect(p.malformedCount()).to.equal(2);
    expect(errors).to.have.length(1);
    expect(errors[0]).to.match(/8 bytes, expected/);
    expect(lines).to.have.length(1);
  });
});

describe('daemons\' protected entries across agent restarts', () => {
  it('entries of scope policy left by a previous agent are re-checked: a daemon still running gets its entry written anew, a gone one loses it', async () => {
    // a daemon of our own: a copy of sleep, so that no other process on the machine shares its executable
    const dir = mkdtempSync(join(tmpdir(), 'krsi-daemon-'));
    const exe = join(dir, 'krsi-test-daemon');
    copyFileSync('/bin/sleep', exe);
    chmodSync(exe, 0o755);
    const sleeper = spawn(exe, ['30']);
    await new Promise((resolve) => sleeper.once('spawn', resolve));
    try {
      const entries = new Map<number, ProtectValue>([
        // a start time that is not the running process's (the daemon restarted under the same pid)
        [sleeper.pid!, { startTicks: 1n, scope: 'policy', mode: 'enforce' }],
        [999_999, { startTicks: 1n, scope: 'policy', mode: 'enforce' }], // a daemon that is gone
        [process.pid, { startTicks: 1n, scope: 'all', mode: 'enforce' }], // the agent's own: not the protector's
      ]);
      const map: ProtectionMap = {
        protect: (pid, scope) => void entries.set(pid, { startTicks: 2n, scope, mode: 'enforce' }),
        unprotect: (pid) => entries.delete(pid),
        protectedPids: () => new Map(entries),
      };
      const protector = new DaemonProtector(map, () => [exe], memoryLogger());
      protector.start();
      protector.stop();
      expect([...entries.keys()].sort((a, b) => a - b)).to.deep.equal([process.pid, sleeper.pid!].sort((a, b) => a - b));
      expect(entries.get(sleeper.pid!), 'the running daemon\'s entry is written anew').to.deep.equal({ startTicks: 2n, scope: 'policy', mode: 'enforce' });
      expect(entries.get(process.pid)!.startTicks, 'the agent\'s own entry is not the protector\'s').to.equal(1n);
    } finally {
      sleeper.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('accounts (getent in a child process, bounded in time)', () => {
  it('resolves names and numbers; an unknown name is null', async () => {
    expect(await accountUid('root')).to.equal(0);
    expect(await accountUid('1234')).to.equal(1234);
    expect(await accountUid('no-such-user-krsi')).to.equal(null);
  });

  it('a getent that does not answer (a directory server down) fails within the timeout, naming the lookup', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'krsi-getent-'));
    writeFileSync(join(dir, 'getent'), '#!/bin/sh\nexec sleep 30\n');
    chmodSync(join(dir, 'getent'), 0o755);
    const path = process.env.PATH;
    process.env.PATH = `${dir}:${path ?? ''}`;
    try {
      const t0 = Date.now();
      const err = await accountGid('hpcadmin', 300).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(AccountLookupError);
      expect((err as Error).message).to.equal('getent group hpcadmin did not answer within 300 ms');
      expect(Date.now() - t0).to.be.below(5000);
    } finally {
      process.env.PATH = path;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
