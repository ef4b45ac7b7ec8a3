/**
 * slurm-krsi installed on the VM's node the way an admin installs it (deploy/install.sh: the paths of
 * DESIGN.md), the installed agent run as the systemd unit would run it, and what the attack jobs need
 * (users with ssh keys, an sshd on 127.0.0.1). Used by the Slurm spec, the
 * benchmarks and the demo, inside the VM only (install.sh writes to /usr, /etc and /var).
 */
import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { request } from '../../agent/client/client.js';
import { signalFromInit } from '../vm/init-control.js';
import { asTheUnitRunsIt } from '../vm/agent-command.js';
import { scaled, waitFor } from '../vm/pace.js';
import { REPO, WORK } from './cluster.js';
import type { JobView } from '../../agent/service/types.js';

export const INSTALL = join(REPO, 'deploy/install.sh');
export const AGENT = '/usr/sbin/krsi-agent';
export const KRSICTL = '/usr/sbin/krsictl';
export const PROLOG = '/usr/libexec/slurm-krsi/prolog';
export const EPILOG = '/usr/libexec/slurm-krsi/epilog';
export const TASK_PROLOG = '/usr/libexec/slurm-krsi/task-prolog';
export const CONFIG = '/etc/slurm-krsi/krsi.ini';
export const SOCKET = '/run/slurm-krsi/agent.sock';
export const PIN_DIR = '/sys/fs/bpf/slurm-krsi';
export const EVENT_LOG = '/var/log/slurm-krsi/events.log';
export const NOTES = '/var/lib/slurm-krsi/pending-removals';
/** the agent's stdout and stderr (what journald would hold) */
export const AGENT_LOG = join(WORK, 'agent.log');
/** the sshd the attack jobs forward through (startSshd) */
export const SSH_PORT = 2222;
/** the test jobs' scripts (test/slurm/jobs: what each tries is said at its top) */
export const JOBS = join(REPO, 'test/slurm/jobs');
/** the job script that tries the paper's attacks and their variants */
export const ATTACKS = join(JOBS, 'attacks.sh');
export const PERJOB = join(JOBS, 'perjob.sh');

/** Run deploy/install.sh (without enabling the unit: there is no systemd in the VM); returns its seconds. */
export async function installOnNode(): Promise<number> {
  if (!existsSync(INSTALL)) throw new Error(`${INSTALL} does not exist`);
  const t0 = Date.now();
  const inst = await execa('bash', [INSTALL, '--no-enable'], { reject: false, all: true, timeout: scaled(240_000) });
  if (inst.exitCode !== 0) throw new Error(`deploy/install.sh failed (${inst.exitCode}):\n${inst.all}`);
  for (const f of [AGENT, KRSICTL, PROLOG, EPILOG, CONFIG]) {
    if (!existsSync(f)) throw new Error(`deploy/install.sh did not create ${f}:\n${inst.all}`);
  }
  return (Date.now() - t0) / 1000;
}

