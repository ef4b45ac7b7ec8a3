import { expect } from 'chai';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LAYOUT, decodeEvent, type KrsiEvent } from '../../../agent/enforcement/layout.js';
import { BootClock } from '../../../agent/events/clock.js';
import { formatEvent, logValue } from '../../../agent/events/format.js';
import { EventPipeline } from '../../../agent/events/pipeline.js';

function event(over: Partial<KrsiEvent> = {}): KrsiEvent {
  return { ...decodeEvent(Buffer.alloc(LAYOUT.krsi_event.size)), type: 'chmod', uid: 1000, gid: 1000, pid: 7, tid: 7, comm: 'chmod', ...over };
}

describe('event log lines', () => {
  it('quote and escape what users control, so no field or line can be forged', () => {
    expect(logValue('chmod')).to.equal('chmod');
    expect(logValue('x act=allow')).to.equal('"x act=allow"');
    expect(logValue('a"b\\c')).to.equal('"a\\"b\\\\c"');
    expect(logValue('evil\nts=0 act=allow')).to.equal('"evil\\nts=0 act=allow"');
    expect(logValue('\x1b[31m')).to.equal('"\\x1b[31m"');
    expect(logValue('')).to.equal('""');
    const line = formatEvent(event({ comm: 'x act=allow', name: 'f\nuid=0' }), { time: new Date(0), job: '42' });
    expect(line.split('\n')).to.have.length(1);
    // what a log parser sees: key=value pairs, values bare or double-quoted with backslash escapes
    const pairs = [...line.matchAll(/(\w+)=("(?:[^"\\]|\\.)*"|\S*)/g)].map((m) => [m[1], m[2]]);
    expect(pairs.filter(([k]) => k === 'act')).to.deep.equal([['act', 'deny']]);
    expect(pairs.filter(([k]) => k === 'uid')).to.deep.equal([['uid', '1000']]);
    expect(pairs.find(([k]) => k === 'comm')).to.deep.equal(['comm', '"x act=allow"']);
  });

  it("carry the paper's fields in order, the hook's own fields, the job and the policy", () => {
    const line = formatEvent(event({ oldMode: 0o100664, newMode: 0o104664, dev: 42, ino: 99n, name: 'suidfile' }), { time: new Date(0), job: '42' });
    expect(line).to.equal(
      'ts=1970-01-01T00:00:00.000Z type=chmod policy=fileperms comm=chmod uid=1000 gid=1000 pid=7 tid=7 job=42 ' +
        'name=suidfile dev=42 inode=99 oldmode=100664 newmode=104664 act=deny',
    );
  });

  it('every event type: the exact line (fields, order, quoting)', () => {
    const cases: [Partial<KrsiEvent>, string][] = [
      [{ type: 'creat', name: 'w f', reqMode: 0o100666, umask: 0, newMode: 0o100666 }, '42,43'],
      [{ type: 'creat', name: 'g', reqMode: 0, umask: 0o22, newMode: 0o100646 }, '7'],
      [{ type: 'mkdir', policy: 'fileperms', decision: 'audit', name: 'd', reqMode: 0o40777, umask: 0o22, newMode: 0o40755 }, '7'],
      [{ type: 'setacl', name: 'acl', dev: 2049, ino: 1234567890123n, oldMode: 0o100600 }, '7'],
      [{ type: 'link', name: 'l\n', dev: 1, ino: 2n, oldMode: 0o100666 }, ''],
      [{ type: 'exsuid', policy: 'suidexec', name: '/tmp/suid id', dev: 5, ino: 6n, oldMode: 0o104755 }, '7'],
      [{ type: 'listen', policy: 'sshlisteners', proto: 6, addr: '::1', port: 2222, dev: 3, ino: 4n }, '7'],
      [{ type: 'skconn', policy: 'skconnections', proto: 17, addr: '192.0.2.1', port: 53 }, '7'],
      [{ type: 'sksend', policy: 'skconnections', proto: 17, addr: '', port: 53, family: 5 }, '7'],
      [{ type: 'sksend', policy: 'skconnections', proto: 17, addr: '192.0.2.1', port: 53, family: 2, name: 'AF_UNSPEC' }, '7'],
      [{ type: 'sksend', policy: 'skconnections', proto: 17, addr: '', port: 0, family: 10, name: 'IPV6_RTHDR' }, '7'],
      [{ type: 'skopt', policy: 'skconnections', proto: 6, family: 2, name: 'IP_OPTIONS' }, '7'],
      [{ type: 'listen', policy: 'sshlisteners', proto: 0, addr: '127.0.0.1', port: 2222, dev: 3, ino: 4n, name: 'AF_SMC' }, '7'],
      [{ type: 'sgkill', policy: 'killtasks', targetPid: 10, targetTgid: 11, targetUid: 0, name: 'krsi-agent', signal: 9 }, '7'],
      [{ type: 'sigio', policy: 'killtasks', targetPid: 10, targetTgid: 11, targetUid: 0, name: 'node', signal: 29 }, '7'],
      [{ type: 'ptrace', policy: 'killtasks', targetPid: 10, targetTgid: 11, targetUid: 0, name: 'x"y', signal: 2 }, '7'],
      [{ type: 'rlimit', policy: 'killtasks', targetPid: 10, targetTgid: 11, targetUid: 0, name: 'node', signal: 0 }, ''],
      [{ type: 'rlimit', policy: 'killtasks', targetPid: 10, targetTgid: 11, targetUid: 0, name: 'node', signal: 99 }, ''],
      [{ type: 'setsched', policy: 'killtasks', targetPid: 12, targetTgid: 11, targetUid: 0, name: 'node' }, ''],
      [{ type: 'setnice', policy: 'killtasks', targetPid: 10, targetTgid: 11, targetUid: 0, name: 'node', signal: 0xffffffec }, ''],
      [{ type: 'ioprio', policy: 'killtasks', targetPid: 10, targetTgid: 11, targetUid: 0, name: 'node', signal: 0x6007 }, ''],
      [{ type: 'bpfid', policy: 'killtasks', ino: 31n, signal: 14 }, ''],
      [{ type: 'bpfid', policy: 'killtasks', ino: 32n, signal: 30 }, ''],
      [{ type: 'bpfmap', policy: 'killtasks', ino: 31n, name: 'uid_policy', signal: 3 }, ''],
      [{ type: 'bpfprog', policy: 'killtasks', ino: 40n, name: 'krsi_task_kill' }, ''],
      [{ type: 'umount', policy: 'killtasks', dev: 25, signal: 2 }, ''],
      [{ type: 'mount', policy: 'killtasks', dev: 25, signal: 0x20 }, ''],
      [{ type: 'type99' }, '7'],
    ];
    const expected = [
      'ts=2023-11-14T22:13:20.123Z type=creat policy=fileperms comm="evil comm" uid=1000 gid=1000 pid=7 tid=8 job=42,43 name="w f" reqmode=100666 umask=000000 newmode=100666 act=deny',
      'ts=2023-11-14T22:13:20.123Z type=creat policy=fileperms comm="evil comm" uid=1000 gid=1000 pid=7 tid=8 job=7 name=g umask=000022 newmode=100646 act=deny',
      'ts=2023-11-14T22:13:20.123Z type=mkdir policy=fileperms comm="evil comm" uid=1000 gid=1000 pid=7 tid=8 job=7 name=d reqmode=040777 umask=000022 newmode=040755 act=audit',
      'ts=2023-11-14T22:13:20.123Z type=setacl policy=fileperms comm="evil comm" uid=1000 gid=1000 pid=7 tid=8 job=7 name=acl dev=2049 inode=1234567890123 mode=100600 act=deny',
      'ts=2023-11-14T22:13:20.123Z type=link policy=fileperms comm="evil comm" uid=1000 gid=1000 pid=7 tid=8 job="" name="l\\n" dev=1 inode=2 mode=100666 act=deny',
      'ts=2023-11-14T22:13:20.123Z type=exsuid policy=suidexec comm="evil comm" uid=1000 gid=1000 pid=7 tid=8 job=7 path="/tmp/suid id" dev=5 inode=6 mode=104755 act=deny',
      'ts=2023-11-14T22:13:20.123Z type=listen policy=sshlisteners comm="evil comm" uid=1000 gid=1000 pid=7 tid=8 job=7 proto=6 laddr=::1 lport=2222 exedev=3 exeinode=4 act=deny',
      'ts=2023-11-14T22:13:20.123Z type=skconn policy=skconnections comm="evil comm" uid=1000 gid=1000 pid=7 tid=8 job=7 proto=17 daddr=192.0.2.1 dport=53 act=deny',
      'ts=2023-11-14T22:13:20.123Z type=sksend policy=skconnections comm="evil comm" uid=1000 gid=1000 pid=7 tid=8 job=7 proto=17 daddr="" dport=53 family=5 act=deny',
      'ts=2023-11-14T22:13:20.123Z type=sksend policy=skconnections comm="evil comm" uid=1000 gid=1000 pid=7 tid=8 job=7 proto=17 daddr=192.0.2.1 dport=53 detail=AF_UNSPEC act=deny',
      'ts=2023-11-14T22:13:20.123Z type=sksend policy=skconnections comm="evil comm" uid=1000 gid=1000 pid=7 tid=8 job=7 proto=17 daddr="" dport=0 family=10 detail=IPV6_RTHDR act=deny',
      'ts=2023-11-14T22:13:20.123Z type=skopt policy=skconnections comm="evil comm" uid=1000 gid=1000 pid=7 tid=8 job=7 proto=6 family=2 option=IP_OPTIONS act=deny',
      'ts=2023-11-14T22:13:20.123Z type=listen policy=sshlisteners comm="evil comm" uid=1000 gid=1000 pid=7 tid=8 job=7 proto=0 laddr=127.0.0.1 lport=2222 exedev=3 exeinode=4 detail=AF_SMC act=deny',
      'ts=2023-11-14T22:13:20.123Z type=sgkill policy=killtasks comm="evil comm" uid=1000 gid=1000 pid=7 tid=8 job=7 targetpid=10 targettgid=11 targetuid=0 targetcomm=krsi-agent signo=9 act=deny',
      'ts=2023-11-14T22:13:20.123Z type=sigio policy=killtasks comm="evil comm" uid=1000 gid=1000 pid=7 tid=8 job=7 targetpid=10 targettgid=11 targetuid=0 targetcomm=node signo=29 act=deny',
      'ts=2023-11-14T22:13:20.123Z type=ptrace policy=killtasks comm="evil comm" uid=1000 gid=1000 pid=7 tid=8 job=7 targetpid=10 targettgid=11 targetuid=0 targetcomm="x\\"y" ptracemode=2 act=deny',
      'ts=2023-11-14T22:13:20.123Z type=rlimit policy=killtasks comm="evil comm" uid=1000 gid=1000 pid=7 tid=8 job="" targetpid=10 targettgid=11 targetuid=0 targetcomm=node resource=cpu act=deny',
      'ts=2023-11-14T22:13:20.123Z type=rlimit policy=killtasks comm="evil comm" uid=1000 gid=1000 pid=7 tid=8 job="" targetpid=10 targettgid=11 targetuid=0 targetcomm=node resource=99 act=deny',
      'ts=2023-11-14T22:13:20.123Z type=setsched policy=killtasks comm="evil comm" uid=1000 gid=1000 pid=7 tid=8 job="" targetpid=12 targettgid=11 targetuid=0 targetcomm=node act=deny',
      'ts=2023-11-14T22:13:20.123Z type=setnice policy=killtasks comm="evil comm" uid=1000 gid=1000 pid=7 tid=8 job="" targetpid=10 targettgid=11 targetuid=0 targetcomm=node nice=-20 act=deny',
      'ts=2023-11-14T22:13:20.123Z type=ioprio policy=killtasks comm="evil comm" uid=1000 gid=1000 pid=7 tid=8 job="" targetpid=10 targettgid=11 targetuid=0 targetcomm=node ioprio=24583 act=deny',
      'ts=2023-11-14T22:13:20.123Z type=bpfid policy=killtasks comm="evil comm" uid=1000 gid=1000 pid=7 tid=8 job="" object=map id=31 act=deny',
      'ts=2023-11-14T22:13:20.123Z type=bpfid policy=killtasks comm="evil comm" uid=1000 gid=1000 pid=7 tid=8 job="" object=link id=32 act=deny',
      'ts=2023-11-14T22:13:20.123Z type=bpfmap policy=killtasks comm="evil comm" uid=1000 gid=1000 pid=7 tid=8 job="" object=map id=31 name=uid_policy act=deny',
      'ts=2023-11-14T22:13:20.123Z type=bpfprog policy=killtasks comm="evil comm" uid=1000 gid=1000 pid=7 tid=8 job="" object=prog id=40 name=krsi_task_kill act=deny',
      'ts=2023-11-14T22:13:20.123Z type=umount policy=killtasks comm="evil comm" uid=1000 gid=1000 pid=7 tid=8 job="" dev=25 flags=2 act=deny',
      'ts=2023-11-14T22:13:20.123Z type=mount policy=killtasks comm="evil comm" uid=1000 gid=1000 pid=7 tid=8 job="" dev=25 flags=32 act=deny',
      'ts=2023-11-14T22:13:20.123Z type=type99 policy=fileperms comm="evil comm" uid=1000 gid=1000 pid=7 tid=8 job=7 act=deny',
    ];
    cases.forEach(([over, job], i) => {
      const line = formatEvent(event({ comm: 'evil comm', tid: 8, ...over }), { time: new Date(1700000000123), job });
      expect(line, over.type).to.equal(expected[i]);
      expect(formatEvent(event({ comm: 'evil comm', tid: 8, ...over }), { time: '2023-11-14T22:13:20.123Z', job }), 'time given as text').to.equal(expected[i]);
    });
  });
});

describe('folded repeats in event log lines', () => {
  const time = '2023-11-14T22:13:20.123Z';
  const base = 'ts=2023-11-14T22:13:20.123Z type=skconn policy=skconnections comm=evgen uid=1000 gid=1000 pid=7 tid=7 job=7 proto=17 daddr=192.0.2.1 dport=9 act=deny';
  const skconn = (over: Partial<KrsiEvent>) =>
    formatEvent(event({ type: 'skconn', policy: 'skconnections', comm: 'evgen', proto: 17, addr: '192.0.2.1', port: 9, ...over }), { time, job: '7' });

  it('an event with no repeats has neither field; repeats=N after act= when N decisions of its action were folded', () => {
    expect(skconn({})).to.equal(base);
    expect(skconn({ repeats: 34211 })).to.equal(`${base} repeats=34211`);
  });

  it('fold=kind marks an event whose repeats count actions of its type with any target', () => {
    expect(skconn({ foldScope: 'kind' })).to.equal(`${base} fold=kind`);
    expect(skconn({ foldScope: 'kind', repeats: 5 })).to.equal(`${base} repeats=5 fold=kind`);
  });

  it('the decoder reads repeats and the fold scope from the record', () => {
    const F = LAYOUT.krsi_event.fields;
    const raw = Buffer.alloc(LAYOUT.krsi_event.size);
    raw.writeUInt32LE(0xfffffffe, F.repeats[0]);
    raw.writeUInt8(1, F.fold_scope[0]);
    expect(decodeEvent(raw)).to.include({ repeats: 0xfffffffe, foldScope: 'kind' });
    expect(decodeEvent(Buffer.alloc(LAYOUT.krsi_event.size))).to.include({ repeats: 0, foldScope: 'exact' });
  });
});

describe('event pipeline', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'krsi-events-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** a raw ring-buffer record as the kernel writes it (the fields these tests vary) */
  function rawEvent(f: { pid: number; decision: number; uid?: number; comm?: string; bootNs?: bigint; repeats?: number; policy?: number }): Buffer {
    const F = LAYOUT.krsi_event.fields;
    const b = Buffer.alloc(LAYOUT.krsi_event.size);
    b.writeBigUInt64LE(f.bootNs ?? 5_000_000_000n, F.ts_ns[0]);
    b.writeUInt32LE(1, F.type[0]);
    b.writeUInt32LE(f.uid ?? 1000, F.uid[0]);
    b.writeUInt32LE(1000, F.gid[0]);
    b.writeUInt32LE(f.pid, F.pid[0]);
    b.writeUInt32LE(f.pid, F.tid[0]);
    b.writeUInt8(f.policy ?? 0, F.policy[0]);
    b.writeUInt32LE(f.repeats ?? 0, F.repeats[0]);
    b.writeUInt8(f.decision, F.decision[0]);
    b.write(f.comm ?? 'chmod', F.comm[0]);
    b.write('f', F.name[0]);
    return b;
  }

  it('numbers events, keeps a bounded window, writes stdout and the log file, counts what it logged', async () => {
    const out: string[] = [];
    const p = new EventPipeline({ clock: new BootClock(), jobOf: (e) => (e.uid === 1000 ? '42' : ''), windowSize: 3, logPath: join(dir, 'log/events.log'), writeStdout: (l) => out.push(l) });
    for (let i = 0; i < 5; i++) p.handle(rawEvent({ pid: i, decision: i % 2 }));
    await p.close();
    expect(out).to.have.length(5);
    expect(readFileSync(join(dir, 'log/events.log'), 'utf8').trim().split('\n')).to.deep.equal(out);
    expect(p.loggedCount()).to.equal(5);
    expect(p.loggedCount('fileperms', 'audit')).to.equal(2);
    expect(p.loggedCount('fileperms', 'deny')).to.equal(3);
    expect(p.loggedCount('suidexec')).to.equal(0);
    const page = p.page(0, 10);
    expect(page.events.map((e) => e.seq)).to.deep.equal([3, 4, 5]);
    expect(page.missed).to.equal(2);
    expect(page.next).to.equal(5);
    expect(page.events[0]!.job).to.equal('42');
    expect(page.events.map((e) => [e.pid, e.decision])).to.deep.equal([[2, 'deny'], [3, 'audit'], [4, 'deny']]);
    expect(p.page(4, 10).events.map((e) => e.seq)).to.deep.equal([5]);
    expect(p.page(5, 10)).to.deep.include({ events: [], next: 5, missed: 0 });
    expect(p.page(3, 1).events.map((e) => e.seq)).to.deep.equal([4]);
    expect(p.page(99, 10).events.map((e) => e.seq), 'a cursor from before a restart').to.deep.equal([3, 4, 5]);
  });

  it('a view of one uid: only its events, no count of other users\' events gone, the cursor past the others\' events', () => {
    const p = new EventPipeline({ clock: new BootClock(), jobOf: () => '', windowSize: 4, logPath: null, writeStdout: () => undefined });
    // seqs 1-6: uids 1000, 2000, 1000, 2000, 2000, 2000; the window keeps 3-6
    for (const [pid, uid] of [[1, 1000], [2, 2000], [3, 1000], [4, 2000], [5, 2000], [6, 2000]] as const) p.handle(rawEvent({ pid, decision: 0, uid }));
    expect(p.page(0, 10, 1000)).to.deep.include({ next: 6, missed: 0 });
    expect(p.page(0, 10, 1000).events.map((e) => [e.seq, e.uid])).to.deep.equal([[3, 1000]]);
    expect(p.page(0, 10).missed, 'the unfiltered view counts what is gone').to.equal(2);
    // the limit counts the uid's own events; next is the last one returned
    expect(p.page(0, 1, 2000)).to.deep.include({ next: 4 });
    expect(p.page(4, 10, 2000).events.map((e) => e.seq)).to.deep.equal([5, 6]);
    // nothing of its own after the cursor: next moves to the newest event, so a follower does not rescan
    expect(p.page(3, 10, 1000)).to.deep.equal({ events: [], next: 6, missed: 0 });
    expect(p.page(0, 10, 3000)).to.deep.equal({ events: [], next: 6, missed: 0 });
  });

  it('counts the folded decisions its lines reported, per policy, and the window keeps each event\'s repeats', () => {
    const out: string[] = [];
    const p = new EventPipeline({ clock: new BootClock(), jobOf: () => '', windowSize: 4, logPath: null, writeStdout: (l) => out.push(l) });
    p.handle(rawEvent({ pid: 1, decision: 0 }));
    p.handle(rawEvent({ pid: 1, decision: 0, repeats: 41 }));
    p.handle(rawEvent({ pid: 2, decision: 1, repeats: 2, policy: 3 }));
    p.flush();
    expect(p.repeatsLogged()).to.equal(43);
    expect(p.repeatsLogged('fileperms')).to.equal(41);
    expect(p.repeatsLogged('skconnections')).to.equal(2);
    expect(p.loggedCount()).to.equal(3);
    expect(out[1]).to.match(/ act=deny repeats=41$/);
    expect(p.page(0, 10).events.map((e) => e.repeats)).to.deep.equal([0, 41, 2]);
  });

  it('the window gives back each event with the exact line that was logged, time and job as they were then', () => {
    const out: string[] = [];
    let job = '7';
    const p = new EventPipeline({ clock: new BootClock(), jobOf: () => job, windowSize: 4, logPath: null, writeStdout: (l) => out.push(l) });
    p.handle(rawEvent({ pid: 1, decision: 0, comm: 'x act=allow', bootNs: 1_000_000_000n }));
    job = '7,8'; // the uid's jobs changed: the next event names the new list, the first keeps its own
    p.handle(rawEvent({ pid: 2, decision: 1, bootNs: 2_500_000_000n }));
    p.flush();
    const events = p.page(0, 10).events;
    expect(events.map((e) => e.line)).to.deep.equal(out);
    expect(events.map((e) => e.job)).to.deep.equal(['7', '7,8']);
    expect(events[0]!.comm).to.equal('x act=allow');
    expect(Date.parse(events[1]!.time) - Date.parse(events[0]!.time)).to.equal(1500);
  });

  it('reopen() starts a new file where logrotate moved the old one, and reports a file it cannot open', () => {
    const log = join(dir, 'events.log');
    const errors: string[] = [];
    const p = new EventPipeline({ clock: new BootClock(), jobOf: () => '', windowSize: 4, logPath: log, writeStdout: () => {}, onLogFileError: (e) => errors.push(e.message) });
    p.handle(rawEvent({ pid: 1, decision: 0 }));
    p.flush();
    renameSync(log, `${log}.1`);
    p.handle(rawEvent({ pid: 2, decision: 0 }));
    p.reopen(); // flushes pid 2 into the moved file first, as a rotation expects
    p.handle(rawEvent({ pid: 3, decision: 0 }));
    p.flush();
    expect(readFileSync(`${log}.1`, 'utf8').match(/ pid=\d+/g)).to.deep.equal([' pid=1', ' pid=2']);
    expect(readFileSync(log, 'utf8').match(/ pid=\d+/g)).to.deep.equal([' pid=3']);
    rmSync(dir, { recursive: true, force: true });
    writeFileSync(dir, 'not a directory');
    p.reopen();
    expect(errors).to.have.length(1);
    rmSync(dir, { force: true });
  });

  it('a log file that cannot be written is reported once, and the lines still reach stdout', async () => {
    const out: string[] = [];
    const errors: string[] = [];
    // /dev/full accepts the open and fails every write with ENOSPC, like a full disk
    const p = new EventPipeline({ clock: new BootClock(), jobOf: () => '', windowSize: 4, logPath: '/dev/full', writeStdout: (l) => out.push(l), onLogFileError: (e) => errors.push(e.message) });
    for (let i = 0; i < 3; i++) {
      p.handle(rawEvent({ pid: i, decision: 0 }));
      p.flush();
    }
    await p.close();
    expect(out).to.have.length(3);
    expect(errors).to.have.length(1);
    expect(errors[0]).to.match(/ENOSPC/);
    expect(p.loggedCount()).to.equal(3);
  });
});
