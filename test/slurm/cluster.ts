/**
 * A real Slurm cluster (Debian's slurmctld, slurmd and munge, Slurm 22.05) for the kernel specs, of one
 * node, or of two nodes that are two slurmd on this one host (heterogeneous jobs need two), brought up
 * INSIDE the test VM: the VM's root is a throwaway overlay, so this rewrites /etc/slurm,
 * /etc/hosts and the user database freely. It refuses to run anywhere else (KRSI_VM=1 is set by the VM's
 * init only).
 *
 * startCluster() runs test/slurm/bringup.sh (dummy interface, cgroup v2, users, munged, slurmctld as
 * slurm, slurmd as root) and returns when the node is idle; stopCluster() stops the daemons it started.
 * The rest are helpers to act as a user (sbatch, salloc, scontrol) and to watch jobs and the node.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { scaled, waitFor } from '../vm/pace.js';

/** the repository root, from dist/test/slurm or test/slurm */
export const REPO = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!dir.endsWith('/dist') && dir !== '/') dir = dirname(dir);
  return dir === '/' ? resolve(dirname(fileURLToPath(import.meta.url)), '../..') : dirname(dir);
})();

/** scratch directory for job scripts, outputs and release flags (sticky, world-writable) */
export const WORK = '/tmp/krsi-slurm';
/** a batch script that runs until releaseJob() is called for its job */
export const HOLD = join(REPO, 'test/slurm/jobs/hold.sh');

/** let a job running HOLD end */
export function releaseJob(jobId: string): void {
  writeFileSync(join(WORK, `release-${jobId}`), '');
}
/**
 * The dummy interface's address. Not in 192.0.2.0/24 (the specs' forbidden destinations) and a /32, so
 * that connects to 192.0.2.x, 198.51.100.x and the rest of 203.0.113.0/24 still have no route.
 */
export const DUMMY_ADDR = '203.0.113.254/32';

export const PATH = '/usr/sbin:/usr/bin:/sbin:/bin';

export interface ClusterOptions {
  /** slurm.conf Prolog= / Epilog= (absent: none) */
  prolog?: string;
  epilog?: string;
  /** a job_submit.lua to install as /etc/slurm/job_submit.lua with JobSubmitPlugins=lua */
  jobSubmitLua?: string;
  /** uid -> user name to create when the uid has no passwd entry */
  users?: Record<number, string>;
  /** CPUs the node claims (config_overrides): how many 1-CPU jobs run at once (default 8) */
  cpus?: number;
  /** ProctrackType: proctrack/cgroup (default: job cgroups under system.slice/slurmstepd.scope) or proctrack/linuxproc */
  proctrack?: 'cgroup' | 'linuxproc';
  /** more slurm.conf lines */
  extraConf?: string[];
  /** PrologFlags (default Alloc,Contain, as slurm/slurm.conf.snippet recommends) */
  prologFlags?: string;
  /**
   * ReturnToService (default 2: a node drained by a test comes back when resumed). With 0 or 1 a node
   * that rebooted comes back DOWN ("Node unexpectedly rebooted") and its jobs are ended; with 2 it does
   * not, and the agent keeps the jobs of an earlier boot until their epilog (slurm/README.md).
   */
  returnToService?: 0 | 1 | 2;
  /** PrologEpilogTimeout in seconds (default 90): above the hooks' deadline, agent_wait + 20 s */
  prologEpilogTimeout?: number;
  /**
   * 2: two nodes, two slurmd on this host (`slurmd -N`, each its own port, spool directory and
   * slurmstepd scope), as a site emulates a larger system; the second is named "<host>-2" (default 1)
   */
  nodes?: 1 | 2;
  /** SchedulerType (default builtin; heterogeneous jobs are started by backfill alone) */
  scheduler?: 'builtin' | 'backfill';
  /**
   * FirstJobId (default 1): a cluster brought up again in one boot starts its ids above the last one's;
   * WORK is then kept as it is (else it is emptied: job files of the same ids may be another user's)
   */
  firstJobId?: number;
}

export interface Cluster {
  /** the first node (this host's name) */
  node: string;
  /** every node: this host's name, then "<host>-2" with two nodes */
  nodes: string[];
  /** uid -> user name, as the passwd database now says */
  users: Record<number, string>;
  /** seconds the bring-up took */
  seconds: number;
  conf: string;
}

let current: Cluster | undefined;

/** the cluster's node names: this host's, then "<host>-2" with two nodes */
export function nodeNames(node: string, opts: ClusterOptions): string[] {
  return (opts.nodes ?? 1) === 2 ? [node, `${node}-2`] : [node];
}

