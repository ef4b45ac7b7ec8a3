/**
 * Asking the VM's PID 1 to signal a process (see PID1_SCRIPT in init-script.ts).
 *
 * The agent lets nobody but init and itself signal it, root included: on a node `systemctl stop`
 * works because systemd (PID 1) sends the SIGTERM. Inside the test VM, PID 1 is the harness's own init,
 * which serves the same purpose on request, so a test stops the agent the way an admin would, without
 * weakening the protection under test.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { INIT_CONTROL_DIR } from './init-script.js';
import { waitFor } from './pace.js';

let serial = 0;

/** Have PID 1 send `signal` (e.g. 'TERM', 'KILL') to `pid`; throws with kill's message if it failed. */
export async function signalFromInit(pid: number, signal: string, controlDir = INIT_CONTROL_DIR, initPid = 1): Promise<void> {
  const name = `${process.pid}-${++serial}`;
  const request = join(controlDir, `req-${name}`);
  const answer = join(controlDir, `done-${name}`);
  writeFileSync(request, `${signal.replace(/^SIG/, '')} ${pid}\n`);
  const answered = await waitFor(`PID 1 to answer the request to send SIG${signal.replace(/^SIG/, '')} to pid ${pid}`, () => {
    if (existsSync(answer)) return readFileSync(answer, 'utf8').trim();
    process.kill(initPid, 'SIGUSR1'); // (again): PID 1 serves requests when the signal interrupts its wait
    return undefined;
  }, { timeoutMs: 10_000, intervalMs: 200 });
  rmSync(answer, { force: true });
  if (answered !== 'ok') throw new Error(`PID 1 could not send SIG${signal.replace(/^SIG/, '')} to pid ${pid}: ${answered}`);
}
