/**
 * The node of the package specs: a VM booted into real systemd (run-kernel-specs.ts, group package) with
 * nothing of slurm-krsi on it, where the specs install the packages package-builds.ts made on the host
 * with dpkg and rpm, as an admin does, and look at what the packages did: the agent's unit and process,
 * the pins, the packaged krsictl, prolog and epilog, the journal, and what is left on the file system.
 * The node's own Node.js is hidden before anything is installed, so that only the bundled runtime can run.
 */
import { expect } from 'chai';
import { existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, realpathSync } from 'node:fs';
import { execa } from 'execa';
import { WORK } from '../slurm/cluster.js';
import { type Attempt, attackLoop } from '../systemd/jobs.js';
import { AGENT_UNIT, KRSICTL, PIN_DIR, krsiPrograms } from '../systemd/node.js';
import { unitProps } from '../systemd/systemctl.js';
import { PACKAGES_ENV, type Packages } from '../vm/package-builds.js';
import { waitFor } from '../vm/pace.js';

export { AGENT_UNIT, KRSICTL, PIN_DIR };
export { CONFIG, EPILOG, PROLOG } from '../systemd/node.js';

/** the runtime the package brings, which every entry point runs */
export const BUNDLED_NODE = '/usr/lib/slurm-krsi/node/bin/node';
/** the job's user, under strict, and another that no job restricts */
export const STRICT_USER = 1000;
export const FREE_USER = 1001;
/** a shell's PATH on a node (root's login PATH) */
const NODE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * In the current describe(), each test builds on the one before: once one fails, the rest are skipped
 * (counted as pending) instead of failing for want of what it left undone.
 */
export function stepByStep(): void {
  let broken = false;
  beforeEach(function () {
    if (broken) this.skip();
  });
  afterEach(function () {
    if (this.currentTest?.state === 'failed') broken = true;
  });
}

export function packages(): Packages {
  const text = process.env[PACKAGES_ENV];
  if (!text) throw new Error(`${PACKAGES_ENV} is not set: run the package group through test/vm/run-kernel-specs.ts (KRSI_VM_GROUP=package)`);
  return JSON.parse(text) as Packages;
}

/** what `sh -c 'command -v node'` finds with `path` as PATH, in the mount namespace of `pid` (default: ours) */
export async function nodeOnPath(path: string, pid?: number): Promise<string | null> {
  const sh = ['env', '-i', `PATH=${path}`, 'sh', '-c', 'command -v node'];
  const r = await execa(pid === undefined ? sh[0]! : 'nsenter', pid === undefined ? sh.slice(1) : [`--mount=/proc/${pid}/ns/mnt`, '--', ...sh], { reject: false });
  return r.exitCode === 0 ? r.stdout.trim() : null;
}

/**
 * A node without a Node.js of its own: every `node` on a shell's PATH has /dev/null mounted over it
 * (not executable), before the packages are installed, so the agent's unit starts with it hidden too.
 * This mocha process keeps running on the binary it was started from; nothing in the specs starts it again.
 */
export async function hideSystemNode(): Promise<string[]> {
  const found = (await execa('sh', ['-c', `PATH=${NODE_PATH} which -a node`], { reject: false })).stdout.split('\n').filter(Boolean);
  const binaries = [...new Set([process.execPath, ...found].map((p) => realpathSync(p)))];
  for (const bin of binaries) await execa('mount', ['--bind', '/dev/null', bin]);
  expect(await nodeOnPath(NODE_PATH), `command -v node once ${binaries.join(', ')} are hidden`).to.equal(null);
  return binaries;
}

/** the users of the specs, made if the VM's root has no such uid; the scratch folder every uid writes in */
export async function prepareUsers(): Promise<void> {
  for (const [uid, name] of [[STRICT_USER, 'krsiuser'], [FREE_USER, 'krsiother']] as const) {
    if ((await execa('getent', ['passwd', String(uid)], { reject: false })).exitCode === 0) continue;
    await execa('useradd', ['-M', '-u', String(uid), '-U', '-s', '/bin/bash', name]);
  }
  mkdirSync(WORK, { recursive: true, mode: 0o1777 });
  await execa('chmod', ['1777', WORK]);
}

/** a command as the admin runs it; its output for the test's log and assertions, its failure with both */
export async function admin(command: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  const r = await execa(command, args, { reject: false, all: true, env: { PATH: NODE_PATH, HOME: '/root', ...env }, extendEnv: false });
  if (r.exitCode !== 0) throw new Error(`${command} ${args.join(' ')} failed (${r.exitCode}):\n${r.all}`);
  return r.all ?? '';
}

