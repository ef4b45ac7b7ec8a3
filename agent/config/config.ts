/**
 * /etc/slurm-krsi/krsi.ini: the agent's settings and the policy profiles. Read at start and on reload;
 * every key is validated, and everything wrong with the file is reported at once, each problem naming
 * the file, the section and the key (errors.ts). deploy/krsi.ini is the annotated sample.
 *
 * File syntax (scan.ts): `[agent]` and `[profile NAME]` sections, `key = value` lines, `;` or `#`
 * comment lines, and an unquoted `;` or `#` inside a value starts an inline comment. Section and key
 * names and words in values (off, audit, enforce, fail, allow) are lower case and case-sensitive;
 * profile names are case-sensitive and may contain dots. A key or a section given twice is an error.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import type { Cidr } from '../enforcement/cidr.js';
import { POLICIES, type Mode, type PolicyName } from '../enforcement/layout.js';
import { ConfigError, formatProblem, type ConfigProblem } from './errors.js';
import { scanIni, type IniSection } from './scan.js';
import {
  BadValue,
  checkProfileName,
  parseAbsolutePath,
  parseAccount,
  parseChoice,
  parseCidrList,
  parseInteger,
  parseListen,
  parseMode,
  parseNat64Prefixes,
  parseOptionalPath,
  parsePathList,
  parseRingBufferSize,
  type ListenAddress,
} from './values.js';

export { ConfigError, formatProblem, type ConfigProblem } from './errors.js';

export const DEFAULT_CONFIG_PATH = '/etc/slurm-krsi/krsi.ini';

export interface ProfileConfig {
  name: string;
  /** keys fileperms, suidexec, sshlisteners, skconnections, killtasks; default 'off' */
  modes: Record<PolicyName, Mode>;
  /** key suidexec_allow: absolute paths of set-uid/set-gid executables users may still run */
  suidexecAllow: string[];
  /** key ssh_clients: absolute paths of ssh client executables; ['/usr/bin/ssh'] when sshlisteners is on and the key is absent */
  sshClients: string[];
  /** key connect_deny: destinations denied (IPv4 and IPv6 CIDRs) */
  connectDeny: Cidr[];
  /** key connect_allow: when present the profile is an allow-list (only these, minus connect_deny); null when absent */
  connectAllow: Cidr[] | null;
  /** key connect_nat64: NAT64 /96 prefixes under which the IPv4 rules apply again; default DEFAULT_NAT64 */
  connectNat64: Cidr[];
}

export interface AgentSettings {
  socket: string;
  metricsListen: ListenAddress | null;
  adminGroup: string | null;
  defaultProfile: string;
  onError: 'fail' | 'allow';
  slurmdUser: string;
  stateDir: string;
  eventLog: string | null;
  pinDir: string;
  ringBufferBytes: number;
  eventsWindow: number;
  protectDaemons: string[];
}

export interface KrsiConfig {
  path: string;
  agent: AgentSettings;
  profiles: Map<string, ProfileConfig>;
  /** formatted like ConfigError's problems; the agent logs them */
  warnings: string[];
}

export interface ParseOptions {
  /** existence check for allowlisted executables (default fs.existsSync); a missing one is a warning */
  fileExists?: (p: string) => boolean;
}

export const ON_ERROR = ['fail', 'allow'] as const;
export const DEFAULT_SSH_CLIENTS: readonly string[] = ['/usr/bin/ssh'];
/** the well-known NAT64 prefix (RFC 6052) */
export const DEFAULT_NAT64 = '64:ff9b::/96';

export function defaultAgentSettings(): AgentSettings {
  return {
    socket: '/run/slurm-krsi/agent.sock',
    metricsListen: { host: '127.0.0.1', port: 9817 },
    adminGroup: null,
    defaultProfile: 'default',
    onError: 'fail',
    slurmdUser: 'root',
    stateDir: '/var/lib/slurm-krsi',
    eventLog: '/var/log/slurm-krsi/events.log',
    pinDir: '/sys/fs/bpf/slurm-krsi',
    ringBufferBytes: 8 * 1024 * 1024,
    eventsWindow: 10_000,
    protectDaemons: [],
  };
}

export const AGENT_KEYS = [
  'socket',
  'metrics_listen',
  'admin_group',
  'default_profile',
  'on_error',
  'slurmd_user',
  'state_dir',
  'event_log',
  'pin_dir',
  'ring_buffer_size',
  'events_window',
  'protect_daemons',
] as const;

export const PROFILE_KEYS = [...POLICIES, 'suidexec_allow', 'ssh_clients', 'connect_deny', 'connect_allow', 'connect_nat64'] as const;

