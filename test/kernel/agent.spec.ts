/**
 * The real agent (dist/agent/main.js) on the real kernel, driven through its real socket: jobs change
 * what the kernel allows, peer credentials decide who may ask, events reach the log, the API and the
 * metrics with matching counts, kill -9 and restart never open a gap, reload keeps a bad config out.
 */
import { expect } from 'chai';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, rmdirSync, writeFileSync, copyFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { request, type ClientResponse } from '../../agent/client/client.js';
import { Enforcer } from '../../agent/enforcement/enforcer.js';
import { generationDir, readBuildId } from '../../agent/enforcement/generations.js';
import { OTHER, ROOT, SCRATCH, USER, probe, runAs, userDir } from './fixture.js';
import { unknownMetrics } from '../monitoring/names.js';
import { asTheUnitRunsIt } from '../vm/agent-command.js';
import { signalFromInit } from '../vm/init-control.js';
import { shellQuote } from '../vm/mocha-summary.js';
import { scaled, timed, waitFor, withDeadline } from '../vm/pace.js';

const DIR = '/tmp/krsi-agent-spec';
const CONFIG = join(DIR, 'krsi.ini');
const SOCKET = '/run/slurm-krsi/agent.sock';
const PIN_DIR = '/sys/fs/bpf/slurm-krsi';
/** this build's generation of the agent's pins */
const OWN_PINS = generationDir(PIN_DIR, readBuildId(join(ROOT, 'build/bpf/krsi.bpf.o')));
const STATE = join(DIR, 'state');
const EVENT_LOG = join(DIR, 'events.log');
const METRICS = 'http://127.0.0.1:9817/metrics';
const AGENT = join(ROOT, 'dist/agent/main.js');
const KRSICTL = join(ROOT, 'dist/agent/cli/krsictl.js');
const SUID = join(SCRATCH, 'agent-suid-id');
const FLOOD = join(ROOT, 'build/probe/krsi-flood');
const FLOOD_CGROUP = '/sys/fs/cgroup/krsi-flooders';

function config(strictFileperms = 'enforce', extra = ''): string {
  return `[agent]
socket = ${SOCKET}
metrics_listen = 127.0.0.1:9817
state_dir = ${STATE}
event_log = ${EVENT_LOG}
pin_dir = ${PIN_DIR}
default_profile = default
${extra}
[profile default]
fileperms = audit

[profile strict]
fileperms = ${strictFileperms}
suidexec = enforce
suidexec_allow = /usr/bin/passwd
sshlisteners = enforce
skconnections = enforce
connect_deny = 192.0.2.0/24, 2001:db8::/32
killtasks = enforce
`;
}

const agentOptions = { reject: false, all: true, buffer: false } as const;
let agent: ResultPromise<typeof agentOptions> | undefined;
let agentOutput = '';
let userTmp = '';

