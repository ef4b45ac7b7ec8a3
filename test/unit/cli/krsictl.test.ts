/**
 * krsictl against the real socket with the fake service: output (tables and --json), exit codes, the
 * config-reading commands (profiles --lua, check --config). Most runs call main() in-process; a few run
 * the executable (tsx) to prove the entry point, the exit status and SIGINT handling of events --follow.
 */
import { expect } from 'chai';
import { execa } from 'execa';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApp } from '../../../agent/api/app.js';
import { listenUnix } from '../../../agent/api/server.js';
import { EXIT, main, USAGE } from '../../../agent/cli/krsictl.js';
import { formatStatus, luaProfileTable, luaString, safe } from '../../../agent/cli/format.js';
import { PACKAGE_ROOT } from '../../../agent/paths.js';
import { ConfigError } from '../../../agent/config/config.js';
import { FakeService } from '../api/fake-service.js';

const KRSICTL = join(PACKAGE_ROOT, 'agent', 'cli', 'krsictl.ts');
const isRoot = process.getuid?.() === 0;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(argv: string[], extra: { signal?: AbortSignal; followIntervalMs?: number } = {}): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, {
    stdout: (t) => (stdout += t),
    stderr: (t) => (stderr += t),
    timeoutMs: 5000,
    ...extra,
  });
  return { code, stdout, stderr };
}

const GOOD_CONFIG = `[agent]
socket = /run/slurm-krsi/agent.sock
default_profile = default

[profile default]
fileperms = audit

[profile strict]
fileperms = enforce
killtasks = enforce

[profile gpu.v2]
fileperms = enforce
`;

const BAD_CONFIG = `[agent]
default_profile = default
on_error = maybe

[profile default]
fileperms = sometimes
`;

describe('krsictl: usage and formatting', () => {
  it('--help prints the man page: NAME, SYNOPSIS, COMMANDS, EXIT STATUS', async () => {
    const r = await run(['--help']);
    expect(r.code).to.equal(0);
    expect(r.stdout).to.equal(USAGE);
    for (const h of ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'COMMANDS', 'OPTIONS', 'FILES', 'EXIT STATUS']) expect(USAGE).to.match(new RegExp(`^${h}$`, 'm'));
    expect(USAGE).to.include('job_submit.lua');
  });

  const usageErrors: [string[], string][] = [
    [[], 'no command given'],
    [['frobnicate'], 'unknown command "frobnicate"'],
    [['status', 'extra'], 'unexpected argument "extra"'],
    [['status', '--bogus'], "Unknown option '--bogus'"],
    [['jobs', '--since', '3'], '--since does not apply to jobs'],
    [['events', '--limit', '0'], '--limit must be an integer from 1 to 10000'],
    [['events', '--since', '-1'], '--since'],
    [['profiles', '--lua', '--json'], '--lua and --json exclude each other'],
    [['status', '--socket'], "Option '--socket <value>' argument missing"],
  ];
  for (const [argv, message] of usageErrors) {
    it(`usage error (exit 2): krsictl ${argv.join(' ')}`, async () => {
      const r = await run(argv);
      expect(r.code).to.equal(EXIT.USAGE);
      expect(r.stderr).to.match(/^krsictl: /);
      expect(r.stderr).to.include(message);
      expect(r.stderr).to.include('usage: krsictl');
    });
  }

  it('makes strings terminal-safe and Lua-safe', () => {
    expect(safe('a\x1b[31mred\nline\x7f')).to.equal('a\\x1b[31mred\\x0aline\\x7f');
    expect(luaString('a"b\\c\n')).to.equal('"a\\"b\\\\c\\010"');
    expect(luaProfileTable(['default', 'strict'])).to.equal('return { "default", "strict" }');
    expect(luaProfileTable([])).to.equal('return {  }');
  });
});

