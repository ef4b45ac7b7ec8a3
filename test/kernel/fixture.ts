/**
 * Shared fixture of the kernel specs. They run as root inside the VM (test/vm/run-kernel-specs.ts), on
 * a real kernel with BPF LSM, against the real programs: one Enforcer for the whole mocha run, pinned
 * under a test pin dir, with every event it streams kept for assertions.
 *
 * Actions are attempted by real processes running as the test uids (coreutils, setfacl, and
 * build/probe/krsi-probe for the syscall variants), so what is checked is what the kernel answered.
 */
import { chmodSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';
import { Enforcer, type UidPolicy } from '../../agent/enforcement/enforcer.js';
import { POLICIES, type KrsiEvent, type Mode, type PolicyName } from '../../agent/enforcement/layout.js';
import { waitFor } from '../vm/pace.js';

/** the repository root, whether running from dist/test/kernel or test/kernel */
export const ROOT = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!dir.endsWith('/dist') && dir !== '/') dir = dirname(dir);
  return dir === '/' ? resolve(dirname(fileURLToPath(import.meta.url)), '../..') : dirname(dir);
})();
export const OBJECT = join(ROOT, 'build/bpf/krsi.bpf.o');
export const IDENTITY_OBJECT = join(ROOT, 'build/bpf/identity.bpf.o');
export const PREFLIGHT_OBJECT = join(ROOT, 'build/bpf/preflight.bpf.o');
export const PROBE = join(ROOT, 'build/probe/krsi-probe');
export const PIN_DIR = '/sys/fs/bpf/krsi-test';

/** the job's user (restricted) and another user (never restricted) */
export const USER = 1000;
export const OTHER = 1001;

/** a scratch directory every test uid may write in (sticky, like /tmp) */
export const SCRATCH = '/tmp/krsi-scratch';

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** run a program as a uid (gid = uid, no supplementary groups); never throws on a non-zero exit */
export async function runAs(uid: number, file: string, args: string[]): Promise<RunResult> {
  const r = await execa(file, args, {
    uid,
    gid: uid,
    reject: false,
    cwd: '/',
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C' },
    extendEnv: false,
  });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout).trim(), stderr: String(r.stderr).trim() };
}

/** krsi-probe as a uid: returns its one-line verdict, "OK" or "ERR <ERRNO>" */
export async function probe(uid: number, ...args: string[]): Promise<string> {
  const r = await runAs(uid, PROBE, args);
  if (r.exitCode === 2) throw new Error(`krsi-probe usage error: ${r.stderr}`);
  return r.stdout.split('\n').pop() ?? '';
}

/** a shell command line as a uid, with a umask (the paper's attacks are shell commands) */
/** the verdict of exec'ing a set-uid program that strict does not allowlist, as a uid, outside any job */
export async function suidExec(uid: number): Promise<'denied' | 'ran'> {
  return (await probe(uid, 'exec', '/usr/bin/chfn', '--help')) === 'ERR EPERM' ? 'denied' : 'ran';
}

/** print what a test saw, indented under its title (for the reader of the run's log) */
export function evidence(title: string, text: string): void {
  console.log(`      --- ${title} ---\n${text.trimEnd().replace(/^/gm, '      ')}`);
}

export async function shellAs(uid: number, umask: string, command: string): Promise<RunResult> {
  return runAs(uid, '/bin/sh', ['-c', `umask ${umask} && ${command}`]);
}

const targetOptions = (uid: number) => ({ uid, gid: uid, reject: false, buffer: false }) as const;

/** a process to aim signals, ptrace and scheduling changes at */
export interface Target {
  proc: ResultPromise<ReturnType<typeof targetOptions>>;
  tgid: number;
  /** its threads other than the leader */
  tids: number[];
}

/** a process of `uid` with 2 extra threads; resolves once it printed its ids */
export async function startTarget(uid: number): Promise<Target> {
  const proc = execa(PROBE, ['threads', '2'], targetOptions(uid));
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    proc.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('\n')) resolve(out.trim());
    });
    proc.once('exit', () => reject(new Error(`target exited early: ${out}`)));
  });
  const [, tgid, ...tids] = line.split(' ').map(Number);
  return { proc, tgid: tgid!, tids: tids.filter((t) => t !== tgid) };
}

export function alive(pid: number): boolean {
  try {
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
  } catch {
    return false;
  }
}

export function modes(overrides: Partial<Record<PolicyName, Mode>>): Record<PolicyName, Mode> {
  const out = {} as Record<PolicyName, Mode>;
  for (const p of POLICIES) out[p] = overrides[p] ?? 'off';
  return out;
}

export function policy(overrides: Partial<UidPolicy> & { modes: Record<PolicyName, Mode> }): UidPolicy {
  return { connectDefault: 'allow', connectRules: [], suidAllow: [], sshClients: [], ...overrides };
}

let enforcer: Enforcer | undefined;
export const events: KrsiEvent[] = [];

export function getEnforcer(): Enforcer {
  if (!enforcer) throw new Error('kernel fixture not started');
  return enforcer;
}

