/**
 * The byte layout of everything that crosses between bpf/krsi.h and TypeScript: map keys and values,
 * ring-buffer events, counter indices. Offsets are written out once here; test/unit/layout.test.ts
 * checks every one of them against the BTF of the built object, so a change to krsi.h that is not
 * mirrored here fails the unit tests instead of decoding garbage.
 */
import { formatAddress, isV4Mapped, type Cidr } from './cidr.js';

export const POLICIES = ['fileperms', 'suidexec', 'sshlisteners', 'skconnections', 'killtasks'] as const;
export type PolicyName = (typeof POLICIES)[number];

export const MODES = ['off', 'audit', 'enforce'] as const;
export type Mode = (typeof MODES)[number];

export const DECISIONS = ['deny', 'audit'] as const;
export type Decision = (typeof DECISIONS)[number];

/**
 * counter slots per policy, in krsi.h order (enum krsi_counter_slot): deny + audit (decisions) =
 * events + folded + dropped
 */
export const COUNTER_SLOTS = ['deny', 'audit', 'dropped', 'folded'] as const;
export type CounterSlot = (typeof COUNTER_SLOTS)[number];
export const COUNTER_ENTRIES = POLICIES.length * COUNTER_SLOTS.length;

export function counterIndex(policy: PolicyName, slot: CounterSlot): number {
  return POLICIES.indexOf(policy) * COUNTER_SLOTS.length + COUNTER_SLOTS.indexOf(slot);
}

/** enum krsi_event_type, by value; the names are the event log's `type=` (the seed's names where it had one) */
export const EVENT_TYPES: Record<number, string> = {
  1: 'creat',
  2: 'mknod',
  3: 'mkdir',
  4: 'chmod',
  5: 'setacl',
  6: 'link',
  7: 'exsuid',
  8: 'listen',
  9: 'skconn',
  10: 'sksend',
  11: 'sgkill',
  12: 'ptrace',
  13: 'sigio',
  14: 'rlimit',
  15: 'setsched',
  16: 'setnice',
  17: 'ioprio',
  18: 'bpfid',
  19: 'bpfmap',
  20: 'bpfprog',
  21: 'umount',
  22: 'remount',
  23: 'mount',
  24: 'movemount',
  25: 'skopt',
};

export const CONNECT_DEFAULT_DENY_FLAG = 1 << 0;

/** enum krsi_cidr_verdict: the value of a connect_cidrs entry */
export const CIDR_VERDICTS = { deny: 1, allow: 2 } as const;

export function encodeCidrVerdict(verdict: keyof typeof CIDR_VERDICTS): Buffer {
  return Buffer.from([CIDR_VERDICTS[verdict]]);
}

/**
 * enum krsi_fold_scope: what the `repeats` of an event count. exact: the same action (same target);
 * kind: actions of the same type with any target, folded while the uid was over its share of a filling ring
 */
export const FOLD_SCOPES = ['exact', 'kind'] as const;
export type FoldScope = (typeof FOLD_SCOPES)[number];

/** enum krsi_guard_kind: what a key of the guarded map names */
export const GUARD_KINDS = { map: 1, prog: 2, link: 3, pin_fs: 4 } as const;
export type GuardKind = keyof typeof GUARD_KINDS;

export const PROTECT_SCOPES = ['all', 'policy'] as const;
export type ProtectScope = (typeof PROTECT_SCOPES)[number];

