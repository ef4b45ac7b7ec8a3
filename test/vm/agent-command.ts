/**
 * The agent's command line as the systemd unit runs it. deploy/krsi-agent.service sets
 * OOMScoreAdjust=-1000 and the agent refuses to start with a higher value; tests, the demo and the
 * benchmark start the agent themselves, so they set it the same way (choom execs the agent in its own
 * process: the pid they get is the agent's).
 */
import { REQUIRED_OOM_SCORE_ADJ } from '../../agent/enforcement/preflight.js';

export function asTheUnitRunsIt(file: string, args: readonly string[]): [string, string[]] {
  return ['choom', ['-n', String(REQUIRED_OOM_SCORE_ADJ), '--', file, ...args]];
}
