/**
 * sd_notify(3): how the agent tells systemd it is ready (deploy/krsi-agent.service is Type=notify). systemd
 * starts the units ordered after the agent (slurmd, whose drop-in says After=krsi-agent.service) only once
 * READY=1 arrived, and `systemctl start|restart krsi-agent` returns only then, so no prolog can reach a node
 * whose agent is not serving with its programs attached.
 *
 * The message is a datagram on the unix socket named by $NOTIFY_SOCKET. Node has no unix datagram sockets,
 * so libsystemd's own sd_notify() sends it, called through koffi (as libbpf-ts calls libbpf). Outside
 * systemd ($NOTIFY_SOCKET unset) nothing is loaded and nothing is sent.
 */
import { createRequire } from 'node:module';
import type koffiDefault from 'koffi';

const LIBSYSTEMD = 'libsystemd.so.0';

type SdNotify = (unsetEnvironment: number, state: string) => number;
let sdNotify: SdNotify | undefined;

export class NotifyError extends Error {
  override name = 'NotifyError';
}

/**
 * Send `state` (newline-separated VAR=value assignments: READY=1, STOPPING=1, STATUS=...) to systemd.
 * Returns false when not run by systemd ($NOTIFY_SOCKET unset); throws NotifyError naming the cause when
 * the message could not be sent.
 */
export function notifySystemd(state: string): boolean {
  if (!process.env.NOTIFY_SOCKET) return false;
  if (!sdNotify) {
    try {
      const koffi = createRequire(import.meta.url)('koffi') as typeof koffiDefault;
      sdNotify = koffi.load(LIBSYSTEMD).func('int sd_notify(int unset_environment, const char *state)') as unknown as SdNotify;
    } catch (err) {
      throw new NotifyError(`cannot tell systemd ${JSON.stringify(state)}: cannot load ${LIBSYSTEMD} (Debian package libsystemd0): ${(err as Error).message}`);
    }
  }
  const ret = sdNotify(0, state);
  if (ret < 0) throw new NotifyError(`cannot tell systemd ${JSON.stringify(state)} through ${process.env.NOTIFY_SOCKET}: sd_notify failed (errno ${-ret})`);
  return ret > 0;
}

/**
 * How long systemd waits for each phase of the start (EXTEND_TIMEOUT_USEC): the unit's TimeoutStartSec
 * covers Node.js starting and the config; each phase reported after it gets this long of its own. A start
 * that makes progress is never killed for its total (on a busy node, verifying and attaching every program
 * while an older build still runs took 60 s of CPU in the emulated test VM); a phase that hangs still is.
 */
export const STARTUP_PHASE_SECONDS = 90;

/**
 * Tell systemd the start goes on with `phase` (shown by `systemctl status` as the unit's status) and give
 * it STARTUP_PHASE_SECONDS from now. Outside systemd nothing is sent. Never throws: a start must not fail
 * because its progress could not be reported (READY=1 will report the problem).
 */
export function reportStartupPhase(phase: string, warn: (message: string) => void): void {
  try {
    notifySystemd(`EXTEND_TIMEOUT_USEC=${STARTUP_PHASE_SECONDS * 1_000_000}\nSTATUS=starting: ${phase}`);
  } catch (err) {
    warn((err as Error).message);
  }
}