describe('krsictl: config commands', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'krsictl-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function config(text: string): string {
    const path = join(dir, 'krsi.ini');
    writeFileSync(path, text, { mode: 0o644 });
    chmodSync(path, 0o644);
    return path;
  }

  it('profiles --lua prints the valid profile names as a Lua table literal', async () => {
    const r = await run(['profiles', '--lua', '--config', config(GOOD_CONFIG)]);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.equal('return { "default", "gpu.v2", "strict" }\n');
  });

  it('profiles --lua with a bad config prints the problems and exits 1', async () => {
    const path = config(BAD_CONFIG);
    const r = await run(['profiles', '--lua', '--config', path]);
    expect(r.code).to.equal(EXIT.FAILED);
    expect(r.stdout).to.equal('');
    expect(r.stderr).to.include(`${path}:3: [agent] on_error:`);
  });

  it('check --config with a bad config names file, section and key and exits 1', async () => {
    const path = config(BAD_CONFIG);
    const r = await run(['check', '--config', path]);
    expect(r.code).to.equal(EXIT.FAILED);
    expect(r.stderr).to.include(`krsictl: config ${path} is invalid:`);
    expect(r.stderr).to.include(`  - ${path}:3: [agent] on_error:`);
    expect(r.stderr).to.include(`  - ${path}:6: [profile default] fileperms:`);
  });

  it('check --config with a good config reports it valid (the exit status follows the preflight too)', async () => {
    const path = config(`${GOOD_CONFIG}\n[profile allow]\nsuidexec = enforce\nsuidexec_allow = /nonexistent/passwd\n`);
    const r = await run(['check', '--config', path]);
    expect(r.stdout).to.include(`slurm-krsi: config ${path} is valid (profiles: allow, default, gpu.v2, strict; default: default)`);
    expect(r.stdout).to.include('warning: ');
    expect(r.stdout).to.include('/nonexistent/passwd');
    const json = await run(['--json', 'check', '--config', path]);
    const body = JSON.parse(json.stdout) as { ok: boolean; preflight: { ok: boolean }; config: { ok: boolean; warnings: string[] } };
    expect(body.config.ok).to.equal(true);
    expect(body.config.warnings).to.have.length(1);
    expect(body.ok).to.equal(body.preflight.ok);
    expect(json.code).to.equal(body.ok ? 0 : 1);
    expect(r.code).to.equal(body.ok ? 0 : 1);
  });

  it('check --config-only judges the file alone: the pre-push gate on a machine without BPF LSM', async () => {
    // this host refuses BPF LSM programs (the plain check fails its preflight here); the file decides alone
    const good = config(GOOD_CONFIG);
    const ok = await run(['check', '--config-only', '--config', good]);
    expect(ok, ok.stderr).to.deep.include({ code: EXIT.OK, stderr: '' });
    expect(ok.stdout).to.equal(`slurm-krsi: config ${good} is valid (profiles: default, gpu.v2, strict; default: default)\n`);
    const json = await run(['--json', 'check', '--config-only', '--config', good]);
    expect(json.code).to.equal(EXIT.OK);
    expect(JSON.parse(json.stdout)).to.deep.include({ ok: true, preflight: null });

    const bad = config(BAD_CONFIG);
    const no = await run(['check', '--config-only', '--config', bad]);
    expect(no.code).to.equal(EXIT.FAILED);
    expect(no.stdout).to.equal('');
    expect(no.stderr).to.include(`  - ${bad}:3: [agent] on_error: "maybe" is not one of fail | allow`);
    expect(no.stderr).to.include(`  - ${bad}:6: [profile default] fileperms:`);
    const badJson = JSON.parse((await run(['--json', 'check', '--config-only', '--config', bad])).stdout) as { ok: boolean; config: { problems: string[] } };
    expect(badJson.ok).to.equal(false);
    expect(badJson.config.problems[0]?.startsWith(`${bad}:3: [agent] on_error: `), badJson.config.problems[0]).to.equal(true);

    // a file that is not there is a failure here (the gate was pointed at the wrong file)
    const missing = await run(['check', '--config-only', '--config', join(dir, 'missing.ini')]);
    expect(missing.code).to.equal(EXIT.FAILED);
    expect(missing.stderr).to.include('cannot read the config file: no such file or directory (ENOENT)');
    expect((await run(['status', '--config-only'])).code).to.equal(EXIT.USAGE);
  });

  it('check --config-only as an executable: exit status 0 and 1', async () => {
    const good = await execa(process.execPath, ['--import', 'tsx/esm', KRSICTL, 'check', '--config-only', '--config', config(GOOD_CONFIG)], { reject: false, cwd: PACKAGE_ROOT });
    expect(good.exitCode, good.stderr).to.equal(0);
    const bad = await execa(process.execPath, ['--import', 'tsx/esm', KRSICTL, 'check', '--config-only', '--config', config(BAD_CONFIG)], { reject: false, cwd: PACKAGE_ROOT });
    expect(bad.exitCode).to.equal(1);
    expect(bad.stderr).to.match(/:3: \[agent\] on_error: /);
  });

  it('check with a missing config file says so', async () => {
    const r = await run(['check', '--config', join(dir, 'missing.ini')]);
    expect(r.code).to.equal(EXIT.FAILED);
    expect(r.stderr).to.include('cannot read the config file: no such file or directory (ENOENT)');
  });
});

