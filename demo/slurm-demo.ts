/**
 * The demo (runs as root inside the VM, started by run-demo.ts): a single-node Slurm cluster with
 * slurm-krsi installed by deploy/install.sh, and the seed paper's figures 8-12 live. billy (uid 1000)
 * submits a job with `--comment="demo run policy:strict"`, alice (uid 1001) the same job without a policy;
 * both jobs try the paper's attacks with ordinary tools (test/slurm/jobs/attacks.sh, the script the Slurm spec runs). Printed: the jobs,
 * each attempt with what the kernel answered, root's attempt to kill the agent, and the agent's event
 * lines. Exits non-zero when the outcome is not the expected one (an attack of billy's allowed, one of
 * alice's denied, a denial not logged with the job id).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { Enforcer } from '../agent/enforcement/enforcer.js';
import type { JobRecord } from '../agent/service/types.js';
import { REPO, WORK, asUser, sbatch, sbatchRaw, startCluster, stopCluster, waitJobEnded } from '../test/slurm/cluster.js';
import { waitFor } from '../test/vm/pace.js';
import {
  ATTACKS, EPILOG, EVENT_LOG, KRSICTL, PIN_DIR, PROLOG, agentJobs, attacksExport, attempts, ensureUser, installOnNode, namesJob, shutdownAgent,
  startAgent, startSshd, stopSshd, uidsUnderPolicy,
} from '../test/slurm/node.js';

const BILLY = 1000;
const ALICE = 1001;

/** the attempts of attacks.sh: figure, what it is, and whether strict must deny it */
const ROWS: { name: string; figure: string; action: string; strictDenies: boolean }[] = [
  { name: 'chmod_suid', figure: '8', action: 'chmod u+s own file', strictDenies: true },
  { name: 'chmod_sgid', figure: '8', action: 'chmod g+s own file', strictDenies: true },
  { name: 'chmod_o+w', figure: '8', action: 'chmod o+w own file', strictDenies: true },
  { name: 'umask_touch', figure: '8', action: 'umask 0000; touch (world-writable file)', strictDenies: true },
  { name: 'umask_mkdir', figure: '8', action: 'umask 0000; mkdir (world-writable dir)', strictDenies: true },
  { name: 'acl_other_write', figure: '8', action: 'setfacl -m o::rw (ACL: others write)', strictDenies: true },
  { name: 'suid_exec', figure: '9', action: 'run set-uid chfn (not allowlisted)', strictDenies: true },
  { name: 'suid_allowlisted', figure: '9', action: 'run set-uid passwd (allowlisted)', strictDenies: false },
  { name: 'ssh_dynamic_forward', figure: '10', action: 'ssh -D (SOCKS proxy on the node)', strictDenies: true },
  { name: 'ssh_renamed_symlink', figure: '10', action: 'ssh -D through a symlink named vim', strictDenies: true },
  { name: 'ssh_comm_listen', figure: '10', action: 'a program named ssh listening (comm)', strictDenies: true },
  { name: 'tcp_connect', figure: '11', action: 'TCP connect 192.0.2.10:22', strictDenies: true },
  { name: 'udp_connect', figure: '11', action: 'UDP connect 192.0.2.53:53', strictDenies: true },
  { name: 'tcp6_connect', figure: '11', action: 'TCP connect [2001:db8::10]:443', strictDenies: true },
  { name: 'v4mapped_connect', figure: '11', action: 'TCP connect [::ffff:192.0.2.10]:22', strictDenies: true },
  { name: 'udp_sendto', figure: '11', action: 'UDP sendto 192.0.2.53:53, unconnected', strictDenies: true },
  { name: 'udp_sendto_unspec', figure: '11', action: 'UDP sendto 192.0.2.53:53, family field AF_UNSPEC', strictDenies: true },
  { name: 'nat64_connect', figure: '11', action: 'TCP connect [64:ff9b::192.0.2.10]:22 (NAT64)', strictDenies: true },
  { name: 'routing_header', figure: '11', action: 'TCP connect [::1] with a routing header via 2001:db8::1', strictDenies: true },
  { name: 'loopback_connect', figure: '11', action: 'TCP connect 127.0.0.1 (allowed network)', strictDenies: false },
  { name: 'kill_agent', figure: '12', action: 'kill -9 the agent (as the user)', strictDenies: false },
];

type Verdict = 'DENIED' | 'allowed' | 'refused by Unix permissions' | 'failed' | 'not run';