/** [offset, size] of each field, per struct, as in krsi.h */
export const LAYOUT = {
  krsi_policy: { size: 16, fields: { mode: [0, 8], flags: [8, 4], set: [12, 4] } },
  krsi_inode_key: { size: 16, fields: { set: [0, 4], dev: [4, 4], ino: [8, 8] } },
  krsi_cidr_key: { size: 24, fields: { prefixlen: [0, 4], set: [4, 4], addr: [8, 16] } },
  krsi_protect: { size: 16, fields: { start_ticks: [0, 8], scope: [8, 1], mode: [9, 1], pad: [10, 6] } },
  krsi_agent: { size: 16, fields: { start_ticks: [0, 8], tgid: [8, 4], pad: [12, 4] } },
  krsi_guard_key: { size: 16, fields: { kind: [0, 4], dev: [4, 4], id: [8, 8] } },
  krsi_job_binding: { size: 24, fields: { policy: [0, 16], job_id: [16, 4], pad: [20, 4] } },
  krsi_job_scope: { size: 8, fields: { bound: [0, 4], job_level: [4, 4] } },
  krsi_file_identity: { size: 24, fields: { fd: [0, 4], dev: [4, 4], ino: [8, 8], mode: [16, 4], pad: [20, 4] } },
  krsi_event: {
    size: 200,
    fields: {
      ts_ns: [0, 8],
      cgroup_id: [8, 8],
      type: [16, 4],
      uid: [20, 4],
      gid: [24, 4],
      pid: [28, 4],
      tid: [32, 4],
      policy: [36, 1],
      decision: [37, 1],
      fold_scope: [38, 1],
      pad0: [39, 1],
      comm: [40, 16],
      ino: [56, 8],
      dev: [64, 4],
      old_mode: [68, 4],
      req_mode: [72, 4],
      umask: [76, 4],
      new_mode: [80, 4],
      family: [84, 2],
      port: [86, 2],
      proto: [88, 2],
      sock_type: [90, 2],
      addr: [92, 16],
      target_pid: [108, 4],
      target_tgid: [112, 4],
      target_uid: [116, 4],
      signal: [120, 4],
      name: [124, 64],
      repeats: [188, 4],
      job_id: [192, 4],
    },
  },
} as const;

const P = LAYOUT.krsi_policy.fields;
const IK = LAYOUT.krsi_inode_key.fields;
const CK = LAYOUT.krsi_cidr_key.fields;
const PR = LAYOUT.krsi_protect.fields;
const FI = LAYOUT.krsi_file_identity.fields;
const AG = LAYOUT.krsi_agent.fields;
const GK = LAYOUT.krsi_guard_key.fields;
const JB = LAYOUT.krsi_job_binding.fields;
const JS = LAYOUT.krsi_job_scope.fields;
const EV = LAYOUT.krsi_event.fields;

/** A uid's entry in uid_policy. */
export interface PolicyValue {
  modes: Record<PolicyName, Mode>;
  /** skconnections denies destinations that no rule matches */
  connectDefaultDeny: boolean;
  set: number;
}

export function encodePolicy(value: PolicyValue): Buffer {
  const buf = Buffer.alloc(LAYOUT.krsi_policy.size);
  POLICIES.forEach((name, i) => buf.writeUInt8(MODES.indexOf(value.modes[name]), P.mode[0] + i));
  buf.writeUInt32LE(value.connectDefaultDeny ? CONNECT_DEFAULT_DENY_FLAG : 0, P.flags[0]);
  buf.writeUInt32LE(value.set, P.set[0]);
  return buf;
}

export function decodePolicy(buf: Buffer): PolicyValue {
  const modes = {} as Record<PolicyName, Mode>;
  POLICIES.forEach((name, i) => {
    modes[name] = MODES[buf.readUInt8(P.mode[0] + i)] ?? 'enforce';
  });
  return {
    modes,
    connectDefaultDeny: (buf.readUInt32LE(P.flags[0]) & CONNECT_DEFAULT_DENY_FLAG) !== 0,
    set: buf.readUInt32LE(P.set[0]),
  };
}

/** A bound job's entry in job_cgroups: its own policy and its Slurm job id. */
export interface JobBindingValue {
  policy: PolicyValue;
  jobId: number;
}

export function encodeJobBinding(value: JobBindingValue): Buffer {
  const buf = Buffer.alloc(LAYOUT.krsi_job_binding.size);
  encodePolicy(value.policy).copy(buf, JB.policy[0]);
  buf.writeUInt32LE(value.jobId, JB.job_id[0]);
  return buf;
}

