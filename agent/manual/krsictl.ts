/**
 * krsictl(8): its commands (which options each takes: the CLI's parser reads them from here), options
 * and exit statuses. `krsictl --help` prints this page as text.
 */
import { DEFAULT_SOCKET } from '../client/client.js';
import { DEFAULT_CONFIG_PATH } from '../config/config.js';
import { code, items, text, type Manual } from './manual.js';

export const EXIT = { OK: 0, FAILED: 1, USAGE: 2, UNREACHABLE: 3, FORBIDDEN: 4 } as const;

const EXIT_DOCS: Record<keyof typeof EXIT, string> = {
  OK: 'success',
  FAILED:
    'the operation failed (check found problems, reload rejected, the agent returned an error); check --config-only: the config file is missing, unreadable or invalid',
  USAGE: 'usage error',
  UNREACHABLE: 'the agent is unreachable (not running, stale socket, no answer in time)',
  FORBIDDEN: 'permission denied (the agent answered 403, or the socket refused the connection)',
};

/** the command-specific options; --socket and --json apply to every command */
export type CommandOption = 'since' | 'limit' | 'follow' | 'lua' | 'config' | 'config-only';

export interface CommandSpec {
  name: string;
  /** its options as the synopsis shows them, '' for none */
  args: string;
  options: readonly CommandOption[];
  doc: string;
}

export const COMMANDS: readonly CommandSpec[] = [
  { name: 'status', args: '', options: [], doc: 'Admins only. The agent: kernel, programs, jobs, job cgroups (how many jobs are bound to their cgroups, or why job cgroups cannot be used on this node), uids under policy, counters per policy, the last reading of Slurm\'s view of the node.' },
  { name: 'jobs', args: '', options: [], doc: 'The jobs on this node: JOBID UID USER PROFILES REQUESTED CGROUP. CGROUP is bound (with the job cgroup\'s id: the job\'s tasks are held to the job\'s own policy, whatever their uid), waiting (no job cgroup yet: the union of the uid\'s jobs holds them) or unavailable (no job cgroups on this node). Any user; one who is not an admin sees only their own jobs.' },
  {
    name: 'events',
    args: '[--since N] [--limit N] [--follow]',
    options: ['since', 'limit', 'follow'],
    doc: 'The event log lines after sequence number N (default 0), at most --limit (1-10000, default 100); --follow keeps polling every second and prints events as they come, until interrupted (SIGINT). Any user; one who is not an admin sees only the decisions about their own processes.',
  },
  {
    name: 'profiles',
    args: '[--lua] [--config PATH]',
    options: ['lua', 'config'],
    doc: 'Admins only. The configured profiles and their policy modes. --lua does not ask the agent: it reads the config file and prints the valid profile names as a Lua table literal, e.g. return { "default", "strict" }; this is the command that generates the profile list the controller\'s job_submit.lua checks comments against (slurm/slurm_krsi.lua).',
  },
  {
    name: 'check',
    args: '[--config PATH] [--config-only]',
    options: ['config', 'config-only'],
    doc: `Can this node enforce, and is the config valid? Runs the preflight (root, BTF, BPF LSM active and accepted, bpffs) and validates the config file without starting anything; prints every problem and warning, each as FILE:LINE: [section] key: message. Without --config, a missing ${DEFAULT_CONFIG_PATH} is only noted. --config-only skips the preflight (and loads no BPF library): the pre-push gate on a controller or a workstation, e.g. krsictl check --config-only --config krsi.ini.`,
  },
  { name: 'reload', args: '', options: [], doc: 'Root and the SlurmdUser only. Make the agent re-read its config; a bad config is rejected and the agent keeps the previous one.' },
  { name: 'help', args: '', options: [], doc: 'This text.' },
];

export const KRSICTL_MANUAL: Manual = {
  name: 'krsictl',
  section: 8,
  summary: 'control and inspect the slurm-krsi agent of this node',
  sections: [
    { title: 'SYNOPSIS', blocks: [text('krsictl [--socket PATH] [--json] COMMAND [OPTIONS]')] },
    {
      title: 'DESCRIPTION',
      blocks: [
        text(
          'krsictl talks to krsi-agent(8) over its control socket. Admins are root, the SlurmdUser and the members of admin_group: they see every job and event (status, jobs, events, profiles); reload needs root or the SlurmdUser. Any other user may run jobs and events, and sees their own jobs on this node and the decisions about their own processes, nothing of other users. The agent decides from the caller\'s credentials on the socket (SO_PEERCRED), never from what krsictl sends.',
        ),
      ],
    },
    { title: 'COMMANDS', blocks: [items(COMMANDS.map((c) => ({ term: c.args === '' ? c.name : `${c.name} ${c.args}`, text: c.doc })))] },
    {
      title: 'OPTIONS',
      blocks: [
        items([
          { term: '--socket PATH', text: `The agent's control socket (default: [agent] socket of the config file if it can be read, else ${DEFAULT_SOCKET}).` },
          { term: '--json', text: 'Print the agent\'s JSON answer instead of tables (events --follow: one JSON event per line).' },
          { term: '--config PATH', text: `The config file for profiles --lua and check (default ${DEFAULT_CONFIG_PATH}).` },
          { term: '--config-only', text: 'check: the config file alone, not this node\'s kernel.' },
          { term: '-h, --help', text: 'This text.' },
        ]),
      ],
    },
    {
      title: 'EXAMPLES',
      blocks: [
        code(
          [
            'krsictl status',
            'krsictl events --follow',
            'krsictl check --config-only --config krsi.ini',
            'krsictl profiles --lua > /etc/slurm-krsi/profiles.lua',
          ].join('\n'),
        ),
      ],
    },
    { title: 'FILES', blocks: [items([{ term: DEFAULT_SOCKET, text: 'the control socket' }, { term: DEFAULT_CONFIG_PATH, text: 'the configuration, krsi.ini(5)' }])] },
    {
      title: 'EXIT STATUS',
      blocks: [items((Object.keys(EXIT) as (keyof typeof EXIT)[]).map((k) => ({ term: String(EXIT[k]), text: EXIT_DOCS[k] })))],
    },
    { title: 'SEE ALSO', blocks: [text('krsi-agent(8), krsi.ini(5), slurm-krsi(7)')] },
  ],
};
