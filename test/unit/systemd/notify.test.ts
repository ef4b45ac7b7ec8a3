/**
 * sd_notify through libsystemd (agent/systemd/notify.ts), against a real unix datagram socket standing in
 * for systemd's notification socket (a python3 receiver: Node has no datagram unix sockets). The unit's
 * Type=notify under real systemd is tested in the VM (test/systemd).
 */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NotifyError, STARTUP_PHASE_SECONDS, notifySystemd, reportStartupPhase } from '../../../agent/systemd/notify.js';
import { waitFor } from '../../vm/pace.js';

const RECEIVER = [
  'import socket, sys',
  's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
  's.bind(sys.argv[1])',
  'print("ready", flush=True)',
  'while True:',
  '    print(repr(s.recv(4096).decode()), flush=True)',
].join('\n');

describe('notifySystemd (sd_notify)', () => {
  let dir: string;
  let receiver: ChildProcess | undefined;
  const saved = process.env.NOTIFY_SOCKET;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'krsi-notify-'));
  });
  afterEach(() => {
    receiver?.kill('SIGKILL');
    receiver = undefined;
    if (saved === undefined) delete process.env.NOTIFY_SOCKET;
    else process.env.NOTIFY_SOCKET = saved;
    rmSync(dir, { recursive: true, force: true });
  });

  /** a receiver bound to a fresh socket, NOTIFY_SOCKET naming it; `heard()` is what it printed so far */
  async function listening(): Promise<() => string> {
    const socket = join(dir, 'notify');
    let heard = '';
    receiver = spawn('python3', ['-c', RECEIVER, socket], { stdio: ['ignore', 'pipe', 'inherit'] });
    receiver.stdout!.on('data', (chunk: Buffer) => (heard += chunk.toString()));
    await waitFor('the receiver to bind its socket', () => heard.startsWith('ready') && existsSync(socket));
    process.env.NOTIFY_SOCKET = socket;
    return () => heard;
  }

  it('sends nothing and says so when not run by systemd (no NOTIFY_SOCKET)', () => {
    delete process.env.NOTIFY_SOCKET;
    expect(notifySystemd('READY=1')).to.equal(false);
  });

  it('sends the state as one datagram to NOTIFY_SOCKET, and keeps the variable for later messages', async () => {
    const heard = await listening();
    expect(notifySystemd('READY=1\nSTATUS=enforcing, build x, 0 jobs')).to.equal(true);
    expect(notifySystemd('STOPPING=1')).to.equal(true);
    expect(process.env.NOTIFY_SOCKET).to.equal(join(dir, 'notify'));
    await waitFor('both messages', () => heard().split('\n').length >= 4);
    expect(heard().split('\n').slice(1, 3)).to.deep.equal([`'READY=1\\nSTATUS=enforcing, build x, 0 jobs'`, `'STOPPING=1'`]);
  });

  it('throws naming the socket when nothing listens there', () => {
    process.env.NOTIFY_SOCKET = join(dir, 'nobody');
    expect(() => notifySystemd('READY=1')).to.throw(NotifyError, /cannot tell systemd "READY=1" through .*nobody: sd_notify failed \(errno 2\)/);
  });

  it('a start phase extends systemd\'s start timeout from now and shows as the status; a failure to send is a warning, not an exception', async () => {
    const heard = await listening();
    const warnings: string[] = [];
    reportStartupPhase('attaching', (m) => warnings.push(m));
    await waitFor('the phase message', () => heard().split('\n').length >= 3);
    expect(heard().split('\n')[1]).to.equal(`'EXTEND_TIMEOUT_USEC=${STARTUP_PHASE_SECONDS * 1_000_000}\\nSTATUS=starting: attaching'`);
    process.env.NOTIFY_SOCKET = join(dir, 'nobody');
    reportStartupPhase('attaching', (m) => warnings.push(m));
    expect(warnings).to.have.length(1);
    expect(warnings[0]).to.match(/EXTEND_TIMEOUT_USEC.*nobody: sd_notify failed/s);
  });
});
