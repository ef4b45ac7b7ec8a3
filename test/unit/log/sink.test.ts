/**
 * The agent's stdout and event log writes (agent/log/sink.ts). A stdout that fails must not end the agent:
 * the bench's agent died in the middle of a flood because its stdout, a file, had filled /tmp (an
 * uncaught ENOSPC from process.stdout), and under systemd the same happens with EPIPE once the journal's
 * end of the stream is gone. The first tests run the event pipeline and the logger in a process of their
 * own whose stdout is really full (/dev/full) or really broken (a pipe nobody reads).
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FdSink, type WriteFn } from '../../../agent/log/sink.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const RECORDS = 600; // more than one chunk of lines (LINES_PER_WRITE) and a flush from setImmediate

/** the agent's writers, as main.ts wires them, with the default stdout; says on stderr how far it got */
const CHILD = `
  const { EventPipeline } = await import(${JSON.stringify(join(ROOT, 'agent/events/pipeline.ts'))});
  const { BootClock } = await import(${JSON.stringify(join(ROOT, 'agent/events/clock.ts'))});
  const { LAYOUT } = await import(${JSON.stringify(join(ROOT, 'agent/enforcement/layout.ts'))});
  const { createLogger } = await import(${JSON.stringify(join(ROOT, 'agent/log/logger.ts'))});
  const log = createLogger();
  const p = new EventPipeline({ clock: new BootClock(), jobOf: () => '7', windowSize: 16, logPath: process.env.EVENT_LOG });
  const tick = () => new Promise((r) => setTimeout(r, 20));
  for (let round = 0; round < 2; round++) {
    log.info('a flood', { round });
    for (let i = 0; i < ${RECORDS / 2}; i++) p.handle(Buffer.alloc(LAYOUT.krsi_event.size));
    await tick(); // a stream's 'error' would come now, and kill the process
  }
  process.stderr.write('alive logged=' + p.loggedCount() + '\\n');
`;

async function runChild(stdout: number): Promise<{ code: number | null; stderr: string; eventLog: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'krsi-sink-'));
  try {
    const child = spawn(process.execPath, ['--import', 'tsx/esm', '--input-type=module', '-e', CHILD], {
      cwd: ROOT, env: { ...process.env, EVENT_LOG: join(dir, 'events.log') }, stdio: ['ignore', stdout, 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((res) => child.on('close', res));
    return { code, stderr, eventLog: readFileSync(join(dir, 'events.log'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('a stdout that fails (agent/log/sink.ts)', function () {
  this.timeout(30000);

  /** the child ran to its end, every event line reached the log file, and the failure was told once */
  async function expectSurvives(stdout: number, errno: string): Promise<void> {
    const r = await runChild(stdout);
    expect(r.stderr, 'the child\'s stderr').to.match(new RegExp(`alive logged=${RECORDS}\\n$`));
    expect(r.code).to.equal(0);
    expect(r.stderr.match(new RegExp(`cannot write to stdout \\(${errno}`, 'g')), r.stderr).to.have.length(1);
    expect(r.eventLog.trim().split('\n')).to.have.length(RECORDS);
  }

  it('full (ENOSPC, /dev/full): the pipeline and the logger go on, the event log file gets every line, the failure is told once on stderr', async () => {
    const full = openSync('/dev/full', 'w');
    try {
      await expectSurvives(full, 'ENOSPC');
    } finally {
      closeSync(full);
    }
  });

  it('broken (EPIPE: the reader of its pipe, journald, is gone): the same', async () => {
    // a pipe whose read end this process closes at once: every write fails with EPIPE (Node.js ignores SIGPIPE)
    const sh = spawn('sh', ['-c', 'exec 0<&-; sleep 30'], { stdio: ['pipe', 'ignore', 'ignore'] });
    try {
      const writeEnd = (sh.stdin as unknown as { _handle: { fd: number } })._handle.fd;
      await new Promise((r) => setTimeout(r, 200)); // the shell has closed its end
      await expectSurvives(writeEnd, 'EPIPE');
    } finally {
      sh.kill();
    }
  });
});

describe('FdSink', () => {
  /** write(2) played by a script of answers: a byte count, or an errno to throw */
  function scripted(answers: (number | string)[]): { write: WriteFn; calls: number[] } {
    const calls: number[] = [];
    const write: WriteFn = (_fd, buffer, offset) => {
      calls.push(offset);
      const a = answers.shift() ?? buffer.length - offset;
      if (typeof a === 'string') throw Object.assign(new Error(`${a}: scripted`), { code: a });
      return a;
    };
    return { write, calls };
  }

  it('writes what write(2) took only in part until all of it is written', () => {
    const { write, calls } = scripted([3, 4]);
    expect(new FdSink(9, () => expect.fail('no error'), write).put('0123456789')).to.equal(true);
    expect(calls).to.deep.equal([0, 3, 7]);
  });

  it('reports a failure once per spell, tries every later write again, and reports the next spell', () => {
    const errors: string[] = [];
    const { write } = scripted(['ENOSPC', 'ENOSPC', 10, 'EPIPE']);
    const sink = new FdSink(9, (e) => errors.push(e.message), write);
    expect([sink.put('0123456789'), sink.put('0123456789'), sink.put('0123456789'), sink.put('0123456789')]).to.deep.equal([false, false, true, false]);
    expect(errors).to.deep.equal(['ENOSPC: scripted', 'EPIPE: scripted']);
  });

  it('waits on a descriptor that would block (EAGAIN) and then writes', () => {
    const { write, calls } = scripted(['EAGAIN', 'EAGAIN', 5]);
    expect(new FdSink(9, () => expect.fail('no error'), write).put('01234')).to.equal(true);
    expect(calls).to.deep.equal([0, 0, 0]);
  });

  it('gives up on a descriptor that stays blocked for a second, and says so', () => {
    const errors: string[] = [];
    const sink = new FdSink(9, (e) => errors.push(e.message), () => {
      throw Object.assign(new Error('EAGAIN: scripted'), { code: 'EAGAIN' });
    });
    const t0 = Date.now();
    expect(sink.put('x')).to.equal(false);
    expect(Date.now() - t0).to.be.within(900, 5000);
    expect(errors).to.deep.equal(['EAGAIN: scripted']);
  });

  it('a write that makes no progress is a failure, not a loop', () => {
    const errors: string[] = [];
    expect(new FdSink(9, (e) => errors.push(e.message), scripted([0]).write).put('x')).to.equal(false);
    expect(errors).to.deep.equal(['write to fd 9 made no progress']);
  });
});