export function decodeJobBinding(buf: Buffer): JobBindingValue {
  return { policy: decodePolicy(buf.subarray(JB.policy[0], JB.policy[0] + JB.policy[1])), jobId: buf.readUInt32LE(JB.job_id[0]) };
}

/** job_scope slot 0: how many jobs are bound, and the cgroup level of job cgroups */
export function encodeJobScope(bound: number, jobLevel: number): Buffer {
  const buf = Buffer.alloc(LAYOUT.krsi_job_scope.size);
  buf.writeUInt32LE(bound, JS.bound[0]);
  buf.writeUInt32LE(jobLevel, JS.job_level[0]);
  return buf;
}

export function decodeJobScope(buf: Buffer): { bound: number; jobLevel: number } {
  return { bound: buf.readUInt32LE(JS.bound[0]), jobLevel: buf.readUInt32LE(JS.job_level[0]) };
}

/** a cgroup id as a job_cgroups key */
export function encodeCgroupId(id: bigint): Buffer {
  const buf = Buffer.alloc(8);
  buf.writeBigUInt64LE(id);
  return buf;
}

export function encodeUid(uid: number): Buffer {
  const buf = Buffer.alloc(4);
  buf.writeUInt32LE(uid);
  return buf;
}

/**
 * Where a uid sits in the uid_bits bitmap (bpf/krsi.h): bit (uid & 63) of word (uid >> 6) & (words - 1),
 * for a bitmap of `words` 64-bit words (a power of two). Uids that differ only above the bitmap's
 * range share a bit.
 */
export function uidBitmapSlot(uid: number, words: number): { word: number; bit: number } {
  return { word: Math.floor(uid / 64) & (words - 1), bit: uid & 63 };
}

/** A file as the kernel identifies it: super block s_dev (kernel encoding) and inode number. */
export interface KernelFileId {
  dev: number;
  ino: bigint;
}

export function encodeInodeKey(set: number, id: KernelFileId): Buffer {
  const buf = Buffer.alloc(LAYOUT.krsi_inode_key.size);
  buf.writeUInt32LE(set, IK.set[0]);
  buf.writeUInt32LE(id.dev, IK.dev[0]);
  buf.writeBigUInt64LE(id.ino, IK.ino[0]);
  return buf;
}

export function inodeKeySet(key: Buffer): number {
  return key.readUInt32LE(IK.set[0]);
}

/** LPM key: set id (network order) then the address as IPv6, IPv4 as IPv4-mapped. */
export function encodeCidrKey(set: number, cidr: Cidr): Buffer {
  const buf = Buffer.alloc(LAYOUT.krsi_cidr_key.size);
  buf.writeUInt32LE(32 + cidr.mappedPrefix, CK.prefixlen[0]);
  buf.writeUInt32BE(set, CK.set[0]);
  cidr.mappedAddress.copy(buf, CK.addr[0]);
  return buf;
}

export function cidrKeySet(key: Buffer): number {
  return key.readUInt32BE(CK.set[0]);
}

export interface ProtectValue {
  startTicks: bigint;
  scope: ProtectScope;
  mode: Mode;
}

export function encodeProtect(value: ProtectValue): Buffer {
  const buf = Buffer.alloc(LAYOUT.krsi_protect.size);
  buf.writeBigUInt64LE(value.startTicks, PR.start_ticks[0]);
  buf.writeUInt8(PROTECT_SCOPES.indexOf(value.scope), PR.scope[0]);
  buf.writeUInt8(MODES.indexOf(value.mode), PR.mode[0]);
  return buf;
}

export function decodeProtect(buf: Buffer): ProtectValue {
  return {
    startTicks: buf.readBigUInt64LE(PR.start_ticks[0]),
    scope: PROTECT_SCOPES[buf.readUInt8(PR.scope[0])] ?? 'all',
    mode: MODES[buf.readUInt8(PR.mode[0])] ?? 'enforce',
  };
}

/** The agent slot: the registered agent's tgid (0: none live) and start time. */
export interface AgentValue {
  tgid: number;
  startTicks: bigint;
}

