// Boots the Debian kernel under qemu (software emulation) with the host's root as a read-only overlay root,
// runs one shell script inside as root and returns its exit status. See init-script.ts for the guest side.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { execa } from 'execa';

import { MARK_FATAL, MARK_READY, RUN_UNIT_SCRIPT_PATH, SYSTEMD_RUN_DIR } from './init-script.js';
import { ensureInitramfs, HarnessError, QEMU } from './initramfs.js';
import { repoRoot, workDir } from './paths.js';

export interface VmShare {
  /** Host folder to share. */
  hostPath: string;
  /** 9p mount tag: letters, digits, _ and -; not hostroot or results. */
  tag: string;
  /** Absolute path inside the VM. */
  mountAt: string;
  readonly: boolean;
}

/**
 * Boot systemd as PID 1 (the host's /lib/systemd/systemd) instead of the harness's bash init. The boot
 * reaches a target of the harness's own (SYSTEMD_TARGET), which pulls in the unit that runs the script and
 * `wants`, nothing of the host's multi-user.target; units the VM has no use for are masked (DEFAULT_MASKED).
 */
export interface SystemdBoot {
  /** unit files added for this run, by name ("x.service", or "x.service.d/y.conf" for a drop-in) */
  units?: Record<string, string>;
  /** units the boot starts besides the script's (they and what they need start at boot, in systemd's order) */
  wants?: string[];
  /** units to mask besides DEFAULT_MASKED */
  masked?: string[];
}

export interface RunInVmOptions {
  /** Bash script run as root inside the VM (cwd /, host root visible read-only at the same paths). */
  script: string;
  /** Kill the VM this long after it started (default 10 minutes; the wait for the machine lock does not count). */
  timeoutMs?: number;
  /** Extra kernel arguments; an lsm= here replaces the default LSM list. */
  kernelArgs?: string[];
  memoryMiB?: number;
  /** vCPUs (default 2); forced to 1 with icount. */
  smp?: number;
  /** Deterministic instruction counting (-icount shift=0,sleep=off, one vCPU): for benchmarks. */
  icount?: boolean;
  shares?: VmShare[];
  /** Kernel version to boot (default: newest /boot/vmlinuz-*-amd64). */
  kernelVersion?: string;
  /** Called with each console line as it arrives. */
  onConsole?: (line: string) => void;
  /** Boot systemd as PID 1 (default: the harness's bash PID 1). */
  systemd?: SystemdBoot;
}

export interface RunInVmResult {
  /** Exit status of the script. */
  exitCode: number;
  /** Everything the VM printed on its serial console. */
  console: string;
  /** Host folder mounted at /krsi-results inside the VM (kept after the run). */
  resultsDir: string;
  /** Seconds from qemu's first output (the machine lock taken) until the script started. */
  bootSeconds: number;
  /** Seconds spent waiting for another VM on this machine to finish (VM_LOCK) before qemu started. */
  lockWaitSeconds: number;
  /** Seconds from starting qemu until it exited. */
  totalSeconds: number;
}

/** LSM list of Debian 6.1's CONFIG_LSM as it takes effect, with bpf; explicit so a changed default cannot drop bpf. */
export const DEFAULT_LSM = 'landlock,lockdown,yama,integrity,apparmor,bpf';

/** the default target of a systemd boot */
export const SYSTEMD_TARGET = 'krsi-vm.target';
/** the unit that runs the script in a systemd boot */
export const SYSTEMD_RUN_UNIT = 'krsi-vm-run.service';
/** hostname of the VM (the /init's default; systemd is told the same, or it would take the host's /etc/hostname) */
const VM_HOSTNAME = 'krsi-vm';

/**
 * Units of a Debian 12 boot that a test VM does not need and that cost boot time under emulation (device
 * coldplug, the host's sysctl, module, user and timer settings, machine-id and seed bookkeeping, D-Bus,
 * logins). Services with default dependencies still pull in sysinit.target and basic.target; with these
 * masked that takes about a second. The host's /etc/fstab is ignored too (fstab=no on the command line).
 */
