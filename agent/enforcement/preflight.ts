/**
 * Preflight: can this node enforce? Checks, in the order an admin would fix them, that we are root, the
 * kernel has BTF, BPF LSM is in the active LSM list, bpffs is mounted, and finally that the kernel
 * really accepts a BPF LSM program (some kernels list bpf and still refuse the program type). The result
 * explains every problem in one message with the fix, instead of a libbpf stack.
 */
import { existsSync, readFileSync, statfsSync } from 'node:fs';
import { release } from 'node:os';
import { BpfObject, LibbpfError } from '../../libbpf-ts/index.js';

const BPF_FS_MAGIC = 0xcafe4a11;

export interface PreflightResult {
  ok: boolean;
  kernel: string;
  /** active LSMs in order, [] when securityfs is not readable */
  lsm: string[];
  btf: boolean;
  bpffs: boolean;
  /** one sentence per problem, each with its fix */
  problems: string[];
}

export interface PreflightOptions {
  /** build/bpf/preflight.bpf.o; without it the load probe is skipped */
  probeObjectPath?: string;
  bpffsPath?: string;
}

function readLsmList(): string[] | null {
  try {
    return readFileSync('/sys/kernel/security/lsm', 'utf8').trim().split(',').filter(Boolean);
  } catch {
    return null;
  }
}

function kernelConfigSays(option: string): boolean | null {
  try {
    const config = readFileSync(`/boot/config-${release()}`, 'utf8');
    return new RegExp(`^${option}=y$`, 'm').test(config);
  } catch {
    return null;
  }
}

function isBpffs(path: string): boolean {
  try {
    return statfsSync(path).type === BPF_FS_MAGIC;
  } catch {
    return false;
  }
}

/** Try to load (not attach) the minimal LSM program; returns a problem sentence or null. */
function probeLsmLoad(objectPath: string): string | null {
  let obj: BpfObject | undefined;
  try {
    obj = BpfObject.open(objectPath);
    obj.load();
    return null;
  } catch (err) {
    const reason = err instanceof LibbpfError ? err.message.split('\n')[0] : String(err);
    return (
      `the kernel refused to load a BPF LSM program (${reason}). BPF LSM needs CONFIG_BPF_LSM=y, "bpf" in the ` +
      `active LSM list, and a kernel or sandbox that permits BPF_PROG_TYPE_LSM (a seccomp or container policy, ` +
      `or kernel lockdown, can refuse it even when "bpf" is listed)`
    );
  } finally {
    obj?.close();
  }
}

/**
 * The agent runs unkillable by the OOM killer (the unit's OOMScoreAdjust=-1000): no LSM hook sees the
 * kernel choose and kill an OOM victim, so a higher value would let memory pressure, or anyone who can
 * cause it, end the agent without a signal killtasks could refuse.
 */
export const REQUIRED_OOM_SCORE_ADJ = -1000;

/** null when this process may run as the agent, else why not (the agent checks itself at start; not a node check) */
export function oomScoreProblem(): string | null {
  let text: string;
  try {
    text = readFileSync('/proc/self/oom_score_adj', 'utf8').trim();
  } catch (err) {
    return `cannot read /proc/self/oom_score_adj: ${(err as Error).message}`;
  }
  if (Number(text) <= REQUIRED_OOM_SCORE_ADJ) return null;
  return `/proc/self/oom_score_adj is ${text}: the agent must run with ${REQUIRED_OOM_SCORE_ADJ}, which the OOM killer never ` +
    `chooses (the unit sets OOMScoreAdjust=${REQUIRED_OOM_SCORE_ADJ}; by hand: choom -n ${REQUIRED_OOM_SCORE_ADJ} -- krsi-agent ...)`;
}

export function preflight(opts: PreflightOptions = {}): PreflightResult {
  const problems: string[] = [];
  const kernel = release();
  const bpffsPath = opts.bpffsPath ?? '/sys/fs/bpf';

  if (process.getuid?.() !== 0) {
    problems.push('not running as root: loading BPF LSM programs needs CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN');
  }
  const btf = existsSync('/sys/kernel/btf/vmlinux');
  if (!btf) {
    problems.push(
      `kernel ${kernel} exposes no BTF (/sys/kernel/btf/vmlinux is missing): use a kernel built with ` +
        `CONFIG_DEBUG_INFO_BTF=y (Debian, RHEL >= 8.2 and Ubuntu kernels are)`,
    );
  }
  const lsmList = readLsmList();
  if (lsmList === null) {
    problems.push(
      'cannot read /sys/kernel/security/lsm: mount securityfs (mount -t securityfs securityfs /sys/kernel/security)',
    );
  } else if (!lsmList.includes('bpf')) {
    const built = kernelConfigSays('CONFIG_BPF_LSM');
    if (built === false) {
      problems.push(`kernel ${kernel} was built without CONFIG_BPF_LSM=y: BPF LSM cannot be enabled on it`);
    } else {
      problems.push(
        `BPF LSM is not active (active LSMs: ${lsmList.join(',') || 'none'}). Add it to the kernel command line: ` +
          `lsm=${[...lsmList, 'bpf'].join(',')} (e.g. in GRUB_CMDLINE_LINUX of /etc/default/grub, then update-grub ` +
          `and reboot)`,
      );
    }
  }
  const bpffs = isBpffs(bpffsPath);
  if (!bpffs) {
    problems.push(`no BPF file system at ${bpffsPath}: mount -t bpf bpf ${bpffsPath} (systemd mounts it at boot)`);
  }
  if (problems.length === 0 && opts.probeObjectPath) {
    const refused = probeLsmLoad(opts.probeObjectPath);
    if (refused) problems.push(refused);
  }
  return { ok: problems.length === 0, kernel, lsm: lsmList ?? [], btf, bpffs, problems };
}

/** The single message an admin reads when the node cannot enforce. */
export function preflightMessage(result: PreflightResult): string {
  if (result.ok) return `slurm-krsi: kernel ${result.kernel} can enforce (LSMs: ${result.lsm.join(',')})`;
  const lines = result.problems.map((p) => `  - ${p}`);
  return [`slurm-krsi: this node cannot enforce policies on kernel ${result.kernel}:`, ...lines].join('\n');
}

export class PreflightError extends Error {
  constructor(readonly result: PreflightResult) {
    super(preflightMessage(result));
    this.name = 'PreflightError';
  }
}
