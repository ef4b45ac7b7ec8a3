/**
 * The benchmark driver that runs inside the VM as root (started by bench/run-bench.ts through runInVm).
 *
 *   node dist/bench/vm/driver.js --boot on|off --out FILE [--quick] [--sections overhead,perjob,rounds,jobstart,pipeline,flood,adversary]
 *
 * --boot off (BPF LSM not in the LSM list): only the overhead workloads, configuration "bpf-off".
 * --boot on: the overhead workloads under "no programs", then with the real agent (dist/agent/main.js)
 * with no job, a strict job for another uid, a strict job for the measuring uid and a floor (audit)
 * job for it; the same strict job bound to its cgroup, and another uid's bound while the measuring uid
 * runs outside every job (perjob; alone, with the no-job and strict-self baselines, on JOB_WORKLOADS);
 * per-program kernel cost (bpf_stats); the agent's configurations again in rounds, each between two
 * measurements of "no programs" (rounds: the 1% goals, with the drift between configurations cancelled);
 * job start cost through the real prolog/epilog;
 * the event pipeline at rising rates; a flood that must hide no other action; the adversary emulation. Everything measured with the guest's
 * CLOCK_MONOTONIC, which under -icount shift=0,sleep=off counts instructions.
 */
import { appendFileSync, chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, rmdirSync, statSync, truncateSync, writeFileSync, chownSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { release, setPriority } from 'node:os';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { request, type ClientResponse } from '../../agent/client/client.js';
import { Enforcer } from '../../agent/enforcement/enforcer.js';
import { BpfObject, type BpfLink } from '../../libbpf-ts/index.js';
import { sbatch, startCluster, stopCluster, waitJobEnded, waitJobRunning } from '../../test/slurm/cluster.js';
import { asTheUnitRunsIt } from '../../test/vm/agent-command.js';
import { signalFromInit } from '../../test/vm/init-control.js';
import { asTaskIn } from '../../test/vm/task-in-cgroup.js';
import { METRICS_LIMITS } from '../../agent/metrics/server.js';
import type { JobView } from '../../agent/service/types.js';
import { histogramDelta } from './common.js';
import type {
  AdversaryResult, AdversaryRow, ApplyHistogram, BootResult, BpfStatsResult, ConfigResult, FloodPhase, FloodProbe, FloodResult, JobStartResult, PipelineStep, ProgStat,
  Sample, WorkloadProgStats, WorkloadResult,
} from './common.js';

const ROOT = (() => {
  const here = new URL('.', import.meta.url).pathname; // <root>/dist/bench/vm/
  return join(here, '../../..');
})();
const BUILD = join(ROOT, 'build/bench');
const PROBE_SRC = join(ROOT, 'build/probe/krsi-probe');
const AGENT = join(ROOT, 'dist/agent/main.js');
/** the V8 options deploy/install.sh puts in the krsi-agent wrapper */
const AGENT_NODE_OPTIONS = readFileSync(join(ROOT, 'deploy/agent-node-options'), 'utf8').split(/\s+/).filter((x) => x !== '');
const PROLOG = join(ROOT, 'dist/prolog/prolog.js');
const EPILOG = join(ROOT, 'dist/epilog/epilog.js');
const ADVERSARY_JOB = join(ROOT, 'bench/adversary-job.sh');

const WORK = '/tmp/krsi-bench';
const BIN = join(WORK, 'bin');
const CONFIG = join(WORK, 'krsi.ini');
const SOCKET = '/run/slurm-krsi/agent.sock';
const PIN_DIR = '/sys/fs/bpf/slurm-krsi';
const EVENT_LOG = join(WORK, 'events.log');
const AGENT_OUT = join(WORK, 'agent.out');
/** the agent's own lines (not the event lines) of AGENT_OUT, kept across rotations */
const AGENT_OWN = join(WORK, 'agent-own.log');
const SSH_CLIENT = join(WORK, 'ssh-client');
/** slurm.conf Prolog= / Epilog=: the real prolog and epilog, pointed at the bench agent's config */
const SLURM_PROLOG = join(WORK, 'slurm-prolog');
const SLURM_EPILOG = join(WORK, 'slurm-epilog');
const METRICS = 'http://127.0.0.1:9817/metrics';

/** the measuring uid (a job's user) and another uid */
const USER = 1000;
const OTHER = 1001;

const args = process.argv.slice(2);
const boot = args[args.indexOf('--boot') + 1] === 'off' ? 'off' : 'on';
const out = args[args.indexOf('--out') + 1] ?? '/krsi-results/bench.json';
const quick = args.includes('--quick');
/** the parts to run (all by default); a partial run is for working on one part, not for the document */
const SECTIONS = ['overhead', 'perjob', 'rounds', 'jobstart', 'pipeline', 'flood', 'adversary'] as const;
const wanted = args.includes('--sections') ? (args[args.indexOf('--sections') + 1] ?? '').split(',') : [...SECTIONS];
for (const w of wanted) if (!(SECTIONS as readonly string[]).includes(w)) throw new Error(`bench driver: unknown section "${w}" in --sections (known: ${SECTIONS.join(', ')})`);
const runs = (section: (typeof SECTIONS)[number]) => wanted.includes(section);
const scale = (n: number) => (quick ? Math.max(1, Math.round(n / 5)) : n);

const notes: string[] = [];
const say = (msg: string) => process.stdout.write(`bench: ${msg}\n`);
const vnow = () => Number(process.hrtime.bigint()) / 1e6; // ms, guest clock
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function userDir(uid: number): string {
  return join(WORK, `u${uid}`);
}

// ------------------------------------------------------------------ processes

const ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C' };

function runAs(uid: number, file: string, argv: string[]) {
  return execa(file, argv, { uid, gid: uid, reject: false, cwd: '/', extendEnv: false, env: ENV });
}

/** as runAs, the process placed into a job's task cgroup first, as slurmstepd places a task */
function runAsTaskIn(cgroup: string, uid: number, file: string, argv: string[]) {
  return execa(...asTaskIn(cgroup, uid, file, argv), { reject: false, cwd: '/', extendEnv: false, env: ENV });
}

function parseResult(stdout: string, what: string): Sample {
  const m = /RESULT ops=(\d+) ns=(\d+) errors=(\d+)/.exec(stdout);
  if (!m) throw new Error(`${what}: no RESULT line in ${JSON.stringify(stdout)}`);
  return { ops: Number(m[1]), ns: Number(m[2]), errors: Number(m[3]) };
}

interface Workload {
  name: string;
  argv: (uid: number) => [string, string[]];
}

const WORKLOADS: Workload[] = [
  // 25,000 loops (one virtual second) where the others run 5,000: the kernel's deferred work after each
  // loop's unlink (RCU callbacks freeing the inode and dentry, slab refills) lands in a run by its phase,
  // and at 5,000 loops it moved runs of one configuration by up to 0.5%, configurations by 0.4%: as much as
  // the programs cost. At 25,000 the runs of a configuration were within 0.05% (its 1% goal is measurable).
  { name: 'mdstress', argv: (uid) => [join(BIN, 'mdstress'), [join(userDir(uid), 'md'), String(scale(25000)), '0', '022']] },
  { name: 'mdstress-umask0', argv: (uid) => [join(BIN, 'mdstress'), [join(userDir(uid), 'md0'), String(scale(5000)), '0', '0']] },
  { name: 'chmod', argv: (uid) => [join(BIN, 'chmodloop'), [join(userDir(uid), 'ch'), String(scale(5000)), '0600', '0640']] },
  { name: 'chmod-o+w', argv: (uid) => [join(BIN, 'chmodloop'), [join(userDir(uid), 'chw'), String(scale(5000)), '0600', '0602']] },
  { name: 'connect', argv: () => [join(BIN, 'connloop'), [String(scale(1500)), '40123']] },
  { name: 'fork-exec', argv: () => [join(BIN, 'forkexec'), [String(scale(150)), join(BIN, 'nop')]] },
  { name: 'dgemm', argv: () => [join(BIN, 'dgemm'), ['160', '2']] },
];

let agentRunning = false;

/** where a configuration's workloads run: as which uid, and in which cgroup (null: outside every job) */
interface Runner {
  uid: number;
  cgroup: string | null;
}
const AS_USER: Runner = { uid: USER, cgroup: null };

async function runWorkload(w: Workload, { uid, cgroup }: Runner): Promise<Sample> {
  // nothing else may share the one vCPU with a timed run: not the agent's deferred work after the
  // previous run's events, not this driver's own V8 threads (they wake some seconds after it starts)
  await waitGuestQuiet(2, `a run of ${w.name}`);
  const [file, argv] = w.argv(uid);
  const r = await (cgroup === null ? runAs(uid, file, argv) : runAsTaskIn(cgroup, uid, file, argv));
  if (r.exitCode !== 0) throw new Error(`${w.name} as uid ${uid}${cgroup === null ? '' : ` in ${cgroup}`} failed (${r.exitCode}): ${r.stderr}`);
  // the agent logs the run's events on the same (only) vCPU: let it finish before the next run starts,
  // so that each run carries the logging of its own events and nothing of the previous run's
  if (agentRunning) await drained();
  return parseResult(String(r.stdout), w.name);
}

/** busy CPU time of the whole guest so far, ns: /proc/stat's first line, in USER_HZ (10 ms) ticks, every task and interrupt */
function guestBusyNs(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f;
  return (user + nice + system + irq + softirq + steal) * 10e6;
}

/**
 * Wait until `busyNs` (a CPU-time counter) grows by at most one 10 ms tick in each of `seconds` consecutive
 * virtual seconds. Idle virtual time costs nothing under -icount sleep=off. Something never quiet is noted
 * in the results (once per `what`), not waited for forever.
 */
async function waitQuiet(busyNs: () => number, seconds: number, what: string, timeoutMs = 180000): Promise<void> {
  const t0 = vnow();
  let quiet = 0;
  while (quiet < seconds) {
    if (vnow() - t0 > timeoutMs) {
      const note = `${what} was not quiet for ${seconds} s within ${timeoutMs / 1000} s; the bench went on`;
      if (!notes.includes(note)) notes.push(note);
      return;
    }
    const before = busyNs();
    await sleep(1000);
    quiet = busyNs() - before <= 10e6 ? quiet + 1 : 0;
  }
}

/** the whole guest quiet: every task, kernel threads and interrupts included */
function waitGuestQuiet(seconds: number, before: string): Promise<void> {
  return waitQuiet(guestBusyNs, seconds, `the guest, before ${before},`);
}

/** wait until the agent has logged (or the kernel folded or dropped) every decision so far; returns virtual seconds waited */
async function drained(timeoutMs = 120000): Promise<number> {
  const t0 = vnow();
  for (;;) {
    const s = await status();
    if (accounted(s) >= decisions(s) || vnow() - t0 > timeoutMs) return (vnow() - t0) / 1000;
    await sleep(50);
  }
}

/**
 * The kernel's state before a run moves a loop's cost. On mdstress, creating or removing one unrelated
 * file (a socket, a fifo or a regular file, on any file system) moved the loop between levels about 0.2%
 * apart, with or without the agent and its programs; and as this VM is deterministic, the same sequence of
 * configurations landed on the same levels in every boot. Measured in one state each, two configurations
 * can differ by 0.2-0.4% that neither causes: half of what the 1% goals leave. So every configuration runs
 * its repetitions over the same cycle of states: before repetition i, `states[i]` scratch files exist in a
 * tmpfs of their own that no loop touches. The median over the cycle is then taken over the same mix of
 * states for every configuration, "no programs" included, and the runs' spread shows the levels.
 */
const STATE_DIR = join(WORK, 'kernel-state'); // not 'state': the agent's state_dir
/** section 2's cycle (as many runs as it had before the cycle, and one more) */
const SECTION_STATES = quick ? [0, 1] : [0, 1, 2, 3];
/** the rounds' cycle: the 1% goals are judged on these, so more states */
const ROUND_STATES = quick ? [0, 1] : [0, 1, 2, 3, 4, 5, 6, 7];

/** leave exactly k scratch files in STATE_DIR (created or removed in order, so a cycle repeats exactly) */
function holdStateFiles(k: number): void {
  const have = readdirSync(STATE_DIR).length;
  for (let i = have; i < k; i++) writeFileSync(join(STATE_DIR, `f${i}`), 'x');
  for (let i = have - 1; i >= k; i--) rmSync(join(STATE_DIR, `f${i}`));
}

async function measureConfig(config: string, workloads = WORKLOADS, runner = AS_USER, states = SECTION_STATES): Promise<ConfigResult> {
  const results: WorkloadResult[] = workloads.map((w) => ({ workload: w.name, uid: runner.uid, samples: [] }));
  holdStateFiles(0);
  // a configuration starts on a quiet guest: after a boot, an agent start or a job change
  await waitGuestQuiet(10, `${config}'s first run`);
  // round-robin over the workloads, so slow drift in the guest touches every workload alike
  // one warm-up run of each workload: a loop's first run after a pause can pay a one-off cost (the
  // connect loop's first run after boot took about 6 ms more, with no agent and no Node.js running)
  for (const w of workloads) await runWorkload(w, runner);
  for (const k of states) {
    holdStateFiles(k);
    for (let i = 0; i < workloads.length; i++) results[i]!.samples.push({ ...(await runWorkload(workloads[i]!, runner)), stateFiles: k });
  }
  holdStateFiles(0);
  for (const r of results) {
    const per = r.samples.map((s) => (s.ns / s.ops).toFixed(1)).join(' ');
    say(`${config} uid ${runner.uid}${runner.cgroup === null ? '' : ` in ${runner.cgroup}`} ${r.workload}: ns/op ${per} errors ${r.samples.map((s) => s.errors).join(' ')}`);
  }
  return { config, results };
}

// ------------------------------------------------------------------ bpf_stats

/**
 * The agent's programs' kernel statistics, from its metrics: bpftool cannot open them while the agent runs
 * (only the agent and init may), so it does not list them.
 */
async function progStats(): Promise<Map<string, ProgStat>> {
  const text = await (await fetch(METRICS)).text();
  const outMap = new Map<string, ProgStat>();
  const stat = (name: string) => outMap.get(name) ?? outMap.set(name, { name, runCnt: 0, runTimeNs: 0 }).get(name)!;
  for (const line of text.split('\n')) {
    const runs = /^krsi_program_runs_total\{program="([^"]+)"\} (\S+)/.exec(line);
    if (runs) stat(runs[1]!).runCnt = Number(runs[2]);
    const time = /^krsi_program_run_seconds_total\{program="([^"]+)"\} (\S+)/.exec(line);
    if (time) stat(time[1]!).runTimeNs = Math.round(Number(time[2]) * 1e9);
  }
  return outMap;
}

