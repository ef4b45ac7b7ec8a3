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
  HookInputError, callAgent, commentForAgent, describeFailure, drainNode, hookSettings, jobFromEnv, say, type SlurmJobEnv,
} from '../agent/slurm/hook.js';
import { jobNotice, writeJobNotice } from '../agent/slurm/notice.js';
import { isNodeName } from '../agent/slurm/names.js';
import type { JobRecord } from '../agent/service/types.js';

/**
 * The line the TaskProlog prints into the job's output: which profiles, and why. The policy is in force
 * whatever happens here, so a failure is only logged.
 */
function leaveNotice(job: SlurmJobEnv, record: Partial<JobRecord> | undefined): void {
  try {
    if (!Array.isArray(record?.profiles)) throw new Error('the agent\'s answer names no profiles');
    const line = jobNotice({ jobId: job.jobId, profiles: record.profiles, requested: record.requested ?? null, unknownProfile: record.unknownProfile ?? null }, job.node);
    writeJobNotice(job.jobId, job.uid, line);
  } catch (err) {
    say(`prolog: job ${job.jobId}: no line for the job's output (TaskProlog): ${(err as Error).message}`);
  }
}

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
  const body = {
    job_id: job.jobId, uid: job.uid, ...(job.user ? { user: job.user.slice(0, 256) } : {}), ...(comment === undefined ? {} : { comment }),
    // SLURMD_NODENAME only when the agent will take it (a node named otherwise still registers its jobs)
    ...(job.node && isNodeName(job.node) ? { node: job.node } : {}),
  };
  let res;
  try {
    res = await callAgent(settings, 'POST', '/v1/jobs', body);
  } catch (err) {
    return fault(`agent unreachable: ${describeFailure(err)}`);
  }
  const answer = res.body as { job?: Partial<JobRecord>; error?: { code?: string; message?: string } } | null;
  if (res.status === 200 || res.status === 201) {
    const profiles = answer?.job?.profiles?.join(',') ?? '?';
    const unknown = answer?.job?.unknownProfile ? ` (asked for unknown profile ${JSON.stringify(answer.job.unknownProfile)}: strictest applied)` : '';
    say(`prolog: job ${job.jobId} uid ${job.uid}: profiles ${profiles} in force${unknown}`);
    leaveNotice(job, answer?.job);
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
