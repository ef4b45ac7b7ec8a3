/**
 * Events into the journal (agent/log/journal.ts) over a real unix datagram socket standing in for
 * journald's /run/systemd/journal/socket (a python3 receiver: Node has no datagram unix sockets): the
 * native protocol's wire format byte for byte, an event's fields as `journalctl KRSI_JOB=...` finds them,
 * a send that never waits on a receiver that does not read, and a receiver that restarts.
 */
import { expect } from 'chai';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { accessSync, closeSync, existsSync, fstatSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { BootClock } from '../../../agent/events/clock.js';
import { EVENT_MESSAGE_ID } from '../../../agent/events/format.js';
import { EventPipeline } from '../../../agent/events/pipeline.js';
import { JournalError, JournalSocket, journalEntry, stdoutIsJournal } from '../../../agent/log/journal.js';
import { PACKAGE_ROOT } from '../../../agent/paths.js';
import { waitFor } from '../../vm/pace.js';
import { rawEvent } from './raw-event.js';

/** binds a datagram socket at argv[1] and prints each datagram as hex, one a line; with argv[2]=mute it never reads */
const RECEIVER = [
  'import socket, sys, time',
  's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
  's.bind(sys.argv[1])',
  'print("ready", flush=True)',
  'while len(sys.argv) > 2: time.sleep(60)',
  'while True:',
  '    print(s.recv(1 << 20).hex(), flush=True)',
].join('\n');

/** the fields of one datagram, parsed as journald does (an independent reading of the format) */
function parseEntry(d: Buffer): [string, string][] {
  const fields: [string, string][] = [];
  let at = 0;
  while (at < d.length) {
    const nl = d.indexOf(0x0a, at);
    const head = d.subarray(at, nl).toString();
    const eq = head.indexOf('=');
    if (eq >= 0) {
      fields.push([head.slice(0, eq), head.slice(eq + 1)]);
      at = nl + 1;
    } else {
      const size = Number(d.readBigUInt64LE(nl + 1));
      fields.push([head, d.subarray(nl + 9, nl + 9 + size).toString()]);
      expect(d[nl + 9 + size], 'a binary value ends with a newline').to.equal(0x0a);
      at = nl + 10 + size;
    }
  }
  return fields;
}

describe('events into the journal (native protocol)', () => {
  let dir: string;
  let socketPath: string;
  let receivers: ChildProcess[] = [];
  let heard: Buffer[] = [];

  async function receiver(mute = false): Promise<void> {
    const r = spawn('python3', ['-c', RECEIVER, socketPath, ...(mute ? ['mute'] : [])], { stdio: ['ignore', 'pipe', 'inherit'] });
    receivers.push(r);
    let ready = false;
    let rest = '';
    r.stdout!.on('data', (chunk: Buffer) => {
      const lines = (rest + chunk.toString()).split('\n');
      rest = lines.pop()!;
      for (const line of lines) {
        if (line === 'ready') ready = true;
        else heard.push(Buffer.from(line, 'hex'));
      }
    });
    await waitFor('the receiver to bind its socket', () => ready && existsSync(socketPath));
  }

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'krsi-journal-'));
    socketPath = join(dir, 'socket');
    heard = [];
  });
  afterEach(() => {
    for (const r of receivers) r.kill('SIGKILL');
    receivers = [];
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes NAME=value lines, and a value with a newline as NAME, its 64-bit little-endian length, the bytes', () => {
    const entry = journalEntry([['MESSAGE', 'ts=1 act=deny'], ['KRSI_COMM', 'a\nb'], ['KRSI_JOB', '42']]);
    expect(entry.toString('hex')).to.equal(Buffer.concat([
      Buffer.from('MESSAGE=ts=1 act=deny\nKRSI_COMM\n'),
      Buffer.from([3, 0, 0, 0, 0, 0, 0, 0]),
      Buffer.from('a\nb\nKRSI_JOB=42\n'),
    ]).toString('hex'));
    for (const bad of ['_PID', 'krsi_job', 'KRSI-JOB', '', 'A'.repeat(65)]) {
      expect(() => journalEntry([[bad, 'x']]), bad).to.throw(JournalError, /journal field name/);
    }
  });

  it('sends one datagram per entry to the socket, byte for byte', async () => {
    await receiver();
    const journal = new JournalSocket(socketPath);
    journal.open();
    const entries = [journalEntry([['MESSAGE', 'one']]), journalEntry([['MESSAGE', 'two\nlines'], ['PRIORITY', '4']])];
    for (const e of entries) expect(journal.send(e)).to.equal(true);
    await waitFor('both datagrams', () => heard.length >= 2);
    expect(heard.map((d) => d.toString('hex'))).to.deep.equal(entries.map((e) => e.toString('hex')));
    expect(journal.unsent()).to.equal(0);
    journal.close();
  });

  it('an event: MESSAGE is its log line, with KRSI_* fields, KRSI_JOB once per job, and nothing on stdout', async () => {
    await receiver();
    const journal = new JournalSocket(socketPath);
    journal.open();
    const stdout: string[] = [];
    const p = new EventPipeline({
      clock: new BootClock(), jobOf: () => '1234,1240', windowSize: 4, logPath: join(dir, 'events.log'), journal, writeStdout: (l) => stdout.push(l),
    });
    p.handle(rawEvent({ uid: 1000, pid: 77, comm: 'evil\nX=1' }));
    await p.close();
    journal.close();
    await waitFor('the event\'s entry', () => heard.length >= 1);
    const fields = parseEntry(heard[0]!);
    const page = p.page(0, 1).events[0]!;
    expect(fields).to.deep.equal([
      ['MESSAGE', page.line],
      ['MESSAGE_ID', EVENT_MESSAGE_ID],
      ['PRIORITY', '4'],
      ['SYSLOG_IDENTIFIER', 'krsi-agent'],
      ['KRSI_POLICY', page.policy],
      ['KRSI_TYPE', page.type],
      ['KRSI_ACTION', 'deny'],
      ['KRSI_UID', '1000'],
      ['KRSI_GID', '1001'],
      ['KRSI_PID', '77'],
      // a comm with a newline cannot forge a field: it goes as a binary value
      ['KRSI_COMM', 'evil\nX=1'],
      ['KRSI_JOB', '1234'],
      ['KRSI_JOB', '1240'],
    ]);
    expect(fields.filter(([name]) => name === 'X')).to.deep.equal([]);
    expect(stdout, 'the journal replaces stdout: no event twice in the journal').to.deep.equal([]);
  });

  it('never waits on a receiver that does not read: what does not fit is counted as unsent', async () => {
    await receiver(true);
    const journal = new JournalSocket(socketPath);
    journal.open();
    const entry = journalEntry([['MESSAGE', 'x'.repeat(1000)]]);
    const started = performance.now();
    let sent = 0;
    for (let i = 0; i < 2000; i++) if (journal.send(entry)) sent++;
    expect(performance.now() - started, 'milliseconds for 2000 sends').to.be.below(2000);
    expect(sent).to.be.greaterThan(0);
    expect(journal.unsent()).to.equal(2000 - sent).and.to.be.greaterThan(0);
    journal.close();
  });

  it('connects again when journald made a new socket (a restart), and counts entries nobody could take', async () => {
    await receiver();
    const journal = new JournalSocket(socketPath);
    journal.open();
    expect(journal.send(journalEntry([['MESSAGE', 'before']]))).to.equal(true);
    await waitFor('the first entry', () => heard.length >= 1);
    const gone = once(receivers[0]!, 'exit');
    receivers[0]!.kill('SIGKILL');
    await gone;
    rmSync(socketPath);
    expect(journal.send(journalEntry([['MESSAGE', 'nobody']]))).to.equal(false);
    await receiver();
    expect(journal.send(journalEntry([['MESSAGE', 'after']]))).to.equal(true);
    await waitFor('the entry after the restart', () => heard.length >= 2);
    expect(heard.map((d) => d.toString())).to.deep.equal(['MESSAGE=before\n', 'MESSAGE=after\n']);
    expect(journal.unsent()).to.equal(1);
    journal.close();
  });

  it('into a real systemd-journald: journalctl KRSI_JOB=1234 finds the event, the line as its message', async function () {
    const journald = '/lib/systemd/systemd-journald';
    try {
      accessSync(journald);
    } catch {
      this.skip(); // systemd is among the packages npm run setup installs
    }
    if (process.getuid?.() !== 0) this.skip(); // a mount namespace of its own
    this.timeout(60_000);
    // journald on tmpfs /run and /var/log of a mount namespace: nothing of the host's journal is touched
    const script = `
      set -e
      mount -t tmpfs tmpfs /run
      mount -t tmpfs tmpfs /var/log
      ${journald} 2>/dev/null &
      for i in $(seq 100); do [ -S /run/systemd/journal/socket ] && break; sleep 0.1; done
      line=$(node --import=tsx/esm ${join(PACKAGE_ROOT, 'test/unit/log/journal-send.ts')})
      journalctl --sync
      echo "sent $line"
      journalctl --no-pager -o json KRSI_JOB=1234
      echo "job 1240: [$(journalctl --no-pager -o cat KRSI_JOB=1240)]"
      echo "job 99: [$(journalctl --no-pager -o cat KRSI_JOB=99)]"
      kill %1`;
    const { stdout } = await promisify(execFile)('unshare', ['-m', 'bash', '-c', script], { cwd: PACKAGE_ROOT });
    const lines = stdout.trim().split('\n');
    const line = lines[0]!.replace(/^sent /, '');
    expect(line).to.match(/^ts=\S+ type=\S+ policy=\S+ comm="evil\\nX=1" uid=1000 .* job=1234,1240 .*act=deny$/);
    const entry = JSON.parse(lines[1]!) as Record<string, unknown>;
    expect(entry).to.deep.include({
      MESSAGE: line, MESSAGE_ID: EVENT_MESSAGE_ID, PRIORITY: '4', SYSLOG_IDENTIFIER: 'krsi-agent', KRSI_ACTION: 'deny', KRSI_UID: '1000',
      KRSI_COMM: 'evil\nX=1', KRSI_JOB: ['1234', '1240'], _TRANSPORT: 'journal',
    });
    expect(lines.slice(2), 'the other job finds it too, a job without events nothing').to.deep.equal([`job 1240: [${line}]`, 'job 99: []']);
  });

  it('open() names the socket and the error when nothing listens there', () => {
    expect(() => new JournalSocket(join(dir, 'nobody')).open()).to.throw(JournalError, /cannot connect to the journal at .*nobody: ENOENT/);
  });

  it('stdout is the journal only when $JOURNAL_STREAM names its device and inode', () => {
    expect(stdoutIsJournal({})).to.equal(false);
    expect(stdoutIsJournal({ JOURNAL_STREAM: 'garbage' })).to.equal(false);
    // a file's device and inode, standing in for the stream systemd gives a service
    const fd = openSync(join(dir, 'stream'), 'w');
    try {
      const st = fstatSync(fd, { bigint: true });
      expect(stdoutIsJournal({ JOURNAL_STREAM: `${st.dev}:${st.ino}` }, fd)).to.equal(true);
      expect(stdoutIsJournal({ JOURNAL_STREAM: `${st.dev}:${st.ino + 1n}` }, fd), 'another inode').to.equal(false);
    } finally {
      closeSync(fd);
    }
  });
});