async function bpfStats(config: string): Promise<BpfStatsResult> {
  await execa('sysctl', ['-qw', 'kernel.bpf_stats_enabled=1']);
  const first = await progStats();
  let before = first;
  const perWorkload: WorkloadProgStats[] = [];
  // a scrape after each workload, so that each program's runs and time can be charged to the loop that
  // caused them (the metrics render at most once a second: each run waits longer than that for quiet)
  for (const w of WORKLOADS) {
    const sample = await runWorkload(w, AS_USER);
    const after = await progStats();
    perWorkload.push({ workload: w.name, ops: sample.ops, programs: statsDelta(before, after) });
    before = after;
  }
  await execa('sysctl', ['-qw', 'kernel.bpf_stats_enabled=0']);
  const programs = statsDelta(first, before);
  say(`bpf_stats ${config}: ${programs.map((p) => `${p.name} ${p.runCnt} runs ${p.runCnt ? (p.runTimeNs / p.runCnt).toFixed(0) : '-'} ns`).join('; ')}`);
  return { config, programs, perWorkload };
}

/** runs and run time of each program between two scrapes, most time first */
function statsDelta(before: Map<string, ProgStat>, after: Map<string, ProgStat>): ProgStat[] {
  const programs: ProgStat[] = [];
  for (const [name, a] of after) {
    const b = before.get(name);
    programs.push({ name: a.name, runCnt: a.runCnt - (b?.runCnt ?? 0), runTimeNs: a.runTimeNs - (b?.runTimeNs ?? 0) });
  }
  return programs.sort((x, y) => y.runTimeNs - x.runTimeNs);
}

