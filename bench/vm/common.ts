/**
 * What the in-VM benchmark driver and the host report share: the result file's shape and small statistics.
 */

/** One run of a workload: what it printed on its RESULT line. */
export interface Sample {
  ops: number;
  ns: number;
  errors: number;
  /** how many scratch files existed before the run: the kernel state the run was measured in (bench/vm/driver.ts, STATE_DIR) */
  stateFiles?: number;
}

export interface WorkloadResult {
  workload: string;
  uid: number;
  samples: Sample[];
}

export interface ConfigResult {
  /** configuration key, e.g. "no-programs" */
  config: string;
  results: WorkloadResult[];
}

export interface ProgStat {
  name: string;
  runCnt: number;
  runTimeNs: number;
}

export interface BpfStatsResult {
  /** configuration the workloads ran under */
  config: string;
  /** per program: runs and run time over one pass of every workload */
  programs: ProgStat[];
  /** the same pass, workload by workload (absent in older result files) */
  perWorkload?: WorkloadProgStats[];
}

/** what one run of a workload cost each program */
export interface WorkloadProgStats {
  workload: string;
  /** the run's operations (loops, chmods, ...) */
  ops: number;
  programs: ProgStat[];
}

export interface PipelineStep {
  requestedRate: number;
  ops: number;
  achievedRate: number;
  decisions: number;
  logged: number;
  /** decisions folded in the kernel into a later event of their action (bpf/krsi.h) */
  folded: number;
  dropped: number;
  /** decisions - logged - folded - dropped: must be 0 */
  unaccounted: number;
  /** virtual seconds the agent needed after the generator stopped to log everything */
  drainSeconds: number;
}

export interface ApplyHistogram {
  count: number;
  sumSeconds: number;
  /** cumulative, as Prometheus exposes them */
  buckets: { le: number; count: number }[];
}

/** the histogram of what happened between two scrapes */
export function histogramDelta(before: ApplyHistogram, after: ApplyHistogram): ApplyHistogram {
  return {
    count: after.count - before.count,
    sumSeconds: after.sumSeconds - before.sumSeconds,
    buckets: after.buckets.map((b, i) => ({ le: b.le, count: b.count - (before.buckets[i]?.count ?? 0) })),
  };
}

/** upper bound of the bucket holding quantile q (0..1) of a cumulative histogram: "p <= bound" */
export function histogramQuantileBound(h: ApplyHistogram, q: number): number {
  const need = q * h.count;
  return h.buckets.find((b) => b.count >= need)?.le ?? NaN;
}

export interface JobStartResult {
  sequential: { prologMs: number[]; epilogMs: number[] };
  concurrent: { n: number; totalMs: number; prologMs: number[]; ok: number; epilogTotalMs: number; epilogOk: number };
  /** every uid policy write of the section (histogram difference) */
  apply: ApplyHistogram;
  /** the writes of the one-at-a-time prologs and epilogs only */
  applySequential?: ApplyHistogram;
  /** the writes of the 64-concurrent batch only */
  applyConcurrent?: ApplyHistogram;
  rss: { idleKiB: number; afterWorkloadsKiB: number; afterFloodKiB: number; peakKiB: number };
  /** `node -e 0` in the VM, virtual ms: the floor under any Node.js prolog (absent in older result files) */
  vmNodeMs?: number[];
}

export interface AdversaryRow {
  action: string;
  policy: string;
  attempts: number;
  /** the kernel answered EPERM */
  denied: number;
  /** the action was allowed (a policy failure) */
  allowed: number;
  /** failed before reaching the decision (another errno) */
  otherError: number;
  /** an event for the attempt's pid reached the agent's log */
  logged: number;
  /** repeats= of those events: attempts of the same action folded into them */
  repeats: number;
  /** ... and named the job the attempt ran in */
  loggedRightJob: number;
}

export interface AdversaryResult {
  actions: number;
  virtualSeconds: number;
  jobs: string[];
  rows: AdversaryRow[];
  kernelDecisions: number;
  logged: number;
  folded: number;
  dropped: number;
  /** present when the attempts ran inside Slurm jobs (the root attempts outside any job) */
  slurm: { node: string; bringupSeconds: number; jobSeconds: number; userAttempts: number; rootAttempts: number; paceMs: number };
}

/** one probe of the flood section: a distinct action attempted while the flood runs */
export interface FloodProbe {
  what: string;
  uid: number;
  /** what the kernel answered (krsi-probe's line) */
  verdict: string;
  /** the probe's process has its own line in the event log */
  logged: boolean;
  /** that line's fold scope (exact, kind) and repeats */
  scope: string;
  repeats: number;
  /**
   * the flooding uid's action of the flood's own kind (policy, type, decision): once that uid is folded
   * by kind it gets no line of its own by design, only its count in the kind line (absent in older results)
   */
  floodKind?: boolean;
}

export interface FloodPhase {
  name: string;
  /** the flooding generator: its operations (denied connects) and virtual seconds */
  floodOps: number;
  floodSeconds: number;
  decisions: number;
  logged: number;
  folded: number;
  dropped: number;
  /** decisions - logged - folded - dropped: must be 0 */
  unaccounted: number;
  /** lines of the flooding process, and those folded by kind */
  floodLines: number;
  floodKindLines: number;
  drainSeconds: number;
  probes: FloodProbe[];
}

export interface FloodResult {
  ringBytes: number;
  phases: FloodPhase[];
}

export interface BootResult {
  boot: 'on' | 'off';
  kernel: string;
  lsm: string;
  cpuModel: string;
  icount: boolean;
  quick: boolean;
  configs: ConfigResult[];
  bpfStats: BpfStatsResult[];
  pipeline: PipelineStep[];
  pipelineRingBytes: number;
  jobStart: JobStartResult | null;
  /** node options the agent was started with (deploy/agent-node-options) */
  agentNodeOptions?: string[];
  adversary: AdversaryResult | null;
  /** absent in results of runs from before the flood section */
  flood?: FloodResult | null;
  /**
   * The rounds (section "rounds"): "no programs" before the first round and after each, and between them
   * the agent's configurations, named "<config>@<round>" (no-programs@0 .. @N); absent in older results
   */
  rounds?: ConfigResult[];
  /**
   * The agent left alone after its start (no job, no event): how often its threads were woken (context
   * switches of every thread) and the CPU it used, over `seconds` virtual seconds; absent in older results
   */
  agentIdle?: { seconds: number; wakeups: number; cpuNs: number };
  notes: string[];
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** nearest-rank percentile */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * s.length));
  return s[rank - 1]!;
}

/** ns per operation of each sample */
export function nsPerOp(samples: readonly Sample[]): number[] {
  return samples.map((s) => s.ns / s.ops);
}

/** (max - min) / median, in percent */
export function spreadPct(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  return ((Math.max(...xs) - Math.min(...xs)) / median(xs)) * 100;
}
