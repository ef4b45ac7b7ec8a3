import { expect } from 'chai';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { ClientError } from '../../../agent/client/client.js';
import { JobFile } from '../../../agent/service/job-store.js';
import { HookInputError, MAX_COMMENT, callAgent, commentForAgent, hookSettings, jobFromEnv, leaveRemovalNote, registrationOnDisk } from '../../../agent/slurm/hook.js';
import { readRemovalNotes } from '../../../agent/slurm/notes.js';
import { profileFromComment } from '../../../agent/service/profile-choice.js';

describe('Slurm hook input', () => {
  it('reads the job from slurmd\'s environment', () => {
    expect(jobFromEnv({ SLURM_JOB_ID: '123_4', SLURM_JOB_UID: '1000', SLURM_JOB_USER: 'billy', SLURM_JOB_COMMENT: 'policy:strict', SLURMD_NODENAME: 'n1' }))
      .to.deep.equal({ jobId: '123_4', uid: 1000, user: 'billy', comment: 'policy:strict', node: 'n1' });
    expect(jobFromEnv({ SLURM_JOB_ID: '77+1', SLURM_JOB_UID: '0' }).comment).to.equal(undefined);
  });

  it('refuses what slurmd would never send, naming the variable', () => {
    for (const [env, name] of [
      [{ SLURM_JOB_UID: '1000' }, 'SLURM_JOB_ID'],
      [{ SLURM_JOB_ID: '../../etc/passwd', SLURM_JOB_UID: '1000' }, 'SLURM_JOB_ID'],
      [{ SLURM_JOB_ID: '1', SLURM_JOB_UID: '-1' }, 'SLURM_JOB_UID'],
      [{ SLURM_JOB_ID: '1', SLURM_JOB_UID: '4294967295' }, 'SLURM_JOB_UID'],
      [{ SLURM_JOB_ID: '1', SLURM_JOB_UID: '1000 ' }, 'SLURM_JOB_UID'],
    ] as const) {
      expect(() => jobFromEnv(env), JSON.stringify(env)).to.throw(HookInputError, name);
    }
  });

  it('cuts a huge comment down to its policy marks without changing the choice', () => {
    const huge = `${'x'.repeat(MAX_COMMENT * 3)} policy:strict ${'y'.repeat(100)}`;
    const sent = commentForAgent(huge)!;
    expect(sent.length).to.be.below(100);
    expect(profileFromComment(sent)).to.deep.equal(profileFromComment(huge));
    const twoNames = `${'x'.repeat(MAX_COMMENT)} policy:a policy:b`;
    expect(profileFromComment(commentForAgent(twoNames)).problem).to.match(/several/);
    expect(commentForAgent('short policy:strict')).to.equal('short policy:strict');
  });
});

describe('Slurm hook settings and notes', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'krsi-hook-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('an unreadable config: the defaults (on_error = fail) are used and the problem is named for the message', () => {
    const s = hookSettings(join(dir, 'missing.ini'));
    expect(s).to.deep.include({ onError: 'fail', socket: '/run/slurm-krsi/agent.sock', agentWait: 10, stateDir: '/var/lib/slurm-krsi' });
    expect(s.configProblems).to.have.length(1);
    expect(s.configProblems[0]).to.match(/missing\.ini: cannot read the config file \(ENOENT\)/);
  });

  it('reads socket, on_error, agent_wait and state dir from the config', () => {
    const path = join(dir, 'krsi.ini');
    writeFileSync(path, `[agent]\nsocket = /run/x.sock\non_error = allow\nagent_wait = 3\nstate_dir = ${dir}/state\n[profile default]\nfileperms = audit\n`);
    expect(hookSettings(path)).to.deep.equal({ socket: '/run/x.sock', onError: 'allow', agentWait: 3, stateDir: `${dir}/state`, configProblems: [] });
  });

  it('a config push with a typo elsewhere does not concern the hooks; a bad value of their own keys falls back to its default, named with its line', () => {
    const path = join(dir, 'krsi.ini');
    writeFileSync(path, '[agent]\non_error = alow\nsocket = /run/y.sock\ncolour = blue\n[profile default]\nfileperms = audti\n[profile]\n');
    const s = hookSettings(path);
    expect(s).to.deep.include({ socket: '/run/y.sock', onError: 'fail' });
    expect(s.configProblems).to.deep.equal([`${path}:2: [agent] on_error: "alow" is not one of fail | allow; the default "fail" is used`]);
  });

  it('leaves a removal note naming the job, its uid and the registration the job table holds', () => {
    const state = join(dir, 'state');
    new JobFile(state).save([{ jobId: '42_7', uid: 1000, user: null, requested: null, profiles: ['default'], unknownProfile: null, addedAt: 'x', registration: 'reg-1', bootId: 'b', node: null }]);
    const note = leaveRemovalNote(state, '42_7', 1000, { now: new Date('2026-11-30T10:00:00Z') });
    expect(note).to.equal(join(state, 'pending-removals', '42_7@reg-1'));
    expect(JSON.parse(readFileSync(note, 'utf8'))).to.deep.equal({ jobId: '42_7', uid: 1000, registration: 'reg-1', writtenAt: '2026-11-30T10:00:00.000Z' });
    // a job the table does not hold (the prolog never reached the agent): no registration, a unique name
    const other = leaveRemovalNote(state, '43', 1000);
    expect(other).to.match(/pending-removals\/43@unregistered-\d+-\d+$/);
    expect(readRemovalNotes(state).map((n) => [n.jobId, n.registration])).to.deep.equal([['42_7', 'reg-1'], ['43', null]]);
    // a note being written (renamed into place once whole) is not read: the agent would drop it as unreadable
    writeFileSync(join(state, 'pending-removals', '~44@reg-4'), '{"jobId":"44","ui');
    expect(readRemovalNotes(state).map((n) => n.jobId)).to.deep.equal(['42_7', '43']);
    expect(readdirSync(join(state, 'pending-removals')).filter((n) => n.startsWith('~') && n !== '~44@reg-4'), 'no partial file left by the epilog').to.deep.equal([]);
  });

  it('the registration an epilog ends is the one on disk as it starts: none, its own, or unknown when the table is unreadable', () => {
    const state = join(dir, 'state-start');
    expect(registrationOnDisk(state, '42', 1000), 'no table yet').to.equal(null);
    new JobFile(state).save([{ jobId: '42', uid: 1000, user: null, requested: null, profiles: ['default'], unknownProfile: null, addedAt: 'x', registration: 'reg-1', bootId: 'b', node: null }]);
    expect(registrationOnDisk(state, '42', 1000)).to.equal('reg-1');
    expect(registrationOnDisk(state, '42', 1001), 'the id held for another uid').to.equal(null);
    // the note of an epilog that could not reach the agent names what it saw as it started, not what is there now
    const note = leaveRemovalNote(state, '42', 1000, { registration: null });
    expect(JSON.parse(readFileSync(note, 'utf8')).registration).to.equal(null);
    writeFileSync(join(state, 'jobs.json'), '{ half written');
    expect(registrationOnDisk(state, '42', 1000)).to.equal(undefined);
  });
});

