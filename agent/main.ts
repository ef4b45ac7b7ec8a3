#!/usr/bin/env node
/**
 * krsi-agent: the per-node daemon of slurm-krsi. Runs as root in the foreground (systemd supervises it).
 *
 *   krsi-agent [--config PATH]
 *
 * Start: preflight, config, attach the programs or adopt the pinned ones, resume the job table,
 * protect its own pid, then serve the control socket and the metrics endpoint.
 * SIGTERM/SIGINT: stop serving; programs, maps and job entries stay pinned and enforcing.
 * SIGHUP (only init may send it: killtasks) and POST /v1/reload: re-read the config; a bad one is
 * rejected and the running one stays.
 *
 * Exit status: 0 clean stop, 1 config error, 2 usage, 3 this node cannot enforce (preflight, or an
 * oom_score_adj above -1000), 4 runtime failure.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { release, setPriority } from 'node:os';
import { join } from 'node:path';
import { buildApp } from './api/app.js';
import { DEFAULT_SOCKET_MODE, listenUnix } from './api/server.js';
import { ConfigError, DEFAULT_CONFIG_PATH, loadConfig, type KrsiConfig } from './config/config.js';
import { Enforcer } from './enforcement/enforcer.js';
import { oomScoreProblem, preflight, preflightMessage } from './enforcement/preflight.js';
import { BootClock } from './events/clock.js';
import { EventPipeline } from './events/pipeline.js';
import { createLogger, type Logger } from './log/logger.js';
import { createMetrics } from './metrics/metrics.js';
import { OBJECTS, PACKAGE_ROOT } from './paths.js';
import { KrsiAgent } from './service/agent.js';
import { DaemonProtector } from './service/daemons.js';
import { accountGid, accountUid } from './service/accounts.js';

const EXIT = { config: 1, usage: 2, preflight: 3, runtime: 4 } as const;

/**
 * The agent's CPU priority. Every prolog waits on it, and prologs start while the node's CPUs are busy
 * with other jobs (and dozens of prologs may start at once, each a Node.js process): at nice 0 the
 * agent got 1/65 of the CPU and prologs timed out behind its queue. Jobs and prologs run at nice 0.
 */
export const AGENT_NICE = -10;

/** renice every thread of this process (Linux priorities are per thread; later threads inherit) */
function raisePriority(log: Logger): void {
  try {
    for (const tid of readdirSync('/proc/self/task')) setPriority(Number(tid), AGENT_NICE);
  } catch (err) {
    log.warn('cannot raise the agent\'s CPU priority: prologs may wait longer on a busy node', { nice: AGENT_NICE, error: (err as Error).message });
  }
}

function usage(message?: string): never {
  if (message) process.stderr.write(`krsi-agent: ${message}\n`);
  process.stderr.write('usage: krsi-agent [--config PATH]\n');
  process.exit(EXIT.usage);
}

function parseArgs(argv: string[]): { configPath: string } {
  let configPath = DEFAULT_CONFIG_PATH;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--config') {
      configPath = argv[++i] ?? usage('--config needs a path');
    } else if (arg?.startsWith('--config=')) {
      configPath = arg.slice('--config='.length);
    } else if (arg === '--version') {
      process.stdout.write(`${version()}\n`);
      process.exit(0);
    } else {
      usage(`unknown argument ${JSON.stringify(arg)}`);
    }
  }
  return { configPath };
}

