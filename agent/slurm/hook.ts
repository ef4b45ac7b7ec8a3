/**
 * What the Slurm prolog and epilog share: reading the job from slurmd's environment, the agent's socket
 * and failure policy from the config, talking to the agent with a deadline, and the one line slurmd logs.
 *
 * slurmd runs these as root with no PATH and no HOME; SLURM_JOB_COMMENT (present only when the job has
 * one) is user input, byte for byte: it is passed to the agent as data and never interpreted here.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ClientError, request, type ClientResponse, type Method } from '../client/client.js';
import { DEFAULT_CONFIG_PATH, loadConfig } from '../config/config.js';

export const JOB_ID = /^[0-9A-Za-z_.+-]{1,64}$/;
/** comments longer than this are cut down to their policy: marks before being sent */
export const MAX_COMMENT = 8192;
/** the agent must answer within this; keep it well under Slurm's PrologEpilogTimeout */
export const AGENT_TIMEOUT_MS = 15_000;

export interface SlurmJobEnv {
  jobId: string;
  uid: number;
  user: string | undefined;
  comment: string | undefined;
  node: string | undefined;
}

export class HookInputError extends Error {}

export function jobFromEnv(env: NodeJS.ProcessEnv): SlurmJobEnv {
  const jobId = env.SLURM_JOB_ID ?? '';
  if (!JOB_ID.test(jobId)) throw new HookInputError(`SLURM_JOB_ID ${JSON.stringify(jobId.slice(0, 80))} is missing or not a job id`);
  const uidText = env.SLURM_JOB_UID ?? '';
  if (!/^\d{1,10}$/.test(uidText) || Number(uidText) > 4294967294) {
    throw new HookInputError(`SLURM_JOB_UID ${JSON.stringify(uidText.slice(0, 80))} is missing or not a uid`);
  }
  return { jobId, uid: Number(uidText), user: env.SLURM_JOB_USER, comment: env.SLURM_JOB_COMMENT, node: env.SLURMD_NODENAME };
}

/** Long comments: keep only the policy marks, so the request stays small and the choice stays the same. */
export function commentForAgent(comment: string | undefined): string | undefined {
  if (comment === undefined || comment.length <= MAX_COMMENT) return comment;
  const marks = comment.match(/(?:^|[^A-Za-z0-9_])policy:[^\s,;]{0,64}/g) ?? [];
  return marks.map((m) => m.replace(/^[^p]/, '')).join(' ').slice(0, MAX_COMMENT);
}

export interface HookSettings {
  socket: string;
  onError: 'fail' | 'allow';
  stateDir: string;
}

/**
 * The agent's socket and failure policy. A config that cannot be read is itself a node fault, and with
 * no config to say otherwise the safe default applies (on_error = fail).
 */
export function hookSettings(configPath = process.env.KRSI_CONFIG ?? DEFAULT_CONFIG_PATH): HookSettings & { configProblem?: string } {
  try {
    const c = loadConfig(configPath);
    return { socket: c.agent.socket, onError: c.agent.onError, stateDir: c.agent.stateDir };
  } catch (err) {
    return {
      socket: '/run/slurm-krsi/agent.sock',
      onError: 'fail',
      stateDir: '/var/lib/slurm-krsi',
      configProblem: (err as Error).message.split('\n')[0] ?? 'unreadable config',
    };
  }
}

export async function callAgent(socket: string, method: Method, path: string, body?: unknown): Promise<ClientResponse> {
  return request(socket, method, path, body, { timeoutMs: AGENT_TIMEOUT_MS });
}

export function describeFailure(err: unknown): string {
  if (err instanceof ClientError) return err.message;
  return err instanceof Error ? err.message : String(err);
}

/** one line for slurmd's log, prefixed with the tool's name */
export function say(line: string): void {
  process.stderr.write(`slurm-krsi: ${line.replace(/[\r\n]+/g, ' ')}\n`);
}

/**
 * Drain this node with a reason that names slurm-krsi (as NHC does with its own prefix), so that admins
 * see why in `sinfo -R`. Best effort, bounded in time: Slurm also drains the node on a failed prolog.
 */
export function drainNode(node: string | undefined, reason: string): Promise<void> {
  if (!node) return Promise.resolve();
  return new Promise((resolve) => {
    execFile('/usr/bin/scontrol', ['update', `NodeName=${node}`, 'State=DRAIN', `Reason=slurm-krsi: ${reason}`.slice(0, 250)], { timeout: 5000 }, () => resolve());
  });
}

/** A removal the epilog could not deliver: the agent applies these notes when it is back. */
export function leaveRemovalNote(stateDir: string, jobId: string): string {
  const dir = join(stateDir, 'pending-removals');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, jobId);
  writeFileSync(path, `${new Date().toISOString()}\n`, { mode: 0o600 });
  return path;
}
