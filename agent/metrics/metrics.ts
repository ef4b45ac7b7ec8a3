/**
 * Prometheus metrics (prom-client, a private registry). Kernel counters are read in collect(), at scrape
 * time, never on a timer. No uid or job id is ever a label: their number is unbounded.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { POLICIES, type PolicyName } from '../enforcement/layout.js';
import { RECONCILE_REASONS, type ReconcileReason } from '../service/agent.js';
import { mirrorCounter } from './mirror.js';
import { registerProcessMetrics } from './process.js';

export interface MetricsSource {
  /** kernel decision counters, summed over CPUs */
  kernelCounters(): Record<PolicyName, { deny: bigint; audit: bigint; dropped: bigint; folded: bigint }>;
  /** events this agent process logged, per policy and decision */
  logged(policy: PolicyName, decision: 'deny' | 'audit'): number;
  /** folded decisions the logged lines reported as repeats=, per policy */
  repeatsLogged(policy: PolicyName): number;
  jobs(): number;
  uidsUnderPolicy(): number;
  programsAttached(): number;
  /** programs this build attaches on this kernel (some exist only for some kernel versions) */
  programsExpected(): number;
  /** jobs the reconciliation removed since start, by reason */
  reconciled(reason: ReconcileReason): number;
  /** whether the last reading of Slurm's view of this node failed */
  slurmViewUnreadable(): boolean;
  /** jobs Slurm's view does not show, kept because Slurm may still run them */
  jobsUnverified(): number;
  /** whether slurmctld could not be asked about the jobs of an earlier boot at the last reconciliation */
  slurmctldUnanswered(): boolean;
  /** ring-buffer records that could not be read and were skipped */
  malformedRecords(): number;
  /** each program's kernel run statistics (zero unless kernel.bpf_stats_enabled=1) */
  programStats(): { program: string; runs: bigint; runTimeNs: bigint }[];
  /** false when the last reload was rejected or failed */
  lastReloadSucceeded(): boolean;
  /** events journald had no room for (the event log file has them) */
  journalUnsent(): number;
}

export interface AgentMetrics {
  registry: Registry;
  /** observe the duration of one uid policy write */
  observeApply(seconds: number): void;
  /** a counter of what one listener's limits refused (connections, requests), by reason */
  observeRefusal(endpoint: 'socket' | 'metrics'): (reason: string) => void;
}

