import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
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
});

describe('event pipeline', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'krsi-events-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('numbers events, keeps a bounded window, writes stdout and the log file, counts what it logged', async () => {
    const out: string[] = [];
    const p = new EventPipeline({ clock: new BootClock(), jobOf: (e) => (e.uid === 1000 ? '42' : ''), windowSize: 3, logPath: join(dir, 'log/events.log'), writeStdout: (l) => out.push(l) });
    for (let i = 0; i < 5; i++) p.handle(event({ pid: i, decision: i % 2 ? 'audit' : 'deny' }));
    await p.close();
    expect(out).to.have.length(5);
    expect(readFileSync(join(dir, 'log/events.log'), 'utf8').trim().split('\n')).to.deep.equal(out);
    expect(p.loggedCount()).to.equal(5);
    expect(p.loggedCount('fileperms', 'audit')).to.equal(2);
    const page = p.page(0, 10);
    expect(page.events.map((e) => e.seq)).to.deep.equal([3, 4, 5]);
    expect(page.missed).to.equal(2);
    expect(page.next).to.equal(5);
    expect(page.events[0]!.job).to.equal('42');
    expect(p.page(4, 10).events.map((e) => e.seq)).to.deep.equal([5]);
    expect(p.page(5, 10)).to.deep.include({ events: [], next: 5, missed: 0 });
    expect(p.page(3, 1).events.map((e) => e.seq)).to.deep.equal([4]);
    expect(p.page(99, 10).events.map((e) => e.seq), 'a cursor from before a restart').to.deep.equal([3, 4, 5]);
  });
});
