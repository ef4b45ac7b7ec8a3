/**
 * The enforcement module the agent uses: loads, attaches and pins the BPF LSM programs (or adopts the
 * pinned ones a previous agent of the same build left enforcing, or upgrades another build's), writes and
 * clears per-uid policies atomically, protects pids from signals and ptrace, reads the kernel's decision
 * counters and streams decoded events.
 *
 * Pins under pinDir (default /sys/fs/bpf/slurm-krsi), on a bpffs of their own mounted there and kept
 * read-only (pin-fs.ts), one folder per BPF build (generations.ts): build-<build id>/maps/<map name> and
 * build-<build id>/links/<program name>. A pinned link keeps its program attached after every process has
 * closed it, so enforcement outlives the agent.
 */
import { closeSync, constants, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { BpfLink, BpfMap, BpfObject, LibbpfError, RingBuffer, progInfoById } from '../../libbpf-ts/index.js';
import { kernelDevFromStDev } from './identity.js';
import { ensurePinFs, removePinFs, withWritablePins } from './pin-fs.js';
import type { Cidr } from './cidr.js';

export type CidrVerdict = 'allow' | 'deny';
export interface CidrRule {
  cidr: Cidr;
  verdict: CidrVerdict;
}
import {
  COUNTER_SLOTS,
  POLICIES,
  cidrKeySet,
  counterIndex,
  decodeEvent,
  decodeAgent,
  decodeGuardKey,
  decodeJobBinding,
  decodeJobScope,
  decodePolicy,
  decodeProtect,
  encodeCidrKey,
  encodeAgent,
  encodeCgroupId,
  encodeCidrVerdict,
  encodeGuardKey,
  encodeInodeKey,
  encodeJobBinding,
  encodeJobScope,
  encodePolicy,
  encodeProtect,
  encodeUid,
  inodeKeySet,
  uidBitmapSlot,
  type AgentValue,
  type CounterSlot,
  type GuardKey,
  type JobBindingValue,
  type KernelFileId,
  type KrsiEvent,
  type Mode,
  type PolicyName,
  type PolicyValue,
  type ProtectScope,
  type ProtectValue,
} from './layout.js';
import { synchronizeRcu } from './rcu.js';
import { generationDir, layoutOf, listGenerations, previousLayoutDir, readBuildId, type Generation } from './generations.js';

export const DEFAULT_PIN_DIR = '/sys/fs/bpf/slurm-krsi';

const EPERM_ERRNO = 1;

/**
 * What one uid or one job cgroup is held to. The agent computes a uid's as the union of the uid's jobs'
 * policies, a job's as its floor and requested profile.
 */
export interface UidPolicy {
  modes: Record<PolicyName, Mode>;
  /**
   * skconnections: the verdict for a destination is that of its longest matching rule, or `connectDefault`
   * when none matches (a deny-list: default allow with deny rules; an allow-list: default deny with allow
   * rules, and deny rules inside them).
   */
  connectDefault: CidrVerdict;
  connectRules: readonly CidrRule[];
  suidAllow: readonly KernelFileId[];
  sshClients: readonly KernelFileId[];
}

export interface EnforcerOptions {
  /** build/bpf/krsi.bpf.o, with its build id in build/bpf/krsi.build-id */
  objectPath: string;
  pinDir?: string;
  /** ring buffer size in bytes (a power of two, page multiple); used only when the map is created */
  ringBufferBytes?: number;
  log?: (message: string) => void;
}

type Counters = Record<PolicyName, Record<CounterSlot, bigint>>;

const SET_MAPS = ['suid_allow', 'ssh_clients', 'connect_cidrs'] as const;
const MAP_NAMES = [
  'uid_policy', 'uid_bits', 'job_cgroups', 'job_scope', ...SET_MAPS, 'protected', 'counters', 'events', 'folds', 'fold_shares', 'agent', 'guarded',
] as const;
type MapName = (typeof MAP_NAMES)[number];

/**
 * Programs that exist for one kernel generation only. POSIX ACL writes reach the inode_set_acl hook
 * from Linux 6.2 (before that, inode_setxattr judges them). The inode_setattr hook gained an idmap first
 * argument in Linux 6.8, together with the inode_post_setattr hook: one of its two variants loads.
 */
const KERNEL_SPECIFIC_PROGRAMS: Record<string, { needs: (has: (symbol: string) => boolean) => boolean; why: string }> = {
  krsi_inode_set_acl: { needs: (has) => has('bpf_lsm_inode_set_acl'), why: 'no inode_set_acl LSM hook (Linux < 6.2)' },
  krsi_inode_setattr: {
    needs: (has) => !has('bpf_lsm_inode_post_setattr'),
    why: 'inode_setattr takes an idmap first on this kernel (krsi_inode_setattr_idmap)',
  },
  krsi_inode_setattr_idmap: {
    needs: (has) => has('bpf_lsm_inode_post_setattr'),
    why: 'inode_setattr has no idmap argument on this kernel (Linux < 6.8)',
  },
};

/** kernel symbols, read once per open() */
function kernelSymbols(): (symbol: string) => boolean {
  let text: string | undefined;
  return (symbol) => {
    text ??= readFileSync('/proc/kallsyms', 'utf8');
    return new RegExp(` ${symbol}$`, 'm').test(text);
  };
}

/** starttime (field 22 of /proc/<pid>/stat), in USER_HZ ticks since boot */
export function processStartTicks(pid: number): bigint {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const start = fields[22 - 3];
  if (start === undefined) throw new Error(`cannot parse /proc/${pid}/stat`);
  return BigInt(start);
}

export interface SubscribeOptions {
  /** records per pass before yielding to the event loop */
  budget?: number;
  /** wait this long after a wakeup, so that one pass carries a batch under a flood */
  batchDelayMs?: number;
  onError?: (err: unknown) => void;
}

/** what retirePrevious() did with one generation of another build */
export interface RetiredGeneration {
  /** its build id (null: 0.1.0's, which had none) */
  buildId: string | null;
  /** programs it still had attached, now detached */
  detached: number;
  /** records of its event ring delivered, or null when their layout is not this build's (not read) */
  events: number | null;
  /** why it could not be removed (it stays in `previous`, attached, and the next start tries again) */
  error?: string;
}

export class Enforcer {
  /** true when this build's programs were already pinned and enforcing, and this instance only opened them */
  readonly adopted: boolean;
  readonly pinDir: string;
  /** the BPF build this agent runs (bpf/build-id.sh) */
  readonly buildId: string;
  /** where this build pins its programs and maps */
  readonly generationDir: string;
  /** generations of other builds found pinned at open: retirePrevious() removes them */
  previous: readonly Generation[];
  /** names of the programs whose links are pinned */
  readonly programs: string[];
  private readonly maps: Record<MapName, BpfMap>;
  private readonly object: BpfObject | undefined;
  private nextSet: number;
  private ring: RingBuffer | undefined;
  private readonly retiring = new Set<number>();
  private reclaiming: Promise<void> | undefined;
  /** uids whose uid_bits bit must stay set: every uid with a uid_policy entry, or one being written */
  private readonly bitmapUids = new Set<number>();
  private readonly bitmapWords: number;
  /** cgroup level of job cgroups (job_scope); 0 until setJobLevel(), or read back from the pinned map */
  private jobLevel: number;
  private pinDirFd: number;
  /** kernel id of each program, by name (from its pinned link) */
  private readonly programIds = new Map<string, number>();

  private constructor(
    pinDir: string,
    own: Generation & { buildId: string },
    previous: Generation[],
    maps: Record<MapName, BpfMap>,
    object: BpfObject | undefined,
    programs: string[],
    adopted: boolean,
  ) {
    this.pinDir = pinDir;
    this.buildId = own.buildId;
    this.generationDir = own.dir;
    this.previous = previous;
    this.maps = maps;
    this.object = object;
    this.programs = programs;
    this.adopted = adopted;
    this.nextSet = this.highestSetInUse() + 1;
    this.bitmapWords = maps.uid_bits.maxEntries;
    const scope = maps.job_scope.lookup(encodeUid(0));
    this.jobLevel = scope ? decodeJobScope(scope).jobLevel : 0;
    this.repairUidBitmap();
    this.guardOwnObjects();
    // held open for this instance's life: a lazy unmount of a file system above the pins (umount -l /sys),
    // which no hook on the bpffs sees, then leaves the bpffs super block, and every pin, alive
    this.pinDirFd = openSync(pinDir, constants.O_RDONLY | constants.O_DIRECTORY);
  }

  /**
   * Attach and pin this build's programs, or adopt them if a previous instance of the same build pinned them
   * all. Programs whose link is already pinned are left as they are (they never stop enforcing); missing ones
   * are attached. Generations of other builds are left enforcing, untouched, in `previous`: the caller
   * writes every uid's policy into this generation first, then calls retirePrevious().
   *
   * A crash half-way leaves this build's folder with some maps pinned (libbpf pins each as it creates it)
   * and some links: the next open reuses the pinned maps (setPinPath) and attaches only the programs whose
   * link is missing. Meanwhile a previous generation goes on enforcing everything it held, and this one's
   * programs deny only what its maps already hold, which comes from the same job table.
   *
   * The pins live on a bpffs of their own at pinDir (mounted here if it is not yet, with the pins of a
   * version from before it moved aside first), read-only but while this opens them (pin-fs.ts).
   */
  static open(opts: EnforcerOptions): Enforcer {
    const log = opts.log ?? (() => {});
    const pinDir = opts.pinDir ?? DEFAULT_PIN_DIR;
    try {
      ensurePinFs(pinDir, log);
      return withWritablePins(pinDir, () => Enforcer.openPins(opts, pinDir, log));
    } catch (err) {
      if ((err instanceof LibbpfError && err.errno === EPERM_ERRNO) || (err as NodeJS.ErrnoException).code === 'EPERM') {
        throw new Error(
          `krsi enforcer: refused (EPERM) to open the objects pinned under ${pinDir}: they are guarded by a live krsi-agent, ` +
            `and only it and init may open them (is another agent running? Stop it through systemd: systemctl stop ` +
            `krsi-agent), or this process lacks CAP_SYS_ADMIN`,
          { cause: err },
        );
      }
      throw err;
    }
  }

  private static openPins(opts: EnforcerOptions, pinDir: string, log: (message: string) => void): Enforcer {
    const buildId = readBuildId(opts.objectPath);
    const own = { dir: generationDir(pinDir, buildId), buildId };
    // every generation of an earlier layout is another's, whatever its id
    const previous = [...listGenerations(previousLayoutDir(pinDir)), ...listGenerations(pinDir).filter((g) => g.buildId !== buildId)];
    for (const g of previous) log(`found the programs of another build pinned (${g.buildId ?? '0.1.0, no build id'}): upgrading them to build ${buildId}`);
    const mapDir = join(own.dir, 'maps');
    const linkDir = join(own.dir, 'links');
    mkdirSync(mapDir, { recursive: true });
    mkdirSync(linkDir, { recursive: true });

    const object = BpfObject.open(opts.objectPath);
    let keepObject = false;
    try {
      const has = kernelSymbols();
      const wanted = object.programs().filter((prog) => {
        const specific = KERNEL_SPECIFIC_PROGRAMS[prog.name];
        if (specific === undefined || specific.needs(has)) return true;
        prog.setAutoload(false);
        log(`program ${prog.name} not used: ${specific.why}`);
        return false;
      });
      const pinnedLinks = new Set(existsSync(linkDir) ? readdirSync(linkDir) : []);
      const allPinned =
        wanted.every((prog) => pinnedLinks.has(prog.name)) && MAP_NAMES.every((m) => existsSync(join(mapDir, m)));

      if (allPinned) {
        const maps = Object.fromEntries(
          MAP_NAMES.map((name) => [name, BpfMap.openPinned(join(mapDir, name))]),
        ) as Record<MapName, BpfMap>;
        log(`adopted ${wanted.length} pinned programs of build ${buildId} under ${own.dir}`);
        return new Enforcer(pinDir, own, previous, maps, undefined, wanted.map((p) => p.name), true);
      }

      for (const name of MAP_NAMES) object.map(name).setPinPath(join(mapDir, name));
      if (opts.ringBufferBytes !== undefined && !existsSync(join(mapDir, 'events'))) {
        object.map('events').setMaxEntries(opts.ringBufferBytes);
      }
      object.load();
      for (const prog of wanted) {
        const linkPath = join(linkDir, prog.name);
        if (pinnedLinks.has(prog.name)) continue;
        const link = prog.attach();
        try {
          link.pin(linkPath);
        } finally {
          link.destroy(); // the pin keeps it attached
        }
      }
      log(`attached and pinned ${wanted.length} programs of build ${buildId} under ${own.dir}`);
      const maps = Object.fromEntries(MAP_NAMES.map((name) => [name, object.map(name)])) as Record<MapName, BpfMap>;
      keepObject = true;
      return new Enforcer(pinDir, own, previous, maps, object, wanted.map((p) => p.name), false);
    } finally {
      if (!keepObject) object.close();
    }
  }

  /**
   * Detach everything, every build's: unpin the generations of an earlier layout, then unmount the pins'
   * file system. Programs stop enforcing once no process holds them. For uninstall and tests; the agent
   * never does this on its own. Refused while an agent is live.
   */
  static removePinned(pinDir: string = DEFAULT_PIN_DIR): void {
    const aside = previousLayoutDir(pinDir);
    for (const g of listGenerations(aside)) unpinGeneration(g);
    if (existsSync(aside)) rmSync(aside, { recursive: true });
    removePinFs(pinDir);
  }

  /** what this build has pinned ("links/<program>", "maps/<map>"), for status reporting */
  pinned(): string[] {
    return ['links', 'maps'].flatMap((sub) => {
      const dir = join(this.generationDir, sub);
      return existsSync(dir) ? readdirSync(dir).sort().map((name) => `${sub}/${name}`) : [];
    });
  }

  /**
   * The end of an upgrade: detach and unpin the generations of other builds (`previous`). Call it only once
   * this generation holds every uid's policy and every protected pid: until then the other generations'
   * programs go on enforcing what they had, beside this one's (a hook denies when any program denies), so at
   * no moment is a uid under policy unconfined.
   *
   * Per generation, in this order, each step safe to crash after (the next start finds what is left of the
   * generation and goes on from there): 1. unpin its links: its programs stop, this build's enforce
   * everything; 2. if its event records have this build's layout (the layout part of the build ids), hand
   * those still in its ring to `onRecord`; records of another layout are never read (`events` is null, and
   * the agent says so); 3. unpin its maps and remove its folders.
   */
  async retirePrevious(onRecord: (data: Buffer) => void): Promise<RetiredGeneration[]> {
    const done: RetiredGeneration[] = [];
    const left: Generation[] = [];
    const ownLayout = layoutOf({ dir: this.generationDir, buildId: this.buildId });
    for (const g of this.previous) {
      let detached = 0;
      let events: number | null = null;
      try {
        // the pins' file system is writable only for the moments pins are removed or opened (a ring is
        // opened read-write); a generation of an earlier layout is on the bpffs above, writable anyway
        const ringPath = join(g.dir, 'maps', 'events');
        const ring = withWritablePins(this.pinDir, () => {
          detached = unpinAll(join(g.dir, 'links'));
          return layoutOf(g) === ownLayout && existsSync(ringPath) ? BpfMap.openPinned(ringPath) : undefined;
        });
        if (ring) events = await drainRing(ring, onRecord);
        withWritablePins(this.pinDir, () => unpinGeneration(g));
        done.push({ buildId: g.buildId, detached, events });
      } catch (err) {
        // not fatal: this build enforces everything already, and what the old programs still enforce is
        // only ever stricter; the agent reports it, and its next start tries again
        left.push(g);
        done.push({ buildId: g.buildId, detached, events, error: (err as Error).message });
      }
    }
    this.previous = left;
    // the folder the pins of an earlier layout were moved to goes with the last of them
    const aside = previousLayoutDir(this.pinDir);
    if (existsSync(aside) && !left.some((g) => g.dir.startsWith(aside)) && listGenerations(aside).length === 0) {
      rmSync(aside, { recursive: true });
    }
    return done;
  }

  // ------------------------------------------------------------------ per-uid policies

  /**
   * Replace a uid's policy atomically: the new sets are written under a fresh set id, then the single
   * uid_policy value is swapped (the old policy holds until that instant, the new one from it), then,
   * after a grace period and in the background, the old sets are deleted (see retireSet). A failure before the swap leaves the old policy in
   * force and removes the partial new sets.
   */
  setUidPolicy(uid: number, policy: UidPolicy): void {
    const key = encodeUid(uid);
    const old = this.maps.uid_policy.lookup(key);
    // the programs look a uid up only if its bitmap bit is set: set it before the entry exists
    if (!this.bitmapUids.has(uid)) {
      this.bitmapUids.add(uid);
      try {
        this.writeBitmapWord(uid);
      } catch (err) {
        this.bitmapUids.delete(uid);
        throw err;
      }
    }
    try {
      this.swapInSet(policy, (value) => this.maps.uid_policy.update(key, encodePolicy(value)));
    } catch (err) {
      if (!old) this.dropFromBitmap(uid);
      throw err;
    }
    if (old) this.retireSet(decodePolicy(old).set);
  }

  /**
   * Write a policy's sets under a fresh set id, then hand its value to `swap`, the one map update that puts
   * it in force. A failure of either removes the new sets, and throws.
   */
  private swapInSet(policy: UidPolicy, swap: (value: PolicyValue) => void): void {
    const set = this.nextSet++;
    try {
      for (const id of policy.suidAllow) this.maps.suid_allow.update(encodeInodeKey(set, id), Buffer.from([1]));
      for (const id of policy.sshClients) this.maps.ssh_clients.update(encodeInodeKey(set, id), Buffer.from([1]));
      for (const rule of policy.connectRules) {
        this.maps.connect_cidrs.update(encodeCidrKey(set, rule.cidr), encodeCidrVerdict(rule.verdict));
      }
      swap({ modes: policy.modes, connectDefaultDeny: policy.connectDefault === 'deny', set });
    } catch (err) {
      this.deleteSets(new Set([set]));
      throw err;
    }
  }

  /** Remove a uid's policy; returns false if it had none. */
  clearUidPolicy(uid: number): boolean {
    const key = encodeUid(uid);
    const old = this.maps.uid_policy.lookup(key);
    if (!old) {
      this.dropFromBitmap(uid);
      return false;
    }
    this.maps.uid_policy.delete(key);
    // only now that the entry is gone may its bit go (and only if no other uid with a policy shares it)
    this.dropFromBitmap(uid);
    this.retireSet(decodePolicy(old).set);
    return true;
  }

  /** the uid_bits word that holds a uid's bit, as the kernel has it (tests, status) */
  uidBitmapWord(uid: number): bigint {
    const { word } = uidBitmapSlot(uid, this.bitmapWords);
    return this.maps.uid_bits.lookup(encodeUid(word))?.readBigUInt64LE(0) ?? 0n;
  }

  /** whether the kernel will look a uid's policy up at all (its uid_bits bit is set) */
  uidBitSet(uid: number): boolean {
    const { bit } = uidBitmapSlot(uid, this.bitmapWords);
    return ((this.uidBitmapWord(uid) >> BigInt(bit)) & 1n) === 1n;
  }

  /**
   * Write the uid_bits word holding a uid's bit as the union of the bits of every uid in bitmapUids
   * that falls in that word. A word is one 8-byte value: bits other uids rely on are rewritten with
   * the value they already have, so they never read as clear.
   */
  private writeBitmapWord(uid: number): void {
    const { word } = uidBitmapSlot(uid, this.bitmapWords);
    let value = 0n;
    for (const other of this.bitmapUids) {
      const slot = uidBitmapSlot(other, this.bitmapWords);
      if (slot.word === word) value |= 1n << BigInt(slot.bit);
    }
    const buf = Buffer.alloc(8);
    buf.writeBigUInt64LE(value);
    this.maps.uid_bits.update(encodeUid(word), buf);
  }

  private dropFromBitmap(uid: number): void {
    if (!this.bitmapUids.delete(uid)) return;
    this.writeBitmapWord(uid);
  }

  /**
   * At open: every uid with an entry gets its bit (a bitmap created after the entries, or an agent that
   * died between writing a bit and an entry). Bits of uids without an entry are left until their word is
   * next written: a stray bit costs one hash lookup, never a wrong decision.
   */
  private repairUidBitmap(): void {
    for (const key of this.maps.uid_policy.keys()) {
      const uid = key.readUInt32LE(0);
      this.bitmapUids.add(uid);
      if (!this.uidBitSet(uid)) this.writeBitmapWord(uid);
    }
  }

  /**
   * A set no uid refers to any more is deleted after a grace period, in the background: the swap that
   * retired it has already taken effect, and the caller need not wait.
   */
  private retireSet(set: number): void {
    this.retiring.add(set);
    this.reclaiming ??= (async () => {
      await synchronizeRcu();
      const sets = new Set(this.retiring);
      this.retiring.clear();
      this.reclaiming = undefined;
      this.deleteSets(sets);
    })();
  }

  /** wait until retired sets are deleted (tests, status, shutdown) */
  async settle(): Promise<void> {
    while (this.reclaiming) await this.reclaiming;
  }

  uidPolicy(uid: number): PolicyValue | null {
    const value = this.maps.uid_policy.lookup(encodeUid(uid));
    return value ? decodePolicy(value) : null;
  }

  /** every uid with an entry in the kernel, with its policy */
  uidPolicies(): Map<number, PolicyValue> {
    return entries(this.maps.uid_policy, (key) => key.readUInt32LE(0), decodePolicy);
  }

  // ------------------------------------------------------------------ per-job policies (job cgroups)

  /**
   * The cgroup level of job cgroups on this node (job_<id> under slurmstepd's scope; the root is level 0).
   * Written before the first binding; the count of bound jobs is kept as it is.
   */
  setJobLevel(level: number): void {
    if (!Number.isInteger(level) || level < 1) throw new Error(`krsi enforcer: job cgroup level ${level} is not a positive integer`);
    this.jobLevel = level;
    this.writeJobScope();
  }

  /**
   * Bind a job to its cgroup: its tasks are judged by `policy` alone from now on, whatever their uid. A
   * second call for the same cgroup replaces the policy atomically, as setUidPolicy does a uid's.
   */
  bindJob(cgroupId: bigint, jobId: number, policy: UidPolicy): void {
    if (this.jobLevel === 0) throw new Error('krsi enforcer: bindJob before setJobLevel: the programs would not know where job cgroups are');
    const key = encodeCgroupId(cgroupId);
    const old = this.maps.job_cgroups.lookup(key);
    this.swapInSet(policy, (value) => this.maps.job_cgroups.update(key, encodeJobBinding({ policy: value, jobId })));
    // the count goes up only once the entry exists, so that the programs never look for an entry in vain
    if (!old) this.writeJobScope();
    else this.retireSet(decodeJobBinding(old).policy.set);
  }

  /** Unbind a job cgroup: its tasks fall back to their uid's policy. Returns false if it was not bound. */
  unbindJob(cgroupId: bigint): boolean {
    const key = encodeCgroupId(cgroupId);
    const old = this.maps.job_cgroups.lookup(key);
    if (!old) return false;
    this.maps.job_cgroups.delete(key);
    this.writeJobScope();
    this.retireSet(decodeJobBinding(old).policy.set);
    return true;
  }

  /** every bound job cgroup, with its job and policy */
  jobBindings(): Map<bigint, JobBindingValue> {
    return entries(this.maps.job_cgroups, (key) => key.readBigUInt64LE(0), decodeJobBinding);
  }

  /** job_scope: the bound count as job_cgroups holds it now, and the level */
  private writeJobScope(): void {
    this.maps.job_scope.update(encodeUid(0), encodeJobScope(this.maps.job_cgroups.keys().length, this.jobLevel));
  }

  /** number of entries in each per-set map, for status and tests */
  setEntryCounts(): Record<(typeof SET_MAPS)[number], number> {
    return {
      suid_allow: this.maps.suid_allow.keys().length,
      ssh_clients: this.maps.ssh_clients.keys().length,
      connect_cidrs: this.maps.connect_cidrs.keys().length,
    };
  }

  /**
   * Delete set entries no uid refers to: what a crash between writing a new set and deleting the old
   * one leaves behind. Returns the number of entries removed.
   */
  collectGarbage(): number {
    const live = new Set([...this.uidPolicies().values(), ...[...this.jobBindings().values()].map((b) => b.policy)].map((p) => p.set));
    return this.deleteSetsWhere((set) => !live.has(set));
  }

  private deleteSets(sets: Set<number>): number {
    return this.deleteSetsWhere((set) => sets.has(set));
  }

  private deleteSetsWhere(doomed: (set: number) => boolean): number {
    let removed = 0;
    for (const name of SET_MAPS) {
      const map = this.maps[name];
      const setOf = name === 'connect_cidrs' ? cidrKeySet : inodeKeySet;
      for (const key of map.keys()) {
        if (doomed(setOf(key)) && map.delete(key)) removed++;
      }
    }
    return removed;
  }

  private highestSetInUse(): number {
    let highest = 0;
    for (const p of this.uidPolicies().values()) highest = Math.max(highest, p.set);
    for (const b of this.jobBindings().values()) highest = Math.max(highest, b.policy.set);
    for (const key of this.maps.suid_allow.keys()) highest = Math.max(highest, inodeKeySet(key));
    for (const key of this.maps.ssh_clients.keys()) highest = Math.max(highest, inodeKeySet(key));
    for (const key of this.maps.connect_cidrs.keys()) highest = Math.max(highest, cidrKeySet(key));
    return highest;
  }

  // ------------------------------------------------------------------ tamper protection

  /**
   * List this set's own objects in the guarded map: every map (the pinned ones, and the object's internal
   * ones such as .rodata when this instance loaded it), every pinned link and its program, and the bpffs
   * that holds the pins. The programs refuse everyone but the registered agent and init a file descriptor
   * on them, and a remount, unmount or mount over the pins' file system. Entries are only added: ids
   * are not reused while the kernel runs, so an entry of an object that is gone guards nothing.
   */
  private guardOwnObjects(): void {
    const keys: GuardKey[] = [];
    const maps = this.object ? this.object.maps().filter((m) => m.fd >= 0) : Object.values(this.maps);
    for (const map of maps) keys.push({ kind: 'map', dev: 0, id: BigInt(map.info().id) });
    const linkDir = join(this.generationDir, 'links');
    for (const name of this.programs) {
      const link = BpfLink.openPinned(join(linkDir, name));
      try {
        const info = link.info();
        keys.push({ kind: 'link', dev: 0, id: BigInt(info.id) }, { kind: 'prog', dev: 0, id: BigInt(info.progId) });
        this.programIds.set(name, info.progId);
      } finally {
        link.destroy(); // this process's reference only: the pin stays
      }
    }
    // bpffs reports its own super block's device to stat(): no overlay in between
    keys.push({ kind: 'pin_fs', dev: kernelDevFromStDev(statSync(this.pinDir, { bigint: true }).dev), id: 0n });
    for (const key of keys) this.maps.guarded.update(encodeGuardKey(key), Buffer.from([1]));
  }

  /**
   * Register a process as the agent (default: this one), which then, with init, is the only process that
   * may open the pinned objects or change its limits and scheduling (bpf/krsi.bpf.c, section tamper). The
   * kernel forgets it when its last thread exits; unregisterAgent() forgets it at once.
   */
  registerAgent(pid: number = process.pid, startTicks?: bigint): void {
    this.maps.agent.update(encodeUid(0), encodeAgent({ tgid: pid, startTicks: startTicks ?? processStartTicks(pid) }));
  }

  unregisterAgent(): void {
    this.maps.agent.update(encodeUid(0), encodeAgent({ tgid: 0, startTicks: 0n }));
  }

  /** the objects the programs guard (keys of the guarded map) */
  guardedObjects(): GuardKey[] {
    return this.maps.guarded.keys().map(decodeGuardKey);
  }

  /**
   * Each program's kernel run statistics (counted only while kernel.bpf_stats_enabled=1). Read by id: only
   * the agent and init may open the programs while an agent is live.
   */
  programStats(): { program: string; runs: bigint; runTimeNs: bigint }[] {
    return [...this.programIds].map(([program, id]) => {
      const info = progInfoById(id);
      return { program, runs: info.runCnt, runTimeNs: info.runTimeNs };
    });
  }

  /** the registered agent; tgid 0 when none is live */
  registeredAgent(): AgentValue {
    const value = this.maps.agent.lookup(encodeUid(0));
    if (!value) throw new Error('krsi enforcer: the agent map has no slot 0');
    return decodeAgent(value);
  }

  // ------------------------------------------------------------------ killtasks protection

  /**
   * Protect a process (all its threads) from fatal and stop signals and from ptrace attach. 'all': from
   * every sender but init and the process itself (the agent). 'policy': from senders whose uid has
   * killtasks on, with that uid's mode (daemons listed in the config). startTicks defaults to the
   * process's own start time; an entry whose start time is not the live process's protects nothing.
   */
  protect(pid: number, scope: ProtectScope = 'all', mode: Mode = 'enforce', startTicks?: bigint): void {
    const value: ProtectValue = { startTicks: startTicks ?? processStartTicks(pid), scope, mode };
    this.maps.protected.update(encodeUid(pid), encodeProtect(value));
  }

  unprotect(pid: number): boolean {
    return this.maps.protected.delete(encodeUid(pid));
  }

  protectedPids(): Map<number, ProtectValue> {
    return entries(this.maps.protected, (key) => key.readUInt32LE(0), decodeProtect);
  }


  // ------------------------------------------------------------------ counters and events

  /** the kernel's per-CPU decision counters, summed over CPUs */
  counters(): Counters {
    const out = {} as Counters;
    for (const policy of POLICIES) {
      const row = {} as Record<CounterSlot, bigint>;
      for (const slot of COUNTER_SLOTS) {
        row[slot] = this.maps.counters.sumPerCpuU64(encodeUid(counterIndex(policy, slot)));
      }
      out[policy] = row;
    }
    return out;
  }

  /**
   * Forget every fold key and share (bpf/krsi.h): the next decision of any action gets an event of its own.
   * Repeats held by the forgotten keys stay counted as folded, never reported. For tests that must see each
   * action's event whatever an earlier test did within the fold window; the agent never calls it.
   */
  forgetFolds(): void {
    for (const name of ['folds', 'fold_shares'] as const) {
      for (const key of this.maps[name].keys()) this.maps[name].delete(key);
    }
  }

  /**
   * Stream decoded events. One consumer at a time; events that arrived while nobody consumed wait in
   * the ring buffer (or were counted as dropped if it filled).
   */
  subscribe(onEvent: (event: KrsiEvent) => void, opts: SubscribeOptions = {}): void {
    this.subscribeRecords((data) => onEvent(decodeEvent(data)), opts);
  }

  /**
   * Stream the raw records (struct krsi_event, decodeEvent() reads them). Each is a view into the ring,
   * valid only during the call: copy what must be kept.
   */
  subscribeRecords(onRecord: (data: Buffer) => void, opts: SubscribeOptions = {}): void {
    if (this.ring) throw new Error('krsi enforcer: events already have a subscriber');
    const ringOpts: SubscribeOptions & { borrow: boolean } = { borrow: true };
    if (opts.budget !== undefined) ringOpts.budget = opts.budget;
    if (opts.batchDelayMs !== undefined) ringOpts.batchDelayMs = opts.batchDelayMs;
    if (opts.onError !== undefined) ringOpts.onError = opts.onError;
    this.ring = new RingBuffer(this.maps.events, onRecord, ringOpts);
    this.ring.start();
  }

  /**
   * Deliver, synchronously, every event already waiting in the ring buffer to the subscriber. The agent
   * calls it at start, before it lets the job table change, so that events recorded while it was down
   * are attributed to the jobs that were running when they happened.
   */
  drainEvents(): number {
    if (!this.ring) throw new Error('krsi enforcer: drainEvents() needs a subscriber');
    let total = 0;
    for (let n = this.ring.consume(); n > 0; n = this.ring.consume()) total += n;
    return total;
  }

  async unsubscribe(): Promise<void> {
    const ring = this.ring;
    this.ring = undefined;
    await ring?.close();
  }

  /** Release this process's handles. Pinned programs and maps stay in the kernel and keep enforcing. */
  async close(): Promise<void> {
    await this.settle();
    await this.unsubscribe();
    if (this.pinDirFd >= 0) closeSync(this.pinDirFd);
    this.pinDirFd = -1;
    if (this.object) {
      this.object.close();
    } else {
      for (const map of Object.values(this.maps)) map.close();
    }
  }
}

/** every entry of a hash map, decoded (an entry deleted while this reads is left out) */
function entries<K, V>(map: BpfMap, decodeKey: (key: Buffer) => K, decodeValue: (value: Buffer) => V): Map<K, V> {
  const out = new Map<K, V>();
  for (const key of map.keys()) {
    const value = map.lookup(key);
    if (value) out.set(decodeKey(key), decodeValue(value));
  }
  return out;
}

/** unpin every link or map pinned in `dir` and remove the folder; returns how many there were */
function unpinAll(dir: string): number {
  if (!existsSync(dir)) return 0;
  const names = readdirSync(dir);
  for (const name of names) unlinkSync(join(dir, name));
  rmdirSync(dir);
  return names.length;
}

/** links first (the programs stop), then maps, then the generation's own folder (0.1.0's is pinDir: kept) */
function unpinGeneration(g: Generation): void {
  unpinAll(join(g.dir, 'links'));
  unpinAll(join(g.dir, 'maps'));
  if (g.buildId !== null && existsSync(g.dir)) rmdirSync(g.dir);
}

/**
 * Every record still in a pinned ring buffer (opened by the caller, closed here), delivered synchronously;
 * returns how many. A record the
 * consumer fails on is skipped: the consumer position moves past it either way, so that a record that
 * cannot be handled never stops an upgrade (nor, once its links are gone, every later start).
 */
async function drainRing(map: BpfMap, onRecord: (data: Buffer) => void): Promise<number> {
  try {
    const ring = new RingBuffer(map, (data) => {
      try {
        onRecord(data);
      } catch {
        // the consumer reports its own failures (the event pipeline counts records it cannot decode)
      }
    }, { borrow: true });
    let total = 0;
    try {
      for (let n = ring.consume(); n > 0; n = ring.consume()) total += n;
    } finally {
      await ring.close();
    }
    return total;
  } finally {
    map.close();
  }
}