export function slurmConf(node: string, opts: ClusterOptions): string {
  const names = nodeNames(node, opts);
  // two slurmd on one host: each its node's own spool directory and pid file (%n: the node's name), one
  // log file (lines carry no node name, but each slurmd's own pid)
  const perNode = names.length > 1;
  const lines = [
    '# written by slurm-krsi test/slurm/cluster.ts (test VM only)',
    'ClusterName=krsi',
    'SlurmctldHost=localhost',
    'SlurmUser=slurm',
    'SlurmdUser=root',
    'AuthType=auth/munge',
    'CredType=cred/munge',
    'StateSaveLocation=/var/spool/slurmctld',
    `SlurmdSpoolDir=/var/spool/slurmd${perNode ? '/%n' : ''}`,
    'SlurmctldPidFile=/run/slurm/slurmctld.pid',
    `SlurmdPidFile=/run/slurm/slurmd${perNode ? '-%n' : ''}.pid`,
    'SlurmctldLogFile=/var/log/slurm/slurmctld.log',
    'SlurmdLogFile=/var/log/slurm/slurmd.log',
    'SlurmctldDebug=info',
    'SlurmdDebug=info',
    `ProctrackType=proctrack/${opts.proctrack ?? 'cgroup'}`,
    'TaskPlugin=task/none',
    'SelectType=select/cons_tres',
    'SelectTypeParameters=CR_CPU',
    'SlurmdParameters=config_overrides',
    `SchedulerType=sched/${opts.scheduler ?? 'builtin'}`,
    ...(opts.firstJobId !== undefined ? [`FirstJobId=${opts.firstJobId}`] : []),
    'MailProg=/bin/true',
    'AccountingStorageType=accounting_storage/none',
    'JobCompType=jobcomp/none',
    'JobAcctGatherType=jobacct_gather/none',
    'MpiDefault=none',
    'SwitchType=switch/none',
    `ReturnToService=${opts.returnToService ?? 2}`,
    'MinJobAge=600',
    'KillWait=2',
    'InactiveLimit=0',
    'MessageTimeout=20',
    'SlurmdTimeout=600',
    `PrologEpilogTimeout=${opts.prologEpilogTimeout ?? 90}`,
    `PrologFlags=${opts.prologFlags ?? 'Alloc,Contain'}`,
    ...(opts.prolog ? [`Prolog=${opts.prolog}`] : []),
    ...(opts.epilog ? [`Epilog=${opts.epilog}`] : []),
    ...(opts.jobSubmitLua ? ['JobSubmitPlugins=lua'] : []),
    ...(opts.extraConf ?? []),
    ...(perNode
      ? names.map((n, i) => `NodeName=${n} NodeHostname=${n} NodeAddr=127.0.0.1 Port=${6818 + i} CPUs=${opts.cpus ?? 8} State=UNKNOWN`)
      : [`NodeName=${node} NodeAddr=127.0.0.1 CPUs=${opts.cpus ?? 8} State=UNKNOWN`]),
    'PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP',
  ];
  return lines.join('\n');
}

export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  if (current) return current;
  const { seconds } = await runBringup(opts, {});
  current = await describeCluster(opts, seconds);
  return current;
}

/**
 * Under systemd (test/systemd): write the cluster's configuration and users for the Debian units to start
 * the daemons, keeping the state directories as the last boot left them; the munge key is kept in
 * `mungeKey` across boots. Runs before the units start (test/systemd/node-setup.ts).
 */
export async function configureSystemdCluster(opts: ClusterOptions, mungeKey: string): Promise<void> {
  await runBringup(opts, { KRSI_SLURM_SYSTEMD: '1', KRSI_SLURM_MUNGE_KEY: mungeKey });
}

/** Under systemd: the cluster the units started, once slurmctld answers and the node has registered. */
export async function systemdCluster(opts: ClusterOptions): Promise<Cluster> {
  if (current) return current;
  const started = Date.now();
  await until('slurmctld to answer and the node to register', async () => {
    const r = await execa('sinfo', ['-h', '-N', '-o', '%T'], { reject: false });
    return r.exitCode === 0 && /^(idle|mixed|allocated)/.test(String(r.stdout).trim());
  }, 240_000);
  current = await describeCluster(opts, (Date.now() - started) / 1000);
  return current;
}