/** what the user saw: the policy's EPERM, success, or another failure after the kernel let the call through */
function verdict(name: string, line: string | undefined): { verdict: Verdict; detail: string } {
  if (line === undefined) return { verdict: 'not run', detail: '' };
  const m = /^rc=(\d+) ?(.*)$/.exec(line);
  const rc = Number(m?.[1] ?? -1);
  // bash names the job script before its messages: not what the tool said
  const said = (m?.[2] ?? '').replace(/\S*slurm_script: line \d+: /g, '').trim();
  if (name === 'kill_agent' && rc !== 0) return { verdict: 'refused by Unix permissions', detail: said };
  if (/Operation not permitted|ERR EPERM|Could not request|cannot listen/.test(said)) return { verdict: 'DENIED', detail: said };
  if (rc === 0) return { verdict: 'allowed', detail: said };
  return { verdict: 'failed', detail: said };
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

function section(title: string): void {
  console.log(`\n== ${title}\n`);
}

function eventLines(): string[] {
  return existsSync(EVENT_LOG) ? readFileSync(EVENT_LOG, 'utf8').split('\n').filter((l) => l !== '') : [];
}


async function main(): Promise<number> {
  const started = Date.now();
  const problems: string[] = [];

  section('setting up: users, sshd, slurm-krsi (deploy/install.sh), Slurm (munge, slurmctld, slurmd), the agent');
  await ensureUser('billy', BILLY);
  await ensureUser('alice', ALICE);
  await startSshd();
  const installSeconds = await installOnNode();
  console.log(`deploy/install.sh: ${installSeconds.toFixed(0)} s`);
  const cluster = await startCluster({
    prolog: PROLOG,
    epilog: EPILOG,
    jobSubmitLua: join(REPO, 'slurm/job_submit.lua'),
    users: { [BILLY]: 'billy', [ALICE]: 'alice' },
  });
  console.log(`Slurm: node ${cluster.node} idle after ${cluster.seconds.toFixed(0)} s`);
  Enforcer.removePinned(PIN_DIR);
  const agentPid = await startAgent();
  console.log(`krsi-agent: pid ${agentPid}, programs attached and pinned under ${PIN_DIR}`);
  console.log((await execa(KRSICTL, ['profiles'], { reject: false })).stdout);

  section('submitting');
  const rejected = await sbatchRaw(BILLY, ATTACKS, ['--comment=policy:stirct']);
  console.log(`billy$ sbatch --comment=policy:stirct attacks.sh\n${rejected.stderr || rejected.stdout} (exit ${rejected.exitCode})`);
  if (rejected.exitCode === 0) problems.push('a misspelt policy was accepted at submission');

  const env = attacksExport(agentPid);
  const out = (who: string) => `--output=${WORK}/demo-${who}-%j.out`;
  const strictJob = await sbatch(BILLY, ATTACKS, ['--comment=demo run policy:strict', '-J', 'paper-attacks', out('billy'), env]);
  console.log(`billy$ sbatch --comment="demo run policy:strict" attacks.sh   -> job ${strictJob}`);
  const plainJob = await sbatch(ALICE, ATTACKS, ['-J', 'paper-attacks', out('alice'), env]);
  console.log(`alice$ sbatch attacks.sh                                      -> job ${plainJob}`);

  // what the agent holds while the jobs run (the prolog registered them; the epilog removes them)
  const seen = new Map<string, JobRecord>();
  const watching = setInterval(() => {
    agentJobs().then((jobs) => jobs.forEach((j) => seen.set(j.jobId, j)), () => undefined);
  }, 100);
  const [strictInfo, plainInfo] = await Promise.all([waitJobEnded(strictJob, 180_000), waitJobEnded(plainJob, 180_000)]);
  clearInterval(watching);

  section('the jobs');
  const jobRows = [[strictJob, 'billy', BILLY, strictInfo], [plainJob, 'alice', ALICE, plainInfo]] as const;
  console.log(table(['job', 'user', 'uid', '--comment', 'profiles applied by the agent', 'state'], jobRows.map(([id, user, uid, info]) => [
    id, user, String(uid), info.Comment && info.Comment !== '(null)' ? info.Comment : '(none)',
    seen.get(id)?.profiles.join(' + ') ?? '(not seen)', `${info.JobState} ${info.ExitCode ?? ''}`.trim(),
  ])));

  section('what each job tried, and what the kernel answered');
  const strictOut = attempts(readFileSync(join(WORK, `demo-billy-${strictJob}.out`), 'utf8'));
  const plainOut = attempts(readFileSync(join(WORK, `demo-alice-${plainJob}.out`), 'utf8'));
  const rows: string[][] = [];
  for (const row of ROWS) {
    const s = verdict(row.name, strictOut[row.name]);
    const p = verdict(row.name, plainOut[row.name]);
    rows.push([row.figure, row.action, s.verdict, p.verdict, (s.verdict === 'DENIED' ? s.detail : p.detail).slice(0, 72)]);
    if (row.strictDenies && s.verdict !== 'DENIED') problems.push(`billy's ${row.name}: ${s.verdict} (${s.detail})`);
    if (!row.strictDenies && s.verdict === 'DENIED') problems.push(`billy's ${row.name} was denied: ${s.detail}`);
    if (p.verdict === 'DENIED') problems.push(`alice's ${row.name} was denied: ${p.detail}`);
  }
  console.log(table(['fig', 'action', `billy, job ${strictJob} (strict)`, `alice, job ${plainJob} (floor only)`, 'what the tool said'], rows));

  section('figure 12: root tries to kill the agent (only PID 1 may stop it: systemctl stop)');
  for (const signal of ['-9', '-15']) {
    const k = await execa('kill', [signal, String(agentPid)], { reject: false });
    const denied = /not permitted/.test(k.stderr);
    console.log(`root# kill ${signal} ${agentPid}  -> ${denied ? 'DENIED' : 'delivered'}: ${k.stderr.trim() || 'ok'}`);
    if (!denied) problems.push(`root's kill ${signal} of the agent was not denied`);
  }

  section('root tries to switch the agent or its programs off without a signal (only PID 1 may)');
  const tampering: [string, string[]][] = [
    ['prlimit', ['--cpu=1', '--pid', String(agentPid)]],
    ['renice', ['-n', '19', '-p', String(agentPid)]],
    ['bpftool', ['map', 'dump', 'pinned', join(PIN_DIR, 'maps/uid_policy')]],
    ['rm', [join(PIN_DIR, 'links/krsi_task_kill')]],
    ['umount', ['-l', PIN_DIR]],
  ];
  for (const [cmd, args] of tampering) {
    const r = await execa(cmd, args, { reject: false });
    const refused = r.exitCode !== 0;
    console.log(`root# ${cmd} ${args.join(' ')}  -> ${refused ? 'REFUSED' : 'done'}: ${(r.stderr || r.stdout).trim().split('\n')[0]}`);
    if (!refused) problems.push(`root's ${cmd} ${args.join(' ')} was not refused`);
  }
  // the read-write open of a pin (bpftool) and rm fail on the pins' read-only file system, before any hook:
  // the kernel's refusals of the other three are logged
  await waitFor('the agent to log the refused prlimit, renice and umount', () =>
    ['rlimit', 'setnice', 'umount'].every((t) => eventLines().some((l) => l.includes(` type=${t} policy=killtasks `))))
    .catch((err: Error) => problems.push(err.message.split('\n')[0]!));

  section(`the agent's event log (${EVENT_LOG}), billy's job`);
  const expectedDenials = ROWS.filter((r) => r.strictDenies).length;
  const strictDenials = () => eventLines().filter((l) => namesJob(l, strictJob) && / act=deny(?: |$)/.test(l)).length;
  // the agent's reader batches events for a few ms: wait for the lines (a shortfall is reported below)
  await waitFor(`${expectedDenials} deny lines naming job ${strictJob}`, () => strictDenials() >= expectedDenials).catch(() => undefined);
  const lines = eventLines();
  const strictLines = lines.filter((l) => namesJob(l, strictJob));
  for (const l of strictLines) console.log(l);
  const denials = strictLines.filter((l) => / act=deny(?: |$)/.test(l)).length;
  if (denials < expectedDenials) problems.push(`${denials} deny events name job ${strictJob}, expected at least ${expectedDenials}`);

  section("the agent's event log: alice's job (the floor audits fileperms: logged, allowed) and root's kill and tampering");
  for (const l of lines.filter((l) => namesJob(l, plainJob) || / type=(sgkill|ptrace|rlimit|setnice|umount) /.test(l))) console.log(l);
  if (lines.some((l) => namesJob(l, plainJob) && / act=deny(?: |$)/.test(l))) problems.push(`a deny event names alice's job ${plainJob}`);

  section('after the jobs: the epilog removed them, billy is free again');
  const left = await uidsUnderPolicy();
  console.log(`uids under policy: ${left.length === 0 ? 'none' : left.join(', ')}`);
  if (left.includes(BILLY)) problems.push('uid 1000 is still under policy after its job ended');
  const after = await asUser(BILLY, 'bash', ['-c', 'touch after-the-job && chmod u+s after-the-job && echo "chmod u+s: allowed"; rm -f after-the-job']);
  console.log(`billy$ chmod u+s (outside any job)  -> ${after.stdout || after.stderr}`);
  if (after.exitCode !== 0) problems.push(`billy's chmod u+s after the job: ${after.stderr}`);
  console.log(`\n# krsictl status\n${(await execa(KRSICTL, ['status'], { reject: false })).stdout}`);

  section('result');
  if (problems.length === 0) {
    console.log(`demo: as expected. billy's ${expectedDenials} attacks denied and logged with job ${strictJob}; alice's job not stopped; ` +
      `root could not kill the agent nor switch it off (${((Date.now() - started) / 1000).toFixed(0)} s)`);
    return 0;
  }
  console.log(`demo: NOT as expected:\n  ${problems.join('\n  ')}`);
  return 1;
}

let status = 1;
try {
  status = await main();
} catch (err) {
  console.error(`demo: ${(err as Error).stack ?? String(err)}`);
} finally {
  await stopCluster();
  await shutdownAgent();
  Enforcer.removePinned(PIN_DIR);
  await stopSshd();
}
process.exit(status);