// ------------------------------------------------------------------ the agent

function agentConfig(): string {
  return `[agent]
socket = ${SOCKET}
metrics_listen = 127.0.0.1:9817
state_dir = ${join(WORK, 'state')}
event_log = ${EVENT_LOG}
pin_dir = ${PIN_DIR}
default_profile = default

[profile default]
fileperms = audit

[profile strict]
fileperms = enforce
suidexec = enforce
suidexec_allow = /usr/bin/passwd
sshlisteners = enforce
ssh_clients = /usr/bin/ssh, ${SSH_CLIENT}
skconnections = enforce
connect_deny = 192.0.2.0/24, 198.51.100.0/24, 2001:db8::/32
killtasks = enforce

; the event pipeline benchmark: connects to a documentation network are logged and allowed
[profile auditnet]
skconnections = audit
connect_deny = 192.0.2.0/24
`;
}

async function api(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<ClientResponse> {
  return request(SOCKET, method, path, body, { timeoutMs: 60000 });
}

let agentProc: { pid?: number | undefined; kill(signal: NodeJS.Signals): boolean } & PromiseLike<unknown> | null = null;

/**
 * How the agent went, when it is gone: its exit status or signal, the end of its stderr, the kernel's
 * OOM lines and how full /tmp (where the logs are) is. '' while it runs. A failed section says this.
 */
function agentDeath(): string {
  const proc = agentProc as unknown as { exitCode: number | null; signalCode: string | null } | null;
  if (proc === null || (proc.exitCode === null && proc.signalCode === null)) return '';
  const tail = (text: string) => text.trim().split('\n').slice(-12).join(' | ');
  const err = existsSync(`${AGENT_OUT}.err`) ? tail(readFileSync(`${AGENT_OUT}.err`, 'utf8')) : '';
  const oom = tail(execFileSync('dmesg', { encoding: 'utf8' }).split('\n').filter((l) => /oom|out of memory|killed process/i.test(l)).join('\n'));
  const tmp = execFileSync('df', ['-k', '/tmp'], { encoding: 'utf8' }).trim().split('\n').pop();
  return `the agent is gone (exit ${proc.exitCode ?? '-'}, signal ${proc.signalCode ?? '-'}); stderr: ${err || '(empty)'}; kernel: ${oom || '(no OOM line)'}; /tmp: ${tmp}`;
}

async function startAgent(): Promise<number> {
  writeFileSync(CONFIG, agentConfig());
  // stdout stands in for journald: a file, so that its writes cost what writing to a journal pipe would
  const proc = (agentProc = execa(...asTheUnitRunsIt(process.execPath, [...AGENT_NODE_OPTIONS, AGENT, '--config', CONFIG]), { reject: false, stdout: { file: AGENT_OUT, append: true }, stderr: { file: `${AGENT_OUT}.err`, append: true } }));
  const deadline = vnow() + 120000;
  while (vnow() < deadline) {
    if (proc.exitCode !== null) throw new Error(`agent exited early: ${readFileSync(`${AGENT_OUT}.err`, 'utf8')}`);
    try {
      if ((await api('GET', '/v1/status')).status === 200) return proc.pid!;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error('agent did not come up');
}

interface Status {
  counters: Record<string, { deny: number; audit: number; dropped: number; folded: number }>;
  events: { logged: number; dropped: number; folded: number };
}

async function status(): Promise<Status> {
  return (await api('GET', '/v1/status')).body as Status;
}

function decisions(s: Status): number {
  return Object.values(s.counters).reduce((n, c) => n + c.deny + c.audit, 0);
}

/** decisions the agent logged, or the kernel folded into a later event or dropped */
function accounted(s: Status): number {
  return s.events.logged + s.events.folded + s.events.dropped;
}

function rssKiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

async function addJob(jobId: string, uid: number, comment?: string): Promise<void> {
  const r = await api('POST', '/v1/jobs', { job_id: jobId, uid, ...(comment ? { comment } : {}) });
  if (r.status !== 200 && r.status !== 201) throw new Error(`add job ${jobId}: ${r.status} ${JSON.stringify(r.body)}`);
}

async function removeJob(jobId: string): Promise<void> {
  await api('DELETE', `/v1/jobs/${jobId}`);
}

/**
 * After a job change: the agent deletes the retired sets in the background once an RCU grace period
 * (milliseconds, waited for on a worker thread) has passed. Three virtual seconds cover that; the quiet
 * wait at the start of the next configuration (or run) then covers the work itself.
 */
async function settleAgent(): Promise<void> {
  await sleep(3000);
}

/** CPU time of every thread of a process so far, ns (schedstat: exact, not sampled) */
function cpuNs(pid: number): number {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // the thread ended meanwhile
    }
  }
  return ns;
}

/** context switches of every thread of a process so far (voluntary and not): how often it was woken or preempted */
function contextSwitches(pid: number): number {
  let n = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
      for (const m of status.matchAll(/^(?:non)?voluntary_ctxt_switches:\s+(\d+)$/gm)) n += Number(m[1]);
    } catch {
      // the thread ended meanwhile
    }
  }
  return n;
}

/**
 * An idle agent's own noise on the node: its wakeups and CPU over `seconds` with no job and no event.
 * Every wakeup is time taken from a job's CPUs (the loops of section 2 share the vCPU with it).
 */
async function agentIdleNoise(pid: number, seconds: number): Promise<NonNullable<BootResult['agentIdle']>> {
  const switches0 = contextSwitches(pid);
  const cpu0 = cpuNs(pid);
  await sleep(seconds * 1000);
  return { seconds, wakeups: contextSwitches(pid) - switches0, cpuNs: cpuNs(pid) - cpu0 };
}

/**
 * Wait until the agent is idle for ten consecutive virtual seconds. After it starts, V8's background
 * threads keep it busy for a while and come back once, some seconds later, for a few hundred virtual ms
 * (a deferred garbage collection). Returns the agent's CPU ns spent meanwhile, for the report.
 */
async function waitAgentIdle(pid: number): Promise<number> {
  const c0 = cpuNs(pid);
  await waitQuiet(() => cpuNs(pid), 10, 'the agent after its start');
  return cpuNs(pid) - c0;
}

/**
 * Stop the agent. Its programs stay attached through their pins (they keep enforcing, as in an agent
 * restart) until unpin() removes the pins.
 */
async function stopAgent(): Promise<void> {
  const proc = agentProc;
  if (!proc?.pid) return;
  await signalFromInit(proc.pid, 'TERM'); // only PID 1 may signal the agent (systemctl stop)
  await proc;
  agentProc = null;
  agentRunning = false;
}

/** remove the pins of a stopped agent: the programs detach, the kernel is as before the agent started */
async function unpin(): Promise<void> {
  Enforcer.removePinned(PIN_DIR); // the agent stopped: nothing guards its pins' file system any more
  await sleep(1000); // the links' release (RCU grace periods) before the timed runs
}

// ------------------------------------------------------------------ job cgroups

/**
 * slurmstepd's scope as Slurm's cgroup/v2 plugin makes it under system.slice (level 2: job cgroups at
 * level 3, as in the Slurm VM tests); setup() makes system.slice, so that the agent watches it for a scope
 */
const STEPD_SCOPE = '/sys/fs/cgroup/system.slice/krsi-bench_slurmstepd.scope';
/**
 * The workloads of the job cgroup configurations when they run alone (--sections perjob): the allowed
 * chmod and create return before any policy lookup; the denied chmod and the connect look the policy up
 */