/** store one [agent] key; throws BadValue */
function setAgentKey(agent: AgentSettings, key: (typeof AGENT_KEYS)[number], value: string): void {
  switch (key) {
    case 'socket':
      agent.socket = parseAbsolutePath(value);
      return;
    case 'metrics_listen':
      agent.metricsListen = parseListen(value);
      return;
    case 'admin_group':
      agent.adminGroup = value === '' ? null : parseAccount(value, 'group');
      return;
    case 'default_profile': {
      const problem = checkProfileName(value);
      if (problem !== null) throw new BadValue(problem);
      agent.defaultProfile = value;
      return;
    }
    case 'on_error':
      agent.onError = parseChoice(value, ON_ERROR);
      return;
    case 'slurmd_user':
      agent.slurmdUser = parseAccount(value, 'user');
      return;
    case 'state_dir':
      agent.stateDir = parseAbsolutePath(value);
      return;
    case 'event_log':
      agent.eventLog = parseOptionalPath(value);
      return;
    case 'pin_dir':
      agent.pinDir = parseAbsolutePath(value);
      return;
    case 'ring_buffer_size':
      agent.ringBufferBytes = parseRingBufferSize(value);
      return;
    case 'events_window':
      agent.eventsWindow = parseInteger(value, 1, 1_000_000);
      return;
    case 'protect_daemons':
      agent.protectDaemons = parsePathList(value);
      return;
  }
}

/** store one profile key; throws BadValue */
function setProfileKey(profile: ProfileConfig, key: (typeof PROFILE_KEYS)[number], value: string): void {
  switch (key) {
    case 'suidexec_allow':
      profile.suidexecAllow = parsePathList(value);
      return;
    case 'ssh_clients':
      profile.sshClients = parsePathList(value);
      return;
    case 'connect_deny':
      profile.connectDeny = parseCidrList(value);
      return;
    case 'connect_allow':
      profile.connectAllow = parseCidrList(value);
      return;
    case 'connect_nat64':
      profile.connectNat64 = parseNat64Prefixes(value);
      return;
    default:
      profile.modes[key] = parseMode(value);
  }
}

function isOneOf<T extends string>(value: string, list: readonly T[]): value is T {
  return (list as readonly string[]).includes(value);
}

function unknownKey(key: string, known: readonly string[]): string {
  const folded = known.find((k) => k === key.toLowerCase().replace(/-/g, '_'));
  return folded !== undefined ? `unknown key (did you mean ${folded}?)` : `unknown key; known keys: ${known.join(', ')}`;
}

class Findings {
  readonly problems: ConfigProblem[] = [];
  readonly warnings: ConfigProblem[] = [];
  error(section: string | null, key: string | null, message: string): void {
    this.problems.push({ section, key, message });
  }
  warn(section: string | null, key: string | null, message: string): void {
    this.warnings.push({ section, key, message });
  }
}

/** parse every key of a section through `set`, one problem per bad value */
function readSection<K extends string>(
  section: IniSection,
  known: readonly K[],
  set: (key: K, value: string) => void,
  findings: Findings,
): Set<K> {
  const seen = new Set<K>();
  for (const { key, value } of section.entries) {
    if (!isOneOf(key, known)) {
      findings.error(section.name, key, unknownKey(key, known));
      continue;
    }
    seen.add(key);
    try {
      set(key, value);
    } catch (err) {
      if (!(err instanceof BadValue)) throw err;
      for (const message of err.messages) findings.error(section.name, key, message);
    }
  }
  return seen;
}

function emptyProfile(name: string): ProfileConfig {
  const modes = {} as Record<PolicyName, Mode>;
  for (const policy of POLICIES) modes[policy] = 'off';
  return { name, modes, suidexecAllow: [], sshClients: [], connectDeny: [], connectAllow: null, connectNat64: parseNat64Prefixes(DEFAULT_NAT64) };
}

function readProfile(section: IniSection, name: string, findings: Findings): ProfileConfig {
  const profile = emptyProfile(name);
  const seen = readSection(section, PROFILE_KEYS, (key, value) => setProfileKey(profile, key, value), findings);
  if (profile.modes.sshlisteners !== 'off') {
    if (!seen.has('ssh_clients')) profile.sshClients = [...DEFAULT_SSH_CLIENTS];
    else if (profile.sshClients.length === 0) {
      findings.warn(section.name, 'ssh_clients', 'empty while sshlisteners is on: the policy matches no executable');
    }
  }
  if (profile.connectAllow !== null && profile.connectAllow.length === 0 && profile.modes.skconnections !== 'off') {
    findings.warn(section.name, 'connect_allow', 'empty allow-list: every IPv4/IPv6 connection is denied');
  }
  return profile;
}

function warnMissing(
  findings: Findings,
  section: string,
  key: string,
  paths: readonly string[],
  fileExists: (p: string) => boolean,
): void {
  for (const p of paths) {
    if (!fileExists(p)) {
      findings.warn(section, key, `${JSON.stringify(p)} does not exist (yet): it has no effect until it does and the agent resolves it again`);
    }
  }
}

