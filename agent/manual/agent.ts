/** krsi-agent(8): `krsi-agent --help` prints this page as text; its exit statuses are the agent's own. */
import { DEFAULT_SOCKET } from '../client/client.js';
import { DEFAULT_CONFIG_PATH } from '../config/config.js';
import { AGENT_KEYS } from '../config/keys.js';
import { items, text, type Manual } from './manual.js';

export const AGENT_EXIT = { config: 1, usage: 2, preflight: 3, runtime: 4, running: 5 } as const;

const EXIT_DOCS: Record<keyof typeof AGENT_EXIT, string> = {
  config: 'the configuration is invalid (every problem is printed as FILE:LINE: [section] key: message)',
  usage: 'usage error',
  preflight: 'this node cannot enforce: no BPF LSM in the active LSM list, no BTF, no bpffs, not root, or /proc/self/oom_score_adj above -1000 (the unit sets OOMScoreAdjust=-1000); the message says which and how to fix it',
  runtime: 'a failure while running (the message names it)',
  running: `another krsi-agent runs: it holds <state_dir>/agent.lock, and this one touched nothing`,
};

export const AGENT_MANUAL: Manual = {
  name: 'krsi-agent',
  section: 8,
  summary: 'the slurm-krsi agent of a compute node: per-job BPF LSM policies for Slurm jobs',
  sections: [
    { title: 'SYNOPSIS', blocks: [text('krsi-agent [--config PATH]'), text('krsi-agent --help | --version')] },
    {
      title: 'DESCRIPTION',
      blocks: [
        text(
          'krsi-agent runs as root in the foreground, one per node, started by systemd (krsi-agent.service, Type=notify, ordered before slurmd). It takes the single-instance lock, loads the BPF LSM programs of slurm-krsi, attaches and pins them under a folder of its BPF build (or adopts its own build\'s pinned ones), protects its own process, resumes its job table, protects the listed daemons, detaches another build\'s programs once its own enforce every job (an upgrade without a gap), logs the events recorded while no agent ran, applies the removals the epilogs noted meanwhile, serves the control socket and the metrics endpoint, tells systemd it is ready, and checks its jobs against the jobs Slurm runs on the node.',
        ),
        text(
          'Slurm\'s prolog registers each job over the socket: the agent writes the job\'s policy (the default profile plus the one --comment=policy:NAME asks for) into per-uid kernel maps (the union of the uid\'s jobs) and, once Slurm\'s cgroup/v2 plugin has made the job\'s cgroup, binds that cgroup to the job\'s own policy, which then holds the job\'s tasks whatever their uid; the epilog removes the job, and the uid\'s entries go with its last job. Every decision of the kernel programs is counted and logged as one key=value line in the event log file and, when stdout is the journal (under systemd), as a journal entry of its own with the line as its message and the fields KRSI_JOB (the job whose cgroup the acting process is in, when that job is bound; otherwise once per job of the uid), KRSI_UID, KRSI_GID, KRSI_PID, KRSI_COMM, KRSI_POLICY, KRSI_TYPE, KRSI_ACTION and KRSI_REPEATS, sent without waiting on journald (krsi_events_journal_unsent_total counts what it had no room for); otherwise on stdout.',
        ),
        text(
          'Stopping the agent does not stop enforcement: programs, maps and the job entries stay pinned under pin_dir and keep enforcing; a restarted or upgraded agent resumes with the same jobs.',
        ),
      ],
    },
    {
      title: 'OPTIONS',
      blocks: [
        items([
          { term: '--config PATH', text: `The configuration file, krsi.ini(5) (default ${DEFAULT_CONFIG_PATH}).` },
          { term: '--version', text: 'Print the version and exit.' },
          { term: '-h, --help', text: 'This text.' },
        ]),
      ],
    },
    {
      title: 'SIGNALS',
      blocks: [
        items([
          { term: 'SIGTERM, SIGINT', text: 'Stop serving and exit 0; programs, maps and job entries stay pinned and enforcing.' },
          {
            term: 'SIGHUP',
            text: 'Re-read the configuration (as krsictl reload does); a bad one is rejected and the running one stays. The killtasks policy lets only init (systemctl reload) and the agent itself signal the agent.',
          },
        ]),
      ],
    },
    {
      title: 'FILES',
      blocks: [
        items([
          { term: DEFAULT_CONFIG_PATH, text: 'the configuration' },
          { term: DEFAULT_SOCKET, text: 'the control socket (the socket key)' },
          { term: `${AGENT_KEYS.stateDir.default}/jobs.json`, text: 'the job table (state_dir)' },
          { term: `${AGENT_KEYS.stateDir.default}/agent.lock`, text: 'the single-instance lock' },
          { term: `${AGENT_KEYS.stateDir.default}/pending-removals/`, text: 'removals the epilogs noted while the agent was down' },
          { term: `${AGENT_KEYS.pinDir.default}/build-ID/`, text: 'the pinned programs and maps of one BPF build (pin_dir, a read-only bpffs of its own)' },
          { term: AGENT_KEYS.eventLog.default, text: 'the event log (event_log)' },
        ]),
      ],
    },
    {
      title: 'EXIT STATUS',
      blocks: [
        items([
          { term: '0', text: 'a clean stop' },
          ...(Object.keys(AGENT_EXIT) as (keyof typeof AGENT_EXIT)[]).map((k) => ({ term: String(AGENT_EXIT[k]), text: EXIT_DOCS[k] })),
        ]),
      ],
    },
    { title: 'SEE ALSO', blocks: [text('krsictl(8), krsi.ini(5), slurm-krsi(7), systemctl(1), journalctl(1)')] },
  ],
};