const JOB_WORKLOADS = WORKLOADS.filter((w) => ['mdstress', 'chmod', 'chmod-o+w', 'connect'].includes(w.name));

/** remove an empty cgroup; one whose last process has just exited can be busy for a moment */
async function rmdirCgroup(dir: string): Promise<void> {
  const deadline = vnow() + 30000;
  for (;;) {
    try {
      rmdirSync(dir);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EBUSY' || vnow() > deadline) throw err;
      await sleep(100);
    }
  }
}

/**
 * The cost of deciding by job cgroup (docs/POLICIES.md, scope). No Slurm runs: a job is registered through
 * the socket as the prolog registers it, and its cgroups are made as slurmstepd makes them
 * (job_<id>/step_0/user/task_0); the agent binds the job when its job_<id> appears, as it does for Slurm's.
 * Two configurations: the measuring uid's strict job bound, the workloads run as its task (to compare with
 * strict-self, the same job unbound: the uid's union decides); and another uid's strict job bound, the
 * measuring uid outside every job (to compare with agent-no-job: the bound test and the depth test come
 * before the uid bitmap's).
 */
async function jobCgroupConfigs(workloads: Workload[], states: number[], round?: number): Promise<ConfigResult[]> {
  const name = (config: string) => (round === undefined ? config : `${config}@${round}`);
  const jobId = (base: number) => String(round === undefined ? base : base + 100 * round);
  const task = (jobId: string) => join(STEPD_SCOPE, `job_${jobId}`, 'step_0/user/task_0');
  const bindStrictJob = async (jobId: string, uid: number): Promise<void> => {
    await addJob(jobId, uid, 'policy:strict');
    mkdirSync(task(jobId), { recursive: true });
    const deadline = vnow() + 60000;
    let view: JobView | undefined;
    while ((view = (await api('GET', `/v1/jobs/${jobId}`)).body as JobView).binding.state !== 'bound') {
      if (vnow() > deadline) throw new Error(`job ${jobId} not bound to ${join(STEPD_SCOPE, `job_${jobId}`)} within 60 s: ${JSON.stringify(view)}`);
      await sleep(100);
    }
    await settleAgent();
  };
  const endJob = async (jobId: string): Promise<void> => {
    await removeJob(jobId);
    const job = join(STEPD_SCOPE, `job_${jobId}`);
    for (const dir of [task(jobId), join(job, 'step_0/user'), join(job, 'step_0'), job]) await rmdirCgroup(dir);
    await settleAgent();
  };
  mkdirSync(STEPD_SCOPE, { recursive: true });
  const configs: ConfigResult[] = [];
  await bindStrictJob(jobId(10003), USER);
  configs.push(await measureConfig(name('strict-self-in-job'), workloads, { uid: USER, cgroup: task(jobId(10003)) }, states));
  await endJob(jobId(10003));
  await bindStrictJob(jobId(10004), OTHER);
  configs.push(await measureConfig(name('job-bound-task-outside'), workloads, AS_USER, states));
  await endJob(jobId(10004));
  await rmdirCgroup(STEPD_SCOPE);
  return configs;
}

// ------------------------------------------------------------------ rounds

/** the loops of the 1% goals: the creation loop, and the chmod loop (no worse than the uid's policy) */
const ROUND_WORKLOADS = WORKLOADS.filter((w) => ['mdstress', 'chmod'].includes(w.name));
const ROUNDS = quick ? 1 : 3;

/**
 * The floor: two BPF LSM programs that return at once, on the two hooks a creation passes
 * (bench/bpf/floor.bpf.c), loaded and attached by this driver with the agent stopped. What mdstress costs
 * with them is the price of judging creations at all; the agent's configurations are that and what
 * their programs do.
 */
async function measureFloor(config: string): Promise<ConfigResult> {
  const obj = BpfObject.open(join(BIN, 'floor.bpf.o'));
  // every link made is destroyed, also when a later attach fails: a link left behind would keep its
  // program on the hook under every configuration measured after this one
  const links: BpfLink[] = [];
  try {
    obj.load();
    for (const program of obj.programs()) links.push(program.attach());
    return await measureConfig(config, ROUND_WORKLOADS, AS_USER, ROUND_STATES);
  } finally {
    for (const link of links) link.destroy();
    obj.close();
  }
}

/**
 * The overhead configurations again, in rounds, each round between two measurements of "no programs"
 * (the agent stopped and its programs detached): from one configuration to the next the kernel's state
 * moves a loop's cost by some tenths of a percent (section 2's "no programs" at the start and again at
 * the end of one boot differed by that much), as much as the 1% goals leave. A configuration's overhead in
 * a round (the floor's included) is taken against the mean of the two "no programs" around it, which
 * cancels a steady drift, and the rounds' median against the one round that drifted otherwise. Every
 * configuration, "no programs" included, runs over the rounds' cycle of states (ROUND_STATES). Starts and
 * ends with no agent.
 */
async function roundConfigs(): Promise<ConfigResult[]> {
  if (agentRunning) {
    await stopAgent();
    await unpin();
  }
  const configs: ConfigResult[] = [await measureConfig('no-programs@0', ROUND_WORKLOADS, AS_USER, ROUND_STATES)];
  for (let round = 1; round <= ROUNDS; round++) {
    configs.push(await measureFloor(`floor@${round}`));
    const pid = await startAgent();
    agentRunning = true;
    await waitAgentIdle(pid);
    configs.push(await measureConfig(`agent-no-job@${round}`, ROUND_WORKLOADS, AS_USER, ROUND_STATES));
    const strict = String(20000 + round);
    await addJob(strict, USER, 'policy:strict');
    await settleAgent();
    configs.push(await measureConfig(`strict-self@${round}`, ROUND_WORKLOADS, AS_USER, ROUND_STATES));
    await removeJob(strict);
    await settleAgent();
    configs.push(...(await jobCgroupConfigs(ROUND_WORKLOADS, ROUND_STATES, round)));
    await stopAgent();
    await unpin();
    configs.push(await measureConfig(`no-programs@${round}`, ROUND_WORKLOADS, AS_USER, ROUND_STATES));
  }
  return configs;
}

// ------------------------------------------------------------------ job start cost

function slurmEnv(jobId: string, uid: number, extra: Record<string, string> = {}): Record<string, string> {
  return { SLURM_JOB_ID: jobId, SLURM_JOB_UID: String(uid), SLURM_JOB_USER: `user${uid}`, SLURM_SCRIPT_CONTEXT: 'prolog_slurmd', KRSI_CONFIG: CONFIG, ...extra };
}

async function hook(script: string, env: Record<string, string>, ...args: string[]): Promise<{ ms: number; ok: boolean }> {
  const t0 = vnow();
  const r = await execa(process.execPath, [script, ...args], { env, extendEnv: false, reject: false });
  return { ms: vnow() - t0, ok: r.exitCode === 0 };
}

async function applyHistogram(): Promise<ApplyHistogram> {
  // the endpoint serves a rendering up to renderEveryMs old: wait that long, so that it has every apply so far
  await sleep(METRICS_LIMITS.renderEveryMs);
  const text = await (await fetch(METRICS)).text();
  const buckets: { le: number; count: number }[] = [];
  let count = 0;
  let sum = 0;
  for (const line of text.split('\n')) {
    const b = /^krsi_policy_apply_duration_seconds_bucket\{le="([^"]+)"\} (\d+)/.exec(line);
    if (b) buckets.push({ le: b[1] === '+Inf' ? Infinity : Number(b[1]), count: Number(b[2]) });
    const c = /^krsi_policy_apply_duration_seconds_count (\d+)/.exec(line);
    if (c) count = Number(c[1]);
    const s = /^krsi_policy_apply_duration_seconds_sum (\S+)/.exec(line);
    if (s) sum = Number(s[1]);
  }
  return { count, sumSeconds: sum, buckets };
}

