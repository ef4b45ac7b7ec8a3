/**
 * The event log line: one key=value line per kernel decision, the seed paper's fields (ts, type, comm,
 * uid, gid, pid, the hook's own fields, act) plus policy and job. Values that users control (comm, file
 * names, paths) are quoted and escaped, so a process named `x act=allow` cannot forge a field and a file
 * name with a newline cannot forge a line.
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

/** the hook's own fields, in the paper's column order */
function hookFields(e: KrsiEvent): [string, string | number | bigint][] {
  switch (e.type) {
    case 'creat':
    case 'mknod':
    case 'mkdir':
      return [['name', e.name], ['reqmode', octal(e.reqMode)], ['umask', octal(e.umask)], ['newmode', octal(e.newMode)]];
    case 'chmod':
      return [['name', e.name], ['dev', e.dev], ['inode', e.ino], ['oldmode', octal(e.oldMode)], ['newmode', octal(e.newMode)]];
    case 'setacl':
    case 'link':
      return [['name', e.name], ['dev', e.dev], ['inode', e.ino], ['mode', octal(e.oldMode)]];
    case 'exsuid':
      return [['path', e.name], ['dev', e.dev], ['inode', e.ino], ['mode', octal(e.oldMode)]];
    case 'listen':
      return [['proto', e.proto], ['laddr', e.addr], ['lport', e.port], ['exedev', e.dev], ['exeinode', e.ino]];
    case 'skconn':
    case 'sksend':
      return [['proto', e.proto], ['daddr', e.addr], ['dport', e.port]];
    case 'sgkill':
    case 'sigio':
      return [['targetpid', e.targetPid], ['targettgid', e.targetTgid], ['targetuid', e.targetUid], ['targetcomm', e.name], ['signo', e.signal]];
    case 'ptrace':
      return [['targetpid', e.targetPid], ['targettgid', e.targetTgid], ['targetuid', e.targetUid], ['targetcomm', e.name], ['ptracemode', e.signal]];
    default:
      return [];
  }
}

export interface EventContext {
  /** wall-clock time of the event */
  time: Date;
  /** Slurm job id(s) the event is attributed to, '' when none */
  job?: string;
}

export function formatEvent(e: KrsiEvent, ctx: EventContext): string {
  const fields: [string, string | number | bigint][] = [
    ['ts', ctx.time.toISOString()],
    ['type', e.type],
    ['policy', e.policy],
    ['comm', e.comm],
    ['uid', e.uid],
    ['gid', e.gid],
    ['pid', e.pid],
    ['tid', e.tid],
    ['job', ctx.job ?? ''],
    ...hookFields(e),
    ['act', e.decision],
  ];
  return fields.map(([k, v]) => `${k}=${logValue(v)}`).join(' ');
}