export async function startFixture(): Promise<Enforcer> {
  if (enforcer) return enforcer;
  Enforcer.removePinned(PIN_DIR);
  enforcer = Enforcer.open({ objectPath: OBJECT, pinDir: PIN_DIR });
  enforcer.subscribe((e) => events.push(e));
  rmSync(SCRATCH, { recursive: true, force: true });
  makeScratch();
  return enforcer;
}

export async function stopFixture(): Promise<void> {
  await enforcer?.close();
  enforcer = undefined;
  Enforcer.removePinned(PIN_DIR);
}

/** the scratch directory, for specs that run before (or without) the fixture's Enforcer */
function makeScratch(): void {
  mkdirSync(SCRATCH, { recursive: true });
  chmodSync(SCRATCH, 0o1777); // not through mkdir's mode: the umask would take o+w away
}

/** a fresh per-test directory owned by a uid */
export async function userDir(uid: number, name: string): Promise<string> {
  makeScratch();
  const dir = join(SCRATCH, `${name}-${uid}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { mode: 0o755 });
  await execa('chown', [`${uid}:${uid}`, dir]);
  return dir;
}

/**
 * A fresh ext4 on a loop device, mounted at /mnt/krsi-NAME: a block-device-backed file system (its
 * kernel s_dev is a real device's, and it keeps ACLs in xattr blocks), unlike the tmpfs under SCRATCH.
 */
export async function mountLoopExt4(name: string): Promise<{ mnt: string; unmount: () => Promise<void> }> {
  const image = join(SCRATCH, `${name}.img`);
  const mnt = `/mnt/krsi-${name}`;
  await execa('modprobe', ['loop']);
  await execa('modprobe', ['ext4']);
  await execa('truncate', ['-s', '32M', image]);
  await execa('mkfs.ext4', ['-q', '-F', image]);
  mkdirSync(mnt, { recursive: true });
  await execa('mount', ['-o', 'loop', image, mnt]);
  return {
    mnt,
    unmount: async () => {
      await execa('umount', [mnt], { reject: false });
      rmSync(image, { force: true });
    },
  };
}

/**
 * Wait until `count` events matching `match` have arrived after index `from`; returns them. Throws,
 * naming the match, if they have not arrived by the (scaled) deadline.
 */
export async function eventsSince(from: number, match: (e: KrsiEvent) => boolean, count = 1, timeoutMs = 10_000): Promise<KrsiEvent[]> {
  return waitFor(`${count} event(s) matching ${match.toString()}`, () => {
    const found = events.slice(from).filter(match);
    return found.length >= count && found;
  }, { timeoutMs, intervalMs: 20, detail: () => `events received since: ${JSON.stringify(events.slice(from).map((e) => e.type))}` });
}

/**
 * Register hooks that check, for one policy over a whole spec file, that the kernel's per-CPU decision
 * counters moved by exactly the number of events user space received plus the decisions folded into
 * them (each folded one reported as a repeat by a received event, or still held by its fold key), and
 * that nothing was dropped.
 */
export function checkAccounting(policyName: PolicyName): void {
  let baseline: ReturnType<Enforcer['counters']>[PolicyName];
  let from = 0;
  before(async () => {
    const e = await startFixture();
    baseline = e.counters()[policyName];
    from = events.length;
  });
  after(async () => {
    const decisions = () => {
      const now = getEnforcer().counters()[policyName];
      return Number(now.deny - baseline.deny + now.audit - baseline.audit - (now.folded - baseline.folded));
    };
    const received = () => events.slice(from).filter((e) => e.policy === policyName);
    // events still in flight: wait until as many arrived as the kernel counted (a mismatch is reported below)
    await waitFor(`${policyName}: an event for every decision the kernel counted`, () => received().length >= decisions()).catch(() => undefined);
    const seen = received();
    const now = getEnforcer().counters()[policyName];
    const denied = seen.filter((e) => e.decision === 'deny').length;
    const audited = seen.filter((e) => e.decision === 'audit').length;
    const folded = now.folded - baseline.folded;
    const msg = `${policyName}: counters deny ${now.deny - baseline.deny}, audit ${now.audit - baseline.audit}, ` +
      `folded ${folded}, dropped ${now.dropped - baseline.dropped}; events deny ${denied}, audit ${audited}`;
    if (now.deny - baseline.deny + now.audit - baseline.audit !== BigInt(denied + audited) + folded || now.dropped !== baseline.dropped) {
      throw new Error(`kernel counters and received events disagree: ${msg}`);
    }
    if (denied + audited === 0) throw new Error(`${policyName}: the spec produced no decisions at all`);
    console.log(`      accounting ok: ${msg}`);
  });
}

// root-level hooks (this module is loaded by the spec files, inside mocha). Each test starts with no fold
// state, so that its first action gets an event whatever an earlier test did within the fold window (the
// fold specs test folding itself, within one test).
beforeEach(() => {
  enforcer?.forgetFolds();
});

// release the ring buffer and unpin everything once all specs ran, so the VM's node process can exit
after(async () => {
  await stopFixture();
});