export const DEFAULT_MASKED = [
  'systemd-udevd.service', 'systemd-udevd-control.socket', 'systemd-udevd-kernel.socket', 'systemd-udev-trigger.service',
  'systemd-udev-settle.service', 'systemd-journal-flush.service', 'systemd-random-seed.service', 'systemd-update-utmp.service',
  'systemd-update-utmp-runlevel.service', 'systemd-firstboot.service', 'systemd-repart.service', 'systemd-pcrphase.service',
  'systemd-pcrphase-sysinit.service', 'systemd-machine-id-commit.service', 'systemd-binfmt.service',
  'proc-sys-fs-binfmt_misc.automount', 'sys-fs-fuse-connections.mount', 'sys-kernel-config.mount', 'sys-kernel-debug.mount',
  'sys-kernel-tracing.mount', 'dev-hugepages.mount', 'dev-mqueue.mount', 'systemd-modules-load.service', 'systemd-sysctl.service',
  'systemd-sysusers.service', 'systemd-pstore.service', 'systemd-timesyncd.service', 'systemd-remount-fs.service',
  'systemd-fsck-root.service', 'systemd-journald-audit.socket', 'systemd-tmpfiles-clean.timer', 'timers.target',
  'dbus.socket', 'dbus.service', 'systemd-logind.service', 'getty.target', 'systemd-ask-password-console.path',
  'systemd-ask-password-wall.path', 'e2scrub_reap.service',
] as const;

/** The harness's own units of a systemd boot: its default target and the unit that runs the script. */
export function systemdRunUnits(wants: readonly string[] = []): Record<string, string> {
  return {
    [SYSTEMD_TARGET]: [
      '[Unit]',
      'Description=slurm-krsi test VM: the script of this run and the units it asked for',
      `Wants=${[SYSTEMD_RUN_UNIT, ...wants].join(' ')}`,
      'AllowIsolate=yes',
      '',
    ].join('\n'),
    [SYSTEMD_RUN_UNIT]: [
      '[Unit]',
      'Description=slurm-krsi test VM: run the script, then power off with its exit status',
      // not ordered after basic.target: the script waits for what it needs itself
      'DefaultDependencies=no',
      'After=systemd-journald.socket',
      '',
      '[Service]',
      'Type=exec',
      `ExecStart=/bin/bash ${RUN_UNIT_SCRIPT_PATH}`,
      'StandardInput=null',
      'StandardOutput=tty',
      'StandardError=tty',
      'TTYPath=/dev/console',
      'Environment=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb',
      'Environment=KRSI_VM=1 KRSI_VM_INIT=systemd KRSI_RESULTS_DIR=/krsi-results',
      '',
    ].join('\n'),
  };
}

