/**
 * Tamper-proofing on the real kernel (bpf/krsi.bpf.c, section tamper): while an agent is registered and
 * alive, nobody but it and init may change its limits and scheduling, get a file descriptor on the set's
 * maps, programs and links, or change the read-only file system that holds the pins. Here the registered
 * "agent" of the specs' set is a test process of the restricted uid, so the kernel's own permission checks
 * let that uid act on it and any EPERM it meets comes from the LSM; root is refused by the LSM alone.
 * Every refusal is a killtasks decision: counted, and logged with its own type.
 */
import { expect } from 'chai';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { Enforcer, processStartTicks } from '../../agent/enforcement/enforcer.js';
import { withWritablePins } from '../../agent/enforcement/pin-fs.js';
import type { GuardKind } from '../../agent/enforcement/layout.js';
import { waitFor } from '../vm/pace.js';
import {
  OBJECT, OTHER, PIN_DIR, PROBE, SCRATCH, USER, checkAccounting, eventsSince, events, getEnforcer, modes, policy, probe, runAs,
  startTarget, type Target,
} from './fixture.js';

const RLIMIT_CPU = '0';
const RLIMIT_NOFILE = '7';

/** field `n` (1-based, as in proc(5)) of /proc/<pid>/stat */
function statField(pid: number, n: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[n - 3]!;
}

function guardedIds(kind: GuardKind): number[] {
  return getEnforcer().guardedObjects().filter((k) => k.kind === kind).map((k) => Number(k.id));
}

/** the ids bpftool lists for `what` (prog, map, link); bpftool must succeed */
async function bpftoolIds(what: 'prog' | 'map' | 'link'): Promise<number[]> {
  const r = await execa('bpftool', ['-j', what, 'show'], { reject: false });
  expect(r.exitCode, `bpftool ${what} show: ${r.stderr}`).to.equal(0);
  return (JSON.parse(r.stdout) as { id: number }[]).map((o) => o.id);
}


/** a path in this build's generation of the fixture's pins (pinDir/build-<id>/) */
function ownPin(sub: string): string {
  return join(getEnforcer().generationDir, sub);
}