(isRoot ? describe : describe.skip)('krsictl: against the agent socket', function () {
  this.timeout(60_000);
  let dir: string;
  let sock: string;
  let service: FakeService;
  let close: (() => Promise<void>) | null = null;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'krsictl-sock-'));
    chmodSync(dir, 0o755);
    sock = join(dir, 'agent.sock');
    service = new FakeService();
    const app = buildApp({ service, access: { writerUids: new Set([0]), readerGids: new Set(), slurmdUser: 'root' } });
    close = await listenUnix(app, sock, { mode: 0o666, uid: 0, gid: 0 });
    await service.addJob({ job_id: '101', uid: 1000, user: 'alice', comment: 'policy:strict' });
    await service.addJob({ job_id: '102_3', uid: 1001, user: 'bob\x1b[2J', comment: 'policy:nope' });
    await service.addJob({ job_id: '103', uid: 1002 });
    service.calls.length = 0;
  });
  afterEach(async () => {
    await close?.();
    close = null;
    rmSync(dir, { recursive: true, force: true });
  });

  it('status: key: value lines and the counters table per policy', async () => {
    const r = await run(['--socket', sock, 'status']);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/^version: +0\.1\.0$/m);
    expect(r.stdout).to.match(/^kernel: +6\.1\.0-test$/m);
    expect(r.stdout).to.match(/^jobs: +3$/m);
    expect(r.stdout).to.match(/^uids under policy: +1000, 1001, 1002$/m);
    expect(r.stdout).to.match(/^uptime: +1h 2m 5s \(since 2026-11-26T09:00:00\.000Z\)$/m);
    expect(r.stdout).to.match(/^slurm view: +ok at 2026-11-26T10:01:00\.000Z \(PrologFlags=Contain: yes; a reboot ends jobs: yes\)$/m);
    expect(r.stdout).to.match(/^unverified jobs: +-$/m);
    expect(r.stdout).to.match(/^events: +9 logged, 4 folded \(3 of them reported as repeats=\), 1 dropped$/m);
    expect(r.stdout).to.match(/^POLICY +DENY +AUDIT +FOLDED +DROPPED$/m);
    expect(r.stdout).to.match(/^fileperms +3 +7 +4 +0$/m);
    expect(r.stdout).to.match(/^skconnections +0 +2 +0 +1$/m);
    expect(r.stdout).to.include('warning: /etc/slurm-krsi/krsi.ini: [profile strict] suidexec_allow');
  });

  it('status: Slurm\'s view unreadable says why, and the jobs kept unverified are named', () => {
    const st = service.status();
    const text = formatStatus({
      ...st,
      reconcile: { ...st.reconcile, slurmView: 'unreadable', problem: '/usr/bin/scontrol listpids did not answer within 10000 ms', unverified: ['17', '18_2'] },
    });
    expect(text).to.match(/^slurm view: +unreadable at 2026-11-26T10:01:00\.000Z: \/usr\/bin\/scontrol listpids did not answer within 10000 ms$/m);
    expect(text).to.match(/^unverified jobs: +17, 18_2$/m);
  });

  it('status --json prints the raw JSON', async () => {
    const r = await run(['--json', '--socket', sock, 'status']);
    expect(JSON.parse(r.stdout)).to.deep.equal(JSON.parse(JSON.stringify(service.status())));
  });

  it('jobs: a table JOBID UID USER PROFILES REQUESTED CGROUP, control characters escaped', async () => {
    const r = await run(['jobs', '--socket', sock]);
    expect(r.code).to.equal(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).to.match(/^JOBID +UID +USER +PROFILES +REQUESTED +CGROUP$/);
    expect(lines[1]).to.match(/^101 +1000 +alice +default,strict +strict +bound \(cgroup 4242\)$/);
    expect(lines[2]).to.match(/^102_3 +1001 +bob\\x1b\[2J +default,strict +nope \(unknown: strictest applied\) +waiting$/);
    expect(lines[3]).to.match(/^103 +1002 +- +default +- +waiting$/);
    expect(r.stdout).not.to.include('\x1b');
    const json = await run(['jobs', '--json', '--socket', sock]);
    expect(JSON.parse(json.stdout).jobs).to.have.length(3);
  });

  it('events: the log lines; --since/--limit passed through; a hint when more follow', async () => {
    for (let i = 0; i < 5; i++) service.addEvent();
    const r = await run(['--socket', sock, 'events']);
    expect(r.code).to.equal(0);
    expect(r.stdout.trimEnd().split('\n')).to.deep.equal(service.eventLog.map((e) => e.line));
    const page = await run(['--socket', sock, 'events', '--since', '1', '--limit', '2']);
    expect(page.stdout.trimEnd().split('\n')).to.deep.equal([service.eventLog[1]!.line, service.eventLog[2]!.line]);
    expect(page.stderr).to.equal('krsictl: more events follow: krsictl events --since 3\n');
    const json = await run(['--socket', sock, '--json', 'events', '--limit', '1']);
    expect(JSON.parse(json.stdout)).to.deep.equal({ events: [service.eventLog[0]], next: 1, missed: 0 });
  });

  it('events --follow prints new events as they come and stops when signalled', async () => {
    service.addEvent();
    const controller = new AbortController();
    let stdout = '';
    const done = main(['--socket', sock, 'events', '--follow'], {
      stdout: (t) => {
        stdout += t;
      },
      stderr: () => undefined,
      signal: controller.signal,
      followIntervalMs: 50,
    });
    await new Promise((r) => setTimeout(r, 200));
    service.addEvent({ line: 'second line' });
    service.addEvent({ line: 'third line' });
    await new Promise((r) => setTimeout(r, 300));
    controller.abort();
    expect(await done).to.equal(0);
    expect(stdout.trimEnd().split('\n')).to.deep.equal([service.eventLog[0]!.line, 'second line', 'third line']);
  });

  it('profiles: a table of the modes per profile, the default marked', async () => {
    const r = await run(['--socket', sock, 'profiles']);
    expect(r.stdout).to.match(/^PROFILE +FILEPERMS +SUIDEXEC +SSHLISTENERS +SKCONNECTIONS +KILLTASKS$/m);
    expect(r.stdout).to.match(/^default \* +audit +off +off +off +off$/m);
    expect(r.stdout).to.match(/^strict +enforce +enforce +enforce +enforce +enforce$/m);
  });

  it('reload: ok, and a rejected config exits 1 with the problems', async () => {
    service.reloadResult = { configPath: '/etc/slurm-krsi/krsi.ini', warnings: ['w: something'], uidsUpdated: 2 };
    const ok = await run(['--socket', sock, 'reload']);
    expect(ok.code).to.equal(0);
    expect(ok.stdout).to.equal('reloaded /etc/slurm-krsi/krsi.ini: 2 uid(s) updated\nwarning: w: something\n');
    service.failWith.set('reload', new ConfigError('/etc/slurm-krsi/krsi.ini', [{ section: 'agent', key: 'on_error', message: 'bad', line: 4 }]));
    const bad = await run(['--socket', sock, 'reload']);
    expect(bad.code).to.equal(EXIT.FAILED);
    expect(bad.stderr).to.include('krsictl: config rejected');
    expect(bad.stderr).to.include('/etc/slurm-krsi/krsi.ini:4: [agent] on_error: bad');
    expect(bad.stderr).to.include('(KRSI_ERR_CONFIG)');
  });

  it('an error answer of the agent exits 1 with its message and code', async () => {
    service.failWith.set('status', new Error('kaputt'));
    const r = await run(['--socket', sock, 'status']);
    expect(r.code).to.equal(EXIT.FAILED);
    expect(r.stderr).to.equal('krsictl: internal error in krsi-agent; see the agent log (KRSI_ERR_INTERNAL)\n');
  });

  it('exit 3 with a clear message when no agent listens', async () => {
    const missing = join(dir, 'nothing.sock');
    const r = await run(['--socket', missing, 'status']);
    expect(r.code).to.equal(EXIT.UNREACHABLE);
    expect(r.stderr).to.equal(`krsictl: slurm-krsi agent is not running (no socket at ${missing})\n`);
  });

  it('the executable: exit 3 when no agent listens, 0 and output when it does', async () => {
    const missing = await execa(process.execPath, ['--import', 'tsx/esm', KRSICTL, '--socket', join(dir, 'x.sock'), 'jobs'], {
      cwd: PACKAGE_ROOT,
      reject: false,
    });
    expect(missing.exitCode).to.equal(3);
    expect(missing.stderr).to.include('krsictl: slurm-krsi agent is not running (no socket at');
    const ok = await execa(process.execPath, ['--import', 'tsx/esm', KRSICTL, '--socket', sock, 'jobs'], { cwd: PACKAGE_ROOT, reject: false });
    expect(ok.exitCode, ok.stderr).to.equal(0);
    expect(ok.stdout).to.match(/^JOBID/);
  });

  it('the executable as another uid: exit 4 and the 403 message', async () => {
    const r = await execa(
      'setpriv',
      ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--import', 'tsx/esm', KRSICTL, '--socket', sock, 'status'],
      { cwd: PACKAGE_ROOT, env: { HOME: '/tmp' }, reject: false },
    );
    expect(r.exitCode, r.stderr).to.equal(4);
    expect(r.stderr).to.equal(
      'krsictl: uid 65534 may not read the agent status: only root, the SlurmdUser (root) and admin_group members may (admin_group is not set in krsi.ini) (KRSI_ERR_FORBIDDEN)',
    );
  });

  it('the executable as an ordinary user: jobs and events show the caller\'s own only, by its credentials on the socket', async () => {
    service.addEvent({ uid: 1000, line: 'alice-event' });
    service.addEvent({ uid: 1001, line: 'bob-event' });
    service.addEvent({ uid: 1000, line: 'alice-again' });
    const as = (uid: number, args: string[]) => execa(
      'setpriv',
      [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', process.execPath, '--import', 'tsx/esm', KRSICTL, '--socket', sock, ...args],
      { cwd: PACKAGE_ROOT, env: { HOME: '/tmp' }, reject: false },
    );
    const jobs = await as(1000, ['jobs']);
    expect(jobs.exitCode, jobs.stderr).to.equal(0);
    expect(jobs.stdout.split('\n').slice(1).map((l) => l.split(/\s+/)[0])).to.deep.equal(['101']);
    const events = await as(1000, ['events']);
    expect(events.exitCode, events.stderr).to.equal(0);
    expect(events.stdout.split('\n')).to.deep.equal(['alice-event', 'alice-again']);
    const bob = await as(1001, ['--json', 'jobs']);
    expect((JSON.parse(bob.stdout) as { jobs: { jobId: string }[] }).jobs.map((j) => j.jobId)).to.deep.equal(['102_3']);
    const nobody = await as(65534, ['events']);
    expect([nobody.exitCode, nobody.stdout]).to.deep.equal([0, '']);
    // root sees every job
    const root = await run(['--socket', sock, 'jobs']);
    expect(root.stdout.trim().split('\n').slice(1).map((l) => l.split(/\s+/)[0])).to.deep.equal(['101', '102_3', '103']);
  });

  it('the executable: events --follow stops on SIGINT with exit 0', async () => {
    service.addEvent({ line: 'first' });
    const child = execa(process.execPath, ['--import', 'tsx/esm', KRSICTL, '--socket', sock, 'events', '--follow'], {
      cwd: PACKAGE_ROOT,
      reject: false,
    });
    let seen = '';
    await new Promise<void>((resolve) => {
      child.stdout?.on('data', (d: Buffer) => {
        seen += d.toString();
        if (seen.includes('first')) resolve();
      });
    });
    service.addEvent({ line: 'second' });
    await new Promise<void>((resolve) => {
      child.stdout?.on('data', () => {
        if (seen.includes('second')) resolve();
      });
    });
    child.kill('SIGINT');
    const r = await child;
    expect(r.exitCode).to.equal(0);
    expect(r.stdout.split('\n').filter(Boolean)).to.deep.equal(['first', 'second']);
  });
});