async function api(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<ClientResponse> {
  return request(SOCKET, method, path, body, { timeoutMs: scaled(30_000) });
}

async function startAgent(): Promise<number> {
  const proc = execa(...asTheUnitRunsIt(process.execPath, [AGENT, '--config', CONFIG]), agentOptions);
  proc.all!.on('data', (chunk: Buffer) => {
    agentOutput += chunk.toString();
  });
  agent = proc;
  await waitFor('the agent to answer GET /v1/status', async () => {
    if (proc.exitCode !== null) throw new Error(`agent exited early: ${agentOutput}`);
    try {
      return (await api('GET', '/v1/status')).status === 200;
    } catch {
      return false; // not listening yet
    }
  }, { timeoutMs: 90_000, detail: () => agentOutput });
  return proc.pid!;
}

/**
 * Stop the agent the way a crash (SIGKILL) or `systemctl stop` (SIGTERM) does: only PID 1 may signal it,
 * so the VM's init sends the signal. Its programs must stay pinned.
 */
async function killAgent(signal: 'SIGKILL' | 'SIGTERM'): Promise<void> {
  const proc = agent!;
  await signalFromInit(proc.pid!, signal);
  await proc;
  agent = undefined;
  const links = join(OWN_PINS, 'links');
  expect(existsSync(links) && readdirSync(links).length > 0, 'the agent left its programs pinned').to.equal(true);
}

/**
 * Entries per set map, read through the agent (only it and init may open its maps), once its background
 * reclaim of retired sets (after a grace period) has run: two readings 200 ms apart that agree.
 */
async function settledEntryCounts(): Promise<Record<string, number>> {
  const read = async () => JSON.stringify(((await api('GET', '/v1/status')).body as { setEntries: Record<string, number> }).setEntries);
  let last = await read();
  const settled = await waitFor('the set entry counts to settle (two readings 200 ms apart that agree)', async () => {
    const now = await read();
    const same = now === last;
    last = now;
    return same && now;
  }, { intervalMs: 200, detail: () => `last reading: ${last}` });
  return JSON.parse(settled) as Record<string, number>;
}

/** the sequence number of the agent's newest event: later events have higher ones */
async function lastEventSeq(): Promise<number> {
  let from = 0;
  for (;;) {
    const page = (await api('GET', `/v1/events?since=${from}&limit=10000`)).body as { events: unknown[]; next: number };
    if (page.events.length === 0) return from;
    from = page.next;
  }
}

async function scrape(): Promise<string> {
  const r = await fetch(METRICS);
  expect(r.status).to.equal(200);
  return r.text();
}

function metric(text: string, name: string, labels: string): number {
  const prefix = labels === '' ? `${name} ` : `${name}{${labels}}`;
  const line = text.split('\n').find((l) => l.startsWith(prefix));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

describe('krsi-agent on the real kernel', function () {
  this.timeout(scaled(180_000));

  before(async () => {
    rmSync(DIR, { recursive: true, force: true });
    mkdirSync(DIR, { recursive: true });
    writeFileSync(CONFIG, config());
    Enforcer.removePinned(PIN_DIR);
    userTmp = await userDir(USER, 'agent');
    rmSync(SUID, { force: true });
    copyFileSync('/usr/bin/id', SUID);
    chmodSync(SUID, 0o4755);
    await startAgent();
  });

  after(async () => {
    if (agent) await killAgent('SIGTERM');
    Enforcer.removePinned(PIN_DIR);
  });

  afterEach(async () => {
    for (const job of ['100', '101', '102', '103']) await api('DELETE', `/v1/jobs/${job}`);
    rmSync('/tmp/pwned', { force: true });
  });

  it('reports its status: programs attached and pinned, no jobs', async () => {
    const r = await api('GET', '/v1/status');
    const s = r.body as { programs: string[]; pinned: string[]; jobs: number; adopted: boolean; lsm: string[] };
    expect(s.programs).to.include.members(['krsi_inode_create', 'krsi_inode_init_security', 'krsi_inode_setattr', 'krsi_bprm_creds_from_file', 'krsi_socket_listen', 'krsi_socket_connect', 'krsi_task_kill']);
    expect(s.pinned.filter((p) => p.startsWith('links/'))).to.have.length(s.programs.length);
    expect(s).to.include({ jobs: 0, adopted: false });
    expect(s.lsm).to.include('bpf');
    // the start-up priming of the write path (uid (uid_t)-1) leaves no entry behind in the kernel (and no
    // uid_bits bit: checked once the agent is down, in the kill -9 test, since only it may open its maps)
    expect((r.body as { uidsUnderPolicy: number[] }).uidsUnderPolicy).to.deep.equal([]);
    const sets = await settledEntryCounts();
    expect(Object.values(sets).every((n) => n === 0), JSON.stringify(sets)).to.equal(true);
  });

  it('a strict job restricts its uid in the kernel, another uid stays free, and removal frees it', async () => {
    const add = await api('POST', '/v1/jobs', { job_id: '100', uid: USER, user: 'billy', comment: 'run 3 policy:strict' });
    expect(add.status).to.equal(201);
    expect((add.body as { job: { profiles: string[] } }).job.profiles).to.deep.equal(['default', 'strict']);
    expect(await probe(USER, 'create', join(userTmp, 'agent-w'), '0666', '0')).to.equal('ERR EPERM');
    expect(await probe(USER, 'exec', SUID, '-u')).to.equal('ERR EPERM');
    expect(await probe(USER, 'connect4', '192.0.2.1', '22', 'tcp')).to.equal('ERR EPERM');
    expect(await probe(OTHER, 'connect4', '192.0.2.1', '22', 'tcp')).to.equal('ERR ENETUNREACH');
    expect(await probe(0, 'exec', SUID, '-u')).to.equal('0');
    const del = await api('DELETE', '/v1/jobs/100');
    expect(del.body).to.deep.include({ removed: true, uidPolicy: null });
    expect(await probe(USER, 'exec', SUID, '-u')).to.equal('0');
    expect((await api('DELETE', '/v1/jobs/100')).body).to.deep.include({ removed: false });
  });

  it('POST is idempotent per job id', async () => {
    const first = await api('POST', '/v1/jobs', { job_id: '101', uid: USER, comment: 'policy:strict' });
    const again = await api('POST', '/v1/jobs', { job_id: '101', uid: USER, comment: 'policy:strict' });
    expect([first.status, again.status]).to.deep.equal([201, 200]);
    expect(((await api('GET', '/v1/jobs')).body as { jobs: unknown[] }).jobs).to.have.length(1);
  });

  it('two jobs of one uid: the union holds until the stricter one ends', async () => {
    await api('POST', '/v1/jobs', { job_id: '101', uid: USER, comment: 'policy:strict' });
    await api('POST', '/v1/jobs', { job_id: '102', uid: USER });
    expect(await probe(USER, 'exec', SUID, '-u')).to.equal('ERR EPERM');
    await api('DELETE', '/v1/jobs/101');
    expect(await probe(USER, 'exec', SUID, '-u')).to.equal('0');
    expect(await probe(USER, 'create', join(userTmp, 'agent-floor'), '0666', '0')).to.equal('OK'); // floor: audit
    await api('DELETE', '/v1/jobs/102');
    const status = (await api('GET', '/v1/status')).body as { uidsUnderPolicy: number[] };
    expect(status.uidsUnderPolicy).to.not.include(USER);
  });

  it('an unknown profile gets the floor plus the strictest profile, and the agent logs it', async () => {
    const r = await api('POST', '/v1/jobs', { job_id: '103', uid: USER, comment: 'policy:nosuch' });
    expect((r.body as { job: { unknownProfile: string; profiles: string[] } }).job).to.deep.include({ unknownProfile: 'nosuch', profiles: ['default', 'strict'] });
    expect(await probe(USER, 'exec', SUID, '-u')).to.equal('ERR EPERM');
    expect(agentOutput).to.match(/profile this node does not have.*requested=nosuch/);
  });

  it('refuses non-root callers the admins\' commands with 403 (peer credentials), and survives hostile requests', async () => {
    const ctl = await runAs(USER, process.execPath, [KRSICTL, '--socket', SOCKET, 'status']);
    expect(ctl.exitCode).to.equal(4);
    expect(ctl.stderr).to.match(/uid 1000 may not read the agent status/);
    const post = await runAs(USER, process.execPath, ['-e', `
      import('${join(ROOT, 'dist/agent/client/client.js')}').then(async (c) => {
        const r = await c.request('${SOCKET}', 'POST', '/v1/jobs', { job_id: '666', uid: 1000 });
        console.log(r.status, JSON.stringify(r.body));
      });`]);
    expect(post.stdout).to.match(/^403 .*KRSI_ERR_FORBIDDEN/);
    for (const body of ['{', '[]', JSON.stringify({ job_id: '1;reboot', uid: 1 }), JSON.stringify({ job_id: '1', uid: -1 })]) {
      const r = await fetchUnix('POST', '/v1/jobs', body);
      expect(r.status, body).to.be.within(400, 499);
    }
    expect((await api('GET', '/v1/status')).status).to.equal(200);
  });

  it('an ordinary user sees its own jobs and the events of its own processes, nothing of another user\'s', async () => {
    await api('POST', '/v1/jobs', { job_id: '100', uid: USER, comment: 'policy:strict' });
    await api('POST', '/v1/jobs', { job_id: '101', uid: OTHER, comment: 'policy:strict' });
    const from = await lastEventSeq();
    expect(await probe(USER, 'connect6', '2001:db8::1', '83', 'tcp')).to.equal('ERR EPERM');
    expect(await probe(OTHER, 'connect6', '2001:db8::1', '84', 'tcp')).to.equal('ERR EPERM');
    await waitFor('both denied connects in GET /v1/events', async () =>
      ((await api('GET', `/v1/events?since=${from}&limit=100`)).body as { events: unknown[] }).events.length >= 2);
    const ctl = async (uid: number, ...args: string[]) => {
      const r = await runAs(uid, process.execPath, [KRSICTL, '--socket', SOCKET, '--json', ...args]);
      expect(r.exitCode, `krsictl ${args.join(' ')} as uid ${uid}: ${r.stderr}`).to.equal(0);
      return r.stdout;
    };
    type Event = { uid: number; job: string; line: string };
    // --json without --follow prints the whole page: { events, next, missed }
    const eventsOf = async (uid: number) => (JSON.parse(await ctl(uid, 'events', '--since', String(from))) as { events: Event[] }).events;
    for (const [uid, job, port, theirs] of [[USER, '100', '83', '84'], [OTHER, '101', '84', '83']] as const) {
      expect((JSON.parse(await ctl(uid, 'jobs')) as { jobs: { jobId: string }[] }).jobs.map((j) => j.jobId), `jobs of ${uid}`).to.deep.equal([job]);
      const events = await eventsOf(uid);
      expect(events.map((e) => e.uid), `events of ${uid}`).to.deep.equal(events.map(() => uid));
      expect(events.some((e) => e.line.includes(`dport=${port} `) && e.job === job), `its own connect to port ${port}`).to.equal(true);
      expect(events.some((e) => e.line.includes(`dport=${theirs} `)), `the other user's connect to port ${theirs}`).to.equal(false);
    }
  });

  it('events reach the log file, the API and the metrics, with counts that match the kernel', async () => {
    await api('POST', '/v1/jobs', { job_id: '100', uid: USER, comment: 'policy:strict' });
    const before = await scrape();
    const from = await lastEventSeq();
    // one connect three times in a row (one event, two folded into the action's next one), then two other ones
    expect(await probe(USER, '--repeat', '3', 'connect6', '2001:db8::1', '80', 'tcp')).to.equal('ERR EPERM');
    for (const port of ['81', '82']) expect(await probe(USER, 'connect6', '2001:db8::1', port, 'tcp')).to.equal('ERR EPERM');
    type Page = { events: { type: string; job: string; line: string }[] };
    const skconns = async () => ((await api('GET', `/v1/events?since=${from}&limit=100`)).body as Page).events.filter((e) => e.type === 'skconn');
    await waitFor('the 3 denied connects in GET /v1/events', async () => (await skconns()).length >= 3);
    // the counters are read after the events: whatever arrived, its decision was counted first
    const conns = await skconns();
    expect(conns).to.have.length(3);
    expect(conns[0]!.job).to.equal('100');
    const log = readFileSync(EVENT_LOG, 'utf8');
    for (const e of conns) expect(log).to.include(e.line);
    expect(conns[0]!.line).to.match(/type=skconn policy=skconnections comm=krsi-probe uid=1000 .* job=100 proto=6 daddr=2001:db8::1 dport=80 act=deny$/);
    expect(conns.map((e) => /dport=(\d+)/.exec(e.line)?.[1])).to.deep.equal(['80', '81', '82']);
    // the endpoint renders at most once a second: wait for a rendering that has the five decisions
    const grewIn = (text: string, name: string, labels: string) => metric(text, name, labels) - metric(before, name, labels);
    const after = await waitFor('a metrics scrape that counts the 5 decisions', async () => {
      const text = await scrape();
      return grewIn(text, 'krsi_decisions_total', 'policy="skconnections",decision="deny"') === 5 && text;
    });
    const grew = (name: string, labels: string) => grewIn(after, name, labels);
    expect(grew('krsi_events_logged_total', 'policy="skconnections",decision="deny"')).to.equal(3);
    expect(grew('krsi_events_folded_total', 'policy="skconnections"')).to.equal(2);
    expect(metric(after, 'krsi_events_dropped_total', 'policy="skconnections"')).to.equal(0);
    expect(after).to.match(/^krsi_jobs 1$/m);
    expect(after).to.match(/^krsi_build_info\{version="[^"]+",build_id="[0-9a-f]{8}-[0-9a-f]{12}",kernel="6\.1[^"]*"\} 1$/m);
    expect(after).to.match(/^krsi_policy_apply_duration_seconds_count \d+$/m);
    type Status = { counters: Record<string, { deny: number; audit: number; dropped: number }>; events: { logged: number; dropped: number; folded: number } };
    const status = (await api('GET', '/v1/status')).body as Status;
    expect(status.counters.skconnections!.deny).to.equal(metric(after, 'krsi_decisions_total', 'policy="skconnections",decision="deny"'));
    // every decision since this agent attached the programs was logged by it or folded, none dropped
    const decisions = Object.values(status.counters).reduce((n, c) => n + c.deny + c.audit, 0);
    expect(status.events.logged + status.events.folded).to.equal(decisions);
    expect(status.events.dropped).to.equal(0);
  });

  it('the agent cannot be killed, by root either', async () => {
    expect(await probe(0, 'kill', String(agent!.pid), '9')).to.equal('ERR EPERM');
    expect(await probe(0, 'kill', String(agent!.pid), '15')).to.equal('ERR EPERM');
    expect(await probe(0, 'kill', String(agent!.pid), '1')).to.equal('ERR EPERM');
  });

  it('guards itself and its pins from root: limits, scheduling, its maps, its pins\' file system; bpftool show works without them', async () => {
    const pid = agent!.pid!;
    const from = await lastEventSeq();
    expect(await probe(0, 'prlimit', String(pid), '0', '1')).to.equal('ERR EPERM');
    expect(await probe(0, 'sched-idle', String(pid))).to.equal('ERR EPERM');
    expect(await probe(0, 'setpriority', String(pid), '19')).to.equal('ERR EPERM');
    // its own fds on the maps: copying one needs ptrace attach rights over it, which killtasks refuses
    expect(await probe(0, 'pidfd-getfd', String(pid), '0')).to.equal('ERR EPERM');
    expect(await probe(0, 'bpf-obj-get', join(OWN_PINS, 'maps/uid_policy'), 'rdonly')).to.equal('ERR EPERM');
    expect(await probe(0, 'bpf-obj-get', join(OWN_PINS, 'maps/uid_policy'))).to.equal('ERR EROFS');
    expect(await probe(0, 'unlink', join(OWN_PINS, 'links/krsi_task_kill'))).to.equal('ERR EROFS');
    expect(await probe(0, 'remount-rw', PIN_DIR)).to.equal('ERR EPERM');
    const shown = await execa('bpftool', ['-j', 'prog', 'show'], { reject: false });
    expect(shown.exitCode, shown.stderr).to.equal(0);
    const listed = (JSON.parse(shown.stdout) as { id: number }[]).map((p) => p.id);
    const { programs } = (await api('GET', '/v1/status')).body as { programs: string[] };
    type Page = { events: { type: string; comm: string; line: string }[] };
    const refused = async () => ((await api('GET', `/v1/events?since=${from}&limit=1000`)).body as Page).events;
    await waitFor('the agent to log one bpfid refusal per program for bpftool prog show', async () =>
      (await refused()).filter((e) => e.type === 'bpfid' && e.comm === 'bpftool').length >= programs.length);
    const lines = (await refused()).map((e) => e.line);
    const hidden = lines.filter((l) => / type=bpfid .*comm=bpftool .*object=prog /.test(l)).map((l) => Number(/ id=(\d+)/.exec(l)![1]));
    expect(hidden).to.have.length(programs.length);
    expect(listed.filter((id) => hidden.includes(id)), 'the agent\'s programs in bpftool\'s list').to.deep.equal([]);
    for (const type of ['rlimit', 'setsched', 'setnice', 'ptrace', 'bpfmap', 'remount']) {
      expect(lines.some((l) => l.includes(` type=${type} policy=killtasks `) && / act=deny$/.test(l)), type).to.equal(true);
    }
    // their kernel statistics are the agent's to show
    expect(await scrape()).to.match(/^krsi_program_runs_total\{program="krsi_task_kill"\} \d+$/m);
  });

  it('refuses to start with an oom_score_adj above -1000, and a second agent leaves the live one alone', async () => {
    // a state dir of its own: with the running agent's, its lock would stop it first (exit 5, below)
    const looseConfig = join(DIR, 'krsi-loose.ini');
    writeFileSync(looseConfig, config().replace(`state_dir = ${STATE}`, `state_dir = ${join(DIR, 'loose-state')}`));
    const loose = await execa('choom', ['-n', '0', '--', process.execPath, AGENT, '--config', looseConfig], { reject: false });
    expect(loose.exitCode).to.equal(3);
    expect(loose.stderr).to.match(/oom_score_adj is 0: the agent must run with -1000\b.*OOMScoreAdjust=-1000/);
    const second = await execa(...asTheUnitRunsIt(process.execPath, [AGENT, '--config', CONFIG]), { reject: false });
    // the single-instance lock stops it before it touches anything (the pins would refuse it too: tamper.spec)
    expect(second.exitCode, second.stderr).to.equal(5);
    expect(second.stderr).to.match(/another krsi-agent \(pid \d+\) holds .*agent\.lock: this one exits without touching anything/);
    expect((await api('GET', '/v1/status')).status, 'the running agent still serves').to.equal(200);
  });

  it('restart through init (systemctl restart): the new agent adopts the pins and guards them as its own', async () => {
    await api('POST', '/v1/jobs', { job_id: '100', uid: USER, comment: 'policy:strict' });
    await killAgent('SIGTERM');
    await withPins((pins) => expect(pins.registeredAgent().tgid, 'unregistered on SIGTERM').to.equal(0));
    const pid = await startAgent();
    expect((await api('GET', '/v1/status')).body).to.deep.include({ adopted: true, jobs: 1 });
    expect(await probe(USER, 'exec', SUID, '-u')).to.equal('ERR EPERM');
    expect(await probe(0, 'prlimit', String(pid), '0', '1')).to.equal('ERR EPERM');
    expect(await probe(0, 'remount-rw', PIN_DIR)).to.equal('ERR EPERM');
  });

  it('kill -9 under enforcement: no gap while it is down, the same jobs and entries after restart', async () => {
    await api('POST', '/v1/jobs', { job_id: '100', uid: USER, comment: 'policy:strict' });
    await api('POST', '/v1/jobs', { job_id: '102', uid: OTHER });
    const before = (await api('GET', '/v1/status')).body as { uidsUnderPolicy: number[] };
    const entriesBefore = await settledEntryCounts();

    await killAgent('SIGKILL');
    expect(await probe(USER, 'exec', SUID, '-u'), 'denied while the agent is down').to.equal('ERR EPERM');
    expect(await probe(USER, 'connect4', '192.0.2.9', '22', 'tcp')).to.equal('ERR EPERM');
    // the kernel forgot the dead agent (its last thread exited), so root may open the pins, as the next agent will
    await withPins((pins) => {
      expect(pins.registeredAgent().tgid).to.equal(0);
      expect([...pins.uidPolicies().keys()].sort()).to.deep.equal([...before.uidsUnderPolicy].sort());
      expect(pins.uidBitSet(0xffffffff), 'the start-up priming left no uid_bits bit').to.equal(false);
    });

    await startAgent();
    const after = (await api('GET', '/v1/status')).body as { uidsUnderPolicy: number[]; adopted: boolean; jobs: number };
    expect(after).to.deep.include({ adopted: true, jobs: 2 });
    expect(after.uidsUnderPolicy).to.deep.equal(before.uidsUnderPolicy);
    expect(await settledEntryCounts(), 'nothing duplicated, nothing lost').to.deep.equal(entriesBefore);
    expect(await probe(USER, 'exec', SUID, '-u')).to.equal('ERR EPERM');
    await api('DELETE', '/v1/jobs/100');
    await api('DELETE', '/v1/jobs/102');
    expect(await probe(USER, 'exec', SUID, '-u')).to.equal('0');
  });

  it('reload: a bad config is rejected naming file, section and key, and the running one stays; a good one applies at once', async () => {
    await api('POST', '/v1/jobs', { job_id: '100', uid: USER, comment: 'policy:strict' });
    writeFileSync(CONFIG, config('enforse'));
    const bad = await api('POST', '/v1/reload');
    expect(bad.status).to.equal(422);
    expect(JSON.stringify(bad.body)).to.match(/krsi\.ini.*\[profile strict\] fileperms/);
    expect(await probe(USER, 'create', join(userTmp, 'agent-r1'), '0666', '0')).to.equal('ERR EPERM');

    writeFileSync(CONFIG, config('audit'));
    const good = await api('POST', '/v1/reload');
    expect(good.status).to.equal(200);
    expect(good.body).to.deep.include({ uidsUpdated: 1 });
    expect(await probe(USER, 'create', join(userTmp, 'agent-r2'), '0666', '0')).to.equal('OK');
    expect(await probe(USER, 'exec', SUID, '-u')).to.equal('ERR EPERM');
    writeFileSync(CONFIG, config());
    expect((await api('POST', '/v1/reload')).status).to.equal(200);
  });

  describe('the Slurm prolog and epilog against the real agent', () => {
    const PROLOG = join(ROOT, 'dist/prolog/prolog.js');
    const EPILOG = join(ROOT, 'dist/epilog/epilog.js');
    const slurmEnv = (jobId: string, uid: number, extra: Record<string, string> = {}) => ({
      SLURM_JOB_ID: jobId, SLURM_JOB_UID: String(uid), SLURM_JOB_USER: `user${uid}`, SLURM_SCRIPT_CONTEXT: 'prolog_slurmd', KRSI_CONFIG: CONFIG, ...extra,
    });
    const hook = (script: string, env: Record<string, string>) =>
      execa(process.execPath, [script], { env, extendEnv: false, reject: false });

    it('passes a hostile comment through as data: policy:strict found, nothing executed', async () => {
      const comment = `x $(touch /tmp/pwned) \`touch /tmp/pwned2\` ; rm -rf / \n'" policy:strict\n\u0000?`;
      const r = await hook(PROLOG, slurmEnv('100', USER, { SLURM_JOB_COMMENT: comment.replace('\u0000', '') }));
      expect(r.exitCode, r.stderr).to.equal(0);
      expect(r.stderr).to.match(/job 100 uid 1000: profiles default,strict in force/);
      const job = (await api('GET', '/v1/jobs/100')).body as { requested: string };
      expect(job.requested).to.equal('strict');
      expect(existsSync('/tmp/pwned') || existsSync('/tmp/pwned2')).to.equal(false);
      expect(await probe(USER, 'exec', SUID, '-u')).to.equal('ERR EPERM');
      const e = await hook(EPILOG, slurmEnv('100', USER));
      expect(e.exitCode).to.equal(0);
      expect(await probe(USER, 'exec', SUID, '-u')).to.equal('0');
    });

    it('64 concurrent prologs all succeed, then 64 epilogs', async function () {
      // What must hold: every prolog and epilog succeeds and the table is left empty, however fast the
      // emulation runs. The deadline is derived from one prolog and one epilog timed now, in this boot:
      // 64 of each on the VM's vCPUs take at most about 64 times as long; the safety net is 4 times that.
      const one = await timed(() => hook(PROLOG, slurmEnv('4999', 1999, { SLURM_JOB_COMMENT: 'policy:strict' })));
      const oneEpilog = await timed(() => hook(EPILOG, slurmEnv('4999', 1999)));
      expect([one.value.exitCode, oneEpilog.value.exitCode], one.value.stderr + oneEpilog.value.stderr).to.deep.equal([0, 0]);
      const budget = (ms: number) => Math.round(4 * 64 * ms + scaled(30_000));
      this.timeout(budget(one.ms) + budget(oneEpilog.ms) + scaled(60_000));

      const ids = Array.from({ length: 64 }, (_, i) => String(5000 + i));
      /**
       * slurmd forks every job's prolog at once. Spawning 64 processes from this Node.js process would
       * start them one after another (each spawn waits for its child's exec, about a second here), so one
       * shell starts them all and each leaves its exit status and output in a file.
       */
      const batch = async (what: string, script: string, ms: number, env: (id: string, i: number) => Record<string, string>) => {
        const dir = mkdtempSync(join(DIR, `${what}-`));
        const launch = ids.map((id, i) => {
          const vars = Object.entries(env(id, i)).map(([k, v]) => shellQuote(`${k}=${v}`)).join(' ');
          return `( env -i ${vars} ${shellQuote(process.execPath)} ${shellQuote(script)} >${dir}/${id}.out 2>&1; echo $? >${dir}/${id}.rc ) &`;
        });
        const finished = () => ids.filter((id) => existsSync(join(dir, `${id}.rc`))).length;
        const t = await timed(() => withDeadline(`64 concurrent ${what}s (one alone took ${Math.round(ms)} ms)`, budget(ms),
          execa('bash', ['-c', [...launch, 'wait'].join('\n')]), () => `${finished()} of 64 done`));
        const failed = ids.map((id) => ({ id, rc: readFileSync(join(dir, `${id}.rc`), 'utf8').trim(), output: readFileSync(join(dir, `${id}.out`), 'utf8') }))
          .filter((r) => r.rc !== '0');
        expect(failed, `${what}s that failed`).to.deep.equal([]);
        return t.ms;
      };
      const tookProlog = await batch('prolog', PROLOG, one.ms, (id, i) => slurmEnv(id, 2000 + (i % 8), { SLURM_JOB_COMMENT: 'policy:strict' }));
      const jobs = await timed(async () => ((await api('GET', '/v1/jobs')).body as { jobs: { jobId: string }[] }).jobs.map((j) => j.jobId));
      expect(jobs.value).to.include.members(ids);
      const tookEpilog = await batch('epilog', EPILOG, oneEpilog.ms, (id, i) => slurmEnv(id, 2000 + (i % 8)));
      const status = (await api('GET', '/v1/status')).body as { jobs: number; uidsUnderPolicy: number[] };
      const left = ((await api('GET', '/v1/jobs')).body as { jobs: { jobId: string }[] }).jobs.map((j) => j.jobId);
      expect(left.filter((id) => ids.includes(id) || id === '4999'), 'jobs left in the table').to.deep.equal([]);
      expect(status.uidsUnderPolicy.filter((u) => u >= 1999 && u < 2008)).to.deep.equal([]);
      console.log(`      one prolog ${Math.round(one.ms)} ms, one epilog ${Math.round(oneEpilog.ms)} ms; 64 concurrent prologs ${tookProlog.toFixed(0)} ms, ` +
        `GET /v1/jobs ${jobs.ms.toFixed(0)} ms, 64 epilogs ${tookEpilog.toFixed(0)} ms (VM, software emulation: figures, not checks)`);
    });

    it('8 users flooding the control socket and the metrics endpoint do not starve 10 prologs in a row', async function () {
      // The bound is a ratio measured in this boot: the median of 5 idle prologs first, then each flooded
      // prolog must finish within max(3 s, 6 x that median), whatever the emulation's speed.
      const runJob = async (id: string, uid: number) => {
        const t = await timed(() => hook(PROLOG, slurmEnv(id, uid, { SLURM_JOB_COMMENT: 'policy:strict' })));
        expect(t.value.exitCode, t.value.stderr).to.equal(0);
        expect((await hook(EPILOG, slurmEnv(id, uid))).exitCode).to.equal(0);
        return t.ms;
      };
      const idle: number[] = [];
      for (let i = 0; i < 5; i++) idle.push(await runJob(String(8000 + i), 1500 + i));
      const median = [...idle].sort((a, b) => a - b)[2]!;
      const bound = Math.max(3000, 6 * median);
      // 10 flooded jobs (a prolog and an epilog each, about 9 s a job under emulation): each prolog is checked
      // against the bound, so more of them add run time, not a different check
      const FLOODED = 10;
      this.timeout(FLOODED * 2 * bound + scaled(120_000));

      // The flooders' processes share a cgroup of their own, as a node's jobs all live under Slurm's
      // slurmstepd.scope while slurmd and its prologs run outside it: the CPU scheduler then gives them
      // together one share against the prolog's process, as it would on a node. What is tested is the
      // agent: that its socket and metrics endpoint keep the prolog's request from waiting behind theirs.
      writeFileSync('/sys/fs/cgroup/cgroup.subtree_control', '+cpu');
      mkdirSync(FLOOD_CGROUP, { recursive: true });
      const flooders = Array.from({ length: 8 }, (_, i) => 4000 + i);
      const floods = flooders.map((uid) => execa(FLOOD, [SOCKET, '9817', '3600', '16'], { uid, gid: uid, reject: false, buffer: true }));
      for (const f of floods) writeFileSync(join(FLOOD_CGROUP, 'cgroup.procs'), String(f.pid));
      const flooding = floods.map(() => false);
      floods.forEach((f, i) => f.stdout!.on('data', (chunk: Buffer) => { if (chunk.toString().includes('FLOODING')) flooding[i] = true; }));
      const prologs: number[] = [];
      try {
        await waitFor('the 8 flooders to get their first answers', () => flooding.every((x) => x), { timeoutMs: 60_000, detail: () => `${flooding.filter((x) => x).length} of 8` });
        for (let i = 0; i < FLOODED; i++) prologs.push(await runJob(String(8100 + i), 1600 + i));
      } finally {
        for (const f of floods) f.kill('SIGTERM');
      }
      const results = await Promise.all(floods);
      rmdirSync(FLOOD_CGROUP);
      // what the flooders got, summed: the flood was real
      const sum = (target: string, key: string) => results.reduce((n, r) => {
        const line = String(r.stdout).split('\n').find((l) => l.startsWith(`RESULT ${target} `)) ?? '';
        return n + Number(new RegExp(`\\b${key}=(\\d+)`).exec(line)?.[1] ?? 0);
      }, 0);
      const report = (target: string) => ['sent', 'answered', 'ok', 'forbidden', 'limited', 'closed', 'refused'].map((k) => `${k} ${sum(target, k)}`).join(', ');
      console.log(`      idle prolog median ${Math.round(median)} ms (${idle.map(Math.round).join(', ')}); bound ${Math.round(bound)} ms`);
      console.log(`      flooded prologs: ${prologs.map(Math.round).join(', ')} ms (max ${Math.round(Math.max(...prologs))})`);
      console.log(`      8 flooders, control socket: ${report('socket')}`);
      console.log(`      8 flooders, metrics endpoint: ${report('metrics')}`);
      expect(sum('socket', 'sent'), 'requests sent to the control socket').to.be.above(1000);
      expect(sum('metrics', 'sent'), 'requests sent to the metrics endpoint').to.be.above(1000);
      expect(sum('socket', 'forbidden') + sum('socket', 'limited'), 'socket requests answered 403/429').to.be.above(100);
      expect(sum('metrics', 'ok'), 'scrapes answered').to.be.above(10);
      expect(sum('socket', 'closed') + sum('socket', 'refused'), 'socket connections refused or closed by the limits').to.be.above(0);
      expect(sum('metrics', 'closed') + sum('metrics', 'refused'), 'metrics connections refused or closed by the limits').to.be.above(0);
      const text = await waitFor<string>('a metrics scrape once the flood stopped', () => scrape().catch((): false => false));
      expect(metric(text, 'krsi_refused_total', 'endpoint="socket",reason="connections"') + metric(text, 'krsi_refused_total', 'endpoint="socket",reason="rate"'))
        .to.be.above(0);
      expect(prologs.filter((ms) => ms >= bound), `prologs over ${Math.round(bound)} ms`).to.deep.equal([]);
    });

    it('the epilog succeeds for a job the agent never saw, twice', async () => {
      for (let i = 0; i < 2; i++) {
        const r = await hook(EPILOG, slurmEnv('424242', USER));
        expect(r.exitCode).to.equal(0);
        expect(r.stderr).to.match(/not known to the agent/);
      }
    });

    it('agent unreachable: the prolog fails with on_error = fail, passes with allow; the epilog leaves a note', async () => {
      const down = join(DIR, 'down.ini');
      writeFileSync(down, config('enforce', 'on_error = fail').replace(SOCKET, '/run/krsi-nowhere.sock'));
      const fail = await hook(PROLOG, slurmEnv('7001', USER, { KRSI_CONFIG: down }));
      expect(fail.exitCode).to.equal(1);
      expect(fail.stderr).to.match(/slurm-krsi: prolog: job 7001: node fault.*agent unreachable.*krsi-nowhere/);
      writeFileSync(down, config('enforce', 'on_error = allow').replace(SOCKET, '/run/krsi-nowhere.sock'));
      const allow = await hook(PROLOG, slurmEnv('7002', USER, { KRSI_CONFIG: down }));
      expect(allow.exitCode).to.equal(0);
      expect(allow.stderr).to.match(/NOT under policy/);
      const epi = await hook(EPILOG, slurmEnv('7003', USER, { KRSI_CONFIG: down }));
      expect(epi.exitCode).to.equal(0);
      const notes = readdirSync(join(STATE, 'pending-removals')).filter((n) => n.startsWith('7003@'));
      expect(notes, 'a note for job 7003 (no registration: the agent never had it)').to.have.length(1);
      rmSync(join(STATE, 'pending-removals', notes[0]!));
    });

    it('refuses an environment that is not slurmd\'s', async () => {
      const r = await hook(PROLOG, { SLURM_JOB_ID: '1;reboot', SLURM_JOB_UID: '1000', KRSI_CONFIG: CONFIG });
      expect(r.exitCode).to.equal(1);
      expect(r.stderr).to.match(/SLURM_JOB_ID "1;reboot" .* not a job id/);
    });
  });

  it('a replaced allowlisted file (a package upgrade) is re-resolved by the agent on its own', async () => {
    await api('POST', '/v1/jobs', { job_id: '100', uid: USER, comment: 'policy:strict' });
    expect(await probe(USER, 'exec', '/usr/bin/passwd', '--help')).to.not.equal('ERR EPERM');
    // what dpkg does: the new file under a temporary name, renamed over the old one (a new inode)
    copyFileSync('/usr/bin/passwd', '/usr/bin/passwd.krsi-new');
    chmodSync('/usr/bin/passwd.krsi-new', 0o4755);
    const { renameSync } = await import('node:fs');
    renameSync('/usr/bin/passwd.krsi-new', '/usr/bin/passwd');
    await waitFor('the replaced /usr/bin/passwd to be allowlisted again (exec not EPERM)',
      async () => (await probe(USER, 'exec', '/usr/bin/passwd', '--help')) !== 'ERR EPERM', { intervalMs: 200 });
    expect(agentOutput).to.match(/allowlisted files changed: identities re-resolved.*\/usr\/bin\/passwd/);
  });

  it('SIGHUP from init reloads the config; from root it is denied', async () => {
    await api('POST', '/v1/jobs', { job_id: '100', uid: USER, comment: 'policy:strict' });
    writeFileSync(CONFIG, config('audit'));
    try {
      expect(await probe(0, 'kill', String(agent!.pid), '1')).to.equal('ERR EPERM');
      await signalFromInit(agent!.pid!, 'HUP');
      await waitFor('the agent to log "configuration reloaded" after SIGHUP', () => /configuration reloaded/.test(agentOutput));
      expect(await probe(USER, 'create', join(userTmp, 'hup'), '0666', '0')).to.equal('OK');
    } finally {
      writeFileSync(CONFIG, config());
      await api('POST', '/v1/reload');
    }
  });

  it('exports every metric the alert rules and the dashboard name, and as many programs attached as expected', async () => {
    const text = await scrape();
    expect(unknownMetrics(text)).to.deep.equal([]);
    const expected = metric(text, 'krsi_programs_expected', '');
    expect(expected).to.be.greaterThan(0);
    expect(metric(text, 'krsi_programs_attached', '')).to.equal(expected);
  });

  it('krsictl status and a metrics scrape, for the record', async () => {
    await api('POST', '/v1/jobs', { job_id: '100', uid: USER, comment: 'policy:strict' });
    const status = await execa(process.execPath, [KRSICTL, '--socket', SOCKET, 'status'], { reject: false });
    expect(status.exitCode).to.equal(0);
    console.log(`      --- krsictl status ---\n${String(status.stdout).replace(/^/gm, '      ')}`);
    const text = await scrape();
    console.log(`      --- GET /metrics (krsi_ lines) ---\n${text.split('\n').filter((l) => l.startsWith('krsi_') && !l.startsWith('krsi_agent_')).map((l) => `      ${l}`).join('\n')}`);
  });
});

/**
 * Open the agent's pins from this process, which only works while no agent is registered (it stopped
 * through init, or its last thread exited).
 */
async function withPins<T>(fn: (pins: Enforcer) => T): Promise<T> {
  const pins = Enforcer.open({ objectPath: join(ROOT, 'build/bpf/krsi.bpf.o'), pinDir: PIN_DIR });
  try {
    return fn(pins);
  } finally {
    await pins.close();
  }
}

/** a raw request with an arbitrary body, for hostile input */
async function fetchUnix(method: string, path: string, body: string): Promise<{ status: number }> {
  const { request: httpRequest } = await import('node:http');
  return new Promise((resolve, reject) => {
    const req = httpRequest({ socketPath: SOCKET, method, path, headers: { 'content-type': 'application/json' } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0 }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

