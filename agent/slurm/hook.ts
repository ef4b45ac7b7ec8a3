/**
 * What the Slurm prolog and epilog share: reading the job from slurmd's environment, the agent's socket
 * and failure policy from the config, talking to the agent with a deadline, and the one line slurmd logs.
 *
 * slurmd runs these as root with no PATH and no HOME; SLURM_JOB_COMMENT (present only when the job has
 * one) is user input, byte for byte: it is passed to the agent as data and never interpreted here.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { ClientError, request, type ClientResponse, type Method } from '../client/client.js';
import { DEFAULT_CONFIG_PATH } from '../config/config.js';
import { formatProblem } from '../config/errors.js';
import { AGENT_KEYS, hookDeadlineSeconds } from '../config/keys.js';
import { scanIni } from '../config/scan.js';
import { BadValue } from '../config/values.js';
import { JOB_ID } from './names.js';

export { JOB_ID } from './names.js';
export { leaveRemovalNote, registrationOnDisk } from './notes.js';
/** comments longer than this are cut down to their policy: marks before being sent */
export const MAX_COMMENT = 8192;
/** pause between two tries of a missing or refusing socket */
export const RETRY_MS = 200;

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
  /** seconds to retry a missing or refusing socket */
  agentWait: number;
  stateDir: string;
  /** what was wrong with those keys or the file (their defaults were used instead); for messages */
  configProblems: string[];
}

/** the [agent] keys the hooks read: nothing else in the file concerns them */
const HOOK_FIELDS = ['socket', 'onError', 'agentWait', 'stateDir'] as const;

/**
 * The agent's socket, failure policy, wait and state directory, read with a tolerant reader: a config
 * push with a mistake anywhere else (a typo in a profile, an unknown key) does not concern the hooks,
 * since the running agent's configuration decides the job's policy. A bad value of one of these keys, or
 * a file that cannot be read, leaves that key at its default (on_error = fail is the safe one) and is
 * named in the hook's message if the agent then cannot be reached.
 */
export function hookSettings(configPath = process.env.KRSI_CONFIG ?? DEFAULT_CONFIG_PATH): HookSettings {
  const settings: HookSettings = {
    socket: AGENT_KEYS.socket.parse(AGENT_KEYS.socket.default),
    onError: AGENT_KEYS.onError.parse(AGENT_KEYS.onError.default),
    agentWait: AGENT_KEYS.agentWait.parse(AGENT_KEYS.agentWait.default),
    stateDir: AGENT_KEYS.stateDir.parse(AGENT_KEYS.stateDir.default),
    configProblems: [],
  };
  let text: string;
  try {
    text = readFileSync(configPath, 'utf8');
  } catch (err) {
    settings.configProblems.push(`${configPath}: cannot read the config file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): defaults used`);
    return settings;
  }
  const agent = scanIni(text).sections.find((s) => s.name === 'agent');
  for (const field of HOOK_FIELDS) {
    const key = AGENT_KEYS[field];
    const entry = agent?.entries.find((e) => e.key === key.name);
    if (entry === undefined) continue;
    try {
      (settings as unknown as Record<string, unknown>)[field] = key.parse(entry.value);
    } catch (err) {
      if (!(err instanceof BadValue)) throw err;
      const message = `${err.message}; the default ${JSON.stringify(key.default)} is used`;
      settings.configProblems.push(formatProblem(configPath, { section: 'agent', key: key.name, line: entry.line, message }));
    }
  }
  return settings;
}

/**
 * The agent is not there, or went away with the request unanswered: a missing or refusing socket, or a
 * connection reset before the answer (an agent stopping for `systemctl restart` drops the connections it
 * accepted but did not serve; seen in the VM: a node drained for "closed the connection (ECONNRESET)
 * during POST /v1/jobs"). The hooks' requests are idempotent, so trying again is safe.
 */
function agentAbsent(err: unknown): boolean {
  if (!(err instanceof ClientError)) return false;
  if (err.kind === 'unreachable') return err.errno === 'ENOENT' || err.errno === 'ECONNREFUSED';
  return err.kind === 'protocol' && (err.errno === 'ECONNRESET' || err.errno === 'EPIPE');
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * One request to the agent within the hooks' deadline (agent_wait + HOOK_ANSWER_SECONDS). A missing or refusing socket (the agent starting
 * or restarting) is tried again every RETRY_MS for up to agentWait seconds; the error that ends it says
 * how long it waited. So is a 503: an agent that is stopping answers it (fastify, while it closes) to the
 * requests it still accepts, as `systemctl restart` does to a prolog (seen in the VM: a node drained for
 * "agent answered 503"); a writer's request is never refused as busy, and the hooks' requests are
 * idempotent. The last 503 within agent_wait is the answer.
 */
export async function callAgent(
  settings: Pick<HookSettings, 'socket' | 'agentWait'>,
  method: Method,
  path: string,
  body?: unknown,
  deadlineMs = hookDeadlineSeconds(settings.agentWait) * 1000,
): Promise<ClientResponse> {
  const started = Date.now();
  const waitUntil = started + Math.min(settings.agentWait * 1000, deadlineMs);
  for (let tries = 1; ; tries++) {
    try {
      const res = await request(settings.socket, method, path, body, { timeoutMs: Math.max(1, started + deadlineMs - Date.now()) });
      if (res.status !== 503 || Date.now() + RETRY_MS > waitUntil) return res;
    } catch (err) {
      if (!agentAbsent(err)) throw err;
      if (Date.now() + RETRY_MS > waitUntil) {
        if (tries === 1) throw err;
        const waited = ((Date.now() - started) / 1000).toFixed(1);
        const e = err as ClientError;
        throw new ClientError(e.kind, `${e.message}, still after ${tries} tries in ${waited} s (agent_wait = ${settings.agentWait})`, e.socketPath, e.errno);
      }
    }
    await sleep(RETRY_MS);
  }
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

