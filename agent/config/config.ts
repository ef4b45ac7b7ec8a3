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
import { POLICIES, type Mode } from '../enforcement/layout.js';
import { ConfigError, formatProblem, type ConfigProblem } from './errors.js';
import {
  AGENT_FIELD_OF,
  DEFAULT_SSH_CLIENTS,
  PROFILE_KEYS,
  PROFILE_KEY_NAMES,
  defaultAgentSettings,
  emptyProfile,
  setAgentValue,
  type AgentSettings,
  type ProfileConfig,
} from './keys.js';
import { scanIni, type IniSection } from './scan.js';
import { BadValue, checkProfileName } from './values.js';

export { ConfigError, formatProblem, type ConfigProblem } from './errors.js';
export { DEFAULT_NAT64, DEFAULT_SSH_CLIENTS, ON_ERROR, defaultAgentSettings, type AgentSettings, type ProfileConfig } from './keys.js';

export const DEFAULT_CONFIG_PATH = '/etc/slurm-krsi/krsi.ini';

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

function unknownKey(key: string, known: readonly string[]): string {
  const folded = known.find((k) => k === key.toLowerCase().replace(/-/g, '_'));
  return folded !== undefined ? `unknown key (did you mean ${folded}?)` : `unknown key; known keys: ${known.join(', ')}`;
}

class Findings {
  readonly problems: ConfigProblem[] = [];
  readonly warnings: ConfigProblem[] = [];
  error(section: string | null, key: string | null, message: string, line: number | null): void {
    this.problems.push({ section, key, message, line });
  }
  warn(section: string | null, key: string | null, message: string, line: number | null): void {
    this.warnings.push({ section, key, message, line });
  }
}

/**
 * Parse every key of a section through `set`, one problem per bad value. Returns the line of each key
 * that was set (for warnings about them).
 */
function readSection(
  section: IniSection,
  known: readonly string[],
  set: (key: string, value: string) => void,
  findings: Findings,
): Map<string, number> {
  const seen = new Map<string, number>();
  for (const { key, value, line } of section.entries) {
    if (!known.includes(key)) {
      findings.error(section.name, key, unknownKey(key, known), line);
      continue;
    }
    seen.set(key, line);
    try {
      set(key, value);
    } catch (err) {
      if (!(err instanceof BadValue)) throw err;
      for (const message of err.messages) findings.error(section.name, key, message, line);
    }
  }
  return seen;
}

const AGENT_KEY_NAMES = [...AGENT_FIELD_OF.keys()];

function readAgent(section: IniSection, agent: AgentSettings, findings: Findings): Map<string, number> {
  return readSection(section, AGENT_KEY_NAMES, (key, value) => setAgentValue(agent, AGENT_FIELD_OF.get(key)!, value), findings);
}

function readProfile(section: IniSection, name: string, findings: Findings): { profile: ProfileConfig; lines: Map<string, number> } {
  const profile = emptyProfile(name);
  const lines = readSection(section, PROFILE_KEY_NAMES, (key, value) => PROFILE_KEYS.find((k) => k.name === key)!.set(profile, value), findings);
  if (profile.modes.sshlisteners !== 'off') {
    if (!lines.has('ssh_clients')) profile.sshClients = [...DEFAULT_SSH_CLIENTS];
    else if (profile.sshClients.length === 0) {
      findings.warn(section.name, 'ssh_clients', 'empty while sshlisteners is on: the policy matches no executable', lines.get('ssh_clients')!);
    }
  }
  if (profile.connectAllow !== null && profile.connectAllow.length === 0 && profile.modes.skconnections !== 'off') {
    findings.warn(section.name, 'connect_allow', 'empty allow-list: every IPv4/IPv6 connection is denied', lines.get('connect_allow') ?? null);
  }
  return { profile, lines };
}

function warnMissing(
  findings: Findings,
  section: string,
  key: string,
  line: number | null,
  paths: readonly string[],
  fileExists: (p: string) => boolean,
): void {
  for (const p of paths) {
    if (!fileExists(p)) {
      findings.warn(section, key, `${JSON.stringify(p)} does not exist (yet): it has no effect until it does and the agent resolves it again`, line);
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
  let agentLines = new Map<string, number>();
  let agentSectionLine: number | null = null;
  let defaultProfileValid = true;
  const profiles = new Map<string, { profile: ProfileConfig; lines: Map<string, number> }>();
  for (const section of scan.sections) {
    if (section.name === 'agent') {
      const before = findings.problems.length;
      agentLines = readAgent(section, agent, findings);
      agentSectionLine = section.line;
      defaultProfileValid = !findings.problems.slice(before).some((p) => p.key === 'default_profile');
      continue;
    }
    const profileHeader = /^profile(?: (.*))?$/.exec(section.name);
    if (profileHeader === null) {
      const hint = /^(agent|profile)\b/i.test(section.name) ? ' (section names are lower case)' : '';
      findings.error(section.name, null, `unknown section${hint}; expected [agent] or [profile NAME]`, section.line);
      continue;
    }
    const name = profileHeader[1] ?? '';
    const nameProblem = checkProfileName(name);
    if (nameProblem !== null) {
      findings.error(section.name, null, nameProblem, section.line);
      continue;
    }
    profiles.set(name, readProfile(section, name, findings));
  }

  if (defaultProfileValid && !profiles.has(agent.defaultProfile)) {
    const message =
      profiles.size === 0
        ? `no [profile ...] sections: the default profile ${JSON.stringify(agent.defaultProfile)} must exist`
        : `profile ${JSON.stringify(agent.defaultProfile)} is not defined (defined: ${[...profiles.keys()].sort().join(', ')})`;
    findings.error('agent', 'default_profile', message, agentLines.get('default_profile') ?? agentSectionLine);
  }

  if (findings.problems.length > 0) throw new ConfigError(path, findings.problems);

  for (const { profile, lines } of profiles.values()) {
    const section = `profile ${profile.name}`;
    warnMissing(findings, section, 'suidexec_allow', lines.get('suidexec_allow') ?? null, profile.suidexecAllow, fileExists);
    warnMissing(findings, section, 'ssh_clients', lines.get('ssh_clients') ?? null, profile.sshClients, fileExists);
  }
  warnMissing(findings, 'agent', 'protect_daemons', agentLines.get('protect_daemons') ?? null, agent.protectDaemons, fileExists);

  const byName = new Map([...profiles].map(([n, p]) => [n, p.profile]));
  return { path, agent, profiles: byName, warnings: findings.warnings.map((w) => formatProblem(path, w)) };
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
    throw new ConfigError(path, [{ section: null, key: null, line: null, message: `cannot read the config file: ${osReason(err)}` }]);
  }
  const config = parseConfig(text, path);
  if ((mode & 0o022) !== 0) {
    config.warnings.push(
      formatProblem(path, { section: null, key: null, line: null, message: `writable by group or others (mode ${(mode & 0o777).toString(8)})` }),
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