export function encodeAgent(value: AgentValue): Buffer {
  const buf = Buffer.alloc(LAYOUT.krsi_agent.size);
  buf.writeBigUInt64LE(value.startTicks, AG.start_ticks[0]);
  buf.writeUInt32LE(value.tgid, AG.tgid[0]);
  return buf;
}

export function decodeAgent(buf: Buffer): AgentValue {
  return { tgid: buf.readUInt32LE(AG.tgid[0]), startTicks: buf.readBigUInt64LE(AG.start_ticks[0]) };
}

/** One of the set's own objects, as a key of the guarded map. dev: kernel s_dev, pin_fs only. */
export interface GuardKey {
  kind: GuardKind;
  dev: number;
  id: bigint;
}

export function encodeGuardKey(key: GuardKey): Buffer {
  const buf = Buffer.alloc(LAYOUT.krsi_guard_key.size);
  buf.writeUInt32LE(GUARD_KINDS[key.kind], GK.kind[0]);
  buf.writeUInt32LE(key.dev, GK.dev[0]);
  buf.writeBigUInt64LE(key.id, GK.id[0]);
  return buf;
}

export function decodeGuardKey(buf: Buffer): GuardKey {
  const kindValue = buf.readUInt32LE(GK.kind[0]);
  const kind = (Object.keys(GUARD_KINDS) as GuardKind[]).find((k) => GUARD_KINDS[k] === kindValue);
  if (kind === undefined) throw new Error(`guarded map: unknown kind ${kindValue}`);
  return { kind, dev: buf.readUInt32LE(GK.dev[0]), id: buf.readBigUInt64LE(GK.id[0]) };
}

export interface FileIdentityRecord {
  fd: number;
  dev: number;
  ino: bigint;
  mode: number;
}

export function decodeFileIdentities(buf: Buffer): FileIdentityRecord[] {
  const size = LAYOUT.krsi_file_identity.size;
  const out: FileIdentityRecord[] = [];
  for (let off = 0; off + size <= buf.length; off += size) {
    out.push({
      fd: buf.readUInt32LE(off + FI.fd[0]),
      dev: buf.readUInt32LE(off + FI.dev[0]),
      ino: buf.readBigUInt64LE(off + FI.ino[0]),
      mode: buf.readUInt32LE(off + FI.mode[0]),
    });
  }
  return out;
}

/** A decoded ring-buffer record. Which of the hook fields are meaningful depends on `type`. */
export interface KrsiEvent {
  /** nanoseconds since boot (CLOCK_BOOTTIME) */
  bootNs: bigint;
  cgroupId: bigint;
  type: string;
  typeId: number;
  policy: PolicyName;
  decision: Decision;
  uid: number;
  gid: number;
  pid: number;
  tid: number;
  comm: string;
  dev: number;
  ino: bigint;
  oldMode: number;
  reqMode: number;
  umask: number;
  newMode: number;
  family: number;
  port: number;
  proto: number;
  sockType: number;
  /**
   * printable address: dotted quad for AF_INET, RFC 5952 text for AF_INET6 (::ffff:a.b.c.d when mapped);
   * '' when none (no address, or a family skconnections refused unjudged)
   */
  addr: string;
  targetPid: number;
  targetTgid: number;
  targetUid: number;
  signal: number;
  name: string;
  /** decisions of this event's fold key folded since the key's previous event */
  repeats: number;
  foldScope: FoldScope;
  /** the bound job whose task acted (its policy decided); 0: outside every bound job (the uid's policy decided) */
  jobId: number;
}

function cString(buf: Buffer, [offset, size]: readonly [number, number]): string {
  let end = offset;
  const limit = offset + size;
  while (end < limit && buf[end] !== 0) end++;
  return end === offset ? '' : buf.toString('utf8', offset, end);
}

/** the comm of the last record decoded, as 4 words and as text: a flood comes from one process */
const lastComm = { words: new Uint32Array(4), text: '' };

