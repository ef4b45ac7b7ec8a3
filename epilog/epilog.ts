#!/usr/bin/env node
/**
 * slurm-krsi epilog (installed at /usr/libexec/slurm-krsi/epilog; slurm.conf Epilog=). Tells the agent
 * the job ended; the agent undoes it by job id from its own table (never from the comment, which the user
 * may have changed while the job ran), and the uid's entries go with its last job.
 *
 * Idempotent, and succeeds for jobs the agent never saw (Slurm runs the epilog even when the prolog did
 * not run). When the agent cannot be reached (after agent_wait seconds of tries), the removal is written
 * down under the state directory, naming the registration of the job it ends, and the agent applies it
 * when it is back: the uid stays restricted meanwhile (the safe side), and the epilog still succeeds, so
 * the node is not drained for a job that has already ended.
 *
 * It ends the registration the job table held as it started, never a later one: slurmctld requeues the
 * jobs of a node that rebooted and sends their epilogs while it starts them again on the same node.
 */
import { HookInputError, callAgent, describeFailure, hookSettings, jobFromEnv, leaveRemovalNote, registrationOnDisk, say } from '../agent/slurm/hook.js';
import { removeJobNotice } from '../agent/slurm/notice.js';

async function main(): Promise<number> {
  const settings = hookSettings();
  let job;
  try {
    job = jobFromEnv(process.env);
  } catch (err) {
    say(`epilog: ${(err as HookInputError).message}`);
    return 1;
  }
  // the run this epilog ends, before anything else: by the time the agent answers, Slurm may have started
  // the id again (a job requeued after a reboot), and that later run must keep its registration
  const registration = registrationOnDisk(settings.stateDir, job.jobId, job.uid);
  try {
    removeJobNotice(job.jobId);
  } catch (err) {
    say(`epilog: job ${job.jobId}: cannot remove the job's notice: ${(err as Error).message}`);
  }
  const defer = (cause: string): number => {
    try {
      const note = leaveRemovalNote(settings.stateDir, job.jobId, job.uid, { registration });
      say(`epilog: job ${job.jobId}: ${cause}; removal noted in ${note} for the agent to apply when it is back`);
      return 0;
    } catch (err) {
      say(`epilog: job ${job.jobId}: ${cause}, and cannot note the removal: ${(err as Error).message}`);
      return settings.onError === 'fail' ? 1 : 0;
    }
  };
  let res;
  try {
    // an unreadable table: no registration to name, the agent removes whatever it holds for the id
    const query = registration === undefined ? '' : `?registration=${registration ?? 'none'}`;
    res = await callAgent(settings, 'DELETE', `/v1/jobs/${encodeURIComponent(job.jobId)}${query}`);
  } catch (err) {
    return defer(`agent unreachable: ${describeFailure(err)}`);
  }
  if (res.status === 200) {
    const { removed, laterRun } = (res.body as { removed?: boolean; laterRun?: boolean } | null) ?? {};
    say(`epilog: job ${job.jobId}: ${removed ? 'policy entries undone'
      : laterRun ? 'registered again by a later run since this epilog started: that run keeps its policy'
        : 'not known to the agent, nothing to undo'}`);
    return 0;
  }
  const error = (res.body as { error?: { code?: string; message?: string } } | null)?.error;
  return defer(`agent answered ${res.status} ${error?.code ?? ''}: ${error?.message ?? ''}`);
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    say(`epilog: unexpected failure: ${err.message}`);
    process.exit(1);
  },
);