export function createMetrics(source: MetricsSource, info: { version: string; buildId: string; kernel: string }): AgentMetrics {
  const registry = new Registry();
  registerProcessMetrics(registry);

  mirrorCounter(registry, 'krsi_decisions_total', 'Decisions taken in the kernel by the LSM programs, by policy and decision (deny or audit).',
    ['policy', 'decision'] as const, () => {
      const k = source.kernelCounters();
      return POLICIES.flatMap((policy) => (['deny', 'audit'] as const).map((decision) => ({ labels: { policy, decision }, value: Number(k[policy][decision]) })));
    });
  mirrorCounter(registry, 'krsi_events_dropped_total', 'Decisions whose event did not fit in the ring buffer (still counted in krsi_decisions_total).',
    ['policy'] as const, () => {
      const k = source.kernelCounters();
      return POLICIES.map((policy) => ({ labels: { policy }, value: Number(k[policy].dropped) }));
    });
  mirrorCounter(registry, 'krsi_events_folded_total',
    'Decisions folded in the kernel into a later event of the same action (its repeats=); still counted in krsi_decisions_total. ' +
    'Decisions = events + folded + dropped.',
    ['policy'] as const, () => {
      const k = source.kernelCounters();
      return POLICIES.map((policy) => ({ labels: { policy }, value: Number(k[policy].folded) }));
    });
  mirrorCounter(registry, 'krsi_events_repeats_logged_total',
    'Folded decisions that logged lines reported as repeats=; krsi_events_folded_total minus this waits for its action to come back.',
    ['policy'] as const, () => POLICIES.map((policy) => ({ labels: { policy }, value: source.repeatsLogged(policy) })));
  mirrorCounter(registry, 'krsi_events_journal_unsent_total',
    'Events not sent to the journal because journald had no room for them (its queue full) or was gone; the event log file has them.',
    [] as const, () => [{ labels: {}, value: source.journalUnsent() }]);
  mirrorCounter(registry, 'krsi_events_logged_total', 'Events this agent process wrote to the event log, by policy and decision.',
    ['policy', 'decision'] as const, () =>
      POLICIES.flatMap((policy) => (['deny', 'audit'] as const).map((decision) => ({ labels: { policy, decision }, value: source.logged(policy, decision) }))));

  mirrorCounter(registry, 'krsi_jobs_reconciled_total',
    'Jobs removed because Slurm does not run them on this node (a lost epilog, a reboot), by reason: earlier_boot, not_running (PrologFlags=Contain), ended (its batch or extern step is gone).',
    ['reason'] as const, () => RECONCILE_REASONS.map((reason) => ({ labels: { reason }, value: source.reconciled(reason) })));
  mirrorCounter(registry, 'krsi_events_malformed_total', 'Ring-buffer records that could not be read and were skipped.', [] as const,
    () => [{ labels: {}, value: source.malformedRecords() }]);
  new Gauge({
    name: 'krsi_slurm_view_unreadable',
    help: '1 when the last reading of which jobs Slurm runs on this node failed (job cgroups, scontrol listpids): no job is reconciled meanwhile.',
    registers: [registry],
    collect() { this.set(source.slurmViewUnreadable() ? 1 : 0); },
  });
  new Gauge({
    name: 'krsi_jobs_unverified',
    help: 'Jobs Slurm\'s view of this node does not show, kept because Slurm may still run them: an allocation between steps without PrologFlags=Contain, or one of an earlier boot that slurmctld still runs here, could not be asked about, or runs with ReturnToService=2.',
    registers: [registry],
    collect() { this.set(source.jobsUnverified()); },
  });
  new Gauge({
    name: 'krsi_slurmctld_unanswered',
    help: '1 when slurmctld could not be asked (scontrol show job) about the jobs of an earlier boot that this node no longer shows: they are kept meanwhile.',
    registers: [registry],
    collect() { this.set(source.slurmctldUnanswered() ? 1 : 0); },
  });
  // bpftool prog show does not list the agent's programs (only the agent and init may open them): their
  // kernel statistics are here, for the program names only, a bounded set
  mirrorCounter(registry, 'krsi_program_runs_total', 'Runs of each BPF program, counted by the kernel while kernel.bpf_stats_enabled=1.',
    ['program'] as const, () => source.programStats().map((p) => ({ labels: { program: p.program }, value: Number(p.runs) })));
  mirrorCounter(registry, 'krsi_program_run_seconds_total', 'Time spent in each BPF program, counted by the kernel while kernel.bpf_stats_enabled=1.',
    ['program'] as const, () => source.programStats().map((p) => ({ labels: { program: p.program }, value: Number(p.runTimeNs) / 1e9 })));

  new Gauge({
    name: 'krsi_config_last_reload_successful',
    help: '0 when the last reload (krsictl reload, systemctl reload) was rejected or failed and the previous configuration stays in force; 1 otherwise.',
    registers: [registry],
    collect() { this.set(source.lastReloadSucceeded() ? 1 : 0); },
  });
  new Gauge({ name: 'krsi_jobs', help: 'Jobs the agent holds under policy on this node.', registers: [registry], collect() { this.set(source.jobs()); } });
  new Gauge({ name: 'krsi_uids_under_policy', help: 'Uids with an entry in the kernel policy map.', registers: [registry], collect() { this.set(source.uidsUnderPolicy()); } });
  new Gauge({ name: 'krsi_programs_attached', help: 'BPF LSM programs attached (pinned links).', registers: [registry], collect() { this.set(source.programsAttached()); } });
  new Gauge({
    name: 'krsi_programs_expected',
    help: 'BPF LSM programs this agent attaches on this kernel: fewer attached than expected is a node that does not enforce every policy.',
    registers: [registry],
    collect() { this.set(source.programsExpected()); },
  });
  const buildInfo = new Gauge({
    name: 'krsi_build_info', help: 'Agent version, BPF build id and kernel, always 1.', labelNames: ['version', 'build_id', 'kernel'] as const, registers: [registry],
  });
  buildInfo.set({ version: info.version, build_id: info.buildId, kernel: info.kernel }, 1);
  const apply = new Histogram({
    name: 'krsi_policy_apply_duration_seconds',
    help: 'Time to write one uid policy into the kernel maps (union, file identities, map writes; old sets are deleted later, in the background).',
    // fine below 10 ms, where the 5 ms target is, so that a p99 can be read off the buckets
    buckets: [0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [registry],
  });
  const refused = new Counter({
    name: 'krsi_refused_total',
    help: 'Connections and requests from non-writers that the limits refused, by endpoint (socket, metrics) and reason ' +
      '(peer: an address outside metrics_allow; connections: a cap on open connections; rate: requests a second; busy: readers queued).',
    labelNames: ['endpoint', 'reason'] as const,
    registers: [registry],
  });
  return {
    registry,
    observeApply: (seconds) => apply.observe(seconds),
    observeRefusal: (endpoint) => (reason) => refused.inc({ endpoint, reason }),
  };
}