async function sh(cmd: string, args: string[]): Promise<void> {
  const r = await execa(cmd, args, { reject: false, all: true });
  if (r.exitCode !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.exitCode}): ${r.all}`);
}

/** `name` becomes the user with `uid` (the VM's /etc is a throwaway overlay), with an ssh key to itself */
export async function ensureUser(name: string, uid: number): Promise<void> {
  const current = (await execa('getent', ['passwd', String(uid)], { reject: false })).stdout.split(':')[0];
  if (current !== name) {
    if (current) await execa('userdel', ['-f', current], { reject: false });
    const group = (await execa('getent', ['group', String(uid)], { reject: false })).stdout.split(':')[0];
    if (group) await execa('groupdel', [group], { reject: false });
    // password '*': no password login, but not a locked account (sshd refuses key logins to locked ones)
    await sh('useradd', ['-m', '-u', String(uid), '-U', '-s', '/bin/bash', '-p', '*', name]);
  }
  const dir = `/home/${name}/.ssh`;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (!existsSync(`${dir}/id_ed25519`)) await sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', `${dir}/id_ed25519`]);
  writeFileSync(`${dir}/authorized_keys`, readFileSync(`${dir}/id_ed25519.pub`));
  await sh('chown', ['-R', `${name}:${name}`, `/home/${name}`]);
}

/** an sshd on 127.0.0.1:SSH_PORT that accepts each user's own key: the target of the ssh -D attempts */
export async function startSshd(): Promise<void> {
  await sh('ssh-keygen', ['-A']);
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const config = '/tmp/krsi-sshd_config';
  writeFileSync(config, [
    `Port ${SSH_PORT}`, 'ListenAddress 127.0.0.1', 'PasswordAuthentication no', 'UsePAM no',
    'HostKey /etc/ssh/ssh_host_ed25519_key', 'PidFile /run/sshd-krsi.pid', '',
  ].join('\n'));
  await sh('/usr/sbin/sshd', ['-f', config]);
}

/** stop what startSshd started; never throws */
export async function stopSshd(): Promise<void> {
  await execa('bash', ['-c', 'kill "$(cat /run/sshd-krsi.pid)"'], { reject: false });
}

/** sbatch's --export for test/slurm/jobs/attacks.sh and perjob.sh */
export function attacksExport(agentPid: number): string {
  return `--export=ALL,KRSI_JOBS=${JOBS},KRSI_PROBE=${join(REPO, 'build/probe/krsi-probe')},KRSI_AGENT_PID=${agentPid},KRSI_SSH_PORT=${SSH_PORT}`;
}

const agentOptions = { reject: false, buffer: false, stdin: 'ignore' } as const;
let agent: ResultPromise<typeof agentOptions> | undefined;
let agentLog: WriteStream | undefined;


export function tail(path: string, lines = 30): string {
  return existsSync(path) ? readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n') : `(no ${path})`;
}

/** The installed agent, started as the unit starts it; returns its pid once it answers /v1/status. */
export async function startAgent(): Promise<number> {
  agentLog ??= createWriteStream(AGENT_LOG, { flags: 'a' });
  const proc = execa(...asTheUnitRunsIt(AGENT, ['--config', CONFIG]), agentOptions);
  proc.stdout!.pipe(agentLog, { end: false });
  proc.stderr!.pipe(agentLog, { end: false });
  agent = proc;
  await waitFor('krsi-agent to answer GET /v1/status', async () => {
    if (proc.exitCode !== null) throw new Error(`krsi-agent exited early (${proc.exitCode}):\n${tail(AGENT_LOG)}`);
    try {
      return (await request(SOCKET, 'GET', '/v1/status', undefined, { timeoutMs: scaled(5000) })).status === 200;
    } catch {
      return false; // not listening yet
    }
  }, { timeoutMs: 120_000, intervalMs: 200, detail: () => tail(AGENT_LOG) });
  return proc.pid!;
}

export function agentPid(): number | undefined {
  return agent?.pid;
}

/**
 * A crash (SIGKILL) or a stop (SIGTERM) of the installed agent. The agent lets nobody but PID 1 signal
 * it (that is how `systemctl stop` works), so the VM's init sends the signal (test/vm/init-control.ts).
 */
export async function stopAgent(signal: 'SIGKILL' | 'SIGTERM'): Promise<void> {
  const proc = agent;
  if (!proc) return;
  await signalFromInit(proc.pid!, signal);
  await proc;
  agent = undefined;
}

/** stop the agent if it runs and close its log; never throws */
export async function shutdownAgent(): Promise<void> {
  await stopAgent('SIGTERM').catch(() => undefined);
  agentLog?.end();
  agentLog = undefined;
}

export async function api<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const r = await request(SOCKET, method, path, body, { timeoutMs: scaled(30_000) });
  return { status: r.status, body: r.body as T };
}

export async function agentJobs(): Promise<JobView[]> {
  return (await api<{ jobs: JobView[] }>('GET', '/v1/jobs')).body.jobs;
}

export async function uidsUnderPolicy(): Promise<number[]> {
  return (await api<{ uidsUnderPolicy: number[] }>('GET', '/v1/status')).body.uidsUnderPolicy;
}

/**
 * Once the agent shows each job registered and bound to its cgroup, let the jobs' scripts act (they wait
 * for go-<jobid>: an attempt before the binding would be judged by the uid's union). Returns the jobs as
 * the agent showed them then.
 */
export async function goWhenBound(jobIds: string[]): Promise<JobView[]> {
  let views: JobView[] = [];
  await waitFor(`jobs ${jobIds.join(', ')} registered and bound to their cgroups`, async () => {
    views = (await agentJobs()).filter((j) => jobIds.includes(j.jobId));
    return views.length === jobIds.length && views.every((j) => j.binding.state === 'bound');
  }, { timeoutMs: 120_000, intervalMs: 200, detail: () => JSON.stringify(views) });
  for (const id of jobIds) writeFileSync(join(WORK, `go-${id}`), '');
  return views;
}

/** whether an event line names this job alone (the job whose cgroup acted), not a uid's list of jobs */
export function namesOnly(line: string, jobId: string): boolean {
  return new RegExp(`\\bjob=${jobId}(?: |$)`).test(line);
}

/** what the agent's log says happened to a job, in order: job added, job bound to its cgroup, ... */
export function agentHistory(jobId: string): { ts: string; msg: string }[] {
  // the agent's messages about the job (its stdout also carries the events, which have no msg=)
  return readFileSync(AGENT_LOG, 'utf8').split('\n').filter((l) => namesOnly(l, jobId)).flatMap((l) => {
    const msg = /\bmsg=(?:"([^"]*)"|(\S+))/.exec(l);
    return msg === null ? [] : [{ ts: /\bts=(\S+)/.exec(l)?.[1] ?? '?', msg: msg[1] ?? msg[2]! }];
  });
}

/** whether an event line names a job (job= holds the uid's job ids, comma-separated) */
export function namesJob(line: string, jobId: string): boolean {
  return new RegExp(`\\bjob=(?:[^ ]*,)?${jobId}(?:,[^ ]*)?(?: |$)`).test(line);
}

/**
 * The lines of the event log that name a job, once `count` of them match `re`; the caller's assertions
 * then say which line is missing, so a timeout returns what was found rather than throwing.
 */
export async function jobEvents(jobId: string, re: RegExp = /./, count = 1): Promise<string[]> {
  let found: string[] = [];
  await waitFor(`${count} event line(s) of job ${jobId} matching ${String(re)}`, () => {
    const text = existsSync(EVENT_LOG) ? readFileSync(EVENT_LOG, 'utf8') : '';
    found = text.split('\n').filter((l) => namesJob(l, jobId));
    return found.filter((l) => re.test(l)).length >= count;
  }, { timeoutMs: 20_000, intervalMs: 200 }).catch(() => undefined);
  return found;
}

/** ATTEMPT lines of a job's output (test/slurm/jobs/attacks.sh): name -> "rc=N what it printed" */
export function attempts(output: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of output.matchAll(/^ATTEMPT (\S+) (rc=.*)$/gm)) out[m[1]!] = m[2]!;
  return out;
}
