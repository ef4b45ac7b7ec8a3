#!/usr/bin/env node
/**
 * krsi-agent: the per-node daemon of slurm-krsi. Runs as root in the foreground (systemd supervises it).
 *
 *   krsi-agent [--config PATH]
 *
 * Start: config, the single-instance lock, preflight, attach this build's programs or adopt the pinned ones,
 * protect its own pid, resume the job table, protect the listed daemons, detach another build's programs (an
 * upgrade), log the events recorded meanwhile, apply the epilogs' removal notes, serve the control socket
 * and metrics, tell systemd it is ready (Type=notify), then reconcile with the jobs Slurm runs here.
 * SIGTERM/SIGINT: stop serving; programs, maps and job entries stay pinned and enforcing.
 * SIGHUP (only init may send it: killtasks) and POST /v1/reload: re-read the config; a bad one is
 * rejected and the running one stays.
 *
 * Options, signals, files and exit statuses: ./manual/agent.ts, which is both --help and krsi-agent(8).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { getPriority, release, setPriority } from 'node:os';
import { join } from 'node:path';
import { buildApp, type AccessPolicy } from './api/app.js';
import { DEFAULT_SOCKET_MODE, listenUnix } from './api/server.js';
import { ConfigError, DEFAULT_CONFIG_PATH, loadConfig, type KrsiConfig } from './config/config.js';
import { Enforcer } from './enforcement/enforcer.js';
import { oomScoreProblem, preflight, preflightMessage } from './enforcement/preflight.js';
import { BootClock } from './events/clock.js';
import { EventPipeline } from './events/pipeline.js';
import { JournalSocket, stdoutIsJournal } from './log/journal.js';
import { createLogger, type Logger } from './log/logger.js';
import { AGENT_MANUAL, AGENT_EXIT } from './manual/agent.js';
import { renderText } from './manual/manual.js';
import { createMetrics } from './metrics/metrics.js';
import { startMetricsServer } from './metrics/server.js';
import { OBJECTS, PACKAGE_ROOT } from './paths.js';
import { KrsiAgent } from './service/agent.js';
import { accountGid, accountUid } from './service/accounts.js';
import { IdentityCache } from './service/compile.js';
import { DaemonProtector } from './service/daemons.js';
import { JobFile } from './service/job-store.js';
import { AlreadyRunning, takeInstanceLock } from './service/lock.js';
import { NodeJobCgroups } from './slurm/job-cgroups.js';
import { NodeSlurmView } from './slurm/view.js';
import { notifySystemd, reportStartupPhase } from './systemd/notify.js';

const EXIT = AGENT_EXIT;

/**
 * The agent's CPU priority. Every prolog waits on it, and prologs start while the node's CPUs are busy
 * with other jobs (and dozens of prologs may start at once, each a Node.js process): at nice 0 the
 * agent got 1/65 of the CPU and prologs timed out behind its queue. Jobs and prologs run at nice 0.
 */
export const AGENT_NICE = -10;

/** renice every thread of this process (Linux priorities are per thread; later threads inherit) */
function raisePriority(log: Logger): void {
  try {
    // under systemd the unit's Nice= has done it before exec, for every thread (the unit does not grant
    // CAP_SYS_NICE, which a change of our own would need)
    for (const tid of readdirSync('/proc/self/task')) if (getPriority(Number(tid)) > AGENT_NICE) setPriority(Number(tid), AGENT_NICE);
  } catch (err) {
    log.warn('cannot raise the agent\'s CPU priority: prologs may wait longer on a busy node', { nice: AGENT_NICE, error: (err as Error).message });
  }
}

