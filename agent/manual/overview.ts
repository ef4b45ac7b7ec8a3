/** slurm-krsi(7): what the system does, how a job gets its policy, and where its files are. */
import { DEFAULT_SOCKET } from '../client/client.js';
import { DEFAULT_CONFIG_PATH } from '../config/config.js';
import { AGENT_KEYS, POLICY_DOCS } from '../config/keys.js';
import { POLICIES } from '../enforcement/layout.js';
import { code, items, text, type Manual } from './manual.js';

/** where the package and deploy/install.sh put what slurmd runs */
export const HOOK_PATHS = {
  prolog: '/usr/libexec/slurm-krsi/prolog',
  epilog: '/usr/libexec/slurm-krsi/epilog',
  taskProlog: '/usr/libexec/slurm-krsi/task-prolog',
} as const;

export const OVERVIEW_MANUAL: Manual = {
  name: 'slurm-krsi',
  section: 7,
  summary: 'per-job mandatory access control for Slurm compute nodes, enforced in the kernel with KRSI (BPF LSM)',
  sections: [
    {
      title: 'DESCRIPTION',
      blocks: [
        text(
          'slurm-krsi confines the users of Slurm jobs on a compute node with BPF LSM programs: a job asks for a policy profile in its comment (sbatch --comment=policy:strict), and for as long as the job runs on the node, the kernel holds the job\'s user to the default profile plus the requested one. It follows "Mitigating Attacks on a Supercomputer with KRSI", whose five policies it implements.',
        ),
        text(
          'The programs stay attached all the time; a uid that no job put under policy costs one bit test and is never denied. The per-node agent, krsi-agent(8), writes per-uid entries into pinned BPF maps when a job starts and removes them when the uid\'s last job ends.',
        ),
      ],
    },
    {
      title: 'POLICIES',
      blocks: [
        text('Each policy of a profile is off, audit (the action is logged and allowed) or enforce (logged and denied with EPERM). For a uid under policy:'),
        items(POLICIES.map((p) => ({ term: p, text: `stops ${POLICY_DOCS[p]}.` }))),
        text(
          'The kernel decides on what it will really do: the inode\'s real mode, the executable\'s device and inode, the destination\'s real address (IPv4-mapped IPv6 included), the real target of a signal. A comment can only tighten: the default profile applies to every job.',
        ),
      ],
    },
    {
      title: 'HOW A JOB GETS ITS POLICY',
      blocks: [
        items([
          {
            term: 'submission',
            text: 'The controller\'s job_submit.lua, with the slurm_krsi.lua module, rejects a comment naming an unknown or malformed profile, listing the valid ones (from krsictl profiles --lua).',
          },
          {
            term: 'Prolog',
            text: `slurmd runs ${HOOK_PATHS.prolog} at the allocation (PrologFlags=Alloc); it registers the job with the agent over ${DEFAULT_SOCKET}. If the node cannot enforce (agent unreachable, programs not attached), it fails and Slurm drains the node with a reason starting with slurm-krsi:, unless on_error = allow. A profile name the node does not know gets the strictest profile, and the job runs.`,
          },
          {
            term: 'TaskProlog',
            text: `${HOOK_PATHS.taskProlog} prints one line into the job's output: the profiles the job runs under and why (its comment).`,
          },
          {
            term: 'Epilog',
            text: `${HOOK_PATHS.epilog} removes the job by its id (a comment changed later changes nothing); with the agent down it leaves a note that the agent applies when it is back.`,
          },
          {
            term: 'reconciliation',
            text: 'The agent checks its jobs against the jobs Slurm runs on the node (job cgroups, scontrol listpids) and removes a job whose epilog never came, on evidence only. After a reboot it asks slurmctld about the jobs of the earlier boot that the node no longer shows (scontrol show job, one job at a time, only then) and keeps those slurmctld still runs on this node: slurmctld can miss a reboot, and a later step of such a job would run without a prolog.',
          },
        ]),
      ],
    },
    {
      title: 'OBSERVING',
      blocks: [
        text(
          `krsictl status, jobs and events show the agent's view; every decision is one key=value line in ${AGENT_KEYS.eventLog.default} and, under systemd, a journal entry with fields of its own (KRSI_JOB, KRSI_UID, KRSI_POLICY, KRSI_ACTION, ...: journalctl KRSI_JOB=1234). Users see their own jobs and events with krsictl jobs and krsictl events. Prometheus metrics (names prefixed krsi_) are served on metrics_listen (default ${AGENT_KEYS.metricsListen.default}); the source tree has alert rules (deploy/prometheus/slurm-krsi-rules.yml) and a Grafana dashboard (deploy/grafana/slurm-krsi-dashboard.json).`,
        ),
        code(['sbatch --comment=policy:strict job.sh', 'krsictl jobs', 'krsictl events --follow', 'journalctl KRSI_JOB=1234'].join('\n')),
      ],
    },
    {
      title: 'FILES',
      blocks: [
        items([
          { term: DEFAULT_CONFIG_PATH, text: 'the configuration, krsi.ini(5)' },
          { term: '/usr/sbin/krsi-agent, /usr/sbin/krsictl', text: 'the agent and its control command' },
          { term: `${HOOK_PATHS.prolog}, ${HOOK_PATHS.epilog}`, text: 'slurm.conf Prolog= and Epilog=' },
          { term: HOOK_PATHS.taskProlog, text: 'slurm.conf TaskProlog=' },
          { term: DEFAULT_SOCKET, text: 'the agent\'s control socket' },
          { term: AGENT_KEYS.stateDir.default, text: 'the job table and the epilogs\' removal notes' },
          { term: AGENT_KEYS.pinDir.default, text: 'the pinned programs and maps, on a read-only BPF file system of their own (sys-fs-bpf-slurm\\x2dkrsi.mount): enforcement outlives the agent process, and unmounting it (with the agent stopped) ends enforcement' },
          { term: AGENT_KEYS.eventLog.default, text: 'the event log' },
        ]),
      ],
    },
    { title: 'SEE ALSO', blocks: [text('krsi-agent(8), krsictl(8), krsi.ini(5), slurm.conf(5), sbatch(1)')] },
  ],
};
