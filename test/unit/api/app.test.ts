import { expect } from 'chai';
import type { FastifyInstance, FastifyRequest, InjectOptions, LightMyRequestResponse } from 'fastify';
import { buildApp, denial, toApiError } from '../../../agent/api/app.js';
import type { PeerCred } from '../../../agent/api/peercred.js';
import { ConfigError } from '../../../agent/config/config.js';
import { ERR, KrsiError, type JobRequest } from '../../../agent/service/types.js';
import { accessPolicy, ADMIN, ADMIN_PRIMARY, FakeService, ROOT, SLURM, USER } from './fake-service.js';

/** inject tests have no unix socket: the caller is chosen by a test-only header */
const CALLERS: Record<string, PeerCred> = { root: ROOT, slurm: SLURM, user: USER, admin: ADMIN, adminp: ADMIN_PRIMARY };
function testCredentials(req: FastifyRequest): PeerCred | null {
  const who = req.headers['x-test-caller'];
  if (who === 'nobody') return null;
  if (who === 'throws') throw new Error('boom');
  return CALLERS[typeof who === 'string' ? who : 'root'] ?? null;
}

describe('api: routes (app.inject)', () => {
  let service: FakeService;
  let app: FastifyInstance;

  beforeEach(async () => {
    service = new FakeService();
    app = buildApp({ service, access: accessPolicy(), credentials: testCredentials });
    await app.ready();
  });
  afterEach(async () => {
    await app.close();
  });

  function call(opts: InjectOptions & { as?: string }): Promise<LightMyRequestResponse> {
    const { as = 'root', ...rest } = opts;
    return app.inject({ ...rest, headers: { ...(rest.headers ?? {}), 'x-test-caller': as } });
  }

  function addJob(payload: unknown, as = 'root'): Promise<LightMyRequestResponse> {
    return call({ method: 'POST', url: '/v1/jobs', payload: payload as Record<string, unknown>, as });
  }

  function expectError(res: LightMyRequestResponse, status: number, code: string, ...fragments: string[]): void {
    expect(res.statusCode, res.body).to.equal(status);
    const body = res.json() as { error: { code: string; message: string } };
    expect(body.error.code).to.equal(code);
    for (const f of fragments) expect(body.error.message).to.include(f);
    expect(res.body).not.to.match(/\bat .*\.(ts|js):\d+/); // no stack
  }

  describe('api: POST /v1/jobs', () => {
    it('adds a job: 201 with the AddJobResult, then 200 created:false on a repeat (idempotent passthrough)', async () => {
      const req: JobRequest = { job_id: '123', uid: 1000, user: 'alice', comment: 'run policy:strict', node: 'node-17.cluster' };
      const first = await addJob(req);
      expect(first.statusCode).to.equal(201);
      const body = first.json();
      expect(body.created).to.equal(true);
      expect(body.job).to.deep.equal({
        jobId: '123',
        uid: 1000,
        user: 'alice',
        requested: 'strict',
        profiles: ['default', 'strict'],
        unknownProfile: null,
        addedAt: '2026-11-26T10:00:00.000Z',
        registration: 'registration-1',
        bootId: 'boot-1',
        node: 'node-17.cluster',
      });
      expect(body.jobPolicy.modes.killtasks).to.equal('enforce');
      expect(body.uidPolicy.connectRules).to.deep.equal([{ cidr: '192.0.2.0/24', verdict: 'deny' }]);
      expect(body.uidPolicy.suidexecAllow).to.deep.equal(['/usr/bin/passwd']);

      const again = await addJob(req, 'slurm');
      expect(again.statusCode).to.equal(200);
      expect(again.json().created).to.equal(false);
      expect(service.calls.filter((c) => c.method === 'addJob')).to.have.length(2);
    });

    it('accepts array and het job ids and the full uid range', async () => {
      for (const [jobId, uid] of [['123_4', 0], ['123+0', 4294967294], ['a.b-c', 65534]] as const) {
        const res = await addJob({ job_id: jobId, uid });
        expect(res.statusCode, res.body).to.equal(201);
      }
    });

    it('passes a hostile comment through to the service byte for byte', async () => {
      const comment = 'line1\nline2 "quoted" \'single\' $(reboot) `id` ; rm -rf / && policy:strict \\ \u0000 \u00e9\u{1f600}';
      const res = await addJob({ job_id: '7', uid: 1000, comment });
      expect(res.statusCode).to.equal(201);
      const got = service.calls.find((c) => c.method === 'addJob')?.args[0] as JobRequest;
      expect(got.comment).to.equal(comment);
      expect(Buffer.from(got.comment ?? '', 'utf8').equals(Buffer.from(comment, 'utf8'))).to.equal(true);
    });

    const badBodies: [string, unknown, string][] = [
      ['job_id with shell metacharacters', { job_id: '1;rm -rf /', uid: 1 }, 'job_id'],
      ['job_id with a slash', { job_id: '../etc', uid: 1 }, 'job_id'],
      ['empty job_id', { job_id: '', uid: 1 }, 'job_id'],
      ['job_id over 64 characters', { job_id: '1'.repeat(65), uid: 1 }, 'job_id'],
      ['numeric job_id', { job_id: 123, uid: 1 }, 'job_id'],
      ['missing job_id', { uid: 1 }, 'job_id'],
      ['missing uid', { job_id: '1' }, 'uid'],
      ['uid -1', { job_id: '1', uid: -1 }, 'uid'],
      ['uid 4294967295', { job_id: '1', uid: 4294967295 }, 'uid'],
      ['uid "abc"', { job_id: '1', uid: 'abc' }, 'uid'],
      ['uid "1000" (no type coercion)', { job_id: '1', uid: '1000' }, 'uid'],
      ['uid 1.5', { job_id: '1', uid: 1.5 }, 'uid'],
      ['comment null', { job_id: '1', uid: 1, comment: null }, 'comment'],
      ['comment over 8192 characters', { job_id: '1', uid: 1, comment: 'x'.repeat(8193) }, 'comment'],
      ['user over 256 characters', { job_id: '1', uid: 1, user: 'x'.repeat(257) }, 'user'],
      ['profile over 64 characters', { job_id: '1', uid: 1, profile: 'x'.repeat(65) }, 'profile'],
      ['node with a shell metacharacter', { job_id: '1', uid: 1, node: 'n1;reboot' }, 'node'],
      ['node starting with a dash (an option to scontrol)', { job_id: '1', uid: 1, node: '-n1' }, 'node'],
      ['node empty', { job_id: '1', uid: 1, node: '' }, 'node'],
      ['an extra property', { job_id: '1', uid: 1, admin: true }, 'additional properties'],
      ['an array body', [{ job_id: '1', uid: 1 }], 'body must be object'],
    ];
    for (const [what, payload, field] of badBodies) {
      it(`400 KRSI_ERR_BAD_REQUEST naming the field: ${what}`, async () => {
        const res = await addJob(payload);
        expectError(res, 400, ERR.BAD_REQUEST, field);
        expect(service.calls).to.have.length(0);
      });
    }

    it('a __proto__ key is refused, not merged', async () => {
      const res = await call({
        method: 'POST',
        url: '/v1/jobs',
        headers: { 'content-type': 'application/json' },
        payload: '{"job_id":"1","uid":1,"__proto__":{"admin":true}}',
      });
      expectError(res, 400, ERR.BAD_REQUEST);
      expect(service.calls).to.have.length(0);
    });

    it('413 KRSI_ERR_PAYLOAD_TOO_LARGE for a body over the limit (64 KiB by default)', async () => {
      const res = await addJob({ job_id: '1', uid: 1, comment: 'x'.repeat(70 * 1024) });
      expectError(res, 413, ERR.PAYLOAD_TOO_LARGE);
    });

    it('honours a smaller bodyLimit', async () => {
      const small = buildApp({ service, access: accessPolicy(), credentials: () => ROOT, bodyLimit: 100 });
      const res = await small.inject({ method: 'POST', url: '/v1/jobs', payload: { job_id: '1', uid: 1, comment: 'x'.repeat(200) } });
      expectError(res, 413, ERR.PAYLOAD_TOO_LARGE);
      await small.close();
    });

    it('400 for malformed JSON and for an empty JSON body', async () => {
      for (const payload of ['{"job_id": "1", uid: 1', '']) {
        const res = await call({ method: 'POST', url: '/v1/jobs', headers: { 'content-type': 'application/json' }, payload });
        expectError(res, 400, ERR.BAD_REQUEST, 'invalid request');
      }
    });

    it('415 for a content type other than JSON; 400 for a text/plain body', async () => {
      const form = await call({
        method: 'POST',
        url: '/v1/jobs',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: 'job_id=1&uid=1',
      });
      expectError(form, 415, 'KRSI_ERR_UNSUPPORTED_MEDIA_TYPE', 'application/json');
      const text = await call({ method: 'POST', url: '/v1/jobs', headers: { 'content-type': 'text/plain' }, payload: 'hello' });
      expectError(text, 400, ERR.BAD_REQUEST, 'body must be object');
    });

    it('a KrsiError from the service keeps its status and code', async () => {
      service.failWith.set('addJob', new KrsiError(ERR.ENFORCEMENT, 503, 'cannot write the policy of uid 1000: map full'));
      const res = await addJob({ job_id: '1', uid: 1000 });
      expectError(res, 503, ERR.ENFORCEMENT, 'map full');
    });

    it('any other error is a 500 KRSI_ERR_INTERNAL without the message or stack', async () => {
      service.failWith.set('addJob', new Error('secret internal detail at /opt/x.js:12'));
      const res = await addJob({ job_id: '1', uid: 1000 });
      expectError(res, 500, ERR.INTERNAL, 'see the agent log');
      expect(res.body).not.to.include('secret');
      service.failWith.set('addJob', 'a thrown string');
      expectError(await addJob({ job_id: '2', uid: 1000 }), 500, ERR.INTERNAL);
    });
  });

  describe('api: DELETE /v1/jobs/:job_id', () => {
    it('removes a known job; an unknown job is 200 removed:false', async () => {
      await addJob({ job_id: '123+0', uid: 1000 });
      const res = await call({ method: 'DELETE', url: '/v1/jobs/123+0' });
      expect(res.statusCode).to.equal(200);
      expect(res.json()).to.deep.equal({ removed: true, uidPolicy: null });
      await addJob({ job_id: '124_7', uid: 1000 });
      const encoded = await call({ method: 'DELETE', url: `/v1/jobs/${encodeURIComponent('124_7')}` });
      expect(encoded.json().removed).to.equal(true);
      const again = await call({ method: 'DELETE', url: `/v1/jobs/${encodeURIComponent('123+0')}`, as: 'slurm' });
      expect(again.statusCode).to.equal(200);
      expect(again.json()).to.deep.equal({ removed: false, uidPolicy: null });
    });

    it('?registration= passes the epilog\'s registration on (none: null); anything else is 400', async () => {
      await addJob({ job_id: '5', uid: 1000 });
      const later = await call({ method: 'DELETE', url: '/v1/jobs/5?registration=none' });
      expect(later.statusCode).to.equal(200);
      expect(later.json()).to.deep.include({ removed: false, laterRun: true });
      const other = await call({ method: 'DELETE', url: '/v1/jobs/5?registration=0b0e7a52-8c4b-4c1e-9d6f-6c1f3a2b9e01' });
      expect(other.json()).to.deep.include({ removed: false, laterRun: true });
      expect(service.calls.filter((c) => c.method === 'removeJob').map((c) => c.args)).to.deep.equal([
        ['5', null], ['5', '0b0e7a52-8c4b-4c1e-9d6f-6c1f3a2b9e01'],
      ]);
      for (const bad of ['?registration=x%3Bid', '?registration=', '?other=1']) {
        const res = await call({ method: 'DELETE', url: `/v1/jobs/5${bad}` });
        expectError(res, 400, ERR.BAD_REQUEST, bad === '?other=1' ? 'querystring' : 'registration');
      }
    });

    it('returns the remaining uid policy while the uid has other jobs', async () => {
      await addJob({ job_id: '1', uid: 1000 });
      await addJob({ job_id: '2', uid: 1000 });
      const res = await call({ method: 'DELETE', url: '/v1/jobs/1' });
      expect(res.json().uidPolicy.modes.fileperms).to.equal('audit');
    });

    it('400 for a hostile job id in the path', async () => {
      for (const url of ['/v1/jobs/1%3Brm%20-rf%20%2F', '/v1/jobs/..%2F..%2Fetc', `/v1/jobs/${'9'.repeat(65)}`]) {
        const res = await call({ method: 'DELETE', url });
        expectError(res, 400, ERR.BAD_REQUEST, 'job_id');
      }
      const badEncoding = await call({ method: 'DELETE', url: '/v1/jobs/%zz' });
      expect(badEncoding.statusCode).to.equal(400);
      expect(service.calls).to.have.length(0);
    });
  });

  describe('api: read routes', () => {
    it('GET /v1/jobs lists the jobs', async () => {
      expect((await call({ method: 'GET', url: '/v1/jobs' })).json()).to.deep.equal({ jobs: [] });
      await addJob({ job_id: '5', uid: 1000, comment: 'policy:nosuch' });
      const body = (await call({ method: 'GET', url: '/v1/jobs' })).json();
      expect(body.jobs).to.have.length(1);
      expect(body.jobs[0]).to.include({ jobId: '5', requested: 'nosuch', unknownProfile: 'nosuch', user: null });
    });

    it('GET /v1/jobs/:job_id returns the record, or 404 KRSI_ERR_NOT_FOUND naming the job', async () => {
      await addJob({ job_id: '9', uid: 1000 });
      const ok = await call({ method: 'GET', url: '/v1/jobs/9' });
      expect(ok.statusCode).to.equal(200);
      expect(ok.json()).to.include({ jobId: '9', uid: 1000 });
      expectError(await call({ method: 'GET', url: '/v1/jobs/10' }), 404, ERR.NOT_FOUND, 'no job 10');
    });

    it('GET /v1/status returns the whole AgentStatus', async () => {
      const res = await call({ method: 'GET', url: '/v1/status' });
      expect(res.statusCode).to.equal(200);
      expect(res.json()).to.deep.equal(JSON.parse(JSON.stringify(service.status())));
    });

    it('GET /v1/events passes since and limit (defaults 0 and 100) and returns the page', async () => {
      service.addEvent();
      service.addEvent({ decision: 'audit' });
      service.addEvent();
      const all = await call({ method: 'GET', url: '/v1/events' });
      expect(all.statusCode).to.equal(200);
      expect(all.json().events).to.have.length(3);
      expect(all.json().events[0]).to.deep.equal(service.eventLog[0]);
      const page = await call({ method: 'GET', url: '/v1/events?since=1&limit=1' });
      expect(page.json()).to.deep.include({ next: 2, missed: 0 });
      const args = service.calls.filter((c) => c.method === 'events').map((c) => c.args);
      expect(args).to.deep.equal([
        [0, 100],
        [1, 1],
      ]);
    });

    it('GET /v1/events refuses bad since/limit with 400 naming the parameter', async () => {
      const bad: [string, string][] = [
        ['since=-1', 'since'],
        ['since=abc', 'since'],
        ['limit=0', 'limit'],
        ['limit=10001', 'limit'],
        ['limit=1.5', 'limit'],
        ['other=1', 'additional'],
      ];
      for (const [q, field] of bad) expectError(await call({ method: 'GET', url: `/v1/events?${q}` }), 400, ERR.BAD_REQUEST, field);
      expect((await call({ method: 'GET', url: '/v1/events?limit=10000' })).statusCode).to.equal(200);
    });

    it('GET /v1/profiles returns the profiles', async () => {
      const body = (await call({ method: 'GET', url: '/v1/profiles' })).json();
      expect(body.profiles.map((p: { name: string }) => p.name)).to.deep.equal(['default', 'strict']);
      expect(body.profiles[1].policy.connectRules).to.have.length(1);
    });
  });

  describe('api: POST /v1/reload', () => {
    it('returns the ReloadResult', async () => {
      service.reloadResult = { configPath: '/etc/x.ini', warnings: ['w1'], uidsUpdated: 3 };
      const res = await call({ method: 'POST', url: '/v1/reload' });
      expect(res.statusCode).to.equal(200);
      expect(res.json()).to.deep.equal({ configPath: '/etc/x.ini', warnings: ['w1'], uidsUpdated: 3 });
    });

    it('the agent\'s own rejection (a KrsiError with details) reaches the client with its problems and details', async () => {
      const problems = ['/etc/slurm-krsi/krsi.ini:7: [profile strict] fileperms: "enforc" is not one of off | audit | enforce'];
      service.failWith.set('reload', new KrsiError(ERR.CONFIG, 422, `reload rejected, the running configuration stays in force:\n${problems[0]}`, { problems }));
      const res = await call({ method: 'POST', url: '/v1/reload' });
      expect(res.statusCode).to.equal(422);
      expect(res.json().problems).to.deep.equal(problems);
      expect(res.json().error.details).to.deep.equal({ problems });
      expect(res.json().error.message).to.include(':7: [profile strict] fileperms');
    });

    it('a ConfigError is 422 KRSI_ERR_CONFIG with the problems in the message and as a list', async () => {
      service.failWith.set(
        'reload',
        new ConfigError('/etc/slurm-krsi/krsi.ini', [
          { section: 'profile strict', key: 'connect_deny', message: 'invalid CIDR "10.0.0.0/33"', line: 12 },
          { section: 'agent', key: 'on_error', message: 'must be fail or allow', line: 3 },
        ]),
      );
      const res = await call({ method: 'POST', url: '/v1/reload' });
      expectError(res, 422, ERR.CONFIG, '[profile strict] connect_deny: invalid CIDR', '[agent] on_error');
      expect(res.json().problems).to.deep.equal([
        '/etc/slurm-krsi/krsi.ini:12: [profile strict] connect_deny: invalid CIDR "10.0.0.0/33"',
        '/etc/slurm-krsi/krsi.ini:3: [agent] on_error: must be fail or allow',
      ]);
    });
  });

  describe('api: access control', () => {
    const writes: [string, InjectOptions][] = [
      ['POST /v1/jobs', { method: 'POST', url: '/v1/jobs', payload: { job_id: '1', uid: 1000 } }],
      ['DELETE /v1/jobs/1', { method: 'DELETE', url: '/v1/jobs/1' }],
      ['POST /v1/reload', { method: 'POST', url: '/v1/reload' }],
    ];
    const adminReads: [string, InjectOptions][] = [
      ['GET /v1/status', { method: 'GET', url: '/v1/status' }],
      ['GET /v1/profiles', { method: 'GET', url: '/v1/profiles' }],
    ];
    const reads: [string, InjectOptions][] = [
      ['GET /v1/jobs', { method: 'GET', url: '/v1/jobs' }],
      ['GET /v1/jobs/1', { method: 'GET', url: '/v1/jobs/1' }],
      ['GET /v1/events', { method: 'GET', url: '/v1/events' }],
      ...adminReads,
    ];

    it('an unprivileged uid gets 403 on every write, naming its uid and who may', async () => {
      for (const [what, opts] of writes) {
        const res = await call({ ...opts, as: 'user' });
        expectError(res, 403, ERR.FORBIDDEN, 'uid 1000 may not', 'only root and the SlurmdUser (slurm) may', 'admin_group (hpcadmin) members may read');
        expect(res.json().error.message, what).to.match(/may not (add jobs|remove jobs|reload the config)/);
      }
      expect(service.calls).to.have.length(0);
    });

    it('the message matches the documented wording', async () => {
      const res = await call({ ...writes[0]![1], as: 'user' });
      expect(res.json().error.message).to.equal(
        'uid 1000 may not add jobs: only root and the SlurmdUser (slurm) may; admin_group (hpcadmin) members may read',
      );
    });

    it('an unprivileged uid gets 403 on the admins\' reads (status, profiles)', async () => {
      for (const [, opts] of adminReads) {
        expectError(await call({ ...opts, as: 'user' }), 403, ERR.FORBIDDEN, 'uid 1000 may not', 'admin_group (hpcadmin)');
      }
      expect(service.calls).to.have.length(0);
    });

    it('an unprivileged uid sees its own jobs and events only; another uid\'s job is as unknown as a missing one', async () => {
      await addJob({ job_id: '10', uid: USER.uid });
      await addJob({ job_id: '11', uid: 2000 });
      service.addEvent({ uid: USER.uid });
      service.addEvent({ uid: 2000 });
      service.addEvent({ uid: USER.uid, decision: 'audit' });
      const jobs = await call({ method: 'GET', url: '/v1/jobs', as: 'user' });
      expect(jobs.statusCode).to.equal(200);
      expect(jobs.json().jobs.map((j: { jobId: string }) => j.jobId)).to.deep.equal(['10']);
      // the user's view is of the same records as an admin's: with the job's cgroup binding
      const bound = { state: 'bound', cgroupId: '4242', detail: null };
      expect(jobs.json().jobs[0].binding).to.deep.equal(bound);
      expect((await call({ method: 'GET', url: '/v1/jobs/10', as: 'user' })).json()).to.deep.include({ jobId: '10', uid: USER.uid, binding: bound });
      const theirs = await call({ method: 'GET', url: '/v1/jobs/11', as: 'user' });
      const missing = await call({ method: 'GET', url: '/v1/jobs/12', as: 'user' });
      expectError(theirs, 404, ERR.NOT_FOUND, 'no job 11 on this node');
      expect(missing.statusCode).to.equal(404);
      const events = await call({ method: 'GET', url: '/v1/events', as: 'user' });
      expect(events.json().events.map((e: { seq: number; uid: number }) => [e.seq, e.uid])).to.deep.equal([[1, USER.uid], [3, USER.uid]]);
      // the uid comes from the credentials, for users; readers get everything
      expect(service.calls.filter((c) => c.method === 'events').map((c) => c.args)).to.deep.equal([[0, 100, USER.uid]]);
      for (const as of ['root', 'admin']) {
        expect((await call({ method: 'GET', url: '/v1/jobs', as })).json().jobs, as).to.have.length(2);
        expect((await call({ method: 'GET', url: '/v1/jobs/11', as })).statusCode, as).to.equal(200);
        expect((await call({ method: 'GET', url: '/v1/events', as })).json().events, as).to.have.length(3);
      }
    });

    it('admin_group members (supplementary or primary) may read but not write', async () => {
      for (const as of ['admin', 'adminp']) {
        for (const [what, opts] of reads) {
          const res = await call({ ...opts, as });
          expect(res.statusCode, `${as} ${what}`).to.be.oneOf([200, 404]);
        }
        for (const [, opts] of writes) expectError(await call({ ...opts, as }), 403, ERR.FORBIDDEN, 'may not');
      }
    });

    it('root and the SlurmdUser may write', async () => {
      for (const as of ['root', 'slurm']) {
        for (const [what, opts] of writes) expect((await call({ ...opts, as })).statusCode, `${as} ${what}`).to.be.oneOf([200, 201]);
      }
    });

    it('uid 0 is a writer even when writerUids forgets it', async () => {
      const a = buildApp({ service, access: { writerUids: new Set(), readerGids: new Set() }, credentials: () => ROOT });
      expect((await a.inject({ method: 'POST', url: '/v1/reload' })).statusCode).to.equal(200);
      await a.close();
    });

    it('unknown credentials, or a credential source that throws, are 403', async () => {
      for (const as of ['nobody', 'throws']) {
        expectError(await call({ method: 'GET', url: '/v1/status', as }), 403, ERR.FORBIDDEN, 'credentials could not be read');
        expectError(await call({ method: 'GET', url: '/v1/jobs', as }), 403, ERR.FORBIDDEN, 'credentials could not be read');
        expectError(await call({ method: 'GET', url: '/v1/events', as }), 403, ERR.FORBIDDEN, 'credentials could not be read');
        expectError(await call({ method: 'POST', url: '/v1/reload', as }), 403, ERR.FORBIDDEN);
      }
    });

    it('403 comes before body parsing: an unprivileged oversize or malformed body is still 403', async () => {
      const big = await call({ method: 'POST', url: '/v1/jobs', payload: { job_id: '1', uid: 1, comment: 'x'.repeat(100_000) }, as: 'user' });
      expectError(big, 403, ERR.FORBIDDEN);
      const bad = await call({ method: 'POST', url: '/v1/jobs', headers: { 'content-type': 'application/json' }, payload: '{', as: 'user' });
      expectError(bad, 403, ERR.FORBIDDEN);
    });

    it('without admin_group, the read denial says so', () => {
      const msg = denial({ writerUids: new Set([0]), readerGids: new Set(), slurmdUser: 'root' }, USER, 'read', 'list jobs');
      expect(msg).to.equal('uid 1000 may not list jobs: only root, the SlurmdUser (root) and admin_group members may (admin_group is not set in krsi.ini)');
    });
  });

  describe('api: unknown routes and methods', () => {
    it('404 KRSI_ERR_NOT_FOUND', async () => {
      expectError(await call({ method: 'GET', url: '/v2/status' }), 404, ERR.NOT_FOUND, 'GET /v2/status');
      expectError(await call({ method: 'PUT', url: '/v1/jobs' }), 404, ERR.NOT_FOUND);
      expectError(await call({ method: 'GET', url: '/' }), 404, ERR.NOT_FOUND);
    });
  });

  describe('api: toApiError', () => {
    it('maps a foreign KrsiError-shaped error by name and code', () => {
      const e = Object.assign(new Error('x'), { name: 'KrsiError', code: 'KRSI_ERR_UNKNOWN_PROFILE', statusCode: 409 });
      expect(toApiError(e)).to.deep.include({ status: 409, internal: false });
    });
    it('does not trust a KrsiError-looking error with a bad status', () => {
      const e = Object.assign(new Error('x'), { name: 'KrsiError', code: 'KRSI_ERR_X', statusCode: 200 });
      expect(toApiError(e).status).to.equal(500);
    });
  });
});
