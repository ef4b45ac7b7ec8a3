/**
 * The API on a real unix socket: SO_PEERCRED decides (this process is root; children run as nobody, and
 * as nobody with a supplementary admin group), and listenUnix's socket file handling.
 * Needs root (to play other uids and chown the socket); skipped otherwise.
 */
import { expect } from 'chai';
import { execa } from 'execa';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApp, type ApiLimits } from '../../../agent/api/app.js';
import { parseStatusGroups, peerCredOfSocket, supplementaryGroups } from '../../../agent/api/peercred.js';
import { DEFAULT_SOCKET_MODE, listenUnix, removeStaleSocket, SocketPathError } from '../../../agent/api/server.js';
import { ClientError, request } from '../../../agent/client/client.js';
import { PACKAGE_ROOT } from '../../../agent/paths.js';
import { FakeService } from './fake-service.js';

const CHILD = join(PACKAGE_ROOT, 'test', 'unit', 'api', 'child-client.ts');
const NOBODY = 65534;
const ADMIN_GID = 4242;
const isRoot = process.getuid?.() === 0;

/** run child-client.ts with setpriv as another uid (and groups) */
async function asUser(uid: number, gid: number, groups: number[], args: string[]): Promise<unknown> {
  const groupArgs = groups.length > 0 ? ['--groups', groups.join(',')] : ['--clear-groups'];
  const res = await execa(
    'setpriv',
    [`--reuid=${uid}`, `--regid=${gid}`, ...groupArgs, process.execPath, '--import', 'tsx/esm', CHILD, ...args],
    { cwd: PACKAGE_ROOT, env: { HOME: '/tmp' }, reject: false, timeout: 30_000 },
  );
  if (res.exitCode !== 0) throw new Error(`child failed (${res.exitCode}): ${res.stderr}`);
  return JSON.parse(res.stdout) as unknown;
}

describe('api: peer credentials', () => {
  it('parses the Groups: line of /proc/<pid>/status, checking the uid', () => {
    const status = 'Name:\tx\nUid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\nGroups:\t4 24 4242 \nNSpid:\t1\n';
    expect(parseStatusGroups(status)).to.deep.equal([4, 24, 4242]);
    expect(parseStatusGroups(status, 1000)).to.deep.equal([4, 24, 4242]);
    expect(parseStatusGroups(status, 1001)).to.deep.equal([]);
    expect(parseStatusGroups('Uid:\t0\t0\t0\t0\nGroups:\t\n', 0)).to.deep.equal([]);
    expect(parseStatusGroups('no groups line')).to.deep.equal([]);
  });

  it('reads the groups of a live process and [] for a missing one', () => {
    const mine = readFileSync('/proc/self/status', 'utf8');
    expect(supplementaryGroups(process.pid)).to.deep.equal(parseStatusGroups(mine));
    expect(supplementaryGroups(0)).to.deep.equal([]);
    expect(supplementaryGroups(2 ** 31 - 1)).to.deep.equal([]);
  });
});