function version(): string {
  return (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
}

function startMetrics(config: KrsiConfig, registry: ReturnType<typeof createMetrics>['registry'], log: Logger): Server | null {
  const listen = config.agent.metricsListen;
  if (!listen) return null;
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: GET /metrics\n');
      return;
    }
    registry
      .metrics()
      .then((body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body))
      .catch((err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`));
  });
  server.on('error', (err) => log.error('metrics endpoint failed', { listen: `${listen.host}:${listen.port}`, error: err.message }));
  server.listen(listen.port, listen.host, () => log.info('metrics endpoint listening', { listen: `${listen.host}:${listen.port}` }));
  return server;
}

async function main(): Promise<void> {
  const { configPath } = parseArgs(process.argv.slice(2));
  const log = createLogger();

  const oom = oomScoreProblem();
  if (oom !== null) {
    process.stderr.write(`krsi-agent: ${oom}\n`);
    process.exit(EXIT.preflight);
  }

  let config: KrsiConfig;
  try {
    config = loadConfig(configPath);
  } catch (err) {
    process.stderr.write(`krsi-agent: ${(err as Error).message}\n`);
    process.exit(err instanceof ConfigError ? EXIT.config : EXIT.runtime);
  }
  for (const w of config.warnings) log.warn(w);

  const check = preflight({ probeObjectPath: OBJECTS.preflight, bpffsPath: '/sys/fs/bpf' });
  if (!check.ok) {
    process.stderr.write(`${preflightMessage(check)}\n`);
    process.exit(EXIT.preflight);
  }

  raisePriority(log);
  const enforcer = Enforcer.open({
    objectPath: OBJECTS.enforcement,
    pinDir: config.agent.pinDir,
    ringBufferBytes: config.agent.ringBufferBytes,
    log: (msg) => log.info(msg, { component: 'enforcement' }),
  });
  // from here on only this process and init may open the pinned objects or change its limits and scheduling
  enforcer.registerAgent();
  enforcer.protect(process.pid, 'all', 'enforce');
  for (const [pid, p] of enforcer.protectedPids()) {
    if (pid !== process.pid && p.scope === 'all') enforcer.unprotect(pid); // a previous agent's entry
  }

  const clock = new BootClock();
  const metricsHolder: { observeApply?: (s: number) => void } = {};
  const agent = new KrsiAgent({
    config,
    enforcer,
    identityObject: OBJECTS.identity,
    log: log.child('jobs'),
    version: version(),
    lsm: check.lsm,
    makePipeline: (jobOf) =>
      new EventPipeline({
        clock,
        jobOf,
        windowSize: config.agent.eventsWindow,
        logPath: config.agent.eventLog,
        onLogFileError: (err) => log.error('cannot write the event log file; events still go to stdout', { file: config.agent.eventLog, error: err.message }),
      }),
    onApply: (s) => metricsHolder.observeApply?.(s),
  });
  await agent.start();
  enforcer.subscribeRecords((raw) => agent.pipeline.handle(raw), {
    // under a flood, let events gather for a moment so that one wakeup carries many (latency: +5 ms)
    batchDelayMs: 5,
    onError: (err) => log.error('event stream failed', { error: (err as Error).message }),
  });
  // events recorded while no agent ran belong to the jobs of the table as it was: log them before the
  // epilogs' removal notes change it
  enforcer.drainEvents();
  const backlog = agent.pipeline.loggedCount();
  if (backlog > 0) log.info('logged events recorded while the agent was down', { events: backlog });
  await agent.applyRemovalNotes();

  const metrics = createMetrics(
    {
      kernelCounters: () => enforcer.counters(),
      logged: (policy, decision) => agent.pipeline.loggedCount(policy, decision),
      jobs: () => agent.listJobs().length,
      uidsUnderPolicy: () => enforcer.uidPolicies().size,
      programsAttached: () => enforcer.pinned().filter((p) => p.startsWith('links/')).length,
      programStats: () => enforcer.programStats(),
    },
    { version: version(), kernel: release() },
  );
  metricsHolder.observeApply = metrics.observeApply;
  const metricsServer = startMetrics(config, metrics.registry, log.child('metrics'));

  const notes = setInterval(() => void agent.applyRemovalNotes().catch((err: Error) => log.error('epilog notes failed', { error: err.message })), 30_000);
  notes.unref();

  const daemons = new DaemonProtector(enforcer, () => agent.currentConfig.agent.protectDaemons, log.child('killtasks'));
  daemons.start();

  const adminGid = config.agent.adminGroup ? accountGid(config.agent.adminGroup) : null;
  if (config.agent.adminGroup && adminGid === null) log.warn('admin_group does not exist: nobody but writers may read', { group: config.agent.adminGroup });
  const slurmdUid = accountUid(config.agent.slurmdUser);
  if (slurmdUid === null) log.warn('slurmd_user does not exist: only root may add and remove jobs', { user: config.agent.slurmdUser });
  const app = buildApp({
    service: agent,
    access: {
      writerUids: new Set([0, ...(slurmdUid === null ? [] : [slurmdUid])]),
      readerGids: new Set(adminGid === null ? [] : [adminGid]),
      slurmdUser: config.agent.slurmdUser,
      ...(config.agent.adminGroup ? { adminGroup: config.agent.adminGroup } : {}),
    },
  });
  const closeSocket = await listenUnix(app, config.agent.socket, { mode: DEFAULT_SOCKET_MODE, uid: 0, gid: 0 });
  log.info('krsi-agent serving', {
    socket: config.agent.socket, pid: process.pid, programs: enforcer.programs.length, adopted: enforcer.adopted, jobs: agent.listJobs().length,
  });

  let stopping = false;
  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log.info('stopping: programs, maps and job entries stay pinned and enforcing', { signal });
    daemons.stop();
    clearInterval(notes);
    await closeSocket();
    metricsServer?.close();
    await agent.stop();
    enforcer.unprotect(process.pid);
    enforcer.unregisterAgent();
    await enforcer.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGHUP', () => {
    agent.reload().catch((err: Error) => log.error('reload on SIGHUP failed', { error: err.message }));
  });
}

process.on('uncaughtException', (err) => {
  process.stderr.write(`krsi-agent: fatal: ${err.stack ?? err.message}\n`);
  process.exit(EXIT.runtime);
});

main().catch((err: Error) => {
  process.stderr.write(`krsi-agent: ${err.message}\n`);
  process.exit(EXIT.runtime);
});