function usage(message?: string): never {
  if (message) process.stderr.write(`krsi-agent: ${message}\n`);
  process.stderr.write('usage: krsi-agent [--config PATH] (krsi-agent --help)\n');
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
    } else if (arg === '--help' || arg === '-h') {
      process.stdout.write(renderText(AGENT_MANUAL));
      process.exit(0);
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

/**
 * The journal for the events, when stdout is journald's stream (under systemd): they go there with their
 * fields (journalctl KRSI_JOB=1234) instead of as lines on stdout. null otherwise, or when journald's socket
 * cannot be reached: the lines go to stdout then, as without systemd.
 */
function openJournal(log: Logger): JournalSocket | null {
  if (!stdoutIsJournal()) return null;
  const journal = new JournalSocket();
  try {
    journal.open();
    return journal;
  } catch (err) {
    log.warn('events go to stdout without their journal fields', { error: (err as Error).message });
    return null;
  }
}

/** how often the wall clock's offset to the boot clock is read again (event times after an NTP step) */
const CLOCK_REFRESH_MS = 10_000;

/** who may write and read over the socket, from the config's accounts (getent, bounded in time) */
async function resolveAccess(config: KrsiConfig, access: AccessPolicy, log: Logger): Promise<void> {
  const { adminGroup, slurmdUser } = config.agent;
  const [adminGid, slurmdUid] = await Promise.all([
    adminGroup ? accountGid(adminGroup).catch((err: Error) => (log.warn('cannot resolve admin_group', { group: adminGroup, error: err.message }), null)) : null,
    accountUid(slurmdUser).catch((err: Error) => (log.warn('cannot resolve slurmd_user', { user: slurmdUser, error: err.message }), null)),
  ]);
  if (adminGroup && adminGid === null) log.warn('admin_group does not resolve: nobody but writers may read', { group: adminGroup });
  if (slurmdUid === null) log.warn('slurmd_user does not resolve: only root may add and remove jobs', { user: slurmdUser });
  // the sets are the app's own: replaced in place, so that a reload changes who may do what at once
  access.writerUids.clear();
  for (const uid of [0, ...(slurmdUid === null ? [] : [slurmdUid])]) access.writerUids.add(uid);
  access.readerGids.clear();
  if (adminGid !== null) access.readerGids.add(adminGid);
  access.slurmdUser = slurmdUser;
  access.adminGroup = adminGroup;
}

async function main(): Promise<void> {
  const { configPath } = parseArgs(process.argv.slice(2));
  const log = createLogger();

  let config: KrsiConfig;
  try {
    config = loadConfig(configPath);
  } catch (err) {
    process.stderr.write(`krsi-agent: ${(err as Error).message}\n`);
    process.exit(err instanceof ConfigError ? EXIT.config : EXIT.runtime);
  }

  // before anything is touched: a second agent must leave the socket, the maps and the protection alone
  try {
    takeInstanceLock(config.agent.stateDir);
  } catch (err) {
    process.stderr.write(`krsi-agent: ${(err as Error).message}\n`);
    process.exit(err instanceof AlreadyRunning ? EXIT.running : EXIT.runtime);
  }
  for (const w of config.warnings) log.warn(w);

  const oom = oomScoreProblem();
  if (oom !== null) {
    process.stderr.write(`krsi-agent: ${oom}\n`);
    process.exit(EXIT.preflight);
  }
  const check = preflight({ probeObjectPath: OBJECTS.preflight, bpffsPath: '/sys/fs/bpf' });
  if (!check.ok) {
    process.stderr.write(`${preflightMessage(check)}\n`);
    process.exit(EXIT.preflight);
  }

  raisePriority(log);
  const phase = (what: string): void => reportStartupPhase(what, (m) => log.warn(m));
  phase('verifying, attaching and pinning the BPF programs');
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
  const journal = openJournal(log);
  const metricsHolder: { observeApply?: (s: number) => void } = {};
  const access: AccessPolicy = { writerUids: new Set([0]), readerGids: new Set() };
  const agent = new KrsiAgent({
    config,
    store: new JobFile(config.agent.stateDir),
    kernel: enforcer,
    kernelStatus: enforcer,
    identities: new IdentityCache(OBJECTS.identity, log.child('identity')),
    slurm: new NodeSlurmView(),
    jobCgroups: new NodeJobCgroups(log.child('cgroups')),
    log: log.child('jobs'),
    version: version(),
    lsm: check.lsm,
    makePipeline: (jobOf) =>
      new EventPipeline({
        clock,
        jobOf,
        windowSize: config.agent.eventsWindow,
        logPath: config.agent.eventLog,
        journal,
        onLogFileError: (err) => log.error(`cannot write the event log file; events still go to ${journal ? 'the journal' : 'stdout'}`, { file: agent.currentConfig.agent.eventLog, error: err.message }),
        onBadRecord: (err) => log.error('a ring-buffer record cannot be read: skipped (krsi_events_malformed_total)', { error: err.message }),
      }),
    onApply: (s) => metricsHolder.observeApply?.(s),
    onReload: (next) => resolveAccess(next, access, log.child('access')),
  });
  phase('writing the job table\'s policies into the kernel');
  await agent.start();
  // this generation now holds every uid's policy; with the daemons' protection it holds all a previous
  // build's held, and only then may that build's programs go (Enforcer.retirePrevious)
  const daemons = new DaemonProtector(enforcer, () => agent.currentConfig.agent.protectDaemons, log.child('killtasks'));
  daemons.start();
  if (enforcer.previous.length > 0) phase('retiring the programs of another build');
  for (const r of await enforcer.retirePrevious((raw) => agent.pipeline.handle(raw))) {
    const from = r.buildId ?? '0.1.0 (no build id)';
    if (r.error !== undefined) {
      log.error('cannot remove the programs of another build: they stay attached beside this build\'s (krsictl status)', { from, to: enforcer.buildId, error: r.error });
    } else if (r.events === null) {
      log.warn('upgraded from another build: its event records have another layout and were not read', { from, to: enforcer.buildId, detached: r.detached });
    } else {
      log.info('upgraded from another build', { from, to: enforcer.buildId, detached: r.detached, events: r.events });
    }
  }
  enforcer.subscribeRecords((raw) => agent.pipeline.handle(raw), {
    // under a flood, let events gather for a moment so that one wakeup carries many (latency: +5 ms)
    batchDelayMs: 5,
    onError: (err) => log.error('event stream failed', { error: (err as Error).message }),
  });
  // events recorded while no agent ran belong to the jobs of the table as it was: log them before the
  // epilogs' removal notes and the reconciliation change it
  phase('logging the events recorded while no agent ran');
  enforcer.drainEvents();
  const backlog = agent.pipeline.loggedCount();
  if (backlog > 0) log.info('logged events recorded while the agent was down', { events: backlog });
  await agent.applyRemovalNotes();

  const metrics = createMetrics(
    {
      kernelCounters: () => enforcer.counters(),
      logged: (policy, decision) => agent.pipeline.loggedCount(policy, decision),
      repeatsLogged: (policy) => agent.pipeline.repeatsLogged(policy),
      jobs: () => agent.listJobs().length,
      uidsUnderPolicy: () => enforcer.uidPolicies().size,
      programsAttached: () => enforcer.pinned().filter((p) => p.startsWith('links/')).length,
      programsExpected: () => enforcer.programs.length,
      reconciled: (reason) => agent.reconciledCount(reason),
      slurmViewUnreadable: () => agent.reconcileStatus.slurmView === 'unreadable',
      jobsUnverified: () => agent.reconcileStatus.unverified.length,
      slurmctldUnanswered: () => agent.reconcileStatus.controllerProblem !== null,
      malformedRecords: () => agent.pipeline.malformedCount(),
      programStats: () => enforcer.programStats(),
      lastReloadSucceeded: () => agent.lastReloadSucceeded,
      journalUnsent: () => journal?.unsent() ?? 0,
    },
    { version: version(), buildId: enforcer.buildId, kernel: release() },
  );
  metricsHolder.observeApply = metrics.observeApply;
  const listen = config.agent.metricsListen;
  const metricsServer = listen
    ? startMetricsServer({
      listen, allowed: () => agent.currentConfig.agent.metricsAllow, render: () => metrics.registry.metrics(),
      contentType: metrics.registry.contentType, log: log.child('metrics'), onRefused: metrics.observeRefusal('metrics'),
    })
    : null;

  const timers: NodeJS.Timeout[] = [];
  const every = (ms: number, fn: () => void): void => {
    const t = setInterval(fn, ms);
    t.unref();
    timers.push(t);
  };
  every(30_000, () => void agent.applyRemovalNotes());
  every(CLOCK_REFRESH_MS, () => {
    const stepNs = clock.refresh();
    if (stepNs !== 0n) log.info('wall clock stepped: event times follow it', { stepMs: Number(stepNs / 1_000_000n) });
  });
  // reconcile_interval is live: each round schedules the next with the interval then in force
  // (0: only at start; looked at again every minute in case a reload turns it on)
  let reconcileTimer: NodeJS.Timeout | undefined;
  let stopping = false;
  const reconcileRound = (): Promise<void> => agent.reconcile().catch((err: Error) => log.error('reconciliation failed', { error: err.message }));
  const scheduleReconcile = (): void => {
    if (stopping) return;
    const seconds = agent.currentConfig.agent.reconcileInterval;
    reconcileTimer = setTimeout(() => {
      void (seconds === 0 ? Promise.resolve() : reconcileRound()).finally(scheduleReconcile);
    }, (seconds === 0 ? 60 : seconds) * 1000);
    reconcileTimer.unref();
  };

  phase('opening the control socket');
  await resolveAccess(config, access, log.child('access'));
  const app = buildApp({ service: agent, access, onRefused: metrics.observeRefusal('socket') });
  const closeSocket = await listenUnix(app, config.agent.socket, { mode: DEFAULT_SOCKET_MODE, uid: 0, gid: 0 });
  log.info('krsi-agent serving', {
    socket: config.agent.socket, pid: process.pid, build: enforcer.buildId, programs: enforcer.programs.length, adopted: enforcer.adopted,
    jobs: agent.listJobs().length,
  });
  // only now: the socket listens and this build's programs enforce every job (slurmd waits for this)
  notifySystemd(`READY=1\nSTATUS=enforcing, build ${enforcer.buildId}, ${agent.listJobs().length} jobs`);
  // The first round (jobs of an earlier boot, ghosts past the grace) once the socket serves: reading
  // Slurm's view may take scontrol's whole timeout, and prologs must not wait for it. A prolog that comes
  // first makes a registration of this boot, which the round never removes.
  void reconcileRound().finally(scheduleReconcile);

  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log.info('stopping: programs, maps and job entries stay pinned and enforcing', { signal });
    try {
      notifySystemd('STOPPING=1');
    } catch (err) {
      log.warn((err as Error).message);
    }
    daemons.stop();
    for (const t of timers) clearInterval(t);
    clearTimeout(reconcileTimer);
    await closeSocket();
    metricsServer?.close();
    await agent.stop();
    journal?.close();
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