async function runBringup(opts: ClusterOptions, extraEnv: Record<string, string>): Promise<{ seconds: number }> {
  if (process.env.KRSI_VM !== '1') throw new Error('the Slurm bring-up runs only inside the test VM (it rewrites /etc); KRSI_VM=1 is not set');
  const node = (await execa('hostname')).stdout.trim();
  const started = Date.now();
  const r = await execa('bash', [join(REPO, 'test/slurm/bringup.sh')], {
    reject: false,
    all: true,
    env: {
      KRSI_SLURM_CONF: slurmConf(node, opts),
      KRSI_SLURM_NODES: nodeNames(node, opts).join(' '),
      KRSI_SLURM_LUA: opts.jobSubmitLua ?? '',
      KRSI_SLURM_USERS: Object.entries(opts.users ?? {}).map(([uid, name]) => `${uid}:${name}`).join(' '),
      KRSI_SLURM_ADDR: DUMMY_ADDR,
      KRSI_SLURM_WORK: WORK,
      KRSI_SLURM_KEEP_WORK: opts.firstJobId !== undefined ? '1' : '0',
      ...extraEnv,
    },
    timeout: scaled(240_000),
  });
  if (r.exitCode !== 0) throw new Error(`Slurm bring-up failed (exit ${r.exitCode ?? r.signal}):\n${r.all}`);
  return { seconds: (Date.now() - started) / 1000 };
}

async function describeCluster(opts: ClusterOptions, seconds: number): Promise<Cluster> {
  const node = (await execa('hostname')).stdout.trim();
  const users: Record<number, string> = {};
  for (const uid of Object.keys(opts.users ?? {}).map(Number)) {
    users[uid] = (await execa('getent', ['passwd', String(uid)])).stdout.split(':')[0]!;
  }
  return { node, nodes: nodeNames(node, opts), users, seconds, conf: slurmConf(node, opts) };
}

/** Stop what startCluster started (jobs first), and take the dummy interface away. Never throws. */
export async function stopCluster(): Promise<void> {
  if (!current) return;
  current = undefined;
  const sh = (script: string) => execa('bash', ['-c', script], { reject: false, timeout: scaled(60_000) });
  await sh('squeue -h -o %i 2>/dev/null | xargs -r scancel 2>/dev/null; true');
  await sh(`
    for p in /run/slurm/slurmd*.pid /run/slurm/slurmctld.pid /run/munge/munged.pid; do
      [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null
    done
    for _ in $(seq 50); do pgrep -x 'slurmd|slurmctld|munged' >/dev/null || break; sleep 0.1; done
    ip link del krsi-dummy0 2>/dev/null
    true`);
}

export interface AsUserResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** A command as a user (uid = gid, no supplementary groups), with the environment a login would give. */
export async function asUser(uid: number, file: string, args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<AsUserResult> {
  const name = current?.users[uid] ?? String(uid);
  const r = await execa(file, args, {
    uid,
    gid: uid,
    reject: false,
    cwd: opts.cwd ?? WORK,
    env: { PATH, HOME: `/home/${name}`, USER: name, LOGNAME: name, LANG: 'C', ...opts.env },
    extendEnv: false,
    timeout: scaled(120_000),
  });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout).trim(), stderr: String(r.stderr).trim() };
}

/** sbatch as a user; resolves with the job id. Throws with sbatch's message when the submission is refused. */
export async function sbatch(uid: number, script: string, args: string[] = [], env: Record<string, string> = {}): Promise<string> {
  const r = await sbatchRaw(uid, script, args, env);
  const id = /^(\d+)/.exec(r.stdout)?.[1];
  if (r.exitCode !== 0 || id === undefined) throw new Error(`sbatch as uid ${uid} failed (exit ${r.exitCode}): ${r.stderr} ${r.stdout}`);
  return id;
}

/** sbatch as a user, returning what it printed (for submissions that are meant to be refused) */
export async function sbatchRaw(uid: number, script: string, args: string[] = [], env: Record<string, string> = {}): Promise<AsUserResult> {
  return asUser(uid, 'sbatch', ['--parsable', '--ntasks=1', '--cpus-per-task=1', ...args, script], { env });
}

/**
 * `scontrol -o show job ID` as key -> value, from the line of that job id (values may contain spaces only
 * for the last keys; good enough)
 */
export async function jobInfo(id: string): Promise<Record<string, string>> {
  const r = await execa('scontrol', ['-o', 'show', 'job', id], { reject: false });
  if (r.exitCode !== 0) return {};
  // a heterogeneous job's leader id shows every component, an array's id every task: one line each
  const lines = String(r.stdout).split('\n').filter((l) => l.trim() !== '');
  return parseKeyValues(lines.find((l) => l.startsWith(`JobId=${id} `)) ?? lines[0] ?? '');
}

/** the tasks of a job array that are running: [array index, the task's own job id] */
export async function runningArrayTasks(arrayJobId: string): Promise<[string, string][]> {
  const r = await execa('squeue', ['-h', '-r', '-t', 'R', '-j', arrayJobId, '-o', '%K %A'], { reject: false });
  return String(r.stdout).split('\n').filter((l) => l.trim() !== '').map((l) => l.trim().split(/\s+/) as [string, string]);
}