async function jobStart(): Promise<JobStartResult> {
  const before = await applyHistogram();
  const n = scale(20);
  const prologMs: number[] = [];
  const epilogMs: number[] = [];
  for (let i = 0; i < n; i++) {
    const id = String(20000 + i);
    const p = await hook(PROLOG, slurmEnv(id, 3000 + (i % 8), { SLURM_JOB_COMMENT: 'policy:strict' }));
    if (!p.ok) throw new Error(`prolog ${id} failed`);
    prologMs.push(p.ms);
  }
  for (let i = 0; i < n; i++) {
    const id = String(20000 + i);
    const e = await hook(EPILOG, slurmEnv(id, 3000 + (i % 8)));
    if (!e.ok) throw new Error(`epilog ${id} failed`);
    epilogMs.push(e.ms);
  }
  say(`sequential prolog ms: ${prologMs.map((x) => x.toFixed(0)).join(' ')}`);
  // the floor under any Node.js prolog here: the runtime starting and exiting, nothing loaded
  const vmNodeMs: number[] = [];
  for (let i = 0; i < n; i++) vmNodeMs.push((await hook('-e', {}, '0')).ms);
  say(`node -e 0 ms: ${vmNodeMs.map((x) => x.toFixed(0)).join(' ')}`);
  const afterSequential = await applyHistogram();
  const ids = Array.from({ length: 64 }, (_, i) => String(30000 + i));
  const t0 = vnow();
  const pro = await Promise.all(ids.map((id, i) => hook(PROLOG, slurmEnv(id, 4000 + (i % 8), { SLURM_JOB_COMMENT: 'policy:strict' }))));
  const totalMs = vnow() - t0;
  const t1 = vnow();
  const epi = await Promise.all(ids.map((id, i) => hook(EPILOG, slurmEnv(id, 4000 + (i % 8)))));
  const epilogTotalMs = vnow() - t1;
  say(`64 concurrent prologs: ${totalMs.toFixed(0)} ms, ${pro.filter((p) => p.ok).length} ok; epilogs ${epilogTotalMs.toFixed(0)} ms`);
  const after = await applyHistogram();
  return {
    sequential: { prologMs, epilogMs },
    concurrent: { n: 64, totalMs, prologMs: pro.map((p) => p.ms), ok: pro.filter((p) => p.ok).length, epilogTotalMs, epilogOk: epi.filter((e) => e.ok).length },
    apply: histogramDelta(before, after),
    applySequential: histogramDelta(before, afterSequential),
    applyConcurrent: histogramDelta(afterSequential, after),
    rss: { idleKiB: NaN, afterWorkloadsKiB: NaN, afterFloodKiB: NaN, peakKiB: NaN },
    vmNodeMs,
  };
}

// ------------------------------------------------------------------ event pipeline

async function pipeline(): Promise<PipelineStep[]> {
  await addJob('40000', USER, 'policy:auditnet');
  const rates = quick ? [5000, 50000] : [5000, 10000, 20000, 30000, 50000, 75000, 100000, 0];
  const steps: PipelineStep[] = [];
  let dropsSeen = 0;
  let destinationsUsed = 0;
  for (const rate of rates) {
    const s0 = await status();
    // distinct destinations, and none a previous step used (steps follow each other within the fold
    // window): the kernel folds none, so every decision is an event for the agent
    const r = await runAs(USER, join(BIN, 'evgen'), [String(rate), '1', '192.0.2.1', 'distinct', String(destinationsUsed)]);
    const sample = parseResult(String(r.stdout), 'evgen');
    destinationsUsed += sample.ops;
    const tEnd = vnow();
    let s1 = await status();
    const dec = () => decisions(s1) - decisions(s0);
    const acc = () => accounted(s1) - accounted(s0);
    const deadline = vnow() + 120000;
    while (acc() < dec() && vnow() < deadline) {
      await sleep(100);
      s1 = await status();
    }
    const step: PipelineStep = {
      requestedRate: rate,
      ops: sample.ops,
      achievedRate: sample.ops / (sample.ns / 1e9),
      decisions: dec(),
      logged: s1.events.logged - s0.events.logged,
      folded: s1.events.folded - s0.events.folded,
      dropped: s1.events.dropped - s0.events.dropped,
      unaccounted: dec() - acc(),
      drainSeconds: (vnow() - tEnd) / 1000,
    };
    steps.push(step);
    say(`pipeline rate ${rate || 'unpaced'}: achieved ${step.achievedRate.toFixed(0)}/s decisions ${step.decisions} logged ${step.logged} folded ${step.folded} dropped ${step.dropped} unaccounted ${step.unaccounted} drain ${step.drainSeconds.toFixed(2)} s`);
    if (step.dropped + step.folded > 0 && ++dropsSeen >= 2) break;
  }
  await removeJob('40000');
  return steps;
}

// ------------------------------------------------------------------ a flood cannot hide an attack

/**
 * One strict job's process floods denied connects as fast as it can, for longer than the ring buffer
 * holds, first one action repeated (folded exactly), then distinct destinations (past a half-full ring,
 * folded by kind). Meanwhile the same job and a strict job of another uid each try three distinct denied
 * actions (a connect, a chmod of another file, a listen); each must have its own line in the event log,
 * and decisions = logged + folded + dropped.
 */
async function flood(): Promise<FloodResult> {
  // the flood, the probes and this driver at nice -15, above the agent's -10 (AGENT_NICE): a job has more
  // CPUs than the agent's one event-loop thread, and on this one vCPU the agent at a higher priority kept
  // up with the flood (the ring never filled). Probes inherit it, so that they run during the flood.
  setPriority(FLOOD_NICE);
  try {
    return await floodPhases();
  } finally {
    setPriority(0);
  }
}

const FLOOD_NICE = -15;

async function floodPhases(): Promise<FloodResult> {
  await addJob('50000', USER, 'policy:strict');
  await addJob('50001', OTHER, 'policy:strict');
  await settleAgent();
  const probe = join(BIN, 'krsi-probe');
  const seconds = quick ? 3 : 12;
  const phases: FloodPhase[] = [];
  for (const [name, mode] of [['one action repeated', 'same'], ['distinct actions', 'distinct']] as const) {
    await drained();
    rotateLogs();
    await waitGuestQuiet(2, `the flood of ${name}`);
    const file = (uid: number) => join(userDir(uid), `flood-probe-${mode}`);
    for (const uid of [USER, OTHER]) {
      writeFileSync(file(uid), 'x\n');
      chmodSync(file(uid), 0o644);
      chownSync(file(uid), uid, uid);
    }
    const since = logSize();
    const s0 = await status();
    const gen = runAs(USER, join(BIN, 'evgen'), ['0', String(seconds), '192.0.2.1', mode]);
    const genPid = gen.pid!;
    // a third of the flood in: in the distinct phase the ring is past half full by then
    await sleep((seconds * 1000) / 3);
    const tries: { what: string; uid: number; type: string; argv: string[] }[] = [USER, OTHER].flatMap((uid) => {
      const who = uid === USER ? 'the flooding job' : 'another job';
      return [
        { what: `connect to 198.51.100.7:443, ${who}`, uid, type: 'skconn', argv: ['connect4', '198.51.100.7', '443', 'tcp'] },
        { what: `chmod u+s of another file, ${who}`, uid, type: 'chmod', argv: ['chmod', file(uid), '04755'] },
        { what: `listen by an ssh client, ${who}`, uid, type: 'listen', argv: ['--comm', 'ssh', 'listen4', '127.0.0.1', String(nextPort())] },
      ];
    });
    tries.push({ what: 'the flooded action itself, another job', uid: OTHER, type: 'skconn', argv: ['connect4', '192.0.2.1', '9', 'udp'] });
    const ran: { pid: number; verdict: string }[] = [];
    for (const t of tries) {
      const sub = runAs(t.uid, probe, t.argv);
      const pid = sub.pid!;
      ran.push({ pid, verdict: String((await sub).stdout).trim().split('\n').pop() ?? '' });
    }
    const sample = parseResult(String((await gen).stdout), 'evgen');
    const tEnd = vnow();
    await drained(300000);
    const drainSeconds = (vnow() - tEnd) / 1000;
    await sleep(200); // the agent writes a batch's lines once the batch is counted, on its next turn
    const s1 = await status();
    const lines = logEvents(since);
    const probes: FloodProbe[] = tries.map((t, i) => {
      const own = lines.find((l) => l.pid === ran[i]!.pid && l.type === t.type);
      return {
        what: t.what, uid: t.uid, verdict: ran[i]!.verdict, logged: own !== undefined, scope: own?.fold ?? '', repeats: own?.repeats ?? 0,
        floodKind: t.uid === USER && t.type === 'skconn',
      };
    });
    const floodLines = lines.filter((l) => l.pid === genPid);
    const phase: FloodPhase = {
      name, floodOps: sample.ops, floodSeconds: sample.ns / 1e9,
      decisions: decisions(s1) - decisions(s0), logged: s1.events.logged - s0.events.logged, folded: s1.events.folded - s0.events.folded,
      dropped: s1.events.dropped - s0.events.dropped, unaccounted: decisions(s1) - decisions(s0) - (accounted(s1) - accounted(s0)),
      floodLines: floodLines.length, floodKindLines: floodLines.filter((l) => l.fold === 'kind').length, drainSeconds, probes,
    };
    say(`flood ${name}: ${phase.floodOps} ops in ${phase.floodSeconds.toFixed(1)} s; decisions ${phase.decisions} logged ${phase.logged} folded ${phase.folded} dropped ${phase.dropped} unaccounted ${phase.unaccounted}; ` +
      `flood lines ${phase.floodLines} (${phase.floodKindLines} by kind); probes logged ${probes.filter((p) => p.logged).length}/${probes.length}`);
    for (const p of probes) say(`flood probe ${p.what} (uid ${p.uid}): ${p.verdict}, ${p.logged ? `logged (${p.scope}, repeats ${p.repeats})` : 'NOT LOGGED'}`);
    phases.push(phase);
  }
  await removeJob('50000');
  await removeJob('50001');
  return { ringBytes: 8 << 20, phases };
}