(isRoot ? describe : describe.skip)('api: on a real unix socket (root)', function () {
  this.timeout(60_000);
  let dir: string;
  let sock: string;
  let service: FakeService;
  let close: (() => Promise<void>) | null = null;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'krsi-api-'));
    chmodSync(dir, 0o755); // nobody must reach the socket
    sock = join(dir, 'run', 'agent.sock');
    service = new FakeService();
  });
  afterEach(async () => {
    await close?.();
    close = null;
    rmSync(dir, { recursive: true, force: true });
  });

  async function start(opts: { mode?: number; gid?: number; limits?: Partial<ApiLimits> } = {}): Promise<void> {
    const app = buildApp({
      service,
      access: { writerUids: new Set([0]), readerGids: new Set([ADMIN_GID]), slurmdUser: 'root', adminGroup: 'hpcadmin' },
      ...(opts.limits !== undefined ? { limits: opts.limits } : {}),
    });
    close = await listenUnix(app, sock, { mode: opts.mode ?? DEFAULT_SOCKET_MODE, uid: 0, gid: opts.gid ?? 0 });
  }

  it('creates the parent directory 0755 and the socket with the requested mode and owner', async () => {
    await start();
    expect(statSync(join(dir, 'run')).mode & 0o777).to.equal(0o755);
    const st = statSync(sock);
    expect(st.isSocket()).to.equal(true);
    expect(st.mode & 0o777).to.equal(0o666);
    expect([st.uid, st.gid]).to.deep.equal([0, 0]);
    await close?.();
    close = null;
    expect(existsSync(sock), 'close removes the socket').to.equal(false);

    await start({ mode: 0o660, gid: ADMIN_GID });
    const st2 = statSync(sock);
    expect(st2.mode & 0o777).to.equal(0o660);
    expect(st2.gid).to.equal(ADMIN_GID);
  });

  it('root (this process) is a writer: SO_PEERCRED reads uid 0', async () => {
    await start();
    const res = await request(sock, 'POST', '/v1/jobs', { job_id: '42', uid: 1000, comment: 'policy:strict' }, { timeoutMs: 5000 });
    expect(res.status).to.equal(201);
    expect((await request(sock, 'GET', '/v1/jobs/42')).status).to.equal(200);
    expect((await request(sock, 'DELETE', '/v1/jobs/42')).body).to.deep.equal({ removed: true, uidPolicy: null });
  });

  it('peerCredOfSocket reads pid, uid and gid of the peer', async () => {
    const { createServer } = await import('node:net');
    const seen: unknown[] = [];
    mkdirSync(join(dir, 'run'));
    const server = createServer((s) => {
      seen.push(peerCredOfSocket(s));
      seen.push(peerCredOfSocket(s)); // cached: the same object
      s.end();
    });
    await new Promise<void>((r) => server.listen(sock, r));
    await new Promise<void>((r) => createConnection(sock).on('close', () => r()).resume());
    await new Promise<void>((r) => server.close(() => r()));
    expect(seen[0]).to.deep.include({ pid: process.pid, uid: 0, gid: process.getgid?.() });
    expect(seen[1]).to.equal(seen[0]);
  });

  it('another uid (nobody) gets 403 with the message: SO_PEERCRED really decides', async () => {
    await start();
    const post = (await asUser(NOBODY, NOBODY, [], [sock, 'POST', '/v1/jobs', '{"job_id":"1","uid":65534}'])) as {
      status: number;
      body: { error: { code: string; message: string } };
    };
    expect(post.status).to.equal(403);
    expect(post.body.error).to.deep.equal({
      code: 'KRSI_ERR_FORBIDDEN',
      message: 'uid 65534 may not add jobs: only root and the SlurmdUser (root) may; admin_group (hpcadmin) members may read',
    });
    const get = (await asUser(NOBODY, NOBODY, [], [sock, 'GET', '/v1/status'])) as { status: number };
    expect(get.status).to.equal(403);
    expect(service.calls).to.have.length(0);
  });

  it('nobody with admin_group as a supplementary group may read but not write', async () => {
    await start();
    const get = (await asUser(NOBODY, NOBODY, [ADMIN_GID], [sock, 'GET', '/v1/status'])) as { status: number; body: { version: string } };
    expect(get.status).to.equal(200);
    expect(get.body.version).to.equal('0.1.0');
    const reload = (await asUser(NOBODY, NOBODY, [ADMIN_GID], [sock, 'POST', '/v1/reload'])) as { status: number };
    expect(reload.status).to.equal(403);
  });

  it('a 0660 socket refuses other users at connect time (EACCES, reported as unreachable/EACCES)', async () => {
    await start({ mode: 0o660 });
    const res = (await asUser(NOBODY, NOBODY, [], [sock, 'GET', '/v1/status'])) as { error: { kind: string; errno: string; message: string } };
    expect(res.error.kind).to.equal('unreachable');
    expect(res.error.errno).to.equal('EACCES');
    expect(res.error.message).to.include(`permission denied connecting to the slurm-krsi agent at ${sock}`);
  });

  it('caps open connections per unprivileged uid', async () => {
    await start({ limits: { connectionsPerUid: 2 } });
    // nobody holds 2 idle connections (the cap), then asks 5 times, one request after the other
    const steps = (await asUser(NOBODY, NOBODY, [], [sock, '--hold', '2', '--probes', '5'])) as {
      probed: ({ status: number } | { error: { kind: string; errno: string | null } })[];
      heldOpen: number;
      afterClose: { status: number } | { error: unknown };
      tries: number;
    };
    expect(steps.heldOpen, 'the held connections stayed open while the probes ran').to.equal(2);
    for (const p of steps.probed) {
      expect(p, 'a connection over the cap is closed on accept, not answered').to.have.property('error');
      expect((p as { error: { kind: string } }).error.kind, 'closed at once, not left hanging').to.not.equal('timeout');
    }
    // the count goes down again when connections close: a request is answered (403: nobody may not read)
    expect(steps.afterClose, `after the held connections closed (${steps.tries} tries)`).to.deep.include({ status: 403 });
    // and root is never capped: with 3 idle connections of its own open, its request is answered
    const idle = await Promise.all(Array.from({ length: 3 }, () => new Promise<Socket>((resolve, reject) => {
      const c = createConnection(sock).once('connect', () => resolve(c)).once('error', reject);
    })));
    try {
      expect((await request(sock, 'GET', '/v1/status')).status).to.equal(200);
    } finally {
      for (const c of idle) c.destroy();
    }
  });

  it('replaces a stale socket file', async () => {
    mkdirSync(join(dir, 'run'));
    await execa('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', sock]);
    expect(statSync(sock).isSocket()).to.equal(true);
    try {
      await request(sock, 'GET', '/v1/status');
      expect.fail('a stale socket must refuse connections');
    } catch (err) {
      expect(err).to.be.instanceOf(ClientError);
      expect((err as ClientError).errno).to.equal('ECONNREFUSED');
    }
    await start();
    expect((await request(sock, 'GET', '/v1/status')).status).to.equal(200);
  });

  it('refuses to delete a regular file at the socket path, with a clear error', async () => {
    mkdirSync(join(dir, 'run'));
    writeFileSync(sock, 'precious');
    try {
      await start();
      expect.fail('listenUnix must refuse');
    } catch (err) {
      expect(err).to.be.instanceOf(SocketPathError);
      expect((err as Error).message).to.equal(
        `slurm-krsi: refusing to listen on ${sock}: it is a regular file, not a stale socket; remove it by hand if it is not needed`,
      );
    }
    expect(readFileSync(sock, 'utf8')).to.equal('precious');
    mkdirSync(join(dir, 'adir'));
    expect(() => removeStaleSocket(join(dir, 'adir'))).to.throw(SocketPathError, 'a directory');
  });
});
