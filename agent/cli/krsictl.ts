#!/usr/bin/env node
/**
 * krsictl: the admin CLI of slurm-krsi. Its commands, options and exit statuses are in
 * ../manual/krsictl.ts, which is both `krsictl --help` and krsictl(8).
 * main() is exported so that tests can run it in-process; the file runs main() when executed.
 */
import { existsSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ConfigError, DEFAULT_CONFIG_PATH, loadConfig, profileNames, type KrsiConfig } from '../config/config.js';
import { apiError, ClientError, DEFAULT_SOCKET, request, type Method } from '../client/client.js';
import type { AgentStatus, EventsPage, JobView, ProfileView, ReloadResult } from '../service/types.js';
import { COMMANDS, EXIT, KRSICTL_MANUAL, type CommandOption } from '../manual/krsictl.js';
import { renderText } from '../manual/manual.js';
import { formatJobs, formatProfiles, formatReload, formatStatus, luaProfileTable, safe } from './format.js';

export const USAGE = renderText(KRSICTL_MANUAL);
export { EXIT };

export interface MainOptions {
  stdout?: (text: string) => void;
  stderr?: (text: string) => void;
  /** stops `events --follow` (the CLI wires SIGINT to it) */
  signal?: AbortSignal;
  /** per-request timeout, default 10 s */
  timeoutMs?: number;
  /** poll interval of events --follow, default 1000 ms */
  followIntervalMs?: number;
}

class UsageError extends Error {}

/** a failure already explained: print `message` (if any) and exit with `code` */
class Exit extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

const COMMAND_OPTIONS: ReadonlyMap<string, readonly CommandOption[]> = new Map(COMMANDS.map((c) => [c.name, c.options]));

function parseIntOption(value: string | undefined, name: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[0-9]+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new UsageError(`--${name} must be an integer from ${min} to ${max}, not ${JSON.stringify(value)}`);
  }
  return Number(value);
}