// ------------------------------------------------------------------ adversary emulation

interface Action {
  name: string;
  policy: string;
  /** event type the kernel should report */
  type: string;
  asRoot?: boolean;
  /** prepare, then return the probe argv (krsi-probe args) */
  argv: (n: number) => string[];
  file?: string;
}

let port = 30000;
const nextPort = () => (port = port >= 60000 ? 30000 : port + 1);
const victim = (n: number) => join(userDir(USER), `victim-${n}`);

function prepareVictim(n: number, mode: number): void {
  const f = victim(n);
  writeFileSync(f, 'whoami\n');
  chmodSync(f, mode);
  chownSync(f, USER, USER);
}

function adversaryActions(agentPid: number): Action[] {
  const dir = userDir(USER);
  const probe = join(BIN, 'krsi-probe');
  return [
    { name: 'create world-writable file', policy: 'fileperms', type: 'creat', argv: (n) => [probe, 'create', join(dir, `woth-${n}`), '0666', '0'] },
    { name: 'add o+w (chmod 0602)', policy: 'fileperms', type: 'chmod', argv: (n) => (prepareVictim(n, 0o600), [probe, 'chmod', victim(n), '0602']) },
    { name: 'add u+s (chmod 4600)', policy: 'fileperms', type: 'chmod', argv: (n) => (prepareVictim(n, 0o600), [probe, 'chmod', victim(n), '4600']) },
    { name: 'run a SUID binary', policy: 'suidexec', type: 'exsuid', argv: () => [probe, 'exec', join(WORK, 'suid-id'), '-u'] },
    { name: 'ssh proxy (listen, comm ssh)', policy: 'sshlisteners', type: 'listen', argv: () => [probe, '--comm', 'ssh', 'listen4', '127.0.0.1', String(nextPort())] },
    { name: 'TCP connect', policy: 'skconnections', type: 'skconn', argv: (n) => [probe, 'connect4', `192.0.2.${8 + (n % 16)}`, String(1 + (n % 61000)), 'tcp'] },
    { name: 'UDP connect', policy: 'skconnections', type: 'skconn', argv: (n) => [probe, 'connect4', `192.0.2.${8 + (n % 16)}`, String(1 + (n % 61000)), 'udp'] },
    { name: 'kill the agent (root, 9/15)', policy: 'killtasks', type: 'sgkill', asRoot: true, argv: (n) => [probe, 'kill', String(agentPid), n % 2 ? '9' : '15'] },
    // attacker variants
    { name: 'add g+s (chmod 2700)', policy: 'fileperms', type: 'chmod', argv: (n) => (prepareVictim(n, 0o700), [probe, 'chmod', victim(n), '2700']) },
    { name: 'mkdir world-writable', policy: 'fileperms', type: 'mkdir', argv: (n) => [probe, 'mkdir', join(dir, `wdir-${n}`), '0777', '0'] },
    { name: 'mkfifo world-writable', policy: 'fileperms', type: 'mknod', argv: (n) => [probe, 'mkfifo', join(dir, `fifo-${n}`), '0666', '0'] },
    { name: 'O_TMPFILE + link (0666)', policy: 'fileperms', type: 'link', argv: (n) => [probe, 'tmpfile-link', dir, '0666', join(dir, `tmpl-${n}`), '0'] },
    { name: 'ACL granting other write', policy: 'fileperms', type: 'setacl', argv: (n) => (prepareVictim(n, 0o600), [probe, 'setacl', victim(n), '6']) },
    { name: 'IPv6 TCP connect', policy: 'skconnections', type: 'skconn', argv: (n) => [probe, 'connect6', `2001:db8::${(n % 250) + 1}`, '443', 'tcp'] },
    { name: 'IPv4-mapped IPv6 connect', policy: 'skconnections', type: 'skconn', argv: (n) => [probe, 'connect6', `::ffff:198.51.100.${(n % 250) + 1}`, '22', 'tcp'] },
    { name: 'UDP sendto (unconnected)', policy: 'skconnections', type: 'sksend', argv: () => [probe, 'sendto4', '192.0.2.53', '53'] },
    { name: 'renamed ssh client (comm vim)', policy: 'sshlisteners', type: 'listen', argv: () => [SSH_CLIENT, '--comm', 'vim', 'listen6', '::1', String(nextPort())] },
    { name: 'ptrace attach to the agent (root)', policy: 'killtasks', type: 'ptrace', asRoot: true, argv: () => [probe, 'ptrace-attach', String(agentPid)] },
  ];
}

interface EventRec { type: string; pid: number; job: string; policy: string; repeats: number; fold: string }

/** the events of the agent's log file from byte `from` on */
function logEvents(from: number): EventRec[] {
  const text = readFileSync(EVENT_LOG).subarray(from).toString('utf8');
  const field = (line: string, key: string) => new RegExp(`(?:^| )${key}=("(?:[^"\\\\]|\\\\.)*"|\\S*)`).exec(line)?.[1]?.replace(/^"(.*)"$/, '$1') ?? '';
  return text.split('\n').filter((l) => l !== '').map((l) => ({
    type: field(l, 'type'), pid: Number(field(l, 'pid')), job: field(l, 'job'), policy: field(l, 'policy'),
    repeats: Number(field(l, 'repeats') || 0), fold: field(l, 'fold') || 'exact',
  }));
}

const logSize = () => statSync(EVENT_LOG, { throwIfNoEntry: false })?.size ?? 0;

/** the agent's own lines of a stdout text: log messages, not event lines */
const ownLines = (text: string) => text.split('\n').filter((l) => / msg=/.test(l) && !/ act=/.test(l));

/**
 * Empty the event log and the agent's stdout (the journal's stand-in), keeping the agent's own lines, as
 * logrotate and journald's size limits do on a node. Both are files on the guest's /tmp, a tmpfs in RAM,
 * and every event is a line in each: the pipeline and flood sections write hundreds of megabytes, and a
 * full /tmp would lose lines (agent/log/sink.ts). Called between sections, once every event is logged; the
 * agent appends (O_APPEND), so its next line goes to the start of the emptied file.
 */
