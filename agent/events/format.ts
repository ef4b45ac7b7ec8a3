/**
 * The event log line: one key=value line per kernel decision, the seed paper's fields (ts, type, comm,
 * uid, gid, pid, the hook's own fields, act) plus policy and job. Values that users control (comm, file
 * names, paths) are quoted and escaped, so a process named `x act=allow` cannot forge a field and a file
 * name with a newline cannot forge a line.
 *
 * Folded repeats (bpf/krsi.h): `repeats=N` after act= says that N more decisions of the same action (same
 * uid, policy, type, decision and target) were taken since this action's previous line and got no line of
 * their own; `fold=kind` says the uid was over its share of a filling ring buffer, so that its actions of
 * this type, whatever their target, are folded into one line a second, and `repeats` counts those.
 */
import type { KrsiEvent } from '../enforcement/layout.js';

const BARE = /^[A-Za-z0-9._:/@+,-]+$/;

/** a value as it appears after `key=`: bare when safe, else double-quoted with C-style escapes */
export function logValue(value: string | number | bigint): string {
  const text = String(value);
  if (text !== '' && BARE.test(text)) return text;
  let out = '"';
  for (const ch of text) {
    const code = ch.codePointAt(0)!;
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return `${out}"`;
}

const octal = (mode: number) => mode.toString(8).padStart(6, '0');

/** RLIMIT_* by number (include/uapi/asm-generic/resource.h), as the rlimit event's resource= */
const RLIMITS = ['cpu', 'fsize', 'data', 'stack', 'core', 'rss', 'nproc', 'nofile', 'memlock', 'as', 'locks', 'sigpending', 'msgqueue', 'nice', 'rtprio', 'rttime'];

/** the object kind of each BPF_*_GET_FD_BY_ID command (enum bpf_cmd), as the bpfid event's object= */
const BPF_GET_FD_BY_ID: Record<number, string> = { 13: 'prog', 14: 'map', 30: 'link' };

/** the process a signal, ptrace or scheduling change was aimed at */
function targetFields(e: KrsiEvent): string {
  return ` targetpid=${e.targetPid} targettgid=${e.targetTgid} targetuid=${e.targetUid} targetcomm=${logValue(e.name)}`;
}

/*
 * The line is built as one string, field by field, in the paper's column order: this runs once per kernel
 * event, so no intermediate arrays. Numbers, octal modes, type, policy and decision are always bare;
 * what users control (comm, names, the job list, addresses) goes through logValue.
 */

/**
 * socket decisions: what made the destination besides the call's own address (AF_UNSPEC taken as the
 * socket's family, an ancillary message, SCTP connectx, AF_SMC), from the event's name field
 */
function detail(e: KrsiEvent): string {
  return e.name === '' ? '' : ` detail=${logValue(e.name)}`;
}

/** the hook's own fields, in the paper's column order, each with its leading space */
function hookFields(e: KrsiEvent): string {
  switch (e.type) {
    case 'creat':
    case 'mknod':
    case 'mkdir':
      // no reqmode when judged on the inode's final mode (inode_init_security), where the call's is not known
      return ` name=${logValue(e.name)}${e.reqMode === 0 ? '' : ` reqmode=${octal(e.reqMode)}`} umask=${octal(e.umask)} newmode=${octal(e.newMode)}`;
    case 'chmod':
      return ` name=${logValue(e.name)} dev=${e.dev} inode=${e.ino} oldmode=${octal(e.oldMode)} newmode=${octal(e.newMode)}`;
    case 'setacl':
    case 'link':
      return ` name=${logValue(e.name)} dev=${e.dev} inode=${e.ino} mode=${octal(e.oldMode)}`;
    case 'exsuid':
      return ` path=${logValue(e.name)} dev=${e.dev} inode=${e.ino} mode=${octal(e.oldMode)}`;
    case 'listen':
      return ` proto=${e.proto} laddr=${logValue(e.addr)} lport=${e.port} exedev=${e.dev} exeinode=${e.ino}${detail(e)}`;
    case 'skconn':
    case 'sksend':
      return ` proto=${e.proto} daddr=${logValue(e.addr)} dport=${e.port}${e.addr === '' ? ` family=${e.family}` : ''}${detail(e)}`;
    case 'skopt':
      return ` proto=${e.proto} family=${e.family} option=${logValue(e.name)}`;
    case 'sgkill':
    case 'sigio':
      return `${targetFields(e)} signo=${e.signal}`;
    case 'ptrace':
      return `${targetFields(e)} ptracemode=${e.signal}`;
    case 'rlimit':
      return `${targetFields(e)} resource=${RLIMITS[e.signal] ?? e.signal}`;
    case 'setsched':
      return targetFields(e);
    case 'setnice':
      return `${targetFields(e)} nice=${e.signal | 0}`;
    case 'ioprio':
      return `${targetFields(e)} ioprio=${e.signal}`;
    case 'bpfid':
      return ` object=${BPF_GET_FD_BY_ID[e.signal] ?? e.signal} id=${e.ino}`;
    case 'bpfmap':
      return ` object=map id=${e.ino} name=${logValue(e.name)}`;
    case 'bpfprog':
      return ` object=prog id=${e.ino} name=${logValue(e.name)}`;
    case 'umount':
    case 'remount':
    case 'mount':
    case 'movemount':
      return ` dev=${e.dev} flags=${e.signal}`;
    default:
      return '';
  }
}

export interface EventContext {
  /** wall-clock time of the event, or its ISO 8601 text (Date.toISOString) when the caller has it already */
  time: Date | string;
  /** Slurm job id(s) the event is attributed to, '' when none */
  job?: string;
}

/** logValue of the last value seen in one field: a flood repeats the same comm and job list */
function lastValueMemo(): (value: string) => string {
  let lastIn = '';
  let lastOut = logValue('');
  return (value) => {
    if (value !== lastIn) {
      lastIn = value;
      lastOut = logValue(value);
    }
    return lastOut;
  };
}
const commValue = lastValueMemo();
const jobValue = lastValueMemo();

export function formatEvent(e: KrsiEvent, ctx: EventContext): string {
  // ts (ISO 8601), type, policy and decision come from the agent's own tables, never from users: always bare
  const ts = typeof ctx.time === 'string' ? ctx.time : ctx.time.toISOString();
  return (
    `ts=${ts} type=${e.type} policy=${e.policy} comm=${commValue(e.comm)} uid=${e.uid} gid=${e.gid} ` +
    `pid=${e.pid} tid=${e.tid} job=${jobValue(ctx.job ?? '')}${hookFields(e)} act=${e.decision}` +
    `${e.repeats > 0 ? ` repeats=${e.repeats}` : ''}${e.foldScope === 'kind' ? ' fold=kind' : ''}`
  );
}

/** MESSAGE_ID of every event in the journal (journalctl MESSAGE_ID=...): a decision of a slurm-krsi policy */
export const EVENT_MESSAGE_ID = '5e1b7c2a94d04f3b8a6de2c71f0b3d48';

/**
 * An event's journal fields (agent/log/journal.ts): the line as MESSAGE, and what a site filters or
 * forwards by as fields of their own. KRSI_JOB is once per job the event is attributed to: the bound job
 * whose cgroup the acting task is in, else each job of the uid (journalctl KRSI_JOB=1234 matches any of
 * them). A deny is a warning, an audit a notice.
 */
export function journalFields(e: KrsiEvent, line: string, job: string): [string, string][] {
  const fields: [string, string][] = [
    ['MESSAGE', line],
    ['MESSAGE_ID', EVENT_MESSAGE_ID],
    ['PRIORITY', e.decision === 'deny' ? '4' : '5'],
    ['SYSLOG_IDENTIFIER', 'krsi-agent'],
    ['KRSI_POLICY', e.policy],
    ['KRSI_TYPE', e.type],
    ['KRSI_ACTION', e.decision],
    ['KRSI_UID', String(e.uid)],
    ['KRSI_GID', String(e.gid)],
    ['KRSI_PID', String(e.pid)],
    ['KRSI_COMM', e.comm],
  ];
  if (e.repeats > 0) fields.push(['KRSI_REPEATS', String(e.repeats)]);
  if (job !== '') for (const id of job.split(',')) fields.push(['KRSI_JOB', id]);
  return fields;
}