function socketFromConfig(configPath: string | undefined): string {
  try {
    return loadConfig(configPath ?? DEFAULT_CONFIG_PATH).agent.socket;
  } catch {
    return DEFAULT_SOCKET;
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve();
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Run krsictl with `argv` (without node and the script); resolves with the exit status. */
export async function main(argv: string[], opts: MainOptions = {}): Promise<number> {
  const out = opts.stdout ?? ((t: string) => void process.stdout.write(t));
  const err = opts.stderr ?? ((t: string) => void process.stderr.write(t));
  const println = (t: string): void => out(`${t}\n`);
  const complain = (t: string): void => err(`${t.split('\n').map((l, i) => (i === 0 ? `krsictl: ${l}` : l)).join('\n')}\n`);

  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        socket: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        since: { type: 'string' },
        limit: { type: 'string' },
        follow: { type: 'boolean', short: 'f' },
        lua: { type: 'boolean' },
        config: { type: 'string' },
        'config-only': { type: 'boolean' },
      },
    });
  } catch (e) {
    complain(`${e instanceof Error ? e.message : String(e)}\nusage: krsictl [--socket PATH] [--json] COMMAND (krsictl --help)`);
    return EXIT.USAGE;
  }
  const { values, positionals } = parsed;
  if (values.help === true || positionals[0] === 'help') {
    out(USAGE);
    return EXIT.OK;
  }

  try {
    const [command, ...extra] = positionals;
    if (command === undefined) throw new UsageError('no command given');
    const allowed = COMMAND_OPTIONS.get(command);
    if (allowed === undefined) throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    if (extra.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])} after ${command}`);
    for (const name of ['since', 'limit', 'follow', 'lua', 'config', 'config-only'] as const) {
      if (values[name] !== undefined && !allowed.includes(name)) throw new UsageError(`--${name} does not apply to ${command}`);
    }
    if (values.lua === true && values.json === true) throw new UsageError('--lua and --json exclude each other');
    if (values.lua === true && values.socket !== undefined) throw new UsageError('profiles --lua reads the config file, not the agent: drop --socket');

    const json = values.json === true;
    if (command === 'check') {
      const printerr = (t: string): void => err(`${t}\n`);
      if (values['config-only'] === true) return checkConfig(values.config ?? DEFAULT_CONFIG_PATH, json, println, complain);
      return await check(values.config, json, println, printerr, complain);
    }
    if (command === 'profiles' && values.lua === true) return luaProfiles(values.config, println, complain);

    const socket = values.socket ?? socketFromConfig(values.config);
    const call = async <T>(method: Method, path: string): Promise<T> => {
      let res;
      try {
        res = await request(socket, method, path, undefined, opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {});
      } catch (e) {
        if (!(e instanceof ClientError)) throw e;
        const permission = e.errno === 'EACCES' || e.errno === 'EPERM';
        throw new Exit(e.kind === 'protocol' ? EXIT.FAILED : permission ? EXIT.FORBIDDEN : EXIT.UNREACHABLE, e.message);
      }
      if (res.status >= 200 && res.status < 300) return res.body as T;
      const apiErr = apiError(res.body);
      const message = apiErr ? `${apiErr.message} (${apiErr.code})` : `the agent answered HTTP ${res.status}`;
      throw new Exit(res.status === 403 ? EXIT.FORBIDDEN : EXIT.FAILED, message);
    };

    switch (command) {
      case 'status': {
        const st = await call<AgentStatus>('GET', '/v1/status');
        println(json ? JSON.stringify(st, null, 2) : formatStatus(st));
        return EXIT.OK;
      }
      case 'jobs': {
        const body = await call<{ jobs: JobView[] }>('GET', '/v1/jobs');
        println(json ? JSON.stringify(body, null, 2) : formatJobs(body.jobs));
        return EXIT.OK;
      }
      case 'profiles': {
        const body = await call<{ profiles: ProfileView[] }>('GET', '/v1/profiles');
        println(json ? JSON.stringify(body, null, 2) : formatProfiles(body.profiles));
        return EXIT.OK;
      }
      case 'reload': {
        const body = await call<ReloadResult>('POST', '/v1/reload');
        println(json ? JSON.stringify(body, null, 2) : formatReload(body));
        return EXIT.OK;
      }
      case 'events': {
        const since = parseIntOption(values.since, 'since', 0, Number.MAX_SAFE_INTEGER) ?? 0;
        const limit = parseIntOption(values.limit, 'limit', 1, 10_000) ?? 100;
        return await events(call, { since, limit, follow: values.follow === true, json }, opts, println, complain);
      }
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      complain(`${e.message}\nusage: krsictl [--socket PATH] [--json] COMMAND (krsictl --help)`);
      return EXIT.USAGE;
    }
    if (e instanceof Exit) {
      complain(e.message);
      return e.code;
    }
    complain(`unexpected error: ${e instanceof Error ? e.message : String(e)}`);
    return EXIT.FAILED;
  }
}

async function events(
  call: <T>(method: Method, path: string) => Promise<T>,
  args: { since: number; limit: number; follow: boolean; json: boolean },
  opts: MainOptions,
  println: (t: string) => void,
  complain: (t: string) => void,
): Promise<number> {
  let since = args.since;
  for (;;) {
    const page = await call<EventsPage>('GET', `/v1/events?since=${since}&limit=${args.limit}`);
    if (page.missed > 0) complain(`${page.missed} event(s) were older than the agent's window and are gone`);
    if (args.json && !args.follow) {
      println(JSON.stringify(page, null, 2));
    } else {
      for (const ev of page.events) println(args.json ? JSON.stringify(ev) : safe(ev.line));
    }
    if (!args.follow) {
      if (page.events.length >= args.limit) complain(`more events follow: krsictl events --since ${page.next}`);
      return EXIT.OK;
    }
    since = page.next;
    if (opts.signal?.aborted) return EXIT.OK;
    if (page.events.length < args.limit) await sleep(opts.followIntervalMs ?? 1000, opts.signal);
    if (opts.signal?.aborted) return EXIT.OK;
  }
}

function readConfig(path: string | undefined, complain: (t: string) => void): KrsiConfig | null {
  try {
    return loadConfig(path ?? DEFAULT_CONFIG_PATH);
  } catch (e) {
    if (e instanceof ConfigError) {
      complain(`invalid config:\n${e.problems.map((p) => `  ${p}`).join('\n')}`);
      return null;
    }
    throw e;
  }
}