function rotateLogs(): void {
  const tmpUse = () => execFileSync('df', ['-k', '--output=used,avail', '/tmp'], { encoding: 'utf8' }).trim().split('\n').pop()!.trim().replace(/\s+/, ' KiB used, ');
  const before = `${tmpUse()} KiB available (event log ${logSize() >> 20} MiB, agent stdout ${(statSync(AGENT_OUT, { throwIfNoEntry: false })?.size ?? 0) >> 20} MiB)`;
  if (existsSync(AGENT_OUT)) {
    appendFileSync(AGENT_OWN, ownLines(readFileSync(AGENT_OUT, 'utf8')).map((l) => `${l}\n`).join(''));
    truncateSync(AGENT_OUT, 0);
  }
  if (existsSync(EVENT_LOG)) truncateSync(EVENT_LOG, 0);
  say(`logs rotated: /tmp before ${before}, after ${tmpUse()} KiB available`);
}

/**
 * The adversary emulation inside real Slurm jobs: a single-node cluster (test/slurm/cluster.ts: munge,
 * slurmctld, slurmd) whose Prolog/Epilog are the real prolog and epilog talking to the bench agent. The
 * user's attempts run as processes of consecutive `sbatch --comment=policy:strict` jobs of uid 1000
 * (bench/adversary-job.sh runs a list of them at a steady pace and records each attempt's pid and
 * answer); the root attempts against the agent cannot run inside a user's job and run from the driver,
 * outside any job, at the same pace.
 */
async function adversaryInSlurm(agentPid: number): Promise<AdversaryResult> {
  const actions = adversaryActions(agentPid);
  const total = quick ? 90 : 2000;
  const nJobs = 4;
  const paceMs = 20;
  let seed = 42;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000);
  const order = Array.from({ length: total }, () => Math.floor(rnd() * actions.length));
  const userOrder = order.filter((i) => !actions[i]!.asRoot);
  const rootOrder = order.filter((i) => actions[i]!.asRoot);

  const t0 = vnow();
  const cluster = await startCluster({ prolog: SLURM_PROLOG, epilog: SLURM_EPILOG, cpus: 2 });
  const bringupSeconds = (vnow() - t0) / 1000;
  say(`adversary: Slurm cluster up on ${cluster.node} in ${bringupSeconds.toFixed(1)} virtual s`);
  try {
    await drained();
    const since = logSize();
    const s0 = await status();
    const rows: AdversaryRow[] = actions.map((a) => ({ action: a.name, policy: a.policy, attempts: 0, denied: 0, allowed: 0, otherError: 0, logged: 0, repeats: 0, loggedRightJob: 0 }));
    const attempts: { action: number; pid: number; job: string; verdict: string }[] = [];
    const jobs: string[] = [];
    const dir = userDir(USER);
    let n = 0;
    const perJob = Math.ceil(userOrder.length / nJobs);
    const tRun = vnow();
    for (let j = 0; j < nJobs; j++) {
      const chunk = userOrder.slice(j * perJob, (j + 1) * perJob);
      if (chunk.length === 0) break;
      const list = join(dir, `adversary-${j}.list`);
      const outFile = join(dir, `adversary-${j}.out`);
      const lines = chunk.map((i) => actions[i]!.argv(n++).join(' '));
      writeFileSync(list, `${lines.join('\n')}\n`);
      chmodSync(list, 0o644);
      const id = await sbatch(USER, ADVERSARY_JOB, [
        '--comment=adversary emulation policy:strict', '-J', `adversary-${j}`, `--output=${join(dir, `adversary-${j}.slurm.txt`)}`,
        `--export=ALL,ADV_LIST=${list},ADV_PACE=${(paceMs / 1000).toFixed(3)},ADV_OUT=${outFile}`,
      ]);
      jobs.push(id);
      await waitJobRunning(id, 300_000);
      const info = await waitJobEnded(id, 1_800_000);
      const printed = readFileSync(outFile, 'utf8').split('\n');
      let ran = 0;
      for (const line of printed) {
        const m = /^(\d+) (\d+) ?(.*)$/.exec(line);
        if (!m) continue;
        const k = Number(m[1]);
        const action = chunk[k];
        if (action === undefined) continue;
        attempts.push({ action, pid: Number(m[2]), job: id, verdict: m[3]!.trim() });
        ran++;
      }
      say(`adversary: job ${id} (${info.JobState}): ${ran}/${chunk.length} attempts ran`);
    }
    const jobSeconds = (vnow() - tRun) / 1000;
    // the root attempts against the agent, outside any job, at the same pace
    let nextAt = vnow();
    for (const i of rootOrder) {
      const [file, ...argv] = actions[i]!.argv(n++);
      const sub = runAs(0, file!, argv);
      const pid = sub.pid!;
      const r = await sub;
      attempts.push({ action: i, pid, job: '', verdict: String(r.stdout).trim().split('\n').pop() ?? '' });
      nextAt += paceMs;
      const wait = nextAt - vnow();
      if (wait > 0) await sleep(wait);
    }
    const virtualSeconds = (vnow() - tRun) / 1000;
    let s1 = await status();
    for (let k = 0; k < 50 && accounted(s1) - accounted(s0) < decisions(s1) - decisions(s0); k++) {
      await sleep(100);
      s1 = await status();
    }
    await sleep(200); // the agent writes a batch's lines once the batch is counted, on its next turn
    const byPid = new Map<number, EventRec[]>();
    for (const e of logEvents(since)) byPid.set(e.pid, [...(byPid.get(e.pid) ?? []), e]);
    for (const at of attempts) {
      const a = actions[at.action]!;
      const row = rows[at.action]!;
      row.attempts++;
      if (at.verdict === 'ERR EPERM') row.denied++;
      else if (at.verdict === 'OK' || /^\d+$/.test(at.verdict)) row.allowed++;
      else row.otherError++;
      const evs = (byPid.get(at.pid) ?? []).filter((e) => e.type === a.type && e.policy === a.policy);
      if (evs.length > 0) {
        row.logged++;
        row.repeats += evs.reduce((n, e) => n + e.repeats, 0);
        if (evs.some((e) => e.job === at.job)) row.loggedRightJob++;
      }
    }
    for (const r of rows) say(`adversary ${r.action}: ${r.attempts} attempts, ${r.denied} denied, ${r.allowed} allowed, ${r.otherError} other, ${r.logged} logged, ${r.repeats} repeats, ${r.loggedRightJob} right job`);
    return {
      actions: attempts.length,
      virtualSeconds,
      jobs,
      rows,
      kernelDecisions: decisions(s1) - decisions(s0),
      logged: s1.events.logged - s0.events.logged,
      folded: s1.events.folded - s0.events.folded,
      dropped: s1.events.dropped - s0.events.dropped,
      slurm: { node: cluster.node, bringupSeconds, jobSeconds, userAttempts: attempts.length - rootOrder.length, rootAttempts: rootOrder.length, paceMs },
    };
  } finally {
    await stopCluster();
  }
}

// ------------------------------------------------------------------ main