/** the packaged krsictl's JSON answer */
export async function krsictlJson<T>(...args: string[]): Promise<T> {
  const r = await execa(KRSICTL, ['--json', ...args], { reject: false });
  if (r.exitCode !== 0) throw new Error(`krsictl --json ${args.join(' ')} failed (${r.exitCode}):\n${r.stdout}\n${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/**
 * The packaged prolog or epilog as slurmd runs it: as root, with Slurm's variables and no PATH (Slurm
 * 22.05 passes none). Resolves with its exit status and output.
 */
export async function slurmHook(hook: string, jobId: number, uid: number, comment?: string): Promise<{ exitCode: number; output: string }> {
  const env: Record<string, string> = {
    SLURM_JOB_ID: String(jobId), SLURM_JOB_UID: String(uid), SLURM_JOB_GID: String(uid), SLURMD_NODENAME: 'krsi-vm',
    SLURM_SCRIPT_CONTEXT: hook.endsWith('epilog') ? 'epilog_slurmd' : 'prolog_slurmd',
    ...(comment === undefined ? {} : { SLURM_JOB_COMMENT: comment }),
  };
  const r = await execa(hook, [], { env, extendEnv: false, reject: false, all: true });
  return { exitCode: r.exitCode ?? -1, output: r.all ?? '' };
}

/** the agent's unit as systemd has it, and what its main process runs */
export async function agentProcess(): Promise<{ active: string; pid: number; exe: string | null; path: string | null }> {
  const props = await unitProps(AGENT_UNIT, ['ActiveState', 'MainPID']);
  const pid = Number(props.MainPID ?? 0);
  if (pid === 0) return { active: props.ActiveState ?? '', pid, exe: null, path: null };
  const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
  return {
    active: props.ActiveState ?? '',
    pid,
    exe: readlinkSync(`/proc/${pid}/exe`),
    path: environ.find((v) => v.startsWith('PATH='))?.slice('PATH='.length) ?? null,
  };
}

/** the pins' own file system: its type and options while mounted at PIN_DIR, else null */
export async function pinMount(): Promise<{ fstype: string; options: string } | null> {
  const r = await execa('findmnt', ['-n', '-o', 'FSTYPE,OPTIONS', '--mountpoint', PIN_DIR], { reject: false });
  if (r.exitCode !== 0) return null;
  const [fstype = '', options = ''] = r.stdout.trim().split(/\s+/);
  return { fstype, options };
}

/** what is left of the pins in /sys/fs/bpf: PIN_DIR and its siblings (slurm-krsi-previous) */
export function pinsLeft(): string[] {
  return readdirSync('/sys/fs/bpf').filter((n) => n.startsWith('slurm-krsi'));
}

/** wait until no program of slurm-krsi is loaded (the kernel frees a program once its last link is gone) */
export async function waitProgramsGone(): Promise<void> {
  let left: string[] = [];
  // every type: the tp_btf program on sched_process_exit must go with the LSM ones
  await waitFor('slurm-krsi\'s programs to be unloaded', async () => (left = (await krsiPrograms()).map((p) => `${p.name} (${p.type})`)).length === 0, {
    timeoutMs: 30_000, intervalMs: 500, detail: () => `still loaded: ${left.join(' ')}`,
  });
}

/** every path under `dirs` (files, links and folders) */
export async function fileTree(dirs: readonly string[]): Promise<Set<string>> {
  const r = await execa('find', dirs.filter((d) => existsSync(d)), { reject: false, maxBuffer: 64 << 20 });
  return new Set(r.stdout.split('\n').filter(Boolean));
}

/**
 * An upgrade (dpkg -i, rpm -U) run while `uid`, under strict, tries a chmod u+s and a denied connect
 * over and over (attackLoop), until 10 attempts after it: every attempt must be denied. Returns the
 * command's output and the attempts, those during the command marked.
 */
export async function upgradeUnderAttack(uid: number, tag: string, command: string, args: string[]): Promise<{ out: string; attempts: Attempt[]; during: Attempt[] }> {
  // five rounds a second at most: dpkg and rpm share the VM's two emulated CPUs with the loop
  const attacks = attackLoop(uid, tag, 0.2);
  await waitFor('the attack loop\'s first attempts', () => attacks.attempts.length >= 4);
  const start = Date.now();
  let out = '';
  let failure: unknown;
  try {
    out = await admin(command, args);
  } catch (err) {
    failure = err;
  }
  const end = Date.now();
  // and on after it, when the new build alone enforces; the loop ends either way, so that a failed
  // upgrade does not leave it running
  if (failure === undefined) await waitFor('attempts after the upgrade', () => attacks.attempts.filter((a) => a.atMs > end).length >= 10);
  const attempts = await attacks.stop();
  if (failure !== undefined) throw failure;
  const during = attempts.filter((a) => a.atMs >= start && a.atMs <= end);
  const denied = attempts.filter((a) => a.verdict === 'ERR EPERM').length;
  console.log(`      ${command} took ${((end - start) / 1000).toFixed(0)} s; ${attempts.length} attempts (${during.length} during it), ${denied} denied:\n${out.trimEnd().replace(/^/gm, '        ')}`);
  return { out, attempts, during };
}

/** attempts the kernel did not deny, one line each, for an assertion's message */
export function notDenied(attempts: readonly Attempt[]): string[] {
  return attempts.filter((a) => a.verdict !== 'ERR EPERM').map((a) => `${a.action} at ${new Date(a.atMs).toISOString()}: ${a.verdict}`);
}
