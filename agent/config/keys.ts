/**
 * Every key of krsi.ini, once: its name, its parser, its default (written as it would be in the file, so
 * the typed default is the parser's reading of it), whether a reload applies it (live) or it waits for
 * a restart, and one sentence of documentation. The AgentSettings type, the defaults, the validation of
 * config.ts, the reload warnings of the agent and the sample deploy/krsi.ini (scripts/gen-ini.ts) all
 * come from these two tables, so a key cannot be forgotten in one of them. The `doc` texts are plain
 * sentences, fit for a man page (krsi.ini(5)).
 */
import type { Cidr } from '../enforcement/cidr.js';
import { POLICIES, type Mode, type PolicyName } from '../enforcement/layout.js';
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
} from './values.js';

/** live: a reload applies the new value at once; restart: a reload warns, the agent's restart applies it */
export type ReloadBehaviour = 'live' | 'restart';

export interface KeySpec<T> {
  /** the key as written in the file */
  name: string;
  /** the value as scanned to the typed value; throws BadValue */
  parse: (value: string) => T;
  /** the default, as it would be written in the file ('' for empty) */
  default: string;
  reload: ReloadBehaviour;
  doc: string;
}

function spec<T>(s: KeySpec<T>): KeySpec<T> {
  return s;
}

export const ON_ERROR = ['fail', 'allow'] as const;

/**
 * What the prolog and epilog give the agent's answer once it accepted their request. Their whole deadline
 * is agent_wait plus this, and it must stay under slurm.conf's PrologEpilogTimeout (60 s in
 * slurm/slurm.conf.snippet, against 10 + 20 with the default agent_wait), so that the hook, not Slurm,
 * names the cause of a failure.
 */
export const HOOK_ANSWER_SECONDS = 20;
/** agent_wait's upper bound: an agent that takes longer to start is a fault to report, not to wait out */
export const MAX_AGENT_WAIT_SECONDS = 600;

/** the prolog's and epilog's whole deadline for the agent, in seconds */
export function hookDeadlineSeconds(agentWait: number): number {
  return agentWait + HOOK_ANSWER_SECONDS;
}