/** Parse and validate config text; `path` is only used in messages. Throws ConfigError. */
export function parseConfig(text: string, path: string, opts: ParseOptions = {}): KrsiConfig {
  const fileExists = opts.fileExists ?? existsSync;
  const findings = new Findings();
  const scan = scanIni(text);
  findings.problems.push(...scan.problems);

  const agent = defaultAgentSettings();
  let defaultProfileValid = true;
  const profiles = new Map<string, ProfileConfig>();
  for (const section of scan.sections) {
    if (section.name === 'agent') {
      const before = findings.problems.length;
      readSection(section, AGENT_KEYS, (key, value) => setAgentKey(agent, key, value), findings);
      defaultProfileValid = !findings.problems.slice(before).some((p) => p.key === 'default_profile');
      continue;
    }
    const profileHeader = /^profile(?: (.*))?$/.exec(section.name);
    if (profileHeader === null) {
      const hint = /^(agent|profile)\b/i.test(section.name) ? ' (section names are lower case)' : '';
      findings.error(section.name, null, `unknown section${hint}; expected [agent] or [profile NAME]`);
      continue;
    }
    const name = profileHeader[1] ?? '';
    const nameProblem = checkProfileName(name);
    if (nameProblem !== null) {
      findings.error(section.name, null, nameProblem);
      continue;
    }
    profiles.set(name, readProfile(section, name, findings));
  }

  if (defaultProfileValid && !profiles.has(agent.defaultProfile)) {
    const message =
      profiles.size === 0
        ? `no [profile ...] sections: the default profile ${JSON.stringify(agent.defaultProfile)} must exist`
        : `profile ${JSON.stringify(agent.defaultProfile)} is not defined (defined: ${[...profiles.keys()].sort().join(', ')})`;
    findings.error('agent', 'default_profile', message);
  }

  if (findings.problems.length > 0) throw new ConfigError(path, findings.problems);

  for (const profile of profiles.values()) {
    const section = `profile ${profile.name}`;
    warnMissing(findings, section, 'suidexec_allow', profile.suidexecAllow, fileExists);
    warnMissing(findings, section, 'ssh_clients', profile.sshClients, fileExists);
  }
  warnMissing(findings, 'agent', 'protect_daemons', agent.protectDaemons, fileExists);

  return { path, agent, profiles, warnings: findings.warnings.map((w) => formatProblem(path, w)) };
}

/** "ENOENT: no such file or directory, open '/x'" -> "no such file or directory (ENOENT)" */
function osReason(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as NodeJS.ErrnoException).code;
  const match = /^[A-Z0-9_]+: ([^,]+)/.exec(err.message);
  return code !== undefined && match?.[1] !== undefined ? `${match[1]} (${code})` : err.message;
}

/**
 * Read and parse the config file. A missing or unreadable file is a ConfigError naming the path and the
 * OS reason. A file that group or others may write is a warning: it decides who is confined.
 */
export function loadConfig(path: string = DEFAULT_CONFIG_PATH): KrsiConfig {
  let text: string;
  let mode: number;
  try {
    text = readFileSync(path, 'utf8');
    mode = statSync(path).mode;
  } catch (err) {
    throw new ConfigError(path, [{ section: null, key: null, message: `cannot read the config file: ${osReason(err)}` }]);
  }
  const config = parseConfig(text, path);
  if ((mode & 0o022) !== 0) {
    config.warnings.push(
      formatProblem(path, { section: null, key: null, message: `writable by group or others (mode ${(mode & 0o777).toString(8)})` }),
    );
  }
  return config;
}

function countModes(profile: ProfileConfig, mode: Mode): number {
  return POLICIES.filter((policy) => profile.modes[policy] === mode).length;
}

/**
 * The profile applied (on top of the floor) when a job names a profile that does not exist — a user's
 * mistake must not loosen anything (DESIGN "Failure semantics"). The rule: the profile with the most
 * policies in enforce; among those, the most in audit; among those, the first by name (code point
 * order). Allowlists and CIDRs do not count. The default profile takes part like any other.
 */
export function strictestProfile(config: KrsiConfig): ProfileConfig {
  let best: ProfileConfig | undefined;
  for (const name of profileNames(config)) {
    const profile = config.profiles.get(name);
    if (profile === undefined) continue;
    if (
      best === undefined ||
      countModes(profile, 'enforce') > countModes(best, 'enforce') ||
      (countModes(profile, 'enforce') === countModes(best, 'enforce') && countModes(profile, 'audit') > countModes(best, 'audit'))
    ) {
      best = profile;
    }
  }
  if (best === undefined) throw new Error(`${config.path}: no profiles configured`);
  return best;
}

/** profile names, sorted by code point */
export function profileNames(config: KrsiConfig): string[] {
  return [...config.profiles.keys()].sort();
}