const DEFAULT_TIMEOUT_MS = 10 * 60_000;
const CONSOLE_TAIL_LINES = 50;
const KEEP_RUNS = 10;
// kernel messages carry a [seconds] timestamp (CONFIG_PRINTK_TIME), which test output does not
const PANIC_RE = /Kernel panic - not syncing.*|^\[\s*\d+\.\d+\]\s+(?:BUG: |Oops: |general protection fault).*/m;
// firmware clears the screen and sets modes; keep the console text plain
// eslint-disable-next-line no-control-regex
const TERMINAL_CONTROL_RE = /\r|\u001bc|\u001b\[[0-9;?]*[A-Za-z]/g;
const TAG_RE = /^[A-Za-z0-9_-]{1,31}$/;

export class VmError extends HarnessError {
  override name = 'VmError';
  constructor(
    message: string,
    readonly consoleTail: string,
  ) {
    super(`${message}\n--- last ${CONSOLE_TAIL_LINES} console lines ---\n${consoleTail}`);
  }
}

export function consoleTail(text: string, lines = CONSOLE_TAIL_LINES): string {
  const all = text.split('\n');
  if (all[all.length - 1] === '') all.pop();
  return all.slice(-lines).join('\n');
}

/** The kernel command line for a run. */
export function kernelCommandLine(opts: { kernelArgs?: string[]; shares?: VmShare[]; systemd?: SystemdBoot }): string {
  const extra = opts.kernelArgs ?? [];
  const args = ['console=ttyS0', 'quiet', 'panic=-1', 'random.trust_cpu=on'];
  if (!extra.some((a) => a.startsWith('lsm='))) args.push(`lsm=${DEFAULT_LSM}`);
  if (opts.systemd) {
    args.push('krsi.init=systemd', `systemd.unit=${SYSTEMD_TARGET}`, `systemd.hostname=${VM_HOSTNAME}`, 'fstab=no', 'systemd.gpt_auto=0');
  }
  for (const s of opts.shares ?? []) args.push(`krsi.share=${s.tag}:${s.mountAt}:${s.readonly ? 'ro' : 'rw'}`);
  return [...args, ...extra].join(' ');
}

function validateShares(shares: VmShare[]): void {
  const tags = new Set(['hostroot', 'results']);
  for (const s of shares) {
    if (!TAG_RE.test(s.tag) || tags.has(s.tag)) throw new HarnessError(`krsi-vm: bad or duplicate share tag ${JSON.stringify(s.tag)}`);
    tags.add(s.tag);
    if (!isAbsolute(s.mountAt) || /[\s:,]/.test(s.mountAt)) {
      throw new HarnessError(`krsi-vm: share mountAt must be an absolute path without spaces, ':' or ',': ${JSON.stringify(s.mountAt)}`);
    }
    if (/,/.test(s.hostPath) || !existsSync(s.hostPath)) {
      throw new HarnessError(`krsi-vm: share hostPath must exist and contain no ',': ${JSON.stringify(s.hostPath)}`);
    }
  }
}

/** A fresh results folder under .vm-work/runs/, pruning all but the newest runs. */
async function freshResultsDir(): Promise<string> {
  const runs = join(workDir(), 'runs');
  await mkdir(runs, { recursive: true });
  const old = (await readdir(runs)).filter((n) => n.startsWith('run-')).sort();
  for (const name of old.slice(0, Math.max(0, old.length - (KEEP_RUNS - 1)))) {
    await rm(join(runs, name), { recursive: true, force: true });
  }
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  return mkdtemp(join(runs, `run-${stamp}-`));
}

/** units/ and masked, for the /init of a systemd boot (init-script.ts) */
async function writeSystemdUnits(dir: string, boot: SystemdBoot): Promise<void> {
  const units = { ...systemdRunUnits(boot.wants ?? []), ...(boot.units ?? {}) };
  for (const [name, text] of Object.entries(units)) {
    if (!/^[A-Za-z0-9@_.:\\-]+(\.d\/[A-Za-z0-9_.-]+\.conf)?$/.test(name)) throw new HarnessError(`krsi-vm: bad unit file name ${JSON.stringify(name)}`);
    const path = join(dir, 'units', name);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, text);
  }
  await writeFile(join(dir, 'masked'), `${[...DEFAULT_MASKED, ...(boot.masked ?? [])].join('\n')}\n`);
}

/** the machine-wide lock that serializes VMs */
export const VM_LOCK = '/tmp/krsi-vm.lock';

