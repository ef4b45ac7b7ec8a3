/**
 * Kernel events to their three destinations: one key=value line on stdout (journald) and in the event
 * log file, and a bounded in-memory window for GET /v1/events. Each event gets a sequence number; the
 * agent counts what it logged per policy and decision, so that logged + dropped can be checked against
 * the kernel's own decision counters.
 */
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import type { KrsiEvent, PolicyName } from '../enforcement/layout.js';
import type { EventRecord, EventsPage } from '../service/types.js';
import type { BootClock } from './clock.js';
import { formatEvent } from './format.js';

export interface EventPipelineOptions {
  clock: BootClock;
  /** job id(s) to attribute an event of this uid to */
  jobOf: (event: KrsiEvent) => string;
  windowSize: number;
  /** event log file, null for none */
  logPath: string | null;
  /** where stdout lines go (default process.stdout) */
  writeStdout?: (line: string) => void;
}

/** the key of `logged`, one string per policy and decision rather than one per event */
const loggedKeys = new Map<string, string>();
function loggedKey(policy: string, decision: string): string {
  const pair = policy + decision;
  let key = loggedKeys.get(pair);
  if (key === undefined) loggedKeys.set(pair, (key = `${policy}/${decision}`));
  return key;
}

export class EventPipeline {
  /** circular window of the most recent events: seq numbers in it are contiguous */
  private readonly window: (EventRecord | undefined)[];
  private seq = 0;
  private file: WriteStream | null = null;
  private readonly writeStdout: (lines: string[]) => void;
  /** lines not written yet: written together once the current batch of events is handled */
  private pending: string[] = [];
  private flushScheduled: NodeJS.Immediate | null = null;
  /** events logged by this agent process, per policy and decision */
  readonly logged = new Map<string, number>();
  /** the ISO text of the last event's millisecond: a flood has many events per millisecond */
  private lastMs = NaN;
  private lastIso = '';

  constructor(private readonly opts: EventPipelineOptions) {
    const perLine = opts.writeStdout;
    this.writeStdout = perLine ? (lines) => lines.forEach((l) => perLine(l)) : (lines) => void process.stdout.write(`${lines.join('\n')}\n`);
    this.window = new Array<EventRecord | undefined>(opts.windowSize);
    this.openFile();
  }

  private openFile(): void {
    if (!this.opts.logPath) return;
    mkdirSync(dirname(this.opts.logPath), { recursive: true, mode: 0o750 });
    this.file = createWriteStream(this.opts.logPath, { flags: 'a', mode: 0o640 });
  }

  /** reopen the log file (after logrotate moved it) */
  reopen(): void {
    this.flush();
    this.file?.end();
    this.openFile();
  }

  handle(event: KrsiEvent): EventRecord {
    const ms = this.opts.clock.toMs(event.bootNs);
    if (ms !== this.lastMs) {
      this.lastMs = ms;
      this.lastIso = new Date(ms).toISOString();
    }
    const time = this.lastIso;
    const job = this.opts.jobOf(event);
    const line = formatEvent(event, { time, job });
    const record: EventRecord = {
      seq: ++this.seq,
      time,
      type: event.type,
      policy: event.policy,
      decision: event.decision,
      uid: event.uid,
      gid: event.gid,
      pid: event.pid,
      comm: event.comm,
      job,
      line,
    };
    this.window[record.seq % this.window.length] = record;
    const key = loggedKey(event.policy, event.decision);
    this.logged.set(key, (this.logged.get(key) ?? 0) + 1);
    // one write per batch, not per event: the ring buffer delivers events in batches under load
    this.pending.push(line);
    this.flushScheduled ??= setImmediate(() => this.flush());
    return record;
  }

  /** write the lines of the events handled so far to stdout and the log file */
  flush(): void {
    if (this.flushScheduled) clearImmediate(this.flushScheduled);
    this.flushScheduled = null;
    if (this.pending.length === 0) return;
    const lines = this.pending;
    this.pending = [];
    this.writeStdout(lines);
    this.file?.write(`${lines.join('\n')}\n`);
  }

  loggedCount(policy?: PolicyName, decision?: 'deny' | 'audit'): number {
    let n = 0;
    for (const [key, count] of this.logged) {
      const [p, d] = key.split('/');
      if ((policy === undefined || p === policy) && (decision === undefined || d === decision)) n += count;
    }
    return n;
  }

  page(sinceAsked: number, limit: number): EventsPage {
    // a cursor from before an agent restart (numbers start again at 1): start from the oldest kept
    const since = sinceAsked > this.seq ? 0 : sinceAsked;
    const oldest = Math.max(1, this.seq - this.window.length + 1);
    const first = Math.max(since + 1, oldest);
    const events: EventRecord[] = [];
    for (let seq = first; seq <= this.seq && events.length < limit; seq++) {
      events.push(this.window[seq % this.window.length]!);
    }
    const next = events.length > 0 ? events[events.length - 1]!.seq : Math.max(since, this.seq);
    return { events, next, missed: Math.max(0, oldest - since - 1) };
  }

  async close(): Promise<void> {
    this.flush();
    const file = this.file;
    this.file = null;
    if (file) await new Promise<void>((resolve) => file.end(resolve));
  }
}