function commOf(buf: Buffer, v: DataView): string {
  const at = EV.comm[0];
  const w = lastComm.words;
  const w0 = v.getUint32(at, true), w1 = v.getUint32(at + 4, true), w2 = v.getUint32(at + 8, true), w3 = v.getUint32(at + 12, true);
  if (w0 !== w[0] || w1 !== w[1] || w2 !== w[2] || w3 !== w[3]) {
    w[0] = w0; w[1] = w1; w[2] = w2; w[3] = w3;
    lastComm.text = cString(buf, EV.comm);
  }
  return lastComm.text;
}

const AF_INET = 2;
const AF_INET6 = 10;

function formatEventAddress(family: number, buf: Buffer, at: number): string {
  // IPv4 (and IPv4-mapped IPv6): the common case, formatted without copying
  if (
    buf[at] === 0 && buf[at + 1] === 0 && buf[at + 2] === 0 && buf[at + 3] === 0 && buf[at + 4] === 0 && buf[at + 5] === 0 &&
    buf[at + 6] === 0 && buf[at + 7] === 0 && buf[at + 8] === 0 && buf[at + 9] === 0 && buf[at + 10] === 0xff && buf[at + 11] === 0xff
  ) {
    const v4 = `${buf[at + 12]}.${buf[at + 13]}.${buf[at + 14]}.${buf[at + 15]}`;
    return family === AF_INET ? v4 : `::ffff:${v4}`;
  }
  const addr16 = buf.subarray(at, at + 16);
  if (family === AF_INET) return formatAddress(addr16);
  const text = formatAddress(addr16, true);
  return isV4Mapped(addr16) ? `::ffff:${formatAddress(addr16)}` : text;
}

export function decodeEvent(buf: Buffer): KrsiEvent {
  if (buf.length < LAYOUT.krsi_event.size) {
    throw new Error(`krsi event record is ${buf.length} bytes, expected ${LAYOUT.krsi_event.size}`);
  }
  // one DataView per record: its reads compile to plain loads, where Buffer's read methods did not get
  // inlined in this loop (this runs once per kernel event)
  const v = new DataView(buf.buffer, buf.byteOffset, LAYOUT.krsi_event.size);
  const typeId = v.getUint32(EV.type[0], true);
  const family = v.getUint16(EV.family[0], true);
  return {
    bootNs: v.getBigUint64(EV.ts_ns[0], true),
    cgroupId: v.getBigUint64(EV.cgroup_id[0], true),
    type: EVENT_TYPES[typeId] ?? `type${typeId}`,
    typeId,
    policy: POLICIES[v.getUint8(EV.policy[0])] ?? 'fileperms',
    decision: DECISIONS[v.getUint8(EV.decision[0])] ?? 'deny',
    uid: v.getUint32(EV.uid[0], true),
    gid: v.getUint32(EV.gid[0], true),
    pid: v.getUint32(EV.pid[0], true),
    tid: v.getUint32(EV.tid[0], true),
    comm: commOf(buf, v),
    dev: v.getUint32(EV.dev[0], true),
    ino: v.getBigUint64(EV.ino[0], true),
    oldMode: v.getUint32(EV.old_mode[0], true),
    reqMode: v.getUint32(EV.req_mode[0], true),
    umask: v.getUint32(EV.umask[0], true),
    newMode: v.getUint32(EV.new_mode[0], true),
    family,
    port: v.getUint16(EV.port[0], true),
    proto: v.getUint16(EV.proto[0], true),
    sockType: v.getUint16(EV.sock_type[0], true),
    addr: family === AF_INET || family === AF_INET6 ? formatEventAddress(family, buf, EV.addr[0]) : '',
    targetPid: v.getUint32(EV.target_pid[0], true),
    targetTgid: v.getUint32(EV.target_tgid[0], true),
    targetUid: v.getUint32(EV.target_uid[0], true),
    signal: v.getUint32(EV.signal[0], true),
    name: cString(buf, EV.name),
    repeats: v.getUint32(EV.repeats[0], true),
    foldScope: FOLD_SCOPES[v.getUint8(EV.fold_scope[0])] ?? 'kind',
    jobId: v.getUint32(EV.job_id[0], true),
  };
}