export async function runInVm(opts: RunInVmOptions): Promise<RunInVmResult> {
  // the repository itself, at its own path: the host root share alone would not show a checkout under
  // /tmp or /run, where the VM mounts fresh tmpfs
  const root = repoRoot();
  const shares = [{ hostPath: root, tag: 'krsirepo', mountAt: root, readonly: true }, ...(opts.shares ?? [])];
  validateShares(shares);
  const log = (msg: string): void => void process.stderr.write(`krsi-vm: ${msg}\n`);
  const initramfs = await ensureInitramfs(opts.kernelVersion === undefined ? { log } : { log, kernelVersion: opts.kernelVersion });
  const resultsDir = await freshResultsDir();
  await writeFile(join(resultsDir, 'run.sh'), opts.script, { mode: 0o755 });
  if (opts.systemd) await writeSystemdUnits(join(resultsDir, SYSTEMD_RUN_DIR), opts.systemd);

  const icount = opts.icount ?? false;
  const smp = icount ? 1 : (opts.smp ?? 2);
  const args = [
    '-accel', icount || smp === 1 ? 'tcg' : 'tcg,thread=multi',
    ...(icount ? ['-icount', 'shift=0,sleep=off'] : []),
    '-cpu', 'max',
    '-m', String(opts.memoryMiB ?? 2048),
    '-smp', String(smp),
    '-nodefaults', '-no-user-config',
    '-nographic', '-serial', 'stdio',
    '-no-reboot',
    '-nic', 'none',
    '-kernel', initramfs.bootImage,
    '-initrd', initramfs.path,
    '-append', kernelCommandLine({ ...opts, shares }),
    '-virtfs', 'local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap',
    '-virtfs', `local,path=${resultsDir},mount_tag=results,security_model=none,multidevs=remap`,
    ...shares.flatMap((s) => [
      '-virtfs',
      `local,path=${s.hostPath},mount_tag=${s.tag},security_model=none,multidevs=remap${s.readonly ? ',readonly=on' : ''}`,
    ]),
  ];

  const started = process.hrtime.bigint();
  const elapsed = (): number => Number(process.hrtime.bigint() - started) / 1e9;
  let consoleText = '';
  let pending = '';
  let bootSeconds: number | undefined;
  let firstOutput: number | undefined;
  const onLine = (raw: string): void => {
    const line = raw.replace(TERMINAL_CONTROL_RE, '');
    if (bootSeconds === undefined && line.includes(MARK_READY)) bootSeconds = elapsed();
    opts.onConsole?.(line);
  };

  // one VM at a time on this machine (2 cores): the shell takes a machine-wide lock on fd 9 and execs
  // qemu, which keeps the lock for its lifetime (and is the process a timeout kills); concurrent runs
  // queue instead of slowing each other past their timeouts
  const qemu = execa('/bin/sh', ['-c', 'exec 9>"$0" && flock 9 && exec "$@"', VM_LOCK, QEMU, ...args], {
    stdin: 'ignore',
    buffer: { stdout: false, stderr: true },
    reject: false,
  });
  // the timeout counts from qemu's start (its first output), not from the wait for the machine lock
  let timedOut = false;
  let timer: NodeJS.Timeout | undefined;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  qemu.stdout.setEncoding('utf8');
  qemu.stdout.on('data', (chunk: string) => {
    if (firstOutput === undefined) {
      firstOutput = elapsed();
      timer = setTimeout(() => {
        timedOut = true;
        qemu.kill('SIGKILL');
      }, timeoutMs);
    }
    consoleText += chunk;
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) onLine(line);
  });

  const result = await qemu.finally(() => clearTimeout(timer));
  if (pending !== '') onLine(pending);
  const totalSeconds = elapsed();
  consoleText = consoleText.replace(TERMINAL_CONTROL_RE, '');
  const tail = consoleTail(consoleText);

  if (timedOut) throw new VmError(`krsi-vm: timed out after ${timeoutMs / 1000} s; qemu killed`, tail);
  if (result.exitCode !== 0) {
    throw new VmError(`krsi-vm: ${QEMU} failed (${result.exitCode ?? result.signal}): ${String(result.stderr).trim()}`, tail);
  }
  const panic = PANIC_RE.exec(consoleText);
  if (panic) throw new VmError(`krsi-vm: the guest kernel crashed (${panic[0].trim()})`, tail);
  if (consoleText.includes(MARK_FATAL)) throw new VmError('krsi-vm: the VM init failed before running the script', tail);

  let statusText: string;
  try {
    statusText = await readFile(join(resultsDir, 'exit-status'), 'utf8');
  } catch {
    throw new VmError('krsi-vm: VM did not report an exit status', tail);
  }
  const exitCode = Number.parseInt(statusText.trim(), 10);
  if (!Number.isInteger(exitCode)) throw new VmError(`krsi-vm: unreadable exit status ${JSON.stringify(statusText)}`, tail);

  const lockWaitSeconds = firstOutput ?? 0;
  return { exitCode, console: consoleText, resultsDir, bootSeconds: (bootSeconds ?? totalSeconds) - lockWaitSeconds, lockWaitSeconds, totalSeconds };
}