describe('Slurm hooks: the agent starting (agent_wait)', () => {
  let dir: string;
  let server: Server | undefined;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'krsi-wait-')); });
  afterEach(() => {
    server?.close();
    server = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  function listenLater(socket: string, ms: number): void {
    setTimeout(() => {
      server = createServer((_req, res) => res.writeHead(201, { 'content-type': 'application/json' }).end('{"ok":true}'));
      server.listen(socket);
    }, ms);
  }

  it('a socket that appears within agent_wait: the request goes through', async () => {
    const socket = join(dir, 'agent.sock');
    listenLater(socket, 600);
    const t0 = Date.now();
    const res = await callAgent({ socket, agentWait: 5 }, 'POST', '/v1/jobs', {});
    expect(res.status).to.equal(201);
    expect(Date.now() - t0).to.be.at.least(600);
  });

  it('a 503 (an agent stopping answers it while it closes) is tried again within agent_wait', async () => {
    const socket = join(dir, 'agent.sock');
    let answered = 0;
    server = createServer((_req, res) => {
      answered++;
      if (answered <= 3) res.writeHead(503, { connection: 'close' }).end();
      else res.writeHead(201, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
    server.listen(socket);
    const res = await callAgent({ socket, agentWait: 5 }, 'POST', '/v1/jobs', {});
    expect(res.status).to.equal(201);
    expect(answered, 'three 503s, then the answer').to.equal(4);
  });

  it('a connection reset before the answer (an agent stopping drops what it accepted) is tried again within agent_wait', async () => {
    const socket = join(dir, 'agent.sock');
    let accepted = 0;
    server = createServer((req, res) => {
      accepted++;
      if (accepted <= 2) req.socket.destroy();
      else res.writeHead(201, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
    server.listen(socket);
    const res = await callAgent({ socket, agentWait: 5 }, 'POST', '/v1/jobs', {});
    expect(res.status).to.equal(201);
    expect(accepted, 'two resets, then the answer').to.equal(3);
  });

  it('a 503 that lasts past agent_wait is the answer', async () => {
    const socket = join(dir, 'agent.sock');
    server = createServer((_req, res) => res.writeHead(503, { connection: 'close' }).end());
    server.listen(socket);
    const t0 = Date.now();
    const res = await callAgent({ socket, agentWait: 1 }, 'POST', '/v1/jobs', {});
    expect(res.status).to.equal(503);
    expect(Date.now() - t0).to.be.within(700, 3000);
  });

  it('a stale socket (nobody listening) is tried again too', async () => {
    const socket = join(dir, 'agent.sock');
    // a socket file nobody listens on (what a killed agent leaves): connect() answers ECONNREFUSED
    execFileSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', socket]);
    const err = await callAgent({ socket, agentWait: 1 }, 'GET', '/v1/status').catch((e: unknown) => e);
    expect(err).to.be.instanceOf(ClientError);
    expect((err as ClientError).message).to.match(/agent is not running .*nothing listens .*still after \d+ tries in [01]\.\d s \(agent_wait = 1\)/);
  });

  it('agent_wait = 0: one try, the plain cause', async () => {
    const err = await callAgent({ socket: join(dir, 'none.sock'), agentWait: 0 }, 'GET', '/v1/status').catch((e: unknown) => e);
    expect((err as ClientError).message).to.equal(`slurm-krsi agent is not running (no socket at ${join(dir, 'none.sock')})`);
  });

  it('gives up within the hooks\' deadline however long agent_wait is', async () => {
    const t0 = Date.now();
    const err = await callAgent({ socket: join(dir, 'none.sock'), agentWait: 25 }, 'GET', '/v1/status', undefined, 800).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(ClientError);
    expect(Date.now() - t0).to.be.below(1500);
  });
});
