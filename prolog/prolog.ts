#!/usr/bin/env node
/**
 * slurm-krsi prolog (installed at /usr/libexec/slurm-krsi/prolog; slurm.conf Prolog=). Registers the
 * job with the node's agent, which puts the job's uid under the floor profile plus the profile the job
 * asks for (`policy:NAME` in --comment).
 *
 * Exit status: 0 when the policy is in force, or when it is not and on_error = allow. Non-zero only for
 * node faults (agent unreachable or failing, programs not attached) with on_error = fail: Slurm then
 * drains the node and requeues the job held. A missing or refusing socket is tried again for up to
 * agent_wait seconds first (the agent starting or restarting). Of the config it reads only socket,
 * on_error, agent_wait and state_dir: a mistake elsewhere in a pushed file is not its business, the
 * running agent's configuration decides the policy. A profile name the node does not know is the user's
 * fault, not the node's: the agent applies the strictest profile and the job runs.
 */
import {
  HookInputError, callAgent, commentForAgent, describeFailure, drainNode, hookSettings, jobFromEnv, say,
} from '../agent/slurm/hook.js';

async function main(): Promise<number> {
  const settings = hookSettings();
  let job;
  try {
    job = jobFromEnv(process.env);
  } catch (err) {
    // slurmd always sets these: their absence means we were not started by slurmd
    say(`prolog: ${(err as HookInputError).message}`);
    return 1;
  }
  const fault = async (failure: string): Promise<number> => {
    const cause = settings.configProblems.length > 0 ? `${failure} (config: ${settings.configProblems.join('; ')})` : failure;
    if (settings.onError === 'allow') {
      say(`prolog: job ${job.jobId}: NOT under policy (${cause}); on_error = allow lets it run`);
      return 0;
    }
    say(`prolog: job ${job.jobId}: node fault, failing the prolog (on_error = fail): ${cause}`);
    await drainNode(job.node, cause);
    return 1;
  };
  const comment = commentForAgent(job.comment);
  const body = { job_id: job.jobId, uid: job.uid, ...(job.user ? { user: job.user.slice(0, 256) } : {}), ...(comment === undefined ? {} : { comment }) };
  let res;
  try {
    res = await callAgent(settings, 'POST', '/v1/jobs', body);
  } catch (err) {
    return fault(`agent unreachable: ${describeFailure(err)}`);
  }
  const answer = res.body as { job?: { profiles?: string[]; unknownProfile?: string | null }; error?: { code?: string; message?: string } } | null;
  if (res.status === 200 || res.status === 201) {
    const profiles = answer?.job?.profiles?.join(',') ?? '?';
    const unknown = answer?.job?.unknownProfile ? ` (asked for unknown profile ${JSON.stringify(answer.job.unknownProfile)}: strictest applied)` : '';
    say(`prolog: job ${job.jobId} uid ${job.uid}: profiles ${profiles} in force${unknown}`);
    return 0;
  }
  return fault(`agent answered ${res.status} ${answer?.error?.code ?? ''}: ${answer?.error?.message ?? 'no message'}`);
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    say(`prolog: unexpected failure: ${err.message}`);
    process.exit(1);
  },
);