describe('tamper (kernel): the agent and its own objects', function () {
  checkAccounting('killtasks');
  let target: Target;

  beforeEach(async () => {
    target = await startTarget(USER);
    getEnforcer().registerAgent(target.tgid);
  });
  afterEach(async () => {
    getEnforcer().unregisterAgent();
    target.proc.kill('SIGKILL');
    await target.proc;
  });

  describe('the agent process', () => {
    it('refuses resource limits on the agent, from root and from its own uid, on any thread; reading them is allowed', async () => {
      const from = events.length;
      expect(await probe(0, 'prlimit', String(target.tgid), RLIMIT_CPU, '1')).to.equal('ERR EPERM');
      expect(await probe(USER, 'prlimit', String(target.tids[0]), RLIMIT_NOFILE, '16')).to.equal('ERR EPERM');
      expect(await probe(0, 'getrlimit', String(target.tgid), RLIMIT_CPU)).to.equal('OK');
      expect(readFileSync(`/proc/${target.tgid}/limits`, 'utf8')).to.match(/^Max cpu time\s+unlimited\s+unlimited/m);
      const seen = await eventsSince(from, (e) => e.type === 'rlimit', 2);
      expect(seen.map((e) => [e.uid, e.targetTgid, e.targetPid, e.signal])).to.deep.equal([
        [0, target.tgid, target.tgid, 0], [USER, target.tgid, target.tids[0], 7],
      ]);
      expect(seen[0]).to.include({ policy: 'killtasks', decision: 'deny', targetUid: USER, name: 'krsi-probe' });
      // only while it is the registered agent
      getEnforcer().unregisterAgent();
      expect(await probe(USER, 'prlimit', String(target.tgid), RLIMIT_NOFILE, '512')).to.equal('OK');
    });

    it('refuses SCHED_IDLE, affinity and timer slack (setscheduler), nice on any thread or by uid, and I/O priority', async () => {
      const from = events.length;
      const nice = () => [target.tgid, ...target.tids].map((t) => statField(t, 19));
      const before = nice();
      expect(await probe(USER, 'sched-idle', String(target.tgid))).to.equal('ERR EPERM');
      expect(await probe(0, 'sched-affinity', String(target.tids[1]), '0')).to.equal('ERR EPERM');
      expect(await probe(0, 'timerslack', String(target.tgid), '1000000000')).to.equal('ERR EPERM');
      // 18, not 19: the same action again within a second (PRIO_USER below meets this thread) would fold
      expect(await probe(USER, 'setpriority', String(target.tgid), '18')).to.equal('ERR EPERM');
      expect(await probe(0, 'setpriority', String(target.tids[0]), '19')).to.equal('ERR EPERM');
      // every process of the uid: the others are reniced, the agent is not, and the call reports it
      expect(await probe(USER, 'setpriority-user', String(USER), '19')).to.equal('ERR EPERM');
      expect(await probe(USER, 'ioprio', String(target.tgid), '3', '0')).to.equal('ERR EPERM');
      expect(nice()).to.deep.equal(before);
      expect(statField(target.tgid, 41), 'scheduling policy (0: SCHED_OTHER)').to.equal('0');
      // PRIO_USER meets every thread of the uid: the agent's three are refused, one event each
      const seen = await eventsSince(from, (e) => ['setsched', 'setnice', 'ioprio'].includes(e.type), 9);
      expect(seen.map((e) => e.type)).to.deep.equal([...Array(3).fill('setsched'), ...Array(5).fill('setnice'), 'ioprio']);
      const niceEvents = seen.filter((e) => e.type === 'setnice');
      expect(niceEvents.map((e) => e.signal)).to.deep.equal([18, 19, 19, 19, 19]);
      expect(niceEvents.slice(2).map((e) => e.targetPid).sort()).to.deep.equal([target.tgid, ...target.tids].sort());
      expect(seen[8]!.signal, 'ioprio value: class 3 (idle) << 13').to.equal(3 << 13);
    });

    it('lets the agent change its own limits and nice value', async () => {
      for (const [what, args] of [['prlimit', [RLIMIT_CPU, '100000']], ['setpriority', ['5']]] as const) {
        // a shell that, once registered, execs into the probe: the same process acting on itself
        const self = execa('/bin/sh', ['-c', `read x; exec ${PROBE} ${what} $$ ${args.join(' ')}`], { uid: USER, gid: USER, reject: false });
        getEnforcer().registerAgent(self.pid!);
        self.stdin!.end('go\n');
        expect(String((await self).stdout).trim(), what).to.equal('OK');
      }
    });

    it('an entry whose start time is not the process\'s (pid reuse) does not make it the agent', async () => {
      getEnforcer().registerAgent(target.tgid, processStartTicks(target.tgid) + 1n);
      expect(await probe(USER, 'prlimit', String(target.tgid), RLIMIT_NOFILE, '512')).to.equal('OK');
    });

    it('ends with the agent: a thread exiting leaves the registration, the last thread clears it', async function () {
      // once registered (a line on stdin), it starts a thread that exits at once, and lives on
      const node = execa(process.execPath, ['-e', `
        const { Worker } = require('node:worker_threads');
        process.stdin.once('data', () => new Worker('0', { eval: true }).on('exit', () => console.log('worker gone')));
        setInterval(() => {}, 1000);`], { reject: false, buffer: false });
      let out = '';
      node.stdout!.on('data', (chunk: Buffer) => { out += chunk.toString(); });
      getEnforcer().registerAgent(node.pid!);
      node.stdin!.write('go\n');
      await waitFor('the worker thread of the registered process to exit', () => out.includes('worker gone'));
      expect(getEnforcer().registeredAgent().tgid).to.equal(node.pid);
      expect(await probe(0, 'bpf-get-id', 'map', String(guardedIds('map')[0]))).to.equal('ERR ENOENT');
      node.kill('SIGKILL');
      await node;
      await waitFor('the kernel to clear the registration of the dead agent', () => getEnforcer().registeredAgent().tgid === 0);
      expect(await probe(0, 'bpf-get-id', 'map', String(guardedIds('map')[0]))).to.equal('OK');
    });
  });

  describe('file descriptors on the set\'s maps, programs and links', () => {
    it('by id: ENOENT for every map, program and link, logged; the same ids open once no agent is registered', async () => {
      const from = events.length;
      const [map, prog, link] = [guardedIds('map'), guardedIds('prog'), guardedIds('link')];
      expect([map.length, prog.length, link.length].every((n) => n > 0)).to.equal(true);
      expect(await probe(0, 'bpf-get-id', 'map', String(map[0]))).to.equal('ERR ENOENT');
      expect(await probe(0, 'bpf-get-id', 'prog', String(prog[0]))).to.equal('ERR ENOENT');
      expect(await probe(0, 'bpf-get-id', 'link', String(link[0]))).to.equal('ERR ENOENT');
      const seen = await eventsSince(from, (e) => e.type === 'bpfid', 3);
      expect(seen.map((e) => [Number(e.ino), e.signal])).to.deep.equal([[map[0], 14], [prog[0], 13], [link[0], 30]]);
      getEnforcer().unregisterAgent();
      for (const [kind, id] of [['map', map[0]], ['prog', prog[0]], ['link', link[0]]] as const) {
        expect(await probe(0, 'bpf-get-id', kind, String(id)), kind).to.equal('OK');
      }
    });

    it('bpftool prog, map and link show keep working and list everything but the set\'s own objects', async () => {
      const unrelated = '/sys/fs/bpf/krsi-unrelated-map';
      rmSync(unrelated, { force: true });
      expect(await probe(0, 'bpf-pin-new', unrelated)).to.equal('OK');
      try {
        const unrelatedId = Number((await execa('bpftool', ['-j', 'map', 'show', 'pinned', unrelated])).stdout.match(/"id":(\d+)/)![1]);
        for (const [what, kind] of [['prog', 'prog'], ['map', 'map'], ['link', 'link']] as const) {
          const listed = await bpftoolIds(what);
          expect(listed.filter((id) => guardedIds(kind).includes(id)), `${what}s of the set listed by bpftool`).to.deep.equal([]);
          if (what === 'map') expect(listed).to.include(unrelatedId);
        }
        getEnforcer().unregisterAgent();
        expect(await bpftoolIds('map')).to.include.members(guardedIds('map'));
        expect(await bpftoolIds('prog')).to.include.members(guardedIds('prog'));
      } finally {
        rmSync(unrelated, { force: true });
      }
    });

    it('by pin: EPERM for a map or program pinned anywhere; on the set\'s read-only pins even opening is refused', async () => {
      const copies = { map: '/sys/fs/bpf/krsi-map-copy', prog: '/sys/fs/bpf/krsi-prog-copy' };
      for (const path of Object.values(copies)) rmSync(path, { force: true });
      // while no agent is registered, root may pin the set's objects elsewhere (the window a new agent uses)
      getEnforcer().unregisterAgent();
      expect(await probe(0, 'bpf-get-id', 'map', String(guardedIds('map')[0]), copies.map)).to.equal('OK');
      expect(await probe(0, 'bpf-get-id', 'prog', String(guardedIds('prog')[0]), copies.prog)).to.equal('OK');
      getEnforcer().registerAgent(target.tgid);
      try {
        const from = events.length;
        expect(await probe(0, 'bpf-obj-get', copies.map)).to.equal('ERR EPERM');
        expect(await probe(0, 'bpf-obj-get', copies.prog)).to.equal('ERR EPERM');
        expect(await probe(0, 'bpf-obj-get', ownPin('maps/uid_policy'), 'rdonly')).to.equal('ERR EPERM');
        // a read-write open is a write access to the read-only pins' file system: refused before any hook
        expect(await probe(0, 'bpf-obj-get', ownPin('maps/uid_policy'))).to.equal('ERR EROFS');
        // a link opens only read-write: no fd on a pinned link, so nothing to detach or update with
        expect(await probe(0, 'bpf-link-detach', ownPin('links/krsi_task_kill'))).to.equal('ERR EROFS');
        const seen = await eventsSince(from, (e) => e.type === 'bpfmap' || e.type === 'bpfprog', 3);
        expect(seen.map((e) => e.type)).to.deep.equal(['bpfmap', 'bpfprog', 'bpfmap']);
        expect(seen.slice(0, 2).map((e) => Number(e.ino))).to.deep.equal([guardedIds('map')[0], guardedIds('prog')[0]]);
        expect(guardedIds('map')).to.include(Number(seen[2]!.ino));
        expect(seen[1]!.name).to.match(/^krsi_/);
        expect(seen[2]!.name).to.equal('uid_policy');
      } finally {
        for (const path of Object.values(copies)) rmSync(path, { force: true });
      }
    });
  });

  describe('the pins\' file system', () => {
    it('is read-only: no pin can be removed, renamed or replaced, by root, in any mount namespace', async () => {
      const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === PIN_DIR);
      expect(mounts, 'the pin directory is a mount of its own').to.be.a('string');
      expect(mounts).to.match(/ - bpf \S+ ro\b/);
      expect(await probe(0, 'unlink', ownPin('maps/uid_policy'))).to.equal('ERR EROFS');
      expect(await probe(0, 'rename', ownPin('links/krsi_task_kill'), ownPin('links/x'))).to.equal('ERR EROFS');
      expect(await probe(0, 'rename', ownPin('links/krsi_task_kill'), '/sys/fs/bpf/krsi-stolen')).to.equal('ERR EXDEV');
      expect(await probe(0, 'rmdir', ownPin('links'))).to.equal('ERR EROFS');
      expect(await probe(0, 'bpf-pin-new', ownPin('links/decoy'))).to.equal('ERR EROFS');
      expect(await probe(0, 'link', ownPin('links/krsi_task_kill'), ownPin('links/again'))).to.equal('ERR EROFS');
      const r = await runAs(0, 'unshare', ['-m', '--propagation', 'private', PROBE, 'unlink', ownPin('links/krsi_task_kill')]);
      expect(r.stdout).to.equal('ERR EROFS');
    });

    it('refuses a remount (mount(2) and fsconfig), an unmount (lazy too, and in a private namespace), a mount over it and a move', async () => {
      const from = events.length;
      const denied = (): bigint => getEnforcer().counters().killtasks.deny;
      const deniedBefore = denied();
      const away = join(SCRATCH, 'pins-moved');
      mkdirSync(away, { recursive: true });
      expect(await probe(0, 'remount-rw', PIN_DIR)).to.equal('ERR EPERM');
      expect(await probe(0, 'fsconfig-rw', PIN_DIR)).to.equal('ERR EPERM');
      expect(await probe(0, 'umount', PIN_DIR)).to.equal('ERR EPERM');
      expect(await probe(0, 'umount', PIN_DIR, 'lazy')).to.equal('ERR EPERM');
      expect((await runAs(0, 'unshare', ['-m', '--propagation', 'private', PROBE, 'umount', PIN_DIR, 'lazy'])).stdout).to.equal('ERR EPERM');
      expect(await probe(0, 'mount-over', ownPin('links'))).to.equal('ERR EPERM');
      expect(await probe(0, 'move-mount', PIN_DIR, away)).to.equal('ERR EPERM');
      expect(await probe(0, 'move-mount', '/tmp', ownPin('maps'), 'clone')).to.equal('ERR EPERM');
      // eight refusals, each counted; one action repeated within a second folds into that action's event:
      // mount(2) MS_REMOUNT passes sb_mount and is refused where fsconfig's reconfigure is, in sb_remount (one
      // action), the lazy unmount in a namespace of its own is the lazy unmount again, and the two moves
      // are one action on the pins' file system
      expect(denied() - deniedBefore, 'refusals counted').to.equal(8n);
      const seen = await eventsSince(from, (e) => ['mount', 'remount', 'umount', 'movemount'].includes(e.type), 5);
      expect(seen.map((e) => e.type)).to.deep.equal(['remount', 'umount', 'umount', 'mount', 'movemount']);
      const pinFsDev = getEnforcer().guardedObjects().find((k) => k.kind === 'pin_fs')!.dev;
      expect(seen.every((e) => e.dev === pinFsDev && e.uid === 0)).to.equal(true);
      expect(seen[2]!.signal, 'MNT_DETACH').to.equal(2);
      // with no agent registered, root may (that is how the next agent opens the pins)
      getEnforcer().unregisterAgent();
      expect(await probe(0, 'remount-rw', PIN_DIR)).to.equal('OK');
      withWritablePins(PIN_DIR, () => undefined); // and read-only again
    });

    it('lets through a bind remount and a propagation change of one mount (systemd\'s ProtectSystem=): the file system stays read-only', async () => {
      const denied = (): bigint => getEnforcer().counters().killtasks.deny;
      const deniedBefore = denied();
      const pin = ownPin('links/krsi_task_kill');
      // in a namespace of its own, as systemd sets up a service's: each step one probe, one line of output
      const steps = [['bind-remount', PIN_DIR, 'ro'], ['make-private', PIN_DIR], ['bind-remount', PIN_DIR, 'rw'], ['unlink', pin]];
      const script = steps.map((args) => [PROBE, ...args].join(' ')).join('; ');
      const r = await runAs(0, 'unshare', ['-m', '--propagation', 'private', '/bin/sh', '-c', script]);
      expect(r.stdout.split('\n'), r.stderr).to.deep.equal(['OK', 'OK', 'OK', 'ERR EROFS']);
      expect(existsSync(pin), 'the pin is still there').to.equal(true);
      // the kernel counts every decision as it makes it: none of the steps was refused
      expect(denied(), 'killtasks refusals during the steps').to.equal(deniedBefore);
      // and a refusal is still counted right after them
      expect(await probe(0, 'umount', PIN_DIR)).to.equal('ERR EPERM');
      expect(denied() - deniedBefore).to.equal(1n);
    });

    it('a lazy unmount of a file system above the pins leaves them, and their programs, alive while the agent holds them', async function () {
      const parent = join(SCRATCH, 'lazy-parent');
      const file = join(SCRATCH, `lazy-${OTHER}`);
      mkdirSync(parent, { recursive: true });
      await execa('mount', ['-t', 'tmpfs', 'krsi-lazy', parent]);
      // a second set of programs, pinned under that tmpfs, holding uid OTHER to fileperms enforce
      const second = Enforcer.open({ objectPath: OBJECT, pinDir: join(parent, 'pins') });
      let closed = false;
      try {
        second.setUidPolicy(OTHER, policy({ modes: modes({ fileperms: 'enforce' }) }));
        expect(await probe(OTHER, 'create', file, '0666', '0')).to.equal('ERR EPERM');
        await execa('umount', ['-l', parent]); // not the pins' fs: no hook sees it
        expect(readFileSync('/proc/self/mountinfo', 'utf8')).to.not.include(join(parent, 'pins'));
        expect(await probe(OTHER, 'create', file, '0666', '0'), 'still enforced after the lazy unmount').to.equal('ERR EPERM');
        await second.close();
        closed = true;
        await waitFor('the programs to stop once nothing holds the pins\' file system', async () =>
          (await probe(OTHER, 'create', file, '0666', '0')) === 'OK');
      } finally {
        if (!closed) await second.close();
        rmSync(file, { force: true });
        await execa('umount', [parent], { reject: false });
      }
    });
  });
});