function luaProfiles(configPath: string | undefined, println: (t: string) => void, complain: (t: string) => void): number {
  const config = readConfig(configPath, complain);
  if (config === null) return EXIT.FAILED;
  println(luaProfileTable(profileNames(config)));
  return EXIT.OK;
}

/** a config file as check sees it */
interface ConfigVerdict {
  path: string;
  /** false only for the default path when it does not exist and that is allowed */
  present: boolean;
  config: KrsiConfig | null;
  problems: string[];
}

/** load and validate `path`; `absentIsFine`: a missing file is only noted (a node not set up yet) */
function judgeConfig(path: string, absentIsFine: boolean): ConfigVerdict {
  if (absentIsFine && !existsSync(path)) return { path, present: false, config: null, problems: [] };
  try {
    return { path, present: true, config: loadConfig(path), problems: [] };
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return { path, present: true, config: null, problems: e.problems };
  }
}

function configOk(v: ConfigVerdict): boolean {
  return v.config !== null || !v.present;
}

function configJson(v: ConfigVerdict): Record<string, unknown> {
  const { path, present, config, problems } = v;
  return { path, present, ok: config !== null, problems, warnings: config?.warnings ?? [], profiles: config ? profileNames(config) : [] };
}

function printConfig(v: ConfigVerdict, println: (t: string) => void, complain: (t: string) => void): void {
  if (!v.present) {
    println(`slurm-krsi: no config file at ${v.path} yet (deploy/install.sh installs one; krsi-agent needs it to start)`);
  } else if (v.config !== null) {
    println(`slurm-krsi: config ${v.path} is valid (profiles: ${profileNames(v.config).join(', ')}; default: ${v.config.agent.defaultProfile})`);
    for (const w of v.config.warnings) println(`warning: ${w}`);
  } else {
    complain(`config ${v.path} is invalid:\n${v.problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/**
 * check --config-only: the file alone, on any machine (a controller, a workstation without BPF LSM):
 * nothing of this machine's kernel is looked at and no BPF library is loaded.
 */
function checkConfig(path: string, json: boolean, println: (t: string) => void, complain: (t: string) => void): number {
  const verdict = judgeConfig(path, false);
  if (json) println(JSON.stringify({ ok: configOk(verdict), preflight: null, config: configJson(verdict) }, null, 2));
  else printConfig(verdict, println, complain);
  return configOk(verdict) ? EXIT.OK : EXIT.FAILED;
}

async function check(
  configPath: string | undefined,
  json: boolean,
  println: (t: string) => void,
  printerr: (t: string) => void,
  complain: (t: string) => void,
): Promise<number> {
  // loaded here, not at the top: it binds libbpf, which the other commands never need
  const [{ preflight, preflightMessage }, { OBJECTS }] = await Promise.all([
    import('../enforcement/preflight.js'),
    import('../paths.js'),
  ]);
  const result = preflight({ probeObjectPath: OBJECTS.preflight });
  // without --config, a node that has no config yet still gets the kernel answer (exit status from the
  // preflight alone), with a note; a config that exists, or one named with --config, must be valid
  const verdict = judgeConfig(configPath ?? DEFAULT_CONFIG_PATH, configPath === undefined);
  const ok = result.ok && configOk(verdict);
  if (json) {
    println(JSON.stringify({ ok, preflight: result, config: configJson(verdict) }, null, 2));
    return ok ? EXIT.OK : EXIT.FAILED;
  }
  if (result.ok) println(preflightMessage(result));
  else printerr(preflightMessage(result));
  printConfig(verdict, println, complain);
  return ok ? EXIT.OK : EXIT.FAILED;
}

function invokedDirectly(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (invokedDirectly()) {
  // SIGINT ends `events --follow` cleanly (exit 0); anything else it interrupts exits 130 as usual
  const following = process.argv.includes('--follow') || process.argv.includes('-f');
  const controller = new AbortController();
  process.on('SIGINT', () => {
    if (!following || controller.signal.aborted) process.exit(130);
    controller.abort();
  });
  main(process.argv.slice(2), { signal: controller.signal }).then(
    (code) => {
      process.exitCode = code;
      process.removeAllListeners('SIGINT');
    },
    (e: unknown) => {
      process.stderr.write(`krsictl: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
