/**
 * The enforcement module the agent uses: loads, attaches and pins the BPF LSM programs (or adopts the
 * pinned ones a previous agent left enforcing), writes and clears per-uid policies atomically, protects
 * pids from signals and ptrace, reads the kernel's decision counters and streams decoded events.
 *
 * Pins under pinDir (default /sys/fs/bpf/slurm-krsi): maps/<map name> and links/<program name>. A pinned
 * link keeps its program attached after every process has closed it, so enforcement outlives the agent.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { BpfMap, BpfObject, RingBuffer } from '../../libbpf-ts/index.js';
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
  decodePolicy,
  decodeProtect,
  encodeCidrKey,
  encodeCidrVerdict,
  encodeInodeKey,
  encodePolicy,
  encodeProtect,
  encodeUid,
  inodeKeySet,
  uidBitmapSlot,
  type CounterSlot,
  type KernelFileId,
  type KrsiEvent,
  type Mode,
  type PolicyName,
  type PolicyValue,
  type ProtectScope,
  type ProtectValue,
} from './layout.js';
import { synchronizeRcu } from './rcu.js';

export const DEFAULT_PIN_DIR = '/sys/fs/bpf/slurm-krsi';

/** What one uid is held to. The agent computes it as the union of the uid's jobs' policies. */
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
  /** build/bpf/krsi.bpf.o */
  objectPath: string;
  pinDir?: string;
  /** ring buffer size in bytes (a power of two, page multiple); used only when the map is created */
  ringBufferBytes?: number;
  log?: (message: string) => void;
}

type Counters = Record<PolicyName, Record<CounterSlot, bigint>>;

const SET_MAPS = ['suid_allow', 'ssh_clients', 'connect_cidrs'] as const;
const MAP_NAMES = ['uid_policy', 'uid_bits', ...SET_MAPS, 'protected', 'counters', 'events'] as const;
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

export class Enforcer {
  /** true when the programs were already pinned and enforcing, and this instance only opened them */
  readonly adopted: boolean;
  readonly pinDir: string;
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

  private constructor(
    pinDir: string,
    maps: Record<MapName, BpfMap>,
    object: BpfObject | undefined,
    programs: string[],
    adopted: boolean,
  ) {
    this.pinDir = pinDir;
    this.maps = maps;
    this.object = object;
    this.programs = programs;
    this.adopted = adopted;
    this.nextSet = this.highestSetInUse() + 1;
    this.bitmapWords = maps.uid_bits.maxEntries;
    this.repairUidBitmap();
  }

  /**
   * Attach and pin the programs, or adopt them if a previous instance pinned them all. Programs whose
   * link is already pinned are left as they are (they never stop enforcing); missing ones are attached.
   */
  static open(opts: EnforcerOptions): Enforcer {
    const log = opts.log ?? (() => {});
    const pinDir = opts.pinDir ?? DEFAULT_PIN_DIR;
    const mapDir = join(pinDir, 'maps');
    const linkDir = join(pinDir, 'links');
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
        log(`adopted ${wanted.length} pinned programs under ${pinDir}`);
        return new Enforcer(pinDir, maps, undefined, wanted.map((p) => p.name), true);
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
      log(`attached and pinned ${wanted.length} programs under ${pinDir}`);
      const maps = Object.fromEntries(MAP_NAMES.map((name) => [name, object.map(name)])) as Record<MapName, BpfMap>;
      keepObject = true;
      return new Enforcer(pinDir, maps, object, wanted.map((p) => p.name), false);
    } finally {
      if (!keepObject) object.close();
    }
  }

  /**
   * Detach everything: unpin links and maps. Programs stop enforcing once no process holds them.
   * For uninstall and tests; the agent never does this on its own.
   */
  static removePinned(pinDir: string = DEFAULT_PIN_DIR): void {
    for (const sub of ['links', 'maps']) {
      const dir = join(pinDir, sub);
      if (!existsSync(dir)) continue;
      for (const name of readdirSync(dir)) rmSync(join(dir, name));
      rmSync(dir, { recursive: true });
    }
    if (existsSync(pinDir)) rmSync(pinDir, { recursive: true });
  }

  /** what is pinned under pinDir ("links/<program>", "maps/<map>"), for status reporting */
  pinned(): string[] {
    return ['links', 'maps'].flatMap((sub) => {
      const dir = join(this.pinDir, sub);
      return existsSync(dir) ? readdirSync(dir).sort().map((name) => `${sub}/${name}`) : [];
    });
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
    const set = this.nextSet++;
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
      for (const id of policy.suidAllow) this.maps.suid_allow.update(encodeInodeKey(set, id), Buffer.from([1]));
      for (const id of policy.sshClients) this.maps.ssh_clients.update(encodeInodeKey(set, id), Buffer.from([1]));
      for (const rule of policy.connectRules) {
        this.maps.connect_cidrs.update(encodeCidrKey(set, rule.cidr), encodeCidrVerdict(rule.verdict));
      }
      const value: PolicyValue = { modes: policy.modes, connectDefaultDeny: policy.connectDefault === 'deny', set };
      this.maps.uid_policy.update(key, encodePolicy(value));
    } catch (err) {
      this.deleteSets(new Set([set]));
      if (!old) this.dropFromBitmap(uid);
      throw err;
    }
    if (old) this.retireSet(decodePolicy(old).set);
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
    const out = new Map<number, PolicyValue>();
    for (const key of this.maps.uid_policy.keys()) {
      const value = this.maps.uid_policy.lookup(key);
      if (value) out.set(key.readUInt32LE(0), decodePolicy(value));
    }
    return out;
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
    const live = new Set([...this.uidPolicies().values()].map((p) => p.set));
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
    for (const key of this.maps.suid_allow.keys()) highest = Math.max(highest, inodeKeySet(key));
    for (const key of this.maps.ssh_clients.keys()) highest = Math.max(highest, inodeKeySet(key));
    for (const key of this.maps.connect_cidrs.keys()) highest = Math.max(highest, cidrKeySet(key));
    return highest;
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
    const out = new Map<number, ProtectValue>();
    for (const key of this.maps.protected.keys()) {
      const value = this.maps.protected.lookup(key);
      if (value) out.set(key.readUInt32LE(0), decodeProtect(value));
    }
    return out;
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
    if (this.object) {
      this.object.close();
    } else {
      for (const map of Object.values(this.maps)) map.close();
    }
  }
}