async function setup(): Promise<void> {
  rmSync(WORK, { recursive: true, force: true });
  mkdirSync(BIN, { recursive: true });
  chmodSync(WORK, 0o755);
  // workloads on tmpfs, not on the 9p share: exec and page cache costs are the local file system's
  for (const name of readdirSync(BUILD)) {
    copyFileSync(join(BUILD, name), join(BIN, name));
    chmodSync(join(BIN, name), 0o755);
  }
  copyFileSync(PROBE_SRC, join(BIN, 'krsi-probe'));
  chmodSync(join(BIN, 'krsi-probe'), 0o755);
  copyFileSync(PROBE_SRC, SSH_CLIENT);
  chmodSync(SSH_CLIENT, 0o755);
  for (const [wrapper, script] of [[SLURM_PROLOG, PROLOG], [SLURM_EPILOG, EPILOG]] as const) {
    writeFileSync(wrapper, `#!/bin/sh\n# slurmd runs this with no PATH: the real ${script.endsWith('prolog.js') ? 'prolog' : 'epilog'}, with the bench agent's config\nKRSI_CONFIG=${CONFIG} exec ${process.execPath} ${script}\n`);
    chmodSync(wrapper, 0o755);
  }
  // where Slurm's cgroup/v2 plugin puts slurmstepd's scope: the agent, started after this, watches it for
  // one (the job cgroup configurations make theirs there)
  mkdirSync(dirname(STEPD_SCOPE), { recursive: true });
  copyFileSync('/usr/bin/id', join(WORK, 'suid-id'));
  chmodSync(join(WORK, 'suid-id'), 0o4755);
  for (const uid of [USER, OTHER]) {
    mkdirSync(userDir(uid), { mode: 0o755 });
    // each user's files on a file system of their own, as a job's scratch or node-local /tmp: the agent
    // watches the directories of allowlisted files (inotify), and any watch on a file system sends every
    // file operation on it through fsnotify's slower path. On a compute node systemd's own watches on
    // the root file system do that already; in this VM nothing else watches, so sharing it would charge
    // that kernel path to the agent.
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'mode=0755,size=512m', `bench-u${uid}`, userDir(uid)]);
    chownSync(userDir(uid), uid, uid);
  }
  mkdirSync(STATE_DIR, { mode: 0o700 });
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'mode=0700,size=1m', 'bench-state', STATE_DIR]);
}

async function main(): Promise<void> {
  await setup();
  const lsm = readFileSync('/sys/kernel/security/lsm', 'utf8').trim();
  const cpuModel = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown';
  say(`boot ${boot}: kernel ${release()}, lsm ${lsm}, quick ${quick}`);
  const result: BootResult = {
    boot, kernel: release(), lsm, cpuModel, icount: true, quick, configs: [], bpfStats: [], pipeline: [], pipelineRingBytes: 8 << 20,
    jobStart: null, agentNodeOptions: AGENT_NODE_OPTIONS, adversary: null, flood: null, notes,
  };
  const save = () => writeFileSync(out, JSON.stringify(result, null, 1));

  if (boot === 'off') {
    result.configs.push(await measureConfig('bpf-off'));
    save();
    return;
  }
  // the job cgroup configurations alone measure their baselines in the same boot, on their workloads only
  const perjobAlone = runs('perjob') && !runs('overhead');
  const workloads = perjobAlone ? JOB_WORKLOADS : WORKLOADS;
  if (runs('overhead') || perjobAlone) result.configs.push(await measureConfig('no-programs', workloads));
  save();
  let agentPid = await startAgent();
  agentRunning = true;
  await sleep(2000);
  const idleKiB = rssKiB(agentPid, 'VmRSS');
  const startupCpuNs = await waitAgentIdle(agentPid);
  say(`agent up, pid ${agentPid}, RSS ${idleKiB} KiB; idle after ${(startupCpuNs / 1e6).toFixed(0)} ms of further CPU`);
  notes.push(`after it answered its first request, the agent used ${(startupCpuNs / 1e9).toFixed(2)} virtual s of CPU more (V8's background threads) before it was idle; the timed runs started after that`);
  result.agentIdle = await agentIdleNoise(agentPid, 30);
  say(`agent idle: ${result.agentIdle.wakeups} context switches and ${(result.agentIdle.cpuNs / 1e6).toFixed(1)} ms CPU in ${result.agentIdle.seconds} s`);
  save();
  if (runs('overhead') || perjobAlone) {
    result.configs.push(await measureConfig('agent-no-job', workloads));
    save();
  }
  if (runs('overhead')) {
    await addJob('10001', OTHER, 'policy:strict');
    await settleAgent();
    result.configs.push(await measureConfig('strict-other-uid'));
    await removeJob('10001');
    save();
  }
  if (runs('overhead') || perjobAlone) {
    await addJob('10000', USER, 'policy:strict');
    await settleAgent();
    result.configs.push(await measureConfig('strict-self', workloads));
    if (runs('overhead')) result.bpfStats.push(await bpfStats('strict-self'));
    await removeJob('10000');
    save();
  }
  if (runs('overhead')) {
    await addJob('10002', USER); // the floor only: fileperms = audit
    await settleAgent();
    result.configs.push(await measureConfig('audit-self'));
    await removeJob('10002');
    await settleAgent();
    save();
  }
  if (runs('perjob')) {
    result.configs.push(...(await jobCgroupConfigs(workloads, SECTION_STATES)));
    save();
  }
  if (runs('overhead')) {
    result.bpfStats.push(await bpfStats('agent-no-job'));
    save();
    // the programs without the agent process (it stopped; its pins hold the programs), which tells the
    // programs' cost from the agent's; then the first configuration again, programs detached, which
    // tells both from drift in the kernel's state over the runs (dentries, slabs)
    await stopAgent();
    result.configs.push(await measureConfig('programs-no-agent'));
    await unpin();
    result.configs.push(await measureConfig('no-programs-again'));
    save();
  }
  if (runs('rounds')) {
    result.rounds = await roundConfigs();
    save();
  }
  if (runs('overhead') || runs('perjob') || runs('rounds')) {
    // a new agent: the one before watched the bench's slurmstepd scope, gone now; this one watches for Slurm's
    await stopAgent();
    agentPid = await startAgent();
    agentRunning = true;
    await waitGuestQuiet(10, 'the job start section');
  }

  const afterWorkloadsKiB = rssKiB(agentPid, 'VmRSS');
  rotateLogs();
  if (runs('jobstart')) {
    result.jobStart = await jobStart();
    save();
  }
  if (runs('pipeline')) {
    rotateLogs();
    result.pipeline = await pipeline();
  }
  if (runs('flood')) {
    try {
      result.flood = await flood();
    } catch (err) {
      // reported as failed in the document; the sections after it still run
      notes.push(`the flood section failed: ${(err as Error).message.split('\n')[0]}`);
      say(`flood failed: ${(err as Error).stack ?? String(err)}`);
      const death = agentDeath();
      if (death) {
        notes.push(death);
        say(death);
        // the sections after it still run, against a new agent (and the RSS figures below are its)
        agentPid = await startAgent();
        notes.push('the agent was restarted after the flood section: the RSS figures after it are the new agent\'s');
      }
    }
    save();
  }
  const rss = { idleKiB, afterWorkloadsKiB, afterFloodKiB: rssKiB(agentPid, 'VmRSS'), peakKiB: rssKiB(agentPid, 'VmHWM') };
  if (result.jobStart) result.jobStart.rss = rss;
  say(`agent RSS: idle ${rss.idleKiB} KiB, after the workloads ${rss.afterWorkloadsKiB} KiB, after the flood ${rss.afterFloodKiB} KiB, peak ${rss.peakKiB} KiB`);
  save();
  if (!runs('adversary')) return;
  await drained();
  rotateLogs();
  try {
    result.adversary = await adversaryInSlurm(agentPid);
  } catch (err) {
    // reported as failed, not replaced by an emulation outside Slurm: the table must say where it ran
    notes.push(`adversary emulation under Slurm failed: ${(err as Error).message.split('\n')[0]}`);
    say(`adversary under Slurm failed: ${(err as Error).stack ?? String(err)}`);
  }
  save();
}

/** the agents' own log lines (not the event lines) beside the results, for reading after the run */
function keepAgentLog(): void {
  const own = [...(existsSync(AGENT_OWN) ? readFileSync(AGENT_OWN, 'utf8').split('\n').filter((l) => l !== '') : []), ...(existsSync(AGENT_OUT) ? ownLines(readFileSync(AGENT_OUT, 'utf8')) : [])];
  writeFileSync(join(out, '..', 'agent-log.txt'), `${own.join('\n')}\n`);
}

main().then(
  () => {
    keepAgentLog();
    process.exit(0);
  },
  (err: Error) => {
    process.stderr.write(`bench: driver failed: ${err.stack ?? err.message}\n`);
    keepAgentLog();
    process.exit(1);
  },
);