export async function nodeInfo(): Promise<Record<string, string>> {
  const r = await execa('scontrol', ['-o', 'show', 'node'], { reject: false });
  return parseKeyValues(String(r.stdout));
}

/** Slurm's one-line records: Key=Value pairs separated by spaces; a value runs until the next " Key=" */
export function parseKeyValues(line: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /(?:^|\s)([A-Za-z][A-Za-z0-9_:/]*)=/g;
  const marks: { key: string; start: number; end: number }[] = [];
  for (let m = re.exec(line); m; m = re.exec(line)) marks.push({ key: m[1]!, start: m.index, end: re.lastIndex });
  for (let i = 0; i < marks.length; i++) {
    const next = marks[i + 1]?.start ?? line.length;
    out[marks[i]!.key] = line.slice(marks[i]!.end, next).trim();
  }
  return out;
}

/**
 * Poll a job until `done(info)` holds; throws with the job record and the daemons' logs on timeout.
 * Deadlines here and below are base values that pace.ts stretches on a slow machine.
 */
export async function waitForJob(id: string, what: string, done: (info: Record<string, string>) => boolean, timeoutMs = 120_000): Promise<Record<string, string>> {
  let info: Record<string, string> = {};
  await waitFor(`job ${id} ${what}`, async () => {
    info = await jobInfo(id);
    return done(info);
  }, { timeoutMs, intervalMs: 200, detail: () => `${JSON.stringify(info)}\n${slurmLogTails()}` });
  return info;
}

const FINAL = /^(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|PREEMPTED|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE)/;

/** the job ended and its epilog ran (not COMPLETING any more) */
export async function waitJobEnded(id: string, timeoutMs = 120_000): Promise<Record<string, string>> {
  return waitForJob(id, 'ended', (i) => FINAL.test(i.JobState ?? '') && !/COMPLETING/.test(i.JobState ?? ''), timeoutMs);
}

export async function waitJobRunning(id: string, timeoutMs = 120_000): Promise<Record<string, string>> {
  return waitForJob(id, 'running', (i) => {
    if (FINAL.test(i.JobState ?? '')) throw new Error(`job ${id} ended while waiting for it to run: ${JSON.stringify(i)}\n${slurmLogTails()}`);
    return i.JobState === 'RUNNING';
  }, timeoutMs);
}

/** Poll until `check()` returns true; the failure names `what` and shows the daemons' logs. */
export async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  await waitFor(what, check, { timeoutMs, intervalMs: 200, detail: () => slurmLogTails() });
}

export function slurmLogTails(lines = 25): string {
  const out: string[] = [];
  for (const f of ['/var/log/slurm/slurmctld.log', '/var/log/slurm/slurmd.log']) {
    if (!existsSync(f)) continue;
    out.push(`----- tail of ${f} -----`, ...readFileSync(f, 'utf8').trimEnd().split('\n').slice(-lines));
  }
  return out.join('\n');
}

/** slurm's own log lines matching a pattern (for evidence in reports) */
export function slurmLogGrep(re: RegExp, file: 'slurmctld' | 'slurmd'): string[] {
  const path = `/var/log/slurm/${file}.log`;
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8').split('\n').filter((l) => re.test(l));
}

/**
 * Copy the cluster's config and logs (and any extra files) into `dir`, e.g. under the VM's results share
 * ($KRSI_RESULTS_DIR), so that a failed run can be read on the host. Never throws.
 */
export function saveLogs(dir: string, extra: string[] = []): void {
  const failed: string[] = [];
  const files = ['/etc/slurm/slurm.conf', '/etc/slurm/cgroup.conf', '/var/log/slurm/slurmctld.log', '/var/log/slurm/slurmd.log', ...extra];
  for (const f of files) {
    // one file at a time: a file that cannot be copied must not cost the others
    try {
      mkdirSync(dir, { recursive: true });
      if (existsSync(f)) writeFileSync(join(dir, f.replace(/^\//, '').replace(/\//g, '_')), readFileSync(f));
    } catch (err) {
      failed.push(`${f}: ${(err as Error).message}`);
    }
  }
  if (failed.length > 0) console.log(`      saveLogs: not saved:\n${failed.map((l) => `        ${l}`).join('\n')}`);
}

export async function resumeNode(): Promise<void> {
  if (!current) return;
  await execa('scontrol', ['update', `NodeName=${current.node}`, 'State=RESUME'], { reject: false });
  await until('the node is idle again', async () => /^(IDLE|MIXED|ALLOCATED)/.test((await nodeInfo()).State ?? ''));
}