/** [agent] keys, by the AgentSettings field each one sets; the order is the sample file's */
export const AGENT_KEYS = {
  socket: spec({
    name: 'socket',
    parse: parseAbsolutePath,
    default: '/run/slurm-krsi/agent.sock',
    reload: 'restart',
    doc: 'Unix socket for the prolog, epilog and krsictl; the agent checks the peer credentials of every connection.',
  }),
  metricsListen: spec({
    name: 'metrics_listen',
    parse: parseListen,
    default: '127.0.0.1:9817',
    reload: 'restart',
    doc: 'Where GET /metrics (Prometheus) listens: host:port, [ipv6]:port, or off.',
  }),
  metricsAllow: spec({
    name: 'metrics_allow',
    parse: parseCidrList,
    default: '127.0.0.0/8, ::1',
    reload: 'live',
    doc: 'Who may scrape GET /metrics: IPv4 and IPv6 addresses or CIDRs, comma separated; a connection from anywhere else is closed at once. A metrics_listen that other hosts can reach needs the Prometheus servers listed here.',
  }),
  adminGroup: spec({
    name: 'admin_group',
    parse: (v: string): string | null => (v === '' ? null : parseAccount(v, 'group')),
    default: '',
    reload: 'live',
    doc: 'Group whose members may read status, profiles and every user\'s jobs and events over the socket (other users see only their own jobs and events); empty: only root and the SlurmdUser.',
  }),
  defaultProfile: spec({
    name: 'default_profile',
    parse: (v: string): string => {
      const problem = checkProfileName(v);
      if (problem !== null) throw new BadValue(problem);
      return v;
    },
    default: 'default',
    reload: 'live',
    doc: 'The floor: this profile applies to every job, and --comment=policy:NAME can only add to it.',
  }),
  onError: spec({
    name: 'on_error',
    parse: (v: string) => parseChoice(v, ON_ERROR),
    default: 'fail',
    reload: 'live',
    doc: 'Prolog exit status when the policy cannot be applied (a node fault): fail drains the node, allow runs the job unconfined.',
  }),
  agentWait: spec({
    name: 'agent_wait',
    parse: (v: string) => parseInteger(v, 0, MAX_AGENT_WAIT_SECONDS),
    default: '10',
    reload: 'live',
    doc: `Seconds the prolog and epilog retry a missing or refusing socket (the agent starting or restarting) before calling it a node fault, 0 to ${MAX_AGENT_WAIT_SECONDS}. Their whole deadline for the agent is agent_wait + ${HOOK_ANSWER_SECONDS} s: slurm.conf's PrologEpilogTimeout must be longer, or Slurm kills them first and the node is drained without slurm-krsi's reason.`,
  }),
  slurmdUser: spec({
    name: 'slurmd_user',
    parse: (v: string) => parseAccount(v, 'user'),
    default: 'root',
    reload: 'live',
    doc: 'Besides root, the user whose processes may add and remove jobs over the socket (slurm.conf SlurmdUser).',
  }),
  stateDir: spec({
    name: 'state_dir',
    parse: parseAbsolutePath,
    default: '/var/lib/slurm-krsi',
    reload: 'restart',
    doc: 'Where the agent keeps its job table and the epilogs leave removal notes, so that a restarted agent resumes with the same jobs.',
  }),
  reconcileInterval: spec({
    name: 'reconcile_interval',
    parse: (v: string) => parseInteger(v, 0, 86_400),
    default: '60',
    reload: 'live',
    doc: 'Seconds between checks of the job table against the jobs Slurm runs on this node (its job cgroups and slurmstepd sockets), 0 to check only at start.',
  }),
  reconcileGrace: spec({
    name: 'reconcile_grace',
    parse: (v: string) => parseInteger(v, 0, 7 * 86_400),
    default: '300',
    reload: 'live',
    doc: 'A job that Slurm does not run here is removed only once it was registered this many seconds ago (the prolog runs before any step exists); jobs of an earlier boot are checked at once.',
  }),
  eventLog: spec({
    name: 'event_log',
    parse: parseOptionalPath,
    default: '/var/log/slurm-krsi/events.log',
    reload: 'live',
    doc: 'Event log file, one key=value line per event (events also go to the journal, or to stdout without systemd); off disables the file.',
  }),
  pinDir: spec({
    name: 'pin_dir',
    parse: parseAbsolutePath,
    default: '/sys/fs/bpf/slurm-krsi',
    reload: 'restart',
    doc: 'Where the BPF programs and maps are pinned (on bpffs), so that enforcement holds while the agent restarts.',
  }),
  ringBufferBytes: spec({
    name: 'ring_buffer_size',
    parse: parseRingBufferSize,
    default: '8M',
    reload: 'restart',
    doc: 'Size of the BPF ring buffer carrying events to the agent: a power of two from 4K to 1G (K, M, G suffixes); applies when the programs are next loaded.',
  }),
  eventsWindow: spec({
    name: 'events_window',
    parse: (v: string) => parseInteger(v, 1, 1_000_000),
    default: '10000',
    reload: 'restart',
    doc: 'How many recent events the agent keeps in memory for krsictl events (GET /v1/events), 1 to 1000000.',
  }),
  protectDaemons: spec({
    name: 'protect_daemons',
    parse: parsePathList,
    default: '',
    reload: 'live',
    doc: 'Daemons (absolute executable paths, comma separated, e.g. /usr/sbin/slurmd, /usr/sbin/munged) that killtasks protects from confined users\' signals and ptrace.',
  }),
};

/** a key's documentation with, for a key a reload does not apply, when it does take effect */
export function agentKeyDoc(key: KeySpec<unknown>): string {
  return key.reload === 'restart' ? `${key.doc} A change takes effect when the agent restarts.` : key.doc;
}

type AgentKeyTable = typeof AGENT_KEYS;
export type AgentField = keyof AgentKeyTable;
type ParsedBy<S> = S extends KeySpec<infer T> ? T : never;

export type AgentSettings = { [F in AgentField]: ParsedBy<AgentKeyTable[F]> };

export const AGENT_FIELDS = Object.keys(AGENT_KEYS) as AgentField[];

/** the [agent] key name -> its field */
export const AGENT_FIELD_OF: ReadonlyMap<string, AgentField> = new Map(AGENT_FIELDS.map((f) => [AGENT_KEYS[f].name, f]));

export function defaultAgentSettings(): AgentSettings {
  const settings = {} as Record<AgentField, unknown>;
  for (const field of AGENT_FIELDS) settings[field] = AGENT_KEYS[field].parse(AGENT_KEYS[field].default);
  return settings as AgentSettings;
}

/** store one [agent] value; throws BadValue */
export function setAgentValue(settings: AgentSettings, field: AgentField, value: string): void {
  (settings as Record<AgentField, unknown>)[field] = AGENT_KEYS[field].parse(value);
}

/** the [agent] fields whose value differs between two settings, by reload behaviour */
export function changedAgentKeys(before: AgentSettings, after: AgentSettings, reload: ReloadBehaviour): AgentField[] {
  return AGENT_FIELDS.filter(
    (f) => AGENT_KEYS[f].reload === reload && JSON.stringify(before[f]) !== JSON.stringify(after[f]),
  );
}

// ---------------------------------------------------------------------------------------------- profiles

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

export interface ProfileKeySpec {
  name: string;
  /** parse the value and store it in the profile; throws BadValue */
  set: (profile: ProfileConfig, value: string) => void;
  /** what the profile has when the key is absent, in words (the sample and the man page show it) */
  absent: string;
  doc: string;
}

export const DEFAULT_SSH_CLIENTS: readonly string[] = ['/usr/bin/ssh'];
/** the well-known NAT64 prefix (RFC 6052) */
export const DEFAULT_NAT64 = '64:ff9b::/96';

/** what each policy stops, for a uid under it (a clause: the key docs and slurm-krsi(7) use it) */
export const POLICY_DOCS: Record<PolicyName, string> = {
  fileperms: 'creating or chmod-ing files, directories, fifos, sockets and device nodes with set-uid, set-gid or other-write, and ACLs granting other write',
  suidexec: 'executing set-uid and set-gid files that suidexec_allow does not list',
  sshlisteners: 'ssh clients (ssh_clients) listening on IPv4 or IPv6 sockets, as ssh -D, -L and -R do',
  skconnections: 'connecting or sending to the destinations connect_deny lists, or to any not in connect_allow when it is set',
  killtasks: 'fatal and stop signals and ptrace aimed at the agent and the daemons of protect_daemons',
};

/** profile keys, in the sample file's order; every profile key is live (a reload rewrites every uid) */
export const PROFILE_KEYS: readonly ProfileKeySpec[] = [
  ...POLICIES.map(
    (policy): ProfileKeySpec => ({
      name: policy,
      set: (p, v) => {
        p.modes[policy] = parseMode(v);
      },
      absent: 'off',
      doc: `Mode of the ${policy} policy, which stops ${POLICY_DOCS[policy]}: off, audit (log only) or enforce (deny and log).`,
    }),
  ),
  {
    name: 'suidexec_allow',
    set: (p, v) => {
      p.suidexecAllow = parsePathList(v);
    },
    absent: 'none',
    doc: 'Set-uid and set-gid executables still allowed under suidexec (absolute paths, comma separated); a missing one is a warning and is resolved again when it appears.',
  },
  {
    name: 'ssh_clients',
    set: (p, v) => {
      p.sshClients = parsePathList(v);
    },
    absent: DEFAULT_SSH_CLIENTS.join(', '),
    doc: 'The ssh client executables sshlisteners stops from listening, known by their inode, not their name (absolute paths, comma separated).',
  },
  {
    name: 'connect_deny',
    set: (p, v) => {
      p.connectDeny = parseCidrList(v);
    },
    absent: 'none',
    doc: 'Destinations skconnections denies (IPv4 and IPv6 CIDRs or addresses, comma separated; IPv4-mapped IPv6 destinations count as IPv4).',
  },
  {
    name: 'connect_allow',
    set: (p, v) => {
      p.connectAllow = parseCidrList(v);
    },
    absent: 'no allow-list',
    doc: 'When set, skconnections allows only these destinations, minus those of connect_deny (set but empty: none at all); when absent, every destination not denied is allowed.',
  },
  {
    name: 'connect_nat64',
    set: (p, v) => {
      p.connectNat64 = parseNat64Prefixes(v);
    },
    absent: DEFAULT_NAT64,
    doc: 'NAT64 prefixes (IPv6 /96, comma separated) under which every IPv4 rule of connect_deny and connect_allow applies again, so that a NAT64 gateway cannot reach what the IPv4 rules deny; off for none.',
  },
];

export const PROFILE_KEY_NAMES: readonly string[] = PROFILE_KEYS.map((k) => k.name);

export function emptyProfile(name: string): ProfileConfig {
  const modes = {} as Record<PolicyName, Mode>;
  for (const policy of POLICIES) modes[policy] = 'off';
  return { name, modes, suidexecAllow: [], sshClients: [], connectDeny: [], connectAllow: null, connectNat64: parseNat64Prefixes(DEFAULT_NAT64) };
}
